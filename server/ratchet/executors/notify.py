"""Tell a human something landed in the inbox: run the policy's `notify` command with the packet on stdin.

The command (a desktop notification, a team chat script...) is started detached and never awaited:
its failure, slowness or absence is logged and never blocks or changes the gate's answer.

Runs are rate limited per process (`[defaults.limits] notifications_per_minute`, over a sliding
window of `WINDOW_S` seconds). Events past the limit are never one process each: they are held and
delivered together in ONE run, as soon as the window has room again (or when the server closes),
whose payload says how many events it carries:

    {"status": "coalesced", "count": 47, "ids": [...], "events": [the last few payloads]}
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("ratchet.executors.notify")

WINDOW_S = 60.0
# A coalesced run names at most this many ids and carries at most this many full payloads.
MAX_IDS = 1000
MAX_EVENTS = 10
# The seam tests own: the clock the rate window reads.
clock: Callable[[], float] = time.monotonic


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


def _spawn(argv: Sequence[str], payload: dict[str, Any]) -> bool:
    """Start `argv` with `payload` as JSON on stdin; False (and a log line) if it could not start."""
    data = json.dumps(payload, default=str).encode()
    try:
        proc = subprocess.Popen(
            list(argv),
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
