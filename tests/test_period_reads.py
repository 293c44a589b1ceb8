"""The evidence views' reads cost what the period holds, not what the history holds.

A real recorded history (the real server, a draft approved from the CLI) is read by `metrics`' aggregates
and by the replay's per-class reads; then twenty thousand older actions are added before the period (copies
of the recorded rows, moved 60 days back), and the same reads must do about the same work. The work is
counted in SQLite's own virtual-machine steps (`set_progress_handler`), not in seconds: a query that walks
every action by class, by session or by id (the planner's choice when a GROUP BY or ORDER BY matches an
index led by those columns) does twenty thousand rows' more work and fails here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ratchet.record import undos
from ratchet.record.checks import verified_shares
from ratchet.record.evidence import class_periods, period_figures
from ratchet.record.store import Store

from .helpers import connect, write
from .helpers import run_cli as cli

DAY = 86400.0
OLD = 20_000


async def _steps(db: Path, read: Callable[[Store], Awaitable[object]]) -> int:
    """SQLite VM steps (in units of 100) the read takes on a store of its own."""
    store = await Store.open(db)
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    try:
        await store.call(lambda conn: conn.set_progress_handler(tick, 100))
        await read(store)
        await store.call(lambda conn: conn.set_progress_handler(None, 100))
    finally:
        await store.close()
    return counted[0]


def _grow_old_history(db: Path) -> None:
    """OLD copies of the recorded actions, 60 days before them: history outside the default period."""
    con = sqlite3.connect(db)
    try:
        names = [r[1] for r in con.execute("PRAGMA table_info(actions)") if r[1] != "id"]
        cols = ", ".join(names)
        shifted = ", ".join(
            f"{n} - {60 * DAY}"
            if n in ("created_at", "finished_at")
            else "'old' || session_id"
            if n == "session_id"
            else n
            for n in names
        )
        recorded = con.execute("SELECT count(*) FROM actions").fetchone()[0]
        for _ in range(OLD // recorded + 1):
            con.execute(f"INSERT INTO actions ({cols}) SELECT {shifted} FROM actions WHERE created_at > ?", (0,))
            if con.execute("SELECT count(*) FROM actions").fetchone()[0] > OLD:
                break
        con.commit()
    finally:
        con.close()


@pytest.mark.asyncio
async def test_metrics_and_replay_reads_do_not_walk_the_history(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as client:
        draft = (await write(client, "climb/c0.txt"))["action_id"]
        for n in range(4):
            await write(client, f"auto/a{n}.txt")
    code, text = await cli(capsys, workspace, policies, db, "approve", str(draft))
    assert code == 0, text
    since = time.time() - 30 * DAY

    async def metrics_read(store: Store) -> object:
        figures = await period_figures(store, since, None)
        assert sum(c.count for c in figures.counts) == 5  # the period's actions only, before and after
        undone = await store.call(lambda conn: undos.figures(conn, since, None))
        shares = await store.call(lambda conn: verified_shares(conn, since, None, None))
        assert sum(u.executed for u in undone) == sum(v.executed for v in shares) == 5
        return figures

    async def replay_read(store: Store) -> object:
        periods = await class_periods(store, ["auto", "climb"], since, None, tail={"auto": 10, "climb": 10})
        assert [len(p.actions) for p in periods] == [4, 1]
        return periods

    before = (await _steps(db, metrics_read), await _steps(db, replay_read))
    _grow_old_history(db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM actions WHERE created_at < ?", (since,)).fetchone()[0] >= OLD
    con.close()
    after = (await _steps(db, metrics_read), await _steps(db, replay_read))
    # Walking the old rows costs thousands of steps of 100; reading the period's five rows (and the replay's
    # tail of ten samples a class before it) a few dozen.
    for name, b, a in zip(("metrics", "replay"), before, after, strict=True):
        assert a <= 2 * b + 30, f"{name}: {b} -> {a} VM steps (x100) after {OLD} older actions"
