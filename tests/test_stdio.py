"""`ratchet serve` as a real subprocess over stdio: every level, and a crash mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .helpers import Human, Stdio, free_port, ratchet_argv, run_ratchet, stdio_params


@pytest.mark.asyncio
async def test_every_level_over_stdio(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    (workspace / "ask").mkdir()
    (workspace / "ask/keep.txt").write_text("keep\n")
    results: dict[str, Any] = {}
    # The "no" comes after a real pause (2 s + 0.25 s per changed line): an instant one would be no answer.
    yes, no = Human(approve=True), Human(approve=False, delay=3.0)
    async with Client(stdio_params(ratchet_bin, workspace, policies, db), elicitation_callback=yes) as client:
        for path in ("auto/a.txt", "ask/yes.txt", "queue/q.txt", "stop/s.txt"):
            results[path] = (await client.call_tool("write_file", {"path": path, "content": "x\n"})).structured_content
    async with Client(stdio_params(ratchet_bin, workspace, policies, db), elicitation_callback=no) as client:
        declined = await client.call_tool("write_file", {"path": "ask/keep.txt", "content": "changed\n"})
    assert {p: r["status"] for p, r in results.items()} == {
        "auto/a.txt": "executed",
        "ask/yes.txt": "executed",
        "queue/q.txt": "draft",
        "stop/s.txt": "blocked",
    }
    assert declined.structured_content["status"] == "declined"
    assert (workspace / "auto/a.txt").read_text() == "x\n" and (workspace / "ask/yes.txt").read_text() == "x\n"
    assert not (workspace / "queue/q.txt").exists() and not (workspace / "stop/s.txt").exists()
    assert (workspace / "ask/keep.txt").read_text() == "keep\n"
    assert len(yes.seen) == 1 and len(no.seen) == 1

    draft = str(results["queue/q.txt"]["draft_id"])
    approved = await anyio.run_process(
        ratchet_argv(ratchet_bin, workspace, policies, db, "approve", draft), check=False
    )
    assert approved.returncode == 0, approved.stderr.decode()
    assert (workspace / "queue/q.txt").read_text() == "x\n"


def test_killed_mid_write_leaves_an_interrupted_record_and_no_partial_file(
    ratchet_bin: Path, tmp_path: Path, workspace: Path, policies: Path, db: Path
) -> None:
    (workspace / "auto").mkdir()
    target = workspace / "auto/big.txt"
    target.write_text("the old content\n")
    hold = tmp_path / "hold"
    hold.mkdir()
    # The server, with its writes holding before the rename (a seam of the tests alone: tests/hold_write.py).
    argv = ratchet_argv(ratchet_bin, workspace, policies, db, "serve")[1:]
    held = [sys.executable, str(Path(__file__).parent / "hold_write.py"), str(hold), *argv]
    with Stdio(held, stderr=subprocess.DEVNULL) as server:
        server.initialize(client="crash")
        server.call(2, "write_file", {"path": "auto/big.txt", "content": "new " * 100_000})
        deadline = time.monotonic() + 30
        while not (hold / "held").exists():
            assert time.monotonic() < deadline, "the server never reached the write"
            time.sleep(0.02)
        temp = Path((hold / "held").read_text().strip())
        assert temp.exists() and temp.parent == target.parent  # staged beside the target, not yet renamed
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
    assert target.read_text() == "the old content\n"

    shown = run_ratchet(ratchet_bin, workspace, policies, db, "history", "--json")
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["status"] == "interrupted" and row["target"] == "auto/big.txt"
    assert "ended before the outcome was recorded" in row["error"]
    assert not temp.exists()  # recovery removed the staged temp file
    assert target.read_text() == "the old content\n"


def test_serve_refuses_a_broken_policy_before_speaking_mcp(ratchet_bin: Path, tmp_path: Path, workspace: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "team.toml").write_text('[classes.docs]\ntools = ["write_file"]\npaths = ["docs/**"]\nstart = "sometimes"\n')
    done = subprocess.run(
        [str(ratchet_bin), "serve", "--workspace", str(workspace), "--policies", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "team.toml: classes.docs.start" in done.stderr and "unknown level 'sometimes'" in done.stderr
    assert not (workspace / ".ratchet").exists()  # nothing was created half-configured


@pytest.mark.asyncio
async def test_http_on_loopback(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    port = free_port()
    argv = [str(ratchet_bin), "serve", "--http", "--port", str(port), "--workspace", str(workspace)]
    # A long-running server for the whole test: Popen, not a blocking run (noqa below says so).
    proc = subprocess.Popen([*argv, "--policies", str(policies), "--db", str(db)], stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        deadline = time.monotonic() + 30
        token_file = db.parent / (db.name + ".http-token")  # generated on first use; every request needs it
        while True:
            try:
                headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
                async with (
                    httpx2.AsyncClient(headers=headers) as http,
                    Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
                ):
                    result = await client.call_tool("write_file", {"path": "auto/h.txt", "content": "via http\n"})
                break
            except Exception:
                assert time.monotonic() < deadline and proc.poll() is None, "the HTTP server never answered"
                await anyio.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert result.structured_content["status"] == "executed"
    assert (workspace / "auto/h.txt").read_text() == "via http\n"


def test_init_writes_the_starter_policies_and_keeps_the_database_out_of_git(ratchet_bin: Path, workspace: Path) -> None:
    done = subprocess.run(
        [str(ratchet_bin), "init", "--workspace", str(workspace)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (workspace / ".ratchet/policies/files.toml").exists()
    assert "ratchet.db*" in (workspace / ".ratchet/.gitignore").read_text()
    linted = subprocess.run(
        [str(ratchet_bin), "lint", "--workspace", str(workspace)], capture_output=True, text=True, timeout=60
    )
    assert linted.returncode == 0 and ".ratchet/policies: ok" in linted.stdout
    again = subprocess.run(
        [str(ratchet_bin), "init", "--workspace", str(workspace)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1 and "already exists" in again.stderr
