"""What tools and CLI commands return: pydantic models, published as MCP output schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.record.lifecycle import Status
from ratchet.rules.contracts import Task
from ratchet.rules.escalation import EscalationPacket

# The statuses a governed call's outcome can have: the lifecycle's own words (record/lifecycle.py),
# those a call can end its tool call in (tests/test_lifecycle.py holds them to the lifecycle).
Outcome = Literal["executed", "draft", "declined", "blocked", "failed"]


class TriggerInfo(BaseModel):
    """A trigger that lowered (or flagged) this call."""

    name: str
    detail: str
    cap: str


class ClassMove(BaseModel):
    """A promotion or demotion this call caused."""

    action_class: str
    from_level: str
    to_level: str
    kind: str
    reason: str


class CheckView(BaseModel):
    """One verification check's run on an action (a class's `verify`): not an action, its result."""

    argv: list[str]
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    tail: str = Field("", description="the end of a failing check's output (redacted)")
    summary: str


def _null_first(schema: dict[str, Any]) -> None:
    """The output schema in the shape a client validates quickest, meaning the same (JSON Schema).

    Every governed call's result is validated by the client against this schema, and most of its
    optional fields are null. pydantic writes `X | None` as `anyOf: [X, {"type": "null"}]`, which a
    validator checks branch by branch, the null last. Here a field whose branches are plain types
    becomes one `type` list (`["null", "string"]`: one keyword, no branch), and any other `anyOf`
    tries null first. Nothing is accepted or refused that was not before.
    """
    for field in schema.get("properties", {}).values():
        branches = field.get("anyOf")
        if not isinstance(branches, list) or {"type": "null"} not in branches:
            continue
        plain = [b.get("type") for b in branches if b in ({"type": b.get("type")}, _ANY_OBJECT)]
        if len(plain) == len(branches) and all(isinstance(t, str) for t in plain):
            del field["anyOf"]
            field["type"] = ["null", *(t for t in plain if t != "null")]
        else:
            field["anyOf"] = [{"type": "null"}, *(b for b in branches if b != {"type": "null"})]


# `dict[str, Any]` in a schema: an object with no constraint on its members (the default).
_ANY_OBJECT = {"type": "object", "additionalProperties": True}


class ToolOutcome(BaseModel):
    """The result of every governed tool call."""

    model_config = ConfigDict(json_schema_extra=_null_first)

    status: Outcome = Field(description="executed | draft | declined | blocked | failed")
    action_id: int
    action_class: str
    rule: str = Field(description="policy file:line of the class that matched")
    class_level: str = Field(description="the class's standing level")
    level: str = Field(description="the level this call got after triggers")
    triggers: list[TriggerInfo] = []
    flagged: bool = False
    message: str
    preview: str | None = None
    result: dict[str, Any] | None = None
    draft_id: int | None = None
    packet: EscalationPacket | None = None
    moved: ClassMove | None = None
    checks: list[CheckView] = Field(default_factory=list, description="the class's checks run on this action")
    undone: str | None = Field(None, description="set when a failing check made Ratchet put the change back")


class ClassStatus(BaseModel):
    """Where a class stands and what a call of it would do now."""

    action_class: str
    description: str
    rule: str
    level: str
    earned_level: str
    pinned: str | None
    floor: str
    ceiling: str
    window_size: int
    samples: int
    successes: int
    rate: float | None
    lower_bound: float | None
    drift: float
    promote_at: float
    next_promotion: str
    would: str = Field(description="what a call of this class does now: execute | confirm | draft | block")
    since: float
    capped_by: list[TriggerInfo] = Field(
        default_factory=list, description="standing triggers that hold the class below its level (e.g. no-sandbox)"
    )
    probation: int = Field(
        0, description="samples left on probation after a promotion (0: not on probation); a failure notifies at once"
    )
    unverified: int = Field(
        0,
        description="approvals that ran but were no evidence (faster than the reading rule, or not from the CLI "
        "where the class requires it)",
    )
    unanswered: int = Field(0, description="confirmations or drafts no human answered (too fast, or dismissed)")


class TrustLevels(BaseModel):
    """Every class's standing."""

    classes: list[ClassStatus]
    policy: str
    policy_fingerprint: str
    sandbox: str = Field("", description="whether run_command's commands run in the OS sandbox here, and why not")
    freeze: str | None = Field(default=None, description="the freeze in force, if a human froze every class")
    tamper_records: int = Field(
        default=0, description="how many times the stored standings were found changed outside Ratchet"
    )
    tampering: list[str] = Field(default=[], description="the newest tamper records, newest first")


class DraftView(BaseModel):
    """A draft (or any recorded action) as a human or the agent sees it."""

    action_id: int
    status: Status = Field(
        description="where the action is in its lifecycle: draft, approving, executed, rejected, ..."
    )
    tool: str
    target: str
    action_class: str
    rule: str
    class_level: str
    level: str
    intent: str | None
    confidence: float | None
    preview: str
    triggers: list[TriggerInfo]
    created_at: float
    session_id: str
    reviewer: str | None = None
    review_seconds: float | None = None
    review_note: str | None = None
    recorded_by: str | None = Field(None, description="who recorded the action: the identity of the agent's server")
    reviewed_by: str | None = Field(None, description="who approved or rejected it: the identity of the human's answer")
    edited: bool = False  # approved with the human's own content instead of the agent's
    hidden_lines: int = 0  # changed lines the preview folded away (a long diff)
    error: str | None = None
    result: dict[str, Any] | None = None
    has_packet: bool = False
    undone: str | None = Field(None, description="how and when a human undid this action, if one did")
    checks: list[CheckView] = Field(default_factory=list, description="verification checks run on this action")
    origin_host: str | None = Field(None, description="the host the action was made on")
    origin_workspace: str | None = Field(None, description="the workspace (absolute path) it was made in")
    waiting: str | None = Field(
        None, description="for an approved draft: that it waits for its origin (host and workspace) to run it"
    )
    digest: str | None = Field(
        None, description="a short digest of the change as recorded; an approval is given on it (approve --expect)"
    )


class ReviewResult(BaseModel):
    """What the human decided in an in-chat review of queued drafts."""

    reviewed: list[DraftView]
    remaining: int
    message: str


class TaskView(BaseModel):
    """A run contract as the agent sees it."""

    task_id: int
    goal: str
    scope_paths: list[str]
    scope_classes: list[str]
    budget_actions: int | None
    budget_minutes: float | None
    actions_used: int
    message: str
    checks_failed_on: list[int] = Field(
        default_factory=list, description="actions whose task-end checks failed (their samples are now failures)"
    )

    @classmethod
    def of(cls, task: Task, message: str) -> TaskView:
        """From a contracts.Task."""
        return cls(
            task_id=task.id,
            goal=task.goal,
            scope_paths=task.scope.paths,
            scope_classes=task.scope.classes,
            budget_actions=task.budget.actions,
            budget_minutes=task.budget.minutes,
            actions_used=task.actions_used,
            message=message,
        )
