"""`ratchet hook` (one hook event of Claude Code or Codex answered) and `ratchet hook-server` (the resident ones)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from ratchet.claude_code import hook_servers
from ratchet.claude_code.hook_socket import IDLE_S
from ratchet.cli.common import (
    Add,
    emit,
    joined,
)
from ratchet.record.store import parse_location


async def cmd_hook(args: argparse.Namespace) -> int:
    """Answer one hook event of a client's own tools (Claude Code): the event as JSON on stdin, the
    decision on stdout. Bash, Write, Edit, MultiEdit and NotebookEdit get allow, ask or deny from their
    class's level (deny queues a draft, or carries the escalation packet); outcome events feed the trust
    window. Other tools get no answer, so the client's own rules apply. Anything that goes wrong
    while deciding is a deny, never an allow. `ratchet install claude-code` sets this up."""
    from ratchet.claude_code.hooks import HookOptions, claude_code_process  # start-up: only for hook
    from ratchet.codex.hooks import codex_process  # start-up: only for hook

    # The console script usually answers hook events before this module is imported (entry.py).
    options = HookOptions(
        workspace=Path(args.workspace) if args.workspace else None, policies=args.policies, db=args.db
    )
    if args.client == "codex":  # Codex's shell and apply_patch (codex_hooks); `ratchet install codex`
        answer = await codex_process(sys.stdin.buffer.read(), options)
    else:
        answer = await claude_code_process(sys.stdin.buffer.read(), options)
    if answer:
        print(answer, flush=True)
    return 0


NO_HOOK_SERVER = (
    f"hook server: none running (a Claude Code hook event starts one; it exits after "
    f"{IDLE_S / 60:g} min without an event)"
)


async def cmd_hook_server(args: argparse.Namespace) -> int:
    """Show or end the resident hook servers: a Claude Code hook event starts one in the background, which
    answers later events faster and exits after 10 minutes without one (`ratchet serve --resident` starts a
    resident serve server the same way, listed and ended here too). `status` lists those serving this
    workspace (--all: every one of yours); `stop` ends them now (the next hook event starts one again)."""
    workspace = None if args.all else Path(args.workspace).resolve()
    servers = hook_servers.running(workspace=workspace)
    if args.task == "status":
        emit(args, servers, lambda: joined(*(s.line() for s in servers)) if servers else NO_HOOK_SERVER)
        return 0
    stopped = [s for s in servers if await anyio.to_thread.run_sync(hook_servers.stop, s)]
    emit(
        args,
        stopped,
        lambda: joined(*(f"{s.name} {s.pid} stopped" for s in stopped)) if stopped else "no hook server running",
    )
    return 0


def add_hook(add: Add) -> None:
    # hook: the workspace defaults to the event's cwd, so it does not share the common --workspace default.
    p = add("hook", cmd_hook, shared=False)
    p.add_argument("client", choices=["claude-code", "codex"], help="whose hook event arrives on stdin")
    p.add_argument("--workspace", default=None, help="the workspace directory (default: the event's cwd)")
    p.add_argument("--policies", type=Path, default=None, help="policy directory (default: as for serve)")
    p.add_argument("--db", type=parse_location, default=None, help="trust database (default: as for serve)")


def add_hook_server(add: Add) -> None:
    p = add("hook-server", cmd_hook_server, json_flag=True, what="the hook servers")
    p.add_argument("task", choices=["status", "stop"], help="list the running hook servers, or end them")
    p.add_argument("--all", action="store_true", help="every hook server of yours, whatever workspace it serves")
