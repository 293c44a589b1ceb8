"""The record on PostgreSQL against SQLite, in the same run: the gate's round trip, and a team's throughput.

    .venv/bin/python -m bench.postgres [--url postgresql://...] [--calls 400] [--procs 1,2,4,8] [--actions 250]
        [--serve] [--no-round-trip] [--out FILE.json] [--json]

1. Round trip: one `Engine` per backend in one process, each call `engine.evaluate` + `engine.carry_out`
   of an autonomous `write_file` overwriting a real file (as bench/gate.py), both backends measured in
   interleaved blocks so a noisy neighbour slows both alike. Reported: median and p99 per backend and
   their ratio (PostgreSQL / SQLite). `--no-round-trip` skips it.
2. Throughput, for each N of `--procs`: N writers on one database, M autonomous writes each, all
   started together once every writer is ready, on a fresh PostgreSQL database and then a fresh SQLite
   file. With `--serve` each writer is a real `ratchet serve` subprocess over stdio (its own workspace,
   the shared `--db`) driven by the MCP SDK's `Client`; without it, a process driving an `Engine`
   directly. Reported: actions/s, median and p99 of a call, and the record counted afterwards:
   recorded actions (lost = expected - distinct targets recorded), duplicates (one target recorded
   twice, an id answered twice), anything left `running`, and with `--serve` servers still running
   after their client left, failed calls and errors in the servers' stderr. Exit status 1 if any is
   not zero.

Without --url it starts a throwaway PostgreSQL cluster on loopback (initdb + pg_ctl as the `postgres`
user when run as root; Debian: apt-get install postgresql), with fsync on, as a server would run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import BENCH_AREA, child_pid, client, content, make_policy, ratchet_bin, seed_files, stdio_params, target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """A throwaway PostgreSQL server on loopback (durable settings: fsync on)."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
        which = shutil.which("initdb")
        if not found and which is None:
            raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
        self.bindir = found[-1].parent if found else Path(str(which)).parent
        self.root = Path(tempfile.mkdtemp(prefix="ratchet-bench-pg-"))
        self.port = _free_port()

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True)

    def start(self) -> str:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = str(self.root / "data")
        self._run(str(self.bindir / "initdb"), "-D", data, "-U", "ratchet", "-A", "trust", "-E", "UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        log = str(self.root / "server.log")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start")
        return f"postgresql://ratchet@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def policies_dir(root: Path) -> Path:
    return make_policy(root / "policies")


def p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.99) - 1)]


# -- 1. round trip -------------------------------------------------------------------------------------


async def round_trip(root: Path, url: str, calls: int, block: int) -> dict[str, Any]:
    from ratchet.engine import Engine
    from ratchet.record.store import PostgresUrl

    policies = policies_dir(root)
    engines: dict[str, Any] = {}
    for name, db in (("sqlite", root / "rt.db"), ("postgresql", PostgresUrl(fresh_database(url, "bench_rt")))):
        ws = root / f"rt-{name}"
        ws.mkdir()
        seed_files(ws)
        engines[name] = await Engine.open(ws, policies=policies, db=db, client="bench")
    times: dict[str, list[float]] = {name: [] for name in engines}
    done = dict.fromkeys(engines, 0)
    warm = 20
    order = list(engines)
    while min(done.values()) < calls + warm:
        for name in order:
            engine = engines[name]
            for _ in range(block):
                i = done[name]
                t0 = time.perf_counter()
                ev = await engine.evaluate("write_file", {"path": target(i), "content": f"{i}\n"})
                out = await engine.carry_out(ev)
                elapsed = time.perf_counter() - t0
                if out.status != "executed":
                    raise RuntimeError(f"bench write not executed: {out.status}: {out.message}")
                if i >= warm:
                    times[name].append(elapsed)
                done[name] += 1
        order.reverse()
    for engine in engines.values():
        await engine.close()
    out: dict[str, Any] = {
        name: {"calls": len(xs), "median_ms": statistics.median(xs) * 1e3, "p99_ms": p99(xs) * 1e3}
        for name, xs in times.items()
    }
    out["ratio_median"] = out["postgresql"]["median_ms"] / out["sqlite"]["median_ms"]
    return out


# -- 2. many processes on one database ------------------------------------------------------------------

_WORKER = """
import asyncio, json, sys, time
from pathlib import Path
from ratchet.engine import Engine
from ratchet.record.locks import WAITS
from ratchet.record.store import parse_location

async def main(ws, policies, db, n, tag):
    engine = await Engine.open(Path(ws), policies=Path(policies), db=parse_location(db), client="bench")
    print("ready", flush=True)
    sys.stdin.readline()
    WAITS.reset()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        ev = await engine.evaluate("write_file", {"path": f"bench-area/{tag}/f{i}.txt", "content": f"{i}\\n"})
        out = await engine.carry_out(ev)
        times.append(time.perf_counter() - t0)
        assert out.status == "executed", out.status
    await engine.close()
    print(json.dumps({"times": times, "lock_wait_s": WAITS.seconds, "units": WAITS.units}))

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4]), sys.argv[5]))
"""


def own_classes(policies: Path, procs: int) -> None:
    """A class of its own for each writer's files (`bench-area/pK/**`, more specific than the bench class)."""
    text = "".join(
        f'[classes.bench-p{k}]\ntools = ["write_file", "edit_file"]\npaths = ["{BENCH_AREA}/p{k}/**"]\n'
        'start = "autonomous"\nfloor = "draft"\nceiling = "autonomous"\n\n'
        for k in range(procs)
    )
    (policies / "zz-bench-own.toml").write_text(text, encoding="utf-8")


def throughput(root: Path, db: str, procs: int, actions: int, name: str, classes: str = "one") -> dict[str, Any]:
    from ratchet.record.store import parse_location

    policies = policies_dir(root / name)
    if classes == "own":
        own_classes(policies, procs)
    ws = root / name / "ws"
    ws.mkdir(parents=True)
    seed_files(ws)
    # Create the schema once, before the race of processes opening it.
    asyncio.run(_open_once(ws, policies, db))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(ws), str(policies), db, str(actions), f"p{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(procs)
    ]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    times: list[float] = []
    waited = 0.0
    for w in workers:
        out, _ = w.communicate(timeout=3600)
        if w.returncode != 0:
            raise RuntimeError(f"a bench process failed ({w.returncode})")
        figures = json.loads(out.strip().splitlines()[-1])
        times += figures["times"]
        waited += figures["lock_wait_s"]
    wall = time.perf_counter() - started
    recorded = asyncio.run(_count(parse_location(db)))
    expected = procs * actions
    return {
        "processes": procs,
        "classes": classes,
        "actions_each": actions,
        "actions_per_s": expected / wall,
        "p99_ms": p99(times) * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        # The share of a call's time spent waiting for write locks (record/locks.py), over all calls.
        "lock_wait_share": waited / sum(times),
        "recorded": recorded["rows"],
        "lost": expected - recorded["distinct"],
        "duplicated": recorded["rows"] - recorded["distinct"],
        "left_running": recorded["running"],
    }


# -- 3. real `ratchet serve` processes on one database -------------------------------------------------

SERVE_ERROR_MARKERS = ("Traceback", "OperationalError", "database is locked", "deadlock", "Error:")


async def serve_throughput(root: Path, db: str, procs: int, actions: int, name: str) -> dict[str, Any]:
    """N `ratchet serve` subprocesses over stdio, each its own workspace, all on the database `db`.

    Each is driven by its own MCP `Client`; every client waits until all servers have answered
    `initialize` (a barrier), then issues M autonomous `write_file` calls one after another, each timed.
    Afterwards the record is counted against what was asked and what the servers answered."""
    import anyio

    from ratchet.record.store import parse_location

    base = root / name
    policies = policies_dir(base)
    spaces = [base / f"ws{k}" for k in range(procs)]
    for ws in spaces:
        ws.mkdir(parents=True)
    # Create the schema once, before the race of servers opening it.
    await _open_once(spaces[0], policies, db)
    times: list[float] = []
    answered: list[int] = []
    failures: list[str] = []
    stamps: dict[str, float] = {}
    connected = 0
    everyone = anyio.Event()

    async def drive(k: int) -> None:
        nonlocal connected
        argv = ["serve", "--workspace", str(spaces[k]), "--policies", str(policies), "--db", db]
        params = stdio_params(ratchet_bin(), argv)
        with (base / f"server-{k}.stderr").open("w") as errlog:
            async with client(params, errlog) as c:
                connected += 1
                if connected == procs:
                    stamps["start"] = time.perf_counter()
                    everyone.set()
                with anyio.fail_after(600):
                    await everyone.wait()
                for i in range(actions):
                    path = f"{BENCH_AREA}/p{k}/f{i:05d}.txt"
                    t0 = time.perf_counter()
                    try:
                        result = await c.call_tool(
                            "write_file", {"path": path, "content": content(i, f"p{k}-{i} "), "intent": f"p{k}-{i}"}
                        )
                    except Exception as exc:  # a failed call is a result to count, not a crash of the bench
                        failures.append(f"p{k}-{i}: {type(exc).__name__}: {exc}")
                        continue
                    times.append(time.perf_counter() - t0)
                    sc = result.structured_content or {}
                    if result.is_error or sc.get("status") != "executed":
                        failures.append(f"p{k}-{i}: {sc.get('status')}: {sc.get('message') or result.content}")
                        continue
                    answered.append(int(sc["action_id"]))
                stamps[f"end{k}"] = time.perf_counter()

    async with anyio.create_task_group() as tg:
        for k in range(procs):
            tg.start_soon(drive, k)
    wall = max(v for key, v in stamps.items() if key.startswith("end")) - stamps["start"]
    # Every server's stdin is closed when its client leaves; none may outlive it.
    still_up = [k for k, ws in enumerate(spaces) if child_pid(str(ws)) is not None]
    recorded = await _count(parse_location(db))
    errors: list[str] = []
    for log in sorted(base.glob("server-*.stderr")):
        lines = log.read_text(errors="replace").splitlines()
        errors += [f"{log.name}: {line.strip()[:200]}" for line in lines if any(m in line for m in SERVE_ERROR_MARKERS)]
    expected = procs * actions
    return {
        "processes": procs,
        "actions_each": actions,
        "wall_s": wall,
        "actions_per_s": expected / wall,
        "p99_ms": p99(times) * 1e3,
        "median_ms": statistics.median(times) * 1e3,
        "expected": expected,
        "recorded": recorded["rows"],
        "lost": expected - recorded["distinct"],
        "duplicated": recorded["rows"] - recorded["distinct"],
        "answered": len(answered),
        "answered_ids_duplicated": len(answered) - len(set(answered)),
        "left_running": recorded["running"],
        "servers_left_running": len(still_up),
        "call_failures": len(failures),
        "call_failure_examples": failures[:5],
        "server_errors": len(errors),
        "server_error_examples": errors[:5],
    }


async def _open_once(ws: Path, policies: Path, db: str) -> None:
    from ratchet.engine import Engine
    from ratchet.record.store import parse_location

    engine = await Engine.open(ws, policies=policies, db=parse_location(db), client="bench-setup")
    await engine.close()


async def _count(location: Any) -> dict[str, int]:
    from ratchet.record.store import Store
    from ratchet.record.transfer import target_counts

    store = await Store.open(location)
    try:
        return await store.call(lambda conn: target_counts(conn, "bench-area/%"))
    finally:
        await store.close()


def _print_runs(title: str, runs: list[dict[str, Any]]) -> None:
    print(title)
    for t in runs:
        line = (
            f"  {t['backend']:<11} {t['processes']} x {t['actions_each']}"
            + (" (a class each)" if t.get("classes") == "own" else "")
            + f": {t['actions_per_s']:.0f} actions/s  "
            f"median {t['median_ms']:.1f} ms  p99 {t['p99_ms']:.1f} ms  recorded {t['recorded']}  lost {t['lost']}  "
            f"duplicated {t['duplicated']}  left running {t['left_running']}"
        )
        if "lock_wait_share" in t:
            line += f"  waiting for locks {t['lock_wait_share']:.1%} of a call's time"
        if "servers_left_running" in t:
            line += (
                f"  servers left {t['servers_left_running']}  failed calls {t['call_failures']}  "
                f"server errors {t['server_errors']}"
            )
        print(line, flush=True)


def _procs(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected a process count or a comma-separated list of them, got {text!r}")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL server to use (a database on it is created; default: start one)")
    parser.add_argument("--calls", type=int, default=400, help="round-trip calls per backend (default 400)")
    parser.add_argument(
        "--procs", type=_procs, default=[4], help="processes sharing one database, or a list: 1,2,4,8 (default 4)"
    )
    parser.add_argument("--actions", type=int, default=250, help="writes per process (default 250)")
    parser.add_argument(
        "--serve", action="store_true", help="each writer a real `ratchet serve` over stdio, driven by an MCP client"
    )
    parser.add_argument(
        "--classes",
        choices=("one", "own"),
        default="one",
        help="one: every writer writes into the bench class (default); own: each writer into a class of its own",
    )
    parser.add_argument("--no-round-trip", action="store_true", help="skip the in-process round trip")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    cluster = None if args.url else Cluster()
    url = args.url or (cluster.start() if cluster else "")
    root = Path(tempfile.mkdtemp(prefix="ratchet-bench-"))
    result: dict[str, Any] = {"mode": "serve" if args.serve else "engine", "loadavg_at_start": os.getloadavg()}
    try:
        if not args.no_round_trip:
            result["round_trip"] = asyncio.run(round_trip(root, url, args.calls, 25))
        runs: list[dict[str, Any]] = []
        for procs in args.procs:
            # Both backends at each size, one after the other, so they see about the same machine.
            for backend in ("postgresql", "sqlite"):
                tag = f"{backend}-{procs}"
                if backend == "postgresql":
                    db = fresh_database(url, f"bench_team_{procs}")
                else:
                    db = str(root / f"team-{procs}.db")
                if args.serve:
                    run = asyncio.run(serve_throughput(root, db, procs, args.actions, tag))
                else:
                    run = throughput(root, db, procs, args.actions, tag, args.classes)
                run["backend"] = backend
                runs.append(run)
                if not args.json:
                    _print_runs(f"{backend}, {procs} x {args.actions}:", [run])
        result["throughput"] = runs
        result["loadavg_at_end"] = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if cluster is not None:
            cluster.stop()
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "round_trip" in result:
        rt = result["round_trip"]
        print("round trip (evaluate + carry_out of an autonomous write, one process):")
        for name in ("sqlite", "postgresql"):
            print(f"  {name:<11} median {rt[name]['median_ms']:.2f} ms  p99 {rt[name]['p99_ms']:.2f} ms")
        print(f"  postgresql / sqlite (median): {rt['ratio_median']:.2f}x")
    how = "`ratchet serve` processes over stdio" if args.serve else "processes, each an Engine"
    _print_runs(f"throughput ({how}, one database each run):", result["throughput"])
    bad = [
        t
        for t in result["throughput"]
        if t["lost"]
        or t["duplicated"]
        or t["left_running"]
        or t.get("call_failures")
        or t.get("server_errors")
        or t.get("servers_left_running")
        or t.get("answered_ids_duplicated")
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
