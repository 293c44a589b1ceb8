"""`ratchet report`: the metrics and each class's trust trajectory, for a terminal, JSON or one HTML page.

A trajectory is rebuilt from the record alone: the class's samples (at the time each was recorded),
complaints and transitions, in time order, replayed through the real `ratchet.rules.trust` window so that
each point carries the level the class stood at, its window's success rate and Wilson lower bound
after the event, and a mark for each promotion, demotion, complaint or pin. The HTML page is one
self-contained file: inline CSS and hand-written inline SVG, no script and nothing fetched, so it
opens offline and can be attached to a review.
"""

from __future__ import annotations

import html
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ratchet.evidence.checkpoint import freeze_cap, standing_at, tail_size
from ratchet.evidence.metrics import (
    HEADER,
    MetricsReport,
    autonomy_line,
    class_metrics,
    figures_line,
    fmt_seconds,
    legend,
    render_metrics,
)
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass, Policy
from ratchet.record.evidence import ClassPeriod, TransitionRecord, class_names, class_periods
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.integrity import ALL_CLASSES, FREEZE_KINDS, LEVEL_KINDS
from ratchet.record.store import Store
from ratchet.rules.outcome import counts_as, recorded
from ratchet.rules.settle import (
    EVIDENCE_KINDS,
    Complained,
    Event,
    FreezeCap,
    HumanDemoted,
    Observed,
    Pinned,
    PolicyMoved,
    Standing,
    settle,
)
from ratchet.rules.trust import figures

UP, DOWN = "promote", "down"
_ORDER = {"sample": 0, "complaint": 1, "transition": 2}
MOVES = ("promote", "demote", "complaint-demote", "human-demote", "policy")  # point events that move the level
CAPS = ("pin", "unpin", "freeze", "unfreeze")  # point events that cap the level, or lift the cap
_LABEL = {level: level.label for level in Level}  # a replay names a level per point: looked up, not computed


class TrajectoryPoint(BaseModel):
    """The class after one event: a sample, a complaint, a move, a pin or a freeze."""

    at: float
    event: str  # sample | complaint | MOVES | CAPS | tamper-detected
    level: str
    pinned: str | None
    frozen: str | None = None  # the freeze level in force (every class is capped at it)
    rate: float | None
    lower: float | None
    n: int
    ok: bool | None = None
    action_id: int | None = None
    detail: str = ""
    was: str | None = None  # a move: the level it left
    recorded: bool | None = None  # a move: whether the record shows the same move (None: not a move)


class Trajectory(BaseModel):
    """One class's standing over time, replayed from the record through the settle rule."""

    action_class: str
    description: str
    rule: str
    start: str
    floor: str
    ceiling: str
    promote_at: float
    level_now: str
    level_before: str  # where the class stood before the first point in the period
    promotions: int
    demotions: int
    points: list[TrajectoryPoint]
    path: str = ""  # the class's path as text: `draft -> confirm (@12) -> ...`
    unreplayed: list[
        str
    ] = []  # recorded moves of the period the replay does not make (the rules changed, or the record)
    replayed_from: float | None = None  # the replay began here, from the recorded standing (None: the first event)
    carried: int = 0  # samples already in the window when the period began (rebuilt from the record)


class EvidenceReport(BaseModel):
    """The metrics and every class's trajectory (classes that moved first, then those with evidence)."""

    generated_at: float
    database: str
    policy: str
    policy_fingerprint: str
    filter: ActionFilter = EVERYTHING  # the metrics' actions; trajectories are team-wide (TEAM_WIDE)
    metrics: MetricsReport
    trajectories: list[Trajectory]


def _events(cls: ActionClass, record: ClassPeriod) -> list[tuple[float, int, int, str, Any]]:
    """The class's samples (at the time each was recorded), complaints and transitions in the period, in
    time order."""
    events: list[tuple[float, int, int, str, Any]] = []
    worth: dict[tuple[str | None, str, bool, str | None], bool | None] = {}  # the rule's answer per outcome
    for a in record.actions:
        key = (a.sample, a.status, a.edited, a.evidence)
        if key not in worth:
            worth[key] = counts_as(
                recorded(a.sample, status=a.status, edited=a.edited, answer=a.evidence),
                counts_failures=cls.count_execution_failures,
            )
        ok = worth[key]
        if ok is not None:
            events.append((a.settled_at, _ORDER["sample"], a.id, "sample", ok))
    events += [(c.at, _ORDER["complaint"], c.action_id, "complaint", c) for c in record.complaints]
    events += [
        (t.at, _ORDER["transition"], t.id, "transition", t)
        for t in record.transitions
        if t.action_class == cls.name or (t.action_class == ALL_CLASSES and t.kind in FREEZE_KINDS)
    ]
    events.sort(key=lambda e: e[:3])
    return events


def _replay(cls: ActionClass, record: ClassPeriod, start: Standing, freeze: FreezeCap | None) -> list[TrajectoryPoint]:
    """Every event of the period through the settle rule (rules/settle.py), from the standing and freeze
    the class began it with, one point each, and one more for each move it makes."""
    state = start
    points: list[TrajectoryPoint] = []

    def point(
        at: float, name: str, shown: tuple[int, float | None, float | None], frozen: Level | None, **more: Any
    ) -> TrajectoryPoint:
        n, rate, lower = shown
        return TrajectoryPoint(  # validated in compiled code: faster than an unvalidated construct in Python
            at=at,
            event=name,
            level=_LABEL[state.level],
            pinned=None if state.pinned is None else _LABEL[state.pinned],
            frozen=None if frozen is None else _LABEL[frozen],
            rate=rate,
            lower=lower,
            n=n,
            **more,
        )

    for at, _, ident, kind, data in _events(cls, record):
        frozen = None if freeze is None else freeze.at(at)
        event: Event
        if kind == "sample":
            event, name, detail, ok = Observed(ident, bool(data)), "sample", "success" if data else "failure", data
        elif kind == "complaint":
            event, name, detail, ok = Complained(ident, data.reason), "complaint", data.reason, None
        else:
            t: TransitionRecord = data
            ok, name, detail = None, t.kind, f"{t.from_level} -> {t.to_level}: {t.reason}"
            if t.action_class == ALL_CLASSES:
                freeze = freeze_cap(t)
                frozen = None if freeze is None else freeze.at(at)
                points.append(point(at, t.kind, figures(state.window), frozen, detail=detail))
                continue
            if t.kind in EVIDENCE_KINDS or t.kind in FREEZE_KINDS:
                continue  # evidence moves are replayed below; a freeze is the pseudo-class's
            if t.kind in ("pin", "unpin"):
                event = Pinned(Level.parse(t.to_level) if t.kind == "pin" else None)
            elif t.kind == "human-demote":
                event = HumanDemoted(Level.parse(t.to_level), t.reason)
            elif t.kind == "policy":
                event = PolicyMoved(Level.parse(t.to_level), t.reason)
            else:  # a tamper record: shown, it moves nothing
                points.append(point(at, t.kind, figures(state.window), frozen, detail=detail))
                continue
        out = settle(cls, state, event, frozen)
        if isinstance(event, Observed | Complained):
            if out.move is not None:
                ev = out.move.evidence
                judged = (ev.n, ev.rate, ev.lower)
            else:
                judged = figures(out.standing.window)
            points.append(point(at, name, judged, frozen, ok=ok, action_id=ident, detail=detail))
        state = out.standing
        if out.move is not None:
            m = out.move
            moved = "complaint-demote" if m.kind == "complaint" else m.kind
            text = f"{m.from_level.label} -> {m.to_level.label}: {m.reason}"
            shown = figures(state.window)
            points.append(point(at, moved, shown, frozen, action_id=m.action_id, detail=text, was=m.from_level.label))
        elif isinstance(event, Pinned):
            points.append(point(at, name, figures(state.window), frozen, detail=detail))
    return points


def _check(cls: ActionClass, points: list[TrajectoryPoint], record: ClassPeriod) -> list[str]:
    """Mark each replayed move the record shows; return the recorded moves of the period the replay does
    not make (moves before the period were not replayed, so they are not judged)."""
    left = [t for t in record.transitions if t.action_class == cls.name and t.kind in LEVEL_KINDS]
    for p in points:
        if p.event not in MOVES:
            continue
        kind = "complaint" if p.event == "complaint-demote" else p.event
        found = next(
            (t for t in left if (t.kind, t.from_level, t.to_level, t.action_id) == (kind, p.was, p.level, p.action_id)),
            None,
        )
        p.recorded = found is not None
        if found is not None:
            left.remove(found)
    return [
        f"transition {t.id}: {t.from_level} -> {t.to_level} ({t.kind}"
        + (f" at action {t.action_id}" if t.action_id is not None else "")
        + ")"
        for t in left
    ]


def _trajectory(cls: ActionClass, record: ClassPeriod, level_now: str) -> Trajectory:
    before = record.before
    first = before.first_move or next(
        (t for t in record.transitions if t.action_class == cls.name and t.kind in LEVEL_KINDS), None
    )
    initial = first.from_level if first is not None else level_now
    start, freeze = standing_at(cls, before, initial)
    points = _replay(cls, record, start, freeze)
    unreplayed = _check(cls, points, record)
    steps = [Level.parse(p.level) - Level.parse(p.was) for p in points if p.event in MOVES and p.was is not None]
    t = Trajectory(
        action_class=cls.name,
        description=cls.description,
        rule=cls.rule,
        start=cls.start.label,
        floor=cls.floor.label,
        ceiling=cls.ceiling.label,
        promote_at=cls.trust.promote_at,
        level_now=level_now,
        promotions=before.promotions + sum(d > 0 for d in steps),
        demotions=before.moves - before.promotions + sum(d < 0 for d in steps),
        level_before=start.level.label,
        points=points,
        unreplayed=unreplayed,
        replayed_from=record.since,
        carried=start.window.n,
    )
    t.path = path_text(t)
    return t


def interest(t: Trajectory) -> int:
    """0: the class moved (or was pinned) in the period; 1: it has evidence there; 2: neither (a freeze,
    which caps every class at once, does not single one out)."""
    if any(p.event in MOVES or p.event in ("pin", "unpin") for p in t.points):
        return 0
    return 1 if any(p.event in ("sample", "complaint") for p in t.points) else 2


async def evidence_report(
    store: Store,
    policy: Policy,
    *,
    since: str | float | None = None,
    until: str | float | None = None,
    scope: ActionFilter = EVERYTHING,
) -> EvidenceReport:
    """The metrics over the period (the last `DEFAULT_PERIOD` unless `since` says otherwise; `all` for the
    whole history) and the trajectory of every class (the policy's, `unclassified`, and any class the
    record still names, by its cached level or an action in the period) over it: classes that moved
    first, then those with evidence, then the rest. Each trajectory replays the period alone, from
    where the record shows the class stood when it began (evidence/checkpoint.py). Reads only.

    `scope` (record/filters.py) narrows the metrics to one identity's, workspace's or repository's actions;
    the trajectories stay team-wide, as a class's standing is: every action of the class moved it."""
    metrics = await class_metrics(store, since=since, until=until, scope=scope)
    names = await class_names(store, metrics.since, metrics.until)
    known = [*sorted(policy.classes.values(), key=lambda c: c.name), policy.unclassified]
    gone = [
        replace(policy.unclassified, name=n, description="no longer in the policy (shown with the defaults)")
        for n in sorted((names.acted | set(names.levels)) - {c.name for c in known})
    ]
    classes = [*known, *gone]
    periods = await class_periods(
        store,
        [c.name for c in classes],
        metrics.since,
        metrics.until,
        tail={c.name: tail_size(c) for c in classes},
    )
    trajectories = [
        _trajectory(c, p, names.levels.get(c.name, c.start.label)) for c, p in zip(classes, periods, strict=True)
    ]
    return EvidenceReport(
        generated_at=time.time(),
        database=str(store.path),
        policy=str(policy.directory),
        policy_fingerprint=policy.fingerprint,
        filter=metrics.filter,
        metrics=metrics,
        trajectories=sorted(trajectories, key=interest),  # stable: alphabetical within each group
    )


# -- terminal --------------------------------------------------------------------------------------

UNREPLAYED = "recorded, but not what the current trust rules replay"
TEAM_WIDE = "trajectories are team-wide, not filtered: a class's standing moves with every action of it"
_SPARK = "▁▂▃▄▅▆▇█"


def _step(p: TrajectoryPoint) -> str | None:
    """One step of a class's path: a move (`confirm (@12)`), a pin or a freeze (`[pinned draft]`)."""
    if p.event in MOVES:
        return f"{p.level} (@{p.action_id if p.action_id is not None else p.event})"
    if p.event == "pin":
        return f"[pinned {p.pinned}]"
    if p.event == "unpin":
        return "[unpinned]"
    if p.event == "freeze":
        return f"[frozen at {p.frozen}]" if p.frozen is not None else "[frozen]"
    if p.event == "unfreeze":
        return "[unfrozen]"
    return None


def path_text(t: Trajectory) -> str:
    """The class's path through the period as text: `draft -> confirm (@12) -> [pinned draft] -> ...`
    (@ = the action that caused the move, or who moved it)."""
    steps = [t.level_before] + [s for s in map(_step, t.points) if s is not None]
    return " -> ".join(steps) if len(steps) > 1 else f"{t.level_before}, no move in the period"


def render_report(r: EvidenceReport) -> str:
    """A terminal summary: the metrics table, then one trajectory line and a window-rate sparkline per class."""
    out = [render_metrics(r.metrics), "", "trajectories (@ = the action that caused the move):"]
    if r.filter.active:
        out.insert(2, f"filter: {TEAM_WIDE}")
    for t in r.trajectories:
        rates = [p.rate for p in t.points if p.event == "sample" and p.rate is not None][-60:]
        spark = "".join(_SPARK[min(7, int(rate * 8))] for rate in rates)
        out.append(f"  {t.action_class:<22} now {t.level_now:<10} {t.promotions} up, {t.demotions} down; {t.path}")
        if spark:
            out.append(f"  {'':<22} window rate {spark}")
        if t.unreplayed:
            out.append(f"  {'':<22} {UNREPLAYED}: {'; '.join(t.unreplayed)}")
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------------

W, H, ML, MR, MT, MB = 760, 240, 96, 60, 18, 42
PW, PH = W - ML - MR, H - MT - MB
COLORS = {"level": "#1f5fbf", "rate": "#d97706", "lower": "#d97706", UP: "#15803d", DOWN: "#b91c1c", "pin": "#7c3aed"}


def _y_level(level: str) -> float:
    return MT + PH * (1 - Level.parse(level) / 3)


def _y_rate(rate: float) -> float:
    return MT + PH * (1 - rate)


def _mark(x: float, y: float, kind: str, title: str) -> str:
    """A hoverable mark: a triangle up or down, a cross, or a diamond."""
    tip = f"<title>{html.escape(title)}</title>"
    if kind in (UP, DOWN):
        tip_y, base_y = (y - 9, y + 4) if kind == UP else (y + 9, y - 4)
        points = f"{x:.1f},{tip_y:.1f} {x - 7:.1f},{base_y:.1f} {x + 7:.1f},{base_y:.1f}"
        return f'<polygon points="{points}" fill="{COLORS[kind]}">{tip}</polygon>'
    if kind == "complaint":
        cross = f"M{x - 5:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 5:.1f} M{x - 5:.1f},{y + 5:.1f} L{x + 5:.1f},{y - 5:.1f}"
        return f'<path d="{cross}" stroke="{COLORS[DOWN]}" stroke-width="2.5">{tip}</path>'
    diamond = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
    return f'<polygon points="{diamond}" fill="{COLORS["pin"]}">{tip}</polygon>'


def _lines(points: list[tuple[float, float | None]], color: str, extra: str) -> str:
    """Polylines through the points, broken wherever the value is None (a fresh window)."""
    runs: list[list[str]] = [[]]
    for x, v in points:
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{_y_rate(v):.1f}")
    return "".join(f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" {extra}/>' for r in runs if r)


def _cap(p: TrajectoryPoint) -> tuple[str, str] | None:
    """The cap on the class after a point (the lower of its pin and the freeze), and what set it."""
    caps = [(Level.parse(v), why) for v, why in ((p.pinned, "pinned"), (p.frozen, "frozen at")) if v is not None]
    if not caps:
        return None
    level, why = min(caps, key=lambda c: c[0])
    return level.label, why


def _cap_line(points: list[TrajectoryPoint], xs: list[float]) -> list[str]:
    """The pin or freeze on the level axis: a dashed violet line at the cap while it holds, labelled
    in text where it starts (printable: not a tooltip)."""
    out: list[str] = []
    runs: list[tuple[float, float, str, str]] = []  # x from, x to, level, why
    for i, (x, p) in enumerate(zip(xs, points, strict=True)):
        cap = _cap(p)
        end = xs[i + 1] if i + 1 < len(xs) else ML + PW
        if cap is None:
            continue
        if runs and runs[-1][1] == x and runs[-1][2:] == cap:
            runs[-1] = (runs[-1][0], end, *cap)
        else:
            runs.append((x, end, *cap))
    for x0, x1, level, why in runs:
        y = _y_level(level)
        out.append(
            f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{COLORS["pin"]}" '
            'stroke-width="2" stroke-dasharray="6 3"/>'
        )
        out.append(f'<text x="{x0 + 4:.1f}" y="{y - 5:.1f}" class="cap">{html.escape(f"{why} {level}")}</text>')
    return out


MAX_PLOT_POINTS = 600  # a plot draws at most this many points, however many events its period holds
MAX_LISTED = 200  # event lines listed under a plot (the newest); `report --json` has every point
MAX_FAILED_LISTED = 50  # failed-sample action ids listed under a plot (the newest)


def _rank(p: TrajectoryPoint) -> int:
    """Which point of a bucket a downsampled plot keeps: a move, then a cap, a complaint, a failure."""
    if p.event in MOVES:
        return 0
    if p.event in CAPS:
        return 1
    if p.event != "sample":
        return 2
    return 3 if p.ok is False else 4


def plotted(t: Trajectory) -> list[tuple[int, TrajectoryPoint]]:
    """The points a plot draws, with their index among all of them (their place on the time axis).

    Up to `MAX_PLOT_POINTS` every point; beyond, the points fall into `MAX_PLOT_POINTS / 2` buckets
    of consecutive events and each bucket keeps its most telling point (a move first, then a cap,
    a complaint, a failed sample) and its last one (where the level and the window stand), so the
    page stays bounded and every bucket's moves still show; the list under the plot names them all."""
    n = len(t.points)
    if n <= MAX_PLOT_POINTS:
        return list(enumerate(t.points))
    buckets = MAX_PLOT_POINTS // 2
    out: list[tuple[int, TrajectoryPoint]] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if lo >= hi:
            continue
        best = min(range(lo, hi), key=lambda i: (_rank(t.points[i]), i))
        out += [(i, t.points[i]) for i in sorted({best, hi - 1})]
    return out


def svg_plot(t: Trajectory) -> str:
    """One class's trajectory as an inline SVG: level steps, window rate and lower bound, move marks."""
    label = f"Trust trajectory of {t.action_class}"
    parts = [
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{html.escape(label)}">',
        f'<rect x="{ML}" y="{MT}" width="{PW}" height="{PH}" fill="#fafafa" stroke="#d4d4d4"/>',
    ]
    for level in Level:
        y = _y_level(level.label)
        parts.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + PW}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{ML - 8}" y="{y + 4:.1f}" text-anchor="end" class="lv">{level.label}</text>')
    for rate in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{ML + PW + 6}" y="{_y_rate(rate) + 4:.1f}" class="ax">{rate:.0%}</text>')
    y = _y_rate(t.promote_at)
    parts.append(
        f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + PW}" y2="{y:.1f}" stroke="{COLORS[UP]}" '
        f'stroke-dasharray="2 4"><title>promote_at {t.promote_at:g}</title></line>'
    )
    n = len(t.points)
    if n == 0:
        parts.append(
            f'<text x="{ML + PW / 2}" y="{MT + PH / 2}" text-anchor="middle" class="ax">no evidence in '
            f"this period; the class stands at {html.escape(t.level_now)}</text></svg>"
        )
        return "".join(parts)
    drawn = plotted(t)
    shown = [p for _, p in drawn]
    xs = [ML + PW * (i + 0.5) / n for i, _ in drawn]
    d = f"M{ML},{_y_level(t.level_before):.1f}"
    for x, p in zip(xs, shown, strict=True):
        d += f" H{x:.1f} V{_y_level(p.level):.1f}"
    parts.append(f'<path d="{d} H{ML + PW}" fill="none" stroke="{COLORS["level"]}" stroke-width="3"/>')
    parts += _cap_line(shown, xs)
    parts.append(_lines([(x, p.rate) for x, p in zip(xs, shown, strict=True)], COLORS["rate"], 'stroke-width="1.6"'))
    parts.append(
        _lines(
            [(x, p.lower) for x, p in zip(xs, shown, strict=True)],
            COLORS["lower"],
            'stroke-width="1" stroke-dasharray="3 2"',
        )
    )
    for x, p in zip(xs, shown, strict=True):
        title = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(p.at))} {p.event}"
        title += f" (action {p.action_id})" if p.action_id is not None else ""
        title += f": {p.detail}"
        if p.event == "promote":
            parts.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + PH}" stroke="#bbf7d0"/>')
            parts.append(_mark(x, _y_level(p.level), UP, title))
        elif p.event in ("demote", "complaint-demote", "human-demote", "policy"):
            parts.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + PH}" stroke="#fecaca"/>')
            parts.append(_mark(x, _y_level(p.level), DOWN if "demote" in p.event else "pin", title))
        elif p.event == "complaint":
            parts.append(_mark(x, MT + PH - 8, "complaint", title))
        elif p.event in CAPS:
            cap = _cap(p)
            parts.append(_mark(x, _y_level(cap[0] if cap is not None else p.level), "pin", title))
        elif p.ok is False:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{MT + PH - 3}" r="2.5" fill="{COLORS[DOWN]}"><title>'
                f"{html.escape(title)}</title></circle>"
            )
    when = [time.strftime("%Y-%m-%d %H:%M", time.localtime(p.at)) for p in (t.points[0], t.points[-1])]
    parts.append(f'<text x="{ML}" y="{H - 22}" class="ax">{when[0]}</text>')
    parts.append(f'<text x="{ML + PW}" y="{H - 22}" text-anchor="end" class="ax">{when[1]}</text>')
    parts.append(
        f'<text x="{ML + PW / 2}" y="{H - 6}" text-anchor="middle" class="ax">{n} evidence events, oldest '
        "to newest (samples, complaints, moves)" + (f"; {len(drawn)} drawn" if len(drawn) < n else "") + "</text></svg>"
    )
    return "".join(parts)


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#171717;padding:0 16px}
table{border-collapse:collapse;font:12px ui-monospace,monospace}td,th{padding:2px 8px;text-align:right;
border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}tr.cls td{font-weight:600;
border-top:1px solid #ccc}.meta,.note{color:#525252}.lv,.ax{font:11px system-ui,sans-serif;fill:#404040}
section{margin:18px 0;break-inside:avoid}h3{margin:4px 0}.k{font-weight:700}dt{font-weight:600}
.cap{font:11px system-ui,sans-serif;fill:#7c3aed}.path{font:13px ui-monospace,monospace;margin:4px 0}
ul.events{font:12px ui-monospace,monospace;margin:2px 0;padding-left:18px}.warn{color:#b91c1c}"""


def _cells(line: str) -> list[str]:
    widths = [28, 5, 6, 6, 6, 6, 6, 7, 7, 8, 8, 8, 6]
    cells, pos = [], 0
    for w in widths:
        cells.append(line[pos : pos + w].strip())
        pos += w
    return cells


def event_lines(t: Trajectory) -> list[str]:
    """Every mark of the plot as a line of text (a move, complaint, pin, freeze or tamper record, with
    its time, action and reason), and the failed samples on one line: what the tooltips say, printable."""
    lines = []
    for p in t.points:
        if p.event == "sample":
            continue
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(p.at))} {p.event}"
        line += f" (action {p.action_id})" if p.action_id is not None else ""
        line += f": {p.detail}" if p.detail else ""
        if p.recorded is False:
            line += " [replayed, not in the record]"
        lines.append(line)
    if len(lines) > MAX_LISTED:  # the newest; a move the replay does not reproduce is always listed
        older, lines = lines[:-MAX_LISTED], lines[-MAX_LISTED:]
        flagged = [x for x in older if "[replayed" in x]
        lines = [
            f"{len(older) - len(flagged)} earlier events not listed (report --json has every point)",
            *flagged,
            *lines,
        ]
    failed = [str(p.action_id) for p in t.points if p.event == "sample" and p.ok is False]
    if len(failed) > MAX_FAILED_LISTED:
        lines.append(f"failed samples: {len(failed)}, the newest: actions {', '.join(failed[-MAX_FAILED_LISTED:])}")
    elif failed:
        lines.append(f"failed samples: action{'s' if len(failed) > 1 else ''} {', '.join(failed)}")
    lines += [f"{UNREPLAYED}: {u}" for u in t.unreplayed]
    return lines


def _event_list(t: Trajectory) -> str:
    lines = event_lines(t)
    if not lines:
        return ""
    items = "".join(
        f"<li class='warn'>{html.escape(x)}</li>"
        if x.startswith(UNREPLAYED) or "[replayed" in x
        else f"<li>{html.escape(x)}</li>"
        for x in lines
    )
    return f"<ul class='events'>{items}</ul>"


def render_html(r: EvidenceReport) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG, no script, nothing fetched)."""
    esc = html.escape
    m = r.metrics
    period = " .. ".join(
        time.strftime("%Y-%m-%d %H:%M", time.localtime(v)) if v is not None else side
        for v, side in ((m.since, "the beginning"), (m.until, "now"))
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in _cells(HEADER))
    rows = [("", "all classes", m.total)]
    for c in m.classes:
        rows.append(("cls", c.action_class, c.overall))
        rows += [("", f"  at {lv}", f) for lv, f in c.levels.items()]
    body = "".join(
        f'<tr class="{k}">' + "".join(f"<td>{esc(x)}</td>" for x in _cells(figures_line(name, f))) + "</tr>"
        for k, name, f in rows
    )
    defs = legend(m.reading_rule)
    sections = []
    for t in r.trajectories:
        last = t.points[-1] if t.points else None
        window = f"window {last.n} samples, rate {last.rate:.0%}" if last and last.rate is not None else "window empty"
        sections.append(
            f"<section><h3>{esc(t.action_class)} <span class='meta'>now {esc(t.level_now)}</span></h3>"
            f"<p class='meta'>{esc(t.description + ' · ' if t.description else '')}rule {esc(t.rule)} · start "
            f"{esc(t.start)}, floor {esc(t.floor)}, ceiling {esc(t.ceiling)} · promotions {t.promotions}, "
            f"demotions {t.demotions} · promote_at {t.promote_at:g} · {esc(window)}</p>"
            f"{svg_plot(t)}<p class='path'>path: {esc(t.path)}</p>{_event_list(t)}</section>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ratchet evidence report</title>'
        f"<style>{CSS}</style></head><body><h1>Ratchet evidence report</h1>"
        f"<p class='meta'>generated {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.generated_at))} · period "
        f"{esc(period)} · {m.total.actions} actions, {m.total.interventions} human interventions · database "
        f"{esc(r.database)} · policy {esc(r.policy)} ({esc(r.policy_fingerprint)})</p>"
        + "".join(f"<p class='meta filter'>{esc(line)}</p>" for line in r.filter.header())
        + (f"<p class='meta filter'>filter: {esc(TEAM_WIDE)}</p>" if r.filter.active else "")
        + f"<h2>Figures per class and level</h2><table><tr>{head}</tr>{body}</table><p class='note'>{esc(defs)}. "
        f"Median review time and MTBI: {esc(fmt_seconds(m.total.median_review_seconds))} and "
        f"{esc(fmt_seconds(m.total.mean_seconds_between_interventions))} over all classes.</p>"
        f"<p class='note autonomy'>{esc(autonomy_line(m.autonomy))} (docs/evidence.md defines each).</p>"
        "<h2>Trust trajectories</h2><p class='note'>Each plot: the class level (blue steps, left axis); the "
        "success rate of its window (orange) and the window's 95% Wilson lower bound (dashed orange; promotion "
        "needs it at or above promote_at, the dotted green line), right axis; <span style='color:#15803d'>▲</span> "
        "promotion, <span style='color:#b91c1c'>▼</span> demotion, <span style='color:#b91c1c'>✕</span> complaint, "
        "<span style='color:#b91c1c'>•</span> failed sample, <span style='color:#7c3aed'>◆</span> pin, freeze or "
        "policy change, <span style='color:#7c3aed'>- - -</span> a pin or freeze in force "
        "(the most the class can get). "
        "Under each plot: the class's path as text and every mark with its time, action and reason. Classes "
        "that moved come first, then those with evidence. A move starts a fresh window.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_html(r: EvidenceReport, path: Path, reviewer: str | None = None) -> Path:
    """Write the HTML page to `path` (parents created) and return it; `reviewer`: the delegated reviewer's
    standing as text (engine/reviewer.py `render`), shown in its own section."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(r)
    if reviewer:
        section = f"<h2>Reviewer</h2><pre>{html.escape(reviewer)}</pre>"
        page = page.replace("</body></html>", section + "</body></html>", 1)
    path.write_text(page, encoding="utf-8")
    return path
