"""After an action ran: `complain` (it was wrong), `undo` (put it back), `gc` (the prior versions kept for undo)."""

from __future__ import annotations

import argparse

from ratchet.cli.common import (
    Add,
    emit,
    jsonable,
    opened,
)


async def cmd_complain(args: argparse.Namespace) -> int:
    """Record that an action which ran was wrong: its class is demoted a rung, or charged a failure."""
    async with opened(args) as engine:
        outcome = await engine.complain(args.action_id, args.reason)
    emit(args, {**jsonable(outcome), "message": outcome.line()}, outcome.line)
    return 0


async def cmd_undo(args: argparse.Namespace) -> int:
    """Undo an action that ran: a file write or edit gets back its exact prior bytes and mode (a file it
    created is removed), refused when the file changed since unless --force; a commit gets a revert commit,
    queued as a draft to approve; a command cannot be undone. Counts as a complaint unless --not-a-complaint."""
    async with opened(args) as engine:
        outcome = await engine.undo(
            args.action_id, args.reason, force=args.force, complaint=not args.not_a_complaint, reviewer="cli"
        )
    emit(args, {**jsonable(outcome), "message": outcome.line()}, outcome.line)
    return 0


async def cmd_gc(args: argparse.Namespace) -> int:
    """Drop prior versions kept for undo past [defaults.undo]'s bounds: those older than max_age_days, then
    the oldest until the store fits max_total_bytes. An undo of a dropped one says it was dropped, and why."""
    async with opened(args) as engine:
        report = await engine.gc()
    emit(
        args,
        report,
        lambda: (
            f"content store: dropped {report.entries_dropped} prior version(s), removed {report.blobs_removed} "
            f"blob(s), freed {report.bytes_freed} bytes; {report.bytes_kept} bytes kept"
        ),
    )
    return 0


def add_complain(add: Add) -> None:
    p = add("complain", cmd_complain, json_flag=True)
    p.add_argument("action_id", type=int, metavar="ID", help="the action that ran and was wrong")
    p.add_argument("--reason", required=True, help="what was wrong (kept with the complaint)")


def add_undo(add: Add) -> None:
    p = add("undo", cmd_undo, json_flag=True)
    p.add_argument("action_id", type=int, metavar="ID", help="the action to undo (a file write or edit, or a commit)")
    p.add_argument("--reason", help="why it is undone (kept with the undo and its complaint)")
    p.add_argument(
        "--force", action="store_true", help="restore even though the file changed since (discards that change)"
    )
    p.add_argument(
        "--not-a-complaint",
        action="store_true",
        help="undo without counting it against the action's class (the action was not wrong)",
    )


def add_gc(add: Add) -> None:
    add("gc", cmd_gc, json_flag=True, what="what was dropped")
