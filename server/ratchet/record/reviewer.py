"""The record of the delegated reviewer: its verdicts (one per action) and its authority's gains and losses.

A verdict is kept beside the action it judged, in the role it played (rules/reviewer.py ROLES): `shadow`
(beside a person's answer), `draft` (a queued draft pre-reviewed), `authority` (it decided in the person's
place) or `audit` (it approved with authority and the call went to the person anyway). A person's answer stays
in `actions` (channel, evidence), a complaint in `complaints`, an undo in `undos`: the score joins them.
A `lost` row in `reviewer_authority` restarts a class's score: only verdicts recorded after it count.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ratchet.record.undos import CHECK_ACTOR
from ratchet.rules.reviewer import APPROVE, AUTHORITY, REVIEWER, Pair, Tally, Verdict

GAINED, LOST = "gained", "lost"
_PERSON_REFUSED = ("rejected", "declined")
_RAN = ("executed", "failed")


def add_verdict(
    conn: sqlite3.Connection,
    action_id: int,
    action_class: str,
    role: str,
    verdict: Verdict,
    seconds: float | None,
    reviewer: str,
) -> bool:
    """Keep a verdict on an action; False when the action has one already (the first stands)."""
    found = conn.execute("SELECT 1 FROM reviewer_verdicts WHERE action_id = ?", (action_id,)).fetchone()
    if found is not None:
        return False
    conn.execute(
        "INSERT INTO reviewer_verdicts (action_id, class, at, role, verdict, risk, reason, error, seconds, reviewer) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            action_id,
            action_class,
            time.time(),
            role,
            verdict.verdict,
            verdict.risk,
            verdict.reason,
            verdict.error,
            seconds,
            reviewer,
        ),
    )
    return True


def set_role(conn: sqlite3.Connection, action_id: int, role: str) -> None:
    """Change the role a verdict played (a pre-reviewed draft a person then decided is a shadow verdict)."""
    conn.execute("UPDATE reviewer_verdicts SET role = ? WHERE action_id = ?", (role, action_id))


def verdict_of(conn: sqlite3.Connection, action_id: int) -> dict[str, Any] | None:
    """The verdict on one action, or None."""
    row = conn.execute("SELECT * FROM reviewer_verdicts WHERE action_id = ?", (action_id,)).fetchone()
    return dict(row) if row is not None else None


def verdicts_of(conn: sqlite3.Connection, action_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The verdicts on these actions, by action id."""
    if not action_ids:
        return {}
    marks = ", ".join("?" for _ in action_ids)
    rows = conn.execute(f"SELECT * FROM reviewer_verdicts WHERE action_id IN ({marks})", tuple(action_ids))
    return {int(r["action_id"]): dict(r) for r in rows}


def person_ok(row: dict[str, Any]) -> bool | None:
    """What a person made of a judged action: True (approved, no complaint), False (refused, or complained
    about or undid what ran), None (no person's answer: nothing to compare with)."""
    if row["complained"] or row["undone"]:
        return False  # a person's complaint or undo, whoever approved it
    if row["review_channel"] == REVIEWER or row["review_channel"] is None or row["evidence"] != "counted":
        return None  # the reviewer decided, or no counted answer of a person
    if row["status"] in _PERSON_REFUSED:
        return False
    return True if row["status"] in _RAN else None


_PAIRS = f"""
SELECT v.class AS class, v.verdict AS verdict, v.role AS role, v.at AS at, a.status AS status,
    a.review_channel AS review_channel, a.evidence AS evidence,
    EXISTS (SELECT 1 FROM complaints c WHERE c.action_id = v.action_id) AS complained,
    EXISTS (SELECT 1 FROM undos u WHERE u.action_id = v.action_id AND u.actor <> '{CHECK_ACTOR}') AS undone
FROM reviewer_verdicts v JOIN actions a ON a.id = v.action_id
"""


@dataclass(frozen=True)
class Score:
    """A reviewer's record: per class since its last loss of authority, per class in all, and overall."""

    current: dict[str, Tally]
    total: dict[str, Tally]
    lost_at: dict[str, float]

    def overall(self) -> Tally:
        """Every class together (all time)."""
        out = Tally()
        for t in self.total.values():
            out = out + t
        return out


def score(conn: sqlite3.Connection, since: float | None = None) -> Score:
    """The reviewer's score against people's answers (`since`: only verdicts recorded after it)."""
    lost_at = last_losses(conn)
    params: tuple[Any, ...] = ()
    sql = _PAIRS
    if since is not None:
        sql += " WHERE v.at >= ?"
        params = (since,)
    current: dict[str, list[Pair]] = {}
    total: dict[str, list[Pair]] = {}
    for r in conn.execute(sql, params):
        row = dict(r)
        ok = person_ok(row)
        if ok is None:
            continue
        pair = Pair(row["verdict"], ok)
        total.setdefault(row["class"], []).append(pair)
        if row["at"] > lost_at.get(row["class"], 0.0):
            current.setdefault(row["class"], []).append(pair)
    return Score({k: Tally.of(v) for k, v in current.items()}, {k: Tally.of(v) for k, v in total.items()}, lost_at)


def class_tally(conn: sqlite3.Connection, action_class: str) -> Tally:
    """One class's score since its reviewer last lost authority."""
    lost = last_losses(conn, action_class).get(action_class, 0.0)
    pairs = []
    for r in conn.execute(_PAIRS + " WHERE v.class = ? AND v.at > ?", (action_class, lost)):
        ok = person_ok(dict(r))
        if ok is not None:
            pairs.append(Pair(r["verdict"], ok))
    return Tally.of(pairs)


def last_losses(conn: sqlite3.Connection, action_class: str | None = None) -> dict[str, float]:
    """When each class's reviewer last lost authority."""
    sql = "SELECT class, max(at) AS at FROM reviewer_authority WHERE kind = ?"
    params: tuple[Any, ...] = (LOST,)
    if action_class is not None:
        sql += " AND class = ?"
        params += (action_class,)
    return {str(r["class"]): float(r["at"]) for r in conn.execute(sql + " GROUP BY class", params)}


def add_event(conn: sqlite3.Connection, action_class: str, kind: str, reason: str, action_id: int | None) -> None:
    """Record that a class's reviewer gained or lost authority."""
    conn.execute(
        "INSERT INTO reviewer_authority (class, at, kind, reason, action_id) VALUES (?, ?, ?, ?, ?)",
        (action_class, time.time(), kind, reason, action_id),
    )


def last_event(conn: sqlite3.Connection, action_class: str) -> dict[str, Any] | None:
    """A class's last authority event, or None."""
    row = conn.execute(
        "SELECT * FROM reviewer_authority WHERE class = ? ORDER BY id DESC LIMIT 1", (action_class,)
    ).fetchone()
    return dict(row) if row is not None else None


def events(conn: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The latest authority events, newest first."""
    rows = conn.execute("SELECT * FROM reviewer_authority ORDER BY id DESC LIMIT ?", (limit,))
    return [dict(r) for r in rows]


def approved_by_reviewer(conn: sqlite3.Connection, action_id: int) -> bool:
    """Whether the reviewer approved this action in the person's place (it ran on its authority)."""
    row = conn.execute(
        "SELECT 1 FROM reviewer_verdicts WHERE action_id = ? AND role = ? AND verdict = ?",
        (action_id, AUTHORITY, APPROVE),
    ).fetchone()
    return row is not None


def counts_by_role(conn: sqlite3.Connection) -> dict[str, int]:
    """How many verdicts played each role, and how many calls ran on the reviewer's authority."""
    rows = conn.execute("SELECT role, verdict, count(*) AS n FROM reviewer_verdicts GROUP BY role, verdict")
    out: dict[str, int] = {}
    for r in rows:
        out[f"{r['role']}:{r['verdict']}"] = int(r["n"])
    return out


def replay_rows(conn: sqlite3.Connection, since: float | None = None) -> list[dict[str, Any]]:
    """Every judged action with what a person made of it, in the order the actions were recorded (for
    `ratchet simulate --reviewer`, evidence/reviewer_replay.py)."""
    sql = _PAIRS.replace("SELECT v.class", "SELECT v.action_id AS action_id, a.level AS level, v.class", 1)
    params: tuple[Any, ...] = ()
    if since is not None:
        sql += " WHERE a.created_at >= ?"
        params = (since,)
    return [dict(r) for r in conn.execute(sql + " ORDER BY v.action_id", params)]


def task_goal(conn: sqlite3.Connection, task_id: int) -> str | None:
    """The stated goal of a run contract (the agent's claim, for a review request)."""
    row = conn.execute("SELECT goal FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return str(row["goal"]) if row is not None else None


def check_failed(conn: sqlite3.Connection, action_id: int) -> bool:
    """Whether a verification check failed an action."""
    return conn.execute("SELECT 1 FROM checks WHERE action_id = ? AND passed = 0", (action_id,)).fetchone() is not None


def grade_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Outcomes that carry evidence (ran, refused or declined), counted by class, route, answer channel and
    evidence: who vouched for them is rules/reviewer.py `vouched_by` of each group."""
    sql = (
        "SELECT coalesce(evidence_class, class) AS class, route, review_channel, evidence, count(*) AS n "
        "FROM actions WHERE status IN ('executed', 'failed', 'rejected', 'declined') "
        "GROUP BY coalesce(evidence_class, class), route, review_channel, evidence"
    )
    return [dict(r) for r in conn.execute(sql)]
