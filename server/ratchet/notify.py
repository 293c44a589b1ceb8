"""Tell a human something landed in the inbox: run the policy's `notify` command with the packet on stdin.

The command (a desktop notification, a team chat script...) is started detached and never awaited:
its failure, slowness or absence is logged and never blocks or changes the gate's answer.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("ratchet.notify")


def notify(argv: Sequence[str] | None, payload: dict[str, Any]) -> bool:
    """Start `argv` with `payload` as JSON on stdin; False (and a log line) if it could not start."""
    if not argv:
        return False
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
