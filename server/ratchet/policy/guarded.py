"""Which workspace paths a sandboxed process may not write: what gates the agent or runs outside later.

The sandbox (executors/sandbox.py) keeps Ratchet's own state and git's control files read-only. This
module adds the paths the policy itself says a human must see changed, computed once per policy:

- `always` (read-only for every process the agent causes): the client configurations
  (`CLIENT_CONFIGS`: `.claude/`, `.mcp.json`, `.codex/`, `.vscode/`, `.cursor/`), every path of a
  class that requires CLI approval (the starter agent and CI configuration), and the Ratchet
  installation when it lies inside the workspace (a project `.venv`: a `.pth` planted there would
  run outside every sandbox at the next hook event);
- `reviewed` (read-only unless a person approved the very command): every path of a file class whose
  ceiling is below `autonomous` (build configuration, lock files, secrets). A command the human
  confirmed (`npm install`, `cargo update`) may still update its lock file;

Those of `always` that do not exist yet must not appear: a bind mount needs an existing path, so
one a command creates is removed after the call and the call fails, naming it.

A class's path patterns become paths by their literal part: `docs/conf.py` is itself, `.github/**`
is the directory `.github`, `**/AGENTS.md` is `AGENTS.md` at the root. A pattern with a wildcard
elsewhere (`**/*.pem`, `config/*.yml`) protects nothing here: the sandbox binds paths, and a copy of
such a file deeper in the tree is only as protected as the workspace (see docs/security.md).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ratchet.policy.levels import Level
from ratchet.policy.model import Policy

__all__ = ["CLIENT_CONFIGS", "Guarded", "guarded_paths", "installation_inside"]

# What coding clients read as their own configuration (hooks, MCP servers, permissions, tasks).
CLIENT_CONFIGS = (".claude", ".mcp.json", ".codex", ".vscode", ".cursor")
_FILE_TOOLS = {"write_file", "edit_file"}
_WILDCARDS = set("*?[")


@dataclass(frozen=True)
class Guarded:
    """Workspace paths kept read-only in the sandbox (see the module docstring)."""

    always: tuple[Path, ...] = ()
    reviewed: tuple[Path, ...] = ()


def _literal(pattern: str) -> str | None:
    """The path a pattern names by its literal part, or None when it has a wildcard elsewhere."""
    text = pattern.strip("/")
    if text.endswith("/**"):
        text = text[: -len("/**")]
    if text.startswith("**/"):
        text = text[len("**/") :]
    if not text or any(c in _WILDCARDS for c in text):
        return None
    return text


def installation_inside(root: Path) -> list[Path]:
    """The Ratchet installation (the interpreter's environment and the package) where it lies in `root`."""
    found = []
    package = Path(__file__).resolve().parent.parent
    for place in (Path(sys.prefix), package):
        real = Path(os.path.realpath(place))
        if real.is_relative_to(root) and real != root:
            found.append(real)
    return found


def guarded_paths(policy: Policy, root: Path) -> Guarded:
    """The paths of `root` the policy keeps read-only in the sandbox (see the module docstring)."""
    always: dict[Path, None] = {root / name: None for name in CLIENT_CONFIGS}
    reviewed: dict[Path, None] = {}
    for cls in sorted(policy.classes.values(), key=lambda c: c.name):
        if not cls.tools & _FILE_TOOLS or cls.paths is None:
            continue
        if cls.require_cli_approval:
            bucket = always
        elif cls.ceiling < Level.AUTONOMOUS:
            bucket = reviewed
        else:
            continue
        for glob in cls.paths:
            literal = _literal(glob.pattern)
            if literal is not None:
                bucket[root / literal] = None
    for path in installation_inside(root):
        always[path] = None
    return Guarded(tuple(always), tuple(p for p in reviewed if p not in always))
