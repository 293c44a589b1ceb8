"""The record as the evidence commands read it: typed reads for metrics, explain, report and simulate.

Each read is one unit of work in one round trip (`Store.call`): the rows it needs from `actions`,
`transitions` and `complaints`, turned into frozen records, so that nothing above the record layer
writes or parses SQL. Nothing here writes.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ratchet.record.filters import EVERYTHING, ActionFilter
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
# The names of those columns, in order: a period's rows are read by position (a name lookup on a row
# scans its columns, and a period holds a hundred thousand rows of thirty-three).
_ACTION_NAMES = tuple(part.rsplit(" AS ", 1)[-1].strip() for part in re.split(r",\s*(?![^()]*\))", _ACTION_COLUMNS))


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
    triggers_json: str
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
    subject_json: str | None
    level_transition: int | None

    # Parsed when read (most views never read them): a cached_property writes past the frozen dataclass.
    @functools.cached_property
    def triggers(self) -> list[dict[str, Any]]:
        """The triggers that lowered or flagged the call, as recorded."""
        found: list[dict[str, Any]] = json.loads(self.triggers_json)
        return found

    @functools.cached_property
    def subject(self) -> dict[str, Any] | None:
        """What the matcher saw (None: refused before the gate, or a schema v1 row)."""
        return None if self.subject_json is None else cast("dict[str, Any]", json.loads(self.subject_json))

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
    r = dict(zip(_ACTION_NAMES, row, strict=True))
    return ActionRecord(
        id=int(r["id"]),
        session_id=r["session_id"],
        created_at=float(r["created_at"]),
        tool=r["tool"],
        target=r["target"],
        action_class=r["class"],
        evidence_class=r["judged"],
        rule=r["rule"],
        policy=r["policy"],
        preview=r["preview"],
        hidden_lines=int(r["hidden_lines"]),
        intent=r["intent"],
        confidence=r["confidence"],
        class_level=r["class_level"],
        level=r["level"],
        route=r["route"],
        triggers_json=r["triggers_json"],
        flagged=bool(r["flagged"]),
        status=r["status"],
        sample=r["sample"],
        error=r["error"],
        finished_at=r["finished_at"],
        reviewer=r["reviewer"],
        review_seconds=r["review_seconds"],
        review_note=r["review_note"],
        review_channel=r["review_channel"],
        evidence=r["evidence"],
        edited=bool(r["edited"]),
        resolution=r["resolution"],
        resolution_note=r["resolution_note"],
        resolved_at=r["resolved_at"],
        subject_json=r["subject_json"],
        level_transition=r["level_transition"],
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
    store: Store,
    since: float | None = None,
    until: float | None = None,
    action_class: str | None = None,
    scope: ActionFilter = EVERYTHING,
) -> PeriodRecord:
    """The gated actions created in [since, until) (of one class, if given; those `scope` keeps) and their
    complaints."""
    where = ["rule != ?"]
    params: list[object] = [NO_RULE]
    for clause, value in (("created_at >= ?", since), ("created_at < ?", until), ("class = ?", action_class)):
        if value is not None:
            where.append(clause)
            params.append(value)
    narrow, narrowed = scope.where()
    sql = " AND ".join(where) + narrow
    params += narrowed

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


# -- a period, from a checkpoint ---------------------------------------------------------------------
#
# The evidence views grow with the period they show, not with the whole history: a class's standing at
# the start of a period is rebuilt from its last level move before it (every move starts a fresh
# window), its last pin and the last freeze, and the samples that can still be in its window there
# (record/schema.py indexes actions by judged class and by when their sample was recorded). The SQL
# is portable: expressions the indexes name (`coalesce(...)`), no engine-specific functions.

_JUDGED = "coalesce(evidence_class, class)"
_SETTLED = "coalesce(finished_at, created_at)"
_LEVEL_KINDS = ("promote", "demote", "complaint", "human-demote", "policy")  # record/integrity.py's LEVEL_KINDS
_PIN_KINDS = ("pin", "unpin")
_FREEZE_KINDS = ("freeze", "unfreeze")
_EVERY_CLASS = "*"  # the pseudo-class a freeze is recorded under
_EARLIEST = float("-inf")


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in values)


@dataclass(frozen=True)
class SampleRow:
    """What a replay reads of an action: when its outcome was recorded and what the outcome rule needs."""

    id: int
    settled_at: float
    sample: str | None
    status: str
    edited: bool
    evidence: str | None


_SAMPLE_COLUMNS = f"id, {_SETTLED}, sample, status, edited, evidence"


def _sample_row(r: sqlite3.Row) -> SampleRow:
    return SampleRow(int(r[0]), float(r[1]), r[2], str(r[3]), bool(r[4]), r[5])


@dataclass(frozen=True)
class Before:
    """What the record says about one class before a moment: enough to rebuild its standing there."""

    first_move: TransitionRecord | None  # its first level move ever: `from_level` is where it began
    last_move: TransitionRecord | None  # its last level move before the moment
    pin: TransitionRecord | None  # its last pin or unpin before the moment
    freeze: TransitionRecord | None  # the last freeze or unfreeze (of every class) before the moment
    tail: list[SampleRow]  # its last samples after `last_move` and before the moment, oldest first
    complaints: list[ComplaintRecord]  # complaints on its actions from the tail's first sample to the moment
    moves: int  # level moves before the moment
    promotions: int  # of which upward (promote, or a policy move up)
    seen: bool  # the record shows an action of the class before the moment


@dataclass(frozen=True)
class ClassPeriod:
    """One class over [since, until): its actions (by when their sample was recorded), the complaints and
    transitions in the period, and what came before it (`Before`)."""

    name: str
    since: float | None
    until: float | None
    before: Before
    actions: list[SampleRow]  # judged in this class, settled in the period, in id order
    complaints: list[ComplaintRecord]  # on actions judged in this class, made in the period
    transitions: list[TransitionRecord]  # its own and the freezes, in the period, in id order


def _before(conn: sqlite3.Connection, name: str, since: float, tail: int) -> Before:
    if since == _EARLIEST:
        return Before(None, None, None, None, [], [], 0, 0, False)
    kinds = _marks(_LEVEL_KINDS)
    first = conn.execute(
        f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE class = ? AND kind IN ({kinds}) ORDER BY id LIMIT 1",
        (name, *_LEVEL_KINDS),
    ).fetchone()
    last = conn.execute(
        f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE class = ? AND kind IN ({kinds}) AND at < ? "
        "ORDER BY id DESC LIMIT 1",
        (name, *_LEVEL_KINDS, since),
    ).fetchone()
    counted = conn.execute(
        f"SELECT count(*), sum(CASE WHEN kind = 'promote' THEN 1 ELSE 0 END) FROM transitions "
        f"WHERE class = ? AND kind IN ({kinds}) AND at < ?",
        (name, *_LEVEL_KINDS, since),
    ).fetchone()
    pin = conn.execute(
        f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE class = ? AND kind IN ({_marks(_PIN_KINDS)}) "
        "AND at < ? ORDER BY id DESC LIMIT 1",
        (name, *_PIN_KINDS, since),
    ).fetchone()
    freeze = conn.execute(
        f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE class = ? AND kind IN ({_marks(_FREEZE_KINDS)}) "
        "AND at < ? ORDER BY id DESC LIMIT 1",
        (_EVERY_CLASS, *_FREEZE_KINDS, since),
    ).fetchone()
    after = _EARLIEST if last is None else float(last["at"])
    rows = conn.execute(
        f"SELECT {_SAMPLE_COLUMNS} FROM actions WHERE {_JUDGED} = ? AND {_SETTLED} < ? AND {_SETTLED} > ? "
        f"AND sample IS NOT NULL AND route != ? ORDER BY {_SETTLED} DESC, id DESC LIMIT ?",
        (name, since, after if after != _EARLIEST else -1e300, ROUTE_HANDOFF, tail),
    ).fetchall()
    samples = [_sample_row(r) for r in reversed(rows)]
    start = samples[0].settled_at if samples else since
    complaints = [
        _complaint(c)
        for c in conn.execute(
            "SELECT c.* FROM complaints c JOIN actions a ON a.id = c.action_id "
            "WHERE coalesce(a.evidence_class, a.class) = ? "
            "AND c.at >= ? AND c.at < ? AND c.at > ? ORDER BY c.id",
            (name, start, since, after if after != _EARLIEST else -1e300),
        )
    ]
    seen = conn.execute(
        f"SELECT 1 FROM actions WHERE {_JUDGED} = ? AND {_SETTLED} < ? LIMIT 1", (name, since)
    ).fetchone()
    return Before(
        None if first is None else _transition(first),
        None if last is None else _transition(last),
        None if pin is None else _transition(pin),
        None if freeze is None else _transition(freeze),
        samples,
        complaints,
        int(counted[0]),
        int(counted[1] or 0),
        seen is not None or last is not None,
    )


def _read_class(
    conn: sqlite3.Connection, name: str, since: float | None, until: float | None, tail: int
) -> ClassPeriod:
    low = _EARLIEST if since is None else since
    high = float("inf") if until is None else until
    low_sql, high_sql = max(low, -1e300), min(high, 1e300)  # finite bounds for the database
    actions = [
        _sample_row(r)
        for r in conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM actions WHERE {_JUDGED} = ? AND {_SETTLED} >= ? AND {_SETTLED} < ? "
            "AND route != ? ORDER BY id",
            (name, low_sql, high_sql, ROUTE_HANDOFF),
        )
    ]
    complaints = [
        _complaint(c)
        for c in conn.execute(
            "SELECT c.* FROM complaints c JOIN actions a ON a.id = c.action_id "
            "WHERE coalesce(a.evidence_class, a.class) = ? AND c.at >= ? AND c.at < ? ORDER BY c.id",
            (name, low_sql, high_sql),
        )
    ]
    transitions = [
        _transition(t)
        for t in conn.execute(
            f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE (class = ? OR (class = ? AND kind IN "
            f"({_marks(_FREEZE_KINDS)}))) AND at >= ? AND at < ? ORDER BY id",
            (name, _EVERY_CLASS, *_FREEZE_KINDS, low_sql, high_sql),
        )
    ]
    return ClassPeriod(name, since, until, _before(conn, name, low, tail), actions, complaints, transitions)


async def class_period(
    store: Store, name: str, since: float | None, until: float | None = None, *, tail: int
) -> ClassPeriod:
    """One class over [since, until) and what came before (`tail`: how many samples before `since` to
    read, enough to rebuild the window there: twice the window size), in one round trip."""
    return await _read(store, lambda conn: _read_class(conn, name, since, until, tail))


async def class_periods(
    store: Store, names: list[str], since: float | None, until: float | None = None, *, tail: dict[str, int]
) -> list[ClassPeriod]:
    """`class_period` for each class, on one snapshot."""
    return await _read(store, lambda conn: [_read_class(conn, n, since, until, tail[n]) for n in names])


@dataclass(frozen=True)
class ClassNames:
    """The classes a period's views name: those with a cached level, and those acted on in the period."""

    levels: dict[str, str]
    acted: set[str]


async def class_names(store: Store, since: float | None, until: float | None = None) -> ClassNames:
    """Each class's cached level, and the classes with a gated action created in [since, until)."""

    def read(conn: sqlite3.Connection) -> ClassNames:
        where, params = ["rule != ?"], [NO_RULE]
        for clause, value in (("created_at >= ?", since), ("created_at < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)  # type: ignore[arg-type]
        acted = {
            str(r[0]) for r in conn.execute(f"SELECT DISTINCT class FROM actions WHERE {' AND '.join(where)}", params)
        }
        levels = {str(r["name"]): str(r["level"]) for r in conn.execute("SELECT name, level FROM class_state")}
        return ClassNames(levels, acted)

    return await _read(store, read)


@dataclass(frozen=True)
class ReplayRecord:
    """What `simulate` replays over a period: the actions created in it (of the named classes, when
    given), their complaints, the transitions in it, and the sessions whose client could not be asked."""

    actions: list[ActionRecord]
    complaints: list[ComplaintRecord]
    transitions: list[TransitionRecord]
    mute_sessions: set[str]


async def replay_record(
    store: Store, since: float | None, classes: frozenset[str] | None = None, *, mute_trigger: str
) -> ReplayRecord:
    """The actions created from `since` on (handoffs left out; only those recorded in or judged for
    `classes`, when given), all complaints on them, the transitions from `since` on (of `classes` and
    the freezes), and the sessions of the period with a `mute_trigger` trigger recorded."""

    def read(conn: sqlite3.Connection) -> ReplayRecord:
        low = -1e300 if since is None else since
        where, params = "route != ? AND created_at >= ?", [ROUTE_HANDOFF, low]
        if classes is not None:
            names = tuple(sorted(classes))
            marks = _marks(names) if names else "NULL"
            where += f" AND (class IN ({marks}) OR evidence_class IN ({marks}))"
            params += [*names, *names]
        actions = [
            _action(r) for r in conn.execute(f"SELECT {_ACTION_COLUMNS} FROM actions WHERE {where} ORDER BY id", params)
        ]
        complaints = [
            _complaint(c)
            for c in conn.execute(
                f"SELECT * FROM complaints WHERE action_id IN (SELECT id FROM actions WHERE {where}) ORDER BY id",
                params,
            )
        ]
        tsql = "at >= ?"
        tparams: list[object] = [low]
        if classes is not None:
            names = tuple(sorted(classes | {_EVERY_CLASS}))
            tsql += f" AND class IN ({_marks(names)})"
            tparams += list(names)
        transitions = [
            _transition(t)
            for t in conn.execute(f"SELECT {_TRANSITION_COLUMNS} FROM transitions WHERE {tsql} ORDER BY id", tparams)
        ]
        mute = {
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT session_id FROM actions WHERE created_at >= ? AND triggers_json LIKE ?",
                (low, f'%"{mute_trigger}"%'),
            )
        }
        return ReplayRecord(actions, complaints, transitions, mute)

    return await _read(store, read)


async def class_befores(store: Store, names: list[str], since: float, *, tail: dict[str, int]) -> dict[str, Before]:
    """`Before` of each class at `since`, on one snapshot (what a replay of the period starts from)."""
    return await _read(store, lambda conn: {n: _before(conn, n, since, tail[n]) for n in names})


# -- a period's figures, aggregated by the database ---------------------------------------------------
#
# `ratchet metrics` reads a period's counts as aggregates (one row per class, level and what became of
# the action), and row by row only the actions a human touched (an answer, a complaint, a resolution):
# the rows a human's figures need, as many as there were human interventions, whatever the agents did.

ROUTE_EXECUTE = "execute"  # the gate let the call run with no human (rules/gate.py's Route.EXECUTE)
COMMAND_TOOL = "run_command"  # a shell command (Ratchet's tool, and a client's shell seen through its hook)
RAN = ("executed", "failed")  # statuses of an action whose effect ran
SAID_NO = ("blocked", "declined", "rejected")  # statuses of an action a human (or the gate) refused


@dataclass(frozen=True)
class OutcomeCount:
    """How many actions of one class, at one class level, share what became of them."""

    action_class: str
    class_level: str
    executed: bool  # routed `execute` (autonomous)
    status: str
    reviewed: bool  # a reviewer is recorded
    edited: bool
    evidence: str | None
    sandboxed: bool  # a shell command that ran (under its class's sandbox profile)
    count: int


@dataclass(frozen=True)
class TouchedAction:
    """An action a human touched, with what the figures of human work read of it (its preview only when an
    unchanged approval, the one disposition the reading rule judges)."""

    id: int
    action_class: str
    class_level: str
    created_at: float
    status: str
    route: str
    reviewer: str | None
    edited: bool
    finished_at: float | None
    review_seconds: float | None
    preview: str
    hidden_lines: int
    resolved_at: float | None
    evidence: str | None

    @property
    def settled_at(self) -> float:
        """When its outcome was recorded: finished, else created."""
        return self.finished_at if self.finished_at is not None else self.created_at


def _touched(r: sqlite3.Row) -> TouchedAction:
    return TouchedAction(
        id=int(r[0]),
        action_class=str(r[1]),
        class_level=str(r[2]),
        created_at=float(r[3]),
        status=str(r[4]),
        route=str(r[5]),
        reviewer=r[6],
        edited=bool(r[7]),
        finished_at=r[8],
        review_seconds=r[9],
        preview=str(r[10]),
        hidden_lines=int(r[11]),
        resolved_at=r[12],
        evidence=r[13],
    )


@dataclass(frozen=True)
class UnattendedRun:
    """The longest successful unattended run of a period (see `unattended_run`)."""

    session_id: str
    actions: int
    first_id: int
    last_id: int


@dataclass(frozen=True)
class PeriodFigures:
    """A period's actions as `ratchet metrics` reads them: counts by group, the actions a human touched
    (each with its complaints), the handoffs asked for and the longest successful unattended run."""

    counts: list[OutcomeCount]
    touched: list[TouchedAction]
    complaints: dict[int, list[ComplaintRecord]]
    handoffs: int
    longest_run: UnattendedRun | None


def _period_where(
    since: float | None, until: float | None, action_class: str | None, scope: ActionFilter, alias: str = ""
) -> tuple[str, list[object]]:
    prefix = f"{alias}." if alias else ""
    where = [f"{prefix}rule != ?"]
    params: list[object] = [NO_RULE]
    for clause, value in (("created_at >= ?", since), ("created_at < ?", until), ("class = ?", action_class)):
        if value is not None:
            where.append(prefix + clause)
            params.append(value)
    narrow, narrowed = scope.where(alias)
    return " AND ".join(where) + narrow, params + narrowed


def _unattended_run(conn: sqlite3.Connection, sql: str, params: list[object]) -> UnattendedRun | None:
    """The longest run of consecutive autonomous actions of one session (in id order, among the period's
    gated actions and its handoffs) that no action needing a human interrupted, none of whose actions failed,
    drew a complaint or was undone, and that the session's next action, if any, ended with work a human
    accepted (approved, unchanged or edited). Ties: the earliest."""
    # Gaps and islands: counting, in each session, the actions that need a human up to each action (`grp`),
    # an autonomous action's run is `grp` and a human's action ends run `grp - 1`, so one GROUP BY gives
    # each run with the action that ended it, without a join.
    # The period's rows are read first, from the index on the time (`actions_period`, which holds these columns),
    # each narrowed to three flags (a window over sessions read straight from the table would walk every
    # session's whole history, and wide rows make the sort by session spill to disk).
    query = f"""
        WITH p AS MATERIALIZED (
            SELECT a.session_id, a.id,
                CASE WHEN a.route = ? THEN 0 ELSE 1 END AS breaks,
                CASE WHEN a.route = ? AND (a.status = 'failed'
                    OR a.id IN (SELECT action_id FROM complaints)
                    OR a.id IN (SELECT action_id FROM undos)) THEN 1 ELSE 0 END AS bad,
                CASE WHEN a.route != ? AND a.reviewer IS NOT NULL AND a.status NOT IN ({_marks(SAID_NO)})
                    THEN 1 ELSE 0 END AS accepted
            FROM actions a WHERE {sql}
        ), seq AS (
            SELECT session_id, id, breaks, bad, accepted,
                sum(breaks) OVER (PARTITION BY session_id ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                    AS grp
            FROM p
        )
        SELECT session_id, sum(1 - breaks) AS n, min(CASE WHEN breaks = 0 THEN id END) AS first_id,
            max(CASE WHEN breaks = 0 THEN id END) AS last_id
        FROM seq GROUP BY session_id, grp - breaks
        HAVING sum(1 - breaks) > 0 AND sum(bad) = 0 AND (max(breaks) = 0 OR max(accepted) = 1)
        ORDER BY n DESC, first_id LIMIT 1
    """
    marks = (ROUTE_EXECUTE, ROUTE_EXECUTE, ROUTE_EXECUTE, *SAID_NO, *params)
    row = conn.execute(query, marks).fetchone()
    return None if row is None else UnattendedRun(str(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def period_figures(
    store: Store,
    since: float | None = None,
    until: float | None = None,
    action_class: str | None = None,
    scope: ActionFilter = EVERYTHING,
) -> PeriodFigures:
    """The gated actions created in [since, until) (of one class, if given; those `scope` keeps), in one round
    trip on one snapshot: their counts grouped by class, class level and outcome; the actions a human touched
    (reviewed, refused, resolved, or complained about) with their complaints; the handoffs the agents asked for
    in the period (of the scope; none with a class); the longest successful unattended run."""
    sql, params = _period_where(since, until, action_class, scope, "a")
    handoff_sql, handoff_params = _period_where(since, until, None, scope, "a")
    handoff_sql = handoff_sql.replace("a.rule != ?", "a.route = ?", 1)
    handoff_params[0] = ROUTE_HANDOFF
    touched_sql = (
        f"{sql} AND (a.reviewer IS NOT NULL OR a.status IN ('declined', 'rejected') OR a.resolved_at IS NOT NULL "
        "OR a.id IN (SELECT action_id FROM complaints))"
    )

    def read(conn: sqlite3.Connection) -> PeriodFigures:
        counts = [
            OutcomeCount(
                str(r[0]), str(r[1]), bool(r[2]), str(r[3]), bool(r[4]), bool(r[5]), r[6], bool(r[7]), int(r[8])
            )
            for r in conn.execute(
                "SELECT a.class, a.class_level, CASE WHEN a.route = ? THEN 1 ELSE 0 END AS executed, a.status, "
                "CASE WHEN a.reviewer IS NULL THEN 0 ELSE 1 END AS reviewed, a.edited, a.evidence, "
                f"CASE WHEN a.tool = ? AND a.status IN ({_marks(RAN)}) THEN 1 ELSE 0 END AS sandboxed, count(*) "
                # grouped by level first: an index led by the class would tempt the planner away from the period's range
                f"FROM actions a WHERE {sql} GROUP BY 2, 1, 3, 4, 5, 6, 7, 8",
                (ROUTE_EXECUTE, COMMAND_TOOL, *RAN, *params),
            )
        ]
        approval = f"a.route != ? AND a.reviewer IS NOT NULL AND a.edited = 0 AND a.status NOT IN ({_marks(SAID_NO)})"
        touched = [
            _touched(r)
            for r in conn.execute(
                "SELECT a.id, a.class, a.class_level, a.created_at, a.status, a.route, a.reviewer, a.edited, "
                f"a.finished_at, a.review_seconds, CASE WHEN {approval} THEN a.preview ELSE '' END, a.hidden_lines, "
                f"a.resolved_at, a.evidence FROM actions a WHERE {touched_sql}",
                (ROUTE_EXECUTE, *SAID_NO, *params),
            )
        ]
        touched.sort(key=lambda t: t.id)  # sorted here: an ORDER BY id would have the database walk all history
        complaints: dict[int, list[ComplaintRecord]] = {}
        for r in conn.execute(
            f"SELECT c.* FROM complaints c JOIN actions a ON a.id = c.action_id WHERE {sql} ORDER BY c.id", params
        ):
            complaints.setdefault(int(r["action_id"]), []).append(_complaint(r))
        handoffs = conn.execute(f"SELECT count(*) FROM actions a WHERE {handoff_sql}", handoff_params).fetchone()
        run_sql = sql if action_class is not None else f"(({sql}) OR ({handoff_sql}))"
        run_params = params if action_class is not None else [*params, *handoff_params]
        return PeriodFigures(
            counts,
            touched,
            complaints,
            0 if action_class else int(handoffs[0]),
            _unattended_run(conn, run_sql, run_params),
        )

    return await _read(store, read)
