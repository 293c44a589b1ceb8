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

from ratchet.engine import Engine
from ratchet.evidence.metrics import (
    HEADER,
    MetricsReport,
    class_metrics,
    figures_line,
    fmt_seconds,
    legend,
    render_metrics,
)
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.record.integrity import CAP_KINDS
from ratchet.rules.trust import Sample, Window, add_sample, evidence, flip_sample

UP, DOWN = "promote", "down"
HUMAN_PINS = CAP_KINDS  # recorded caps and tamper records: they do not move the earned level
_ORDER = {"sample": 0, "complaint": 1, "transition": 2}


class TrajectoryPoint(BaseModel):
    """The class after one event: a sample, a complaint or a transition."""

    at: float
    event: str  # sample | complaint | promote | demote | complaint-demote | human-demote | policy | pin | unpin
    level: str
    pinned: str | None
    rate: float | None
    lower: float | None
    n: int
    ok: bool | None = None
    action_id: int | None = None
    detail: str = ""


class Trajectory(BaseModel):
    """One class's standing over time, as the record shows it."""

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


class EvidenceReport(BaseModel):
    """The metrics and every class's trajectory."""

    generated_at: float
    database: str
    policy: str
    policy_fingerprint: str
    metrics: MetricsReport
    trajectories: list[Trajectory]


async def _trajectory(engine: Engine, cls: ActionClass, since: float | None, until: float | None) -> Trajectory:
    store = engine.store
    samples = await store.all(
        "SELECT id, sample, edited, finished_at, created_at FROM actions WHERE class = ? AND sample IS NOT NULL",
        (cls.name,),
    )
    complaints = await store.all(
        "SELECT c.action_id, c.at, c.reason FROM complaints c JOIN actions a ON a.id = c.action_id WHERE a.class = ?",
        (cls.name,),
    )
    moves = await store.all("SELECT * FROM transitions WHERE class = ? ORDER BY id", (cls.name,))
    events: list[tuple[float, int, int, str, Any]] = []
    for r in samples:
        ok = r["sample"] == "success" or (r["sample"] == "complained" and not r["edited"])
        events.append((r["finished_at"] or r["created_at"], _ORDER["sample"], r["id"], "sample", ok))
    events += [(c["at"], _ORDER["complaint"], c["action_id"], "complaint", c["reason"]) for c in complaints]
    events += [(m["at"], _ORDER["transition"], m["id"], "transition", m) for m in moves]
    events.sort(key=lambda e: e[:3])
    row = await store.class_row(cls.name)
    first = next((m for m in moves if m["kind"] not in HUMAN_PINS), None)
    level = initial = first["from_level"] if first else (row.level if row else cls.start.label)
    pinned: str | None = None
    window = Window()
    points: list[TrajectoryPoint] = []
    for at, _, ident, kind, data in events:
        ok_value: bool | None = None
        action_id: int | None = ident
        if kind == "sample":
            ok_value = bool(data)
            window = add_sample(window, Sample(ident, ok_value), cls.trust)
            name, detail = "sample", "success" if ok_value else "failure"
        elif kind == "complaint":
            # A complaint turns the action's sample into a failure, or adds one (standing.complain).
            window = flip_sample(window, ident) or add_sample(window, Sample(ident, False), cls.trust)
            name, detail = "complaint", str(data)
        else:
            name = "complaint-demote" if data["kind"] == "complaint" else data["kind"]
            detail, action_id = f"{data['from_level']} -> {data['to_level']}: {data['reason']}", data["action_id"]
            if data["kind"] in HUMAN_PINS:
                if data["kind"] in ("pin", "unpin"):
                    pinned = data["to_level"] if data["kind"] == "pin" else None
            else:
                level, window = data["to_level"], Window()
        ev = evidence(window, cls.trust)
        points.append(
            TrajectoryPoint(
                at=at,
                event=name,
                level=level,
                pinned=pinned,
                rate=ev.rate,
                lower=ev.lower,
                n=ev.n,
                ok=ok_value,
                action_id=action_id,
                detail=detail,
            )
        )
    inside = [p for p in points if (since is None or p.at >= since) and (until is None or p.at < until)]
    earlier = [p for p in points if since is not None and p.at < since]
    steps = [Level.parse(m["to_level"]) - Level.parse(m["from_level"]) for m in moves if m["kind"] not in HUMAN_PINS]
    return Trajectory(
        action_class=cls.name,
        description=cls.description,
        rule=cls.rule,
        start=cls.start.label,
        floor=cls.floor.label,
        ceiling=cls.ceiling.label,
        promote_at=cls.trust.promote_at,
        level_now=row.level if row else cls.start.label,
        promotions=sum(d > 0 for d in steps),
        demotions=sum(d < 0 for d in steps),
        level_before=earlier[-1].level if earlier else initial,
        points=inside,
    )


async def evidence_report(
    engine: Engine, *, since: str | float | None = None, until: str | float | None = None
) -> EvidenceReport:
    """The metrics over the period and the trajectory of every class (the policy's, `unclassified`, and
    any class the history still names), with the points that fall in the period. Reads only."""
    metrics = await class_metrics(engine, since=since, until=until)
    names = {r["class"] for r in await engine.store.all("SELECT DISTINCT class FROM actions WHERE rule != ''")}
    names |= set(await engine.store.class_rows())
    known = [*sorted(engine.policy.classes.values(), key=lambda c: c.name), engine.policy.unclassified]
    gone = [
        replace(engine.policy.unclassified, name=n, description="no longer in the policy (shown with the defaults)")
        for n in sorted(names - {c.name for c in known})
    ]
    return EvidenceReport(
        generated_at=time.time(),
        database=str(engine.store.path),
        policy=str(engine.policy.directory),
        policy_fingerprint=engine.policy.fingerprint,
        metrics=metrics,
        trajectories=[await _trajectory(engine, c, metrics.since, metrics.until) for c in (*known, *gone)],
    )


# -- terminal --------------------------------------------------------------------------------------

_SPARK = "▁▂▃▄▅▆▇█"


def _path(t: Trajectory) -> str:
    steps = [t.level_before] + [
        f"{p.level} (@{p.action_id if p.action_id is not None else p.event})"
        for p in t.points
        if p.event not in ("sample", "complaint", "pin", "unpin")
    ]
    return " -> ".join(steps) if len(steps) > 1 else f"{t.level_before}, no move in the period"


def render_report(r: EvidenceReport) -> str:
    """A terminal summary: the metrics table, then one trajectory line and a window-rate sparkline per class."""
    out = [render_metrics(r.metrics), "", "trajectories (@ = the action that caused the move):"]
    for t in r.trajectories:
        rates = [p.rate for p in t.points if p.event == "sample" and p.rate is not None][-60:]
        spark = "".join(_SPARK[min(7, int(rate * 8))] for rate in rates)
        out.append(f"  {t.action_class:<22} now {t.level_now:<10} {t.promotions} up, {t.demotions} down; {_path(t)}")
        if spark:
            out.append(f"  {'':<22} window rate {spark}")
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
    xs = [ML + PW * (i + 0.5) / n for i in range(n)]
    d = f"M{ML},{_y_level(t.level_before):.1f}"
    for x, p in zip(xs, t.points, strict=True):
        d += f" H{x:.1f} V{_y_level(p.level):.1f}"
    parts.append(f'<path d="{d} H{ML + PW}" fill="none" stroke="{COLORS["level"]}" stroke-width="3"/>')
    parts.append(_lines([(x, p.rate) for x, p in zip(xs, t.points, strict=True)], COLORS["rate"], 'stroke-width="1.6"'))
    parts.append(
        _lines(
            [(x, p.lower) for x, p in zip(xs, t.points, strict=True)],
            COLORS["lower"],
            'stroke-width="1" stroke-dasharray="3 2"',
        )
    )
    for x, p in zip(xs, t.points, strict=True):
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
        elif p.event in ("pin", "unpin"):
            parts.append(_mark(x, _y_level(p.pinned if p.pinned is not None else p.level), "pin", title))
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
        "to newest (samples, complaints, moves)</text></svg>"
    )
    return "".join(parts)


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#171717;padding:0 16px}
table{border-collapse:collapse;font:12px ui-monospace,monospace}td,th{padding:2px 8px;text-align:right;
border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}tr.cls td{font-weight:600;
border-top:1px solid #ccc}.meta,.note{color:#525252}.lv,.ax{font:11px system-ui,sans-serif;fill:#404040}
section{margin:18px 0}h3{margin:4px 0}.k{font-weight:700}dt{font-weight:600}"""


def _cells(line: str) -> list[str]:
    widths = [28, 5, 6, 6, 6, 6, 6, 7, 7, 8, 8, 8, 6]
    cells, pos = [], 0
    for w in widths:
        cells.append(line[pos : pos + w].strip())
        pos += w
    return cells


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
            f"demotions {t.demotions} · {esc(window)}</p>"
            f"{svg_plot(t)}</section>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ratchet evidence report</title>'
        f"<style>{CSS}</style></head><body><h1>Ratchet evidence report</h1>"
        f"<p class='meta'>generated {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.generated_at))} · period "
        f"{esc(period)} · {m.total.actions} actions, {m.total.interventions} human interventions · database "
        f"{esc(r.database)} · policy {esc(r.policy)} ({esc(r.policy_fingerprint)})</p>"
        f"<h2>Figures per class and level</h2><table><tr>{head}</tr>{body}</table><p class='note'>{esc(defs)}. "
        f"Median review time and MTBI: {esc(fmt_seconds(m.total.median_review_seconds))} and "
        f"{esc(fmt_seconds(m.total.mean_seconds_between_interventions))} over all classes.</p>"
        "<h2>Trust trajectories</h2><p class='note'>Each plot: the class level (blue steps, left axis); the "
        "success rate of its window (orange) and the window's 95% Wilson lower bound (dashed orange; promotion "
        "needs it at or above promote_at, the dotted green line), right axis; <span style='color:#15803d'>▲</span> "
        "promotion, <span style='color:#b91c1c'>▼</span> demotion, <span style='color:#b91c1c'>✕</span> complaint, "
        "<span style='color:#b91c1c'>•</span> failed sample, <span style='color:#7c3aed'>◆</span> pin or policy "
        "change. Hover a mark for its time, action and reason. A move starts a fresh window.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_html(r: EvidenceReport, path: Path) -> Path:
    """Write the HTML page to `path` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(r), encoding="utf-8")
    return path
