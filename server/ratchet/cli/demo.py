"""`ratchet demo`: a scripted session in a scratch workspace."""

from __future__ import annotations

import argparse
from pathlib import Path

from ratchet.cli.common import (
    Add,
)
from ratchet.entry import main


async def cmd_demo(args: argparse.Namespace) -> int:
    """Watch a scripted agent session in a scratch workspace: every level, a CLI approval, a promotion
    and a demotion, with a toy policy that moves after a few actions."""
    from ratchet.demo import run_demo  # start-up: the MCP SDK's server and client, only for the demo

    await run_demo(Path(args.dir) if args.dir else None, main)
    return 0


def add_demo(add: Add) -> None:
    # demo makes its own workspace, policy and database: it takes none of the common options.
    p = add("demo", cmd_demo, shared=False)
    p.add_argument("--dir", help="an empty or new scratch directory to use (default: a new temporary directory)")
