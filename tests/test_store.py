"""The trust database: versioned schema, migrations, refusal of the unknown, concurrent writers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from ratchet.errors import StoreError
from ratchet.record import lifecycle
from ratchet.record.store import MIGRATIONS, SCHEMA_VERSION, Store, parse_location


def _version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


@pytest.mark.asyncio
async def test_a_new_database_is_at_the_current_version_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "a" / "r.db")
    try:
        mode = await store.call(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        await store.close()
    assert mode == "wal" and _version(tmp_path / "a" / "r.db") == SCHEMA_VERSION


@pytest.mark.asyncio
async def test_an_older_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    con.execute(
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('docs', 1.0, 'draft', 'confirm', 'promote', 'ratchet', 'earned', '{}')"
    )
    con.commit()
    con.close()
    store = await Store.open(path)
    try:
        columns = {row[1] for row in await store.call(lambda c: c.execute("PRAGMA table_info(actions)").fetchall())}
        kept = await store.call(lambda c: c.execute("SELECT class FROM transitions").fetchall())
    finally:
        await store.close()
    assert {"subject_json", "level_transition"} <= columns
    assert [row[0] for row in kept] == ["docs"]
    assert _version(path) == SCHEMA_VERSION


@pytest.mark.asyncio
async def test_an_edited_approval_kept_as_a_note_prefix_becomes_the_edited_column(tmp_path: Path) -> None:
    path = tmp_path / "v9.db"
    con = sqlite3.connect(path)
    for step in MIGRATIONS[:9]:
        con.executescript(step)
    con.execute("PRAGMA user_version = 9")
    row = (
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "class_level, level, route, triggers_json, status, pid, review_note) VALUES "
        "('s', 1.0, 'write_file', 'a', 'docs', 'r', 'p', '{}', '', 'draft', 'draft', 'draft', '[]', 'executed', 1, ?)"
    )
    for note in ("edited before approval: kept the header", "edited before approval: ", "looks fine"):
        con.execute(row, (note,))
    con.commit()
    con.close()
    store = await Store.open(path)
    try:
        rows = await store.call(lambda c: c.execute("SELECT edited, review_note FROM actions ORDER BY id").fetchall())
    finally:
        await store.close()
    assert [(r[0], r[1]) for r in rows] == [(1, "kept the header"), (1, None), (0, "looks fine")]


@pytest.mark.asyncio
async def test_a_database_from_a_newer_ratchet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="upgrade Ratchet"):
        await Store.open(path)


@pytest.mark.asyncio
async def test_a_file_that_is_not_a_database_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await Store.open(path)


@pytest.mark.asyncio
async def test_concurrent_writers_queue_instead_of_failing(backend: str) -> None:
    path = parse_location(backend)
    stores = [await Store.open(path) for _ in range(4)]

    async def write(store: Store, n: int) -> None:
        for i in range(50):
            await store.run(
                lambda conn, key=f"{n}-{i}": conn.execute(
                    "INSERT INTO sessions (id, started_at, client, pid) VALUES (?, 0, 'x', 1)", (key,)
                )
            )

    async with anyio.create_task_group() as tg:
        for n, store in enumerate(stores):
            tg.start_soon(write, store, n)
    count = await stores[0].call(lambda conn: conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
    for store in stores:
        await store.close()
    assert count == 200


@pytest.mark.asyncio
async def test_a_queued_draft_is_called_draft_and_a_folded_diff_keeps_its_count(tmp_path: Path) -> None:
    """v11: the database says `draft` like the API, and the lines a long diff folded away are a column."""
    path = tmp_path / "v10.db"
    con = sqlite3.connect(path)
    for step in MIGRATIONS[:10]:
        con.executescript(step)
    con.execute("PRAGMA user_version = 10")
    row = (
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "class_level, level, route, triggers_json, status, pid) VALUES "
        "('s', 1.0, 'write_file', 'a', 'docs', 'r', 'p', '{}', ?, 'draft', 'draft', 'draft', '[]', ?, 1)"
    )
    folded = "--- a/x\n+++ b/x\n-a\n+b\n[diff truncated: 1234 more lines not shown]\n"
    con.execute(row, (folded, "drafted"))
    con.execute(row, ("--- a/x\n+++ b/x\n-a\n+b\n", "executed"))
    con.commit()
    con.close()
    store = await Store.open(path)
    try:
        rows = await store.call(
            lambda conn: conn.execute("SELECT status, hidden_lines FROM actions ORDER BY id").fetchall()
        )
        plan = await store.call(
            lambda conn: conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM actions WHERE status IN "
                f"({', '.join(repr(s.value) for s in lifecycle.OPEN)}) AND status = 'draft'"
            ).fetchall()
        )
    finally:
        await store.close()
    assert [(r[0], r[1]) for r in rows] == [("draft", 1234), ("executed", 0)]
    assert "actions_open" in " ".join(str(r[3]) for r in plan)  # the partial index names the new word


@pytest.mark.asyncio
async def test_a_failed_unit_of_work_leaves_nothing_behind(backend: str) -> None:
    store = await Store.open(parse_location(backend))

    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO sessions (id, started_at, client, pid) VALUES ('half', 0, 'x', 1)")
        raise StoreError("stop midway")

    try:
        with pytest.raises(StoreError, match="midway"):
            await store.run(half)
        count = await store.call(lambda conn: conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
        # The connection is usable again: the next unit of work commits.
        await store.run(lambda conn: conn.execute("INSERT INTO sessions VALUES ('whole', 0, 'x', 1)"))
        after = await store.call(lambda conn: [r[0] for r in conn.execute("SELECT id FROM sessions")])
    finally:
        await store.close()
    assert count == 0 and after == ["whole"]


@pytest.mark.asyncio
async def test_units_of_work_in_one_process_never_interleave(backend: str) -> None:
    """Each unit reads a counter, yields the thread, and writes it back plus one: interleaved units would lose
    increments; serialized ones never do."""
    import time

    store = await Store.open(parse_location(backend))
    await store.run(lambda conn: conn.execute("INSERT INTO sessions VALUES ('n', 0, '0', 1)"))

    def bump(conn: sqlite3.Connection) -> None:
        n = int(conn.execute("SELECT client FROM sessions WHERE id = 'n'").fetchone()[0])
        time.sleep(0.001)  # another thread would run here if the store let it
        conn.execute("UPDATE sessions SET client = ? WHERE id = 'n'", (str(n + 1),))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(store.run, bump)
        final = await store.call(lambda conn: conn.execute("SELECT client FROM sessions").fetchone()[0])
    finally:
        await store.close()
    assert final == "40"


@pytest.mark.asyncio
async def test_a_closed_store_says_so(backend: str) -> None:
    store = await Store.open(parse_location(backend))
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.call(lambda conn: conn.execute("SELECT 1").fetchone())
