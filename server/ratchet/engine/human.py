"""The human's side of the engine: approve, reject, complain, demote, pin. Nothing here promotes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ratchet.engine.core import Core, HumanAnswer, _view, keep_args_on
from ratchet.errors import DraftAlreadyResolved, DraftNotFound, DraftStale, InvalidRequest, RatchetError
from ratchet.operations import operation
from ratchet.policy.levels import Level
from ratchet.record import chain, standing
from ratchet.results import DraftView
from ratchet.rules import provenance


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


class HumanSide(Core):
    """What a human (through the CLI or the client's dialog) does to drafts, actions and classes."""

    async def approve(
        self,
        action_id: int,
        *,
        reviewer: str = "cli",
        content: str | None = None,
        note: str | None = None,
        seconds: float | None = None,
        channel: str | None = None,
    ) -> DraftView:
        """Run a queued draft exactly once, exactly as drafted (or with the human's `content`).

        `seconds` is the review time when the channel timed it (a dialog: from the question to the
        answer); at the CLI by default the time since drafting. `channel` defaults to the reviewer when it names
        one (rules/provenance.py): an approval faster than the reading rule runs but is not a sample.
        """
        row = await self._claim(action_id)
        cls = self.class_of(row["class"])
        evidence = self.class_of(row["evidence_class"] or row["class"])
        args = json.loads(row["args_json"])
        op = operation(row["tool"])
        try:
            if await op.fingerprint(self.op_context(), args) != row["fingerprint"]:
                raise DraftStale(
                    f"draft {action_id}: {row['target']} changed since it was drafted; "
                    "nothing was written. Ask the agent to redo it"
                )
            edited = content is not None
            if edited:
                if row["tool"] not in ("write_file", "edit_file"):
                    raise InvalidRequest(f"--content applies to file drafts; draft {action_id} is {row['tool']}")
                prepared = await operation("write_file").prepare(
                    self.op_context(), {"path": args["path"], "content": content}
                )
            else:
                prepared = await op.prepare(self.op_context(), args)
        except RatchetError as exc:
            async with self.store.transaction():
                await self._finish(action_id, "stale" if isinstance(exc, DraftStale) else "failed", None, str(exc))
            raise
        status, result, error, ok = await self._run(prepared, action_id, cls)
        answer = HumanAnswer(
            True,
            reviewer,
            note,
            self._review_time(row, seconds, _channel(reviewer, channel)),
            channel=_channel(reviewer, channel),
            edited=edited,
        ).judged(evidence, row["preview"])
        # Approval with edits is rework: the draft was not good enough as it stood.
        sample = None if ok is None else ok and not edited
        if sample is True and not answer.counts:
            sample = None  # it ran, but the approval is no evidence that a human read it
        async with self.store.transaction():
            await self._finish(action_id, status, result, error, answer=answer, sample=sample)
            if sample is not None:
                await self._sample(evidence, action_id, sample, row["session_id"], mark=False)
            if status == "executed":
                await self._remember(cls, prepared)
        return await self.view(action_id)

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
        async with self.store.transaction():
            row = await self.store.maybe("SELECT * FROM actions WHERE id = ?", (action_id,))
            if row is not None and row["status"] == "drafted":
                via = _channel(reviewer, channel)
                evidence = self.class_of(row["evidence_class"] or row["class"])
                answer = HumanAnswer(False, reviewer, reason, self._review_time(row, seconds, via), channel=via).judged(
                    evidence, row["preview"]
                )
                if answer.evidence == provenance.UNANSWERED:
                    await self.store.update(
                        "UPDATE actions SET review_channel = ?, review_seconds = ?, evidence = ? WHERE id = ?",
                        (answer.channel, answer.seconds, answer.evidence, action_id),
                    )
                    return _view(row)
            changed = await self.store.update(
                "UPDATE actions SET status = 'rejected', finished_at = ? WHERE id = ? AND status = 'drafted'",
                (time.time(), action_id),
            )
            if not changed:
                raise self._not_queued(action_id, row)
            assert row is not None
            await self.store.call(lambda c: keep_args_on(c, action_id=action_id))  # the content leaves with the queue
            await self._review(action_id, answer)
            await self._sample(evidence, action_id, False, row["session_id"])
        return await self.view(action_id)

    def _review_time(self, row: Any, seconds: float | None, channel: str | None) -> float | None:
        """The given review time; at the CLI by default the time since drafting; else None (untimed)."""
        if seconds is not None or channel != "cli":
            return seconds
        return max(0.0, self.answers.now() - float(row["created_at"]))

    async def _claim(self, action_id: int) -> Any:
        """Take a draft for execution atomically: a draft approved twice runs once."""
        async with self.store.transaction():
            changed = await self.store.update(
                "UPDATE actions SET status = 'approving', pid = ? WHERE id = ? AND status = 'drafted'",
                (os.getpid(), action_id),
            )
            row = await self.store.maybe("SELECT * FROM actions WHERE id = ?", (action_id,))
        if not changed:
            raise self._not_queued(action_id, row)
        return row

    @staticmethod
    def _not_queued(action_id: int, row: Any) -> RatchetError:
        if row is None:
            return DraftNotFound(f"no action {action_id}; `ratchet queue` lists the drafts")
        if row["packet_json"] is not None:  # stopped, never queued: it is answered, not approved
            return DraftAlreadyResolved(
                f"action {action_id} was stopped ({row['status']}), not queued as a draft: answer it with "
                f"`ratchet resolve {action_id} --option ...` (`ratchet show {action_id}` lists the options)"
            )
        return DraftAlreadyResolved(
            f"action {action_id} is {row['status']}, not a queued draft; a draft runs at most once"
        )

    async def complain(self, action_id: int, reason: str) -> ComplaintOutcome:
        """Record that an action that ran was wrong; the class pays for it (once per action).

        Where the class demotes on complaint and stands above its floor, it drops a rung; otherwise
        the action's sample becomes a failure in the class's window (see standing.complain).
        """
        row = await self.store.maybe("SELECT * FROM actions WHERE id = ?", (action_id,))
        if row is None:
            raise DraftNotFound(f"no action {action_id}; `ratchet history` lists actions")
        if row["status"] != "executed":
            raise InvalidRequest(f"action {action_id} is {row['status']}; complaints are about actions that ran")
        cls = self.class_of(row["evidence_class"] or row["class"])  # the class whose window holds its sample

        def record(conn: sqlite3.Connection) -> ComplaintOutcome:
            first = conn.execute(
                "SELECT at FROM complaints WHERE action_id = ? ORDER BY id LIMIT 1", (action_id,)
            ).fetchone()
            if first is not None:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first[0]))
                raise InvalidRequest(
                    f"action {action_id} already has a complaint (recorded {when}); an action is complained "
                    "about once. `ratchet explain` shows it"
                )
            now = time.time()
            conn.execute(
                "INSERT INTO complaints (action_id, at, reason, actor) VALUES (?, ?, ?, 'human')",
                (action_id, now, reason),
            )
            chain.add_review(conn, action_id, now, "complaint", "human", None, reason)
            conn.execute("UPDATE actions SET sample = 'complained' WHERE id = ?", (action_id,))
            moved = standing.complain(conn, cls, action_id, reason)
            demoted = moved is not None and moved.kind == "complaint"
            return ComplaintOutcome(action_id, cls.name, moved, failure=not demoted)

        return await self.store.run(record)

    async def freeze(self, level: Level, reason: str, until: float | None) -> list[standing.Transition]:
        """A human caps every class at `level` at once (until `until`, or until unfreeze)."""
        return await self.store.run(lambda c: standing.freeze(c, self.policy, level, reason, until))

    async def unfreeze(self, reason: str) -> list[standing.Transition]:
        """A human lifts the freeze: every class returns to its earned level, never above."""
        return await self.store.run(lambda c: standing.unfreeze(c, self.policy, reason))

    async def demote(self, name: str, reason: str, to: Level | None = None) -> standing.Transition:
        """A human lowers a class."""
        cls = self._named(name)
        return await self.store.run(lambda c: standing.human_demote(c, cls, reason, to))

    async def pin(self, name: str, level: Level | None, reason: str) -> standing.Transition:
        """A human caps a class (or lifts the cap with None)."""
        cls = self._named(name)
        return await self.store.run(lambda c: standing.pin(c, cls, level, reason))


def _channel(reviewer: str, channel: str | None) -> str | None:
    """The channel an answer came through: given, or the reviewer when it names a channel."""
    if channel is not None:
        return channel
    return reviewer if reviewer in provenance.CHANNELS else None
