"""Verification checks on the record: each check's result on the action it judged.

A check is not an action: it has no row in `actions`, no gate decision and no sample of its own. Its
result is kept here, on the action it judged (`phase` says when it ran: after the action, `each`, or
at its task's end, `task_end`), so `ratchet show`/`explain`, the packet and `ratchet metrics` can say
what an independent program found. An undo made because a check failed (`undo_on_failure`) is an
undo like a human's, kept in `undos` (record/undos.py) with the check as its actor and the failure as
its reason.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.executors.checks import CheckResult
from ratchet.record.filters import EVERYTHING, ActionFilter


@dataclass(frozen=True)
class RecordedCheck:
    """One check's run as the record keeps it."""

    action_id: int
    at: float
    phase: str  # "each" (right after the action) or "task_end"
    argv: tuple[str, ...]
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    tail: str

    def summary(self) -> str:
        """One line: what ran and how it ended (as CheckResult.summary)."""
        return CheckResult(self.argv, self.passed, self.exit_code, self.timed_out, self.duration_s, self.tail).summary()


def add(conn: sqlite3.Connection, action_id: int, phase: str, results: Iterable[CheckResult]) -> None:
    """Keep the results of the checks run on an action (their output tails are redacted already)."""
    now = time.time()
    conn.executemany(
        "INSERT INTO checks (action_id, at, phase, argv_json, passed, exit_code, timed_out, duration_s, tail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                action_id,
                now,
                phase,
                json.dumps(list(r.argv)),
                int(r.passed),
                r.exit_code,
                int(r.timed_out),
                r.duration_s,
                r.tail,
            )
            for r in results
        ],
    )


def of_actions(conn: sqlite3.Connection, action_ids: Sequence[int]) -> dict[int, list[RecordedCheck]]:
    """The checks run on each of these actions, in the order they ran."""
    if not action_ids:
        return {}
    marks = ", ".join("?" * len(action_ids))
    rows = conn.execute(
        "SELECT action_id, at, phase, argv_json, passed, exit_code, timed_out, duration_s, tail FROM checks "
        f"WHERE action_id IN ({marks}) ORDER BY action_id, id",
        tuple(action_ids),
    )
    out: dict[int, list[RecordedCheck]] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append(
            RecordedCheck(
                int(r[0]), float(r[1]), str(r[2]), tuple(json.loads(r[3])), bool(r[4]), r[5], bool(r[6]), r[7], r[8]
            )
        )
    return out


def of_action(conn: sqlite3.Connection, action_id: int) -> list[RecordedCheck]:
    """The checks run on one action."""
    return of_actions(conn, [action_id]).get(action_id, [])


def task_actions(conn: sqlite3.Connection, task_id: int, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """The executed actions of a task in these classes, oldest first (what `task_end` checks judge)."""
    if not class_names:
        return []
    marks = ", ".join("?" * len(class_names))
    rows = conn.execute(
        "SELECT id, class, evidence_class, session_id, subject_json, sample, tool FROM actions "
        f"WHERE task_id = ? AND status = 'executed' AND class IN ({marks}) ORDER BY id",
        (task_id, *class_names),
    )
    return [dict(r) for r in rows]


def unscoped_actions(conn: sqlite3.Connection, session_id: str, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """The session's executed actions in these classes that no task held and no task-end check judged yet,
    oldest first (what the `task_end` checks judge when the session ends)."""
    if not class_names:
        return []
    marks = ", ".join("?" * len(class_names))
    rows = conn.execute(
        "SELECT a.id, a.class, a.evidence_class, a.session_id, a.subject_json, a.sample, a.tool FROM actions a "
        f"WHERE a.session_id = ? AND a.task_id IS NULL AND a.status = 'executed' AND a.class IN ({marks}) "
        "AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.action_id = a.id AND c.phase = 'task_end') ORDER BY a.id",
        (session_id, *class_names),
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class VerifiedShare:
    """Per class and level (the level the call got): actions that executed, how many were verified by
    at least one check, and how many of those had a check fail."""

    action_class: str
    level: str
    executed: int
    verified: int
    failed: int


def verified_shares(
    conn: sqlite3.Connection,
    since: float | None,
    until: float | None,
    action_class: str | None,
    scope: ActionFilter = EVERYTHING,
) -> list[VerifiedShare]:
    """The verified share per class and class level over the executed actions created in [since, until)
    (those `scope` keeps)."""
    narrow, narrowed = scope.where_named("a")
    # Only the bounds given: a bound written `(:since IS NULL OR ...)` keeps the index on the time from being used.
    for clause, name, value in (
        ("a.created_at >= :since", "since", since),
        ("a.created_at < :until", "until", until),
        ("a.class = :cls", "cls", action_class),
    ):
        if value is not None:
            narrow += f" AND {clause}"
            narrowed[name] = value
    rows = conn.execute(
        "SELECT a.class, a.class_level, count(*), count(v.action_id), coalesce(sum(v.failed), 0) FROM actions a "
        "LEFT JOIN (SELECT action_id, max(CASE WHEN passed = 0 THEN 1 ELSE 0 END) AS failed FROM checks "
        "GROUP BY action_id) v "
        f"ON v.action_id = a.id WHERE a.status = 'executed'{narrow} "
        "GROUP BY a.class_level, a.class ORDER BY a.class, a.class_level",  # level first: see record/evidence.py
        narrowed,
    )
    return [VerifiedShare(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def verification_lines(conn: sqlite3.Connection, action_id: int) -> list[str]:
    """What `ratchet explain` says of an action's checks: each run, with a failing one's last output line."""
    out = []
    for c in of_action(conn, action_id):
        last = c.tail.strip().splitlines()[-1:] if not c.passed and c.tail.strip() else []
        out.append(f"{c.summary()} [{c.phase}]" + (f": {last[0][:200]}" if last else ""))
    return out
