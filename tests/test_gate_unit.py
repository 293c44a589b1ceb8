"""A call decided and its intent recorded in one unit of work, and short units run without a thread hop.

`Engine.govern` (the path of a client that cannot ask its human) reads what the gate needs, decides
and inserts the intent of a call that runs in one transaction; the outcome is the second and last
unit. On SQLite the gate's short units run on the event loop's thread, and go to the store's own
thread, where waiting does not hold up the loop, when another process holds the write lock.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet import operations
from ratchet.engine import Engine
from ratchet.errors import RatchetError
from ratchet.record.store import Store


def _count_units(engine: Engine) -> list[str]:
    """Every unit of work the engine's store runs from now on, by kind (the outer one of nested calls)."""
    store = engine.store
    seen: list[str] = []
    depth = [0]

    def wrap(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        async def unit(fn: Callable[[Any], Any], **kwargs: Any) -> Any:
            if not depth[0]:
                seen.append(kind)
            depth[0] += 1
            try:
                return await original(fn, **kwargs)
            finally:
                depth[0] -= 1

        return unit

    store.call = wrap("read", store.call)  # type: ignore[method-assign]
    store.run = wrap("write", store.run)  # type: ignore[method-assign]
    return seen


@pytest.mark.asyncio
async def test_an_autonomous_call_is_decided_with_its_intent_in_one_unit_and_settled_in_a_second(
    workspace: Path, policies: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "auto").mkdir()
    (workspace / "auto" / "a.txt").write_text("before\n")
    seen_at_write: list[tuple[Any, ...]] = []
    original = operations.operation("write_file")

    async def execute(*args: Any, **kwargs: Any) -> Any:
        # Another connection, as another process would: the intent is committed before the effect.
        con = sqlite3.connect(db)
        try:
            seen_at_write.extend(
                con.execute("SELECT status, class, level, route, pid FROM actions WHERE tool = 'write_file'")
            )
        finally:
            con.close()
        return await original.execute(*args, **kwargs)

    monkeypatch.setitem(operations.OPERATIONS, "write_file", dataclasses.replace(original, execute=execute))
    async with await Engine.open(workspace, policies=policies, db=db, client="test") as engine:
        units = _count_units(engine)
        outcome = await engine.govern("write_file", {"path": "auto/a.txt", "content": "after\n"}, intent="edit a")
        during = list(units)
        row = await engine.row(outcome.action_id)
    assert outcome.status == "executed"
    assert (workspace / "auto" / "a.txt").read_text() == "after\n"
    assert during == ["write", "write"], during  # decide + intent, then the outcome: nothing else
    assert seen_at_write == [("running", "auto", "autonomous", "execute", os.getpid())]
    assert row is not None and row["status"] == "executed" and row["intent"] == "edit a"


@pytest.mark.asyncio
async def test_a_call_that_does_not_run_is_held_as_before(workspace: Path, policies: Path, db: Path) -> None:
    """A `confirm` with nobody to ask is queued as a draft, a blocked class blocks: no intent is claimed."""
    async with await Engine.open(workspace, policies=policies, db=db, client="test") as engine:
        asked = await engine.govern("write_file", {"path": "ask/a.txt", "content": "x\n"})
        stopped = await engine.govern("write_file", {"path": "stop/a.txt", "content": "x\n"})
        queue = await engine.queue()
    assert (asked.status, stopped.status) == ("draft", "blocked")
    assert [item.action_id for item in queue] == [asked.action_id]
    assert not (workspace / "ask" / "a.txt").exists() and not (workspace / "stop" / "a.txt").exists()


@pytest.mark.asyncio
async def test_a_call_refused_before_its_decision_is_recorded_as_refused(
    workspace: Path, policies: Path, db: Path
) -> None:
    async with await Engine.open(workspace, policies=policies, db=db, client="test") as engine:
        with pytest.raises(RatchetError) as refused:
            await engine.govern("write_file", {"path": "../escape.txt", "content": "x\n"}, intent="escape")
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT tool, status, intent, error FROM actions").fetchall()
    finally:
        con.close()
    assert rows == [("write_file", "refused", "escape", str(refused.value))]
    assert not (workspace.parent / "escape.txt").exists()


@pytest.mark.asyncio
async def test_a_short_unit_runs_on_the_loop_thread_and_waits_for_another_writer_off_it(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await Store.open(path)
    loop_thread = threading.get_ident()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        free = await store.run(lambda conn: threading.get_ident(), short=True)
        read = await store.call(lambda conn: threading.get_ident(), short=True)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction holds the lock
        ticks = 0
        done: list[int] = []

        def insert(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO sessions (id, started_at, client, pid) VALUES ('s', 0, 'x', 1)")
            return threading.get_ident()

        async def write() -> None:
            done.append(await store.run(insert, short=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            with anyio.fail_after(10):
                while ticks < 20:  # the loop keeps running while the unit waits for the lock
                    await anyio.sleep(0.01)
                    ticks += 1
            assert not done  # still waiting for the other writer
            other.execute("COMMIT")
        count = await store.call(lambda conn: conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
        timeout = await store.call(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0])
    finally:
        other.close()
        await store.close()
    assert free == loop_thread and read == loop_thread
    assert done and done[0] != loop_thread  # it waited on the store's thread
    assert count == 1
    assert timeout == 15000  # the wait for other processes is back for every other unit
