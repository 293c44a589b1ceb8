"""One outcome rule (rules/outcome.py): a history recorded through the real engine, with every way a call
ends (approvals counted and not, edited approvals, rejections, declined confirmations, runs that fail
where failures count and where they do not, a check that fails, and outcomes a client reports through its
hooks), read back from the record and replayed through that rule and the settle rule, makes the live
record's moves, in the same order and at the same actions; `ratchet simulate` and `ratchet report`
make them too."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from ratchet.engine import Engine, HumanAnswer
from ratchet.policy.load import load_policy
from ratchet.rules.outcome import CallOutcome, Ended, counts_as, recorded
from ratchet.rules.provenance import reading_seconds
from ratchet.rules.settle import Observed, Standing, settle

from .helpers import Claude, write_policy
from .helpers import decided as _decided
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

[classes.drafts]
tools = ["write_file", "edit_file"]
paths = ["drafts/**"]
start = "draft"
floor = "blocked"
ceiling = "confirm"

[classes.checked]
tools = ["write_file", "edit_file"]
paths = ["checked/**"]
start = "autonomous"
floor = "draft"
verify = [["grep", "-q", "good", "{path}"]]
verify_on = "each"

[classes.runs]
tools = ["run_command"]
argv = [["true"], ["false"]]
start = "autonomous"
floor = "draft"
count_execution_failures = true

[classes.lenient]
tools = ["run_command"]
argv = [["test"]]
start = "autonomous"
floor = "draft"
count_execution_failures = false

[classes.asks]
tools = ["write_file", "edit_file"]
paths = ["asks/**"]
start = "confirm"
floor = "draft"
ceiling = "autonomous"
"""

Move = tuple[str, str, str, int | None]


def _live_moves(db: Path) -> list[Move]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT class, from_level, to_level, action_id FROM transitions "
            "WHERE kind IN ('promote', 'demote') ORDER BY id"
        ).fetchall()
        return [(str(c), str(f), str(t), a) for c, f, t, a in rows]
    finally:
        con.close()


def _replayed_moves(db: Path, policies: Path) -> tuple[list[Move], dict[int, bool | None]]:
    """Every settled action read back from the record, in the order its outcome was recorded, through the one
    outcome rule and the settle rule; the moves it makes, and what each action counted as."""
    policy = load_policy(policies)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute(
            "SELECT id, class, evidence_class, status, sample, edited, evidence, "
            "coalesce(finished_at, created_at) AS settled FROM actions ORDER BY settled, id"
        ).fetchall()
    finally:
        con.close()
    standings: dict[str, Standing] = {}
    moves: list[Move] = []
    counted: dict[int, bool | None] = {}
    for r in rows:
        cls = policy.get(r["evidence_class"] or r["class"]) or policy.unclassified
        outcome = recorded(r["sample"], status=r["status"], edited=bool(r["edited"]), answer=r["evidence"])
        ok = counts_as(outcome, counts_failures=cls.count_execution_failures)
        counted[int(r["id"])] = ok
        if ok is None:
            continue
        out = settle(cls, standings.get(cls.name, Standing(cls.start)), Observed(int(r["id"]), ok))
        standings[cls.name] = out.standing
        if out.move is not None:
            m = out.move
            moves.append((cls.name, m.from_level.label, m.to_level.label, m.action_id))
    return moves, counted


@pytest.mark.asyncio
async def test_a_history_replayed_through_the_one_outcome_rule_makes_the_live_moves(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    agent = await Engine.open(workspace, policies=policies, db=db, session="agent-1")
    person = await Engine.open(workspace, policies=policies, db=db, session=False)
    n = iter(range(1000))

    async def call(tool: str, args: dict[str, object], answer: HumanAnswer | None = None) -> dict[str, object]:
        ev = await agent.evaluate(tool, args)
        return (await agent.carry_out(ev, answer=answer)).model_dump()

    async def draft(content: str = "x\n") -> int:
        out = await call("write_file", {"path": f"drafts/f{next(n)}.txt", "content": content})
        assert out["status"] == "draft", out
        return int(str(out["action_id"]))

    try:
        # drafts: a draft approved too fast on the page runs but is no sample; three approvals at the CLI
        # promote it; two confirmations declined in the client's dialog demote it; an edited approval and a
        # rejection (two failures) demote it again. (Drafted first: past three failures in a row the
        # session's streak would stop its next calls.)
        fast, *approved, edited, rejected = [await draft() for _ in range(6)]
        assert (await person.approve(fast, reviewer="web", seconds=0.1, channel="web")).status == "executed"
        for aid in approved:
            assert (await person.approve(aid)).status == "executed"
        declined = []
        for _ in range(2):
            no = HumanAnswer(False, "elicitation", None, 30.0, channel="elicitation")
            out = await call("write_file", {"path": f"drafts/f{next(n)}.txt", "content": "y\n"}, answer=no)
            assert out["status"] == "declined", out
            declined.append(out["action_id"])
        assert (await person.approve(edited, content="mine\n")).status == "executed"
        assert (await person.reject(rejected, "no")).status == "rejected"

        # checked: a write its check passes, then two it fails: failures, whatever the run did.
        for content in ("good\n", "bad\n", "bad again\n"):
            out = await call("write_file", {"path": f"checked/f{next(n)}.txt", "content": content})
            assert out["status"] == "executed", out

        # runs: failures count here; lenient: the same failures count for nothing.
        outs = [await call("run_command", {"argv": argv}) for argv in (["true"], ["false"], ["false"])]
        assert [o["status"] for o in outs] == ["executed", "failed", "failed"]
        outs = [await call("run_command", {"argv": ["test", "-e", f"missing{i}"]}) for i in range(3)]
        assert [o["status"] for o in outs] == ["failed"] * 3
    finally:
        await agent.close()
        await person.close()

    # asks: Claude Code's own Write, through the real hook: asked and approved in its dialog three times
    # (promoted), one denied by auto mode's classifier (no sample), then two allowed runs that failed.
    claude = Claude(ratchet_bin, workspace, policies, db)
    for i in range(3):
        d, tool_use_id = claude.write(f"asks/a{i}.txt", f"{i}\n")
        assert _decided(d) == "ask"
        await anyio.sleep(reading_seconds(1) + 0.3)  # the person reads the one-line change (the reading-time rule)
        claude.post("Write", tool_use_id, tool_response={"filePath": "x", "success": True}, duration_ms=12)
    d, denied = claude.write("asks/denied.txt", "no\n")
    assert _decided(d) == "allow"
    claude.post("Write", denied, name="PermissionDenied", reason="auto mode denied it", permission_mode="auto")
    for i in range(2):
        d, tool_use_id = claude.write(f"asks/b{i}.txt", f"{i}\n")
        assert _decided(d) == "allow"
        claude.post("Write", tool_use_id, name="PostToolUseFailure", error="disk full", is_interrupt=False)

    live = _live_moves(db)
    replayed, counted = _replayed_moves(db, policies)
    assert replayed == live
    # The history holds what it is meant to: each kind of ending, and a promotion and a demotion by each path.
    assert counted[fast] is None and counted[edited] is False and counted[rejected] is False
    assert [counted[int(str(a))] for a in declined] == [False, False]
    by_class = {(m[0], m[1], m[2]) for m in live}
    assert by_class >= {
        ("drafts", "draft", "confirm"),
        ("drafts", "confirm", "draft"),
        ("drafts", "draft", "blocked"),
        ("checked", "autonomous", "confirm"),
        ("runs", "autonomous", "confirm"),
        ("asks", "confirm", "autonomous"),
        ("asks", "autonomous", "confirm"),
    }, live
    assert not [m for m in live if m[0] == "lenient"]
    assert [m[3] for m in live if m[0] == "drafts"] == [approved[2], declined[1], rejected]

    # simulate (under the policy of record) and report make the same moves through the same rule.
    code, text = await cli(capsys, workspace, policies, db, "simulate", "--json")
    assert code == 0, text
    sim = json.loads(text)
    assert [(m["action_class"], m["from_level"], m["to_level"], m["action_id"]) for m in sim["moves"]] == live
    code, text = await cli(capsys, workspace, policies, db, "report", "--json")
    assert code == 0, text
    trajectories = {t["action_class"]: t for t in json.loads(text)["trajectories"]}
    for name in ("drafts", "checked", "runs", "asks"):
        points = trajectories[name]["points"]
        moves = [(name, p["was"], p["level"], p["action_id"]) for p in points if p["recorded"] is not None]
        assert moves == [m for m in live if m[0] == name], name


def test_the_rule_for_each_way_a_call_ends() -> None:
    """The table the engine's paths rely on (run, approve, reject, decline, a client's report), each row once."""

    S, F = Ended.SUCCEEDED, Ended.FAILED
    cases: list[tuple[CallOutcome, bool, bool | None]] = [
        (CallOutcome(S), False, True),  # ran at once, or approved with a counted answer
        (CallOutcome(S, answer="unverified"), False, None),  # approved too fast, or in bulk: ran, no sample
        (CallOutcome(S, answer="counted", edited=True), False, False),  # rework
        (CallOutcome(S, answer="unverified", edited=True), False, False),
        (CallOutcome(S, answer="unverified", check_failed=True), False, False),  # a check outranks the answer
        (CallOutcome(S, check_failed=True, revert=True), False, False),
        (CallOutcome(S, revert=True), False, None),  # an undo's revert earns nothing
        (CallOutcome(F), True, False),
        (CallOutcome(F), False, None),
        (CallOutcome(F, revert=True), True, None),
        (CallOutcome(F, client_asked=True), False, True),  # approved in the client's dialog
        (CallOutcome(F, answer="unverified", client_asked=True), False, None),
        (CallOutcome(F, answer="unverified", client_asked=True), True, False),
        (CallOutcome(Ended.STALE), True, None),
        (CallOutcome(Ended.DECLINED, answer="counted"), False, False),
        (CallOutcome(Ended.DECLINED, answer="unanswered"), False, None),
        (CallOutcome(Ended.DECLINED, revert=True), False, None),
        (CallOutcome(Ended.WITHDRAWN), True, None),
        (CallOutcome(Ended.NOT_ASKED), True, None),
        (CallOutcome(Ended.UNANSWERED), True, None),
        (CallOutcome(Ended.NOT_COUNTED), True, None),
    ]
    assert [counts_as(o, counts_failures=c) for o, c, _ in cases] == [want for _, _, want in cases]
