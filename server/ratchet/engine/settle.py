"""Settling a call's outcome: its status, result and review recorded, and what it counts as for its class.

What an outcome counts as (a success, a failure, no sample) is rules/outcome.py's one rule; what a
sample then does to its class (padding, the window, a move) is record/standing.py's, by rules/settle.py.
Each settling is one unit of work: one transaction, one round trip.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ratchet.engine.core import HumanAnswer, Setting
from ratchet.operations import Prepared, notify
from ratchet.operations.checks import CheckResult
from ratchet.policy.model import ActionClass
from ratchet.record import actions, locks, standing
from ratchet.record import checks as recorded_checks
from ratchet.record.lifecycle import Status
from ratchet.redact import redact
from ratchet.rules import contracts
from ratchet.rules.outcome import Ended
from ratchet.rules.settle import REPEAT

# A unit of work that settles a call and returns any class move it caused.
Settle = Callable[[sqlite3.Connection], "standing.Transition | None"]


@dataclass(frozen=True)
class Ran:
    """What running a call gave: its status, result and error, and how it ended (rules/outcome.py)."""

    status: Status
    result: dict[str, Any] | None
    error: str | None
    ended: Ended


def sample(
    conn: sqlite3.Connection,
    setting: Setting,
    cls: ActionClass,
    action_id: int,
    ok: bool,
    session_id: str,
    *,
    mark: bool,
) -> standing.Transition | None:
    """One piece of evidence: the sample label, the session's failure streak, the window and any move.
    A success that is padding (its work already counted in the window, rules/settle.py) is none of
    these: it is labelled `repeat`, joins no window and leaves the failure streak as it was.

    The class's lock is taken here, as late as the unit can (record/locks.py `settling`): the standing is
    read once, after it, so this sample's window and move follow every earlier sample of the class."""
    locks.settling(conn, cls.name)
    known = standing.seen(conn, cls, action_id if ok else None)
    if standing.padding(known, ok):
        actions.label_sample(conn, action_id, REPEAT)
        return None
    actions.sample(conn, action_id, cls.name, ok, setting.streak_session(session_id), mark=mark)
    left = 0 if ok else known.probation
    moved = standing.apply_sample(conn, cls, action_id, ok, known)
    if left:  # a failure on probation after a promotion: the human hears of it at once
        defaults = setting.policy.defaults
        notify(
            defaults.notify,
            defaults.limits.notifications_per_minute,
            standing.probation_notice(cls, action_id, left, moved),
        )
    return moved


def settler(
    setting: Setting,
    evidence: ActionClass,
    cls: ActionClass,
    prepared: Prepared,
    action_id: int,
    ran: Ran,
    ok: bool | None,
    answer: HumanAnswer | None,
    session_id: str,
    *,
    kept: str | None = None,
) -> Settle:
    """The unit of work that settles a call that ran: outcome, review, sample `ok` (rules/outcome.py),
    streak, window, any transition, and what the class has now seen; one transaction, one round trip."""
    status, result, error = ran.status, ran.result, ran.error
    result_json = redact(json.dumps(result)) if result is not None else None
    error_kept = error and redact(error)
    review = answer.review(setting.identity) if answer is not None else None
    keys = contracts.novelty_keys(prepared.subject) if cls.novelty and status is Status.EXECUTED else None

    def settle(conn: sqlite3.Connection) -> standing.Transition | None:
        # First what is this action's own (its row, what its class has seen: no other writer's), then, under
        # the class's lock taken only now, the review's place in the chain and the sample (record/locks.py).
        actions.finish(
            conn, action_id, status, result_json, error_kept, review=review, sample=ok, kept_args=kept, chained=False
        )
        if keys:
            actions.remember(conn, cls.name, keys)
        if ok is not None:
            locks.settling(conn, evidence.name)
        if review is not None:
            actions.chain_review(conn, action_id, review)
        return None if ok is None else sample(conn, setting, evidence, action_id, ok, session_id, mark=False)

    return settle


def with_checks(settle: Settle, action_id: int, checked: list[CheckResult]) -> Settle:
    """The settling unit of work, also keeping the results of the checks run on the action."""

    def settled(conn: sqlite3.Connection) -> standing.Transition | None:
        if checked:
            recorded_checks.add(conn, action_id, "each", checked)
        return settle(conn)

    return settled


__all__ = ["Ran", "Settle", "sample", "settler", "with_checks"]
