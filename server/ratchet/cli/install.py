"""`ratchet install`: Ratchet set up in a client (its MCP entry and, for Claude Code and Codex, the hooks)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from ratchet.cli.common import (
    Add,
    emit,
)
from ratchet.errors import UsageError


async def cmd_install(args: argparse.Namespace) -> int:
    """Set Ratchet up in a client in one command: its MCP server entry and, for Claude Code, the hooks
    that put its built-in Bash/Write/Edit behind the same gate. Shows a diff of what would change; with
    --apply writes it, keeping everything already there and backing each file up first."""
    from ratchet import install  # start-up: the clients' configuration, only for install

    if args.check and args.client == "codex":
        check = await anyio.to_thread.run_sync(install.check_codex, Path(args.workspace))
        emit(args, {"client": "codex", "ok": check.ok, **check.facts}, lambda: "\n".join(check.lines))
        return 0 if check.ok else 1
    if args.client != "claude-code" and args.deny_builtins:
        raise UsageError("--deny-builtins applies to claude-code only")
    if args.client == "claude-desktop" and args.scope:
        raise UsageError("--scope applies to claude-code and codex only; Claude Desktop has one config file")
    if args.client == "codex" and args.scope == "local":
        raise UsageError("--scope local applies to claude-code only; for codex use project or user")
    workspace = Path(args.workspace)
    warnings = []
    if not workspace.is_dir():
        warnings.append(
            f"workspace {workspace} does not exist: the client would serve a directory that is not there; "
            "create it, or pass your project's directory as --workspace"
        )
    if args.check:
        if args.client != "claude-code" or args.apply:
            raise UsageError("--check applies to codex and claude-code (without --apply)")
        findings = install.check_claude_code(workspace, scope=args.scope or "project")
        report = {"checks": [{"ok": f.ok, "what": f.what} for f in findings], "ok": all(f.ok for f in findings)}
        emit(args, report, lambda: install.render_check(findings))
        return 0 if report["ok"] else 1
    if args.client == "claude-code":
        plan = install.plan_claude_code(
            workspace,
            scope=args.scope or "project",
            command=args.ratchet_command,
            policies=args.policies,
            db=args.db,
            deny_builtins=args.deny_builtins,
            hook_path=args.hook_path,
        )
    elif args.client == "codex":
        project = workspace / ".codex" / "config.toml" if args.scope == "project" else None
        # Codex's own shell and apply_patch: hooks in the project's .codex/ unless --scope user.
        hooks = install.codex_home() / "hooks.json" if args.scope == "user" else workspace / ".codex" / "hooks.json"
        plan = await install.plan_codex(
            command=args.ratchet_command, policies=args.policies, db=args.db, path=project, hooks=hooks
        )
    else:
        plan = install.plan_claude_desktop(workspace, command=args.ratchet_command, policies=args.policies, db=args.db)
    for warning in warnings:
        print(f"ratchet: warning: {warning}", file=sys.stderr)
    written = install.apply(plan) if args.apply else None
    trusted = ""  # what trusting the hooks did now: said even when no file changed
    if args.trust_hooks:
        if args.client != "codex" or not args.apply:
            raise UsageError("--trust-hooks applies to codex, with --apply")
        wanted = install.codex_hook_commands(plan.command, args.policies, args.db)
        _, trusted = await anyio.to_thread.run_sync(install.trust_codex_hooks, workspace, set(wanted.values()))
        plan.notes.append(trusted)
    backups = dict(written or [])
    summary = {
        "client": plan.client,
        "applied": args.apply,
        "command": plan.command,
        "files": [
            {"path": str(c.path), "changed": c.changed, "backup": str(backups[c.path]) if backups.get(c.path) else None}
            for c in plan.changes
        ],
        "warnings": warnings,
        "notes": plan.notes,
    }
    after = f"\n{trusted}" if trusted and not plan.changed else ""  # render keeps notes only for a change
    emit(args, summary, lambda: install.render(plan, written) + after)
    return 0


def add_install(add: Add) -> None:
    p = add("install", cmd_install, json_flag=True, what="what was (or would be) written")
    p.add_argument("client", choices=["claude-code", "codex", "claude-desktop"], help="the client to set up")
    p.add_argument(
        "--scope",
        choices=["project", "user", "local"],
        default=None,
        help="claude-code: project (.mcp.json, .claude/settings.json; the default), user (~/.claude.json, "
        "~/.claude/settings.json) or local (~/.claude.json for this project, .claude/settings.local.json); "
        "codex: user (~/.codex/config.toml; the default) or project (the project's .codex/config.toml)",
    )
    p.add_argument("--apply", action="store_true", help="write the changes (default: only show the diff)")
    p.add_argument(
        "--trust-hooks",
        action="store_true",
        help="codex, with --apply: trust exactly Ratchet's hooks in Codex (as its /hooks review does), "
        "after you have read the diff",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="codex: ask Codex whether Ratchet's hooks are present and trusted, which sandbox and approval policy "
        "apply, and what is governed; exit 1 when its shell and apply_patch are not governed. claude-code: report "
        "whether this project's hooks are present and fail closed, the sandbox is on and can start, Ratchet's "
        "tools are allowed, and which hook path is in use (exit 1 when a check fails)",
    )
    p.add_argument(
        "--deny-builtins",
        action="store_true",
        help="claude-code: deny Bash/Write/Edit/MultiEdit/NotebookEdit in permissions instead of hooking them",
    )
    p.add_argument(
        "--hook-path",
        choices=["auto", "mcp", "command"],
        default="auto",
        help="claude-code: mcp (hooks answered by the running Ratchet server), command (a `ratchet hook` process "
        "per event), or auto (the default: mcp where the installed Claude Code can fail closed)",
    )
    p.add_argument(
        "--command",
        dest="ratchet_command",
        help="how the client should start ratchet (default: this installation's console script, by absolute path)",
    )
    p.epilog = (
        "Files: Codex $CODEX_HOME/config.toml (default ~/.codex/config.toml); Claude Desktop "
        "~/.config/Claude/claude_desktop_config.json on Linux, ~/Library/Application Support/Claude/"
        "claude_desktop_config.json on macOS. Backups of files inside a git repository are git-ignored "
        "there (its .git/info/exclude)."
    )
