"""Reading the record: class standings, the draft queue, history and transitions."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ratchet.engine.core import Core, _view
from ratchet.executors.sandbox import sandbox_status_async
from ratchet.policy.levels import Level
from ratchet.record import integrity, standing
from ratchet.record.integrity import Freeze
from ratchet.record.store import ClassRow
from ratchet.results import ClassStatus, DraftView, TriggerInfo, TrustLevels
from ratchet.rules.gate import decide, no_sandbox_trigger
from ratchet.rules.trust import evidence, samples_to_promote


class Reading(Core):
    """Read-only views of what the engine has recorded."""

    async def trust_levels(self) -> TrustLevels:
        """Every class, where it stands, its window, and what a call of it would do now."""
        classes = (*sorted(self.policy.classes.values(), key=lambda c: c.name), self.policy.unclassified)

        def read(conn: sqlite3.Connection) -> tuple[list[ClassRow], Freeze | None, tuple[int, list[str]]]:
            # The record, not the cache: a cache changed outside Ratchet is reported here too.
            found = [standing.current(conn, cls)[0] for cls in classes]
            return found, integrity.freeze_of(conn), integrity.tamper_records(conn)

        rows, freeze, (tampers, tamper_lines) = await self.store.run(read)
        frozen = freeze if freeze is not None and freeze.active() else None
        sandbox = await sandbox_status_async()
        not_evidence = {
            r[0]: (r[1] or 0, r[2] or 0)
            for r in await self.store.all(
                # Counted for the class whose level decided the call (evidence_class), like its samples.
                "SELECT coalesce(evidence_class, class) AS judged, sum(evidence = 'unverified'), "
                "sum(evidence = 'unanswered') FROM actions WHERE evidence IN ('unverified', 'unanswered') "
                "GROUP BY judged"
            )
        }
        out = []
        for cls, row in zip(classes, rows, strict=True):
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
                )
            )
        shown = f"on ({sandbox.detail})" if sandbox.available else f"unavailable: {sandbox.detail}"
        return TrustLevels(
            classes=out,
            policy=str(self.policy.directory),
            policy_fingerprint=self.policy.fingerprint,
            sandbox=shown,
            freeze=None if frozen is None else frozen.detail(),
            tamper_records=tampers,
            tampering=tamper_lines,
        )

    async def queue(self) -> list[DraftView]:
        """Drafts waiting for a human, oldest first."""
        rows = await self.store.all(
            "SELECT * FROM actions WHERE status IN ('running', 'drafted', 'approving') AND status = 'drafted' "
            "ORDER BY id"  # the first condition is the partial index's: no scan of the whole history
        )
        return [_view(r) for r in rows]

    async def history(self, limit: int = 50, action_class: str | None = None) -> list[DraftView]:
        """Recent actions, newest first."""
        if action_class:
            rows = await self.store.all(
                "SELECT * FROM actions WHERE class = ? ORDER BY id DESC LIMIT ?", (action_class, limit)
            )
        else:
            rows = await self.store.all("SELECT * FROM actions ORDER BY id DESC LIMIT ?", (limit,))
        return [_view(r) for r in rows]

    async def transitions(self, action_class: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded transitions with their evidence, newest first."""
        sql = "SELECT * FROM transitions " + ("WHERE class = ? " if action_class else "") + "ORDER BY id DESC LIMIT ?"
        rows = await self.store.all(sql, (action_class, limit) if action_class else (limit,))
        return [{**dict(r), "evidence": json.loads(r["evidence_json"])} for r in rows]
