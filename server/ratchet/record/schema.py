"""The trust database's schema: every migration step, in order, and how a file is brought up to date.

Each entry of MIGRATIONS migrates from version i to i + 1 (SQLite's `user_version`). Append only;
never edit a released step: a database migrated by an older Ratchet must end in the same schema.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ratchet.errors import StoreError

# Each entry migrates from version i to i + 1. Append only; never edit a released step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY, started_at REAL NOT NULL, client TEXT, pid INTEGER NOT NULL
    );
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        tool TEXT NOT NULL,
        target TEXT NOT NULL,
        class TEXT NOT NULL,
        rule TEXT NOT NULL,
        policy TEXT NOT NULL,
        args_json TEXT NOT NULL,
        preview TEXT NOT NULL,
        fingerprint TEXT,
        intent TEXT,
        confidence REAL,
        class_level TEXT NOT NULL,
        level TEXT NOT NULL,
        route TEXT NOT NULL,
        triggers_json TEXT NOT NULL,
        flagged INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        pid INTEGER NOT NULL,
        result_json TEXT,
        error TEXT,
        finished_at REAL,
        reviewer TEXT,
        review_seconds REAL,
        review_note TEXT,
        sample TEXT
    );
    CREATE INDEX actions_by_session ON actions (session_id, id);
    CREATE INDEX actions_by_class ON actions (class, id);
    CREATE INDEX actions_open ON actions (status) WHERE status IN ('running', 'drafted', 'approving');
    CREATE TABLE class_state (
        name TEXT PRIMARY KEY,
        level TEXT NOT NULL,
        policy_start TEXT NOT NULL,
        pinned TEXT,
        window_json TEXT NOT NULL DEFAULT '[]',
        level_since REAL NOT NULL,
        transition_id INTEGER
    );
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        class TEXT NOT NULL,
        at REAL NOT NULL,
        from_level TEXT NOT NULL,
        to_level TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        evidence_json TEXT NOT NULL,
        action_id INTEGER
    );
    CREATE INDEX transitions_by_class ON transitions (class, id);
    CREATE TABLE complaints (
        id INTEGER PRIMARY KEY, action_id INTEGER NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL,
        actor TEXT NOT NULL
    );
    CREATE TABLE streaks (
        session_id TEXT NOT NULL, class TEXT NOT NULL, failures INTEGER NOT NULL,
        PRIMARY KEY (session_id, class)
    );
    """,
    # v2: what the matcher saw (so a candidate policy can re-classify history) and the transition
    # that set the class level the call was decided at (so `explain` can say why it stood there).
    """
    ALTER TABLE actions ADD COLUMN subject_json TEXT;
    ALTER TABLE actions ADD COLUMN level_transition INTEGER
    """,
    # v3: escalations a human resolves (packets, answers), run contracts, and what each class has seen.
    """
    ALTER TABLE actions ADD COLUMN packet_json TEXT;
    ALTER TABLE actions ADD COLUMN task_id INTEGER;
    ALTER TABLE actions ADD COLUMN resolution TEXT;
    ALTER TABLE actions ADD COLUMN resolution_note TEXT;
    ALTER TABLE actions ADD COLUMN resolved_at REAL;
    CREATE INDEX actions_unresolved ON actions (status) WHERE resolved_at IS NULL;
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        goal TEXT NOT NULL,
        scope_json TEXT NOT NULL,
        non_goals_json TEXT NOT NULL,
        budget_json TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        summary TEXT,
        actions_used INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_open ON tasks (session_id) WHERE ended_at IS NULL;
    CREATE TABLE seen (class TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (class, key))
    """,
    # v4: the id a client gives a call it runs itself (a hook's tool_use_id), to match its outcome.
    """
    ALTER TABLE actions ADD COLUMN external_id TEXT;
    CREATE INDEX actions_by_external ON actions (external_id) WHERE external_id IS NOT NULL
    """,
    # v5: sessions: the class a human's answer and the outcome are evidence for, when a side effect
    # (a redirect into a file of a class standing lower) set the call's level; NULL means `class`.
    """
    ALTER TABLE actions ADD COLUMN evidence_class TEXT
    """,
    # v6: sandbox: the process a command started (its pid is its process group) and when, so the
    # next open after a crash can kill what is left and say the command may have run.
    """
    ALTER TABLE actions ADD COLUMN child_pid INTEGER;
    ALTER TABLE actions ADD COLUMN child_started_at REAL
    """,
    # v7: brakes: a hash chain over transitions and human reviews (record/chain.py), and the samples each
    # class's window is recomputed from (record/integrity.py); existing windows and reviews are carried over
    # here and chained at the first open.
    """
    ALTER TABLE transitions ADD COLUMN prev_hash TEXT;
    ALTER TABLE transitions ADD COLUMN hash TEXT;
    UPDATE transitions SET hash = 'pending';
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        action_id INTEGER NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        seconds REAL,
        note TEXT,
        prev_hash TEXT,
        hash TEXT
    );
    CREATE INDEX reviews_by_action ON reviews (action_id, id);
    INSERT INTO reviews (action_id, at, kind, actor, seconds, note)
    SELECT action_id, at, kind, actor, seconds, note FROM (
        SELECT id AS action_id, coalesce(finished_at, created_at) AS at,
            CASE WHEN status IN ('rejected', 'declined') THEN 'refuse' ELSE 'accept' END AS kind,
            reviewer AS actor, review_seconds AS seconds, review_note AS note
        FROM actions WHERE reviewer IS NOT NULL
        UNION ALL
        SELECT action_id, at, 'complaint', actor, NULL, reason FROM complaints
    ) ORDER BY at, action_id;
    UPDATE reviews SET hash = 'pending';
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY,
        class TEXT NOT NULL,
        action_id INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        epoch INTEGER NOT NULL
    );
    CREATE INDEX samples_by_class ON samples (class, epoch, id);
    INSERT INTO samples (class, action_id, ok, epoch)
    SELECT c.name, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), coalesce(c.transition_id, 0)
    FROM class_state c, json_each(c.window_json) j ORDER BY c.name, j.key
    """,
    # v8: provenance: how a human answer was given (cli, elicitation, hook-dialog, web) and whether it
    # was evidence for the class (counted, unverified, unanswered); review_seconds already exists.
    """
    ALTER TABLE actions ADD COLUMN review_channel TEXT;
    ALTER TABLE actions ADD COLUMN evidence TEXT;
    CREATE INDEX actions_not_evidence ON actions (class) WHERE evidence IN ('unverified', 'unanswered')
    """,
    # v9: http: the client's own tool name for a call it runs itself, so an outcome event settles only
    # the call of the same session, tool and id.
    """
    ALTER TABLE actions ADD COLUMN external_tool TEXT
    """,
    # v10: facts as columns: an approval with the human's own content was kept as the review-note
    # prefix "edited before approval: "; it is a column now, and the note is the human's note alone.
    """
    ALTER TABLE actions ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
    UPDATE actions SET edited = 1, review_note = nullif(substr(review_note, 25), '')
    WHERE review_note LIKE 'edited before approval: %'
    """,
    # v11: one word for a queued draft in the API and the database (`draft`, was `drafted`; the
    # partial index of open actions names it), and how many lines of a file diff the preview folded
    # away (`hidden_lines`), which the reading-time rule counts; the preview keeps its marker for humans.
    """
    UPDATE actions SET status = 'draft' WHERE status = 'drafted';
    DROP INDEX actions_open;
    CREATE INDEX actions_open ON actions (status) WHERE status IN ('running', 'draft', 'approving');
    ALTER TABLE actions ADD COLUMN hidden_lines INTEGER NOT NULL DEFAULT 0;
    UPDATE actions SET hidden_lines = CAST(substr(preview, instr(preview, '[diff truncated: ') + 17) AS INTEGER)
    WHERE preview LIKE '%[diff truncated: % more lines not shown]%'
    """,
    # v12, undos: a human's undo of an action that ran (a file put back, or a revert commit queued as a draft
    # `revert_id`), why, by whom, through which channel, whether it was forced over a later change,
    # and whether it counted as a complaint.
    """
    CREATE TABLE undos (
        id INTEGER PRIMARY KEY,
        action_id INTEGER NOT NULL REFERENCES actions(id),
        at REAL NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        channel TEXT,
        forced INTEGER NOT NULL DEFAULT 0,
        complaint INTEGER NOT NULL DEFAULT 0,
        revert_id INTEGER REFERENCES actions(id),
        detail TEXT NOT NULL
    );
    CREATE INDEX undos_action ON undos (action_id)
    """,
    # v13, verification: each check a class runs on an action that executed (or at its task's end), with
    # its result. An undo a failing check caused (`undo_on_failure`) is an undo like a human's, in `undos`.
    """
    CREATE TABLE checks (
        id INTEGER PRIMARY KEY,
        action_id INTEGER NOT NULL,
        at REAL NOT NULL,
        phase TEXT NOT NULL,
        argv_json TEXT NOT NULL,
        passed INTEGER NOT NULL,
        exit_code INTEGER,
        timed_out INTEGER NOT NULL,
        duration_s REAL NOT NULL,
        tail TEXT NOT NULL
    );
    CREATE INDEX checks_by_action ON checks (action_id, id)
    """,
    # v14: evidence at scale: a period's actions by when they were created (metrics), and a class's
    # samples by when they were recorded (report and simulate replay a period from a checkpoint).
    """
    CREATE INDEX actions_created ON actions (created_at);
    CREATE INDEX actions_settled ON actions ((coalesce(evidence_class, class)), (coalesce(finished_at, created_at)))
    """,
    # who, for a team sharing one record (ratchet/identity.py: `$RATCHET_IDENTITY`, else user@host).
    # `recorded_by`: the identity of the process that recorded the action's intent (the server or hook
    # acting for the agent); `reviewed_by`: the identity the human's answer came from (`reviewer` keeps
    # naming the channel, as before); `reviews.identity`: the same in the hash chain, hashed only when
    # present, so the reviews written before this step keep their hashes.
    """
    ALTER TABLE actions ADD COLUMN recorded_by TEXT;
    ALTER TABLE actions ADD COLUMN reviewed_by TEXT;
    ALTER TABLE reviews ADD COLUMN identity TEXT
    """,
    # origins: where a draft was queued (the host and the workspace's absolute path), so a human's approval
    # given on another machine of a shared record waits, as `approved`, for its origin to run it; the
    # approval itself (reviewer, note, channel, review time, the human's content) is kept until then. The
    # partial index of open actions names the new open state.
    """
    ALTER TABLE actions ADD COLUMN origin_host TEXT;
    ALTER TABLE actions ADD COLUMN origin_workspace TEXT;
    ALTER TABLE actions ADD COLUMN approval_json TEXT;
    DROP INDEX actions_open;
    CREATE INDEX actions_open ON actions (status) WHERE status IN ('running', 'draft', 'approving', 'approved')
    """,
    # repositories: the repository an action's workspace is a clone of, by a name every clone agrees on
    # (ratchet/repository.py: `host/org/repo`, never a credential), so a team can read the record of one
    # repository (`--repo`); NULL for actions recorded before.
    """
    ALTER TABLE actions ADD COLUMN origin_repo TEXT
    """,
    # reviewer: the delegated reviewer's verdict on an action (record/reviewer.py), one per action, in the role
    # it played (beside a person's answer, in the person's place, or an audit), and each time a class's
    # reviewer gained or lost authority (a loss restarts its score).
    """
    CREATE TABLE reviewer_verdicts (
        id INTEGER PRIMARY KEY,
        action_id INTEGER NOT NULL,
        class TEXT NOT NULL,
        at REAL NOT NULL,
        role TEXT NOT NULL,
        verdict TEXT NOT NULL,
        risk TEXT NOT NULL,
        reason TEXT NOT NULL,
        error TEXT,
        seconds REAL,
        reviewer TEXT NOT NULL
    );
    CREATE UNIQUE INDEX reviewer_verdicts_action ON reviewer_verdicts (action_id);
    CREATE INDEX reviewer_verdicts_by_class ON reviewer_verdicts (class, at);
    CREATE TABLE reviewer_authority (
        id INTEGER PRIMARY KEY,
        class TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        action_id INTEGER
    );
    CREATE INDEX reviewer_authority_by_class ON reviewer_authority (class, id)
    """,
    # answer moments: when the human answered a client's own dialog (a hook's `ask`), so the next answer of
    # the session is timed from it even when another process records it (rules/provenance.py).
    """
    ALTER TABLE actions ADD COLUMN answered_at REAL
    """,
    # busy periods: a period's actions by when they were created, with what the evidence views count of each
    # (class, level, route, outcome, session), so `metrics` aggregates a period from the index alone instead of
    # reading each action's row (its preview, arguments and result); it replaces the narrower index on the time.
    """
    CREATE INDEX actions_period ON actions (created_at, class, class_level, route, status, edited, evidence, tool,
        reviewer, session_id, rule, resolved_at);
    DROP INDEX actions_created
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION in one write transaction; refuse a file from a newer Ratchet."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"trust database {path} has schema version {version}; this Ratchet "
                f"knows up to {SCHEMA_VERSION}: upgrade Ratchet"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
