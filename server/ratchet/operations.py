"""Governed operations: how each tool's validated arguments become a previewable, runnable action.

An operation knows three things about its tool: how to *prepare* a call (confine and validate the
arguments, compute what would change, and fingerprint the target so a draft can be checked for
staleness), how to read the target's *fingerprint* now, and how to *execute* a prepared call.
The engine stores a draft's arguments and re-prepares them when a human approves, so what runs
is exactly what was drafted against a target that has not changed. Operations never import MCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidRequest
from .policy import Subject
from .tools import fs
from .workspace import Workspace


class EditSpec(BaseModel):
    """One exact-match edit: `old_text` is replaced by `new_text`, literally."""

    model_config = ConfigDict(extra="forbid")

    old_text: str = Field(description="exact text to find (must occur exactly once unless count is given)")
    new_text: str = Field(description="literal replacement text")
    count: int | None = Field(None, ge=1, description="how many occurrences to replace (all must exist)")


@dataclass(frozen=True)
class Prepared:
    """A call ready for the gate: what it touches, what it would change, and how to run it."""

    tool: str
    args: dict[str, Any]
    subject: Subject
    target: str
    preview: str
    fingerprint: str | None
    plan: Any = field(repr=False, default=None)


@dataclass(frozen=True)
class Operation:
    """How one tool prepares, fingerprints and executes."""

    tool: str
    prepare: Callable[[Workspace, dict[str, Any]], Awaitable[Prepared]]
    fingerprint: Callable[[Workspace, dict[str, Any]], Awaitable[str | None]]
    execute: Callable[[Workspace, Prepared, str], Awaitable[dict[str, Any]]]


async def _prepare_write(ws: Workspace, args: dict[str, Any]) -> Prepared:
    plan = fs.plan_write(ws, args["path"], args["content"])
    return _file_prepared("write_file", {"path": plan.rel, "content": args["content"]}, plan)


async def _prepare_edit(ws: Workspace, args: dict[str, Any]) -> Prepared:
    edits = [EditSpec.model_validate(e) for e in args["edits"]]
    if not edits:
        raise InvalidRequest("edits is empty; expected at least one {old_text, new_text}")
    plan = fs.plan_edit(ws, args["path"], [fs.Edit(e.old_text, e.new_text, e.count) for e in edits])
    return _file_prepared("edit_file", {"path": plan.rel, "edits": [e.model_dump() for e in edits]}, plan)


def _file_prepared(tool: str, args: dict[str, Any], plan: fs.WritePlan) -> Prepared:
    preview = plan.diff if plan.diff else f"(no change to {plan.rel})"
    return Prepared(
        tool, args, Subject(tool=tool, paths=(plan.rel,)), plan.rel, preview, plan.before.fingerprint, plan
    )


async def _file_fingerprint(ws: Workspace, args: dict[str, Any]) -> str | None:
    return fs.read_state(ws, ws.relpath(args["path"])).fingerprint


async def _execute_file(ws: Workspace, prepared: Prepared, token: str) -> dict[str, Any]:
    result = fs.apply_plan(ws, prepared.plan, token=token)
    return {
        "path": result.rel,
        "created": result.created,
        "bytes_written": result.bytes_written,
        "fingerprint": result.fingerprint,
    }


OPERATIONS: dict[str, Operation] = {
    "write_file": Operation("write_file", _prepare_write, _file_fingerprint, _execute_file),
    "edit_file": Operation("edit_file", _prepare_edit, _file_fingerprint, _execute_file),
}


def operation(tool: str) -> Operation:
    """The operation for a governed tool; InvalidRequest for a tool Ratchet does not govern."""
    try:
        return OPERATIONS[tool]
    except KeyError:
        raise InvalidRequest(
            f"unknown tool {tool!r}; governed tools are: {', '.join(sorted(OPERATIONS))}"
        ) from None
