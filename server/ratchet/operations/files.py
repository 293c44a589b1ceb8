"""write_file and edit_file: a unified diff as the preview, the file's bytes as the fingerprint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidRequest
from ..policy import Subject
from ..tools import fs
from . import OpContext, Operation, Prepared


class EditSpec(BaseModel):
    """One exact-match edit: `old_text` is replaced by `new_text`, literally."""

    model_config = ConfigDict(extra="forbid")

    old_text: str = Field(description="exact text to find (must occur exactly once unless count is given)")
    new_text: str = Field(description="literal replacement text")
    count: int | None = Field(None, ge=1, description="how many occurrences to replace (all must exist)")


async def _prepare_write(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    plan = fs.plan_write(ctx.workspace, args["path"], args["content"])
    return _prepared("write_file", {"path": plan.rel, "content": args["content"]}, plan)


async def _prepare_edit(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    edits = [EditSpec.model_validate(e) for e in args["edits"]]
    if not edits:
        raise InvalidRequest("edits is empty; expected at least one {old_text, new_text}")
    plan = fs.plan_edit(ctx.workspace, args["path"], [fs.Edit(e.old_text, e.new_text, e.count) for e in edits])
    return _prepared("edit_file", {"path": plan.rel, "edits": [e.model_dump() for e in edits]}, plan)


def _prepared(tool: str, args: dict[str, Any], plan: fs.WritePlan) -> Prepared:
    preview = plan.diff if plan.diff else f"(no change to {plan.rel})"
    return Prepared(
        tool, args, (Subject(tool=tool, paths=(plan.rel,)),), plan.rel, preview, plan.before.fingerprint, plan
    )


async def _fingerprint(ctx: OpContext, args: dict[str, Any]) -> str | None:
    ws = ctx.workspace
    return fs.read_state(ws, ws.relpath(args["path"])).fingerprint


async def _execute(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    result = fs.apply_plan(ctx.workspace, prepared.plan, token=token)
    return {
        "path": result.rel,
        "created": result.created,
        "bytes_written": result.bytes_written,
        "fingerprint": result.fingerprint,
    }


OPERATIONS = (
    Operation("write_file", _prepare_write, _fingerprint, _execute),
    Operation("edit_file", _prepare_edit, _fingerprint, _execute),
)
