"""`ratchet`: serve the MCP server, and let a human review, approve, complain and inspect.

Each command is a docstring and one call into the engine. Errors are translated here once: a
RatchetError prints `ratchet: error: ...` on stderr and exits 2; listings take `--json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from . import handoffs
from .core import keep_database_out_of_git
from .engine import Engine
from .errors import InvalidRequest, RatchetError
from .levels import LEVEL_NAMES, Level
from .policy import load_policy, resolve_policy_dir, starter_policy_dir
from .results import DraftView

Handler = Callable[[argparse.Namespace], Awaitable[int]] | Callable[[argparse.Namespace], int]


def _print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    print(json.dumps(value, indent=2, default=str))


async def _engine(args: argparse.Namespace) -> Engine:
    return await Engine.open(Path(args.workspace), policies=args.policies, db=args.db, session=False)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _line(d: DraftView) -> str:
    return f"{d.action_id:>6}  {d.status:<11} {d.action_class:<20} {d.tool:<11} {d.target}"


# -- commands ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the governed tools over stdio (or streamable HTTP on loopback with --http)."""
    from .mcp_server import ServerConfig, build_server

    workspace = Path(args.workspace).resolve()

    async def check() -> None:
        # Fail closed before speaking MCP: a broken policy or database never serves half-configured.
        engine = await Engine.open(workspace, policies=args.policies, db=args.db, session=False)
        await engine.close()

    anyio.run(check)
    server = build_server(ServerConfig(workspace, args.policies, args.db))
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run()
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
    return 0


async def cmd_init(args: argparse.Namespace) -> int:
    """Copy the starter policies into <workspace>/.ratchet/policies for the team to commit and edit."""
    target = Path(args.workspace).resolve() / ".ratchet" / "policies"
    if target.exists():
        raise InvalidRequest(f"{target} already exists; edit it, or remove it to start over")
    shutil.copytree(starter_policy_dir(), target)
    keep_database_out_of_git(target.parent / "ratchet.db")
    print(f"wrote {target}; commit it and review changes to it like code")
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
    engine = await _engine(args)
    try:
        items = await handoffs.inbox(engine)
    finally:
        await engine.close()
    if args.json:
        _print_json(items)
    elif not items:
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
        moved = await engine.complain(args.action_id, args.reason)
    finally:
        await engine.close()
    print(f"complaint recorded on action {args.action_id}" + (f"; {moved.line()}" if moved else ""))
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
    for c in levels.classes:
        pin = f" pinned {c.pinned}" if c.pinned else ""
        rate = f"{c.successes}/{c.samples} ok" + (f", lower bound {c.lower_bound:.3f}" if c.lower_bound else "")
        print(f"  {c.action_class:<22} {c.level:<10}{pin} -> {c.would:<8} {rate}; {c.next_promotion}")
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
        moved = await engine.demote(args.cls, args.reason, Level.parse(args.to) if args.to else None)
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


async def cmd_demo(args: argparse.Namespace) -> int:
    """A scripted agent session in a scratch workspace: every level, a CLI approval, promotion, demotion."""
    from .demo import run_demo

    await run_demo(Path(args.dir) if args.dir else None)
    return 0


async def cmd_explain(args: argparse.Namespace) -> int:
    """Why one action went as it did: class and rule, the level and the transition behind it, triggers,
    who answered and how fast, the outcome and any complaint."""
    from .explain import explain_action, render_explanation

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
    from .metrics import class_metrics, render_metrics

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
    from .simulate import render_simulation, simulate_candidate
    from .store import default_db_path

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
    from .report import evidence_report, render_report, write_html

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
    from .hooks import HookOptions, claude_code_process

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
    from . import install

    if args.client != "claude-code" and (args.scope or args.deny_builtins):
        raise InvalidRequest("--scope and --deny-builtins apply to claude-code only")
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
        plan = await install.plan_codex(command=args.ratchet_command, policies=args.policies, db=args.db)
    else:
        plan = install.plan_claude_desktop(workspace, command=args.ratchet_command, policies=args.policies, db=args.db)
    print(install.render(plan, install.apply(plan) if args.apply else None))
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `ratchet COMMAND --help` is the manual."""
    parser = argparse.ArgumentParser(prog="ratchet", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=".", help="the workspace directory (default: .)")
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
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
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
        "~/.claude/settings.json) or local (~/.claude.json for this project, .claude/settings.local.json)",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ratchet` console script."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":  # serve runs its own event loop
            return cmd_serve(args)
        code = int(anyio.run(args.handler, args))
    except RatchetError as exc:
        print(f"ratchet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
