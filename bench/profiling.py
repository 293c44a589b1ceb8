"""Where the gate's time goes: an instrumented split, the SQL it runs, cProfile, the cost of a round trip.

Nothing here changes Ratchet's source. The split wraps, on one open engine and only for the
instrumented calls, public seams: the operation's prepare/execute (the operations registry), the
result builder (`tool_outcome`, as engine/run.py calls it) and the store's one way to the database
(`Store.call`, which `Store.run` goes through too), so each call's wall time is divided into phases that do not overlap,
and each database round trip into time spent inside SQLite (measured on the worker thread) and time
spent getting there and back (the hop).

`python -m bench.profiling ratchet OUT.prof -- ARGS...` runs `ratchet ARGS...` (and `... bare OUT.prof
-- --workspace DIR` the bare server) under cProfile and writes the stats when the server exits (the
client closing stdin ends it).
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import child_env, content, median, summary, target

clock = time.perf_counter
WRITE_MARK = "-- (the write itself runs here) --"


class _Recorder:
    """Per-call phase timings and database round trips, attributed to the phase that made them."""

    def __init__(self) -> None:
        self.phase = "idle"
        self.calls: list[dict[str, float]] = []
        self.current: dict[str, float] = defaultdict(float)

    def add(self, key: str, seconds: float) -> None:
        self.current[key] += seconds

    def end_call(self) -> None:
        self.calls.append(dict(self.current))
        self.current = defaultdict(float)


async def gate_split(engine: Any, calls: int, start: int) -> dict[str, Any]:
    """Run `calls` instrumented gate calls (`engine.govern`, the path a `write_file` from a client that
    cannot ask its human takes); return the median time of each phase and the units of work.

    Phases are defined by where they fall: everything before the operation executes, less preparing
    it, is deciding and recording the intent (one unit of work); everything after it, less building
    the result, is recording the outcome. Each unit of work (`Store.call` or `Store.run`, the outer one
    when one goes through the other) is timed from the event loop, and its function inside; a unit whose
    function ran on another thread than the loop's was a round trip to the store's thread (a hop).
    """
    import threading

    from ratchet import operations
    from ratchet.engine import run as run_module

    rec = _Recorder()
    original_op = operations.operation("write_file")
    store = engine.store
    marks: dict[str, float] = {}
    loop_thread = threading.get_ident()

    async def prepare(*args: Any, **kwargs: Any) -> Any:
        previous, rec.phase = rec.phase, "prepare"
        t0 = clock()
        try:
            return await original_op.prepare(*args, **kwargs)
        finally:
            rec.add("prepare", clock() - t0)
            rec.phase = previous

    async def execute(*args: Any, **kwargs: Any) -> Any:
        rec.phase = "execute"
        marks["exec_start"] = clock()
        try:
            return await original_op.execute(*args, **kwargs)
        finally:
            marks["exec_end"] = clock()
            rec.phase = "record_outcome"

    original_outcome = getattr(run_module, "tool_outcome", None)

    def outcome(*args: Any, **kwargs: Any) -> Any:
        previous, rec.phase = rec.phase, "result"
        t0 = clock()
        try:
            assert original_outcome is not None
            return original_outcome(*args, **kwargs)
        finally:
            rec.add("result", clock() - t0)
            rec.phase = previous

    depth = [0]

    def timed_unit(original: Callable[..., Any]) -> Callable[..., Any]:
        async def unit(fn: Callable[[Any], Any], **kwargs: Any) -> Any:
            if depth[0]:
                return await original(fn, **kwargs)
            inside = [0.0]
            hopped = [False]

            def timed(conn: Any) -> Any:
                hopped[0] = threading.get_ident() != loop_thread
                t = clock()
                try:
                    return fn(conn)
                finally:
                    inside[0] += clock() - t

            depth[0] += 1
            t0 = clock()
            try:
                return await original(timed, **kwargs)
            finally:
                depth[0] -= 1
                waited = clock() - t0
                rec.add(f"db_wait.{rec.phase}", waited)
                rec.add(f"units.{rec.phase}", 1)
                rec.add("units", 1)
                rec.add("hops", 1 if hopped[0] else 0)
                rec.add("db_wait", waited)
                rec.add("db_inside", inside[0])

        return unit

    operations.OPERATIONS["write_file"] = dataclasses.replace(original_op, prepare=prepare, execute=execute)
    if original_outcome is not None:
        run_module.tool_outcome = outcome
    store.call = timed_unit(store.call)
    store.run = timed_unit(store.run)
    try:
        for i in range(start, start + calls):
            marks.clear()
            args = {"path": target(i), "content": content(i)}
            rec.phase = "decide_intent"
            t0 = clock()
            await engine.govern("write_file", args)
            t2 = clock()
            rec.phase = "idle"
            if "exec_start" not in marks:
                raise RuntimeError("the write was not executed through the operation")
            rec.add("before_write", marks["exec_start"] - t0)
            rec.add("execute", marks["exec_end"] - marks["exec_start"])
            rec.add("after_write", t2 - marks["exec_end"])
            rec.add("total", t2 - t0)
            rec.end_call()
    finally:
        operations.OPERATIONS["write_file"] = original_op
        if original_outcome is not None:
            run_module.tool_outcome = original_outcome
        del store.call
        del store.run

    def med_us(key: str) -> float:
        return round(median([c.get(key, 0.0) for c in rec.calls]) * 1e6, 1)

    def med_us_of(values: list[float]) -> float:
        return round(median(values) * 1e6, 1)

    phases = {
        "prepare (confine, read target, diff)": med_us("prepare"),
        "decide + intent: the unit of work (read the standing, decide, insert the intent)": med_us(
            "db_wait.decide_intent"
        ),
        "decide + intent: the rest (classify, redact, glue)": med_us_of(
            [c["before_write"] - c.get("prepare", 0) - c.get("db_wait.decide_intent", 0) for c in rec.calls]
        ),
        "execute (the write: keep the prior version for undo, atomic, fsync file + directory)": med_us("execute"),
        "record_outcome (after the write: outcome, sample, streak, class window)": med_us_of(
            [c["after_write"] - c.get("result", 0) for c in rec.calls]
        ),
        "result (building the ToolOutcome)": med_us("result"),
    }
    units = median([c.get("units", 0) for c in rec.calls])
    hops = median([c.get("hops", 0) for c in rec.calls])
    wait = med_us("db_wait")
    inside = med_us("db_inside")
    gate_only = [c["total"] - c.get("execute", 0) - c.get("prepare", 0) for c in rec.calls]
    return {
        "calls": calls,
        "phases_median_us": phases,
        "total": summary([c["total"] for c in rec.calls]),
        "gate_without_write": summary(gate_only),
        "db": {
            "units_per_call": units,
            "hops_per_call": hops,
            "units_by_phase": {
                k.split(".", 1)[1]: median([c.get(k, 0) for c in rec.calls])
                for k in sorted({k for c in rec.calls for k in c if k.startswith("units.")})
            },
            "wait_per_call_us": wait,
            "inside_sqlite_per_call_us": inside,
            "overhead_per_call_us": round(wait - inside, 1),
        },
    }


async def store_hops(db_path: Path) -> dict[str, int]:
    """How many worker-thread round trips each `Store` entry point takes for one unit of work."""
    from ratchet.record.store import Store

    store = await Store.open(db_path)
    await store.run(lambda conn: conn.execute("CREATE TABLE bench_hops (x INTEGER)"))
    counts: dict[str, int] = {}
    original = store.call
    n = [0]

    async def hop(fn: Callable[[Any], Any]) -> Any:
        n[0] += 1
        return await original(fn)

    store.call = hop  # type: ignore[method-assign]
    try:
        calls: dict[str, Callable[[], Any]] = {
            "call (a read)": lambda: store.call(lambda conn: conn.execute("SELECT 1").fetchone()),
            "run (a write transaction)": lambda: store.run(
                lambda conn: conn.execute("INSERT INTO bench_hops (x) VALUES (1)")
            ),
        }
        for name, make in calls.items():
            n[0] = 0
            try:
                await make()
            except Exception:
                continue
            counts[name] = n[0]
    finally:
        del store.call
        await store.close()
    return counts


async def gate_statements(engine: Any, db_path: Path, index: int) -> dict[str, Any]:
    """The SQL one gate call runs (traced on the connection) and SQLite's plan for each statement."""
    from ratchet import operations

    seen: list[str] = []
    original_op = operations.operation("write_file")

    async def execute(*args: Any, **kwargs: Any) -> Any:
        seen.append(WRITE_MARK)
        return await original_op.execute(*args, **kwargs)

    operations.OPERATIONS["write_file"] = dataclasses.replace(original_op, execute=execute)
    await engine.store.call(lambda conn: conn.set_trace_callback(seen.append))
    try:
        await engine.govern("write_file", {"path": target(index), "content": content(index)})
    finally:
        await engine.store.call(lambda conn: conn.set_trace_callback(None))
        operations.OPERATIONS["write_file"] = original_op
    con = sqlite3.connect(db_path)
    plans = []
    try:
        for sql in seen:
            verb = sql.split(None, 1)[0].upper()
            plan: list[str] = []
            if verb in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                plan = _explain(con, sql)
            plans.append({"sql": _short(sql), "plan": plan})
    finally:
        con.close()
    return {"count": sum(1 for sql in seen if sql != WRITE_MARK), "statements": plans}


def _explain(con: sqlite3.Connection, sql: str) -> list[str]:
    """SQLite's plan for `sql`; SQL functions the server registers on its connection get a stand-in."""
    for _ in range(5):
        try:
            return [row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql)]
        except sqlite3.OperationalError as exc:
            missing = str(exc).partition("no such function: ")[2]
            if not missing:
                return [f"(not explained: {exc})"]
            con.create_function(missing, -1, lambda *args: args[0] if args else None)
    return ["(not explained)"]


def micro_costs(engine: Any, n: int) -> dict[str, Any]:
    """Pieces of a write timed on their own, without a profiler's overhead (skipped where the API differs)."""
    import json

    from ratchet.executors import fs

    ws = engine.workspace
    path, text = target(7), content(7, "micro ")  # differs from what the file holds, so the diff is real
    args = {"path": path, "content": text}
    rel = ws.relpath(path)
    before = fs.read_state(ws, rel)
    plan = fs.plan_write(ws, path, text)
    pieces: dict[str, Callable[[], Any]] = {
        "Workspace.relpath (confine one path)": lambda: ws.relpath(path),
        "fs.read_state (walk with O_NOFOLLOW, read, hash)": lambda: fs.read_state(ws, rel),
        "fs.plan_write (relpath + read_state + diff)": lambda: fs.plan_write(ws, path, text),
        "json.dumps(args)": lambda: json.dumps(args),
    }
    if hasattr(fs, "_diff"):
        pieces["unified diff of the ~700-byte file"] = lambda: fs._diff(rel, before.text, plan.new_text)
    try:
        from ratchet.redact import redact

        pieces["redact(json.dumps(args)) (~800 bytes)"] = lambda: redact(json.dumps(args))
        pieces["redact(preview diff)"] = lambda: redact(plan.diff)
    except ImportError:
        pass
    out: dict[str, Any] = {}
    for name, fn in pieces.items():
        times = []
        try:
            for _ in range(n):
                t0 = clock()
                fn()
                times.append(clock() - t0)
        except Exception as exc:  # an API that moved: report it, do not fail the run
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[name] = summary(times, unit="us")
    return out


def _short(sql: str, limit: int = 150) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def outside_plans(db_path: Path) -> list[dict[str, Any]]:
    """Plans of the queries off the gate path that do read the whole history (recovery, the queue)."""
    queries = {
        "record.actions.in_flight (every Engine.open: twice per `ratchet serve` start)": (
            "SELECT * FROM actions WHERE status IN ('running', 'draft', 'approving') "
            "AND status IN ('running', 'approving')"
        ),
        "Engine.queue (review_drafts, `ratchet queue`)": (
            "SELECT * FROM actions WHERE status IN ('running', 'draft', 'approving') AND status = 'draft' ORDER BY id"
        ),
    }
    con = sqlite3.connect(db_path)
    out = []
    try:
        for name, sql in queries.items():
            plan = [row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql)]
            t0 = clock()
            con.execute(sql).fetchall()
            out.append({"where": name, "sql": sql, "plan": plan, "ms": round((clock() - t0) * 1e3, 2)})
    finally:
        con.close()
    return out


Raw = dict[tuple[str, int, str], tuple[int, int, float, float, Any]]

_STARTUP = ("<module>", "(main)", "(cmd_serve)", "(run)")


def _raw(stats: pstats.Stats) -> Raw:
    raw: Raw = stats.stats  # type: ignore[attr-defined]
    return raw


def _minus(after: Raw, before: Raw) -> Raw:
    """Per-function differences: what the extra calls cost, without start-up and imports."""
    out: Raw = {}
    for key, (cc, nc, tt, ct, callers) in after.items():
        b = before.get(key)
        if b is not None:
            cc, nc, tt, ct = cc - b[0], nc - b[1], tt - b[2], ct - b[3]
        if nc > 0:
            out[key] = (cc, nc, tt, ct, callers)
    return out


def _top(raw: Raw, by: str, calls: int, limit: int, keep: Callable[[str], bool]) -> list[dict[str, Any]]:
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        name = f"{_shorten_path(file)}:{line}({func})"
        if not keep(name) or any(marker in name for marker in _STARTUP) or nc < calls / 100:
            continue  # start-up code, and one-off work (first-call model building) amortized to nothing
        rows.append(
            {
                "function": name,
                "calls_per_op": round(nc / calls, 2),
                "tottime_us_per_op": round(tt / calls * 1e6, 1),
                "cumtime_us_per_op": round(ct / calls * 1e6, 1),
            }
        )
    rows.sort(key=lambda r: r[by], reverse=True)
    return rows[:limit]


def _shorten_path(file: str) -> str:
    for marker in ("site-packages/", "/server/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summarize_profile(raw: Raw, calls: int, limit: int = 15) -> dict[str, Any]:
    """Top functions per operation: by own time; Ratchet's and aiosqlite's by cumulative time; the SDK's by own."""
    return {
        "calls": calls,
        "by_tottime": _top(raw, "tottime_us_per_op", calls, limit, lambda _n: True),
        "by_cumtime_ratchet": _top(
            raw, "cumtime_us_per_op", calls, 2 * limit, lambda n: n.startswith(("ratchet/", "aiosqlite/"))
        ),
        "by_tottime_sdk": _top(
            raw, "tottime_us_per_op", calls, limit, lambda n: n.startswith(("mcp/", "pydantic", "anyio/"))
        ),
    }


async def gate_cprofile(engine: Any, calls: int, start: int) -> dict[str, Any]:
    """cProfile of `calls` gate calls in the event loop's thread (the aiosqlite worker is not profiled)."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(start, start + calls):
        await engine.govern("write_file", {"path": target(i), "content": content(i)})
    prof.disable()
    return summarize_profile(_raw(pstats.Stats(prof)), calls)


async def hop_cost(db_path: Path, n: int) -> dict[str, Any]:
    """One trivial statement several ways: plain sqlite3 on the loop's thread; one `anyio.to_thread` hop
    to a plain sqlite3 connection; `Store.call` (that hop under the store's lock); `Store.call(short=True)`
    (on the loop's thread, busy timeout switched off and on again: no hop); and, where aiosqlite
    is installed, its public API: `execute_fetchall` (one hop) and `execute` + `fetchone` + close (three)."""
    import anyio

    from ratchet.record.store import Store

    con = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    sync: list[float] = []
    threaded: list[float] = []
    for _ in range(n):
        t0 = clock()
        con.execute("SELECT 1").fetchone()
        sync.append(clock() - t0)
    for _ in range(n):
        t0 = clock()
        await anyio.to_thread.run_sync(lambda: con.execute("SELECT 1").fetchone())
        threaded.append(clock() - t0)
    con.close()
    store = await Store.open(db_path)
    store_call: list[float] = []
    store_short: list[float] = []
    try:
        for _ in range(n):
            t0 = clock()
            await store.call(lambda conn: conn.execute("SELECT 1").fetchone())
            store_call.append(clock() - t0)
        for _ in range(n):
            t0 = clock()
            await store.call(lambda conn: conn.execute("SELECT 1").fetchone(), short=True)
            store_short.append(clock() - t0)
    finally:
        await store.close()
    out = {
        "sqlite3_select_1": summary(sync, unit="us"),
        "to_thread_1_hop": summary(threaded, unit="us"),
        "store_call_1_hop": summary(store_call, unit="us"),
        "store_call_short_no_hop": summary(store_short, unit="us"),
    }
    try:
        import aiosqlite
    except ImportError:
        return out
    adb = await aiosqlite.connect(db_path, isolation_level=None)
    one_hop: list[float] = []
    three_hops: list[float] = []
    try:
        for _ in range(n):
            t0 = clock()
            await adb.execute_fetchall("SELECT 1")
            one_hop.append(clock() - t0)
        for _ in range(n):
            t0 = clock()
            async with adb.execute("SELECT 1") as cursor:
                await cursor.fetchone()
            three_hops.append(clock() - t0)
    finally:
        await adb.close()
    out["aiosqlite_execute_fetchall_1_hop"] = summary(one_hop, unit="us")
    out["aiosqlite_execute_fetchone_close_3_hops"] = summary(three_hops, unit="us")
    return out


# -- the server under cProfile ---------------------------------------------------------------------


def serve_main(which: str, argv: list[str]) -> int:
    """`python -m bench.profiling ratchet|bare OUT.prof -- ARGS...`: profile the server until it exits."""
    import signal

    out = Path(argv[0])
    args = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
    if which == "ratchet":
        from ratchet.cli import main
    else:
        from .bare_server import main

    prof = cProfile.Profile()

    def dump(*_: Any) -> None:
        prof.disable()
        prof.dump_stats(out)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, dump)
    prof.enable()
    try:
        code = main(args)
    finally:
        prof.disable()
        prof.dump_stats(out)
    return code


async def _profiled_session(which: str, server_args: list[str], out: Path, calls: int, marker: str) -> Raw:
    """One profiled server: connect, list the tools, make `calls` writes, close; its raw stats."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bench.profiling", which, str(out), "--", *server_args],
        env=child_env(),
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    with out.with_suffix(".stderr").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await client.list_tools()
            for i in range(calls):
                result = await client.call_tool("write_file", {"path": target(i), "content": content(i, marker)})
                status = (result.structured_content or {}).get("status", "executed")
                if result.is_error or status != "executed":
                    raise RuntimeError(f"profiled write not executed: {result}")
    # The client's exit waits for the server process to end (stdin closed; SIGTERM after 2 s, which dumps too).
    if not out.exists():
        raise RuntimeError(f"the profiled {which} server wrote no stats")
    return _raw(pstats.Stats(str(out)))


async def _steady(which: str, server_args: list[str], out_dir: Path, calls: int, marker: str) -> Raw:
    """Profiled twice, with 1 and with 1 + `calls` writes: the difference is the steady cost of `calls` writes.

    Start-up, imports and the first call's one-off work (lazily built models) are in both runs."""
    baseline = await _profiled_session(which, server_args, out_dir / f"{which}-1.prof", 1, marker)
    loaded = await _profiled_session(which, server_args, out_dir / f"{which}-n.prof", 1 + calls, marker)
    return _minus(loaded, baseline)


def _gap(ratchet: Raw, bare: Raw, calls: int, limit: int) -> list[dict[str, Any]]:
    """Functions by how much more own time per write they take in Ratchet than in the bare server."""
    rows = []
    for key in set(ratchet) | set(bare):
        r = ratchet.get(key, (0, 0, 0.0, 0.0, None))
        b = bare.get(key, (0, 0, 0.0, 0.0, None))
        extra = (r[2] - b[2]) / calls
        if extra <= 0:
            continue
        file, line, func = key
        rows.append(
            {
                "function": f"{_shorten_path(file)}:{line}({func})",
                "ratchet_calls_per_op": round(r[1] / calls, 2),
                "bare_calls_per_op": round(b[1] / calls, 2),
                "extra_own_us_per_op": round(extra * 1e6, 1),
            }
        )
    rows.sort(key=lambda row: row["extra_own_us_per_op"], reverse=True)
    return rows[:limit]


async def server_profile(
    ratchet_args: list[str], bare_args: list[str], out_dir: Path, calls: int, marker: str
) -> dict[str, Any]:
    """`ratchet serve` and the bare server under cProfile: steady per-write costs, and where they differ."""
    ratchet = await _steady("ratchet", ratchet_args, out_dir, calls, marker)
    bare = await _steady("bare", bare_args, out_dir, calls, marker)

    def total_own(raw: Raw) -> float:
        return sum(v[2] for v in raw.values()) / calls * 1e6

    return {
        **summarize_profile(ratchet, calls, limit=20),
        "own_us_per_op": {"ratchet": round(total_own(ratchet), 1), "bare": round(total_own(bare), 1)},
        "gap_vs_bare": _gap(ratchet, bare, calls, 25),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] in ("ratchet", "bare"):
        sys.exit(serve_main(sys.argv[1], sys.argv[2:]))
    print("usage: python -m bench.profiling ratchet|bare OUT.prof -- server-args...", file=sys.stderr)
    sys.exit(2)
