"""The record as the evidence commands read it: typed reads for metrics, explain, report and simulate.

Each read is one unit of work in one round trip (`Store.call`): the rows it needs from `actions`,
`transitions` and `complaints`, turned into frozen records, so that nothing above the record layer
writes or parses SQL. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ratchet.record.store import Store

# Words of the record the reads name in SQL, in one place.
ROUTE_HANDOFF = "escalate"  # a handoff the agent asked for (`request_handoff`): no governed call
KIND_PIN = "pin"
NO_RULE = ""  # a call refused before the gate (bad path, bad arguments) has no policy rule

T = TypeVar("T")

_ACTION_COLUMNS = (
    "id, session_id, created_at, tool, target, class, coalesce(evidence_class, class) AS judged, rule, policy, "
    "preview, intent, confidence, class_level, level, route, triggers_json, flagged, status, sample, error, "
    "finished_at, reviewer, review_seconds, review_note, review_channel, evidence, edited, resolution, "
    "resolution_note, resolved_at, subject_json, level_transition, hidden_lines"
)


@dataclass(frozen=True)
class ActionRecord:
    """One recorded call, as the evidence commands read it."""

    id: int
    session_id: str
    created_at: float
    tool: str
    target: str
    action_class: str
    evidence_class: str  # the class its samples count for (the call's own class unless a side effect set it)
    rule: str
    policy: str
    preview: str
    hidden_lines: int  # changed lines the preview folded away
    intent: str | None
    confidence: float | None
    class_level: str
    level: str
    route: str
    triggers: list[dict[str, Any]]
    flagged: bool
    status: str
    sample: str | None
    error: str | None
    finished_at: float | None
    reviewer: str | None
    review_seconds: float | None
    review_note: str | None
    review_channel: str | None
    evidence: str | None
    edited: bool
    resolution: str | None
    resolution_note: str | None
    resolved_at: float | None
    subject: dict[str, Any] | None  # what the matcher saw (None: refused before the gate, or a schema v1 row)
    level_transition: int | None

    @property
    def settled_at(self) -> float:
        """When its outcome (and so its sample) was recorded: finished, else created."""
        return self.finished_at if self.finished_at is not None else self.created_at


@dataclass(frozen=True)
class TransitionRecord:
    """One recorded move of a class (or of the pseudo-class `*`: a freeze)."""

    id: int
    action_class: str
    at: float
    from_level: str
    to_level: str
    kind: str
    actor: str
    reason: str
    evidence: dict[str, Any]
    action_id: int | None


@dataclass(frozen=True)
class ComplaintRecord:
    """A complaint about an action that ran."""

    id: int
    action_id: int
    at: float
    reason: str
    actor: str


@dataclass(frozen=True)
class PeriodRecord:
    """The gated actions of a period, oldest first, and the complaints about them."""

    actions: list[ActionRecord]
    complaints: dict[int, list[ComplaintRecord]]


@dataclass(frozen=True)
class ActionStory:
    """One action and what the record says around it."""

    action: ActionRecord
    level_transition: TransitionRecord | None  # the move that set the class level it was decided at
    pin: TransitionRecord | None  # the last pin of its class at or before it was decided
    complaints: list[ComplaintRecord]
    moves: list[TransitionRecord]  # the moves its outcome or complaint caused


@dataclass(frozen=True)
class History:
    """The whole record, in id order: every action, transition and complaint, and each class's cached level."""

    actions: list[ActionRecord]
    transitions: list[TransitionRecord]
    complaints: list[ComplaintRecord]
    levels: dict[str, str] = field(default_factory=dict)


def _action(row: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        id=int(row["id"]),
        session_id=row["session_id"],
        created_at=float(row["created_at"]),
        tool=row["tool"],
        target=row["target"],
        action_class=row["class"],
        evidence_class=row["judged"],
        rule=row["rule"],
        policy=row["policy"],
        preview=row["preview"],
        hidden_lines=int(row["hidden_lines"]),
        intent=row["intent"],
        confidence=row["confidence"],
        class_level=row["class_level"],
        level=row["level"],
        route=row["route"],
        triggers=json.loads(row["triggers_json"]),
        flagged=bool(row["flagged"]),
        status=row["status"],
        sample=row["sample"],
        error=row["error"],
        finished_at=row["finished_at"],
        reviewer=row["reviewer"],
        review_seconds=row["review_seconds"],
        review_note=row["review_note"],
        review_channel=row["review_channel"],
        evidence=row["evidence"],
        edited=bool(row["edited"]),
        resolution=row["resolution"],
        resolution_note=row["resolution_note"],
        resolved_at=row["resolved_at"],
        subject=None if row["subject_json"] is None else json.loads(row["subject_json"]),
        level_transition=row["level_transition"],
    )


def _transition(row: sqlite3.Row) -> TransitionRecord:
    return TransitionRecord(
        id=int(row["id"]),
        action_class=row["class"],
        at=float(row["at"]),
        from_level=row["from_level"],
        to_level=row["to_level"],
        kind=row["kind"],
        actor=row["actor"],
        reason=row["reason"],
        evidence=json.loads(row["evidence_json"]),
        action_id=row["action_id"],
    )


def _complaint(row: sqlite3.Row) -> ComplaintRecord:
    return ComplaintRecord(int(row["id"]), int(row["action_id"]), float(row["at"]), row["reason"], row["actor"])


async def _read(store: Store, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` in one round trip, on one snapshot of the database (a read transaction of its own,
    unless the caller already holds one)."""

    def snapshot(conn: sqlite3.Connection) -> T:
        if conn.in_transaction:
            return fn(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    return await store.call(snapshot)


_TRANSITION_COLUMNS = "id, class, at, from_level, to_level, kind, actor, reason, evidence_json, action_id"


async def period(
    store: Store, since: float | None = None, until: float | None = None, action_class: str | None = None
) -> PeriodRecord:
    """The gated actions created in [since, until) (of one class, if given) and their complaints."""
    where = ["rule != ?"]
    params: list[object] = [NO_RULE]
    for clause, value in (("created_at >= ?", since), ("created_at < ?", until), ("class = ?", action_class)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = " AND ".join(where)

    def read(conn: sqlite3.Connection) -> PeriodRecord:
        actions = [
            _action(r) for r in conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE {sql} ORDER BY id", params)
        ]
        complaints: dict[int, list[ComplaintRecord]] = {}
        for r in conn.execute(
            f"SELECT * FROM complaints WHERE action_id IN (SELECT id FROM actions WHERE {sql}) ORDER BY id", params
        ):
            complaints.setdefault(int(r["action_id"]), []).append(_complaint(r))
        return PeriodRecord(actions, complaints)

    return await _read(store, read)


async def action_story(store: Store, action_id: int) -> ActionStory | None:
    """One action, the move behind its class level, the pin it met, its complaints and the moves it caused."""

    def read(conn: sqlite3.Connection) -> ActionStory | None:
        row = conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE id = ?", (action_id,)).fetchone()
        if row is None:
            return None
        action = _action(row)
        level = None
        if action.level_transition is not None:
            found = conn.execute(
                f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE id = ?", (action.level_transition,)
            ).fetchone()
            level = None if found is None else _transition(found)
        pin = conn.execute(
            f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE class = ? AND kind = ? AND at <= ? "
            "ORDER BY id DESC LIMIT 1",
            (action.action_class, KIND_PIN, action.created_at),
        ).fetchone()
        complaints = conn.execute("SELECT * FROM complaints WHERE action_id = ? ORDER BY id", (action_id,))
        moves = conn.execute(
            f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE action_id = ? ORDER BY id", (action_id,)
        )
        return ActionStory(
            action,
            level,
            None if pin is None else _transition(pin),
            [_complaint(c) for c in complaints],
            [_transition(m) for m in moves],
        )

    return await _read(store, read)


async def history(store: Store, *, handoffs: bool = False) -> History:
    """Every action (handoffs only when asked), transition and complaint, in id order, and the cached levels."""

    def read(conn: sqlite3.Connection) -> History:
        which = "" if handoffs else "WHERE route != ?"
        actions = conn.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions {which} ORDER BY id", () if handoffs else (ROUTE_HANDOFF,)
        )
        return History(
            [_action(r) for r in actions],
            [_transition(t) for t in conn.execute(f"SELECT {_TRANSITION_COLUMNS} FROM transitions ORDER BY id")],
            [_complaint(c) for c in conn.execute("SELECT * FROM complaints ORDER BY id")],
            {str(r["name"]): str(r["level"]) for r in conn.execute("SELECT name, level FROM class_state")},
        )

    return await _read(store, read)
