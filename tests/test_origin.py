"""Execution happens where the workspace lives: a draft approved on another machine of a shared record is
run by its origin (host and workspace), exactly once, never by the approving machine.

Machines are played by `$RATCHET_HOST` (engine/origin.py) and separate workspace directories; every
process is a real one (`ratchet serve` over stdio with the SDK's client, the `ratchet` CLI) on a real
PostgreSQL database, except where a test says otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.engine import Engine
from ratchet.engine.origin import HOST_ENV
from ratchet.identity import ENV as IDENTITY_ENV
from ratchet.record import actions, origins, postgres
from ratchet.record.lifecycle import Status
from ratchet.record.store import PostgresUrl, Store

from .helpers import (
    LEVELS_POLICY,
    connect,
    console_env,
    db_rows,
    draft,
    intent_row,
    ratchet_argv,
    run_cli,
    stdio_params,
    write_policy,
)

pytestmark = pytest.mark.asyncio


def ratchet_on(
    host: str,
    ratchet_bin: Path,
    workspace: Path,
    policies: Path,
    db: str,
    command: str,
    *rest: str,
    identity: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The human's `ratchet COMMAND` on machine `host` (as `identity`, if given), in its own process."""
    argv = ratchet_argv(ratchet_bin, workspace, policies, Path(db), command, *rest)
    argv[argv.index("--db") + 1] = db  # a URL, as typed
    env = console_env(**{HOST_ENV: host}, **({IDENTITY_ENV: identity} if identity else {}))
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


async def ratchet_on_async(host: str, *args: Any, identity: str | None = None) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: ratchet_on(host, *args, identity=identity))


def origin_serve(ratchet_bin: Path, workspace: Path, policies: Path, db: str) -> Client:
    """`ratchet serve` on machine `a` over stdio, driven by the SDK's client (the agent)."""
    params = stdio_params(ratchet_bin, workspace, policies, Path(db), **{HOST_ENV: "a"})
    params.args[params.args.index("--db") + 1] = db
    return Client(params)


def started_together(url: str, argv: list[str], env: dict[str, str]) -> list[tuple[int, str, str]]:
    """Two processes running `argv`, started while this test holds the record's write lock and released
    once both wait on it: their exit codes, stdout and stderr."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as gate, psycopg.connect(url, autocommit=True) as watch:
        gate.execute("SELECT pg_advisory_lock(%s)", (postgres.WRITE_LOCK,))
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in (1, 2)
        ]
        deadline, waiting = time.monotonic() + 60, 0
        while time.monotonic() < deadline and waiting < 2:
            row = watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
            waiting = int(row[0]) if row is not None else 0
            time.sleep(0.02)
        gate.execute("SELECT pg_advisory_unlock(%s)", (postgres.WRITE_LOCK,))
    assert waiting == 2, "both processes were waiting on the write lock"
    done = [proc.communicate(timeout=120) for proc in procs]
    return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, done, strict=True)]


def status(db: str, action_id: int) -> str:
    found: str = db_rows(db, "SELECT status FROM actions WHERE id = ?", action_id)[0][0]
    return found


def accepts(db: str, action_id: int) -> int:
    """How many approvals the hash chain of reviews holds for the action."""
    n: int = db_rows(db, "SELECT count(*) FROM reviews WHERE action_id = ? AND kind = 'accept'", action_id)[0][0]
    return n


@pytest.fixture
def machine_b(tmp_path: Path) -> Path:
    """The human's checkout on another machine."""
    b = tmp_path / "b-checkout"
    (b / "queue").mkdir(parents=True)
    return b


async def test_an_approval_from_another_machine_waits_then_its_running_origin_runs_it_once(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str
) -> None:
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        draft_id = await draft(agent, "queue/x.txt", "from a\n")
        row = db_rows(pg_url, "SELECT origin_host, origin_workspace FROM actions WHERE id = ?", draft_id)
        assert row == [("a", str(workspace.resolve()))]

        done = await ratchet_on_async(
            "b", ratchet_bin, machine_b, policies, pg_url, "approve", str(draft_id), "--note", "ship it"
        )
        assert done.returncode == 0, done.stderr
        waits = f"draft {draft_id}: approved; waits for its origin to run it: host a, workspace {workspace.resolve()}"
        assert waits in done.stdout
        assert not (machine_b / "queue" / "x.txt").exists()  # B never ran it in its own checkout

        # The agent polls as it always does; the origin's server, woken by the approval, ran it.
        seen = (await agent.call_tool("get_draft", {"draft_id": draft_id, "wait_s": 30})).structured_content
        assert seen is not None and seen["status"] == "executed", seen
        assert (workspace / "queue" / "x.txt").read_text() == "from a\n"
        assert seen["review_note"] == "ship it" and seen["reviewer"] == "cli"
    assert accepts(pg_url, draft_id) == 1
    assert status(pg_url, draft_id) == "executed"


async def test_two_workspaces_evidence_promotes_the_shared_class_each_origin_running_its_own(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str, tmp_path: Path
) -> None:
    """Two agents' servers (machines a and b, each its own workspace) on one record; a lead approves from
    a third machine. Each origin's server runs its own drafts, once, and the class both drafted in earns
    its promotion from the evidence of both (min_samples 3: two from a, one from b)."""
    lead = tmp_path / "lead-checkout"
    lead.mkdir()
    params_b = stdio_params(ratchet_bin, machine_b, policies, Path(pg_url), **{HOST_ENV: "b"})
    params_b.args[params_b.args.index("--db") + 1] = pg_url
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as a, Client(params_b) as b:
        ids = [await draft(a, "climb/1.txt", "1\n"), await draft(b, "climb/2.txt", "2\n")]
        ids.append(await draft(a, "climb/3.txt", "3\n"))
        done = await ratchet_on_async("c", ratchet_bin, lead, policies, pg_url, "approve", *map(str, ids))
        assert done.returncode == 0, done.stderr
        for agent, action_id in ((a, ids[0]), (b, ids[1]), (a, ids[2])):
            seen = (await agent.call_tool("get_draft", {"draft_id": action_id, "wait_s": 30})).structured_content
            assert seen is not None and seen["status"] == "executed", seen
    assert (workspace / "climb/1.txt").read_text() == "1\n" and (workspace / "climb/3.txt").read_text() == "3\n"
    assert (machine_b / "climb/2.txt").read_text() == "2\n" and not (machine_b / "climb/1.txt").exists()
    assert not (lead / "climb").exists()
    assert [accepts(pg_url, i) for i in ids] == [1, 1, 1]
    moves = db_rows(pg_url, "SELECT from_level, to_level, kind FROM transitions WHERE class = 'climb' ORDER BY id")
    assert moves == [("draft", "confirm", "promote")], moves
    origins_of = db_rows(
        pg_url,
        "SELECT DISTINCT a.origin_host FROM samples s JOIN actions a ON a.id = s.action_id WHERE s.class = 'climb'",
    )
    assert sorted(h for (h,) in origins_of) == ["a", "b"]


async def test_require_other_reviewer_is_decided_by_who_approves_elsewhere_not_by_the_origin(
    workspace: Path, machine_b: Path, tmp_path: Path, ratchet_bin: Path, pg_url: str
) -> None:
    strict = LEVELS_POLICY.replace(
        'paths = ["queue/**"]\nstart = "draft"\nceiling = "draft"\n',
        'paths = ["queue/**"]\nstart = "draft"\nceiling = "draft"\nrequire_other_reviewer = true\n',
    )
    assert strict != LEVELS_POLICY
    policies = write_policy(tmp_path / "strict-policies", strict)
    params = stdio_params(ratchet_bin, workspace, policies, Path(pg_url), **{HOST_ENV: "a", IDENTITY_ENV: "dev@a"})
    params.args[params.args.index("--db") + 1] = pg_url
    async with Client(params) as agent:
        draft_id = await draft(agent, "queue/x.txt", "from a\n")
        # The drafter, on another machine: refused where the approval is given; nothing waits for A.
        own = await ratchet_on_async(
            "b", ratchet_bin, machine_b, policies, pg_url, "approve", str(draft_id), identity="dev@a"
        )
        assert own.returncode != 0 and "another person must approve" in own.stdout + own.stderr, own
        assert status(pg_url, draft_id) == "draft"
        # Another person on that machine: the approval waits for A, which runs it as theirs.
        lead = await ratchet_on_async(
            "b", ratchet_bin, machine_b, policies, pg_url, "approve", str(draft_id), identity="lead@b"
        )
        assert lead.returncode == 0 and "waits for its origin" in lead.stdout, lead
        seen = (await agent.call_tool("get_draft", {"draft_id": draft_id, "wait_s": 30})).structured_content
        assert seen is not None and seen["status"] == "executed", seen
    assert (workspace / "queue" / "x.txt").read_text() == "from a\n"
    assert db_rows(pg_url, "SELECT recorded_by, reviewed_by FROM actions WHERE id = ?", draft_id) == [
        ("dev@a", "lead@b")
    ]
    assert db_rows(pg_url, "SELECT identity FROM reviews WHERE action_id = ? AND kind = 'accept'", draft_id) == [
        ("lead@b",)
    ]


async def test_an_origin_that_comes_back_runs_the_approval_it_missed_with_the_humans_content(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str, tmp_path: Path
) -> None:
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        draft_id = await draft(agent, "queue/y.txt", "agent's text\n")
    # A is gone: the approval waits and nothing runs anywhere.
    edited = tmp_path / "edited.txt"
    edited.write_text("the human's text\n")
    b = (ratchet_bin, machine_b, policies, pg_url)
    done = await ratchet_on_async("b", *b, "approve", str(draft_id), "--content", str(edited))
    assert done.returncode == 0, done.stderr
    assert status(pg_url, draft_id) == "approved"
    assert not (workspace / "queue" / "y.txt").exists() and not (machine_b / "queue" / "y.txt").exists()
    again = await ratchet_on_async("b", *b, "approve", str(draft_id))
    assert again.returncode == 1 and "waits for its origin" in again.stderr + again.stdout

    # A comes back: its server carries out what was approved meanwhile, as the human approved it.
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        seen = (await agent.call_tool("get_draft", {"draft_id": draft_id, "wait_s": 30})).structured_content
        assert seen is not None and seen["status"] == "executed", seen
        assert seen["edited"] is True
    assert (workspace / "queue" / "y.txt").read_text() == "the human's text\n"
    assert accepts(pg_url, draft_id) == 1
    kept = db_rows(pg_url, "SELECT approval_json, edited FROM actions WHERE id = ?", draft_id)
    assert kept == [(None, 1)]  # the approved content left with the queue


async def test_two_origin_processes_racing_for_the_same_approvals_run_each_once(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str
) -> None:
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        ids = [await draft(agent, f"queue/r{i}.txt", f"{i}\n") for i in range(10)]
    done = await ratchet_on_async("b", ratchet_bin, machine_b, policies, pg_url, "approve", *map(str, ids))
    assert done.returncode == 0, done.stderr
    assert [status(pg_url, i) for i in ids] == ["approved"] * 10

    # Two processes on the origin carry out the approvals at the same moment: both are held at the
    # record's write lock until each waits on it, then let go together.
    argv = ratchet_argv(ratchet_bin, workspace, policies, Path(pg_url), "approve", "--pending", "--json")
    argv[argv.index("--db") + 1] = pg_url
    runs = await anyio.to_thread.run_sync(lambda: started_together(pg_url, argv, console_env(**{HOST_ENV: "a"})))
    carried: list[int] = []
    for code, out, err in runs:
        assert code == 0, err
        carried += [o["id"] for o in json.loads(out)]
    assert sorted(carried) == sorted(ids)  # every draft carried out, none twice
    assert [status(pg_url, i) for i in ids] == ["executed"] * 10
    assert [accepts(pg_url, i) for i in ids] == [1] * 10


async def test_approving_a_draft_of_this_machine_and_workspace_still_runs_at_once(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str
) -> None:
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        here = await draft(agent, "queue/here.txt", "here\n")
        elsewhere = await draft(agent, "queue/there.txt", "there\n")
    done = await ratchet_on_async("a", ratchet_bin, workspace, policies, pg_url, "approve", str(here))
    assert done.returncode == 0, done.stderr
    assert status(pg_url, here) == "executed"  # no waiting on a single machine
    assert (workspace / "queue" / "here.txt").read_text() == "here\n"
    # The same host in another workspace is another origin: the workspace is part of it.
    other = await ratchet_on_async("a", ratchet_bin, machine_b, policies, pg_url, "approve", str(elsewhere))
    assert other.returncode == 0, other.stderr
    assert status(pg_url, elsewhere) == "approved"
    assert not (machine_b / "queue" / "there.txt").exists()


async def test_an_approved_draft_whose_origin_never_comes_back_waits_in_the_queue_and_can_be_withdrawn(
    workspace: Path, machine_b: Path, policies: Path, ratchet_bin: Path, pg_url: str
) -> None:
    async with origin_serve(ratchet_bin, workspace, policies, pg_url) as agent:
        draft_id = await draft(agent, "queue/gone.txt", "never\n")
    b = (ratchet_bin, machine_b, policies, pg_url)
    assert (await ratchet_on_async("b", *b, "approve", str(draft_id))).returncode == 0
    queue = await ratchet_on_async("b", *b, "queue", "--json")
    listed = {d["action_id"]: d for d in json.loads(queue.stdout)}
    assert listed[draft_id]["status"] == "approved"
    assert "waits for its origin" in listed[draft_id]["waiting"] and "host a" in listed[draft_id]["waiting"]
    shown = await ratchet_on_async("b", *b, "queue")
    assert "approved (waits for a)" in shown.stdout, shown.stdout
    inbox = await ratchet_on_async("b", *b, "inbox", "--json")
    item = next(i for i in json.loads(inbox.stdout) if i["id"] == draft_id)
    assert item["kind"] == "approved" and f"workspace {workspace.resolve()}" in item["summary"], item

    withdrawn = await ratchet_on_async(
        "b", ratchet_bin, machine_b, policies, pg_url, "reject", str(draft_id), "--reason", "origin is gone"
    )
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert status(pg_url, draft_id) == "rejected"
    # The human judged it good; withdrawing it for want of its origin is no failure of the class.
    assert db_rows(pg_url, "SELECT sample FROM actions WHERE id = ?", draft_id) == [(None,)]
    assert db_rows(pg_url, "SELECT count(*) FROM samples WHERE action_id = ?", draft_id) == [(0,)]
    # Should the origin come back after all, there is nothing left for it to run.
    back = await ratchet_on_async("a", ratchet_bin, workspace, policies, pg_url, "approve", "--pending", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout) == []
    assert not (workspace / "queue" / "gone.txt").exists()
    assert db_rows(pg_url, "SELECT approval_json FROM actions WHERE id = ?", draft_id) == [(None,)]


async def test_an_approval_for_another_machine_wakes_a_listening_origin_through_notify(pg_url: str) -> None:
    store = await Store.open(PostgresUrl(pg_url))  # creates the schema
    woke = threading.Event()
    listener = origins.Listener(pg_url, woke.set)
    listener.start()
    try:
        assert await anyio.to_thread.run_sync(listener.listening.wait, 10)
        draft_id = await store.run(lambda c: actions.insert_intent(c, queued_on_a()))
        review = actions.Review(True, "cli", None, 5.0, "cli")
        assert not woke.is_set()
        sent = time.monotonic()
        assert await store.run(lambda c: origins.approve_elsewhere(c, draft_id, "{}", review))
        assert await anyio.to_thread.run_sync(woke.wait, 10)
        assert time.monotonic() - sent < 1.0  # at once, not at the next poll
        # Moving a draft that is no longer queued announces nothing.
        woke.clear()
        assert not await store.run(lambda c: origins.approve_elsewhere(c, draft_id, "{}", review))
        assert not await anyio.to_thread.run_sync(woke.wait, 0.7)
    finally:
        await anyio.to_thread.run_sync(listener.stop)
        await store.close()


async def test_on_sqlite_a_running_origin_finds_the_approval_by_polling(
    workspace: Path,
    machine_b: Path,
    policies: Path,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(HOST_ENV, "a")
    async with connect(workspace, policies, db) as agent:  # the origin's server, in this process
        draft_id = await draft(agent, "queue/p.txt", "polled\n")
        monkeypatch.setenv(HOST_ENV, "b")  # the human's CLI, on another machine sharing the file
        code, out = await run_cli(capsys, machine_b, policies, db, "approve", str(draft_id))
        assert code == 0 and "waits for its origin" in out, out
        seen = (await agent.call_tool("get_draft", {"draft_id": draft_id, "wait_s": 15})).structured_content
        assert seen is not None and seen["status"] == "executed", seen
    assert (workspace / "queue" / "p.txt").read_text() == "polled\n"
    assert not (machine_b / "queue" / "p.txt").exists()


async def test_opening_the_record_leaves_another_machines_actions_in_flight_alone(
    workspace: Path, policies: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(PostgresUrl(pg_url))
    try:
        running = queued_on_a(Status.RUNNING)
        theirs = await store.run(lambda c: actions.insert_intent(c, dataclasses.replace(running, origin_host="a")))
        ours = await store.run(lambda c: actions.insert_intent(c, dataclasses.replace(running, origin_host="b")))
        # A pid that is free on this machine: on machine a it may be a live server.
        pid = await anyio.to_thread.run_sync(_dead_pid)
        await store.run(lambda c: c.execute("UPDATE actions SET pid = ?", (pid,)))
    finally:
        await store.close()
    monkeypatch.setenv(HOST_ENV, "b")
    async with await Engine.open(workspace, policies=policies, db=PostgresUrl(pg_url), session=False):
        pass  # opening the record recovers what this machine's dead processes left
    assert status(pg_url, ours) == "interrupted"
    assert status(pg_url, theirs) == "running"  # machine a's: not this machine's to judge


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def queued_on_a(status: Status = Status.DRAFT) -> actions.Intent:
    """An action of class `queue` made on machine `a`."""
    return intent_row(status, "queue/n.txt", action_class="queue", origin_host="a", origin_workspace="/nowhere")
