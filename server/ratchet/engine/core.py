"""The core of the engine: evaluate a call, carry it out at its level, record everything.

See engine/__init__.py for the whole picture; engine/human.py (the human's side) and engine/views.py build on this.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import anyio

from ratchet.errors import DraftNotFound, DraftStale, ExecutionFailed, InvalidRequest, RatchetError
from ratchet.executors.notify import flush_notifications, notify
from ratchet.executors.sandbox import sandbox_status_async
from ratchet.executors.workspace import Workspace
from ratchet.operations import OpContext, Prepared, ProgressCallback, SpawnCallback, kept_args, operation
from ratchet.policy.levels import Level
from ratchet.policy.limits import Ceiling, check_class
from ratchet.policy.load import load_policy, resolve_policy_dir
from ratchet.policy.model import UNCLASSIFIED, ActionClass, Policy, Subject
from ratchet.record import chain, integrity, standing
from ratchet.record.store import Store, class_row, default_db_path
from ratchet.redact import redact, redact_all
from ratchet.results import ClassMove, DraftView, ToolOutcome, TriggerInfo
from ratchet.rules import contracts, provenance
from ratchet.rules.escalation import (
    EscalationPacket,
    HistoryEntry,
    PacketAction,
    PacketTrigger,
    build_packet,
    stopped_options,
)
from ratchet.rules.gate import Decision, Route, Trigger, decide, no_sandbox_trigger
from ratchet.rules.settle import CLI_SESSION as CLI_SESSION  # the streak rule's, re-exported


@dataclass(frozen=True)
class Evaluation:
    """A prepared call, its class and the gate's decision: everything needed to carry it out."""

    prepared: Prepared
    cls: ActionClass
    decision: Decision
    level_transition: int | None = None
    task_id: int | None = None
    # The class whose level decided the call, when a side effect (a file the command also writes)
    # stands lower than the call's own class: the human's answer and the outcome are its evidence.
    side_effect_cls: ActionClass | None = None

    @property
    def evidence(self) -> ActionClass:
        """The class a sample of this call counts for (see `side_effect_cls`)."""
        return self.side_effect_cls or self.cls


@dataclass(frozen=True)
class HumanAnswer:
    """A human's answer to a confirmation or a draft, and its provenance (see rules/provenance.py).

    `channel` is how it was given (cli, elicitation, hook-dialog, web; None: unknown, never CLI
    evidence); `seconds` how long it took (None: untimed, never evidence of reading); `dismissed` a
    dialog closed without an answer; `evidence` is filled in by the engine when it is recorded.
    """

    accepted: bool
    reviewer: str
    note: str | None = None
    seconds: float | None = None
    channel: str | None = None
    dismissed: bool = False
    evidence: str | None = None
    edited: bool = False

    def judged(self, cls: ActionClass, preview: str) -> HumanAnswer:
        """This answer with its evidence: counted, unverified or unanswered."""
        evidence = provenance.assess(
            accepted=self.accepted,
            channel=self.channel,
            seconds=self.seconds,
            preview=preview,
            promotion_evidence=cls.promotion_evidence,
            dismissed=self.dismissed,
        )
        return dataclasses.replace(self, evidence=evidence)

    @property
    def counts(self) -> bool:
        """Whether this answer's success may be a sample for the class (failures always may)."""
        return self.evidence in (None, provenance.COUNTED)


class Core:
    """One workspace, one policy, one trust database, one session: the agent's side of the gate."""

    def __init__(self, workspace: Workspace, policy: Policy, store: Store, session_id: str) -> None:
        self.workspace = workspace
        self.policy = policy
        self.store = store
        self.session_id = session_id
        # When each question was put to a client, and the clock that times human answers.
        self.answers = provenance.AnswerClock()
        # The first limit check (policy/limits.py): fixed for the policy this engine was opened with.
        self._ceiling = Ceiling(policy.defaults.limits, policy.classes.values(), policy.defaults_file)

    @classmethod
    async def open(
        cls,
        workspace: Path,
        *,
        policies: Path | None = None,
        db: Path | None = None,
        client: str | None = None,
        session: bool | str = True,
    ) -> Self:
        """Load the policy (fail closed), open the database, recover interrupted actions, sync standings.

        `session`: True starts a new session, a string joins (or starts) that session (a client's own
        session id, for hooks), False acts as the human's CLI.
        """
        workspace = workspace.resolve()
        policy = load_policy(resolve_policy_dir(workspace, policies))
        db_path = (db or default_db_path(workspace)).absolute()
        protected = [
            policy.directory,
            db_path,
            *(Path(f"{db_path}{s}") for s in ("-wal", "-shm", "-journal")),
        ]
        ws = Workspace(workspace, protected)
        store = await Store.open(db_path)
        keep_database_out_of_git(db_path)
        try:
            session_id = session if isinstance(session, str) else uuid.uuid4().hex[:12] if session else CLI_SESSION
            engine = cls(ws, policy, store, session_id)
            await engine._recover()
            await store.run(chain.backfill)
            await store.run(lambda conn: standing.sync_policy(conn, policy))
            if session:
                await store.start_session(engine.session_id, client)
        except BaseException:
            await store.close()
            raise
        return engine

    async def close(self) -> None:
        """Close the database, and deliver any notifications held back by the rate limit."""
        flush_notifications()
        await self.store.close()

    def for_session(self, session_id: str) -> Self:
        """The same workspace, policy and database, acting in another agent session (one per HTTP client)."""
        other = copy.copy(self)
        other.session_id = session_id
        return other

    async def _recover(self) -> None:
        from ratchet.executors.fs import discard_temp
        from ratchet.executors.git import discard_stale_indexes
        from ratchet.executors.shell import kill_leftovers

        discard_stale_indexes()  # a commit preview killed midway leaves its throwaway index behind

        for row in await self.store.recover_interrupted():
            if row["child_pid"] is not None:
                # What is left of a command whose server died (the record already says it may have run).
                kill_leftovers(row["child_pid"], f"RATCHET_ACTION={row['id']}")
            if row["tool"] in ("write_file", "edit_file"):
                # The executor stages into a temp file named after the action; the target is untouched.
                discard_temp(self.workspace, row["target"], str(row["id"]))
                # An approval cut short left the queue with the draft's content: keep only its digest.
                await self.store.run(functools.partial(keep_args_on, action_id=int(row["id"])))

    # -- the agent's side ------------------------------------------------------------------------

    def op_context(
        self,
        progress: ProgressCallback | None = None,
        cls: ActionClass | None = None,
        on_spawn: SpawnCallback | None = None,
    ) -> OpContext:
        """What operations get: the confined workspace, the policy's command settings, a progress sink,
        the loosest limits any class allows (a call over them is refused before any work), and the
        deciding class's sandbox settings."""
        base = OpContext(self.workspace, self.policy.defaults.commands, progress, ceiling=self.ceiling())
        if cls is None:
            return base
        return dataclasses.replace(base, sandbox=cls.sandbox, network=cls.network, on_spawn=on_spawn)

    def ceiling(self) -> Ceiling:
        """The first limit check (policy/limits.py): the loosest size limits the policy allows per tool."""
        return self._ceiling

    def check_texts(self, tool: str, **texts: str | None) -> None:
        """Hold the call's free-text arguments (intent, uncertainty) to max_text_bytes."""
        ceiling = self.ceiling()
        for name, value in texts.items():
            ceiling.text(tool, name, value)

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
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise InvalidRequest(f"confidence {confidence} is out of range; expected a number from 0 to 1")
        prepared = await operation(tool).prepare(self.op_context(), args)
        if len(prepared.preview) > 65536:
            await anyio.to_thread.run_sync(lambda: prepared.shown)  # a long preview is redacted off the loop
        own = [s for s in prepared.subjects if s.tool == prepared.tool]
        classes = {c.name: c for c in (self.policy.classify(s).cls for s in own)}
        if prepared.shell and shell_rule and not prepared.refusals:  # a refusal outranks the shell rule
            refusing = sorted(name for name, c in classes.items() if not c.allow_shell)
            if refusing:
                raise InvalidRequest(
                    f"class {', '.join(refusing)} does not accept shell strings; pass argv "
                    "(a list) instead, or ask for a class with allow_shell = true"
                )
        # The second limit check: the call's sizes against every class it fell into.
        check_class(prepared.tool, prepared.sizes, classes.values(), self.policy.defaults_file)
        cls = await self._most_conservative(list(classes.values()))
        # Everything the gate needs from the database, in one round trip: the class_state cache and
        # the record it caches (record/integrity.py), the session's streak and its open task.
        width = integrity.GATE_WIDTH
        state = await self.store.one(
            f"SELECT {integrity.GATE_COLUMNS}, "
            "(SELECT failures FROM streaks WHERE session_id = :session AND class = :cls), "
            "(SELECT id FROM tasks WHERE session_id = :session AND ended_at IS NULL ORDER BY id DESC LIMIT 1) "
            f"FROM (SELECT 1) LEFT JOIN class_state c ON c.name = :cls {integrity.GATE_JOINS}",
            {"session": self.session_id, "cls": cls.name, "window": cls.trust.window_size},
        )
        rec, freeze, found = integrity.from_gate_row(state, cls)
        if found:  # changed outside Ratchet: reported (checked again inside the write), and the record decides
            await self.store.run(lambda conn: integrity.checked(conn, cls, class_row(conn, cls.name)))
        if freeze is not None and freeze.broken:
            held = freeze
            await self.store.run(lambda conn: integrity.report_freeze(conn, held))
        level = min(max(rec.level, cls.floor), cls.ceiling)
        pinned = rec.pinned
        failures, task_id = state[width], state[width + 1]
        extra = [freeze.trigger()] if freeze is not None and freeze.active() else []
        extra += await self._context_triggers(cls, level, prepared.subjects, task_id)
        side = await self._side_effects([s for s in prepared.subjects if s.tool != prepared.tool])
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
        decision = decide(
            cls,
            level,
            pinned=pinned,
            confidence=confidence,
            session_failures=failures or 0,
            can_elicit=can_elicit,
            extra=tuple(extra),
        )
        return Evaluation(prepared, cls, decision, rec.transition_id, task_id, deciding)

    async def _effective(self, cls: ActionClass) -> Level:
        """The class's level by the record, under its pin and any freeze (one round trip)."""

        def read(conn: sqlite3.Connection) -> Level:
            rec = integrity.recorded(conn, cls)
            return integrity.effective(cls, rec.level, rec.pinned, integrity.freeze_of(conn))

        return await self.store.call(read)

    async def _most_conservative(self, classes: list[ActionClass]) -> ActionClass:
        """Of the classes a compound action falls into, the one standing lowest (then the lowest ceiling)."""
        if len(classes) == 1:
            return classes[0]
        ranked = [((await self._effective(c), c.ceiling, c.start, c.name), c) for c in classes]
        return min(ranked, key=lambda r: r[0])[1]

    async def _side_effects(self, subjects: list[Subject]) -> list[tuple[Trigger, ActionClass]]:
        """A command that also writes files (shell redirection) is held to the file's class as well."""
        found = []
        for subject in subjects:
            cls = self.policy.classify(subject).cls
            level = await self._effective(cls)
            trigger = Trigger(
                "side-effect", f"also writes {', '.join(subject.paths)} (class {cls.name} at {level.label})", level
            )
            found.append((trigger, cls))
        return found

    async def _context_triggers(
        self, cls: ActionClass, level: Level, subjects: tuple[Subject, ...], task_id: int | None
    ) -> list[Trigger]:
        """Triggers from the session's run contract and from what the class has seen before."""
        found: list[Trigger] = []
        task = await contracts.open_task(self.store, self.session_id) if task_id is not None else None
        if task is not None:
            found += task.triggers(subjects, cls.name)
        if cls.novelty:
            keys = [k for s in subjects for k in contracts.novelty_keys(s)]
            marks = ", ".join("?" * len(keys))
            rows = await self.store.all(f"SELECT key FROM seen WHERE class = ? AND key IN ({marks})", (cls.name, *keys))
            seen = {r[0] for r in rows}
            novel = contracts.novelty_trigger(cls, level, [k for k in keys if k not in seen])
            if novel is not None:
                found.append(novel)
        return found

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
        unanswered = None
        if route is Route.CONFIRM and answer is not None:
            answer = answer.judged(ev.evidence, ev.prepared.shown)
            if answer.evidence == provenance.UNANSWERED:
                # No human answered (too fast to have read it, or dismissed): queued, as when the client
                # cannot ask; not a sample.
                route, unanswered, answer = Route.DRAFT, answer, None
        if route is Route.CONFIRM and answer is None:
            route = Route.DRAFT
        if route is Route.EXECUTE or (route is Route.CONFIRM and answer is not None and answer.accepted):
            return await self._execute(ev, intent, confidence, answer, progress)
        status = {Route.CONFIRM: "declined", Route.DRAFT: "drafted", Route.BLOCK: "blocked"}[route]
        packet = None
        moved = None
        async with self.store.transaction():
            action_id = await self._insert(ev, intent, confidence, status, route)
            if unanswered is not None:
                await self.store.update(
                    "UPDATE actions SET review_channel = ?, review_seconds = ?, evidence = ? WHERE id = ?",
                    (unanswered.channel, unanswered.seconds, unanswered.evidence, action_id),
                )
            if status == "declined":
                assert answer is not None
                await self._review(action_id, answer)
                moved = await self._sample(ev.evidence, action_id, ok=False, session_id=self.session_id)
            elif status == "blocked":
                packet = await self._packet(ev, action_id, intent, confidence, uncertainty)
                await self.store.update(
                    "UPDATE actions SET packet_json = ? WHERE id = ?", (packet.model_dump_json(), action_id)
                )
        if status in ("blocked", "drafted"):
            self.notify_inbox(action_id, status, ev.prepared.tool, ev.prepared.target, packet)
        outcome = await self._outcome(ev, action_id, status, moved=moved, packet=packet)
        if unanswered is not None:
            why = provenance.describe(unanswered.evidence, unanswered.channel, unanswered.seconds, ev.prepared.shown)
            outcome = outcome.model_copy(update={"message": f"{outcome.message}\n{why}; queued for a human instead"})
        return outcome

    def notify_inbox(
        self, action_id: int, status: str, tool: str, target: str, packet: EscalationPacket | None
    ) -> None:
        """Run the policy's notify command (if any) for something that just landed in the inbox."""
        notify(
            self.policy.defaults.notify,
            self.policy.defaults.limits.notifications_per_minute,
            {
                "id": action_id,
                "status": status,
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
        route = ev.decision.route
        bind = "UPDATE actions SET external_id = ?, external_tool = ? WHERE id = ?"
        if route in (Route.EXECUTE, Route.CONFIRM):
            status = "allowed" if route is Route.EXECUTE else "asked"
            async with self.store.transaction():
                action_id = await self._insert(ev, intent, None, status, route)
                await self.store.update(bind, (external_id, external_tool, action_id))
            return await self._outcome(ev, action_id, "executed" if route is Route.EXECUTE else "declined")
        outcome = await self.carry_out(ev, intent=intent)
        await self.store.update(bind, (external_id, external_tool, outcome.action_id))
        return outcome

    async def waiting_external(self, external_tool: str | None = None) -> set[str]:
        """The external ids of this session's calls still waiting for the client to report their outcome
        (with `external_tool`: only the calls of that client tool)."""
        rows = await self.store.all(
            "SELECT DISTINCT external_id FROM actions WHERE session_id = ? AND status IN ('allowed', 'asked') "
            "AND external_id IS NOT NULL AND (? IS NULL OR external_tool IS NULL OR external_tool = ?)",
            (self.session_id, external_tool, external_tool),
        )
        return {str(r[0]) for r in rows}

    async def record_external_outcome(
        self,
        external_id: str,
        *,
        ran: bool,
        ok: bool,
        answered: bool = True,
        answered_at: float | None = None,
        external_tool: str | None = None,
    ) -> standing.Transition | None:
        """The client reports what became of a call it was allowed or asked to run.

        An asked call that ran was approved by the human in the client's dialog (a success, unless it
        failed where the class counts failures); one that never ran was declined, unless nobody could
        have answered (`answered=False`: the client denied it unasked), which is `unanswered` and no
        evidence at all. None if nothing waits.
        `answered_at` (Unix time) is when the human answered, when the caller knows it (a transcript's
        timestamp); otherwise the answer is timed to now, an upper bound.
        Only a call of this session, with this id (and, given `external_tool`, of that client tool) is
        settled: an outcome that names another session's call or another tool settles nothing.
        """
        row = await self.store.maybe(
            "SELECT * FROM actions WHERE external_id = ? AND session_id = ? AND status IN ('allowed', 'asked') "
            "AND (? IS NULL OR external_tool IS NULL OR external_tool = ?) ORDER BY id DESC LIMIT 1",
            (external_id, self.session_id, external_tool, external_tool),
        )
        if row is None:
            return None
        cls = self.class_of(row["evidence_class"] or row["class"])
        asked = row["status"] == "asked"
        status = ("executed" if ok else "failed") if ran else "declined" if answered else "unanswered"
        sample: bool | None
        if not ran and not answered:
            sample = None  # no human saw it: no evidence either way
        elif not ran:
            sample = False if asked else None  # declined in the client's dialog
        elif ok or (asked and not cls.count_execution_failures):
            sample = True  # ran as shown (an asked call that ran was approved unchanged)
        else:
            sample = False if cls.count_execution_failures else None
        answer = None
        if asked and answered:
            # Timed from the PreToolUse to this report: an approved call's time includes its run.
            seconds = max(0.0, (self.answers.now() if answered_at is None else answered_at) - row["created_at"])
            answer = HumanAnswer(ran, "client", None, seconds, channel="hook-dialog").judged(cls, row["preview"])
            if answer.evidence == provenance.UNANSWERED or (sample is True and not answer.counts):
                sample = None  # an answer no human could have read is no evidence (a failed run still is)
        error = (
            None
            if ran
            else "not run (the client reported it denied)"
            if answered
            else "not answered: the client denied it without asking anyone (unattended session)"
        )
        async with self.store.transaction():
            await self._finish(row["id"], status, None, error, answer=answer, sample=sample)
            if sample is None:
                return None
            return await self._sample(cls, row["id"], sample, row["session_id"], mark=False)

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
        async with self.store.transaction():
            return await self.store.insert(
                "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, "
                "preview, intent, confidence, class_level, level, route, triggers_json, status, pid, error, "
                "finished_at) VALUES (?, ?, ?, ?, ?, '', ?, ?, '', ?, ?, '', '', 'refuse', '[]', 'refused', ?, "
                "?, ?)",
                (
                    self.session_id,
                    time.time(),
                    tool,
                    redact(str(args.get("path", ""))[:4096])[:500],
                    UNCLASSIFIED,
                    self.policy.fingerprint,
                    redact(json.dumps({"path": str(args.get("path"))[:500] if args.get("path") else None})),
                    intent and redact(intent),
                    confidence,
                    os.getpid(),
                    redact(str(error)),
                    time.time(),
                ),
            )

    async def _execute(
        self,
        ev: Evaluation,
        intent: str | None,
        confidence: float | None,
        answer: HumanAnswer | None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        if ev.task_id is None:
            action_id = await self._insert(ev, intent, confidence, "running", ev.decision.route)  # one statement
        else:
            async with self.store.transaction():
                action_id = await self._insert(ev, intent, confidence, "running", ev.decision.route)
        status, result, error, ok = await self._run(ev.prepared, action_id, ev.cls, progress)
        if ok and answer is not None and not answer.counts:
            ok = None  # ran on an answer that is no evidence of a human's reading: not a sample

        def settle(conn: sqlite3.Connection) -> standing.Transition | None:
            _finish_on(conn, action_id, status, result, error, answer=answer, sample=ok)
            moved = None if ok is None else _sample_on(conn, ev.evidence, action_id, ok, self.session_id, mark=False)
            if status == "executed":
                _remember_on(conn, ev.cls, ev.prepared)
            return moved

        # Outcome, sample, streak, window and any transition: one transaction, one round trip.
        moved = await self.store.run(settle)
        return await self._outcome(ev, action_id, status, result=result, error=error, moved=moved)

    async def _remember(self, cls: ActionClass, prepared: Prepared) -> None:
        """Record what a class has now run, for its novelty trigger (inside the caller's transaction)."""
        await self.store.call(lambda c: _remember_on(c, cls, prepared))

    async def _run(
        self, prepared: Prepared, action_id: int, cls: ActionClass, progress: ProgressCallback | None = None
    ) -> tuple[str, dict[str, Any] | None, str | None, bool | None]:
        """Execute; return (status, result, error, sample) where sample None means 'no evidence'."""

        async def spawned(pid: int) -> None:
            # Before the command can do anything worth recovering: a crash from here on leaves a record
            # that names the process group, which the next open kills (see _recover).
            await self.store.update(
                "UPDATE actions SET child_pid = ?, child_started_at = ? WHERE id = ?", (pid, time.time(), action_id)
            )

        try:
            context = self.op_context(progress, cls, spawned)
            result = await operation(prepared.tool).execute(context, prepared, str(action_id))
        except DraftStale as exc:
            return "failed", None, str(exc), None  # the target moved under us: nobody's mistake to count
        except ExecutionFailed as exc:
            return "failed", exc.result, str(exc), (False if cls.count_execution_failures else None)
        except RatchetError as exc:
            return "failed", None, str(exc), (False if cls.count_execution_failures else None)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                async with self.store.transaction():
                    await self._finish(action_id, "interrupted", None, "the call was cancelled by the client")
            raise
        return "executed", result, None, True

    async def _insert(
        self, ev: Evaluation, intent: str | None, confidence: float | None, status: str, route: Route
    ) -> int:
        p, d = ev.prepared, ev.decision
        # What is kept of a call is redacted: its target, intent and subject always, its arguments
        # unless it is a draft waiting to be run exactly as drafted (approval redacts them then).
        drafted = status == "drafted"
        target, subject, args_kept, intent_kept = await redact_all(
            p.target, json.dumps(p.subject.as_dict()), "" if drafted else json.dumps(p.record or p.args), intent or ""
        )
        if drafted:
            args_kept = json.dumps(p.args)
        action_id = await self.store.insert(
            "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
            "fingerprint, intent, confidence, class_level, level, route, triggers_json, flagged, status, pid, "
            "subject_json, level_transition, task_id, evidence_class) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.session_id,
                time.time(),
                p.tool,
                target,
                d.class_name,
                d.rule,
                self.policy.fingerprint,
                args_kept,
                p.shown,
                p.fingerprint,
                intent_kept if intent is not None else None,
                confidence,
                d.class_level.label,
                d.level.label,
                route.value,
                json.dumps([t.as_dict() for t in d.triggers]),
                int(d.flagged),
                status,
                os.getpid(),
                subject,
                ev.level_transition,
                ev.task_id,
                ev.side_effect_cls.name if ev.side_effect_cls else None,
            ),
        )
        if ev.task_id is not None:
            # Every governed action of an open run contract counts against its budget, whatever became of it.
            await self.store.update("UPDATE tasks SET actions_used = actions_used + 1 WHERE id = ?", (ev.task_id,))
        return action_id

    async def _finish(
        self,
        action_id: int,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        *,
        answer: HumanAnswer | None = None,
        sample: bool | None = None,
    ) -> None:
        """Record an outcome (inside the caller's transaction); see `_finish_on`."""
        await self.store.call(lambda c: _finish_on(c, action_id, status, result, error, answer=answer, sample=sample))

    async def _review(self, action_id: int, answer: HumanAnswer) -> None:
        await self.store.update(
            "UPDATE actions SET reviewer = ?, review_seconds = ?, review_note = ?, review_channel = ?, evidence = ? "
            "WHERE id = ?",
            (answer.reviewer, answer.seconds, answer.note, answer.channel, answer.evidence, action_id),
        )
        await self.store.call(lambda c: _chain_review(c, action_id, answer))

    async def _sample(
        self, cls: ActionClass, action_id: int, ok: bool, session_id: str, *, mark: bool = True
    ) -> standing.Transition | None:
        """One piece of evidence (inside the caller's transaction); see `_sample_on`."""
        return await self.store.call(lambda c: _sample_on(c, cls, action_id, ok, session_id, mark=mark))

    async def _outcome(
        self,
        ev: Evaluation,
        action_id: int,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        moved: standing.Transition | None = None,
        packet: EscalationPacket | None = None,
    ) -> ToolOutcome:
        d, p = ev.decision, ev.prepared
        public = {"drafted": "draft"}.get(status, status)
        message = {
            "executed": f"{p.tool} {p.target}: done",
            "failed": f"{p.tool} {p.target} failed: {error}",
            "declined": f"the human declined {p.tool} {p.target}; nothing was changed",
            "draft": (
                f"queued as draft {action_id} for human review; nothing was changed yet. Carry on with "
                f"other work; get_draft({action_id}) shows its state"
            ),
            "blocked": packet.markdown() if packet else "blocked",
        }[public]
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
            status=public,
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
            draft_id=action_id if public == "draft" else None,
            packet=packet,
            moved=move,
        )

    async def _packet(
        self, ev: Evaluation, action_id: int, intent: str | None, confidence: float | None, uncertainty: str | None
    ) -> EscalationPacket:
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
        return await self.packet_for(
            action_id,
            kind="stopped",
            action=action,
            intent=intent,
            draft=ev.prepared.preview,
            confidence=confidence,
            triggers=triggers,
            uncertainty=uncertainty,
            options=stopped_options(action_id, d.class_name, d.rule, triggers),
        )

    async def packet_for(self, action_id: int, **fields: Any) -> EscalationPacket:
        """A packet with this session's context: history, task, cost of delay, escalation budget."""
        rows = await self.store.all(
            "SELECT id, tool, target, class, status FROM actions WHERE session_id = ? AND id < ? "
            "ORDER BY id DESC LIMIT 10",
            (self.session_id, action_id),
        )
        history = [
            HistoryEntry(
                action_id=r["id"], tool=r["tool"], target=r["target"], action_class=r["class"], status=r["status"]
            )
            for r in reversed(rows)
        ]
        counts = await self.store.one(
            "SELECT sum(status = 'drafted'), sum(status IN ('blocked', 'escalated')) FROM actions "
            "WHERE session_id = ? AND id < ?",
            (self.session_id, action_id),
        )
        task = await contracts.open_task(self.store, self.session_id)
        return build_packet(
            action_id=action_id,
            session_id=self.session_id,
            history=history,
            created_at=time.time(),
            task=task.goal if task else None,
            queued_behind=counts[0] or 0,
            over_budget=(counts[1] or 0) >= self.policy.defaults.escalation_budget,
            **fields,
        )

    def class_of(self, name: str) -> ActionClass:
        # A class removed from the policy since drafting is judged as unclassified: conservative.
        return self.policy.get(name) or self.policy.unclassified

    def _named(self, name: str) -> ActionClass:
        cls = self.policy.get(name)
        if cls is None:
            known = ", ".join(sorted([*self.policy.classes, UNCLASSIFIED]))
            raise InvalidRequest(f"unknown class {name!r}; classes are: {known}")
        return cls

    async def view(self, action_id: int, wait_s: float = 0.0) -> DraftView:
        """One recorded action (draft or not); with `wait_s`, wait up to that long for a draft to be decided."""
        if not 0 <= wait_s <= 600:
            raise InvalidRequest(f"wait_s {wait_s} is out of range; expected 0 to 600 seconds")
        deadline = time.monotonic() + wait_s
        while True:
            row = await self.store.maybe("SELECT * FROM actions WHERE id = ?", (action_id,))
            if row is None:
                raise DraftNotFound(f"no action {action_id}; `ratchet queue` lists the drafts")
            if row["status"] not in ("drafted", "approving") or time.monotonic() >= deadline:
                return _view(row)
            await anyio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def keep_database_out_of_git(db_path: Path) -> None:
    """Keep the per-machine database out of the team's repository (the policies in .ratchet/ are shared)."""
    ignore = db_path.parent / ".gitignore"
    if db_path.parent.name == ".ratchet" and not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text("# the trust database is per machine; policies/ here is shared\nratchet.db*\n")


def _finish_on(
    conn: sqlite3.Connection,
    action_id: int,
    status: str,
    result: dict[str, Any] | None,
    error: str | None,
    *,
    answer: HumanAnswer | None = None,
    sample: bool | None = None,
) -> None:
    """The outcome, the review and the sample label of an action."""
    # A finished action never runs again: its arguments are kept redacted, and a file's content not at all.
    keep_args_on(conn, action_id=action_id)
    conn.execute(
        "UPDATE actions SET status = ?, result_json = ?, error = ?, finished_at = ?, "
        "reviewer = coalesce(?, reviewer), "
        "review_seconds = coalesce(?, review_seconds), review_note = coalesce(?, review_note), "
        "review_channel = coalesce(?, review_channel), evidence = coalesce(?, evidence), "
        "edited = max(edited, ?), sample = coalesce(?, sample) WHERE id = ?",
        (
            status,
            redact(json.dumps(result)) if result is not None else None,
            error and redact(error),
            time.time(),
            answer.reviewer if answer else None,
            answer.seconds if answer else None,
            answer.note if answer else None,
            answer.channel if answer else None,
            answer.evidence if answer else None,
            1 if answer and answer.edited else 0,
            None if sample is None else "success" if sample else "failure",
            action_id,
        ),
    )
    if answer is not None:
        _chain_review(conn, action_id, answer)


def _chain_review(conn: sqlite3.Connection, action_id: int, answer: HumanAnswer) -> None:
    """A human's answer goes into the hash chain of reviews (record/chain.py)."""
    kind = "accept" if answer.accepted else "refuse"
    chain.add_review(conn, action_id, time.time(), kind, answer.reviewer, answer.seconds, answer.note)


def keep_args_on(conn: sqlite3.Connection, *, action_id: int) -> None:
    """Replace an action's arguments by what the record keeps once it cannot run: redacted, and for a
    write or an edit its path, hash and size instead of the content (operations.kept_args)."""
    # Only a draft's arguments are kept raw (to run exactly as drafted); every other row's were
    # reduced and redacted when it was inserted, so the execution path pays nothing here.
    row = conn.execute("SELECT tool, args_json FROM actions WHERE id = ? AND route = 'draft'", (action_id,)).fetchone()
    if row is None:
        return
    tool, raw = row[0], row[1]
    try:
        args = json.loads(raw)
    except ValueError:
        args = None
    kept = redact(json.dumps(kept_args(tool, args))) if isinstance(args, dict) else redact(raw)
    if kept != raw:
        conn.execute("UPDATE actions SET args_json = ? WHERE id = ?", (kept, action_id))


def _sample_on(
    conn: sqlite3.Connection, cls: ActionClass, action_id: int, ok: bool, session_id: str, *, mark: bool = True
) -> standing.Transition | None:
    """One piece of evidence: the window, the session's failure streak, and any move it causes."""
    if mark:
        conn.execute("UPDATE actions SET sample = ? WHERE id = ?", ("success" if ok else "failure", action_id))
    if session_id != CLI_SESSION:
        conn.execute(
            "INSERT INTO streaks (session_id, class, failures) VALUES (?, ?, ?) ON CONFLICT (session_id, class) "
            "DO UPDATE SET failures = CASE WHEN ? THEN 0 ELSE failures + 1 END",
            (session_id, cls.name, 0 if ok else 1, ok),
        )
    return standing.apply_sample(conn, cls, action_id, ok)


def _remember_on(conn: sqlite3.Connection, cls: ActionClass, prepared: Prepared) -> None:
    """Record what a class has now run, for its novelty trigger."""
    if cls.novelty:
        keys = [(cls.name, key) for key in contracts.novelty_keys(prepared.subject)]
        conn.executemany("INSERT OR IGNORE INTO seen (class, key) VALUES (?, ?)", keys)


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


def _view(row: Any) -> DraftView:
    return DraftView(
        action_id=row["id"],
        status=row["status"],
        tool=row["tool"],
        target=row["target"],
        action_class=row["class"],
        rule=row["rule"],
        class_level=row["class_level"],
        level=row["level"],
        intent=row["intent"],
        confidence=row["confidence"],
        preview=row["preview"],
        triggers=[TriggerInfo(**t) for t in json.loads(row["triggers_json"])],
        created_at=row["created_at"],
        session_id=row["session_id"],
        reviewer=row["reviewer"],
        review_seconds=row["review_seconds"],
        review_note=row["review_note"],
        edited=bool(row["edited"]),
        error=row["error"],
        result=json.loads(row["result_json"]) if row["result_json"] else None,
        has_packet=row["packet_json"] is not None,
    )
