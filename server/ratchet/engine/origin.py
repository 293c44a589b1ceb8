"""Execution happens where the workspace lives: a draft approved on another machine waits for its origin.

A shared record (`--db postgresql://...`) lets an agent's draft queued on machine A be approved by a
human's CLI on machine B. B must not run it: B's files are not A's. So every action records its origin,
the host (`$RATCHET_HOST` if set, for containers and tests that play several machines; else the host
name) and the workspace's absolute path. Approving a draft of another origin records the human's
decision and nothing else: the draft becomes `approved` with the approval kept (reviewer, note,
channel, review time, the human's own content), and the origin is woken (record/origins.py).

The origin carries it out: a running `ratchet serve` there (`carrying_out`, on PostgreSQL woken at
once by `NOTIFY`, otherwise by a poll every `POLL_S` seconds), or any `ratchet approve` run there.
Each claims the draft `approved -> approving` in one unit of work, so it runs once, then runs the same
path a local approval does (HumanSide.approve), with the kept approval: the evidence is recorded as
if the human had approved it there. An origin that never comes back leaves the draft `approved`, in the
queue, where `ratchet reject` can still withdraw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from ratchet.engine.core import Setting, channel_of
from ratchet.engine.human import HumanSide
from ratchet.engine.views import Views
from ratchet.engine.where import HOST_ENV, Origin, this_host, waiting_line
from ratchet.errors import DraftAlreadyResolved, DraftChanged, InvalidRequest, RatchetError
from ratchet.operations import operation
from ratchet.record import actions, origins
from ratchet.record.lifecycle import Status
from ratchet.record.store import PostgresUrl
from ratchet.results import DraftView
from ratchet.rules import shown

log = logging.getLogger("ratchet")

# How often a running server looks for approvals of its origin when nothing woke it (SQLite has no
# notifications; on PostgreSQL this covers a notification lost while the listener reconnected).
POLL_S = 2.0


@dataclass(frozen=True)
class Approval:
    """A human's approval as its origin will carry it out (the arguments of HumanSide.approve)."""

    reviewer: str
    note: str | None
    seconds: float | None
    channel: str | None
    content: str | None
    identity: str | None = None  # who approved it (identity.py), on the machine where they did
    digest: str | None = None  # the change as it was when approved (rules/shown.py): the origin runs only that

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Approval:
        data = json.loads(text)
        return cls(
            data["reviewer"],
            data["note"],
            data["seconds"],
            data["channel"],
            data["content"],
            data.get("identity"),
            data.get("digest"),
        )


class Origins:
    """Defers approvals of other origins, and carries out the approvals of this one."""

    def __init__(self, setting: Setting, human: HumanSide, views: Views) -> None:
        self.setting = setting
        self.human = human
        self.views = views
        self.here = Origin.of(setting)

    async def defer(
        self,
        action_id: int,
        *,
        reviewer: str,
        content: str | None,
        note: str | None,
        seconds: float | None,
        channel: str | None,
        expect: str | None = None,
    ) -> DraftView | None:
        """If the draft's origin is another (host, workspace), record the approval for it and return the
        draft as it now stands (`approved`); None when the draft is this origin's (run it here) or no
        queued draft at all (the approval says why). `expect`: the digest the person was shown; the approval
        is refused when the draft no longer has it, and the origin runs it only while it still does."""
        s = self.setting
        via = channel_of(reviewer, channel)
        now = s.answers.now()

        def record(conn: Any) -> dict[str, Any] | None:
            row = actions.action(conn, action_id)
            if row is None:
                return None
            if row["status"] == Status.APPROVED:
                raise DraftAlreadyResolved(f"action {action_id} is {waiting_line(row)}; a draft runs at most once")
            origin = Origin.of_row(row)
            if row["status"] == Status.DRAFT and origin == self.here:
                self.refuse_foreign(row)
            if row["status"] != Status.DRAFT or origin is None or origin == self.here:
                return None
            # require_other_reviewer is decided here, by who approves, not later by the origin's process.
            self.human.refuse_own_approval(row, s.identity)
            if content is not None and operation(row["tool"]).with_content is None:
                raise InvalidRequest(f"--content applies to file drafts; draft {action_id} is {row['tool']}")
            now_digest = shown.of_row(row)
            if expect is not None and now_digest != shown.normal(expect):
                raise DraftChanged(
                    f"draft {action_id} is not what was shown: its digest is now {now_digest}, the approval was "
                    f"given on {shown.normal(expect)}; nothing was approved. `ratchet show {action_id}` shows it now"
                )
            # The review time is taken now, as a local approval takes it: at the CLI the time since drafting.
            took = seconds if seconds is not None or via != "cli" else max(0.0, now - float(row["created_at"]))
            approval = Approval(reviewer, note, took, via, content, s.identity, now_digest)
            review = actions.Review(True, reviewer, note, took, via, None, content is not None, s.identity)
            if not origins.approve_elsewhere(conn, action_id, approval.to_json(), review):
                return None
            return actions.action(conn, action_id)

        row = await s.store.run(record)
        if row is None:
            return None
        log.info("ratchet: draft %s approved here; %s", action_id, waiting_line(row))
        return self.views.draft_view(row)

    def foreign(self, row: dict[str, Any]) -> str | None:
        """Why this process must not carry out a draft that names its origin, or None: with database roles, a
        draft whose inserting login is not one of this person's (record/roles.py) only claims this origin."""
        mine = self.setting.login_person
        if mine is None or row["recorded_by"] == mine:
            return None
        return (
            f"draft {row['id']} names this machine and workspace as its origin, but it was recorded by "
            f"{row['recorded_by']}'s database login, not one of {mine}'s: it is not carried out here. Reject it, "
            f"or have it approved where {row['recorded_by']} works (ratchet db roles --person names whose logins "
            "are whose)"
        )

    def refuse_foreign(self, row: dict[str, Any]) -> None:
        """Refuse to run here a draft another person's login recorded with this origin."""
        why = self.foreign(row)
        if why is not None:
            raise InvalidRequest(why)

    async def carry_out(self) -> list[DraftView]:
        """Run every draft approved elsewhere whose origin is this one, each exactly once (a draft another
        process of this origin claimed first is skipped); what became of those this process ran."""
        here = self.here
        rows = await self.setting.store.call(lambda conn: origins.waiting_for(conn, here.host, here.workspace))
        done = []
        for row in rows:
            if row["approval_json"] is None:
                continue
            why = self.foreign(row)
            if why is not None:
                log.warning("ratchet: %s", why)
                continue
            a = Approval.from_json(row["approval_json"])
            try:
                view = await self.human.approve(
                    int(row["id"]),
                    reviewer=a.reviewer,
                    content=a.content,
                    note=a.note,
                    seconds=a.seconds,
                    channel=a.channel,
                    claim=Status.APPROVED,
                    approver=a.identity,
                    expect=a.digest,
                )
            except DraftAlreadyResolved:
                continue  # another process of this origin claimed it, or a human withdrew it
            except RatchetError as exc:
                # Stale or failed: recorded on the draft by the approval itself; the agent reads it there.
                log.warning("ratchet: draft %s approved elsewhere did not run: %s", row["id"], exc)
                done.append(await self.views.view(int(row["id"])))
                continue
            done.append(view)
        return done


@contextlib.asynccontextmanager
async def carrying_out(origins_: Origins) -> AsyncIterator[None]:
    """While the block runs, carry out the approvals of this origin as they arrive: at once, then when a
    PostgreSQL `NOTIFY` wakes it, and every `POLL_S` seconds."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(woken.set)

    location = origins_.setting.store.path
    listener = origins.Listener(location.url, wake) if isinstance(location, PostgresUrl) else None

    async def run() -> None:
        while True:
            woken.clear()
            try:
                await origins_.carry_out()
            except RatchetError as exc:  # the record unreachable for a while: try again at the next wake
                log.warning("ratchet: carrying out approvals of this origin: %s", exc)
            with anyio.move_on_after(POLL_S):
                await woken.wait()

    if listener is not None:
        listener.start()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        if listener is not None:
            await anyio.to_thread.run_sync(origins.stop_quietly, listener)


__all__ = ["HOST_ENV", "POLL_S", "Approval", "Origin", "Origins", "carrying_out", "this_host", "waiting_line"]
