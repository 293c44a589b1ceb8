"""One settle rule: a history recorded by the live engine replays to the same moves in `ratchet simulate`
(under the policy of record) and in `ratchet report`'s trajectories, class by class and action by action."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human, write, write_policy
from .helpers import run_cli as cli

# Three successes promote (Wilson lower bound 0.44 >= 0.4); two failures in a row demote (drift 0.58 >= 0.5).
POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
drift_threshold = 0.5
unmatched = "draft"

[classes.climb]
tools = ["write_file", "edit_file"]
paths = ["climb/**"]
start = "draft"
ceiling = "autonomous"

[classes.soft]
tools = ["write_file", "edit_file"]
paths = ["soft/**"]
start = "draft"
floor = "blocked"
ceiling = "autonomous"
demote_on_complaint = false
"""

Move = tuple[str, str, str, int | None]


class Driver:
    """The live engine through the MCP client (a human who reads before answering) and the CLI."""

    def __init__(self, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.workspace, self.policies, self.db, self.capsys = workspace, policies, db, capsys
        self.n = 0

    async def cli(self, *args: str) -> str:
        code, text = await cli(self.capsys, self.workspace, self.policies, self.db, *args)
        assert code == 0, text
        return text

    async def writes(self, name: str, count: int, *, accept: bool = True) -> list[dict[str, Any]]:
        """`count` writes into class `name`; a confirmation is answered (after a reading time) with `accept`."""
        clock = Clock()
        config = ServerConfig(self.workspace, self.policies, self.db, clock=clock)
        human = Human(approve=accept, delay=9.0, clock=clock)
        outs = []
        async with Client(build_server(config), elicitation_callback=human) as client:
            for _ in range(count):
                self.n += 1
                outs.append(await write(client, f"{name}/f{self.n}.txt", f"{self.n}\n"))
        return outs

    async def approved(self, name: str, count: int) -> list[int]:
        """`count` writes that are drafts, each approved at the CLI; their action ids."""
        ids = []
        for out in await self.writes(name, count):
            assert out["status"] == "draft", out
            await self.cli("approve", str(out["action_id"]))
            ids.append(out["action_id"])
        return ids


def _live_moves(db: Path) -> list[Move]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT class, from_level, to_level, action_id FROM transitions "
            "WHERE kind IN ('promote', 'demote', 'complaint', 'human-demote') ORDER BY id"
        ).fetchall()
        return [(str(c), str(f), str(t), a) for c, f, t, a in rows]
    finally:
        con.close()


@pytest.mark.asyncio
async def test_live_moves_replay_the_same_in_simulate_and_in_the_report(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    live = Driver(workspace, policies, db, capsys)
    # climb: approvals promote it (draft -> confirm -> autonomous), a complaint demotes it at once.
    climb = await live.approved("climb", 3)
    confirmed = await live.writes("climb", 3)
    assert [o["status"] for o in confirmed] == ["executed"] * 3 and confirmed[2]["moved"]["to_level"] == "autonomous"
    ran = await live.writes("climb", 2)
    assert [o["class_level"] for o in ran] == ["autonomous"] * 2
    await live.cli("complain", str(ran[1]["action_id"]), "--reason", "wrong")
    # A pin holds promotion back; the sample after the unpin promotes on the window it kept.
    await live.cli("pin", "climb", "confirm", "--reason", "audit")
    held = await live.writes("climb", 3)
    assert all(o["moved"] is None for o in held)
    await live.cli("unpin", "climb", "--reason", "audit done")
    after = await live.writes("climb", 1)
    assert after[0]["moved"]["to_level"] == "autonomous"
    # A human demotes it; a freeze holds it (its calls become drafts) until it is lifted.
    await live.cli("demote", "climb", "--reason", "release week")
    await live.cli("freeze", "--level", "draft", "--reason", "incident")
    frozen = await live.approved("climb", 3)
    await live.cli("unfreeze", "--reason", "incident closed")
    thawed = await live.writes("climb", 1)
    assert thawed[0]["moved"]["to_level"] == "autonomous"
    # soft: promoted, then two declines demote it; a complaint (no demotion at once) flips a success
    # into a failure beside a rejection, and the window demotes it again.
    soft = await live.approved("soft", 3)
    declined = await live.writes("soft", 2, accept=False)
    assert [o["status"] for o in declined] == ["declined"] * 2 and declined[1]["moved"]["kind"] == "demote"
    rejected = (await live.writes("soft", 1))[0]["action_id"]
    await live.cli("reject", str(rejected), "--reason", "no")
    kept = await live.approved("soft", 1)
    await live.cli("complain", str(kept[0]), "--reason", "broke it")

    recorded = _live_moves(db)
    c, s, h = climb, soft, held
    assert recorded == [
        ("climb", "draft", "confirm", c[2]),
        ("climb", "confirm", "autonomous", confirmed[2]["action_id"]),
        ("climb", "autonomous", "confirm", ran[1]["action_id"]),  # the complaint
        ("climb", "confirm", "autonomous", after[0]["action_id"]),  # the pin held it for h
        ("climb", "autonomous", "confirm", None),  # the human
        ("climb", "confirm", "autonomous", thawed[0]["action_id"]),  # the freeze held it for frozen
        ("soft", "draft", "confirm", s[2]),
        ("soft", "confirm", "draft", declined[1]["action_id"]),
        ("soft", "draft", "blocked", kept[0]),  # the complaint's flipped sample
    ], (recorded, h, frozen)

    # simulate, under the policy of record: every move, at the same action, and nothing else.
    code, text = await cli(capsys, workspace, policies, db, "simulate", "--json")
    assert code == 0, text
    sim = json.loads(text)
    assert sim["changes"] == [] and sim["moves_not_simulated"] == []
    assert [(m["action_class"], m["from_level"], m["to_level"], m["action_id"]) for m in sim["moves"]] == recorded
    assert all(m["recorded"] for m in sim["moves"])

    # report: each class's trajectory, replayed, makes the same moves at the same actions.
    code, text = await cli(capsys, workspace, policies, db, "report", "--json")
    assert code == 0, text
    trajectories = {t["action_class"]: t for t in json.loads(text)["trajectories"]}
    for name in ("climb", "soft"):
        t = trajectories[name]
        moves = [(name, p["was"], p["level"], p["action_id"]) for p in t["points"] if p["recorded"] is not None]
        assert moves == [m for m in recorded if m[0] == name], name
        assert all(p["recorded"] for p in t["points"] if p["recorded"] is not None) and t["unreplayed"] == []
    # The replayed window ends where the live one stands.
    code, text = await cli(capsys, workspace, policies, db, "status", "--json")
    status = {x["action_class"]: x for x in json.loads(text)["classes"]}
    for name in ("climb", "soft"):
        assert trajectories[name]["points"][-1]["n"] == status[name]["samples"], name
