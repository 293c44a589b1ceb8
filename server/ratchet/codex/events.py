"""Codex's hook events as Ratchet reads them before deciding anything: the tools it governs, the events its
hook answers, and which need no answer. Stdlib only, as `claude_code.events`.
"""

from __future__ import annotations

import json

from ratchet.claude_code.events import pre_tool_use_of

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
    return pre_tool_use_of(raw, CODEX_TOOLS)
