"""The human's side of the engine: approve, reject, complain, demote, pin, freeze. Nothing here promotes."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ratchet import telemetry
from ratchet.engine import reviewer as delegated
from ratchet.engine.carry import Carrier
from ratchet.engine.core import HumanAnswer, Setting, channel_of
from ratchet.engine.intent import draft_args_kept
from ratchet.engine.run import failed
from ratchet.engine.settle import Ran, sample, settler, with_checks
from ratchet.engine.undo import REVERT_TOOL, Undoer, UndoOutcome
from ratchet.engine.views import Views
from ratchet.errors import (
    DraftAlreadyResolved,
    DraftChanged,
    DraftNotFound,
    DraftStale,
    InvalidRequest,
    OtherReviewerRequired,
    RatchetError,
)
from ratchet.operations import operation
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.record import actions, standing, undos
from ratchet.record.lifecycle import Status
from ratchet.record.locks import Scope
from ratchet.redact import redact
from ratchet.results import DraftView
from ratchet.rules import provenance, shown
from ratchet.rules.outcome import CallOutcome, Ended, counts_as


@dataclass(frozen=True)
class ComplaintOutcome:
    """What a complaint did: a demotion (`failure` False), or a failure sample in the class's window."""

    action_id: int
    action_class: str
    moved: standing.Transition | None
    failure: bool

    def line(self) -> str:
        """What the CLI prints."""
        text = f"complaint recorded on action {self.action_id}"
        if self.failure:
            text += f"; its sample now counts as a failure in class {self.action_class}'s window"
        return text + (f"; {self.moved.line()}" if self.moved is not None else "")


class HumanSide:
    """What a human (through the CLI or the client's dialog) does to drafts, actions and classes."""

    def __init__(self, setting: Setting, carrier: Carrier, views: Views) -> None:
        self.setting = setting
        self.runner = carrier.runner
        self.views = views
        self.undoer = Undoer(setting, carrier, self.record_complaint)
        self.runner.undo_failed = self.undo_failed

    def record_complaint(
        self, conn: sqlite3.Connection, cls: ActionClass, action_id: int, reason: str, identity: str | None = None
    ) -> standing.Transition | None:
        """`record_complaint`, and the reviewer's authority judged again (engine/reviewer.py)."""
        moved = record_complaint(conn, cls, action_id, reason, identity)
        delegated.complained(conn, self.setting, cls, action_id)
        return moved

    async def approve(
        self,
        action_id: int,
        *,
        reviewer: str = "cli",
        content: str | None = None,
        note: str | None = None,
        seconds: float | None = None,
        channel: str | None = None,
        claim: Status = Status.DRAFT,
        approver: str | None = None,
        expect: str | None = None,
    ) -> DraftView:
        """Run a queued draft exactly once, exactly as drafted (or with the human's `content`).

        `seconds` is the review time when the channel timed it (a dialog: from the question to the
        answer); at the CLI by default the time since drafting. `channel` defaults to the reviewer when it names
        one (rules/provenance.py): an approval faster than the reading rule runs but is not a sample.
        `claim` is `approved` when this origin runs a draft approved on another machine (engine/origin.py),
        and `approver` then names who approved it there (default: this process's identity).
        `expect` is the digest of the change the person was shown (rules/shown.py): a draft that no longer has
        it, or whose stored arguments no longer give the preview recorded, is refused as stale.
        """
        s = self.setting
        approver = approver or s.identity
        queued = await s.store.call(lambda conn: actions.action(conn, action_id))
        if queued is not None and queued["status"] == claim:
            # Before the claim: a refused approval leaves the draft queued (or waiting for its origin).
            self.refuse_own_approval(queued, approver)
            if expect is not None and shown.of_row(queued) != shown.normal(expect):
                raise self.changed(action_id, queued, expect)
        claimed, row = await s.store.run(lambda conn: actions.claim_draft(conn, action_id, claim), scope=Scope.of())
        if not claimed:
            raise not_queued(action_id, row)
        assert row is not None
        cls = s.class_of(row["class"])
        evidence = s.class_of(row["evidence_class"] or row["class"])
        args = json.loads(row["args_json"])
        op = operation(row["tool"])
        kept = draft_args_kept(row)  # the content leaves with the queue, whatever becomes of it
        edited = content is not None
        try:
            if expect is not None and shown.of_row(row) != shown.normal(expect):
                raise self.changed(action_id, row, expect)  # changed between the check above and the claim
            if await op.fingerprint(s.op_context(), args) != row["fingerprint"]:
                changed = (
                    "a workspace file its command reads (listed under `reads:` in its preview)"
                    if row["tool"] == "run_command"
                    else row["target"]
                )
                raise DraftStale(
                    f"draft {action_id}: {changed} changed since it was drafted; "
                    "nothing was written. Ask the agent to redo it"
                )
            if content is not None:
                if op.with_content is None:
                    raise InvalidRequest(f"--content applies to file drafts; draft {action_id} is {row['tool']}")
                tool, edited_args = op.with_content(args, content)
                prepared = await operation(tool).prepare(s.op_context(), edited_args)
            else:
                prepared = await op.prepare(s.op_context(), args)
                if prepared.shown != row["preview"]:
                    raise DraftChanged(
                        f"draft {action_id}: its stored arguments do not give the preview recorded with it (the "
                        "preview was changed, or the arguments); nothing ran. Ask the agent to redo it"
                    )
        except RatchetError as exc:
            status = Status.STALE if isinstance(exc, DraftStale) else Status.FAILED
            error = str(exc)
            await s.store.run(lambda conn: actions.finish(conn, action_id, status, None, error, kept_args=kept))
            raise
        ran = await self.runner.run(prepared, action_id, cls, kept=kept, approved=True)
        via = channel_of(reviewer, channel)
        answer = HumanAnswer(
            True, reviewer, note, self._review_time(row, seconds, via), channel=via, edited=edited, identity=approver
        ).judged(evidence, row["preview"], row["hidden_lines"])
        # An undo's revert earns the commit's class nothing: the undo already counted.
        revert = row["tool"] == REVERT_TOOL
        try:
            # An approved draft that executes is verified like any other action of its class.
            checked = await self.runner.verify(cls, prepared, action_id, ran)
            outcome = CallOutcome(
                ran.ended, answer=answer.evidence, edited=edited, check_failed=failed(checked), revert=revert
            )
            ok = counts_as(outcome, counts_failures=cls.count_execution_failures)
            settle = settler(s, evidence, cls, prepared, action_id, ran, ok, answer, row["session_id"], kept=kept)
            moved = await s.store.run(with_checks(settle, action_id, checked), scope=Scope.of())
        except Exception as exc:
            # The effect happened: record it as it is (never "may have run"), without the evidence that failed.
            failure = exc
            await s.store.run(lambda conn: record_effect(conn, action_id, ran, failure, kept))
            raise
        telemetry.answered(s, row, answer, ran.status, moved, checks_failed=sum(1 for c in checked if not c.passed))
        if failed(checked) and cls.undo_on_failure and not revert:
            reason = "undo_on_failure: " + "; ".join(c.summary() for c in checked if not c.passed)
            await self.runner.undo_after_failed_check(action_id, reason)
        delegated.shadow(s, action_id, evidence)  # the reviewer's verdict beside the person's, off the path
        return await self.views.view(action_id)

    @staticmethod
    def changed(action_id: int, row: dict[str, Any], expect: str) -> DraftChanged:
        """The refusal of an approval given on another digest than the draft's now (rules/shown.py)."""
        return DraftChanged(
            f"draft {action_id} is not what was shown: its digest is now {shown.of_row(row)}, the approval was "
            f"given on {shown.normal(expect)} (its arguments, preview or class changed after it was shown, or the "
            f"digest is mistyped); nothing ran. `ratchet show {action_id}` shows it as it stands"
        )

    def refuse_own_approval(self, row: dict[str, Any], approver: str) -> None:
        """Refuse an approval by the identity that recorded the draft, where its class asks for another reviewer.

        The approver is the approving process's identity (identity.py), never a tool's argument: the CLI,
        the review page and the server relaying a dialog each approve as whoever runs them; an origin
        carrying out an approval given elsewhere passes that process's identity, kept with the approval. A
        draft recorded before identities were kept has no known drafter, and its class's rule cannot be
        met: it is refused too.
        Rejecting stays open to everyone: refusing one's own agent's change is always safe.
        """
        names = {row["class"], row["evidence_class"] or row["class"]}
        strict = sorted(n for n in names if self.setting.class_of(n).require_other_reviewer)
        if not strict:
            return
        drafter = row["recorded_by"]
        if drafter is not None and drafter != approver:
            return
        who = f"by {drafter}" if drafter is not None else "before identities were recorded (drafter unknown)"
        raise OtherReviewerRequired(
            f"draft {row['id']} of class {strict[0]} was drafted {who}, and the class says "
            f"require_other_reviewer = true: another person must approve it (`ratchet approve {row['id']}` "
            f"run as someone other than {approver}; $RATCHET_IDENTITY names who that is). It stays queued; "
            f"rejecting it is still open to you"
        )

    async def reject(
        self,
        action_id: int,
        reason: str,
        *,
        reviewer: str = "cli",
        seconds: float | None = None,
        channel: str | None = None,
    ) -> DraftView:
        """Reject a queued draft: nothing runs, and the class's window records a failure.

        A rejection outside the CLI faster than the reading rule is no answer (rules/provenance.py): the
        draft stays queued, marked `unanswered`, and nothing is a sample.
        """
        s = self.setting
        via = channel_of(reviewer, channel)
        now = s.answers.now()
        judged: list[Any] = []  # the draft, the answer and any class move, for telemetry once committed

        def record(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = actions.action(conn, action_id)
            if row is None or row["status"] not in (Status.DRAFT, Status.APPROVED):
                raise not_queued(action_id, row)
            evidence = s.class_of(row["evidence_class"] or row["class"])
            took = self._review_time(row, seconds, via, now)
            answer = HumanAnswer(False, reviewer, reason, took, channel=via).judged(
                evidence, row["preview"], row["hidden_lines"]
            )
            judged[:] = [row, answer, None]
            if answer.evidence == provenance.UNANSWERED:
                actions.mark_unanswered(conn, action_id, answer.channel, answer.seconds, answer.evidence)
                return row
            kept = draft_args_kept(row) or row["args_json"]
            if not actions.reject_draft(conn, action_id, kept):
                raise not_queued(action_id, actions.action(conn, action_id))
            actions.record_review(conn, action_id, answer.review(s.identity))
            # A rejected undo's revert is no failure of the commit's class; an approved draft withdrawn while it
            # waits for its origin was judged good: neither is a sample (rules/outcome.py).
            ended = Ended.DECLINED if row["status"] == Status.DRAFT else Ended.WITHDRAWN
            outcome = CallOutcome(ended, answer=answer.evidence, revert=row["tool"] == REVERT_TOOL)
            ok = counts_as(outcome, counts_failures=evidence.count_execution_failures)
            if ok is not None:
                judged[2] = sample(conn, s, evidence, action_id, ok, row["session_id"], mark=True)
            return None

        unanswered = await s.store.run(record)
        telemetry.answered(s, judged[0], judged[1], "unanswered" if unanswered else "rejected", judged[2])
        if unanswered is not None:
            return self.views.draft_view(unanswered)
        delegated.shadow(s, action_id)  # the reviewer's verdict beside the person's, off the path
        return await self.views.view(action_id)

    def _review_time(
        self, row: dict[str, Any], seconds: float | None, channel: str | None, now: float | None = None
    ) -> float | None:
        """The given review time; at the CLI by default the time since drafting; else None (untimed)."""
        if seconds is not None or channel != "cli":
            return seconds
        return max(0.0, (self.setting.answers.now() if now is None else now) - float(row["created_at"]))

    async def complain(self, action_id: int, reason: str) -> ComplaintOutcome:
        """Record that an action that ran was wrong; the class pays for it (once per action).

        Where the class demotes on complaint and stands above its floor, it drops a rung; otherwise
        the action's sample becomes a failure in the class's window (see standing.complain).
        """
        s = self.setting
        row = await s.store.call(lambda conn: actions.action(conn, action_id))
        if row is None:
            raise DraftNotFound(f"no action {action_id}; `ratchet history` lists actions")
        if row["status"] != Status.EXECUTED:
            raise InvalidRequest(f"action {action_id} is {row['status']}; complaints are about actions that ran")
        cls = s.class_of(row["evidence_class"] or row["class"])  # the class whose window holds its sample

        def record(conn: sqlite3.Connection) -> ComplaintOutcome:
            first = actions.first_complaint(conn, action_id)
            if first is not None:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first))
                raise InvalidRequest(
                    f"action {action_id} already has a complaint (recorded {when}); an action is complained "
                    "about once. `ratchet explain` shows it"
                )
            moved = self.record_complaint(conn, cls, action_id, reason, s.identity)
            demoted = moved is not None and moved.kind == "complaint"
            return ComplaintOutcome(action_id, cls.name, moved, failure=not demoted)

        return await s.store.run(record)

    async def undo(
        self,
        action_id: int,
        reason: str | None = None,
        *,
        force: bool = False,
        complaint: bool = True,
        reviewer: str = "cli",
        channel: str | None = None,
    ) -> UndoOutcome:
        """Undo an action that ran (engine/undo.py): a file put back, a commit reverted through a draft.
        Counts as a complaint unless `complaint` is False."""
        return await self.undoer.undo(
            action_id, reason, force=force, complaint=complaint, reviewer=reviewer, channel=channel
        )

    async def undo_failed(self, action_id: int, reason: str) -> str:
        """Undo an action because one of its class's checks failed: the human's undo, with the check as its
        actor and no complaint (the failure is counted already). The line the agent reads."""
        if not self.setting.answers_here:  # the agent role records no undo (record/roles.py): a reviewer's is
            return (
                f"not undone: action {action_id}: an undo is recorded on the reviewer side (ratchet undo {action_id})"
            )
        try:
            done = await self.undoer.undo(action_id, reason, complaint=False, reviewer=undos.CHECK_ACTOR)
        except RatchetError as exc:
            return f"not undone: action {action_id}: {exc}"
        return f"undone ({reason}): {done.detail}"

    async def freeze(self, level: Level, reason: str, until: float | None) -> list[standing.Transition]:
        """A human caps every class at `level` at once (until `until`, or until unfreeze)."""
        policy = self.setting.policy
        return await self.setting.store.run(lambda c: standing.freeze(c, policy, level, reason, until))

    async def unfreeze(self, reason: str) -> list[standing.Transition]:
        """A human lifts the freeze: every class returns to its earned level, never above."""
        policy = self.setting.policy
        return await self.setting.store.run(lambda c: standing.unfreeze(c, policy, reason))

    async def demote(self, name: str, reason: str, to: Level | None = None) -> standing.Transition:
        """A human lowers a class."""
        cls = self.setting.named(name)
        return await self.setting.store.run(lambda c: standing.human_demote(c, cls, reason, to))

    async def pin(self, name: str, level: Level | None, reason: str) -> standing.Transition:
        """A human caps a class (or lifts the cap with None)."""
        cls = self.setting.named(name)
        return await self.setting.store.run(lambda c: standing.pin(c, cls, level, reason))


def record_complaint(
    conn: sqlite3.Connection, cls: ActionClass, action_id: int, reason: str, identity: str | None = None
) -> standing.Transition | None:
    """A complaint inside a unit of work: recorded, chained (with who made it), and the class settled."""
    actions.add_complaint(conn, action_id, reason, identity)
    return standing.complain(conn, cls, action_id, reason)


def record_effect(conn: sqlite3.Connection, action_id: int, ran: Ran, exc: Exception, kept: str | None) -> None:
    """An approved draft ran, and recording its outcome failed: its status, result and error as they are, with
    what went wrong, no review and no sample (nothing counts from an outcome that could not be recorded)."""
    status, result, error = ran.status, ran.result, ran.error
    what = f"the outcome was recorded without its review or evidence ({type(exc).__name__}: {exc})"
    note = redact(f"{error}; {what}" if error else what)
    result_json = redact(json.dumps(result)) if result is not None else None
    actions.finish(conn, action_id, status, result_json, note, kept_args=kept)


def not_queued(action_id: int, row: dict[str, Any] | None) -> RatchetError:
    """Why an action cannot be approved or rejected: there is none, or it is not a queued draft."""
    if row is None:
        return DraftNotFound(f"no action {action_id}; `ratchet queue` lists the drafts")
    if row["packet_json"] is not None:  # stopped, never queued: it is answered, not approved
        return DraftAlreadyResolved(
            f"action {action_id} was stopped ({row['status']}), not queued as a draft: answer it with "
            f"`ratchet resolve {action_id} --option ...` (`ratchet show {action_id}` lists the options)"
        )
    return DraftAlreadyResolved(f"action {action_id} is {row['status']}, not a queued draft; a draft runs at most once")
