"""`ratchet serve` over stdio as a real subprocess ends promptly on SIGINT and SIGTERM with nothing lost:
a call that was running is recorded as interrupted (its process group killed), a call that finished
stays recorded as it finished, and the database is closed cleanly (SQLite removes the WAL file only
when the last connection closes properly). `wait(timeout=20)` is a hang detector, not a timing assertion."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import LEVELS_POLICY, Stdio, free_port, ratchet_argv, write_policy

SLEEP = "37.25"  # an argument no other process on the machine is likely to run `sleep` with
POLICY = (
    LEVELS_POLICY
    + """
[classes.sleep-run]
tools = ["run_command"]
argv = [["sleep"]]
start = "autonomous"
"""
)


def _serve(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> Stdio:
    """`ratchet serve` in its own process, past the initialize handshake."""
    server = Stdio(ratchet_argv(ratchet_bin, workspace, policies, db, "serve"))
    server.initialize(0, client="signals")
    return server


def _rows(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM actions ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []  # created, not yet migrated
    finally:
        con.close()


def _sleepers() -> list[int]:
    """Pids of `sleep SLEEP` processes still alive."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", SLEEP.encode()] or (
            len(argv) > 1 and argv[0].endswith(b"/sleep") and argv[1] == SLEEP.encode()
        ):
            found.append(int(proc.name))
    return found


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `exc` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_running_command_is_recorded_as_interrupted_and_the_database_closed(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path, signum: int, code: int
) -> None:
    policies = write_policy(tmp_path / "signal-policies", POLICY)
    server = _serve(ratchet_bin, workspace, policies, db)
    try:
        server.call(1, "run_command", {"argv": ["sleep", SLEEP], "timeout_s": 120})
        deadline = time.monotonic() + 60
        while not (db.exists() and any(r["status"] == "running" for r in _rows(db)) and _sleepers()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        exit_code, stderr = server.stop(signum)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
    assert exit_code == code, stderr
    assert f"{signal.Signals(signum).name} received" in stderr
    (row,) = _rows(db)
    assert (row["tool"], row["status"]) == ("run_command", "interrupted")
    assert row["finished_at"] is not None and "cancelled" in row["error"]
    assert row["pid"] == server.proc.pid  # recorded by the server itself, not by a later recovery
    assert not Path(f"{db}-wal").exists(), "the database was not closed cleanly"
    deadline = time.monotonic() + 20
    while _sleepers():  # the command's process group was killed with it
        assert time.monotonic() < deadline, f"sleep {SLEEP} outlived the server"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_finished_call_stays_recorded_and_the_server_exits(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path, signum: int, code: int
) -> None:
    policies = write_policy(tmp_path / "signal-policies", POLICY)
    server = _serve(ratchet_bin, workspace, policies, db)
    try:
        server.call(1, "write_file", {"path": "auto/done.txt", "content": "done\n"})
        answer = json.loads(server.line())
        assert answer["id"] == 1 and answer["result"]["structuredContent"]["status"] == "executed"
        exit_code, stderr = server.stop(signum)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
    assert exit_code == code, stderr
    (row,) = _rows(db)
    assert (row["status"], row["sample"]) == ("executed", "success")
    assert (workspace / "auto/done.txt").read_text() == "done\n"
    assert not Path(f"{db}-wal").exists(), "the database was not closed cleanly"


def test_stdin_closing_still_ends_the_server_normally(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    server = _serve(ratchet_bin, workspace, policies, db)
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    try:
        assert server.proc.wait(timeout=20) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
    assert not Path(f"{db}-wal").exists()


@pytest.mark.asyncio
async def test_over_http_sigterm_records_the_running_call_and_closes_the_database(
    ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path
) -> None:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    policies = write_policy(tmp_path / "signal-policies", POLICY)
    port = free_port()
    argv = [str(ratchet_bin), "serve", "--http", "--port", str(port), "--workspace", str(workspace)]
    log = tmp_path / "http.log"
    with log.open("w") as err:
        proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running server for the whole test
            [*argv, "--policies", str(policies), "--db", str(db)], stdin=subprocess.DEVNULL, stderr=err
        )
    failures: list[BaseException] = []
    finished = anyio.Event()

    async def call() -> None:
        token_file = db.parent / (db.name + ".http-token")
        deadline = time.monotonic() + 60
        while not token_file.exists():
            assert time.monotonic() < deadline, log.read_text()
            await anyio.sleep(0.1)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        try:
            while True:
                try:
                    async with (
                        httpx2.AsyncClient(headers=headers, timeout=120) as http,
                        Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
                    ):
                        await client.call_tool("run_command", {"argv": ["sleep", SLEEP], "timeout_s": 120})
                    return  # an answer to a call the server was stopped in the middle of: the asserts below fail
                except Exception as exc:
                    if db.exists() and _rows(db):
                        failures.append(exc)  # the server went away mid-call: checked below, not swallowed
                        return
                    # Before the call was recorded, only a server not yet listening is waited for.
                    if not all(isinstance(leaf, httpx2.TransportError) for leaf in _leaves(exc)):
                        raise
                    assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                    await anyio.sleep(0.2)
        finally:
            finished.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            deadline = time.monotonic() + 60
            while not (db.exists() and any(r["status"] == "running" for r in _rows(db)) and _sleepers()):
                assert time.monotonic() < deadline, "the command never started"
                await anyio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20))
            with anyio.fail_after(20):  # the client hears that its call ended with the server
                await finished.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The call failed, and for the reason expected: the server's error for the interrupted call or the
    # connection it closed, never an assertion or any other error of the client's own.
    assert len(failures) == 1, failures
    leaves = _leaves(failures[0])
    assert leaves and all(isinstance(leaf, (MCPError, httpx2.TransportError)) for leaf in leaves), leaves
    assert code in (-signal.SIGTERM, 128 + signal.SIGTERM), log.read_text()  # uvicorn re-raises the signal
    (row,) = _rows(db)
    assert (row["tool"], row["status"]) == ("run_command", "interrupted"), log.read_text()
    assert row["pid"] == proc.pid and "cancelled" in row["error"]
    assert not Path(f"{db}-wal").exists(), "the database was not closed cleanly"
