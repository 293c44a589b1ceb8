"""A call's intent, as the record keeps it: the row written before anything happens to the call.

What is kept of a call is redacted (its target, intent and subject always, its arguments unless it is
a draft waiting to be run exactly as drafted). A call refused before it could be classified (a bad
path, bad arguments) is kept too, with what little is known of it. Once a draft can no longer run,
the record keeps only a digest of its content (`draft_args_kept`).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ratchet.engine.core import Evaluation, Setting
from ratchet.engine.where import Origin
from ratchet.errors import RatchetError
from ratchet.operations import Prepared, kept_args
from ratchet.policy.model import UNCLASSIFIED
from ratchet.record.actions import Intent
from ratchet.record.lifecycle import Status
from ratchet.redact import redact, redact_all
from ratchet.rules.gate import Route


class Kept(NamedTuple):
    """A call's texts as the record keeps them: redacted target, subject, arguments and intent."""

    target: str
    subject: str
    args: str
    intent: str | None


async def intent_row(
    setting: Setting,
    origin: Origin,
    ev: Evaluation,
    intent: str | None,
    confidence: float | None,
    status: Status,
    route: Route,
) -> Intent:
    """The row a call's intent is recorded as, made at `origin` (engine/where.py)."""
    kept = await kept_texts(ev.prepared, intent, drafted=status is Status.DRAFT)
    return row_of(setting, origin, ev, kept, confidence, status, route)


async def kept_texts(p: Prepared, intent: str | None, *, drafted: bool) -> Kept:
    """What the record keeps of a call's texts, redacted (off the loop when long): its target, subject,
    arguments (a draft's in full, to run as drafted) and intent. They do not depend on the decision, so
    they can be made before it (engine/decide.py decides and records the intent in one unit of work)."""
    target, subject, args_kept, intent_kept = await redact_all(
        p.target, json.dumps(p.subject.as_dict()), "" if drafted else json.dumps(p.record or p.args), intent or ""
    )
    if drafted:
        args_kept = json.dumps(p.args)
    return Kept(target, subject, args_kept, intent_kept if intent is not None else None)


def row_of(
    setting: Setting,
    origin: Origin,
    ev: Evaluation,
    kept: Kept,
    confidence: float | None,
    status: Status,
    route: Route,
) -> Intent:
    """The intent's row from the decision and the texts kept (`kept_texts`)."""
    p, d = ev.prepared, ev.decision
    target, subject, args_kept, intent_kept = kept
    return Intent(
        session_id=setting.session_id,
        tool=p.tool,
        target=target,
        action_class=d.class_name,
        rule=d.rule,
        policy=setting.policy.fingerprint,
        args_json=args_kept,
        preview=p.shown,
        fingerprint=p.fingerprint,
        intent=intent_kept,
        confidence=confidence,
        class_level=d.class_level.label,
        level=d.level.label,
        route=route.value,
        triggers_json=json.dumps([t.as_dict() for t in d.triggers]),
        flagged=d.flagged,
        status=status,
        subject_json=subject,
        level_transition=ev.level_transition,
        task_id=ev.task_id,
        evidence_class=ev.side_effect_cls.name if ev.side_effect_cls else None,
        hidden_lines=p.hidden_lines,
        recorded_by=setting.identity,
        origin_host=origin.host,
        origin_workspace=origin.workspace,
        origin_repo=origin.repo,
    )


def refused_row(
    setting: Setting,
    tool: str,
    args: dict[str, Any],
    error: RatchetError,
    intent: str | None,
    confidence: float | None,
) -> Intent:
    """The row of a call refused before it could be classified: its tool, path and why."""
    return Intent(
        session_id=setting.session_id,
        tool=tool,
        target=redact(str(args.get("path", ""))[:4096])[:500],
        action_class=UNCLASSIFIED,
        rule="",
        policy=setting.policy.fingerprint,
        args_json=redact(json.dumps({"path": str(args.get("path"))[:500] if args.get("path") else None})),
        preview="",
        fingerprint=None,
        intent=intent and redact(intent),
        confidence=confidence,
        class_level="",
        level="",
        route="refuse",
        triggers_json="[]",
        flagged=False,
        status=Status.REFUSED,
        subject_json=None,
        error=redact(str(error)),
        recorded_by=setting.identity,
    )


def draft_args_kept(row: dict[str, Any]) -> str | None:
    """What the record keeps of a draft's arguments once it cannot run: redacted, and for a write or
    an edit its path, hash and size instead of the content (operations.kept_args). None for a row
    that is not a draft: its arguments were reduced when it was inserted."""
    if row["route"] != Route.DRAFT.value:
        return None
    raw = row["args_json"]
    try:
        args = json.loads(raw)
    except ValueError:
        args = None
    return redact(json.dumps(kept_args(row["tool"], args))) if isinstance(args, dict) else redact(raw)


__all__ = ["Kept", "draft_args_kept", "intent_row", "kept_texts", "refused_row", "row_of"]
