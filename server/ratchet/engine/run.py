"""Running a call: its intent recorded before the effect, the effect, the class's checks, the outcome settled.

A call that runs is two units of work: the intent before the effect (a crash from then on leaves a
`running` row, which the next open marks `interrupted`: `recover`), then the outcome with its sample,
streak and any class move (engine/settle.py). What the outcome counts as is rules/outcome.py's. An
approved draft runs through `run`, `verify` and `after_checks` too (engine/human.py).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.engine.intent import draft_args_kept, intent_row
from ratchet.engine.reply import tool_outcome
from ratchet.engine.settle import Ran, settler, with_checks
from ratchet.engine.verify import Verifier, failure_text, view
from ratchet.engine.where import Origin
from ratchet.errors import DraftStale, ExecutionFailed, RatchetError
from ratchet.operations import Leftover, Prepared, ProgressCallback, operation, process_alive
from ratchet.operations import recover as recover_leftover
from ratchet.operations.checks import CheckResult
from ratchet.policy.model import ActionClass
from ratchet.record import actions
from ratchet.record.lifecycle import Status
from ratchet.record.locks import Scope
from ratchet.results import ToolOutcome
from ratchet.rules.outcome import CallOutcome, Ended, counts_as


class Runner:
    """Runs decided calls for one session and settles what became of them."""

    def __init__(self, setting: Setting, origin: Origin, verifier: Verifier) -> None:
        self.setting = setting
        self.origin = origin
        self.verifier = verifier
        # Undoes an action a failing check judged (`undo_on_failure`): the human side's undo, set by the
        # engine once it has one (engine/undo.py), returning the line the agent reads.
        self.undo_failed: Callable[[int, str], Awaitable[str]] | None = None

    async def run_call(
        self,
        ev: Evaluation,
        intent: str | None,
        confidence: float | None,
        answer: HumanAnswer | None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Record the intent, run the call, run its class's checks, settle the outcome; what the agent reads."""
        s = self.setting
        if ev.claimed is not None:  # recorded with the decision, in one unit of work (engine/decide.py)
            action_id = ev.claimed
        else:
            row = await intent_row(s, self.origin, ev, intent, confidence, Status.RUNNING, ev.decision.route)
            # The intent is committed before the effect: a crash from here on leaves a `running` row.
            action_id = await s.store.run(lambda conn: actions.insert_intent(conn, row), scope=Scope.of(), short=True)
        approved = answer is not None and answer.accepted
        ran = await self.run(ev.prepared, action_id, ev.cls, progress, approved=approved)
        checked = await self.verify(ev.cls, ev.prepared, action_id, ran)
        outcome = CallOutcome(
            ran.ended, answer=answer.evidence if answer is not None else None, check_failed=failed(checked)
        )
        ok = counts_as(outcome, counts_failures=ev.cls.count_execution_failures)
        settle = settler(s, ev.evidence, ev.cls, ev.prepared, action_id, ran, ok, answer, s.session_id)
        moved = await s.store.run(with_checks(settle, action_id, checked), scope=Scope.of(), short=True)
        reply = tool_outcome(ev, action_id, ran.status, result=ran.result, error=ran.error, moved=moved)
        return await self.after_checks(reply, ev.cls, action_id, checked)

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
        """Execute; what it gave and how it ended (a success, a failure, or stale: its target moved).

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
            return Ran(Status.FAILED, None, str(exc), Ended.STALE)  # the target moved under us: nobody's mistake
        except ExecutionFailed as exc:
            return Ran(Status.FAILED, exc.result, str(exc), Ended.FAILED)
        except RatchetError as exc:
            return Ran(Status.FAILED, None, str(exc), Ended.FAILED)
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
        return Ran(Status.EXECUTED, result, None, Ended.SUCCEEDED)

    async def verify(self, cls: ActionClass, prepared: Prepared, action_id: int, ran: Ran) -> list[CheckResult]:
        """After an action executed: run the class's `each` checks (one failing makes its outcome a failure,
        whatever the answer was: rules/outcome.py)."""
        if ran.status is not Status.EXECUTED:
            return []
        return await self.verifier.each(cls, prepared, action_id)

    async def after_checks(
        self, outcome: ToolOutcome, cls: ActionClass, action_id: int, checked: list[CheckResult]
    ) -> ToolOutcome:
        """The outcome with the checks' results for the agent; a failing check undoes the change where the
        class says so (`undo_after_failed_check`)."""
        if not checked:
            return outcome
        undone: str | None = None
        failed_ = [c for c in checked if not c.passed]
        if failed_ and cls.undo_on_failure:
            reason = "undo_on_failure: " + "; ".join(c.summary() for c in failed_)
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


def failed(checked: list[CheckResult]) -> bool:
    """Whether any of the checks run on an action failed."""
    return any(not c.passed for c in checked)


__all__ = ["Runner", "failed"]
