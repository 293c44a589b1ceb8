"""Reading the record: class standings, the draft queue, history, transitions and one action."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import anyio

from ratchet.engine.core import Setting
from ratchet.engine.verify import view as check_view
from ratchet.engine.where import waiting_line
from ratchet.errors import DraftNotFound, InvalidRequest
from ratchet.operations import sandbox_status_async
from ratchet.policy.guarded import installation_inside
from ratchet.policy.levels import Level
from ratchet.record import actions, filters, integrity, standing, undos
from ratchet.record import checks as recorded_checks
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.integrity import Freeze
from ratchet.record.lifecycle import QUEUED, Status
from ratchet.record.store import ClassRow
from ratchet.results import ClassStatus, DraftView, TriggerInfo, TrustLevels
from ratchet.rules import shown
from ratchet.rules.gate import decide, no_sandbox_trigger
from ratchet.rules.trust import evidence, samples_to_promote


class Views:
    """Read-only views of what the engine has recorded."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    async def trust_levels(self) -> TrustLevels:
        """Every class, where it stands, its window, and what a call of it would do now."""
        policy = self.setting.policy
        classes = (*sorted(policy.classes.values(), key=lambda c: c.name), policy.unclassified)

        def read(
            conn: sqlite3.Connection,
        ) -> tuple[list[ClassRow], Freeze | None, tuple[int, list[str]], dict[str, tuple[int, int]], list[int]]:
            # The record, not the cache: a cache changed outside Ratchet is reported here too.
            found = [standing.current(conn, cls) for cls in classes]
            probation = [standing.probation_left(conn, cls, rec) for cls, (_, rec) in zip(classes, found, strict=True)]
            rows = [row for row, _ in found]
            return (
                rows,
                integrity.freeze_of(conn),
                integrity.tamper_records(conn),
                actions.not_evidence(conn),
                probation,
            )

        rows, freeze, (tampers, tamper_lines), not_evidence, probation = await self.setting.store.run(read)
        frozen = freeze if freeze is not None and freeze.active() else None
        sandbox = await sandbox_status_async()
        out = []
        for cls, row, left in zip(classes, rows, probation, strict=True):
            window = standing.window_of(row)
            ev = evidence(window, cls.trust)
            earned = Level.parse(row.level)
            pinned = None if row.pinned is None else Level.parse(row.pinned)
            capped = no_sandbox_trigger(cls, sandbox.available, sandbox.detail)
            extra = (() if frozen is None else (frozen.trigger(),)) + (() if capped is None else (capped,))
            decision = decide(cls, min(max(earned, cls.floor), cls.ceiling), pinned=pinned, extra=extra)
            needed = samples_to_promote(window, cls.trust) if earned < cls.ceiling else None
            nxt = (
                f"at ceiling {cls.ceiling.label}"
                if earned >= cls.ceiling
                else f"{needed} more successes in a row would promote"
                if needed is not None
                else "cannot promote from this window; needs more successes"
            )
            out.append(
                ClassStatus(
                    action_class=cls.name,
                    description=cls.description,
                    rule=cls.rule,
                    level=decision.level.label,
                    earned_level=earned.label,
                    pinned=None if pinned is None else pinned.label,
                    floor=cls.floor.label,
                    ceiling=cls.ceiling.label,
                    window_size=cls.trust.window_size,
                    samples=ev.n,
                    successes=ev.successes,
                    rate=ev.rate,
                    lower_bound=ev.lower,
                    drift=round(ev.drift, 3),
                    promote_at=cls.trust.promote_at,
                    next_promotion=nxt,
                    would=decision.route.value,
                    since=row.level_since,
                    capped_by=[TriggerInfo(**t.as_dict()) for t in decision.triggers],
                    unverified=not_evidence.get(cls.name, (0, 0))[0],
                    unanswered=not_evidence.get(cls.name, (0, 0))[1],
                    probation=left,
                )
            )
        shown = f"on ({sandbox.detail})" if sandbox.available else f"unavailable: {sandbox.detail}"
        inside = installation_inside(self.setting.workspace.root)
        if inside and sandbox.available:
            where = ", ".join(p.relative_to(self.setting.workspace.root).as_posix() for p in inside)
            shown += f"; Ratchet's own installation lies in the workspace ({where}): read-only to commands"
        return TrustLevels(
            classes=out,
            policy=str(policy.directory),
            policy_fingerprint=policy.fingerprint,
            sandbox=shown,
            freeze=None if frozen is None else frozen.detail(),
            tamper_records=tampers,
            tampering=tamper_lines,
        )

    async def queue(self, scope: ActionFilter = EVERYTHING) -> list[DraftView]:
        """Drafts waiting for a human (those `scope` keeps), oldest first."""
        return [self.draft_view(r) for r in await self.setting.store.call(lambda c: actions.queue(c, scope))]

    async def history(
        self,
        limit: int = 50,
        action_class: str | None = None,
        by: str | None = None,
        scope: ActionFilter = EVERYTHING,
    ) -> list[DraftView]:
        """Recent actions (recorded or reviewed by the identity `by`, when given; those `scope` keeps), newest
        first."""

        def read(c: sqlite3.Connection) -> tuple[list[dict[str, Any]], dict[int, undos.Undo]]:
            rows = actions.history(c, limit, action_class, by, scope)
            return rows, undos.of_actions(c, [int(r["id"]) for r in rows])

        rows, undone = await self.setting.store.call(read)
        return [self.draft_view(r, undone.get(int(r["id"]))) for r in rows]

    async def checked_filter(self, scope: ActionFilter) -> ActionFilter:
        """`scope` with the parts no recorded action matches named (record/filters.py `checked`)."""
        return await self.setting.store.call(lambda c: filters.checked(c, scope))

    async def transitions(self, action_class: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded transitions with their evidence, newest first."""
        return await self.setting.store.call(lambda c: actions.transitions(c, action_class, limit))

    async def row(self, action_id: int) -> dict[str, Any] | None:
        """One recorded action's row, or None."""
        return await self.setting.store.call(lambda c: actions.action(c, action_id))

    async def undo_of(self, action_id: int) -> undos.Undo | None:
        """The latest undo of an action, or None."""
        return (await self.setting.store.call(lambda c: undos.of_actions(c, [action_id]))).get(action_id)

    async def view(self, action_id: int, wait_s: float = 0.0) -> DraftView:
        """One recorded action (draft or not); with `wait_s`, wait up to that long for a draft to be decided."""
        if not 0 <= wait_s <= 600:
            raise InvalidRequest(f"wait_s {wait_s} is out of range; expected 0 to 600 seconds")
        deadline = time.monotonic() + wait_s
        while True:
            row = await self.row(action_id)
            if row is None:
                raise DraftNotFound(f"no action {action_id}; `ratchet queue` lists the drafts")
            if row["status"] not in (Status.DRAFT, Status.APPROVED, Status.APPROVING) or time.monotonic() >= deadline:
                undo = await self.undo_of(action_id) if row["status"] == Status.EXECUTED else None
                return await self.checked(self.draft_view(row, undo))
            await anyio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    async def checked(self, view: DraftView) -> DraftView:
        """The view with the verification checks run on the action."""
        found = await self.setting.store.call(lambda conn: recorded_checks.of_action(conn, view.action_id))
        return view.model_copy(update={"checks": [check_view(c) for c in found]}) if found else view

    @staticmethod
    def draft_view(row: dict[str, Any], undo: undos.Undo | None = None) -> DraftView:
        """An action's row as a human or the agent sees it (with its undo, when it has one)."""
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
            recorded_by=row["recorded_by"],
            reviewed_by=row["reviewed_by"],
            edited=bool(row["edited"]),
            hidden_lines=int(row["hidden_lines"] or 0),
            error=row["error"],
            result=json.loads(row["result_json"]) if row["result_json"] else None,
            has_packet=row["packet_json"] is not None,
            undone=None if undo is None else undo.line(),
            origin_host=row["origin_host"],
            origin_workspace=row["origin_workspace"],
            waiting=waiting_line(row),
            digest=shown.of_row(row) if row["status"] in QUEUED else None,
        )
