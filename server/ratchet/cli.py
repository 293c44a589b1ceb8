"""`ratchet`: serve the MCP server, and let a human review, approve, complain and inspect.

Each command is a docstring (its `--help`), one call into the library inside `opened` (the one place
an engine is opened and closed for a command), and a small renderer: plain text for a person (see
terminal.py), `--json` for a program. Errors are translated here once, into ONE line on stderr and an
exit code (see EXIT_CODES): never a traceback.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

import anyio
from pydantic import BaseModel

from ratchet import hook_servers, repository, terminal
from ratchet.engine import Engine, handoffs
from ratchet.engine.core import keep_database_out_of_git
from ratchet.errors import InvalidRequest, PolicyError, RatchetError, StoreError, UsageError
from ratchet.executors.workspace import find_project_root
from ratchet.hook_socket import IDLE_S
from ratchet.inert import inert_line, inert_output
from ratchet.policy.levels import LEVEL_NAMES, Level
from ratchet.policy.load import lint_warnings, load_policy, resolve_policy_dir, starter_policy_dir
from ratchet.record.filters import ActionFilter
from ratchet.record.postgres import is_url as is_postgres
from ratchet.record.store import Location, beside, parse_location, resolve_location
from ratchet.results import DraftView

Handler = Callable[[argparse.Namespace], Awaitable[int]] | Callable[[argparse.Namespace], int]

EXIT_CODES = """\
exit codes: 0 success; 1 a runtime error (no database, an unknown id, a broken policy, a file that
cannot be read or written, a draft that failed); 2 a usage error (the command line itself is wrong);
130 interrupted (Ctrl-C); 141 the output pipe was closed (as `ratchet history | head`). Every error
is one line on stderr, `ratchet: error: ...`; RATCHET_TRACEBACK=1 shows the traceback of an
internal error."""
TRACEBACK_ENV = "RATCHET_TRACEBACK"
# Commands that act on what is recorded: where no database exists they say so and create none.
NEEDS_DATABASE = frozenset(
    {
        "queue", "status", "inbox", "metrics", "report", "explain", "history", "show", "transitions",
        "escalations", "approve", "reject", "complain", "resolve", "undo", "gc",
    }
)  # fmt: skip
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
    commit = checkout_commit(Path(__file__).resolve().parent.parent.parent)
    return f"{found} ({commit})" if commit else found


def checkout_commit(root: Path) -> str | None:
    """`commit 1a2b3c4` (`, modified` with uncommitted changes) when `root` is the top of a git checkout
    of Ratchet; None for an installed package (no checkout around it) or when git cannot tell."""
    import subprocess

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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ratchet: error: {message} (see `{self.prog} --help`)\n")


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


def _lines(*lines: str) -> str:
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the governed tools over stdio (or streamable HTTP with --http: bearer token required, loopback
    unless --token-file is given). SIGINT/SIGTERM record running calls as interrupted and close the database."""
    import threading

    from ratchet.mcp_server import ServerConfig, build_server
    from ratchet.tool_errors import quiet_sdk_logs

    quiet_sdk_logs()  # the SDK's own INFO lines would repeat each tool error, unprefixed
    workspace = Path(args.workspace).resolve()
    if not args.http and (args.token_file or args.allowed_host):
        raise UsageError("--token-file and --allowed-host apply to --http only")
    if args.http:
        from ratchet.http_serve import check_host

        check_host(args.host, args.token_file)  # before anything is opened or created

    async def check() -> Location:
        # Fail closed before speaking MCP: a broken policy or database never serves half-configured.
        async with opened(args) as engine:
            return engine.location

    db = beside(anyio.run(check), workspace)
    closed = threading.Event()
    server = build_server(ServerConfig(workspace, args.policies, args.db, closed=closed, quiet=args.quiet))
    if args.http:
        from ratchet.http_serve import HttpOptions, serve_http
        from ratchet.web import pages_for_serve

        options = HttpOptions(args.host, args.port, args.token_file, tuple(args.allowed_host or ()))
        pages = pages_for_serve(workspace, args.policies, args.db, args.host, args.port, options.allowed_hosts, db)
        serve_http(server, options, db, pages)
        return 0
    from ratchet.executors.notify import watch_address

    watch_address(db)  # a `ratchet web` on this database: notifications link to it
    from ratchet.stdio_serve import serve_stdio

    return serve_stdio(server, closed)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the review page in a browser: the inbox (approve, reject, resolve in one click), the classes and
    their brakes. Loopback only unless --token-file is given; prints a login URL carrying the token once."""
    from ratchet.web import WebOptions, serve_web

    ws, hosts = Path(args.workspace).resolve(), tuple(args.allowed_host or ())
    options = WebOptions(ws, args.policies, args.db, args.host, args.port, args.token_file, hosts)
    serve_web(options, beside(existing_db(args), ws))
    return 0


async def cmd_lint(args: argparse.Namespace) -> int:
    """Validate a policy directory: keys, levels, globs, and that every example lands in its class."""
    directory = args.directory or resolve_policy_dir(Path(args.workspace).resolve(), args.policies)
    policy = load_policy(directory)
    from ratchet.executors.notify import workspace_problem

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
    return _lines(*scope.header(what), body or f"{empty} ({scope.described()})")


async def cmd_queue(args: argparse.Namespace) -> int:
    """List the drafts waiting for a human, oldest first (--by, --origin-workspace, --repo: only theirs;
    --class: only that class's). A class with many drafts waiting is shown as one group, with the one
    command that answers all of it."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        drafts = await engine.queue(scope)
        if args.cls is not None:
            engine.named(args.cls)  # an unknown class is an error naming the known ones
            drafts = [d for d in drafts if d.action_class == args.cls]
        _remember_shown(engine, {d.action_id: d.digest for d in drafts if d.digest})
    body = terminal.queue(drafts, grouped=args.cls is None) if drafts else ""
    emit(args, listed(scope, "drafts", drafts), lambda: filtered_text(scope, body, "no drafts waiting", "drafts"))
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    """Show one action or draft in full: class, rule, level, triggers, the change, and the outcome (a
    stopped action or handoff: its escalation packet and the options to answer it with)."""
    async with opened(args) as engine:
        d = await engine.view(args.id)
        packet = (await handoffs.get_handoff(engine, args.id)).packet if d.has_packet else None
        whole = await engine.whole_diff(args.id) if args.full and d.status == "draft" else None
        if d.digest:
            _remember_shown(engine, {d.action_id: d.digest})
    colour = terminal.colour_wanted()
    value = {**d.model_dump(mode="json"), "packet": packet.model_dump(mode="json") if packet else None}
    if args.full:
        value["whole"] = jsonable(whole)
    if whole is not None:
        d = d.model_copy(update={"preview": whole.text})

    def text() -> str:
        shown = terminal.packet(packet, colour) if packet else terminal.action(d, colour)
        if whole is not None:
            return _lines(shown, "", whole.footer())
        if args.full and d.hidden_lines:
            return _lines(shown, "", f"the whole change of action {d.action_id} is not kept once it is {d.status}")
        return shown

    emit(args, value, text)
    return 0


def _remember_shown(engine: Engine, digests: dict[int, str]) -> None:
    """Note what this CLI displayed, so `approve ID` approves that change (shown_here.py)."""
    from ratchet import shown_here

    shown_here.remember(shown_here.path_for(engine.location, engine.workspace.root), digests)


async def cmd_inbox(args: argparse.Namespace) -> int:
    """List everything waiting for a human: stopped actions and handoffs first, then drafts; oldest first
    (--by, --origin-workspace, --repo: only what those actions are)."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        items = await handoffs.inbox(engine, scope)
        tampers, found = await engine.tamper_records()

    def text() -> str:
        out = []
        if tampers:
            out.append(f"TAMPERING: {tampers} record(s) of standings changed outside Ratchet, not honoured; newest:")
            out += [f"  {line}" for line in found]
        # A flood of one class's drafts: its first few rows, then one line on how to answer it whole.
        counts = collections.Counter(i.action_class for i in items if i.kind == "draft")
        flooded = {name: n for name, n in counts.items() if n >= terminal.GROUP_AT}
        listed_of: collections.Counter[str] = collections.Counter()
        rows = []
        for i in items:
            if i.kind == "draft" and i.action_class in flooded:
                listed_of[i.action_class] += 1
                if listed_of[i.action_class] > terminal.GROUP_ROWS:
                    continue
            blocking = "BLOCKING " if i.blocking else ""
            rows.append([str(i.id), i.kind, i.action_class, f"{i.age_s:.0f}s", blocking + i.summary])
        out += terminal.table(["ID", "KIND", "CLASS", "WAITING", "SUMMARY"], rows, numeric=[0, 3]) if items else []
        out += [
            f"... and {n - terminal.GROUP_ROWS} more drafts of {name} (`ratchet queue --class {name}` lists them; "
            f"`ratchet approve --class {name}` or `ratchet reject --class {name} --reason TEXT` answers them all)"
            for name, n in flooded.items()
        ]
        return filtered_text(scope, _lines(*out), "inbox empty", "items of actions")

    emit(args, listed(scope, "items", items), text)
    return 0


def choose_option(given: str, names: Sequence[str]) -> str:
    """The packet option `given` names: its number (1-based, as `ratchet show` lists them), its name, or
    an unambiguous prefix of it (case ignored). InvalidRequest names the matches or the choices."""
    listed = ", ".join(f"{n}. {name}" for n, name in enumerate(names, 1))
    if given.isdigit():
        if 1 <= int(given) <= len(names):
            return names[int(given) - 1]
        raise InvalidRequest(f"--option {given} is not one of this packet's {len(names)} options: {listed}")
    if given in names:
        return given
    matches = [name for name in names if name.lower().startswith(given.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidRequest(f"--option {given!r} is ambiguous: it begins {', '.join(matches)}; type more of the name")
    raise InvalidRequest(
        f"unknown option {given!r}; this packet offers: {listed} (give the name, a prefix or the number)"
    )


async def cmd_resolve(args: argparse.Namespace) -> int:
    """Answer a stopped action or a handoff: --option (its number, name or a prefix of the name, from its
    packet) and/or --note TEXT, which the agent reads."""
    async with opened(args) as engine:
        option, packet = args.option, None
        if option is not None:
            with contextlib.suppress(RatchetError):  # not an escalation: resolve says what it is instead
                packet = (await handoffs.get_handoff(engine, args.id)).packet
        if option is not None and packet is not None:
            option = choose_option(option, [o.name for o in packet.options])
        view = await handoffs.resolve(engine, args.id, option, args.note)
    emit(args, view, lambda: handoffs.answered_line(view))
    return 0


async def cmd_escalations(args: argparse.Namespace) -> int:
    """Escalation counts and rates per session and class, a health figure: a class that escalates often
    needs a policy change."""
    async with opened(args) as engine:
        stats = await handoffs.escalation_stats(engine)
    rows = [[s.session_id, s.action_class, str(s.escalations), str(s.actions), f"{s.rate:.1%}"] for s in stats]
    headers = ["SESSION", "CLASS", "ESCALATIONS", "ACTIONS", "RATE"]
    emit(args, stats, lambda: _lines(*terminal.table(headers, rows, numeric=[2, 3, 4])) if stats else "no actions")
    return 0


@dataclasses.dataclass
class Outcome:
    """What one id of a batch came to: `ok`, the draft as it now stands, or the error that stopped it."""

    id: int
    ok: bool
    status: str | None
    error: str | None
    draft: DraftView | None = None

    def line(self) -> str:
        """`draft 96: executed`, or why not."""
        if self.draft is None:
            return f"draft {self.id}: not done: {self.error}"
        if self.draft.waiting:  # approved here, run by its origin
            return f"draft {self.id}: {self.draft.waiting}"
        ran = f"draft {self.id}: {self.status}" + (f" ({self.error})" if self.error else "")
        return _lines(ran, *(f"  {line}" for line in terminal.command_output(self.draft.result)))


async def _drafts_to_review(engine: Engine, args: argparse.Namespace, verb: str) -> list[int]:
    """The ids `approve`/`reject` act on: those given, or every queued draft of --all-from CLASS once
    the human confirms (on a terminal; elsewhere --yes says so)."""
    if not args.all_from:
        return list(args.ids)
    known = {*engine.policy.classes, engine.policy.unclassified.name}
    if args.all_from not in known:
        raise InvalidRequest(f"unknown class {args.all_from!r}; expected one of: {', '.join(sorted(known))}")
    ids = [d.action_id for d in await engine.queue() if d.action_class == args.all_from]
    if ids and not args.yes:
        # The question goes to stderr, so stdout stays the outcomes (JSON with --json).
        whole = " (one decision: they run, but are not evidence of reading each)" if verb == "approve" else ""
        named = ", ".join(map(str, ids))
        prompt = f"{verb} {len(ids)} queued draft(s) of class {args.all_from} ({named}){whole}? [y/N] "
        print(prompt, end="", file=sys.stderr, flush=True)
        answer = await anyio.to_thread.run_sync(sys.stdin.readline)
        if answer.strip().lower() not in ("y", "yes"):
            return []
    return ids


def _check_batch(args: argparse.Namespace) -> None:
    """Ids or --all-from, not both and not neither (`approve --pending` alone is enough); --all-from off a
    terminal only with --yes."""
    if bool(args.ids) == bool(args.all_from) and not (getattr(args, "pending", False) and not args.ids):
        raise UsageError("give draft ids, or --class CLASS (not both)")
    if args.all_from and not args.yes and not sys.stdin.isatty():
        raise UsageError("--class asks for confirmation on a terminal; from a script pass --yes")


async def _each(ids: Sequence[int], act: Callable[[int], Awaitable[DraftView]], done: str, *also: str) -> list[Outcome]:
    """Act on every id in turn; one that fails is reported and the rest still run. A single id's error
    is raised as it is (one line, as every error)."""
    outcomes = []
    for action_id in ids:
        try:
            d = await act(action_id)
        except RatchetError as exc:
            if len(ids) == 1:
                raise
            outcomes.append(Outcome(action_id, False, None, str(exc)))
            continue
        outcomes.append(Outcome(action_id, d.status in (done, *also), d.status, d.error, d))
    return outcomes


def _batch_result(args: argparse.Namespace, outcomes: Sequence[Outcome], done: str, note: str | None = None) -> int:
    """Report every outcome (and `note` after them, for a person); exit 1 (with one line on stderr) when any
    id was not `done`."""
    emit(
        args,
        outcomes,
        lambda: _lines(*(o.line() for o in outcomes), *([note] if note else [])) if outcomes else f"no drafts {done}",
    )
    failed = [o.id for o in outcomes if not o.ok]
    if failed and len(outcomes) > 1:
        raise RatchetError(f"{len(failed)} of {len(outcomes)} drafts not {done}: {', '.join(map(str, failed))}")
    return 1 if failed else 0


async def cmd_approve(args: argparse.Namespace) -> int:
    """Run queued drafts now, each exactly as drafted and at most once; each id's outcome is reported and
    one that fails does not stop the rest. --content FILE approves one draft with your edit instead.

    A draft queued on another machine or workspace of a shared record is approved here and run by its
    origin (it stays `approved` until then). On a draft's origin, every `ratchet approve` first runs the
    drafts approved elsewhere for this host and workspace; `--pending` does only that."""
    _check_batch(args)
    bulk = "bulk" if args.all_from else None  # one decision for a class: rules/provenance.py
    if args.content and len(args.ids) != 1:
        raise UsageError("--content applies to exactly one draft id")
    if args.whole and (len(args.ids) != 1 or args.content):
        raise UsageError("--whole applies to exactly one draft id, approved as drafted (not with --content)")
    if args.expect and (len(args.ids) != 1 or args.all_from):
        raise UsageError("--expect applies to exactly one draft id: ratchet approve ID --expect DIGEST")
    content = Path(args.content).read_text(encoding="utf-8") if args.content else None
    if args.watch:
        if not args.pending or args.ids or args.all_from:
            raise UsageError("--watch goes with --pending alone: ratchet approve --pending --watch")
        return await _watch_pending(args)
    async with opened(args) as engine:
        # Reported as they came out; the human's own ids decide the exit code.
        carried = [Outcome(d.action_id, True, d.status, d.error, d) for d in await engine.carry_approved()]
        ids = await _drafts_to_review(engine, args, "approve")

        from ratchet import shown_here

        seen = shown_here.path_for(engine.location, engine.workspace.root)

        async def approve(action_id: int) -> DraftView:
            # The change the person was shown: --expect, else what `show` or `queue` displayed here.
            expect = args.expect or shown_here.recall(seen, action_id)
            whole = args.whole or await _read_whole(engine, args, action_id, content)
            return await engine.approve(
                action_id, content=content, note=args.note, channel=bulk, expect=expect, whole=whole
            )

        outcomes = await _each(ids, approve, "executed", "approved")
    note = BULK_NOTE.format(cls=args.all_from) if bulk and outcomes else None
    return _batch_result(args, [*carried, *outcomes], "approved", note)


BULK_NOTE = (
    "approved by class: one decision for every draft of {cls}; they ran, but they are not evidence that a "
    "person read each one, so none counts toward promoting {cls} (`ratchet approve ID` one by one does)"
)


async def _read_whole(engine: Engine, args: argparse.Namespace, action_id: int, content: str | None) -> str | None:
    """For a draft whose preview was cut (engine/whole.py): on a terminal, its whole diff printed and the
    question whether to approve exactly that; the digest when the person says yes. Anywhere else None (the
    approval then says how to read it whole)."""
    from ratchet.engine.whole import needs_whole

    row = await engine.row(action_id)
    if content is not None or args.all_from or row is None or not needs_whole(row, engine.here):
        return None
    if args.json or not sys.stdin.isatty():
        return None
    whole = await engine.whole_diff(action_id)
    print(terminal.diff(whole.text.rstrip("\n"), terminal.colour_wanted()), flush=True)
    question = (
        f"draft {action_id}'s preview showed only part of this: above is its whole diff, {whole.lines} lines. "
        "Approve exactly this? [y/N] "
    )
    print(question, end="", file=sys.stderr, flush=True)
    answer = await anyio.to_thread.run_sync(sys.stdin.readline)
    return whole.digest if answer.strip().lower() in ("y", "yes") else None


async def _watch_pending(args: argparse.Namespace) -> int:
    """Carry out this origin's approvals as they arrive, until interrupted: what a running `ratchet serve`
    does, for an agent-side server whose database role may not (record/roles.py)."""
    async with opened(args) as engine:
        engine.reviewer_side("carry out approved drafts")
        print(f"carrying out the drafts approved for {engine.here}; Ctrl-C stops", file=sys.stderr, flush=True)
        async with engine.carrying_out():
            await anyio.sleep_forever()
    return 0


async def cmd_reject(args: argparse.Namespace) -> int:
    """Reject queued drafts: nothing runs, and each class's window records a failure; each id's outcome is
    reported and one that fails does not stop the rest."""
    _check_batch(args)
    async with opened(args) as engine:
        ids = await _drafts_to_review(engine, args, "reject")
        bulk = "bulk" if args.all_from else None  # counted: a rejection can only lower a class
        outcomes = await _each(ids, lambda i: engine.reject(i, args.reason, channel=bulk), "rejected")
    return _batch_result(args, outcomes, "rejected")


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


async def cmd_status(args: argparse.Namespace) -> int:
    """Where every class stands: its level, its evidence, what a call would do now, and what the next
    promotion needs. With --by, --origin-workspace or --repo the drafts queued and the recent actions are
    theirs; the standings stay team-wide (every action of a class moved it)."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        levels = await engine.trust_levels()
        queue = await engine.queue(scope)
        recent = await engine.history(STATUS_RECENT, scope=scope) if scope.active else []
    waiting = sum(1 for d in queue if d.waiting)
    servers = hook_servers.running(workspace=Path(args.workspace).resolve())
    value = {
        **levels.model_dump(mode="json"),
        "filter": scope,
        "queued": len(queue),
        "waiting_for_origin": waiting,
        **({"recent": recent} if scope.active else {}),
        "hook_servers": servers,
    }

    def text() -> str:
        shown = terminal.status(levels, len(queue), scope=scope, waiting=waiting, recent=recent)
        lines = [s.line() for s in servers] or [NO_HOOK_SERVER]
        head, _, rest = shown.partition("\n\n")  # after the policy's lines, before the classes
        return _lines(head, *lines, "", rest) if rest else _lines(shown, *lines)

    emit(args, value, text)
    return 0


NO_HOOK_SERVER = (
    f"hook server: none running (a Claude Code hook event starts one; it exits after "
    f"{IDLE_S / 60:g} min without an event)"
)


async def cmd_hook_server(args: argparse.Namespace) -> int:
    """Show or end the resident hook servers: a Claude Code hook event starts one in the background, which
    answers later events faster and exits after 10 minutes without one. `status` lists those serving this
    workspace (--all: every one of yours); `stop` ends them now (the next hook event starts one again)."""
    workspace = None if args.all else Path(args.workspace).resolve()
    servers = hook_servers.running(workspace=workspace)
    if args.task == "status":
        emit(args, servers, lambda: _lines(*(s.line() for s in servers)) if servers else NO_HOOK_SERVER)
        return 0
    stopped = [s for s in servers if await anyio.to_thread.run_sync(hook_servers.stop, s)]
    emit(
        args,
        stopped,
        lambda: _lines(*(f"hook server {s.pid} stopped" for s in stopped)) if stopped else "no hook server running",
    )
    return 0


STATUS_RECENT = 10  # recent actions `status` lists under a filter


async def cmd_history(args: argparse.Namespace) -> int:
    """List recent actions, newest first, with their outcome (--by: recorded or reviewed by that identity;
    --origin-workspace, --repo: made there)."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args, by=False))
        rows = await engine.history(args.limit, args.cls, args.by, scope)
    body = terminal.drafts(rows, intent=False, who=True) if rows else ""
    emit(args, listed(scope, "actions", rows), lambda: filtered_text(scope, body, "no actions recorded"))
    return 0


async def cmd_transitions(args: argparse.Namespace) -> int:
    """List promotions, demotions, pins and freezes, newest first, each with the evidence that caused it."""
    async with opened(args) as engine:
        rows = await engine.transitions(args.cls)
    table = [
        [
            terminal.when(r["at"]),
            r["class"],
            r["from_level"],
            r["to_level"],
            f"{r['kind']} by {r['actor']}",
            r["reason"],
        ]
        for r in rows
    ]
    headers = ["WHEN", "CLASS", "FROM", "TO", "KIND", "REASON"]
    emit(args, rows, lambda: _lines(*terminal.table(headers, table)) if rows else "no transitions recorded")
    return 0


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


_UNTIL = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNTIL_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_until(value: str, now: float | None = None) -> float:
    """`--until`: a duration from now (`90m`, `2h`, `1d`, `1w`) or an ISO date-time (local time unless it
    names a zone), as a Unix time in the future; InvalidRequest otherwise."""
    now = time.time() if now is None else now
    text = value.strip()
    found = _UNTIL.match(text.lower())
    if found:
        moment = now + float(found[1]) * _UNTIL_UNITS[found[2]]
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(
                f"cannot read --until {value!r}; expected a duration from now (90m, 2h, 1d, 1w) or an ISO "
                "date-time (2025-06-01T18:00)"
            ) from None
        moment = (parsed.astimezone() if parsed.tzinfo is None else parsed).timestamp()
    if moment <= now:
        raise InvalidRequest(f"--until {value!r} is not in the future; expected a later time or a duration (2h)")
    return moment


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


async def cmd_verify(args: argparse.Namespace) -> int:
    """Walk the hash chain over transitions and reviews: exit 0 if intact, 1 naming the first broken row.
    It proves no chained row was edited or deleted in the middle by someone who did not recompute the
    chain; against someone who can rewrite the file and recompute, keep the --head value elsewhere and
    check it later with --expect."""
    async with opened(args) as engine:
        result = await engine.verify_chain(args.expect)
        doubts = await engine.unvouched()
    if args.head:
        print(result.head)
        return 0 if result.ok and not doubts else 1
    print(inert_output(result.line()))
    for doubt in doubts:
        print(inert_output(f"cannot vouch for: {doubt}"))
    return 0 if result.ok and not doubts else 1


async def cmd_db(args: argparse.Namespace) -> int:
    """Move a record to a team's PostgreSQL database, or check one: `db copy SQLITE_FILE postgresql://...`
    copies a history (every table, ids kept) into an empty database and verifies the copy; `db check`
    reports the schema version, the rows of each table and whether the hash chain verifies (exit 1 if not);
    `db roles` (as the database's owner) sets up the agent and reviewer roles (record/roles.py)."""
    from ratchet.record import transfer
    from ratchet.record.store import Store

    if args.task == "copy":
        if args.source is None or args.target is None or not is_postgres(args.target):
            raise UsageError(
                "db copy takes SQLITE_FILE and a postgresql:// URL: ratchet db copy ratchet.db postgresql://..."
            )
        report = await anyio.to_thread.run_sync(transfer.copy, Path(args.source), args.target)
        emit(
            args,
            report,
            lambda: _lines(
                f"copied {report.source} to {report.target}:",
                *(f"  {table:<12} {n}" for table, n in report.rows.items()),
                f"chain verified on both; head {report.head}",
            ),
        )
        return 0
    if args.task == "roles":
        return await _db_roles(args)
    if args.source is not None:
        raise UsageError("db check takes no arguments; name the database with --db")
    location = existing_db(args)
    store = await Store.open(location)
    try:
        result = await store.call(lambda conn: transfer.check(conn, str(location)))
    finally:
        await store.close()
    emit(
        args,
        result,
        lambda: _lines(
            f"{result.database} ({result.backend}), schema version {result.schema_version}",
            *(f"  {table:<12} {n}" for table, n in result.rows.items()),
            f"chain: {result.chain}",
            *([f"roles: {result.roles}"] if result.roles is not None else []),
        ),
    )
    return 0 if result.ok else 1


async def _db_roles(args: argparse.Namespace) -> int:
    """`db roles`: set up the agent and reviewer roles on the PostgreSQL record --db names (run as its owner)."""
    from ratchet.record import roles
    from ratchet.record.store import Store

    if args.source is not None:
        raise UsageError("db roles takes no positional arguments; name the database with --db")
    location = existing_db(args)
    if isinstance(location, Path):
        raise UsageError(f"db roles needs a PostgreSQL record (--db postgresql://...); {location} is an SQLite file")
    store = await Store.open(location)
    try:
        people = roles.parse_people(args.person) if args.person else None
        done = await store.run(lambda conn: roles.install(conn, args.agent, args.reviewer, people))
    finally:
        await store.close()
    emit(
        args,
        done,
        lambda: _lines(
            f"roles set up on {location} (schema {done.schema}):",
            f"  agent    {done.agent}: reads everything; writes "
            + ", ".join(f"{t} ({p.lower()})" for t, p in done.agent_writes.items()),
            "           and never a review, an approval, a pin, a freeze, a raised level, a policy move, a success "
            "below autonomous, nor an action's content once recorded",
            f"  reviewer {done.reviewer}: reads and writes every table",
            *(
                f"  person   {who}: logins {', '.join(sorted(lg for lg, p in done.people.items() if p == who))}"
                for who in sorted(set(done.people.values()))
            ),
            *([f"  created (NOLOGIN groups): {', '.join(done.created)}"] if done.created else []),
            f"next: GRANT {done.agent} TO <the agent servers' login role>; GRANT {done.reviewer} TO <each reviewer's>",
        ),
    )
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    """Watch a scripted agent session in a scratch workspace: every level, a CLI approval, a promotion
    and a demotion, with a toy policy that moves after a few actions."""
    from ratchet.demo import run_demo

    await run_demo(Path(args.dir) if args.dir else None, main)
    return 0


async def cmd_explain(args: argparse.Namespace) -> int:
    """Explain why one action went as it did: class and rule, the level and the transition behind it,
    triggers, who answered and how fast, the outcome and any complaint."""
    from ratchet.evidence.explain import render_explanation

    async with opened(args) as engine:
        explanation = await engine.explain(args.id)
    emit(args, explanation, lambda: render_explanation(explanation))
    return 0


async def cmd_metrics(args: argparse.Namespace) -> int:
    """Figures per class and per level over a period: shares, escalation, rework, defect escape, review
    time, time between human interventions, rubber stamps (docs/evidence.md defines each). With --by,
    --origin-workspace or --repo every figure is over those actions only."""
    from ratchet.evidence.metrics import render_metrics

    scope = action_filter(args)
    async with opened(args) as engine:
        report = await engine.metrics(since=args.since, until=args.until, action_class=args.cls, scope=scope)
    emit(args, report, lambda: render_metrics(report))
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay the recorded history against a candidate policy (--policies CANDIDATE_DIR) before merging
    it: route changes, the moves it would make, interventions added or saved. It writes nothing."""
    from ratchet.evidence.simulate import render_simulation, simulate_candidate

    workspace = Path(args.workspace).resolve()
    report = await simulate_candidate(
        resolve_location(args.db, workspace),
        resolve_policy_dir(workspace, args.policies),
        since=args.since,
        against_dir=None if args.against is None else Path(args.against),
        progress=lambda done, total: print(f"replayed {done:,} of {total:,} actions", file=sys.stderr, flush=True),
    )
    emit(args, report, lambda: render_simulation(report))
    return 0


async def cmd_report(args: argparse.Namespace) -> int:
    """The metrics and every class's trust trajectory: a terminal summary, --json, or --html FILE (one
    self-contained page with a plot per class, to open offline or attach to a review). With --by,
    --origin-workspace or --repo the metrics are over those actions only; the trajectories stay team-wide."""
    from ratchet.evidence.report import render_report, write_html

    if args.html and args.json:
        raise UsageError("--json and --html are two outputs; choose one")
    scope = action_filter(args)
    async with opened(args) as engine:
        report = await engine.report(since=args.since, until=args.until, scope=scope)
    if args.html:
        print(f"wrote {write_html(report, Path(args.html))}")
    else:
        emit(args, report, lambda: render_report(report))
    return 0


async def cmd_hook(args: argparse.Namespace) -> int:
    """Answer one hook event of a client's own tools (Claude Code): the event as JSON on stdin, the
    decision on stdout. Bash, Write, Edit, MultiEdit and NotebookEdit get allow, ask or deny from their
    class's level (deny queues a draft, or carries the escalation packet); outcome events feed the trust
    window. Other tools get no answer, so the client's own rules apply. Anything that goes wrong
    while deciding is a deny, never an allow. `ratchet install claude-code` sets this up."""
    from ratchet.hooks import HookOptions, claude_code_process

    # The console script usually answers hook events before this module is imported (entry.py).
    options = HookOptions(
        workspace=Path(args.workspace) if args.workspace else None, policies=args.policies, db=args.db
    )
    if args.client == "codex":  # Codex's shell and apply_patch (codex_hooks); `ratchet install codex`
        from ratchet.codex_hooks import codex_process

        answer = await codex_process(sys.stdin.buffer.read(), options)
    else:
        answer = await claude_code_process(sys.stdin.buffer.read(), options)
    if answer:
        print(answer, flush=True)
    return 0


async def cmd_install(args: argparse.Namespace) -> int:
    """Set Ratchet up in a client in one command: its MCP server entry and, for Claude Code, the hooks
    that put its built-in Bash/Write/Edit behind the same gate. Shows a diff of what would change; with
    --apply writes it, keeping everything already there and backing each file up first."""
    from ratchet import install

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


# -- parser --------------------------------------------------------------------------------------


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
    parser = _Parser(
        prog="ratchet",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"ratchet {package_version()}", help="print Ratchet's version and exit"
    )
    common = _Parser(add_help=False)
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

    def add_batch(p: argparse.ArgumentParser, verb: str) -> None:
        p.add_argument("ids", nargs="*", type=int, metavar="ID", help=f"the draft ids to {verb} (see `ratchet queue`)")
        p.add_argument(
            "--class",
            "--all-from",
            dest="all_from",
            metavar="CLASS",
            help=f"{verb} every queued draft of this class in one decision (asks first on a terminal)"
            + ("; approvals so given run but are not evidence of reading" if verb == "approve" else ""),
        )
        p.add_argument("--yes", action="store_true", help="do not ask before --all-from (needed off a terminal)")

    p = add("serve", cmd_serve)
    p.add_argument("--quiet", action="store_true", help="no line on stderr per tool call")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="HTTP: the file holding the bearer token (mode 0600; required for a non-loopback --host; default: "
        "<database>.http-token beside the trust database, created on first use)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="HTTP: another Host/Origin name clients use to reach this server (repeatable; loopback names and "
        "the bound host are always allowed)",
    )
    p = add("web", cmd_web)
    p.add_argument("--host", default="127.0.0.1", help="host to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8766, help="port (default: 8766; 0 picks a free one)")
    p.add_argument("--token-file", type=Path, default=None, help="as for serve --http (required beyond loopback)")
    p.add_argument("--allowed-host", action="append", metavar="NAME", help="another Host/Origin name (repeatable)")
    p = add("db", cmd_db, json_flag=True, what="what was copied or found")
    p.add_argument(
        "task",
        choices=["copy", "check", "roles"],
        help="copy a record into PostgreSQL, check one, or set up its agent and reviewer roles",
    )
    p.add_argument("--agent", default="ratchet_agent", help="roles: the agent side's group role (default: %(default)s)")
    p.add_argument(
        "--reviewer", default="ratchet_reviewer", help="roles: the reviewer side's group role (default: %(default)s)"
    )
    p.add_argument(
        "--person",
        action="append",
        metavar="NAME=LOGIN[,LOGIN]",
        help="roles: one person's database logins (their agent's and their own; repeatable; replaces the list): "
        "actions record the person, and a machine carries out only drafts its own person's logins recorded",
    )
    p.add_argument("source", nargs="?", metavar="SQLITE_FILE", help="copy: the SQLite trust database to copy from")
    p.add_argument("target", nargs="?", metavar="URL", help="copy: the empty PostgreSQL database (postgresql://...)")
    p = add("lint", cmd_lint, json_flag=True, what="what was checked")
    p.add_argument("directory", nargs="?", type=Path, help="policy directory (default: the one serve would use)")

    def add_filters(p: argparse.ArgumentParser, *, by: bool = True) -> None:
        if by:
            p.add_argument(
                "--by", metavar="IDENTITY", help="only actions recorded by this identity (user@host, or a name)"
            )
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

    add("init", cmd_init)
    p = add("queue", cmd_queue, json_flag=True, what="the drafts")
    add_filters(p)
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only the drafts of this class, every one listed")
    p = add("show", cmd_show, json_flag=True, what="the action and its packet")
    p.add_argument("id", type=int, help="action or draft id")
    p.add_argument(
        "--full",
        action="store_true",
        help="a queued draft's whole diff, however long (the preview stops at 2,000 lines or 200 KB), and the "
        "digest that approves exactly it",
    )
    p = add("approve", cmd_approve, json_flag=True, what="each draft's outcome")
    add_batch(p, "approve")
    p.add_argument("--content", metavar="FILE", help="approve with this file's text instead (one id; counts as rework)")
    p.add_argument("--note", help="a note kept with the review")
    p.add_argument(
        "--expect",
        metavar="DIGEST",
        help="the digest `ratchet show` displayed (one id): refused if the draft changed since (default: the "
        "digest show or queue last displayed here, if any)",
    )
    p.add_argument(
        "--whole",
        metavar="DIGEST",
        help="approve a draft whose preview was cut: the digest `ratchet show ID --full` printed with its whole "
        "diff (on a terminal, approve shows the whole diff and asks instead)",
    )
    p.add_argument(
        "--pending",
        action="store_true",
        help="run the drafts approved on other machines whose origin is this host and workspace (alone: only that)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="with --pending: keep running them as they are approved, until interrupted (for an agent-side "
        "server whose database role may not; see `ratchet db roles`)",
    )
    p = add("reject", cmd_reject, json_flag=True, what="each draft's outcome")
    add_batch(p, "reject")
    p.add_argument("--reason", required=True, help="why the drafts are wrong (kept with each review)")
    p = add("complain", cmd_complain, json_flag=True)
    p.add_argument("action_id", type=int, metavar="ID", help="the action that ran and was wrong")
    p.add_argument("--reason", required=True, help="what was wrong (kept with the complaint)")
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
    add("gc", cmd_gc, json_flag=True, what="what was dropped")
    p = add("inbox", cmd_inbox, json_flag=True, what="the items")
    add_filters(p)
    p = add("resolve", cmd_resolve, json_flag=True, what="the answer as recorded")
    p.add_argument("id", type=int, help="a stopped action or handoff id (see `ratchet inbox`)")
    p.add_argument(
        "--option", help="one of its packet's options: the number `ratchet show ID` lists, the name, or a prefix of it"
    )
    p.add_argument("--note", help="what the agent should know or do")
    add("escalations", cmd_escalations, json_flag=True, what="the figures")
    p = add("status", cmd_status, json_flag=True, what="every class's standing")
    add_filters(p)
    p = add("history", cmd_history, json_flag=True, what="the actions")
    p.add_argument("--limit", type=int, default=50, help="show at most this many actions (default: 50)")
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only actions of this class")
    p.add_argument(
        "--by", metavar="IDENTITY", help="only actions recorded or reviewed by this identity (user@host, or a name)"
    )
    add_filters(p, by=False)
    p = add("transitions", cmd_transitions, json_flag=True, what="the transitions")
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only transitions of this class")
    p = add("demote", cmd_demote, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the action class to lower (see `ratchet status`)")
    p.add_argument("--to", choices=LEVEL_NAMES, help="demote to this level (default: one rung)")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")
    p = add("pin", cmd_pin, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the action class to hold (see `ratchet status`)")
    p.add_argument("level", choices=LEVEL_NAMES, help="the most the class may get while pinned")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")
    p = add("unpin", cmd_unpin, json_flag=True, what="the transition")
    p.add_argument("cls", metavar="CLASS", help="the pinned action class to release")
    p.add_argument("--reason", required=True, help="why (kept with the transition)")
    p = add("freeze", cmd_freeze, json_flag=True, what="the transitions")
    p.add_argument("--level", required=True, choices=LEVEL_NAMES[:-1], help="the most any class may get")
    p.add_argument("--reason", required=True, help="why (kept with the transitions)")
    p.add_argument("--until", help="lift by itself then: a duration from now (90m, 2h, 1d) or an ISO date-time")
    p = add("unfreeze", cmd_unfreeze, json_flag=True, what="the transitions")
    p.add_argument("--reason", required=True, help="why (kept with the transitions)")
    p = add("verify", cmd_verify)
    p.add_argument("--head", action="store_true", help="print the head hash, to keep out of band")
    p.add_argument("--expect", metavar="HASH", help="also fail unless the record still contains this head")
    # demo makes its own workspace, policy and database: it takes none of the common options.
    p = add("demo", cmd_demo, shared=False)
    p.add_argument("--dir", help="an empty or new scratch directory to use (default: a new temporary directory)")
    p = add("explain", cmd_explain, json_flag=True, what="the explanation")
    p.add_argument("id", type=int, help="action or draft id")

    def add_period(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--since", help="from this ISO date/time, or this long ago: 90m, 12h, 7d, 2w (default 30d; 'all')"
        )
        p.add_argument("--until", help="up to (not including) this ISO date/time, or this long ago")

    p = add("metrics", cmd_metrics, json_flag=True, what="the figures")
    add_period(p)
    add_filters(p)
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only this class")
    p = add("simulate", cmd_simulate, json_flag=True, what="the replay")
    p.epilog = (
        "Here --policies names the CANDIDATE directory (default: the one serve would use, e.g. your "
        "branch's .ratchet/policies); --db is the recorded history."
    )
    p.add_argument("--since", help="replay from this ISO date/time or this long ago (default 30d; 'all': everything)")
    p.add_argument(
        "--against", metavar="DIR", help="the policy in force: replay only the classes the candidate changes"
    )
    p = add("report", cmd_report, json_flag=True, what="the report")
    add_period(p)
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with a plot per class")
    add_filters(p)
    # hook: the workspace defaults to the event's cwd, so it does not share the common --workspace default.
    p = add("hook", cmd_hook, shared=False)
    p.add_argument("client", choices=["claude-code", "codex"], help="whose hook event arrives on stdin")
    p.add_argument("--workspace", default=None, help="the workspace directory (default: the event's cwd)")
    p.add_argument("--policies", type=Path, default=None, help="policy directory (default: as for serve)")
    p.add_argument("--db", type=parse_location, default=None, help="trust database (default: as for serve)")
    p = add("hook-server", cmd_hook_server, json_flag=True, what="the hook servers")
    p.add_argument("task", choices=["status", "stop"], help="list the running hook servers, or end them")
    p.add_argument("--all", action="store_true", help="every hook server of yours, whatever workspace it serves")
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
    parser.epilog = f"{command_list(sub.choices)}\n\n{EXIT_CODES}"
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
