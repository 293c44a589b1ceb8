"""The resident hook server: decides hook events sent over a Unix socket, exactly as the hook would.

Started by the hook itself (`hook_socket.start_server`) the first time a governed event finds no
server; see `hook_socket` for where it listens, what is trusted and what the hook does when
anything fails. Each event is decided by `hooks.claude_code` with the hook's own options, the engine
opened and closed per event as in a hook process, so what is decided and recorded is the same; only
the interpreter's start and the imports are saved.

One server per set-up: it holds an exclusive lock on `<key>.lock` (and writes its pid there) for
its whole life, so a second one started at the same moment exits at once. It exits after IDLE_S
without an event, and as soon as any of its own modules changed on disk since it started (an upgrade
or an edit): that event is declined as `stale`, the hook decides it itself, and the next event
starts a fresh server. A client that is not this uid (SO_PEERCRED), or that does not present the
secret this server wrote at start (hook_socket.read_secret), is hung up on unanswered.
SIGTERM (`ratchet hook-server stop`) ends it once the events in hand are answered. While it runs it
says so in `<key>.json` (hook_servers.py), which `ratchet status` reads.

    python -m ratchet.claude_code.hook_server --key KEY [--workspace W] [--policies P] [--db D] [--idle-s S]
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from ratchet.claude_code import hook_servers
from ratchet.claude_code.hook_socket import (
    IDLE_S,
    MAX_MESSAGE,
    PROTOCOL,
    endpoint,
    hold_lock,
    peer_uid,
    setup,
    write_secret,
)
from ratchet.claude_code.hooks import HookOptions, claude_code
from ratchet.codex.hooks import codex
from ratchet.policy.load import PolicyCache
from ratchet.record.store import parse_location

log = logging.getLogger("ratchet.claude_code.hook_server")


def _module_stamps() -> dict[str, int]:
    """mtime of every loaded Ratchet module's file: a change means the code on disk is not this code."""
    stamps: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "ratchet" or name.startswith("ratchet.")) and path:
            try:
                stamps[path] = Path(path).stat().st_mtime_ns
            except OSError:
                stamps[path] = -1
    return stamps


def _module_stamps_of(stamps: dict[str, int]) -> dict[str, int]:
    """The current mtime of each file in `stamps` (-1 when it is gone)."""
    current: dict[str, int] = {}
    for path in stamps:
        try:
            current[path] = Path(path).stat().st_mtime_ns
        except OSError:
            current[path] = -1
    return current


class HookServer:
    """Serves one set-up's events until idle or stale."""

    def __init__(self, options: HookOptions, setup: str, idle_s: float, secret: str = "") -> None:
        self.options = options
        self.setup = setup
        self.secret = secret  # what every client must present (hook_socket.read_secret)
        self.idle_s = idle_s
        self.last = time.monotonic()
        self.busy = 0
        self.stamps: dict[str, int] = {}
        self.stale = False
        self.stopped = False
        self.state: str | None = None  # the state file `ratchet status` reads (hook_servers.py)

    def changed(self) -> bool:
        """Whether any module loaded at start changed on disk since (then this server is stale)."""
        return _module_stamps_of(self.stamps) != self.stamps

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            raw = stream.extra(SocketAttribute.raw_socket)
            if peer_uid(raw) != os.getuid():
                return  # another uid: no answer (its hook fails closed)
            self.busy += 1
            try:
                reply = await self.answer(stream)
                await stream.send(json.dumps(reply).encode())
            except Exception as exc:  # the client fails closed on a missing reply
                log.warning("ratchet hook server: %s: %s", type(exc).__name__, exc)
            finally:
                self.busy -= 1
                self.last = time.monotonic()
                if self.state is not None:
                    hook_servers.touch(self.state)

    async def answer(self, stream: anyio.abc.SocketStream) -> dict[str, Any]:
        data = bytearray()
        while True:
            try:
                chunk = await stream.receive()
            except anyio.EndOfStream:
                break
            data += chunk
            if len(data) > MAX_MESSAGE:
                raise ValueError(f"event over {MAX_MESSAGE} bytes")
        header, _, event = bytes(data).partition(b"\n")
        meta = json.loads(header)
        if not isinstance(meta, dict) or meta.get("v") != PROTOCOL or not isinstance(meta.get("attended"), bool):
            raise ValueError("not a hook request of this protocol")
        given = meta.get("secret")
        if not self.secret or not isinstance(given, str) or not hmac.compare_digest(given, self.secret):
            raise PermissionError("the caller does not hold this server's secret; no answer")
        if meta.get("setup") != self.setup:
            return {"stale": True}  # another set-up whose name collides with this one's: its hook decides
        if self.stale or self.changed():
            self.stale = True
            return {"stale": True}
        if meta.get("client") == "codex":
            return {"answer": await codex(event, self.options)}
        return {"answer": await claude_code(event, self.options, attended=meta["attended"])}

    async def serve(self, listener: anyio.abc.SocketListener) -> None:
        self.stamps = _module_stamps()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while True:
                    await anyio.sleep(min(5.0, self.idle_s / 4))
                    if self.busy == 0 and (self.stale or time.monotonic() - self.last > self.idle_s):
                        tg.cancel_scope.cancel()
                        return

            async def stop() -> None:  # `ratchet hook-server stop`: finish what is in hand, then exit
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        self.stopped = True
                        while self.busy:  # noqa: ASYNC110 - a counter, not an event
                            await anyio.sleep(0.05)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            tg.start_soon(stop)
            await listener.serve(self.handle, task_group=tg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ratchet.claude_code.hook_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--key", required=True)
    parser.add_argument("--workspace")
    parser.add_argument("--policies")
    parser.add_argument("--db")
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = {k: v for k, v in (("workspace", args.workspace), ("policies", args.policies), ("db", args.db)) if v}
    ep = endpoint(options)
    if ep.key != args.key:
        log.warning(
            "ratchet hook server: this environment names another server (%s, not %s); exiting", ep.key, args.key
        )
        return 2
    lock = hold_lock(ep.directory, ep.lock)
    if lock is None:
        return 0  # another server holds it
    hook_options = HookOptions(
        workspace=Path(args.workspace) if args.workspace else None,
        policies=Path(args.policies) if args.policies else None,
        db=parse_location(args.db) if args.db else None,
        policies_cache=PolicyCache(),
    )
    server = HookServer(hook_options, setup(ep.argv, os.environ), args.idle_s, write_secret(ep))
    served = {k: str(Path(v).resolve()) for k, v in options.items() if k != "db" or "://" not in v}
    served.update({k: v for k, v in options.items() if k == "db" and "://" in v})
    server.state = hook_servers.publish(ep.directory, ep.key, args.idle_s, served)

    async def run() -> None:
        Path(ep.socket).unlink(missing_ok=True)  # a dead server's; the lock says none is alive
        listener = await anyio.create_unix_listener(ep.socket, mode=0o600)
        log.info("ratchet hook server %s: listening on %s (pid %d)", ep.key, ep.socket, os.getpid())
        try:
            await server.serve(listener)
        finally:
            Path(ep.socket).unlink(missing_ok=True)
            await listener.aclose()

    try:
        anyio.run(run)
    finally:
        hook_servers.withdraw(server.state)
        os.close(lock)
    why = "stopped" if server.stopped else "code changed" if server.stale else "idle"
    log.info("ratchet hook server %s: exiting (%s)", ep.key, why)
    return 0


if __name__ == "__main__":
    sys.exit(main())
