"""The human's brakes hold: pin at blocked, freeze and unfreeze, a complaint at the floor, one complaint
per action. Each through the real CLI on the same database and the real MCP client."""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.engine import Engine
from ratchet.errors import InvalidRequest
from ratchet.policy.levels import Level

from .helpers import HOOK_POLICY, LEVELS_POLICY, Claude, connect, write_policy
from .helpers import run_cli as _cli

SOURCE = Path(__file__).resolve().parents[1] / "server" / "ratchet"
# Names that hold a level (or an optional one) in this code base.
LEVELISH = re.compile(r"(^|_)(level|levels|pinned|pin|floor|ceiling|to|earned|frozen)$")


async def _write(client: Client, path: str, content: str = "x\n") -> dict[str, Any]:
    result = await client.call_tool("write_file", {"path": path, "content": content})
    out: dict[str, Any] = result.structured_content
    return out


async def _status(capsys: pytest.CaptureFixture[str], workspace: Path, policies: Path, db: Path) -> dict[str, Any]:
    code, text = await _cli(capsys, workspace, policies, db, "status", "--json")
    assert code == 0, text
    data: dict[str, Any] = json.loads(text)
    return data


def _cls(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["classes"] if c["action_class"] == name)
    return found


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# -- the falsy level ----------------------------------------------------------------------------------


def test_every_level_is_true_blocked_included() -> None:
    assert all(bool(level) for level in Level)
    fallback = Level.AUTONOMOUS
    assert (Level.BLOCKED or fallback) is Level.BLOCKED  # `or` would otherwise lose a blocked pin
    assert Level.BLOCKED == 0 and Level.BLOCKED < Level.DRAFT  # still ordered like the ladder


def test_no_truth_test_on_a_level_in_the_source() -> None:
    """`if level:` / `level or x` / `not pinned` on anything named like a level: compare with `is None`."""
    offending = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            tests: list[ast.expr] = []
            if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
                tests.append(node.test)
            elif isinstance(node, ast.BoolOp):
                tests.extend(node.values)
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                tests.append(node.operand)
            elif isinstance(node, ast.comprehension):
                tests.extend(node.ifs)
            for test in tests:
                name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
                if LEVELISH.search(name.lower()):
                    offending.append(f"{path.relative_to(SOURCE)}:{test.lineno}: {ast.unparse(test)}")
    assert offending == []


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scanner above is not vacuous: the very bug it guards against is found."""
    tree = ast.parse("x = (level or current).label\nif pinned:\n    pass\ny = None if not to else 1\n")
    found = []
    for node in ast.walk(tree):
        values = node.values if isinstance(node, ast.BoolOp) else []
        values += [node.test] if isinstance(node, ast.If) else []
        values += [node.operand] if isinstance(node, ast.UnaryOp) else []
        found += [v.id for v in values if isinstance(v, ast.Name) and LEVELISH.search(v.id)]
    assert sorted(found) == ["level", "pinned", "to"]


# -- pin blocked ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pin_blocked_blocks_the_next_call_and_status_shows_it(
    server: Client, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await _write(server, "auto/a.txt"))["status"] == "executed"
    code, text = await _cli(capsys, workspace, policies, db, "pin", "auto", "blocked", "--reason", "incident")
    assert code == 0 and "auto: autonomous -> blocked (pin: incident)" in text
    out = await _write(server, "auto/b.txt")
    assert out["status"] == "blocked" and out["level"] == "blocked"
    assert [t["name"] for t in out["triggers"]] == ["pinned"]
    assert not (workspace / "auto/b.txt").exists()
    auto = _cls(await _status(capsys, workspace, policies, db), "auto")
    assert auto["pinned"] == "blocked" and auto["level"] == "blocked" and auto["would"] == "block"
    assert auto["earned_level"] == "autonomous"
    code, text = await _cli(capsys, workspace, policies, db, "status")
    assert re.search(r"\nauto\s+blocked\s+blocked\s+block\s", text), text  # level, pinned, a call would
    pins = _rows(db, "SELECT kind, to_level FROM transitions WHERE class = 'auto'")
    assert [(r["kind"], r["to_level"]) for r in pins] == [("pin", "blocked")]


@pytest.mark.asyncio
async def test_unpin_after_a_blocked_pin_returns_to_the_earned_level(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "auto", "blocked", "--reason", "incident")
    assert code == 0
    code, text = await _cli(capsys, workspace, policies, db, "unpin", "auto", "--reason", "over")
    assert code == 0 and "auto: blocked -> autonomous (unpin: over)" in text
    async with connect(workspace, policies, db) as client:
        assert (await _write(client, "auto/a.txt"))["status"] == "executed"
    code, text = await _cli(capsys, workspace, policies, db, "unpin", "auto", "--reason", "again")
    assert code == 1 and "not pinned" in text


# -- freeze --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_freeze_caps_every_class_and_unfreeze_restores_earned_levels(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "climb", "blocked", "--reason", "held")
    assert code == 0
    code, text = await _cli(capsys, workspace, policies, db, "freeze", "--level", "draft", "--reason", "incident")
    assert code == 0, text
    assert "*: autonomous -> draft (freeze: incident)" in text
    assert "auto: autonomous -> draft (freeze: incident)" in text
    assert "ask: confirm -> draft (freeze: incident)" in text
    assert "queue:" not in text and "climb:" not in text  # already at or below draft: no change, no row

    status = await _status(capsys, workspace, policies, db)
    assert status["freeze"] is not None and "froze every class at draft" in status["freeze"]
    assert {c["action_class"]: c["level"] for c in status["classes"]} == {
        "ask": "draft",
        "auto": "draft",
        "climb": "blocked",
        "queue": "draft",
        "stop": "blocked",
        "unclassified": "draft",
    }
    assert _cls(status, "auto")["earned_level"] == "autonomous"
    code, text = await _cli(capsys, workspace, policies, db, "status")
    assert "FROZEN: a human froze every class at draft: incident" in text

    async with connect(workspace, policies, db) as client:
        out = await _write(client, "auto/a.txt")
        assert out["status"] == "draft" and out["class_level"] == "autonomous"
        assert [t["name"] for t in out["triggers"]] == ["freeze"]
        assert not (workspace / "auto/a.txt").exists()
        code, text = await _cli(capsys, workspace, policies, db, "unfreeze", "--reason", "resolved")
        assert code == 0, text
        assert "auto: draft -> autonomous (unfreeze: resolved)" in text
        assert "climb:" not in text  # its pin still holds it: unfreeze never lifts above that
        out = await _write(client, "auto/b.txt")
    assert out["status"] == "executed" and (workspace / "auto/b.txt").exists()
    status = await _status(capsys, workspace, policies, db)
    assert status["freeze"] is None
    assert _cls(status, "climb")["level"] == "blocked" and _cls(status, "ask")["level"] == "confirm"
    kinds = [r["kind"] for r in _rows(db, "SELECT kind FROM transitions WHERE class = 'auto' ORDER BY id")]
    assert kinds == ["freeze", "unfreeze"]
    code, text = await _cli(capsys, workspace, policies, db, "unfreeze", "--reason", "twice")
    assert code == 1 and "nothing is frozen" in text


@pytest.mark.asyncio
async def test_freeze_refuses_bad_input_with_what_was_expected(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("freeze", "--level", "draft", "--reason", "r", "--until")
    code, text = await _cli(capsys, workspace, policies, db, *base, "soon")
    assert code == 1 and "cannot read --until 'soon'" in text and "90m, 2h" in text
    code, text = await _cli(capsys, workspace, policies, db, *base, "2001-01-01T00:00")
    assert code == 1 and "not in the future" in text
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        with pytest.raises(InvalidRequest, match="a freeze at autonomous caps nothing; expected blocked, draft"):
            await engine.freeze(Level.AUTONOMOUS, "r", None)
    finally:
        await engine.close()
    assert _rows(db, "SELECT * FROM transitions") == []
    code, text = await _cli(capsys, workspace, policies, db, *base, "2h")
    assert code == 0 and "*: autonomous -> draft" in text
    until = json.loads(_rows(db, "SELECT evidence_json FROM transitions WHERE class = '*'")[0][0])["until"]
    assert 7000 < until - time.time() <= 7200


@pytest.mark.asyncio
async def test_a_freeze_with_until_lifts_by_itself(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        await engine.freeze(Level.BLOCKED, "a short one", time.time() + 1.0)
    finally:
        await engine.close()
    async with connect(workspace, policies, db) as client:
        out = await _write(client, "auto/a.txt")
        assert out["status"] == "blocked" and out["triggers"][0]["name"] == "freeze"
        until = json.loads(_rows(db, "SELECT evidence_json FROM transitions WHERE class = '*'")[0][0])["until"]
        await anyio.sleep(max(0.0, until - time.time()) + 0.1)
        out = await _write(client, "auto/b.txt")
    assert out["status"] == "executed"
    status = await _status(capsys, workspace, policies, db)
    assert status["freeze"] is None
    lifted = _rows(db, "SELECT actor, reason FROM transitions WHERE class = '*' AND kind = 'unfreeze'")
    assert len(lifted) == 1 and lifted[0]["actor"] == "ratchet" and "expired" in lifted[0]["reason"]


# -- complaints ----------------------------------------------------------------------------------------


FLOORED = (
    LEVELS_POLICY
    + """
[classes.floored]
tools = ["write_file", "edit_file"]
paths = ["floored/**"]
start = "autonomous"
floor = "autonomous"
"""
)


@pytest.mark.asyncio
async def test_a_complaint_at_the_floor_is_a_failure_sample(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "p", FLOORED)
    async with connect(workspace, policies, db) as client:
        first = await _write(client, "floored/a.txt")
        second = await _write(client, "floored/b.txt")
    assert first["status"] == second["status"] == "executed"
    before = _cls(await _status(capsys, workspace, policies, db), "floored")
    assert (before["samples"], before["successes"]) == (2, 2)
    code, text = await _cli(capsys, workspace, policies, db, "complain", str(first["action_id"]), "--reason", "bad")
    assert code == 0, text
    assert "its sample now counts as a failure in class floored's window" in text
    after = _cls(await _status(capsys, workspace, policies, db), "floored")
    assert (after["samples"], after["successes"], after["level"]) == (2, 1, "autonomous")
    window = json.loads(_rows(db, "SELECT window_json FROM class_state WHERE name = 'floored'")[0][0])
    assert window == [[first["action_id"], 0], [second["action_id"], 1]]


@pytest.mark.asyncio
async def test_a_complaint_at_the_floor_on_an_action_outside_the_window_adds_a_failure(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `auto` (floor draft) drops to draft; its earlier action's sample belongs to the old level's window.
    async with connect(workspace, policies, db) as client:
        old = await _write(client, "auto/a.txt")
    code, _ = await _cli(capsys, workspace, policies, db, "demote", "auto", "--to", "draft", "--reason", "r")
    assert code == 0
    code, text = await _cli(capsys, workspace, policies, db, "complain", str(old["action_id"]), "--reason", "bad")
    assert code == 0 and "counts as a failure" in text
    auto = _cls(await _status(capsys, workspace, policies, db), "auto")
    assert (auto["samples"], auto["successes"], auto["level"]) == (1, 0, "draft")


@pytest.mark.asyncio
async def test_a_second_complaint_on_one_action_is_refused(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as client:
        out = await _write(client, "auto/a.txt")
    aid = str(out["action_id"])
    code, text = await _cli(capsys, workspace, policies, db, "complain", aid, "--reason", "wrong")
    assert code == 0 and "auto: autonomous -> confirm (complaint" in text
    code, text = await _cli(capsys, workspace, policies, db, "complain", aid, "--reason", "still wrong")
    assert code == 1
    assert re.search(rf"action {aid} already has a complaint \(recorded \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\)", text)
    assert len(_rows(db, "SELECT * FROM complaints WHERE action_id = ?", (int(aid),))) == 1
    assert _cls(await _status(capsys, workspace, policies, db), "auto")["level"] == "confirm"  # one rung, once


@pytest.mark.asyncio
async def test_two_complaints_at_once_on_one_action_record_one(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as client:
        out = await _write(client, "auto/a.txt")
    engines = [await Engine.open(workspace, policies=policies, db=db, session=False) for _ in range(2)]
    results: list[str] = []

    async def complain(engine: Engine) -> None:
        try:
            await engine.complain(out["action_id"], "wrong")
            results.append("recorded")
        except InvalidRequest as exc:
            results.append(str(exc))

    try:
        async with anyio.create_task_group() as tg:
            for engine in engines:
                tg.start_soon(complain, engine)
    finally:
        for engine in engines:
            await engine.close()
    assert sorted(results)[-1] == "recorded" and "already has a complaint" in sorted(results)[0]
    assert len(_rows(db, "SELECT * FROM complaints")) == 1
    assert len(_rows(db, "SELECT * FROM transitions WHERE kind = 'complaint'")) == 1


def test_pin_blocked_and_freeze_hold_through_the_claude_code_hook(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path
) -> None:
    """The same brakes on a client's own Bash, through the real `ratchet hook claude-code` process."""
    claude = Claude(ratchet_bin, workspace, write_policy(tmp_path / "hp", HOOK_POLICY), db)
    first, _ = claude.bash("echo one")
    assert first is not None and first["permissionDecision"] == "allow"
    done = claude.cli("pin", "echo-run", "blocked", "--reason", "incident")
    assert done.returncode == 0, done.stderr
    denied, _ = claude.bash("echo two")
    assert denied is not None and denied["permissionDecision"] == "deny"
    assert "pinned" in denied["permissionDecisionReason"]
    assert claude.cli("unpin", "echo-run", "--reason", "over").returncode == 0
    assert claude.cli("freeze", "--level", "draft", "--reason", "week").returncode == 0
    drafted, _ = claude.bash("echo three")
    assert drafted is not None and drafted["permissionDecision"] == "deny"
    assert "queued this as draft" in drafted["permissionDecisionReason"]
    assert claude.cli("unfreeze", "--reason", "done").returncode == 0
    last, _ = claude.bash("echo four")
    assert last is not None and last["permissionDecision"] == "allow"
