"""The gate: from a class's level and this call's circumstances to what happens now. Pure.

The class level is the most a call can get; triggers only lower it, each with a stated reason:

- `confidence` (agent-reported, optional): at or above `autonomous_at` the level stands; above
  `flag_at` it stands but the action is flagged for review; above `escalate_at` it drops to
  `confirm`; at or below `escalate_at` it is refused with an escalation packet.
- `repeated-failure`: after `max_consecutive_failures` failures of the class in this session the
  class halts for the session (drift is not persistence).
- `pinned`: a human capped the class below its earned level.
- `freeze`: a human capped every class at once (`ratchet freeze`); passed in as `extra`.
- `cli-approval-required`: the class does not accept in-chat confirmation; it drafts instead.
- `no-elicitation`: the client cannot ask its human, so `confirm` falls back to `draft`.
- `reviewer-side`: this process's database role may not record a human's answer (record/roles.py),
  so `confirm` falls back to `draft`, for a human to approve with the reviewer role.
- `no-sandbox`: a command class that wants the OS sandbox (the default) on a host where none can be
  had runs at `confirm` at most: a human sees each command (see `no_sandbox_trigger`).
- `novelty`, `out-of-scope`, `budget-exhausted`: computed by the engine (see rules/contracts.py) and
  passed in as `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass


class Route(StrEnum):
    """What the server does with the call."""

    EXECUTE = "execute"
    CONFIRM = "confirm"
    DRAFT = "draft"
    BLOCK = "block"


ROUTE_OF_LEVEL = {
    Level.AUTONOMOUS: Route.EXECUTE,
    Level.CONFIRM: Route.CONFIRM,
    Level.DRAFT: Route.DRAFT,
    Level.BLOCKED: Route.BLOCK,
}


@dataclass(frozen=True)
class Trigger:
    """One reason this call got less than the class level (or was flagged)."""

    name: str
    detail: str
    cap: Level

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"name": self.name, "detail": self.detail, "cap": self.cap.label}


@dataclass(frozen=True)
class Decision:
    """What the gate decided for one call, and every reason behind it."""

    class_name: str
    rule: str
    class_level: Level
    level: Level
    route: Route
    triggers: tuple[Trigger, ...]
    flagged: bool

    def why(self) -> str:
        """A one-line explanation: class, rule, level, triggers."""
        parts = [f"class {self.class_name} ({self.rule}) is at {self.class_level.label}"]
        parts += [f"{t.name}: {t.detail}" for t in self.triggers]
        return "; ".join(parts) + f" -> {self.route.value}"


def no_sandbox_trigger(cls: ActionClass, available: bool, detail: str) -> Trigger | None:
    """The cap for a class whose commands should be sandboxed where no sandbox can be had; else None."""
    if available or not cls.sandbox or "run_command" not in cls.tools:
        return None
    return Trigger(
        "no-sandbox",
        f"commands cannot run in the OS sandbox here ({detail}), so a human confirms each one",
        Level.CONFIRM,
    )


def decide(
    cls: ActionClass,
    class_level: Level,
    *,
    pinned: Level | None = None,
    confidence: float | None = None,
    session_failures: int = 0,
    can_elicit: bool = True,
    answers_here: bool = True,
    extra: tuple[Trigger, ...] = (),
) -> Decision:
    """Decide one call. Every trigger can only lower the level.

    `extra` carries triggers the caller computed from state the gate does not see (novelty, the
    session's run contract); they cap the level like any other.
    """
    triggers: list[Trigger] = list(extra)
    flagged = False
    if pinned is not None and pinned < class_level:
        triggers.append(Trigger("pinned", f"a human pinned the class at {pinned.label}", pinned))
    limit = cls.trust.max_consecutive_failures
    if session_failures >= limit:
        triggers.append(
            Trigger(
                "repeated-failure",
                f"{session_failures} consecutive failures of this class in this session "
                f"(limit {limit}); halted for the session",
                Level.BLOCKED,
            )
        )
    if confidence is not None:
        thresholds = cls.confidence
        if confidence <= thresholds.escalate_at:
            triggers.append(
                Trigger("confidence", f"{confidence:.2f} <= escalate_at {thresholds.escalate_at}", Level.BLOCKED)
            )
        elif confidence <= thresholds.flag_at:
            triggers.append(
                Trigger(
                    "confidence",
                    f"{confidence:.2f} <= flag_at {thresholds.flag_at}: needs a human's confirmation",
                    Level.CONFIRM,
                )
            )
        elif confidence < thresholds.autonomous_at:
            flagged = True
            triggers.append(
                Trigger(
                    "confidence",
                    f"{confidence:.2f} < autonomous_at {thresholds.autonomous_at}: "
                    "runs at the class level, flagged for review",
                    Level.AUTONOMOUS,
                )
            )
    level = min([class_level, *(t.cap for t in triggers)])
    if level is Level.CONFIRM and cls.require_cli_approval:
        triggers.append(Trigger("cli-approval-required", "this class is approved from the CLI only", Level.DRAFT))
        level = Level.DRAFT
    elif level is Level.CONFIRM and not answers_here:
        triggers.append(
            Trigger(
                "reviewer-side",
                "this server's database role cannot record a human's answer; queued as a draft for a reviewer",
                Level.DRAFT,
            )
        )
        level = Level.DRAFT
    elif level is Level.CONFIRM and not can_elicit:
        triggers.append(Trigger("no-elicitation", "the client cannot ask its human; queued as a draft", Level.DRAFT))
        level = Level.DRAFT
    flagged = flagged and level is Level.AUTONOMOUS
    # Only what changed this call is reported: a trigger that lowered it, or the flag on a call that runs.
    # A change that addresses its reviewer is shown flagged whatever it did to the level (rules/reviewer.py).
    kept = tuple(
        t
        for t in triggers
        if t.cap < class_level or (flagged and t.cap is Level.AUTONOMOUS) or t.name == "addresses-reviewer"
    )
    return Decision(cls.name, cls.rule, class_level, level, ROUTE_OF_LEVEL[level], kept, flagged)
