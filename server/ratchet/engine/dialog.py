"""A client's own dialog answered (a hook's `ask`): the answer timed across processes and judged.

Claude Code's dialog is answered in the client; the hook learns of it from the outcome event, in a process
of its own. The answer is timed from its question (the PreToolUse, when the row was recorded) or the
session's previous answer, whichever came later, to the moment of the answer (rules/provenance.py), and
the record keeps that moment for the session's next answer (record/answers.py). Runs inside the write
transaction that settles the call, so answers recorded at once are timed one after another.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ratchet.engine.core import HumanAnswer
from ratchet.policy.model import ActionClass
from ratchet.record import answers
from ratchet.rules import provenance


def dialog_answer(
    conn: sqlite3.Connection,
    row: Any,
    cls: ActionClass,
    *,
    accepted: bool,
    at: float,
    now: float,
    channel: str,
) -> HumanAnswer:
    """The answer to the asked call `row` (its actions row), given at `at` (Unix time), judged for `cls`.

    `at` is bounded by the question's own moment and by `now` (an answer cannot come before its question,
    nor after the moment it is recorded, whatever a transcript claims). Its moment is kept in the record."""
    asked, action_id = float(row["created_at"]), int(row["id"])
    moment = max(asked, min(at, now))
    previous = answers.previous_answer(conn, str(row["session_id"]), moment, action_id)
    start = provenance.reading_start(asked, previous)
    seconds = max(0.0, moment - (asked if start is None else start))
    answers.note_answer(conn, action_id, moment)
    return HumanAnswer(accepted, "client", None, seconds, channel=channel).judged(
        cls, row["preview"], row["hidden_lines"]
    )
