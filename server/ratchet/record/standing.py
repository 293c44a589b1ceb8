"""Each class's standing in the database: its level, its window, and every move it makes.

This is where the pure rules of rules/trust.py meet the store. The functions are synchronous and take
the SQLite connection: callers run them on the database thread with `store.run` (one transaction,
one round trip) or `store.call` (inside a transaction the caller holds), so an outcome, its sample
and any transition it causes commit together or not at all. The only ways up are evidence (`apply_sample`) and a
reviewed change of a class's `start` in the policy files (`sync_policy`); humans can only lower
(demote, pin, freeze), and lift what they set (unpin, unfreeze), never above the earned level.

Every function starts from the record (record/integrity.py: the transitions and samples), not from the
`class_state` cache, and reports a cache that disagrees as tampering.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from ratchet.errors import InvalidRequest
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass, Policy
from ratchet.record import integrity
from ratchet.record.integrity import ALL_CLASSES, Freeze, Recorded
from ratchet.record.store import ClassRow, add_transition, class_row, class_row_from, later, put_class, read_all
from ratchet.rules.settle import (
    Complained,
    Disproved,
    HumanDemoted,
    Observed,
    Standing,
    is_padding,
    settle,
    work_key,
)
from ratchet.rules.trust import Sample, Window


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


def current(conn: sqlite3.Connection, cls: ActionClass) -> tuple[ClassRow, Recorded]:
    """The class's standing by the record, as a row (tampering with the cache is reported first)."""
    cache = class_row(conn, cls.name)
    rec = integrity.checked(conn, cls, cache)
    return rec.row(cls, cache), rec


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
    start = row.policy_start if policy_start is None else policy_start
    put_class(conn, ClassRow(cls.name, to.label, start, row.pinned, [], time.time(), tid))
    return Transition(tid, cls.name, row.level, to.label, kind, actor, reason, ev)


def probation_left(conn: sqlite3.Connection, cls: ActionClass, rec: Recorded) -> int:
    """Samples the class has left on probation, by the record: its last level move was a promotion,
    and fewer than `probation` samples were added since (the samples of its epoch)."""
    if rec.transition_id is None or cls.trust.probation == 0:
        return 0
    kind = conn.execute("SELECT kind FROM transitions WHERE id = ?", (rec.transition_id,)).fetchone()
    if kind is None or kind[0] != "promote":
        return 0
    (seen,) = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM samples WHERE class = ? AND epoch = ? LIMIT ?) AS recent",
        (cls.name, rec.transition_id, cls.trust.probation),
    ).fetchone()
    return cls.trust.probation - int(seen)


def probation_at(conn: sqlite3.Connection, name: str, transition_id: int, probation: int, action_id: int) -> int | None:
    """Samples left on probation when the action's sample was taken at the level `transition_id` set
    (for an action with no sample there: as things stand now); None when that move was no promotion."""
    kind = conn.execute("SELECT kind FROM transitions WHERE id = ?", (transition_id,)).fetchone()
    if kind is None or kind[0] != "promote":
        return None
    mine = conn.execute(
        "SELECT id FROM samples WHERE class = ? AND epoch = ? AND action_id = ? ORDER BY id LIMIT 1",
        (name, transition_id, action_id),
    ).fetchone()
    bound = (mine[0],) if mine is not None else (None,)
    (before,) = conn.execute(
        "SELECT count(*) FROM samples WHERE class = ? AND epoch = ? AND (? IS NULL OR id < ?)",
        (name, transition_id, *bound, *bound),
    ).fetchone()
    return max(probation - int(before), 0)


def probation_notice(cls: ActionClass, action_id: int, left: int, moved: Transition | None) -> dict[str, Any]:
    """What the notify command gets for a failure during probation (`left`: samples left before it)."""
    then = f"; {moved.line()}" if moved is not None else f"; {left - 1} samples of probation left"
    return {
        "id": action_id,
        "status": "probation-failure",
        "class": cls.name,
        "probation_left": 0 if moved is not None else left - 1,
        "demoted": moved is not None,
        "message": f"class {cls.name} failed on action {action_id} while on probation after a promotion{then}",
    }


@dataclass(frozen=True)
class Seen:
    """What settling a sample reads, once and in one round trip (`seen`): the class's cache row, its standing
    of record, its samples left on probation, for a success whether it is padding, and the freeze."""

    cache: ClassRow | None
    rec: Recorded
    probation: int
    padding: bool
    freeze: Freeze | None


def seen(conn: sqlite3.Connection, cls: ActionClass, success: int | None = None) -> Seen:
    """The class's cache, record and probation and the freeze, read at once (one round trip on PostgreSQL, right
    after the class's lock: record/locks.py `settling`); with `success`, the action whose success is judged
    padding or not against the window of record (`padding`)."""
    at = {"cls": cls.name, "probation": cls.trust.probation, "window": cls.trust.window_size, "action": success}
    changes = {**at, **dict(zip(_CHANGES, CHANGES, strict=True))}
    work = [] if success is None else [(_WORK, changes), (_WORK_WINDOW, changes)]
    statements = [("SELECT * FROM class_state WHERE name = :cls", at), *integrity.reads(cls), (_PROBATION, at)]
    cache, *found = read_all(conn, [*statements, (integrity.FREEZE, {}), *work])
    record, probation, frozen = found[:6], found[6], found[7]
    rec = integrity.recorded_from(cls, record)
    kind, recent = probation[0]
    # Samples left on probation (`probation_left`): the last level move was a promotion, fewer samples since.
    promoted = rec.transition_id is not None and cls.trust.probation > 0 and kind == "promote"
    left = cls.trust.probation - int(recent) if promoted else 0
    padded = success is not None and _padding(rec, success, [*found[8], *found[9]])
    row = class_row_from(cache[0]) if cache else None
    return Seen(row, rec, left, padded, integrity.freeze_from(frozen))


# The kind of the class's last level move, and its samples so far, up to `probation` of them.
_PROBATION = (
    f"SELECT (SELECT kind FROM transitions WHERE id = {integrity.LAST_MOVE}), (SELECT count(*) FROM (SELECT 1 "
    f"FROM samples WHERE class = :cls AND epoch = {integrity.EPOCH} LIMIT :probation) AS recent)"
)
CHANGES = ("write_file", "edit_file", "git_commit", "git_push", "git_revert")  # tools whose success changes files
_CHANGES = tuple(f"change{i}" for i in range(len(CHANGES)))
# What an action did (rules/settle.py `work_key`: the id of its session's last change before it is part of its
# work), and whether a person answered it: `_WORK` of the action itself, `_WORK_WINDOW` of each success in the
# class's window of record whose work can be the same (each read by the table's key). Two works are the same
# only with the same tool and fingerprint (the key's text holds both), so only those successes are read.
_WORK_COLUMNS = (
    "SELECT a.id, a.tool, a.args_json, a.fingerprint, (SELECT max(c.id) FROM actions c WHERE "
    "c.session_id = a.session_id AND c.id < a.id AND c.status = 'executed' AND c.tool IN ("
    + ", ".join(f":{name}" for name in _CHANGES)
    + ")), a.reviewer FROM actions a "
)
_WORK = _WORK_COLUMNS + "WHERE a.id = :action"
_WORK_WINDOW = (
    _WORK_COLUMNS + "JOIN (SELECT action_id, ok FROM samples WHERE class = :cls AND "
    f"epoch = {integrity.EPOCH} ORDER BY id DESC LIMIT :window) AS w ON w.action_id = a.id "
    "JOIN actions m ON m.id = :action WHERE w.ok = 1 AND a.tool = m.tool "
    "AND coalesce(a.fingerprint, '') = coalesce(m.fingerprint, '')"
)


def _padding(rec: Recorded, action_id: int, rows: list[Any]) -> bool:
    """Whether the success of `action_id` is padding (rules/settle.py `is_padding`), from `_WORK`'s rows: it ran
    with no person's answer, and its work is that of a success already in the class's window of record."""
    mine = next((r for r in rows if int(r[0]) == action_id), None)
    if mine is None or mine[5] is not None:
        return False  # a person answered it: only a person's answer is a person's evidence, each time
    keys = {int(r[0]): work_key(r[1], r[2], r[3], r[4]) for r in rows}
    counted = [s.action_id for s in rec.window.samples if s.ok]
    return is_padding(True, keys[action_id], (keys[a] for a in counted if a in keys and a != action_id))


def padding(known: Seen, ok: bool) -> bool:
    """Whether the action's success is padding: it ran with no person's answer, and its work is that
    of a success already in the class's window (rules/settle.py `is_padding`). Failures never are, nor
    is a success a person approved: only a person's answer is a person's evidence, each time.
    `known`: the class as `seen` read it for this action's success (a cache that disagrees with the record
    is reported by the sample's own settling, right after, in this transaction)."""
    return ok and known.padding


def apply_sample(
    conn: sqlite3.Connection, cls: ActionClass, action_id: int, ok: bool, known: Seen | None = None
) -> Transition | None:
    """Add one sample to the class's window and promote or demote if the window says so (`known`: the class
    as `seen` read it in this transaction, else read here)."""
    return _settle(conn, cls, Observed(action_id, ok), known)


def complain(conn: sqlite3.Connection, cls: ActionClass, action_id: int, reason: str) -> Transition | None:
    """A complaint: demote at once where the class says so (above its floor); otherwise the action's
    sample becomes a failure (in the window if it is there, else a failure is added) and the window
    is judged (rules/settle.py)."""
    return _settle(conn, cls, Complained(action_id, reason))


def disprove(conn: sqlite3.Connection, cls: ActionClass, action_id: int, reason: str) -> Transition | None:
    """A check failed on an action whose success was already counted (a task-end check): its sample
    becomes a failure (rules/settle.py `Disproved`) and the window is judged."""
    return _settle(conn, cls, Disproved(action_id, reason))


def _settle(
    conn: sqlite3.Connection, cls: ActionClass, event: Observed | Complained | Disproved, known: Seen | None = None
) -> Transition | None:
    """Apply the settle rule to the class's standing of record, and store what it says: the sample
    row (added, or turned into a failure), and the move with a fresh window or the window kept."""
    if known is None:
        known = seen(conn, cls)
    rec = integrity.checked_against(conn, cls, known.cache, known.rec)
    row = rec.row(cls, known.cache)
    frozen = known.freeze
    freeze = frozen.level if frozen is not None and frozen.active() else None
    standing = Standing(rec.level, rec.window, rec.pinned, known.probation)
    out = settle(cls, standing, event, freeze)
    epoch = row.transition_id or 0  # the samples of a level are those since the move that set it
    if out.sample == "added":
        ok = event.ok if isinstance(event, Observed) else False
        later(
            conn,
            "INSERT INTO samples (class, action_id, ok, epoch) VALUES (?, ?, ?, ?)",
            (cls.name, event.action_id, 1 if ok else 0, epoch),
        )
    elif out.sample == "flipped":
        conn.execute(
            "UPDATE samples SET ok = 0 WHERE id = (SELECT id FROM samples WHERE class = ? AND epoch = ? "
            "AND action_id = ? ORDER BY id DESC LIMIT 1)",
            (cls.name, epoch, event.action_id),
        )
    if out.move is not None:
        m = out.move
        return _move(conn, cls, row, m.to_level, m.kind, m.actor, m.reason, asdict(m.evidence), m.action_id)
    put_class(conn, replace(row, window=[(s.action_id, s.ok) for s in out.standing.window.samples]))
    return None


def human_demote(conn: sqlite3.Connection, cls: ActionClass, reason: str, to: Level | None = None) -> Transition:
    """A human lowers a class (one rung, or to `to`), never below its floor; InvalidRequest otherwise."""
    row, rec = current(conn, cls)
    level = rec.level
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
    out = settle(cls, Standing(rec.level, rec.window, rec.pinned), HumanDemoted(target, reason))
    assert out.move is not None  # checked above: the target is below the level and not below the floor
    m = out.move
    return _move(conn, cls, row, m.to_level, m.kind, m.actor, m.reason, asdict(m.evidence), None)


def pin(conn: sqlite3.Connection, cls: ActionClass, level: Level | None, reason: str) -> Transition:
    """Cap a class at `level` (any level, blocked included) or lift the cap (None). Never raises a level."""
    row, rec = current(conn, cls)
    current_level = rec.level
    effective_before = current_level if rec.pinned is None else min(current_level, rec.pinned)
    if level is not None and level > current_level:
        raise InvalidRequest(f"class {cls.name} is at {current_level.label}; a pin can only hold it at or below that")
    if level is None and rec.pinned is None:
        raise InvalidRequest(f"class {cls.name} is not pinned; nothing to unpin")
    to = current_level if level is None else level
    kind = "unpin" if level is None else "pin"
    ev = {"earned_level": current_level.label}
    tid = add_transition(conn, cls.name, effective_before.label, to.label, kind, "human", reason, ev, None)
    put_class(conn, replace(row, pinned=None if level is None else level.label))
    return Transition(tid, cls.name, effective_before.label, to.label, kind, "human", reason, ev)


def _effective_all(conn: sqlite3.Connection, policy: Policy, freeze: Freeze | None) -> dict[str, Level]:
    out = {}
    for cls in (*policy.classes.values(), policy.unclassified):
        _, rec = current(conn, cls)
        out[cls.name] = integrity.effective(cls, rec.level, rec.pinned, freeze)
    return out


def _cap_moves(
    conn: sqlite3.Connection,
    policy: Policy,
    before: dict[str, Level],
    after: dict[str, Level],
    kind: str,
    actor: str,
    reason: str,
    ev: dict[str, Any],
) -> list[Transition]:
    """A transition for each class whose effective level a freeze or unfreeze changed."""
    moves = []
    for name, was in sorted(before.items()):
        now = after[name]
        if now != was:
            tid = add_transition(conn, name, was.label, now.label, kind, actor, reason, ev, None)
            moves.append(Transition(tid, name, was.label, now.label, kind, actor, reason, ev))
    return moves


def freeze(
    conn: sqlite3.Connection, policy: Policy, level: Level, reason: str, until: float | None
) -> list[Transition]:
    """Cap every class at `level` at once (until `until`, a Unix time, or until `unfreeze`).

    Recorded as a `freeze` transition of the pseudo-class `*` and one for each class whose effective
    level it changes. A new freeze replaces the one in force. The earned levels are untouched, and
    evidence keeps being gathered; unfreeze returns every class to them.
    """
    now = time.time()
    if level >= Level.AUTONOMOUS:
        raise InvalidRequest("a freeze at autonomous caps nothing; expected blocked, draft or confirm")
    if until is not None and until <= now:
        raise InvalidRequest(f"--until {until:.0f} is not in the future; expected a later time or a duration (2h)")
    old = integrity.freeze_of(conn)
    old = old if old is not None and old.active(now) else None
    before = _effective_all(conn, policy, old)
    ev: dict[str, Any] = {"until": until}
    was = Level.AUTONOMOUS if old is None else old.level
    tid = add_transition(conn, ALL_CLASSES, was.label, level.label, "freeze", "human", reason, ev, None)
    moves = [Transition(tid, ALL_CLASSES, was.label, level.label, "freeze", "human", reason, ev)]
    after = _effective_all(conn, policy, Freeze(tid, now, level, reason, until))
    return moves + _cap_moves(conn, policy, before, after, "freeze", "human", reason, {**ev, "freeze": tid})


def unfreeze(
    conn: sqlite3.Connection, policy: Policy, reason: str, *, actor: str = "human", expired: bool = False
) -> list[Transition]:
    """Lift the freeze: every class returns to its earned level (under its pin), never above."""
    old = integrity.freeze_of(conn)
    if old is None or (not expired and not old.active()):
        raise InvalidRequest("nothing is frozen; `ratchet status` shows any freeze")
    held = Freeze(old.transition_id, old.at, old.level, old.reason, None)  # as it stood, expired or not
    before = _effective_all(conn, policy, held)
    ev: dict[str, Any] = {"freeze": old.transition_id}
    tid = add_transition(conn, ALL_CLASSES, old.level.label, "autonomous", "unfreeze", actor, reason, ev, None)
    moves = [Transition(tid, ALL_CLASSES, old.level.label, "autonomous", "unfreeze", actor, reason, ev)]
    after = _effective_all(conn, policy, None)
    return moves + _cap_moves(conn, policy, before, after, "unfreeze", actor, reason, ev)


def sync_policy(conn: sqlite3.Connection, policy: Policy, *, reviewer: bool = True) -> list[Transition]:
    """Bring stored standings in line with the record and the policy: tampering reported, new classes,
    a changed start, changed bounds, a freeze whose time is up.

    The moves a policy change makes are the reviewer side's (record/roles.py): the agent side (`reviewer`
    False) leaves them to the next reviewer-side command, and stands by the record meanwhile."""
    moves: list[Transition] = []
    rows = {r.name: r for r in map(class_row_from, conn.execute("SELECT * FROM class_state").fetchall())}
    for cls in (*policy.classes.values(), policy.unclassified):
        cache = rows.get(cls.name)
        rec = integrity.recorded(conn, cls)
        if rec.start is None and cache is not None and cache.level == cache.policy_start != cls.start.label:
            # Never moved, and the policy's start changed: the move below records it; nothing was tampered.
            rec = replace(rec, level=Level.parse(cache.level))
        found = integrity.differences(cache, rec)
        if found:
            integrity.report(conn, cls, cache, rec, found)
        elif cache is None:
            put_class(conn, fresh_row(cls))
            continue
        row = rec.row(cls, cache)
        level = rec.level
        start = rec.start if rec.start is not None else (cache.policy_start if cache else cls.start.label)
        if not reviewer:
            continue
        if start != cls.start.label:
            # A reviewed change of `start` is the policy of record: the class restarts there.
            moves.append(
                _move(
                    conn,
                    cls,
                    row,
                    cls.start,
                    "policy",
                    "policy",
                    f"start changed from {start} to {cls.start.label} in {cls.file}",
                    {"policy_start": cls.start.label},
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
    frozen = integrity.freeze_of(conn)
    if frozen is not None and frozen.broken:
        integrity.report_freeze(conn, frozen)
    if frozen is not None and not frozen.active() and reviewer:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frozen.until or 0))
        moves += unfreeze(conn, policy, f"the freeze expired at {when}", actor="ratchet", expired=True)
    return moves
