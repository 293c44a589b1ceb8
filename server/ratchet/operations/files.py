"""write_file and edit_file: a unified diff as the preview, the file's bytes as the fingerprint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ratchet.errors import InvalidRequest
from ratchet.executors import fs
from ratchet.executors.workspace import Workspace
from ratchet.operations.base import Leftover, OpContext, Operation, Prepared, kept_args
from ratchet.policy.limits import utf8_len
from ratchet.policy.model import Subject


class EditSpec(BaseModel):
    """One exact-match edit: `old_text` is replaced by `new_text`, literally."""

    model_config = ConfigDict(extra="forbid")

    old_text: str = Field(description="exact text to find (must occur exactly once unless count is given)")
    new_text: str = Field(description="literal replacement text")
    count: int | None = Field(None, ge=1, description="how many occurrences to replace (all must exist)")


async def _prepare_write(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    content = args["content"]
    if not isinstance(content, str):
        raise InvalidRequest(f"content must be text, got {type(content).__name__}")
    # Sizes first: nothing is read, diffed or redacted for a call over the policy's limits.
    size = ctx.ceiling.check("write_file", "max_write_bytes", utf8_len(content), "the content")
    plan = fs.plan_write(ctx.workspace, args["path"], content)
    return _prepared("write_file", {"path": plan.rel, "content": content}, plan, {"max_write_bytes": size})


async def _prepare_edit(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    raw = args["edits"]
    if not isinstance(raw, list):
        raise InvalidRequest("edits must be a list of {old_text, new_text}")
    count = ctx.ceiling.check("edit_file", "max_edits", len(raw), "the number of edits")
    edits = [EditSpec.model_validate(e) for e in raw]
    if not edits:
        raise InvalidRequest("edits is empty; expected at least one {old_text, new_text}")
    # What the edits could add bounds the edited file before any replacement runs.
    text = sum(utf8_len(e.old_text) + utf8_len(e.new_text) * (e.count or 1) for e in edits)
    ctx.ceiling.check("edit_file", "max_write_bytes", text, "the edits' text (old_text plus new_text times count)")
    result: list[int] = []

    def before_diff(new_text: str) -> None:
        result.append(ctx.ceiling.check("edit_file", "max_write_bytes", utf8_len(new_text), "the edited file"))

    plan = fs.plan_edit(
        ctx.workspace, args["path"], [fs.Edit(e.old_text, e.new_text, e.count) for e in edits], before_diff
    )
    sizes = {"max_edits": count, "max_write_bytes": max(text, *result)}
    return _prepared("edit_file", {"path": plan.rel, "edits": [e.model_dump() for e in edits]}, plan, sizes)


def _prepared(tool: str, args: dict[str, Any], plan: fs.WritePlan, sizes: dict[str, int]) -> Prepared:
    preview = plan.diff if plan.diff else f"(no change to {plan.rel})"
    return Prepared(
        tool,
        args,
        (Subject(tool=tool, paths=(plan.rel,)),),
        plan.rel,
        preview,
        plan.before.fingerprint,
        plan,
        record=kept_args(tool, args),
        sizes=sizes,
        hidden_lines=plan.hidden_lines,
    )


async def _fingerprint(ctx: OpContext, args: dict[str, Any]) -> str | None:
    ws = ctx.workspace
    return fs.read_state(ws, ws.relpath(args["path"])).fingerprint


async def _apply(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    plan: fs.WritePlan = prepared.plan
    if ctx.keep is not None:
        # Kept before the write, so a crash after it still leaves the change undoable. The plan read the
        # file strictly as UTF-8, so encoding its text gives back exactly the bytes it fingerprinted.
        before = plan.before
        prior = before.text.encode("utf-8", "surrogatepass") if before.text is not None else None
        if fs.fingerprint(prior) == before.fingerprint:
            ctx.keep(token, plan.rel, prior, before.mode, fs.fingerprint(plan.new_text.encode("utf-8")))
    result = fs.apply_plan(ctx.workspace, plan, token=token)
    return {
        "path": result.rel,
        "created": result.created,
        "bytes_written": result.bytes_written,
        "fingerprint": result.fingerprint,
    }


def restore_file(
    ws: Workspace, rel: str, prior: bytes | None, mode: int | None, *, expect: str | None, token: str
) -> str:
    """Put a file back as an undo: exactly `prior` with `mode`, or removed when `prior` is None; only
    while it still holds `expect` (None: whatever it holds). What was done, in words."""
    done = fs.restore(ws, rel, prior, mode, expect=expect, token=token)
    if prior is None:
        return f"removed {done.rel} (it did not exist before)" if done.removed else f"{done.rel} is already gone"
    return f"restored {done.rel} ({done.bytes_written} bytes" + (f", mode {mode:o})" if mode is not None else ")")


def _recover(ws: Workspace, leftover: Leftover) -> None:
    # The executor stages into a temp file named after the action; the target is untouched.
    fs.discard_temp(ws, leftover.target, str(leftover.action_id))


def _with_content(args: dict[str, Any], content: str) -> tuple[str, dict[str, Any]]:
    # A file draft approved with the human's own content is a write of that content to the same path.
    return "write_file", {"path": args["path"], "content": content}


OPERATIONS = (
    Operation("write_file", _prepare_write, _fingerprint, _apply, _recover, _with_content),
    Operation("edit_file", _prepare_edit, _fingerprint, _apply, _recover, _with_content),
)


def whole_diff(plan: object) -> str | None:
    """A file write's whole diff, however long (None for a plan that is not a file write)."""
    return fs.whole_diff(plan) if isinstance(plan, fs.WritePlan) else None
