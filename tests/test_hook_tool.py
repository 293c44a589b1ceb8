"""The `mcp_tool` hook path: Ratchet's server answers Claude Code's hook events with the same decisions
as the command hook, and only Claude Code's hook may use it. (The real client: test_claude_code_real.py.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import Implementation

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import HOOK_POLICY, write_policy

CLAUDE_CODE = Implementation(name="claude-code", version="2.1.337")


def _event(ws: Path, rel: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "hook_event_name": "PreToolUse",
        "session_id": "s1",
        "transcript_path": "${transcript_path}",  # a field the client had nothing for: its placeholder
        "cwd": str(ws),
        "permission_mode": "default",
        "tool_name": "Write",
        "tool_input": {"file_path": str(ws / rel), "content": "x\n"},
        "tool_use_id": f"toolu_{n}",
        **fields,
    }


def _rows(db: Path) -> list[tuple[str, str, str | None]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return [tuple(r) for r in con.execute("SELECT class, status, external_id FROM actions ORDER BY id")]
    finally:
        con.close()


@pytest.fixture
def setup(tmp_path: Path, workspace: Path, db: Path) -> tuple[Path, Path, Path]:
    for d in ("auto", "ask", "queue", "stop"):
        (workspace / d).mkdir()
    return workspace, write_policy(tmp_path / "policies", HOOK_POLICY), db


@pytest.mark.asyncio
async def test_claude_codes_hook_gets_the_command_hooks_decisions(setup: tuple[Path, Path, Path]) -> None:
    ws, policies, db = setup
    async with Client(build_server(ServerConfig(ws, policies, db)), client_info=CLAUDE_CODE) as client:
        answers = {}
        for n, rel in enumerate(("auto/a.md", "ask/a.md", "queue/a.md", "stop/a.md")):
            result = await client.call_tool("claude_code_hook", _event(ws, rel, n))
            assert not result.is_error and result.content[0].type == "text"
            answers[rel] = json.loads(result.content[0].text)["hookSpecificOutput"]["permissionDecision"]
        # The outcome of the allowed call settles it; an event for a tool Ratchet does not govern gets {}.
        ran = await client.call_tool(
            "claude_code_hook", _event(ws, "auto/a.md", 0, hook_event_name="PostToolUse", tool_response={})
        )
        other = await client.call_tool("claude_code_hook", _event(ws, "x", 9, tool_name="Read"))
    assert answers == {"auto/a.md": "allow", "ask/a.md": "ask", "queue/a.md": "deny", "stop/a.md": "deny"}
    assert ran.content[0].type == "text" and ran.content[0].text == "{}"
    assert other.content[0].type == "text" and other.content[0].text == "{}"
    assert _rows(db) == [
        ("auto", "executed", "toolu_0"),
        ("ask", "asked", "toolu_1"),
        ("queue", "draft", "toolu_2"),
        ("stop", "blocked", "toolu_3"),
    ]


@pytest.mark.asyncio
async def test_only_claude_codes_hook_may_call_it(setup: tuple[Path, Path, Path]) -> None:
    """The agent's own call (Claude Code marks it with the model's tool-use id) and any other client are
    refused: nothing decided, nothing recorded, so a forged event has no call to settle."""
    ws, policies, db = setup
    async with Client(build_server(ServerConfig(ws, policies, db)), client_info=CLAUDE_CODE) as client:
        by_model = await client.call_tool(
            "claude_code_hook", _event(ws, "auto/f.md", 1), meta={"claudecode/toolUseId": "toolu_model"}
        )
        with_progress = await client.call_tool(
            "claude_code_hook", _event(ws, "auto/p.md", 3), meta={"progressToken": 7}
        )  # a model's call asks for progress; a hook's never does
    assert with_progress.is_error
    async with Client(build_server(ServerConfig(ws, policies, db))) as other:  # another client (not Claude Code)
        by_other = await other.call_tool("claude_code_hook", _event(ws, "auto/g.md", 2))
    for result, why in ((by_model, "called by the agent"), (by_other, "not Claude Code")):
        assert result.is_error and result.content[0].type == "text"
        assert why in result.content[0].text and "nothing was decided or recorded" in result.content[0].text
    assert _rows(db) == []


@pytest.mark.asyncio
async def test_a_stop_through_the_hook_tool_settles_a_declined_ask(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The settling events reach the server's own database (here not the workspace's default one)."""
    ws, policies, db = setup
    transcript = tmp_path / "t.jsonl"
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "The user said no."}
    transcript.write_text(json.dumps({"type": "user", "message": {"role": "user", "content": [block]}}) + "\n")
    async with Client(build_server(ServerConfig(ws, policies, db)), client_info=CLAUDE_CODE) as client:
        asked = await client.call_tool("claude_code_hook", _event(ws, "ask/a.md", 1))
        assert asked.content[0].type == "text" and '"ask"' in asked.content[0].text
        stop = {"hook_event_name": "Stop", "session_id": "s1", "transcript_path": str(transcript), "cwd": str(ws)}
        await client.call_tool("claude_code_hook", stop)
    assert _rows(db) == [("ask", "declined", "toolu_1")]
