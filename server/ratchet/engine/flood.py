"""The draft caps: how many drafts may wait for a human, per session and per workspace.

An agent can queue drafts far faster than a person can read them (1,500 in six seconds). Past
`[defaults.limits] max_drafts_per_session` drafts waiting from one session, or
`max_drafts_per_workspace` from every session of one workspace (its host and path), a call that would
be queued is not: it is recorded as `refused` (route `draft-cap`) and the agent is told to stop and
hand off (`DraftCapReached`, the message below). The check and the draft's insert are one unit of work,
so two calls at once cannot both take the last place.

The person is notified once per flood (record/flood.py says when a flood is new), by the policy's
notify command, at once and never held by its rate limit: what waits, per class, and that
`ratchet queue` / the review page clear it one decision per class.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import TYPE_CHECKING

from ratchet.errors import DraftCapReached
from ratchet.operations import kept_args, notify
from ratchet.record import actions
from ratchet.record import flood as recorded
from ratchet.record.lifecycle import Status
from ratchet.redact import redact

if TYPE_CHECKING:
    from ratchet.engine.core import Setting
    from ratchet.policy.limits import Limits
    from ratchet.record.actions import Intent


def check(conn: sqlite3.Connection, setting: Setting, row: Intent) -> None:
    """Refuse (DraftCapReached) a draft past either cap; inside the unit of work that would queue it."""
    limits = setting.policy.defaults.limits
    host, workspace = row.origin_host or "", row.origin_workspace or ""
    in_session, in_workspace = recorded.waiting(conn, row.session_id, host, workspace)
    if in_session >= limits.max_drafts_per_session:
        raise _refusal("max_drafts_per_session", in_session, limits, setting, row, "of this session")
    if in_workspace >= limits.max_drafts_per_workspace:
        raise _refusal("max_drafts_per_workspace", in_workspace, limits, setting, row, f"of workspace {workspace}")


def _refusal(key: str, count: int, limits: Limits, setting: Setting, row: Intent, whose: str) -> DraftCapReached:
    limit = int(getattr(limits, key))
    return DraftCapReached(
        key,
        count,
        limit,
        f"draft cap reached: {count} drafts {whose} already wait for a human ({key} = {limit}), so "
        f"{row.tool} {row.target} was not queued and nothing was changed. Stop making changes that need "
        "review: call request_handoff to tell the human what you are doing and what is waiting, then wait "
        "for the answer (get_handoff with wait_s). The human clears the queue one decision per class "
        f"(`ratchet queue`, or the review page); the cap is [defaults.limits] {key} in "
        f"{setting.policy.defaults_file}",
    )


async def refused(setting: Setting, row: Intent, cap: DraftCapReached) -> int:
    """Record the call refused at a cap, and notify the person if this flood is new; the refusal's id."""
    scope: recorded.Scope = "session" if cap.key == "max_drafts_per_session" else "workspace"
    host, workspace = row.origin_host or "", row.origin_workspace or ""
    try:
        args = redact(json.dumps(kept_args(row.tool, json.loads(row.args_json))))
    except ValueError:
        args = redact(row.args_json)
    # The preview is dropped: a flood of refusals must not grow the record by a diff each.
    refusal = dataclasses.replace(
        row, status=Status.REFUSED, route=recorded.CAP_ROUTE, error=str(cap), args_json=args, preview=""
    )

    def record(conn: sqlite3.Connection) -> tuple[int, dict[str, int] | None]:
        new = not recorded.noticed(conn, scope, row.session_id, host, workspace)
        action_id = actions.insert_intent(conn, refusal)
        return action_id, recorded.by_class(conn, scope, row.session_id, host, workspace) if new else None

    action_id, classes = await setting.store.run(record)
    if classes is not None:
        defaults = setting.policy.defaults
        notify(defaults.notify, defaults.limits.notifications_per_minute, notice(cap, scope, row, classes), now=True)
    return action_id


def notice(cap: DraftCapReached, scope: str, row: Intent, classes: dict[str, int]) -> dict[str, object]:
    """The one notification of a flood: what waits, per class, and how to clear it."""
    where = "this session" if scope == "session" else f"workspace {row.origin_workspace}"
    per_class = ", ".join(f"{name} {n}" for name, n in classes.items())
    return {
        "id": None,
        "status": "draft-cap",
        "cap": cap.key,
        "limit": cap.limit,
        "waiting": cap.value,
        "session_id": row.session_id,
        "workspace": row.origin_workspace,
        "classes": classes,
        "message": f"{cap.value} drafts from {where} wait for you ({per_class}); the agent was told to stop and "
        "hand off. Clear them one decision per class: `ratchet queue`, then `ratchet approve --class NAME` or "
        "`ratchet reject --class NAME --reason TEXT`, or the review page",
    }
