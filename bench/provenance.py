"""What every committed results file says about its own run: the command that wrote it, the commit of
the checkout it measured (and whether `server/` had uncommitted changes), and when.

The docs quote figures from these files; `tests/test_docs.py` checks each quoted figure, and the
commit the docs name, against the file.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def stamp(command: str) -> dict[str, Any]:
    """`{"command", "commit", "server_dirty", "measured"}` for a results file written now by `command`."""
    commit = _git("rev-parse", "--short=7", "HEAD")
    dirty = _git("status", "--porcelain", "--", "server")
    return {
        "command": command,
        "commit": commit,
        "server_dirty": bool(dirty) if dirty is not None else None,
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
    }
