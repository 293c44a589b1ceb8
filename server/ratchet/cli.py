"""`ratchet`: serve the MCP server, and let a human review, approve, complain and inspect.

Each command is a docstring and one call into the engine; listings take `--json`. Errors are
translated here once, into ONE line on stderr and an exit code (see EXIT_CODES): never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import anyio
from pydantic import BaseModel

from ratchet.engine import Engine, handoffs
from ratchet.engine.core import keep_database_out_of_git
from ratchet.errors import InvalidRequest, RatchetError, StoreError, UsageError
from ratchet.executors.workspace import find_project_root
from ratchet.policy.levels import LEVEL_NAMES, Level
from ratchet.policy.load import lint_warnings, load_policy, resolve_policy_dir, starter_policy_dir
from ratchet.record.store import default_db_path
from ratchet.results import DraftView

Handler = Callable[[argparse.Namespace], Awaitable[int]] | Callable[[argparse.Namespace], int]


def _print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    print(json.dumps(value, indent=2, default=str))


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
        "escalations", "approve", "reject", "complain", "resolve",
    }
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def existing_db(args: argparse.Namespace) -> Path:
    """The database a command that reads the record would open; StoreError if there is none yet."""
    path = (args.db or default_db_path(Path(args.workspace).resolve())).absolute()
    if not path.is_file():
        raise StoreError(
            f"no trust database at {path}; `ratchet serve` creates it on first start (or `ratchet init` "
            "in the workspace), or pass --db / set $RATCHET_DB to the one your server uses"
        )
    return path


async def _engine(args: argparse.Namespace) -> Engine:
    if args.command in NEEDS_DATABASE:
        existing_db(args)  # never create a database just to read an empty one
    return await Engine.open(Path(args.workspace), policies=args.policies, db=args.db, session=False)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _line(d: DraftView) -> str:
    return f"{d.action_id:>6}  {d.status:<11} {d.action_class:<20} {d.tool:<11} {d.target}"


# -- commands ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the governed tools over stdio (or streamable HTTP with --http: bearer token required, loopback
    unless --token-file is given). SIGINT/SIGTERM record running calls as interrupted and close the database."""
    import threading

    from ratchet.mcp_server import ServerConfig, build_server

    workspace = Path(args.workspace).resolve()
    if not args.http and (args.token_file or args.allowed_host):
        raise UsageError("--token-file and --allowed-host apply to --http only")
    if args.http:
        from ratchet.http_serve import check_host

        check_host(args.host, args.token_file)  # before anything is opened or created

    async def check() -> Path:
        # Fail closed before speaking MCP: a broken policy or database never serves half-configured.
        engine = await Engine.open(workspace, policies=args.policies, db=args.db, session=False)
        await engine.close()
        return engine.store.path

    db = anyio.run(check)
    closed = threading.Event()
    server = build_server(ServerConfig(workspace, args.policies, args.db, closed=closed, quiet=args.quiet))
    if args.http:
        from ratchet.http_serve import HttpOptions, serve_http
        from ratchet.web import pages_for_serve

        options = HttpOptions(args.host, args.port, args.token_file, tuple(args.allowed_host or ()))
        pages = pages_for_serve(workspace, args.policies, args.db, args.host, args.port, options.allowed_hosts)
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
    serve_web(WebOptions(ws, args.policies, args.db, args.host, args.port, args.token_file, hosts), existing_db(args))
    return 0


async def cmd_lint(args: argparse.Namespace) -> int:
    """Validate a policy directory: keys, levels, globs, and that every example lands in its class."""
    directory = args.directory or resolve_policy_dir(Path(args.workspace).resolve(), args.policies)
    policy = load_policy(directory)
    examples = sum(len(c.examples.match) + len(c.examples.not_match) for c in policy.classes.values())
    print(f"{directory}: ok: {len(policy.classes)} classes, {examples} examples hold")
    for cls in sorted(policy.classes.values(), key=lambda c: c.name):
        print(
            f"  {cls.name:<22} {cls.start.label:>10} (floor {cls.floor.label}, ceiling {cls.ceiling.label})  {cls.rule}"
        )
    for warning in lint_warnings(policy):
        print(warning)
    return 0


async def cmd_init(args: argparse.Namespace) -> int:
    """Copy the starter policies into <workspace>/.ratchet/policies for the team to commit and edit,
    and create the trust database (--db, else $RATCHET_DB, else <workspace>/.ratchet/ratchet.db)."""
    workspace = Path(args.workspace).resolve()
    target = workspace / ".ratchet" / "policies"
    if target.exists():
        raise InvalidRequest(f"{target} already exists; edit it, or remove it to start over")
    shutil.copytree(starter_policy_dir(), target)
    keep_database_out_of_git(target.parent / "ratchet.db")
    engine = await Engine.open(workspace, policies=args.policies or target, db=args.db, session=False)
    path = engine.store.path
    await engine.close()
    print(f"wrote {target}; commit it and review changes to it like code")
    print(f"trust database: {path}")
    return 0


async def cmd_queue(args: argparse.Namespace) -> int:
    """List drafts waiting for a human, oldest first."""
    engine = await _engine(args)
    try:
        drafts = await engine.queue()
    finally:
        await engine.close()
    if args.json:
        _print_json(drafts)
    elif not drafts:
        print("no drafts waiting")
    else:
        for d in drafts:
            print(f"{_line(d)}  ({_when(d.created_at)})" + (f"  intent: {d.intent}" if d.intent else ""))
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    """Show one action or draft in full: class, rule, level, triggers, preview, outcome."""
    engine = await _engine(args)
    try:
        d = await engine.view(args.id)
        packet = (await handoffs.get_handoff(engine, args.id)).packet if d.has_packet else None
    finally:
        await engine.close()
    if args.json:
        _print_json({**d.model_dump(mode="json"), "packet": packet.model_dump(mode="json") if packet else None})
        return 0
    if packet is not None:
        print(packet.markdown())
        return 0
    print(f"action {d.action_id}: {d.tool} {d.target} [{d.status}]")
    print(f"class {d.action_class} ({d.rule}) at {d.class_level}; this call: {d.level}")
    for t in d.triggers:
        print(f"  trigger {t.name}: {t.detail}")
    if d.intent:
        print(f"intent: {d.intent}")
    if d.reviewer:
        print(
            f"reviewed by {d.reviewer}"
            + (f" after {d.review_seconds:.0f}s" if d.review_seconds else "")
            + (f": {d.review_note}" if d.review_note else "")
        )
    if d.error:
        print(f"error: {d.error}")
    print(d.preview)
    return 0


async def cmd_inbox(args: argparse.Namespace) -> int:
    """Everything waiting for a human: stopped actions and handoffs first, then drafts; oldest first."""
    from ratchet.record import integrity

    engine = await _engine(args)
    try:
        items = await handoffs.inbox(engine)
        tampers, lines = await engine.store.call(integrity.tamper_records)
    finally:
        await engine.close()
    if args.json:
        _print_json(items)
        return 0
    if tampers:
        print(f"TAMPERING: {tampers} record(s) of standings changed outside Ratchet, not honoured; newest:")
        for line in lines:
            print(f"  {line}")
    if not items:
        print("inbox empty")
    else:
        for i in items:
            print(
                f"{i.id:>6}  {i.kind:<8} {'BLOCKING ' if i.blocking else ''}{i.summary}  "
                f"[{i.action_class}, waiting {i.age_s:.0f}s]"
            )
    return 0


async def cmd_resolve(args: argparse.Namespace) -> int:
    """Answer a stopped action or a handoff: --option NAME from its packet, and/or --note TEXT."""
    engine = await _engine(args)
    try:
        view = await handoffs.resolve(engine, args.id, args.option, args.note)
    finally:
        await engine.close()
    print(f"{view.id}: {view.message}")
    return 0


async def cmd_escalations(args: argparse.Namespace) -> int:
    """Escalation counts and rates per session and class (a health figure)."""
    engine = await _engine(args)
    try:
        stats = await handoffs.escalation_stats(engine)
    finally:
        await engine.close()
    if args.json:
        _print_json(stats)
    else:
        for st in stats:
            print(f"{st.session_id:<14} {st.action_class:<22} {st.escalations:>4}/{st.actions:<5} {st.rate:.1%}")
    return 0


async def cmd_approve(args: argparse.Namespace) -> int:
    """Run a queued draft now, exactly as drafted (once). --content FILE approves with your edit instead."""
    content = Path(args.content).read_text(encoding="utf-8") if args.content else None
    engine = await _engine(args)
    try:
        d = await engine.approve(args.id, content=content, note=args.note)
    finally:
        await engine.close()
    print(f"draft {d.action_id}: {d.status}" + (f" ({d.error})" if d.error else ""))
    return 0 if d.status == "executed" else 1


async def cmd_reject(args: argparse.Namespace) -> int:
    """Reject a queued draft; nothing runs and the class's window records a failure."""
    engine = await _engine(args)
    try:
        d = await engine.reject(args.id, args.reason)
    finally:
        await engine.close()
    print(f"draft {d.action_id}: rejected")
    return 0


async def cmd_complain(args: argparse.Namespace) -> int:
    """Record that an action which ran was wrong; its class is demoted or charged a failure."""
    engine = await _engine(args)
    try:
        outcome = await engine.complain(args.action_id, args.reason)
    finally:
        await engine.close()
    print(outcome.line())
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    """Where every class stands: level, window, evidence, and what a call would do now."""
    engine = await _engine(args)
    try:
        levels = await engine.trust_levels()
        queued = len(await engine.queue())
    finally:
        await engine.close()
    if args.json:
        _print_json(levels)
        return 0
    print(f"policy {levels.policy} ({levels.policy_fingerprint}); {queued} drafts queued")
    print(f"command sandbox: {levels.sandbox}")
    if levels.freeze is not None:
        print(f"FROZEN: {levels.freeze} (`ratchet unfreeze` lifts it)")
    if levels.tamper_records:
        print(
            f"TAMPERING: the stored standings were changed outside Ratchet {levels.tamper_records} time(s); "
            "not honoured (`ratchet transitions` and `ratchet verify` show more):"
        )
        for line in levels.tampering:
            print(f"  {line}")
    for c in levels.classes:
        pin = "" if c.pinned is None else f" pinned {c.pinned}"
        rate = f"{c.successes}/{c.samples} ok" + (f", lower bound {c.lower_bound:.3f}" if c.lower_bound else "")
        unheard = ""
        if c.unverified or c.unanswered:
            unheard = f"; not evidence: {c.unverified} unverified, {c.unanswered} unanswered"
        print(f"  {c.action_class:<22} {c.level:<10}{pin} -> {c.would:<8} {rate}; {c.next_promotion}{unheard}")
        for t in c.capped_by:
            if t.name != "pinned":
                print(f"      capped at {t.cap} by {t.name}: {t.detail}")
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    """Recent actions, newest first, with their outcome."""
    engine = await _engine(args)
    try:
        rows = await engine.history(args.limit, args.cls)
    finally:
        await engine.close()
    if args.json:
        _print_json(rows)
    else:
        for d in rows:
            print(f"{_line(d)}  {_when(d.created_at)}")
    return 0


async def cmd_transitions(args: argparse.Namespace) -> int:
    """Promotions, demotions and pins, newest first, each with the evidence that caused it."""
    engine = await _engine(args)
    try:
        rows = await engine.transitions(args.cls)
    finally:
        await engine.close()
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(
                f"{_when(r['at'])}  {r['class']}: {r['from_level']} -> {r['to_level']} [{r['kind']} by "
                f"{r['actor']}] {r['reason']}"
            )
    return 0


async def cmd_demote(args: argparse.Namespace) -> int:
    """Lower a class one rung (or --to LEVEL), not below its floor. Nothing promotes by command."""
    engine = await _engine(args)
    try:
        moved = await engine.demote(args.cls, args.reason, None if args.to is None else Level.parse(args.to))
    finally:
        await engine.close()
    print(moved.line())
    return 0


async def cmd_pin(args: argparse.Namespace) -> int:
    """Hold a class at or below LEVEL (any level, blocked included) until unpinned."""
    engine = await _engine(args)
    try:
        moved = await engine.pin(args.cls, Level.parse(args.level), args.reason)
    finally:
        await engine.close()
    print(moved.line())
    return 0


async def cmd_unpin(args: argparse.Namespace) -> int:
    """Lift a pin: the class returns to the level it earned (never higher)."""
    engine = await _engine(args)
    try:
        moved = await engine.pin(args.cls, None, args.reason)
    finally:
        await engine.close()
    print(moved.line())
    return 0


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
    """Cap every class at LEVEL at once (the autonomy slider), until `ratchet unfreeze` or --until. Earned
    levels are kept; each class whose level changes gets a transition."""
    until = None if args.until is None else parse_until(args.until)
    engine = await _engine(args)
    try:
        moves = await engine.freeze(Level.parse(args.level), args.reason, until)
    finally:
        await engine.close()
    for move in moves:
        print(move.line())
    return 0


async def cmd_unfreeze(args: argparse.Namespace) -> int:
    """Lift a freeze: every class returns to the level it earned (under its pin), never higher."""
    engine = await _engine(args)
    try:
        moves = await engine.unfreeze(args.reason)
    finally:
        await engine.close()
    for move in moves:
        print(move.line())
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    """Walk the hash chain over transitions and reviews: exit 0 if intact, 1 naming the first broken row.
    It proves no chained row was edited or deleted in the middle by someone who did not recompute the
    chain; against someone who can rewrite the file and recompute, keep the --head value elsewhere and
    check it later with --expect."""
    from ratchet.record import chain

    engine = await _engine(args)
    try:
        result = await engine.store.call(lambda conn: chain.verify(conn, args.expect))
    finally:
        await engine.close()
    if args.head:
        print(result.head)
        return 0 if result.ok else 1
    print(result.line())
    return 0 if result.ok else 1


async def cmd_demo(args: argparse.Namespace) -> int:
    """A scripted agent session in a scratch workspace: every level, a CLI approval, promotion, demotion."""
    from ratchet.demo import run_demo

    await run_demo(Path(args.dir) if args.dir else None)
    return 0


async def cmd_explain(args: argparse.Namespace) -> int:
    """Why one action went as it did: class and rule, the level and the transition behind it, triggers,
    who answered and how fast, the outcome and any complaint."""
    from ratchet.evidence.explain import explain_action, render_explanation

    engine = await _engine(args)
    try:
        explanation = await explain_action(engine.store, args.id, engine.policy)
    finally:
        await engine.close()
    if args.json:
        _print_json(explanation)
    else:
        print(render_explanation(explanation))
    return 0


async def cmd_metrics(args: argparse.Namespace) -> int:
    """Figures per class and per level over a period: shares, escalation, rework, defect escape, review
    time, time between human interventions, rubber stamps (docs/evidence.md defines each)."""
    from ratchet.evidence.metrics import class_metrics, render_metrics

    engine = await _engine(args)
    try:
        report = await class_metrics(engine, since=args.since, until=args.until, action_class=args.cls)
    finally:
        await engine.close()
    if args.json:
        _print_json(report)
    else:
        print(render_metrics(report))
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay the recorded history against a candidate policy (--policies CANDIDATE_DIR) before merging
    it: route changes, the moves it would make, interventions added or saved. Writes nothing."""
    from ratchet.evidence.simulate import render_simulation, simulate_candidate
    from ratchet.record.store import default_db_path

    workspace = Path(args.workspace).resolve()
    report = await simulate_candidate(
        (args.db or default_db_path(workspace)).absolute(), resolve_policy_dir(workspace, args.policies)
    )
    if args.json:
        _print_json(report)
    else:
        print(render_simulation(report))
    return 0


async def cmd_report(args: argparse.Namespace) -> int:
    """The metrics and every class's trust trajectory: a terminal summary, --json, or --html FILE (one
    self-contained page with a plot per class, to open offline or attach to a review)."""
    from ratchet.evidence.report import evidence_report, render_report, write_html

    engine = await _engine(args)
    try:
        report = await evidence_report(engine, since=args.since, until=args.until)
    finally:
        await engine.close()
    if args.html:
        print(f"wrote {write_html(report, Path(args.html))}")
    elif args.json:
        _print_json(report)
    else:
        print(render_report(report))
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
    answer = await claude_code_process(sys.stdin.buffer.read(), options)
    if answer:
        print(answer, flush=True)
    return 0


async def cmd_install(args: argparse.Namespace) -> int:
    """Set Ratchet up in a client in one command: its MCP server entry and, for Claude Code, the hooks
    that put its built-in Bash/Write/Edit behind the same gate. Shows a diff of what would change; with
    --apply writes it, keeping everything already there and backing each file up first."""
    from ratchet import install

    if args.client != "claude-code" and args.deny_builtins:
        raise UsageError("--deny-builtins applies to claude-code only")
    if args.client == "claude-desktop" and args.scope:
        raise UsageError("--scope applies to claude-code and codex only; Claude Desktop has one config file")
    if args.client == "codex" and args.scope == "local":
        raise UsageError("--scope local applies to claude-code only; for codex use project or user")
    workspace = Path(args.workspace)
    if args.client == "claude-code":
        plan = install.plan_claude_code(
            workspace,
            scope=args.scope or "project",
            command=args.ratchet_command,
            policies=args.policies,
            db=args.db,
            deny_builtins=args.deny_builtins,
        )
    elif args.client == "codex":
        project = Path(args.workspace) / ".codex" / "config.toml" if args.scope == "project" else None
        plan = await install.plan_codex(command=args.ratchet_command, policies=args.policies, db=args.db, path=project)
    else:
        plan = install.plan_claude_desktop(workspace, command=args.ratchet_command, policies=args.policies, db=args.db)
    print(install.render(plan, install.apply(plan) if args.apply else None))
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `ratchet COMMAND --help` is the manual."""
    parser = _Parser(
        prog="ratchet",
        description=__doc__.splitlines()[0],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        type=Path,
        default=None,
        help="trust database (default: $RATCHET_DB, else <workspace>/.ratchet/ratchet.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, *, json_flag: bool = False) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, parents=[common], help=doc.splitlines()[0], description=doc)
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
        return p

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
    p = add("lint", cmd_lint)
    p.add_argument("directory", nargs="?", type=Path, help="policy directory (default: the one serve would use)")
    add("init", cmd_init)
    add("queue", cmd_queue, json_flag=True)
    p = add("show", cmd_show, json_flag=True)
    p.add_argument("id", type=int, help="action or draft id")
    p = add("approve", cmd_approve)
    p.add_argument("id", type=int, help="draft id")
    p.add_argument("--content", metavar="FILE", help="approve with this file's text instead (counts as rework)")
    p.add_argument("--note", help="a note kept with the review")
    p = add("reject", cmd_reject)
    p.add_argument("id", type=int, help="draft id")
    p.add_argument("--reason", required=True, help="why (kept with the review)")
    p = add("complain", cmd_complain)
    p.add_argument("action_id", type=int, help="the action that ran and was wrong")
    p.add_argument("--reason", required=True, help="what was wrong")
    add("inbox", cmd_inbox, json_flag=True)
    p = add("resolve", cmd_resolve)
    p.add_argument("id", type=int, help="a stopped action or handoff id (see `ratchet inbox`)")
    p.add_argument("--option", help="one of the options in its packet (e.g. approach, take-over)")
    p.add_argument("--note", help="what the agent should know or do")
    add("escalations", cmd_escalations, json_flag=True)
    add("status", cmd_status, json_flag=True)
    p = add("history", cmd_history, json_flag=True)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--class", dest="cls", help="only this class")
    p = add("transitions", cmd_transitions, json_flag=True)
    p.add_argument("--class", dest="cls", help="only this class")
    p = add("demote", cmd_demote)
    p.add_argument("cls", metavar="CLASS")
    p.add_argument("--to", choices=LEVEL_NAMES, help="demote to this level (default: one rung)")
    p.add_argument("--reason", required=True)
    p = add("pin", cmd_pin)
    p.add_argument("cls", metavar="CLASS")
    p.add_argument("level", choices=LEVEL_NAMES)
    p.add_argument("--reason", required=True)
    p = add("unpin", cmd_unpin)
    p.add_argument("cls", metavar="CLASS")
    p.add_argument("--reason", required=True)
    p = add("freeze", cmd_freeze)
    p.add_argument("--level", required=True, choices=LEVEL_NAMES[:-1], help="the most any class may get")
    p.add_argument("--reason", required=True)
    p.add_argument("--until", help="lift by itself then: a duration from now (90m, 2h, 1d) or an ISO date-time")
    p = add("unfreeze", cmd_unfreeze)
    p.add_argument("--reason", required=True)
    p = add("verify", cmd_verify)
    p.add_argument("--head", action="store_true", help="print the head hash, to keep out of band")
    p.add_argument("--expect", metavar="HASH", help="also fail unless the record still contains this head")
    p = add("demo", cmd_demo)
    p.add_argument("--dir", help="scratch directory to use (default: a new temporary directory)")
    p = add("explain", cmd_explain, json_flag=True)
    p.add_argument("id", type=int, help="action or draft id")

    def add_period(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", help="from this ISO date/time, or this long ago: 90m, 12h, 7d, 2w")
        p.add_argument("--until", help="up to (not including) this ISO date/time, or this long ago")

    p = add("metrics", cmd_metrics, json_flag=True)
    add_period(p)
    p.add_argument("--class", dest="cls", help="only this class")
    add("simulate", cmd_simulate, json_flag=True).epilog = (
        "Here --policies names the CANDIDATE directory (default: the one serve would use, e.g. your "
        "branch's .ratchet/policies); --db is the recorded history."
    )
    p = add("report", cmd_report, json_flag=True)
    add_period(p)
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with a plot per class")
    # hook: the workspace defaults to the event's cwd, so it does not share the common --workspace default.
    doc = (cmd_hook.__doc__ or "").strip()
    p = sub.add_parser("hook", help=doc.splitlines()[0], description=doc)
    p.add_argument("client", choices=["claude-code"], help="whose hook event arrives on stdin")
    p.add_argument("--workspace", default=None, help="the workspace directory (default: the event's cwd)")
    p.add_argument("--policies", type=Path, default=None, help="policy directory (default: as for serve)")
    p.add_argument("--db", type=Path, default=None, help="trust database (default: as for serve)")
    p.set_defaults(handler=cmd_hook)
    p = add("install", cmd_install)
    p.add_argument("client", choices=["claude-code", "codex", "claude-desktop"])
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
        "--deny-builtins",
        action="store_true",
        help="claude-code: deny Bash/Write/Edit/MultiEdit/NotebookEdit in permissions instead of hooking them",
    )
    p.add_argument(
        "--command", dest="ratchet_command", help="how the client should start ratchet (default: this installation)"
    )
    p.epilog = (
        "Files: Codex $CODEX_HOME/config.toml (default ~/.codex/config.toml); Claude Desktop "
        "~/.config/Claude/claude_desktop_config.json on Linux, ~/Library/Application Support/Claude/"
        "claude_desktop_config.json on macOS."
    )
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
        args = build_parser().parse_args(argv)
        if args.command != "hook" and getattr(args, "workspace", None) is not None:
            args.workspace = str(project_workspace(args.workspace))
        # serve and web run their own event loop
        code = args.handler(args) if args.command in ("serve", "web") else int(anyio.run(args.handler, args))
        sys.stdout.flush()  # a closed pipe surfaces here, not at exit
    except BaseException as exc:  # the one place every error becomes a line and a code
        return _failed(_leaf(exc))
    return code


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
        print(" ".join(line.split()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
