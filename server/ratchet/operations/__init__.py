"""Governed operations: how each tool's validated arguments become a previewable, runnable action.

An operation knows three things about its tool: how to *prepare* a call (confine and validate the
arguments, compute what would change, name what the policy matcher sees, and fingerprint the
target so a draft can be checked for staleness), how to read the target's *fingerprint* now, and
how to *execute* a prepared call. The engine stores a draft's arguments and re-prepares them when
a human approves, so what runs is exactly what was drafted against a target that has not changed.
Operations never import MCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import InvalidRequest
from ..policy import CommandSettings, Subject
from ..redact import redact
from ..workspace import Workspace

ProgressCallback = Callable[[float, str], Awaitable[None]]


@dataclass(frozen=True)
class OpContext:
    """What an operation may use: the confined workspace, the command settings, a progress sink."""

    workspace: Workspace
    commands: CommandSettings
    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class Prepared:
    """A call ready for the gate: what it touches, what it would change, and how to run it.

    `subjects` is what the policy matcher sees: one per file, per command a shell string or wrapper
    really runs, per file a redirection writes. The action is decided by the most conservative.
    """

    tool: str
    args: dict[str, Any]
    subjects: tuple[Subject, ...]
    target: str
    preview: str
    fingerprint: str | None
    plan: Any = field(repr=False, default=None)
    shell: bool = False
    # What the record keeps of the arguments once the call can no longer run (None: the arguments).
    record: dict[str, Any] | None = None
    # Built-in refusals, whatever the policy says: (trigger name, detail); the gate blocks the call.
    refusals: tuple[tuple[str, str], ...] = ()

    @property
    def subject(self) -> Subject:
        """The primary subject (the first)."""
        return self.subjects[0]

    @cached_property
    def shown(self) -> str:
        """The preview with secrets redacted: what is stored and shown (computed once per call)."""
        return redact(self.preview)


@dataclass(frozen=True)
class Operation:
    """How one tool prepares, fingerprints and executes."""

    tool: str
    prepare: Callable[[OpContext, dict[str, Any]], Awaitable[Prepared]]
    fingerprint: Callable[[OpContext, dict[str, Any]], Awaitable[str | None]]
    execute: Callable[[OpContext, Prepared, str], Awaitable[dict[str, Any]]]


def _registry() -> dict[str, Operation]:
    from . import commands, files, git

    return {op.tool: op for module in (files, commands, git) for op in module.OPERATIONS}


OPERATIONS: dict[str, Operation] = {}


def operation(tool: str) -> Operation:
    """The operation for a governed tool; InvalidRequest for a tool Ratchet does not govern."""
    if not OPERATIONS:
        OPERATIONS.update(_registry())
    try:
        return OPERATIONS[tool]
    except KeyError:
        raise InvalidRequest(f"unknown tool {tool!r}; governed tools are: {', '.join(sorted(OPERATIONS))}") from None


from .files import EditSpec  # noqa: E402  (re-exported for the MCP layer)

__all__ = ["EditSpec", "OpContext", "Operation", "Prepared", "ProgressCallback", "operation"]
