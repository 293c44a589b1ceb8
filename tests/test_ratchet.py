"""The ratchet end to end: a class climbs on human approvals made with the CLI against the same
database, a complaint demotes it, every move is stored with its evidence, and nothing else lifts it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.cli.parser import build_parser
from ratchet.mcp.server import ServerConfig, build_server

from .helpers import LEVELS_POLICY, connect, write_policy
from .helpers import run_cli as _cli


async def _climb_write(client: Client, n: int) -> dict[str, Any]:
    result = await client.call_tool("write_file", {"path": f"climb/f{n}.txt", "content": f"{n}\n"})
    out: dict[str, Any] = result.structured_content
    return out


def _transitions(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM transitions WHERE class = 'climb' ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.mark.asyncio
async def test_climbs_on_cli_approvals_and_a_complaint_demotes(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = build_server(ServerConfig(workspace, policies, db))
    statuses: list[str] = []
    # No elicitation in this client: confirm falls back to draft, so every approval is the CLI's.
    async with Client(server) as client:
        n = 0
        while n < 12:
            out = await _climb_write(client, n)
            statuses.append(f"{out['class_level']}:{out['status']}")
            if out["status"] == "draft":
                code, text = await _cli(capsys, workspace, policies, db, "approve", str(out["draft_id"]))
                assert code == 0, text
            n += 1
        levels = await client.call_tool("trust_levels", {})
    # min_samples 3, Wilson lower bound of 3/3 = 0.438 >= promote_at 0.4: three approvals per rung.
    assert statuses[:7] == ["draft:draft"] * 3 + ["confirm:draft"] * 3 + ["autonomous:executed"]
    assert all(s == "autonomous:executed" for s in statuses[6:])
    assert all((workspace / f"climb/f{i}.txt").read_text() == f"{i}\n" for i in range(12))
    climb = next(c for c in levels.structured_content["classes"] if c["action_class"] == "climb")
    assert climb["level"] == "autonomous" and climb["samples"] == 6

    moves = _transitions(db)
    assert [(m["from_level"], m["to_level"], m["kind"]) for m in moves] == [
        ("draft", "confirm", "promote"),
        ("confirm", "autonomous", "promote"),
    ]
    evidence = json.loads(moves[0]["evidence_json"])
    assert evidence["n"] == 3 and evidence["successes"] == 3 and evidence["lower"] >= 0.4
    assert len(evidence["action_ids"]) == 3

    # One complaint on an autonomous action demotes at once, and the move is stored with its reason.
    code, text = await _cli(capsys, workspace, policies, db, "history", "--class", "climb", "--json")
    last_action = json.loads(text)[0]["action_id"]
    code, text = await _cli(
        capsys, workspace, policies, db, "complain", str(last_action), "--reason", "broke the build"
    )
    assert code == 0 and "autonomous -> confirm" in text
    moves = _transitions(db)
    assert (moves[-1]["kind"], moves[-1]["to_level"], moves[-1]["action_id"]) == (
        "complaint",
        "confirm",
        last_action,
    )
    code, text = await _cli(capsys, workspace, policies, db, "status", "--json")
    climb = next(c for c in json.loads(text)["classes"] if c["action_class"] == "climb")
    assert climb["level"] == "confirm" and climb["samples"] == 0  # fresh evidence at the new level


@pytest.mark.asyncio
async def test_rejections_never_promote(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(6):
        # A session per draft: three rejections in one session would halt the class for it.
        async with connect(workspace, policies, db) as client:
            out = await _climb_write(client, n)
        assert out["status"] == "draft" and out["class_level"] == "draft"
        code, _ = await _cli(capsys, workspace, policies, db, "reject", str(out["draft_id"]), "--reason", "no")
        assert code == 0
    assert _transitions(db) == []
    assert not (workspace / "climb").exists()


@pytest.mark.asyncio
async def test_no_command_promotes(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert not {"promote", "raise", "trust", "set-level"} & commands
    # A pin can only hold a class down; demote only lowers and stops at the floor.
    code, text = await _cli(capsys, workspace, policies, db, "pin", "climb", "autonomous", "--reason", "try")
    assert code == 1 and "only hold it at or below" in text
    code, text = await _cli(capsys, workspace, policies, db, "demote", "climb", "--reason", "try")
    assert code == 1 and "floor" in text
    code, text = await _cli(capsys, workspace, policies, db, "demote", "auto", "--to", "draft", "--reason", "careful")
    assert code == 0 and "autonomous -> draft" in text
    code, text = await _cli(capsys, workspace, policies, db, "pin", "auto", "blocked", "--reason", "incident")
    assert code == 0
    code, text = await _cli(capsys, workspace, policies, db, "unpin", "auto", "--reason", "over")
    code, text = await _cli(capsys, workspace, policies, db, "status", "--json")
    auto = next(c for c in json.loads(text)["classes"] if c["action_class"] == "auto")
    assert auto["level"] == "draft"  # unpinning returns to the earned level, never above it


@pytest.mark.asyncio
async def test_a_reviewed_start_change_is_the_other_way_up(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "p", LEVELS_POLICY)
    code, _ = await _cli(capsys, workspace, policies, db, "init")  # creates the database under this policy
    assert code == 0
    write_policy(
        policies,
        LEVELS_POLICY.replace(
            'paths = ["queue/**"]\nstart = "draft"\nceiling = "draft"',
            'paths = ["queue/**"]\nstart = "confirm"\nceiling = "confirm"',
        ),
    )
    code, text = await _cli(capsys, workspace, policies, db, "transitions", "--class", "queue")
    assert code == 0 and " queue  draft  confirm  policy by policy " in text


@pytest.mark.asyncio
async def test_the_tool_result_tells_the_agent_when_its_class_moved(tmp_path: Path, workspace: Path, db: Path) -> None:
    from .helpers import Clock, Human

    promotable = LEVELS_POLICY.replace('start = "confirm"\nceiling = "confirm"', 'start = "confirm"')
    policies = write_policy(tmp_path / "p", promotable)
    clock = Clock()
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=Human(delay=6.0, clock=clock)) as client:
        outs = [
            (await client.call_tool("write_file", {"path": f"ask/{n}.txt", "content": "x"})).structured_content
            for n in range(4)
        ]
    assert [o["moved"] for o in outs[:2]] == [None, None]
    assert outs[2]["moved"]["from_level"] == "confirm" and outs[2]["moved"]["to_level"] == "autonomous"
    assert outs[3]["class_level"] == "autonomous" and outs[3]["status"] == "executed"


@pytest.mark.asyncio
async def test_database_location_from_the_environment(
    workspace: Path, policies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ratchet.engine import Engine

    monkeypatch.setenv("RATCHET_DB", str(tmp_path / "env.db"))
    engine = await Engine.open(workspace, policies=policies)
    await engine.close()
    assert (tmp_path / "env.db").exists() and not (workspace / ".ratchet").exists()
    monkeypatch.delenv("RATCHET_DB")
    engine = await Engine.open(workspace, policies=policies)
    await engine.close()
    assert (workspace / ".ratchet/ratchet.db").exists()


@pytest.mark.asyncio
async def test_a_pinned_class_earns_evidence_but_does_not_climb(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "climb", "draft", "--reason", "audit week")
    assert code == 0
    for n in range(4):
        async with connect(workspace, policies, db) as client:
            out = await _climb_write(client, n)
        assert out["status"] == "draft" and out["class_level"] == "draft"
        code, text = await _cli(capsys, workspace, policies, db, "approve", str(out["draft_id"]))
        assert code == 0, text
    assert [m["kind"] for m in _transitions(db)] == ["pin"]
