"""`ratchet simulate`: what a candidate policy would have done with the history already recorded.

Use it before merging a policy change. Every recorded action is re-classified under the candidate
(`Subject.from_dict(subject_json)` -> `Policy.classify`), each candidate class's trust window is
replayed from the recorded outcomes through the settle rule the live record uses (rules/settle.py), and the real gate
(`gate.decide`) decides each action at the level its class would have stood at. The report lists
the actions whose route changes, the promotions and demotions that would have happened and at which
action (beside the action at which the record shows the same move), and the human interventions the
candidate would have added or saved. Nothing is written; the candidate is not synced into the
database. The assumptions are in `ASSUMPTIONS` and printed with every report.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from pydantic import BaseModel, Field

from ratchet.errors import InvalidRequest
from ratchet.evidence.checkpoint import freeze_cap, standing_at, tail_size
from ratchet.evidence.metrics import period_bounds
from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy
from ratchet.policy.model import ActionClass, Examples, Policy, Subject
from ratchet.record.evidence import (
    ActionRecord,
    ComplaintRecord,
    TransitionRecord,
    class_befores,
    class_names,
    replay_record,
)
from ratchet.record.integrity import ALL_CLASSES, FREEZE_KINDS
from ratchet.record.store import Location, Store
from ratchet.rules.gate import Route, Trigger, decide
from ratchet.rules.outcome import counts_as, recorded
from ratchet.rules.settle import (
    Complained,
    Event,
    FreezeCap,
    HumanDemoted,
    Observed,
    Pinned,
    Standing,
    settle,
    streak_after,
)

ASSUMPTIONS = (
    "The candidate policy is in force from the start of the period: a class the record shows before it starts "
    "where the record shows it stood then (its level held within the candidate's floor and ceiling, its "
    "window, its pin, the freeze in force); any other starts at the candidate's `start`. Recorded policy "
    "transitions (a changed start or bounds) are not replayed.",
    "Given the policy in force (`--against`), only the classes the candidate changes are replayed; the others "
    "would route as recorded and are listed as skipped. When the candidate changes what a class matches (or "
    "adds or removes a class), every class is replayed.",
    "Actions are decided in id order. A sample lands when it landed in the record: at once for a simulated run "
    "or confirmation, at the recorded review time for a simulated draft. A complaint lands at its recorded time.",
    "An action's recorded outcome stands in for its outcome at the simulated level: approved unchanged or ran "
    "cleanly is a success; rejected, declined, edited or failed is a failure; a complaint is replayed wherever "
    "the action would still have run. An action that would have been stopped gives no sample, and one recorded "
    "as blocked or still pending has no outcome to replay, so it gives none at any level; nor does one approved "
    "by an answer that was no evidence (`unverified`), as in the record.",
    "Confidence triggers are replayed from the recorded confidence and the session failure streak from the "
    "simulated samples. A session whose client could not ask its human (a recorded `no-elicitation` trigger) "
    "cannot under the candidate either, and a confirmation dialog the human cancelled is cancelled again.",
    "A sample counts for the class the record shows it counted for (a side effect's class, such as a redirect's "
    "file) when the candidate classifies the action as recorded and still has that class; otherwise for the "
    "action's candidate class. "
    "Human demotions, pins and freezes are replayed at their recorded time onto the candidate class of the same "
    "name (a freeze onto every class). "
    "A trigger the gate cannot recompute from the record (one the engine derived from other state) caps the "
    "call at its recorded cap.",
    "A simulated confirmation is one human decision; a simulated draft is one when the record shows it decided, "
    "or when the action ran or was blocked in the record; a simulated block is one when the record shows a human "
    "resolving that block; a complaint counts where the action would still run. Handoffs are not replayed.",
    "Verification checks are not run again: a check failure recorded on an action is in its recorded sample and "
    "is replayed with it, but a candidate's own `verify` checks cannot judge history they never ran on, so "
    '"what if this class had had these checks" is answered only for actions whose check results are recorded.',
)
MOVE_KINDS = ("promote", "demote", "complaint", "human-demote")
HUMAN_KINDS = ("human-demote", "pin", "unpin")
_NOT_ELICITED = {"no-elicitation", "cli-approval-required"}
GATE_TRIGGERS = frozenset({"pinned", "repeated-failure", "confidence", *_NOT_ELICITED})  # what `decide` computes


class RouteChange(BaseModel):
    """One action the candidate would have routed differently."""

    action_id: int
    tool: str
    target: str
    recorded_class: str
    simulated_class: str
    recorded_route: str
    simulated_route: str
    simulated_class_level: str
    triggers: list[str] = Field(description="names of the triggers in the simulated decision")


class SimulatedMove(BaseModel):
    """A promotion or demotion, simulated or recorded, and where the other side had it."""

    action_class: str
    from_level: str
    to_level: str
    kind: str
    action_id: int | None = Field(description="the action whose sample or complaint caused it under the candidate")
    reason: str
    recorded_action_id: int | None = Field(None, description="the action at which the record shows the same move")
    recorded: bool = Field(False, description="the record shows the same move (same class, levels and occurrence)")


class SimulationReport(BaseModel):
    """What the candidate policy would have done with the recorded history."""

    candidate: str
    candidate_fingerprint: str
    since: float | None = Field(None, description="the period replayed began here (None: the first recorded action)")
    replayed_classes: list[str] | None = Field(
        None, description="the classes replayed (None: every class, no policy in force was given to compare with)"
    )
    skipped_classes: list[str] = Field(
        [], description="classes the candidate leaves as the policy in force has them: not replayed"
    )
    replayed: int
    skipped: list[int] = Field(description="actions with no recorded subject (refused calls, schema v1 rows)")
    reclassified: int = Field(description="actions that fall into a differently named class")
    changes: list[RouteChange]
    stopped: list[int] = Field(description="actions that ran or were queued, and would have been blocked")
    held: list[int] = Field(description="actions that ran without review, and would have needed a human")
    released: list[int] = Field(description="actions that needed a human or were blocked, and would have run")
    unreviewed_failures: list[int] = Field(
        description="released actions whose recorded outcome was a failure or a complaint"
    )
    moves: list[SimulatedMove]
    moves_not_simulated: list[SimulatedMove] = Field(description="recorded moves the candidate would not make")
    interventions_recorded: int
    interventions_simulated: int
    interventions_added: int
    interventions_saved: int
    assumptions: list[str] = list(ASSUMPTIONS)


@dataclass
class _Class:
    cls: ActionClass
    standing: Standing


@dataclass
class _Replay:
    """The candidate's standings, streaks and pending events while history replays through the one
    settle rule (rules/settle.py) the live record uses."""

    policy: Policy
    classes: dict[str, _Class] = field(default_factory=dict)
    streaks: dict[tuple[str, str], int] = field(default_factory=dict)
    moves: list[SimulatedMove] = field(default_factory=list)
    pending: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    order: Iterator[int] = field(default_factory=itertools.count)
    freeze: FreezeCap | None = None

    def standing(self, cls: ActionClass) -> Standing:
        return self.classes.setdefault(cls.name, _Class(cls, Standing(cls.start))).standing

    def later(self, at: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.pending, (at, next(self.order), run))  # ties keep the order they were scheduled

    def flush(self, until: float) -> None:
        while self.pending and self.pending[0][0] <= until:
            heapq.heappop(self.pending)[2]()

    def apply(self, cls: ActionClass, event: Event, at: float) -> None:
        """One event through the settle rule, under the freeze in force at `at`."""
        self.standing(cls)
        entry = self.classes[cls.name]
        out = settle(cls, entry.standing, event, None if self.freeze is None else self.freeze.at(at))
        entry.standing = out.standing
        if out.move is not None:
            m = out.move
            self.moves.append(
                SimulatedMove(
                    action_class=cls.name,
                    from_level=m.from_level.label,
                    to_level=m.to_level.label,
                    kind=m.kind,
                    action_id=m.action_id,
                    reason=m.reason,
                )
            )

    def sample(self, cls: ActionClass, action_id: int, ok: bool, session_id: str, at: float) -> None:
        """A sample, and the session's failure streak it updates, as the live record does."""
        streak = streak_after(session_id, self.streaks.get((session_id, cls.name), 0), ok)
        if streak is not None:
            self.streaks[(session_id, cls.name)] = streak
        self.apply(cls, Observed(action_id, ok), at)

    def human(self, t: TransitionRecord) -> None:
        """A recorded freeze, human demotion, pin or unpin, onto the candidate class of the same name."""
        if t.action_class == ALL_CLASSES:
            self.freeze = FreezeCap(Level.parse(t.to_level), t.evidence.get("until")) if t.kind == "freeze" else None
            return
        cls = self.policy.classes.get(t.action_class)
        if cls is None:
            return
        event: Event
        if t.kind == "human-demote":
            event = HumanDemoted(Level.parse(t.to_level), t.reason)
        else:
            event = Pinned(Level.parse(t.to_level) if t.kind == "pin" else None)
        self.apply(cls, event, t.at)


def _recorded_ok(row: ActionRecord, cls: ActionClass) -> bool | None:
    return counts_as(
        recorded(row.sample, status=row.status, edited=row.edited, answer=row.evidence),
        counts_failures=cls.count_execution_failures,
    )


def _cancelled(row: ActionRecord, triggers: set[str]) -> bool:
    """The record shows a confirmation the human cancelled (it became a draft with no trigger saying why)."""
    return row.level == "confirm" and row.route == "draft" and not triggers & _NOT_ELICITED


def _decisions(route: Route, row: ActionRecord) -> int:
    if route is Route.BLOCK:  # a human answered the escalation in the record, and would again
        return 1 if row.route == "block" and row.resolved_at is not None else 0
    if route is Route.CONFIRM:
        return 1
    if route is Route.DRAFT:
        return 1 if row.reviewer is not None or row.route in ("execute", "block") else 0
    return 0


def _match_moves(simulated: list[SimulatedMove], transitions: list[TransitionRecord]) -> list[SimulatedMove]:
    """Pair simulated and recorded moves by class, levels and occurrence; return the recorded-only ones."""
    recorded: dict[tuple[str, str, str], list[TransitionRecord]] = {}
    for t in transitions:
        if t.kind in MOVE_KINDS:
            recorded.setdefault((t.action_class, t.from_level, t.to_level), []).append(t)
    for move in simulated:
        queue = recorded.get((move.action_class, move.from_level, move.to_level))
        if queue:
            t = queue.pop(0)
            move.recorded, move.recorded_action_id = True, t.action_id
    return [
        SimulatedMove(
            action_class=t.action_class,
            from_level=t.from_level,
            to_level=t.to_level,
            kind=t.kind,
            action_id=None,
            reason=t.reason,
            recorded_action_id=t.action_id,
            recorded=True,
        )
        for queue in recorded.values()
        for t in queue
    ]


def _same(a: ActionClass | None, b: ActionClass | None) -> bool:
    """The two classes decide and settle alike (where they are written down is no difference)."""
    if a is None or b is None:
        return a is b
    return replace(a, file="", line=0, description="", examples=Examples()) == replace(
        b, file="", line=0, description="", examples=Examples()
    )


def _matching(c: ActionClass) -> tuple[object, ...]:
    return (c.name, c.tools, c.paths, c.argv, c.branches, c.remotes, c.force, c.priority)


def changed_classes(candidate: Policy, current: Policy) -> frozenset[str] | None:
    """The classes the candidate changes against the policy in force; None when it changes what the classes
    match (a class added, removed or matching differently), so that any action may change class."""
    if {_matching(c) for c in candidate.classes.values()} != {_matching(c) for c in current.classes.values()}:
        return None
    names = {n for n in candidate.classes if not _same(candidate.classes[n], current.classes.get(n))}
    if not _same(candidate.unclassified, current.unclassified):
        names.add(candidate.unclassified.name)
    return frozenset(names)


PROGRESS_EVERY = 20_000  # actions between two progress reports


async def simulate(
    store: Store,
    candidate: Policy,
    *,
    since: str | float | None = None,
    against: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Replay the period's recorded actions against `candidate`; see the module docstring and ASSUMPTIONS.

    `since` as for `ratchet metrics` (None: the last `DEFAULT_PERIOD`; `all`: the whole history).
    `against`, the policy in force, limits the replay to the classes the candidate changes.
    `progress(done, total)` is called every `PROGRESS_EVERY` actions replayed."""
    start, _ = period_bounds(since, None)
    classes = None if against is None else changed_classes(candidate, against)
    record = await replay_record(store, start, classes, mute_trigger="no-elicitation")
    complaints: dict[int, list[ComplaintRecord]] = {}
    for c in record.complaints:
        complaints.setdefault(c.action_id, []).append(c)
    triggers = {r.id: {t["name"] for t in r.triggers} for r in record.actions}
    mute = record.mute_sessions
    replay = _Replay(candidate)
    everyone = [*candidate.classes.values(), candidate.unclassified]
    replayed = everyone if classes is None else [c for c in everyone if c.name in classes]
    if start is not None and replayed:
        await _standings_before(store, replay, replayed, start)
    for t in record.transitions:
        if t.kind in HUMAN_KINDS or (t.action_class == ALL_CLASSES and t.kind in FREEZE_KINDS):
            replay.later(t.at, partial(replay.human, t))
    report = _empty_report(candidate, start, classes, everyone)
    total = len(record.actions)
    for done, row in enumerate(record.actions, 1):
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, total)
        if row.subject is None:
            report.skipped.append(row.id)
            continue
        replay.flush(row.created_at)
        if classes is not None and row.action_class not in classes:
            # Routed as recorded (its class is unchanged); its sample counts for the changed class it was judged in.
            judged_only = candidate.classes.get(row.evidence_class)
            ok = None if judged_only is None or row.route == "block" else _recorded_ok(row, judged_only)
            if judged_only is not None and ok is not None:
                at = row.settled_at
                replay.later(at, partial(replay.sample, judged_only, row.id, ok, row.session_id, at))
            continue
        aid, session = row.id, row.session_id
        cls = candidate.classify(Subject.from_dict(row.subject)).cls
        st = replay.standing(cls)
        # Triggers the engine computed from state the gate does not see are replayed as recorded caps.
        caps = [Level.parse(t["cap"]) for t in row.triggers if t["name"] not in GATE_TRIGGERS]
        decision = decide(
            cls,
            min([st.level, *caps]),
            pinned=st.pinned,
            confidence=row.confidence,
            session_failures=replay.streaks.get((session, cls.name), 0),
            can_elicit=session not in mute,
        )
        route = decision.route
        if route is Route.CONFIRM and _cancelled(row, triggers[aid]):
            route = Route.DRAFT
        judged = cls  # the class its sample counts for: a side effect's, where the record shows one
        if cls.name == row.action_class and row.evidence_class != row.action_class:
            judged = candidate.classes.get(row.evidence_class, cls)
        ok = _recorded_ok(row, judged)
        said = complaints.get(aid, [])
        if route is not Route.BLOCK:
            if ok is not None and route is Route.DRAFT:
                at = row.settled_at
                replay.later(at, partial(replay.sample, judged, aid, ok, session, at))
            elif ok is not None:
                replay.sample(judged, aid, ok, session, row.settled_at)
            for c in said:
                replay.later(c.at, partial(replay.apply, judged, Complained(aid, c.reason), c.at))
        _tally(
            report,
            row,
            route,
            cls,
            st.level.label,
            decision.triggers,
            recorded_n=(row.reviewer is not None) + len(said),
            complained=len(said),
        )
    replay.flush(math.inf)
    report.moves = replay.moves
    report.moves_not_simulated = _match_moves(report.moves, record.transitions)
    return report


async def _standings_before(store: Store, replay: _Replay, replayed: list[ActionClass], start: float) -> None:
    """Each replayed class's standing when the period starts, from what was recorded before it."""
    names = await class_names(store, start)
    befores = await class_befores(
        store, [c.name for c in replayed], start, tail={c.name: tail_size(c) for c in replayed}
    )
    for cls in replayed:
        before = befores[cls.name]
        replay.freeze = freeze_cap(before.freeze)  # the same for every class
        if not before.seen:
            continue  # nothing recorded before the period: it starts at the candidate's start
        initial = before.first_move.from_level if before.first_move is not None else names.levels.get(cls.name)
        standing, _ = standing_at(cls, before, initial or cls.start.label)
        level = min(max(standing.level, cls.floor), cls.ceiling)
        replay.classes[cls.name] = _Class(cls, replace(standing, level=level))


def _empty_report(
    candidate: Policy, start: float | None, classes: frozenset[str] | None, everyone: list[ActionClass]
) -> SimulationReport:
    """The report before any action is replayed."""
    return SimulationReport(
        candidate=str(candidate.directory),
        candidate_fingerprint=candidate.fingerprint,
        replayed=0,
        skipped=[],
        reclassified=0,
        changes=[],
        stopped=[],
        held=[],
        released=[],
        unreviewed_failures=[],
        moves=[],
        moves_not_simulated=[],
        interventions_recorded=0,
        interventions_simulated=0,
        interventions_added=0,
        interventions_saved=0,
        since=start,
        replayed_classes=None if classes is None else sorted(classes),
        skipped_classes=[] if classes is None else sorted(c.name for c in everyone if c.name not in classes),
    )


def _tally(
    report: SimulationReport,
    row: ActionRecord,
    route: Route,
    cls: ActionClass,
    level: str,
    triggers: Sequence[Trigger],
    *,
    recorded_n: int,
    complained: int,
) -> None:
    """Count one replayed action into the report: interventions, and its route change if it has one."""
    report.replayed += 1
    report.reclassified += cls.name != row.action_class
    simulated_n = _decisions(route, row) + (complained if route is not Route.BLOCK else 0)
    report.interventions_recorded += recorded_n
    report.interventions_simulated += simulated_n
    report.interventions_added += max(0, simulated_n - recorded_n)
    report.interventions_saved += max(0, recorded_n - simulated_n)
    if route.value == row.route:
        return
    report.changes.append(
        RouteChange(
            action_id=row.id,
            tool=row.tool,
            target=row.target,
            recorded_class=row.action_class,
            simulated_class=cls.name,
            recorded_route=row.route,
            simulated_route=route.value,
            simulated_class_level=level,
            triggers=[t.name for t in triggers],
        )
    )
    if route is Route.BLOCK:
        report.stopped.append(row.id)
    elif route is not Route.EXECUTE and row.route == "execute":
        report.held.append(row.id)
    elif route is Route.EXECUTE:
        report.released.append(row.id)
        if row.sample in ("failure", "complained") or row.status in ("rejected", "declined"):
            report.unreviewed_failures.append(row.id)


def render_simulation(r: SimulationReport) -> str:
    """The report as text: route changes, moves, interventions, assumptions."""
    period = "the whole history" if r.since is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(r.since))
    out = [
        f"period from {period}; "
        + (
            "every class replayed"
            if r.replayed_classes is None
            else f"classes replayed (changed by the candidate): {', '.join(r.replayed_classes) or 'none'}; "
            f"skipped (unchanged, routed as recorded): {', '.join(r.skipped_classes) or 'none'}"
        ),
        f"candidate {r.candidate} ({r.candidate_fingerprint}): {r.replayed} actions replayed"
        + (f", {len(r.skipped)} skipped (no recorded subject)" if r.skipped else "")
        + f", {r.reclassified} in a different class",
        f"route changes: {len(r.changes)} (stopped {len(r.stopped)}, held for a human {len(r.held)}, "
        f"released to run unreviewed {len(r.released)})",
    ]
    out += [
        f"  action {c.action_id:>5}  {c.target:<40} {c.recorded_route:>7} -> {c.simulated_route:<7} "
        f"{c.recorded_class}{' -> ' + c.simulated_class if c.simulated_class != c.recorded_class else ''}"
        f" at {c.simulated_class_level}" + (f" ({', '.join(c.triggers)})" if c.triggers else "")
        for c in r.changes
    ]
    if r.unreviewed_failures:
        out.append(f"  would have run unreviewed although a human refused or complained: {r.unreviewed_failures}")
    out.append(f"moves under the candidate: {len(r.moves)}")
    for m in r.moves:
        where = f"at action {m.action_id}" if m.action_id is not None else "by a human"
        was = (
            f"recorded at action {m.recorded_action_id}"
            if m.recorded and m.recorded_action_id is not None
            else "recorded"
            if m.recorded
            else "not in the record"
        )
        out.append(f"  {m.action_class}: {m.from_level} -> {m.to_level} ({m.kind}) {where}; {was}")
    out += [
        f"  not under the candidate: {m.action_class} {m.from_level} -> {m.to_level} ({m.kind}), recorded at "
        f"action {m.recorded_action_id}"
        for m in r.moves_not_simulated
    ]
    out.append(
        f"human interventions: {r.interventions_recorded} recorded, {r.interventions_simulated} simulated "
        f"(+{r.interventions_added} added, -{r.interventions_saved} saved)"
    )
    out.append("assumptions:")
    out += [f"  - {a}" for a in r.assumptions]
    return "\n".join(out)


async def simulate_candidate(
    db: Location,
    candidate_dir: Path,
    *,
    since: str | float | None = None,
    against_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Load the candidate policy (and the policy in force, if given; both fail closed), open the recorded
    database read-only in effect, replay.

    The database is opened as a `Store`, not an `Engine`: an engine would sync the candidate's starts
    and bounds into the trust database, and a simulation must change nothing.
    """
    candidate = load_policy(candidate_dir)
    against = None if against_dir is None else load_policy(against_dir)
    if isinstance(db, Path) and not db.exists():
        raise InvalidRequest(f"no trust database at {db}: there is no history to replay")
    store = await Store.open(db)
    try:
        return await simulate(store, candidate, since=since, against=against, progress=progress)
    finally:
        await store.close()
