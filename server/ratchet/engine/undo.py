"""Undo: put back what an action changed, from what Ratchet kept when it made the change.

- A file write or edit is undone from the content store (record/content.py): the exact prior bytes
  and permission bits, or the file removed when it did not exist before. Only while the file still
  holds what the action wrote; otherwise the undo is refused, naming the later recorded action on the
  same target (its id, tool and session) or saying it changed outside Ratchet, unless `force`.
- A commit made through git_commit is undone with a new revert commit, queued as a draft for a human
  to approve (`ratchet approve`): the original stays in history and the revert lands on top.
- A command cannot be undone (Ratchet does not know everything it changed), nor a push (the commits
  are on the remote, where others may have them): both are refused, saying so.

An undo counts as a complaint about the action (the same path as `ratchet complain`, so the class
moves exactly as a complaint moves it) unless `complaint=False`. It is a human's act: the agent has
no undo tool, and can only ask for one with request_handoff. A verification check that fails on a
class with `undo_on_failure` calls the same `Engine.undo` with its own reviewer and channel and
`complaint=False`, its failure being already counted as the check's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ratchet.engine.carry import Carrier
from ratchet.engine.core import Evaluation, Setting, channel_of
from ratchet.errors import DraftNotFound, DraftStale, InvalidRequest, StoreError
from ratchet.operations import operation, restore_file
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.record import actions, integrity, standing, undos
from ratchet.record.content import Dropped, Kept
from ratchet.record.lifecycle import Status
from ratchet.rules.gate import Decision, Route, Trigger

FILE_TOOLS = ("write_file", "edit_file")
REVERT_TOOL = "git_revert"


@dataclass(frozen=True)
class UndoOutcome:
    """What an undo did: the file put back, or the revert draft queued; and any complaint it made."""

    action_id: int
    tool: str
    target: str
    action_class: str
    done: bool  # False while a revert draft waits for approval
    detail: str
    forced: bool
    revert_id: int | None
    complaint: bool
    moved: standing.Transition | None

    def line(self) -> str:
        """What the CLI prints."""
        text = f"action {self.action_id} ({self.tool} {self.target}): {self.detail}"
        if self.complaint:
            text += f"; counted as a complaint against class {self.action_class}"
        return text + (f"; {self.moved.line()}" if self.moved is not None else "")


# Records a complaint inside a unit of work: (connection, evidence class, action id, reason) -> any move.
Complain = Callable[[sqlite3.Connection, ActionClass, int, str], standing.Transition | None]


class Undoer:
    """Undoes recorded actions for the human (or for a failed check), and records each undo.

    `complain` is the human side's complaint, so an undo moves the class exactly as a complaint does.
    """

    def __init__(self, setting: Setting, carrier: Carrier, complain: Complain) -> None:
        self.setting = setting
        self.carrier = carrier
        self.complain = complain

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
        """Undo action `action_id` (see the module docstring); InvalidRequest/DraftStale say why not."""
        s = self.setting
        via = channel_of(reviewer, channel)
        why = (reason or "").strip() or f"undone by {reviewer}"
        s.ceiling.text("undo", "the reason", why)

        def read(conn: sqlite3.Connection) -> tuple[dict[str, Any] | None, undos.Undo | None]:
            return actions.action(conn, action_id), undos.of_actions(conn, [action_id]).get(action_id)

        row, earlier = await s.store.call(read)
        if row is None:
            raise DraftNotFound(f"no action {action_id}; `ratchet history` lists actions")
        refuse_undoable(row)
        if earlier is not None and earlier.state != "not done":
            raise InvalidRequest(f"action {action_id} is already undone ({earlier.line()})")
        cls = s.class_of(row["class"])
        if row["tool"] == "git_commit":
            revert_id, detail = await self._queue_revert(row, cls, why)
            return await self._record(row, why, reviewer, via, force, complaint, revert_id, detail)
        detail = await self._restore(row, cls, force)
        return await self._record(row, why, reviewer, via, force, complaint, None, detail)

    async def _restore(self, row: dict[str, Any], cls: ActionClass, force: bool) -> str:
        s = self.setting
        action_id = int(row["id"])
        entry = await _entry(s, action_id)
        if entry is None:
            if cls.secret:
                raise InvalidRequest(
                    f"action {action_id} cannot be undone: class {cls.name} is marked secret, so Ratchet "
                    "keeps none of its content (no prior version was kept)"
                )
            raise InvalidRequest(
                f"action {action_id} cannot be undone: no prior content was kept for it (it ran before "
                "Ratchet kept prior versions, or the content store could not be written)"
            )
        if isinstance(entry, Dropped):
            raise InvalidRequest(
                f"action {action_id} cannot be undone: its prior content of {entry.path} was dropped from "
                f"the content store: {entry.reason}"
            )
        prior = s.content.prior_bytes(entry)
        try:
            return restore_file(
                s.workspace,
                entry.path,
                prior,
                entry.mode,
                expect=None if force else entry.after,
                token=f"undo-{action_id}",
            )
        except DraftStale:
            later = await s.store.call(lambda c: undos.later_change(c, action_id, str(row["target"])))
            by = (
                f"changed by action {later['id']} ({later['tool']}, session {later['session_id']}, {later['status']})"
                if later is not None
                else "changed outside Ratchet"
            )
            raise DraftStale(
                f"{entry.path} changed since action {action_id} wrote it ({by}); nothing was restored. "
                "`ratchet undo --force` restores it anyway, discarding that change"
            ) from None

    async def _queue_revert(self, row: dict[str, Any], cls: ActionClass, why: str) -> tuple[int, str]:
        """Queue `git revert <sha>` of the action's commit as a draft a human approves; its id and a line."""
        s = self.setting
        action_id = int(row["id"])
        result = json.loads(row["result_json"] or "{}")
        sha = result.get("sha")
        if not isinstance(sha, str):
            raise InvalidRequest(f"action {action_id} recorded no commit sha; it cannot be reverted")
        prepared = await operation(REVERT_TOOL).prepare(s.op_context(), {"sha": sha})

        def level(conn: sqlite3.Connection) -> Level:
            rec = integrity.recorded(conn, cls)
            return integrity.effective(cls, rec.level, rec.pinned, integrity.freeze_of(conn))

        current = await s.store.call(level)
        trigger = Trigger("undo", f"reverts commit {sha[:10]} of action {action_id}; a human approves it", Level.DRAFT)
        decision = Decision(
            cls.name, f"undo of action {action_id}", current, Level.DRAFT, Route.DRAFT, (trigger,), False
        )
        outcome = await self.carrier.carry_out(
            Evaluation(prepared, cls, decision), intent=f"undo action {action_id}: {why}"
        )
        draft = outcome.action_id
        return draft, (
            f"revert of commit {sha[:10]} queued as draft {draft}; `ratchet approve {draft}` makes the revert commit"
        )

    async def _record(
        self,
        row: dict[str, Any],
        why: str,
        reviewer: str,
        channel: str | None,
        force: bool,
        complaint: bool,
        revert_id: int | None,
        detail: str,
    ) -> UndoOutcome:
        s = self.setting
        action_id = int(row["id"])
        evidence = s.class_of(row["evidence_class"] or row["class"])  # the class whose window holds its sample

        def record(conn: sqlite3.Connection) -> tuple[bool, standing.Transition | None]:
            counted, moved = False, None
            if complaint and actions.first_complaint(conn, action_id) is None:
                moved, counted = self.complain(conn, evidence, action_id, f"undone: {why}"), True
            undos.record(
                conn,
                action_id,
                why,
                reviewer,
                channel,
                forced=force,
                complaint=counted,
                revert_id=revert_id,
                detail={"detail": detail},
            )
            return counted, moved

        counted, moved = await s.store.run(record)
        return UndoOutcome(
            action_id,
            str(row["tool"]),
            str(row["target"]),
            evidence.name,
            revert_id is None,
            detail,
            force,
            revert_id,
            counted,
            moved,
        )


async def _entry(setting: Setting, action_id: int) -> Kept | Dropped | None:
    try:
        return setting.content.get(action_id)
    except StoreError as exc:
        raise InvalidRequest(f"action {action_id} cannot be undone: {exc}") from exc


def refuse_undoable(row: dict[str, Any]) -> None:
    """Refuse, saying why, an action that Ratchet cannot undo: a command, a push, a read, one that did not run."""
    action_id, tool, status = row["id"], row["tool"], row["status"]
    if tool == "run_command":
        raise InvalidRequest(
            f"a command cannot be undone: action {action_id} ran `{row['target']}`, and Ratchet does not know "
            f"everything a command changed. Put it right by hand (or ask the agent to); `ratchet complain "
            f"{action_id}` records that it was wrong"
        )
    if tool == "git_push":
        raise InvalidRequest(
            f"a push cannot be undone by Ratchet: the commits of action {action_id} are on the remote, where "
            "others may have them; undo the commit instead (a revert, pushed in turn)"
        )
    if tool not in (*FILE_TOOLS, "git_commit"):
        raise InvalidRequest(
            f"action {action_id} is a {tool}, which Ratchet does not undo; file writes, edits and commits can be"
        )
    if status != Status.EXECUTED:
        raise InvalidRequest(f"action {action_id} is {status}; only an action that ran can be undone")


__all__ = ["FILE_TOOLS", "REVERT_TOOL", "UndoOutcome", "Undoer", "refuse_undoable"]
