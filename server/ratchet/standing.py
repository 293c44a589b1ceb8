"""Each class's standing in the database: its level, its window, and every move it makes.

This is where the pure rules of trust.py meet the store. Every function that writes expects to
run inside the caller's `store.transaction()`, so an outcome, its sample and any transition it
causes commit together or not at all. The only ways up are evidence (`apply_sample`) and a
reviewed change of a class's `start` in the policy files (`sync_policy`); humans can only lower.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import InvalidRequest
from .levels import Level
from .policy import ActionClass, Policy
from .store import ClassRow, Store
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


async def _move(
    store: Store,
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
    tid = await store.add_transition(cls.name, row.level, to.label, kind, actor, reason, ev, action_id)
    # A move always starts a fresh window: evidence is earned at the level it is about.
    await store.put_class(
        ClassRow(cls.name, to.label, policy_start or row.policy_start, row.pinned, [], time.time(), tid)
    )
    return Transition(tid, cls.name, row.level, to.label, kind, actor, reason, ev)


async def apply_sample(store: Store, cls: ActionClass, action_id: int, ok: bool) -> Transition | None:
    """Add one sample to the class's window and promote or demote if the window says so."""
    row = await store.class_row(cls.name) or fresh_row(cls)
    return await _settle(store, cls, row, add_sample(window_of(row), Sample(action_id, ok), cls.trust), action_id)


async def complain(store: Store, cls: ActionClass, action_id: int, reason: str) -> Transition | None:
    """A complaint: demote at once where the class says so, else count it against the window."""
    row = await store.class_row(cls.name) or fresh_row(cls)
    level = Level.parse(row.level)
    window = window_of(row)
    if cls.demote_on_complaint:
        if level <= cls.floor:
            return None
        ev = asdict(evidence(window, cls.trust))
        reason = f"complaint on action {action_id}: {reason}"
        return await _move(store, cls, row, level.down(), "complaint", "human", reason, ev, action_id)
    flipped = flip_sample(window, action_id)
    return None if flipped is None else await _settle(store, cls, row, flipped, action_id)


async def _settle(store: Store, cls: ActionClass, row: ClassRow, window: Window, action_id: int) -> Transition | None:
    """Judge the new window: move the class if it says so, else keep the window."""
    level = Level.parse(row.level)
    pinned = Level.parse(row.pinned) if row.pinned else None
    # A pin at or below the current level holds promotion back: judge against it as the ceiling.
    ceiling = level if pinned is not None and pinned <= level else cls.ceiling
    verdict = judge(window, level, cls.floor, ceiling, cls.trust)
    if verdict.move is not None:
        ev = asdict(verdict.evidence)
        return await _move(store, cls, row, verdict.to_level, verdict.move, "ratchet", verdict.reason, ev, action_id)
    samples = [(s.action_id, s.ok) for s in window.samples]
    await store.put_class(replace(row, window=samples))
    return None


async def human_demote(store: Store, cls: ActionClass, reason: str, to: Level | None = None) -> Transition:
    """A human lowers a class (one rung, or to `to`), never below its floor; InvalidRequest otherwise."""
    row = await store.class_row(cls.name) or fresh_row(cls)
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
    return await _move(store, cls, row, target, "human-demote", "human", reason, ev, None)


async def pin(store: Store, cls: ActionClass, level: Level | None, reason: str) -> Transition:
    """Cap a class at `level` (any level, blocked included) or lift the cap (None). Never raises a level."""
    row = await store.class_row(cls.name) or fresh_row(cls)
    current = Level.parse(row.level)
    effective_before = min(current, Level.parse(row.pinned)) if row.pinned else current
    if level is not None and level > current:
        raise InvalidRequest(
            f"class {cls.name} is at {current.label}; a pin can only hold it at or below that"
        )
    tid = await store.add_transition(
        cls.name,
        effective_before.label,
        (level or current).label,
        "pin" if level is not None else "unpin",
        "human",
        reason,
        {"earned_level": current.label},
        None,
    )
    await store.put_class(
        ClassRow(
            row.name,
            row.level,
            row.policy_start,
            level.label if level else None,
            row.window,
            row.level_since,
            row.transition_id,
        )
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


async def sync_policy(store: Store, policy: Policy) -> list[Transition]:
    """Bring stored standings in line with the policy: new classes, a changed start, changed bounds."""
    moves: list[Transition] = []
    rows = await store.class_rows()
    for cls in (*policy.classes.values(), policy.unclassified):
        row = rows.get(cls.name)
        if row is None:
            await store.put_class(fresh_row(cls))
            continue
        level = Level.parse(row.level)
        if row.policy_start != cls.start.label:
            # A reviewed change of `start` is the policy of record: the class restarts there.
            moves.append(
                await _move(
                    store,
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
                await _move(
                    store,
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
