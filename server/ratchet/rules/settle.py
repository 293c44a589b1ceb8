"""How one event moves a class: the settle rule, in one place. A pure function: no I/O, no clock.

A class's `Standing` is its earned level, its window (the samples gathered at that level) and its
pin. `settle` takes the class's rules (floor, ceiling, trust parameters, whether a complaint demotes),
its standing, one event and the freeze in force, and returns the new standing and the move it
causes, if any, with the evidence the move rests on. The events:

- `Observed`: a sample (one resolved action: success or failure, see rules/trust.py). It joins the
  window, and the window is judged (`trust.judge`): promote or demote one rung, or stay.
- `Complained`: a human says an action that ran was wrong. Where the class demotes on complaint
  and stands above its floor, it drops a rung at once (evidence: the window as it stood). Otherwise
  the action's sample becomes a failure (in the window if it is there, else a failure is added) and
  the window is judged.
- `Pinned`: a human caps the class (or lifts the cap); the earned level does not move.
- `HumanDemoted`: a human lowers the class, never below its floor.
- `PolicyMoved`: a reviewed policy change (a new `start`, new bounds) puts the class at a level.

Probation: a promotion puts the class on probation for its next `probation` samples (`Standing.
probation` counts down with each sample added; any other move ends it). While on probation the
window is judged with the stricter demotion rule of rules/trust.py.

A pin or a freeze at or below the class's level holds promotion back: the window is judged with the
level as its ceiling, so it can still demote. Every move starts a fresh window: evidence is earned
at the level it is about. `Settled.sample` says what became of the event's sample, so that the live
record (record/standing.py) can store exactly what the window now holds.

Every place that turns evidence into levels uses this: the live record, `ratchet simulate` (a
candidate policy over recorded history) and `ratchet report` (each class's trajectory, replayed).
The session's failure streak, a trigger of the gate, is kept beside it (`streak_after`).

Padding: a success no person answered is evidence only when it stands for work not already counted.
Its *work* is what it did and to what: the tool, its arguments and fingerprint, and the session's
last change before it (`work_key`). Such a success whose work equals that of a success already in
the class's window is a repeat (`is_padding`): it joins no window and does not reset the session's
failure streak (a person's approval always counts: it is the person's evidence each time), and its
action is labelled `repeat` (no sample in any replay). So a failing build padded with no-op
successes (`make -q`, the same passing command re-run on unchanged files) between its failures
demotes, and halts the session, as the failures alone would; re-running a command after a change,
or running it on other arguments, is new work and counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.rules.outcome import counts_as, recorded
from ratchet.rules.trust import Evidence, Sample, Window, add_sample, evidence, flip_sample, judge

CLI_SESSION = "cli"  # the human's own session: its samples are evidence, but it has no failure streak
EVIDENCE_KINDS = ("promote", "demote", "complaint")  # the moves evidence makes (actor "ratchet" or a complaint)


@dataclass(frozen=True)
class Standing:
    """Where a class stands: its earned level, the window gathered there, and a human's pin."""

    level: Level
    window: Window = field(default_factory=Window)
    pinned: Level | None = None
    probation: int = 0  # samples left on probation after a promotion (0: not on probation)


@dataclass(frozen=True)
class Observed:
    """A sample: one resolved action of the class, success or failure."""

    action_id: int
    ok: bool


@dataclass(frozen=True)
class Complained:
    """A complaint about an action of the class that ran."""

    action_id: int
    reason: str = ""


@dataclass(frozen=True)
class Disproved:
    """A check the class names failed on an action already counted (a task-end check): its success
    becomes a failure (in the window if it is there, else a failure is added); never a demotion at once."""

    action_id: int
    reason: str = ""


@dataclass(frozen=True)
class Pinned:
    """A human pins the class at `level`, or lifts the pin (None)."""

    level: Level | None


@dataclass(frozen=True)
class HumanDemoted:
    """A human lowers the class to `to` (held at its floor)."""

    to: Level
    reason: str


@dataclass(frozen=True)
class PolicyMoved:
    """A reviewed policy change puts the class at `to`."""

    to: Level
    reason: str


Event = Observed | Complained | Disproved | Pinned | HumanDemoted | PolicyMoved


@dataclass(frozen=True)
class FreezeCap:
    """A freeze as a replay meets it: every class capped at `level` until `until` (None: until lifted)."""

    level: Level
    until: float | None

    def at(self, when: float) -> Level | None:
        """The cap in force at `when` (a Unix time), or None once it has expired."""
        return self.level if self.until is None or when < self.until else None


@dataclass(frozen=True)
class Move:
    """A change of a class's earned level, what caused it and what it rests on."""

    kind: str  # promote | demote | complaint | human-demote | policy
    actor: str  # ratchet | human | policy
    from_level: Level
    to_level: Level
    reason: str
    evidence: Evidence
    action_id: int | None


@dataclass(frozen=True)
class Settled:
    """The standing after one event, the move it made (if any), and what became of its sample."""

    standing: Standing
    move: Move | None = None
    # "added": the event's sample joined the window (a failure, for a complaint); "flipped": the
    # action's sample already in the window became a failure; None: no sample changed.
    sample: Literal["added", "flipped"] | None = None


def cap(standing: Standing, freeze: Level | None) -> Level | None:
    """The lower of the class's pin and the freeze in force (None: neither)."""
    caps = [c for c in (standing.pinned, freeze) if c is not None]
    return min(caps) if caps else None


def _moved(standing: Standing, to: Level, kind: str, actor: str, reason: str, ev: Evidence, aid: int | None) -> Move:
    return Move(kind, actor, standing.level, to, reason, ev, aid)


def _judged(
    cls: ActionClass,
    standing: Standing,
    window: Window,
    action_id: int,
    freeze: Level | None,
    sample: Literal["added", "flipped"],
) -> Settled:
    """Judge the window that now holds the event's sample: move one rung, or keep the window."""
    held = None if standing.pinned is None and freeze is None else cap(standing, freeze)
    ceiling = standing.level if held is not None and held <= standing.level else cls.ceiling
    on_probation = standing.probation > 0
    verdict = judge(window, standing.level, cls.floor, ceiling, cls.trust, probation=on_probation)
    left = max(standing.probation - 1, 0) if sample == "added" else standing.probation
    if verdict.move is None:
        return Settled(Standing(standing.level, window, standing.pinned, left), None, sample)
    move = _moved(standing, verdict.to_level, verdict.move, "ratchet", verdict.reason, verdict.evidence, action_id)
    probation = cls.trust.probation if verdict.move == "promote" else 0
    return Settled(Standing(verdict.to_level, Window(), standing.pinned, probation), move, sample)


def settle(cls: ActionClass, standing: Standing, event: Event, freeze: Level | None = None) -> Settled:
    """The class's standing after `event`, and the move it causes; `freeze` is the freeze level in force."""
    if isinstance(event, Observed):
        window = add_sample(standing.window, Sample(event.action_id, event.ok), cls.trust)
        return _judged(cls, standing, window, event.action_id, freeze, "added")
    if isinstance(event, Complained | Disproved):
        aid = event.action_id
        if isinstance(event, Complained) and cls.demote_on_complaint and standing.level > cls.floor:
            reason = f"complaint on action {aid}" + (f": {event.reason}" if event.reason else "")
            ev = evidence(standing.window, cls.trust)
            move = _moved(standing, standing.level.down(), "complaint", "human", reason, ev, aid)
            return Settled(Standing(move.to_level, Window(), standing.pinned), move)
        flipped = flip_sample(standing.window, aid)
        if flipped is not None:
            return _judged(cls, standing, flipped, aid, freeze, "flipped")
        window = add_sample(standing.window, Sample(aid, False), cls.trust)
        return _judged(cls, standing, window, aid, freeze, "added")
    if isinstance(event, Pinned):
        return Settled(replace(standing, pinned=event.level))
    if isinstance(event, HumanDemoted):
        to = max(event.to, cls.floor)
        if to >= standing.level:
            return Settled(standing)
        move = _moved(standing, to, "human-demote", "human", event.reason, evidence(standing.window, cls.trust), None)
        return Settled(Standing(to, Window(), standing.pinned), move)
    ev = evidence(standing.window, cls.trust)
    move = _moved(standing, event.to, "policy", "policy", event.reason, ev, None)
    return Settled(Standing(event.to, Window(), standing.pinned), move)


REPEAT = "repeat"  # the sample label of a success that was padding: no sample, no streak reset


def work_key(tool: str, args_json: str, fingerprint: str | None, last_change: int | None) -> str:
    """What an action did and to what: its tool, arguments and fingerprint, and the id of its
    session's last change before it (a command re-run after an edit is new work; without one it is not)."""
    try:
        args = json.dumps(json.loads(args_json), sort_keys=True)
    except ValueError:
        args = args_json
    text = "\0".join([tool, args, fingerprint or "", "" if last_change is None else str(last_change)])
    return hashlib.sha256(text.encode()).hexdigest()


def is_padding(ok: bool, key: str, counted: Iterable[str]) -> bool:
    """Whether a sample is padding: a success whose work is that of a success already in the window."""
    return ok and key in set(counted)


def streak_after(session_id: str, failures: int, ok: bool) -> int | None:
    """A session's failure streak in a class after one of its samples (None: the CLI keeps no streak)."""
    if session_id == CLI_SESSION:
        return None
    return 0 if ok else failures + 1


def recorded_sample(
    sample: str | None, *, edited: bool, answer: str | None, failed: bool, counts_failures: bool
) -> bool | None:
    """The sample an action's recorded outcome gave its class, for a replay (None: it gave none): its
    label, edit, provenance and failed run read back through the one outcome rule (rules/outcome.py)."""
    outcome = recorded(sample, status="failed" if failed else "executed", edited=edited, answer=answer)
    return counts_as(outcome, counts_failures=counts_failures)
