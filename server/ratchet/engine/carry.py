"""Carrying a decision out: the person's answer judged, then the call run, or held (declined, queued, blocked).

A call goes down this file and the ones it names, in the order it lives:

    carry_out: the answer judged (rules/provenance.py)
      ├── runs:  engine/run.py     intent -> effect -> checks -> settled (engine/settle.py, rules/outcome.py)
      └── held:  `_hold` below     intent + what became of it in one unit of work, and a packet when stopped
                                   (engine/packets.py); a draft past a cap is refused (engine/flood.py)
    then what the agent reads (engine/reply.py).

A call a client runs itself, and what it reports of it, is engine/external.py's. Every write to the
record is one unit of work (record/actions.py operations composed in one function, one transaction,
one round trip); nothing slow runs inside one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ratchet.engine import flood, reviewer
from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.engine.intent import intent_row, refused_row
from ratchet.engine.packets import Packets, stopped_fields
from ratchet.engine.reply import tool_outcome
from ratchet.engine.run import Runner
from ratchet.engine.settle import sample
from ratchet.engine.verify import Verifier
from ratchet.engine.where import Origin
from ratchet.errors import DraftCapReached, RatchetError
from ratchet.operations import ProgressCallback
from ratchet.record import actions, standing
from ratchet.record.lifecycle import Status
from ratchet.results import ToolOutcome
from ratchet.rules import provenance
from ratchet.rules.escalation import EscalationPacket
from ratchet.rules.gate import Route
from ratchet.rules.outcome import CallOutcome, Ended, counts_as

# What became of a call (its status) by the route it took when it did not run.
_NOT_RUN = {Route.CONFIRM: Status.DECLINED, Route.DRAFT: Status.DRAFT, Route.BLOCK: Status.BLOCKED}


class Carrier:
    """Carries out decided calls for one session and records everything about them."""

    def __init__(self, setting: Setting, verifier: Verifier | None = None) -> None:
        self.setting = setting
        # Where this process records its calls as made (engine/where.py), read once: not on every call.
        self.origin = Origin.of(setting)
        self.runner = Runner(setting, self.origin, verifier or Verifier(setting))
        self.packets = Packets(setting)

    async def carry_out(
        self,
        ev: Evaluation,
        *,
        intent: str | None = None,
        confidence: float | None = None,
        answer: HumanAnswer | None = None,
        uncertainty: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Do what the decision says (a `confirm` needs the human's answer) and record it all."""
        route = ev.decision.route
        if ev.claimed is not None and route is not Route.EXECUTE:
            raise AssertionError(
                f"action {ev.claimed}: an intent is recorded with the decision only for a call that runs"
            )
        unanswered = None
        if route is Route.CONFIRM and answer is not None:
            answer = answer.judged(ev.evidence, ev.prepared.shown, ev.prepared.hidden_lines)
            if answer.evidence == provenance.UNANSWERED:
                # No human answered (too fast to have read it, or dismissed): queued, as when the client
                # cannot ask; not a sample.
                route, unanswered, answer = Route.DRAFT, answer, None
        if route is Route.CONFIRM and answer is None:
            route = Route.DRAFT
        if route is Route.EXECUTE or (route is Route.CONFIRM and answer is not None and answer.accepted):
            return await self.runner.run_call(ev, intent, confidence, answer, progress)
        return await self._hold(ev, route, intent, confidence, answer, unanswered, uncertainty)

    async def _hold(
        self,
        ev: Evaluation,
        route: Route,
        intent: str | None,
        confidence: float | None,
        answer: HumanAnswer | None,
        unanswered: HumanAnswer | None,
        uncertainty: str | None,
    ) -> ToolOutcome:
        """A call that does not run: declined by the person, queued as a draft, or blocked with a packet."""
        s = self.setting
        status = _NOT_RUN[route]
        row = await intent_row(s, self.origin, ev, intent, confidence, status, route)
        packet_fields = None
        if status is Status.BLOCKED:
            packet_fields = stopped_fields(ev, intent, confidence, uncertainty)

        def record(conn: sqlite3.Connection) -> tuple[int, standing.Transition | None, EscalationPacket | None]:
            if status is Status.DRAFT:
                flood.check(conn, s, row)  # past a draft cap nothing is queued (engine/flood.py)
            context = actions.session_context(conn, s.session_id) if packet_fields is not None else None
            action_id = actions.insert_intent(conn, row)
            if unanswered is not None:
                actions.mark_unanswered(conn, action_id, unanswered.channel, unanswered.seconds, unanswered.evidence)
            moved = packet = None
            if status is Status.DECLINED:
                assert answer is not None
                actions.record_review(conn, action_id, answer.review(s.identity))
                ok = counts_as(
                    CallOutcome(Ended.DECLINED, answer=answer.evidence),
                    counts_failures=ev.cls.count_execution_failures,
                )
                if ok is not None:
                    moved = sample(conn, s, ev.evidence, action_id, ok, s.session_id, mark=True)
            elif packet_fields is not None and context is not None:
                packet = self.packets.stopped(conn, action_id, context, packet_fields)
                actions.set_packet(conn, action_id, packet.model_dump_json())
            return action_id, moved, packet

        try:
            action_id, moved, packet = await s.store.run(record)
        except DraftCapReached as cap:
            await flood.refused(s, row, cap)
            raise
        if status in (Status.BLOCKED, Status.DRAFT):
            self.packets.notify_inbox(action_id, status, ev.prepared.tool, ev.prepared.target, packet)
        if status is Status.DRAFT:
            reviewer.shadow(
                s, action_id, ev.evidence
            )  # a queued draft is pre-reviewed, off the path (engine/reviewer.py)
        outcome = tool_outcome(ev, action_id, status, moved=moved, packet=packet)
        if unanswered is not None:
            why = provenance.describe(
                unanswered.evidence, unanswered.channel, unanswered.seconds, ev.prepared.shown, ev.prepared.hidden_lines
            )
            outcome = outcome.model_copy(update={"message": f"{outcome.message}\n{why}; queued for a human instead"})
        return outcome

    async def refuse(
        self,
        tool: str,
        args: dict[str, Any],
        error: RatchetError,
        *,
        intent: str | None,
        confidence: float | None,
    ) -> int:
        """Record a call refused before it could be classified (bad path, bad arguments)."""
        row = refused_row(self.setting, tool, args, error, intent, confidence)
        return await self.setting.store.run(lambda conn: actions.insert_intent(conn, row))


__all__ = ["Carrier"]
