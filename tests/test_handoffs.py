"""Handoffs worth a human's minute: packets, agent handoffs, run contracts, one inbox, notification."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet.cli import main

from .helpers import LEVELS_POLICY, connect, run_cli, write_policy

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def _db_text(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return "\n".join(
            str(row) for table in ("actions", "transitions") for row in con.execute(f"SELECT * FROM {table}")
        )
    finally:
        con.close()


@pytest.mark.asyncio
async def test_a_stopped_action_carries_history_draft_triggers_options_and_no_secret(
    workspace: Path, policies: Path, db: Path
) -> None:
    async with connect(workspace, policies, db) as client:
        await client.call_tool("write_file", {"path": "auto/one.txt", "content": "1\n"})
        await client.call_tool("write_file", {"path": "queue/two.txt", "content": "2\n"})
        result = await client.call_tool(
            "write_file",
            {
                "path": "auto/three.txt",
                "content": f"token = {SECRET}\n",
                "confidence": 0.2,
                "intent": "configure the deploy token",
                "uncertainty": "whether the token belongs in the repo",
            },
        )
    out = result.structured_content
    packet = out["packet"]
    assert out["status"] == "blocked"
    assert [h["target"] for h in packet["history"]] == ["auto/one.txt", "queue/two.txt"]
    assert [h["status"] for h in packet["history"]] == ["executed", "draft"]
    assert packet["flags"][0]["name"] == "confidence" and "+token = [REDACTED]" in packet["draft"]
    assert packet["uncertainty"] == "whether the token belongs in the repo"
    assert 2 <= len(packet["options"]) <= 3 and sum(o["recommended"] for o in packet["options"]) == 1
    assert packet["cost_of_delay"]["queued_behind"] == 1
    text = result.content[0].text
    assert "### Stopped" in text and "**Unsure about:**" in text and "(recommended)" in text
    assert SECRET not in json.dumps(out) and SECRET not in text
    assert SECRET not in _db_text(db)


@pytest.mark.asyncio
async def test_request_handoff_needs_context_and_the_answer_reaches_the_agent(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as client:
        thin = await client.call_tool("request_handoff", {"what_tried": "", "uncertainty": "?", "options": []})
        assert thin.is_error
        for missing in ("what_tried", "uncertainty", "options"):
            assert missing in thin.content[0].text
        asked = await client.call_tool(
            "request_handoff",
            {
                "what_tried": "ran the migration on a copy; two rows lost their owner",
                "uncertainty": "whether orphaned rows should be deleted or reassigned",
                "options": ["delete orphans", "reassign to admin"],
                "recommended": "reassign to admin",
                "task": "migrate the users table",
            },
        )
        handoff_id = asked.structured_content["id"]
        code, text = await run_cli(capsys, workspace, policies, db, "inbox")
        assert code == 0 and re.search(rf"{handoff_id}  handoff .* BLOCKING agent asks: whether orphaned rows", text)
        code, text = await run_cli(capsys, workspace, policies, db, "show", str(handoff_id))
        assert "tried: ran the migration" in text and "reassign to admin (recommended)" in text

        async def answer() -> None:
            await anyio.sleep(0.5)
            code, text = await run_cli(
                capsys,
                workspace,
                policies,
                db,
                "resolve",
                str(handoff_id),
                "--option",
                "delete orphans",
                "--note",
                "they are test data",
            )
            assert code == 0, text

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            waited = await client.call_tool("get_handoff", {"handoff_id": handoff_id, "wait_s": 20})
    view = waited.structured_content
    assert view["resolved"] and view["resolution"] == "delete orphans" and view["note"] == "they are test data"
    code, text = await run_cli(
        capsys, workspace, policies, db, "resolve", str(handoff_id), "--option", "delete orphans"
    )
    assert code == 1 and "already resolved" in text
    code, text = await run_cli(capsys, workspace, policies, db, "inbox")
    assert "inbox empty" in text


@pytest.mark.asyncio
async def test_scope_and_budget_of_a_run_contract(workspace: Path, policies: Path, db: Path) -> None:
    async with connect(workspace, policies, db) as client:
        refused = await client.call_tool("start_task", {"goal": "", "scope": {}, "budget": {}})
        assert refused.is_error and "goal" in refused.content[0].text and "budget" in refused.content[0].text
        started = await client.call_tool(
            "start_task",
            {
                "goal": "fix the typo in auto/a.txt",
                "scope": {"paths": ["auto/a.txt", "auto/b.txt"]},
                "budget": {"actions": 3},
                "non_goals": ["refactoring"],
            },
        )
        assert started.structured_content["task_id"] >= 1
        inside = await client.call_tool("write_file", {"path": "auto/a.txt", "content": "a\n"})
        outside = await client.call_tool("write_file", {"path": "auto/c.txt", "content": "c\n"})
        third = await client.call_tool("write_file", {"path": "auto/b.txt", "content": "b\n"})
        exhausted = await client.call_tool("write_file", {"path": "auto/b.txt", "content": "b2\n"})
        ended = await client.call_tool("end_task", {"summary": "typo fixed"})
        after = await client.call_tool("write_file", {"path": "auto/c.txt", "content": "c\n"})
    assert inside.structured_content["status"] == "executed"
    out = outside.structured_content
    assert out["status"] == "blocked" and out["triggers"][0]["name"] == "out-of-scope"
    assert "auto/c.txt outside task" in out["triggers"][0]["detail"]
    assert out["packet"]["task"] == "fix the typo in auto/a.txt"
    assert "extend" in {o["name"] for o in out["packet"]["options"]}
    assert third.structured_content["status"] == "executed"
    assert exhausted.structured_content["status"] == "blocked"
    assert exhausted.structured_content["triggers"][0]["name"] == "budget-exhausted"
    assert ended.structured_content["actions_used"] == 4
    assert after.structured_content["status"] == "executed"
    assert (workspace / "auto/b.txt").read_text() == "b\n"


@pytest.mark.asyncio
async def test_novelty_drops_one_rung_until_the_class_has_seen_it(tmp_path: Path, workspace: Path, db: Path) -> None:
    policies = write_policy(
        tmp_path / "p",
        LEVELS_POLICY.replace(
            'paths = ["auto/**"]\nstart = "autonomous"', 'paths = ["auto/**"]\nstart = "autonomous"\nnovelty = true'
        ),
    )
    async with connect(workspace, policies, db) as client:
        first = await client.call_tool("write_file", {"path": "auto/n.txt", "content": "1\n"})
    # Autonomous -> confirm for a path never seen; this client cannot confirm, so it drafts.
    assert first.structured_content["status"] == "draft"
    assert [t["name"] for t in first.structured_content["triggers"]] == ["novelty", "no-elicitation"]
    code = await anyio.to_thread.run_sync(
        main,
        [
            "approve",
            str(first.structured_content["draft_id"]),
            "--workspace",
            str(workspace),
            "--policies",
            str(policies),
            "--db",
            str(db),
        ],
    )
    assert code == 0
    async with connect(workspace, policies, db) as client:
        again = await client.call_tool("write_file", {"path": "auto/n.txt", "content": "2\n"})
    assert again.structured_content["status"] == "executed"


@pytest.mark.asyncio
async def test_escalations_are_counted_per_session_and_class(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as client:
        for n in range(3):
            await client.call_tool("write_file", {"path": f"auto/{n}.txt", "content": "x"})
        await client.call_tool("write_file", {"path": "stop/x.txt", "content": "x"})
        await client.call_tool("write_file", {"path": "auto/low.txt", "content": "x", "confidence": 0.1})
    _, text = await run_cli(capsys, workspace, policies, db, "escalations", "--json")
    stats = {s["action_class"]: s for s in json.loads(text)}
    assert (stats["auto"]["actions"], stats["auto"]["escalations"]) == (4, 1)
    assert stats["auto"]["rate"] == 0.25
    assert (stats["stop"]["actions"], stats["stop"]["escalations"], stats["stop"]["rate"]) == (1, 1, 1.0)


def _notify_policy(tmp_path: Path, argv: list[str]) -> Path:
    text = LEVELS_POLICY.replace("[defaults]\n", f"[defaults]\nnotify = {json.dumps(argv)}\n")
    return write_policy(tmp_path / "np", text)


@pytest.mark.asyncio
async def test_the_notify_command_gets_the_packet_and_its_failure_never_blocks(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    sink = tmp_path / "notified.json"
    script = f"import sys, pathlib; pathlib.Path({str(sink)!r}).write_text(sys.stdin.read())"
    policies = _notify_policy(tmp_path, [sys.executable, "-c", script])
    async with connect(workspace, policies, db) as client:
        await client.call_tool("write_file", {"path": "stop/x.txt", "content": "x"})
    with anyio.fail_after(10):
        while not sink.exists() or not sink.read_text():  # noqa: ASYNC110 (another process writes the file)
            await anyio.sleep(0.05)
    payload: dict[str, Any] = json.loads(sink.read_text())
    assert payload["status"] == "blocked" and payload["packet"]["action"]["target"] == "stop/x.txt"

    broken = _notify_policy(tmp_path / "b", [str(tmp_path / "no-such-notifier")])
    async with connect(workspace, broken, tmp_path / "b.db") as client:
        result = await client.call_tool("write_file", {"path": "stop/y.txt", "content": "y"})
    assert result.structured_content["status"] == "blocked"
