"""Claude Code's hook events as Ratchet reads them before deciding anything: which tools it governs,
which events carry an outcome or settle a session, which need no answer at all, and whether a person can
answer the client's dialog. Stdlib only: the console script reads these before it imports anything else.
"""

from __future__ import annotations

import json
import os

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


def pre_tool_use_of(raw: bytes, tools: tuple[str, ...]) -> bool:
    try:
        event = json.loads(raw)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("hook_event_name") == "PreToolUse" and event.get("tool_name") in tools


def is_governed_pre_tool_use(raw: bytes) -> bool:
    """Whether this is a PreToolUse of a governed tool: the event whose failure to decide is a deny."""
    return pre_tool_use_of(raw, GOVERNED_TOOLS)
