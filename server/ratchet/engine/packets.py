"""Escalation packets: what a person is handed when a call is stopped or an agent asks for help.

A packet carries the session's context (its recent history, its task, the checks that failed, what
waits in the queue, the escalation budget), read in the unit of work that records it. Something that
lands in the inbox (a draft, a block, a handoff) runs the policy's notify command.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ratchet.engine.core import Evaluation, Setting
from ratchet.operations import notify
from ratchet.record import actions
from ratchet.record import checks as recorded_checks
from ratchet.redact import redact
from ratchet.rules import contracts
from ratchet.rules.escalation import (
    EscalationPacket,
    HistoryEntry,
    PacketAction,
    PacketTrigger,
    build_packet,
    stopped_options,
)


def stopped_fields(
    ev: Evaluation, intent: str | None, confidence: float | None, uncertainty: str | None
) -> dict[str, Any]:
    """The fields of the packet of a stopped (blocked) call, before its id is known."""
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
    return {
        "kind": "stopped",
        "action": action,
        "intent": intent,
        "draft": ev.prepared.preview,
        "confidence": confidence,
        "triggers": triggers,
        "uncertainty": uncertainty,
        "options_for": (d.class_name, d.rule, triggers),
    }


class Packets:
    """Builds this session's packets, and tells the person of what lands in the inbox."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    def stopped(
        self, conn: sqlite3.Connection, action_id: int, context: actions.SessionContext, fields: dict[str, Any]
    ) -> EscalationPacket:
        """A stopped call's packet with this session's context (read in the same unit of work, before its
        own row)."""
        fields = dict(fields)
        options_for = fields.pop("options_for", None)
        if options_for is not None:
            fields["options"] = stopped_options(action_id, *options_for)
        task_row = actions.open_task(conn, self.setting.session_id)
        return self._packet(action_id, context, task_row, {**fields, "failed_checks": failed_checks(conn, context)})

    def packet_in(self, conn: sqlite3.Connection, action_id: int, **fields: Any) -> EscalationPacket:
        """A packet with this session's context (history, task, cost of delay, escalation budget), inside a
        unit of work already running on the connection."""
        session = self.setting.session_id
        context = actions.session_context(conn, session, action_id)
        fields = {"failed_checks": failed_checks(conn, context), **fields}
        return self._packet(action_id, context, actions.open_task(conn, session), fields)

    def notify_inbox(
        self, action_id: int, status: str, tool: str, target: str, packet: EscalationPacket | None
    ) -> None:
        """Run the policy's notify command (if any) for something that just landed in the inbox."""
        defaults = self.setting.policy.defaults
        notify(
            defaults.notify,
            defaults.limits.notifications_per_minute,
            {
                "id": action_id,
                "status": str(status),
                "tool": tool,
                "target": redact(target),
                "packet": packet.model_dump(mode="json") if packet else None,
            },
        )

    def _packet(
        self,
        action_id: int,
        context: actions.SessionContext,
        task_row: dict[str, Any] | None,
        fields: dict[str, Any],
    ) -> EscalationPacket:
        s = self.setting
        history = [
            HistoryEntry(
                action_id=r["id"], tool=r["tool"], target=r["target"], action_class=r["class"], status=r["status"]
            )
            for r in context.history
        ]
        task = contracts.task_from_row(task_row) if task_row is not None else None
        return build_packet(
            action_id=action_id,
            session_id=s.session_id,
            history=history,
            created_at=time.time(),
            task=task.goal if task else None,
            queued_behind=context.queued,
            over_budget=context.escalations >= s.policy.defaults.escalation_budget,
            **fields,
        )


def failed_checks(conn: sqlite3.Connection, context: actions.SessionContext) -> list[str]:
    """The verification checks that failed on the session's recent actions, one line each for a packet."""
    found = recorded_checks.of_actions(conn, [int(r["id"]) for r in context.history])
    lines = []
    for aid, results in found.items():
        for c in results:
            if not c.passed:
                tail = c.tail.strip().splitlines()[-1:] if c.tail.strip() else []
                lines.append(f"#{aid} {c.summary()}" + (f" ({tail[0][:200]})" if tail else ""))
    return lines[-10:]


__all__ = ["Packets", "failed_checks", "stopped_fields"]
