"""What the engine's parts share: the setting they act in, a decided call, and a human's answer.

See engine/__init__.py for the whole picture. The parts (engine/decide.py, engine/carry.py and the
modules a call goes through after it, engine/human.py, engine/views.py) each hold the same `Setting`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ratchet.errors import InvalidRequest, StoreError
from ratchet.identity import current as identity_of_process
from ratchet.operations import KeepCallback, OpContext, Prepared, ProgressCallback, SpawnCallback, Workspace
from ratchet.policy.limits import Ceiling
from ratchet.policy.model import UNCLASSIFIED, ActionClass, Policy
from ratchet.record.actions import Review
from ratchet.record.content import ContentStore
from ratchet.record.store import Store, beside
from ratchet.rules import provenance
from ratchet.rules.gate import Decision
from ratchet.rules.settle import CLI_SESSION

log = logging.getLogger("ratchet")


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
    # The action id of the intent recorded with the decision (engine/decide.py's `Claim`), if it was.
    claimed: int | None = None

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
    # Who answered, when not this process (identity.py): an approval carried out by its origin machine
    # was given by the human who approved it elsewhere.
    identity: str | None = None

    def judged(self, cls: ActionClass, preview: str, hidden: int) -> HumanAnswer:
        """This answer with its evidence: counted, unverified or unanswered (`hidden`: the changed lines
        the preview folds away, as recorded; None reads the preview's marker)."""
        evidence = provenance.assess(
            accepted=self.accepted,
            channel=self.channel,
            seconds=self.seconds,
            preview=preview,
            promotion_evidence=cls.promotion_evidence,
            dismissed=self.dismissed,
            hidden=hidden,
        )
        return dataclasses.replace(self, evidence=evidence)

    def review(self, identity: str) -> Review:
        """The answer as the record keeps it, given by `identity` (the answering process's, identity.py)
        unless the answer names who gave it."""
        who = self.identity or identity
        return Review(
            self.accepted, self.reviewer, self.note, self.seconds, self.channel, self.evidence, self.edited, who
        )


@dataclass
class Setting:
    """One workspace, one policy, one trust database, one session: what every part of the engine acts in."""

    workspace: Workspace
    policy: Policy
    store: Store
    session_id: str
    # When each question was put to a client, and the clock that times human answers (shared by every
    # session of one engine).
    answers: provenance.AnswerClock = field(default_factory=provenance.AnswerClock)
    # Who this process acts as (ratchet/identity.py), read from its own environment once, when it opens:
    # recorded on every action it records and every answer given through it; never from a tool's arguments.
    identity: str = field(default_factory=identity_of_process)
    # Whether this process may record a human's answer: False when its database role is the agent's
    # (record/roles.py); then a confirmation is queued as a draft and approved drafts wait for a reviewer.
    answers_here: bool = True
    # With database roles (record/roles.py), the person this process's login is: the record names it on every
    # action the login inserts, and this process carries out only drafts that person's logins recorded.
    login_person: str | None = None
    # The first limit check (policy/limits.py): fixed for the policy this engine was opened with.
    ceiling: Ceiling = field(init=False)

    def __post_init__(self) -> None:
        self.ceiling = Ceiling(self.policy.defaults.limits, self.policy.classes.values(), self.policy.defaults_file)

    def op_context(
        self,
        progress: ProgressCallback | None = None,
        cls: ActionClass | None = None,
        on_spawn: SpawnCallback | None = None,
        *,
        approved: bool = False,
    ) -> OpContext:
        """What operations get: the confined workspace, the policy's command settings, a progress sink,
        the loosest limits any class allows (a call over them is refused before any work), and the
        deciding class's sandbox settings."""
        base = OpContext(self.workspace, self.policy.defaults.commands, progress, ceiling=self.ceiling)
        if cls is None:
            return base
        keep = None if cls.secret else self.keeper()
        return dataclasses.replace(
            base,
            sandbox=cls.sandbox,
            network=cls.network,
            profile=cls.profile,
            approved=approved,
            on_spawn=on_spawn,
            keep=keep,
        )

    @cached_property
    def content(self) -> ContentStore:
        """The undo content store beside the trust database, bounded by `[defaults.undo]`."""
        return ContentStore.beside(beside(self.store.path, self.workspace.root), self.policy.defaults.undo)

    def keeper(self) -> KeepCallback:
        """What a write or an edit calls with the file's prior content before replacing it.

        A store that cannot be written (a full disk) does not stop the change: the change runs, it is
        not undoable, and `ratchet undo` says nothing was kept.
        """

        def keep(token: str, rel: str, prior: bytes | None, mode: int | None, after: str) -> None:
            try:
                self.content.keep(int(token), rel, prior, mode, after)
            except (StoreError, ValueError) as exc:
                log.warning("ratchet: the prior content of %s was not kept for undo: %s", rel, exc)

        return keep

    def class_of(self, name: str) -> ActionClass:
        """A recorded class by name; one removed from the policy since is judged as unclassified (conservative)."""
        return self.policy.get(name) or self.policy.unclassified

    def named(self, name: str) -> ActionClass:
        """A class of the policy by name; InvalidRequest lists the classes."""
        cls = self.policy.get(name)
        if cls is None:
            known = ", ".join(sorted([*self.policy.classes, UNCLASSIFIED]))
            raise InvalidRequest(f"unknown class {name!r}; classes are: {known}")
        return cls

    def streak_session(self, session_id: str) -> str | None:
        """The session whose failure streak a sample counts in (the human's CLI keeps none)."""
        return None if session_id == CLI_SESSION else session_id


def keep_database_out_of_git(db_path: Path) -> None:
    """Keep the per-machine database and the undo content store (prior versions of files, which may hold
    what a later change removed) out of the team's repository (the policies in .ratchet/ are shared).
    An ignore file written before the content store existed gets the missing line."""
    ignore = db_path.parent / ".gitignore"
    if db_path.parent.name != ".ratchet":
        return
    wanted = [f"{db_path.name}*", "content/"]
    with contextlib.suppress(OSError):
        if not ignore.exists():
            ignore.write_text("# the trust database and undo content are per machine; policies/ here is shared\n")
        have = ignore.read_text().splitlines()
        missing = [
            line for line in wanted if line not in have and not (line == "ratchet.db*" and "ratchet.db*" in have)
        ]
        if missing:
            text = ignore.read_text()
            ignore.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(missing) + "\n")


def channel_of(reviewer: str, channel: str | None) -> str | None:
    """The channel an answer came through: given, or the reviewer when it names a channel."""
    if channel is not None:
        return channel
    return reviewer if reviewer in provenance.CHANNELS else None


__all__ = ["CLI_SESSION", "Evaluation", "HumanAnswer", "Setting", "keep_database_out_of_git"]
