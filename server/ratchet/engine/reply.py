"""What the agent reads of a call: the tool's result, in words and as structured fields."""

from __future__ import annotations

from typing import Any, cast

from ratchet.engine.core import Evaluation
from ratchet.record import standing
from ratchet.record.lifecycle import Status
from ratchet.results import ClassMove, Outcome, ToolOutcome, TriggerInfo
from ratchet.rules.escalation import EscalationPacket


def tool_outcome(
    ev: Evaluation,
    action_id: int,
    status: Status,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    moved: standing.Transition | None = None,
    packet: EscalationPacket | None = None,
) -> ToolOutcome:
    """The tool's result: what happened, at what level, and any class move it caused."""
    d, p = ev.decision, ev.prepared
    # `git status`, not `git_status git status`: a target that already says what the tool is stands alone.
    what = p.target if p.target.startswith(p.tool.replace("_", " ")) else f"{p.tool} {p.target}"
    message = {
        Status.EXECUTED: f"{what}: done",
        Status.FAILED: f"{what} failed: {error}",
        Status.DECLINED: f"the human declined {what}; nothing was changed",
        Status.DRAFT: (
            f"queued as draft {action_id} for human review ({_why(ev)}); nothing was changed yet. Do not "
            f"retry it or make the change another way. Carry on with other work; get_draft({action_id}) "
            "shows its state"
        ),
        Status.BLOCKED: (packet.markdown() if packet else "blocked")
        + f"\nNext step: do not retry this call; get_handoff({action_id}, wait_s=...) returns the human's answer.",
    }[status]
    message = f"{message} [class {d.class_name} at {d.class_level.label}]" + _result_text(result)
    if d.flagged:
        message += " (flagged for later review: confidence below autonomous_at)"
    move = None
    if moved is not None:
        move = ClassMove(
            action_class=moved.action_class,
            from_level=moved.from_level,
            to_level=moved.to_level,
            kind=moved.kind,
            reason=moved.reason,
        )
        message += f"\nClass {moved.action_class} moved {moved.from_level} -> {moved.to_level}: {moved.reason}"
    return ToolOutcome(
        status=cast(Outcome, status.value),  # one of the outcome statuses, by the table above
        action_id=action_id,
        action_class=d.class_name,
        rule=d.rule,
        class_level=d.class_level.label,
        level=d.level.label,
        triggers=[TriggerInfo(**t.as_dict()) for t in d.triggers],
        flagged=d.flagged,
        message=message,
        preview=p.shown,
        result=result,
        draft_id=action_id if status is Status.DRAFT else None,
        packet=packet,
        moved=move,
    )


def _why(ev: Evaluation) -> str:
    """Why a call was queued, in words: the triggers that lowered it, else its class's level."""
    d = ev.decision
    return "; ".join(t.detail for t in d.triggers) or f"class {d.class_name} is at {d.class_level.label}"


def _result_text(result: dict[str, Any] | None) -> str:
    """What the agent needs to read of a result in the text content (the structured result has it all)."""
    if not result:
        return ""
    if "exit_code" in result:
        parts = [
            f"\nexit code {result['exit_code']} after {result['duration_s']}s"
            + (" (timed out)" if result["timed_out"] else "")
        ]
        for stream in ("stdout", "stderr"):
            if result[stream]:
                parts.append(f"--- {stream} ({result[stream + '_bytes']} bytes) ---\n{result[stream]}")
        return "\n".join(parts)
    for key in ("output", "diff", "summary"):
        if result.get(key):
            return "\n" + str(result[key])
    return ""


__all__ = ["tool_outcome"]
