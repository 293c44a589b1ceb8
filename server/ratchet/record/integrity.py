"""The standing of record: a class's level, pin and window as the transitions say, and tampering.

Only the recorded transitions (a hash chain, see record/chain.py) and the samples say where a class
stands. `class_state` (level, pinned, window_json, policy_start, transition_id) is a cache of them:

- the earned level is the `to_level` of the class's last level-moving transition (`LEVEL_KINDS`),
  or the policy's `start` when the class never moved; the gate clamps it to floor and ceiling;
- the pin is the last `pin`/`unpin` transition of the class;
- a freeze is the last transition of the pseudo-class `*` (`freeze`/`unfreeze`), which caps every
  class until it is lifted or its `until` passes;
- the window is the last `window_size` rows of `samples` for the class since its last
  level-moving transition (the `epoch`), oldest first.

The rows a standing rests on (the last level-moving transition, the last pin, the last freeze) are
each checked against their own hash (record/chain.py), so that a transition edited in place, or inserted
by hand without its hash, is not honoured even when the cache was edited to match: a broken level
row holds the class at its floor (it climbs again from there on evidence, like any class), a broken
pin row holds it blocked until a human pins or unpins it again, a broken freeze row holds every
class blocked until a human freezes or unfreezes again. Someone who recomputes the hashes gets
past this check; see record/chain.py for what the chain proves.

When the cache disagrees with the record (a level, pin or window changed outside Ratchet, or a row
deleted), or a row fails its hash, it is tampering: `report` stores a `tamper-detected` transition
naming each difference (once), logs a warning and rewrites the cache from the record. The decision
always uses the record. This is checked at every open (`standing.sync_policy`), on every decision
(core.evaluate reads the cache row and the record's rows in one query) and on every outcome
(`standing.apply_sample`).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.record import chain
from ratchet.record.store import ClassRow, add_transition, put_class, read_all
from ratchet.rules.gate import Trigger
from ratchet.rules.trust import Sample, Window

log = logging.getLogger("ratchet")

LEVEL_KINDS = ("promote", "demote", "complaint", "human-demote", "policy")
# The level moves the agent side's evidence makes (record/roles.py lets its role write only these): each must
# continue from the level before it (the previous level move's `to_level`, else the policy's start).
CONTINUING_KINDS = ("demote", "complaint")
PIN_KINDS = ("pin", "unpin")
FREEZE_KINDS = ("freeze", "unfreeze")
TAMPER = "tamper-detected"
CAP_KINDS = (*PIN_KINDS, *FREEZE_KINDS, TAMPER)  # recorded, but they do not move the earned level
ALL_CLASSES = "*"
_KINDS_SQL = ", ".join(f"'{k}'" for k in LEVEL_KINDS)
_PINS_SQL = ", ".join(f"'{k}'" for k in PIN_KINDS)
_FREEZES_SQL = ", ".join(f"'{k}'" for k in FREEZE_KINDS)


@dataclass(frozen=True)
class Freeze:
    """A human's cap on every class at once (`ratchet freeze`)."""

    transition_id: int
    at: float
    level: Level
    reason: str
    until: float | None
    broken: bool = False  # its row no longer matches its hash: held blocked until a human acts

    def active(self, now: float | None = None) -> bool:
        """In force now (not yet past its `until`)."""
        return self.until is None or (time.time() if now is None else now) < self.until

    def detail(self) -> str:
        """What the trigger and `status` say."""
        until = f" until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.until))}" if self.until else ""
        return f"a human froze every class at {self.level.label}{until}: {self.reason}"

    def trigger(self) -> Trigger:
        """The gate's cap."""
        return Trigger("freeze", self.detail(), self.level)


@dataclass(frozen=True)
class Recorded:
    """A class's standing as the record says."""

    level: Level
    transition_id: int | None
    pinned: Level | None
    window: Window
    start: str | None  # the policy start the record knows of (None: the class never moved)
    broken: tuple[str, ...] = ()  # rows the standing rests on that no longer match their hash

    def row(self, cls: ActionClass, cache: ClassRow | None) -> ClassRow:
        """The cache row this record implies."""
        return ClassRow(
            cls.name,
            self.level.label,
            self.start or cls.start.label,
            None if self.pinned is None else self.pinned.label,
            [(s.action_id, s.ok) for s in self.window.samples],
            cache.level_since if cache is not None else time.time(),
            self.transition_id,
        )


_COLS = (*chain.TRANSITION_FACTS, "prev_hash", "hash")
_SELECT = ", ".join(_COLS)


def _as_dict(values: Any) -> dict[str, Any] | None:
    """A transition row (`_COLS` in order) as a dict, None for an absent (all-NULL) row."""
    row = dict(zip(_COLS, values, strict=True))
    return None if row["id"] is None else row


def intact(row: dict[str, Any]) -> bool:
    """Whether a transition row still matches its own hash (it was not edited, or inserted, by hand)."""
    return _intact(tuple(row[name] for name in _COLS))


@functools.lru_cache(maxsize=1024)
def _intact(values: tuple[Any, ...]) -> bool:
    # Keyed on every column, hashes included: an edited row is a different key, so it is recomputed.
    row = dict(zip(_COLS, values, strict=True))
    if row["hash"] is None or row["prev_hash"] is None:
        return False
    facts = {name: row[name] for name in chain.TRANSITION_FACTS}
    return bool(chain.link(row["prev_hash"], facts) == row["hash"])


def _freeze_from(row: dict[str, Any] | None) -> Freeze | None:
    if row is None:
        return None
    if not intact(row):
        # The record of the freeze was edited: hold every class blocked until a human freezes or unfreezes.
        reason = f"transition {row['id']} (a freeze record) was changed outside Ratchet; held until a human acts"
        return Freeze(int(row["id"]), float(row["at"]), Level.BLOCKED, reason, None, broken=True)
    if row["kind"] != "freeze":
        return None
    until = json.loads(row["evidence_json"]).get("until")
    return Freeze(int(row["id"]), float(row["at"]), Level.parse(row["to_level"]), str(row["reason"]), until)


# The last freeze or unfreeze.
FREEZE = (
    f"SELECT {_SELECT} FROM transitions WHERE class = '{ALL_CLASSES}' AND kind IN ({_FREEZES_SQL}) "
    "ORDER BY id DESC LIMIT 1"
)


def freeze_of(conn: sqlite3.Connection) -> Freeze | None:
    """The last freeze, unless it was lifted (whether or not its `until` has passed)."""
    return freeze_from(conn.execute(FREEZE).fetchall())


def freeze_from(rows: list[Any]) -> Freeze | None:
    """The freeze in `FREEZE`'s rows, unless it was lifted."""
    return _freeze_from(_as_dict(tuple(rows[0]))) if rows else None


def continues(cls: ActionClass, row: dict[str, Any], before: str | None) -> bool:
    """Whether a level move continues from the level before it (`before`: the previous level move's
    `to_level`, None when it is the class's first): always true of the reviewer side's kinds, which the
    agent's database role cannot write (record/roles.py)."""
    if row["kind"] not in CONTINUING_KINDS:
        return True
    return bool(row["from_level"] == (cls.start.label if before is None else before))


def _standing(
    cls: ActionClass,
    last: dict[str, Any] | None,
    pin: dict[str, Any] | None,
    window: Window,
    start: str | None,
    before: str | None = None,
) -> Recorded:
    """The record from the class's last level-moving and last pin transitions (each checked against its hash,
    the level move also against the level before it, `before`)."""
    broken = []
    level = cls.start if last is None else Level.parse(last["to_level"])
    if last is not None and not intact(last):
        # The row the level rests on was edited or forged: fail closed, at the class's floor.
        broken.append(f"transition {last['id']} (its level) does not match its hash; held at floor {cls.floor.label}")
        level = cls.floor
    elif last is not None and not continues(cls, last, before):
        # A level taken from the row itself (a forged move "from autonomous"): fail closed, at the floor.
        was = cls.start.label if before is None else before
        broken.append(
            f"transition {last['id']} ({last['kind']} from {last['from_level']}) does not continue from the level "
            f"before it ({was}); held at floor {cls.floor.label}"
        )
        level = cls.floor
    pinned = None if pin is None or pin["kind"] != "pin" else Level.parse(pin["to_level"])
    if pin is not None and not intact(pin):
        broken.append(f"transition {pin['id']} (its pin) does not match its hash; held blocked")
        pinned = Level.BLOCKED
    return Recorded(level, None if last is None else int(last["id"]), pinned, window, start, tuple(broken))


# The id of the class's last level move (named parameter `cls`): a subquery, so that every read of a standing
# goes out at once, in one round trip on PostgreSQL (`reads`, store.read_all), none waiting for another's answer.
LAST_MOVE = f"(SELECT id FROM transitions WHERE class = :cls AND kind IN ({_KINDS_SQL}) ORDER BY id DESC LIMIT 1)"
EPOCH = f"coalesce({LAST_MOVE}, 0)"


def reads(cls: ActionClass) -> list[tuple[str, dict[str, Any]]]:
    """The reads `recorded` makes (their rows, in order, are what `recorded_from` takes)."""
    at = {"cls": cls.name, "window": cls.trust.window_size}
    last = f"SELECT {_SELECT} FROM transitions WHERE id = {LAST_MOVE}"
    pin = f"SELECT {_SELECT} FROM transitions WHERE class = :cls AND kind IN ({_PINS_SQL}) ORDER BY id DESC LIMIT 1"
    before = (
        f"SELECT to_level FROM transitions WHERE class = :cls AND kind IN ({_KINDS_SQL}) AND id < {LAST_MOVE} "
        "ORDER BY id DESC LIMIT 1"
    )
    window = f"SELECT action_id, ok FROM samples WHERE class = :cls AND epoch = {EPOCH} ORDER BY id DESC LIMIT :window"
    return [(sql, at) for sql in (last, pin, before, window, *_START)]


def recorded_from(cls: ActionClass, found: list[list[Any]]) -> Recorded:
    """Where the class stands by the record, from the rows of `reads`."""
    last, pin_rows, before, rows, change, first = found
    window = Window(tuple(Sample(int(aid), bool(ok)) for aid, ok in reversed(rows)))
    return _standing(
        cls,
        _as_dict(tuple(last[0])) if last else None,
        _as_dict(tuple(pin_rows[0])) if pin_rows else None,
        window,
        _start_from(change, first) if last else None,
        str(before[0][0]) if before else None,
    )


def recorded(conn: sqlite3.Connection, cls: ActionClass) -> Recorded:
    """Where the class stands by the record (see the module docstring)."""
    return recorded_from(cls, read_all(conn, reads(cls)))


# The policy start of record (named parameter `cls`): the last reviewed start change, else the level before
# the first move.
_START = (
    "SELECT evidence_json, to_level FROM transitions WHERE class = :cls AND kind = 'policy' "
    "AND reason LIKE 'start changed%' ORDER BY id DESC LIMIT 1",
    f"SELECT from_level FROM transitions WHERE class = :cls AND kind IN ({_KINDS_SQL}) ORDER BY id LIMIT 1",
)


def _start_from(change: list[Any], first: list[Any]) -> str | None:
    if change:
        return str(json.loads(change[0][0]).get("policy_start", change[0][1]))
    return None if not first else str(first[0][0])


def differences(cache: ClassRow | None, rec: Recorded) -> list[str]:
    """How the cache row differs from the record, one phrase each (empty: they agree)."""
    found: list[str] = list(rec.broken)
    if cache is None:
        if rec.transition_id is not None or rec.pinned is not None or rec.window.n:
            found.append("its class_state row is missing")
        return found
    if cache.level != rec.level.label:
        found.append(f"class_state.level says {cache.level}, the record {rec.level.label}")
    pinned = None if rec.pinned is None else rec.pinned.label
    if cache.pinned != pinned:
        said, says = ("none" if p is None else p for p in (cache.pinned, pinned))
        found.append(f"class_state.pinned says {said}, the record {says}")
    if cache.transition_id != rec.transition_id:
        found.append(f"class_state.transition_id says {cache.transition_id}, the record {rec.transition_id}")
    if rec.start is not None and cache.policy_start != rec.start:
        found.append(f"class_state.policy_start says {cache.policy_start}, the record {rec.start}")
    mine = [(s.action_id, s.ok) for s in rec.window.samples]
    theirs = list(cache.window)
    if theirs != mine:
        ok = sum(1 for _, good in theirs if good)
        found.append(
            f"class_state.window_json holds {ok}/{len(theirs)} ok, the record {rec.window.successes}/{rec.window.n}"
        )
    return found


def report(conn: sqlite3.Connection, cls: ActionClass, cache: ClassRow | None, rec: Recorded, found: list[str]) -> int:
    """Record tampering (a `tamper-detected` transition), log it, and restore the cache from the record."""
    reason = f"changed outside Ratchet and not honoured: {'; '.join(found)}; the class stands at {rec.level.label}" + (
        f" pinned {rec.pinned.label}" if rec.pinned is not None else ""
    )
    evidence = {
        "cache": None
        if cache is None
        else {"level": cache.level, "pinned": cache.pinned, "window": cache.window, "policy_start": cache.policy_start},
        "record": {"level": rec.level.label, "pinned": None if rec.pinned is None else rec.pinned.label},
    }
    put_class(conn, rec.row(cls, cache))
    last = conn.execute(
        "SELECT id, reason FROM transitions WHERE class = ? AND kind = ? ORDER BY id DESC LIMIT 1", (cls.name, TAMPER)
    ).fetchone()
    if last is not None and not found[len(rec.broken) :] and all(note in last[1] for note in rec.broken):
        return int(last[0])  # a broken row already reported: once, not on every call
    was = rec.level.label if cache is None else cache.level
    tid = add_transition(conn, cls.name, was, rec.level.label, TAMPER, "ratchet", reason, evidence, None)
    log.warning("ratchet: tampering detected in class %s: %s", cls.name, reason)
    return tid


def report_freeze(conn: sqlite3.Connection, frozen: Freeze) -> int | None:
    """Record (once) that the freeze record was changed outside Ratchet; the new tamper row's id."""
    later = conn.execute(
        "SELECT 1 FROM transitions WHERE class = ? AND kind = ? AND id > ?", (ALL_CLASSES, TAMPER, frozen.transition_id)
    ).fetchone()
    if later is not None:
        return None
    reason = f"changed outside Ratchet and not honoured: {frozen.reason}"
    evidence = {"transition": frozen.transition_id}
    tid = add_transition(conn, ALL_CLASSES, "blocked", "blocked", TAMPER, "ratchet", reason, evidence, None)
    log.warning("ratchet: tampering detected in the freeze record: %s", reason)
    return tid


def checked(conn: sqlite3.Connection, cls: ActionClass, cache: ClassRow | None) -> Recorded:
    """The record for `cls`, reporting (and repairing) a cache that disagrees with it."""
    return checked_against(conn, cls, cache, recorded(conn, cls))


def checked_against(conn: sqlite3.Connection, cls: ActionClass, cache: ClassRow | None, rec: Recorded) -> Recorded:
    """`rec`, the record for `cls` read in this transaction, after reporting (and repairing) a cache that
    disagrees with it."""
    found = differences(cache, rec)
    if found:
        report(conn, cls, cache, rec, found)
    return rec


def effective(cls: ActionClass, level: Level, pinned: Level | None, freeze: Freeze | None) -> Level:
    """The most a call of the class can get: the earned level within floor and ceiling, under pin and freeze."""
    out = min(max(level, cls.floor), cls.ceiling)
    if pinned is not None:
        out = min(out, pinned)
    if freeze is not None and freeze.active():
        out = min(out, freeze.level)
    return out


def tamper_records(conn: sqlite3.Connection, limit: int = 5) -> tuple[int, list[str]]:
    """How many tamper records there are, and the newest few as lines."""
    total = conn.execute("SELECT count(*) FROM transitions WHERE kind = ?", (TAMPER,)).fetchone()[0]
    rows = conn.execute(
        "SELECT at, class, reason FROM transitions WHERE kind = ? ORDER BY id DESC LIMIT ?", (TAMPER, limit)
    ).fetchall()
    lines = [f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} {name}: {reason}" for at, name, reason in rows]
    return int(total), lines


# -- the gate's single query -------------------------------------------------------------------------


def _joined(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in _COLS)


_EPOCH_SAMPLES = "FROM samples WHERE class = :cls AND epoch = coalesce(t.id, 0) ORDER BY id DESC"
GATE_COLUMNS = f"""
    c.name, c.level, c.pinned, c.transition_id,
    json_array_length(c.window_json), json_extract(c.window_json, '$[#-1][0]'),
    json_extract(c.window_json, '$[#-1][1]'),
    (SELECT count(*) FROM (SELECT 1 {_EPOCH_SAMPLES} LIMIT :window) AS w),
    (SELECT action_id || ',' || ok {_EPOCH_SAMPLES} LIMIT 1),
    (SELECT b.to_level FROM transitions b WHERE b.class = :cls AND b.kind IN ({_KINDS_SQL}) AND b.id < t.id
        ORDER BY b.id DESC LIMIT 1),
    {_joined("t")}, {_joined("p")}, {_joined("f")}
"""
"""Columns for core.evaluate's one query (named parameters `cls`, `window`), with `GATE_JOINS` after
`FROM (SELECT 1) AS one LEFT JOIN class_state c ON c.name = :cls`.

The window is compared cheaply here (its size and newest sample, both sides computed by SQLite):
the decision does not use the window, and every outcome compares it in full before using it."""
GATE_JOINS = f"""
    LEFT JOIN transitions t ON t.id = (SELECT id FROM transitions WHERE class = :cls AND kind IN ({_KINDS_SQL})
        ORDER BY id DESC LIMIT 1)
    LEFT JOIN transitions p ON p.id = (SELECT id FROM transitions WHERE class = :cls AND kind IN ({_PINS_SQL})
        ORDER BY id DESC LIMIT 1)
    LEFT JOIN transitions f ON f.id = (SELECT id FROM transitions WHERE class = '{ALL_CLASSES}'
        AND kind IN ({_FREEZES_SQL}) ORDER BY id DESC LIMIT 1)
"""
_HEAD = 10
GATE_WIDTH = _HEAD + 3 * len(_COLS)


def from_gate_row(row: Any, cls: ActionClass) -> tuple[Recorded, Freeze | None, list[str]]:
    """The record (its window and start left out), the freeze, and how the cache seems to differ.

    A difference found here is confirmed with `checked` (exact, inside a write) before it is reported.
    """
    n = len(_COLS)
    last, pin, frozen = (_as_dict(tuple(row[_HEAD + i * n : _HEAD + (i + 1) * n])) for i in range(3))
    rec = _standing(cls, last, pin, Window(), None, None if row[9] is None else str(row[9]))
    found = list(rec.broken)
    if row[0] is None:
        if last is not None or pin is not None or row[7]:
            found.append("its class_state row is missing")
        return rec, _freeze_from(frozen), found
    if row[1] != rec.level.label:
        found.append(f"class_state.level says {row[1]}, the record {rec.level.label}")
    if row[2] != (None if rec.pinned is None else rec.pinned.label):
        found.append("class_state.pinned differs from the record")
    if row[3] != rec.transition_id:
        found.append("class_state.transition_id differs from the record")
    newest = None if row[5] is None else f"{row[5]},{row[6]}"
    if row[4] != row[7] or newest != row[8]:
        found.append("class_state.window_json differs from the record")
    return rec, _freeze_from(frozen), found


def unvouched(conn: sqlite3.Connection, classes: dict[str, ActionClass]) -> list[str]:
    """What `ratchet verify` cannot vouch for beyond the hash chain, one line each: a level move of the agent
    side's kinds that does not continue from the level before it (its level taken from the row), and a sample
    counted for another class than the one its action was judged by."""
    found: list[str] = []
    before: dict[str, str] = {}
    for tid, name, kind, from_level, to_level in conn.execute(
        f"SELECT id, class, kind, from_level, to_level FROM transitions WHERE kind IN ({_KINDS_SQL}) ORDER BY id"
    ).fetchall():
        cls = classes.get(str(name))
        row = {"kind": kind, "from_level": from_level}
        if cls is not None and not continues(cls, row, before.get(str(name))):
            was = before.get(str(name), cls.start.label)
            found.append(
                f"transition {tid} ({name}: {kind} from {from_level}) does not continue from the level "
                f"before it ({was})"
            )
        before[str(name)] = str(to_level)
    for sid, name, aid, judged in conn.execute(
        "SELECT s.id, s.class, s.action_id, coalesce(a.evidence_class, a.class) FROM samples s "
        "JOIN actions a ON a.id = s.action_id WHERE coalesce(a.evidence_class, a.class) <> s.class ORDER BY s.id"
    ).fetchall():
        found.append(f"sample {sid} counts action {aid} for {name}, but it is evidence for {judged}")
    return found
