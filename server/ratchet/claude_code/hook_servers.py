"""The resident hook servers of this user, as `ratchet status` and `ratchet hook-server` see them; the
resident serve servers (`ratchet serve --resident`, cli/resident.py) write the same state, with `kind`.

A hook server (hook_server.py) writes `<key>.json` beside its socket when it starts: its pid, when it
started, how long it idles before it exits and the options it serves (the hook's --workspace, --policies,
--db); it touches that file after every event, so the file's mtime is its last event. It removes the file
when it exits. A file whose process is gone (killed) is left behind; it is ignored here and removed.

`stop` sends SIGTERM (the server closes its socket and exits) to a server whose process is still the
hook server named in its file, and waits for it to go; SIGKILL if it does not within STOP_S.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ratchet.claude_code.hook_socket import Untrusted, check_directory, socket_dir

STATE_SUFFIX = ".json"
STOP_S = 5.0
SERVE_STOP_S = 20.0  # a serve server's sessions each close their database first (mcp/stdio.py's grace)
HOOK_KIND = "hook"
SERVE_KIND = "serve"  # a resident serve server (cli/resident.py), which writes its state here too
MODULES = {HOOK_KIND: b"ratchet.claude_code.hook_server", SERVE_KIND: b"ratchet.cli.resident"}
NAMES = {HOOK_KIND: "hook server", SERVE_KIND: "resident serve server"}


def state_path(directory: str, key: str) -> str:
    """Where the server of `key` says it runs."""
    return str(Path(directory) / f"{key}{STATE_SUFFIX}")


def publish(
    directory: str, key: str, idle_s: float, options: Mapping[str, str], started_at: float | None = None
) -> str:
    """Write this server's state file (0600; again when what it says changed, keeping `started_at`); its path."""
    path = state_path(directory, key)
    since = time.time() if started_at is None else started_at
    state = {"pid": os.getpid(), "key": key, "started_at": since, "idle_s": idle_s, **options}
    temporary = f"{path}.{os.getpid()}.tmp"  # replaced whole: a reader never sees half a file
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state, out)
    Path(temporary).replace(path)
    return path


def touch(path: str) -> None:
    """Mark an event now (the file's mtime is the server's last event)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def withdraw(path: str) -> None:
    """Remove the state file (the server is exiting)."""
    with contextlib.suppress(OSError):
        Path(path).unlink()


@dataclass(frozen=True)
class HookServer:
    """One running hook server."""

    pid: int
    key: str
    started_at: float
    last_event: float
    idle_s: float
    workspace: str | None
    policies: str | None
    db: str | None
    state: str
    kind: str = HOOK_KIND
    sessions: int = 0  # a serve server's sessions running now

    @property
    def name(self) -> str:
        """What it is, in words: `hook server` or `resident serve server`."""
        return NAMES[self.kind]

    @property
    def exits_at(self) -> float:
        """When it exits if no event comes before."""
        return self.last_event + self.idle_s

    def line(self, now: float | None = None) -> str:
        """`ratchet status`'s line for it."""
        now = time.time() if now is None else now
        since = time.strftime("%H:%M:%S", time.localtime(self.started_at))
        if self.kind == SERVE_KIND:
            return (
                f"resident serve server: running (pid {self.pid}, since {since}, {self.sessions} session(s) now, "
                f"last start or end of one {_span(now - self.last_event)} ago); it exits after {_span(self.idle_s)} "
                "without a session; `ratchet hook-server stop` ends it and its sessions now"
            )
        return (
            f"hook server: running (pid {self.pid}, since {since}, last event {_span(now - self.last_event)} ago); "
            f"it exits after {_span(self.idle_s)} without an event (in {_span(self.exits_at - now)} if none "
            "comes); `ratchet hook-server stop` ends it now"
        )


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _is_server(pid: int, key: str, kind: str = HOOK_KIND) -> bool:
    """Whether `pid` is alive and is the hook (or serve) server of `key` (not a pid reused since)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MODULES.get(kind, MODULES[HOOK_KIND]) in argv and key.encode() in argv


def running(environ: Mapping[str, str] | None = None, workspace: Path | None = None) -> list[HookServer]:
    """The hook servers of this user that are running (serving `workspace`, or any workspace, when given)."""
    directory = socket_dir(environ)
    try:
        check_directory(directory, create=False)  # a directory the hook would not trust is not read either
    except (Untrusted, OSError):
        return []
    try:
        paths = sorted(str(p) for p in Path(directory).iterdir() if p.name.endswith(STATE_SUFFIX))
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
            last = Path(path).stat().st_mtime
            server = HookServer(
                pid=int(state["pid"]),
                key=str(state["key"]),
                started_at=float(state["started_at"]),
                last_event=last,
                idle_s=float(state["idle_s"]),
                workspace=state.get("workspace"),
                policies=state.get("policies"),
                db=state.get("db"),
                state=path,
                kind=SERVE_KIND if state.get("kind") == SERVE_KIND else HOOK_KIND,
                sessions=int(state.get("sessions", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _is_server(server.pid, server.key, server.kind):
            withdraw(path)  # killed without a chance to say so
            continue
        if workspace is not None and server.workspace is not None and Path(server.workspace) != workspace:
            continue
        found.append(server)
    return found


def stop(server: HookServer) -> bool:
    """End `server` (SIGTERM, then SIGKILL after STOP_S); whether it was running."""
    if not _is_server(server.pid, server.key, server.kind):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + (SERVE_STOP_S if server.kind == SERVE_KIND else STOP_S)
    while time.monotonic() < deadline:
        if not _is_server(server.pid, server.key, server.kind):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(server.pid, signal.SIGKILL)
    withdraw(server.state)
    return True
