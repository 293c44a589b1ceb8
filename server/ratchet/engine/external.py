"""Calls a client runs itself (its built-in tools, seen through its hooks), and the outcomes it reports.

The decision is Ratchet's; at execute or confirm the client runs the call (confirm: after its own
dialog), so the row waits, as `allowed` or `asked`, for the client's report. A draft or a block is
carried out as any Ratchet call is (engine/carry.py). What a reported outcome counts as is
rules/outcome.py's, as for every other call.
"""

from __future__ import annotations

import sqlite3

from ratchet import telemetry
from ratchet.engine import reviewer
from ratchet.engine.carry import Carrier
from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.engine.dialog import dialog_answer
from ratchet.engine.intent import intent_row
from ratchet.engine.reply import tool_outcome
from ratchet.engine.settle import sample
from ratchet.record import actions, binding, standing
from ratchet.record.lifecycle import Status
from ratchet.results import ToolOutcome
from ratchet.rules import provenance
from ratchet.rules.gate import Route
from ratchet.rules.outcome import CallOutcome, Ended, counts_as


class External:
    """Records the calls a client runs itself for one session, and settles them when it reports."""

    def __init__(self, setting: Setting, carrier: Carrier) -> None:
        self.setting = setting
        self.carrier = carrier

    async def record_external(
        self, ev: Evaluation, external_id: str, *, intent: str | None = None, external_tool: str | None = None
    ) -> ToolOutcome:
        """Record the decision on a call a client runs itself (its built-in tool, seen through a hook).

        At execute or confirm the client runs it (confirm: after its own dialog), so the row waits,
        as `allowed` or `asked`, for `record_external_outcome`. A draft is queued like any Ratchet draft
        (approving it runs it through Ratchet's executor) and a block gets its packet. `external_tool`
        is the client's own name for the tool (Bash, Write, ...): its outcome must name the same one.
        """
        store = self.setting.store
        route = ev.decision.route
        if route in (Route.EXECUTE, Route.CONFIRM):
            status = Status.ALLOWED if route is Route.EXECUTE else Status.ASKED
            row = await intent_row(self.setting, self.carrier.origin, ev, intent, None, status, route)

            def record(conn: sqlite3.Connection) -> int:
                action_id = actions.insert_intent(conn, row)
                binding.bind_external(conn, action_id, external_id, external_tool)
                return action_id

            action_id = await store.run(record)
            return tool_outcome(ev, action_id, Status.EXECUTED if route is Route.EXECUTE else Status.DECLINED)
        outcome = await self.carrier.carry_out(ev, intent=intent)
        await store.run(lambda conn: binding.bind_external(conn, outcome.action_id, external_id, external_tool))
        return outcome

    async def waiting_external(self, external_tool: str | None = None) -> set[str]:
        """The external ids of this session's calls still waiting for the client to report their outcome
        (with `external_tool`: only the calls of that client tool)."""
        session = self.setting.session_id
        return await self.setting.store.call(lambda c: binding.waiting_external(c, session, external_tool))

    async def record_external_outcome(
        self,
        external_id: str,
        *,
        ran: bool,
        ok: bool,
        answered: bool = True,
        answered_at: float | None = None,
        external_tool: str | None = None,
        channel: str = "hook-dialog",
    ) -> standing.Transition | None:
        """The client reports what became of a call it was allowed or asked to run.

        An asked call that ran was approved by the human in the client's dialog (a success, unless it
        failed where the class counts failures); one that never ran was declined, unless nobody could
        have answered (`answered=False`: the client denied it unasked), which is `unanswered` and no
        evidence at all. None if nothing waits. `channel`: where an asked call was answered
        (`auto-mode` when the client's classifier may have answered: never a person's evidence).
        `answered_at` (Unix time) is when the human answered, when the caller knows it (a transcript's
        timestamp, or the outcome's arrival less the tool's run); otherwise the answer is timed to now, an
        upper bound. It is timed from its question or the session's previous answer (engine/dialog.py).
        Only a call of this session, with this id (and, given `external_tool`, of that client tool) is
        settled: an outcome that names another session's call or another tool settles nothing.
        """
        s = self.setting
        session = s.session_id
        row = await s.store.call(lambda c: binding.external_waiting(c, external_id, session, external_tool))
        if row is None:
            return None
        cls = s.class_of(row["evidence_class"] or row["class"])
        asked = row["status"] == Status.ASKED
        if ran:
            status, ended = (Status.EXECUTED, Ended.SUCCEEDED) if ok else (Status.FAILED, Ended.FAILED)
        elif not answered:
            status, ended = Status.UNANSWERED, Ended.UNANSWERED  # no human saw it: no evidence either way
        else:
            # Declined in the client's dialog; a call Ratchet allowed that the client denied was asked of no one.
            status, ended = Status.DECLINED, Ended.DECLINED if asked else Ended.NOT_ASKED
        now = s.answers.now()
        error = (
            None
            if ran
            else "not run: denied in auto mode, by the person or by Claude Code's classifier (no evidence)"
            if answered and channel == provenance.AUTO_MODE
            else "not run (the client reported it denied)"
            if answered
            else "not answered: Claude Code's auto-mode classifier denied it; no person answered"
            if channel == provenance.AUTO_MODE
            else "not answered: the client denied it without asking anyone (unattended session)"
        )
        action_id = int(row["id"])
        answers: list[HumanAnswer] = []  # the answer as judged inside the unit of work, for telemetry

        def settle(conn: sqlite3.Connection) -> standing.Transition | None:
            answer, review = None, None
            answers.clear()
            if asked and answered:
                # Timed from its question or the session's previous answer to the answer (engine/dialog.py).
                answer = dialog_answer(
                    conn,
                    row,
                    cls,
                    accepted=ran,
                    at=now if answered_at is None else answered_at,
                    now=now,
                    channel=channel,
                )
                review = answer.review(s.identity)
                answers.append(answer)
            outcome = CallOutcome(ended, answer=answer.evidence if answer is not None else None, client_asked=asked)
            ok_sample = counts_as(outcome, counts_failures=cls.count_execution_failures)
            actions.finish(conn, action_id, status, None, error, review=review, sample=ok_sample)
            if ok_sample is None:
                return None
            return sample(conn, s, cls, action_id, ok_sample, row["session_id"], mark=False)

        moved = await s.store.run(settle)
        answer = answers[0] if answers else None
        telemetry.settled_external(s, row, answer, status, moved, external_id, asked, channel)
        if answer is not None:
            reviewer.shadow(s, action_id, cls)  # judged beside the person's answer in the client's dialog
        return moved


__all__ = ["External"]
