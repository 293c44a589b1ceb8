"""The trust database: one SQLite file (WAL) or one PostgreSQL database, reached through one connection
and a versioned schema.

Every statement Ratchet runs lives under `record/`: the engine calls named operations
(record/actions.py), never SQL. Each unit of work is one plain function of a connection, run on the
store's thread in one round trip: `Store.run(fn)` as one write transaction (`BEGIN IMMEDIATE` ...
`COMMIT`), `Store.call(fn)` without one (reads). A short unit on a call's path (`short=True`: the
gate's decision with the intent, the outcome) runs on SQLite on the caller's thread instead, and goes to
the store's thread only to wait for another process's write lock. Within one process the store's lock serializes the
units, so concurrent tool calls never interleave statements inside each other's transactions, and
nothing slow (an executor, a human's answer) is ever awaited while it is held. Several server
processes may share one file: SQLite's write lock and a busy timeout queue their transactions. On
PostgreSQL a unit locks the whole record, or only the classes it names (record/locks.py).

What the functions see is the DB-API: `conn.execute(sql, params)` returns a cursor with
`fetchone()`/`fetchall()`, rows indexable by position and by column name. Operations hand rows
upward as plain mappings or dataclasses, never driver types.

Two backends, one SQL: `--db` (or `$RATCHET_DB`) names an SQLite file, or a `postgresql://` URL
for a database a team shares (record/postgres.py: the connection that reads the same statements,
the write lock that stands for `BEGIN IMMEDIATE`, reconnecting after an outage; record/pg_schema.py:
the schema). Every statement under record/ is written in the SQL both accept.

Durability: what a recorded intent survives
-------------------------------------------
An action's intent is committed (status `running`, with the writing process's pid) before its
executor starts, and its outcome after; `recover_interrupted` (record/actions.py) turns a `running`
or `approving` row whose process is gone into `interrupted` at the next open.

- The server killed (`kill -9`, a crash, an OOM kill): nothing committed is lost. In WAL mode a
  COMMIT has reached the operating system's page cache before it returns, whatever `synchronous`
  says, and the file survives the process; the next open finds the intent and marks it (tests/test_stdio.py
  kills a real `ratchet serve` with SIGKILL mid-write; tests/test_crash_leftovers.py an approval).
- The machine losing power: with `synchronous = NORMAL` (the setting here) the database is never
  corrupted, but the last transactions committed before the loss may roll back, since the WAL is
  synced only at checkpoints. An intent can therefore be lost while the effect it announced (a file
  the executor wrote and fsynced) survives: across power loss the intent-before-effect guarantee does
  NOT hold. `synchronous = FULL` syncs the WAL at every COMMIT and makes it hold, at the cost of one
  more fsync per transaction, two per governed call (the intent and the outcome); bench/gate.py's
  `durability` figure measures the difference on the machine it runs on. Ratchet chooses NORMAL: a
  lost intent after a power cut leaves a file changed with no record, which `git status` shows, and
  the governed call's latency is the product's first promise. The undo content store
  (record/content.py) follows the same contract: its newest prior versions may be lost to a power cut.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio

from ratchet.errors import StoreError
from ratchet.record import chain, pg_schema, postgres, schema
from ratchet.record.locks import WAITS, Scope, Timer
from ratchet.record.schema import MIGRATIONS, SCHEMA_VERSION
from ratchet.redact import redact

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ClassRow",
    "Location",
    "PostgresUrl",
    "Store",
    "beside",
    "default_db_path",
    "parse_location",
    "resolve_location",
]

DB_ENV = "RATCHET_DB"
# How an interrupted action whose effect may have happened is recorded (the inbox lists these).
MAY_HAVE_RUN = "interrupted: may have run"
T = TypeVar("T")


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


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL database named by its URL (`postgresql://user@host:5432/name`); shown without a password."""

    url: str

    def __str__(self) -> str:
        return postgres.shown(self.url)


# Where the trust database is: an SQLite file, or a PostgreSQL database.
Location = Path | PostgresUrl


def parse_location(text: str) -> Location:
    """A --db value: a `postgresql://` (or `postgres://`) URL, else the path of an SQLite file."""
    return PostgresUrl(text) if postgres.is_url(text) else Path(text)


def default_db_path(workspace: Path) -> Location:
    """`$RATCHET_DB` if set, else `<workspace>/.ratchet/ratchet.db`."""
    env = os.environ.get(DB_ENV)
    return parse_location(env) if env else workspace / ".ratchet" / "ratchet.db"


def resolve_location(db: Location | None, workspace: Path) -> Location:
    """The database a command uses: `db`, else the default; a file's path made absolute."""
    found = db or default_db_path(workspace)
    return found.absolute() if isinstance(found, Path) else found


def beside(location: Location, workspace: Path) -> Path:
    """The path the files kept beside the trust database are named after (`<db>.http-token`, ...): the
    SQLite file itself, or for a PostgreSQL database `<workspace>/.ratchet/postgres`, since a shared
    database has no directory of its own on this machine."""
    return location if isinstance(location, Path) else workspace / ".ratchet" / "postgres"


# The bearer token of `serve --http` and `ratchet web`, generated beside the database: whoever holds
# it answers for the human, so agent commands never see it (the sandbox hides it; see Workspace.hidden).
TOKEN_SUFFIX = ".http-token"


def default_token_file(db: Path) -> Path:
    """Where the generated token lives: beside the trust database."""
    return db.with_name(db.name + TOKEN_SUFFIX)


# The review page's own secret: never the MCP bearer, which every HTTP client holds in its configuration.
PAGE_TOKEN_SUFFIX = ".page-token"


def default_page_token_file(db: Path) -> Path:
    """Where the review page's own generated secret lives: beside the trust database."""
    return db.with_name(db.name + PAGE_TOKEN_SUFFIX)


class Store:
    """The trust database, one connection. Open with `await Store.open(path)`; close with `await store.close()`."""

    def __init__(self, conn: sqlite3.Connection | postgres.Link, path: Location, worker: Worker) -> None:
        self.path = path
        self._db = conn
        self._worker = worker
        # One unit of work at a time on the shared connection (see the module docstring).
        self._lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Location) -> Store:
        """Open (creating if needed) and migrate the database; StoreError names the file on failure."""
        worker = Worker()
        try:
            conn: sqlite3.Connection | postgres.Link
            if isinstance(path, Path):
                conn = await worker.run(functools.partial(connect, path))
            else:
                conn = await worker.run(functools.partial(connect_postgres, path))
        except BaseException:
            worker.stop()
            raise
        return cls(conn, path, worker)

    async def close(self) -> None:
        """Close the connection (after any unit of work in progress); closing twice is harmless."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    await self._worker.run(self._db.close)
                finally:
                    self._worker.stop()

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, short: bool = False) -> T:
        """Run `fn(connection)` on the store's thread in one round trip, without a transaction (reads).

        `short` is for a few indexed statements on a call's path (the gate's reads): on SQLite they run
        on the caller's thread unless the file is busy (see `run`)."""
        db = self._db
        async with self._lock:
            if self._closed:
                raise StoreError(f"trust database {self.path} is closed")
            # Not cancellable while it runs: the lock is held until the function has returned.
            if isinstance(db, postgres.Link):
                # record/postgres.py's Connection presents the part of sqlite3.Connection that record/ uses.
                return await self._worker.run(functools.partial(db.run, cast(Callable[[postgres.Connection], T], fn)))
            if short:
                try:
                    return without_waiting(functools.partial(_reading, fn), db)
                except Busy:
                    pass  # another process is writing (or checkpointing): wait for it on the store's thread
            return await self._worker.run(functools.partial(fn, db))

    async def _write_now(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        """A short SQLite write unit on the caller's thread, or on the store's if the file is locked."""
        db = self._db
        assert isinstance(db, sqlite3.Connection)
        async with self._lock:
            if self._closed:
                raise StoreError(f"trust database {self.path} is closed")
            try:
                return without_waiting(functools.partial(transaction_now, unit), db)
            except Busy:
                pass  # another process holds the write lock: queue for it on the store's thread
            return await self._worker.run(functools.partial(transaction, unit, db))

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, scope: Scope | None = None, short: bool = False) -> T:
        """Run `fn(connection)` as one write transaction (BEGIN IMMEDIATE ... COMMIT) in one round trip.

        BEGIN IMMEDIATE takes SQLite's write lock up front, so writers of other processes queue (busy
        timeout) instead of failing midway; an exception rolls everything back and is raised here.
        `scope` names the classes the unit reads and writes the standing of (record/locks.py): on
        PostgreSQL only those are locked, beside the chains it appends to; None locks the whole record.

        `short` is for a unit of a few indexed statements on a call's path (the gate's intent and
        outcome). On SQLite it then runs on the caller's thread with no round trip to the store's: its
        write lock is tried without waiting, and when another process holds it the unit goes to the
        store's thread and waits there as any other (bench/results/profile.md: a round trip to the thread
        cost more than SQLite's own work on the gate's units). On PostgreSQL every unit is a network round
        trip and runs on the store's thread.
        """
        if isinstance(self._db, postgres.Link):
            # The same unit of work as one PostgreSQL transaction under its write locks.
            unit = functools.partial(postgres.transaction, cast(Callable[[postgres.Connection], T], fn), scope=scope)
            return await self.call(cast(Callable[[sqlite3.Connection], T], unit))
        if short:
            return await self._write_now(fn)
        return await self.call(functools.partial(transaction, fn))

    async def start_session(self, session_id: str, client: str | None) -> None:
        """Record an agent session (once: a client's session id may come back in every hook call)."""
        await self.run(lambda conn: start_session(conn, session_id, client))

    async def class_row(self, name: str) -> ClassRow | None:
        """A class's standing, or None before it was first seen."""
        return await self.call(lambda conn: class_row(conn, name))

    async def class_rows(self) -> dict[str, ClassRow]:
        """Every class's standing."""
        return await self.call(class_rows)


class Worker:
    """The store's own thread: runs units of work one after another, off the event loop.

    Under asyncio a round trip is a queue put and a future settled from the thread (about a third of
    what `anyio.to_thread.run_sync` costs, measured in bench/profiling.py's `hop_cost`); under another
    anyio backend it falls back to `anyio.to_thread.run_sync`. Either way the wait is shielded: a
    cancelled caller still waits for the function to finish, so the store's lock is never released
    while the connection is in use.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ratchet-store", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, loop, future = item
            try:
                value = fn()
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, value, None)

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the store's thread; its value, or its exception raised here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: anyio's worker threads
            loop = None
        if loop is None:
            with anyio.CancelScope(shield=True):
                value: T = await anyio.to_thread.run_sync(fn)
            return value
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, future))
        with anyio.CancelScope(shield=True):
            value = await future
        return value

    def stop(self) -> None:
        """End the thread once what is queued has run."""
        self._queue.put(None)


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


def connect(path: Path) -> sqlite3.Connection:
    """Open, configure and migrate the file (on a worker thread); StoreError names the file on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used from the store's worker threads, one unit of work at a time (the store's lock).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open trust database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        # SQL can redact in place (a draft's arguments, once it has run or been refused).
        conn.create_function("redact", 1, redact, deterministic=True)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        schema.migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"trust database {path} is unusable: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def connect_postgres(location: PostgresUrl) -> postgres.Link:
    """Connect to and migrate a PostgreSQL database (on a worker thread); StoreError names it on failure."""
    try:
        import psycopg  # optional: the postgres extra
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"trust database {location} is a PostgreSQL URL, but its driver is not installed: "
            "pip install 'ratchet-mcp[postgres]' (psycopg 3)"
        ) from exc

    conn = postgres.connect(location.url)
    try:
        pg_schema.migrate(conn)
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"trust database {location} is unusable: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return postgres.Link(location.url, conn)


# The dialect's settings: wait for another process's write lock, write-ahead log, and the
# durability level the module docstring explains.
BUSY_TIMEOUT_MS = 15000
PRAGMAS = (f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")


def transaction(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """`fn(conn)` inside BEGIN IMMEDIATE ... COMMIT; any exception rolls back and propagates. The wait for
    the file's write lock (another process's transaction) is counted in `locks.WAITS`."""
    with Timer():
        conn.execute("BEGIN IMMEDIATE")
    return _begun(fn, conn)


def _begun(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """`fn(conn)` in the transaction just begun: COMMIT after it, ROLLBACK if it raises."""
    WAITS.add(0.0, 1)
    try:
        value = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return value


class Busy(Exception):
    """SQLite answered SQLITE_BUSY to a unit that was not to wait (`without_waiting`); nothing was done."""


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def without_waiting(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """`fn(conn)` with SQLite's busy timeout at zero: `Busy` when the file is locked, instead of a wait
    that would hold up the caller's thread (the event loop), from a read (`_reading`) or from
    `transaction_now`'s BEGIN IMMEDIATE: either has then done nothing and can be run again."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        return fn(conn)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _reading(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """A read for `without_waiting`: SQLITE_BUSY becomes `Busy` (a read can be run again)."""
    try:
        return fn(conn)
    except sqlite3.OperationalError as exc:
        if _busy(exc):
            raise Busy(str(exc)) from exc
        raise


def transaction_now(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """`transaction` for `without_waiting`: its BEGIN IMMEDIATE raises `Busy` (nothing begun, nothing run)
    when another process holds the write lock; once it holds the lock, `fn` and COMMIT meet no other."""
    _reading(lambda c: c.execute("BEGIN IMMEDIATE"), conn)
    return _begun(fn, conn)


def start_session(conn: sqlite3.Connection, session_id: str, client: str | None) -> None:
    """Record an agent session once."""
    conn.execute(
        "INSERT INTO sessions (id, started_at, client, pid) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (session_id, time.time(), client, os.getpid()),
    )


def class_rows(conn: sqlite3.Connection) -> dict[str, ClassRow]:
    """Every class's standing."""
    return {row["name"]: class_row_from(row) for row in conn.execute("SELECT * FROM class_state")}


def class_row(conn: sqlite3.Connection, name: str) -> ClassRow | None:
    """A class's standing, or None before it was first seen."""
    row = conn.execute("SELECT * FROM class_state WHERE name = ?", (name,)).fetchone()
    return class_row_from(row) if row is not None else None


def read_all(conn: sqlite3.Connection, statements: list[tuple[str, Any]]) -> list[list[Any]]:
    """The rows of each of these reads (none needing another's answer): on PostgreSQL sent as one query string,
    one round trip (record/postgres.py `Connection.read_all`); on SQLite run one after another."""
    if isinstance(conn, sqlite3.Connection):
        return [conn.execute(sql, params).fetchall() for sql, params in statements]
    return cast(postgres.Connection, conn).read_all(statements)


def later(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> None:
    """A write whose result the unit of work never reads: on PostgreSQL sent with the unit's next statement or
    its COMMIT, in one round trip (record/postgres.py `Connection.later`); on SQLite run now."""
    if isinstance(conn, sqlite3.Connection):
        conn.execute(sql, params)
    else:
        cast(postgres.Connection, conn).later(sql, params)


def put_class(conn: sqlite3.Connection, row: ClassRow) -> None:
    """Insert or replace a class's standing (inside the caller's transaction; sent with the unit's next
    statement, `later`)."""
    window = json.dumps([[aid, 1 if ok else 0] for aid, ok in row.window], separators=(",", ":"))
    later(
        conn,
        "INSERT INTO class_state (name, level, policy_start, pinned, window_json, level_since, transition_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET level = excluded.level, "
        "policy_start = excluded.policy_start, pinned = excluded.pinned, window_json = excluded.window_json, "
        "level_since = excluded.level_since, transition_id = excluded.transition_id",
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
