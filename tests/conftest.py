"""Shared fixtures: a real workspace directory, a policy directory written for the test, a real SQLite
file, and servers connected to the MCP SDK's real `Client` on them. What the fixtures are built from
(the policies, the played human, the clock, git set-up) is in `helpers.py`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from mcp import Client

from .helpers import (
    HOOK_POLICY,
    LEVELS_POLICY,
    PG_APT,
    RUN_ENV,
    Clock,
    Elicitor,
    PgCluster,
    connect,
    left_behind,
    make_repo,
    postgres_bindir,
    write_policy,
)

MakeServer = Callable[..., Client]

# Hook processes decide in their own process unless a test starts the resident hook server itself.
os.environ.setdefault("RATCHET_HOOK_SERVER", "off")


@pytest.fixture(scope="session", autouse=True)
def no_ratchet_process_left_behind() -> Iterator[None]:
    """After the last test, no Ratchet process this run started may still run: a test that leaves one
    (a resident hook server, a `ratchet serve`, a `ratchet web`) fails the run, naming it; it is ended
    then, so the next run starts clean."""
    marker, since = uuid.uuid4().hex, time.time()
    os.environ[RUN_ENV] = marker
    yield
    left = left_behind(marker, since, sys.executable)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        named = "; ".join(f"pid {pid}: {argv}" for pid, argv in left)
        pytest.fail(f"the test suite left {len(left)} Ratchet process(es) running: {named}", pytrace=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace directory (inside its own parent, so outside paths are real too)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A policy directory holding LEVELS_POLICY, outside the workspace."""
    return write_policy(tmp_path / "policies", LEVELS_POLICY)


@pytest.fixture
def hook_policies(tmp_path: Path) -> Path:
    """A policy directory holding HOOK_POLICY, outside the workspace."""
    return write_policy(tmp_path / "hook-policies", HOOK_POLICY)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The trust database path, outside the workspace."""
    return tmp_path / "state" / "ratchet.db"


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock for timing the human's answers."""
    return Clock()


@pytest.fixture
def ratchet_bin() -> Path:
    """The installed console script."""
    return Path(sys.executable).parent / "ratchet"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """Where `git_workspace` pushes: a bare repository beside the workspace."""
    return tmp_path / "remote.git"


@pytest.fixture
def git_workspace(workspace: Path, remote: Path) -> Path:
    """`workspace` made a git repository on main with one commit, pushed to the bare `remote` as origin."""
    return make_repo(workspace, remote, identity=("Agent Test", "agent@example.invalid"))


@pytest.fixture
def make_server(workspace: Path, policies: Path, db: Path) -> MakeServer:
    """Builds an MCP `Client` (enter it with `async with`) on a server in this process, on `workspace` and
    the database `db`, with `policies` unless another directory is given, `human` at the client's dialog
    and `clock` timing the answers. Call it again for a restarted server on the same record."""

    def make(
        policies: Path | None = policies,
        *,
        human: Elicitor | None = None,
        clock: Callable[[], float] | None = None,
        mode: str = "auto",
        workspace: Path = workspace,
        db: Path = db,
    ) -> Client:
        return connect(workspace, policies, db, human=human, clock=clock, mode=mode)

    return make


@pytest_asyncio.fixture
async def server(git_workspace: Path, make_server: MakeServer) -> AsyncIterator[Client]:
    """A connected `Client` on a fresh workspace that is a git repository (with a bare remote), the
    `policies` fixture's LEVELS_POLICY, a real SQLite file and no human at the dialog.

    The client is held open by a task of its own: its task group must be entered and left by one task,
    and a fixture's set-up and tear-down run in different ones.
    """
    ready, done = asyncio.Event(), asyncio.Event()
    client = make_server()

    async def hold() -> None:
        async with client:
            ready.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({holder, started}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        started.cancel()
        await holder  # raises why the client could not connect
    try:
        yield client
    finally:
        done.set()
        await holder


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One real PostgreSQL server on loopback for the whole run. Without PostgreSQL installed the tests
    that need it are skipped on a developer's machine and fail in CI (`$CI` set): nothing is skipped there."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        message = f"PostgreSQL is not installed ({PG_APT})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PgCluster(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh, empty PostgreSQL database of the session's cluster: its URL."""
    return pg_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A `--db` value for each backend: an SQLite file (outside the workspace), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "ratchet.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()
