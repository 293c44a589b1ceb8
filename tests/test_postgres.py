"""The record on PostgreSQL: the same statements, the same guarantees, against a real server on loopback.

The cluster is the session's (`pg_cluster`, started by the tests themselves); each test gets a fresh
database. What both backends must do alike runs on both (`backend`); what only a shared server can
show (processes racing for one draft, the server going away mid-run, moving a history in) is here.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet.errors import StoreError
from ratchet.record import actions, postgres, transfer
from ratchet.record.lifecycle import Status
from ratchet.record.schema import SCHEMA_VERSION
from ratchet.record.store import PostgresUrl, Store, parse_location

from .helpers import (
    Human,
    PgCluster,
    connect,
    db_rows,
    drive_history,
    intent_row,
    run_cli,
    write,
)

# -- the adapter ---------------------------------------------------------------------------------------


def test_placeholders_are_translated_outside_literals_only() -> None:
    sql = "SELECT '?', 'it''s 100%', \"a?b\", x::text FROM t WHERE a = ? AND b LIKE 'x%' AND c = :cls"
    assert postgres.translate(sql) == (
        "SELECT '?', 'it''s 100%%', \"a?b\", x::text FROM t WHERE a = %s AND b LIKE 'x%%' AND c = %(cls)s"
    )
    with pytest.raises(ValueError, match="unterminated quote"):
        postgres.translate("SELECT 'open")


def test_a_password_never_shows() -> None:
    url = "postgresql://team:s3cret@db.example.com:5432/ratchet"
    assert postgres.shown(url) == "postgresql://team:***@db.example.com:5432/ratchet"
    assert str(PostgresUrl(url)) == postgres.shown(url)
    assert parse_location("state/ratchet.db") == Path("state/ratchet.db")


# -- the schema ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_both_schemas_have_the_same_tables_and_columns_in_order(tmp_path: Path, pg_url: str) -> None:
    """The PostgreSQL baseline plus the later migrations end where SQLite's migrations end."""
    found = []
    for location in (tmp_path / "r.db", PostgresUrl(pg_url)):
        store = await Store.open(location)
        try:
            found.append(
                await store.call(
                    lambda conn: (
                        transfer.schema_version(conn),
                        {t: transfer.columns(conn, t) for t in transfer.tables(conn)},
                    )
                )
            )
        finally:
            await store.close()
    assert found[0] == found[1]
    assert found[1][0] == SCHEMA_VERSION and "actions" in found[1][1]


@pytest.mark.asyncio
async def test_an_unreachable_database_is_a_clear_error_without_its_password(pg_cluster: PgCluster) -> None:
    url = f"postgresql://ratchet:s3cret@127.0.0.1:{pg_cluster.port}/no_such_database"
    with pytest.raises(
        StoreError, match=r"cannot reach trust database postgresql://ratchet:\*\*\*@.*no_such_database"
    ) as err:
        await Store.open(PostgresUrl(url))
    assert "s3cret" not in str(err.value)


# -- exactly once across processes ---------------------------------------------------------------------

_CLAIMER = """
import asyncio, json, sys
from ratchet.record import actions
from ratchet.record.store import PostgresUrl, Store

async def main(url, ids):
    store = await Store.open(PostgresUrl(url))
    won = []
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    for i in ids:
        claimed, _ = await store.run(lambda conn, i=i: actions.claim_draft(conn, i))
        if claimed:
            won.append(i)
    await store.close()
    print(json.dumps(won))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


def _race_claims(url: str, ids: list[int]) -> list[list[int]]:
    """Two processes, each connected, told to claim every one of `ids` while this test holds the
    record's write lock; once both wait on the lock it is released, so their claims
    contend from the first one on: what each won."""
    import psycopg

    # Each claims every id, in its own order: under the one write lock, two claimers in the same order
    # would alternate with the leader always one id ahead, and one would win them all.
    orders = [random.Random(seed).sample(ids, len(ids)) for seed in (1, 2)]
    argv = [[sys.executable, "-c", _CLAIMER, url, json.dumps(order)] for order in orders]
    procs = [subprocess.Popen(a, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for a in argv]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    with psycopg.connect(url, autocommit=True) as gate, psycopg.connect(url, autocommit=True) as watch:
        gate.execute("SELECT pg_advisory_lock(%s)", (postgres.WRITE_LOCK,))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        waiting = 0
        for _ in range(600):  # until both wait on the lock (a minute at most)
            row = watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
            waiting = int(row[0]) if row is not None else 0
            if waiting == 2:
                break
            time.sleep(0.1)
        gate.execute("SELECT pg_advisory_unlock(%s)", (postgres.WRITE_LOCK,))
    assert waiting == 2, "both claimers were waiting on the write lock"
    return [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]


def _twice_at_once(argv: list[str]) -> list[tuple[str, str]]:
    """The same command in two processes started together: (stdout, stderr) of each."""
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    return [proc.communicate(timeout=120) for proc in procs]


def _ratchet(ratchet_bin: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ratchet_bin), *argv], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.asyncio
async def test_two_processes_claiming_the_same_drafts_at_once_each_draft_goes_to_one(pg_url: str) -> None:
    store = await Store.open(PostgresUrl(pg_url))
    try:
        ids = [await store.run(lambda c: actions.insert_intent(c, intent_row(Status.DRAFT))) for _ in range(150)]
    finally:
        await store.close()
    won = await anyio.to_thread.run_sync(_race_claims, pg_url, ids)
    assert sorted(won[0] + won[1]) == ids  # every draft claimed, none twice
    assert won[0] and won[1], "both processes claimed some: they really raced"
    statuses = db_rows(pg_url, "SELECT status, count(*) FROM actions GROUP BY status")
    assert statuses == [("approving", 150)]


@pytest.mark.asyncio
async def test_two_cli_approvals_of_one_draft_at_once_run_it_once(
    tmp_path: Path, workspace: Path, policies: Path, ratchet_bin: Path, pg_url: str
) -> None:
    """`ratchet approve ID` twice at once, in two processes, on a shared database: one runs it."""
    location = PostgresUrl(pg_url)
    drafts = []
    async with connect(workspace, policies, location) as client:  # type: ignore[arg-type]
        for n in range(4):
            out = await write(client, f"queue/q{n}.txt", f"{n}\n")
            assert out["status"] == "draft"
            drafts.append(out["action_id"])
    for draft_id in drafts:
        argv = [str(ratchet_bin), "approve", str(draft_id), "--json", "--workspace", str(workspace)]
        argv += ["--policies", str(policies), "--db", pg_url]
        results = await anyio.to_thread.run_sync(_twice_at_once, argv)
        outcomes = sorted(json.loads(out)[0]["status"] if out.strip() else "failed" for out, _ in results)
        assert outcomes.count("executed") == 1, results
    reviews = db_rows(pg_url, "SELECT action_id, count(*) FROM reviews WHERE kind = 'accept' GROUP BY action_id")
    assert sorted(reviews) == [(d, 1) for d in drafts]
    assert db_rows(pg_url, "SELECT count(*) FROM actions WHERE status = 'executed'") == [(4,)]
    assert [(workspace / f"queue/q{n}.txt").read_text() for n in range(4)] == ["0\n", "1\n", "2\n", "3\n"]


# -- the server goes away ------------------------------------------------------------------------------


@pytest.fixture
def own_cluster(pg_cluster: PgCluster) -> Any:
    """A cluster of this test's own, to stop and start (the session's cluster serves the other tests)."""
    cluster = PgCluster(pg_cluster.bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.mark.asyncio
async def test_an_outage_fails_calls_closed_and_the_server_resumes_without_a_restart(
    workspace: Path, policies: Path, own_cluster: PgCluster
) -> None:
    url = own_cluster.create_database()
    async with connect(workspace, policies, PostgresUrl(url)) as client:  # type: ignore[arg-type]
        before = [await write(client, f"auto/before{n}.txt") for n in range(3)]
        assert [r["status"] for r in before] == ["executed"] * 3
        await anyio.to_thread.run_sync(own_cluster.stop)
        during = []
        for n in range(3):
            result = await client.call_tool("write_file", {"path": f"auto/during{n}.txt", "content": "x\n"})
            during.append(result)
        await anyio.to_thread.run_sync(own_cluster.start)
        after = [await write(client, f"auto/after{n}.txt") for n in range(3)]
    for result in during:
        assert result.is_error
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert "trust database postgresql://" in text, text
    assert not any((workspace / f"auto/during{n}.txt").exists() for n in range(3))  # nothing ran unrecorded
    assert [r["status"] for r in after] == ["executed"] * 3
    assert all((workspace / f"auto/after{n}.txt").exists() for n in range(3))
    recorded = db_rows(url, "SELECT target, status FROM actions ORDER BY id")
    assert recorded == [(f"auto/{w}{n}.txt", "executed") for w in ("before", "after") for n in range(3)]
    ids = [r["action_id"] for r in before + after]
    assert len(set(ids)) == 6


# -- the same flow on both backends, and moving a history in ------------------------------------------


def _figures(workspace: Path, policies: Path, db: str, ratchet_bin: Path) -> tuple[Any, Any]:
    def run(*argv: str) -> Any:
        full = [str(ratchet_bin), *argv, "--json", "--workspace", str(workspace), "--policies", str(policies)]
        done = subprocess.run([*full, "--db", db], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run("metrics", "--since", "all"), run("transitions")  # the whole history: no period moving with now


_TIMED = ("at", "generated_at", "hash", "prev_hash")  # a clock's reading, and the hashes over one


def _without_times(value: Any) -> Any:
    """What two runs of the same flow share: everything but clock readings and durations."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in _TIMED and "seconds" not in k}
    if isinstance(value, list | tuple):
        return [_without_times(v) for v in value]
    return value


@pytest.mark.asyncio
async def test_the_same_flow_gives_the_same_record_on_both_backends(
    tmp_path: Path, policies: Path, ratchet_bin: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every level through the real MCP server, approvals and a rejection from the CLI, a complaint: the
    same figures, transitions and chained reviews whichever backend keeps them."""
    figures, reviews = [], []
    for name, db in (("lite", str(tmp_path / "lite" / "ratchet.db")), ("pg", pg_url)):
        ws, scratch = tmp_path / name, tmp_path / f"{name}-scratch"
        ws.mkdir()
        scratch.mkdir()
        ids = await drive_history(scratch, ws, policies, parse_location(db), capsys)  # type: ignore[arg-type]
        assert (ws / "queue/q1.txt").read_text() == "one\ntwo\n" and not (ws / "queue/q3.txt").exists()
        figures.append(_without_times(_figures(ws, policies, db, ratchet_bin)))
        reviews.append(db_rows(db, "SELECT action_id, kind, actor FROM reviews ORDER BY id"))
        assert ids["a4"] > ids["q4"]
        code, text = await run_cli(capsys, ws, policies, parse_location(db), "verify")  # type: ignore[arg-type]
        assert code == 0 and text.startswith("ok:"), text
    assert figures[0] == figures[1]
    assert reviews[0] == reviews[1] and len(reviews[0]) >= 4
    metrics, transitions = figures[1]
    assert transitions and metrics


@pytest.mark.asyncio
async def test_a_copied_history_gives_the_same_figures_and_verifies(
    tmp_path: Path,
    workspace: Path,
    policies: Path,
    ratchet_bin: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lite = tmp_path / "state" / "ratchet.db"
    await drive_history(tmp_path, workspace, policies, lite, capsys)
    done = await anyio.to_thread.run_sync(_ratchet, ratchet_bin, "db", "copy", str(lite), pg_url)
    assert done.returncode == 0, done.stderr
    assert "chain verified on both" in done.stdout
    (lite_metrics, lite_moves), (pg_metrics, pg_moves) = (
        _figures(workspace, policies, db, ratchet_bin) for db in (str(lite), pg_url)
    )
    assert lite_metrics.pop("generated_at") <= pg_metrics.pop("generated_at")  # when each report was made
    assert lite_metrics == pg_metrics and lite_moves == pg_moves  # every figure, time and hash alike
    assert pg_moves and pg_metrics["total"]["actions"] == 11

    checks = []
    for db in (str(lite), pg_url):
        argv = ["db", "check", "--json", "--workspace", str(workspace), "--db", db]
        done = await anyio.to_thread.run_sync(_ratchet, ratchet_bin, *argv)
        assert done.returncode == 0, done.stderr
        checks.append(json.loads(done.stdout))
    assert checks[0]["rows"] == checks[1]["rows"] and checks[0]["head"] == checks[1]["head"]
    assert checks[1]["schema_version"] == SCHEMA_VERSION and checks[1]["ok"] is True
    assert checks[1]["backend"] == "postgresql" and checks[1]["rows"]["actions"] > 0

    # Ids kept, and the next one follows them: a new action after the move gets the next id.
    top = db_rows(pg_url, "SELECT max(id) FROM actions")[0][0]
    async with connect(workspace, policies, PostgresUrl(pg_url), human=Human()) as client:  # type: ignore[arg-type]
        assert (await write(client, "auto/after-the-move.txt"))["action_id"] == top + 1

    # A second copy into a database that now holds history is refused, naming why.
    done = await anyio.to_thread.run_sync(_ratchet, ratchet_bin, "db", "copy", str(lite), pg_url)
    assert done.returncode == 1 and "already holds actions" in done.stderr


@pytest.mark.asyncio
async def test_db_check_names_a_broken_chain(
    tmp_path: Path, workspace: Path, pg_url: str, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = PostgresUrl(pg_url)
    async with connect(workspace, policies, location, human=Human()) as client:  # type: ignore[arg-type]
        await write(client, "ask/k.txt")  # a confirmed call: one chained review
    db_rows(pg_url, "SELECT 1")  # reachable
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE reviews SET actor = 'someone else'")
    from ratchet.cli import main

    code = await anyio.to_thread.run_sync(main, ["db", "check", "--workspace", str(workspace), "--db", pg_url])
    assert code == 1
    (review,) = db_rows(pg_url, "SELECT id FROM reviews")
    text = capsys.readouterr().out
    broken = f"chain: broken: review {review[0]} does not match its hash: it was edited after it was written"
    assert broken in text.splitlines(), text
    assert "intact" not in text


def test_a_sqlite_file_is_not_a_copy_target(tmp_path: Path) -> None:
    from ratchet.cli import main

    lite = tmp_path / "a.db"
    sqlite3.connect(lite).close()
    assert main(["db", "copy", str(lite), str(tmp_path / "b.db")]) == 2
    assert not (tmp_path / "b.db").exists()
