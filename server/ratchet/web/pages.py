"""The server-rendered pages: the inbox's shell, the classes, one class, explain, recent actions.

Every value that reaches markup here passes through `html.escape` (`_e`), agent-written or not; the
only markup not built here is the trust plot, `evidence.report.svg_plot`, which escapes its own
text. No inline script or style: the Content-Security-Policy forbids both, and the page's behaviour
is static/app.js, driven by `data-*` attributes.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from ratchet.inert import inert
from ratchet.policy.levels import LEVEL_NAMES
from ratchet.results import ClassStatus, DraftView, TrustLevels


def _e(value: object) -> str:
    # Control characters and bidirectional overrides are shown, not obeyed, here too (ratchet/inert.py).
    return html.escape(inert("" if value is None else str(value)), quote=True)


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


NAV = (("inbox", "/", "Inbox"), ("classes", "/classes", "Classes"), ("recent", "/recent", "Recent"))


def layout(title: str, csrf: str, body: str, *, view: str = "", page: str = "") -> str:
    """One page: the navigation, the CSRF token and view id for app.js, the body."""
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if page == key else ""}>{label}</a>' for key, href, label in NAV
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="ratchet-csrf" content="{_e(csrf)}"><meta name="ratchet-view" content="{_e(view)}">'
        f'<meta name="ratchet-page" content="{_e(page)}">'
        f'<title>{_e(title)}</title><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head>'
        f'<body><header><strong class="brand">Ratchet</strong><nav>{nav}</nav>'
        '<button type="button" class="help-btn" data-help aria-label="keyboard help">?</button></header>'
        f'<div id="flash" role="status" aria-live="polite"></div><main>{body}</main>'
        '<dialog id="help"><h2>Keys</h2><dl><dt>j / k</dt><dd>next / previous item</dd><dt>a</dt><dd>approve '
        "the selected draft</dd><dt>r</dt><dd>reject it (asks for a reason)</dd><dt>x</dt><dd>select it for a "
        "bulk answer</dd><dt>o</dt><dd>open or fold its diff</dd><dt>?</dt><dd>this help</dd><dt>Esc</dt>"
        '<dd>close</dd></dl><form method="dialog"><button>Close</button></form></dialog></body></html>'
    )


def shell(csrf: str, view: str, focus: object | None) -> str:
    """The inbox: filled and kept live by app.js from /api/inbox and /api/events."""
    body = (
        '<section class="toolbar" aria-label="bulk answers"><span id="count">loading…</span>'
        '<span class="bulk"><button type="button" data-bulk="approve">Approve selected</button>'
        '<button type="button" data-bulk="reject">Reject selected</button></span></section>'
        '<section id="groups" aria-label="drafts by class" hidden></section>'
        f'<ol id="inbox" data-focus="{_e(focus or "")}"></ol>'
        '<p id="empty" hidden>Nothing is waiting for you.</p>'
    )
    return layout("Ratchet inbox", csrf, body, view=view, page="inbox")


def _levels_select(name: str, levels: list[str] | tuple[str, ...], empty: str | None = None) -> str:
    opts = (f'<option value="">{_e(empty)}</option>' if empty else "") + "".join(
        f'<option value="{_e(lv)}">{_e(lv)}</option>' for lv in levels
    )
    return f'<select name="{name}">{opts}</select>'


def _form(action: str, label: str, fields: str = "", *, danger: bool = False) -> str:
    """A form app.js sends as JSON (with the CSRF header) to `action`; a reason is always required."""
    return (
        f'<form class="act" data-post="{_e(action)}">{fields}'
        '<input name="reason" required placeholder="reason (required)" aria-label="reason">'
        f'<button type="submit"{" class=danger" if danger else ""}>{_e(label)}</button></form>'
    )


def classes(csrf: str, levels: TrustLevels) -> str:
    """Every class: level, pin, window, what would move it next; the freeze for all of them."""
    rows = []
    for c in levels.classes:
        pin = f" pinned ≤ {c.pinned}" if c.pinned is not None else ""
        pin += f" (on probation: {c.probation} left)" if c.probation else ""
        window = f"{c.successes}/{c.samples} ok" + (f", lower bound {c.lower_bound:.3f}" if c.lower_bound else "")
        capped = "; ".join(f"{t.name}: {t.detail}" for t in c.capped_by if t.name != "pinned")
        rows.append(
            f'<tr><td><a href="/classes/{_e(c.action_class)}">{_e(c.action_class)}</a></td>'
            f'<td class="lv-{_e(c.level)}">{_e(c.level)}{_e(pin)}</td><td>{_e(c.would)}</td><td>{_e(window)}</td>'
            f"<td>{_e(c.next_promotion)}{'<br><small>' + _e(capped) + '</small>' if capped else ''}</td></tr>"
        )
    frozen = (
        f'<p class="warn">FROZEN: {_e(levels.freeze)}</p>' + _form("/api/unfreeze", "Unfreeze every class")
        if levels.freeze
        else _form("/api/freeze", "Freeze every class", _levels_select("level", LEVEL_NAMES[:-1]), danger=True)
    )
    tamper = (
        f'<p class="warn">TAMPERING: the stored standings were changed outside Ratchet {levels.tamper_records} '
        "time(s); not honoured.</p>"
        if levels.tamper_records
        else ""
    )
    body = (
        f"<h1>Classes</h1>{tamper}<p class='meta'>policy {_e(levels.policy)} ({_e(levels.policy_fingerprint)}) · "
        f"command sandbox: {_e(levels.sandbox)}</p>"
        '<div class="scroll"><table class="classes"><thead><tr><th>class</th><th>level</th><th>a call now</th>'
        f"<th>window</th><th>next</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f"<h2>Freeze</h2><p class='meta'>Caps every class at once; earned levels are kept.</p>{frozen}"
    )
    return layout("Ratchet classes", csrf, body, page="classes")


def class_detail(csrf: str, c: ClassStatus, plot: str, moves: list[dict[str, Any]], actions: list[DraftView]) -> str:
    """One class: its standing, its trajectory, its transitions and evidence, its actions, its brakes."""
    name = c.action_class
    facts = [
        ("level", c.level + (f" (earned {c.earned_level})" if c.earned_level != c.level else "")),
        ("pinned", "no" if c.pinned is None else c.pinned),
        ("floor / ceiling", f"{c.floor} / {c.ceiling}"),
        ("rule", c.rule),
        ("window", f"{c.samples} of {c.window_size} samples, {c.successes} ok"),
        ("rate / lower bound", f"{_num(c.rate)} / {_num(c.lower_bound)} (promote at {c.promote_at})"),
        ("drift", c.drift),
        ("probation", f"on probation: {c.probation} left" if c.probation else "no"),
        ("next", c.next_promotion),
        ("a call now", c.would),
        ("not evidence", f"{c.unverified} unverified, {c.unanswered} unanswered"),
    ]
    facts += [(f"capped by {t.name}", t.detail) for t in c.capped_by]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    trans = "".join(
        f"<li><time>{_e(_when(m['at']))}</time> {_e(m['from_level'])} → {_e(m['to_level'])} "
        f"<b>{_e(m['kind'])}</b> by {_e(m['actor'])}: {_e(m['reason'])}"
        f"<details><summary>evidence</summary><pre>{_e(_pretty(m['evidence']))}</pre></details></li>"
        for m in moves
    )
    acts = "".join(
        f'<li><a href="/explain/{a.action_id}">#{a.action_id}</a> {_e(_status(a))} {_e(a.tool)} '
        f"<code>{_e(a.target)}</code> <time>{_e(_when(a.created_at))}</time></li>"
        for a in actions
    )
    unpin = _form(f"/api/classes/{name}/unpin", "Unpin") if c.pinned is not None else ""  # only a pinned class
    brakes = (
        _form(f"/api/classes/{name}/pin", "Pin", _levels_select("level", LEVEL_NAMES))
        + unpin
        + _form(f"/api/classes/{name}/demote", "Demote", _levels_select("level", LEVEL_NAMES, "one rung"), danger=True)
    )
    desc = f"<p>{_e(c.description)}</p>" if c.description else ""
    body = (
        f"<h1>Class <code>{_e(name)}</code></h1>{desc}<dl class='facts'>{dl}</dl>"
        f"<h2>Brakes</h2><p class='meta'>Nothing here promotes: only evidence does.</p>{brakes}"
        f'<h2>Trust trajectory</h2><div class="plot">{plot}</div>'
        + (f"<h2>Transitions</h2><ol class='moves'>{trans}</ol>" if trans else "<h2>Transitions</h2><p>none yet</p>")
        + (
            f"<h2>Actions (newest first)</h2><ul class='class-actions'>{acts}</ul>"
            if acts
            else "<h2>Actions (newest first)</h2><p>none yet</p>"
        )
    )
    return layout(f"Ratchet class {name}", csrf, body, page="classes")


def _status(a: DraftView) -> str:
    """An action's status as a person needs it: an undone action is not simply `executed`."""
    return f"{a.status}, then undone" if a.undone else str(a.status)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pretty(value: object) -> str:

    return json.dumps(value, indent=2, default=str)


def explain(csrf: str, view: DraftView, text: str, *, complained: bool = False) -> str:
    """`ratchet explain` for one action, and a complaint button when it ran (once: not after a complaint or
    an undo, which was one); its change coloured as in the inbox."""
    complain = (
        _form(f"/api/actions/{view.action_id}/complain", "This was wrong", danger=True)
        if view.status == "executed" and not complained and not view.undone
        else ""
    )
    body = (
        f"<h1>Action #{view.action_id}</h1><p><a href='/classes/{_e(view.action_class)}'>class "
        f"{_e(view.action_class)}</a></p><pre class='explain'>{_e(text)}</pre>{complain}{_undo(view)}"
        f"<h2>Preview</h2>{_diff(view.preview)}"
    )
    return layout(f"Ratchet action {view.action_id}", csrf, body, page="recent")


def _diff(text: str) -> str:
    """A unified diff as the inbox shows it (added, removed and hunk lines coloured); other text plain."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("--- "):
        return f"<pre class='diff-plain'>{_e(text)}</pre>"

    def kind(line: str) -> str:
        if line.startswith(("+++ ", "--- ")):
            return "file"
        return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")

    spans = "".join(f'<span class="{kind(line)}">{_e(line)}\n</span>' for line in lines)
    return f"<pre class='diff'>{spans}</pre>"


def _complain(action_id: int) -> str:
    return _form(f"/api/actions/{action_id}/complain", "This was wrong", danger=True)


UNDOABLE = ("write_file", "edit_file", "git_commit")


def _undo(view: DraftView) -> str:
    """An undo button (on the action's own page) for a file change or a commit that ran and is not undone yet
    (a commit's revert is queued as a draft)."""
    if view.status != "executed" or view.tool not in UNDOABLE or view.undone:
        return ""
    fields = (
        '<label><input type="checkbox" name="force"> even if changed since</label>'
        '<label><input type="checkbox" name="not_a_complaint"> not a complaint</label>'
    )
    label = "Undo (queue a revert)" if view.tool == "git_commit" else "Undo"
    return _form(f"/api/actions/{view.action_id}/undo", label, fields, danger=True)


def recent(csrf: str, actions: list[DraftView]) -> str:
    """Recent actions, newest first; those that ran can be complained about."""
    rows = "".join(
        f'<li class="recent" data-id="{a.action_id}"><a href="/explain/{a.action_id}">#{a.action_id}</a> '
        f'<span class="st st-{_e(a.status)}">{_e(_status(a))}</span> {_e(a.tool)} <code>{_e(a.target)}</code> '
        f'<a href="/classes/{_e(a.action_class)}">{_e(a.action_class)}</a> <time>{_e(_when(a.created_at))}</time>'
        + (_complain(a.action_id) if a.status == "executed" and not a.undone else "")
        + "</li>"
        for a in actions
    )
    body = f"<h1>Recent actions</h1><ul class='recent-list'>{rows or '<li>nothing yet</li>'}</ul>"
    return layout("Ratchet recent actions", csrf, body, page="recent")


def not_found(message: str) -> str:
    """A 404 page."""
    return layout("Ratchet: not found", "", f"<h1>Not found</h1><p>{_e(message)}</p>")
