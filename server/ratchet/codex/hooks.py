"""`ratchet hook codex`: Codex's own shell and apply_patch behind the same gate as Ratchet's tools.

Codex runs this command for its PreToolUse and PostToolUse events (`ratchet install codex` sets it up):
one JSON object on stdin, the answer on stdout. The classification and decision are the Claude Code
hook's (`hooks`): the same translation of a shell string into run_command, the same policy, the same
gate, the same drafts and packets. What differs is Codex's vocabulary and what its hooks can answer.

Shapes relied on, seen from the real Codex 0.171 (and its source, codex-rs/hooks, where it was silent):

- every event: session_id, turn_id, transcript_path, cwd, hook_event_name, model, permission_mode.
- PreToolUse adds tool_name, tool_input, tool_use_id. Codex's shell (exec_command, shell, ...) arrives
  as tool_name `Bash` with tool_input {"command": "<the shell string>"}; apply_patch as tool_name
  `apply_patch` with tool_input {"command": "<the whole patch>"}; MCP tools as mcp__SERVER__TOOL.
- PreToolUse answers: {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
  "deny", "permissionDecisionReason": "..."}} blocks the call and shows the reason to the model; exit
  2 with a reason on stderr does the same. `allow` alone and `ask` are unsupported: Codex logs the
  hook as failed and the call goes ahead. `allow` with `updatedInput` rewrites the call's input.
  Empty stdout is no opinion: Codex's own sandbox and approval policy decide as usual.
- Fail open: a hook that exits with any other code, prints something that is not a decision, or
  runs past its `timeout` is logged as failed and the call goes ahead. That is why `ratchet install
  codex` runs this command as `... || { echo reason >&2; exit 2; }` (a missing or crashing Ratchet
  blocks) and why this process answers a deny by itself within `hooks.HARD_DEADLINE_S`, well inside
  the hook's timeout. A timeout enforced by Codex (a process stopped, never scheduled) still lets
  the call through; nothing in a hook can close that.
- PostToolUse adds tool_response: the shell's output as text, without its exit code. It follows a
  shell command whatever its exit code, and an apply_patch only when the patch applied. The exit
  code is read from the session's transcript (rollout JSON lines: an `item_completed` event whose
  item has the call's id, a `status` and, for a command, an `exit_code`), which Codex has written
  when PostToolUse runs; a call whose result is not found there is left waiting (no evidence).

Decisions, per class level of the call (Codex's hooks cannot ask, so nobody can answer a confirm here):

    autonomous -> no answer  Codex runs it under its own sandbox and approval policy; the call is
                             recorded and PostToolUse reports how it went. A shell command is
                             allowed with its input rewritten to run under its class's sandbox
                             profile, as Claude Code's Bash (claude_code/hook_sandbox.py), inside
                             `( ...\n) </dev/null`: Codex's `write_stdin` (which fires no hook)
                             cannot type into it later. Ratchet's sandbox cannot start inside
                             Codex's own (`workspace-write`, `read-only`: its seccomp filter
                             refuses new namespaces); there the command fails without running,
                             saying so. Under `--sandbox danger-full-access` it runs confined.
    confirm    -> deny       queued as a draft, exactly as when an MCP client cannot ask
    draft      -> deny       queued as a draft for the person (`ratchet approve N`)
    blocked    -> deny       with the escalation packet

An apply_patch is judged as the file writes it makes: every file in it by its own class (an added
file as write_file of its content, an updated one as edit_file of the whole file to its patched text,
a deleted one as run_command `rm -- PATH`, a move as both). The patch runs only when every file in it
is autonomous; otherwise none of it runs, each non-autonomous file is queued or stopped on its own,
and the reason names them all, including the files that would have been allowed.

Anything that goes wrong while deciding (unreadable event, a patch that does not parse or apply, a
broken policy, an unusable database, running out of time) is a deny that says why. Sessions are
recorded as `codex-<session_id>` under client `codex`.
"""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ratchet.claude_code import hooks
from ratchet.engine import Engine
from ratchet.errors import InvalidRequest, RatchetError
from ratchet.executors import fs
from ratchet.executors.workspace import find_project_root
from ratchet.record.store import parse_location, resolve_location
from ratchet.redact import redact
from ratchet.rules.gate import Route

if TYPE_CHECKING:
    from ratchet.engine import Engine, Evaluation

CLIENT = "codex"
SHELL = "Bash"  # Codex's name, in hook events, for its shell tools
PATCH = "apply_patch"
GOVERNED = (SHELL, PATCH)
MATCHER = f"^({SHELL}|{PATCH})$"
MAX_PATCH_CHARS = 1024 * 1024
USE_RATCHET = (
    "Codex's own shell and apply_patch cannot put a question to the person; Ratchet's own tools (write_file, "
    "edit_file, run_command) can, where Codex shows questions. Wait for the person to review what was queued, "
    "or use Ratchet's tools for the changes you still need."
)


# -- the apply_patch format ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileOp:
    """One file operation of a patch: `add` (content), `delete`, or `update` (hunks; `move_to`)."""

    kind: str
    path: str
    content: str = ""
    hunks: tuple[tuple[str | None, tuple[str, ...]], ...] = ()
    move_to: str | None = None


def parse_patch(text: str) -> list[FileOp]:
    """The file operations of an apply_patch text (`*** Begin Patch` ... `*** End Patch`).

    Raises InvalidRequest naming the line that is not of the format."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != "*** Begin Patch":
        raise InvalidRequest("the patch does not start with '*** Begin Patch'")
    if lines[-1].strip() != "*** End Patch":
        raise InvalidRequest("the patch does not end with '*** End Patch'")
    ops: list[FileOp] = []
    i, body = 1, lines[:-1]
    while i < len(body):
        line = body[i]
        if line.startswith("*** Add File: "):
            path, i = line[len("*** Add File: ") :].strip(), i + 1
            added: list[str] = []
            while i < len(body) and not body[i].startswith("*** "):
                if not body[i].startswith("+"):
                    raise InvalidRequest(f"patch line {i + 1}: a line of an added file must start with '+'")
                added.append(body[i][1:])
                i += 1
            ops.append(FileOp("add", path, content="".join(f"{a}\n" for a in added)))
        elif line.startswith("*** Delete File: "):
            ops.append(FileOp("delete", line[len("*** Delete File: ") :].strip()))
            i += 1
        elif line.startswith("*** Update File: "):
            path, i = line[len("*** Update File: ") :].strip(), i + 1
            move_to = None
            if i < len(body) and body[i].startswith("*** Move to: "):
                move_to, i = body[i][len("*** Move to: ") :].strip(), i + 1
            hunks: list[tuple[str | None, tuple[str, ...]]] = []
            context: str | None = None
            chunk: list[str] = []
            while i < len(body) and (not body[i].startswith("*** ") or body[i].strip() == "*** End of File"):
                line = body[i]
                if line.startswith("@@"):
                    if chunk:
                        hunks.append((context, tuple(chunk)))
                        chunk = []
                    context = line[2:].strip() or None
                elif line.strip() == "*** End of File":
                    pass
                elif line[:1] in (" ", "+", "-") or line == "":
                    chunk.append(line if line else " ")
                else:
                    raise InvalidRequest(f"patch line {i + 1}: expected a hunk line (' ', '+', '-' or '@@')")
                i += 1
            if chunk:
                hunks.append((context, tuple(chunk)))
            if not hunks and move_to is None:
                raise InvalidRequest(f"the patch updates {path} without a hunk")
            ops.append(FileOp("update", path, hunks=tuple(hunks), move_to=move_to))
        elif not line.strip():
            i += 1
        else:
            raise InvalidRequest(
                f"patch line {i + 1}: expected '*** Add File:', '*** Delete File:' or '*** Update File:'"
            )
    if not ops:
        raise InvalidRequest("the patch changes no file")
    return ops


def _seek(lines: list[str], wanted: list[str], start: int) -> int:
    """Where `wanted` occurs in `lines` at or after `start`: exact, then ignoring trailing and then
    surrounding whitespace (as Codex matches); -1 if nowhere."""
    if not wanted:
        return start
    for norm in (lambda s: s, str.rstrip, str.strip):
        target = [norm(w) for w in wanted]
        for at in range(start, len(lines) - len(wanted) + 1):
            if [norm(x) for x in lines[at : at + len(wanted)]] == target:
                return at
    return -1


def apply_hunks(path: str, text: str, hunks: tuple[tuple[str | None, tuple[str, ...]], ...]) -> str:
    """The text of `path` after the patch's hunks (InvalidRequest when one does not match)."""
    lines = text.split("\n")
    trailing = lines[-1] == ""
    if trailing:
        lines.pop()
    at = 0
    for context, chunk in hunks:
        if context is not None:
            found = _seek(lines, [context], at)
            if found == -1:
                raise InvalidRequest(f"the patch's context line {context!r} is not in {path}")
            at = found + 1
        old = [c[1:] for c in chunk if c[0] in (" ", "-")]
        new = [c[1:] for c in chunk if c[0] in (" ", "+")]
        found = _seek(lines, old, at)
        if found == -1:
            raise InvalidRequest(f"a hunk of the patch does not match the current text of {path}")
        lines[found : found + len(old)] = new
        at = found + len(new)
    return "\n".join(lines) + ("\n" if trailing or not lines else "")


def _join(cwd: str | None, path: str) -> str:
    return path if path.startswith("/") or not cwd else f"{cwd.rstrip('/')}/{path}"


def _not_codex_config(engine: Engine, path: str) -> None:
    """Refuse a patch to Codex's own configuration (a project's `.codex/`): a changed hooks.json is
    no longer trusted, and Codex then skips Ratchet's hooks without a word."""
    rel = Path(engine.workspace.relpath(path))
    if rel.parts[:1] == (".codex",):
        raise InvalidRequest(
            f"{rel} is Codex's own configuration (its hooks and their trust); only the person changes it"
        )


def patch_calls(engine: Engine, patch: str, cwd: str | None) -> list[hooks._Call]:
    """The Ratchet calls a patch amounts to, one or two per file, in the patch's order."""

    if len(patch) > MAX_PATCH_CHARS:
        raise InvalidRequest(f"the patch is {len(patch)} characters, over Ratchet's hook limit of {MAX_PATCH_CHARS}")
    calls: list[hooks._Call] = []
    ops = parse_patch(patch)
    for op in ops:
        for target in (op.path, op.move_to):
            if target is not None:
                _not_codex_config(engine, _join(cwd, target))
    for op in ops:
        path = _join(cwd, op.path)
        if op.kind == "add":
            calls.append(hooks._Call("write_file", {"path": path, "content": op.content}))
        elif op.kind == "delete":
            calls.append(hooks._Call("run_command", {"argv": ["rm", "--", engine.workspace.relpath(path)]}))
        else:
            state = fs.read_state(engine.workspace, path)
            if state.text is None:
                raise InvalidRequest(f"the patch updates {op.path}, which does not exist")
            crlf = state.newline == "\r\n"
            before = state.text.replace("\r\n", "\n") if crlf else state.text
            after = apply_hunks(op.path, before, op.hunks)
            if op.move_to is None:
                edit = {"old_text": state.text, "new_text": after.replace("\n", "\r\n") if crlf else after}
                calls.append(hooks._Call("edit_file", {"path": path, "edits": [{**edit, "count": None}]}))
            else:
                calls.append(hooks._Call("write_file", {"path": _join(cwd, op.move_to), "content": after}))
                calls.append(hooks._Call("run_command", {"argv": ["rm", "--", engine.workspace.relpath(path)]}))
    return calls


# -- answering Codex ------------------------------------------------------------------------------


def deny(reason: str) -> str:
    """Codex's PreToolUse deny: the call does not run and the model reads `reason`."""

    return json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": redact(reason),
            }
        }
    )


def no_stdin(command: str) -> str:
    """Allow a shell command with its standard input closed (`allow` with `updatedInput`, which Codex
    0.171 honours for its shell, still under its own sandbox and approval policy). Codex's
    `write_stdin` feeds a running command and fires no hook: a command judged autonomous must not
    become an interactive shell or interpreter that runs whatever is typed into it later. The
    newline before `)` keeps a trailing comment from swallowing it."""
    return json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "updatedInput": {"command": f"( {command}\n) </dev/null"},
            }
        }
    )


NO_NESTED_SANDBOX = (
    "Ratchet's sandbox could not start inside Codex's own sandbox (Codex's `workspace-write` and `read-only` "
    "sandboxes forbid the namespaces it needs), so this command did not run. Run Codex with `--sandbox "
    'danger-full-access` (sandbox_mode = "danger-full-access"): Ratchet\'s sandbox then confines each command '
    "by its class. Or use Ratchet's run_command tool."
)


async def _confined(engine: Engine, event: dict[str, Any], ev: Evaluation) -> str:
    """An allowed shell command as it is to run: under its class's sandbox profile (the same
    rewrite as Claude Code's Bash, hooks._sandboxed_input), or as written when the class opts out.
    Where bubblewrap cannot start (inside Codex's own sandbox, whose seccomp filter refuses new
    namespaces) the command does not run: it fails, saying which Codex setting makes it work."""

    updated = await hooks._sandboxed_input(engine, event, ev, approved=False)
    if updated is None:
        return _command(event)
    bwrap = shlex.split(str(updated["command"]))[0]
    probe = f"{shlex.quote(bwrap)} --ro-bind / / -- /bin/true 2>/dev/null"
    return f"if ! {probe}; then echo {shlex.quote(NO_NESTED_SANDBOX)} >&2; exit 125; fi\n{updated['command']}"


def _session(event: dict[str, Any]) -> str:
    sid = event.get("session_id")
    return f"codex-{sid if isinstance(sid, str) and sid else 'unknown'}"


async def _open(event: dict[str, Any], options: hooks.HookOptions) -> Engine:

    cache = options.policies_cache
    # Codex starts hooks in the session's directory, which may be below the project's root.
    workspace = options.workspace or find_project_root(hooks._workspace(event, options).resolve())
    return await Engine.open(
        workspace,
        policies=options.policies,
        db=options.db,
        client=CLIENT,
        session=_session(event),
        loader=None if cache is None else cache.load,
    )


async def codex(raw: bytes | str, options: hooks.HookOptions) -> str:
    """Answer one Codex hook event: the text to print on stdout ('' for no answer). Never raises."""
    try:
        event = hooks._parse(raw)
    except Exception as exc:
        return deny(f"Ratchet could not read the hook event ({exc}); nothing was run.")
    name, tool = event["hook_event_name"], event.get("tool_name")
    if name == "Stop":
        pass
    elif tool not in GOVERNED or name not in ("PreToolUse", "PostToolUse"):
        return ""
    try:
        with anyio.fail_after(options.deadline_s):
            if name == "Stop" and not await _recorded_here(event, options):
                return ""
            engine = await _open(event, options)
            try:
                if name == "PreToolUse":
                    return await _pre_tool_use(engine, event)
                if name == "Stop":
                    await _stop(engine, event)
                else:
                    await _post_tool_use(engine, event)
                return ""
            finally:
                await engine.close()
    except Exception as exc:
        why = (
            f"Ratchet did not decide within {options.deadline_s:g}s"
            if isinstance(exc, TimeoutError)
            else f"Ratchet could not decide: {hooks._describe(exc)}"
        )
        if name == "PreToolUse":
            return deny(f"{why}. Nothing was run; tell the person (fail closed).")
        print(f"ratchet hook codex: {name}: {why}", file=sys.stderr)
        return ""


def _tool_use_id(event: dict[str, Any]) -> str:
    tid = event.get("tool_use_id")
    return tid if isinstance(tid, str) and tid else f"missing-{uuid.uuid4().hex}"


def _command(event: dict[str, Any]) -> str:
    tool_input = event.get("tool_input")
    if not isinstance(tool_input, dict) or not isinstance(tool_input.get("command"), str):
        raise InvalidRequest("tool_input.command is missing or not a string")
    return str(tool_input["command"])


async def _pre_tool_use(engine: Engine, event: dict[str, Any]) -> str:

    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    tool = event["tool_name"]
    try:
        if tool == SHELL:
            calls = [hooks._bash(engine, {"command": _command(event)}, cwd)]
        else:
            calls = patch_calls(engine, _command(event), cwd)
        evs = [await engine.evaluate(c.tool, c.args, shell_rule=False, can_elicit=False) for c in calls]
    except RatchetError as exc:
        if tool == SHELL:
            refused: tuple[str, dict[str, Any]] = hooks._refusal(event, None)
        else:
            refused = ("write_file", {"path": "(apply_patch)"})
        await engine.refuse(*refused, exc, intent=None, confidence=None)
        return deny(f"Ratchet refused {tool}: {exc}. Nothing was run.")
    return await _decide(engine, event, calls, evs)


async def _decide(engine: Engine, event: dict[str, Any], calls: list[hooks._Call], evs: list[Evaluation]) -> str:

    tool_use_id = _tool_use_id(event)
    ids = [tool_use_id] if len(calls) == 1 else [f"{tool_use_id}#{n}" for n in range(1, len(calls) + 1)]
    if all(ev.decision.route is Route.EXECUTE for ev in evs):
        # Autonomous: Codex runs it under its own sandbox and approval policy; PostToolUse reports it.
        command = await _confined(engine, event, evs[0]) if event["tool_name"] == SHELL else None
        for call, ev, external_id in zip(calls, evs, ids, strict=True):
            await engine.record_external(ev, external_id, intent=call.intent, external_tool=event["tool_name"])
        return "" if command is None else no_stdin(command)
    reasons: list[str] = []
    held: list[str] = []
    for call, ev, external_id in zip(calls, evs, ids, strict=True):
        if ev.decision.route is Route.EXECUTE:
            held.append(ev.prepared.target)
            continue
        answer = json.loads(await hooks._decide(engine, {**event, "tool_use_id": external_id}, call, ev))
        reason = str(answer["hookSpecificOutput"]["permissionDecisionReason"])
        reasons.append(f"{ev.prepared.tool} {ev.prepared.target}: {reason}" if event["tool_name"] == PATCH else reason)
    if len(calls) > 1:
        head = f"Ratchet did not let this patch run: {len(reasons)} of its {len(calls)} file changes need the person."
        if held:
            head += (
                f" Not applied either, though allowed on their own: {', '.join(held)}; send those in a patch of "
                "their own."
            )
        reasons.insert(0, head)
    reasons.append(USE_RATCHET)
    return deny("\n\n".join(reasons))


# -- outcomes -------------------------------------------------------------------------------------


def transcript_result(path: Path, call_id: str) -> bool | None:
    """Whether the call `call_id` succeeded, from a Codex transcript's `item_completed` event for it
    (status `completed` and exit code 0, if any); None when the transcript has no result for it."""
    found: bool | None = None
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if call_id not in line or "item_completed" not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                payload = entry.get("payload") if isinstance(entry, dict) else None
                item = payload.get("item") if isinstance(payload, dict) else None
                if not isinstance(item, dict) or item.get("id") != call_id:
                    continue
                code = item.get("exit_code")
                found = item.get("status") == "completed" and (code is None or code == 0)
    except OSError:
        return None
    return found


async def _post_tool_use(engine: Engine, event: dict[str, Any]) -> None:
    tool, tool_use_id = event["tool_name"], event.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest("tool_use_id is missing")
    waiting = sorted(i for i in await engine.waiting_external(tool) if i.split("#")[0] == tool_use_id)
    if not waiting:
        print(
            f"ratchet hook codex: PostToolUse for {tool} {tool_use_id}: no call of session {engine.session_id} "
            "waits for it; ignored",
            file=sys.stderr,
        )
        return
    path = event.get("transcript_path")
    ok = transcript_result(Path(path), tool_use_id) if isinstance(path, str) and path else None
    if ok is None and tool == PATCH:
        ok = True  # Codex reports PostToolUse for apply_patch only when the patch applied
    if ok is None:
        print(
            f"ratchet hook codex: {tool} {tool_use_id} ran, but its exit code is not in the transcript; "
            "left without an outcome (no evidence either way)",
            file=sys.stderr,
        )
        return
    for external_id in waiting:
        await engine.record_external_outcome(external_id, ran=True, ok=ok, external_tool=tool)


async def _recorded_here(event: dict[str, Any], options: hooks.HookOptions) -> bool:
    """Whether a Stop has anything to settle: never create a database for it."""

    workspace = options.workspace or find_project_root(hooks._workspace(event, options).resolve())
    db = resolve_location(options.db, workspace.resolve())
    return not (isinstance(db, Path) and not db.exists())


def transcript_outputs(path: Path, ids: set[str]) -> set[str]:
    """Which of `ids` have a tool output (`function_call_output` or `custom_tool_call_output`) in a
    Codex transcript: the model was told the call's result, whether or not it ran."""
    found: set[str] = set()
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if "_output" not in line or not any(i in line for i in ids - found):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                payload = entry.get("payload") if isinstance(entry, dict) else None
                if (
                    isinstance(payload, dict)
                    and payload.get("type") in ("function_call_output", "custom_tool_call_output")
                    and payload.get("call_id") in ids
                ):
                    found.add(str(payload["call_id"]))
    except OSError:
        return found
    return found


async def _stop(engine: Engine, event: dict[str, Any]) -> None:
    """At the end of a turn: an allowed call that never reported an outcome but whose result the
    model was given did not run when Codex has no completed item for it (Codex's own approval, by
    the person or its reviewer, turned it down, or the policy `never` refused it): it is settled as
    not run, which is no evidence either way. One that ran is settled by its exit code."""
    waiting = await engine.waiting_external()
    path = event.get("transcript_path")
    if not waiting or not isinstance(path, str) or not path:
        return
    calls = {i.split("#")[0] for i in waiting}
    answered = transcript_outputs(Path(path), calls)
    for external_id in sorted(waiting):
        call_id = external_id.split("#")[0]
        if call_id not in answered:
            continue  # its result is not in the transcript yet: left for a later turn's Stop
        ok = transcript_result(Path(path), call_id)
        await engine.record_external_outcome(external_id, ran=ok is not None, ok=ok is True)


# -- the hook's own process -----------------------------------------------------------------------


async def codex_process(raw: bytes, options: hooks.HookOptions, hard_deadline_s: float = hooks.HARD_DEADLINE_S) -> str:
    """`codex` as the hook's whole process: past `hard_deadline_s` a governed PreToolUse is denied and
    the process exits, even if the decision is stuck where the cooperative deadline cannot reach."""
    pre_tool_use = False
    try:
        event = json.loads(raw)
        pre_tool_use = event.get("hook_event_name") == "PreToolUse" and event.get("tool_name") in GOVERNED
    except (ValueError, AttributeError):
        pass
    late = (
        deny(f"Ratchet did not decide within {hard_deadline_s:g}s. Nothing was run; tell the person.")
        if pre_tool_use
        else ""
    )
    with hooks._process_deadline(hard_deadline_s, late):
        return await codex(raw, options)


def answer_event(options: dict[str, str], raw: bytes) -> int:
    """The whole hook process for one Codex event (`hook codex [--workspace] [--policies] [--db]`,
    already read from stdin): the answer, if any, on stdout; exit 0."""

    workspace, policies, db = (options.get(k) for k in ("workspace", "policies", "db"))
    hook_options = hooks.HookOptions(
        workspace=Path(workspace) if workspace else None,
        policies=Path(policies) if policies else None,
        db=parse_location(db) if db else None,
    )
    answer = anyio.run(codex_process, raw, hook_options)
    if answer:
        print(answer, flush=True)
    return 0
