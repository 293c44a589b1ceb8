"""Run one argv as a child process: no shell, bounded time, bounded output, nothing left behind.

The executor for `run_command`. It knows nothing about MCP or policies: it takes an argv, a working
directory and an environment (build one with `scrub_env`), and returns a `CommandResult`.

Guarantees:

- No shell is involved: argv is exec'd directly, so nothing in it is expanded or interpreted.
- The child leads its own session and process group. When the command exits, times out, or the
  awaiting task is cancelled, the whole group gets SIGTERM, then SIGKILL after a short grace, so
  background children (`sh -c 'sleep 100 & ...'`) do not outlive the call. A process that moves
  itself to another session (setsid, double fork into a new session) is beyond a process-group kill;
  if it keeps our pipes open we stop reading after a short grace rather than wait for it.
- Both pipes are read continuously, so a flooding command never blocks on a full pipe; each stream
  keeps only its first and last `output_cap / 2` bytes, so memory stays bounded whatever the volume.
- stdin is the given text (then closed) or /dev/null, so a command can never wait on our stdin.
- With `die_with_parent` (Linux), the child gets a parent-death signal (SIGKILL when the server dies,
  even by `kill -9`) through a tiny exec trampoline that sets `PR_SET_PDEATHSIG` before it execs the
  program. It reaches the direct child only; what that child started stays in its process group,
  which `on_spawn` reports so that the next open of the record can kill what is left
  (`kill_leftovers`). Sandboxed commands get the same from bubblewrap's `--die-with-parent`, for
  every process in the sandbox.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from ratchet.errors import ExecutionFailed, InvalidRequest

__all__ = [
    "CommandResult",
    "ProgressCallback",
    "SpawnCallback",
    "check_program",
    "kill_leftovers",
    "run_argv",
    "scrub_env",
]

ProgressCallback = Callable[[float, str], Awaitable[None]]
# Told the child's pid (also its process group id) as soon as it exists.
SpawnCallback = Callable[[int], Awaitable[None]]

# Sets a parent-death signal, checks the parent did not die before that, then becomes the program.
# argv: [python, -I, -S, -c, this, parent pid, program, args...] (isolated, no site imports: the quickest start).
# PR_SET_PDEATHSIG is 1.
_PDEATHSIG_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(125)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)

# Time a terminated group gets to exit on SIGTERM (flush, clean up) before SIGKILL.
_TERM_GRACE_S = 0.5
# After the group is gone, how long we keep reading for a process outside it that holds our pipes.
_DRAIN_GRACE_S = 1.0
_POLL_S = 0.02
_FIRST_POLL_S = 0.0005


@dataclass(frozen=True)
class CommandResult:
    """What a command did. Output is capped; the byte counts are the true totals."""

    argv: list[str]
    exit_code: int | None  # None if killed by timeout/cancel; -N if it died of signal N by itself
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    timed_out: bool
    duration_s: float


class _HeadTail:
    """Keeps the first and last bytes of a stream and counts the rest, in bounded memory."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_cap:
            self.tail += chunk
            excess = len(self.tail) - self.tail_cap
            if excess > 0:
                del self.tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def render(self, name: str) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        dropped = self.total - len(self.head) - len(self.tail)
        marker = (
            f"\n[... ratchet truncated {dropped} bytes of {name}; "
            f"kept first {len(self.head)} and last {len(self.tail)} ...]\n"
        )
        return head + marker + tail


def scrub_env(
    allow: Sequence[str], source: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return only the variables of `source` named in `allow`, plus `extra`.

    An `allow` entry is an exact name, or a prefix ending in `*` (`LC_*`). Nothing else passes, so the
    server's own secrets cannot reach a command. A bare `*` (or a `*` anywhere but the end) is refused:
    it would pass everything and defeat the point.
    """
    exact: set[str] = set()
    prefixes: list[str] = []
    for entry in allow:
        if entry.endswith("*"):
            prefix = entry[:-1]
            if not prefix or "*" in prefix:
                raise InvalidRequest(f"env allow entry {entry!r}: expected a name or a NAME_PREFIX* pattern")
            prefixes.append(prefix)
        elif "*" in entry or not entry:
            raise InvalidRequest(f"env allow entry {entry!r}: expected a name or a NAME_PREFIX* pattern")
        else:
            exact.add(entry)
    scrubbed = {
        name: value
        for name, value in source.items()
        if name in exact or any(name.startswith(prefix) for prefix in prefixes)
    }
    if extra:
        scrubbed.update(extra)
    return scrubbed


async def run_argv(
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
    die_with_parent: bool = False,
) -> CommandResult:
    """Run `argv` in `cwd` with exactly `env`, and return what it did.

    Raises InvalidRequest for arguments that cannot be run (empty argv, missing cwd, bad limits) and
    ExecutionFailed when the program cannot be started (not found, not executable). A non-zero exit
    is a result, not an error. On timeout the group is killed and `timed_out` is set; if the awaiting
    task is cancelled the group is killed and the cancellation propagates.
    """
    args = _check_args(argv, cwd, timeout_s, output_cap, progress_every_s)
    spawned = args
    if die_with_parent and sys.platform == "linux":
        check_program(args[0], cwd, env)  # the trampoline would only report it as exit status 1
        spawned = [sys.executable, "-I", "-S", "-c", _PDEATHSIG_TRAMPOLINE, str(os.getpid()), *args]
    started = anyio.current_time()
    with anyio.CancelScope(shield=True):  # a cancel mid-spawn would leak a child we never saw
        proc = await _spawn(spawned, cwd, env, with_stdin=stdin is not None)
    out, err = _HeadTail(output_cap), _HeadTail(output_cap)
    try:
        if on_spawn is not None:
            await on_spawn(proc.pid)
        async with anyio.create_task_group() as helpers:
            if proc.stdin is not None:
                helpers.start_soon(_feed, proc.stdin, stdin or "")
            if on_progress is not None:
                helpers.start_soon(_report, on_progress, progress_every_s, started, out, err)
            async with anyio.create_task_group() as readers:
                assert proc.stdout is not None and proc.stderr is not None
                readers.start_soon(_drain, proc.stdout, out)
                readers.start_soon(_drain, proc.stderr, err)
                with anyio.move_on_after(timeout_s) as waiting:
                    await proc.wait()
                # Also on a clean exit: background children left in the group must not outlive it.
                await _kill_group(proc)
                readers.cancel_scope.deadline = anyio.current_time() + _DRAIN_GRACE_S
            helpers.cancel_scope.cancel()
    except BaseException as exc:
        # Cancellation, or on_progress failed: the group must still die before we let go.
        with anyio.CancelScope(shield=True):
            await _kill_group(proc)
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            raise exc.exceptions[0] from None  # callers should see the callback's own error, not a group
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await proc.aclose()
    timed_out = waiting.cancelled_caught
    return CommandResult(
        argv=args,
        exit_code=None if timed_out else proc.returncode,
        stdout=out.render("stdout"),
        stderr=err.render("stderr"),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        truncated=out.truncated or err.truncated,
        timed_out=timed_out,
        duration_s=anyio.current_time() - started,
    )


def _check_args(
    argv: Sequence[str], cwd: Path, timeout_s: float, output_cap: int, progress_every_s: float
) -> list[str]:
    if isinstance(argv, str):
        raise InvalidRequest("argv must be a list of strings (program and arguments), not one string")
    args = list(argv)
    if not args or not args[0]:
        raise InvalidRequest("argv is empty: expected a program and its arguments")
    if any("\x00" in arg for arg in args):
        raise InvalidRequest("argv contains a NUL byte, which no program can receive")
    if not cwd.is_dir():
        raise InvalidRequest(f"working directory {str(cwd)!r} does not exist or is not a directory")
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise InvalidRequest(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if output_cap < 0:
        raise InvalidRequest(f"output_cap must be >= 0 bytes, got {output_cap!r}")
    if not progress_every_s > 0:
        raise InvalidRequest(f"progress_every_s must be > 0, got {progress_every_s!r}")
    return args


async def _spawn(args: list[str], cwd: Path, env: Mapping[str, str], *, with_stdin: bool) -> Process:
    try:
        return await anyio.open_process(
            args,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # own process group, so the whole tree can be killed at once
        )
    except FileNotFoundError as exc:
        path = env.get("PATH", os.defpath)
        raise ExecutionFailed(f"program {args[0]!r} not found (searched PATH={path!r})") from exc
    except PermissionError as exc:
        raise ExecutionFailed(f"program {args[0]!r} cannot be executed: permission denied") from exc
    except OSError as exc:
        raise ExecutionFailed(f"program {args[0]!r} could not be started: {exc}") from exc


def check_program(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Raise the error `_spawn` would raise for a program that cannot be found or executed."""
    if "/" in program:
        path = cwd / program
        if not path.exists():
            raise ExecutionFailed(f"program {program!r} not found")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise ExecutionFailed(f"program {program!r} cannot be executed: permission denied")
        return
    search = env.get("PATH", os.defpath)
    if shutil.which(program, path=search) is None:
        raise ExecutionFailed(f"program {program!r} not found (searched PATH={search!r})")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_leftovers(pgid: int, marker: str) -> int:
    """SIGKILL every live process of group `pgid` whose environment holds `marker` (NAME=VALUE).

    For the next open after a crash: the group of a command whose server died. The marker (the
    action's RATCHET_ACTION) makes sure a group id reused by an unrelated program is left alone.
    Returns how many processes were killed; 0 where /proc cannot be read.
    """
    needle = b"\0" + marker.encode() + b"\0"
    killed = 0
    proc_root = Path("/proc")
    if not (proc_root / "self" / "stat").exists():
        return 0
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if len(fields) < 3 or fields[2] != str(pgid) or fields[0] in ("Z", "X"):
                continue
            if needle not in b"\0" + (entry / "environ").read_bytes() + b"\0":
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # exited while we looked, or not ours to read
    return killed


async def _drain(stream: ByteReceiveStream, sink: _HeadTail) -> None:
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        async for chunk in stream:
            sink.add(chunk)


async def _feed(stream: ByteSendStream, text: str) -> None:
    # A command that exits without reading its input is not our failure: ignore the broken pipe.
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        try:
            if text:
                await stream.send(text.encode("utf-8"))
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()  # EOF, so commands like `cat` finish


async def _report(callback: ProgressCallback, every_s: float, started: float, out: _HeadTail, err: _HeadTail) -> None:
    tick = 1
    while True:
        await anyio.sleep_until(started + tick * every_s)
        elapsed = anyio.current_time() - started
        await callback(elapsed, f"running {elapsed:.1f}s, {out.total + err.total} bytes of output")
        # A slow callback skips missed ticks instead of firing them in a burst.
        tick = max(tick + 1, math.floor(elapsed / every_s) + 1)


async def _kill_group(proc: Process) -> None:
    """SIGTERM the child's process group, SIGKILL it after a grace, and reap the child."""
    pgid = proc.pid  # start_new_session made the child its group leader
    if _signal_group(pgid, signal.SIGTERM):
        # Polling: there is no event for "a process group emptied". A sandboxed command leaves its
        # PID namespace's first process in the group for the few milliseconds the kernel takes to
        # tear the namespace down after bubblewrap has exited, so the first waits are short and
        # grow to _POLL_S; the grace is still _TERM_GRACE_S.
        deadline = anyio.current_time() + _TERM_GRACE_S
        pause = _FIRST_POLL_S
        while _group_alive(pgid) and (left := deadline - anyio.current_time()) > 0:
            await anyio.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_S)
        _signal_group(pgid, signal.SIGKILL)  # harmless if all are gone; decisive if one ignored TERM
    await proc.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group (0 only probes); False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False  # nobody left in the group
    except PermissionError:
        # A setuid member we may not signal; the group still exists.
        return True
    return True


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in the group.

    killpg(pgid, 0) alone also counts zombies, which linger when orphans are reparented to an init
    that does not reap (common in containers); those are dead, so waiting for them would only burn
    the whole grace. On Linux we read /proc to tell them apart; elsewhere we assume alive.
    """
    if not _signal_group(pgid, 0):
        return False
    if not os.path.exists("/proc/self/stat"):  # noqa: PTH110 - strings: see the loop below
        return True
    group = str(pgid).encode()
    # Plain strings and bytes, no pathlib: this runs after every command, often more than once.
    for name in os.listdir("/proc"):  # noqa: PTH208 - names as strings, no Path per process
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 2 and fields[2] == group and fields[0] not in (b"Z", b"X"):
            return True
    return False
