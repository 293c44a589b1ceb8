"""The review page's routes: the inbox as JSON and server-sent events, the human's answers, the classes.

Every answer is one call of the same engine operation the CLI makes (`Engine.approve`, `reject` (also
withdrawing an approval that waits for its origin),
`complain`, `undo`, `pin`, `demote`, `freeze`, `unfreeze`, `handoffs.resolve`), with the channel `web` and
the review time measured here: from the moment this server first sent the item to that page (its
`view`) to the click. So the reading-time rule of rules/provenance.py judges a click exactly as it
judges a dialog's answer: an approval faster than a human can read runs but is not evidence, and a
rejection that fast is no answer (the draft stays queued and the page says so).

Agent-written text (paths, intents, diffs, option names) leaves here as JSON and is put on the page
with `textContent` by static/app.js, or, on the server-rendered pages, through `html.escape`
(pages.py): never as markup.
"""

from __future__ import annotations

import contextlib
import html
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ratchet.engine import Engine, handoffs
from ratchet.engine import reviewer as delegated
from ratchet.errors import DraftAlreadyResolved, DraftNotFound, InvalidRequest, RatchetError
from ratchet.evidence.explain import render_explanation
from ratchet.evidence.report import svg_plot
from ratchet.executors import notify
from ratchet.policy.levels import Level
from ratchet.record.lifecycle import Status
from ratchet.record.store import Location, beside
from ratchet.rules.provenance import BULK, change_size, describe
from ratchet.until import parse_until
from ratchet.web import pages
from ratchet.web.security import Session

CHANNEL = "web"
# How often the live stream looks at the inbox, and how long one answer of the inbox is reused.
POLL_S = 0.5
MAX_VIEWS = 256
MAX_BODY = 64 * 1024
MAX_TEXT = 4000
MAX_CLASS = 5000  # drafts one class decision may answer


@dataclass
class WebConfig:
    """What the pages serve: one workspace, policy and trust database, and the clock that times answers."""

    workspace: Path
    policies: Path | None = None
    db: Location | None = None
    clock: Callable[[], float] = time.time
    # The page's address, published beside the trust database while it serves (executors/notify.py).
    publish: str | None = None


class Shown:
    """When each item was first sent to each page view: the start of its review time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._views: OrderedDict[str, dict[int, float]] = OrderedDict()
        # The digest of each draft as last sent to each view (rules/shown.py): what an approval from it is of.
        self._digests: dict[tuple[str, int], str] = {}

    def new_view(self) -> str:
        """An id for one page load (a tab)."""
        view = secrets.token_urlsafe(12)
        self._touch(view)
        return view

    def _touch(self, view: str) -> dict[int, float]:
        items = self._views.pop(view, None)
        if items is None:
            items = {}
        self._views[view] = items
        while len(self._views) > MAX_VIEWS:
            gone, _ = self._views.popitem(last=False)
            for key in [k for k in self._digests if k[0] == gone]:
                del self._digests[key]
        return items

    def show(self, view: str, ids: list[int], digests: dict[int, str] | None = None) -> None:
        """These items reached this view now (the first time counts), drafts with their digests (the last counts)."""
        now = self.clock()
        items = self._touch(view)
        for i in ids:
            items.setdefault(i, now)
        for i, digest in (digests or {}).items():
            self._digests[(view, i)] = digest

    def digest(self, view: str | None, item_id: int) -> str | None:
        """The digest of the draft as this view was last sent it; None when it never was."""
        return None if view is None else self._digests.get((view, item_id))

    def seconds(self, view: str | None, item_id: int) -> float | None:
        """Seconds from showing to now; None when this view was never sent the item (untimed)."""
        if view is None or view not in self._views:
            return None
        at = self._views[view].get(item_id)
        return None if at is None else max(0.0, self.clock() - at)


@dataclass
class Inbox:
    """The inbox's ids, read at most every POLL_S and shared by every open stream."""

    engine: Engine
    ids: list[int] = field(default_factory=list)
    at: float = 0.0
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    # Of those, the drafts approved for another origin: an item that changes kind in place (a draft approved
    # elsewhere for its origin) must be redrawn although the ids did not change.
    approved: list[int] = field(default_factory=list)

    async def current(self) -> tuple[list[int], list[int]]:
        """The ids waiting, and those of them approved and waiting for their origin."""
        async with self.lock:
            if time.monotonic() - self.at >= POLL_S:
                listed = await handoffs.inbox(self.engine)
                self.ids = [i.id for i in listed]
                self.approved = [i.id for i in listed if i.kind == "approved"]
                self.at = time.monotonic()
            return self.ids, self.approved


class State:
    """The app's engine and trackers, opened by the lifespan."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.shown = Shown(config.clock)
        self._engine: Engine | None = None
        self._inbox: Inbox | None = None
        # Set when the server is asked to stop (Ctrl-C): open event streams end, so the page's tabs let go
        # and the server exits at once, with one line (web/serve.py).
        self.closing = False

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the web app's lifespan has not started"
        return self._engine

    @property
    def inbox(self) -> Inbox:
        assert self._inbox is not None
        return self._inbox

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        c = self.config
        self._engine = await Engine.open(c.workspace, policies=c.policies, db=c.db, session=False)
        self._inbox = Inbox(self._engine)
        db = beside(self._engine.location, self._engine.workspace.root)
        try:
            if c.publish is not None:
                notify.publish_address(db, c.publish)
            yield
        finally:
            if c.publish is not None:
                notify.withdraw_address(db, c.publish)
            await self._engine.close()


# -- reading --------------------------------------------------------------------------------------


def _triggers(items: list[Any]) -> list[dict[str, str]]:
    return [{"name": t.name, "detail": t.detail} for t in items]


def _verdict(v: dict[str, Any] | None) -> dict[str, Any] | None:
    """A draft's pre-review as the page shows it (the reviewer's own words are text, never markup)."""
    if v is None:
        return None
    return {"verdict": v["verdict"], "risk": v["risk"], "reason": v["reason"] or v["error"] or ""}


async def inbox_items(engine: Engine) -> list[dict[str, Any]]:
    """Everything waiting, in `handoffs.inbox` order, with what a reviewer needs to decide each."""
    listed = await handoffs.inbox(engine)
    drafts = {d.action_id: d for d in await engine.queue()}
    said = await engine.reviewer_verdicts(list(drafts))  # each draft's pre-review (engine/reviewer.py)
    out: list[dict[str, Any]] = []
    for item in listed:
        entry: dict[str, Any] = {
            "id": item.id,
            "kind": item.kind,
            "blocking": item.blocking,
            "summary": item.summary,
            "action_class": item.action_class,
            "session_id": item.session_id,
            "created_at": item.created_at,
            "age_s": item.age_s,
            "options": [],
            "uncertainty": None,
            "what_tried": None,
            "task": None,
            "waiting_on": None,
            "queued_behind": None,
            "origin_host": None,
            "origin_workspace": None,
            "waiting_for_origin": None,
        }
        draft = drafts.get(item.id)
        if draft is None:
            with contextlib.suppress(DraftNotFound):
                draft = await engine.view(item.id)
        if draft is not None:
            entry.update(
                tool=draft.tool,
                target=draft.target,
                rule=draft.rule,
                class_level=draft.class_level,
                level=draft.level,
                intent=draft.intent,
                confidence=draft.confidence,
                triggers=_triggers(draft.triggers),
                preview=draft.preview,
                size=change_size(draft.preview, draft.hidden_lines),
                hidden_lines=draft.hidden_lines,
                digest=draft.digest,
                reviewer=_verdict(said.get(item.id)),
            )
            if item.kind == "approved":  # decided already; it waits for its origin to run it (engine/origin.py)
                entry.update(
                    origin_host=draft.origin_host,
                    origin_workspace=draft.origin_workspace,
                    waiting_for_origin=draft.waiting,
                )
        if item.kind == "interrupted":
            entry["options"] = [{"name": "checked", "how": "you looked at what it left behind", "recommended": True}]
        elif item.kind in ("stopped", "handoff"):
            packet = (await handoffs.get_handoff(engine, item.id)).packet
            if packet is not None:
                action = packet.action
                entry.update(
                    options=[o.model_dump() for o in packet.options],
                    uncertainty=packet.uncertainty,
                    what_tried=packet.what_tried,
                    task=packet.task,
                    intent=packet.intent or entry.get("intent"),
                    confidence=packet.confidence,
                    triggers=_triggers(packet.flags),
                    preview=packet.draft or entry.get("preview", ""),
                    waiting_on=packet.cost_of_delay.waiting_on,
                    queued_behind=packet.cost_of_delay.queued_behind,
                    summary=packet.summary if item.kind == "stopped" else item.summary,
                )
                if action is not None:
                    entry.update(rule=action.rule, class_level=action.class_level, level=action.level)
        out.append(entry)
    return out


# -- answers ---------------------------------------------------------------------------------------


class BadInput(InvalidRequest):
    """A request body that is not what the page sends."""


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadInput(f"request body of {len(raw)} bytes; expected at most {MAX_BODY}")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise BadInput("the request body is not JSON; expected a JSON object") from None
    if not isinstance(data, dict):
        raise BadInput("the request body is not a JSON object")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadInput(f"{name} is required: say why (it is kept with the record)")
        return None
    if not isinstance(value, str):
        raise BadInput(f"{name} must be text")
    if len(value) > MAX_TEXT:
        raise BadInput(f"{name} is {len(value)} characters; expected at most {MAX_TEXT}")
    return value.strip()


def _error(exc: RatchetError) -> JSONResponse:
    status = 404 if isinstance(exc, DraftNotFound) else 409 if isinstance(exc, DraftAlreadyResolved) else 422
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)


def _state(request: Request) -> State:
    state: State = request.app.state.web
    return state


def _digest_of(data: dict[str, Any]) -> str | None:
    digest = data.get("digest")
    return digest if isinstance(digest, str) and digest else None


def _view_of(data: dict[str, Any]) -> str | None:
    view = data.get("view")
    return view if isinstance(view, str) else None


async def approve_one(
    state: State,
    item_id: int,
    view: str | None,
    note: str | None,
    digest: str | None = None,
    whole: str | None = None,
) -> dict[str, Any]:
    """`Engine.approve` through the web channel, timed from when this view was shown the draft, and of the
    change it was shown (its digest: the one the page sends, else the one this view was last sent). A draft of
    another origin is not run here: it is `approved` and waits for its origin (engine/origin.py). A draft
    whose preview was cut needs `whole`, the digest of the whole diff this page loaded (engine/whole.py)."""
    seconds = state.shown.seconds(view, item_id)
    expect = digest or state.shown.digest(view, item_id)
    d = await state.engine.approve(
        item_id, reviewer=CHANNEL, channel=CHANNEL, seconds=seconds, note=note, expect=expect, whole=whole
    )
    message = f"draft {item_id}: {d.waiting}" if d.status == Status.APPROVED and d.waiting else None
    if message is None and d.status == Status.EXECUTED:
        message = await _not_counted(state, item_id)
    return {"id": item_id, "status": d.status, "error": d.error, "message": message or f"draft {item_id}: {d.status}"}


async def _not_counted(state: State, item_id: int) -> str | None:
    """For an approval that ran but is no evidence (too fast to have been read): that it ran, and why it did
    not count (rules/provenance.py)."""
    row = await state.engine.row(item_id)
    if row is None or row["evidence"] != "unverified":
        return None
    why = describe(row["evidence"], row["review_channel"], row["review_seconds"], row["preview"], row["hidden_lines"])
    return f"draft {item_id}: executed, but not counted as evidence for its class: {why}"


async def reject_one(state: State, item_id: int, view: str | None, reason: str) -> dict[str, Any]:
    """`Engine.reject` through the web channel; a rejection faster than reading leaves the draft queued."""
    seconds = state.shown.seconds(view, item_id)
    d = await state.engine.reject(item_id, reason, reviewer=CHANNEL, channel=CHANNEL, seconds=seconds)
    if d.status in (Status.DRAFT, Status.APPROVED):  # unanswered: it stays as it was
        stays = "queued" if d.status == Status.DRAFT else "approved"
        return {
            "id": item_id,
            "status": d.status.value,
            "message": f"draft {item_id} stays {stays}: rejected faster than the diff can be read "
            "(rules/provenance.py); read it, then reject again",
        }
    return {"id": item_id, "status": d.status, "message": f"draft {item_id}: rejected"}


async def withdraw_one(state: State, item_id: int, view: str | None, reason: str) -> dict[str, Any]:
    """What `ratchet reject` does to a draft approved for another origin that has not run it yet: the same
    `Engine.reject`, through the web channel, for that state only (a draft still queued is rejected, not
    withdrawn). A withdrawal faster than the diff can be read is no answer: it keeps waiting."""
    current = await state.engine.view(item_id)
    if current.status != Status.APPROVED:
        raise DraftAlreadyResolved(
            f"draft {item_id} is {current.status}, not waiting for its origin: there is no approval to withdraw"
            + ("; reject it instead" if current.status == Status.DRAFT else "")
        )
    seconds = state.shown.seconds(view, item_id)
    d = await state.engine.reject(item_id, reason, reviewer=CHANNEL, channel=CHANNEL, seconds=seconds)
    if d.status == Status.APPROVED:
        return {
            "id": item_id,
            "status": Status.APPROVED.value,
            "message": f"draft {item_id} still waits for its origin: withdrawn faster than the diff can be read "
            "(rules/provenance.py); read it, then withdraw again",
        }
    host = current.origin_host or "its origin"
    return {"id": item_id, "status": d.status, "message": f"draft {item_id}: withdrawn; {host} will not run it"}


async def approve(request: Request) -> Response:
    state, data = _state(request), await _body(request)
    try:
        item_id, whole = int(request.path_params["id"]), _text(data, "whole")
        result = await approve_one(state, item_id, _view_of(data), _text(data, "note"), _digest_of(data), whole)
    except RatchetError as exc:
        return _error(exc)
    done = result["status"] in (Status.EXECUTED, Status.APPROVED)
    return JSONResponse(result, status_code=200 if done else 422)


async def _with_reason(
    request: Request, one: Callable[[State, int, str | None, str], Awaitable[dict[str, Any]]]
) -> Response:
    """A draft answered with a required reason (`reject_one`, `withdraw_one`)."""
    state, data = _state(request), await _body(request)
    try:
        reason = _text(data, "reason", required=True)
        assert reason is not None
        result = await one(state, int(request.path_params["id"]), _view_of(data), reason)
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse(result)


async def whole(request: Request) -> Response:
    """A queued draft's whole diff and its digest (`ratchet show ID --full`): what approving it needs when its
    preview was cut."""
    state = _state(request)
    try:
        found = await state.engine.whole_diff(int(request.path_params["id"]))
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse(
        {"id": found.action_id, "diff": found.text, "lines": found.lines, "hidden_lines": found.hidden_lines,
         "digest": found.digest}
    )  # fmt: skip


async def withdraw(request: Request) -> Response:
    return await _with_reason(request, withdraw_one)


async def reject(request: Request) -> Response:
    return await _with_reason(request, reject_one)


async def bulk(request: Request) -> Response:
    """Several drafts approved or rejected together: each its own engine call, each timed on its own."""
    state, data = _state(request), await _body(request)
    try:
        verb = data.get("action")
        if verb not in ("approve", "reject"):
            raise BadInput("action must be approve or reject")
        ids = data.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids) or len(ids) > 500:
            raise BadInput("ids must be a list of 1 to 500 draft ids")
        reason = _text(data, "reason", required=verb == "reject")
    except RatchetError as exc:
        return _error(exc)
    results = []
    for item_id in ids:
        try:
            if verb == "approve":
                results.append(await approve_one(state, item_id, _view_of(data), _text(data, "note")))
            else:
                assert reason is not None
                results.append(await reject_one(state, item_id, _view_of(data), reason))
        except RatchetError as exc:
            results.append({"id": item_id, "status": "error", "message": str(exc)})
    return JSONResponse({"results": results})


async def class_drafts(request: Request) -> Response:
    """A class's drafts answered in one decision (a flood cleared by class): the ids this page shows for it,
    each still a queued draft of that class, approved or rejected through the channel `bulk`: approvals run
    but are not evidence of reading each (rules/provenance.py); rejections count, as any rejection."""
    state, data = _state(request), await _body(request)
    name = request.path_params["name"]
    try:
        verb = data.get("action")
        if verb not in ("approve", "reject"):
            raise BadInput("action must be approve or reject")
        ids = data.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids) or len(ids) > MAX_CLASS:
            raise BadInput(f"ids must be a list of 1 to {MAX_CLASS} draft ids")
        reason = _text(data, "reason", required=verb == "reject")
        state.engine.named(name)
    except RatchetError as exc:
        return _error(exc)
    results = []
    for item_id in ids:
        try:
            current = await state.engine.view(item_id)
            if current.action_class != name or current.status != Status.DRAFT:
                raise DraftAlreadyResolved(f"draft {item_id} is not a queued draft of class {name}; left as it is")
            if verb == "approve":  # bound, as every page approval, to the change this view was sent
                expect = state.shown.digest(_view_of(data), item_id)
                d = await state.engine.approve(
                    item_id, reviewer=CHANNEL, channel=BULK, note=_text(data, "note"), expect=expect
                )
            else:
                assert reason is not None
                d = await state.engine.reject(item_id, reason, reviewer=CHANNEL, channel=BULK)
            results.append({"id": item_id, "status": d.status, "message": f"draft {item_id}: {d.status}"})
        except RatchetError as exc:
            results.append({"id": item_id, "status": "error", "message": str(exc)})
    done = sum(1 for r in results if r["status"] in (Status.EXECUTED, Status.APPROVED, Status.REJECTED))
    word = "approved" if verb == "approve" else "rejected"
    message = f"{done} of {len(ids)} drafts of {name} {word} in one decision"
    if verb == "approve":
        message += "; they ran, but a decision for a whole class is not evidence of reading each"
    return JSONResponse({"results": results, "message": message})


async def resolve(request: Request) -> Response:
    state, data = _state(request), await _body(request)
    item_id = int(request.path_params["id"])
    try:
        option = _text(data, "option")
        note = _text(data, "note")
        seconds = state.shown.seconds(_view_of(data), item_id)
        view = await handoffs.resolve(state.engine, item_id, option, note, channel=CHANNEL, seconds=seconds)
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse({"id": item_id, "status": "resolved", "message": handoffs.answered_line(view)})


async def complain(request: Request) -> Response:
    state, data = _state(request), await _body(request)
    try:
        reason = _text(data, "reason", required=True)
        assert reason is not None
        outcome = await state.engine.complain(int(request.path_params["id"]), reason)
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse({"status": "complained", "message": outcome.line()})


async def undo(request: Request) -> Response:
    """The same `Engine.undo` as `ratchet undo`, through the channel `web` (a complaint unless unticked)."""
    state, data = _state(request), await _body(request)
    try:
        reason = _text(data, "reason", required=True)
        outcome = await state.engine.undo(
            int(request.path_params["id"]),
            reason,
            force=_flag(data, "force"),
            complaint=not _flag(data, "not_a_complaint"),
            reviewer=CHANNEL,
            channel=CHANNEL,
        )
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse(
        {"status": "undone" if outcome.done else "queued", "revert_id": outcome.revert_id, "message": outcome.line()}
    )


def _flag(data: dict[str, Any], name: str) -> bool:
    """A checkbox: absent when unticked, "on" (or true) when ticked."""
    return data.get(name) in (True, "on", "true")


async def class_action(request: Request) -> Response:
    """pin, unpin and demote of one class: each needs a reason, none promotes."""
    state, data = _state(request), await _body(request)
    name, verb = request.path_params["name"], request.path_params["verb"]
    try:
        reason = _text(data, "reason", required=True)
        assert reason is not None
        level = _text(data, "level")
        if verb == "pin":
            if level is None:
                raise BadInput("level is required to pin")
            moved = await state.engine.pin(name, Level.parse(level), reason)
        elif verb == "unpin":
            moved = await state.engine.pin(name, None, reason)
        elif verb == "demote":
            moved = await state.engine.demote(name, reason, None if level is None else Level.parse(level))
        else:
            raise BadInput(f"unknown class action {verb!r}; expected pin, unpin or demote")
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse({"status": "ok", "message": moved.line()})


async def freeze_all(request: Request) -> Response:
    return await _freeze(request, "freeze")


async def unfreeze_all(request: Request) -> Response:
    return await _freeze(request, "unfreeze")


async def _freeze(request: Request, verb: str) -> Response:
    state, data = _state(request), await _body(request)
    try:
        reason = _text(data, "reason", required=True)
        assert reason is not None
        if verb == "freeze":
            level = _text(data, "level", required=True)
            assert level is not None
            until_text = _text(data, "until")
            until = None
            if until_text is not None:
                until = parse_until(until_text)
            moves = await state.engine.freeze(Level.parse(level), reason, until)
        else:
            moves = await state.engine.unfreeze(reason)
    except RatchetError as exc:
        return _error(exc)
    return JSONResponse({"status": "ok", "message": "; ".join(m.line() for m in moves) or "no class moved"})


# -- pages and streams -----------------------------------------------------------------------------


def _session(request: Request) -> Session:
    session: Session = request.scope["state"]["session"]
    return session


async def inbox_page(request: Request) -> Response:
    state = _state(request)
    focus = request.path_params.get("id")
    return HTMLResponse(pages.shell(_session(request).csrf, state.shown.new_view(), focus))


async def inbox_json(request: Request) -> Response:
    state = _state(request)
    items = await inbox_items(state.engine)
    view = request.query_params.get("view")
    if view:
        digests = {i["id"]: i["digest"] for i in items if i.get("digest") and i["kind"] == "draft"}
        state.shown.show(view, [i["id"] for i in items], digests)
    return JSONResponse({"items": items, "now": time.time()})


async def events(request: Request) -> Response:
    """Server-sent events: the inbox's ids whenever they change (and a comment every 15 s to keep it open)."""
    state = _state(request)

    async def stream() -> AsyncIterator[str]:
        last: tuple[list[int], list[int]] | None = None
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not state.closing:
            ids, approved = await state.inbox.current()
            if (ids, approved) != last:
                last = (list(ids), list(approved))
                yield f"event: inbox\ndata: {json.dumps({'ids': last[0], 'approved': last[1]})}\n\n"
                quiet = 0.0
            elif quiet >= 15:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await anyio.sleep(POLL_S)
            quiet += POLL_S

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-store"})


async def classes_page(request: Request) -> Response:
    state = _state(request)
    levels = await state.engine.trust_levels()
    page = pages.classes(_session(request).csrf, levels)
    reviewing = await state.engine.reviewer_standing()  # the reviewer's score per class (engine/reviewer.py)
    if reviewing["configured"]:
        text = html.escape(delegated.render(reviewing))
        section = f"<section class='reviewer'><h2>Reviewer</h2><pre>{text}</pre></section>"
        page = page.replace("</body>", section + "</body>", 1)
    return HTMLResponse(page)


async def class_page(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    levels = await state.engine.trust_levels()
    status = next((c for c in levels.classes if c.action_class == name), None)
    if status is None:
        return HTMLResponse(pages.not_found(f"no class {name!r}"), status_code=404)
    report = await state.engine.report()
    trajectory = next((t for t in report.trajectories if t.action_class == name), None)
    plot = svg_plot(trajectory) if trajectory is not None else ""
    moves = await state.engine.transitions(name)
    actions = await state.engine.history(50, name)
    return HTMLResponse(pages.class_detail(_session(request).csrf, status, plot, moves, actions))


async def explain_page(request: Request) -> Response:
    state = _state(request)
    action_id = int(request.path_params["id"])
    try:
        explained = await state.engine.explain(action_id)
        text = render_explanation(explained)
        view = await state.engine.view(action_id)
    except DraftNotFound as exc:
        return HTMLResponse(pages.not_found(str(exc)), status_code=404)
    complained = bool(explained.complaints)
    return HTMLResponse(pages.explain(_session(request).csrf, view, text, complained=complained))


async def recent_page(request: Request) -> Response:
    state = _state(request)
    actions = await state.engine.history(100)
    return HTMLResponse(pages.recent(_session(request).csrf, actions))


def build_app(config: WebConfig) -> Starlette:
    """The review pages as a Starlette app (wrap it in security.Guard before serving it)."""
    state = State(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state.opened():
            yield

    static = resources.files("ratchet.web") / "static"
    app = Starlette(
        routes=[
            Route("/", inbox_page),
            Route("/item/{id:int}", inbox_page),
            Route("/classes", classes_page),
            Route("/classes/{name}", class_page),
            Route("/explain/{id:int}", explain_page),
            Route("/recent", recent_page),
            Route("/api/inbox", inbox_json),
            Route("/api/events", events),
            Route("/api/drafts/{id:int}/approve", approve, methods=["POST"]),
            Route("/api/drafts/{id:int}/reject", reject, methods=["POST"]),
            Route("/api/drafts/{id:int}/whole", whole),
            Route("/api/drafts/{id:int}/withdraw", withdraw, methods=["POST"]),
            Route("/api/drafts/bulk", bulk, methods=["POST"]),
            Route("/api/classes/{name}/drafts", class_drafts, methods=["POST"]),
            Route("/api/items/{id:int}/resolve", resolve, methods=["POST"]),
            Route("/api/actions/{id:int}/complain", complain, methods=["POST"]),
            Route("/api/actions/{id:int}/undo", undo, methods=["POST"]),
            Route("/api/classes/{name}/{verb}", class_action, methods=["POST"]),
            Route("/api/freeze", freeze_all, methods=["POST"]),
            Route("/api/unfreeze", unfreeze_all, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=str(static))),
        ],
        lifespan=lifespan,
    )
    app.state.web = state
    return app
