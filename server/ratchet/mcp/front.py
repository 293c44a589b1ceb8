"""`ratchet serve --resident`: the stdio server's start without the imports, standard library only.

A `ratchet serve` process spends nearly all of its start importing the MCP SDK and Ratchet and building
the tools' models, before it can answer `tools/list`; a client that does not wait that long starts its
session without Ratchet's tools. With `--resident` (or RATCHET_SERVE_RESIDENT=1) the `ratchet` command
does none of that. It connects to a resident serve server of the same set-up (cli/resident.py), which
has everything imported and the server built, hands it its stdin, stdout and stderr, its working
directory, umask and whole environment, and the resident forks a process that serves this one session
on them exactly as `ratchet serve` would (the same code from the command line on, its own engine and
session, commands inheriting this environment). This process stays as its stand-in: it passes a
SIGINT, SIGTERM or SIGHUP on to the session's process and exits with that process's exit code. If it
dies without a word (SIGKILL), the resident sends the session SIGTERM, as the client would have.

The resident listens where the resident hook server does (claude_code/hook_socket.py: a private
per-user directory hidden in every sandbox, a socket only this uid may open, the peer's uid checked
both ways, a secret only this uid can read presented on every connection). Its name is a digest of
the set-up: the interpreter, Ratchet's version and location, the working directory, `serve`'s arguments
and every RATCHET_*, OTEL_* and PYTHON* variable. The first `ratchet serve --resident` of a set-up starts it (that start
pays the imports once, plus this relay); it exits after IDLE_S with no session, at once when any of
Ratchet's files changed since it started (the session that finds it so is served in its own process),
and on `ratchet hook-server stop`; `ratchet status` names it while it runs.

Whenever the resident cannot be used (the directory or socket fails a check, it cannot start, it is
stale) this says why on stderr and `ratchet serve` serves in this process, as without `--resident`.
"""

# On the start-up path pathlib and dataclasses cost milliseconds a process: plain os.path here.
# ruff: noqa: PTH100, PTH109, PTH120

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence

from ratchet import __version__
from ratchet.claude_code.hook_socket import (
    Endpoint,
    Untrusted,
    check_directory,
    connect,
    read_secret,
    socket_dir,
)

RESIDENT_ENV = "RATCHET_SERVE_RESIDENT"  # 1/on/yes/true: `ratchet serve` relays to a resident server
RESIDENT_FLAG = "--resident"
PROTOCOL = 1
START_S = 120.0  # the longest a first start waits for its resident to listen (imports on a loaded host)
GONE_S = 10.0  # after the resident it started exited (another won the lock), how long to wait for that one
MAX_HEADER = 4 * 1024 * 1024  # the environment travels in it
# What a stdio session's options never are: these serve elsewhere or only print.
NOT_RELAYED = ("--http", "-h", "--help")


def wanted(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether `serve ARGV` asks for the resident (the flag or the variable) and can have it (stdio)."""
    asked = RESIDENT_FLAG in argv or environ.get(RESIDENT_ENV, "").strip().lower() in ("1", "on", "yes", "true")
    return asked and not any(a.split("=")[0] in NOT_RELAYED for a in argv)


def session_argv(argv: Sequence[str]) -> list[str]:
    """`serve`'s arguments as the session's process gets them (without --resident)."""
    return [a for a in argv if a != RESIDENT_FLAG]


def setup(argv: Sequence[str], environ: Mapping[str, str], cwd: str) -> str:
    """What makes serving differ besides the session: a resident serves only sessions of its own set-up."""
    prefixes = ("RATCHET_", "OTEL_", "PYTHON")
    keyed = sorted((k, v) for k, v in environ.items() if k.startswith(prefixes) and k != RESIDENT_ENV)
    package = os.path.dirname(os.path.abspath(__file__))  # which Ratchet: another checkout is another set-up
    return json.dumps([PROTOCOL, sys.executable, __version__, package, cwd, session_argv(argv), keyed])


def endpoint(argv: Sequence[str], environ: Mapping[str, str], cwd: str) -> Endpoint:
    """Where the resident serve server of this set-up listens."""
    digest = hashlib.sha256(setup(argv, environ, cwd).encode()).hexdigest()[:20]
    return Endpoint(socket_dir(environ), f"serve-{digest}", tuple(session_argv(argv)))


def start_resident(ep: Endpoint) -> int:
    """Start the resident for `ep` in the background, detached; its pid. It outlives this process."""
    import subprocess  # start-up: only the first session of a set-up starts a resident

    with open(ep.log, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ratchet.cli.resident", "--key", ep.key, "--", *ep.argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        ).pid


def _exited(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def connect_or_start(ep: Endpoint) -> socket.socket:
    """A checked connection to the resident of `ep`, starting it first when none listens."""
    try:
        return connect(ep)
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    check_directory(ep.directory, create=True)
    pid = start_resident(ep)
    deadline, gone = time.monotonic() + START_S, None
    while True:
        time.sleep(0.02)
        try:
            return connect(ep)
        except (FileNotFoundError, ConnectionRefusedError):
            now = time.monotonic()
            if gone is None and _exited(pid):
                gone = now  # it lost the lock to another starting resident, or failed (its log says)
            if now > deadline or (gone is not None and now - gone > GONE_S):
                raise OSError(f"no resident serve server listening on {ep.socket} (its log: {ep.log})") from None


def _line(sock: socket.socket) -> dict[str, object]:
    """One JSON line from the resident; {} when it closed the connection first."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return {}
        data += chunk
    reply = json.loads(data)
    return reply if isinstance(reply, dict) else {}


def offer(sock: socket.socket, secret: str, ep_setup: str) -> int | None:
    """Hand this process's stdio, directory, umask and environment to the resident; the pid of the
    process serving the session, or None when the resident declined it (stale) and serves nothing."""
    umask = os.umask(0o077)
    os.umask(umask)
    header = {"v": PROTOCOL, "secret": secret, "setup": ep_setup, "umask": umask, "env": dict(os.environ)}
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        socket.send_fds(sock, [b"R"], [0, 1, 2, here])
    finally:
        os.close(here)
    sock.sendall(json.dumps(header).encode() + b"\n")
    pid = _line(sock).get("pid")
    return pid if isinstance(pid, int) and pid > 0 else None


def follow(sock: socket.socket, pid: int) -> int:
    """Stand in for session `pid` until it ends: its exit code."""
    # The session's process holds the client's pipes now; this one lets go of them, so the client sees
    # them close when that process ends. Signals the client sends this process go to the session.
    blank = os.open(os.devnull, os.O_RDWR)
    os.dup2(blank, 0)
    os.dup2(blank, 1)
    os.close(blank)

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, relay)
    try:
        sock.settimeout(None)
        code = _line(sock).get("exit")
    except (OSError, ValueError):
        code = None
    if not isinstance(code, int):
        # The resident went away first: the session's process still holds the client's pipes, so this one
        # stands in for it until it ends, as the client expects of the process it started.
        print(f"ratchet serve: the resident serve server went away; waiting for session {pid}", file=sys.stderr)
        _wait_gone(pid)
        return 1
    return code


def _wait_gone(pid: int) -> None:
    """Return once process `pid` (not a child of this one) has ended."""
    import select  # start-up: only when the resident went away before its session

    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return  # already gone
    try:
        select.select([handle], [], [])
    finally:
        os.close(handle)


def serve_front(argv: Sequence[str]) -> int | None:
    """Serve `serve ARGV` through the resident: the exit code, or None when this process must serve
    (said on stderr)."""
    why = "stale: Ratchet changed since it started"
    try:
        cwd = os.getcwd()  # FileNotFoundError: a directory removed since
        ep = endpoint(argv, os.environ, cwd)
        sock = connect_or_start(ep)
    except (Untrusted, OSError) as exc:
        sock, why = None, str(exc)
    if sock is not None:
        with sock:
            try:
                pid = offer(sock, read_secret(ep), setup(argv, os.environ, cwd))
            except (Untrusted, OSError, ValueError) as exc:
                pid, why = None, f"it failed: {exc}"
            if pid is not None:
                return follow(sock, pid)
    print(f"ratchet serve: not using a resident serve server ({why}); serving in this process", file=sys.stderr)
    return None
