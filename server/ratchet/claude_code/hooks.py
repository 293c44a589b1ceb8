"""`ratchet hook claude-code`: Claude Code's own tools behind the same gate as Ratchet's.

Claude Code runs this command once per hook event: one JSON object on stdin, the answer on stdout.
Its built-in Bash, Write, Edit, MultiEdit and NotebookEdit are translated into the Ratchet call they
amount to (run_command, write_file, edit_file), classified by the team's policy and decided by the
class's level, in the client's own session (`claude-<session_id>`):

    autonomous -> allow   the client runs it (Bash: under its class's sandbox profile, through the
                          input rewrite of hook_sandbox.py); PostToolUse / PostToolUseFailure report
                          how it went
    confirm    -> ask     Claude Code's own dialog is the human's answer, recorded as evidence
    draft      -> deny    the change is queued in Ratchet's inbox; approving it from the CLI makes it
                          through Ratchet's executor; the agent is told where it went, not to retry
    blocked    -> deny    with the escalation packet as the reason

Tools Ratchet does not govern (Read, Grep, Glob, WebFetch, Task, mcp__*, ...) get no answer at all
(exit 0, empty stdout), so the client's own permission rules apply to them; Ratchet's MCP tools are
gated inside Ratchet's server. Anything that goes wrong while deciding a governed call - unreadable
input, a broken policy, an unusable database, any exception, running out of time - is answered with
a deny that says why: never an allow by default.

Shapes relied on, checked in November 2026 against the hooks reference
(https://code.claude.com/docs/en/hooks: common input fields, PreToolUse input and decision control,
PostToolUse, PostToolUseFailure, PermissionDenied) and, where the reference is silent, Claude Code's
source (services/tools/toolExecution.ts, toolHooks.ts, hooks/useCanUseTool.tsx):

- every event: session_id, transcript_path, cwd, permission_mode, hook_event_name.
- PreToolUse adds tool_name, tool_input, tool_use_id. Answer: {"hookSpecificOutput": {"hookEventName":
  "PreToolUse", "permissionDecision": "allow" | "ask" | "deny", "permissionDecisionReason": "..."}}.
  `allow` skips the dialog but not the settings' deny/ask rules; `ask` forces the dialog whatever the
  permission mode (its reason is shown to the human); a `deny` reason is shown to the model.
- tool_input: Bash {command, description, timeout (ms), run_in_background}; Write {file_path,
  content}; Edit {file_path, old_string, new_string, replace_all}; MultiEdit {file_path, edits:
  [{old_string, new_string, replace_all}]}; NotebookEdit {notebook_path, cell_id, new_source,
  cell_type, edit_mode}. File paths are absolute (relative ones are taken from `cwd`).
- PostToolUse (adds tool_response, duration_ms) follows a call that ran; PostToolUseFailure (adds error,
  is_interrupt) one that failed; both run before the tool's result enters the transcript.
- PermissionDenied (adds reason) fires only after auto mode's classifier denied a call.
- A command hook that exits 0 is read from stdout; exit 2 blocks (stderr is the reason); any other
  exit, or a timeout, is a non-blocking error and the call goes ahead, unless the hook entry says
  `onFailure: "block"` (Claude Code 2.1.295 and later; `ratchet install` writes it wherever the
  version has it). That is why `ratchet install` also runs the PreToolUse command as `... || exit 2`,
  and why this module answers within a deadline.
- The same events reach `claude_code` through Ratchet's MCP server when the hooks are of type
  `mcp_tool` (mcp_server.claude_code_hook): the event's fields as the tool's arguments, the answer
  as the tool's text (`{}` for none), decided with the server's open engine (`HookOptions.shared`).

An outcome event is bound to its call: it settles only the waiting call of the same session, the same
tool and the same tool_use_id; one that names another session's call or another tool settles nothing
(a note on stderr, never an error the client sees).

A human who declines Claude Code's dialog fires no event: the call just never runs. So on Stop,
UserPromptSubmit and SessionEnd this module settles the session's asked (and allowed) calls that
have a result in the session's transcript but no reported outcome: they did not run, and an asked one
counts as declined, like a declined confirmation over MCP. A call whose result is not in the
transcript yet is left waiting for a later event.

No answer is no evidence. An unattended session cannot answer an `ask`: `claude -p` denies it
without showing anyone. So when the session is unattended a confirm-level call is queued as a draft
(denied with the draft's id and "a human will review it"), exactly as over MCP when the client cannot
elicit. The signals, read from the hook's environment (Claude Code passes its own to hooks):
`CLAUDE_CODE_SESSION_ATTENDED=0` (newer Claude Code), or `CLAUDE_CODE_ENTRYPOINT=sdk-cli` (`-p` mode,
every version seen). `RATCHET_HOOK_ATTENDED=1` overrides both, for an SDK host that does put the
question to a person (its `canUseTool` callback); `=0` forces unattended. If an ask is denied anyway
and the transcript's tool_result is this module's own `ask` reason (which no human decline produces:
Claude Code's decline text is its own), the call is settled as `unanswered`: no sample, no streak.

Auto mode (`permission_mode: "auto"` in the event): Claude Code's classifier model decides the
permission prompts nobody else decides. Found in Claude Code 2.1.337, interactive: a hook's `ask` is
still put to the person at the terminal and the classifier is not consulted; `claude -p` denies it.
Claude Code's documentation does not promise that for every version, so an answer to an `ask` given
while the session is in auto mode is recorded under its own channel, `auto-mode`: the call runs when
approved, but its success is never a sample, and a decline is no person's evidence. PermissionDenied
(the classifier denied a call) is `unanswered`. Switch the session to default mode (Shift+Tab) for
answers that count.

No MCP import here, and the engine is imported only once a governed event needs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ratchet.claude_code.events import GOVERNED_TOOLS, OUTCOME_EVENTS, SETTLE_EVENTS, unattended
from ratchet.claude_code.hook_sandbox import sandboxed_bash
from ratchet.engine import Engine, Evaluation
from ratchet.errors import InvalidRequest, RatchetError
from ratchet.executors import fs
from ratchet.inert import inert
from ratchet.operations import sandbox_status_async
from ratchet.operations.confine import confinement
from ratchet.record.store import resolve_location
from ratchet.redact import redact
from ratchet.rules.gate import Route
from ratchet.rules.provenance import AUTO_MODE

if TYPE_CHECKING:
    from ratchet.policy.load import PolicyCache
    from ratchet.record.store import Location

DEFAULT_DEADLINE_S = 20.0
# The hook process's own hard limit: at this point it prints a deny and exits, whatever it is doing.
# A Claude Code without onFailure lets a call go ahead when a hook times out (install.HOOK_TIMEOUT_S,
# 60 s), so both limits sit well inside it.
HARD_DEADLINE_S = 30.0
# Longest Bash command decided; longer is denied before anything else is read. Linux refuses a
# single argument over 128 KiB (MAX_ARG_STRLEN), so `bash -c` could not run one much longer anyway.
MAX_BASH_CHARS = 64 * 1024
CLIENT = "claude-code"
ASK_PREFIX = "Ratchet asks: "  # the start of every `ask` reason; a tool_result carrying it was never answered


@dataclass(frozen=True)
class HookOptions:
    """Where to decide: the workspace (default: the event's cwd), policy directory, database, deadline."""

    workspace: Path | None = None
    policies: Path | None = None
    db: Location | None = None
    deadline_s: float = DEFAULT_DEADLINE_S
    # A long-lived process (the resident hook server) keeps loaded policies while their files are unchanged.
    policies_cache: PolicyCache | None = None
    # An engine already open on the workspace (Ratchet's MCP server answering `mcp_tool` hooks): each event
    # acts in the client's session over its database and policy, which are not closed after the event.
    shared: Engine | None = None


@dataclass(frozen=True)
class _Call:
    """A built-in tool call as the Ratchet call it amounts to."""

    tool: str
    args: dict[str, Any]
    intent: str | None = None
    # NotebookEdit: classified as an edit of the notebook, recorded as what it really is.
    notebook: dict[str, Any] | None = None


async def claude_code(raw: bytes | str, options: HookOptions, *, attended: bool | None = None) -> str:
    """Answer one Claude Code hook event: the text to print on stdout ('' for no answer). Never raises.

    A governed PreToolUse gets a decision; outcome events feed the trust window; Stop,
    UserPromptSubmit and SessionEnd settle calls the human declined; everything else gets ''.
    `attended`: whether a human can answer an `ask` (default: read from this process's environment,
    `unattended`); the resident hook server is told it by the hook process.
    """
    if attended is None:
        attended = not unattended()
    try:
        event = _parse(raw)
    except Exception as exc:
        return _decision("deny", f"Ratchet could not read the hook event ({exc}); nothing was run.")
    name, tool = event["hook_event_name"], event.get("tool_name")
    try:
        with anyio.fail_after(options.deadline_s):
            if name == "PreToolUse":
                return await _pre_tool_use(event, options, attended) if tool in GOVERNED_TOOLS else ""
            if name in OUTCOME_EVENTS and tool in GOVERNED_TOOLS:
                await _outcome(event, options)
            elif name in SETTLE_EVENTS:
                await _settle(event, options)
            return ""
    except Exception as exc:
        why = (
            f"Ratchet did not decide within {options.deadline_s:g}s"
            if isinstance(exc, TimeoutError)
            else f"Ratchet could not decide: {_describe(exc)}"
        )
        if name == "PreToolUse":
            return _decision("deny", f"{why}. Nothing was run; tell the human (fail closed).")
        print(f"ratchet hook: {name}: {why}", file=sys.stderr)
        return ""


def _parse(raw: bytes | str) -> dict[str, Any]:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if not text.strip():
        raise InvalidRequest("stdin was empty; expected one JSON object")
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"stdin is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidRequest("stdin is not a JSON object")
    if not isinstance(event.get("hook_event_name"), str):
        raise InvalidRequest("hook_event_name is missing")
    return event


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RatchetError) else f"{type(exc).__name__}: {exc}"


def _decision(decision: str, reason: str, updated: dict[str, Any] | None = None) -> str:
    answer: dict[str, Any] = {
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": inert(redact(reason)),  # shown by the client's dialog
    }
    if updated is not None:
        answer["updatedInput"] = updated
    return json.dumps({"hookSpecificOutput": answer})


async def _sandboxed_input(
    engine: Engine, event: dict[str, Any], ev: Evaluation, approved: bool
) -> dict[str, Any] | None:
    """An allowed or asked Bash call's input (Claude Code's, or Codex's shell, which its hook events
    also name Bash), rewritten to run under its class's sandbox profile (hook_sandbox.py); None when it runs as
    written (no sandbox on this host, or the class opts out)."""
    tool_input = event.get("tool_input")
    if event["tool_name"] != "Bash" or not isinstance(tool_input, dict) or not ev.cls.sandbox:
        return None
    if not (await sandbox_status_async()).available:
        return None  # the gate held the call to a human's confirmation (trigger no-sandbox)
    confined = confinement(
        engine.workspace,
        engine.policy.defaults.commands,
        sandbox=True,
        profile=ev.cls.profile,
        network=ev.cls.network,
        approved=approved,
    )
    return {**tool_input, "command": sandboxed_bash(_str(tool_input, "command"), confined)}


# -- opening the engine ------------------------------------------------------------------------


def _workspace(event: dict[str, Any], options: HookOptions) -> Path:
    if options.workspace is not None:
        return options.workspace
    cwd = event.get("cwd")
    if not isinstance(cwd, str) or not cwd:
        raise InvalidRequest("the event has no cwd and no --workspace was given")
    return Path(cwd)


def _session(event: dict[str, Any]) -> str:
    sid = event.get("session_id")
    return f"claude-{sid if isinstance(sid, str) and sid else 'unknown'}"


async def _open(event: dict[str, Any], options: HookOptions) -> Engine:
    if options.shared is not None:
        engine = options.shared.for_session(_session(event))
        await engine.start_session(CLIENT)
        return engine
    cache = options.policies_cache
    return await Engine.open(
        _workspace(event, options),
        policies=options.policies,
        db=options.db,
        client=CLIENT,
        session=_session(event),
        loader=None if cache is None else cache.load,
    )


async def _close(engine: Engine, options: HookOptions) -> None:
    if options.shared is None:
        await engine.close()


# -- PreToolUse --------------------------------------------------------------------------------


async def _pre_tool_use(event: dict[str, Any], options: HookOptions, attended: bool) -> str:
    engine = await _open(event, options)
    try:
        return await _decide_event(engine, event, attended=attended)
    finally:
        await _close(engine, options)


async def _decide_event(engine: Engine, event: dict[str, Any], *, attended: bool) -> str:
    """Classify and decide one governed PreToolUse; with nobody to answer, a confirm becomes a draft."""
    call: _Call | None = None
    try:
        call = _translate(engine, event)
        ev = await engine.evaluate(call.tool, call.args, shell_rule=False, can_elicit=attended)
    except RatchetError as exc:
        tool, args = _refusal(event, call)
        await engine.refuse(tool, args, exc, intent=call.intent if call else None, confidence=None)
        return _decision("deny", f"Ratchet refused {event['tool_name']}: {exc}. Nothing was run.")
    return await _decide(engine, event, call, ev)


async def _decide(engine: Engine, event: dict[str, Any], call: _Call, ev: Evaluation) -> str:
    d, route = ev.decision, ev.decision.route
    why = f"class {d.class_name} ({d.rule}) is at {d.class_level.label}" + "".join(
        f"; {t.name}: {t.detail}" for t in d.triggers
    )
    what = f"{event['tool_name']} {ev.prepared.target}"
    if call.notebook is not None:
        if route is Route.DRAFT:
            msg = (
                f"Ratchet: {what} would be queued as a draft ({why}), but a notebook edit cannot be drafted "
                "for Ratchet to apply, so nothing was changed or queued. Do not retry it: ask the human to make "
                "this change, or write the whole notebook with Write, which can be drafted."
            )
            await engine.refuse(
                "edit_file", {"path": ev.prepared.target}, InvalidRequest(msg), intent=None, confidence=None
            )
            return _decision("deny", msg)
        preview = (
            f"NotebookEdit {ev.prepared.target}: {call.notebook.get('edit_mode') or 'replace'} cell "
            f"{call.notebook.get('cell_id') or '(new)'}\n{call.notebook.get('new_source') or ''}"
        )
        ev = dataclasses.replace(ev, prepared=dataclasses.replace(ev.prepared, args=call.notebook, preview=preview))
    tool_use_id = event.get("tool_use_id")
    external_id = tool_use_id if isinstance(tool_use_id, str) and tool_use_id else f"missing-{uuid.uuid4().hex}"
    # Before anything is recorded: a sandbox that cannot be planned is a deny (fail closed), never a bare run.
    updated = None
    if route in (Route.EXECUTE, Route.CONFIRM):
        updated = await _sandboxed_input(engine, event, ev, approved=route is Route.CONFIRM)
    outcome = await engine.record_external(ev, external_id, intent=call.intent, external_tool=event["tool_name"])
    if route is Route.EXECUTE:
        return _decision("allow", f"Ratchet: {what}: {why}; it runs and is recorded.", updated)
    if route is Route.CONFIRM:
        return _decision(
            "ask", f"{ASK_PREFIX}{what}. Why: {why}. Your answer is recorded as evidence for the class.", updated
        )
    if route is Route.DRAFT:
        n = outcome.draft_id
        return _decision(
            "deny",
            f"Ratchet queued this as draft {n} ({why}); a human will review it. Nothing was changed yet. Do not retry "
            "it or make the same change another way: a human reviews it with `ratchet show "
            f"{n}` and approves it with `ratchet approve {n}` (or review_drafts in the chat), which makes "
            f"exactly this change. Carry on with other work; get_draft({n}) shows its state.",
        )
    return _decision(
        "deny",
        f"Ratchet stopped this call ({why}); nothing was run. Do not retry it or do the same another way: call "
        f"get_handoff({outcome.action_id}, wait_s=...) for the human's answer.\n\n{outcome.message}",
    )


def _refusal(event: dict[str, Any], call: _Call | None) -> tuple[str, dict[str, Any]]:
    """What to record for a call refused before it could be classified."""
    raw = event.get("tool_input")
    tool_input: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = event["tool_name"]
    if name == "Bash":
        return "run_command", {"path": redact(str(tool_input.get("command", ""))[:4096])[:200]}
    path = tool_input.get("notebook_path" if name == "NotebookEdit" else "file_path", "")
    tool = call.tool if call else ("write_file" if name == "Write" else "edit_file")
    return tool, {"path": str(path)}


def _translate(engine: Engine, event: dict[str, Any]) -> _Call:
    """The Ratchet call a built-in tool call amounts to (InvalidRequest if its input is malformed)."""
    tool_input = event.get("tool_input")
    if not isinstance(tool_input, dict):
        raise InvalidRequest("tool_input is missing or not an object")
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    name = event["tool_name"]
    if name == "Bash":
        return _bash(engine, tool_input, cwd)
    if name == "Write":
        return _Call(
            "write_file", {"path": _path(tool_input, "file_path", cwd), "content": _str(tool_input, "content")}
        )
    if name == "Edit":
        edit = (_str(tool_input, "old_string"), _str(tool_input, "new_string"), tool_input.get("replace_all") is True)
        return _edits(engine, _path(tool_input, "file_path", cwd), [edit])
    if name == "MultiEdit":
        raw = tool_input.get("edits")
        if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
            raise InvalidRequest("MultiEdit edits must be a non-empty list of objects")
        edits = [(_str(e, "old_string"), _str(e, "new_string"), e.get("replace_all") is True) for e in raw]
        return _edits(engine, _path(tool_input, "file_path", cwd), edits)
    return _notebook(engine, tool_input, cwd)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{key} must be a string")
    return value


def _path(tool_input: dict[str, Any], key: str, cwd: str | None) -> str:
    path = _str(tool_input, key)
    if path and not path.startswith("/") and cwd:
        path = f"{cwd.rstrip('/')}/{path}"  # joined as text: Workspace.relpath resolves it, links and all
    return path


def _bash(engine: Engine, tool_input: dict[str, Any], cwd: str | None) -> _Call:
    command = _str(tool_input, "command")
    if len(command) > MAX_BASH_CHARS:
        raise InvalidRequest(
            f"the Bash command is {len(command)} characters, over Ratchet's hook limit of {MAX_BASH_CHARS}; "
            "write the script to a file with Write and run that file instead"
        )
    if not command.strip():
        raise InvalidRequest("the Bash command is empty")
    args: dict[str, Any] = {"command": command}
    if cwd:
        root, here = engine.workspace.root, Path(cwd).resolve()
        if here != root:
            if not here.is_relative_to(root):
                raise InvalidRequest(f"Bash runs in {cwd}, outside the workspace {root}; Ratchet governs the workspace")
            args["cwd"] = here.relative_to(root).as_posix()
    timeout = tool_input.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        # Claude Code counts milliseconds; a draft runs under the policy's longest timeout at most.
        args["timeout_s"] = min(timeout / 1000, engine.policy.defaults.commands.max_timeout_s)
    description = tool_input.get("description")
    return _Call("run_command", args, description if isinstance(description, str) and description else None)


def _edits(engine: Engine, path: str, edits: list[tuple[str, str, bool]]) -> _Call:
    """Edit/MultiEdit as edit_file; `replace_all` becomes the number of occurrences at that point."""
    state = fs.read_state(engine.workspace, path)
    if edits[0][0] == "" and not state.text:
        # Claude Code creates a file from an empty old_string (when the file is missing or empty).
        text = edits[0][1]
        for old, new, replace_all in edits[1:]:
            text = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        return _Call("write_file", {"path": path, "content": text})
    # Counted exactly as fs.plan_edit will match: in order, on LF text when the file is CRLF.
    crlf = state.newline == "\r\n"
    text = (state.text or "").replace("\r\n", "\n") if crlf else state.text or ""
    specs: list[dict[str, Any]] = []
    for old, new, replace_all in edits:
        o, n = (old.replace("\r\n", "\n"), new.replace("\r\n", "\n")) if crlf else (old, new)
        count = None
        if o and replace_all:
            count = text.count(o) or None
            text = text.replace(o, n)
        elif o:
            text = text.replace(o, n, 1)
        specs.append({"old_text": old, "new_text": new, "count": count})
    return _Call("edit_file", {"path": path, "edits": specs})


def _notebook(engine: Engine, tool_input: dict[str, Any], cwd: str | None) -> _Call:
    """NotebookEdit is judged as an edit of the notebook: its class is edit_file's class of that path."""
    path = _path(tool_input, "notebook_path", cwd)
    state = fs.read_state(engine.workspace, path)
    if not state.text:
        raise InvalidRequest(f"{path} does not exist or is empty; NotebookEdit edits an existing notebook")
    # A no-op edit of the whole file: classified, triggered and fingerprinted like any edit of it.
    unchanged = [{"old_text": state.text, "new_text": state.text, "count": None}]
    notebook = {k: tool_input.get(k) for k in ("cell_id", "cell_type", "edit_mode", "new_source")}
    notebook["path"] = engine.workspace.relpath(path)
    return _Call("edit_file", {"path": path, "edits": unchanged}, notebook=notebook)


# -- outcomes ----------------------------------------------------------------------------------


async def _outcome(event: dict[str, Any], options: HookOptions) -> None:
    """PostToolUse, PostToolUseFailure and PermissionDenied: the window hears how an allowed or asked call went."""
    tool_use_id = event.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest("tool_use_id is missing")
    name = event["hook_event_name"]
    response = event.get("tool_response")
    interrupted = isinstance(response, dict) and response.get("interrupted") is True
    ran = name != "PermissionDenied"
    ok = name == "PostToolUse" and not interrupted
    # PermissionDenied fires only when auto mode's classifier denied the call: nobody's answer.
    answered = name != "PermissionDenied"
    engine = await _open(event, options)
    try:
        # Bound to its call: only this session's waiting call of the same tool with this id is settled.
        # Anything else (another session's id, another tool, a call already settled) is ignored, with a note.
        tool = event["tool_name"]
        if tool_use_id not in await engine.waiting_external(tool):
            print(
                f"ratchet hook: {name} for {tool} {tool_use_id}: no call of session {engine.session_id} and tool "
                f"{tool} waits for it; ignored",
                file=sys.stderr,
            )
            return
        await engine.record_external_outcome(
            tool_use_id,
            ran=ran,
            ok=ok,
            answered=answered,
            answered_at=answer_moment(event, engine.answers.now()),
            external_tool=tool,
            channel=answer_channel(event),
        )
    finally:
        await _close(engine, options)


def answer_moment(event: dict[str, Any], now: float) -> float | None:
    """When the dialog of a call that ran was answered: the outcome's arrival (`now`) less the tool's own
    run, `duration_ms`, which Claude Code's PostToolUse and PostToolUseFailure carry (its clock starts once
    the permission was given); None, timed to the arrival, when the event has no usable `duration_ms`."""
    ms = event.get("duration_ms")
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms < 1e10:
        return None
    return now - ms / 1000.0


async def _settle(event: dict[str, Any], options: HookOptions) -> None:
    """Calls with a result in the transcript but no reported outcome did not run (asked: declined)."""
    workspace = _workspace(event, options)
    db = resolve_location(options.db, workspace.resolve())
    if options.shared is None and isinstance(db, Path) and not db.exists():
        return  # nothing was ever recorded here; do not create a database for a Stop
    engine = await _open(event, options)
    try:
        waiting = await engine.waiting_external()
        path = event.get("transcript_path")
        if not waiting or not isinstance(path, str) or not path:
            return
        for external_id, found in sorted(transcript_answers(Path(path), waiting).items()):
            # Timed to the result's own moment in the transcript, not to this later event.
            await engine.record_external_outcome(
                external_id,
                ran=False,
                ok=False,
                answered=found.answered,
                answered_at=found.at,
                channel=answer_channel(event),
            )
    finally:
        await _close(engine, options)


def answer_channel(event: dict[str, Any]) -> str:
    """Where an asked call's answer came from: Claude Code's dialog (`hook-dialog`), or, when the session
    is in auto mode, `auto-mode`: the client's classifier may answer permission prompts there, so the
    answer is recorded as what it may be and never as a person's evidence."""
    return AUTO_MODE if event.get("permission_mode") == "auto" else "hook-dialog"


def answered_in_transcript(path: Path, ids: set[str]) -> set[str]:
    """Which of `ids` have a tool_result in a Claude Code transcript (JSON lines); unreadable -> none."""
    return set(transcript_answers(path, ids))


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


@dataclass(frozen=True)
class TranscriptAnswer:
    """A call's result found in a transcript: whether a human could have answered it (False when the
    result is Ratchet's own `ask` reason: the client denied it unasked) and when (the entry's
    timestamp, Unix time; None when the entry has none)."""

    answered: bool
    at: float | None


def _moment(entry: dict[str, Any]) -> float | None:
    stamp = entry.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def transcript_answers(path: Path, ids: set[str]) -> dict[str, TranscriptAnswer]:
    """The `ids` with a tool_result in a Claude Code transcript (see TranscriptAnswer). Unreadable -> none."""
    found: dict[str, TranscriptAnswer] = {}
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"tool_result"' not in line or not any(i in line for i in ids - found.keys()):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                message = entry.get("message") if isinstance(entry, dict) else None
                content = message.get("content") if isinstance(message, dict) else None
                for block in content if isinstance(content, list) else []:
                    if (
                        isinstance(block, dict)
                        and block.get("type") == "tool_result"
                        and block.get("tool_use_id") in ids
                    ):
                        found[block["tool_use_id"]] = TranscriptAnswer(
                            ASK_PREFIX not in _result_text(block), _moment(entry)
                        )
    except OSError:
        return found
    return found


# -- Claude Code's --permission-prompt-tool ------------------------------------------------------

OWN_TOOL_PREFIX = "mcp__ratchet__"  # Ratchet's own MCP tools, as Claude Code names them (server "ratchet")


async def permission_prompt(engine: Engine, tool_name: str, tool_input: Any, tool_use_id: str | None) -> dict[str, Any]:
    """Answer Claude Code's `--permission-prompt-tool` for a headless run, from the class's level alone.

    Claude Code (`claude -p`) calls it when one of its tools needs permission and nobody is at the
    terminal. The answer is what Claude Code's permission tool contract expects: `{"behavior": "allow",
    "updatedInput": {...}}` or `{"behavior": "deny", "message": "..."}`. Governed tools are decided as
    the PreToolUse hook decides them with no human present: autonomous -> allow; confirm and draft ->
    a queued draft and a deny naming its id; blocked -> a deny carrying the packet. Ratchet's own MCP
    tools are allowed (Ratchet's gate decides inside them); any other tool is denied (fail closed),
    with a message saying how to allow it in Claude Code's own settings.
    """
    if tool_name.startswith(OWN_TOOL_PREFIX):
        return {"behavior": "allow", "updatedInput": tool_input if isinstance(tool_input, dict) else {}}
    if tool_name not in GOVERNED_TOOLS:
        return {
            "behavior": "deny",
            "message": (
                f"Ratchet answers permission prompts for {', '.join(GOVERNED_TOOLS)} and its own tools only; "
                f"{tool_name} was not allowed. To let headless runs use it, add it to permissions.allow in Claude "
                "Code's settings."
            ),
        }
    event: dict[str, Any] = {
        "hook_event_name": "PreToolUse",
        "session_id": engine.session_id,
        "cwd": str(engine.workspace.root),
        "tool_name": tool_name,
        "tool_input": tool_input,
        "tool_use_id": tool_use_id or f"missing-{uuid.uuid4().hex}",
    }
    answer = json.loads(await _decide_event(engine, event, attended=False))["hookSpecificOutput"]
    if answer["permissionDecision"] == "allow":
        return {"behavior": "allow", "updatedInput": answer.get("updatedInput", tool_input)}
    return {"behavior": "deny", "message": answer["permissionDecisionReason"]}


# -- the hook's own process --------------------------------------------------------------------


def answer_event(options: HookOptions, raw: bytes | None = None) -> int:
    """The whole hook process: the event (`raw`, else stdin), the answer (if any) on stdout; exit 0."""
    answer = anyio.run(claude_code_process, sys.stdin.buffer.read() if raw is None else raw, options)
    if answer:
        print(answer, flush=True)
    return 0


async def claude_code_process(raw: bytes, options: HookOptions, hard_deadline_s: float = HARD_DEADLINE_S) -> str:
    """`claude_code` as the hook's whole process: past `hard_deadline_s`, a governed PreToolUse is
    answered `deny` and the process exits, even if the decision is stuck in CPU-bound work that the
    cooperative deadline cannot interrupt. Only for the process that answers one event (it exits)."""
    pre_tool_use = False
    try:
        event = json.loads(raw)
        pre_tool_use = event.get("hook_event_name") == "PreToolUse" and event.get("tool_name") in GOVERNED_TOOLS
    except (ValueError, AttributeError):
        pass  # claude_code answers unreadable input itself, at once
    late = (
        _decision("deny", f"Ratchet did not decide within {hard_deadline_s:g}s. Nothing was run; tell the human.")
        if pre_tool_use
        else ""
    )
    with _process_deadline(hard_deadline_s, late):
        return await claude_code(raw, options)


@contextmanager
def _process_deadline(seconds: float, answer: str) -> Iterator[None]:
    """Print `answer` and exit 0 if the block is still running after `seconds` (SIGALRM, main thread)."""

    def expire(signum: int, frame: object) -> None:
        os.write(1, (answer + "\n").encode() if answer else b"")
        os.write(2, f"ratchet hook: no decision within {seconds:g}s\n".encode())
        os._exit(0)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
