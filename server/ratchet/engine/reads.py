"""What the engine shows: standings, the queue, history, one action, the record's integrity, and the
evidence read from the record (metrics, report, explanations). Reads only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.engine import reviewer as delegated
from ratchet.engine.core import Setting
from ratchet.engine.views import Views
from ratchet.record import chain, integrity
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.results import DraftView, TrustLevels

if TYPE_CHECKING:  # start-up: the evidence modules load only when a report is asked for
    from ratchet.evidence.explain import Explanation
    from ratchet.evidence.metrics import MetricsReport
    from ratchet.evidence.report import EvidenceReport


class Reads:
    """The engine's read-only methods (the parts are set by `Engine`)."""

    setting: Setting
    views: Views

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

    # -- the delegated reviewer's record (engine/reviewer.py) ----------------------------------------------

    async def reviewer_standing(self) -> dict[str, Any]:
        """The reviewer's score per class for this record and policy, and why it may not run here, if so."""
        return await delegated.standing(self.setting)

    async def reviewer_verdicts(self, action_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The reviewer's verdicts on these actions (drafts in a queue), by id."""
        return await delegated.verdicts(self.setting, action_ids)

    async def reviewer_about(self, action_id: int) -> dict[str, Any] | None:
        """What the reviewer said on one action and who vouched for its outcome (None: no action)."""
        return await self.setting.store.call(lambda c: delegated.about(c, action_id))
