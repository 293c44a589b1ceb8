"""Plain text for a person at a terminal: aligned tables, packets and actions without Markdown, a
coloured diff where colour is wanted, and the CLI's listings built from them.

The chat gets Markdown (`EscalationPacket.markdown`); a terminal shows it literally, so the CLI renders
the same facts here as plain lines. A field with nothing in it is left out rather than printed empty.
Colour only when stdout is a terminal and `NO_COLOR` is unset (no-color.org).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from ratchet.inert import inert, inert_line
from ratchet.policy.model import Policy
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.standing import Transition
from ratchet.results import DraftView, TrustLevels
from ratchet.rules.escalation import PREVIEW_LINES, EscalationPacket

_RESET = "\033[0m"
_COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}


def colour_wanted(stream: TextIO | None = None) -> bool:
    """Whether output to `stream` (stdout by default) should be coloured."""
    stream = sys.stdout if stream is None else stream
    return not os.environ.get("NO_COLOR") and stream.isatty()


def when(ts: float) -> str:
    """A recorded time, local, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = ()) -> list[str]:
    """Rows under a header line, each column as wide as its widest cell; `numeric` columns align right.
    The last column is not padded, so a long target or summary does not push trailing spaces. Every cell
    is one line: a newline or control character in it is escaped (ratchet/inert.py), so no cell forges a row."""
    body = [[inert_line(str(cell)) for cell in r] for r in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *body, strict=True)]
    lines = []
    for row in [list(headers), *body]:
        cells = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            if i in numeric:
                cells.append(str(cell).rjust(widths[i]))
            else:
                cells.append(str(cell) if last else str(cell).ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def diff(text: str, colour: bool) -> str:
    """A unified diff, its added, removed and hunk lines coloured when `colour`; agent text is made
    inert (ratchet/inert.py) before any colour is added."""
    text = inert(text)
    if not colour:
        return text
    out = []
    for line in text.splitlines():
        code = _COLOURS.get(line[:1]) if not line.startswith(("+++", "---")) else None
        out.append(f"{code}{line}{_RESET}" if code else line)
    return "\n".join(out)


def class_line(action_class: str, rule: str, class_level: str, level: str) -> str:
    """`class source (paths src/**) at draft; this call: blocked`, leaving out whatever is empty (and the
    call's level when it is the class's)."""
    text = f"class {action_class}" if action_class else "class (none)"
    if rule:
        text += f" ({rule})"
    if class_level != "":
        text += f" at {class_level}"
    if level not in ("", class_level):
        text += f"; this call: {level}"
    return text


def _field(label: str, value: object) -> str | None:
    return None if value is None or value == "" else f"{label}: {value}"


def packet(p: EscalationPacket, colour: bool) -> str:
    """An escalation packet as plain lines: what was stopped and why, the change, and every option
    with its number (`ratchet resolve ID --option N` takes the number, or a prefix of the name)."""
    a = p.action
    head = (
        f"Stopped: {a.tool} {inert_line(a.target)} (action {p.action_id})"
        if a
        else f"Handoff from the agent (id {p.action_id})"
    )
    lines: list[str | None] = [head, _field("why", p.summary), _field("task", p.task), _field("intent", p.intent)]
    lines = [None if line is None else inert(line) for line in lines]
    if a is not None:
        lines.append(class_line(a.action_class, a.rule, a.class_level, a.level))
    if p.confidence is not None:
        lines.append(f"agent confidence: {p.confidence:.2f}")
    lines += [f"trigger {flag.name}: {inert_line(flag.detail)}" for flag in p.flags]
    lines += [_field("tried", p.what_tried), _field("unsure about", p.uncertainty)]
    lines = [None if line is None else inert(line) for line in lines]
    if p.draft:
        shown = p.draft.splitlines()
        hidden = len(shown) - PREVIEW_LINES
        lines += ["", diff("\n".join(shown[:PREVIEW_LINES]), colour)]
        if hidden > 0:
            lines.append(f"... {hidden} more lines")
        lines.append("")
    if p.history:
        recent = ", ".join(f"#{h.action_id} {h.tool} {inert_line(h.target)} -> {h.status}" for h in p.history[-5:])
        lines.append(f"this session so far: {recent}")
    lines.append(f"options (answer with `ratchet resolve {p.action_id} --option NAME or NUMBER`):")
    for n, o in enumerate(p.options, 1):
        lines.append(f"  {n}. {o.name}{' (recommended)' if o.recommended else ''}: {o.how}")
    cost = p.cost_of_delay
    waited = max(0, int(time.time() - cost.waiting_since))
    lines.append(f"waiting {waited}s on: {cost.waiting_on}; {cost.queued_behind} drafts queued behind it")
    if p.over_budget:
        lines.append("over this session's escalation budget")
    return "\n".join(line for line in lines if line is not None)


def action(d: DraftView, colour: bool) -> str:
    """One recorded action or draft as plain lines, with its preview (coloured as a diff when it is one)."""
    lines: list[str | None] = [
        f"action {d.action_id}: {d.tool} {inert_line(d.target)} [{d.status}]",
        class_line(d.action_class, d.rule, d.class_level, d.level),
    ]
    lines += [f"trigger {t.name}: {inert_line(t.detail)}" for t in d.triggers]
    lines += [_field("intent", d.intent), _field("created", when(d.created_at)), _field("recorded by", d.recorded_by)]
    lines = [None if line is None else inert_line(line) for line in lines]
    if d.digest:
        lines.append(f"digest: {d.digest} (an approval is of this change: ratchet approve {d.action_id})")
    if d.reviewer:
        seconds = f" after {d.review_seconds:.0f}s" if d.review_seconds else ""
        note = f": {d.review_note}" if d.review_note else ""
        edited = " (approved with the reviewer's edit)" if d.edited else ""
        who = f"{d.reviewed_by} ({d.reviewer})" if d.reviewed_by else d.reviewer
        lines.append(inert_line(f"reviewed by {who}{seconds}{edited}{note}"))
    lines.append(inert(f"error: {d.error}") if d.error else None)
    lines.append(_field("undo", d.undone))
    for check in d.checks:  # the class's verification checks: not actions, their results on this one
        lines.append(f"check {check.summary}")
        lines += [f"  | {inert_line(line)}" for line in check.tail.splitlines()[-20:]]
    if d.preview:
        lines += ["", diff(d.preview.rstrip("\n"), colour)]
    return "\n".join(line for line in lines if line is not None)


# -- the CLI's listings ---------------------------------------------------------------------------


def drafts(views: Sequence[DraftView], *, intent: bool, who: bool = False) -> str:
    """Queued drafts or history: one aligned row each under a header (`who`: who recorded and who reviewed)."""
    headers = ["ID", "STATUS", "CLASS", "TOOL", "CREATED"] + (["BY", "REVIEWED BY"] if who else [])
    headers += ["TARGET"] + (["INTENT"] if intent else [])
    rows = [
        [
            str(d.action_id),
            d.status + (" (undone)" if d.undone else "") + (f" (waits for {d.origin_host})" if d.waiting else ""),
            d.action_class,
            d.tool,
            when(d.created_at),
        ]
        + ([inert_line(d.recorded_by or "-"), inert_line(d.reviewed_by or "-")] if who else [])
        + [
            inert_line(d.target),
        ]
        + ([inert_line(d.intent or "")] if intent else [])
        for d in views
    ]
    return "\n".join(table(headers, rows, numeric=[0]))


def status(
    levels: TrustLevels,
    queued: int,
    *,
    scope: ActionFilter = EVERYTHING,
    waiting: int = 0,
    recent: Sequence[DraftView] = (),
) -> str:
    """`ratchet status`: the policy, any freeze or tampering, then one aligned row per class. Under a filter
    (record/filters.py) the queued drafts and the recent actions are its own; the standings are team-wide."""
    out = [*scope.header()]
    if scope.active:
        out.append("filter: class standings below are team-wide, not filtered (every action of a class moved it)")
    matching = " matching the filter" if scope.active else ""
    out.append(f"policy {levels.policy} ({levels.policy_fingerprint}); {queued} drafts queued{matching}")
    if waiting:
        out[-1] += f" ({waiting} approved, waiting for their origin)"
    out.append(f"command sandbox: {levels.sandbox}")
    if levels.freeze is not None:
        out.append(f"FROZEN: {levels.freeze} (`ratchet unfreeze` lifts it)")
    if levels.tamper_records:
        out.append(
            f"TAMPERING: the stored standings were changed outside Ratchet {levels.tamper_records} time(s); "
            "not honoured (`ratchet transitions` and `ratchet verify` show more):"
        )
        out += [f"  {line}" for line in levels.tampering]
    rows = []
    notes = []
    for c in levels.classes:
        evidence = f"{c.successes}/{c.samples} ok" + (f", lower bound {c.lower_bound:.3f}" if c.lower_bound else "")
        if c.unverified or c.unanswered:
            evidence += f"; not evidence: {c.unverified} unverified, {c.unanswered} unanswered"
        pinned = "" if c.pinned is None else c.pinned
        level = c.level + (f" (on probation: {c.probation} left)" if c.probation else "")
        rows.append([c.action_class, level, pinned, c.would, evidence, c.next_promotion])
        notes += [
            f"{c.action_class} capped at {t.cap} by {t.name}: {t.detail}" for t in c.capped_by if t.name != "pinned"
        ]
    out += ["", *table(["CLASS", "LEVEL", "PINNED", "A CALL WOULD", "EVIDENCE", "NEXT PROMOTION"], rows)]
    if scope.active:
        shown = drafts(recent, intent=False, who=True) if recent else f"none ({scope.described()})"
        notes += ["", "recent actions matching the filter:", shown]
    return "\n".join([*out, *notes])


def lint(directory: Path, policy: Policy, warnings: Sequence[str]) -> str:
    """`ratchet lint`: what held, one line per class, then the warnings."""
    examples = sum(len(c.examples.match) + len(c.examples.not_match) for c in policy.classes.values())
    out = [f"{directory}: ok: {len(policy.classes)} classes, {examples} examples hold"]
    for c in sorted(policy.classes.values(), key=lambda c: c.name):
        box = f"sandbox {c.profile}" + (" +network" if c.network else "")
        out.append(
            f"  {c.name:<22} {c.start.label:>10} (floor {c.floor.label}, ceiling {c.ceiling.label})  {box}  {c.rule}"
        )
    return "\n".join([*out, *warnings])


def moves(done: Sequence[Transition], nothing: str) -> str:
    """Transitions a human caused, one line each (`nothing` when there were none)."""
    return "\n".join(m.line() for m in done) if done else nothing
