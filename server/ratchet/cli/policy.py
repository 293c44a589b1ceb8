"""`ratchet lint` (a policy directory checked) and `ratchet init` (the starter policies copied in)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ratchet import terminal
from ratchet.cli.common import (
    Add,
    emit,
    opened,
)
from ratchet.engine.core import keep_database_out_of_git
from ratchet.errors import InvalidRequest, PolicyError
from ratchet.executors.notify import workspace_problem
from ratchet.policy.load import lint_warnings, load_policy, resolve_policy_dir, starter_policy_dir


async def cmd_lint(args: argparse.Namespace) -> int:
    """Validate a policy directory: keys, levels, globs, and that every example lands in its class."""
    directory = args.directory or resolve_policy_dir(Path(args.workspace).resolve(), args.policies)
    policy = load_policy(directory)

    refused = workspace_problem(policy.defaults.notify, [Path(args.workspace).resolve()])
    if refused is not None:
        raise PolicyError(str(directory / policy.defaults_file), "defaults.notify", refused)
    warnings = lint_warnings(policy)
    summary = {
        "directory": str(directory),
        "ok": True,
        "classes": [
            {
                "name": c.name,
                "start": c.start.label,
                "floor": c.floor.label,
                "ceiling": c.ceiling.label,
                "sandbox": c.profile,
                "network": c.network,
                "rule": c.rule,
            }
            for c in sorted(policy.classes.values(), key=lambda c: c.name)
        ],
        "examples": sum(len(c.examples.match) + len(c.examples.not_match) for c in policy.classes.values()),
        "warnings": list(warnings),
    }
    emit(args, summary, lambda: terminal.lint(directory, policy, warnings))
    return 0


async def cmd_init(args: argparse.Namespace) -> int:
    """Copy the starter policies into <workspace>/.ratchet/policies for the team to commit and edit, and
    create the trust database (--db, else $RATCHET_DB, else <workspace>/.ratchet/ratchet.db)."""
    workspace = Path(args.workspace).resolve()
    if not workspace.is_dir():
        raise InvalidRequest(
            f"workspace {workspace} does not exist (or is not a directory); expected your project's directory. "
            "Nothing was created"
        )
    target = workspace / ".ratchet" / "policies"
    if target.exists():
        raise InvalidRequest(f"{target} already exists; edit it, or remove it to start over")
    shutil.copytree(starter_policy_dir(), target)
    keep_database_out_of_git(target.parent / "ratchet.db")
    async with opened(args, policies=args.policies or target) as engine:
        path = engine.location
    print(f"wrote {target}; commit it and review changes to it like code")
    print(f"trust database: {path}")
    return 0


def add_lint(add: Add) -> None:
    p = add("lint", cmd_lint, json_flag=True, what="what was checked")
    p.add_argument("directory", nargs="?", type=Path, help="policy directory (default: the one serve would use)")


def add_init(add: Add) -> None:
    add("init", cmd_init)
