"""Typed operations on recorded actions, sessions' streaks, run contracts and what classes have seen.

Each function takes the connection a unit of work runs on (`Store.run` for a write transaction,
`Store.call` for a read) and does its part in plain SQL; the engine composes them into units of
work and never writes SQL itself. Rows go upward as plain dicts. Status changes go through
`finish`, which refuses a move the lifecycle (record/lifecycle.py) does not allow.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ratchet.record import chain, integrity, lifecycle
from ratchet.record.filters import EVERYTHING, ActionFilter
from ratchet.record.lifecycle import Status
from ratchet.record.store import MAY_HAVE_RUN, later

Row = dict[str, Any]

_OPEN_SQL = ", ".join(f"'{s.value}'" for s in lifecycle.OPEN)
# The first condition repeats the partial index's own (`actions_open`), so SQLite uses it instead of
# scanning the whole history; the second says what is wanted.
_OPEN_WHERE = f"status IN ({_OPEN_SQL})"
_QUEUED_SQL = ", ".join(f"'{s.value}'" for s in lifecycle.QUEUED)
_ESCALATIONS_SQL = ", ".join(f"'{s.value}'" for s in lifecycle.ESCALATIONS)
OPEN_ESCALATION = f"status IN ({_ESCALATIONS_SQL}) AND resolved_at IS NULL"
# An action cut short by a crash whose effect may have happened: the human checks it, then resolves it.
OPEN_INTERRUPTION = f"status = 'interrupted' AND resolved_at IS NULL AND error LIKE '{MAY_HAVE_RUN}%'"


def _dict(row: sqlite3.Row | None) -> Row | None:
    return None if row is None else dict(row)


@dataclass(frozen=True)
class Intent:
    """Everything an action's row holds when it is recorded, before anything happened."""

    session_id: str
    tool: str
    target: str
    action_class: str
    rule: str
    policy: str
    args_json: str
    preview: str
    fingerprint: str | None
    intent: str | None
    confidence: float | None
    class_level: str
    level: str
    route: str
    triggers_json: str
    flagged: bool
    status: Status
    subject_json: str | None = None
    level_transition: int | None = None
    task_id: int | None = None
    evidence_class: str | None = None
    hidden_lines: int = 0
    error: str | None = None
    recorded_by: str | None = None  # the identity of the process that recorded it (ratchet/identity.py)
    # Where the call was made: the host and the workspace's absolute path (engine/origin.py). A draft
    # approved elsewhere waits for this origin to run it.
    origin_host: str | None = None
    origin_workspace: str | None = None
    origin_repo: str | None = None  # the repository the workspace is a clone of (ratchet/repository.py)


@dataclass(frozen=True)
class Review:
    """A human's answer as the record keeps it (the engine's HumanAnswer, judged)."""

    accepted: bool
    reviewer: str
    note: str | None = None
    seconds: float | None = None
    channel: str | None = None
    evidence: str | None = None
    edited: bool = False
    identity: str | None = None  # who answered (ratchet/identity.py); `reviewer` names the channel


# -- recording ---------------------------------------------------------------------------------


def insert_intent(conn: sqlite3.Connection, intent: Intent) -> int:
    """Record an action (its intent, before any effect) and count it against its run contract; its id."""
    lifecycle.check_born(intent.status)
    now = time.time()
    row = conn.execute(
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "fingerprint, intent, confidence, class_level, level, route, triggers_json, flagged, status, pid, "
        "subject_json, level_transition, task_id, evidence_class, hidden_lines, error, finished_at, recorded_by, "
        "origin_host, origin_workspace, origin_repo) VALUES (" + ", ".join("?" * 30) + ") RETURNING id",
        (
            intent.session_id,
            now,
            intent.tool,
            intent.target,
            intent.action_class,
            intent.rule,
            intent.policy,
            intent.args_json,
            intent.preview,
            intent.fingerprint,
            intent.intent,
            intent.confidence,
            intent.class_level,
            intent.level,
            intent.route,
            intent.triggers_json,
            int(intent.flagged),
            intent.status.value,
            os.getpid(),
            intent.subject_json,
            intent.level_transition,
            intent.task_id,
            intent.evidence_class,
            intent.hidden_lines,
            intent.error,
            now if intent.status is Status.REFUSED else None,
            intent.recorded_by,
            intent.origin_host,
            intent.origin_workspace,
            intent.origin_repo,
        ),
    ).fetchone()
    action_id = int(row[0])
    if intent.task_id is not None:
        # Every governed action of an open run contract counts against its budget, whatever became of it.
        conn.execute("UPDATE tasks SET actions_used = actions_used + 1 WHERE id = ?", (intent.task_id,))
    return action_id


def _refuse_move(conn: sqlite3.Connection, action_id: int, to: Status) -> None:
    found = conn.execute("SELECT status FROM actions WHERE id = ?", (action_id,)).fetchone()
    if found is None:
        raise lifecycle.IllegalMove(f"no action {action_id} to move to {to.value}")
    lifecycle.check(found[0], to)
    raise lifecycle.IllegalMove(f"action {action_id} changed status while it was being moved to {to.value}")


def finish(
    conn: sqlite3.Connection,
    action_id: int,
    status: Status,
    result_json: str | None,
    error: str | None,
    *,
    review: Review | None = None,
    sample: bool | None = None,
    kept_args: str | None = None,
    chained: bool = True,
) -> None:
    """Settle an action's outcome: its status, result, error, the human's review and its sample label.

    `kept_args` replaces the arguments of a draft once it can no longer run (redacted, a file's content
    reduced to its hash and size); other rows' arguments were kept that way when they were inserted.
    `chained` False leaves the review's place in the chain to the caller (`chain_review`, later in the unit).
    """
    sources = lifecycle.sources(status)
    changed = conn.execute(
        "UPDATE actions SET status = ?, result_json = ?, error = ?, finished_at = ?, "
        "reviewer = coalesce(?, reviewer), review_seconds = coalesce(?, review_seconds), "
        "review_note = coalesce(?, review_note), review_channel = coalesce(?, review_channel), "
        "reviewed_by = coalesce(?, reviewed_by), "
        "evidence = coalesce(?, evidence), edited = CASE WHEN ? THEN 1 ELSE edited END, sample = coalesce(?, sample), "
        f"args_json = coalesce(?, args_json) WHERE id = ? AND status IN ({', '.join('?' * len(sources))})",
        (
            status.value,
            result_json,
            error,
            time.time(),
            review.reviewer if review else None,
            review.seconds if review else None,
            review.note if review else None,
            review.channel if review else None,
            review.identity if review else None,
            review.evidence if review else None,
            bool(review and review.edited),
            None if sample is None else "success" if sample else "failure",
            kept_args,
            action_id,
            *(s.value for s in sources),
        ),
    ).rowcount
    if not changed:
        _refuse_move(conn, action_id, status)
    if review is not None and chained:
        chain_review(conn, action_id, review)


def chain_review(conn: sqlite3.Connection, action_id: int, review: Review) -> None:
    """A human's answer goes into the hash chain of reviews (record/chain.py)."""
    kind = "accept" if review.accepted else "refuse"
    chain.add_review(conn, action_id, time.time(), kind, review.reviewer, review.seconds, review.note, review.identity)


def record_review(conn: sqlite3.Connection, action_id: int, review: Review) -> None:
    """Keep a human's answer on an action whose status is set elsewhere (a refusal), and chain it."""
    conn.execute(
        "UPDATE actions SET reviewer = ?, review_seconds = ?, review_note = ?, review_channel = ?, evidence = ?, "
        "reviewed_by = ? WHERE id = ?",
        (review.reviewer, review.seconds, review.note, review.channel, review.evidence, review.identity, action_id),
    )
    chain_review(conn, action_id, review)


def mark_unanswered(
    conn: sqlite3.Connection, action_id: int, channel: str | None, seconds: float | None, evidence: str | None
) -> None:
    """An answer no human gave (too fast, dismissed): kept on the row, which stays where it was."""
    conn.execute(
        "UPDATE actions SET review_channel = ?, review_seconds = ?, evidence = ? WHERE id = ?",
        (channel, seconds, evidence, action_id),
    )


def set_packet(conn: sqlite3.Connection, action_id: int, packet_json: str) -> None:
    """The escalation packet of a stopped action or a handoff."""
    conn.execute("UPDATE actions SET packet_json = ? WHERE id = ?", (packet_json, action_id))


def child_started(conn: sqlite3.Connection, action_id: int, pid: int) -> None:
    """The process a command started (its process group), recorded before it can do anything."""
    conn.execute("UPDATE actions SET child_pid = ?, child_started_at = ? WHERE id = ?", (pid, time.time(), action_id))


def label_sample(conn: sqlite3.Connection, action_id: int, label: str) -> None:
    """Label an action's sample without adding one to any window (a success that was padding: `repeat`)."""
    later(conn, "UPDATE actions SET sample = ? WHERE id = ?", (label, action_id))


def sample(
    conn: sqlite3.Connection, action_id: int, class_name: str, ok: bool, session_id: str | None, *, mark: bool
) -> None:
    """An action's sample label and the session's failure streak for the class (None: no streak kept)."""
    if mark:
        later(conn, "UPDATE actions SET sample = ? WHERE id = ?", ("success" if ok else "failure", action_id))
    if session_id is not None:
        later(
            conn,
            "INSERT INTO streaks (session_id, class, failures) VALUES (?, ?, ?) ON CONFLICT (session_id, class) "
            "DO UPDATE SET failures = CASE WHEN ? THEN 0 ELSE streaks.failures + 1 END",
            (session_id, class_name, 0 if ok else 1, ok),
        )


def remember(conn: sqlite3.Connection, class_name: str, keys: Iterable[str]) -> None:
    """Record what a class has now run, for its novelty trigger."""
    conn.executemany(
        "INSERT INTO seen (class, key) VALUES (?, ?) ON CONFLICT (class, key) DO NOTHING",
        [(class_name, key) for key in keys],
    )


def seen(conn: sqlite3.Connection, class_name: str, keys: Sequence[str]) -> set[str]:
    """Which of `keys` the class has run before."""
    if not keys:
        return set()
    marks = ", ".join("?" * len(keys))
    rows = conn.execute(f"SELECT key FROM seen WHERE class = ? AND key IN ({marks})", (class_name, *keys))
    return {str(r[0]) for r in rows}


# -- drafts ------------------------------------------------------------------------------------


def claim_draft(conn: sqlite3.Connection, action_id: int, source: Status = Status.DRAFT) -> tuple[bool, Row | None]:
    """Take a draft for execution atomically (a draft approved twice runs once): (claimed, its row).

    `source` is `approved` when the draft's origin takes a draft a human approved elsewhere."""
    lifecycle.check(source, Status.APPROVING)
    # The approval kept for the origin (its content included) is read before the claim and goes now.
    claim = "UPDATE actions SET status = ?, pid = ?, approval_json = NULL WHERE id = ? AND status = ?"
    if not isinstance(conn, sqlite3.Connection):
        # PostgreSQL: the row is taken FOR UPDATE SKIP LOCKED, so a second claimer of a draft being claimed
        # skips it at once instead of queueing behind the first (record/locks.py); SQLite's one writer
        # makes the conditional UPDATE exclusive on its own.
        claim += " AND id IN (SELECT id FROM actions WHERE id = ? FOR UPDATE SKIP LOCKED)"
        params: tuple[object, ...] = (Status.APPROVING.value, os.getpid(), action_id, source.value, action_id)
    else:
        params = (Status.APPROVING.value, os.getpid(), action_id, source.value)
    claimed = conn.execute(claim, params).rowcount
    return bool(claimed), action(conn, action_id)


def reject_draft(conn: sqlite3.Connection, action_id: int, kept_args: str) -> bool:
    """A queued draft refused by a human (or an approved one withdrawn while it waits for its origin):
    nothing runs, and its content (and any content the human approved) leaves with the queue."""
    changed = conn.execute(
        "UPDATE actions SET status = ?, finished_at = ?, args_json = ?, approval_json = NULL "
        "WHERE id = ? AND status IN (?, ?)",
        (Status.REJECTED.value, time.time(), kept_args, action_id, *(s.value for s in lifecycle.QUEUED)),
    ).rowcount
    return bool(changed)


# -- refusals and handoffs ---------------------------------------------------------------------


def insert_handoff(
    conn: sqlite3.Connection,
    session_id: str,
    at: float,
    target: str,
    policy: str,
    args_json: str,
    task: str | None,
    recorded_by: str | None = None,
    origin: tuple[str, str, str | None] | None = None,
) -> int:
    """An agent's own handoff, in the inbox as `escalated` (`origin`: the host, workspace and repository it
    was asked from, as an action's); its id."""
    host, workspace, repo = origin if origin is not None else (None, None, None)
    row = conn.execute(
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "intent, class_level, level, route, triggers_json, status, pid, recorded_by, origin_host, origin_workspace, "
        "origin_repo) VALUES (?, ?, 'request_handoff', ?, 'handoff', '', ?, ?, '', ?, '', '', 'escalate', '[]', "
        "?, ?, ?, ?, ?, ?) RETURNING id",
        (
            session_id,
            at,
            target,
            policy,
            args_json,
            task,
            Status.ESCALATED.value,
            os.getpid(),
            recorded_by,
            host,
            workspace,
            repo,
        ),
    ).fetchone()
    return int(row[0])


def recent_handoffs(conn: sqlite3.Connection, session_id: str, since: float, limit: int) -> list[float]:
    """When this session's handoffs since `since` were made (newest first, at most `limit`)."""
    rows = conn.execute(
        "SELECT created_at FROM actions WHERE session_id = ? AND tool = 'request_handoff' AND created_at > ? "
        "ORDER BY id DESC LIMIT ?",
        (session_id, since, limit),
    )
    return [float(r[0]) for r in rows]


def resolve(
    conn: sqlite3.Connection,
    action_id: int,
    resolution: str,
    note: str | None,
    channel: str,
    seconds: float | None = None,
    reviewed_by: str | None = None,
) -> bool:
    """A human's answer to a stopped action or a handoff (a handoff becomes `resolved`); False if answered before.

    `channel` (cli, web, ...) is also recorded as the reviewer; `seconds` is the review time the channel
    timed, else the time since the item was recorded."""
    now = time.time()
    changed = conn.execute(
        "UPDATE actions SET resolution = ?, resolution_note = ?, resolved_at = ?, reviewer = ?, "
        "review_channel = ?, review_seconds = coalesce(?, ? - created_at), reviewed_by = ?, "
        "status = CASE status WHEN ? THEN ? ELSE status END "
        "WHERE id = ? AND resolved_at IS NULL",
        (
            resolution,
            note,
            now,
            channel,
            channel,
            seconds,
            now,
            reviewed_by,
            Status.ESCALATED.value,
            Status.RESOLVED.value,
            action_id,
        ),
    ).rowcount
    return bool(changed)


def mark_checked(conn: sqlite3.Connection, action_id: int, note: str | None, at: float) -> bool:
    """A human looked at what an interrupted action left behind; False if it was checked before."""
    changed = conn.execute(
        "UPDATE actions SET resolution = 'checked', resolution_note = ?, resolved_at = ? "
        "WHERE id = ? AND resolved_at IS NULL",
        (note, at, action_id),
    ).rowcount
    return bool(changed)


# -- reading -----------------------------------------------------------------------------------


def action(conn: sqlite3.Connection, action_id: int) -> Row | None:
    """One recorded action, or None."""
    return _dict(conn.execute("SELECT * FROM actions WHERE id = ?", (action_id,)).fetchone())


def queue(conn: sqlite3.Connection, scope: ActionFilter = EVERYTHING) -> list[Row]:
    """Drafts waiting for a human (or approved, waiting for their origin), oldest first (those `scope` keeps)."""
    narrow, params = scope.where()
    sql = f"SELECT * FROM actions WHERE {_OPEN_WHERE} AND status IN ({_QUEUED_SQL}){narrow} ORDER BY id"
    return [dict(r) for r in conn.execute(sql, params)]


def history(
    conn: sqlite3.Connection,
    limit: int,
    class_name: str | None = None,
    by: str | None = None,
    scope: ActionFilter = EVERYTHING,
) -> list[Row]:
    """Recent actions (of one class, or all; recorded or reviewed by one identity, or anyone's; those `scope`
    keeps), newest first."""
    narrow, params = scope.where()
    where = [narrow.removeprefix(" AND ")] if narrow else []
    if class_name:
        where.append("class = ?")
        params.append(class_name)
    if by:
        where.append("(recorded_by = ? OR reviewed_by = ?)")
        params += [by, by]
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.execute(f"SELECT * FROM actions {clause}ORDER BY id DESC LIMIT ?", (*params, limit))
    return [dict(r) for r in rows]


def transitions(conn: sqlite3.Connection, class_name: str | None, limit: int) -> list[Row]:
    """Recorded transitions with their evidence decoded, newest first."""
    if class_name:
        rows = conn.execute("SELECT * FROM transitions WHERE class = ? ORDER BY id DESC LIMIT ?", (class_name, limit))
    else:
        rows = conn.execute("SELECT * FROM transitions ORDER BY id DESC LIMIT ?", (limit,))
    return [{**dict(r), "evidence": json.loads(r["evidence_json"])} for r in rows]


def not_evidence(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per class (the one whose level decided), how many answers were unverified and unanswered."""
    rows = conn.execute(
        "SELECT coalesce(evidence_class, class) AS judged, count(*) FILTER (WHERE evidence = 'unverified'), "
        "count(*) FILTER (WHERE evidence = 'unanswered') FROM actions WHERE evidence IN ('unverified', 'unanswered') "
        "GROUP BY judged"
    )
    return {str(r[0]): (r[1] or 0, r[2] or 0) for r in rows}


@dataclass(frozen=True)
class GateState:
    """What the gate reads before deciding, in one statement."""

    record: tuple[Any, ...]
    failures: int
    task_id: int | None


def gate_state(conn: sqlite3.Connection, session_id: str, class_name: str, window: int) -> GateState:
    """The class_state cache and the record it caches (record/integrity.py), the session's streak and its open task."""
    row = conn.execute(
        f"SELECT {integrity.GATE_COLUMNS}, "
        "(SELECT failures FROM streaks WHERE session_id = :session AND class = :cls), "
        "(SELECT id FROM tasks WHERE session_id = :session AND ended_at IS NULL ORDER BY id DESC LIMIT 1) "
        f"FROM (SELECT 1) AS one LEFT JOIN class_state c ON c.name = :cls {integrity.GATE_JOINS}",
        {"session": session_id, "cls": class_name, "window": window},
    ).fetchone()
    width = integrity.GATE_WIDTH
    return GateState(tuple(row[:width]), row[width] or 0, row[width + 1])


@dataclass(frozen=True)
class SessionContext:
    """What an escalation packet says about its session: recent actions and what is already waiting."""

    history: list[Row]
    queued: int
    escalations: int


def session_context(conn: sqlite3.Connection, session_id: str, before: int | None = None) -> SessionContext:
    """The session's last ten actions before `before` (None: all so far), and its drafts and escalations."""
    bound = before if before is not None else 2**62
    rows = conn.execute(
        "SELECT id, tool, target, class, status FROM actions WHERE session_id = ? AND id < ? ORDER BY id DESC LIMIT 10",
        (session_id, bound),
    ).fetchall()
    counts = conn.execute(
        f"SELECT count(*) FILTER (WHERE status = ?), count(*) FILTER (WHERE status IN ({_ESCALATIONS_SQL})) "
        "FROM actions WHERE session_id = ? AND id < ?",
        (Status.DRAFT.value, session_id, bound),
    ).fetchone()
    return SessionContext([dict(r) for r in reversed(rows)], counts[0] or 0, counts[1] or 0)


def inbox(conn: sqlite3.Connection, scope: ActionFilter = EVERYTHING) -> list[Row]:
    """Drafts (and approved drafts waiting for their origin), open escalations and unchecked interruptions, by
    id (those `scope` keeps)."""
    narrow, params = scope.where()
    # Three index lookups rather than one OR, which would read the whole history.
    rows = conn.execute(
        f"SELECT * FROM actions WHERE {_OPEN_WHERE} AND status IN ({_QUEUED_SQL}){narrow} "
        f"UNION ALL SELECT * FROM actions WHERE {OPEN_ESCALATION}{narrow} "
        f"UNION ALL SELECT * FROM actions WHERE {OPEN_INTERRUPTION}{narrow} ORDER BY id",
        params * 3,
    )
    return [dict(r) for r in rows]


def sessions_active_since(conn: sqlite3.Connection, sessions: Iterable[str], since: float) -> set[str]:
    """Those of `sessions` that recorded an action at or after `since` (their agent is still at work)."""
    live = set()
    for session_id in sessions:
        row = conn.execute(  # its newest action, by the (session_id, id) index
            "SELECT created_at FROM actions WHERE session_id = ? ORDER BY id DESC LIMIT 1", (session_id,)
        ).fetchone()
        if row is not None and float(row[0]) >= since:
            live.add(session_id)
    return live


def escalation_stats(conn: sqlite3.Connection, cli_session: str) -> list[Row]:
    """Per agent session and class: actions, and how many stopped or handed off."""
    rows = conn.execute(
        "SELECT session_id, class, count(*) AS n, count(*) FILTER (WHERE status IN (?, ?, ?)) AS e "
        "FROM actions WHERE session_id != ? GROUP BY session_id, class ORDER BY session_id, class",
        (Status.BLOCKED.value, Status.ESCALATED.value, Status.RESOLVED.value, cli_session),
    )
    return [dict(r) for r in rows]


# -- complaints --------------------------------------------------------------------------------


def first_complaint(conn: sqlite3.Connection, action_id: int) -> float | None:
    """When the action's first complaint was recorded, if it has one."""
    row = conn.execute("SELECT at FROM complaints WHERE action_id = ? ORDER BY id LIMIT 1", (action_id,)).fetchone()
    return None if row is None else float(row[0])


def add_complaint(conn: sqlite3.Connection, action_id: int, reason: str, identity: str | None = None) -> None:
    """A human's complaint about an action that ran: recorded, chained (with who made it), and its sample marked."""
    now = time.time()
    conn.execute(
        "INSERT INTO complaints (action_id, at, reason, actor) VALUES (?, ?, ?, 'human')", (action_id, now, reason)
    )
    chain.add_review(conn, action_id, now, "complaint", "human", None, reason, identity)
    conn.execute("UPDATE actions SET sample = 'complained' WHERE id = ?", (action_id,))


# -- run contracts -----------------------------------------------------------------------------


def open_task(conn: sqlite3.Connection, session_id: str) -> Row | None:
    """The session's open run contract's row, if any."""
    return _dict(
        conn.execute(
            "SELECT * FROM tasks WHERE session_id = ? AND ended_at IS NULL ORDER BY id DESC LIMIT 1", (session_id,)
        ).fetchone()
    )


def start_task(
    conn: sqlite3.Connection, session_id: str, goal: str, scope_json: str, non_goals_json: str, budget_json: str
) -> Row:
    """Open a run contract (an open one is closed as superseded); the new row."""
    now = time.time()
    conn.execute(
        "UPDATE tasks SET ended_at = ?, summary = 'superseded by a new task' WHERE session_id = ? AND ended_at IS NULL",
        (now, session_id),
    )
    row = conn.execute(
        "INSERT INTO tasks (session_id, goal, scope_json, non_goals_json, budget_json, started_at) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        (session_id, goal, scope_json, non_goals_json, budget_json, now),
    ).fetchone()
    return dict(row)


def end_task(conn: sqlite3.Connection, session_id: str, summary: str) -> Row | None:
    """Close the session's open run contract; its row as it was open, or None if there was none."""
    row = open_task(conn, session_id)
    if row is not None:
        conn.execute("UPDATE tasks SET ended_at = ?, summary = ? WHERE id = ?", (time.time(), summary, row["id"]))
    return row


# -- recovery ----------------------------------------------------------------------------------


def in_flight(conn: sqlite3.Connection) -> list[Row]:
    """Actions some process was carrying out (`running`, `approving`), whoever it was."""
    marks = ", ".join("?" * len(lifecycle.IN_FLIGHT))
    rows = conn.execute(
        f"SELECT * FROM actions WHERE {_OPEN_WHERE} AND status IN ({marks})",
        tuple(s.value for s in lifecycle.IN_FLIGHT),
    )
    return [dict(r) for r in rows]


def interrupt(conn: sqlite3.Connection, row: Row, kept_args: str | None) -> str | None:
    """Mark an action whose process is gone `interrupted`, saying what may have happened; the error, or
    None when another process got there first."""
    error = f"the process (pid {row['pid']}) ended before the outcome was recorded"
    if row["status"] == Status.APPROVING and row["child_pid"] is None:
        # A human's approval was being carried out: its effect may have happened.
        error = f"{MAY_HAVE_RUN}: {error}, while the approval was being carried out"
    if row["child_pid"] is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["child_started_at"]))
        error = (
            f"{MAY_HAVE_RUN}: {error}, while its command (pid {row['child_pid']}, "
            f"started {started}) was running; what was left of it was killed"
        )
    changed = conn.execute(
        "UPDATE actions SET status = ?, finished_at = ?, error = ?, args_json = coalesce(?, args_json) "
        "WHERE id = ? AND status = ?",
        (Status.INTERRUPTED.value, time.time(), error, kept_args, row["id"], row["status"]),
    ).rowcount
    return error if changed else None
