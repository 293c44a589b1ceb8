"""The escalation packet: what a human needs to decide in a minute instead of "review this".

Structured (pydantic, JSON for tools and the CLI) and rendered as short Markdown for a chat.
Everything in it passes through redaction first.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from .redact import redact

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


class EscalationPacket(BaseModel):
    """The structured handoff."""

    action_id: int
    intent: str | None
    summary: str
    action: PacketAction
    draft: str
    confidence: float | None
    flags: list[PacketTrigger]
    recommended: str
    options: list[Option]
    history: list[HistoryEntry]
    waiting_since: float
    session_id: str

    def markdown(self) -> str:
        """A short Markdown rendering for the chat."""
        a = self.action
        lines = [
            f"### Stopped: {a.tool} `{a.target}` (action {self.action_id})",
            f"**Why:** {self.summary}",
        ]
        if self.intent:
            lines.append(f"**Intent:** {self.intent}")
        lines.append(f"**Class:** `{a.action_class}` ({a.rule}) at {a.class_level}; this call: {a.level}")
        if self.confidence is not None:
            lines.append(f"**Agent confidence:** {self.confidence:.2f}")
        for flag in self.flags:
            lines.append(f"- {flag.name}: {flag.detail}")
        draft_lines = self.draft.splitlines()
        shown = "\n".join(draft_lines[:PREVIEW_LINES])
        more = (
            f"\n… {len(draft_lines) - PREVIEW_LINES} more lines" if len(draft_lines) > PREVIEW_LINES else ""
        )
        lines += ["", "```diff", shown + more, "```"]
        if self.history:
            recent = ", ".join(f"#{h.action_id} {h.tool} {h.target} → {h.status}" for h in self.history[-5:])
            lines.append(f"**This session so far:** {recent}")
        lines.append(f"**Recommended:** {self.recommended}")
        lines += [f"- **{o.name}**: {o.how}" for o in self.options]
        waited = max(0, int(time.time() - self.waiting_since))
        lines.append(f"_Waiting {waited}s; session {self.session_id}._")
        return "\n".join(lines)


def build_packet(
    *,
    action_id: int,
    session_id: str,
    tool: str,
    target: str,
    action_class: str,
    rule: str,
    class_level: str,
    level: str,
    intent: str | None,
    draft: str,
    confidence: float | None,
    triggers: list[PacketTrigger],
    history: list[HistoryEntry],
    created_at: float,
) -> EscalationPacket:
    """Assemble a packet for a refused action, redacting secrets from every free-text field."""
    if triggers:
        summary = "; ".join(f"{t.name}: {t.detail}" for t in triggers)
    else:
        summary = f"class `{action_class}` is at blocked: actions of this class never run without a human"
    options = [
        Option(
            name="take over",
            how=f"make the change yourself; the agent can read this packet (action {action_id})",
        ),
        Option(name="change the approach", how="tell the agent what to do instead"),
    ]
    if action_class != "unclassified" and not triggers:
        options.append(
            Option(
                name="change the policy",
                how=f"if `{action_class}` should run at all, change its start in {rule.split(':')[0]}"
                " through review",
            )
        )
    recommended = (
        "check what the agent was unsure of before it retries"
        if any(t.name == "confidence" for t in triggers)
        else "take over, or tell the agent a different approach"
    )
    return EscalationPacket(
        action_id=action_id,
        intent=redact(intent) if intent else None,
        summary=redact(summary),
        action=PacketAction(
            tool=tool,
            target=redact(target),
            action_class=action_class,
            rule=rule,
            class_level=class_level,
            level=level,
        ),
        draft=redact(draft),
        confidence=confidence,
        flags=[PacketTrigger(name=t.name, detail=redact(t.detail)) for t in triggers],
        recommended=recommended,
        options=options,
        history=[h.model_copy(update={"target": redact(h.target)}) for h in history],
        waiting_since=created_at,
        session_id=session_id,
    )
