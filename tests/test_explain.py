"""`ratchet explain`: the rule that decided an action, and the transition behind the level it was decided at."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.load import load_policy

from .helpers import LEVELS_POLICY, write
from .helpers import run_cli as cli

CLIMB_LINE = LEVELS_POLICY.splitlines().index("[classes.climb]") + 1


def _rule(policies: Path, name: str) -> str:
    """The class's `file:line` as the policy loader reports it (what the gate records)."""
    cls = load_policy(policies).get(name)
    assert cls is not None
    return cls.rule


def _transitions(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM transitions WHERE class = 'climb' ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.mark.asyncio
async def test_explain_names_the_rule_and_the_promotion_behind_the_level(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = []
    # No elicitation: every climb write is a draft the CLI approves; three approvals promote draft -> confirm.
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        for n in range(4):
            out = await write(client, f"climb/f{n}.txt", f"{n}\n")
            ids.append(out["action_id"])
            code, text = await cli(capsys, workspace, policies, db, "approve", str(out["action_id"]))
            assert code == 0, text
    promotion = _transitions(db)[0]
    assert (promotion["from_level"], promotion["to_level"], promotion["action_id"]) == ("draft", "confirm", ids[2])

    code, text = await cli(capsys, workspace, policies, db, "explain", str(ids[3]), "--json")
    assert code == 0, text
    e = json.loads(text)
    rule = _rule(policies, "climb")
    assert (e["action_class"], e["rule"]) == ("climb", rule)
    assert (e["rule_file"], str(e["rule_line"])) == tuple(rule.split(":"))
    # The class stands at confirm; this client cannot ask its human, so the call itself got a draft.
    assert (e["class_level"], e["level"], e["route"]) == ("confirm", "draft", "draft")
    source = e["level_source"]
    assert source["kind"] == "transition" and source["transition"]["id"] == promotion["id"]
    assert source["transition"]["kind"] == "promote" and source["transition"]["evidence"]["action_ids"] == ids[:3]
    assert [t["name"] for t in e["triggers"]] == ["no-elicitation"]
    assert e["review"]["decision"] == "approved" and e["review"]["reviewer"] == "cli"
    assert e["review"]["rubber_stamp"] is True  # approved within milliseconds of drafting
    assert (e["status"], e["sample"], e["complaints"], e["moves"]) == ("executed", "success", [], [])

    code, text = await cli(capsys, workspace, policies, db, "explain", str(ids[3]))
    assert code == 0
    assert f"rule {rule} " in text
    assert f"transition {promotion['id']}: draft -> confirm (promote by action {ids[2]}" in text
    assert f"window actions [{', '.join(map(str, ids[:3]))}]" in text
    assert "trigger no-elicitation" in text and "a human at the CLI" in text

    # Before the promotion the class stood at its policy start; the third approval caused the move.
    code, text = await cli(capsys, workspace, policies, db, "explain", str(ids[0]), "--json")
    assert json.loads(text)["level_source"]["kind"] == "policy-start"
    code, text = await cli(capsys, workspace, policies, db, "explain", str(ids[2]), "--json")
    assert [m["id"] for m in json.loads(text)["moves"]] == [promotion["id"]]


@pytest.mark.asyncio
async def test_explain_shows_a_complaint_and_the_demotion_it_caused(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await write(client, "auto/a.txt")
    assert out["status"] == "executed"
    code, _ = await cli(capsys, workspace, policies, db, "complain", str(out["action_id"]), "--reason", "wrong")
    assert code == 0
    code, text = await cli(capsys, workspace, policies, db, "explain", str(out["action_id"]))
    assert code == 0
    assert "the class's policy start (autonomous)" in text
    assert "ran at the class level without a human" in text
    assert "complaint 1 by human" in text and ": wrong" in text
    assert "moved:    auto autonomous -> confirm (complaint)" in text
    code, text = await cli(capsys, workspace, policies, db, "explain", "999")
    assert code == 1 and "no action 999" in text


@pytest.mark.asyncio
async def test_explain_notes_when_the_policy_has_moved_the_class(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await write(client, "auto/a.txt")
    recorded = _rule(policies, "auto")
    (policies / "policy.toml").write_text("# a comment line moves every class down one\n" + LEVELS_POLICY)
    code, text = await cli(capsys, workspace, policies, db, "explain", str(out["action_id"]), "--json")
    assert code == 0, text
    e = json.loads(text)
    assert e["rule"] == recorded  # as recorded when it was decided
    assert e["rule_now"] == f"the current policy declares auto at {_rule(policies, 'auto')}"
    assert _rule(policies, "auto") != recorded


def test_the_recorded_rule_points_at_the_class_header(policies: Path) -> None:
    assert _rule(policies, "climb") == f"policy.toml:{CLIMB_LINE}"
