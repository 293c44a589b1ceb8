"""Evidence a team can read: per-class, per-level figures over a period, computed from the trust database.

Which actions count: those created in the period (`since` inclusive, `until` exclusive) that the
gate decided, i.e. that have a policy rule: calls refused before the gate (bad path or arguments)
and handoffs the agent asked for (`request_handoff`, not a governed action) are left out.
Everything that happened *to* an action (its review, its complaints) goes with the action, even
when it came after `until`. Actions are grouped by class and by `class_level`, the rung the class
stood on when the call was decided (a trigger may have given the call itself less).

Each action has one *disposition*:

- `autonomous`: the gate let it run with no human (route `execute`), whatever the result;
- `approved`: a human accepted it unchanged: a draft approved (CLI or in-chat review) or a
  confirmation accepted in the client's dialog (or, for a client's own tool seen through a hook,
  in the client's permission prompt);
- `edited`: a draft approved with the human's own content (`ratchet approve --content`);
- `rejected`: a draft rejected; `declined`: a confirmation declined;
- `blocked`: refused by the gate with an escalation packet;
- `pending`: a draft still waiting, or a client's own call whose outcome has not been reported;
  `unresolved`: a draft that went stale, failed before it could run, or an action interrupted
  before its outcome was recorded.

A *human intervention* is an approval, an edited approval, a rejection, a decline (each answer to
a confirmation is one of those) or a complaint; and also a human's answer to a blocked action's
escalation packet (`ratchet resolve`), which came after this definition was first written. Its time
is when it was recorded: the action's `finished_at` for a review (its `created_at` when none was
recorded), `resolved_at` for a resolution and the complaint's own time for a complaint.

Reading-speed rule for the rubber-stamp indicator: a human needs at least
`READ_BASE_SECONDS + READ_SECONDS_PER_LINE x diff_lines` (2 s + 0.25 s per line) to read a draft,
where `diff_lines` counts the preview's added and removed lines (not the `---`/`+++` headers)
plus the lines a truncated preview did not show. The rule lives in rules/provenance.py, which also uses
it to decide whether an answer is evidence: `unverified` approvals (accepted faster than the rule,
or outside the class's promotion channel) and `unanswered` calls (no human answered) are counted
separately.
"""

from __future__ import annotations

import re
import statistics
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from ratchet.errors import InvalidRequest
from ratchet.policy.levels import LEVEL_NAMES
from ratchet.record import evidence as recorded
from ratchet.record import undos as recorded_undos
from ratchet.record.checks import verified_shares
from ratchet.record.evidence import (
    ROUTE_EXECUTE,
    ActionRecord,
    ComplaintRecord,
    PeriodFigures,
    PeriodRecord,
    TouchedAction,
)
from ratchet.record.filters import EVERYTHING, ActionFilter, checked
from ratchet.record.store import Store
from ratchet.rules.provenance import READING_RULE, UNANSWERED, UNVERIFIED
from ratchet.rules.provenance import diff_lines as diff_lines  # re-exported: the rule's one home is rules/provenance.py
from ratchet.rules.provenance import reading_seconds as reading_seconds

DISPOSITIONS = ("autonomous", "approved", "edited", "rejected", "declined", "blocked", "pending", "unresolved")
HUMAN_DECISIONS = frozenset({"approved", "edited", "rejected", "declined"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


DEFAULT_PERIOD = "30d"  # what the evidence views show unless told otherwise: the work grows with it, not with history
WHOLE_HISTORY = "all"  # `--since all`: from the first recorded action


def parse_when(value: str | float | None, now: float | None = None) -> float | None:
    """A period bound as a Unix time: an ISO date or date-time (local time unless it names a zone),
    a duration back from `now` (`90m`, `12h`, `7d`, `2w`), a plain number (a Unix time), or None
    (also for `all`: that side open)."""
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    text = value.strip().lower()
    if not text or text == WHOLE_HISTORY:
        return None
    if _NUMBER.match(text):
        return float(text)
    found = _DURATION.match(text)
    if found:
        return (time.time() if now is None else now) - float(found[1]) * _UNITS[found[2]]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"cannot read {value!r} as a time; expected an ISO date (2025-06-01, 2025-06-01T14:30), "
            f"a duration back from now (90m, 12h, 7d, 2w), a Unix time or {WHOLE_HISTORY!r}"
        ) from None
    return (moment.astimezone() if moment.tzinfo is None else moment).timestamp()


def period_bounds(
    since: str | float | None, until: str | float | None, now: float | None = None
) -> tuple[float | None, float | None]:
    """The period an evidence view shows: [since, until). `since` None means the default period
    (`DEFAULT_PERIOD` back from `until`, or from now); `all` opens it to the first recorded action.
    InvalidRequest on a bound it cannot read, or an empty period."""
    end = parse_when(until, now)
    start = parse_when(DEFAULT_PERIOD, now if end is None else end) if since is None else parse_when(since, now)
    if start is not None and end is not None and start >= end:
        raise InvalidRequest("the period is empty: --since must come before --until")
    return start, end


def disposition(status: str, route: str, reviewer: str | None, edited: bool) -> str:
    """What became of one recorded action; see the module docstring."""
    if route == "execute":
        return "autonomous"
    if status in ("blocked", "declined", "rejected"):
        return status
    if reviewer is not None:
        return "edited" if edited else "approved"
    return "pending" if status in ("draft", "approving", "asked", "allowed") else "unresolved"


@dataclass(frozen=True)
class ActionFacts:
    """What the figures need to know about one recorded action."""

    action_id: int
    action_class: str
    class_level: str
    disposition: str
    created_at: float
    decided_at: float | None  # when the human decided (reviewed dispositions only)
    review_seconds: float | None
    diff_lines: int  # counted for approvals, which the reading rule judges; 0 for the rest
    complaint_times: tuple[float, ...] = ()
    resolved_at: float | None = None  # a human answered the blocked action's escalation packet
    evidence: str | None = None  # counted | unverified | unanswered (rules/provenance.py), None: no answer

    @property
    def rubber_stamp(self) -> bool | None:
        """An unchanged approval faster than the reading rule (None: not an approval, or no time)."""
        if self.disposition != "approved" or self.review_seconds is None:
            return None
        return self.review_seconds < reading_seconds(self.diff_lines)


class Figures(BaseModel):
    """The figures for one group of actions (a class at a level, a class, or everything)."""

    actions: int = Field(description="actions decided by the gate in the period")
    counts: dict[str, int] = Field(description="actions per disposition: " + ", ".join(DISPOSITIONS))
    complaints: int = Field(description="complaints recorded on these actions")
    interventions: int = Field(
        description="approvals, edited approvals, rejections, declines, complaints and resolved escalations"
    )
    autonomous_share: float | None = Field(description="autonomous / actions")
    approved_share: float | None = Field(description="approved unchanged / actions")
    edited_share: float | None = Field(description="edited approvals / actions")
    rejected_share: float | None = Field(description="rejected (drafts) and declined (confirmations) / actions")
    escalation_rate: float | None = Field(description="blocked / actions")
    rework_rate: float | None = Field(description="edited / (approved + edited)")
    defect_escape_rate: float | None = Field(
        description="autonomous actions with at least one complaint / autonomous actions"
    )
    mean_seconds_between_interventions: float | None = Field(
        description="(last intervention - first) / (interventions - 1); None below two"
    )
    median_review_seconds: float | None = Field(
        description="median review_seconds of approvals (unchanged or edited) that recorded one"
    )
    actions_per_decision: float | None = Field(description="actions / interventions")
    rubber_stamp_share: float | None = Field(
        description="unchanged approvals faster than the reading rule / unchanged approvals with a review time"
    )
    rubber_stamp_checked: int = Field(description="unchanged approvals with a review time (the share's denominator)")
    unverified: int = Field(
        0,
        description="approvals that let the action run but were not evidence: faster than the reading rule, "
        "or outside the class's promotion channel",
    )
    unanswered: int = Field(
        0, description="calls no human answered: a decline faster than the reading rule, or a dismissed dialog"
    )


class ClassMetrics(BaseModel):
    """One class: its figures over all levels and at each level it stood on."""

    action_class: str
    overall: Figures
    levels: dict[str, Figures] = Field(description="by class level, blocked to autonomous, only levels seen")


class UndoRate(BaseModel):
    """How often a class's executed actions were undone by a human, and how soon."""

    action_class: str
    executed: int = Field(description="actions of the class that ran in the period")
    undone: int = Field(description="of those, how many a human undid (`ratchet undo`)")
    undo_rate: float | None = Field(description="undone / executed")
    median_seconds_to_undo: float | None = Field(description="median time from the action to its undo")


class Verification(BaseModel):
    """A class at a level: how many of its executed actions a check of the class judged, and how many failed one."""

    action_class: str
    level: str
    executed: int
    verified: int = Field(description="executed actions with at least one recorded check")
    verified_share: float | None = Field(description="verified / executed")
    check_failures: int = Field(description="verified actions on which a check failed")
    failure_rate: float | None = Field(description="check_failures / verified: the verification failure rate")


class AutonomyFigures(BaseModel):
    """The autonomy figures over all classes of the period (docs/evidence.md defines each exactly)."""

    longest_unattended_run: int = Field(
        0,
        description="the most consecutive autonomous actions of one session with no action needing a human among "
        "them, none failed, complained about or undone, and ended by work a human accepted (the session's next "
        "action approved, unchanged or edited) or by the end of the session's actions in the period",
    )
    longest_unattended_run_session: str | None = Field(None, description="the session of that run")
    longest_unattended_run_ids: tuple[int, int] | None = Field(None, description="its first and last action ids")
    handoffs: int = Field(0, description="handoffs (clarification requests, `request_handoff`) asked in the period")
    handoffs_per_100_actions: float | None = Field(None, description="100 x handoffs / actions")
    sandboxed: int = Field(
        0, description="shell commands that ran, each in Ratchet's sandbox under its class's profile"
    )
    sandboxed_share: float | None = Field(None, description="sandboxed / actions")
    escalated: int = Field(0, description="actions the gate sent to a human: confirm, draft or block")
    escalated_share: float | None = Field(None, description="escalated / actions")


class MetricsReport(BaseModel):
    """Figures per class and per level over a period, and for all classes together."""

    since: float | None
    until: float | None
    generated_at: float
    reading_rule: str = READING_RULE
    filter: ActionFilter = Field(
        default=EVERYTHING,
        description="the actions counted: recorded by one identity, in one workspace, of one repository (each "
        "null: any); `unknown` names a part no recorded action matches. Every figure is over these actions only",
    )
    total: Figures
    classes: list[ClassMetrics]
    undos: list[UndoRate] = Field(default_factory=list, description="undo rate and time to undo, per class")
    verification: list[Verification] = Field(
        default_factory=list, description="per class and level: the verified share and the verification failure rate"
    )
    autonomy: AutonomyFigures = Field(
        default_factory=AutonomyFigures,
        description="over all classes: the longest successful unattended run, handoffs per 100 actions, and the "
        "shares run in the sandbox and escalated to a human",
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(facts: Iterable[ActionFacts]) -> Figures:
    """The figures of a group of actions. Pure: every definition is in `Figures`' field descriptions.

    - mean time between human interventions (reviews, complaints and resolved escalations, see the
      module docstring): the mean gap between consecutive interventions of the group, i.e.
      (last - first) / (n - 1) over their recorded times; None with fewer than two;
    - shares: each disposition's count / all actions; `rejected_share` counts rejected drafts and
      declined confirmations together (both are a human saying no);
    - escalation rate: blocked / all actions;
    - rework rate: edited / all approvals (unchanged + edited);
    - defect escape rate: autonomous actions with at least one complaint / autonomous actions;
    - median review time per accepted change: the median `review_seconds` of approvals (unchanged or
      edited). For a draft approved at the CLI this is the time from drafting to approval (queue time
      included); for an answer in the client's dialog, from the question to the answer (rules/provenance.py);
    - agent actions per human decision: actions / human interventions;
    - rubber-stamp share: unchanged approvals faster than the reading rule / unchanged approvals
      with a recorded review time;
    - unverified / unanswered: answers that were not evidence (rules/provenance.py): approvals that let the
      action run without counting, and calls no human answered.
    """
    items = list(facts)
    counts = dict.fromkeys(DISPOSITIONS, 0)
    for f in items:
        counts[f.disposition] += 1
    unverified = sum(1 for f in items if f.evidence == UNVERIFIED)
    unanswered = sum(1 for f in items if f.evidence == UNANSWERED)
    return tally(counts, unverified, unanswered, items)


def tally(counts: dict[str, int], unverified: int, unanswered: int, touched: list[ActionFacts]) -> Figures:
    """`figures` from a group's counts per disposition, its unverified and unanswered answers, and the facts of
    (at least) every action of it a human touched: an answer, a complaint, a resolution. An action no human
    touched adds only to the counts, so the database counts those (record/evidence.py's `period_figures`)."""
    items = touched
    moments = sorted(
        [f.decided_at for f in items if f.disposition in HUMAN_DECISIONS and f.decided_at is not None]
        + [t for f in items for t in f.complaint_times]
        + [f.resolved_at for f in items if f.resolved_at is not None]
    )
    interventions = len(moments) + sum(1 for f in items if f.disposition in HUMAN_DECISIONS and f.decided_at is None)
    approvals = counts["approved"] + counts["edited"]
    reviews = [
        f.review_seconds for f in items if f.disposition in ("approved", "edited") and f.review_seconds is not None
    ]
    stamps = [f.rubber_stamp for f in items if f.rubber_stamp is not None]
    escaped = sum(1 for f in items if f.disposition == "autonomous" and f.complaint_times)
    n = sum(counts.values())
    return Figures(
        actions=n,
        counts=counts,
        complaints=sum(len(f.complaint_times) for f in items),
        interventions=interventions,
        autonomous_share=_share(counts["autonomous"], n),
        approved_share=_share(counts["approved"], n),
        edited_share=_share(counts["edited"], n),
        rejected_share=_share(counts["rejected"] + counts["declined"], n),
        escalation_rate=_share(counts["blocked"], n),
        rework_rate=_share(counts["edited"], approvals),
        defect_escape_rate=_share(escaped, counts["autonomous"]),
        mean_seconds_between_interventions=(moments[-1] - moments[0]) / (len(moments) - 1) if moments[1:] else None,
        median_review_seconds=statistics.median(reviews) if reviews else None,
        actions_per_decision=n / interventions if interventions else None,
        rubber_stamp_share=_share(sum(stamps), len(stamps)),
        rubber_stamp_checked=len(stamps),
        unverified=unverified,
        unanswered=unanswered,
    )


def summarize(facts: Iterable[ActionFacts], since: float | None, until: float | None) -> MetricsReport:
    """Group facts by class and class level and compute each group's figures."""
    items = list(facts)
    by_class: dict[str, list[ActionFacts]] = {}
    for f in items:
        by_class.setdefault(f.action_class, []).append(f)
    classes = []
    for name in sorted(by_class):
        group = by_class[name]
        levels = {
            level: figures(f for f in group if f.class_level == level)
            for level in LEVEL_NAMES
            if any(f.class_level == level for f in group)
        }
        classes.append(ClassMetrics(action_class=name, overall=figures(group), levels=levels))
    return MetricsReport(since=since, until=until, generated_at=time.time(), total=figures(items), classes=classes)


def fact_of(r: ActionRecord | TouchedAction, complaints: dict[int, list[ComplaintRecord]]) -> ActionFacts:
    """The figures' view of one recorded action (see `disposition`)."""
    kind = disposition(r.status, r.route, r.reviewer, r.edited)
    return ActionFacts(
        action_id=r.id,
        action_class=r.action_class,
        class_level=r.class_level,
        disposition=kind,
        created_at=r.created_at,
        decided_at=r.settled_at if kind in HUMAN_DECISIONS else None,
        review_seconds=r.review_seconds,
        # Only an approval is judged by the reading rule: the others' previews need not be read.
        diff_lines=diff_lines(r.preview, r.hidden_lines) if kind == "approved" else 0,
        complaint_times=tuple(c.at for c in complaints.get(r.id, ())),
        resolved_at=r.resolved_at if kind == "blocked" else None,
        evidence=r.evidence,
    )


def facts_of(record: PeriodRecord) -> list[ActionFacts]:
    """The figures' view of each recorded action of a period (see `disposition`)."""
    return [fact_of(r, record.complaints) for r in record.actions]


@dataclass
class _Group:
    """A group's counts, as the database gave them."""

    counts: dict[str, int]
    unverified: int = 0
    unanswered: int = 0
    sandboxed: int = 0

    def add(self, kind: str, n: int, evidence: str | None, sandboxed: bool) -> None:
        self.counts[kind] += n
        self.unverified += n if evidence == UNVERIFIED else 0
        self.unanswered += n if evidence == UNANSWERED else 0
        self.sandboxed += n if sandboxed else 0

    def figures(self, touched: list[ActionFacts]) -> Figures:
        return tally(self.counts, self.unverified, self.unanswered, touched)


def _new_group() -> _Group:
    return _Group(dict.fromkeys(DISPOSITIONS, 0))


def autonomy_of(total: _Group, period: PeriodFigures) -> AutonomyFigures:
    """The seed's figures of a period (see `AutonomyFigures`)."""
    n = sum(total.counts.values())
    escalated = n - total.counts["autonomous"]
    run = period.longest_run
    return AutonomyFigures(
        longest_unattended_run=0 if run is None else run.actions,
        longest_unattended_run_session=None if run is None else run.session_id,
        longest_unattended_run_ids=None if run is None else (run.first_id, run.last_id),
        handoffs=period.handoffs,
        handoffs_per_100_actions=None if not n else 100 * period.handoffs / n,
        sandboxed=total.sandboxed,
        sandboxed_share=_share(total.sandboxed, n),
        escalated=escalated,
        escalated_share=_share(escalated, n),
    )


def summarize_period(period: PeriodFigures, since: float | None, until: float | None) -> MetricsReport:
    """The report of a period the database counted: groups' counts from its aggregates, human figures from the
    actions a human touched. The same figures `summarize` computes from every action's facts."""
    total = _new_group()
    by_class: dict[str, _Group] = {}
    by_level: dict[tuple[str, str], _Group] = {}
    for c in period.counts:
        kind = disposition(c.status, ROUTE_EXECUTE if c.executed else "", "" if c.reviewed else None, c.edited)
        for group in (
            total,
            by_class.setdefault(c.action_class, _new_group()),
            by_level.setdefault((c.action_class, c.class_level), _new_group()),
        ):
            group.add(kind, c.count, c.evidence, c.sandboxed)
    touched = [fact_of(r, period.complaints) for r in period.touched]
    classes = []
    for name in sorted(by_class):
        mine = [f for f in touched if f.action_class == name]
        levels = {
            level: by_level[(name, level)].figures([f for f in mine if f.class_level == level])
            for level in LEVEL_NAMES
            if (name, level) in by_level
        }
        classes.append(ClassMetrics(action_class=name, overall=by_class[name].figures(mine), levels=levels))
    return MetricsReport(
        since=since,
        until=until,
        generated_at=time.time(),
        total=total.figures(touched),
        classes=classes,
        autonomy=autonomy_of(total, period),
    )


async def load_facts(
    store: Store,
    since: float | None = None,
    until: float | None = None,
    action_class: str | None = None,
    scope: ActionFilter = EVERYTHING,
) -> list[ActionFacts]:
    """Read the period's gated actions (refused calls and handoffs left out; those `scope` keeps) and their
    complaints, oldest first."""
    return facts_of(await recorded.period(store, since, until, action_class, scope))


async def class_metrics(
    store: Store,
    *,
    since: str | float | None = None,
    until: str | float | None = None,
    action_class: str | None = None,
    now: float | None = None,
    scope: ActionFilter = EVERYTHING,
) -> MetricsReport:
    """Read-only figures per class and per level over a period: what a team reads to judge its classes.

    `store` is the trust database, read only: nothing is written. `since`/`until` take an ISO date or
    date-time (local time unless zoned), a duration back from now (`7d`, `12h`) or a Unix time; the
    period includes `since` and excludes `until`. No `since` is the last `DEFAULT_PERIOD` (30 days),
    so the work grows with the period, not with the history; `all` widens it to the whole history.
    No `until` leaves the period open to now. `action_class` restricts the report to one class;
    `scope` to the actions of one identity, workspace or repository (record/filters.py), and every
    figure, undo and verification count with it. Each figure is defined in `figures` and in the `Figures`
    field descriptions (which an MCP client sees as the output schema); an empty group gives None
    for every rate. InvalidRequest on a bound it cannot read.
    """
    start, end = period_bounds(since, until, now)
    report = summarize_period(await recorded.period_figures(store, start, end, action_class, scope), start, end)
    if scope.active:
        report.filter = await store.call(lambda conn: checked(conn, scope))
    found = await store.call(lambda conn: recorded_undos.figures(conn, start, end, scope))
    report.undos = [
        UndoRate(
            action_class=f.action_class,
            executed=f.executed,
            undone=f.undone,
            undo_rate=_share(f.undone, f.executed),
            median_seconds_to_undo=statistics.median(f.seconds_to_undo) if f.seconds_to_undo else None,
        )
        for f in found
        if action_class is None or f.action_class == action_class
    ]
    shares = await store.call(lambda conn: verified_shares(conn, start, end, action_class, scope))
    report.verification = [
        Verification(
            action_class=v.action_class,
            level=v.level,
            executed=v.executed,
            verified=v.verified,
            verified_share=_share(v.verified, v.executed),
            check_failures=v.failed,
            failure_rate=_share(v.failed, v.verified),
        )
        for v in shares
        if v.verified
    ]
    return report


# -- terminal --------------------------------------------------------------------------------------


def fmt_seconds(value: float | None) -> str:
    """`850ms`, `42s`, `7.5min`, `3.2h`, `1.5d`, or `-`."""
    if value is None:
        return "-"
    for limit, unit, size in ((1, "ms", 0.001), (120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if value < limit:
            return f"{value / size:.0f}{unit}" if unit in ("ms", "s") else f"{value / size:.1f}{unit}"
    return f"{value / 86400:.1f}d"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


HEADER = (
    f"{'class / level':<28}{'acts':>5}{'auto':>6}{'appr':>6}{'edit':>6}{'rej':>6}{'esc':>6}{'rework':>7}"
    f"{'escape':>7}{'MTBI':>8}{'review':>8}{'act/dec':>8}{'stamp':>6}"
)


def figures_line(label: str, f: Figures) -> str:
    """One table row (see HEADER) for a group's figures."""
    per = "-" if f.actions_per_decision is None else f"{f.actions_per_decision:.1f}"
    return (
        f"{label:<28}{f.actions:>5}{_pct(f.autonomous_share):>6}{_pct(f.approved_share):>6}"
        f"{_pct(f.edited_share):>6}{_pct(f.rejected_share):>6}{_pct(f.escalation_rate):>6}"
        f"{_pct(f.rework_rate):>7}{_pct(f.defect_escape_rate):>7}"
        f"{fmt_seconds(f.mean_seconds_between_interventions):>8}{fmt_seconds(f.median_review_seconds):>8}"
        f"{per:>8}{_pct(f.rubber_stamp_share):>6}"
    )


def _bound(value: float | None, open_side: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(value)) if value is not None else open_side


def legend(reading_rule: str) -> str:
    """What each column of the table means, in one sentence."""
    return (
        "auto/appr/edit/rej: share of actions run autonomously, approved unchanged, edited, rejected or "
        "declined; esc: blocked share; rework: edited / approvals; escape: complained-about autonomous "
        "runs / autonomous runs; MTBI: mean time between human interventions; review: median review time "
        f"of approvals; act/dec: actions per human intervention; stamp: rubber stamps ({reading_rule})"
    )


def autonomy_line(a: AutonomyFigures) -> str:
    """The autonomy figures in one line."""
    per = "-" if a.handoffs_per_100_actions is None else f"{a.handoffs_per_100_actions:.1f}"
    return (
        f"longest successful unattended run: {a.longest_unattended_run} actions; handoffs: {a.handoffs} "
        f"({per} per 100 actions); run in the sandbox: {a.sandboxed} ({_pct(a.sandboxed_share)}); "
        f"escalated to a human: {a.escalated} ({_pct(a.escalated_share)})"
    )


def render_metrics(report: MetricsReport) -> str:
    """The report as a terminal table, one row per class and per level, with a legend."""
    lines = [
        *report.filter.header(),
        f"period {_bound(report.since, 'the beginning')} .. {_bound(report.until, 'now')}; "
        f"{report.total.actions} actions, {report.total.interventions} human interventions; "
        f"{report.total.unverified} approvals not counted as evidence (unverified), "
        f"{report.total.unanswered} calls no human answered (unanswered)",
        HEADER,
        figures_line("all classes", report.total),
    ]
    for c in report.classes:
        lines.append(figures_line(c.action_class, c.overall))
        if c.overall.unverified or c.overall.unanswered:
            lines.append(
                f"  not evidence: {c.overall.unverified} unverified approvals, {c.overall.unanswered} unanswered calls"
            )
        lines += [figures_line(f"  at {level}", f) for level, f in c.levels.items()]
    for v in report.verification:
        lines.append(
            f"verified {v.action_class} at {v.level}: {v.verified}/{v.executed} executed actions checked "
            f"({_pct(v.verified_share)}), {v.check_failures} failed a check ({_pct(v.failure_rate)})"
        )
    lines.append(autonomy_line(report.autonomy))
    lines += textwrap.wrap(legend(report.reading_rule), len(HEADER))
    lines += [
        f"undone: {u.action_class} {u.undone}/{u.executed} ({_pct(u.undo_rate)}), "
        f"median {fmt_seconds(u.median_seconds_to_undo)} after the action"
        for u in report.undos
        if u.undone
    ]
    return "\n".join(lines)
