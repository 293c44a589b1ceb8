"""Two writers contending for one class and for the same drafts, on each backend: every draft settles exactly
once, every sample lands in its class's window, and the hash chain stays one unbroken line.

Each writer is its own process with its own connection (the way two `ratchet serve` share a record): it
writes autonomously into `auto` and approves every draft of `climb` (in its own order) while the other does
the same. On PostgreSQL the two settle at once under the class's lock and the chain's lock (record/locks.py);
on SQLite under the file's one write lock."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet.engine import Engine
from ratchet.policy.load import load_policy
from ratchet.record.locks import Scope
from ratchet.record.store import parse_location
from ratchet.rules.settle import Observed, Standing, settle
from ratchet.rules.trust import Window

from .helpers import LEVELS_POLICY, db_rows, write_policy

WRITES = 12  # autonomous writes into `auto` by each writer
DRAFTS = 16  # drafts of `climb` both writers try to approve

_WRITER = """
import asyncio, json, sys
from pathlib import Path
from ratchet.engine import Engine
from ratchet.errors import RatchetError
from ratchet.record.store import parse_location

async def main(ws, policies, db, tag, n, drafts):
    location = parse_location(db)
    agent = await Engine.open(Path(ws), policies=Path(policies), db=location, client=f"writer-{tag}")
    human = await Engine.open(Path(ws), policies=Path(policies), db=location, session=False)
    print("ready", flush=True)
    sys.stdin.readline()
    won, lost, wrote = [], [], []
    for i in range(max(n, len(drafts))):
        if i < n:
            ev = await agent.evaluate("write_file", {"path": f"auto/{tag}-{i}.txt", "content": f"{tag} {i}\\n"})
            out = await agent.carry_out(ev)
            assert out.status == "executed", (out.status, out.message)
            wrote.append(out.action_id)
        if i < len(drafts):
            try:
                view = await human.approve(drafts[i])
            except RatchetError as exc:
                lost.append([drafts[i], type(exc).__name__])
            else:
                assert view.status == "executed", view.status
                won.append(drafts[i])
    await agent.close()
    await human.close()
    print(json.dumps({"won": won, "lost": lost, "wrote": wrote}))

asyncio.run(main(*sys.argv[1:5], int(sys.argv[5]), json.loads(sys.argv[6])))
"""


def _drafted(n: int) -> str:
    """The path (without its suffix) of the n-th draft: `climb/` and `queue/` in turn."""
    return f"climb/c{n}" if n % 2 else f"queue/q{n}"


def _ratchet(ratchet_bin: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ratchet_bin), *argv], capture_output=True, text=True, timeout=120, check=False)


def _race(workspace: Path, policies: Path, db: str, drafts: list[int]) -> list[dict[str, list[int]]]:
    """Both writers started, connected and ready, then told to go at once; what each did."""
    orders = [random.Random(seed).sample(drafts, len(drafts)) for seed in (1, 2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(workspace), str(policies), db, tag, str(WRITES), json.dumps(order)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag, order in zip(("w1", "w2"), orders, strict=True)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outs
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


@pytest.mark.asyncio
async def test_two_writers_on_one_class_and_the_same_drafts_settle_once_on_an_unbroken_chain(
    tmp_path: Path, workspace: Path, ratchet_bin: Path, backend: str
) -> None:
    # A window that holds every sample of the race: a sample lost to a stale read-modify-write shows.
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY.replace("window_size = 10", "window_size = 100"))
    location = parse_location(backend)
    engine = await Engine.open(workspace, policies=policies, db=location, client="setup")
    try:
        drafts = []
        for n in range(DRAFTS):
            # Two classes of drafts: approvals of each settle under their own class's lock at the same time,
            # and both append their reviews to the one chain of reviews.
            out = await engine.carry_out(
                await engine.evaluate("write_file", {"path": f"{_drafted(n)}.txt", "content": f"{n}\n"})
            )
            assert out.status == "draft", out.status
            drafts.append(out.action_id)
    finally:
        await engine.close()

    did = await anyio.to_thread.run_sync(_race, workspace, policies, backend, drafts)
    won = [d for w in did for d in w["won"]]
    # Every draft approved by exactly one writer; the other was told it was no longer queued.
    assert sorted(won) == sorted(drafts), did
    assert all(name == "DraftAlreadyResolved" for w in did for _, name in w["lost"]), did
    assert sorted(d for w in did for d, _ in w["lost"]) == sorted(drafts), did
    assert did[0]["won"] and did[1]["won"], "both writers approved some: they really contended"
    accepts = db_rows(backend, "SELECT action_id, count(*) FROM reviews WHERE kind = 'accept' GROUP BY action_id")
    assert sorted(accepts) == [(d, 1) for d in sorted(drafts)]
    assert [(workspace / f"{_drafted(n)}.txt").read_text() for n in range(DRAFTS)] == [f"{n}\n" for n in range(DRAFTS)]
    statuses = db_rows(backend, "SELECT status, count(*) FROM actions GROUP BY status ORDER BY status")
    assert statuses == [("executed", DRAFTS + 2 * WRITES)], statuses

    # Every sample of both writers landed once: none lost to a concurrent read-modify-write of a window.
    wrote = sorted(a for w in did for a in w["wrote"])
    sampled = db_rows(backend, "SELECT action_id FROM samples WHERE class = 'auto' ORDER BY action_id")
    assert [r[0] for r in sampled] == wrote
    # Each class's window is the last of its samples, in the order they were recorded: no writer's update of
    # the window was overwritten by another's read before it.
    for name, size in (("auto", 100), ("queue", 100)):
        window = json.loads(db_rows(backend, "SELECT window_json FROM class_state WHERE name = ?", name)[0][0])
        last = db_rows(backend, "SELECT action_id, ok FROM samples WHERE class = ? ORDER BY id", name)[-size:]
        assert [tuple(w) for w in window] == [(a, int(ok)) for a, ok in last], name
    for name in ("climb", "queue"):
        found = sorted(r[0] for r in db_rows(backend, "SELECT action_id FROM samples WHERE class = ?", name))
        assert found == [d for n, d in enumerate(drafts) if _drafted(n).startswith(name)], name

    # The chain: one line, verified link by link, and the moves it holds are the ones the settle rule makes
    # replaying the record (no window read stale by a writer that raced another).
    where = ["--workspace", str(workspace), "--db", backend]
    for command in (["verify", *where], ["db", "check", *where], ["simulate", "--json", "--since", "all", *where]):
        done = await anyio.to_thread.run_sync(_ratchet, ratchet_bin, [*command, "--policies", str(policies)])
        assert done.returncode == 0, done.stdout + done.stderr
    moves = db_rows(backend, "SELECT class, kind FROM transitions WHERE class = 'climb' ORDER BY id")
    assert ("climb", "promote") in moves, moves
    # No class's cached standing disagreed with its record at any decision (integrity.py records that as tampering).
    assert db_rows(backend, "SELECT count(*) FROM transitions WHERE kind = 'tamper-detected'") == [(0,)]
    sim = json.loads(done.stdout)
    assert sim["changes"] == [] and sim["moves_not_simulated"] == [], sim
    assert sim["moves"] and all(m["recorded"] for m in sim["moves"]), sim["moves"]


def test_a_scope_names_each_class_once_in_order() -> None:
    assert Scope.of("b", "a", "b").classes == ("a", "b") and Scope.of().classes == ()


def test_on_postgresql_a_unit_waits_only_for_its_classes_and_the_whole_record_waits_for_every_unit(
    pg_url: str,
) -> None:
    """Four connections: one holds class `x` in a unit of work; a unit of `y` runs at once, a unit of `x` and a
    whole-record unit wait until it commits."""
    from ratchet.record import postgres

    conns = [postgres.connect(pg_url) for _ in range(4)]
    held, release = threading.Event(), threading.Event()
    done: dict[str, float] = {}

    def holding(conn: postgres.Connection) -> None:
        held.set()
        release.wait(60)

    def unit(name: str) -> Any:
        return lambda conn: done.setdefault(name, time.monotonic())

    def start(fn: Any, conn: postgres.Connection, scope: Scope | None) -> threading.Thread:
        thread = threading.Thread(target=postgres.transaction, args=(fn, conn), kwargs={"scope": scope})
        thread.start()
        return thread

    try:
        holder = start(holding, conns[0], Scope.of("x"))
        assert held.wait(30)
        other = start(unit("y"), conns[1], Scope.of("y"))
        other.join(30)
        assert "y" in done  # another class: not held up
        same, whole = start(unit("x"), conns[2], Scope.of("x")), start(unit("whole"), conns[3], None)
        time.sleep(1.5)
        assert "x" not in done and "whole" not in done  # the same class, and the whole record, wait
        release.set()
        for thread in (holder, same, whole):
            thread.join(30)
        assert {"x", "whole"} <= set(done)
    finally:
        release.set()
        for conn in conns:
            conn.close()


# One class, `race`: three successes promote it from confirm (Wilson lower bound 0.44 >= 0.4), and two failures
# in a row on probation demote it (drift 0.58 >= 0.5); a write fails when its check does not find "good".
RACE_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
drift_threshold = 0.5
probation = 4
unmatched = "draft"

[classes.race]
tools = ["write_file"]
paths = ["race/**"]
start = "autonomous"
floor = "confirm"
ceiling = "autonomous"
verify = [["grep", "-q", "good", "{path}"]]
verify_on = "each"
"""
RACERS = 8  # writers, each its own process and connection, all in the one class
RACE_CALLS = 10  # writes by each

_RACER = """
import asyncio, json, sys
from pathlib import Path
from ratchet.engine import Engine
from ratchet.engine.core import HumanAnswer
from ratchet.record.store import parse_location
from ratchet.rules.gate import Route

async def main(ws, policies, db, k, n):
    agent = await Engine.open(Path(ws), policies=Path(policies), db=parse_location(db), client=f"racer-{k}")
    print("ready", flush=True)
    sys.stdin.readline()
    done = []
    for j in range(n):
        good = (k + j) % 3 != 2  # never two failures in a row from one writer: its streak never stops it
        text = "good\\n" if good else "bad\\n"
        ev = await agent.evaluate("write_file", {"path": f"race/r{k}-{j}.txt", "content": text})
        # Demoted to confirm, the class asks: a person's timed answer in the client's dialog accepts.
        asked = ev.decision.route is Route.CONFIRM
        answer = HumanAnswer(True, "elicitation", None, 30.0, channel="elicitation") if asked else None
        out = await agent.carry_out(ev, answer=answer)
        done.append([out.action_id, out.status])
    await agent.close()
    print(json.dumps(done))

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5])))
"""


def _racers(workspace: Path, policies: Path, db: str) -> list[list[list[Any]]]:
    """Every racer started, connected and ready, then told to go at once; each one's (action id, status)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(workspace), str(policies), db, str(k), str(RACE_CALLS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(RACERS)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=900) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outs
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def serial_replay(db: str, policies: Path, name: str) -> list[str]:
    """Where the record of `name` departs from the one settle rule replayed over its samples one after another,
    in the order they were recorded (empty: nowhere). Checked at each sample: it was counted in the epoch of the
    level in force (the move before it), and each move the rule makes is the transition recorded for that sample;
    at the end, the cached level and window are the replay's."""
    cls = load_policy(policies).classes[name]
    found: list[str] = []
    standing = Standing(cls.start, Window(), None, 0)
    moves = db_rows(
        db, "SELECT id, action_id, from_level, to_level, kind FROM transitions WHERE class = ? ORDER BY id", name
    )
    recorded = iter(moves)
    epoch = 0
    for sid, action_id, ok, sample_epoch in db_rows(
        db, "SELECT id, action_id, ok, epoch FROM samples WHERE class = ? ORDER BY id", name
    ):
        if sample_epoch != epoch:
            found.append(
                f"sample {sid} (action {action_id}) counted in epoch {sample_epoch}, the serial replay's is {epoch}"
            )
        out = settle(cls, standing, Observed(int(action_id), bool(ok)))
        standing = out.standing
        if out.move is not None:
            move = (action_id, out.move.from_level.label, out.move.to_level.label, out.move.kind)
            tid, *made = next(recorded, (None, None, None, None, None))
            if tuple(made) != move:
                found.append(f"after sample {sid} the serial replay makes {move}, the record {tuple(made)}")
            epoch = tid or epoch
    found += [f"a move the serial replay does not make: {tuple(extra)}" for extra in recorded]
    level, window = db_rows(db, "SELECT level, window_json FROM class_state WHERE name = ?", name)[0]
    if level != standing.level.label:
        found.append(f"class_state.level is {level}, the serial replay's {standing.level.label}")
    replayed = [[s.action_id, int(s.ok)] for s in standing.window.samples]
    if json.loads(window) != replayed:
        found.append(f"class_state.window_json is {window}, the serial replay's {replayed}")
    return found


@pytest.mark.asyncio
async def test_eight_writers_on_one_class_settle_as_the_serial_replay_of_their_samples(
    tmp_path: Path, workspace: Path, ratchet_bin: Path, backend: str
) -> None:
    """Eight processes write into one class at once, a third of their writes failing its check, so that it is
    demoted and promoted again and again while they race: every executed write is one sample, counted once, and
    the windows, levels and moves are exactly those of the settle rule replayed over the samples in the order
    the database recorded them; the chain verifies."""
    policies = write_policy(tmp_path / "policies", RACE_POLICY)
    engine = await Engine.open(workspace, policies=policies, db=parse_location(backend), client="setup")
    await engine.close()

    did = await anyio.to_thread.run_sync(_racers, workspace, policies, backend)
    ran = sorted(int(aid) for calls in did for aid, status in calls if status == "executed")
    assert len(ran) == RACERS * RACE_CALLS, did  # every write ran (confirmed when the class was demoted)
    sampled = db_rows(backend, "SELECT action_id, count(*) FROM samples WHERE class = 'race' GROUP BY action_id")
    assert sorted(sampled) == [(aid, 1) for aid in ran]  # each exactly once: none lost, none twice

    assert serial_replay(backend, policies, "race") == []
    kinds = [r[0] for r in db_rows(backend, "SELECT kind FROM transitions WHERE class = 'race' ORDER BY id")]
    assert "promote" in kinds and "demote" in kinds, kinds  # the race crossed moves both ways
    assert db_rows(backend, "SELECT count(*) FROM transitions WHERE kind = 'tamper-detected'") == [(0,)]
    where = ["--workspace", str(workspace), "--db", backend, "--policies", str(policies)]
    done = await anyio.to_thread.run_sync(_ratchet, ratchet_bin, ["verify", *where])
    assert done.returncode == 0, done.stdout + done.stderr
