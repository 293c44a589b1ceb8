"""Carrying a decision out: record the intent, execute / ask / queue / refuse, record the outcome.

Every write to the record here is one unit of work (record/actions.py operations composed in one
function, one transaction, one round trip); nothing slow runs inside one. A governed call that runs
is two: the intent before the effect, the outcome (with its sample, streak and any class move) after.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio

from ratchet import telemetry
from ratchet.engine import flood, reviewer
from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.engine.dialog import dialog_answer
from ratchet.engine.origin import Origin
from ratchet.engine.verify import Verifier, failure_text, view
from ratchet.errors import DraftCapReached, DraftStale, ExecutionFailed, RatchetError
from ratchet.operations import Leftover, Prepared, ProgressCallback, kept_args, notify, operation, process_alive
from ratchet.operations import recover as recover_leftover
from ratchet.operations.checks import CheckResult
from ratchet.policy.model import UNCLASSIFIED, ActionClass
from ratchet.record import actions, standing
from ratchet.record import checks as recorded_checks
from ratchet.record.actions import Intent, Review
from ratchet.record.lifecycle import Status
from ratchet.record.locks import Scope
from ratchet.redact import redact, redact_all
from ratchet.results import ClassMove, Outcome, ToolOutcome, TriggerInfo
from ratchet.rules import contracts, provenance
from ratchet.rules.escalation import (
    EscalationPacket,
    HistoryEntry,
    PacketAction,
    PacketTrigger,
    build_packet,
    stopped_options,
)
from ratchet.rules.gate import Route
from ratchet.rules.settle import REPEAT

# What became of a call (its status) by the route it took when it did not run.
_NOT_RUN = {Route.CONFIRM: Status.DECLINED, Route.DRAFT: Status.DRAFT, Route.BLOCK: Status.BLOCKED}
# An outcome (executed or failed) and a sample for the class's window.
Ran = tuple[Status, dict[str, Any] | None, str | None, bool | None]


def _why(ev: Evaluation) -> str:
    """Why a call was queued, in words: the triggers that lowered it, else its class's level."""
    d = ev.decision
    return "; ".join(t.detail for t in d.triggers) or f"class {d.class_name} is at {d.class_level.label}"


class Carrier:
    """Carries out decided calls for one session and records everything about them."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.verifier = Verifier(setting)
        # Where this process records its calls as made (engine/origin.py), read once: not on every call.
        self.origin = Origin.of(setting)
        # Undoes an action a failing check judged (`undo_on_failure`): the human side's undo, set by the
        # engine once it has one (engine/undo.py), returning the line the agent reads.
        self.undo_failed: Callable[[int, str], Awaitable[str]] | None = None

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
        s = self.setting
        route = ev.decision.route
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
            return await self._run_call(ev, intent, confidence, answer, progress)
        status = _NOT_RUN[route]
        row = await self._intent(ev, intent, confidence, status, route)
        packet_fields = None
        if status is Status.BLOCKED:
            packet_fields = self._stopped_fields(ev, intent, confidence, uncertainty)

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
                moved = sample(conn, s, ev.evidence, action_id, False, s.session_id, mark=True)
            elif packet_fields is not None and context is not None:
                packet = self._build_packet(conn, action_id, context, packet_fields)
                actions.set_packet(conn, action_id, packet.model_dump_json())
            return action_id, moved, packet

        try:
            action_id, moved, packet = await s.store.run(record)
        except DraftCapReached as cap:
            await flood.refused(s, row, cap)
            raise
        if status in (Status.BLOCKED, Status.DRAFT):
            self.notify_inbox(action_id, status, ev.prepared.tool, ev.prepared.target, packet)
        if status is Status.DRAFT:
            reviewer.shadow(
                s, action_id, ev.evidence
            )  # a queued draft is pre-reviewed, off the path (engine/reviewer.py)
        outcome = self.outcome(ev, action_id, status, moved=moved, packet=packet)
        if unanswered is not None:
            why = provenance.describe(
                unanswered.evidence, unanswered.channel, unanswered.seconds, ev.prepared.shown, ev.prepared.hidden_lines
            )
            outcome = outcome.model_copy(update={"message": f"{outcome.message}\n{why}; queued for a human instead"})
        return outcome

    def notify_inbox(
        self, action_id: int, status: str, tool: str, target: str, packet: EscalationPacket | None
    ) -> None:
        """Run the policy's notify command (if any) for something that just landed in the inbox."""
        defaults = self.setting.policy.defaults
        notify(
            defaults.notify,
            defaults.limits.notifications_per_minute,
            {
                "id": action_id,
                "status": str(status),
                "tool": tool,
                "target": redact(target),
                "packet": packet.model_dump(mode="json") if packet else None,
            },
        )

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
            row = await self._intent(ev, intent, None, status, route)

            def record(conn: sqlite3.Connection) -> int:
                action_id = actions.insert_intent(conn, row)
                actions.bind_external(conn, action_id, external_id, external_tool)
                return action_id

            action_id = await store.run(record)
            return self.outcome(ev, action_id, Status.EXECUTED if route is Route.EXECUTE else Status.DECLINED)
        outcome = await self.carry_out(ev, intent=intent)
        await store.run(lambda conn: actions.bind_external(conn, outcome.action_id, external_id, external_tool))
        return outcome

    async def waiting_external(self, external_tool: str | None = None) -> set[str]:
        """The external ids of this session's calls still waiting for the client to report their outcome
        (with `external_tool`: only the calls of that client tool)."""
        session = self.setting.session_id
        return await self.setting.store.call(lambda c: actions.waiting_external(c, session, external_tool))

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
        row = await s.store.call(lambda c: actions.external_waiting(c, external_id, session, external_tool))
        if row is None:
            return None
        cls = s.class_of(row["evidence_class"] or row["class"])
        asked = row["status"] == Status.ASKED
        if ran:
            status = Status.EXECUTED if ok else Status.FAILED
        else:
            status = Status.DECLINED if answered else Status.UNANSWERED
        outcome_sample: bool | None
        if not ran and not answered:
            outcome_sample = None  # no human saw it: no evidence either way
        elif not ran:
            outcome_sample = False if asked else None  # declined in the client's dialog
        elif ok or (asked and not cls.count_execution_failures):
            outcome_sample = True  # ran as shown (an asked call that ran was approved unchanged)
        else:
            outcome_sample = False if cls.count_execution_failures else None
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
            ok_sample, review = outcome_sample, None
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
                if answer.evidence == provenance.UNANSWERED or (ok_sample is True and not answer.counts):
                    ok_sample = None  # an answer no human could have read is no evidence (a failed run still is)
                review = answer.review(s.identity)
                answers.append(answer)
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
        s = self.setting
        row = Intent(
            session_id=s.session_id,
            tool=tool,
            target=redact(str(args.get("path", ""))[:4096])[:500],
            action_class=UNCLASSIFIED,
            rule="",
            policy=s.policy.fingerprint,
            args_json=redact(json.dumps({"path": str(args.get("path"))[:500] if args.get("path") else None})),
            preview="",
            fingerprint=None,
            intent=intent and redact(intent),
            confidence=confidence,
            class_level="",
            level="",
            route="refuse",
            triggers_json="[]",
            flagged=False,
            status=Status.REFUSED,
            subject_json=None,
            error=redact(str(error)),
            recorded_by=s.identity,
        )
        return await s.store.run(lambda conn: actions.insert_intent(conn, row))

    async def _run_call(
        self,
        ev: Evaluation,
        intent: str | None,
        confidence: float | None,
        answer: HumanAnswer | None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        s = self.setting
        row = await self._intent(ev, intent, confidence, Status.RUNNING, ev.decision.route)
        # The intent is committed before the effect: a crash from here on leaves a `running` row.
        action_id = await s.store.run(lambda conn: actions.insert_intent(conn, row), scope=Scope.of())
        approved = answer is not None and answer.accepted
        status, result, error, ok = await self.run(ev.prepared, action_id, ev.cls, progress, approved=approved)
        if ok and answer is not None and not answer.counts:
            ok = None  # ran on an answer that is no evidence of a human's reading: not a sample
        ran, checked = await self.verify(ev.cls, ev.prepared, action_id, (status, result, error, ok))
        moved = await s.store.run(
            with_checks(
                settler(s, ev.evidence, ev.cls, ev.prepared, action_id, ran, answer, s.session_id), action_id, checked
            ),
            scope=Scope.of(ev.cls.name, ev.evidence.name),
        )
        outcome = self.outcome(ev, action_id, status, result=result, error=error, moved=moved)
        return await self.after_checks(outcome, ev.cls, action_id, checked)

    async def verify(
        self, cls: ActionClass, prepared: Prepared, action_id: int, ran: Ran
    ) -> tuple[Ran, list[CheckResult]]:
        """After an action executed: run the class's `each` checks, and make its sample a failure when one
        fails (whatever the answer was)."""
        status, result, error, ok = ran
        if status is not Status.EXECUTED:
            return ran, []
        checked = await self.verifier.each(cls, prepared, action_id)
        if any(not c.passed for c in checked):
            ok = False
        return (status, result, error, ok), checked

    async def after_checks(
        self, outcome: ToolOutcome, cls: ActionClass, action_id: int, checked: list[CheckResult]
    ) -> ToolOutcome:
        """The outcome with the checks' results for the agent; a failing check undoes the change where the
        class says so (`undo_after_failed_check`)."""
        if not checked:
            return outcome
        undone: str | None = None
        failed = [c for c in checked if not c.passed]
        if failed and cls.undo_on_failure:
            reason = "undo_on_failure: " + "; ".join(c.summary() for c in failed)
            undone = await self.undo_after_failed_check(action_id, reason)
        message = outcome.message + "\n" + failure_text(checked)
        if undone is not None:
            message += "\n" + undone
        return outcome.model_copy(
            update={
                "message": message,
                "checks": [view(c) for c in checked],
                "undone": undone,
            }
        )

    async def undo_after_failed_check(self, action_id: int, reason: str) -> str:
        """Undo an action because a check failed (`undo_on_failure`); the line the agent reads."""
        if self.undo_failed is None:
            return f"not undone: action {action_id}: no undo is available here ({reason})"
        return await self.undo_failed(action_id, reason)

    async def run(
        self,
        prepared: Prepared,
        action_id: int,
        cls: ActionClass,
        progress: ProgressCallback | None = None,
        *,
        kept: str | None = None,
        approved: bool = False,
    ) -> Ran:
        """Execute; return (status, result, error, sample) where sample None means 'no evidence'.

        `kept` is what the record keeps of a draft's arguments should the call be cut short; `approved`
        says a person approved this very call (a command may then write what only a review allows)."""
        store = self.setting.store

        async def spawned(pid: int) -> None:
            # Before the command can do anything worth recovering: a crash from here on leaves a record
            # that names the process group, which the next open kills (see `recover`).
            await store.run(lambda conn: actions.child_started(conn, action_id, pid))

        try:
            context = self.setting.op_context(progress, cls, spawned, approved=approved)
            result = await operation(prepared.tool).execute(context, prepared, str(action_id))
        except DraftStale as exc:
            return Status.FAILED, None, str(exc), None  # the target moved under us: nobody's mistake to count
        except ExecutionFailed as exc:
            return Status.FAILED, exc.result, str(exc), (False if cls.count_execution_failures else None)
        except RatchetError as exc:
            return Status.FAILED, None, str(exc), (False if cls.count_execution_failures else None)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await store.run(
                    lambda conn: actions.finish(
                        conn,
                        action_id,
                        Status.INTERRUPTED,
                        None,
                        "the call was cancelled by the client",
                        kept_args=kept,
                    )
                )
            raise
        return Status.EXECUTED, result, None, True

    async def recover(self) -> None:
        """Mark actions whose process died `interrupted`, and let their operations clean up after them.

        Only this host's: a pid means nothing on another machine sharing the record (a row of theirs whose
        pid is free here is not dead), and an action runs only on its origin host (engine/origin.py)."""
        s = self.setting
        me = os.getpid()
        rows = await s.store.call(actions.in_flight)
        dead = [
            row
            for row in rows
            if row["origin_host"] in (None, self.origin.host) and row["pid"] != me and not process_alive(row["pid"])
        ]
        if not dead:
            return

        def mark(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            # An approval cut short left the queue with the draft's content: keep only its digest.
            return [row for row in dead if actions.interrupt(conn, row, draft_args_kept(row)) is not None]

        for row in await s.store.run(mark):
            recover_leftover(s.workspace, row["tool"], Leftover(int(row["id"]), row["target"], row["child_pid"]))

    async def _intent(
        self, ev: Evaluation, intent: str | None, confidence: float | None, status: Status, route: Route
    ) -> Intent:
        """The row a call's intent is recorded as: what is kept of it is redacted (its target, intent and
        subject always, its arguments unless it is a draft waiting to be run exactly as drafted)."""
        p, d = ev.prepared, ev.decision
        drafted = status is Status.DRAFT
        target, subject, args_kept, intent_kept = await redact_all(
            p.target, json.dumps(p.subject.as_dict()), "" if drafted else json.dumps(p.record or p.args), intent or ""
        )
        if drafted:
            args_kept = json.dumps(p.args)
        return Intent(
            session_id=self.setting.session_id,
            tool=p.tool,
            target=target,
            action_class=d.class_name,
            rule=d.rule,
            policy=self.setting.policy.fingerprint,
            args_json=args_kept,
            preview=p.shown,
            fingerprint=p.fingerprint,
            intent=intent_kept if intent is not None else None,
            confidence=confidence,
            class_level=d.class_level.label,
            level=d.level.label,
            route=route.value,
            triggers_json=json.dumps([t.as_dict() for t in d.triggers]),
            flagged=d.flagged,
            status=status,
            subject_json=subject,
            level_transition=ev.level_transition,
            task_id=ev.task_id,
            evidence_class=ev.side_effect_cls.name if ev.side_effect_cls else None,
            hidden_lines=p.hidden_lines,
            recorded_by=self.setting.identity,
            origin_host=self.origin.host,
            origin_workspace=self.origin.workspace,
            origin_repo=self.origin.repo,
        )

    def outcome(
        self,
        ev: Evaluation,
        action_id: int,
        status: Status,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        moved: standing.Transition | None = None,
        packet: EscalationPacket | None = None,
    ) -> ToolOutcome:
        """The tool's result: what happened, at what level, and any class move it caused."""
        d, p = ev.decision, ev.prepared
        # `git status`, not `git_status git status`: a target that already says what the tool is stands alone.
        what = p.target if p.target.startswith(p.tool.replace("_", " ")) else f"{p.tool} {p.target}"
        message = {
            Status.EXECUTED: f"{what}: done",
            Status.FAILED: f"{what} failed: {error}",
            Status.DECLINED: f"the human declined {what}; nothing was changed",
            Status.DRAFT: (
                f"queued as draft {action_id} for human review ({_why(ev)}); nothing was changed yet. Do not "
                f"retry it or make the change another way. Carry on with other work; get_draft({action_id}) "
                "shows its state"
            ),
            Status.BLOCKED: (packet.markdown() if packet else "blocked")
            + f"\nNext step: do not retry this call; get_handoff({action_id}, wait_s=...) returns the human's answer.",
        }[status]
        message = f"{message} [class {d.class_name} at {d.class_level.label}]" + _result_text(result)
        if d.flagged:
            message += " (flagged for later review: confidence below autonomous_at)"
        move = None
        if moved is not None:
            move = ClassMove(
                action_class=moved.action_class,
                from_level=moved.from_level,
                to_level=moved.to_level,
                kind=moved.kind,
                reason=moved.reason,
            )
            message += f"\nClass {moved.action_class} moved {moved.from_level} -> {moved.to_level}: {moved.reason}"
        return ToolOutcome(
            status=cast(Outcome, status.value),  # one of the outcome statuses, by the table above
            action_id=action_id,
            action_class=d.class_name,
            rule=d.rule,
            class_level=d.class_level.label,
            level=d.level.label,
            triggers=[TriggerInfo(**t.as_dict()) for t in d.triggers],
            flagged=d.flagged,
            message=message,
            preview=p.shown,
            result=result,
            draft_id=action_id if status is Status.DRAFT else None,
            packet=packet,
            moved=move,
        )

    def _stopped_fields(
        self, ev: Evaluation, intent: str | None, confidence: float | None, uncertainty: str | None
    ) -> dict[str, Any]:
        d = ev.decision
        triggers = [PacketTrigger(name=t.name, detail=t.detail) for t in d.triggers]
        action = PacketAction(
            tool=ev.prepared.tool,
            target=ev.prepared.target,
            action_class=d.class_name,
            rule=d.rule,
            class_level=d.class_level.label,
            level=d.level.label,
        )
        return {
            "kind": "stopped",
            "action": action,
            "intent": intent,
            "draft": ev.prepared.preview,
            "confidence": confidence,
            "triggers": triggers,
            "uncertainty": uncertainty,
            "options_for": (d.class_name, d.rule, triggers),
        }

    def _build_packet(
        self, conn: sqlite3.Connection, action_id: int, context: actions.SessionContext, fields: dict[str, Any]
    ) -> EscalationPacket:
        """A packet with this session's context (read in the same unit of work, before its own row)."""
        fields = dict(fields)
        options_for = fields.pop("options_for", None)
        if options_for is not None:
            fields["options"] = stopped_options(action_id, *options_for)
        task_row = actions.open_task(conn, self.setting.session_id)
        return self._packet(action_id, context, task_row, {**fields, "failed_checks": failed_checks(conn, context)})

    def _packet(
        self,
        action_id: int,
        context: actions.SessionContext,
        task_row: dict[str, Any] | None,
        fields: dict[str, Any],
    ) -> EscalationPacket:
        s = self.setting
        history = [
            HistoryEntry(
                action_id=r["id"], tool=r["tool"], target=r["target"], action_class=r["class"], status=r["status"]
            )
            for r in context.history
        ]
        task = contracts.task_from_row(task_row) if task_row is not None else None
        return build_packet(
            action_id=action_id,
            session_id=s.session_id,
            history=history,
            created_at=time.time(),
            task=task.goal if task else None,
            queued_behind=context.queued,
            over_budget=context.escalations >= s.policy.defaults.escalation_budget,
            **fields,
        )

    async def packet_for(self, action_id: int, **fields: Any) -> EscalationPacket:
        """A packet with this session's context: history, task, cost of delay, escalation budget."""
        session = self.setting.session_id

        def read(conn: sqlite3.Connection) -> tuple[actions.SessionContext, dict[str, Any] | None]:
            return actions.session_context(conn, session, action_id), actions.open_task(conn, session)

        context, task_row = await self.setting.store.call(read)
        failed = await self.setting.store.call(lambda conn: failed_checks(conn, context))
        return self._packet(action_id, context, task_row, {"failed_checks": failed, **fields})

    def packet_in(self, conn: sqlite3.Connection, action_id: int, **fields: Any) -> EscalationPacket:
        """`packet_for` inside a unit of work already running on the connection."""
        session = self.setting.session_id
        context = actions.session_context(conn, session, action_id)
        fields = {"failed_checks": failed_checks(conn, context), **fields}
        return self._packet(action_id, context, actions.open_task(conn, session), fields)


def sample(
    conn: sqlite3.Connection,
    setting: Setting,
    cls: ActionClass,
    action_id: int,
    ok: bool,
    session_id: str,
    *,
    mark: bool,
) -> standing.Transition | None:
    """One piece of evidence: the sample label, the session's failure streak, the window and any move.
    A success that is padding (its work already counted in the window, rules/settle.py) is none of
    these: it is labelled `repeat`, joins no window and leaves the failure streak as it was."""
    if standing.padding(conn, cls, action_id, ok):
        actions.label_sample(conn, action_id, REPEAT)
        return None
    actions.sample(conn, action_id, cls.name, ok, setting.streak_session(session_id), mark=mark)
    left = 0 if ok else standing.on_probation(conn, cls)
    moved = standing.apply_sample(conn, cls, action_id, ok)
    if left:  # a failure on probation after a promotion: the human hears of it at once
        defaults = setting.policy.defaults
        notify(
            defaults.notify,
            defaults.limits.notifications_per_minute,
            standing.probation_notice(cls, action_id, left, moved),
        )
    return moved


def settler(
    setting: Setting,
    evidence: ActionClass,
    cls: ActionClass,
    prepared: Prepared,
    action_id: int,
    ran: Ran,
    answer: HumanAnswer | None,
    session_id: str,
    *,
    kept: str | None = None,
) -> Any:
    """The unit of work that settles a call that ran: outcome, review, sample, streak, window, any
    transition, and what the class has now seen; one transaction, one round trip."""
    status, result, error, ok = ran
    result_json = redact(json.dumps(result)) if result is not None else None
    error_kept = error and redact(error)
    review = answer.review(setting.identity) if answer is not None else None
    keys = contracts.novelty_keys(prepared.subject) if cls.novelty and status is Status.EXECUTED else None

    def settle(conn: sqlite3.Connection) -> standing.Transition | None:
        actions.finish(conn, action_id, status, result_json, error_kept, review=review, sample=ok, kept_args=kept)
        moved = None if ok is None else sample(conn, setting, evidence, action_id, ok, session_id, mark=False)
        if keys:
            actions.remember(conn, cls.name, keys)
        return moved

    return settle


def failed_checks(conn: sqlite3.Connection, context: actions.SessionContext) -> list[str]:
    """The verification checks that failed on the session's recent actions, one line each for a packet."""
    found = recorded_checks.of_actions(conn, [int(r["id"]) for r in context.history])
    lines = []
    for aid, results in found.items():
        for c in results:
            if not c.passed:
                tail = c.tail.strip().splitlines()[-1:] if c.tail.strip() else []
                lines.append(f"#{aid} {c.summary()}" + (f" ({tail[0][:200]})" if tail else ""))
    return lines[-10:]


def with_checks(settle: Any, action_id: int, checked: list[CheckResult]) -> Any:
    """The settling unit of work, also keeping the results of the checks run on the action."""

    def settled(conn: sqlite3.Connection) -> standing.Transition | None:
        if checked:
            recorded_checks.add(conn, action_id, "each", checked)
        return cast("standing.Transition | None", settle(conn))

    return settled


def draft_args_kept(row: dict[str, Any]) -> str | None:
    """What the record keeps of a draft's arguments once it cannot run: redacted, and for a write or
    an edit its path, hash and size instead of the content (operations.kept_args). None for a row
    that is not a draft: its arguments were reduced when it was inserted."""
    if row["route"] != Route.DRAFT.value:
        return None
    raw = row["args_json"]
    try:
        args = json.loads(raw)
    except ValueError:
        args = None
    return redact(json.dumps(kept_args(row["tool"], args))) if isinstance(args, dict) else redact(raw)


def _result_text(result: dict[str, Any] | None) -> str:
    """What the agent needs to read of a result in the text content (the structured result has it all)."""
    if not result:
        return ""
    if "exit_code" in result:
        parts = [
            f"\nexit code {result['exit_code']} after {result['duration_s']}s"
            + (" (timed out)" if result["timed_out"] else "")
        ]
        for stream in ("stdout", "stderr"):
            if result[stream]:
                parts.append(f"--- {stream} ({result[stream + '_bytes']} bytes) ---\n{result[stream]}")
        return "\n".join(parts)
    for key in ("output", "diff", "summary"):
        if result.get(key):
            return "\n" + str(result[key])
    return ""


__all__ = ["Carrier", "Review", "draft_args_kept", "sample", "settler", "with_checks"]
