"""The engine every edge shares: evaluate a call, carry it out at its level, record everything.

The MCP server, the CLI, the hooks and the review page are thin edges over an `Engine`, and speak to
it through its methods alone (tests/test_engine_surface.py holds that): an agent's calls
(engine/calls.py), a person's acts (engine/acts.py) and what it shows (engine/reads.py). A call goes down these modules
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

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from ratchet import telemetry
from ratchet.engine.acts import PersonSide
from ratchet.engine.calls import CallSide
from ratchet.engine.carry import Carrier
from ratchet.engine.core import CLI_SESSION, Evaluation, HumanAnswer, Setting, keep_database_out_of_git
from ratchet.engine.decide import Decider
from ratchet.engine.external import External
from ratchet.engine.human import ComplaintOutcome, HumanSide
from ratchet.engine.origin import Origins
from ratchet.engine.reads import Reads
from ratchet.engine.undo import UndoOutcome
from ratchet.engine.verify import Verifier
from ratchet.engine.views import Views
from ratchet.engine.where import Origin
from ratchet.errors import PolicyError
from ratchet.operations import (
    Workspace,
    at_open,
    flush_notifications,
    guard_workspace,
    workspace_problem,
)
from ratchet.policy.guarded import guarded_paths
from ratchet.policy.load import load_policy, resolve_policy_dir
from ratchet.policy.model import ActionClass, Policy
from ratchet.record import chain, roles, standing
from ratchet.record.store import (
    Location,
    Store,
    beside,
    default_page_token_file,
    default_token_file,
    resolve_location,
)
from ratchet.rules import provenance

__all__ = ["CLI_SESSION", "ComplaintOutcome", "Engine", "Evaluation", "HumanAnswer", "UndoOutcome"]


class Engine(CallSide, PersonSide, Reads):
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
        telemetry.flush()  # a short-lived process (a hook, the CLI) hands its decisions over before it exits
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
        """The trust database: the engine's own, for its parts (and tests and benchmarks that look inside);
        no edge uses it (tests/test_engine_surface.py): what they need of the record is a method here."""
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
