"""The binding of a client's outcome to its call: a call a client runs itself (its built-in tool, seen
through its hook) waits in the record under the client's own id for it (Claude Code's `tool_use_id`) and
tool name, and an outcome settles only the waiting call of the same session, with the same id and, when
the outcome names one, the same tool.

The ids are the client's, not Ratchet's: another session may reuse one, and a session may have several
calls waiting at once. So every lookup is by session and id together, and only calls still waiting for
their client (lifecycle.WITH_CLIENT) are found; a settled call is never found again, so an outcome settles
once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ratchet.record import lifecycle

_WITH_CLIENT_SQL = ", ".join(f"'{s.value}'" for s in lifecycle.WITH_CLIENT)


def bind_external(conn: sqlite3.Connection, action_id: int, external_id: str, external_tool: str | None) -> None:
    """The client's own id (and tool name) for a call it runs itself, to match its outcome."""
    conn.execute(
        "UPDATE actions SET external_id = ?, external_tool = ? WHERE id = ?", (external_id, external_tool, action_id)
    )


def waiting_external(conn: sqlite3.Connection, session_id: str, external_tool: str | None) -> set[str]:
    """The external ids of the session's calls still waiting for their client's report."""
    rows = conn.execute(
        f"SELECT DISTINCT external_id FROM actions WHERE session_id = ? AND status IN ({_WITH_CLIENT_SQL}) "
        "AND external_id IS NOT NULL AND (? IS NULL OR external_tool IS NULL OR external_tool = ?)",
        (session_id, external_tool, external_tool),
    )
    return {str(r[0]) for r in rows}


def external_waiting(
    conn: sqlite3.Connection, external_id: str, session_id: str, external_tool: str | None
) -> dict[str, Any] | None:
    """The newest call of this session with this client id (and tool) still waiting for its outcome."""
    row = conn.execute(
        f"SELECT * FROM actions WHERE external_id = ? AND session_id = ? AND status IN ({_WITH_CLIENT_SQL}) "
        "AND (? IS NULL OR external_tool IS NULL OR external_tool = ?) ORDER BY id DESC LIMIT 1",
        (external_id, session_id, external_tool, external_tool),
    ).fetchone()
    return None if row is None else dict(row)
