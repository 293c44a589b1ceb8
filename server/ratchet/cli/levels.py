"""A person moves a class's level down or holds it: `demote`, `pin`, `unpin`, `freeze`, `unfreeze`."""

from __future__ import annotations

import argparse
from typing import Any

from ratchet import terminal
from ratchet.cli.common import (
    Add,
    emit,
    jsonable,
    opened,
)
from ratchet.policy.levels import LEVEL_NAMES, Level
from ratchet.until import parse_until


def _moved(args: argparse.Namespace, moved: Any) -> int:
    emit(args, {**jsonable(moved), "message": moved.line()}, moved.line)
    return 0


async def cmd_demote(args: argparse.Namespace) -> int:
    """Lower a class one rung (or --to LEVEL), not below its floor. No command promotes: evidence does."""
    async with opened(args) as engine:
        moved = await engine.demote(args.cls, args.reason, None if args.to is None else Level.parse(args.to))
    return _moved(args, moved)


async def cmd_pin(args: argparse.Namespace) -> int:
    """Hold a class at or below LEVEL (any level, blocked included) until it is unpinned."""
    async with opened(args) as engine:
        moved = await engine.pin(args.cls, Level.parse(args.level), args.reason)
    return _moved(args, moved)


async def cmd_unpin(args: argparse.Namespace) -> int:
    """Lift a pin: the class returns to the level it earned (never higher); a class that is not pinned is
    refused and nothing is recorded."""
    async with opened(args) as engine:
        moved = await engine.pin(args.cls, None, args.reason)
    return _moved(args, moved)


async def cmd_freeze(args: argparse.Namespace) -> int:
    """Cap every class at LEVEL at once (the autonomy slider), until `ratchet unfreeze` or --until.
    Earned levels are kept; each class whose level changes gets a transition."""
    until = None if args.until is None else parse_until(args.until)
    async with opened(args) as engine:
        moves = await engine.freeze(Level.parse(args.level), args.reason, until)
    emit(args, moves, lambda: terminal.moves(moves, "freeze recorded; no class's level changed"))
    return 0


async def cmd_unfreeze(args: argparse.Namespace) -> int:
    """Lift a freeze: every class returns to the level it earned (under its pin), never higher."""
    async with opened(args) as engine:
        moves = await engine.unfreeze(args.reason)
    emit(args, moves, lambda: terminal.moves(moves, "freeze lifted; no class's level changed"))
    return 0


def add_demote(add: Add) -> None:
    p = add("demote", cmd_demote, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the action class to lower (see `ratchet status`)")
    p.add_argument("--to", choices=LEVEL_NAMES, help="demote to this level (default: one rung)")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")


def add_pin(add: Add) -> None:
    p = add("pin", cmd_pin, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the action class to hold (see `ratchet status`)")
    p.add_argument("level", choices=LEVEL_NAMES, help="the most the class may get while pinned")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")


def add_unpin(add: Add) -> None:
    p = add("unpin", cmd_unpin, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the pinned action class to release")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")


def add_freeze(add: Add) -> None:
    p = add("freeze", cmd_freeze, json_flag=True, what="the transitions")
    p.add_argument("--level", required=True, choices=LEVEL_NAMES[:-1], help="the most any class may get")
    p.add_argument("--reason", required=True, help="why (kept with the transitions)")
    p.add_argument("--until", help="lift by itself then: a duration from now (90m, 2h, 1d) or an ISO date-time")


def add_unfreeze(add: Add) -> None:
    p = add("unfreeze", cmd_unfreeze, json_flag=True, what="the transitions")
    p.add_argument("--reason", required=True, help="why (kept with the transitions)")
