"""`ratchet status`: where every class stands, with the hook servers serving this workspace."""

from __future__ import annotations

import argparse
from pathlib import Path

from ratchet import terminal
from ratchet.claude_code import hook_servers
from ratchet.cli.common import (
    Add,
    action_filter,
    add_filters,
    emit,
    joined,
    opened,
)
from ratchet.cli.hook import NO_HOOK_SERVER
from ratchet.engine import reviewer as delegated


async def cmd_status(args: argparse.Namespace) -> int:
    """Where every class stands: its level, its evidence, what a call would do now, and what the next
    promotion needs. With --by, --origin-workspace or --repo the drafts queued and the recent actions are
    theirs; the standings stay team-wide (every action of a class moved it)."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        levels = await engine.trust_levels()
        queue = await engine.queue(scope)
        recent = await engine.history(STATUS_RECENT, scope=scope) if scope.active else []
        reviewing = await engine.reviewer_standing()
    waiting = sum(1 for d in queue if d.waiting)
    servers = hook_servers.running(workspace=Path(args.workspace).resolve())
    value = {
        **levels.model_dump(mode="json"),
        "filter": scope,
        "queued": len(queue),
        "waiting_for_origin": waiting,
        **({"recent": recent} if scope.active else {}),
        "hook_servers": servers,
        "reviewer": reviewing,
    }

    def text() -> str:
        shown = terminal.status(levels, len(queue), scope=scope, waiting=waiting, recent=recent)
        lines = [s.line() for s in servers] or [NO_HOOK_SERVER]
        lines += [delegated.render(reviewing)] if reviewing["configured"] else []
        head, _, rest = shown.partition("\n\n")  # after the policy's lines, before the classes
        return joined(head, *lines, "", rest) if rest else joined(shown, *lines)

    emit(args, value, text)
    return 0


STATUS_RECENT = 10  # recent actions `status` lists under a filter


def add_status(add: Add) -> None:
    p = add("status", cmd_status, json_flag=True, what="every class's standing")
    add_filters(p)
