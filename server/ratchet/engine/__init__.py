"""The engine every edge shares: evaluate a call, carry it out at its level, record everything.

The MCP server, the CLI, the hooks and the review page are thin edges over an `Engine`, and speak to
it through its methods alone (tests/test_engine_surface.py holds that). A call goes down these modules
in the order it lives, never back up:

    evaluate   engine/decide.py   operation.prepare (confine, validate, preview) -> classify -> gate.decide
    carry_out  engine/carry.py    the person's answer judged; then the call runs or is held
      runs     engine/run.py      intent recorded (engine/intent.py) -> effect -> the class's checks
      settled  engine/settle.py   outcome, review, and what it counts as (rules/outcome.py) -> sample, moves
      held     engine/carry.py    declined, queued as a draft (engine/flood.py) or blocked with a packet
                                  (engine/packets.py)
      reply    engine/reply.py    what the agent reads
    a client's own call, and the outcome its hooks report: engine/external.py

Beside the call: the human's side (`HumanSide`, engine/human.py: approve, reject, complain, undo,
pin, freeze), drafts approved on another machine (engine/origin.py; where a call was made is
engine/where.py), the task-end checks (engine/verify.py) and the read-only views (engine/views.py).
The parts share one `Setting` (workspace, policy, trust database, session). The engine writes no SQL:
every read and write of the trust database is a named operation of record/, run as one unit of work;
the gate, the outcome rule and the trust rules are pure.

Open it as an async context manager (`async with await Engine.open(...) as engine:`), or with
`engine = await Engine.open(...)` and `await engine.close()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from ratchet.engine.carry import Carrier
from ratchet.engine.core import CLI_SESSION, Evaluation, HumanAnswer, Setting, keep_database_out_of_git
from ratchet.engine.decide import Decider
from ratchet.engine.external import External
from ratchet.engine.human import ComplaintOutcome, HumanSide
from ratchet.engine.origin import Origins, carrying_out
from ratchet.engine.undo import UndoOutcome
from ratchet.engine.verify import TaskChecks, Verifier
from ratchet.engine.views import Views
from ratchet.engine.where import Origin
from ratchet.engine.whole import WholeDiff, check_whole, whole_diff
from ratchet.errors import PolicyError, RatchetError, ReviewerRoleRequired
from ratchet.operations import (
    ProgressCallback,
    Workspace,
    at_open,
    flush_notifications,
    guard_workspace,
    workspace_problem,
)
from ratchet.policy.guarded import guarded_paths
from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy, resolve_policy_dir
from ratchet.policy.model import ActionClass, Policy
from ratchet.record import actions, chain, integrity, roles, standing
from ratchet.record.content import GcReport
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.store import (
    Location,
    Store,
    beside,
    default_page_token_file,
    default_token_file,
    resolve_location,
)
from ratchet.results import DraftView, ToolOutcome, TrustLevels
from ratchet.rules import contracts, provenance

if TYPE_CHECKING:  # start-up: the evidence modules load only when a report is asked for
    from ratchet.evidence.explain import Explanation
    from ratchet.evidence.metrics import MetricsReport
    from ratchet.evidence.report import EvidenceReport

__all__ = ["CLI_SESSION", "ComplaintOutcome", "Engine", "Evaluation", "HumanAnswer", "UndoOutcome"]


class Engine:
    """One workspace, one policy, one trust database, one session."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.decider = Decider(setting)
        self.verifier = Verifier(setting)
        self.carrier = Carrier(setting, self.verifier)
        self.external = External(setting, self.carrier)
        self.views = Views(setting)
        self.human = HumanSide(setting, self.carrier, self.views)
        self.origins = Origins(setting, self.human, self.views)
        # The digest of each draft (rules/shown.py) as this process last put it to a person in a dialog.
        self.shown: dict[int, str] = {}
        # The same for a call put to the confirm dialog, by its question key (rules/provenance.py).
        self.shown_calls: dict[str, str] = {}

    @classmethod
    async def open(
        cls,
        workspace: Path,
        *,
        policies: Path | None = None,
        db: Location | None = None,
        client: str | None = None,
        session: bool | str = True,
        loader: Callable[[Path], Policy] | None = None,
    ) -> Self:
        """Load the policy (fail closed), open the database, recover interrupted actions, sync standings.

        `session`: True starts a new session, a string joins (or starts) that session (a client's own
        session id, for hooks), False acts as the human's CLI. `loader` loads the policy directory
        (default `load_policy`; the resident hook server passes a `PolicyCache`'s).
        """
        workspace = workspace.resolve()
        policy = (loader or load_policy)(resolve_policy_dir(workspace, policies))
        refused = workspace_problem(policy.defaults.notify, [workspace])
        if refused is not None:  # it would run as the user, outside any sandbox: fail closed
            raise PolicyError(str(policy.directory / policy.defaults_file), "defaults.notify", refused)
        guard_workspace(workspace)
        db_path = resolve_location(db, workspace)
        kept_beside = beside(db_path, workspace)  # the files kept beside the database on this machine
        protected = [policy.directory, kept_beside.parent / "content"]  # and the undo content store
        protected.append(Path(f"{kept_beside}.shown.json"))  # what the CLI showed a person (shown_here.py)
        if isinstance(db_path, Path):
            protected += [db_path, *(Path(f"{db_path}{s}") for s in ("-wal", "-shm", "-journal"))]
        guarded = guarded_paths(policy, workspace)
        ws = Workspace(
            workspace,
            protected,
            hidden=[default_token_file(kept_beside), default_page_token_file(kept_beside)],
            read_only=guarded.always,
            reviewed=guarded.reviewed,
        )
        store = await Store.open(db_path)
        if isinstance(db_path, Path):
            keep_database_out_of_git(db_path)
        try:
            session_id = session if isinstance(session, str) else uuid.uuid4().hex[:12] if session else CLI_SESSION
            answers_here = await store.call(roles.may_review)
            setting = Setting(ws, policy, store, session_id, answers_here=answers_here)
            # With database roles, who acts is the login's person (record/roles.py), as the database records it.
            setting.login_person = await store.call(roles.person)
            setting.identity = setting.login_person or setting.identity
            engine = cls(setting)
            at_open()
            await engine.carrier.runner.recover()
            await store.run(chain.backfill)
            await store.run(lambda conn: standing.sync_policy(conn, policy, reviewer=answers_here))
            if session:
                await store.start_session(session_id, client)
        except BaseException:
            await store.close()
            raise
        return engine

    async def close(self) -> None:
        """Close the database, and deliver any notifications held back by the rate limit."""
        flush_notifications()
        await self.setting.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def for_session(self, session_id: str) -> Self:
        """The same workspace, policy and database, acting in another agent session (one per HTTP client)."""
        return type(self)(dataclasses.replace(self.setting, session_id=session_id))

    # -- what the parts share ----------------------------------------------------------------------

    @property
    def workspace(self) -> Workspace:
        """The confined workspace."""
        return self.setting.workspace

    @property
    def policy(self) -> Policy:
        """The policy this engine was opened with."""
        return self.setting.policy

    @property
    def store(self) -> Store:
        """The trust database."""
        return self.setting.store

    @property
    def session_id(self) -> str:
        """The agent session this engine acts in (`cli` for the human's)."""
        return self.setting.session_id

    @property
    def location(self) -> Location:
        """Where the trust database is: a file, or a team's PostgreSQL URL."""
        return self.setting.store.path

    @property
    def answers_here(self) -> bool:
        """Whether this process may record a person's answer (False under the agent's database role)."""
        return self.setting.answers_here

    @property
    def here(self) -> Origin:
        """Where this process records its calls as made: its host and workspace (engine/where.py)."""
        return self.origins.here

    def shared_key(self) -> object:
        """One object for this engine and every `for_session` of it (they share one database handle): the
        key of what an edge keeps once per database, such as the calls in flight on it."""
        return self.setting.store

    async def start_session(self, client: str | None) -> None:
        """Record this engine's agent session (once: a client's session id may come back in every hook call)."""
        await self.setting.store.start_session(self.session_id, client)

    @property
    def answers(self) -> provenance.AnswerClock:
        """When each question was put to a client, and the clock that times human answers."""
        return self.setting.answers

    def check_texts(self, tool: str, **texts: str | None) -> None:
        """Hold the call's free-text arguments (intent, uncertainty) to max_text_bytes."""
        for name, value in texts.items():
            self.setting.ceiling.text(tool, name, value)

    def named(self, name: str) -> ActionClass:
        """A class of the policy by name; InvalidRequest lists the classes."""
        return self.setting.named(name)

    def class_of(self, name: str) -> ActionClass:
        """A recorded class by name; one removed from the policy since is judged as unclassified."""
        return self.setting.class_of(name)

    # -- the decision and carrying it out ------------------------------------------------------------

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
        return await self.carrier.carry_out(
            ev, intent=intent, confidence=confidence, answer=answer, uncertainty=uncertainty, progress=progress
        )

    async def record_external(
        self, ev: Evaluation, external_id: str, *, intent: str | None = None, external_tool: str | None = None
    ) -> ToolOutcome:
        """Record the decision on a call a client runs itself (engine/external.py)."""
        return await self.external.record_external(ev, external_id, intent=intent, external_tool=external_tool)

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
        return await self.carrier.refuse(tool, args, error, intent=intent, confidence=confidence)

    async def start_task(
        self,
        goal: str,
        scope: contracts.TaskScope,
        non_goals: list[str],
        budget: contracts.TaskBudget,
    ) -> tuple[contracts.Task, TaskChecks | None]:
        """Open a run contract; one still open is superseded, and its `task_end` checks run as if it had ended."""
        before = await self.store.call(lambda conn: actions.open_task(conn, self.session_id))
        task = await contracts.start_task(self.store, self.session_id, goal, scope, non_goals, budget)
        if before is None:
            return task, None
        return task, await self.verifier.task_end(int(before["id"]))

    async def end_session(self) -> TaskChecks:
        """The session is closing: its open task ends (its `task_end` checks run), and so do the checks over the
        actions it ran outside any task, which are otherwise never judged."""
        ended = await self.end_task("the session closed with the task still open")
        found = ended[1] if ended is not None else TaskChecks()
        rest = await self.verifier.unscoped(self.session_id)
        found.results.update(rest.results)
        found.failed_actions += rest.failed_actions
        found.moves += rest.moves
        return found

    async def end_task(self, summary: str) -> tuple[contracts.Task, TaskChecks] | None:
        """Close the session's run contract, then run the `task_end` checks of each class over the task's
        executed actions (engine/verify.py); None if no task was open."""
        task = await contracts.end_task(self.store, self.session_id, summary)
        if task is None:
            return None
        return task, await self.verifier.task_end(task.id)

    # -- the human's side --------------------------------------------------------------------------

    def reviewer_side(self, what: str) -> None:
        """Refuse a human's act here when this process's database role is the agent's (record/roles.py):
        the database would refuse it anyway; this says where it is done instead."""
        if not self.setting.answers_here:
            raise ReviewerRoleRequired(
                f"cannot {what} here: this record is opened with the agent's database role, which may not "
                "record a human's decision. Run it with the reviewer role's --db (ratchet db roles)"
            )

    async def approve(
        self,
        action_id: int,
        *,
        reviewer: str = "cli",
        content: str | None = None,
        note: str | None = None,
        seconds: float | None = None,
        channel: str | None = None,
        expect: str | None = None,
        whole: str | None = None,
    ) -> DraftView:
        """Run a queued draft exactly once, exactly as drafted (or with the human's `content`).

        A draft queued on another machine or workspace of a shared record is not run here: the approval is
        recorded and the draft waits, `approved`, for its origin to run it (engine/origin.py). `expect` is the
        digest of the change the person was shown (rules/shown.py); a draft that changed since is refused. A
        draft whose preview was cut needs `whole`, the digest of its whole diff as the person read it
        (engine/whole.py)."""
        self.reviewer_side("approve a draft")
        await check_whole(self.setting, self.origins.here, action_id, whole, content)
        waiting = await self.origins.defer(
            action_id, reviewer=reviewer, content=content, note=note, seconds=seconds, channel=channel, expect=expect
        )
        if waiting is not None:
            return waiting
        return await self.human.approve(
            action_id, reviewer=reviewer, content=content, note=note, seconds=seconds, channel=channel, expect=expect
        )

    async def whole_diff(self, action_id: int) -> WholeDiff:
        """A queued draft's whole diff and its digest, for a person to read before approving (engine/whole.py)."""
        return await whole_diff(self.setting, action_id)

    async def carry_approved(self) -> list[DraftView]:
        """Run the drafts approved on other machines whose origin is this host and workspace, each once.
        None under the agent's database role: a reviewer-side `ratchet approve --pending` runs them."""
        if not self.setting.answers_here:
            return []
        return await self.origins.carry_out()

    async def reject(
        self,
        action_id: int,
        reason: str,
        *,
        reviewer: str = "cli",
        seconds: float | None = None,
        channel: str | None = None,
    ) -> DraftView:
        """Reject a queued draft: nothing runs, and the class's window records a failure."""
        self.reviewer_side("reject a draft")
        return await self.human.reject(action_id, reason, reviewer=reviewer, seconds=seconds, channel=channel)

    async def complain(self, action_id: int, reason: str) -> ComplaintOutcome:
        """Record that an action that ran was wrong; the class pays for it (once per action)."""
        self.reviewer_side("record a complaint")
        return await self.human.complain(action_id, reason)

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
        """Undo an action that ran: a file write or edit put back from the content store (refused when
        the file changed since, unless `force`), a commit reverted by a new commit queued as a draft;
        a command is refused. Counts as a complaint unless `complaint` is False (engine/undo.py).

        A failed verification check undoes its action with `complaint=False` and its own reviewer and
        channel (the check's failure is the evidence already)."""
        self.reviewer_side("undo an action")
        return await self.human.undo(
            action_id, reason, force=force, complaint=complaint, reviewer=reviewer, channel=channel
        )

    async def gc(self) -> GcReport:
        """Drop prior versions past the content store's bounds (`[defaults.undo]`), oldest first."""
        return await anyio.to_thread.run_sync(self.setting.content.gc)

    async def freeze(self, level: Level, reason: str, until: float | None) -> list[standing.Transition]:
        """A human caps every class at `level` at once."""
        self.reviewer_side("freeze")
        return await self.human.freeze(level, reason, until)

    async def unfreeze(self, reason: str) -> list[standing.Transition]:
        """A human lifts the freeze."""
        self.reviewer_side("unfreeze")
        return await self.human.unfreeze(reason)

    async def demote(self, name: str, reason: str, to: Level | None = None) -> standing.Transition:
        """A human lowers a class."""
        self.reviewer_side("demote a class")
        return await self.human.demote(name, reason, to)

    async def pin(self, name: str, level: Level | None, reason: str) -> standing.Transition:
        """A human caps a class (or lifts the cap with None)."""
        self.reviewer_side("pin a class")
        return await self.human.pin(name, level, reason)

    # -- views -------------------------------------------------------------------------------------

    async def trust_levels(self) -> TrustLevels:
        """Every class, where it stands, its window, and what a call of it would do now."""
        return await self.views.trust_levels()

    async def queue(self, scope: ActionFilter = EVERYTHING) -> list[DraftView]:
        """Drafts waiting for a human (those `scope` keeps: record/filters.py), oldest first."""
        return await self.views.queue(scope)

    async def history(
        self, limit: int = 50, action_class: str | None = None, by: str | None = None, scope: ActionFilter = EVERYTHING
    ) -> list[DraftView]:
        """Recent actions (recorded or reviewed by the identity `by`, when given; those `scope` keeps), newest first."""
        return await self.views.history(limit, action_class, by, scope)

    async def transitions(self, action_class: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded transitions with their evidence, newest first."""
        return await self.views.transitions(action_class, limit)

    async def view(self, action_id: int, wait_s: float = 0.0) -> DraftView:
        """One recorded action; with `wait_s`, wait up to that long for a draft to be decided."""
        return await self.views.view(action_id, wait_s)

    async def row(self, action_id: int) -> dict[str, Any] | None:
        """One recorded action's row as the record keeps it, or None."""
        return await self.views.row(action_id)

    async def checked_filter(self, scope: ActionFilter) -> ActionFilter:
        """`scope` with the parts no recorded action matches named (record/filters.py `checked`)."""
        return await self.views.checked_filter(scope)

    async def tamper_records(self) -> tuple[int, list[str]]:
        """How many tamper records the record holds, and the newest few as lines (record/integrity.py)."""
        return await self.setting.store.call(integrity.tamper_records)

    async def verify_chain(self, expect: str | None = None) -> chain.Verification:
        """Walk the hash chains over transitions and reviews; with `expect`, also require that head
        (record/chain.py)."""
        return await self.setting.store.call(lambda conn: chain.verify(conn, expect))

    async def unvouched(self) -> list[str]:
        """What `ratchet verify` cannot vouch for beyond the hash chain, one line each (record/integrity.py)."""
        policy = self.setting.policy
        classes = {c.name: c for c in (*policy.classes.values(), policy.unclassified)}
        return await self.setting.store.call(lambda conn: integrity.unvouched(conn, classes))

    def carrying_out(self) -> contextlib.AbstractAsyncContextManager[None]:
        """While the block runs, carry out the drafts approved elsewhere whose origin is this one (engine/origin.py);
        under the agent's database role nothing is (a reviewer-side `ratchet approve --pending` runs them)."""
        if not self.setting.answers_here:
            return contextlib.nullcontext()
        return carrying_out(self.origins)

    # -- the evidence read from the record ---------------------------------------------------------
    # Start-up: the evidence modules are imported only when a report is asked for, not by serving.

    async def metrics(
        self,
        *,
        since: str | float | None = None,
        until: str | float | None = None,
        action_class: str | None = None,
        scope: ActionFilter = EVERYTHING,
    ) -> MetricsReport:
        """Read-only figures per class and per level over a period (evidence/metrics.py)."""
        from ratchet.evidence.metrics import class_metrics  # start-up: not needed to serve

        store = self.setting.store
        return await class_metrics(store, since=since, until=until, action_class=action_class, scope=scope)

    async def report(
        self, *, since: str | float | None = None, until: str | float | None = None, scope: ActionFilter = EVERYTHING
    ) -> EvidenceReport:
        """The metrics over a period and every class's trajectory, replayed (evidence/report.py)."""
        from ratchet.evidence.report import evidence_report  # start-up: not needed to serve

        return await evidence_report(self.setting.store, self.setting.policy, since=since, until=until, scope=scope)

    async def explain(self, action_id: int) -> Explanation:
        """Why one recorded action went as it did (evidence/explain.py); DraftNotFound if there is none."""
        from ratchet.evidence.explain import explain_action  # start-up: not needed to serve

        return await explain_action(self.setting.store, action_id, self.setting.policy)
