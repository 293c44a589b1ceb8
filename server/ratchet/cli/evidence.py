"""Figures over a period: `metrics`, `report` (with each trajectory), `simulate` (a candidate policy replayed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ratchet.cli.common import (
    Add,
    action_filter,
    add_filters,
    add_period,
    emit,
    joined,
    opened,
)
from ratchet.engine import reviewer as delegated
from ratchet.errors import UsageError
from ratchet.policy.load import resolve_policy_dir
from ratchet.record.store import resolve_location


async def cmd_metrics(args: argparse.Namespace) -> int:
    """Figures per class and per level over a period: shares, escalation, rework, defect escape, review
    time, time between human interventions, rubber stamps (docs/evidence.md defines each). With --by,
    --origin-workspace or --repo every figure is over those actions only."""
    from ratchet.evidence.metrics import render_metrics  # start-up: only for this command

    scope = action_filter(args)
    async with opened(args) as engine:
        report = await engine.metrics(since=args.since, until=args.until, action_class=args.cls, scope=scope)
        reviewing = await engine.reviewer_standing()
    if not reviewing["configured"]:
        emit(args, report, lambda: render_metrics(report))
        return 0
    value = {**report.model_dump(mode="json"), "reviewer": reviewing}
    emit(args, value, lambda: joined(render_metrics(report), "", delegated.render(reviewing)))
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay the recorded history against a candidate policy (--policies CANDIDATE_DIR) before merging
    it: route changes, the moves it would make, interventions added or saved. It writes nothing."""
    from ratchet.evidence.simulate import render_simulation, simulate_candidate  # start-up: as metrics

    workspace = Path(args.workspace).resolve()
    if args.reviewer:  # the reviewer's dry run (evidence/reviewer_replay.py)
        from ratchet.evidence.reviewer_replay import replay_candidate  # start-up: only for --reviewer

        dry = await replay_candidate(resolve_location(args.db, workspace), resolve_policy_dir(workspace, args.policies))
        emit(args, dry.as_dict(), dry.render)
        return 0
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
    from ratchet.evidence.report import render_report, write_html  # start-up: as metrics

    if args.html and args.json:
        raise UsageError("--json and --html are two outputs; choose one")
    scope = action_filter(args)
    async with opened(args) as engine:
        report = await engine.report(since=args.since, until=args.until, scope=scope)
        reviewing = await engine.reviewer_standing()
    if args.html:
        print(f"wrote {write_html(report, Path(args.html), delegated.render(reviewing))}")
    elif reviewing["configured"]:
        value = {**report.model_dump(mode="json"), "reviewer": reviewing}
        emit(args, value, lambda: joined(render_report(report), "", delegated.render(reviewing)))
    else:
        emit(args, report, lambda: render_report(report))
    return 0


def add_metrics(add: Add) -> None:
    p = add("metrics", cmd_metrics, json_flag=True, what="the figures")
    add_period(p)
    add_filters(p)
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only this class")


def add_simulate(add: Add) -> None:
    p = add("simulate", cmd_simulate, json_flag=True, what="the replay")
    p.epilog = (
        "Here --policies names the CANDIDATE directory (default: the one serve would use, e.g. your "
        "branch's .ratchet/policies); --db is the recorded history."
    )
    p.add_argument("--since", help="replay from this ISO date/time or this long ago (default 30d; 'all': everything)")
    p.add_argument(
        "--against", metavar="DIR", help="the policy in force: replay only the classes the candidate changes"
    )
    p.add_argument(
        "--reviewer",
        action="store_true",
        help="replay the reviewer's recorded verdicts as if it had held the authority the candidate gives it",
    )


def add_report(add: Add) -> None:
    p = add("report", cmd_report, json_flag=True, what="the report")
    add_period(p)
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with a plot per class")
    add_filters(p)
