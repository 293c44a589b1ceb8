"""The decision: prepare a call, classify it, read what the gate needs from the record, and decide.

Reads only (apart from reporting a record changed outside Ratchet); safe to repeat. Carrying the
decision out is engine/carry.py's.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

import anyio

from ratchet.engine.core import Evaluation, Setting
from ratchet.engine.intent import kept_texts, row_of
from ratchet.engine.reviewer import judges
from ratchet.engine.where import Origin
from ratchet.errors import InvalidRequest
from ratchet.operations import Prepared, operation, sandbox_status_async
from ratchet.policy.levels import Level
from ratchet.policy.limits import check_class
from ratchet.policy.model import ActionClass, Subject
from ratchet.record import actions, integrity
from ratchet.record.lifecycle import Status
from ratchet.record.locks import Scope
from ratchet.record.store import class_row
from ratchet.rules import contracts
from ratchet.rules.gate import Route, Trigger, decide, no_sandbox_trigger
from ratchet.rules.reviewer import steering_triggers


@dataclass(frozen=True)
class Claim:
    """A call to be carried out at once: its intent is recorded with the decision when the gate lets it run."""

    intent: str | None
    confidence: float | None
    origin: Origin


@dataclass(frozen=True)
class _Basis:
    """What a decision rests on besides the class's standing: the prepared call, its class, and the
    triggers that do not depend on the record (side effects, the sandbox, refusals, the reviewer)."""

    prepared: Prepared
    cls: ActionClass
    side: list[tuple[Trigger, ActionClass]]
    later: list[Trigger]
    confidence: float | None
    can_elicit: bool


class Decider:
    """Evaluates calls for one session: operation.prepare -> policy.classify -> gate.decide."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    async def evaluate(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        confidence: float | None = None,
        can_elicit: bool = True,
        shell_rule: bool = True,
        claim: Claim | None = None,
    ) -> Evaluation:
        """Prepare and classify a call and let the gate decide. Reads only; safe to repeat.

        `shell_rule=False` is for shell strings Ratchet does not run itself (a client's built-in shell
        tool, seen through its hook): they are classified by what they run, like any other.

        With `claim` (a caller that carries the call out at once: `CallSide.govern`), a call the gate
        lets run has its intent recorded in the unit of work that read what the decision needs, in one
        transaction: the returned evaluation's `claimed` is its action id, and nothing can move the class
        between the decision and the intent. A decision that needs more of the record (a task, novelty,
        a finding of the integrity check) reads it as without `claim`, and the intent is recorded later.
        """
        s = self.setting
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise InvalidRequest(f"confidence {confidence} is out of range; expected a number from 0 to 1")
        prepared = await operation(tool).prepare(s.op_context(), args)
        if len(prepared.preview) > 65536:
            await anyio.to_thread.run_sync(lambda: prepared.shown)  # a long preview is redacted off the loop
        own = [subject for subject in prepared.subjects if subject.tool == prepared.tool]
        classes = {c.name: c for c in (s.policy.classify(subject).cls for subject in own)}
        if prepared.shell and shell_rule and not prepared.refusals:  # a refusal outranks the shell rule
            refusing = sorted(name for name, c in classes.items() if not c.allow_shell)
            if refusing:
                raise InvalidRequest(
                    f"class {', '.join(refusing)} does not accept shell strings; pass argv "
                    "(a list) instead, or ask for a class with allow_shell = true"
                )
        # The second limit check: the call's sizes against every class it fell into.
        check_class(prepared.tool, prepared.sizes, classes.values(), s.policy.defaults_file)
        cls = await self._most_conservative(list(classes.values()))
        # What does not depend on the class's standing: side effects, the sandbox, refusals, the reviewer.
        side = await self._side_effects([subject for subject in prepared.subjects if subject.tool != prepared.tool])
        later = [trigger for trigger, _ in side]
        if prepared.tool == "run_command" and shell_rule:  # Ratchet runs it (not a client through its hook)
            sandbox = await sandbox_status_async()
            capped = no_sandbox_trigger(cls, sandbox.available, sandbox.detail)
            later += [capped] if capped is not None else []
        later += [Trigger(name, detail, Level.BLOCKED) for name, detail in prepared.refusals]
        later += steering_triggers(judges(s.policy, cls), prepared.shown)  # a change addressing the reviewer
        basis = _Basis(prepared, cls, side, later, confidence, can_elicit)
        session = s.session_id
        if claim is not None:
            kept = await kept_texts(prepared, claim.intent, drafted=False)

            def decide_and_claim(conn: sqlite3.Connection) -> tuple[actions.GateState, Evaluation | None]:
                state = actions.gate_state(conn, session, cls.name, cls.trust.window_size)
                ev = self._decided(basis, state)
                if ev is None or ev.decision.route is not Route.EXECUTE:
                    return state, ev
                row = row_of(s, claim.origin, ev, kept, claim.confidence, Status.RUNNING, Route.EXECUTE)
                # The intent is committed before the effect: a crash from here on leaves a `running` row.
                return state, dataclasses.replace(ev, claimed=actions.insert_intent(conn, row))

            state, decided = await s.store.run(decide_and_claim, scope=Scope.of(), short=True)
        else:
            # Everything the gate needs from the database, in one round trip.
            state = await s.store.call(
                lambda c: actions.gate_state(c, session, cls.name, cls.trust.window_size), short=True
            )
            decided = self._decided(basis, state)
        return decided if decided is not None else await self._decided_reading(basis, state)

    def _decided(self, basis: _Basis, state: actions.GateState) -> Evaluation | None:
        """The decision from the gate's state alone, or None when it needs more of the record (the
        session's task, the class's novelty, a finding of the integrity check)."""
        if state.task_id is not None or basis.cls.novelty:
            return None
        rec, freeze, found = integrity.from_gate_row(state.record, basis.cls)
        if found or (freeze is not None and freeze.broken):
            return None
        extra = [freeze.trigger()] if freeze is not None and freeze.active() else []
        return self._decision(basis, state, rec, extra)

    async def _decided_reading(self, basis: _Basis, state: actions.GateState) -> Evaluation:
        """The decision when it needs more than the gate's state: the integrity check's findings reported,
        the session's task and the class's novelty read."""
        s, cls = self.setting, basis.cls
        rec, freeze, found = integrity.from_gate_row(state.record, cls)
        if found:  # changed outside Ratchet: reported (checked again inside the write), and the record decides
            await s.store.run(lambda conn: integrity.checked(conn, cls, class_row(conn, cls.name)))
        if freeze is not None and freeze.broken:
            held = freeze
            await s.store.run(lambda conn: integrity.report_freeze(conn, held))
        level = min(max(rec.level, cls.floor), cls.ceiling)
        extra = [freeze.trigger()] if freeze is not None and freeze.active() else []
        extra += await self._context_triggers(cls, level, basis.prepared.subjects, state.task_id)
        return self._decision(basis, state, rec, extra)

    def _decision(
        self, basis: _Basis, state: actions.GateState, rec: integrity.Recorded, extra: list[Trigger]
    ) -> Evaluation:
        """The gate's decision (pure): the class's standing, capped by every trigger."""
        s, cls = self.setting, basis.cls
        level = min(max(rec.level, cls.floor), cls.ceiling)
        pinned = rec.pinned
        standing_level = level if pinned is None else min(level, pinned)
        lowest = min(basis.side, key=lambda found: found[0].cap, default=None)
        # Evidence goes to the class whose level decided: a side effect standing below the call's own
        # class (ties stay with the call's class; of several, the lowest, then the first).
        deciding = lowest[1] if lowest is not None and lowest[0].cap < standing_level else None
        decision = decide(
            cls,
            level,
            pinned=pinned,
            confidence=basis.confidence,
            session_failures=state.failures,
            can_elicit=basis.can_elicit,
            answers_here=s.answers_here,
            extra=(*extra, *basis.later),
        )
        return Evaluation(basis.prepared, cls, decision, rec.transition_id, state.task_id, deciding)

    async def effective(self, cls: ActionClass) -> Level:
        """The class's level by the record, under its pin and any freeze (one round trip)."""

        def read(conn: sqlite3.Connection) -> Level:
            rec = integrity.recorded(conn, cls)
            return integrity.effective(cls, rec.level, rec.pinned, integrity.freeze_of(conn))

        return await self.setting.store.call(read)

    async def _most_conservative(self, classes: list[ActionClass]) -> ActionClass:
        """Of the classes a compound action falls into, the one standing lowest (then the lowest ceiling)."""
        if len(classes) == 1:
            return classes[0]
        ranked = [((await self.effective(c), c.ceiling, c.start, c.name), c) for c in classes]
        return min(ranked, key=lambda r: r[0])[1]

    async def _side_effects(self, subjects: list[Subject]) -> list[tuple[Trigger, ActionClass]]:
        """A command that also writes files (shell redirection) is held to the file's class as well."""
        found = []
        for subject in subjects:
            cls = self.setting.policy.classify(subject).cls
            level = await self.effective(cls)
            trigger = Trigger(
                "side-effect", f"also writes {', '.join(subject.paths)} (class {cls.name} at {level.label})", level
            )
            found.append((trigger, cls))
        return found

    async def _context_triggers(
        self, cls: ActionClass, level: Level, subjects: tuple[Subject, ...], task_id: int | None
    ) -> list[Trigger]:
        """Triggers from the session's run contract and from what the class has seen before."""
        s = self.setting
        found: list[Trigger] = []
        task = await contracts.open_task(s.store, s.session_id) if task_id is not None else None
        if task is not None:
            found += task.triggers(subjects, cls.name)
        if cls.novelty:
            keys = [k for subject in subjects for k in contracts.novelty_keys(subject)]
            known = await s.store.call(lambda c: actions.seen(c, cls.name, keys))
            novel = contracts.novelty_trigger(cls, level, [k for k in keys if k not in known])
            if novel is not None:
                found.append(novel)
        return found
