"""The record of undos: which action a human undid, how, why, and whether it counted as a complaint.

An undo of a file change is done when it is recorded (the file was put back first). An undo of a
commit is a revert commit queued as a draft (`revert_id`): it is done once that draft is approved
and executed. Every undo is also a review in the hash chain (kind `undo`), so it cannot be quietly
removed from the record.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.record import chain
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.lifecycle import Status

# The actor of an undo a failing verification check made (`undo_on_failure`), not a person.
CHECK_ACTOR = "check"


@dataclass(frozen=True)
class Undo:
    """One recorded undo."""

    id: int
    action_id: int
    at: float
    reason: str
    actor: str
    channel: str | None
    forced: bool
    complaint: bool
    revert_id: int | None
    detail: dict[str, Any]
    revert_status: str | None = None  # the revert draft's status, for an undo of a commit

    @property
    def state(self) -> str:
        """`done`, `queued` (a revert draft waits for approval) or `not done` (the revert did not run)."""
        if self.revert_id is None or self.revert_status == Status.EXECUTED:
            return "done"
        if self.revert_status in (Status.DRAFT, Status.APPROVING):
            return "queued"
        return "not done"

    def line(self) -> str:
        """One line for `show` and `history`."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        what = f"undone {when} by {self.actor}"
        if self.revert_id is not None:
            what = f"undo {self.state} {when} by {self.actor}: revert draft {self.revert_id} ({self.revert_status})"
        return what + (" (forced)" if self.forced else "") + f": {self.reason}"


def record(
    conn: sqlite3.Connection,
    action_id: int,
    reason: str,
    actor: str,
    channel: str | None,
    *,
    forced: bool,
    complaint: bool,
    revert_id: int | None,
    detail: dict[str, Any],
) -> int:
    """Record an undo (inside the caller's transaction) and chain it as a review; its id."""
    now = time.time()
    cur = conn.execute(
        "INSERT INTO undos (action_id, at, reason, actor, channel, forced, complaint, revert_id, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (action_id, now, reason, actor, channel, int(forced), int(complaint), revert_id, json.dumps(detail)),
    )
    chain.add_review(conn, action_id, now, "undo", actor, None, reason)
    return int(cur.lastrowid or 0)


def of_actions(conn: sqlite3.Connection, action_ids: Sequence[int]) -> dict[int, Undo]:
    """The latest undo of each of these actions (those that have one)."""
    if not action_ids:
        return {}
    marks = ", ".join("?" * len(action_ids))
    rows = conn.execute(
        "SELECT u.*, a.status AS revert_status FROM undos u LEFT JOIN actions a ON a.id = u.revert_id"
        f" WHERE u.action_id IN ({marks}) ORDER BY u.id",
        tuple(action_ids),
    )
    return {int(r["action_id"]): _undo(r) for r in rows}


def later_change(conn: sqlite3.Connection, action_id: int, target: str) -> dict[str, Any] | None:
    """The latest recorded action after `action_id` on the same target that may have changed it."""
    row = conn.execute(
        "SELECT id, tool, session_id, status FROM actions WHERE id > ? AND target = ?"
        " AND status IN ('executed', 'running', 'allowed', 'asked', 'interrupted') ORDER BY id DESC LIMIT 1",
        (action_id, target),
    ).fetchone()
    return None if row is None else dict(row)


@dataclass(frozen=True)
class UndoFigures:
    """Undos of one class over a period: how many of its executed actions, and how long after."""

    action_class: str
    executed: int
    undone: int
    seconds_to_undo: tuple[float, ...]


def figures(
    conn: sqlite3.Connection, since: float | None, until: float | None, scope: ActionFilter = EVERYTHING
) -> list[UndoFigures]:
    """Per class: executed actions created in [since, until) (those `scope` keeps), how many a human undid,
    and when after (the undos a failing check made are counted with the checks)."""
    lo, hi = since if since is not None else 0.0, until if until is not None else float("inf")
    narrow, narrowed = scope.where()
    executed = {
        str(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT class, count(*) FROM actions WHERE status = 'executed' AND created_at >= ? AND created_at < ?"
            f"{narrow} GROUP BY status, class",  # status first: an index led by the class is no use here
            (lo, hi, *narrowed),
        )
    }
    narrow, narrowed = scope.where("a")
    delays: dict[str, list[float]] = {}
    for name, delay in conn.execute(
        "SELECT a.class, min(u.at) - a.created_at FROM undos u JOIN actions a ON a.id = u.action_id"
        f" WHERE a.created_at >= ? AND a.created_at < ? AND u.actor <> ?{narrow}"
        " GROUP BY u.action_id, a.class, a.created_at",
        (lo, hi, CHECK_ACTOR, *narrowed),
    ):
        delays.setdefault(str(name), []).append(max(0.0, float(delay)))
    return [
        UndoFigures(name, executed.get(name, 0), len(delays.get(name, [])), tuple(sorted(delays.get(name, []))))
        for name in sorted(set(executed) | set(delays))
    ]


def _undo(row: sqlite3.Row) -> Undo:
    return Undo(
        id=int(row["id"]),
        action_id=int(row["action_id"]),
        at=float(row["at"]),
        reason=str(row["reason"]),
        actor=str(row["actor"]),
        channel=row["channel"],
        forced=bool(row["forced"]),
        complaint=bool(row["complaint"]),
        revert_id=row["revert_id"],
        detail=json.loads(row["detail"]),
        revert_status=row["revert_status"],
    )


__all__ = ["CHECK_ACTOR", "Undo", "UndoFigures", "figures", "later_change", "of_actions", "record"]
