"""Each class's standing in the database: its level, its window, and every move it makes.

This is where the pure rules of trust.py meet the store. The functions are synchronous and take
the SQLite connection: callers run them on the database thread with `store.run` (one transaction,
one round trip) or `store.call` (inside a transaction the caller holds), so an outcome, its sample
and any transition it causes commit together or not at all. The only ways up are evidence (`apply_sample`) and a
reviewed change of a class's `start` in the policy files (`sync_policy`); humans can only lower.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import InvalidRequest
from .levels import Level
from .policy import ActionClass, Policy
from .store import ClassRow, add_transition, class_row, class_row_from, put_class
from .trust import Sample, Window, add_sample, evidence, flip_sample, judge


@dataclass(frozen=True)
class Transition:
    """A recorded move of a class."""

    id: int
    action_class: str
    from_level: str
    to_level: str
    kind: str
    actor: str
    reason: str
    evidence: dict[str, Any]

    def line(self) -> str:
        """`docs-write: draft -> confirm (promote: ...)`."""
        return f"{self.action_class}: {self.from_level} -> {self.to_level} ({self.kind}: {self.reason})"


def window_of(row: ClassRow | None) -> Window:
    """The trust window stored in a class row."""
    return Window(tuple(Sample(aid, ok) for aid, ok in row.window)) if row else Window()


def fresh_row(cls: ActionClass) -> ClassRow:
    """The standing of a class never seen before: its policy start, no evidence."""
    return ClassRow(cls.name, cls.start.label, cls.start.label, None, [], time.time(), None)


def _move(
    conn: sqlite3.Connection,
    cls: ActionClass,
    row: ClassRow,
    to: Level,
    kind: str,
    actor: str,
    reason: str,
    ev: dict[str, Any],
    action_id: int | None,
    *,
    policy_start: str | None = None,
) -> Transition:
    tid = add_transition(conn, cls.name, row.level, to.label, kind, actor, reason, ev, action_id)
    # A move always starts a fresh window: evidence is earned at the level it is about.
    put_class(conn, ClassRow(cls.name, to.label, policy_start or row.policy_start, row.pinned, [], time.time(), tid))
    return Transition(tid, cls.name, row.level, to.label, kind, actor, reason, ev)


def apply_sample(conn: sqlite3.Connection, cls: ActionClass, action_id: int, ok: bool) -> Transition | None:
    """Add one sample to the class's window and promote or demote if the window says so."""
    row = class_row(conn, cls.name) or fresh_row(cls)
    return _settle(conn, cls, row, add_sample(window_of(row), Sample(action_id, ok), cls.trust), action_id)


def complain(conn: sqlite3.Connection, cls: ActionClass, action_id: int, reason: str) -> Transition | None:
    """A complaint: demote at once where the class says so, else count it against the window."""
    row = class_row(conn, cls.name) or fresh_row(cls)
    level = Level.parse(row.level)
    window = window_of(row)
    if cls.demote_on_complaint:
        if level <= cls.floor:
            return None
        ev = asdict(evidence(window, cls.trust))
        reason = f"complaint on action {action_id}: {reason}"
        return _move(conn, cls, row, level.down(), "complaint", "human", reason, ev, action_id)
    flipped = flip_sample(window, action_id)
    return None if flipped is None else _settle(conn, cls, row, flipped, action_id)


def _settle(
    conn: sqlite3.Connection, cls: ActionClass, row: ClassRow, window: Window, action_id: int
) -> Transition | None:
    """Judge the new window: move the class if it says so, else keep the window."""
    level = Level.parse(row.level)
    pinned = Level.parse(row.pinned) if row.pinned else None
    # A pin at or below the current level holds promotion back: judge against it as the ceiling.
    ceiling = level if pinned is not None and pinned <= level else cls.ceiling
    verdict = judge(window, level, cls.floor, ceiling, cls.trust)
    if verdict.move is not None:
        ev = asdict(verdict.evidence)
        return _move(conn, cls, row, verdict.to_level, verdict.move, "ratchet", verdict.reason, ev, action_id)
    samples = [(s.action_id, s.ok) for s in window.samples]
    put_class(conn, replace(row, window=samples))
    return None


def human_demote(conn: sqlite3.Connection, cls: ActionClass, reason: str, to: Level | None = None) -> Transition:
    """A human lowers a class (one rung, or to `to`), never below its floor; InvalidRequest otherwise."""
    row = class_row(conn, cls.name) or fresh_row(cls)
    level = Level.parse(row.level)
    target = level.down() if to is None else to
    if target >= level:
        raise InvalidRequest(
            f"class {cls.name} is at {level.label}; demote only lowers "
            "(there is no command that promotes: the ratchet promotes on evidence)"
        )
    if target < cls.floor:
        raise InvalidRequest(
            f"class {cls.name} has floor {cls.floor.label}; to hold it lower, use "
            f"`ratchet pin {cls.name} {target.label}`"
        )
    ev = asdict(evidence(window_of(row), cls.trust))
    return _move(conn, cls, row, target, "human-demote", "human", reason, ev, None)


def pin(conn: sqlite3.Connection, cls: ActionClass, level: Level | None, reason: str) -> Transition:
    """Cap a class at `level` (any level, blocked included) or lift the cap (None). Never raises a level."""
    row = class_row(conn, cls.name) or fresh_row(cls)
    current = Level.parse(row.level)
    effective_before = min(current, Level.parse(row.pinned)) if row.pinned else current
    if level is not None and level > current:
        raise InvalidRequest(f"class {cls.name} is at {current.label}; a pin can only hold it at or below that")
    tid = add_transition(
        conn,
        cls.name,
        effective_before.label,
        (level or current).label,
        "pin" if level is not None else "unpin",
        "human",
        reason,
        {"earned_level": current.label},
        None,
    )
    put_class(
        conn,
        ClassRow(
            row.name,
            row.level,
            row.policy_start,
            level.label if level else None,
            row.window,
            row.level_since,
            row.transition_id,
        ),
    )
    return Transition(
        tid,
        cls.name,
        effective_before.label,
        (level or current).label,
        "pin" if level else "unpin",
        "human",
        reason,
        {"earned_level": current.label},
    )


def sync_policy(conn: sqlite3.Connection, policy: Policy) -> list[Transition]:
    """Bring stored standings in line with the policy: new classes, a changed start, changed bounds."""
    moves: list[Transition] = []
    rows = {r.name: r for r in map(class_row_from, conn.execute("SELECT * FROM class_state").fetchall())}
    for cls in (*policy.classes.values(), policy.unclassified):
        row = rows.get(cls.name)
        if row is None:
            put_class(conn, fresh_row(cls))
            continue
        level = Level.parse(row.level)
        if row.policy_start != cls.start.label:
            # A reviewed change of `start` is the policy of record: the class restarts there.
            moves.append(
                _move(
                    conn,
                    cls,
                    row,
                    cls.start,
                    "policy",
                    "policy",
                    f"start changed from {row.policy_start} to {cls.start.label} in {cls.file}",
                    {},
                    None,
                    policy_start=cls.start.label,
                )
            )
        elif not cls.floor <= level <= cls.ceiling:
            bounded = min(max(level, cls.floor), cls.ceiling)
            moves.append(
                _move(
                    conn,
                    cls,
                    row,
                    bounded,
                    "policy",
                    "policy",
                    f"bounds are now {cls.floor.label}..{cls.ceiling.label} in {cls.file}",
                    {},
                    None,
                )
            )
    return moves
