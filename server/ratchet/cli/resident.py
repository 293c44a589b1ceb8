"""The resident serve server: Ratchet imported and the server built once, a forked process per session.

Started by `ratchet serve --resident` (mcp/front.py) the first time its set-up finds none. It imports
the CLI and the MCP server, builds the server for its `serve` arguments, and listens on a Unix socket
beside the resident hook servers' (claude_code/hook_socket.py says where, and why a sandbox cannot
reach it). For each connection it checks, the front hands over its stdin, stdout, stderr and working
directory (SCM_RIGHTS), its umask and its whole environment; the resident forks, and the child takes
them as its own and runs `ratchet serve ARGS` through the CLI's own `main`, exactly as a serve process
started by the client would (the fail-closed check, its own engine and session, the signals, the exit
code), only without the imports. The child's exit code goes back to the front, which exits with it.

A connection is served only when: the peer runs as this uid (SO_PEERCRED; anything else is hung up on
unread), it presents this resident's secret (hook_socket.write_secret; else hung up on), and its set-up
is this resident's (else, like a resident whose files changed since it started, it answers `stale` and
the front serves in its own process). A front that vanishes (its connection closes while its session
runs) has its session sent SIGTERM.

One resident per set-up: it holds `<key>.lock` for its whole life. It exits after --idle-s with no
session, once no session runs after Ratchet's files changed, and on SIGTERM/SIGINT (`ratchet
hook-server stop`), which it passes to every running session (each records its running calls as
interrupted and closes its database, as a signalled `ratchet serve` does) before it exits. While it
runs, `<key>.json` (claude_code/hook_servers.py) says so, for `ratchet status`.

The parent never runs an event loop or a thread, so that forking it is safe.

    python -m ratchet.cli.resident --key KEY [--idle-s S] -- SERVE_ARGS...
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import ratchet
from ratchet.claude_code import hook_servers
from ratchet.claude_code.hook_socket import IDLE_S, Endpoint, hold_lock, peer_uid, write_secret
from ratchet.cli import main as cli_main
from ratchet.cli import project_workspace
from ratchet.cli.parser import build_parser
from ratchet.cli.serve import prepare, serve_config
from ratchet.mcp.front import MAX_HEADER, PROTOCOL, endpoint, setup

log = logging.getLogger("ratchet.resident")
HANDSHAKE_S = 10.0  # a connection must hand over within this long
FDS = 4  # stdin, stdout, stderr, working directory


def package_stamps() -> dict[str, int]:
    """mtime of every file of the installed Ratchet package: a change means the code on disk is not this code
    (a session forked from this process would mix the two)."""
    stamps: dict[str, int] = {}
    for path in Path(ratchet.__file__).parent.rglob("*.py"):
        with contextlib.suppress(OSError):
            stamps[str(path)] = path.stat().st_mtime_ns
    return stamps


class Resident:
    """Accepts sessions for one set-up and forks a process for each."""

    def __init__(self, listener: socket.socket, ep: Endpoint, secret: str, argv: list[str], idle_s: float) -> None:
        self.listener = listener
        self.lock: int | None = None  # the fd holding `<key>.lock`; a session's process lets go of it
        self.ep = ep
        self.secret = secret
        self.argv = argv
        self.setup = setup(argv, os.environ, str(Path.cwd()))
        self.idle_s = idle_s
        self.stamps = package_stamps()
        self.children: dict[int, socket.socket] = {}  # session pid -> its front's connection
        self.signalled: list[int] = []
        self.stopping = False
        self.stale = False
        self.last = time.monotonic()
        self.started_at = time.time()
        self.state: str | None = None
        self.served: dict[str, str] = {}
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> str:
        """Serve until idle, stale or stopped; why it ended."""
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda n, _f: self.signalled.append(n))
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            try:
                self.turn()
            except Exception as exc:  # one connection's trouble never ends the sessions running
                log.warning("%s: %s", type(exc).__name__, exc)
                time.sleep(0.05)
            if not self.children:
                if self.stopping:
                    return "stopped"
                if self.stale:
                    return "code changed"
                if time.monotonic() - self.last > self.idle_s:
                    return "idle"

    def turn(self) -> None:
        """Wait for the next connection, closed front or signal, and handle it."""
        for key, _ in self.selector.select(timeout=min(5.0, max(self.idle_s / 4, 0.05))):
            if key.fileobj is self.listener:
                self.accept()
            elif key.fileobj == self.wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            elif isinstance(key.fileobj, socket.socket):
                self.front_gone(key.fileobj)
        while self.signalled:
            if self.signalled.pop() in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
                self.stop()
        self.reap()

    def publish(self) -> None:
        """Say in the state file that this server runs, and how many sessions it serves."""
        extra = {**self.served, "kind": hook_servers.SERVE_KIND, "sessions": str(len(self.children))}
        self.state = hook_servers.publish(self.ep.directory, self.ep.key, self.idle_s, extra, self.started_at)

    def stop(self) -> None:
        """Take no more sessions, and end the running ones as a signalled `ratchet serve` ends."""
        self.stopping = True
        self.selector.unregister(self.listener)
        self.listener.close()
        Path(self.ep.socket).unlink(missing_ok=True)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reap(self) -> None:
        """Tell each ended session's front its exit code."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"exit": code if code >= 0 else 128 - code}).encode() + b"\n")
                self.forget(conn)
            log.info("session %d ended (exit %d)", pid, code)
            self.last = time.monotonic()
            self.publish()

    def forget(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def front_gone(self, conn: socket.socket) -> None:
        """The front's connection closed (or spoke) while its session runs: end the session."""
        for pid, held in list(self.children.items()):
            if held is conn:
                log.info("the front of session %d went away; ending the session", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)

    # -- one connection ------------------------------------------------------------------------------

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(HANDSHAKE_S)
            if peer_uid(conn) != os.getuid():
                raise PermissionError("a peer of another uid")
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 1, FDS)
            meta = self.handshake(conn, fds)
        except Exception as exc:
            log.warning("refused a connection: %s: %s", type(exc).__name__, exc)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        if meta is None:  # declined, said so
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        self.fork(conn, fds, meta)

    def handshake(self, conn: socket.socket, fds: list[int]) -> dict[str, Any] | None:
        """The front's header when this resident serves it; None once it was told `stale`."""
        if len(fds) != FDS:
            raise ValueError(f"{len(fds)} descriptors handed over, not {FDS}")
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = conn.recv(1 << 16)
            if not chunk:
                raise ValueError("the connection closed before its header")
            data += chunk
            if len(data) > MAX_HEADER:
                raise ValueError(f"a header over {MAX_HEADER} bytes")
        meta = json.loads(data)
        if not isinstance(meta, dict) or meta.get("v") != PROTOCOL:
            raise ValueError("not a serve hand-over of this protocol")
        given = meta.get("secret")
        if not isinstance(given, str) or not hmac.compare_digest(given, self.secret):
            raise PermissionError("the caller does not hold this server's secret")
        env, umask = meta.get("env"), meta.get("umask")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()) or not isinstance(umask, int):
            raise ValueError("the hand-over has no environment or umask")
        if self.stale or self.stopping or package_stamps() != self.stamps or meta.get("setup") != self.setup:
            self.stale = self.stale or package_stamps() != self.stamps
            conn.sendall(json.dumps({"stale": True}).encode() + b"\n")
            return None
        return meta

    def fork(self, conn: socket.socket, fds: list[int], meta: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the session's process
            code = 70
            try:
                code = self.become_session(conn, fds, meta)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ)
        log.info("session %d started", pid)
        self.publish()

    def become_session(self, conn: socket.socket, fds: list[int], meta: dict[str, Any]) -> int:
        """In the forked child: take the front's stdio, directory, umask and environment; serve."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        self.selector.close()
        for fd in (self.wake_r, self.wake_w, *([] if self.lock is None else [self.lock])):
            os.close(fd)
        for held in (self.listener, conn, *self.children.values()):
            held.close()
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        os.fchdir(fds[3])
        os.close(fds[3])
        os.umask(meta["umask"])
        os.environ.clear()
        os.environ.update(meta["env"])
        log.handlers.clear()
        log.propagate = False
        sys.argv = ["ratchet", "serve", *self.argv]
        code = cli_main(["serve", *self.argv])
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        return code


def _prepare(argv: list[str]) -> dict[str, str]:
    """Build the server for `serve ARGV` ahead of the sessions; what it serves, for the state file."""
    try:
        args = build_parser().parse_args(["serve", *argv])
        args.workspace = str(project_workspace(args.workspace))
        config = serve_config(args)
        prepare(config)
    except (Exception, SystemExit) as exc:  # each session's own `ratchet serve` reports it
        log.warning("the server is not built ahead: %s: %s", type(exc).__name__, exc)
        return {}
    served = {"workspace": str(config.workspace)}
    if config.policies is not None:
        served["policies"] = str(Path(config.policies).resolve())
    if config.db is not None:
        served["db"] = str(config.db)
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ratchet.cli.resident", description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True)
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    parser.add_argument("serve", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    serve_argv = args.serve[1:] if args.serve[:1] == ["--"] else args.serve
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s ratchet resident serve server: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    ep = endpoint(serve_argv, os.environ, str(Path.cwd()))
    if ep.key != args.key:
        log.warning("this environment names another server (%s, not %s); exiting", ep.key, args.key)
        return 2
    lock = hold_lock(ep.directory, ep.lock)
    if lock is None:
        return 0  # another resident of this set-up holds it
    # The sessions' logging as `ratchet serve` sets it up (cli.main), before the SDK's server sets its own.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    served = _prepare(serve_argv)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(ep.socket).unlink(missing_ok=True)  # a dead resident's; the lock says none is alive
    old = os.umask(0o177)
    try:
        listener.bind(ep.socket)  # created 0600: nobody else may open it
    finally:
        os.umask(old)
    server = Resident(listener, ep, write_secret(ep), serve_argv, args.idle_s)
    server.served, server.lock = served, lock
    server.publish()
    listener.listen(64)
    os.chdir("/")  # the sessions take their front's directory; this one keeps none busy
    log.info("%s: listening on %s (pid %d)", ep.key, ep.socket, os.getpid())
    why = "failed"
    try:
        why = server.run()
    finally:
        if not server.stopping:
            Path(ep.socket).unlink(missing_ok=True)
            listener.close()
        if server.state is not None:
            hook_servers.withdraw(server.state)
        os.close(lock)
        log.info("%s: exiting (%s)", ep.key, why)
    return 0


if __name__ == "__main__":
    sys.exit(main())
