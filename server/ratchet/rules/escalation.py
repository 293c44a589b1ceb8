"""The escalation packet: what a human needs to decide in a minute instead of "review this".

Structured (pydantic, JSON for tools and the CLI) and rendered as short Markdown for a chat.
Every free-text field passes through redaction. Packets come from two places: an action the gate
stopped (`blocked`, or a trigger that lowered it to blocked), and an agent's own `request_handoff`.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from ratchet.inert import inert, inert_line
from ratchet.redact import redact

PREVIEW_LINES = 40


class PacketAction(BaseModel):
    """The stopped action."""

    tool: str
    target: str
    action_class: str
    rule: str
    class_level: str
    level: str


class PacketTrigger(BaseModel):
    """Why it was stopped."""

    name: str
    detail: str


class HistoryEntry(BaseModel):
    """One earlier action of the same session."""

    action_id: int
    tool: str
    target: str
    action_class: str
    status: str


class Option(BaseModel):
    """Something the human can do, and how."""

    name: str
    how: str
    recommended: bool = False


class CostOfDelay(BaseModel):
    """What waits on the human's answer."""

    waiting_since: float
    waiting_on: str
    queued_behind: int


class EscalationPacket(BaseModel):
    """The structured handoff."""

    action_id: int
    kind: str  # "stopped" (the gate refused an action) or "handoff" (the agent asked)
    task: str | None
    intent: str | None
    summary: str
    action: PacketAction | None
    draft: str
    confidence: float | None
    flags: list[PacketTrigger]
    what_tried: str | None
    uncertainty: str | None
    options: list[Option]
    history: list[HistoryEntry]
    cost_of_delay: CostOfDelay
    session_id: str
    over_budget: bool = False
    # Verification checks that failed on this session's recent actions: "#id check: how (output's end)".
    failed_checks: list[str] = []

    @property
    def recommended(self) -> str:
        """The recommended option's name."""
        return next((o.name for o in self.options if o.recommended), self.options[0].name)

    def markdown(self) -> str:
        """A short Markdown rendering for the chat or a terminal."""
        a = self.action
        if a is not None:
            head = f"### Stopped: {a.tool} `{inert_line(a.target)}` (action {self.action_id})"
        else:
            head = f"### Handoff from the agent (id {self.action_id})"
        lines = [head, f"**Why:** {self.summary}"]
        if self.task:
            lines.append(f"**Task:** {self.task}")
        if self.intent:
            lines.append(f"**Intent:** {self.intent}")
        if a is not None:
            lines.append(f"**Class:** `{a.action_class}` ({a.rule}) at {a.class_level}; this call: {a.level}")
        if self.confidence is not None:
            lines.append(f"**Agent confidence:** {self.confidence:.2f}")
        lines += [f"- {flag.name}: {flag.detail}" for flag in self.flags]
        if self.what_tried:
            lines.append(f"**Tried:** {self.what_tried}")
        if self.uncertainty:
            lines.append(f"**Unsure about:** {self.uncertainty}")
        if self.draft:
            draft_lines = self.draft.splitlines()
            shown = "\n".join(draft_lines[:PREVIEW_LINES])
            hidden = len(draft_lines) - PREVIEW_LINES
            lines += ["", "```diff", shown + (f"\n… {hidden} more lines" if hidden > 0 else ""), "```"]
        if self.history:
            recent = ", ".join(
                f"#{h.action_id} {h.tool} {inert_line(h.target)} → {h.status}" for h in self.history[-5:]
            )
            lines.append(f"**This session so far:** {recent}")
        if self.failed_checks:
            lines.append("**Checks that failed:**")
            lines += [f"- {line}" for line in self.failed_checks]
        lines.append("**Options:**")
        lines += [f"- **{o.name}**{' (recommended)' if o.recommended else ''}: {o.how}" for o in self.options]
        cost = self.cost_of_delay
        waited = max(0, int(time.time() - cost.waiting_since))
        lines.append(
            f"_Waiting {waited}s on: {cost.waiting_on}; {cost.queued_behind} drafts queued behind it. "
            f"Answer with `ratchet resolve {self.action_id}`._"
        )
        if self.over_budget:
            lines.append("_Over this session's escalation budget._")
        return inert("\n".join(lines))


def stopped_options(action_id: int, action_class: str, rule: str, triggers: list[PacketTrigger]) -> list[Option]:
    """Two or three things a human can do about a stopped action, one recommended."""
    names = {t.name for t in triggers}
    unsure = "confidence" in names
    scoped = names & {"out-of-scope", "budget-exhausted"}
    options = [
        Option(
            name="approach",
            how="tell the agent what to do instead (`ratchet resolve ID --option approach --note ...`)",
            recommended=unsure or bool(scoped),
        ),
        Option(
            name="take-over",
            how=f"make the change yourself; the agent reads your answer (action {action_id})",
            recommended=not unsure and not scoped,
        ),
    ]
    if scoped:
        options.append(Option(name="extend", how="widen the task's scope or budget: the agent starts a new task"))
    elif action_class != "unclassified" and not triggers:
        options.append(
            Option(
                name="policy",
                how=f"if `{action_class}` should run at all, change its start in {rule.split(':')[0]} through review",
            )
        )
    return options


def build_packet(
    *,
    action_id: int,
    session_id: str,
    kind: str,
    action: PacketAction | None,
    intent: str | None,
    draft: str,
    confidence: float | None,
    triggers: list[PacketTrigger],
    history: list[HistoryEntry],
    created_at: float,
    options: list[Option],
    task: str | None = None,
    what_tried: str | None = None,
    uncertainty: str | None = None,
    queued_behind: int = 0,
    over_budget: bool = False,
    failed_checks: list[str] | None = None,
) -> EscalationPacket:
    """Assemble a packet, redacting secrets from every free-text field."""
    if triggers:
        summary = "; ".join(f"{t.name}: {t.detail}" for t in triggers)
    elif action is not None:
        summary = f"class `{action.action_class}` is at blocked: actions of this class never run without a human"
    else:
        summary = "the agent asked for a human decision"

    def clean(text: str | None) -> str | None:
        return redact(text) if text else None

    return EscalationPacket(
        action_id=action_id,
        kind=kind,
        task=clean(task),
        intent=clean(intent),
        summary=redact(summary),
        action=action.model_copy(update={"target": redact(action.target)}) if action else None,
        draft=redact(draft),
        confidence=confidence,
        flags=[PacketTrigger(name=t.name, detail=redact(t.detail)) for t in triggers],
        what_tried=clean(what_tried),
        uncertainty=clean(uncertainty),
        options=[o.model_copy(update={"how": redact(o.how)}) for o in options],
        history=[h.model_copy(update={"target": redact(h.target)}) for h in history],
        cost_of_delay=CostOfDelay(
            waiting_since=created_at,
            waiting_on=redact(task or intent or "the agent's next step"),
            queued_behind=queued_behind,
        ),
        session_id=session_id,
        over_budget=over_budget,
        failed_checks=[redact(line) for line in failed_checks or ()],
    )
