"""The console script reaches the hook without importing the CLI: each hook event is its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.claude_code.events import hook_event_is_silent
from ratchet.claude_code.hooks import HookOptions, claude_code
from ratchet.entry import hook_options

PROBE = """
import sys
from ratchet.entry import main
code = main(sys.argv[1:])
print("CLI-IMPORTED" if "ratchet.cli" in sys.modules else "LEAN", file=sys.stderr)
sys.exit(code)
"""


def test_the_hook_command_lines_the_fast_path_takes() -> None:
    assert hook_options(["hook", "claude-code"]) == {}
    assert hook_options(["hook", "claude-code", "--workspace", "/p", "--db=/d.db", "--policies", "x"]) == {
        "workspace": "/p",
        "db": "/d.db",
        "policies": "x",
    }
    # Anything else goes to the full CLI, which parses and reports errors as usual.
    for other in (["hook"], ["status"], ["hook", "claude-code", "--help"], ["hook", "claude-code", "--db"]):
        assert hook_options(other) is None
    assert hook_options(["hook", "claude-code", "--db", "a", "--db", "b"]) is None


def _run(workspace: Path, event: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=workspace,
    )


def test_a_hook_event_is_answered_without_importing_the_cli(workspace: Path, policies: Path, db: Path) -> None:
    common = {"session_id": "s", "transcript_path": str(workspace / "t.jsonl"), "cwd": str(workspace)}
    args = ["hook", "claude-code", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    read = _run(workspace, {**common, "hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {}}, *args)
    assert read.returncode == 0 and read.stdout == "" and read.stderr.strip().endswith("LEAN"), read.stderr
    write = {"file_path": str(workspace / "auto/x.txt"), "content": "x\n"}
    pre = {**common, "hook_event_name": "PreToolUse", "tool_name": "Write", "tool_input": write, "tool_use_id": "t1"}
    allowed = _run(workspace, pre, *args)
    assert allowed.stderr.strip().endswith("LEAN"), allowed.stderr
    assert json.loads(allowed.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    # Another command still gets the whole CLI.
    status = _run(workspace, {}, "status", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db))
    assert status.returncode == 0 and status.stderr.strip().endswith("CLI-IMPORTED"), status.stderr


SILENT_PROBE = """
import sys
from ratchet.entry import main
code = main(sys.argv[1:])
heavy = [m for m in ("ratchet.claude_code.hooks", "asyncio", "ratchet.engine", "sqlite3") if m in sys.modules]
print("IMPORTED " + ",".join(heavy) if heavy else "NOTHING-HEAVY", file=sys.stderr)
sys.exit(code)
"""

EVENTS: list[tuple[object, bool]] = [
    ({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {}}, True),
    ({"hook_event_name": "PreToolUse", "tool_name": "mcp__ratchet__write_file", "tool_input": {}}, True),
    ({"hook_event_name": "PostToolUse", "tool_name": "Grep", "tool_input": {}}, True),
    ({"hook_event_name": "Notification", "message": "hi"}, True),
    ({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}, False),
    ({"hook_event_name": "PostToolUse", "tool_name": "Write", "tool_input": {}}, False),
    ({"hook_event_name": "Stop"}, False),
    ({"hook_event_name": "SessionEnd", "tool_name": "Read"}, False),
    ({"tool_name": "Read"}, False),  # no event name: unreadable, the hook denies
    (["PreToolUse"], False),
    ("not json at all", False),
]


def test_an_event_ratchet_ignores_is_answered_before_the_hook_module_is_imported(
    workspace: Path, policies: Path, db: Path
) -> None:
    args = ["hook", "claude-code", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    read = {"session_id": "s", "cwd": str(workspace), "hook_event_name": "PreToolUse", "tool_name": "Read"}
    done = subprocess.run(
        [sys.executable, "-c", SILENT_PROBE, *args],
        input=json.dumps(read),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=workspace,
    )
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert done.stderr.strip().endswith("NOTHING-HEAVY"), done.stderr
    assert not db.exists()  # nothing opened, nothing recorded


@pytest.mark.asyncio
async def test_the_lean_path_is_silent_exactly_where_the_hook_would_say_nothing(
    workspace: Path, policies: Path, db: Path
) -> None:
    options = HookOptions(workspace=workspace, policies=policies, db=db)
    common = {"session_id": "lean", "transcript_path": str(workspace / "t.jsonl"), "cwd": str(workspace)}
    for event, silent in EVENTS:
        raw = (json.dumps({**common, **event}) if isinstance(event, dict) else json.dumps(event)).encode()
        if event == "not json at all":
            raw = b"not json at all"
        assert hook_event_is_silent(raw) is silent, event
        if silent:  # the full hook agrees: no answer
            assert await claude_code(raw, options) == "", event
    assert hook_event_is_silent(b"\xff\xfe") is False  # not UTF-8: the hook denies it
    assert hook_event_is_silent(b"") is False
