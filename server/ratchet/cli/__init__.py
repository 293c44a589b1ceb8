"""`ratchet`: serve the MCP server, and let a human review, approve, complain and inspect.

Each command is a docstring (its `--help`), one call into the library inside `opened` (the one place
an engine is opened and closed for a command), and a small renderer: plain text for a person (see
terminal.py), `--json` for a program. Errors are translated here once, into ONE line on stderr and an
exit code (see EXIT_CODES): never a traceback.

Each command is a module holding its code and its arguments (`add_NAME`); parser.py assembles them in
the order `COMMANDS` lists, and `main` below runs the one the command line names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from ratchet.cli.parser import build_parser
from ratchet.errors import RatchetError, UsageError
from ratchet.executors.workspace import find_project_root
from ratchet.inert import inert_line

TRACEBACK_ENV = "RATCHET_TRACEBACK"


def project_workspace(given: str) -> Path:
    """The workspace a `--workspace` value names: an absolute path as it is; a relative one (the
    default `.` included) is the project root at or above it, said on stderr when that is elsewhere."""
    path = Path(given)
    if path.is_absolute():
        return path
    start = path.resolve()
    root = find_project_root(start)
    if root != start:
        print(
            f"ratchet: workspace {root} (the project root above {start}, found by its .ratchet/ or .git; "
            "pass an absolute --workspace to choose another)",
            file=sys.stderr,
        )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ratchet` console script: every error is one line on stderr (EXIT_CODES)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        unknown_first_option(sys.argv[1:] if argv is None else list(argv))
        args = build_parser().parse_args(argv)
        if args.command != "hook" and getattr(args, "workspace", None) is not None:
            args.workspace = str(project_workspace(args.workspace))
        # serve and web run their own event loop
        code = args.handler(args) if args.command in ("serve", "web") else int(anyio.run(args.handler, args))
        sys.stdout.flush()  # a closed pipe surfaces here, not at exit
    except BaseException as exc:  # the one place every error becomes a line and a code
        return _failed(_leaf(exc))
    return code


TOP_OPTIONS = ("-h", "--help", "--version")


def unknown_first_option(argv: Sequence[str]) -> None:
    """UsageError naming an option given before any command that `ratchet` itself does not take (argparse
    would only say a command is required)."""
    if argv and argv[0].startswith("-") and argv[0].split("=")[0] not in TOP_OPTIONS:
        hint = " (--version prints the version)" if argv[0] in ("-V", "-v") else ""
        raise UsageError(
            f"unknown option {argv[0]!r}{hint}; `ratchet` takes only --help and --version before a command, "
            "e.g. `ratchet status`"
        )


def _leaf(exc: BaseException) -> BaseException:
    """The error that matters in an exception group (a task group's), else the error itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if not isinstance(e, KeyboardInterrupt)), exc.exceptions[0])
    return exc


def _failed(exc: BaseException) -> int:
    """One line on stderr and the exit code for an error that ended a command."""
    if isinstance(exc, SystemExit):  # --help, or argparse's one-line usage error
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`| head`): say nothing, and keep the exit flush from failing again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if isinstance(exc, KeyboardInterrupt):
        _say("ratchet: interrupted")
        return 130
    if isinstance(exc, UsageError):
        _say(f"ratchet: error: {exc}")
        return 2
    if isinstance(exc, RatchetError):
        message = str(exc)
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        message = f"cannot use{where}: {exc.strerror or exc}"
    elif isinstance(exc, sqlite3.Error):
        message = f"the trust database failed: {exc}"
    elif isinstance(exc, UnicodeDecodeError):
        message = f"not UTF-8 text: {exc}"
    else:
        if os.environ.get(TRACEBACK_ENV):
            raise exc
        message = f"internal error: {type(exc).__name__}: {exc} (set {TRACEBACK_ENV}=1 for the traceback)"
    _say(f"ratchet: error: {message}")
    return 1


def _say(line: str) -> None:
    """Write one line to stderr, whatever it contains."""
    with contextlib.suppress(OSError, ValueError):
        print(inert_line(" ".join(line.split())), file=sys.stderr, flush=True)
