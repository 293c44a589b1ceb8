"""Governed operations: how each tool's validated arguments become a previewable, runnable action.

An operation knows three things about its tool: how to *prepare* a call (confine and validate the
arguments, compute what would change, name what the policy matcher sees, and fingerprint the
target so a draft can be checked for staleness), how to read the target's *fingerprint* now, and
how to *execute* a prepared call; and, where it has them, how to clean up after an interrupted
call (`recover`) and how a human's own content replaces a draft's (`with_content`). The engine
stores a draft's arguments and re-prepares them when a human approves, so what runs is exactly what
was drafted against a target that has not changed. Operations never import MCP.

The shared types live in operations/base.py; this module gathers the operations into the registry.
It is also the engine's one door to the executors: the confined workspace, whether the OS sandbox
is there, whether a recorded process still lives, and the human's notification command.
"""

from __future__ import annotations

from ratchet.errors import InvalidRequest
from ratchet.executors.notify import flush_notifications, guard_workspace, notify, workspace_problem
from ratchet.executors.sandbox import sandbox_status_async
from ratchet.executors.shell import process_alive
from ratchet.executors.workspace import Workspace
from ratchet.operations import commands, files, git
from ratchet.operations.base import (
    KeepCallback,
    Leftover,
    OpContext,
    Operation,
    Prepared,
    ProgressCallback,
    SpawnCallback,
    kept_args,
)
from ratchet.operations.files import EditSpec, restore_file, whole_diff

OPERATIONS: dict[str, Operation] = {op.tool: op for module in (files, commands, git) for op in module.OPERATIONS}


def operation(tool: str) -> Operation:
    """The operation for a governed tool; InvalidRequest for a tool Ratchet does not govern."""
    try:
        return OPERATIONS[tool]
    except KeyError:
        raise InvalidRequest(f"unknown tool {tool!r}; governed tools are: {', '.join(sorted(OPERATIONS))}") from None


def at_open() -> None:
    """Every tool's cleanup at open (each distinct one once)."""
    done = set()
    for op in OPERATIONS.values():
        if op.at_open is not None and op.at_open not in done:
            done.add(op.at_open)
            op.at_open()


def recover(workspace: Workspace, tool: str, leftover: Leftover) -> None:
    """Clean up what an interrupted action of `tool` left behind (nothing for a tool Ratchet no longer has)."""
    op = OPERATIONS.get(tool)
    if op is not None and op.recover is not None:
        op.recover(workspace, leftover)


__all__ = [
    "OPERATIONS",
    "EditSpec",
    "KeepCallback",
    "Leftover",
    "OpContext",
    "Operation",
    "Prepared",
    "ProgressCallback",
    "SpawnCallback",
    "Workspace",
    "at_open",
    "flush_notifications",
    "guard_workspace",
    "kept_args",
    "notify",
    "operation",
    "process_alive",
    "recover",
    "restore_file",
    "sandbox_status_async",
    "whole_diff",
    "workspace_problem",
]
