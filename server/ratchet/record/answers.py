"""When a session's human answered a client's own dialog, kept in the record (`actions.answered_at`).

A hook's `ask` is answered in the client, and the answer reaches Ratchet through an outcome event that a
process of its own records (the hook command, or the resident hook server): no process holds the session's
previous answer in memory, as the MCP server does for its elicitations (rules/provenance.py `AnswerClock`).
So each answer's moment is written with it, and the next answer of the session is timed from it.

Both functions run inside the write transaction that settles the answer (`Store.run`, which holds the
database's write lock): two outcome events recorded at once read and write the moments one after another.
"""

from __future__ import annotations

import sqlite3


def previous_answer(conn: sqlite3.Connection, session_id: str, at: float, action_id: int) -> float | None:
    """The moment of the session's last answer given before `at` (or at the same moment by an earlier
    action), other than action `action_id`'s own; None when the session has none."""
    row = conn.execute(
        "SELECT max(answered_at) FROM actions WHERE session_id = ? AND id <> ? AND answered_at IS NOT NULL "
        "AND (answered_at < ? OR (answered_at = ? AND id < ?))",
        (session_id, action_id, at, at, action_id),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def note_answer(conn: sqlite3.Connection, action_id: int, at: float) -> None:
    """Keep the moment action `action_id`'s question was answered."""
    conn.execute("UPDATE actions SET answered_at = ? WHERE id = ?", (at, action_id))
