"""MCP wiring only: tools, their schemas and annotations, elicitation, and error translation.

Read it as a table (TOOLS, at the end): each tool is a function whose signature is its input schema.
A governed tool's arguments are built once per round, by its call resolver, into a `Call` that both
the gate resolver and the tool body receive. A RatchetError becomes the ToolError the model reads in
one place, `_edge`, which also writes the one-line call log.

The human is asked through resolver parameters (`Annotated[..., Resolve(fn)]`), which the SDK
carries over both protocol styles: a standalone `elicitation/create` request on 2025-11-25 and
earlier, and an `input_required` round trip on 2026-07-28. A resolver may run again on every
round, so the gate's evaluation in a resolver only reads; everything is recorded in the tool body.
No tool here approves, rejects or changes policy on the agent's word: approval comes from the
human's answer to an elicitation, shown by the client's own UI, or from the CLI. One tool is not
the agent's: `claude_code_hook` answers Claude Code's own `mcp_tool` hooks and refuses every other
caller, deciding and recording nothing for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
    MCPServer,
    Resolve,
)
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, create_model

from ratchet import telemetry
from ratchet.claude_code import hooks
from ratchet.engine import Engine, Evaluation, HumanAnswer, handoffs
from ratchet.engine.handoffs import HandoffRequest, HandoffView
from ratchet.errors import InvalidRequest, RatchetError
from ratchet.evidence.metrics import MetricsReport
from ratchet.inert import inert, inert_line
from ratchet.mcp.tool_errors import ArgumentErrors
from ratchet.operations import EditSpec
from ratchet.record.store import Location
from ratchet.redact import redact
from ratchet.results import DraftView, ReviewResult, TaskView, ToolOutcome, TrustLevels
from ratchet.rules import provenance, shown
from ratchet.rules.contracts import TaskBudget, TaskScope
from ratchet.rules.gate import Route

log = logging.getLogger("ratchet")
# One line per tool call on stderr (`ratchet serve --quiet` turns it off).
calls_log = logging.getLogger("ratchet.calls")

REVIEW_BATCH = 5
UNCERTAINTY = "what you are unsure of (shown to the human if the call is stopped)"
ELICIT_DIFF_CHARS = 6000

INSTRUCTIONS = """\
Ratchet governs changes in this workspace. Use write_file and edit_file for every file change,
run_command for commands, and git_commit / git_push for git.
Each call is sorted into an action class with an autonomy level earned from evidence: it may run at
once, ask the human to confirm, be queued as a draft for later review (carry on with other work and
check get_draft), or be refused with an escalation packet explaining why. Pass `intent` (what the
change is for) and, when unsure, `confidence` (0-1). trust_levels shows where each class stands.
"""


@dataclass(frozen=True)
class ServerConfig:
    """Where the server finds its workspace, policy and database (`closed` is set once the database is closed)."""

    workspace: Path
    policies: Path | None = None
    db: Location | None = None
    # The clock that times the human's answers (rules/provenance.py); None: the wall clock. A test seam.
    clock: Callable[[], float] | None = None
    closed: threading.Event | None = None
    # No per-call line on stderr.
    quiet: bool = False


DRAIN_S = 10.0


class InFlight:
    """The calls carrying out an action right now, so that shutting down waits until each is recorded.

    On a signal the HTTP server cancels request tasks and then shuts the lifespan down without waiting
    for them; a cancelled call records itself as interrupted (shielded), and the lifespan waits (up to
    DRAIN_S) for that before it closes the database.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Count one call while it runs."""
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0 and self._idle is not None:
                self._idle.set()

    async def drained(self) -> None:
        """Return once no call is in flight."""
        while self.count:
            self._idle = anyio.Event()
            await self._idle.wait()


_IN_FLIGHT: weakref.WeakKeyDictionary[object, InFlight] = weakref.WeakKeyDictionary()


def in_flight(engine: Engine) -> InFlight:
    """The in-flight calls on this engine's database (shared by every session over it)."""
    return _IN_FLIGHT.setdefault(engine.shared_key(), InFlight())


MAX_HTTP_SESSIONS = 1024
END_CHECKS_S = 300.0  # at most this long for the task-end checks of the sessions a closing server ends
SESSION_HEADERS = ("mcp-session-id", "ratchet-session")


class SessionPerClient:
    """Server middleware: each HTTP client gets its own Ratchet session (streaks, contracts, packet history).

    The key is the transport's `Mcp-Session-Id` (one per MCP session, on protocol versions with a
    handshake), else a `Ratchet-Session` header the client was configured to send (the 2026-07-28
    protocol has no session of its own, so such requests carry nothing else to tell clients apart),
    else none: stdio, and HTTP requests with neither header, act in the server's own session. The
    session id is `http-` and a digest of the key, so the transport's session id is not stored.
    Every caller already holds the bearer token, so choosing a session grants nothing a new
    connection would not.
    """

    def __init__(self) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()

    def engines(self) -> list[Engine]:
        """The HTTP clients' sessions this server still knows."""
        return list(self._engines.values())

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        base = ctx.lifespan_context
        key = _session_key(ctx.request)
        if key is None or not isinstance(base, Engine):
            return await call_next(ctx)
        engine = self._engines.get(key)
        if engine is None:
            engine = base.for_session("http-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12])
            await engine.start_session("mcp-http")
            log.info("ratchet: new HTTP client, session %s", engine.session_id)
            self._engines[key] = engine
            while len(self._engines) > MAX_HTTP_SESSIONS:
                self._engines.popitem(last=False)  # forgotten here only: the session's records stay
        else:
            self._engines.move_to_end(key)
        return await call_next(dataclasses.replace(ctx, lifespan_context=engine))


def _session_key(request: Any) -> str | None:
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if isinstance(value, str) and value.strip():
            return f"{name}:{value.strip()}"
    return None


class _FlatForm(BaseModel):
    """An elicitation form: flat primitives and no top-level title (some clients refuse extras)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _: _strip_top_level(schema))


def _strip_top_level(schema: dict[str, Any]) -> None:
    # The spec's requestedSchema is {type, properties, required}; Codex cancels forms with more.
    schema.pop("title", None)
    schema.pop("description", None)


class ConfirmChange(_FlatForm):
    """The human's answer to one proposed change."""

    approve: bool = Field(
        title="Apply this change?",
        description="Ticked: apply exactly the change shown. Unticked: no, nothing runs and it counts against "
        "the class. Decline or Esc: not now, it waits as a draft.",
    )


class ReviewDraft(_FlatForm):
    """The human's answer to one queued draft: an explicit choice (Decline or Esc leaves it queued too)."""

    decision: Literal["approve", "reject", "leave queued"] = Field(
        title="Your decision",
        description="approve runs it now, exactly as shown; reject drops it and counts against its class; "
        "leave queued decides later (as Decline or Esc do).",
    )
    reason: str = Field("", title="Reason (optional)", description="Why, if you reject it.")


# Claude Code (2.1.337) shows a form's message only to its third line, then "… (+N more lines)", but
# every field's title and description in full: the change goes there.
FORM_CHANGE_LINES = 20
FORM_LINE_CHARS = 160


def change_lines(preview: str, where: str) -> str:
    """The change on one line, as Claude Code shows a form's line: a diff's changed lines joined with ⏎ (a
    command's or commit's preview as it is), up to FORM_CHANGE_LINES; a change that will not fit on one
    screen line starts with where the whole of it is (`where`)."""
    lines = preview.splitlines()
    if lines and lines[0].startswith("--- "):
        lines = [ln for ln in lines if ln.startswith(("+", "-")) and not ln.startswith(("+++ ", "--- "))]
    lines = [ln if len(ln) <= FORM_LINE_CHARS else ln[: FORM_LINE_CHARS - 1] + "…" for ln in lines]
    if len(lines) > FORM_CHANGE_LINES:
        lines = [*lines[:FORM_CHANGE_LINES], f"… {len(lines) - FORM_CHANGE_LINES} more lines"]
    joined = " ⏎ ".join(lines) or "(no change)"
    if len(joined) > FORM_LINE_CHARS:
        joined = f"(all of it: {where}) {joined}"
    return redact(inert_line(joined))  # agent text on one line: no newline or escape of its own


def confirm_form(preview: str) -> type[ConfirmChange]:
    """ConfirmChange whose field shows the change itself."""
    change = change_lines(preview, "below, or Decline and `ratchet show ID`")
    return create_model(
        "ConfirmChange",
        __base__=ConfirmChange,
        approve=(
            bool,
            Field(
                title="Apply this change?",
                description=f"{change} ⏎ Ticked: apply exactly this. Unticked: no (counts against the class). "
                "Decline or Esc: not now, it waits as a draft.",
            ),
        ),
    )


REVIEW_CHOICES: Any = Literal["approve", "reject", "leave queued"]


def review_form(preview: str, action_id: int) -> type[ReviewDraft]:
    """ReviewDraft whose decision field shows the draft's change itself."""
    change = change_lines(preview, f"`ratchet show {action_id}`")
    return create_model(
        "ReviewDraft",
        __base__=ReviewDraft,
        decision=(
            REVIEW_CHOICES,
            Field(
                title="Your decision",
                description=f"{change} ⏎ approve runs exactly this now; reject drops it and counts against its "
                "class; leave queued decides later (as Decline or Esc do).",
            ),
        ),
    )


@dataclass(frozen=True)
class Call:
    """One governed call as the gate sees it.

    Built once per round by the tool's call resolver: the gate resolver and the tool body receive
    this same object (the SDK runs each resolver once per round), so what was judged is what is
    carried out.
    """

    tool: str
    args: dict[str, Any]
    intent: str | None = None
    confidence: float | None = None
    uncertainty: str | None = None


@dataclass(frozen=True)
class _Gated:
    """A gate resolver's plain result: the evaluation to carry out, or the error that stopped it."""

    evaluation: Evaluation | None
    error: RatchetError | None


def _engine(ctx: Context) -> Engine:
    engine = ctx.request_context.lifespan_context
    assert isinstance(engine, Engine)
    return engine


def _can_elicit(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.elicitation is not None


def _call_digest(ev: Evaluation) -> str:
    """The digest of a call's change as the confirm dialog shows it (rules/shown.py)."""
    p, name = ev.prepared, ev.decision.class_name
    return shown.digest(p.tool, p.target, p.args, p.shown, p.fingerprint, (name, name))


def _confirm_message(ev: Evaluation) -> str:
    p, d = ev.prepared, ev.decision
    diff = (
        p.preview
        if len(p.preview) <= ELICIT_DIFF_CHARS
        else (p.preview[:ELICIT_DIFF_CHARS] + f"\n… ({len(p.preview) - ELICIT_DIFF_CHARS} more characters)")
    )
    why = "; ".join(t.detail for t in d.triggers) or f"class {d.class_name} is at {d.class_level.label}"
    size = provenance.change_size(p.preview, p.hidden_lines)
    # The first lines are what every client shows (some fold the rest): what changes, how much, why.
    # They are built from structured fields (tool, counts, class) and the target on one escaped line,
    # so no newline or escape in agent text can put a header of its own above the real change.
    target = inert_line(p.target if len(p.target) <= 160 else p.target[:160] + "…")
    first = f"Ratchet: {p.tool} {target}" + (f": {size}" if size else "")
    how = "Apply ticked: it runs; unticked: no; Decline or Esc: later, as a draft."
    change = change_lines(p.preview, "further below, or Decline and `ratchet show ID`")
    # Claude Code shows three lines of a form's message: what, why (and how to answer), the change itself.
    body = f"{first}\nWhy you are asked: {inert_line(why)}. Digest {_call_digest(ev)}. {how}\nChange: {change}\n\n"
    return redact(body + inert(diff))


def _asking(ctx: Context, key: str) -> None:
    """Note when a question goes to the client. A resolver runs on every round of a call; only a
    round without `request_state` (the call's first on 2026-07-28, every one before) asks anew."""
    _engine(ctx).answers.asked(key, fresh=ctx.request_state is None)


# -- call resolvers: a tool's arguments, as the gate takes them, built once per round ---------------
# Async on purpose: the SDK runs a synchronous resolver in a worker thread.


async def _write_call(
    path: str, content: str, intent: str | None, confidence: float | None, uncertainty: str | None
) -> Call:
    return Call("write_file", {"path": path, "content": content}, intent, confidence, uncertainty)


async def _edit_call(
    path: str, edits: list[EditSpec], intent: str | None, confidence: float | None, uncertainty: str | None
) -> Call:
    return Call("edit_file", {"path": path, "edits": [e.model_dump() for e in edits]}, intent, confidence, uncertainty)


async def _run_call(
    argv: list[str] | None,
    command: str | None,
    cwd: str | None,
    timeout_s: float | None,
    stdin: str | None,
    intent: str | None,
    confidence: float | None,
    uncertainty: str | None,
) -> Call:
    args = {"argv": argv, "command": command, "cwd": cwd, "timeout_s": timeout_s, "stdin": stdin}
    return Call("run_command", args, intent, confidence, uncertainty)


async def _status_call() -> Call:
    return Call("git_status", {})


async def _diff_call(staged: bool, paths: list[str] | None) -> Call:
    return Call("git_diff", {"staged": staged, "paths": paths})


async def _commit_call(
    message: str, paths: list[str] | None, intent: str | None, confidence: float | None, uncertainty: str | None
) -> Call:
    return Call("git_commit", {"message": message, "paths": paths}, intent, confidence, uncertainty)


async def _push_call(
    remote: str | None,
    branch: str | None,
    force: bool,
    intent: str | None,
    confidence: float | None,
    uncertainty: str | None,
) -> Call:
    return Call("git_push", {"remote": remote, "branch": branch, "force": force}, intent, confidence, uncertainty)


GateResolver = Callable[..., Awaitable[Elicit[ConfirmChange] | _Gated]]


def _gate_on(build: Callable[..., Awaitable[Call]], name: str) -> GateResolver:
    """The gate resolver over one tool's call resolver: evaluate (read-only), and ask when the class says so.

    It may run on every round of a call, so it only reads; everything is recorded in the tool body.
    """

    async def gate(call: Call, ctx: Context) -> Elicit[ConfirmChange] | _Gated:
        if not _can_elicit(ctx):
            # Nobody can be asked here: the tool body decides, and records the intent of a call that runs
            # in the same unit of work (Engine.govern).
            return _Gated(None, None)
        try:
            ev = await _engine(ctx).evaluate(
                call.tool, call.args, confidence=call.confidence, can_elicit=_can_elicit(ctx)
            )
        except RatchetError as exc:
            return _Gated(None, exc)
        if ev.decision.route is Route.CONFIRM:
            key = provenance.question_key(call.tool, call.args)
            if await _engine(ctx).reviewer_consult(ev, key, call.intent) is not None:
                return _Gated(ev, None)  # the reviewer approved on its authority (engine/reviewer.py)
            _asking(ctx, key)
            if ctx.request_state is None:  # asked anew (see _asking): the answer is about this change alone
                _engine(ctx).shown_calls[key] = _call_digest(ev)
            return Elicit(_confirm_message(ev), confirm_form(ev.prepared.preview))
        return _Gated(ev, None)

    # The SDK reads the dependency from the annotation; the name is the question's stable wire key.
    gate.__annotations__ = {
        "call": Annotated[Call, Resolve(build)],
        "ctx": Context,
        "return": Elicit[ConfirmChange] | _Gated,
    }
    gate.__name__ = gate.__qualname__ = name
    return gate


_gate_write = _gate_on(_write_call, "_gate_write")
_gate_edit = _gate_on(_edit_call, "_gate_edit")
_gate_run = _gate_on(_run_call, "_gate_run")
_gate_status = _gate_on(_status_call, "_gate_status")
_gate_diff = _gate_on(_diff_call, "_gate_diff")
_gate_commit = _gate_on(_commit_call, "_gate_commit")
_gate_push = _gate_on(_push_call, "_gate_push")


async def _carry_out(ctx: Context, call: Call, review: ElicitationResult[Any]) -> CallToolResult:
    """Record and carry out a gated call. A RatchetError is recorded as refused and raised for the edge."""
    engine = _engine(ctx)
    tool, args, intent, confidence = call.tool, call.args, call.intent, call.confidence
    try:
        engine.check_texts(tool, intent=intent, uncertainty=call.uncertainty)
    except RatchetError as exc:
        await engine.refuse(tool, args, exc, intent=None, confidence=confidence)
        raise
    gated = review.data if isinstance(review, AcceptedElicitation) else None
    answer: HumanAnswer | None = None
    if isinstance(gated, _Gated) and gated.evaluation is None and gated.error is None:
        # Decided here, for a client that cannot ask its human; a refusal is recorded by the engine.
        async with in_flight(engine).call():
            outcome = await engine.govern(
                tool, args, intent=intent, confidence=confidence, uncertainty=call.uncertainty, progress=_progress(ctx)
            )
        await engine.reviewer_settled(provenance.question_key(tool, args), outcome.action_id, False)
        return _result(outcome)
    if isinstance(gated, _Gated):
        if gated.error is not None:
            await engine.refuse(tool, args, gated.error, intent=intent, confidence=confidence)
            raise gated.error
        assert gated.evaluation is not None
        ev = gated.evaluation
        if ev.decision.route is Route.CONFIRM:  # approved by the reviewer on its authority, or None
            answer = engine.reviewer_granted(provenance.question_key(tool, args))
    else:
        # The human answered: re-evaluate now (the class may have moved while they read) and carry
        # out the fresh decision; the answer counts only if the call still needs a confirmation.
        try:
            ev = await engine.evaluate(tool, args, confidence=confidence, can_elicit=True)
        except RatchetError as exc:
            await engine.refuse(tool, args, exc, intent=intent, confidence=confidence)
            raise
        # Timed from the question to this answer; the engine judges whether it is evidence (a
        # dismissed dialog, or a decline too fast to have been read, leaves the change queued as a draft).
        seconds = engine.answers.answered(provenance.question_key(tool, args), engine.session_id)
        approved = isinstance(gated, ConfirmChange) and gated.approve
        # Decline and Esc mean the same in every Ratchet form: not now. Nothing runs, nothing is
        # judged, and the change waits as a draft. A "no" is the form's own answer (Apply unticked).
        dismissed = isinstance(review, CancelledElicitation | DeclinedElicitation)
        # An answer about another change (the file moved while the human read) is no answer to this one:
        # nothing runs on it, and the change waits as a draft.
        was_shown = engine.shown_calls.pop(provenance.question_key(tool, args), None)
        if was_shown is not None and was_shown != _call_digest(ev):
            dismissed = True
        answer = HumanAnswer(
            approved and not dismissed, "elicitation", seconds=seconds, channel="elicitation", dismissed=dismissed
        )

    async with in_flight(engine).call():
        outcome = await engine.carry_out(
            ev,
            intent=intent,
            confidence=confidence,
            answer=answer,
            uncertainty=call.uncertainty,
            progress=_progress(ctx),
        )
    asked = answer is not None and answer.channel == "elicitation" and not answer.dismissed
    await engine.reviewer_settled(provenance.question_key(tool, args), outcome.action_id, asked)
    return _result(outcome)


def _progress(ctx: Context) -> Callable[[float, str], Awaitable[None]]:
    """A call's progress to its client."""

    async def progress(elapsed: float, message: str) -> None:
        # Best effort: a client (or response stream) that went away must not abort the call itself;
        # the call finishes, or is cancelled, and is recorded either way.
        try:
            await ctx.report_progress(elapsed, None, message)
        except Exception as exc:
            log.info("ratchet: progress not delivered (%s); the call goes on", type(exc).__name__)

    return progress


def _result(outcome: ToolOutcome) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=inert(outcome.message))],  # the client shows it to its human
        structured_content=outcome.model_dump(mode="json"),
        is_error=outcome.status == "failed",
    )


# -- the tools: each signature is its input schema; the bodies only hand over -------------------------

WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
COMMITS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
PUSHES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
# Recording a handoff or a contract changes no file: not destructive, not read-only either.
HANDS_OFF = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
READS = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Review = Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_write)]


async def write_file(
    path: Annotated[str, Field(description="file path, relative to the workspace")],
    content: Annotated[str, Field(description="the complete new file content")],
    ctx: Context,
    call: Annotated[Call, Resolve(_write_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_write)],
    intent: Annotated[str | None, Field(description="what this change is for")] = None,
    confidence: Annotated[float | None, Field(ge=0, le=1, description="your confidence, 0-1")] = None,
    uncertainty: Annotated[str | None, Field(description=UNCERTAINTY)] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """Create or overwrite a file through Ratchet's gate (atomic; mode and line endings kept).

    The result's status says what happened: executed, draft (queued for a human; carry on),
    declined, blocked (with an escalation packet) or failed.
    """
    return await _carry_out(ctx, call, review)


async def edit_file(
    path: Annotated[str, Field(description="file path, relative to the workspace")],
    edits: Annotated[list[EditSpec], Field(min_length=1, description="exact-match replacements, in order")],
    ctx: Context,
    call: Annotated[Call, Resolve(_edit_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_edit)],
    intent: Annotated[str | None, Field(description="what this change is for")] = None,
    confidence: Annotated[float | None, Field(ge=0, le=1, description="your confidence, 0-1")] = None,
    uncertainty: Annotated[str | None, Field(description=UNCERTAINTY)] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """Edit a file with exact, literal replacements through Ratchet's gate.

    Each old_text must occur exactly once (or exactly `count` times). Same statuses as write_file.
    """
    return await _carry_out(ctx, call, review)


async def run_command(
    ctx: Context,
    call: Annotated[Call, Resolve(_run_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_run)],
    argv: Annotated[list[str] | None, Field(description="program and arguments, run without a shell")] = None,
    command: Annotated[str | None, Field(description="a shell string, only for classes that allow one")] = None,
    cwd: Annotated[str | None, Field(description="working directory, relative to the workspace")] = None,
    timeout_s: Annotated[float | None, Field(description="seconds before the process group is killed")] = None,
    stdin: Annotated[str | None, Field(description="text fed to the command's standard input")] = None,
    intent: Annotated[str | None, Field(description="what this command is for")] = None,
    confidence: Annotated[float | None, Field(ge=0, le=1, description="your confidence, 0-1")] = None,
    uncertainty: Annotated[str | None, Field(description=UNCERTAINTY)] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """Run a command through Ratchet's gate: classified by what really runs, time- and output-capped.

    The result holds the exit code, stdout and stderr (head and tail kept past the cap, with a
    marker), the duration and whether it timed out. Long runs send progress notifications.
    """
    return await _carry_out(ctx, call, review)


async def git_status(
    ctx: Context,
    call: Annotated[Call, Resolve(_status_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_status)],
) -> Annotated[CallToolResult, ToolOutcome]:
    """The repository's status (porcelain, with the branch line)."""
    return await _carry_out(ctx, call, review)


async def git_diff(
    ctx: Context,
    call: Annotated[Call, Resolve(_diff_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_diff)],
    staged: Annotated[bool, Field(description="the index against HEAD instead of the work tree")] = False,
    paths: Annotated[list[str] | None, Field(description="limit to these paths")] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """The working tree's (or the index's) diff."""
    return await _carry_out(ctx, call, review)


async def git_commit(
    message: Annotated[str, Field(description="the commit message")],
    ctx: Context,
    call: Annotated[Call, Resolve(_commit_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_commit)],
    paths: Annotated[list[str] | None, Field(description="commit exactly these paths (default: the index)")] = None,
    intent: Annotated[str | None, Field(description="what this commit is for")] = None,
    confidence: Annotated[float | None, Field(ge=0, le=1, description="your confidence, 0-1")] = None,
    uncertainty: Annotated[str | None, Field(description=UNCERTAINTY)] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """Commit the given paths (or the index); the preview is the staged diff. No hooks run."""
    return await _carry_out(ctx, call, review)


async def git_push(
    ctx: Context,
    call: Annotated[Call, Resolve(_push_call)],
    review: Annotated[ElicitationResult[ConfirmChange], Resolve(_gate_push)],
    remote: Annotated[str | None, Field(description="a configured remote (default: origin)")] = None,
    branch: Annotated[str | None, Field(description="the branch to push (default: the current one)")] = None,
    force: Annotated[bool, Field(description="force-with-lease: overwrite the remote branch")] = False,
    intent: Annotated[str | None, Field(description="what this push is for")] = None,
    confidence: Annotated[float | None, Field(ge=0, le=1, description="your confidence, 0-1")] = None,
    uncertainty: Annotated[str | None, Field(description=UNCERTAINTY)] = None,
) -> Annotated[CallToolResult, ToolOutcome]:
    """Push a branch to a configured remote; the preview lists the commits and their diffstat."""
    return await _carry_out(ctx, call, review)


async def trust_levels(ctx: Context) -> TrustLevels:
    """Each action class: its level, its evidence window, and what a call of it would do now (for this
    client: one that cannot ask its human gets a draft where a class would confirm)."""
    levels = await _engine(ctx).trust_levels()
    if _can_elicit(ctx):
        return levels
    drafted = [c.model_copy(update={"would": "draft"}) if c.would == "confirm" else c for c in levels.classes]
    return levels.model_copy(update={"classes": drafted})


async def permission_prompt(
    tool_name: Annotated[str, Field(description="the Claude Code tool asking for permission")],
    input: Annotated[dict[str, Any], Field(description="that tool's input")],
    ctx: Context,
    tool_use_id: Annotated[str | None, Field(description="the tool call's id")] = None,
) -> CallToolResult:
    """For `claude -p --permission-prompt-tool mcp__ratchet__permission_prompt`: answers a headless run's
    permission prompts from the class's level (autonomous: allow; confirm and draft: a queued draft,
    denied with its id; blocked: denied with the packet). Other tools are denied. Returns Claude Code's
    permission JSON. Not for agents to call: it approves nothing that the level does not already allow."""
    try:
        answer = await hooks.permission_prompt(_engine(ctx), tool_name, input, tool_use_id)
    except RatchetError as exc:
        # Not an error for the edge to translate: Claude Code needs its permission JSON either way.
        answer = {"behavior": "deny", "message": f"Ratchet could not decide: {exc}. Nothing was run."}
    # Exactly one text block and nothing else: Claude Code refuses any other shape.
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(answer))])


HOOK_TOOL = "claude_code_hook"
# Where Claude Code marks a tools/call its model made (a hook's own call carries no tool-use id).
MODEL_CALL_META = "claudecode/toolUseId"


def _hook_caller_refusal(ctx: Context) -> str | None:
    """Why this call of the hook tool is not Claude Code's hook (None when it is).

    Only Claude Code's own `mcp_tool` hook may use it: a call its model made carries the tool-use id
    in `_meta` (which the model cannot leave out or set), and any other client is not Claude Code.
    The installer also denies the tool in Claude Code's permissions, which takes it out of the model's
    tool list while the hook still calls it."""
    meta = ctx.request_context.meta
    fields = meta.model_dump(by_alias=True) if isinstance(meta, BaseModel) else dict(meta or {})
    if any(fields.get(k) is not None for k in (MODEL_CALL_META, "progressToken", "progress_token")):
        return "it was called by the agent, not by Claude Code's hook"
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else None
    if name != hooks.CLIENT:
        return f"the client is {name or 'unnamed'}, not Claude Code"
    return None


async def claude_code_hook(
    ctx: Context,
    hook_event_name: str,
    session_id: str | None = None,
    transcript_path: str | None = None,
    cwd: str | None = None,
    permission_mode: str | None = None,
    tool_name: str | None = None,
    tool_input: Any = None,
    tool_use_id: str | None = None,
    tool_response: Any = None,
    error: Any = None,
    is_interrupt: Any = None,
    reason: Any = None,
    stop_hook_active: Any = None,
) -> CallToolResult:
    """Not for agents: Claude Code's own hooks call it with the event's fields. Called by anyone else it
    decides and records nothing."""
    refused = _hook_caller_refusal(ctx)
    if refused is not None:
        calls_log.warning("ratchet: %s refused: %s", HOOK_TOOL, refused)
        return CallToolResult(
            content=[
                TextContent(
                    type="text",
                    text=f"{HOOK_TOOL} answers Claude Code's hooks only ({refused}); nothing was decided or "
                    "recorded. Use write_file, edit_file and run_command, or Claude Code's own tools.",
                )
            ],
            is_error=True,
        )
    engine = _engine(ctx)
    # Fields Claude Code had nothing for arrive as their own placeholder text.
    given = {
        "hook_event_name": hook_event_name,
        "session_id": session_id,
        "transcript_path": transcript_path,
        "cwd": cwd,
        "permission_mode": permission_mode,
        "tool_name": tool_name,
        "tool_input": tool_input,
        "tool_use_id": tool_use_id,
        "tool_response": tool_response,
        "error": error,
        "is_interrupt": is_interrupt,
        "reason": reason,
        "stop_hook_active": stop_hook_active,
    }
    raw = {
        k: v
        for k, v in given.items()
        if v is not None and not (isinstance(v, str) and v.startswith("${") and v.endswith("}"))
    }
    options = hooks.HookOptions(workspace=engine.workspace.root, shared=engine)
    answer = await hooks.claude_code(json.dumps(raw), options)
    # A hook's JSON output, or {} for no decision: with onFailure "block" plain text would block.
    return CallToolResult(content=[TextContent(type="text", text=answer or "{}")])


async def class_metrics(
    ctx: Context,
    since: Annotated[str | None, Field(description="ISO date, or a duration back from now such as 7d")] = None,
    action_class: Annotated[str | None, Field(description="only this class")] = None,
) -> MetricsReport:
    """How each class is doing, per level: autonomy share, approvals, edits, rejections, escalations,
    complaints on unreviewed actions, review times and rubber-stamp approvals. Read-only."""
    return await _engine(ctx).metrics(since=since, action_class=action_class)


async def get_draft(
    draft_id: int,
    ctx: Context,
    wait_s: Annotated[float, Field(ge=0, le=600, description="wait up to this long for a decision")] = 0,
) -> DraftView:
    """The current state of a draft (or any action) by id: draft, executed, rejected, stale..."""
    return await _engine(ctx).view(draft_id, wait_s)


async def request_handoff(
    what_tried: Annotated[str, Field(description="what you tried so far, and what happened")],
    uncertainty: Annotated[str, Field(description="exactly what you are unsure of")],
    options: Annotated[list[str], Field(description="the choices you see (at least one)")],
    ctx: Context,
    recommended: Annotated[str | None, Field(description="the option you would pick")] = None,
    task: Annotated[str | None, Field(description="the task this is part of")] = None,
    blocking: Annotated[bool, Field(description="true if you cannot go on without an answer")] = True,
) -> HandoffView:
    """Ask the human to decide something, with the context they need to do it in a minute.

    Refused without what you tried, what you are unsure of, and at least one option. The answer
    comes back through get_handoff(id, wait_s). There is no undo tool: to have a change undone, ask
    here (an option such as "undo action 12"); the human runs `ratchet undo`.
    """
    request = HandoffRequest(
        what_tried=what_tried,
        uncertainty=uncertainty,
        options=options,
        recommended=recommended,
        task=task,
        blocking=blocking,
    )
    return await handoffs.request_handoff(_engine(ctx), request)


async def get_handoff(
    handoff_id: int,
    ctx: Context,
    wait_s: Annotated[float, Field(ge=0, le=600, description="wait up to this long for the answer")] = 0,
) -> HandoffView:
    """A handoff or stopped action by id, with the human's answer once they have given it."""
    return await handoffs.get_handoff(_engine(ctx), handoff_id, wait_s)


async def start_task(
    goal: Annotated[str, Field(description="what the task is for")],
    scope: TaskScope,
    budget: TaskBudget,
    ctx: Context,
    non_goals: Annotated[list[str] | None, Field(description="what the task will not do")] = None,
) -> TaskView:
    """Declare what you are about to do: actions outside the scope escalate, an exhausted budget halts."""
    engine = _engine(ctx)
    task, superseded = await engine.start_task(goal, scope, non_goals or [], budget)
    message = "task started; actions outside its scope will be escalated"
    if superseded is not None and superseded.results:  # the task it replaced was judged like an ended one
        message += f"\nthe task it supersedes: {superseded.message()}"
    return TaskView.of(task, message)


async def end_task(summary: Annotated[str, Field(description="what was done")], ctx: Context) -> TaskView:
    """Close the session's run contract."""
    engine = _engine(ctx)
    ended = await engine.end_task(summary)  # and its task-end checks (engine/verify.py)
    if ended is None:
        raise InvalidRequest("no task is open in this session; start_task opens one")
    task, checked = ended
    message = "task ended" + (f"\n{checked.message()}" if checked.results else "")
    return TaskView.of(task, message).model_copy(update={"checks_failed_on": checked.failed_actions})


def _cli_only(engine: Engine, draft: DraftView) -> str | None:
    """Why a draft is not offered in the chat (it needs `ratchet approve`), or None if it may be."""
    if not engine.answers_here:
        return "this server's database role is the agent's: a human approves it with the reviewer role"
    cls = engine.class_of(draft.action_class)
    if cls.require_cli_approval:
        return "its class requires CLI approval"
    runs = draft.tool == "run_command" or "run_command" in cls.tools
    if runs and not cls.chat_approval:
        return "it runs a program (a class that allows it in chat says chat_approval = true)"
    if draft.hidden_lines:  # engine/whole.py: approving it needs the whole diff, which a dialog cannot show
        return f"its diff is too long to show whole here: `ratchet show {draft.action_id} --full`, then approve"
    return None


async def _pick_drafts(ctx: Context) -> list[DraftView]:
    engine = _engine(ctx)
    queued = [d for d in await engine.queue() if _cli_only(engine, d) is None]
    return queued[:REVIEW_BATCH]


def _asker(index: int) -> Callable[..., Any]:
    async def ask(
        ctx: Context, drafts: Annotated[list[DraftView], Resolve(_pick_drafts)]
    ) -> Elicit[ReviewDraft] | None:
        if index >= len(drafts) or not _can_elicit(ctx):
            return None
        d = drafts[index]
        preview = d.preview[:ELICIT_DIFF_CHARS]
        _asking(ctx, provenance.question_key("draft", d.action_id))
        if d.digest and ctx.request_state is None:  # asked anew (see _asking): the approval is of this change
            _engine(ctx).shown[d.action_id] = d.digest
        return Elicit(
            redact(
                f"Ratchet draft {d.action_id} ({index + 1} of {len(drafts)}): {d.tool} {inert_line(d.target)}"
                + (f": {size}" if (size := provenance.change_size(d.preview, d.hidden_lines)) else "")
                + f"\nClass {d.action_class}; intent: {inert_line(d.intent or '(none given)')}; digest {d.digest}\n"
                f"Change: {change_lines(d.preview, f'`ratchet show {d.action_id}`')}\n"
                "Choose approve, reject or leave queued; Decline or Esc leaves it queued.\n\n"
                f"{inert(preview)}"
            ),
            review_form(d.preview, d.action_id),
        )

    ask.__name__ = f"ask_review_{index}"
    return ask


# One resolver per offered draft, so each question is asked (and answered) on its own. Module-level:
# the SDK reads the annotations below by name.
_ASKERS = [_asker(i) for i in range(REVIEW_BATCH)]


async def review_drafts(
    ctx: Context,
    drafts: Annotated[list[DraftView], Resolve(_pick_drafts)],
    a0: Annotated[ElicitationResult[ReviewDraft], Resolve(_ASKERS[0])],
    a1: Annotated[ElicitationResult[ReviewDraft], Resolve(_ASKERS[1])],
    a2: Annotated[ElicitationResult[ReviewDraft], Resolve(_ASKERS[2])],
    a3: Annotated[ElicitationResult[ReviewDraft], Resolve(_ASKERS[3])],
    a4: Annotated[ElicitationResult[ReviewDraft], Resolve(_ASKERS[4])],
) -> ReviewResult:
    """Put queued drafts (up to five per call) to the human in the client's own dialog.

    The human approves (the draft runs now), rejects, or dismisses (it stays queued). The agent
    cannot answer for the human. Drafts of classes that require CLI approval, and drafts that run
    a program (run_command) unless their class says chat_approval = true, are not offered: the
    result names them, for `ratchet approve` at the terminal.
    """
    engine = _engine(ctx)
    reviewed: list[DraftView] = []
    unanswered = 0
    keys = [provenance.question_key("draft", d.action_id) for d in drafts]
    asked = [engine.answers.asked_at(k) for k in keys]
    if asked:  # reading the first cannot have started before the session's previous answer
        asked[0] = engine.answers.since(engine.session_id, asked[0])
    # Before 2026-07-28 each question is put once the previous one is answered: its answer came
    # when the next question went out. On 2026-07-28 they are asked and answered in one batch,
    # whose time the drafts share.
    one_by_one = ctx.request_state is None
    for i, (draft, answer) in enumerate(zip(drafts, (a0, a1, a2, a3, a4), strict=False)):
        seconds = engine.answers.answered(keys[i])
        after, this = (asked[i + 1] if i + 1 < len(asked) else None), asked[i]
        if one_by_one and seconds is not None and after is not None and this is not None:
            seconds = max(0.0, after - this)
        elif seconds is not None and asked[0] is not None:
            start = this if one_by_one and this is not None else asked[0]
            seconds = max(0.0, engine.answers.now() - start) / (1 if one_by_one else len(drafts))
        if i == len(drafts) - 1:
            engine.answers.answer_given(engine.session_id)
        if not isinstance(answer, AcceptedElicitation) or not isinstance(answer.data, ReviewDraft):
            continue
        try:
            if answer.data.decision == "leave queued":
                continue
            if answer.data.decision == "approve":
                async with in_flight(engine).call():
                    view = await engine.approve(
                        draft.action_id,
                        reviewer="elicitation",
                        seconds=seconds,
                        channel="elicitation",
                        expect=engine.shown.get(draft.action_id, draft.digest),
                    )
            else:
                reason = answer.data.reason or "rejected in chat"
                view = await engine.reject(
                    draft.action_id, reason, reviewer="elicitation", seconds=seconds, channel="elicitation"
                )
                if view.status == "draft":
                    unanswered += 1  # too fast to have been read: no answer, it stays queued
                    continue
            reviewed.append(view)
        except RatchetError as exc:
            reviewed.append((await engine.view(draft.action_id)).model_copy(update={"error": str(exc)}))
    queue = await engine.queue()
    skipped = [(d.action_id, why) for d in queue if (why := _cli_only(engine, d)) is not None]
    remaining = len(queue)
    if not drafts:
        message = "no drafts are waiting for review in the chat"
    elif not _can_elicit(ctx):
        message = "this client cannot ask its human; review drafts with `ratchet queue` / `ratchet approve`"
    else:
        message = f"reviewed {len(reviewed)} of {len(drafts)} offered; {remaining} still queued"
        if unanswered:
            message += (
                f"; {unanswered} rejection(s) came faster than anyone could read the draft and were not "
                "taken as an answer (the drafts stay queued)"
            )
    if skipped:
        listed = "; ".join(f"draft {i}: {why}" for i, why in skipped[:10])
        message += (
            f". Not offered here ({len(skipped)}), review at the terminal with `ratchet show ID` and "
            f"`ratchet approve ID`: {listed}"
        )
    return ReviewResult(reviewed=reviewed, remaining=remaining, message=message)


# -- the edge: the table of tools, the one place a RatchetError becomes a ToolError, the call log ----


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the client sees it: the function (its signature is the schema), title and hints."""

    fn: Callable[..., Awaitable[Any]]
    title: str
    annotations: ToolAnnotations


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(write_file, "Write a file (governed)", WRITES),
    ToolSpec(edit_file, "Edit a file (governed)", WRITES),
    ToolSpec(run_command, "Run a command (governed)", RUNS),
    ToolSpec(git_status, "git status", READS),
    ToolSpec(git_diff, "git diff", READS),
    ToolSpec(git_commit, "git commit (governed)", COMMITS),
    ToolSpec(git_push, "git push (governed)", PUSHES),
    ToolSpec(trust_levels, "Trust levels", READS),
    ToolSpec(permission_prompt, "Permission prompt for headless Claude Code", HANDS_OFF),
    ToolSpec(claude_code_hook, "Claude Code's hooks (not for agents)", HANDS_OFF),
    ToolSpec(class_metrics, "Autonomy metrics", READS),
    ToolSpec(get_draft, "Get a draft", READS),
    ToolSpec(request_handoff, "Hand a decision to the human", HANDS_OFF),
    ToolSpec(get_handoff, "Get a handoff's answer", READS),
    ToolSpec(start_task, "Start a task (run contract)", HANDS_OFF),
    ToolSpec(end_task, "End the current task", HANDS_OFF),
    ToolSpec(review_drafts, "Review queued drafts with the human", WRITES),
)


def _edge(fn: Callable[..., Awaitable[Any]], log_calls: bool) -> Callable[..., Awaitable[Any]]:
    """The tool as registered: a RatchetError becomes the ToolError the model reads (here, and only
    here), and each call is one short line on stderr unless the server is quiet.

    `functools.wraps` keeps the signature and annotations the SDK builds the schema and the resolvers from.
    """
    name = fn.__name__

    @functools.wraps(fn)
    async def tool(**kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            with _traced(kwargs.get("ctx")):
                result = await fn(**kwargs)
        except RatchetError as exc:
            if log_calls:
                _log_call(name, started, None, f"error: {exc}")
            raise ToolError(str(exc)) from exc
        if log_calls:
            _log_call(name, started, result, None)
        return result

    return tool


def _traced(ctx: Any) -> contextlib.AbstractContextManager[None]:
    """The call's decisions join the client's trace (a W3C `traceparent` in the request's `_meta`, or in its
    HTTP headers) and name the request's id as the tool call they guard (ratchet/telemetry)."""
    if not isinstance(ctx, Context):
        return contextlib.nullcontext()
    request = ctx.request_context
    meta: Mapping[str, Any] = request.meta or {}
    headers = getattr(request.request, "headers", None)  # over HTTP: a client may send the W3C headers instead
    if "traceparent" not in meta and headers is not None and headers.get("traceparent"):
        meta = {k: headers.get(k) for k in ("traceparent", "tracestate") if headers.get(k)}
    return telemetry.joined(meta, request.request_id)


def _log_call(tool: str, started: float, result: Any, error: str | None) -> None:
    """`HH:MM:SS tool class level -> outcome (ms)`: enough to see calls arrive and how each went."""
    if not calls_log.isEnabledFor(logging.INFO):
        return
    action_class = level = "-"
    outcome = "ok"
    data = result.structured_content if isinstance(result, CallToolResult) else None
    if isinstance(data, dict) and "status" in data:
        action_class, level, outcome = str(data["action_class"]), str(data["level"]), str(data["status"])
    elif isinstance(result, CallToolResult) and result.is_error:
        outcome = "error"
    if error is not None:
        outcome = redact(" ".join(error.split()))[:160]
    ms = (time.monotonic() - started) * 1000
    calls_log.info(
        "ratchet: %s %s %s %s -> %s (%.0f ms)", time.strftime("%H:%M:%S"), tool, action_class, level, outcome, ms
    )


def server_version() -> str:
    """The installed package's version, for the MCP `serverInfo`; empty when it is not installed."""
    try:
        return importlib.metadata.version("ratchet-mcp")
    except importlib.metadata.PackageNotFoundError:
        return ""


def build_server(config: ServerConfig) -> MCPServer:
    """The Ratchet MCP server for one workspace; each client connection gets its own session."""

    sessions = SessionPerClient()

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[Engine]:
        engine = await Engine.open(config.workspace, policies=config.policies, db=config.db, client="mcp")
        if config.clock is not None:
            engine.answers.now = config.clock
        log.info(
            "ratchet: workspace %s, policy %s, database %s, session %s",
            engine.workspace.root,
            engine.policy.directory,
            engine.location,
            engine.session_id,
        )
        try:
            # Drafts approved on other machines whose origin is this workspace run here (engine/origin.py).
            # Under the agent's database role a reviewer-side `ratchet approve --pending` runs them instead.
            async with engine.carrying_out():
                yield engine
        finally:
            # Shielded: on a signal this runs inside a cancelled scope, and the database must still close,
            # after every cancelled call has recorded itself.
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(DRAIN_S):
                    await in_flight(engine).drained()
                # Each session's open task and its actions outside any task are judged by their task-end checks.
                for session in (engine, *sessions.engines()):
                    with anyio.move_on_after(END_CHECKS_S):
                        try:
                            await session.end_session()
                        except Exception as exc:
                            log.warning("ratchet: task-end checks at session end: %s", exc)
                await engine.close()
            if config.closed is not None:
                config.closed.set()

    mcp = MCPServer(
        "ratchet",
        version=server_version(),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        middleware=[sessions, ArgumentErrors()],
    )
    for spec in TOOLS:
        mcp.add_tool(_edge(spec.fn, not config.quiet), title=spec.title, annotations=spec.annotations)
    return mcp
