"""The PostgreSQL backend: one connection that speaks the record layer's SQL, and its unit of work.

Every statement under `record/` is written once, in the SQL both SQLite and PostgreSQL accept, with
the DB-API's `?` placeholders (and `:name` for named ones) and rows read by position or by column
name. `Connection` presents exactly that surface over a psycopg 3 connection:

- placeholders are translated (`?` → `%s`, `:name` → `%(name)s`, `%` → `%%`) by a tokenizer that
  leaves string literals, quoted identifiers and `::` casts alone, so a `?` inside `'...'` stays text;
- values are bound client-side (psycopg's `ClientCursor`: psycopg quotes them), so a parameter's type
  is the value's, as in SQLite, and `? IS NULL` needs no cast;
- rows (`Row`) index by position, by name, slice, iterate and turn into dicts like `sqlite3.Row`;
- what SQLite offers as built-in functions the record's reads use (`json_extract` on the paths
  Ratchet writes, `json_array_length` of text) exist as SQL functions the baseline schema creates
  (record/pg_schema.py).

Why psycopg 3 and not asyncpg: the store runs each unit of work as one synchronous function on its
worker thread (record/store.py), so a synchronous DB-API connection plugs into that seam unchanged;
asyncpg is asyncio-only and would need every operation under record/ rewritten as coroutines. One
connection per process, no pool: the store already serializes units of work within a process, and a
pool would only hold idle connections.

Guarantees, as with SQLite:

- A write unit of work (`transaction`) takes its advisory lock with its BEGIN, the counterpart of SQLite's
  `BEGIN IMMEDIATE`: by default one lock for the whole database, so writers of every process and machine
  run one after another; the units on a call's hot path take it shared and lock a class right before they
  read its standing (record/locks.py), so calls of different classes settle at once while a
  check-then-write of one class still sees what the writer before it committed. Reads that need no
  other's answer go out as one query string (`read_all`), and writes whose result is not read go out with
  the next statement or the COMMIT (`later`).
  The hash chain (record/chain.py) is appended under a lock of its own and cannot fork; a draft's claim
  is `UPDATE ... WHERE status = 'draft'` on a row taken `FOR UPDATE SKIP LOCKED`, atomic on its own.
- A broken connection (the server restarted, the network went away) fails the unit of work with a
  StoreError that names the database; the next unit of work opens a new connection. A unit whose
  FIRST statement found the connection dead is run again once on a new one: nothing of it reached the
  server. Any other failure is never retried, since its COMMIT may have landed: no record is doubled.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast, overload
from urllib.parse import urlsplit, urlunsplit

from ratchet.errors import StoreError
from ratchet.record.locks import CLASS_SPACE, CLOCK, WAITS, Scope, between_clocks, take

T = TypeVar("T")

SCHEMES = ("postgresql://", "postgres://")
# The key of the advisory lock every write transaction takes (any constant; "ratchet" in ASCII).
WRITE_LOCK = 0x72617463686574
WRITE_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
CLASS_LOCK = "SELECT pg_advisory_xact_lock(?, hashtext(?))"  # a class's key (record/locks.py)
SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ"
CONNECT_TIMEOUT = 10  # seconds: an unreachable server fails the call instead of hanging it


def is_url(text: str) -> bool:
    """Whether a --db value names a PostgreSQL database rather than an SQLite file."""
    return text.startswith(SCHEMES)


def shown(url: str) -> str:
    """The URL as messages and logs show it: any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


# -- the SQL the record layer writes, as psycopg reads it ----------------------------------------------

_TOKENS = re.compile(
    r"""(?P<literal>'(?:[^']|'')*')"""  # a string literal ('' is a quote inside it)
    r"""|(?P<ident>"(?:[^"]|"")*")"""  # a quoted identifier
    r"""|(?P<cast>::)"""  # a PostgreSQL cast, never a named parameter
    r"""|(?P<named>:[A-Za-z_]\w*)"""
    r"""|(?P<mark>\?)"""
    r"""|(?P<percent>%)"""
    r"""|(?P<other>[^'"?%:]+|:)""",
)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """The statement with psycopg's placeholders; ValueError for an unterminated literal or identifier.

    >>> translate("SELECT '?', x FROM t WHERE a = ? AND b LIKE 'x%' AND c = :cls")
    "SELECT '?', x FROM t WHERE a = %s AND b LIKE 'x%%' AND c = %(cls)s"
    """
    out: list[str] = []
    pos = 0
    for match in _TOKENS.finditer(sql):
        if match.start() != pos:
            break
        pos = match.end()
        kind, text = match.lastgroup, match.group()
        if kind == "mark":
            out.append("%s")
        elif kind == "named":
            out.append(f"%({text[1:]})s")
        elif kind in ("literal", "ident", "percent"):
            out.append(text.replace("%", "%%"))
        else:
            out.append(text)
    if pos != len(sql):
        raise ValueError(f"unterminated quote in SQL at offset {pos}: {sql[pos : pos + 40]!r}")
    return "".join(out)


class Row:
    """A result row read by position, by column name, by slice, or as a mapping (`dict(row)`)."""

    __slots__ = ("_index", "_names", "_values")

    def __init__(self, values: Sequence[Any], names: Sequence[str], index: Mapping[str, int]) -> None:
        self._values = tuple(values)
        self._names = names
        self._index = index  # a name's first column, as sqlite3.Row finds it

    @overload
    def __getitem__(self, key: int | str) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...
    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        """The column names, in order (what `dict(row)` reads)."""
        return list(self._names)

    def __repr__(self) -> str:
        return f"Row({list(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = [column.name for column in cursor.description or ()]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return lambda values: Row(values, names, index)


class Connection:
    """A psycopg connection presenting what record/ uses of `sqlite3.Connection`."""

    def __init__(self, raw: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self.statements = 0  # in the current unit of work: 0 means nothing reached the server yet
        # The classes whose locks the unit of work in progress holds (record/locks.py); None: the whole record.
        self.held: tuple[str, ...] | None = None
        # Writes a unit left to send with its COMMIT, in one round trip (`later`); None outside a unit of work.
        self.deferred: list[tuple[str, Sequence[Any]]] | None = None
        # Class locks asked for and not yet sent: they go out with the unit's next statement (`hold`).
        self.locking: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """Run one statement; the cursor (`fetchone`, `fetchall`, `rowcount`, iteration) over `Row`s.

        A plain `BEGIN` (a read on one snapshot, record/evidence.py) is SQLite's deferred transaction,
        which reads one snapshot throughout: here, REPEATABLE READ. Write units of work begin with
        `transaction` below instead, in READ COMMITTED under the write lock.
        """
        if self.deferred:
            self.flush()
        if self.locking:
            self.lock_now()
        cursor = self.raw.cursor()
        if sql.strip().upper() == "BEGIN":
            sql = SNAPSHOT
        cursor.execute(translate(sql), params)
        self.statements += 1
        return cursor

    def hold(self, names: Sequence[str]) -> None:
        """Lock these classes in the unit of work in progress (record/locks.py `settling`), in name order, after
        any it holds already; nothing when it holds the whole record. The locks go out ahead of the unit's next
        statement, in the same round trip when that is a `read_all`: no statement of the unit after this call
        runs before they are granted."""
        if self.held is None:
            return
        wanted = sorted(set(names) - set(self.held))
        if not wanted:
            return
        if self.held and wanted[0] < self.held[-1]:
            # Out of order: two units could each hold the class the other waits for.
            raise StoreError(f"class locks taken out of name order: {wanted} after {list(self.held)}")
        self.locking += wanted
        self.held = (*self.held, *wanted)

    def lock_now(self) -> None:
        """Send the class locks asked for (`hold`) now, each its own round trip."""
        names, self.locking = self.locking, []
        if not names:
            return
        for name in names:
            take(self, CLASS_LOCK, (CLASS_SPACE, name))

    def later(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose result the unit does not read, sent with the next statement or the COMMIT in one round
        trip (in order: any statement the unit runs before the COMMIT sends the writes kept before it)."""
        if self.deferred is None:
            self.execute(sql, params)
            return
        if self.locking:
            self.lock_now()  # a write asked for after a lock goes out after it
        self.deferred.append((sql, params))

    def flush(self, *then: str) -> None:
        """Send the deferred writes, and the statements `then` (a COMMIT), in one round trip."""
        pending = self.deferred or []
        if self.deferred is not None:
            self.deferred = []
        if self.locking:
            self.lock_now()
        if not pending and not then:
            return
        cursor = self.raw.cursor()
        # Bound here (psycopg's ClientCursor.mogrify) and sent as one query string: the simple query protocol
        # runs its statements in order, and the first that fails fails the rest (the unit then rolls back).
        cursor.execute("; ".join([*(cursor.mogrify(translate(sql), params) for sql, params in pending), *then]))
        self.statements += len(pending) + len(then)

    def read_all(self, statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]]) -> list[list[Row]]:
        """The rows of each of these reads, sent as one query string: one round trip. Class locks asked for
        (`hold`) go first in the same string: each read, a statement of its own in READ COMMITTED, sees what was
        committed before they were granted. Their wait is the server's clock read around them (`WAITS`)."""
        if self.deferred:
            self.flush()
        locks, self.locking = self.locking, []
        cursor = self.raw.cursor()
        sent = [cursor.mogrify(CLASS_LOCK.replace("?", "%s"), (CLASS_SPACE, name)) for name in locks]
        if sent:
            sent = [CLOCK, *sent, CLOCK]
        sent += [cursor.mogrify(translate(sql), params) for sql, params in statements]
        cursor.execute("; ".join(sent))
        self.statements += len(sent)
        out = [cursor.fetchall()]
        while cursor.nextset():
            out.append(cursor.fetchall())
        if locks:
            granted, asked = out[len(locks) + 1][0][0], out[0][0][0]
            WAITS.add(float((granted - asked).total_seconds()))
            out = out[len(locks) + 2 :]
        return out

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Any:
        """Run one statement for each set of parameters."""
        if self.deferred:
            self.flush()
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), list(seq))
        self.statements += 1
        return cursor

    @property
    def in_transaction(self) -> bool:
        """A transaction is open on the connection (as `sqlite3.Connection.in_transaction`)."""
        import psycopg  # optional: the postgres extra

        return bool(self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    @property
    def broken(self) -> bool:
        """The connection can no longer be used (closed, or lost by the server or the network)."""
        return bool(self.raw.closed or self.raw.broken)

    def close(self) -> None:
        """Close it (closing a broken connection is harmless)."""
        self.raw.close()


def as_sqlite(conn: Connection) -> sqlite3.Connection:
    """The connection as record/'s functions are annotated to take it: it presents the part of
    `sqlite3.Connection` they use (the one place the two types meet)."""
    return cast(sqlite3.Connection, conn)


def connect(url: str) -> Connection:
    """Open a connection in autocommit mode (units of work say BEGIN themselves); StoreError on failure."""
    import psycopg  # optional: the postgres extra

    try:
        raw = psycopg.connect(
            url,
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            row_factory=_row_factory,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="ratchet",
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach trust database {shown(url)}: {_first_line(exc)}") from exc
    return Connection(raw, url)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def transaction(fn: Callable[[Connection], T], conn: Connection, scope: Scope | None = None) -> T:
    """`fn(conn)` inside BEGIN ... COMMIT, holding the write locks of `scope` (record/locks.py: the whole
    record when None); an exception rolls back.

    READ COMMITTED: each statement sees what was committed before it, so after the locks are taken the
    unit sees every earlier writer's work (a snapshot taken before the wait would not).
    """
    lock = "pg_advisory_xact_lock" if scope is None else "pg_advisory_xact_lock_shared"
    try:
        # BEGIN and the record's lock in one round trip (one query string); its wait read from the server's clock.
        WAITS.add(between_clocks(conn.execute(f"{WRITE_BEGIN}; {CLOCK}; SELECT {lock}(?); {CLOCK}", (WRITE_LOCK,))))
        conn.deferred, conn.locking = [], []
        conn.held = None if scope is None else ()
        conn.hold(scope.classes if scope is not None else ())
        conn.lock_now()  # a scope's classes: before the unit's first statement
        WAITS.add(0.0, 1)
        value = fn(conn)
        conn.held = None
        conn.flush("COMMIT")  # the writes left for it, and the COMMIT: one round trip
    except BaseException:
        conn.held, conn.deferred, conn.locking = None, None, []
        if not conn.broken and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.held, conn.deferred, conn.locking = None, None, []
    return value


class Link:
    """The store's connection to one PostgreSQL database: opened lazily, replaced when it breaks."""

    def __init__(self, url: str, conn: Connection) -> None:
        self.url = url
        self._open: Connection | None = conn

    def run(self, fn: Callable[[Connection], T]) -> T:
        """`fn(connection)` (on the store's thread); a lost connection becomes a StoreError naming the database."""
        import psycopg  # optional: the postgres extra

        for attempt in (1, 2):
            conn = self._current()
            conn.statements = 0
            try:
                return fn(conn)
            except psycopg.OperationalError as exc:
                if not conn.broken:
                    raise
                self._drop()
                if attempt == 1 and conn.statements == 0:
                    continue  # the connection was already dead: nothing of this unit reached the server
                raise StoreError(
                    f"lost the connection to trust database {shown(self.url)} during a unit of work, which "
                    f"was rolled back unless its commit had reached the server: {_first_line(exc)}"
                ) from exc
        raise AssertionError("unreachable")

    def _current(self) -> Connection:
        if self._open is None:
            self._open = connect(self.url)
        return self._open

    def _drop(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def close(self) -> None:
        """Close the connection, if one is open."""
        self._drop()
