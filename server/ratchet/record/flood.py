"""What the draft caps read (engine/flood.py): the drafts waiting per session and per workspace, by class,
and whether a cap notice was already sent for the flood now waiting.

A call refused at a cap is recorded with the route `draft-cap` (status `refused`). A flood is noticed
once: the person is notified at the first refusal after the oldest draft still waiting in the same
scope (the session, or the workspace) was queued, so a notice is sent again only once every draft
that waited at the last one has been answered.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

CAP_ROUTE = "draft-cap"
Scope = Literal["session", "workspace"]


def _where(scope: Scope) -> str:
    return "session_id = ?" if scope == "session" else "origin_host = ? AND origin_workspace = ?"


def _params(scope: Scope, session_id: str, host: str, workspace: str) -> tuple[str, ...]:
    return (session_id,) if scope == "session" else (host, workspace)


def waiting(conn: sqlite3.Connection, session_id: str, host: str, workspace: str) -> tuple[int, int]:
    """How many drafts wait for a human: this session's, and this workspace's (every session's)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE session_id = ?), "
        "count(*) FILTER (WHERE origin_host = ? AND origin_workspace = ?) FROM actions WHERE status = 'draft'",
        (session_id, host, workspace),
    ).fetchone()
    return int(row[0] or 0), int(row[1] or 0)


def by_class(conn: sqlite3.Connection, scope: Scope, session_id: str, host: str, workspace: str) -> dict[str, int]:
    """The drafts waiting in `scope`, counted per class, the largest first."""
    rows = conn.execute(
        f"SELECT class, count(*) AS n FROM actions WHERE status = 'draft' AND {_where(scope)} "
        "GROUP BY class ORDER BY n DESC, class",
        _params(scope, session_id, host, workspace),
    )
    return {str(r[0]): int(r[1]) for r in rows}


def noticed(conn: sqlite3.Connection, scope: Scope, session_id: str, host: str, workspace: str) -> bool:
    """Whether a call was refused at a cap in `scope` since its oldest waiting draft was queued (then the
    person was told already)."""
    where, params = _where(scope), _params(scope, session_id, host, workspace)
    row = conn.execute(
        f"SELECT 1 FROM actions WHERE route = ? AND {where} AND id > "
        f"(SELECT coalesce(min(id), 0) FROM actions WHERE status = 'draft' AND {where}) LIMIT 1",
        (CAP_ROUTE, *params, *params),
    ).fetchone()
    return row is not None
