"""Evidence goes to the class that decided: when a side effect (a file the command also writes) stands
lower than the command's own class, the human's answer and the outcome are that file class's samples;
otherwise they are the command class's."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human, write_policy

POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2

[classes.docs]
tools = ["write_file", "edit_file"]
paths = ["docs/**"]
start = "confirm"
ceiling = "confirm"

[classes.notes]
tools = ["write_file", "edit_file"]
paths = ["notes/**"]
start = "autonomous"

[classes.reads]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"
allow_shell = true

[classes.printf-run]
tools = ["run_command"]
argv = [["printf"]]
start = "confirm"
ceiling = "confirm"
allow_shell = true
"""


def _windows(client_result: Any) -> dict[str, int]:
    return {c["action_class"]: c["samples"] for c in client_result.structured_content["classes"]}


def _evidence(db: Path) -> list[tuple[str, str | None, str | None]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT class, evidence_class, sample FROM actions ORDER BY id").fetchall()
        return [(str(r[0]), r[1], r[2]) for r in rows]
    finally:
        con.close()


@pytest.mark.asyncio
async def test_a_redirect_into_a_lower_file_class_is_evidence_for_the_file_class(
    workspace: Path, tmp_path: Path, db: Path, clock: Clock
) -> None:
    (workspace / "docs").mkdir()
    policies = write_policy(tmp_path / "p", POLICY)
    yes = Human(approve=True, delay=30, clock=clock)  # a human who reads the change
    async with Client(
        build_server(ServerConfig(workspace, policies, db, clock=clock)), elicitation_callback=yes
    ) as client:
        before = _windows(await client.call_tool("trust_levels", {}))
        ran = await client.call_tool("run_command", {"command": "echo hi > docs/x.md"})
        assert ran.structured_content is not None and ran.structured_content["status"] == "executed"
        after = _windows(await client.call_tool("trust_levels", {}))
    assert len(yes.seen) == 1  # it was put to the human: docs stands at confirm
    assert (workspace / "docs/x.md").read_text() == "hi\n"
    assert after["docs"] == before["docs"] + 1 and after["reads"] == before["reads"]
    assert _evidence(db) == [("reads", "docs", "success")]


@pytest.mark.asyncio
async def test_when_the_command_class_stands_lower_it_keeps_the_evidence(
    workspace: Path, tmp_path: Path, db: Path, clock: Clock
) -> None:
    (workspace / "notes").mkdir()
    policies = write_policy(tmp_path / "p", POLICY)
    no = Human(approve=False, delay=30, clock=clock)  # read it, then said no
    async with Client(
        build_server(ServerConfig(workspace, policies, db, clock=clock)), elicitation_callback=no
    ) as client:
        before = _windows(await client.call_tool("trust_levels", {}))
        declined = await client.call_tool("run_command", {"command": "printf hi > notes/x.md"})
        assert declined.structured_content is not None and declined.structured_content["status"] == "declined"
        after = _windows(await client.call_tool("trust_levels", {}))
    assert after["printf-run"] == before["printf-run"] + 1 and after["notes"] == before["notes"]
    assert _evidence(db) == [("printf-run", None, "failure")]


@pytest.mark.asyncio
async def test_the_confirm_forms_first_three_lines_name_the_file_and_the_size_of_the_change(
    workspace: Path, tmp_path: Path, db: Path, clock: Clock
) -> None:
    """Claude Code shows only the first three lines of a form's message: they must say what changes."""
    (workspace / "docs").mkdir()
    (workspace / "docs/a.md").write_text("one\ntwo\n")
    policies = write_policy(tmp_path / "p", POLICY)
    yes = Human(approve=True, delay=30, clock=clock)
    async with Client(build_server(ServerConfig(workspace, policies, db, clock=clock)), elicitation_callback=yes) as c:
        await c.call_tool("write_file", {"path": "docs/new.md", "content": "a\nb\nc\n"})
        await c.call_tool("write_file", {"path": "docs/a.md", "content": "one\n2\n"})
    new, changed = (params.message.splitlines()[:3] for params in yes.seen)
    assert new[0] == "Ratchet: write_file docs/new.md: +3 \u22120 lines, new file"
    assert changed[0] == "Ratchet: write_file docs/a.md: +1 \u22121 lines"
    assert all("class docs is at confirm" in lines[1] for lines in (new, changed))


@pytest.mark.asyncio
async def test_an_unanswered_redirect_is_counted_for_the_class_that_decided(
    workspace: Path, tmp_path: Path, db: Path
) -> None:
    """Codex headless declines at once: no answer, queued as a draft, shown under the file's class."""
    (workspace / "docs").mkdir()
    policies = write_policy(tmp_path / "p", POLICY)
    at_once = Human(action="decline")
    async with Client(build_server(ServerConfig(workspace, policies, db)), elicitation_callback=at_once) as client:
        queued = await client.call_tool("run_command", {"command": "echo hi > docs/x.md"})
        levels = await client.call_tool("trust_levels", {})
    assert queued.structured_content is not None and queued.structured_content["status"] == "draft"
    assert levels.structured_content is not None
    unanswered = {c["action_class"]: c["unanswered"] for c in levels.structured_content["classes"]}
    assert (unanswered["docs"], unanswered["reads"]) == (1, 0)
    assert not (workspace / "docs/x.md").exists()
