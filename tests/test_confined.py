"""executors/confined.py on its own: what a `Confinement` leaves out is off (the network, the sandbox never
dropped unasked), a command stopped midway leaves no protected path behind, and neither the confinement
nor what a run reports can be changed after the fact. Real bubblewrap, real processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from ratchet.errors import InvalidRequest
from ratchet.executors.confined import ConfinedRun, Confinement, run_confined
from ratchet.executors.sandbox import sandbox_status
from ratchet.executors.sandbox_reuse import REUSE_ENV
from ratchet.policy.model import DEFAULT_ENV_ALLOW


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    if not sandbox_status().available:
        pytest.fail("bubblewrap is required for this test (apt-get install bubblewrap)")
    ws = tmp_path / "ws"
    (ws / ".ratchet").mkdir(parents=True)
    return ws


def confinement(ws: Path, **more: object) -> Confinement:
    return Confinement(ws, (ws / ".ratchet",), DEFAULT_ENV_ALLOW, 64_000, **more)  # type: ignore[arg-type]


async def run(argv: list[str], confined: Confinement) -> ConfinedRun:
    return await run_confined(argv, confined, cwd=confined.workspace, timeout_s=60, extra_env={})


@pytest.mark.asyncio
async def test_a_confinement_that_names_no_network_has_none(ws: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
        off = await run(["python3", "-c", dial], confinement(ws))
        on = await run(["python3", "-c", dial], confinement(ws, network=True))
    assert off.sandboxed and off.result.exit_code != 0 and "connected" not in off.result.stdout
    assert on.sandboxed and on.result.exit_code == 0 and "connected" in on.result.stdout, on.result.stderr


@pytest.mark.asyncio
async def test_the_sandbox_is_dropped_only_when_the_confinement_says_so(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    write = ["python3", "-c", f"open({str(outside)!r}, 'w').write('x')"]
    boxed = await run(write, confinement(ws))
    assert boxed.sandboxed and not outside.exists()  # at most it wrote the sandbox's private /tmp
    bare = await run(write, confinement(ws, sandbox=False))
    assert not bare.sandboxed and bare.result.exit_code == 0 and outside.read_text() == "x"


@pytest.mark.asyncio
@pytest.mark.parametrize("reuse", ["on", "off"])
async def test_a_command_cancelled_midway_leaves_no_protected_path_it_created(
    ws: Path, reuse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path that must not appear (here a read-only one that is missing) and that the command created
    is removed even when the run ends by cancellation rather than by the command's exit, in a reused
    sandbox's cell and in a sandbox of its own."""
    monkeypatch.setenv(REUSE_ENV, reuse)
    planted = ws / "guarded.toml"
    confined = confinement(ws, read_only=(planted,), never_create=(planted,))
    script = f"open({str(planted)!r}, 'w').write('x'); import time; time.sleep(60)"
    seen = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, ["python3", "-c", script], confined)
        for _ in range(1200):  # up to a minute for the command to start under load
            seen = planted.exists()
            if seen:
                break
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert seen and not planted.exists()


@pytest.mark.asyncio
async def test_a_run_and_its_confinement_cannot_be_changed_after_the_fact(ws: Path) -> None:
    confined = confinement(ws)
    done = await run(["true"], confined)
    with pytest.raises(dataclasses.FrozenInstanceError):
        confined.network = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.planted = []  # type: ignore[misc]


DIES_WITH = """
import anyio, sys
from pathlib import Path
from ratchet.errors import InvalidRequest
from ratchet.executors.confined import Confinement, run_confined

async def main() -> None:
    async def spawned(pid: int) -> None:
        print(pid, flush=True)
    ws = Path(sys.argv[1])
    confined = Confinement(ws, (), ("PATH",), 4096, sandbox=False)
    await run_confined(["sleep", "120"], confined, cwd=ws, timeout_s=120, extra_env={}, on_spawn=spawned)

anyio.run(main)
"""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_an_unsandboxed_command_dies_with_the_process_that_ran_it(ws: Path) -> None:
    """Without bubblewrap's --die-with-parent, the run asks for a parent-death signal itself: a server
    killed outright (kill -9) leaves no command running on."""
    parent = subprocess.Popen([sys.executable, "-c", DIES_WITH, str(ws)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        assert not gone(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(pid), "the command outlived the process that ran it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.asyncio
@pytest.mark.parametrize("reuse", ["on", "off"])
async def test_a_command_runs_exactly_once(ws: Path, reuse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a reused sandbox's cell or in a sandbox of its own, a command runs once, and its result is that run's."""
    monkeypatch.setenv(REUSE_ENV, reuse)
    done = await run(["sh", "-c", "echo run >> runs.txt; echo out"], confinement(ws))
    assert done.sandboxed and done.result.exit_code == 0 and done.result.stdout == "out\n"
    assert (ws / "runs.txt").read_text() == "run\n"


@pytest.mark.asyncio
async def test_a_repository_that_defines_hooks_is_refused_with_its_own_error(ws: Path) -> None:
    """The refusal comes as itself (InvalidRequest naming the hook), not wrapped in a task group's error."""
    await anyio.run_process(["git", "init", "-q", str(ws)])
    await anyio.run_process(["git", "-C", str(ws), "config", "hook.planted.command", "touch pwned"])
    with pytest.raises(InvalidRequest, match="hook"):
        await run(["true"], confinement(ws))
    assert not (ws / "pwned").exists()
