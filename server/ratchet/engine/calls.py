"""What an agent's calls need of the engine: a call decided and carried out (or run by its client and
reported), a refusal, a task opened and closed. `Engine` (engine/__init__.py) is made of this side,
the person's (engine/acts.py) and the reads (engine/reads.py)."""

from __future__ import annotations

from typing import Any

from ratchet import telemetry
from ratchet.engine import reviewer as delegated
from ratchet.engine.carry import Carrier
from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.engine.decide import Claim, Decider
from ratchet.engine.external import External
from ratchet.engine.verify import TaskChecks, Verifier
from ratchet.errors import RatchetError
from ratchet.operations import ProgressCallback
from ratchet.record import actions, standing
from ratchet.results import ToolOutcome
from ratchet.rules import contracts


class CallSide:
    """The engine's methods for an agent's calls (the parts are set by `Engine`)."""

    setting: Setting
    decider: Decider
    verifier: Verifier
    carrier: Carrier
    external: External

    async def evaluate(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        confidence: float | None = None,
        can_elicit: bool = True,
        shell_rule: bool = True,
    ) -> Evaluation:
        """Prepare and classify a call and let the gate decide (engine/decide.py)."""
        return await self.decider.evaluate(
            tool, args, confidence=confidence, can_elicit=can_elicit, shell_rule=shell_rule
        )

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
        """Do what the decision says and record it all (engine/carry.py)."""
        outcome = await self.carrier.carry_out(
            ev, intent=intent, confidence=confidence, answer=answer, uncertainty=uncertainty, progress=progress
        )
        telemetry.decided(self.setting, ev, outcome, answer)
        return outcome

    async def govern(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        intent: str | None = None,
        confidence: float | None = None,
        uncertainty: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Decide a call and carry it out at once, for a client that cannot ask its human (a `confirm` is
        queued as a draft). A call the gate lets run has its decision and its intent recorded in one unit
        of work (engine/decide.py's `Claim`). A call refused before it could be decided (a bad path, bad
        arguments) is recorded as refused, and its error raised; `carry_out`'s errors are raised as they are."""
        claim = Claim(intent, confidence, self.carrier.origin)
        try:
            ev = await self.decider.evaluate(tool, args, confidence=confidence, can_elicit=False, claim=claim)
        except RatchetError as exc:
            await self.refuse(tool, args, exc, intent=intent, confidence=confidence)
            raise
        return await self.carry_out(
            ev, intent=intent, confidence=confidence, uncertainty=uncertainty, progress=progress
        )

    async def record_external(
        self, ev: Evaluation, external_id: str, *, intent: str | None = None, external_tool: str | None = None
    ) -> ToolOutcome:
        """Record the decision on a call a client runs itself (engine/external.py)."""
        outcome = await self.external.record_external(ev, external_id, intent=intent, external_tool=external_tool)
        telemetry.decided(self.setting, ev, outcome, external_id=external_id, client_tool=external_tool)
        return outcome

    async def waiting_external(self, external_tool: str | None = None) -> set[str]:
        """The external ids of this session's calls still waiting for their client's report."""
        return await self.external.waiting_external(external_tool)

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
        """The client reports what became of a call it ran itself (engine/external.py)."""
        return await self.external.record_external_outcome(
            external_id,
            ran=ran,
            ok=ok,
            answered=answered,
            answered_at=answered_at,
            external_tool=external_tool,
            channel=channel,
        )

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
        action_id = await self.carrier.refuse(tool, args, error, intent=intent, confidence=confidence)
        telemetry.refused(self.setting, tool, action_id)
        return action_id

    async def start_task(
        self,
        goal: str,
        scope: contracts.TaskScope,
        non_goals: list[str],
        budget: contracts.TaskBudget,
    ) -> tuple[contracts.Task, TaskChecks | None]:
        """Open a run contract; one still open is superseded, and its `task_end` checks run as if it had ended."""
        before = await self.setting.store.call(lambda conn: actions.open_task(conn, self.setting.session_id))
        task = await contracts.start_task(self.setting.store, self.setting.session_id, goal, scope, non_goals, budget)
        if before is None:
            return task, None
        checks = await self.verifier.task_end(int(before["id"]))
        telemetry.moved(self.setting, checks.moves)
        return task, checks

    async def end_session(self) -> TaskChecks:
        """The session is closing: its open task ends (its `task_end` checks run), and so do the checks over the
        actions it ran outside any task, which are otherwise never judged."""
        ended = await self.end_task("the session closed with the task still open")
        found = ended[1] if ended is not None else TaskChecks()
        rest = await self.verifier.unscoped(self.setting.session_id)
        found.results.update(rest.results)
        found.failed_actions += rest.failed_actions
        found.moves += rest.moves
        telemetry.moved(self.setting, rest.moves)
        return found

    async def end_task(self, summary: str) -> tuple[contracts.Task, TaskChecks] | None:
        """Close the session's run contract, then run the `task_end` checks of each class over the task's
        executed actions (engine/verify.py); None if no task was open."""
        task = await contracts.end_task(self.setting.store, self.setting.session_id, summary)
        if task is None:
            return None
        checks = await self.verifier.task_end(task.id)
        telemetry.moved(self.setting, checks.moves)
        return task, checks

    # -- the delegated reviewer on a call (engine/reviewer.py) ---------------------------------------------

    async def reviewer_consult(self, ev: Evaluation, key: str, intent: str | None) -> HumanAnswer | None:
        """On a `confirm` call: the reviewer's approval in the person's place, or None (ask the person)."""
        return await delegated.consult(self.setting, ev, key, intent)

    def reviewer_granted(self, key: str) -> HumanAnswer | None:
        """The approval `reviewer_consult` gave on this call, if it did (the call then runs without asking)."""
        return delegated.granted(self.setting, key)

    async def reviewer_settled(self, key: str, action_id: int, asked: bool) -> None:
        """After a call is recorded: keep the reviewer's verdict on it, or start a shadow verdict."""
        await delegated.settled(self.setting, key, action_id, asked)
