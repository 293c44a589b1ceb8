"""The trust database: one SQLite file (WAL) through aiosqlite, a versioned schema, no policy logic.

Rows are written so that nothing is lost: an action's intent is inserted (status `running`,
with the writing process's pid) before its executor starts, and its outcome is written after.
A process that dies in between leaves a `running` row that `recover_interrupted` turns into
`interrupted` the next time any Ratchet process opens the file. Several server processes may
share one file: writes run in `BEGIN IMMEDIATE` transactions with a busy timeout.

Within one process, every unit of work on the shared connection - a whole `transaction()`, a `run`,
or a single statement - holds the store's lock, so concurrent tool calls in one session never
interleave their statements inside each other's transactions. Nothing slow (an executor, a human's
answer) is awaited while the lock is held: callers open a transaction only around database work.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from ratchet.errors import StoreError
from ratchet.executors.shell import process_alive
from ratchet.record import chain
from ratchet.redact import redact

DB_ENV = "RATCHET_DB"
# How an interrupted action whose effect may have happened is recorded (the inbox lists these).
MAY_HAVE_RUN = "interrupted: may have run"
T = TypeVar("T")

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
)

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class ClassRow:
    """A class's persisted standing."""

    name: str
    level: str
    policy_start: str
    pinned: str | None
    window: list[tuple[int, bool]]
    level_since: float
    transition_id: int | None


def default_db_path(workspace: Path) -> Path:
    """`$RATCHET_DB` if set, else `<workspace>/.ratchet/ratchet.db`."""
    env = os.environ.get(DB_ENV)
    return Path(env) if env else workspace / ".ratchet" / "ratchet.db"


class Store:
    """Async access to the trust database. Open with `await Store.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        # One unit of work at a time on the shared connection; `_owner` is the task holding it, so
        # the statements of a transaction (same task) pass while other tasks' statements wait.
        self._lock = anyio.Lock()
        self._owner: int | None = None

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[None]:
        """Hold the lock for one unit of work, unless the current task already holds it."""
        me = anyio.get_current_task().id
        if self._owner == me:
            yield
            return
        async with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the database; StoreError names the file on failure."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open trust database {path}: {exc}") from exc
        db.row_factory = aiosqlite.Row
        store = cls(db, path)
        try:
            # SQL can redact in place (a draft's arguments, once it has run or been refused).
            await db.create_function("redact", 1, redact, deterministic=True)
            await db.execute("PRAGMA busy_timeout = 15000")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await store._migrate()
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"trust database {path} is unusable: {exc}") from exc
        except StoreError:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (after any unit of work in progress)."""
        async with self._unit():
            await self.db.close()

    async def _migrate(self) -> None:
        async with self.transaction():
            version = (await self.one("PRAGMA user_version"))[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"trust database {self.path} has schema version {version}; this Ratchet "
                    f"knows up to {SCHEMA_VERSION}: upgrade Ratchet"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {step + 1}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A write transaction that takes the locks up front, so concurrent writers queue, not fail.

        The store's lock (other tasks of this process) and SQLite's write lock (other processes) are
        held until COMMIT. Transactions do not nest: a task that opens one inside its own fails.
        """
        if self._owner == anyio.get_current_task().id:
            raise StoreError("a transaction was opened inside another one; finish the first before starting one")
        async with self._unit():
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with anyio.CancelScope(shield=True):  # a cancelled call must not leave the transaction open
                    await self.db.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await self.db.execute("COMMIT")

    # Each call below is one round trip to aiosqlite's worker thread. A round trip costs far more
    # than the SQL it carries (about 90 µs against a few µs, measured in bench/), so these use the
    # single-hop forms rather than cursor objects (execute + fetch + close is three).

    async def one(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> aiosqlite.Row:
        """Exactly one row (raises StoreError if none)."""
        row = await self.maybe(sql, params)
        if row is None:
            raise StoreError(f"expected a row from: {sql.split()[0:4]}")
        return row

    async def maybe(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> aiosqlite.Row | None:
        """At most one row (positional parameters, or named ones from a mapping)."""
        async with self._unit():
            rows = await self.db.execute_fetchall(sql, params if isinstance(params, Mapping) else tuple(params))
        return next(iter(rows), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Every row."""
        async with self._unit():
            return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run an INSERT and return the new rowid."""
        async with self._unit():
            row = await self.db.execute_insert(sql, tuple(params))
        assert row is not None
        return int(row[0])

    async def update(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run an UPDATE/DELETE (or an upsert) and return how many rows changed."""
        async with self._unit():
            cursor = await self.db.execute(sql, tuple(params))
            return cursor.rowcount

    # -- sessions -------------------------------------------------------------------------------

    async def start_session(self, session_id: str, client: str | None) -> None:
        """Record an agent session (once: a client's session id may come back in every hook call)."""
        async with self.transaction():
            await self.insert(
                "INSERT OR IGNORE INTO sessions (id, started_at, client, pid) VALUES (?, ?, ?, ?)",
                (session_id, time.time(), client, os.getpid()),
            )

    # -- class state ----------------------------------------------------------------------------

    async def class_row(self, name: str) -> ClassRow | None:
        """A class's standing, or None before it was first seen."""
        return await self.call(lambda conn: class_row(conn, name))

    async def class_rows(self) -> dict[str, ClassRow]:
        """Every class's standing."""
        return {row["name"]: class_row_from(row) for row in await self.all("SELECT * FROM class_state")}

    # -- work done on the database thread, in one round trip ------------------------------------

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread in one round trip (inside the caller's transaction)."""
        db = self.db
        # aiosqlite runs every statement through one worker thread, one round trip each; `_execute` is
        # that funnel, and `_conn` the connection it owns. They are private, so their use is confined
        # to this method (and aiosqlite is pinned below 0.23 in pyproject.toml). A gate call's outcome
        # is five statements: run as one function, it is one round trip instead of five (bench/).
        async with self._unit():
            result: T = await db._execute(lambda: fn(db._conn))  # type: ignore[no-untyped-call]
        return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` as one write transaction (BEGIN IMMEDIATE ... COMMIT) in one round trip."""

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                value = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return value

        return await self.call(transaction)

    # -- recovery -------------------------------------------------------------------------------

    async def recover_interrupted(self) -> list[aiosqlite.Row]:
        """Mark `running`/`approving` rows whose process is gone as `interrupted`; return them."""
        # The first condition repeats the partial index's own, so SQLite uses it instead of scanning.
        rows = await self.all(
            "SELECT * FROM actions WHERE status IN ('running', 'drafted', 'approving') "
            "AND status IN ('running', 'approving')"
        )
        dead = [row for row in rows if row["pid"] != os.getpid() and not process_alive(row["pid"])]
        if dead:
            async with self.transaction():
                for row in dead:
                    error = f"the process (pid {row['pid']}) ended before the outcome was recorded"
                    if row["status"] == "approving" and row["child_pid"] is None:
                        # A human's approval was being carried out: its effect may have happened.
                        error = f"{MAY_HAVE_RUN}: {error}, while the approval was being carried out"
                    if row["child_pid"] is not None:
                        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["child_started_at"]))
                        error = (
                            f"{MAY_HAVE_RUN}: {error}, while its command (pid {row['child_pid']}, "
                            f"started {started}) was running; what was left of it was killed"
                        )
                    await self.update(
                        "UPDATE actions SET status = 'interrupted', finished_at = ?, error = ? "
                        "WHERE id = ? AND status = ?",
                        (time.time(), error, row["id"], row["status"]),
                    )
        return dead


def class_row(conn: sqlite3.Connection, name: str) -> ClassRow | None:
    """A class's standing, or None before it was first seen."""
    row = conn.execute("SELECT * FROM class_state WHERE name = ?", (name,)).fetchone()
    return class_row_from(row) if row is not None else None


def put_class(conn: sqlite3.Connection, row: ClassRow) -> None:
    """Insert or replace a class's standing (inside the caller's transaction)."""
    window = json.dumps([[aid, 1 if ok else 0] for aid, ok in row.window], separators=(",", ":"))
    conn.execute(
        "INSERT OR REPLACE INTO class_state (name, level, policy_start, pinned, window_json, level_since, "
        "transition_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.name, row.level, row.policy_start, row.pinned, window, row.level_since, row.transition_id),
    )


def add_transition(
    conn: sqlite3.Connection,
    cls: str,
    from_level: str,
    to_level: str,
    kind: str,
    actor: str,
    reason: str,
    evidence: dict[str, Any],
    action_id: int | None,
) -> int:
    """Store a transition with its evidence at the end of the hash chain (inside the caller's transaction); its id."""
    facts = {
        "class": cls,
        "at": time.time(),
        "from_level": from_level,
        "to_level": to_level,
        "kind": kind,
        "actor": actor,
        "reason": reason,
        "evidence_json": json.dumps(evidence),
        "action_id": action_id,
    }
    return chain.append(conn, "transitions", facts)


def class_row_from(row: sqlite3.Row) -> ClassRow:
    """A ClassRow from a `class_state` row."""
    return ClassRow(
        row["name"],
        row["level"],
        row["policy_start"],
        row["pinned"],
        [(aid, bool(ok)) for aid, ok in json.loads(row["window_json"])],
        row["level_since"],
        row["transition_id"],
    )
