"""The console script reaches the hook without importing the CLI: each hook event is its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
