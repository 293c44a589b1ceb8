"""The `ratchet` argument parser, assembled from the commands' modules (each holds its own arguments)."""

from __future__ import annotations

import argparse
import inspect
import re
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from ratchet.cli import (
    approve,
    complain,
    db,
    demo,
    evidence,
    history,
    hook,
    install,
    levels,
    policy,
    review,
    serve,
    status,
)
from ratchet.cli.common import Add, Handler
from ratchet.record.store import parse_location

DESCRIPTION = "`ratchet`: serve the MCP server, and let a human review, approve, complain and inspect."
# The commands, each registered by the module that holds it, in this order (argparse lists them so).
COMMANDS: tuple[Callable[[Add], None], ...] = (
    serve.add_serve,
    serve.add_web,
    db.add_db,
    policy.add_lint,
    policy.add_init,
    review.add_queue,
    review.add_show,
    approve.add_approve,
    approve.add_reject,
    complain.add_complain,
    complain.add_undo,
    complain.add_gc,
    review.add_inbox,
    review.add_resolve,
    history.add_escalations,
    status.add_status,
    history.add_history,
    history.add_transitions,
    levels.add_demote,
    levels.add_pin,
    levels.add_unpin,
    levels.add_freeze,
    levels.add_unfreeze,
    history.add_verify,
    demo.add_demo,
    history.add_explain,
    evidence.add_metrics,
    evidence.add_simulate,
    evidence.add_report,
    hook.add_hook,
    hook.add_hook_server,
    install.add_install,
)
EXIT_CODES = """\
exit codes: 0 success; 1 a runtime error (no database, an unknown id, a broken policy, a file that
cannot be read or written, a draft that failed); 2 a usage error (the command line itself is wrong);
130 interrupted (Ctrl-C); 141 the output pipe was closed (as `ratchet history | head`). Every error
is one line on stderr, `ratchet: error: ...`; RATCHET_TRACEBACK=1 shows the traceback of an
internal error."""


# `ratchet --help` lists the commands in these groups, in this order; a command in none is listed last.
GROUPS = {
    "agent setup": ("install", "init", "serve", "hook", "hook-server", "demo"),
    "review": ("inbox", "web", "queue", "show", "approve", "reject", "resolve", "complain", "undo"),
    "evidence": ("status", "history", "transitions", "explain", "metrics", "report", "escalations", "verify", "gc"),
    "database": ("db",),
    "policy": ("lint", "simulate", "demote", "pin", "unpin", "freeze", "unfreeze"),
}


def package_version() -> str:
    """The installed version of Ratchet, from the package metadata; run from a git checkout (an editable
    install), also the commit it stands at, and whether it has changes not committed."""
    try:
        found = version("ratchet-mcp")
    except PackageNotFoundError:  # run from a source tree that was never installed
        found = "unknown (not installed)"
    commit = checkout_commit(Path(__file__).resolve().parents[3])
    return f"{found} ({commit})" if commit else found


def checkout_commit(root: Path) -> str | None:
    """`commit 1a2b3c4` (`, modified` with uncommitted changes) when `root` is the top of a git checkout
    of Ratchet; None for an installed package (no checkout around it) or when git cannot tell."""

    if not (root / ".git").exists() or not (root / "server" / "ratchet").is_dir():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return f"commit {head.stdout.strip()}" + (", modified" if dirty.stdout.strip() else "")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ratchet: error: {message} (see `{self.prog} --help`)\n")


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring, whole: its first paragraph up to the first full stop."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    found = re.match(r"(.+?\.)(?:\s|$)", paragraph)
    return found[1] if found else paragraph


def command_list(parsers: Mapping[str, argparse.ArgumentParser]) -> str:
    """The commands by group, each with the first sentence of its docstring: `ratchet --help`'s index."""
    grouped = [*((g, [n for n in names if n in parsers]) for g, names in GROUPS.items())]
    rest = sorted(set(parsers) - {n for _, names in grouped for n in names})
    if rest:
        grouped.append(("other", rest))
    width = max(len(n) for n in parsers) + 2
    out = []
    for group, names in grouped:
        out.append(f"{group}:")
        for name in names:
            text = first_sentence(parsers[name].description or "")
            wrapped = textwrap.wrap(text, 100 - width - 2) or [""]
            out.append(f"  {name:<{width}}{wrapped[0]}")
            out += [f"  {'':<{width}}{line}" for line in wrapped[1:]]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `ratchet COMMAND --help` is the manual."""
    parser = Parser(
        prog="ratchet",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"ratchet {package_version()}", help="print Ratchet's version and exit"
    )
    common = Parser(add_help=False)
    common.add_argument(
        "--workspace",
        default=".",
        help="the workspace directory; a relative one (the default, .) means the project root at or above it: "
        "the nearest directory holding .ratchet/ or .git",
    )
    common.add_argument(
        "--policies",
        type=Path,
        default=None,
        help="policy directory (default: $RATCHET_POLICIES, <workspace>/.ratchet/policies, else the starter set)",
    )
    common.add_argument(
        "--db",
        type=parse_location,
        default=None,
        help="trust database: an SQLite file, or a postgresql:// URL for a database a team shares "
        "(default: $RATCHET_DB, else <workspace>/.ratchet/ratchet.db)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below; `ratchet COMMAND --help`"
    )

    def add(
        name: str, handler: Handler, *, json_flag: bool = False, shared: bool = True, what: str = "the outcome"
    ) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(
            name,
            parents=[common] if shared else [],
            description=inspect.cleandoc(doc),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if json_flag:
            p.add_argument("--json", action="store_true", help=f"print {what} as JSON, for a program")
        p.set_defaults(handler=handler)
        return p

    for arguments in COMMANDS:
        arguments(add)
    parser.epilog = f"{command_list(sub.choices)}\n\n{EXIT_CODES}"
    return parser
