"""One inbox for the human: drafts, stopped actions and the agent's own handoffs, and the human's answers.

An agent may hand off on its own (`request_handoff`), but only with context: what it tried, what
exactly it is unsure of, and at least one option. A session has an escalation budget from the
policy; past it, handoffs are still accepted but flagged. The human answers with
`ratchet resolve ID`; the agent reads the answer with `get_handoff(id)` and may wait for it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, Field

from ratchet.engine.core import CLI_SESSION
from ratchet.engine.where import waiting_line
from ratchet.errors import DraftNotFound, InvalidRequest
from ratchet.policy.limits import rate_refusal
from ratchet.record import actions
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.lifecycle import Status
from ratchet.record.store import MAY_HAVE_RUN
from ratchet.redact import redact
from ratchet.rules.escalation import EscalationPacket, Option

if TYPE_CHECKING:
    from ratchet.engine import Engine

# What each inbox item is, by its action's status.
_KINDS = {
    Status.DRAFT: "draft",
    Status.APPROVED: "approved",  # decided here, waiting for its origin to run it (engine/origin.py)
    Status.BLOCKED: "stopped",
    Status.ESCALATED: "handoff",
    Status.INTERRUPTED: "interrupted",
}
MAX_WAIT_S = 600.0
# A stopped action or a handoff blocks its agent while its session is live: it recorded something this recently.
LIVE_S = 30 * 60.0
# `[defaults.limits] handoffs_per_minute` counts a session's handoffs over this sliding window.
HANDOFF_WINDOW_S = 60.0
# The seam tests own: the clock that stamps a handoff and reads the window.
clock: Callable[[], float] = time.time


class HandoffRequest(BaseModel):
    """What an agent must say to hand a decision to the human."""

    what_tried: str = Field(description="what you tried so far, and what happened")
    uncertainty: str = Field(description="exactly what you are unsure of")
    options: list[str] = Field(description="the choices you see, at least one")
    recommended: str | None = Field(None, description="the option you would pick (one of options)")
    task: str | None = Field(None, description="the task this is part of")
    blocking: bool = Field(True, description="true if you cannot go on without an answer")

    def missing(self) -> list[str]:
        """What the request lacks, in words the agent can act on."""
        gaps = []
        if len(self.what_tried.strip()) < 10:
            gaps.append("what_tried (what you tried and what happened)")
        if len(self.uncertainty.strip()) < 10:
            gaps.append("uncertainty (exactly what you are unsure of)")
        if not [o for o in self.options if o.strip()]:
            gaps.append("options (at least one choice the human can pick)")
        if self.recommended is not None and self.recommended not in self.options:
            gaps.append("recommended must be one of options")
        return gaps


class HandoffView(BaseModel):
    """An escalation (stopped action or handoff) and the human's answer, if any."""

    id: int
    kind: str
    status: str
    resolved: bool
    resolution: str | None = None
    note: str | None = None
    resolved_at: float | None = None
    packet: EscalationPacket | None = None
    message: str


class InboxItem(BaseModel):
    """One thing waiting for the human."""

    id: int
    kind: str  # draft | approved | stopped | handoff | interrupted
    summary: str
    action_class: str
    session_id: str
    created_at: float
    age_s: float
    blocking: bool


class EscalationStats(BaseModel):
    """Escalations per session and class: a health figure."""

    session_id: str
    action_class: str
    actions: int
    escalations: int
    rate: float


async def request_handoff(engine: Engine, request: HandoffRequest) -> HandoffView:
    """Record the agent's handoff in the inbox; InvalidRequest names what context is missing, and
    LimitExceeded refuses a handoff past the session's `handoffs_per_minute`."""
    ceiling = engine.setting.ceiling
    for name in ("what_tried", "uncertainty", "recommended", "task"):
        ceiling.text("request_handoff", name, getattr(request, name))
    ceiling.text("request_handoff", "options", "\n".join(request.options))
    gaps = request.missing()
    if gaps:
        raise InvalidRequest("request_handoff needs " + "; ".join(gaps))
    options = [
        Option(name=o.strip(), how="the agent's option", recommended=o == request.recommended)
        for o in request.options
        if o.strip()
    ]
    options.append(Option(name="take-over", how="you do it; tell the agent in the note"))
    if not any(o.recommended for o in options):
        options[0] = options[0].model_copy(update={"recommended": True})
    store = engine.store
    args_json = redact(json.dumps(request.model_dump()))
    target = redact(request.uncertainty)[:200]
    task = redact(request.task) if request.task else None
    limits = engine.policy.defaults.limits

    def record(conn: sqlite3.Connection) -> tuple[int, EscalationPacket]:
        now = clock()
        # Refuse a handoff past the session's `handoffs_per_minute`, inside the same transaction.
        recent = actions.recent_handoffs(conn, engine.session_id, now - HANDOFF_WINDOW_S, limits.handoffs_per_minute)
        if len(recent) >= limits.handoffs_per_minute:
            raise rate_refusal(
                "handoffs_per_minute",
                len(recent),
                limits.handoffs_per_minute,
                HANDOFF_WINDOW_S,
                min(recent) + HANDOFF_WINDOW_S - now,
                engine.policy.defaults_file,
                "request_handoff refused: this session's handoffs",
            )
        handoff_id = actions.insert_handoff(
            conn,
            engine.session_id,
            now,
            target,
            engine.policy.fingerprint,
            args_json,
            task,
            engine.setting.identity,
            (engine.origins.here.host, engine.origins.here.workspace, engine.origins.here.repo),
        )
        packet = engine.carrier.packets.packet_in(
            conn,
            handoff_id,
            kind="handoff",
            action=None,
            intent=None,
            draft="",
            confidence=None,
            triggers=[],
            options=options,
            what_tried=request.what_tried,
            uncertainty=request.uncertainty,
        )
        if task:
            packet = packet.model_copy(update={"task": task})
        actions.set_packet(conn, handoff_id, packet.model_dump_json())
        return handoff_id, packet

    handoff_id, packet = await store.run(record)
    engine.carrier.packets.notify_inbox(handoff_id, "escalated", "request_handoff", packet.summary, packet)
    note = " (over this session's escalation budget: flagged)" if packet.over_budget else ""
    return HandoffView(
        id=handoff_id,
        kind="handoff",
        status="escalated",
        resolved=False,
        packet=packet,
        message=f"handoff {handoff_id} is in the human's inbox{note}; get_handoff({handoff_id}, wait_s=...) "
        "returns their answer",
    )


async def get_handoff(engine: Engine, handoff_id: int, wait_s: float = 0.0) -> HandoffView:
    """An escalation and its answer; with `wait_s`, wait up to that long for the human to answer."""
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise InvalidRequest(f"wait_s {wait_s} is out of range; expected 0 to {MAX_WAIT_S:g} seconds")
    deadline = time.monotonic() + wait_s
    while True:
        row = await engine.views.row(handoff_id)
        if row is None or row["packet_json"] is None:
            raise DraftNotFound(f"no escalation {handoff_id}; `ratchet inbox` lists them")
        if row["resolved_at"] is not None or time.monotonic() >= deadline:
            return _view(row)
        await anyio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


async def resolve(
    engine: Engine,
    item_id: int,
    option: str | None,
    note: str | None,
    *,
    channel: str = "cli",
    seconds: float | None = None,
) -> HandoffView:
    """Record the human's answer to a stopped action or a handoff (drafts use approve/reject).

    `channel` is where the answer came from (rules/provenance.py); `seconds` its review time when the
    channel timed it, else the time since the item was recorded."""
    engine.reviewer_side("answer an escalation")
    row = await engine.views.row(item_id)
    if row is None:
        raise DraftNotFound(f"no item {item_id}; `ratchet inbox` lists them")
    if row["status"] == Status.DRAFT:
        raise InvalidRequest(f"{item_id} is a draft: use `ratchet approve {item_id}` or `ratchet reject {item_id}`")
    if row["status"] == Status.INTERRUPTED and str(row["error"] or "").startswith(MAY_HAVE_RUN):
        return await _checked(engine, row, option, note)
    if row["packet_json"] is None:
        raise InvalidRequest(f"action {item_id} is {row['status']}; only stopped actions and handoffs are resolved")
    packet = EscalationPacket.model_validate_json(row["packet_json"])
    names = [o.name for o in packet.options]
    if option is None and not note:
        raise InvalidRequest(f"say what to do: --option one of {', '.join(names)}, and/or --note TEXT")
    if option is not None and option not in names:
        raise InvalidRequest(f"unknown option {option!r}; this packet offers: {', '.join(names)}")
    resolution = option or "note"
    by = engine.setting.identity
    changed = await engine.store.run(
        lambda conn: actions.resolve(conn, item_id, resolution, note, channel, seconds, reviewed_by=by)
    )
    if not changed:
        raise InvalidRequest(f"{item_id} was already resolved")
    return await get_handoff(engine, item_id)


def answered_line(view: HandoffView) -> str:
    """What the person reads once they answered: the answer, and for `take-over` that nothing is changed
    for them (the CLI and the review page say the same)."""
    line = f"{view.id}: {view.message}"
    if view.resolution == "take-over":
        line += (
            "; recorded: you take it over. Ratchet will not make this change: make it yourself (the agent reads "
            "that you took it over)"
        )
    return line


async def _checked(engine: Engine, row: Any, option: str | None, note: str | None) -> HandoffView:
    """The human has looked at what an interrupted action left behind: it leaves the inbox."""
    if option not in (None, "checked"):
        raise InvalidRequest(f"action {row['id']} was interrupted; the one option is `checked` (and/or --note TEXT)")
    now = time.time()
    changed = await engine.store.run(lambda conn: actions.mark_checked(conn, row["id"], note, now))
    if not changed:
        raise InvalidRequest(f"{row['id']} was already resolved")
    return HandoffView(
        id=row["id"],
        kind="interrupted",
        status="interrupted",
        resolved=True,
        resolution="checked",
        note=note,
        resolved_at=now,
        message=f"interrupted {row['tool']} {row['target']} marked checked",
    )


async def inbox(engine: Engine, scope: ActionFilter = EVERYTHING) -> list[InboxItem]:
    """Drafts and open escalations together (those `scope` keeps), most urgent first: what stops the agent,
    then the oldest."""
    now = time.time()

    def read(conn: Any) -> tuple[list[dict[str, Any]], set[str]]:
        found = actions.inbox(conn, scope)
        asked = {str(r["session_id"]) for r in found if r["status"] in (Status.BLOCKED, Status.ESCALATED)}
        return found, actions.sessions_active_since(conn, asked, now - LIVE_S)

    rows, live = await engine.store.call(read)
    items = []
    for r in rows:
        kind = _KINDS[Status(r["status"])]
        stops = kind == "stopped" or (kind == "handoff" and json.loads(r["args_json"]).get("blocking", True))
        blocking = stops and r["session_id"] in live  # an ended session's agent waits for nothing
        summary = f"{r['tool']} {r['target']}" if kind != "handoff" else f"agent asks: {r['target']}"
        if kind == "approved":
            summary += f": {waiting_line(r)}; `ratchet reject {r['id']}` withdraws it"
        if kind == "interrupted":  # say what is known: it may have run (pid, start), check before going on
            summary += f": {r['error']}; check it, then `ratchet resolve {r['id']} --option checked`"
        items.append(
            InboxItem(
                id=r["id"],
                kind=kind,
                summary=summary,
                action_class=r["class"],
                session_id=r["session_id"],
                created_at=r["created_at"],
                age_s=round(now - r["created_at"], 1),
                blocking=blocking,
            )
        )
    # What stops a live agent costs more per minute than a draft it already moved past; then the drafts; then
    # what an ended session left (nobody waits on it); oldest first in each.
    return sorted(items, key=lambda i: (0 if i.blocking else 1 if i.kind in ("draft", "approved") else 2, i.created_at))


async def escalation_stats(engine: Engine) -> list[EscalationStats]:
    """How often each session escalated, per class (stopped actions and handoffs over all actions)."""
    rows = await engine.store.call(lambda conn: actions.escalation_stats(conn, CLI_SESSION))
    return [
        EscalationStats(
            session_id=r["session_id"],
            action_class=r["class"],
            actions=r["n"],
            escalations=r["e"],
            rate=round(r["e"] / r["n"], 4),
        )
        for r in rows
    ]


def _view(row: Any) -> HandoffView:
    packet = EscalationPacket.model_validate_json(row["packet_json"])
    resolved = row["resolved_at"] is not None
    if resolved:
        message = f"the human answered: {row['resolution']}" + (
            f" — {row['resolution_note']}" if row["resolution_note"] else ""
        )
    else:
        message = "no answer yet; the human sees it in `ratchet inbox`"
    return HandoffView(
        id=row["id"],
        kind=packet.kind,
        status=row["status"],
        resolved=resolved,
        resolution=row["resolution"],
        note=row["resolution_note"],
        resolved_at=row["resolved_at"],
        packet=packet,
        message=message,
    )
