"""A sandbox prepared once and reused: one bubblewrap per plan, a fresh cell per command.

Building a bubblewrap sandbox per command costs about ten times a direct spawn of the program
(bench/results/profile.md, "The ways into the sandbox"). Here the sandbox a plan describes
(executors/sandbox.py `plan`) is started once, with a small runner as its first process
(executors/sandbox_cell.py), and reused for every later command with the same plan. What a
sandbox per command guarantees by construction is kept per command: the runner prepares, before
the command is known, a cell with its own PID, mount, IPC and UTS namespaces (and network
namespace when the network is off), a fresh `/tmp`, runtime directories, `/dev/shm` and `/proc`,
and no capability; the command runs in it and every process it started is gone before its status
comes back. So what one command leaves in `/tmp` or runs in the background never reaches the next.

Differences from a sandbox per command, none of them a right the command gains:
  - the sandbox has its own user namespace even when the server runs as root (the runner needs
    CAP_SYS_ADMIN to build cells, and holds it only there); files owned by users other than the
    server's show as owned by `nobody`, and the command has no capability, as before;
  - `/dev` is read-only (only `/dev/shm` below it, fresh per command, is writable), where a
    sandbox per command let a command create files in its private `/dev`;
  - every capability is dropped from the bounding set too.

The runner and its sandbox die with the server (bubblewrap's `--die-with-parent`, and the runner
ends when the server closes its socket). A command cannot reach the runner: it lives in another
PID namespace, and the cell that started the command (its parent, PID 1 of its namespace) is
undumpable and ignores every signal sent from inside. Runners are kept per server process, thread
and plan (at most `MAX_RUNNERS`, the least recently used closed first); a plan that differs in any
bind (a protected path appeared, another profile, the network) gets a runner of its own, and so
does one whose bound directories were replaced on the host since (a bind holds the directory it
was given, by inode), so a reused sandbox never shows a layout older than the command's plan.
A directory removed on the host takes its binds with it in every namespace, even when its
replacement gets the same inode number: each cell checks, right before it starts the command,
that every mount point of the plan is there and read-only as planned, and otherwise runs nothing
(the command gets a sandbox of its own, the stale one is closed).

`RATCHET_SANDBOX_REUSE=off` in the server's environment turns reuse off (one bubblewrap per
command). Where a runner cannot be had (no pidfd, an interpreter under `/tmp`, a cell that fails
to build), commands get a sandbox of their own, as before.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from ratchet.errors import ExecutionFailed
from ratchet.executors.sandbox import SandboxPlan
from ratchet.executors.shell import (
    _DRAIN_GRACE_S,
    CommandResult,
    ProgressCallback,
    SpawnCallback,
    _check_args,
    _HeadTail,
    _report,
)

__all__ = ["REUSE_ENV", "close_runners", "reuse_wanted", "run_in_cell", "runner_pids"]

REUSE_ENV = "RATCHET_SANDBOX_REUSE"
MAX_RUNNERS = 4
# Capabilities the runner holds in the sandbox's own user namespace, to build cells (never the host's).
_RUNNER_CAPS = ("CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_NET_ADMIN")
_FLAGS = {
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--unshare-net",
}
_ONE = {"--cap-drop", "--dev", "--proc", "--tmpfs", "--chdir"}
_TWO = {"--ro-bind", "--bind", "--ro-bind-try"}
_MAX_MESSAGE = 1 << 16
_KILL_WAIT_S = 5.0


class _Unavailable(Exception):
    """No reused sandbox for this command (before anything of it ran): it gets one of its own."""


class _LayoutChanged(Exception):
    """The cell found its layout changed (a bound directory removed on the host) and ran nothing."""


def reuse_wanted() -> bool:
    """Whether commands should run in a reused sandbox (`RATCHET_SANDBOX_REUSE=off` says no)."""
    return os.environ.get(REUSE_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def _cell_spec(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The runner's bubblewrap options and what each cell lays out afresh, from a plan's argv.

    Every tmpfs of the plan, its `/proc` and `/dev/shm` are laid afresh in each cell, and every bind
    the plan lays under one of them after it is laid again on top, in the plan's order. Anything
    the parser does not know makes the plan unusable here (a sandbox of its own then).
    """
    end = list(argv).index("--")
    options, fresh_tmpfs, fresh_proc, ops = [argv[0]], [], [], []
    binds: dict[str, bool] = {}  # every mount point of the plan: read-only or not (the last op on it)
    network = "--unshare-net" not in argv[1:end]
    i = 1
    while i < end:
        name = argv[i]
        if name in _FLAGS:
            options.append(name)
            i += 1
            continue
        if name in _ONE:
            value = argv[i + 1]
            i += 2
            if name == "--chdir":
                continue  # per command
            if name == "--cap-drop":
                continue  # the runner keeps what it needs; each cell drops everything
            options += [name, value]
            binds[value] = False
            if name == "--tmpfs":
                ops.append(["tmpfs", value])
                fresh_tmpfs.append(value)
            elif name == "--proc":
                ops.append(["proc", value])
                fresh_proc.append(value)
            else:
                ops.append(["dev", value])
            continue
        if name in _TWO:
            source, dest = argv[i + 1], argv[i + 2]
            i += 3
            options += [name, source, dest]
            if name != "--ro-bind-try":
                binds.pop(dest, None)
                binds[dest] = name == "--ro-bind"
            if any(_under(dest, top) for top in fresh_proc):
                if name == "--bind":
                    raise _Unavailable(f"a writable bind under /proc ({dest})")
                ops.append(["self-ro", dest])
            elif any(_under(dest, top) and dest != top for top in fresh_tmpfs):
                ops.append(["rebind", dest])
            continue
        raise _Unavailable(f"an option the reused sandbox does not know: {name}")
    options += ["--unshare-user"]
    for cap in _RUNNER_CAPS:
        options += ["--cap-add", cap]
    # /dev is checked as the cell leaves it (read-only); the others as the plan lays them.
    checked = [[path, True if path in ("/dev",) else read_only] for path, read_only in binds.items()]
    return options, {"network": network, "ops": ops, "binds": checked}


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _interpreter() -> str:
    """The base interpreter (outside any virtual environment), if the sandbox can see it."""
    program = os.path.realpath(sys.executable)
    for path in (program, os.path.realpath(sys.base_prefix)):
        if path == "/tmp" or path.startswith("/tmp/"):
            raise _Unavailable("the interpreter lives under /tmp, which the sandbox replaces")
    return program


def _host_pid(pidfd: int) -> int:
    """The process id (in the server's PID namespace) a pidfd refers to."""
    with open(f"/proc/self/fdinfo/{pidfd}", encoding="ascii") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


class _Cell:
    """A prepared cell: the socket to it and a pidfd for its first process."""

    def __init__(self, sock: socket.socket, pidfd: int) -> None:
        self.sock = sock
        self.pidfd = pidfd

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    async def gone(self) -> None:
        """Wait until the cell's first process, and so every process of its namespace, is gone."""
        with anyio.move_on_after(_KILL_WAIT_S):
            await anyio.wait_readable(self.pidfd)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.close(self.pidfd)


class _Runner:
    """One reused sandbox: its bubblewrap process and the control socket to its runner."""

    def __init__(self, key: tuple[Any, ...], options: list[str], spec: dict[str, Any]) -> None:
        self.key = key
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        source = Path(__file__).with_name("sandbox_cell.py").read_text(encoding="utf-8")
        spec_hex = marshal.dumps(spec).hex()
        argv = [*options, "--", _interpreter(), "-I", "-S", "-c", source, spec_hex, str(theirs.fileno())]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", os.defpath)},
            )
        except OSError as exc:
            ours.close()
            raise _Unavailable(f"bubblewrap could not be started: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self.control = ours
        self.asked = 0
        self.lock = anyio.Lock()

    def _ask(self) -> None:
        self.control.send(b"1")
        self.asked += 1

    def prepare_next(self) -> None:
        """Have a cell prepared for the next command, while nothing runs (it would compete for the CPU)."""
        if self.asked == 0 and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self._ask()

    async def take(self) -> _Cell:
        """The prepared cell, or the next one the runner prepares."""
        async with self.lock:
            if self.asked == 0:
                self._ask()
            await anyio.wait_readable(self.control)
            try:
                _data, fds, _flags, _addr = socket.recv_fds(self.control, 64, 1)
            except OSError as exc:
                raise _Unavailable(f"the runner is gone: {exc}") from exc
            self.asked -= 1
            if not fds:
                raise _Unavailable("the runner is gone")
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        await anyio.wait_readable(sock)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 1)
        except OSError as exc:
            sock.close()
            raise _Unavailable(f"the cell is gone: {exc}") from exc
        ready = json.loads(data) if data else {"error": "cell", "detail": "ended before it was ready"}
        if not ready.get("ready") or not fds:
            sock.close()
            for fd in fds:
                os.close(fd)
            raise _Unavailable(f"the cell could not be built: {ready.get('detail')}")
        return _Cell(sock, fds[0])

    def close(self) -> None:
        self.control.close()  # the runner ends; bubblewrap's init then kills what is left
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


_runners: OrderedDict[tuple[Any, ...], _Runner] = OrderedDict()
_broken: set[tuple[Any, ...]] = set()
_guard = threading.Lock()


def _identities(options: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """What each bind's source is now (device, inode): a bind holds the directory it was given, so a
    path replaced on the host since (a repository initialised again) needs a sandbox of its own."""
    found = []
    for i, name in enumerate(options):
        if name in _TWO:
            try:
                info = Path(options[i + 1]).stat()
            except OSError:
                found.append((-1, -1))
                continue
            found.append((info.st_dev, info.st_ino))
    return tuple(found)


def _runner(plan: SandboxPlan) -> tuple[tuple[Any, ...], _Runner]:
    options, spec = _cell_spec(plan.argv)
    # Per thread: bubblewrap dies with the thread that started it (its parent-death signal).
    key = (threading.get_ident(), tuple(options), json.dumps(spec), _identities(options))
    with _guard:
        if key in _broken:
            raise _Unavailable("a cell could not be built for this plan")
        found = _runners.get(key)
        if found is not None and found.proc.poll() is None:
            _runners.move_to_end(key)
            return key, found
        if found is not None:
            _runners.pop(key).close()
        runner = _Runner(key, options, spec)
        _runners[key] = runner
        while len(_runners) > MAX_RUNNERS:
            _runners.popitem(last=False)[1].close()
        return key, runner


def _forget(key: tuple[Any, ...], *, broken: bool) -> None:
    with _guard:
        runner = _runners.pop(key, None)
        if broken:
            _broken.add(key)
    if runner is not None:
        runner.close()


def runner_pids() -> list[int]:
    """The bubblewrap process of every live reused sandbox of this process (for status and tests)."""
    with _guard:
        return [runner.proc.pid for runner in _runners.values() if runner.proc.poll() is None]


def close_runners() -> None:
    """End every reused sandbox of this process."""
    with _guard:
        found = list(_runners.values())
        _runners.clear()
    for runner in found:
        runner.close()


async def _take(plan: SandboxPlan) -> tuple[_Runner, _Cell]:
    """A prepared cell for `plan`: from its runner, started again once if it had ended."""
    for attempt in range(2):
        key, runner = _runner(plan)
        try:
            return runner, await runner.take()
        except _Unavailable:
            # A runner that ended (its thread did) or a cell that failed (its layout changed while it
            # was laid out): start another once; when a fresh runner's cell fails too, the plan gets
            # a sandbox per command from then on.
            _forget(key, broken=attempt == 1)
    raise _Unavailable("no runner")


async def run_in_cell(
    plan: SandboxPlan,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: str | None = None,
    output_cap: int = 64_000,
    on_progress: ProgressCallback | None = None,
    progress_every_s: float = 2.0,
    on_spawn: SpawnCallback | None = None,
) -> CommandResult | None:
    """Run `argv` in a fresh cell of the reused sandbox `plan` describes, as `run_argv` would run it.

    None when no reused sandbox can be had (nothing of the command ran: run it in a sandbox of its
    own). Otherwise the same result and errors as `run_argv`: a timeout or a cancellation kills
    every process of the command (the cell's whole PID namespace).
    """
    args = _check_args(argv, cwd, timeout_s, output_cap, progress_every_s)
    try:
        runner, cell = await _take(plan)
    except _Unavailable:
        return None
    pipes: list[int] = []
    try:
        return await _run(
            cell, args, pipes, cwd, env, timeout_s, stdin, output_cap, on_progress, progress_every_s, on_spawn
        )
    except _LayoutChanged:
        _forget(runner.key, broken=False)  # its other cells are stale too; the next command gets a new one
        return None
    finally:
        for fd in pipes:
            with contextlib.suppress(OSError):
                os.close(fd)
        cell.close()
        runner.prepare_next()


async def _run(
    cell: _Cell,
    args: list[str],
    pipes: list[int],
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: str | None,
    output_cap: int,
    on_progress: ProgressCallback | None,
    progress_every_s: float,
    on_spawn: SpawnCallback | None,
) -> CommandResult:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pipes += [out_r, err_r]
    if stdin is None:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
    else:
        in_r, in_w = os.pipe()
        pipes.append(in_w)
    request = marshal.dumps({"argv": args, "env": dict(env), "cwd": str(cwd)})
    started = anyio.current_time()
    try:
        socket.send_fds(cell.sock, [request], [in_r, out_w, err_w])
    except OSError as exc:
        raise ExecutionFailed(f"program {args[0]!r} could not be started in the sandbox: {exc}") from exc
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    out, err = _HeadTail(output_cap), _HeadTail(output_cap)
    killed = False
    try:
        reply, fds = await _receive(cell.sock)
        if reply.get("error") == "layout":
            raise _LayoutChanged(reply.get("detail"))
        if "spawned" not in reply:
            _raise_spawn_error(args[0], env, reply)
        child = _host_pid(fds[0]) if fds else -1
        for fd in fds:
            os.close(fd)
        if on_spawn is not None:
            await on_spawn(child)
        status: dict[str, Any] = {}
        async with anyio.create_task_group() as helpers:
            if in_w >= 0:
                helpers.start_soon(_feed, in_w, stdin or "", pipes)
            if on_progress is not None:
                helpers.start_soon(_report, on_progress, progress_every_s, started, out, err)
            async with anyio.create_task_group() as readers:
                readers.start_soon(_drain, out_r, out)
                readers.start_soon(_drain, err_r, err)
                with anyio.move_on_after(timeout_s) as waiting:
                    status, _fds = await _receive(cell.sock)
                if waiting.cancelled_caught:
                    killed = True
                    cell.kill()
                    await cell.gone()
                readers.cancel_scope.deadline = anyio.current_time() + _DRAIN_GRACE_S
            helpers.cancel_scope.cancel()
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            cell.kill()
            await cell.gone()
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            raise exc.exceptions[0] from None
        raise
    timed_out = waiting.cancelled_caught
    if not killed and "exit" not in status:
        raise ExecutionFailed(f"the sandbox ended before {args[0]!r} did: {status.get('detail', 'no status')}")
    return CommandResult(
        argv=args,
        exit_code=None if timed_out else int(status["exit"]),
        stdout=out.render("stdout"),
        stderr=err.render("stderr"),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        truncated=out.truncated or err.truncated,
        timed_out=timed_out,
        duration_s=anyio.current_time() - started,
    )


def _raise_spawn_error(program: str, env: Mapping[str, str], reply: dict[str, Any]) -> None:
    kind = reply.get("error")
    if kind == "FileNotFoundError":
        raise ExecutionFailed(f"program {program!r} not found (searched PATH={env.get('PATH', os.defpath)!r})")
    if kind == "PermissionError":
        raise ExecutionFailed(f"program {program!r} cannot be executed: permission denied")
    raise ExecutionFailed(f"program {program!r} could not be started: {reply.get('detail', kind)}")


async def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message from the cell; an empty one when the cell is gone."""
    while True:
        await anyio.wait_readable(sock)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 1)
        except BlockingIOError:
            continue
        except OSError:
            return {}, []
        return (json.loads(data) if data else {}), list(fds)


async def _drain(fd: int, sink: _HeadTail) -> None:
    os.set_blocking(fd, False)
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:
            return
        if not chunk:
            return
        sink.add(chunk)


async def _feed(fd: int, text: str, pipes: list[int]) -> None:
    """Write stdin, then close it (EOF); a command that does not read it is not our failure."""
    os.set_blocking(fd, False)
    data = memoryview(text.encode("utf-8"))
    with contextlib.suppress(OSError):
        while data:
            await anyio.wait_writable(fd)
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                continue
    pipes.remove(fd)  # closed here, not again by the caller
    with contextlib.suppress(OSError):
        os.close(fd)
