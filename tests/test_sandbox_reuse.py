"""The reused sandbox, tried as a hostile command would: one bubblewrap per plan serves many commands,
yet nothing one command leaves (a file in `/tmp`, `/dev/shm` or a runtime directory, a process in the
background, a listening socket) reaches the next or a command running beside it; a command can neither
signal nor trace what runs it; a timeout kills every process it started; a plan that changed gets a
sandbox of its own; and the runner dies with the server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import pytest

from ratchet.errors import ExecutionFailed
from ratchet.executors import sandbox_reuse
from ratchet.executors.confined import ConfinedRun, Confinement, run_confined
from ratchet.executors.sandbox import runtime_dirs, sandbox_status
from ratchet.executors.sandbox_reuse import REUSE_ENV, close_runners, runner_pids

from .helpers import Stdio, make_repo, ratchet_argv, write_policy

ANYTHING = """
[defaults.commands]
timeout_s = 30

[classes.anything]
tools = ["run_command"]
start = "autonomous"
floor = "autonomous"
allow_shell = true
"""


@pytest.fixture(autouse=True)
def _reused() -> Iterator[None]:
    # Not a skip: CI installs bubblewrap, and a host without it must fail loudly here.
    status = sandbox_status()
    assert status.available, f"these tests need the sandbox: {status.detail}"
    close_runners()
    yield
    close_runners()


def _running_with(arg: str) -> list[int]:
    """Live host processes (not unreaped zombies) with `arg` in their argv."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if arg.encode() in argv and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _confinement(workspace: Path, state: Path, *, read_only: Sequence[Path] = ()) -> Confinement:
    return Confinement(
        workspace, [state / "r.db"], ["PATH", "HOME"], 64_000, read_only=read_only, never_create=read_only
    )


async def _sh(confinement: Confinement, script: str, *, timeout_s: float = 30) -> ConfinedRun:
    ran = await run_confined(
        ["sh", "-c", script], confinement, cwd=confinement.workspace, timeout_s=timeout_s, extra_env={}
    )
    assert ran.sandboxed
    return ran


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    state = tmp_path / "state"
    state.mkdir()
    return workspace, state


@pytest.mark.asyncio
async def test_what_a_command_leaves_in_tmp_dev_shm_or_a_runtime_directory_is_gone_for_the_next(
    layout: tuple[Path, Path],
) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    places = ["/tmp", "/dev/shm", *(str(path) for path in runtime_dirs())]
    leave = "; ".join(f"echo left > {place}/left.txt && echo WROTE {place}" for place in places)
    first = await _sh(confinement, leave)
    assert first.result.exit_code == 0, first.result.stderr
    assert first.result.stdout.count("WROTE") == len(places)  # each was writable, so each was tried
    (runner,) = runner_pids()
    look = "; ".join(f"if [ -e {place}/left.txt ]; then echo SEEN {place}; fi" for place in places)
    second = await _sh(confinement, f"{look}; echo looked")
    assert second.result.stdout == "looked\n", second.result.stdout
    assert runner_pids() == [runner], "the second command ran in the same reused sandbox"


@pytest.mark.asyncio
async def test_no_process_of_a_command_runs_once_its_call_has_returned(layout: tuple[Path, Path]) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    marker = f"{500 + os.getpid() % 97}.{os.getpid()}"  # an argv no other process has
    # In the command's group, in a session of its own, and a double-forked daemon; all ignoring SIGTERM.
    script = (
        f"trap '' TERM; sleep {marker} & setsid sleep {marker} & "
        f"(setsid sh -c 'trap \"\" TERM; sleep {marker}' &) ; echo started"
    )
    for _ in range(3):
        ran = await _sh(confinement, script)
        assert ran.result.exit_code == 0 and ran.result.stdout == "started\n"
        assert _running_with(marker) == [], "a process of the command outlived its call"
    seen = await _sh(confinement, "for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done")
    assert marker not in seen.result.stdout
    assert len(runner_pids()) == 1


@pytest.mark.asyncio
async def test_a_timeout_kills_every_process_the_command_started(layout: tuple[Path, Path]) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    marker = f"{600 + os.getpid() % 97}.{os.getpid()}"
    script = f"trap '' TERM; sleep {marker} & setsid sleep {marker} & (setsid sleep {marker} &); sleep {marker}"
    started = time.monotonic()
    ran = await _sh(confinement, script, timeout_s=1)
    assert ran.result.timed_out and ran.result.exit_code is None
    assert time.monotonic() - started < 10
    assert _running_with(marker) == [], "a process of the timed-out command survived"
    after = await _sh(confinement, "echo still-serving")
    assert after.result.stdout == "still-serving\n" and len(runner_pids()) == 1


PROBE_RUNNER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
out = []
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGKILL):
    try:
        os.kill(1, sig)
        out.append(f"sent {sig.name}")
    except OSError as exc:
        out.append(f"refused {sig.name}")
out.append("ptrace " + ("ATTACHED" if libc.ptrace(16, 1, 0, 0) == 0 else "refused"))
for name in ("environ", "mem"):
    try:
        open(f"/proc/1/{name}", "rb").read(1)
        out.append(f"READ {name}")
    except OSError:
        out.append(f"refused {name}")
taken = []  # the cell's descriptors (its socket to the server among them): neither named nor opened
for fd in range(64):
    for attempt in (os.readlink, lambda path: os.close(os.open(path, os.O_RDONLY))):
        try:
            attempt(f"/proc/1/fd/{fd}")
            taken.append(fd)
        except OSError:
            pass
out.append(f"fd {'READ ' + str(taken) if taken else 'refused'}")
status = open("/proc/1/status").read()
out.append("pid1 " + [line for line in status.splitlines() if line.startswith("CapEff")][0].split()[1])
mine = {os.getpid(), 1}
others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine]
out.append(f"others {len(others)}")
try:
    os.kill(-1, signal.SIGKILL)  # everything this command may signal, but itself
except OSError:
    pass
print("\n".join(out))
"""


@pytest.mark.asyncio
async def test_a_command_cannot_signal_trace_or_read_what_runs_it(layout: tuple[Path, Path]) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    ran = await run_confined(
        [sys.executable, "-c", PROBE_RUNNER], confinement, cwd=workspace, timeout_s=30, extra_env={}
    )
    assert ran.sandboxed and ran.result.exit_code == 0, ran.result.stderr
    lines = ran.result.stdout.splitlines()
    assert "ptrace refused" in lines, lines
    assert {"refused environ", "fd refused", "refused mem"} <= set(lines), lines
    assert "pid1 0000000000000000" in lines, "the cell that started the command holds no capability"
    assert "others 0" in lines, "a command sees only its own processes and the cell's first one"
    (runner,) = runner_pids()
    # The cell ignored every signal (it reported the status), and the runner still serves.
    again = await _sh(confinement, "echo served")
    assert again.result.stdout == "served\n" and runner_pids() == [runner]


LISTEN = r"""
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1]); s.listen()
port = socket.socket(); port.bind(("127.0.0.1", int(sys.argv[2]))); port.listen()
print("listening", flush=True)
time.sleep(4)
"""

CONNECT = r"""
import socket, sys, time
time.sleep(1)
for address, family in (("\0" + sys.argv[1], socket.AF_UNIX), (("127.0.0.1", int(sys.argv[2])), socket.AF_INET)):
    try:
        socket.socket(family, socket.SOCK_STREAM).connect(address)
        print("CONNECTED", family.name)
    except OSError:
        print("refused", family.name)
"""


@pytest.mark.asyncio
async def test_commands_running_side_by_side_share_no_network_namespace(layout: tuple[Path, Path]) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    name, port = f"ratchet-reuse-{uuid.uuid4().hex}", str(20000 + os.getpid() % 20000)
    results: dict[str, ConfinedRun] = {}

    async def run(key: str, code: str) -> None:
        argv = [sys.executable, "-c", code, name, port]
        results[key] = await run_confined(argv, confinement, cwd=workspace, timeout_s=30, extra_env={})

    async with anyio.create_task_group() as group:
        group.start_soon(run, "listen", LISTEN)
        group.start_soon(run, "connect", CONNECT)
    assert results["listen"].result.stdout == "listening\n", results["listen"].result.stderr
    assert results["connect"].result.stdout == "refused AF_UNIX\nrefused AF_INET\n", results["connect"].result
    assert len(runner_pids()) == 1, "both ran in the one reused sandbox"


@pytest.mark.asyncio
async def test_a_protected_path_that_appears_between_commands_is_read_only_for_the_next(
    layout: tuple[Path, Path],
) -> None:
    workspace, state = layout
    guarded = workspace / ".mcp.json"
    confinement = _confinement(workspace, state, read_only=[guarded])
    first = await _sh(confinement, "echo first")
    assert first.result.stdout == "first\n"
    guarded.write_text("{}\n")  # created outside the sandbox (by a person, or a write the gate allowed)
    second = await _sh(confinement, "echo '{\"evil\": 1}' > .mcp.json && echo WROTE || echo denied")
    assert second.result.stdout.strip() == "denied" and guarded.read_text() == "{}\n"
    assert len(runner_pids()) == 2, "the changed plan got a sandbox of its own"


@pytest.mark.asyncio
@pytest.mark.parametrize("inode", ["as-found", "same-number"])
async def test_a_directory_replaced_on_the_host_between_commands_is_seen_anew(
    layout: tuple[Path, Path], inode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, state = layout
    if inode == "same-number":  # the new directory often gets the old one's inode number: always, here
        monkeypatch.setattr(sandbox_reuse, "_identities", lambda options: ())
    confinement = _confinement(workspace, state)
    first = await _sh(confinement, "ls -A .ratchet; echo listed")
    assert first.result.stdout == "listed\n"
    (runner,) = runner_pids()
    await _sh(confinement, "true")  # a cell prepared ahead, before the directory is replaced
    # Replaced outside the sandbox: another directory at the same path (often with the same inode
    # number). The kernel detaches the sandbox's read-only bind on the removed one.
    shutil.rmtree(workspace / ".ratchet")
    (workspace / ".ratchet").mkdir()
    (workspace / ".ratchet" / "policy.toml").write_text("kept\n")
    for _ in range(2):
        again = await _sh(confinement, "ls -A .ratchet; echo evil > .ratchet/policy.toml || echo denied")
        assert again.result.stdout == "policy.toml\ndenied\n", again.result.stdout
        assert (workspace / ".ratchet" / "policy.toml").read_text() == "kept\n"
    assert runner_pids()[-1] != runner, "the replaced directory got a sandbox of its own"


@pytest.mark.asyncio
async def test_a_command_gains_no_user_namespace_it_lacked_in_a_sandbox_of_its_own(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed to try a nested user namespace")
    script = "unshare -U -r -m true 2>/dev/null && echo NESTED || echo refused"
    reused = await _sh(confinement, script)
    assert len(runner_pids()) == 1
    monkeypatch.setenv(REUSE_ENV, "off")
    close_runners()
    alone = await _sh(confinement, script)
    assert runner_pids() == [], f"{REUSE_ENV}=off runs one bubblewrap per command"
    assert reused.result.stdout == alone.result.stdout, (reused.result.stdout, alone.result.stdout)
    if os.getuid() == 0:
        assert alone.result.stdout == "refused\n"


@pytest.mark.asyncio
async def test_output_stdin_exit_status_and_a_missing_program_are_as_without_reuse(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    script = "cat; echo to-err >&2; head -c 100000 /dev/zero | tr '\\0' x; kill -TERM $$"

    async def both() -> list[tuple[object, ...]]:
        ran = await run_confined(
            ["sh", "-c", script], confinement, cwd=workspace, timeout_s=30, extra_env={}, stdin="fed\n"
        )
        done = ran.result
        try:
            await run_confined(["no-such-program-x"], confinement, cwd=workspace, timeout_s=30, extra_env={})
            missing = "ran"
        except ExecutionFailed as exc:  # the message is what is compared
            missing = str(exc)
        return [(done.exit_code, done.stdout[:4], done.stderr, done.stdout_bytes, done.truncated, missing)]

    reused = await both()
    assert len(runner_pids()) == 1
    monkeypatch.setenv(REUSE_ENV, "off")
    close_runners()
    assert await both() == reused
    assert reused[0][0] == 128 + signal.SIGTERM and reused[0][1] == "fed\n"


def test_the_reused_sandbox_dies_with_the_server(ratchet_bin: Path, tmp_path: Path, workspace: Path, db: Path) -> None:
    policies = write_policy(tmp_path / "policies", ANYTHING)
    marker = f"{700 + os.getpid() % 97}.{os.getpid()}"
    serve = ratchet_argv(ratchet_bin, workspace, policies, db, "serve")
    runners: list[int] = []
    try:
        with Stdio(serve, stderr=subprocess.DEVNULL) as server:
            server.initialize(client="t")
            server.call(2, "run_command", {"argv": ["true"]})
            while '"id":2' not in (answer := server.line()).replace(" ", ""):
                assert answer, "the server ended"
            assert '"exit_code":0' in answer.replace(" ", ""), answer
            runners = [pid for pid in _children(server.proc.pid) if _comm(pid) == "bwrap"]
            assert len(runners) == 1, "the command ran in a reused sandbox, started by the server"
            server.call(3, "run_command", {"command": f"(setsid sleep {marker} &); sleep {marker}", "timeout_s": 300})
            deadline = time.monotonic() + 30
            while len(_running_with(marker)) < 2:
                assert time.monotonic() < deadline, "the command never started"
                time.sleep(0.05)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (_running_with(marker) or any(_alive(pid) for pid in runners)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running_with(marker) == [] and not any(_alive(pid) for pid in runners)
    finally:
        for pid in _running_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.asyncio
async def test_many_commands_leave_no_descriptor_or_process_behind(layout: tuple[Path, Path]) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    await _sh(confinement, "true")
    (runner,) = runner_pids()
    descriptors = len(list(Path("/proc/self/fd").iterdir()))
    for n in range(40):
        ran = await _sh(confinement, f"echo {n}; sleep 0.001 &")
        assert ran.result.stdout == f"{n}\n"
    await anyio.sleep(1.5)  # the runner reaps finished cells at least once a second
    assert len(list(Path("/proc/self/fd").iterdir())) <= descriptors + 1  # + the cell prepared ahead, at most
    assert runner_pids() == [runner]
    everything = _descendants(runner)
    # bubblewrap's init, the runner, and at most the one cell prepared ahead: nothing piles up.
    assert len(everything) <= 3, [(pid, _comm(pid)) for pid in everything]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["no-runner", "cell-cannot-be-built"])
async def test_where_no_reused_sandbox_can_be_had_the_command_gets_one_of_its_own(
    layout: tuple[Path, Path], failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, state = layout
    confinement = _confinement(workspace, state)
    if failure == "no-runner":  # an interpreter the sandbox cannot see, for one
        monkeypatch.setattr(sandbox_reuse, "_interpreter", _no_interpreter)
    else:  # a cell whose layout fails (here: a tmpfs where none can be mounted)
        real = sandbox_reuse._cell_spec

        def broken(argv: Sequence[str]) -> tuple[list[str], dict[str, object]]:
            options, spec = real(argv)
            ops = spec["ops"]
            assert isinstance(ops, list)
            ops.append(["tmpfs", "/proc/self/no-such-place"])
            return options, spec

        monkeypatch.setattr(sandbox_reuse, "_cell_spec", broken)
    for _ in range(2):
        ran = await _sh(confinement, "echo x > /tmp/t && cat /tmp/t; echo x > .ratchet/p || echo denied")
        assert ran.sandboxed and ran.result.stdout == "x\ndenied\n", ran.result
    assert runner_pids() == [], "the plan that cannot be reused runs one sandbox per command"


def _no_interpreter() -> str:
    raise sandbox_reuse._Unavailable("the interpreter lives under /tmp, which the sandbox replaces")
