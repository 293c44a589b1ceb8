"""What a killed process leaves behind: an approval cut short waits in the inbox as "may have run"
until a human has checked it, and a commit preview's throwaway index is removed at the next open."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import run_ratchet, write_policy

SLOW = """
[classes.slow]
tools = ["run_command"]
argv = [["sleep"]]
start = "draft"
ceiling = "draft"
"""


def _child_pid(db: Path, action_id: int) -> int | None:
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT child_pid FROM actions WHERE id = ?", (action_id,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])
    finally:
        con.close()


async def _draft_a_long_command(workspace: Path, policies: Path, db: Path) -> int:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        drafted = await client.call_tool("run_command", {"argv": ["sleep", "60"], "timeout_s": 120})
    assert drafted.structured_content is not None and drafted.structured_content["status"] == "draft"
    return int(drafted.structured_content["draft_id"])


def test_an_approval_killed_midway_waits_in_the_inbox_as_may_have_run(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "p", SLOW)
    draft = anyio.run(_draft_a_long_command, workspace, policies, db)
    argv = [str(ratchet_bin), "approve", str(draft), "--workspace", str(workspace), "--policies", str(policies)]
    approving = subprocess.Popen([*argv, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _child_pid(db, draft) is None:  # the command has started: the approval is under way
            assert approving.poll() is None and time.monotonic() < deadline, approving.communicate()
            time.sleep(0.05)
        approving.send_signal(signal.SIGKILL)
        approving.wait(timeout=30)
    finally:
        if approving.poll() is None:
            approving.kill()
    done = run_ratchet(ratchet_bin, workspace, policies, db, "inbox", "--json")
    assert done.returncode == 0, done.stderr
    items = [i for i in json.loads(done.stdout) if i["id"] == draft]
    assert len(items) == 1 and items[0]["kind"] == "interrupted", done.stdout
    assert "may have run" in items[0]["summary"] and f"pid {_child_pid(db, draft)}" in items[0]["summary"]
    wrong = run_ratchet(ratchet_bin, workspace, policies, db, "resolve", str(draft), "--option", "approve")
    assert wrong.returncode == 1 and "checked" in wrong.stderr
    checked = run_ratchet(ratchet_bin, workspace, policies, db, "resolve", str(draft), "--option", "checked")
    assert checked.returncode == 0, checked.stderr
    after = run_ratchet(ratchet_bin, workspace, policies, db, "inbox", "--json")
    assert all(i["id"] != draft for i in json.loads(after.stdout))


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@pytest.mark.asyncio
async def test_a_killed_commit_preview_leaves_no_index_behind(workspace: Path, policies: Path, db: Path) -> None:
    base = Path(tempfile.gettempdir())
    tag = uuid.uuid4().hex[:8]
    dead = base / f"ratchet-index-{_dead_pid()}-{tag}"
    live = base / f"ratchet-index-{os.getpid()}-{tag}"
    for d in (dead, live):
        d.mkdir()
        (d / "index").write_bytes(b"DIRC")
    try:
        async with Client(build_server(ServerConfig(workspace, policies, db))):
            pass  # opening the record is the recovery step
        assert not dead.exists()
        assert (live / "index").exists()  # a preview still under way in a live process is left alone
    finally:
        for d in (dead, live):
            if d.exists():
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()
