"""Every level through a real MCP client, in-process, on both protocol styles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human

MODES = ["auto", "legacy"]  # 2026-07-28 (input_required round trips) and 2025-11-25 (elicitation/create)


def _server(workspace: Path, policies: Path, db: Path) -> Any:
    return build_server(ServerConfig(workspace, policies, db))


async def _write(client: Client, path: str, content: str = "new\n", **extra: Any) -> Any:
    return await client.call_tool("write_file", {"path": path, "content": content, **extra})


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_autonomous_runs_at_once(workspace: Path, policies: Path, db: Path, mode: str) -> None:
    human = Human()
    async with Client(_server(workspace, policies, db), mode=mode, elicitation_callback=human) as client:
        result = await _write(client, "auto/a.txt", "hello\n")
    assert result.structured_content["status"] == "executed"
    assert result.structured_content["action_class"] == "auto"
    assert (workspace / "auto/a.txt").read_text() == "hello\n"
    assert human.seen == []


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_confirm_shows_the_diff_and_runs_on_accept(workspace: Path, policies: Path, db: Path, mode: str) -> None:
    (workspace / "ask").mkdir()
    (workspace / "ask/notes.txt").write_text("old line\n")
    human = Human(approve=True)
    async with Client(_server(workspace, policies, db), mode=mode, elicitation_callback=human) as client:
        result = await _write(client, "ask/notes.txt", "new line\n")
    assert result.structured_content["status"] == "executed"
    assert (workspace / "ask/notes.txt").read_text() == "new line\n"
    assert len(human.seen) == 1
    message = human.seen[0].message
    assert "-old line" in message and "+new line" in message and "ask/notes.txt" in message
    # The form stays within the spec's requested-schema shape (no top-level title/description).
    assert set(human.seen[0].requested_schema) <= {"type", "properties", "required"}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_confirm_declined_changes_nothing(
    workspace: Path, policies: Path, db: Path, mode: str, clock: Clock
) -> None:
    (workspace / "ask").mkdir()
    (workspace / "ask/notes.txt").write_text("old line\n")
    human = Human(approve=False, delay=8.0, clock=clock)  # read it, then said no: Apply unticked
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, mode=mode, elicitation_callback=human) as client:
        result = await _write(client, "ask/notes.txt", "new line\n")
        draft_list = await client.call_tool("trust_levels", {})
    assert result.structured_content["status"] == "declined"
    assert (workspace / "ask/notes.txt").read_text() == "old line\n"
    ask = next(c for c in draft_list.structured_content["classes"] if c["action_class"] == "ask")
    assert ask["samples"] == 1 and ask["successes"] == 0  # a decline is evidence against the class


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["cancel", "decline"])
async def test_decline_and_esc_both_mean_not_now(
    workspace: Path, policies: Path, db: Path, clock: Clock, action: str
) -> None:
    """Decline and Esc mean the same in every Ratchet form: nothing runs, nothing is judged, and the
    change waits as a draft; even after a human's reading time."""
    human = Human(action=action, delay=8.0, clock=clock)
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as client:
        result = await _write(client, "ask/n.txt")
        levels = await client.call_tool("trust_levels", {})
    assert result.structured_content["status"] == "draft"
    assert not (workspace / "ask/n.txt").exists()
    ask = next(c for c in levels.structured_content["classes"] if c["action_class"] == "ask")
    assert ask["samples"] == 0 and ask["unanswered"] == 1


@pytest.mark.asyncio
async def test_confirm_without_elicitation_falls_back_to_draft(workspace: Path, policies: Path, db: Path) -> None:
    async with Client(_server(workspace, policies, db)) as client:  # no callback: no elicitation capability
        result = await _write(client, "ask/n.txt")
    out = result.structured_content
    assert out["status"] == "draft" and out["draft_id"] == out["action_id"]
    assert [t["name"] for t in out["triggers"]] == ["no-elicitation"]
    assert not (workspace / "ask/n.txt").exists()


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_draft_is_queued_and_the_agent_goes_on(workspace: Path, policies: Path, db: Path, mode: str) -> None:
    human = Human()
    async with Client(_server(workspace, policies, db), mode=mode, elicitation_callback=human) as client:
        result = await _write(client, "queue/q.txt", "drafted\n", intent="add q")
        draft_id = result.structured_content["draft_id"]
        view = await client.call_tool("get_draft", {"draft_id": draft_id})
        other = await _write(client, "auto/b.txt")
    assert result.structured_content["status"] == "draft"
    assert "+drafted" in result.structured_content["preview"]
    assert view.structured_content["status"] == "draft" and view.structured_content["intent"] == "add q"
    assert other.structured_content["status"] == "executed"
    assert not (workspace / "queue/q.txt").exists()
    assert human.seen == []


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_blocked_refuses_with_a_packet(workspace: Path, policies: Path, db: Path, mode: str) -> None:
    async with Client(_server(workspace, policies, db), mode=mode, elicitation_callback=Human()) as client:
        await _write(client, "auto/first.txt")
        result = await _write(client, "stop/s.txt", "token=abcd1234secret\n", intent="store the token")
    out = result.structured_content
    assert out["status"] == "blocked" and not result.is_error
    packet = out["packet"]
    assert packet["action"]["action_class"] == "stop" and packet["action"]["level"] == "blocked"
    assert [h["target"] for h in packet["history"]] == ["auto/first.txt"]
    assert {o["name"] for o in packet["options"]} >= {"take-over", "approach"}
    assert "abcd1234secret" not in str(packet) and "[REDACTED]" in packet["draft"]
    assert "### Stopped" in result.content[0].text
    assert not (workspace / "stop/s.txt").exists()


@pytest.mark.asyncio
async def test_edit_file_runs_exact_literal_edits(workspace: Path, policies: Path, db: Path) -> None:
    (workspace / "auto").mkdir()
    (workspace / "auto/c.py").write_text("x = 1\ny = 1\n")
    async with Client(_server(workspace, policies, db)) as client:
        ok = await client.call_tool(
            "edit_file", {"path": "auto/c.py", "edits": [{"old_text": "x = 1", "new_text": "x = r'\\1'"}]}
        )
        ambiguous = await client.call_tool(
            "edit_file", {"path": "auto/c.py", "edits": [{"old_text": "= ", "new_text": "= 2"}]}
        )
    assert ok.structured_content["status"] == "executed"
    assert (workspace / "auto/c.py").read_text() == "x = r'\\1'\ny = 1\n"
    assert ambiguous.is_error and "count" in ambiguous.content[0].text
    assert (workspace / "auto/c.py").read_text() == "x = r'\\1'\ny = 1\n"


@pytest.mark.asyncio
async def test_low_confidence_lowers_the_level_for_one_call(workspace: Path, policies: Path, db: Path) -> None:
    async with Client(_server(workspace, policies, db)) as client:
        low = await _write(client, "auto/low.txt", confidence=0.3)
        mid = await _write(client, "auto/mid.txt", confidence=0.6)
        flagged = await _write(client, "auto/flag.txt", confidence=0.8)
        sure = await _write(client, "auto/sure.txt", confidence=0.95)
    assert low.structured_content["status"] == "blocked"
    assert mid.structured_content["status"] == "draft"  # confirm, and this client cannot elicit
    assert flagged.structured_content["status"] == "executed" and flagged.structured_content["flagged"]
    assert sure.structured_content["status"] == "executed" and not sure.structured_content["flagged"]
    assert sorted(p.name for p in (workspace / "auto").iterdir()) == ["flag.txt", "sure.txt"]


@pytest.mark.asyncio
async def test_repeated_failures_halt_the_class_for_the_session(
    workspace: Path, policies: Path, db: Path, clock: Clock
) -> None:
    human = Human(approve=False, delay=10.0, clock=clock)  # read, then said no
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as client:
        statuses = [(await _write(client, f"ask/{i}.txt")).structured_content for i in range(4)]
    # Default max_consecutive_failures is 3: three declines, then the class halts for this session.
    assert [s["status"] for s in statuses] == ["declined", "declined", "declined", "blocked"]
    assert statuses[3]["triggers"][0]["name"] == "repeated-failure"
    assert len(human.seen) == 3
    # A new session starts clean: drift within a session is not persistence.
    async with Client(_server(workspace, policies, db), elicitation_callback=Human()) as client:
        fresh = await _write(client, "ask/again.txt")
    assert fresh.structured_content["status"] == "executed"
