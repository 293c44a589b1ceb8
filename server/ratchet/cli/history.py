"""What was recorded: `history`, `transitions`, `escalations`, `explain`, and `verify` (the hash chain)."""

from __future__ import annotations

import argparse

from ratchet import terminal
from ratchet.cli.common import (
    Add,
    action_filter,
    add_filters,
    emit,
    filtered_text,
    joined,
    listed,
    opened,
)
from ratchet.engine import handoffs
from ratchet.engine import reviewer as delegated
from ratchet.inert import inert_output


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
    emit(args, rows, lambda: joined(*terminal.table(headers, table)) if rows else "no transitions recorded")
    return 0


async def cmd_escalations(args: argparse.Namespace) -> int:
    """Escalation counts and rates per session and class, a health figure: a class that escalates often
    needs a policy change."""
    async with opened(args) as engine:
        stats = await handoffs.escalation_stats(engine)
    rows = [[s.session_id, s.action_class, str(s.escalations), str(s.actions), f"{s.rate:.1%}"] for s in stats]
    headers = ["SESSION", "CLASS", "ESCALATIONS", "ACTIONS", "RATE"]
    emit(args, stats, lambda: joined(*terminal.table(headers, rows, numeric=[2, 3, 4])) if stats else "no actions")
    return 0


async def cmd_explain(args: argparse.Namespace) -> int:
    """Explain why one action went as it did: class and rule, the level and the transition behind it,
    triggers, who answered and how fast, the outcome and any complaint."""
    from ratchet.evidence.explain import render_explanation  # start-up: only for explain

    async with opened(args) as engine:
        explanation = await engine.explain(args.id)
        said = await engine.reviewer_about(args.id)
    value = {**explanation.model_dump(mode="json"), "reviewer": said}
    emit(args, value, lambda: joined(render_explanation(explanation), *delegated.about_lines(said)))
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


def add_history(add: Add) -> None:
    p = add("history", cmd_history, json_flag=True, what="the actions")
    p.add_argument("--limit", type=int, default=50, help="show at most this many actions (default: 50)")
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only actions of this class")
    p.add_argument(
        "--by", metavar="IDENTITY", help="only actions recorded or reviewed by this identity (user@host, or a name)"
    )
    add_filters(p, by=False)


def add_transitions(add: Add) -> None:
    p = add("transitions", cmd_transitions, json_flag=True, what="the transitions")
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only transitions of this class")


def add_escalations(add: Add) -> None:
    add("escalations", cmd_escalations, json_flag=True, what="the figures")


def add_explain(add: Add) -> None:
    p = add("explain", cmd_explain, json_flag=True, what="the explanation")
    p.add_argument("id", type=int, help="action or draft id")


def add_verify(add: Add) -> None:
    p = add("verify", cmd_verify)
    p.add_argument("--head", action="store_true", help="print the head hash, to keep out of band")
    p.add_argument("--expect", metavar="HASH", help="also fail unless the record still contains this head")
