"""The `ratchet` console script: a hook event reaches the hook without importing the CLI.

Claude Code starts `ratchet hook claude-code` as a new process for every hook event, twice per tool
call, so what that process imports is paid on every call. The CLI module brings the whole command
set; the hook needs only `hooks` (and the engine, for governed events, imported there on demand).
Any other command, or a hook command line this fast path does not recognise, goes to `cli.main`,
which parses and reports errors as usual.

Most hook events need nothing from Ratchet: a tool it does not govern (Read, Grep, mcp__*, ...) and
the events it does not listen to get no answer and leave no record. Those are told apart here, from
the event's JSON alone, before `hooks` (and its event loop) is imported: such a process costs the
interpreter's start and a JSON parse. Anything else, including input that is not a readable event,
goes to `hooks`, which decides, or denies (fail closed).

A governed event is first offered to the resident hook server (`hook_socket`): the decision without
the imports. When there is none yet, or it cannot be trusted, the event is decided here as always.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

_HOOK_OPTIONS = {"--workspace": "workspace", "--policies": "policies", "--db": "db"}
# Claude Code's tools that Ratchet governs, and the events that carry a governed call's outcome or
# settle a session's asked calls; `hooks` decides on exactly these.
GOVERNED_TOOLS = ("Bash", "Write", "Edit", "MultiEdit", "NotebookEdit")
OUTCOME_EVENTS = ("PostToolUse", "PostToolUseFailure", "PermissionDenied")
SETTLE_EVENTS = ("Stop", "UserPromptSubmit", "SessionEnd")


def hook_event_is_silent(raw: bytes) -> bool:
    """Whether this hook event gets no answer and no record: a readable event that names no governed
    tool (PreToolUse or an outcome event) or that Ratchet does not listen to. False for anything that
    needs deciding, and for input that is not a readable event (`hooks` answers that with a deny)."""
    try:
        event = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    name = event.get("hook_event_name")
    if not isinstance(name, str) or name in SETTLE_EVENTS:
        return False
    return event.get("tool_name") not in GOVERNED_TOOLS


def unattended(environ: dict[str, str] | None = None) -> bool:
    """Whether no human can answer the client's permission dialog in this session (see `hooks`)."""
    env = os.environ if environ is None else environ
    override = env.get("RATCHET_HOOK_ATTENDED")
    if override in ("0", "1"):
        return override == "0"
    return env.get("CLAUDE_CODE_SESSION_ATTENDED") == "0" or env.get("CLAUDE_CODE_ENTRYPOINT") == "sdk-cli"


def _pre_tool_use_of(raw: bytes, tools: tuple[str, ...]) -> bool:
    try:
        event = json.loads(raw)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("hook_event_name") == "PreToolUse" and event.get("tool_name") in tools


def is_governed_pre_tool_use(raw: bytes) -> bool:
    """Whether this is a PreToolUse of a governed tool: the event whose failure to decide is a deny."""
    return _pre_tool_use_of(raw, GOVERNED_TOOLS)


# Codex's tools that Ratchet governs, as its hook events name them, and the events its hook answers.
CODEX_TOOLS = ("Bash", "apply_patch")
CODEX_EVENTS = ("PreToolUse", "PostToolUse", "Stop")


def codex_event_is_silent(raw: bytes) -> bool:
    """`hook_event_is_silent` for Codex: an event Ratchet does not listen to, or a tool it does not govern."""
    try:
        event = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(event, dict) or not isinstance(event.get("hook_event_name"), str):
        return False
    name = event["hook_event_name"]
    return name not in CODEX_EVENTS or (name != "Stop" and event.get("tool_name") not in CODEX_TOOLS)


def is_codex_pre_tool_use(raw: bytes) -> bool:
    """Whether this is a Codex PreToolUse of a governed tool (its failure to decide is a deny)."""
    return _pre_tool_use_of(raw, CODEX_TOOLS)


def resident_answer(options: dict[str, str], raw: bytes, client: str = "claude-code") -> str | None:
    """The resident hook server's answer to this event; None when this process should decide it (no
    server, or one that is not trusted or declined it unread). Fails closed once the event was sent."""
    from ratchet import hook_socket

    ep = hook_socket.endpoint(options)
    try:
        sock = hook_socket.connect(ep)
    except (FileNotFoundError, ConnectionRefusedError):
        try:  # nobody listens: decide here, and start one for the next event
            hook_socket.check_directory(ep.directory, create=True)
            hook_socket.start_server(ep)
        except (hook_socket.Untrusted, OSError) as exc:
            print(f"ratchet hook: no resident hook server ({exc}); deciding in this process", file=sys.stderr)
        return None
    except (hook_socket.Untrusted, OSError) as exc:
        print(f"ratchet hook: not using the hook server: {exc}; deciding in this process", file=sys.stderr)
        return None
    with sock:
        try:
            secret = hook_socket.read_secret(ep)
        except (hook_socket.Untrusted, OSError) as exc:
            print(f"ratchet hook: not using the hook server: {exc}; deciding in this process", file=sys.stderr)
            return None
        try:
            setup = hook_socket.setup(ep.argv, os.environ)
            return hook_socket.exchange(sock, raw, not unattended(), setup, client, secret=secret)
        except hook_socket.Stale:
            return None
        except Exception as exc:
            why = f"Ratchet's hook server failed ({type(exc).__name__}: {exc})"
    if is_codex_pre_tool_use(raw) if client == "codex" else is_governed_pre_tool_use(raw):
        return json.dumps(
            {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": f"{why}. Nothing was run; tell the human (fail closed).",
                }
            }
        )
    print(f"ratchet hook: {why}; this event was not recorded", file=sys.stderr)
    return ""


def hook_options(argv: Sequence[str]) -> dict[str, str] | None:
    """The options of `hook claude-code|codex [--workspace W] [--policies P] [--db D]`; None for anything else."""
    if list(argv[:1]) != ["hook"] or list(argv[1:2]) not in (["claude-code"], ["codex"]):
        return None
    found: dict[str, str] = {}
    rest = list(argv[2:])
    while rest:
        flag = rest.pop(0)
        name, eq, value = flag.partition("=")
        if name not in _HOOK_OPTIONS or _HOOK_OPTIONS[name] in found or (not eq and not rest):
            return None  # unknown, repeated or missing a value: the full CLI says what is wrong
        found[_HOOK_OPTIONS[name]] = value if eq else rest.pop(0)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ratchet` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    options = hook_options(args)
    if options is not None:
        raw = sys.stdin.buffer.read()
        client = args[1]
        if codex_event_is_silent(raw) if client == "codex" else hook_event_is_silent(raw):
            return 0
        if os.environ.get("RATCHET_HOOK_SERVER", "").strip().lower() != "off":
            answer = resident_answer(options, raw, client)
            if answer is not None:
                if answer:
                    print(answer, flush=True)
                return 0
        from pathlib import Path

        from ratchet.hooks import HookOptions, answer_event
        from ratchet.record.store import parse_location

        workspace, policies, db = (options.get(k) for k in ("workspace", "policies", "db"))
        if client == "codex":
            from ratchet.codex_hooks import answer_event as codex_answer_event

            return codex_answer_event(options, raw)
        return answer_event(
            HookOptions(
                workspace=Path(workspace) if workspace else None,
                policies=Path(policies) if policies else None,
                db=parse_location(db) if db else None,
            ),
            raw,
        )
    from ratchet.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
