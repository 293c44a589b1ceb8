"""What every command shares: the engine opened for it, its output as text or JSON, and the filters."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ratchet import repository
from ratchet.engine import Engine
from ratchet.errors import StoreError, UsageError
from ratchet.inert import inert_output
from ratchet.record.filters import ActionFilter
from ratchet.record.store import Location, resolve_location

Handler = Callable[[argparse.Namespace], Awaitable[int]] | Callable[[argparse.Namespace], int]


class Add(Protocol):
    """How a command's module registers it: `add(name, handler, ...)` gives the command's parser, to which
    the module adds its arguments (see parser.py)."""

    def __call__(
        self, name: str, handler: Handler, *, json_flag: bool = False, shared: bool = True, what: str = "the outcome"
    ) -> argparse.ArgumentParser: ...


# Commands that act on what is recorded: where no database exists they say so and create none.
NEEDS_DATABASE = frozenset(
    {
        "queue", "status", "inbox", "metrics", "report", "explain", "history", "show", "transitions",
        "escalations", "approve", "reject", "complain", "resolve", "undo", "gc",
    }
)  # fmt: skip


def existing_db(args: argparse.Namespace) -> Location:
    """The database a command that reads the record would open; StoreError if there is no such file yet
    (a PostgreSQL database is there or not when it is opened)."""
    path = resolve_location(args.db, Path(args.workspace).resolve())
    if isinstance(path, Path) and not path.is_file():
        raise StoreError(
            f"no trust database at {path}; `ratchet serve` creates it on first start (or `ratchet init` "
            "in the workspace), or pass --db / set $RATCHET_DB to the one your server uses"
        )
    return path


@contextlib.asynccontextmanager
async def opened(args: argparse.Namespace, policies: Path | None = None) -> AsyncIterator[Engine]:
    """The engine for one command, from its --workspace, --policies (or `policies`) and --db; closed
    when the command is done, whatever happened. A command that reads the record never creates one."""
    if args.command in NEEDS_DATABASE:
        existing_db(args)
    engine = await Engine.open(Path(args.workspace), policies=policies or args.policies, db=args.db, session=False)
    try:
        yield engine
    finally:
        await engine.close()


def jsonable(value: Any) -> Any:
    """A result as plain JSON values: pydantic models and dataclasses by their fields."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def emit(args: argparse.Namespace, value: Any, text: Callable[[], str]) -> None:
    """Print `value` as JSON with --json, else what `text` renders for a person."""
    if getattr(args, "json", False):
        print(json.dumps(jsonable(value), indent=2, default=str))
    else:
        print(inert_output(text()))  # agent text never reaches the terminal as control characters


def joined(*lines: str) -> str:
    return "\n".join(lines)


def action_filter(args: argparse.Namespace, *, by: bool = True) -> ActionFilter:
    """The filter a command's --by, --origin-workspace and --repo make (record/filters.py): a relative
    workspace is taken from the current directory, a repository URL of any form normalised
    (ratchet/repository.py). `by` False: the command's --by means something else (history)."""
    named = {
        "--by": getattr(args, "by", None) if by else None,
        "--origin-workspace": getattr(args, "origin_workspace", None),
        "--repo": getattr(args, "repo", None),
    }
    for flag, value in named.items():
        if value is not None and not value.strip():
            raise UsageError(f"{flag} needs a value (an identity, a workspace path or a repository); got nothing")
    workspace, repo = named["--origin-workspace"], named["--repo"]
    return ActionFilter(
        by=None if named["--by"] is None else named["--by"].strip(),
        workspace=None if workspace is None else str(Path(workspace.strip()).expanduser().resolve()),
        repo=None if repo is None else repository.as_given(repo),
    )


def listed(scope: ActionFilter, key: str, items: Sequence[Any]) -> Any:
    """What --json prints of a listing: the list, or with a filter `{"filter": ..., key: the list}`."""
    return {"filter": scope, key: list(items)} if scope.active else items


def filtered_text(scope: ActionFilter, body: str, empty: str, what: str = "actions") -> str:
    """A listing for a person: the filter's lines first (record/filters.py), then the listing or, when it is
    empty, `empty` naming the filter."""
    if not scope.active:
        return body or empty
    return joined(*scope.header(what), body or f"{empty} ({scope.described()})")


def add_filters(p: argparse.ArgumentParser, *, by: bool = True) -> None:
    """--by, --origin-workspace and --repo, read by `action_filter`."""
    if by:
        p.add_argument("--by", metavar="IDENTITY", help="only actions recorded by this identity (user@host, or a name)")
    p.add_argument(
        "--origin-workspace",
        metavar="PATH",
        help="only actions made in this workspace (its absolute path; a relative one is taken from here)",
    )
    p.add_argument(
        "--repo",
        metavar="NAME",
        help="only actions made in clones of this repository: host/org/repo, any remote URL of it, or the "
        "directory name of a workspace with no remote",
    )


def add_period(p: argparse.ArgumentParser) -> None:
    """--since and --until, for the commands that report figures over a period."""
    p.add_argument("--since", help="from this ISO date/time, or this long ago: 90m, 12h, 7d, 2w (default 30d; 'all')")
    p.add_argument("--until", help="up to (not including) this ISO date/time, or this long ago")
