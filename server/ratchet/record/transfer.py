"""Moving a record between backends, and checking one: `ratchet db copy` and `ratchet db check`.

A team starts from one developer's evidence: `copy` carries an SQLite history into an empty
PostgreSQL database table by table, ids kept, in one transaction, then sets each identity column's
next value past the highest id copied. The hash chain (record/chain.py) covers the copied rows as
they were, so the copy is checked the way any record is: both chains verify on the target and end
at the same head as the source, and every table holds as many rows as the source's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratchet.errors import StoreError
from ratchet.record import chain, pg_schema, postgres, roles
from ratchet.record import store as sqlite_store

# Tables that hold history: a target holding any of their rows is not empty.
HISTORY = ("actions", "transitions", "reviews")
BATCH = 500


@dataclass(frozen=True)
class DbCheck:
    """What `ratchet db check` reports: where, which schema version, rows per table, and the chain."""

    database: str
    backend: str
    schema_version: int
    rows: dict[str, int]
    chain: str
    head: str
    ok: bool
    roles: str | None = None  # PostgreSQL: the agent and reviewer roles (record/roles.py), or that there are none


def tables(conn: Any) -> list[str]:
    """The record's tables (whichever backend `conn` reaches), in name order; the schema's bookkeeping left out."""
    if isinstance(conn, sqlite3.Connection):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' AND table_name != 'schema_version' ORDER BY table_name"
        )
    return [str(r[0]) for r in conn.execute(sql).fetchall()]


def columns(conn: Any, table: str) -> list[str]:
    """A table's column names in order (whichever backend `conn` reaches)."""
    if isinstance(conn, sqlite3.Connection):
        return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def schema_version(conn: Any) -> int:
    """The record's schema version (whichever backend `conn` reaches)."""
    if isinstance(conn, sqlite3.Connection):
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    return pg_schema.version(conn)


def check(conn: Any, database: str) -> DbCheck:
    """Schema version, rows per table and the hash chain of one record."""
    counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables(conn)}
    verified = chain.verify(conn)
    backend = "sqlite" if isinstance(conn, sqlite3.Connection) else "postgresql"
    found = roles.state(conn)
    line, sound = found if found is not None else (None, True)
    ok = verified.ok and sound
    return DbCheck(database, backend, schema_version(conn), counts, verified.line(), verified.head, ok, line)


@dataclass(frozen=True)
class CopyReport:
    """What `ratchet db copy` did."""

    source: str
    target: str
    rows: dict[str, int]
    head: str


def copy(source: Path, target: str) -> CopyReport:
    """Copy the SQLite record at `source` into the empty PostgreSQL database at `target` (see the module docstring).

    The source is opened as Ratchet opens it (brought to this version's schema first); nothing is
    written to the target unless all of it is.
    """
    if not source.is_file():
        raise StoreError(f"no trust database at {source}; expected the SQLite file to copy from")
    src = sqlite_store.connect(source)
    try:
        before = chain.verify(src)
        if not before.ok:
            raise StoreError(f"the record in {source} does not verify ({before.line()}); it was not copied")
        dst = postgres.connect(target)
        try:
            pg_schema.migrate(dst)
            rows = postgres.transaction(lambda conn: _copy_rows(src, conn, target), dst)
            after = chain.verify(postgres.as_sqlite(dst))
            counts = {t: int(dst.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in rows}
        finally:
            dst.close()
    finally:
        src.close()
    if not after.ok or after.head != before.head or counts != rows:
        raise StoreError(
            f"the copy in {postgres.shown(target)} does not match {source}: chain {after.line()}, head "
            f"{after.head} (source {before.head}), rows {counts} (source {rows})"
        )
    return CopyReport(str(source), postgres.shown(target), rows, after.head)


def _copy_rows(src: sqlite3.Connection, dst: postgres.Connection, target: str) -> dict[str, int]:
    for table in HISTORY:
        if dst.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            raise StoreError(
                f"trust database {postgres.shown(target)} already holds {table}; copy only into an empty "
                "database (create a new one, or drop this one's tables)"
            )
    mine = set(tables(dst))
    counts: dict[str, int] = {}
    for table in tables(src):
        if table not in mine:
            raise StoreError(f"trust database {postgres.shown(target)} has no table {table}: its schema is older")
        names = columns(src, table)
        missing = set(names) - set(columns(dst, table))
        if missing:
            raise StoreError(f"table {table} of {postgres.shown(target)} lacks {sorted(missing)}: its schema differs")
        dst.execute(f"DELETE FROM {table}")  # rows only a fresh schema wrote (none today); the source's replace them
        listed = ", ".join(names)
        insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})"
        cursor = src.execute(f"SELECT {listed} FROM {table} ORDER BY rowid")
        n = 0
        while batch := cursor.fetchmany(BATCH):
            dst.executemany(insert, [tuple(r) for r in batch])
            n += len(batch)
        counts[table] = n
        sequence = dst.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone() if "id" in names else None
        if sequence is not None and sequence[0] is not None:
            # The identity's next value goes past every id copied (is_called false: max + 1 is next).
            dst.execute(f"SELECT setval(?, coalesce(max(id), 0) + 1, false) FROM {table}", (sequence[0],))
    return counts


def target_counts(conn: Any, pattern: str) -> dict[str, int]:
    """Actions whose target is LIKE `pattern`: rows, distinct targets, and those still `running`
    (what a throughput run checks: nothing lost, nothing doubled, nothing left half-done)."""
    row = conn.execute(
        "SELECT count(*), count(DISTINCT target), count(*) FILTER (WHERE status = 'running') FROM actions "
        "WHERE target LIKE ?",
        (pattern,),
    ).fetchone()
    return {"rows": int(row[0]), "distinct": int(row[1]), "running": int(row[2])}
