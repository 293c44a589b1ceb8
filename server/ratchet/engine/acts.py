"""What a person does through the engine: approve, reject, complain, undo, pin, freeze, and the drafts
approved elsewhere carried out here. Nothing here promotes (engine/human.py)."""

from __future__ import annotations

import contextlib

import anyio

from ratchet import telemetry
from ratchet.engine.core import Setting
from ratchet.engine.human import ComplaintOutcome, HumanSide
from ratchet.engine.origin import Origins, carrying_out
from ratchet.engine.undo import UndoOutcome
from ratchet.engine.whole import WholeDiff, check_whole, whole_diff
from ratchet.errors import ReviewerRoleRequired
from ratchet.policy.levels import Level
from ratchet.record import standing
from ratchet.record.content import GcReport
from ratchet.results import DraftView


class PersonSide:
    """The engine's methods for a person's acts (the parts are set by `Engine`)."""

    setting: Setting
    human: HumanSide
    origins: Origins

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
        complained = await self.human.complain(action_id, reason)
        telemetry.moved(self.setting, [complained.moved])
        return complained

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
        undone = await self.human.undo(
            action_id, reason, force=force, complaint=complaint, reviewer=reviewer, channel=channel
        )
        telemetry.moved(self.setting, [undone.moved])
        return undone

    async def gc(self) -> GcReport:
        """Drop prior versions past the content store's bounds (`[defaults.undo]`), oldest first."""
        return await anyio.to_thread.run_sync(self.setting.content.gc)

    async def freeze(self, level: Level, reason: str, until: float | None) -> list[standing.Transition]:
        """A human caps every class at `level` at once."""
        self.reviewer_side("freeze")
        moves = await self.human.freeze(level, reason, until)
        telemetry.moved(self.setting, moves)
        return moves

    async def unfreeze(self, reason: str) -> list[standing.Transition]:
        """A human lifts the freeze."""
        self.reviewer_side("unfreeze")
        moves = await self.human.unfreeze(reason)
        telemetry.moved(self.setting, moves)
        return moves

    async def demote(self, name: str, reason: str, to: Level | None = None) -> standing.Transition:
        """A human lowers a class."""
        self.reviewer_side("demote a class")
        moved = await self.human.demote(name, reason, to)
        telemetry.moved(self.setting, [moved])
        return moved

    async def pin(self, name: str, level: Level | None, reason: str) -> standing.Transition:
        """A human caps a class (or lifts the cap with None)."""
        self.reviewer_side("pin a class")
        moved = await self.human.pin(name, level, reason)
        telemetry.moved(self.setting, [moved])
        return moved

    def carrying_out(self) -> contextlib.AbstractAsyncContextManager[None]:
        """While the block runs, carry out the drafts approved elsewhere whose origin is this one (engine/origin.py);
        under the agent's database role nothing is (a reviewer-side `ratchet approve --pending` runs them)."""
        if not self.setting.answers_here:
            return contextlib.nullcontext()
        return carrying_out(self.origins)
