"""The decision: prepare a call, classify it, read what the gate needs from the record, and decide.

Reads only (apart from reporting a record changed outside Ratchet); safe to repeat. Carrying the
decision out is engine/carry.py's.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import anyio

from ratchet.engine.core import Evaluation, Setting
from ratchet.engine.reviewer import judges
from ratchet.errors import InvalidRequest
from ratchet.operations import operation, sandbox_status_async
from ratchet.policy.levels import Level
from ratchet.policy.limits import check_class
from ratchet.policy.model import ActionClass, Subject
from ratchet.record import actions, integrity
from ratchet.record.store import class_row
from ratchet.rules import contracts
from ratchet.rules.gate import Trigger, decide, no_sandbox_trigger
from ratchet.rules.reviewer import steering_triggers


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
    ) -> Evaluation:
        """Prepare and classify a call and let the gate decide. Reads only; safe to repeat.

        `shell_rule=False` is for shell strings Ratchet does not run itself (a client's built-in shell
        tool, seen through its hook): they are classified by what they run, like any other.
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
        # Everything the gate needs from the database, in one round trip.
        session = s.session_id
        state = await s.store.call(lambda c: actions.gate_state(c, session, cls.name, cls.trust.window_size))
        rec, freeze, found = integrity.from_gate_row(state.record, cls)
        if found:  # changed outside Ratchet: reported (checked again inside the write), and the record decides
            await s.store.run(lambda conn: integrity.checked(conn, cls, class_row(conn, cls.name)))
        if freeze is not None and freeze.broken:
            held = freeze
            await s.store.run(lambda conn: integrity.report_freeze(conn, held))
        level = min(max(rec.level, cls.floor), cls.ceiling)
        pinned = rec.pinned
        extra = [freeze.trigger()] if freeze is not None and freeze.active() else []
        extra += await self._context_triggers(cls, level, prepared.subjects, state.task_id)
        side = await self._side_effects([subject for subject in prepared.subjects if subject.tool != prepared.tool])
        extra += [trigger for trigger, _ in side]
        standing_level = level if pinned is None else min(level, pinned)
        lowest = min(side, key=lambda found: found[0].cap, default=None)
        # Evidence goes to the class whose level decided: a side effect standing below the call's own
        # class (ties stay with the call's class; of several, the lowest, then the first).
        deciding = lowest[1] if lowest is not None and lowest[0].cap < standing_level else None
        if prepared.tool == "run_command" and shell_rule:  # Ratchet runs it (not a client through its hook)
            sandbox = await sandbox_status_async()
            capped = no_sandbox_trigger(cls, sandbox.available, sandbox.detail)
            extra += [capped] if capped is not None else []
        extra += [Trigger(name, detail, Level.BLOCKED) for name, detail in prepared.refusals]
        extra += steering_triggers(judges(s.policy, cls), prepared.shown)  # a change addressing the reviewer
        decision = decide(
            cls,
            level,
            pinned=pinned,
            confidence=confidence,
            session_failures=state.failures,
            can_elicit=can_elicit,
            answers_here=s.answers_here,
            extra=tuple(extra),
        )
        return Evaluation(prepared, cls, decision, rec.transition_id, state.task_id, deciding)

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
