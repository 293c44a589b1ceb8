"""Hostile sizes do not stall Ratchet: the hook answers a 1 MB command with a deny at once, and the
server keeps answering other calls while a huge one is handled."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet.claude_code.hooks import MAX_BASH_CHARS

from .helpers import connect, write_policy

POLICY = """
[defaults]
unmatched = "blocked"

[defaults.limits]
max_argv_bytes = 1048576  # the huge argv below is the point: above the 64 KiB default

[classes.runs]
tools = ["run_command"]
argv = [["true"], ["sleep"]]
start = "autonomous"
"""


def _hook(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, command: str) -> dict[str, Any]:
    event = {
        "session_id": "big",
        "transcript_path": str(workspace.parent / "t.jsonl"),
        "cwd": str(workspace),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_use_id": "toolu_big",
    }
    argv = [str(ratchet_bin), "hook", "claude-code", "--policies", str(policies), "--db", str(db)]
    done = subprocess.run(argv, input=json.dumps(event), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    decision: dict[str, Any] = json.loads(done.stdout)["hookSpecificOutput"]
    return decision


def test_hook_denies_a_megabyte_command_by_size_not_by_time(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    huge = "true " + "password=hunter2 " * (1_000_000 // 17)
    decision = _hook(ratchet_bin, workspace, policies, db, huge)
    reason = decision["permissionDecisionReason"]
    assert decision["permissionDecision"] == "deny"
    assert f"limit of {MAX_BASH_CHARS}" in reason and "did not decide" not in reason, reason
    assert "hunter2" not in reason
    # One character under the limit is decided on its merits (the class allows `true`).
    under = "true " + "x" * (MAX_BASH_CHARS - 5)
    assert _hook(ratchet_bin, workspace, policies, db, under)["permissionDecision"] == "allow"
    con = sqlite3.connect(db)
    try:
        refused = con.execute("SELECT status, error, target FROM actions WHERE status = 'refused'").fetchall()
    finally:
        con.close()
    assert len(refused) == 1 and "limit" in refused[0][1] and "hunter2" not in refused[0][2]


def test_hook_process_answers_deny_when_its_hard_deadline_passes(
    ratchet_bin: Path, workspace: Path, tmp_path: Path
) -> None:
    # A database that never frees its write lock keeps the decision waiting on SQLite's busy timeout
    # (15 s); the hook's own process deadline (here 2 s) must answer first, with a deny.
    policies = write_policy(tmp_path / "policies", POLICY)
    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = (
            "import asyncio, sys; from pathlib import Path; from ratchet.claude_code.hooks import HookOptions, "
            "claude_code_process; o = HookOptions(policies=Path(sys.argv[1]), db=Path(sys.argv[2])); "
            "print(asyncio.run(claude_code_process(sys.stdin.buffer.read(), o, hard_deadline_s=2.0)))"
        )
        event = {
            "session_id": "slow",
            "cwd": str(workspace),
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "true"},
            "tool_use_id": "toolu_slow",
        }
        started = time.monotonic()
        done = subprocess.run(
            [os.environ.get("PYTHON", str(ratchet_bin.parent / "python")), "-c", code, str(policies), str(db)],
            input=json.dumps(event),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    assert "did not decide within 2s" in decision["permissionDecisionReason"]
    assert elapsed < 15  # answered by the process deadline, not after SQLite's busy timeout


@pytest.mark.asyncio
async def test_server_answers_trust_levels_while_a_huge_call_is_handled(
    workspace: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    finished: list[str] = []
    # "password" * 20000 in two words: one word over 128 KiB is more than Linux lets exec pass.
    huge = {"argv": ["sh", "-c", "sleep 1", "password" * 10000, "password" * 10000]}
    async with connect(workspace, policies, db) as client:
        # Baseline: how long trust_levels takes on an idle server (best of a few).
        alone = []
        for _ in range(3):
            start = time.perf_counter()
            await client.call_tool("trust_levels", {})
            alone.append(time.perf_counter() - start)
        during: list[float] = []

        async def big() -> None:
            result = await client.call_tool("run_command", huge)
            assert result.structured_content["status"] == "executed", result
            finished.append("huge")

        async def levels() -> None:
            # Ask again and again while the huge call is in flight (it sleeps 1 s once it runs), so
            # some request lands while the server handles its arguments.
            while "huge" not in finished:
                start = time.perf_counter()
                result = await client.call_tool("trust_levels", {})
                during.append(time.perf_counter() - start)
                assert result.structured_content["classes"]
                finished.append("trust_levels")
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(big)
            tg.start_soon(levels)
    assert finished[0] == "trust_levels" and finished.count("trust_levels") >= 5 and "huge" in finished
    # Not a clock limit: a ratio to the same call on the idle server, in the same run. A huge call
    # handled on the event loop (the quadratic redaction took minutes) makes this ratio enormous.
    assert max(during) / min(alone) < 200, (max(during), min(alone))
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT status FROM actions WHERE tool = 'run_command'").fetchall()
    finally:
        con.close()
    assert rows == [("executed",)]
