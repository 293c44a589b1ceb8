"""`ratchet install`: set Ratchet up where agents live, in one command.

Each client's plan is a list of file changes computed from what is there now: by default they are
shown as a diff and nothing is written; with `--apply` each changed file gets a timestamped backup
beside it and is replaced atomically. Everything already in those files is kept, and a second run
changes nothing (and says so).

- Claude Code: the MCP server entry (`.mcp.json` for project scope, `~/.claude.json` for user scope,
  `~/.claude.json` under `projects.<workspace>` for local scope) and the hooks that put its built-in
  Bash/Write/Edit/MultiEdit/NotebookEdit behind Ratchet's gate (`.claude/settings.json`,
  `~/.claude/settings.json`, `.claude/settings.local.json`), or with `--deny-builtins` a
  `permissions.deny` of those tools instead. Scopes and files as in the Claude Code settings and MCP
  documentation (code.claude.com/docs/en/settings, /mcp, /hooks), checked November 2026. In the same
  settings file, Claude Code's own sandbox is turned on with write denials for Ratchet's protected
  paths (see `sandbox_settings`), so a Bash call the hook allowed still cannot write them. What the
  hooks are depends on the installed Claude Code (`claude --version`): `mcp_tool` hooks answered by
  Ratchet's running server where hooks can fail closed (`onFailure: "block"`), command hooks
  otherwise; `check_claude_code` reports on an existing project.
- Codex: a well-delimited `[mcp_servers.ratchet]` block in `$CODEX_HOME/config.toml` (default
  `~/.codex/config.toml`), with a per-tool `approval_mode` (`mcp_servers.<id>.tools.<tool>.approval_mode`,
  openai/codex#17843) derived from Ratchet's tool annotations. The rest of the file is kept byte for
  byte; the result is validated with tomllib before anything is written. Codex's own shell and
  apply_patch go through Ratchet's gate by a PreToolUse/PostToolUse hook in a `hooks.json` beside
  the config layer (`codex_hooks_file`; see CODEX_NOTE and codex/hooks.py).
- Claude Desktop: the entry of claude_desktop_config.example.json in its config file.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.codex import app as codex_app
from ratchet.codex.hooks import MATCHER as CODEX_MATCHER
from ratchet.errors import InvalidRequest
from ratchet.operations import OPERATIONS, operation

SCOPES = ("project", "user", "local")
BUILTINS = ("Bash", "Write", "Edit", "MultiEdit", "NotebookEdit")
MATCHER = "|".join(BUILTINS)
HOOK_MARK = " hook claude-code"  # how a hook entry is recognised as Ratchet's own
CODEX_HOOK_MARK = " hook codex"  # the same, in Codex's hooks.json
HOOK_TIMEOUT_S = 60  # Claude Code's timeout for the hook command; the hook itself answers within 20 s
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied")
SETTLE_EVENTS = ("Stop", "UserPromptSubmit", "SessionEnd")
SERVER_NAME = "ratchet"
BLOCK_BEGIN = "# >>> ratchet: managed by `ratchet install codex`; this block is replaced on every install >>>"
BLOCK_END = "# <<< ratchet <<<"

CODEX_NOTE = """\
Codex's own shell and apply_patch go through Ratchet's gate: a PreToolUse hook classifies each shell
command and each file a patch writes by the same policy as Ratchet's tools. Autonomous runs (under
Codex's own sandbox and approval policy) and is recorded with its outcome (PostToolUse); confirm,
draft and blocked are refused with the draft's id or the escalation packet, and the agent is told to
use Ratchet's tools or wait for you. Codex's hooks cannot ask you, so a confirm-level call made with
Codex's own tools is queued as a draft (`ratchet queue`, `ratchet approve ID`).
Where Codex fails open, and how the hook narrows it: a hook that crashes, exits with a code other than
0 or 2, or prints no decision lets the call through. The installed command blocks (exit 2, with the
reason on stderr) when Ratchet cannot start or fails, and Ratchet itself answers a deny within 30 s;
only a hook Codex stops at its own timeout (60 s here) lets the call through unjudged."""


@dataclass
class Change:
    """One file as it is now (`before`, None if absent) and as the plan would leave it."""

    path: Path
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        """Whether applying the plan would write this file."""
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff from the current file (or /dev/null) to the planned one."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path),
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class Plan:
    """What `ratchet install CLIENT` would change, and what to tell the human about it."""

    client: str
    changes: list[Change]
    notes: list[str] = field(default_factory=list)
    command: str = ""  # how the client will start Ratchet

    @property
    def changed(self) -> list[Change]:
        """The changes that would write a file."""
        return [c for c in self.changes if c.changed]


# -- shared ------------------------------------------------------------------------------------


def ratchet_command(explicit: str | None = None) -> str:
    """How a client should start this Ratchet: the absolute path of this installation's console script.

    Never a bare `ratchet`: a client starts servers with its own PATH (Claude Desktop's is minimal, and
    a virtual environment active in one shell is not in another), so a bare name may start another
    Ratchet or none. `explicit` (`--command`) is taken as given.
    """
    if explicit:
        return explicit
    here = Path(sys.executable).parent / "ratchet"  # this installation's console script
    if here.exists():
        return str(here)
    on_path = shutil.which("ratchet")
    return str(Path(on_path).absolute()) if on_path else "ratchet"


def command_note(command: str, explicit: str | None) -> str:
    """The line that says which command the client will run, and why that one."""
    if explicit:
        return f"The client starts Ratchet as {command} (given with --command)."
    if Path(command).is_absolute():
        return f"The client starts Ratchet as {command} (this installation's console script, by absolute path)."
    return (
        f"No console script of this installation was found: the client starts Ratchet as `{command}` from its "
        "own PATH; pass --command /path/to/ratchet to name one."
    )


BACKUP_PATTERN = "*.ratchet-backup-*"


def ignore_backups(directory: Path) -> Path | None:
    """Keep install's backup files out of the git repository `directory` is in (its info/exclude,
    which is never committed); the exclude file when one was written or already had the pattern."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git here: nothing to keep the backups out of
    if done.returncode != 0 or not done.stdout.strip():
        return None
    exclude = Path(done.stdout.strip())
    text = _read(exclude) or ""
    if BACKUP_PATTERN not in text.splitlines():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        sep = "" if not text or text.endswith("\n") else "\n"
        with open(exclude, "a", encoding="utf-8") as out:
            out.write(f"{sep}# backups written by `ratchet install`\n{BACKUP_PATTERN}\n")
    return exclude


def serve_args(workspace: str, policies: Path | None, db: Path | None) -> list[str]:
    """`ratchet serve` arguments for a client's MCP entry."""
    args = ["serve", "--workspace", workspace]
    if policies is not None:
        args += ["--policies", str(policies.resolve())]
    if db is not None:
        args += ["--db", str(db.absolute())]
    return args


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read {path}: {exc}") from exc


def _json_change(path: Path, mutate: Callable[[dict[str, Any]], None]) -> Change:
    """Apply `mutate` to the JSON object in `path`; an unchanged object leaves the file's text as it is."""
    before = _read(path)
    try:
        data = json.loads(before) if before and before.strip() else {}
    except ValueError as exc:
        raise InvalidRequest(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{path}: expected a JSON object at the top level; nothing was changed")
    new = copy.deepcopy(data)
    mutate(new)
    if new == data and before is not None:
        return Change(path, before, before)
    return Change(path, before, json.dumps(new, indent=2, ensure_ascii=False) + "\n")


def _table(parent: dict[str, Any], key: str, where: Path) -> dict[str, Any]:
    value = parent.setdefault(key, {})
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: {key} is not an object; nothing was changed")
    return value


def _list(parent: dict[str, Any], key: str, where: Path) -> list[Any]:
    value = parent.setdefault(key, [])
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: {key} is not a list; nothing was changed")
    return value


def apply(plan: Plan) -> list[tuple[Path, Path | None]]:
    """Write every changed file (backup first, then an atomic replace); returns (file, backup) pairs.

    A backup inside a git repository is git-ignored there (`ignore_backups`), so it is never committed
    with the project."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    done = []
    for change in plan.changed:
        path = change.path
        path.parent.mkdir(parents=True, exist_ok=True)
        backup = None
        mode = None
        if path.exists():
            backup = path.with_name(f"{path.name}.ratchet-backup-{stamp}")
            n = 1
            while backup.exists():
                n += 1
                backup = path.with_name(f"{path.name}.ratchet-backup-{stamp}-{n}")
            ignore_backups(path.parent)
            shutil.copy2(path, backup)
            mode = path.stat().st_mode & 0o7777
        tmp = path.with_name(f".{path.name}.ratchet-{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                out.write(change.after)
                out.flush()
                os.fsync(out.fileno())
            if mode is not None:
                tmp.chmod(mode)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        done.append((path, backup))
    return done


# -- Claude Code -------------------------------------------------------------------------------


NESTING_KEY = "allowNestedUserNamespaces"  # a user setting only: Claude Code ignores it in a project's


def claude_code_paths(scope: str, workspace: Path) -> tuple[Path, Path]:
    """(the file holding the MCP entry, the settings file holding the hooks) for a scope."""
    home = Path.home()
    if scope == "project":
        return workspace / ".mcp.json", workspace / ".claude" / "settings.json"
    if scope == "user":
        return home / ".claude.json", home / ".claude" / "settings.json"
    if scope == "local":
        return home / ".claude.json", workspace / ".claude" / "settings.local.json"
    raise InvalidRequest(f"unknown scope {scope!r}; expected one of: {', '.join(SCOPES)}")


def hook_command(command: str, policies: Path | None, db: Path | None) -> str:
    """The shell command Claude Code runs for each hook event."""
    line = f'{shlex.quote(command)} hook claude-code --workspace "$CLAUDE_PROJECT_DIR"'
    if policies is not None:
        line += f" --policies {shlex.quote(str(policies.resolve()))}"
    if db is not None:
        line += f" --db {shlex.quote(str(db.absolute()))}"
    return line


def _is_ours(hook: Any) -> bool:
    if not isinstance(hook, dict):
        return False
    if hook.get("type") == "mcp_tool":
        return hook.get("server") == SERVER_NAME and hook.get("tool") == HOOK_TOOL
    return HOOK_MARK in str(hook.get("command", ""))


# What each Claude Code version supports, from its hook schema (code.claude.com/docs/en/hooks, checked
# December 2026, and the schema inside the 2.1.337 client): `onFailure: "block"` on a hook entry makes a
# hook that fails (times out, crashes, cannot reach its MCP server, answers what is not a hook's output)
# block the call instead of letting it through (first in 2.1.295); hooks of type `mcp_tool` call a tool
# of an already connected MCP server, with `${path}` taken from the event in the input's string values
# (2.1.118). Ratchet uses `mcp_tool` only where it can also fail closed.
ON_FAILURE_SINCE = (2, 1, 295)
MCP_TOOL_SINCE = (2, 1, 118)
HOOK_PATHS = ("auto", "mcp", "command")


@dataclass(frozen=True)
class ClaudeVersion:
    """The installed Claude Code: its version (None when none was found or it could not be read)."""

    version: tuple[int, int, int] | None
    text: str

    @property
    def fails_closed(self) -> bool:
        """Whether its hook entries can say `onFailure: "block"` (unknown version: assumed current)."""
        return self.version is None or self.version >= ON_FAILURE_SINCE

    @property
    def label(self) -> str:
        return self.text


def parse_claude_version(text: str) -> tuple[int, int, int] | None:
    """`2.1.337 (Claude Code)` -> (2, 1, 337); None when the text holds no version."""

    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def claude_code_version(executable: str | None = None) -> ClaudeVersion:
    """The Claude Code on PATH (or `executable`), from `claude --version`."""
    exe = executable or shutil.which("claude")
    if exe is None:
        return ClaudeVersion(None, "no `claude` found on PATH")
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return ClaudeVersion(None, f"{exe}: its version could not be read ({exc})")
    out = (done.stdout or done.stderr).strip()
    version = parse_claude_version(out)
    return ClaudeVersion(version, f"Claude Code {'.'.join(map(str, version))}" if version else f"{exe}: {out!r}")


HOOK_TOOL = "claude_code_hook"  # Ratchet's MCP tool that answers `mcp_tool` hooks (mcp/server.py)
HOOK_TOOL_RULE = f"mcp__{SERVER_NAME}__{HOOK_TOOL}"
# The event's fields, as the `mcp_tool` hook hands them to the tool (a missing one arrives as its placeholder).
HOOK_TOOL_FIELDS = (
    "hook_event_name",
    "session_id",
    "transcript_path",
    "cwd",
    "permission_mode",
    "tool_name",
    "tool_input",
    "tool_use_id",
)
OUTCOME_FIELDS = {
    "PostToolUse": ("tool_response",),
    "PostToolUseFailure": ("error", "is_interrupt"),
    "PermissionDenied": ("reason",),
}


def mcp_tool_hook(event: str) -> dict[str, Any]:
    """The `mcp_tool` hook entry that sends `event` to Ratchet's running server."""
    fields = HOOK_TOOL_FIELDS if event in TOOL_EVENTS else HOOK_TOOL_FIELDS[:5]
    fields = (*fields, *OUTCOME_FIELDS.get(event, ()))
    hook: dict[str, Any] = {
        "type": "mcp_tool",
        "server": SERVER_NAME,
        "tool": HOOK_TOOL,
        "input": {f: "${" + f + "}" for f in fields},
        "timeout": HOOK_TIMEOUT_S,
    }
    if event in TOOL_EVENTS:
        hook["onFailure"] = "block"  # settling events block nothing (and SessionEnd races the server's exit)
    return hook


def _without_ours(groups: list[Any], ours: Callable[[Any], bool] | None = None) -> tuple[list[Any], int | None]:
    """The event's matcher groups minus Ratchet's hooks (`ours` tells them; Claude Code's by default), and
    where the first of them stood."""
    is_ours = _is_ours if ours is None else ours
    kept: list[Any] = []
    first: int | None = None
    for group in groups:
        hooks = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(hooks, list) or not any(is_ours(h) for h in hooks):
            kept.append(group)
            continue
        first = len(kept) if first is None else first
        rest = [h for h in hooks if not is_ours(h)]
        if rest:
            kept.append({**group, "hooks": rest})
    return kept, first


def _set_hooks(settings: dict[str, Any], where: Path, wanted: dict[str, dict[str, Any]]) -> None:
    """Put exactly `wanted` (event -> group) as Ratchet's hooks, in place of any earlier ones."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InvalidRequest(f"{where}: hooks is not an object; nothing was changed")
    for event in (*TOOL_EVENTS, *SETTLE_EVENTS):
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise InvalidRequest(f"{where}: hooks.{event} is not a list; nothing was changed")
        kept, first = _without_ours(groups)
        if event in wanted:
            kept.insert(len(kept) if first is None else first, wanted[event])
        if kept:
            hooks[event] = kept
        else:
            hooks.pop(event, None)
    if hooks:
        settings["hooks"] = hooks
    else:
        settings.pop("hooks", None)


# Claude Code's own sandbox, as its documentation describes it (code.claude.com/docs/en/sandboxing and
# /settings, "Sandbox settings", checked December 2026):
# - `sandbox.enabled: true` runs every Bash command, and every process it starts, under OS-level isolation
#   (Seatbelt on macOS, bubblewrap on Linux and WSL2); by default a sandboxed command can write only the
#   working directory and the session's temp directory.
# - `sandbox.filesystem.denyWrite`: paths sandboxed commands cannot write, even inside the working
#   directory ("Block sandboxed commands from writing..."); a directory covers what is under it. Arrays
#   merge across settings scopes. A path starting with `//` is absolute; any other relative path is taken
#   from the settings root: the project directory for project and local settings, ~/.claude for user
#   settings (so user scope gets absolute paths).
# - `sandbox.allowUnsandboxedCommands: false` removes the escape hatch by which a command that failed in
#   the sandbox is retried outside it (`dangerouslyDisableSandbox`); without it the denials are advisory.
# - `permissions.deny` rules `Edit(path)` apply to every built-in tool that edits files (Write, Edit,
#   MultiEdit, NotebookEdit) and are also enforced on sandboxed commands; in a rule `//path` is absolute and
#   `/path` relative to the settings root.
# Where the sandbox cannot start (a platform without it, bubblewrap missing) Claude Code warns and runs
# commands unsandboxed unless `sandbox.failIfUnavailable` is true; the installer's note says so.
PROTECTED_IN_PROJECT = (".ratchet", ".git/hooks", ".git/config")


def protected_paths(workspace: Path, scope: str, policies: Path | None, db: Path | None) -> list[tuple[str, bool]]:
    """(sandbox path, is a directory) for each path a sandboxed command must not write, in Claude Code's syntax."""
    project = scope in ("project", "local")
    found: list[tuple[str, bool]] = []
    for rel in PROTECTED_IN_PROJECT:
        found.append((rel if project else f"/{workspace}/{rel}", rel != ".git/config"))
    if policies is not None:
        found.append((f"/{policies.resolve()}", True))
    if db is not None:
        base = db.absolute()
        found += [(f"/{base}{suffix}", False) for suffix in ("", "-wal", "-shm", "-journal", ".http-token")]
    return found


def sandbox_settings(settings: dict[str, Any], where: Path, paths: list[tuple[str, bool]]) -> None:
    """Turn on Claude Code's sandbox with write denials for `paths`, keeping every other setting there."""
    sandbox = _table(settings, "sandbox", where)
    sandbox["enabled"] = True
    sandbox["allowUnsandboxedCommands"] = False
    deny_write = _list(_table(sandbox, "filesystem", where), "denyWrite", where)
    deny_write.extend(p for p, _ in paths if p not in deny_write)
    deny = _list(_table(settings, "permissions", where), "deny", where)
    for path, directory in paths:
        # `.ratchet` is relative to the settings root here: a rule says so with one leading slash.
        anchored = path if path.startswith("//") else f"/{path}"
        rule = f"Edit({anchored}/**)" if directory else f"Edit({anchored})"
        if rule not in deny:
            deny.append(rule)


OWN_TOOLS_RULE = f"mcp__{SERVER_NAME}"  # Claude Code's permission rule for every tool of Ratchet's server


def plan_claude_code(
    workspace: Path,
    *,
    scope: str = "project",
    command: str | None = None,
    policies: Path | None = None,
    db: Path | None = None,
    deny_builtins: bool = False,
    client: ClaudeVersion | None = None,
    hook_path: str = "auto",
) -> Plan:
    """The MCP entry and the hooks (or the deny rules) for Claude Code at `scope`, as the installed
    Claude Code (`client`, default: the one on PATH) supports them: `mcp_tool` hooks answered by the
    running server where hooks can fail closed (`hook_path` "auto" or "mcp"), command hooks otherwise
    (or with "command")."""
    if hook_path not in HOOK_PATHS:
        raise InvalidRequest(f"unknown hook path {hook_path!r}; expected one of: {', '.join(HOOK_PATHS)}")
    client = client or claude_code_version()
    use_mcp = hook_path == "mcp" or (hook_path == "auto" and client.fails_closed)
    if use_mcp and not client.fails_closed:
        raise InvalidRequest(
            f"{client.label} cannot fail closed on an mcp_tool hook (onFailure needs "
            f"{'.'.join(map(str, ON_FAILURE_SINCE))} or later); use --hook-path command, or update Claude Code"
        )
    ws = workspace.resolve()
    mcp_file, settings_file = claude_code_paths(scope, ws)
    exe = ratchet_command(command)
    server = {"type": "stdio", "command": exe, "args": serve_args(".", policies, db)}

    def add_server(data: dict[str, Any]) -> None:
        holder = data
        if scope == "local":
            holder = _table(_table(data, "projects", mcp_file), str(ws), mcp_file)
        _table(holder, "mcpServers", mcp_file)[SERVER_NAME] = server

    base = hook_command(exe, policies, db)
    wanted: dict[str, dict[str, Any]] = {}
    if not deny_builtins:
        for event in (*TOOL_EVENTS, *SETTLE_EVENTS):
            if use_mcp:
                hook = mcp_tool_hook(event)
            else:
                # A PreToolUse hook that cannot start (not found, crashed) must block, not let the call through.
                line = f"{base} || exit 2" if event == "PreToolUse" else base
                hook = {"type": "command", "command": line, "timeout": HOOK_TIMEOUT_S}
                if client.fails_closed:
                    hook["onFailure"] = "block"  # a timeout, too, blocks the call
            wanted[event] = {"matcher": MATCHER, "hooks": [hook]} if event in TOOL_EVENTS else {"hooks": [hook]}

    protected = protected_paths(ws, scope, policies, db)

    def add_settings(data: dict[str, Any]) -> None:
        _set_hooks(data, settings_file, wanted)
        # Ratchet's own tools pass Claude Code's prompt: Ratchet's gate decides each call and asks the
        # human itself, so a confirm-level write is one question with the diff, not two.
        allow = _list(_table(data, "permissions", settings_file), "allow", settings_file)
        if OWN_TOOLS_RULE not in allow:
            allow.append(OWN_TOOLS_RULE)
        # The hook tool is Claude Code's, not the model's: denied, it leaves the model's tool list while the
        # hook still calls it (and the server answers only the hook's calls anyway).
        deny_rules = _list(_table(data, "permissions", settings_file), "deny", settings_file)
        if use_mcp and not deny_builtins and HOOK_TOOL_RULE not in deny_rules:
            deny_rules.append(HOOK_TOOL_RULE)
        if deny_builtins:
            deny = _list(_table(data, "permissions", settings_file), "deny", settings_file)
            deny.extend(t for t in BUILTINS if t not in deny)
        sandbox_settings(data, settings_file, protected)

    # Every Bash call the hook allows runs in Ratchet's sandbox, nested inside Claude Code's, which Claude Code
    # permits only where the user's own settings say so (it ignores the key in a project's): without it every
    # Bash call would fail with "Creating new namespace failed".
    user_settings = Path.home() / ".claude" / "settings.json"

    def allow_nesting(data: dict[str, Any]) -> None:
        _table(data, "sandbox", user_settings)[NESTING_KEY] = True

    changes = [_json_change(mcp_file, add_server), _json_change(settings_file, add_settings)]
    if not deny_builtins:
        if user_settings == settings_file:

            def add_both(data: dict[str, Any]) -> None:
                add_settings(data)
                allow_nesting(data)

            changes[1] = _json_change(settings_file, add_both)
        else:
            changes.append(_json_change(user_settings, allow_nesting))
    notes = _claude_code_notes(ws, scope, mcp_file, settings_file, deny_builtins, client, use_mcp, protected)
    return Plan("claude-code", changes, [command_note(exe, command), *notes], exe)


def _claude_code_notes(
    ws: Path,
    scope: str,
    mcp_file: Path,
    settings_file: Path,
    deny_builtins: bool,
    client: ClaudeVersion,
    use_mcp: bool,
    protected: list[tuple[str, bool]],
) -> list[str]:
    """What `install claude-code` tells the person about the plan: what goes through the gate, the
    sandbox, the scope's caveats, headless runs and the restart."""
    notes = []
    if deny_builtins:
        notes.append(
            f"Claude Code's {', '.join(BUILTINS)} are denied in {settings_file}: the agent changes files and runs "
            "commands only through Ratchet's tools (write_file, edit_file, run_command). Any Ratchet hooks there "
            "are removed."
        )
    else:
        notes.append(
            f"Claude Code's {', '.join(BUILTINS)} go through Ratchet's gate: autonomous runs, confirm asks in "
            "Claude Code's dialog (your answer is evidence), draft is queued for `ratchet approve`, blocked is "
            "refused. "
            "Other tools (Read, Grep, WebFetch, Task, mcp__*, ...) get no answer from the hook: Claude Code's own "
            "permission rules apply to them."
        )
    if not deny_builtins:
        notes.append(hook_path_note(client, use_mcp))
    notes.append(
        f"Claude Code's sandbox is turned on in {settings_file} (sandbox.enabled, allowUnsandboxedCommands false) "
        "and denies writes to " + ", ".join(p for p, _ in protected) + " (sandbox.filesystem.denyWrite and Edit "
        "rules in permissions.deny): a command the hook allows still cannot change Ratchet's state, the policy, "
        "or git's config and hooks. On Linux and WSL2 the sandbox needs bubblewrap and socat; where it cannot "
        "start, Claude Code warns and runs commands unsandboxed unless you set sandbox.failIfUnavailable to true. "
        "The hook runs every Bash call it allows in Ratchet's own sandbox under its class's profile, nested "
        "inside Claude Code's: Claude Code permits that only with "
        '{"sandbox": {"allowNestedUserNamespaces": true}} in your user settings (~/.claude/settings.json), '
        'which this install sets; without it Bash calls fail with "Creating new namespace failed" and nothing '
        "runs."
    )
    if scope == "user":
        notes.append(f"User scope: the sandbox's write denials name this workspace ({ws}) only.")
    if scope != "project":
        notes.append(f"{mcp_file} is rewritten by Claude Code while it runs: apply this with Claude Code closed.")
    notes.append(
        f"Ratchet's own MCP tools are allowed in Claude Code's permissions ({OWN_TOOLS_RULE}): Ratchet's gate "
        "decides each call and asks you itself, once, with the change in view."
    )
    notes.append(
        "Headless runs (`claude -p`): Claude Code tells the hook nobody is there, and a confirm-level call is "
        "queued as a draft instead of asked; add `--permission-prompt-tool mcp__ratchet__permission_prompt` so "
        "anything else needing permission is answered from its class's level."
    )
    notes.append("Restart Claude Code to load the server and hooks (`/mcp` and `/hooks` show them).")
    return notes


def hook_path_note(client: ClaudeVersion, use_mcp: bool) -> str:
    """What the installed Claude Code gets, and what stays open."""
    if use_mcp:
        return (
            f"{client.label}: Ratchet's hooks are `mcp_tool` hooks, answered inside the Ratchet server the session "
            'already runs (no process per event), with onFailure "block": a hook that fails or times out, or a '
            "session where the ratchet server is not connected, blocks Bash/Write/Edit instead of letting them "
            "through. For sessions without the server use --hook-path command."
            + (
                " (No `claude` was found: this is what current versions get; run again once it is installed.)"
                if client.version is None
                else ""
            )
        )
    if client.fails_closed:
        return (
            f"{client.label}: Ratchet's hooks are command hooks (`ratchet hook claude-code`) with onFailure "
            '"block": a hook that fails or times out blocks the call.'
        )
    return (
        f"{client.label} has no onFailure in its hook schema: a PreToolUse hook that crashes or cannot start "
        "blocks (`|| exit 2`), but one that times out (60 s) lets the call through, and outcome events that fail "
        "are lost. Update Claude Code to 2.1.295 or later and run install again for hooks that fail closed."
    )


@dataclass(frozen=True)
class Finding:
    """One line of `ratchet install claude-code --check`: what was checked, and whether it holds."""

    ok: bool
    what: str


def _load_json(path: Path) -> dict[str, Any]:
    text = _read(path)
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"{path} is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def sandbox_can_start() -> tuple[bool, str]:
    """Whether Claude Code's sandbox can start here: bubblewrap and socat on Linux, and bwrap runs."""
    if sys.platform != "linux":
        return True, f"{sys.platform}: Claude Code uses the platform's own sandbox"
    missing = [t for t in ("bwrap", "socat") if shutil.which(t) is None]
    if missing:
        return False, f"missing {' and '.join(missing)} (apt-get install bubblewrap socat)"
    try:
        done = subprocess.run(
            ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bwrap could not run ({exc})"
    if done.returncode != 0:
        return False, f"bwrap cannot start a sandbox here: {done.stderr.strip()[:200]}"
    return True, "bubblewrap and socat are installed and bwrap starts"


def check_claude_code(workspace: Path, *, scope: str = "project", client: ClaudeVersion | None = None) -> list[Finding]:
    """What `ratchet install claude-code --check` reports for an existing project (see the README)."""
    ws = workspace.resolve()
    client = client or claude_code_version()
    mcp_file, settings_file = claude_code_paths(scope, ws)
    found: list[Finding] = []
    found.append(Finding(client.version is not None, f"installed: {client.label}"))
    mcp = _load_json(mcp_file)
    holder = mcp.get("projects", {}).get(str(ws), {}) if scope == "local" else mcp
    servers = holder.get("mcpServers", {}) if isinstance(holder, dict) else {}
    found.append(
        Finding(
            isinstance(servers, dict) and SERVER_NAME in servers,
            f"Ratchet's MCP server entry ({SERVER_NAME}) in {mcp_file}",
        )
    )
    settings = _load_json(settings_file)
    if scope == "project":
        # A project's .mcp.json server runs only once approved (Claude Code asks the first time; `mcp_tool`
        # hooks block until it runs). Claude Code rewrites its own record of approvals, so only a server
        # switched off there (disabledMcpjsonServers) is reported as a failure.
        state = _load_json(Path.home() / ".claude.json").get("projects", {})
        mine = state.get(str(ws), {}) if isinstance(state, dict) else {}
        disabled = mine.get("disabledMcpjsonServers", []) if isinstance(mine, dict) else []
        off = isinstance(disabled, list) and SERVER_NAME in disabled
        found.append(
            Finding(
                not off,
                f"the project's {SERVER_NAME} server "
                + ("is switched off in Claude Code (/mcp to enable it)" if off else "not switched off in Claude Code"),
            )
        )
    hooks = settings.get("hooks", {}) if isinstance(settings.get("hooks"), dict) else {}
    paths: set[str] = set()
    for event in (*TOOL_EVENTS, *SETTLE_EVENTS):
        ours = [h for g in hooks.get(event, []) if isinstance(g, dict) for h in g.get("hooks", []) if _is_ours(h)]
        if not ours:
            found.append(Finding(False, f"{event}: no Ratchet hook in {settings_file}"))
            continue
        hook = ours[0]
        path = "mcp_tool" if hook.get("type") == "mcp_tool" else "command"
        paths.add(path)
        closed = hook.get("onFailure") == "block" and client.fails_closed
        if event in SETTLE_EVENTS:
            found.append(Finding(True, f"{event}: Ratchet's {path} hook"))
        elif closed:
            found.append(Finding(True, f"{event}: Ratchet's {path} hook, failing closed (onFailure block)"))
        else:
            why = "the installed Claude Code has no onFailure" if not client.fails_closed else "no onFailure block"
            found.append(Finding(False, f"{event}: Ratchet's {path} hook fails OPEN on a timeout ({why})"))
    if paths:
        found.append(Finding(len(paths) == 1, "hook path in use: " + " and ".join(sorted(paths))))
        if "mcp_tool" in paths and client.version is not None and client.version < MCP_TOOL_SINCE:
            found.append(Finding(False, f"{client.label} has no mcp_tool hooks: run install again"))
    perms = settings.get("permissions", {}) if isinstance(settings.get("permissions"), dict) else {}
    allow, deny = perms.get("allow", []), perms.get("deny", [])
    found.append(
        Finding(OWN_TOOLS_RULE in allow, f"Ratchet's MCP tools allowed ({OWN_TOOLS_RULE} in permissions.allow)")
    )
    if "mcp_tool" in paths:
        found.append(Finding(HOOK_TOOL_RULE in deny, f"the hook tool kept from the model ({HOOK_TOOL_RULE} denied)"))
    sandbox = settings.get("sandbox", {}) if isinstance(settings.get("sandbox"), dict) else {}
    on = sandbox.get("enabled") is True and sandbox.get("allowUnsandboxedCommands") is False
    found.append(Finding(on, "Claude Code's sandbox on, without unsandboxed retries"))
    can, why = sandbox_can_start()
    found.append(Finding(can, f"the sandbox can start: {why}"))
    if on and paths:
        user = _read(Path.home() / ".claude" / "settings.json")
        try:
            user_sandbox = json.loads(user).get("sandbox", {}) if user and user.strip() else {}
        except (ValueError, AttributeError):
            user_sandbox = {}
        nests = isinstance(user_sandbox, dict) and user_sandbox.get(NESTING_KEY) is True
        found.append(
            Finding(
                nests,
                f"Ratchet's sandbox may nest in Claude Code's (sandbox.{NESTING_KEY} in ~/.claude/settings.json)"
                + ("" if nests else ": without it every Bash call the hook allows fails"),
            )
        )
    return found


def render_check(findings: list[Finding]) -> str:
    """The check's report: one line per finding, then a verdict."""
    lines = [f"{'ok  ' if f.ok else 'FAIL'} {f.what}" for f in findings]
    bad = sum(not f.ok for f in findings)
    lines.append("all checks passed" if not bad else f"{bad} check(s) failed: `ratchet install claude-code` fixes most")
    return "\n".join(lines)


# -- Codex -------------------------------------------------------------------------------------


def codex_config_path() -> Path:
    """Codex's config.toml: `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`."""
    home = os.environ.get("CODEX_HOME")
    return (Path(home) if home else Path.home() / ".codex") / "config.toml"


async def tool_approvals() -> list[tuple[str, str, str]]:
    """(tool, Codex approval_mode, why) for each of Ratchet's MCP tools, from their annotations."""
    from ratchet.mcp.server import ServerConfig, build_server  # start-up: the MCP SDK, only for this check

    operation("write_file")  # fills the registry of governed operations
    # Building the server reads no policy and opens no database; only the tool list is wanted.
    tools = await build_server(ServerConfig(Path.cwd(), None, None)).list_tools()
    out = []
    for tool in tools:
        hints = tool.annotations
        if hints is not None and hints.read_only_hint:
            why = "read-only"
        elif tool.name in OPERATIONS:
            why = "governed: Ratchet's gate decides, and asks the human itself at confirm"
        elif hints is not None and hints.destructive_hint:
            why = "acts only on the human's answer in the client's dialog"
        else:
            why = "records only"
        # Every tool is approved in Codex: the decisions that matter are Ratchet's, and a second
        # prompt from Codex would ask the human twice for one change and record nothing.
        out.append((tool.name, "approve", why))
    return out


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string (validated below)


def codex_block(command: str, args: list[str], approvals: list[tuple[str, str, str]], newline: str = "\n") -> str:
    """The managed `[mcp_servers.ratchet]` block, markers included."""
    lines = [
        BLOCK_BEGIN,
        f"[mcp_servers.{SERVER_NAME}]",
        f"command = {_toml_str(command)}",
        f"args = [{', '.join(_toml_str(a) for a in args)}]",
    ]
    for tool, mode, why in approvals:
        lines += ["", f"[mcp_servers.{SERVER_NAME}.tools.{tool}]", f"approval_mode = {_toml_str(mode)}  # {why}"]
    lines.append(BLOCK_END)
    return newline.join(lines) + newline


def _split_block(text: str, path: Path) -> tuple[str, str, str] | None:
    """(before, block, after) of the managed block in `text`, or None if there is none."""
    begin, end = text.find(BLOCK_BEGIN), text.find(BLOCK_END)
    if begin == -1 and end == -1:
        return None
    if begin == -1 or end == -1 or end < begin or text.count(BLOCK_BEGIN) > 1 or text.count(BLOCK_END) > 1:
        raise InvalidRequest(
            f"{path}: Ratchet's managed block is damaged (its markers are missing, repeated or out of order); "
            "remove what is left of it and run again. Nothing was changed"
        )
    stop = end + len(BLOCK_END)
    if text.startswith("\r\n", stop):
        stop += 2
    elif text.startswith("\n", stop):
        stop += 1
    return text[:begin], text[begin:stop], text[stop:]


CODEX_HOOK_TIMEOUT_S = 60  # Codex stops the hook at this point and lets the call go ahead (fails open)
CODEX_HOOK_EVENTS = ("PreToolUse", "PostToolUse", "Stop")


def codex_home() -> Path:
    """Codex's home: `$CODEX_HOME`, else `~/.codex`."""
    home = os.environ.get("CODEX_HOME")
    return Path(home) if home else Path.home() / ".codex"


def codex_hook_command(command: str, policies: Path | None, db: Path | None) -> str:
    """The shell line Codex runs for each hook event. No --workspace: the hook takes the project root
    at or above the session's directory, as the MCP server does."""
    line = f"{shlex.quote(command)} hook codex"
    if policies is not None:
        line += f" --policies {shlex.quote(str(policies.resolve()))}"
    if db is not None:
        line += f" --db {shlex.quote(str(db.absolute()))}"
    return line


def codex_fail_closed(line: str) -> str:
    """`line` for PreToolUse: when Ratchet cannot start or fails, exit 2 with a reason on stderr,
    which Codex takes as a block (any other exit code lets the call through; exit 2 without a
    reason on stderr does too)."""
    why = (
        "Ratchet's hook could not run (exit $?), so this call was not checked and did not run. Tell the person: "
        "Ratchet may be missing or broken (ratchet install codex --check)."
    )
    return f'{line} || {{ echo "{why}" >&2; exit 2; }}'


def codex_hook_commands(command: str, policies: Path | None, db: Path | None) -> dict[str, str]:
    """The exact command of each of Ratchet's Codex hooks, by event."""
    base = codex_hook_command(command, policies, db)
    # Stop settles calls Codex's own approval turned down (they report no outcome).
    return {"PreToolUse": codex_fail_closed(base), "PostToolUse": base, "Stop": base}


def trust_codex_hooks(workspace: Path, commands: set[str], binary: str | None = None) -> tuple[int, str]:
    """Trust exactly Ratchet's hooks (their commands equal to `commands`) in Codex, through Codex's
    app-server as its /hooks review does; (how many were trusted, what to tell the person)."""

    exe = binary or shutil.which("codex")
    if exe is None:
        return 0, "No `codex` found on PATH: trust Ratchet's hooks in Codex's /hooks instead."
    n = codex_app.trust_hooks(exe, workspace.resolve(), lambda c: c in commands)
    if n:
        return n, f"Trusted {n} of Ratchet's hooks in Codex (as /hooks would); other hooks were left as they were."
    return 0, (
        "No untrusted hook of Ratchet's was listed by Codex: they are trusted already, or Codex does not load "
        "them here (a project Codex does not trust: trust it, then run this again). See --check."
    )


def _is_codex_hook(hook: Any) -> bool:
    return isinstance(hook, dict) and CODEX_HOOK_MARK in str(hook.get("command", ""))


def plan_codex_hooks(path: Path, command: str, policies: Path | None, db: Path | None) -> Change:
    """Ratchet's PreToolUse and PostToolUse entries in Codex's `hooks.json` at `path`, in place of
    any earlier ones of Ratchet's; every other hook there is kept."""
    wanted = codex_hook_commands(command, policies, db)

    def mutate(data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - {"description", "hooks"})
        if unknown:
            raise InvalidRequest(
                f"{path}: Codex refuses a hooks.json with other top-level keys than description and hooks "
                f"(found {', '.join(unknown)}); fix it first, nothing was changed"
            )
        hooks = _table(data, "hooks", path)
        for event in CODEX_HOOK_EVENTS:
            groups = hooks.get(event, [])
            if not isinstance(groups, list):
                raise InvalidRequest(f"{path}: hooks.{event} is not a list; nothing was changed")
            kept, first = _without_ours(groups, _is_codex_hook)
            ours: dict[str, Any] = {} if event == "Stop" else {"matcher": CODEX_MATCHER}
            ours["hooks"] = [
                {
                    "type": "command",
                    "command": wanted[event],
                    "timeout": CODEX_HOOK_TIMEOUT_S,
                    "statusMessage": "Ratchet: recording the turn's calls"
                    if event == "Stop"
                    else "Ratchet: checking the call against the policy",
                }
            ]
            kept.insert(len(kept) if first is None else first, ours)
            hooks[event] = kept

    return _json_change(path, mutate)


async def plan_codex(
    *,
    command: str | None = None,
    policies: Path | None = None,
    db: Path | None = None,
    path: Path | None = None,
    hooks: Path | None = None,
) -> Plan:
    """The managed `[mcp_servers.ratchet]` block in Codex's config.toml (`path`: a project's
    `.codex/config.toml`; default: the user's). The server's `--workspace .` is the project root at or
    above wherever Codex starts it, so one entry serves every start directory of a project."""
    path = path or codex_config_path()
    before = _read(path)
    text = before or ""
    exe = ratchet_command(command)
    args = serve_args(".", policies, db)
    approvals = await tool_approvals()
    newline = "\r\n" if "\r\n" in text else "\n"
    block = codex_block(exe, args, approvals, newline)
    parts = _split_block(text, path)
    rest = text if parts is None else parts[0] + parts[2]
    try:
        existing = tomllib.loads(rest)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"{path} is not valid TOML ({exc}); fix it first, nothing was changed") from None
    servers = existing.get("mcp_servers")
    if isinstance(servers, dict) and SERVER_NAME in servers:
        raise InvalidRequest(
            f"{path} already defines mcp_servers.{SERVER_NAME} outside Ratchet's managed block (from "
            f"`codex mcp add`?); remove it (`codex mcp remove {SERVER_NAME}`) and run again. Nothing was changed"
        )
    if parts is not None:
        after = parts[0] + block + parts[2]
    else:
        sep = "" if not text else newline if text.endswith("\n") else newline * 2
        after = text + sep + block
    try:
        written = tomllib.loads(after).get("mcp_servers", {}).get(SERVER_NAME)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(
            f"{path}: adding Ratchet's block would not be valid TOML ({exc}); nothing was changed"
        ) from None
    expected = {"command": exe, "args": args, "tools": {t: {"approval_mode": m} for t, m, _ in approvals}}
    if written != expected:
        raise InvalidRequest(
            f"{path}: Ratchet's block does not read back as written (is mcp_servers defined inline?); "
            "nothing was changed"
        )
    changes = [Change(path, before, after)]
    notes = [CODEX_NOTE]
    if hooks is not None:
        changes.append(plan_codex_hooks(hooks, exe, policies, db))
        project = hooks.parent.name == ".codex" and hooks.parent != codex_home()
        notes.append(
            f"Codex runs a hook only once you trust it: add --trust-hooks (with --apply), or start `codex` in "
            f"the project, open /hooks and trust "
            f"Ratchet's three hooks ({hooks}); a changed hook needs trusting again. "
            + (
                "Project hooks (and a project's config.toml) load only in a project you trust in Codex "
                "(the folder prompt, or `codex exec --trust` once). "
                if project
                else ""
            )
            + "`ratchet install codex --check` says whether they are trusted."
        )
    version = _codex_version()
    notes.append(f"Installed Codex: {version}." if version else "No `codex` found on PATH.")
    notes.append(
        "Ratchet's server starts in whatever directory Codex runs in and uses the project root above it (the "
        "nearest directory holding .ratchet/ or .git), so a run from proj/src uses proj's policies and database."
    )
    notes.append(
        "Headless Codex (`codex exec`, or approvalPolicy never) answers Ratchet's questions itself, at once; Ratchet "
        "counts no answer that fast as a human's: a confirm-level call it declines is queued as a draft for "
        "`ratchet queue` / `ratchet approve ID`. Restart Codex to load the server (`/mcp` lists it)."
    )
    return Plan("codex", changes, [command_note(exe, command), *notes], exe)


@dataclass
class CodexCheck:
    """`ratchet install codex --check`: what Codex itself reports, and whether Ratchet governs it."""

    ok: bool
    lines: list[str]
    facts: dict[str, Any]


def check_codex(workspace: Path, binary: str | None = None) -> CodexCheck:
    """Ask the installed Codex (its app-server) whether Ratchet's hooks are present, enabled and
    trusted for `workspace`, whether Ratchet's MCP server is configured, and which sandbox mode,
    approval policy and approvals reviewer apply there. `ok` only when Codex's shell and apply_patch
    are governed (both hooks present, enabled, trusted, the PreToolUse one failing closed)."""

    exe = binary or shutil.which("codex")
    if exe is None:
        return CodexCheck(False, ["No `codex` found on PATH: nothing to check."], {"codex": None})
    state = codex_app.read_state(exe, workspace.resolve())
    ours = {h.get("eventName"): h for h in state.hooks if CODEX_HOOK_MARK in str(h.get("command", ""))}
    project_file = workspace.resolve() / ".codex" / "hooks.json"
    in_project_file = CODEX_HOOK_MARK in (_read(project_file) or "")
    config = state.config
    projects = config.get("projects") if isinstance(config.get("projects"), dict) else {}
    trusted_project = any(
        isinstance(v, dict) and v.get("trust_level") == "trusted" and Path(k) in (workspace, workspace.resolve())
        for k, v in (projects or {}).items()
    )
    lines = [f"Codex: {_codex_version_of(exe)} ({exe}), seen from {workspace.resolve()}"]
    governed = True
    facts: dict[str, Any] = {"codex": exe, "hooks": {}}
    for event, key in (("PreToolUse", "preToolUse"), ("PostToolUse", "postToolUse"), ("Stop", "stop")):
        hook = ours.get(key)
        if hook is None:
            lines.append(
                f"- {event} hook: in {project_file}, but NOT LOADED: Codex loads a project's hooks only in a project "
                "it trusts"
                if in_project_file and not trusted_project
                else f"- {event} hook: MISSING (run `ratchet install codex --apply`)"
            )
            facts["hooks"][event] = None
            governed = False
            continue
        trust, enabled = hook.get("trustStatus"), hook.get("enabled") is True
        fail_closed = event != "PreToolUse" or "exit 2" in str(hook.get("command", ""))
        facts["hooks"][event] = {
            "source": hook.get("sourcePath"),
            "trust": trust,
            "enabled": enabled,
            "fail_closed": fail_closed,
        }
        state_words = [f"trust {trust}", "enabled" if enabled else "DISABLED"]
        if event == "PreToolUse":
            state_words.append(("blocks" if fail_closed else "FAILS OPEN") + " when Ratchet cannot run")
        lines.append(f"- {event} hook: {hook.get('sourcePath')} ({', '.join(state_words)})")
        if trust not in ("trusted", "managed") or not enabled or not fail_closed:
            governed = False
    if any(h is not None and h["trust"] not in ("trusted", "managed") for h in facts["hooks"].values()):
        lines.append(
            "  Codex skips an untrusted or modified hook without a word: start `codex` here, open /hooks and trust "
            "Ratchet's hooks (each is trusted by its exact text; a reinstall that changes it needs trusting again)."
        )
    project_hooks = in_project_file or any(
        h is not None and str(h["source"]).startswith(str(workspace.resolve()) + "/") for h in facts["hooks"].values()
    )
    if project_hooks:
        lines.append(
            "- project: "
            + (
                "trusted in Codex (its .codex/ layer loads)"
                if trusted_project
                else "NOT trusted in Codex: its .codex/hooks.json and config.toml do not load (trust the folder "
                "when Codex asks, or run `codex exec --trust` once here)"
            )
        )
        governed = governed and trusted_project
    servers = config.get("mcp_servers") if isinstance(config.get("mcp_servers"), dict) else {}
    mcp = SERVER_NAME in (servers or {})
    lines.append(f"- Ratchet's MCP server: {'configured' if mcp else 'NOT configured'} (mcp_servers.{SERVER_NAME})")
    sandbox, approval = config.get("sandbox_mode"), config.get("approval_policy")
    reviewer = config.get("approvals_reviewer")
    lines.append(
        f"- sandbox mode: {sandbox or 'not set (Codex default)'}; approval policy: "
        f"{json.dumps(approval) if isinstance(approval, dict) else approval or 'not set (Codex default)'}; "
        f"approvals reviewer: {reviewer or 'not set (user)'}"
    )
    for error in state.hook_errors:
        lines.append(f"- Codex reports: {error}")
    facts.update(
        {
            "project_trusted": trusted_project,
            "mcp_server": mcp,
            "sandbox_mode": sandbox,
            "approval_policy": approval,
            "approvals_reviewer": reviewer,
        }
    )
    lines.append("Governed by Ratchet here:")
    lines.append(
        "- Codex's shell and apply_patch: "
        + (
            "yes, through the hooks (autonomous runs under Codex's sandbox and is recorded; the rest is refused "
            "with a draft or a packet)"
            if governed
            else "NO: they run under Codex's sandbox and approval policy alone"
        )
    )
    lines.append(
        "- Ratchet's own tools (write_file, edit_file, run_command, git): "
        + ("yes, inside Ratchet's server" if mcp else "not available (no MCP server entry)")
    )
    lines.append("- not governed: Codex's other tools (web search, images, other MCP servers' tools)")
    if reviewer in ("auto_review", "guardian_subagent"):
        lines.append(
            "- auto-review is on: Codex's reviewer, not you, answers Codex's own approval prompts; Ratchet never "
            "records its answers as yours"
        )
    facts["governed"] = governed
    return CodexCheck(governed and mcp, lines, facts)


def _codex_version_of(exe: str) -> str:
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "version unknown"
    return (done.stdout or done.stderr).strip() or "version unknown"


def _codex_version() -> str | None:
    exe = shutil.which("codex")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return f"{exe} (its version could not be read)"
    return (done.stdout or done.stderr).strip() or exe


# -- Claude Desktop ----------------------------------------------------------------------------


def claude_desktop_config_path() -> Path:
    """Claude Desktop's config: ~/Library/Application Support/Claude on macOS, ~/.config/Claude elsewhere."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    return Path.home() / ".config" / "Claude" / "claude_desktop_config.json"


def plan_claude_desktop(
    workspace: Path, *, command: str | None = None, policies: Path | None = None, db: Path | None = None
) -> Plan:
    """The `ratchet` entry of claude_desktop_config.example.json, for this workspace."""
    path = claude_desktop_config_path()
    # Claude Desktop starts servers with a minimal PATH and no project directory: absolute paths only.
    exe = ratchet_command(command)
    entry = {
        "command": exe,
        "args": serve_args(str(workspace.resolve()), policies, db),
    }

    def add_server(data: dict[str, Any]) -> None:
        _table(data, "mcpServers", path)[SERVER_NAME] = entry

    notes = [command_note(exe, command), "Restart Claude Desktop to load the server."]
    return Plan("claude-desktop", [_json_change(path, add_server)], notes, exe)


# -- output ------------------------------------------------------------------------------------


def render(plan: Plan, written: list[tuple[Path, Path | None]] | None) -> str:
    """What `ratchet install` prints: each file's diff (or "unchanged"), what was written, the notes."""
    backups = dict(written or [])
    out = [f"ratchet install {plan.client}:"]
    for change in plan.changes:
        if not change.changed:
            out.append(f"{change.path}: unchanged")
            continue
        out.append(change.diff().rstrip("\n"))
        if written is not None:
            backup = backups.get(change.path)
            out.append(f"wrote {change.path}" + (f" (backup: {backup})" if backup else " (new file)"))
    if not plan.changed:
        # The explanation was read when it was installed: `--apply` again says only that nothing changed.
        return "\n".join([*out, f"Ratchet is already installed for {plan.client}: nothing to change."])
    if written is None:
        out.append("Nothing was written: run again with --apply to make these changes (each file is backed up first).")
    out += ["", *plan.notes]
    return "\n".join(out)
