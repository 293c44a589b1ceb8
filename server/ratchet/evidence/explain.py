"""`ratchet explain ACTION_ID`: why one recorded action went the way it did, from the record alone.

It answers, in order: which class and policy rule matched (file and line, as recorded when the call
was decided); the level the class stood at and which transition put it there (the action's
`level_transition`, with that transition's evidence) or that it was still at its policy start; the
triggers that lowered or flagged the call; who or what answered and how long the review took; the
outcome and the sample it gave the class; any complaint since; and any move this action caused.
Nothing is written.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from ratchet.errors import DraftNotFound
from ratchet.evidence.metrics import disposition, fmt_seconds
from ratchet.policy.model import Policy, TrustParams
from ratchet.record import evidence as recorded
from ratchet.record import standing, undos
from ratchet.record.checks import verification_lines
from ratchet.record.evidence import ActionStory, TransitionRecord
from ratchet.record.store import Store
from ratchet.results import TriggerInfo
from ratchet.rules.provenance import describe, reading_seconds
from ratchet.rules.provenance import diff_lines as count_diff_lines

REVIEWERS = {
    "cli": "a human at the CLI (`ratchet approve` / `ratchet reject`)",
    "elicitation": "the client's own dialog (proves a client said yes or no, not which human)",
    "client": "the client's own permission prompt, reported through its hook (not which human)",
    "web": "a review page",
}


class TransitionView(BaseModel):
    """A recorded move of a class, with the evidence it rested on."""

    id: int
    action_class: str
    at: float
    from_level: str
    to_level: str
    kind: str
    actor: str
    reason: str
    evidence: dict[str, Any]
    action_id: int | None


class LevelSource(BaseModel):
    """Why the class stood where it did when the call was decided."""

    kind: str = Field(description="transition | policy-start | unrecorded")
    summary: str
    transition: TransitionView | None = None


class Review(BaseModel):
    """The human's answer, when there was one."""

    decision: str = Field(description="approved | edited | rejected | declined | resolved: OPTION (a blocked call)")
    reviewer: str
    who: str
    seconds: float | None
    note: str | None
    reading_seconds: float = Field(description="the least time the reading rule allows for this draft")
    rubber_stamp: bool | None
    channel: str | None = Field(None, description="cli | elicitation | hook-dialog | web; None before it was recorded")
    evidence: str | None = Field(None, description="counted | unverified | unanswered; None before it was recorded")


class Complaint(BaseModel):
    """A complaint recorded against the action."""

    id: int
    at: float
    reason: str
    actor: str


class Explanation(BaseModel):
    """Everything the record says about one action's decision and what followed."""

    action_id: int
    tool: str
    target: str
    session_id: str
    created_at: float
    intent: str | None
    confidence: float | None
    action_class: str
    rule: str = Field(description="policy file:line of the class that matched, as recorded")
    rule_file: str | None
    rule_line: int | None
    policy_fingerprint: str
    rule_now: str | None = Field(description="set when the current policy declares the class elsewhere, or not")
    class_level: str
    level: str
    route: str
    level_source: LevelSource
    triggers: list[TriggerInfo]
    flagged: bool
    pin: TransitionView | None = Field(description="the pin behind a `pinned` trigger")
    disposition: str
    review: Review | None
    answer: str | None = Field(
        description="whether a human's answer was evidence, in words: counted, unverified (too fast, or not "
        "from the CLI where the class requires it) or no human answered"
    )
    status: str
    sample: str | None
    error: str | None
    finished_at: float | None
    complaints: list[Complaint]
    moves: list[TransitionView] = Field(description="transitions this action's outcome or complaint caused")
    undone: str | None = Field(None, description="how and when a human undid this action, if one did")
    checks: list[str] = Field(default_factory=list, description="the class's verification checks on this action")
    probation: int | None = Field(
        None,
        description="samples the class had left on probation when this action's sample was taken (0: served); "
        "None when its level was not set by a promotion",
    )


def _transition(t: TransitionRecord) -> TransitionView:
    return TransitionView(
        id=t.id,
        action_class=t.action_class,
        at=t.at,
        from_level=t.from_level,
        to_level=t.to_level,
        kind=t.kind,
        actor=t.actor,
        reason=t.reason,
        evidence=t.evidence,
        action_id=t.action_id,
    )


def _split_rule(rule: str) -> tuple[str | None, int | None]:
    file, _, line = rule.rpartition(":")
    return (file, int(line)) if file and line.isdigit() else (None, None)


def _level_source(story: ActionStory) -> LevelSource:
    if story.level_transition is not None:
        view = _transition(story.level_transition)
        cause = f" by action {view.action_id}" if view.action_id is not None else ""
        return LevelSource(
            kind="transition",
            summary=f"transition {view.id}: {view.from_level} -> {view.to_level} ({view.kind}{cause}, "
            f"by {view.actor}): {view.reason}",
            transition=view,
        )
    if story.action.subject is None:
        return LevelSource(kind="unrecorded", summary="not recorded (refused before the gate, or a schema v1 row)")
    return LevelSource(
        kind="policy-start", summary=f"the class's policy start ({story.action.class_level}): no move yet"
    )


async def explain_action(store: Store, action_id: int, policy: Policy | None = None) -> Explanation:
    """Explain one recorded action; DraftNotFound if there is none. `policy`, when given, is the
    current policy: the explanation notes when it declares the class somewhere else now."""
    story = await recorded.action_story(store, action_id)
    if story is None:
        raise DraftNotFound(f"no action {action_id}; `ratchet history` lists actions")
    row = story.action
    triggers = [TriggerInfo(**t) for t in row.triggers]
    pin = None
    if any(t.name == "pinned" for t in triggers) and story.pin is not None:
        pin = _transition(story.pin)
    rule_now = None
    if policy is not None and row.rule:
        cls = policy.get(row.action_class)
        if cls is None:
            rule_now = f"class {row.action_class} is no longer in the current policy"
        elif cls.rule != row.rule:
            rule_now = f"the current policy declares {row.action_class} at {cls.rule}"
    kind = disposition(row.status, row.route, row.reviewer, row.edited)
    review = None
    if row.reviewer is not None:
        lines = count_diff_lines(row.preview, row.hidden_lines)
        seconds = row.review_seconds
        review = Review(
            decision=f"resolved: {row.resolution}" if row.resolution else kind,
            reviewer=row.reviewer,
            who=REVIEWERS.get(row.reviewer, row.reviewer),
            seconds=seconds,
            note=row.review_note or row.resolution_note,
            reading_seconds=reading_seconds(lines),
            rubber_stamp=(seconds < reading_seconds(lines)) if kind == "approved" and seconds is not None else None,
            channel=row.review_channel,
            evidence=row.evidence,
        )
    file, line = _split_rule(row.rule)
    checked = await store.call(lambda conn: verification_lines(conn, action_id))
    probation = None
    promoted = story.level_transition
    if promoted is not None and promoted.kind == "promote":
        cls_now = policy.get(row.action_class) if policy is not None else None
        length = (cls_now.trust if cls_now is not None else TrustParams()).probation
        name = promoted.action_class
        probation = await store.call(lambda c: standing.probation_at(c, name, promoted.id, length, row.id))
    return Explanation(
        action_id=row.id,
        tool=row.tool,
        target=row.target,
        session_id=row.session_id,
        created_at=row.created_at,
        intent=row.intent,
        confidence=row.confidence,
        action_class=row.action_class,
        rule=row.rule,
        rule_file=file,
        rule_line=line,
        policy_fingerprint=row.policy,
        rule_now=rule_now,
        class_level=row.class_level,
        level=row.level,
        route=row.route,
        level_source=_level_source(story),
        triggers=triggers,
        flagged=row.flagged,
        pin=pin,
        disposition=kind,
        review=review,
        answer=describe(row.evidence, row.review_channel, row.review_seconds, row.preview, row.hidden_lines),
        status=row.status,
        sample=row.sample,
        error=row.error,
        finished_at=row.finished_at,
        complaints=[Complaint(id=c.id, at=c.at, reason=c.reason, actor=c.actor) for c in story.complaints],
        moves=[_transition(m) for m in story.moves],
        undone=await _undone(store, action_id),
        checks=checked,
        probation=probation,
    )


async def _undone(store: Store, action_id: int) -> str | None:
    undo = (await store.call(lambda c: undos.of_actions(c, [action_id]))).get(action_id)
    return None if undo is None else undo.line()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _figure(value: object) -> str:
    """A recorded statistic as a person reads it: three decimals, not a float's every digit."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_explanation(e: Explanation) -> str:
    """The explanation as a few lines a reviewer can read."""
    out = [f"action {e.action_id}: {e.tool} {e.target} ({_when(e.created_at)}, session {e.session_id})"]
    if e.route in ("refuse", "escalate"):
        answer = f"; answered {e.review.decision}" if e.review else "; not answered yet"
        handoff = f"a handoff the agent asked for (`ratchet show {e.action_id}` has its packet){answer}"
        out.append(f"refused before the gate: {e.error}" if e.route == "refuse" else handoff)
        return "\n".join(out)
    out.append(f"class:    {e.action_class}, rule {e.rule} (policy {e.policy_fingerprint})")
    if e.rule_now:
        out.append(f"          now: {e.rule_now}")
    out.append(f"level:    the class stood at {e.class_level}; why: {e.level_source.summary}")
    if e.level_source.transition is not None:
        ev = e.level_source.transition.evidence
        if "n" in ev:
            ids = ", ".join(str(i) for i in ev.get("action_ids", []))
            out.append(
                f"          evidence: {ev['successes']}/{ev['n']} ok, lower bound {_figure(ev.get('lower'))}, drift "
                f"{_figure(ev.get('drift'))}; window actions [{ids}]"
            )
        elif ev:
            out.append(f"          evidence: {json.dumps(ev)}")
    if e.probation is not None:
        out.append(
            f"          on probation: {e.probation} left when its sample was taken"
            if e.probation
            else "          probation after that promotion served"
        )
    out.append(f"decision: this call got {e.level} -> {e.route}" + (" (flagged for review)" if e.flagged else ""))
    out += [f"  trigger {t.name}: {t.detail}" for t in e.triggers] or ["  no trigger fired"]
    if e.pin is not None:
        out.append(f"  pinned by {e.pin.actor} at {_when(e.pin.at)}: {e.pin.reason}")
    if e.intent or e.confidence is not None:
        out.append(f"intent:   {e.intent or '(none)'}; confidence {e.confidence if e.confidence is not None else '-'}")
    if e.review is not None:
        r = e.review
        stamp = " (faster than the reading rule: a rubber stamp?)" if r.rubber_stamp else ""
        out.append(f"review:   {r.decision} by {r.who} after {fmt_seconds(r.seconds)}{stamp}")
        if r.note:
            out.append(f"          note: {r.note}")
    elif e.disposition == "autonomous":
        out.append("review:   none: it ran at the class level without a human")
    if e.answer:
        out.append(f"evidence: {e.answer}")
    out.append(
        f"outcome:  {e.status}"
        + (f" at {_when(e.finished_at)}" if e.finished_at else "")
        + (f"; sample {e.sample}" if e.sample else "; no sample for the class")
        + (f"; error: {e.error}" if e.error else "")
    )
    out += [f"complaint {c.id} by {c.actor} at {_when(c.at)}: {c.reason}" for c in e.complaints]
    out += [f"check:    {line}" for line in e.checks]
    out += [f"moved:    {m.action_class} {m.from_level} -> {m.to_level} ({m.kind}): {m.reason}" for m in e.moves]
    if e.undone:
        out.append(f"undo:     {e.undone}")
    return "\n".join(out)
