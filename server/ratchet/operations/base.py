"""What every governed operation is made of: its context, a prepared call, and the Operation record.

The operation modules (files, commands, git) build on this; operations/__init__.py gathers them into
the registry. Nothing here imports an operation module, so the registry is built eagerly, no cycle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ratchet.executors.workspace import Workspace
from ratchet.policy.limits import Ceiling, Limits
from ratchet.policy.model import CommandSettings, Subject
from ratchet.redact import redact, redact_argv

ProgressCallback = Callable[[float, str], Awaitable[None]]
SpawnCallback = Callable[[int], Awaitable[None]]
# Keeps what a file held before an action changes it, for `ratchet undo`:
# (action token, workspace path, prior bytes or None for no file, permission bits, fingerprint written).
KeepCallback = Callable[[str, str, bytes | None, int | None, str], None]


@dataclass(frozen=True)
class OpContext:
    """What an operation may use: the confined workspace, the command settings, a progress sink, and
    the loosest limits the policy allows (checked before any work; the class's come after classifying).

    `sandbox` and `network` are the deciding class's: whether a command runs in the OS sandbox and
    whether it may reach the network there. `on_spawn` is told a command's process id once it exists.
    `keep` is given a file's prior content before a write or an edit replaces it (None: keep nothing,
    as for a class marked `secret`, or outside an action).
    """

    workspace: Workspace
    commands: CommandSettings
    progress: ProgressCallback | None = None
    ceiling: Ceiling = field(default_factory=lambda: Ceiling(Limits(), (), "00-defaults.toml"))
    sandbox: bool = True
    network: bool = False
    # The deciding class's sandbox profile, and whether a person approved this very call.
    profile: str = "workspace"
    approved: bool = False
    on_spawn: SpawnCallback | None = None
    keep: KeepCallback | None = None


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
    # The call's measured sizes, by limit key, checked against its class's limits once classified.
    sizes: dict[str, int] = field(default_factory=dict)
    # Built-in refusals, whatever the policy says: (trigger name, detail); the gate blocks the call.
    refusals: tuple[tuple[str, str], ...] = ()
    # Changed lines the preview folds away (a long file diff); recorded, and counted by the reading rule.
    hidden_lines: int = 0

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
    # What an action of this tool may leave behind when its process dies midway, cleaned up at the next
    # open (a temp file, a command's processes); the record already says it was interrupted.
    recover: Callable[[Workspace, Leftover], None] | None = None
    # Approving a draft with the human's own content: the (tool, arguments) to prepare instead;
    # None: this tool's drafts are approved only as drafted.
    with_content: Callable[[dict[str, Any], str], tuple[str, dict[str, Any]]] | None = None
    # Cleanup for the whole tool at every open, whatever the record says (a preview's stale index).
    at_open: Callable[[], None] | None = None


@dataclass(frozen=True)
class Leftover:
    """An interrupted action, as an operation's `recover` needs it."""

    action_id: int
    target: str
    child_pid: int | None


def kept_args(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a call's arguments once it can no longer run: never a file's content.

    A write keeps its path, the content's hash and size; an edit its path, the number of edits and
    their hash and size; a command its stdin's hash and size. Other arguments are small (size-limited).
    """
    if tool == "write_file" and isinstance(args.get("content"), str):
        data = str(args["content"]).encode("utf-8", "surrogatepass")
        return {"path": args.get("path"), "content_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if tool == "edit_file" and isinstance(args.get("edits"), list):
        data = json.dumps(args["edits"], sort_keys=True).encode("utf-8", "surrogatepass")
        return {
            "path": args.get("path"),
            "edits": len(args["edits"]),
            "edits_sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    if tool == "run_command" and isinstance(args.get("argv"), list) and all(isinstance(a, str) for a in args["argv"]):
        args = {**args, "argv": redact_argv(args["argv"])}  # `--password VALUE` as two words, too
    if tool == "run_command" and isinstance(args.get("stdin"), str):
        data = args["stdin"].encode("utf-8", "surrogatepass")
        return {**args, "stdin": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}
    return args
