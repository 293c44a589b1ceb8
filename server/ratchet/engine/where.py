"""Where a call was made: its origin, the host and the workspace it was recorded in (engine/origin.py says
what an origin is for: a draft approved elsewhere runs only where it was made)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ratchet import repository
from ratchet.engine.core import Setting
from ratchet.record.lifecycle import Status

HOST_ENV = "RATCHET_HOST"


def this_host() -> str:
    """This machine's name in the record: `$RATCHET_HOST` if set (a container, a test), else the host name."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


@dataclass(frozen=True)
class Origin:
    """Where an action was made: a host and a workspace's absolute path (and, not part of where it runs,
    the repository the workspace is a clone of: ratchet/repository.py)."""

    host: str
    workspace: str
    repo: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, setting: Setting) -> Origin:
        """This process's origin."""
        root = setting.workspace.root
        return cls(this_host(), str(root), repository.of_workspace(root))

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Origin | None:
        """A recorded action's origin; None for one recorded before origins were."""
        if row["origin_host"] is None or row["origin_workspace"] is None:
            return None
        return cls(str(row["origin_host"]), str(row["origin_workspace"]))

    def __str__(self) -> str:
        return f"{self.host}:{self.workspace}"


def waiting_line(row: dict[str, Any]) -> str | None:
    """What an approved draft waits for, naming its origin; None for any other action."""
    origin = Origin.of_row(row)
    if row["status"] != Status.APPROVED or origin is None:
        return None
    return f"approved; waits for its origin to run it: host {origin.host}, workspace {origin.workspace}"


__all__ = ["HOST_ENV", "Origin", "this_host", "waiting_line"]
