"""Tell a human something landed in the inbox: run the policy's `notify` command with the packet on stdin.

The command (a desktop notification, a team chat script...) is started detached and never awaited:
its failure, slowness or absence is logged and never blocks or changes the gate's answer.

Runs are rate limited per process (`[defaults.limits] notifications_per_minute`, over a sliding
window of `WINDOW_S` seconds). Events past the limit are never one process each: they are held and
delivered together in ONE run, as soon as the window has room again (or when the server closes),
whose payload says how many events it carries:

    {"status": "coalesced", "count": 47, "ids": [...], "events": [the last few payloads]}

The command runs as the user who runs Ratchet, outside any sandbox: so it may not be, nor name, a program or
file inside a workspace (the agent could rewrite it; `workspace_problem`, refused when the policy is loaded
and by `ratchet lint`, and again before each run). It starts from a neutral directory (`NEUTRAL_DIR`) with a
scrubbed environment (`KEPT_ENV`: what a desktop notification needs, never the server's credentials), and a
`PATH` without any directory inside a workspace.

When the review page's address is known, each payload also carries `url`: the item on the page
(`BASE/item/ID`; the inbox for a coalesced run), so a desktop notification or a chat message leads
straight to the decision. The URL never carries the token: a browser that has not logged in is asked
to. The address is, in order: `$RATCHET_WEB_URL` (configured: e.g. the address a tunnel or a
reverse proxy gives the page), the page this process serves itself (`serve --http`), or the one a
`ratchet web` on the same trust database published in `<database>.web-url` while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ratchet.inert import inert_values

log = logging.getLogger("ratchet.executors.notify")

WINDOW_S = 60.0
# A coalesced run names at most this many ids and carries at most this many full payloads.
MAX_IDS = 1000
MAX_EVENTS = 10
# The seam tests own: the clock the rate window reads.
clock: Callable[[], float] = time.monotonic
WEB_URL_ENV = "RATCHET_WEB_URL"
ADDRESS_SUFFIX = ".web-url"

NEUTRAL_DIR = "/"
# What the notify command keeps of the server's environment: where to find programs and the user's desktop.
KEPT_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "DISPLAY", "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
)  # fmt: skip
_workspaces: list[Path] = []  # the workspaces of this process: nothing in them is run as the notify command

_own_address: str | None = None
_address_files: list[Path] = []


def set_web_address(base: str | None) -> None:
    """The review page this process serves itself (None: none)."""
    global _own_address
    _own_address = base.rstrip("/") if base else None


def address_file(db: Path) -> Path:
    """Where a running `ratchet web` publishes its address: beside the trust database."""
    return db.with_name(db.name + ADDRESS_SUFFIX)


def watch_address(db: Path) -> None:
    """Look for a `ratchet web` on this database when notifying (its address file, read at each event)."""
    path = address_file(db)
    if path not in _address_files:
        _address_files.append(path)


def publish_address(db: Path, base: str) -> Path:
    """Publish the page's address (no token in it) for servers on the same database; 0600 like its neighbours."""
    path = address_file(db)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(base.rstrip("/") + "\n")
    return path


def withdraw_address(db: Path, base: str) -> None:
    """Remove the published address, if it is still this page's."""
    path = address_file(db)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip() == base.rstrip("/"):
            path.unlink()


def web_address() -> str | None:
    """The review page's base address, if one is configured or known (see the module docstring)."""
    configured = os.environ.get(WEB_URL_ENV, "").strip()
    if configured.startswith(("http://", "https://")):
        return configured.rstrip("/")
    if _own_address is not None:
        return _own_address
    for path in _address_files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = path.read_text(encoding="utf-8").strip()
            if text.startswith(("http://", "https://")) and not any(c.isspace() for c in text):
                return text
    return None


def item_url(item_id: object) -> str | None:
    """The item's address on the review page, or None when no page is known."""
    base = web_address()
    if base is None:
        return None
    return f"{base}/item/{item_id}" if isinstance(item_id, int) else f"{base}/"


class Notifier:
    """One notify command, at most `per_minute` runs per window; the excess coalesced into one run."""

    def __init__(self, argv: Sequence[str], per_minute: int) -> None:
        self.argv = list(argv)
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._runs: deque[float] = deque()
        self._count = 0
        self._ids: list[Any] = []
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._waiting = False

    def send(self, payload: dict[str, Any]) -> bool:
        """Run the command for one event now if the window has room; else hold it for the next run."""
        with self._lock:
            if self._count == 0 and self._room():
                self._runs.append(clock())
                return _spawn(self.argv, payload)
            self._count += 1
            if len(self._ids) < MAX_IDS:
                self._ids.append(payload.get("id"))
            self._events.append(payload)
            if not self._waiting:
                self._waiting = True
                threading.Thread(target=self._wait, daemon=True, name="ratchet-notify").start()
        return True

    def flush(self) -> bool:
        """Deliver the held events now, in one run, whatever the window says (the process is ending)."""
        with self._lock:
            return self._deliver()

    def held(self) -> int:
        """How many events wait for the next run."""
        with self._lock:
            return self._count

    def _room(self) -> bool:
        now = clock()
        while self._runs and self._runs[0] <= now - WINDOW_S:
            self._runs.popleft()
        return len(self._runs) < self.per_minute

    def _deliver(self) -> bool:
        if self._count == 0:
            return False
        payload = {
            "status": "coalesced",
            "count": self._count,
            "ids": list(self._ids),
            "events": list(self._events),
            "message": f"{self._count} items landed in the Ratchet inbox",
        }
        base = web_address()
        if base is not None:
            payload["url"] = f"{base}/"
        self._count, self._ids = 0, []
        self._events.clear()
        self._runs.append(clock())
        return _spawn(self.argv, payload)

    def _wait(self) -> None:
        # Poll the window (at most every half second, so a test's clock can move it) until there is room.
        while True:
            with self._lock:
                if self._count == 0:
                    self._waiting = False
                    return
                if self._room():
                    self._deliver()
                    self._waiting = False
                    return
                wait = self._runs[0] + WINDOW_S - clock()
            time.sleep(min(max(wait, 0.01), 0.5))


_notifiers: dict[tuple[tuple[str, ...], int], Notifier] = {}
_registry_lock = threading.Lock()


def notify(argv: Sequence[str] | None, per_minute: int, payload: dict[str, Any]) -> bool:
    """Notify about one event (rate limited, coalesced); False (and a log line) if it could not start."""
    if not argv:
        return False
    url = item_url(payload.get("id"))
    if url is not None:
        payload = {**payload, "url": url}
    key = (tuple(argv), per_minute)
    with _registry_lock:
        notifier = _notifiers.get(key)
        if notifier is None:
            notifier = _notifiers[key] = Notifier(argv, per_minute)
    return notifier.send(payload)


def flush_notifications() -> None:
    """Deliver every held event now (called when an engine closes, so nothing held is lost)."""
    with _registry_lock:
        notifiers = list(_notifiers.values())
    for notifier in notifiers:
        notifier.flush()


def _inside(path: Path, roots: Sequence[Path]) -> Path | None:
    """The root `path` (symlinks followed) lies in, if any."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return None
    for root in roots:
        if real == root or root in real.parents:
            return root
    return None


def _search_path(roots: Sequence[Path], environ: dict[str, str] | None = None) -> str:
    """`PATH` without the directories inside the workspaces (a workspace's `node_modules/.bin`, `./bin`...)."""
    given = (os.environ if environ is None else environ).get("PATH", os.defpath)
    kept = [d for d in given.split(os.pathsep) if d and Path(d).is_absolute() and _inside(Path(d), roots) is None]
    return os.pathsep.join(kept)


def workspace_problem(argv: Sequence[str] | None, workspaces: Sequence[Path]) -> str | None:
    """Why the notify command may not run (it is, or names, a program or file inside a workspace), or None."""
    if not argv:
        return None
    roots = [w.resolve() for w in workspaces]
    program = argv[0]
    # A bare name as this process's PATH finds it (a PATH entry inside a workspace counts) and as it will run.
    found = [program] if "/" in program else [shutil.which(program), shutil.which(program, path=_search_path(roots))]
    candidates = [(program, Path(f) if f else None) for f in found]
    for arg in argv[1:]:
        for word in {arg, arg.partition("=")[2]} - {""}:
            candidates.append((word, Path(word)))
    for word, path in candidates:
        if path is None:
            continue
        places = [path] if path.is_absolute() else [root / path for root in roots]
        for place in places:
            if (path.is_absolute() or place.exists()) and (root := _inside(place, roots)) is not None:
                return (
                    f"notify names {word!r}, which is inside the workspace {root}: the agent can rewrite it, and "
                    "the notify command runs as you, outside any sandbox. Install the script outside the "
                    'workspace and name it by its absolute path (notify = ["/usr/local/bin/ratchet-notify"])'
                )
    return None


def guard_workspace(root: Path) -> None:
    """This process acts in `root`: the notify command may not run anything inside it."""
    real = root.resolve()
    if real not in _workspaces:
        _workspaces.append(real)


def _spawn(argv: Sequence[str], payload: dict[str, Any]) -> bool:
    """Start `argv` with `payload` as JSON on stdin; False (and a log line) if it could not start."""
    data = json.dumps(inert_values(payload), default=str).encode()  # a notifier shows it to a person
    problem = workspace_problem(argv, _workspaces)
    if problem is not None:
        log.warning("ratchet: notify command not run: %s", problem)
        return False
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV or k.startswith("LC_")}
    env["PATH"] = _search_path(_workspaces)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=NEUTRAL_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a slow notifier is not our child to wait on, nor killed with us
        )
    except OSError as exc:
        log.warning("ratchet: notify command %s could not start: %s", argv[0], exc)
        return False
    # Feed stdin from a daemon thread: a notifier that never reads must not stall the gate on a full pipe.
    threading.Thread(target=_feed, args=(proc, data, argv[0]), daemon=True).start()
    return True


def _feed(proc: subprocess.Popen[bytes], data: bytes, name: str) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
        proc.wait(timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:  # its business, not the gate's
        log.warning("ratchet: notify command %s did not finish cleanly: %s", name, exc)
