"""The evidence views at team scale: `ratchet metrics`, `report --html` and `simulate` at 10^5 and 10^6
recorded actions, each at its default period (the last 30 days).

The history is the gate bench's own generator (`gate.grow_history`: rows shaped as the engine writes
them; 90% an autonomous bench class, 5% rejected drafts of `source-write`, 5% confirmed `docs-write`),
re-timed so that actions arrive at a fixed rate of `PER_DAY` a day, ending now: 10^5 actions span
about 33 days and 10^6 about 333. A team's history grows by growing older, so the last 30 days hold
about as many actions at either size, and a view bounded by its period should cost about the same.

Run: `.venv/bin/python -m bench.evidence [--sizes 100000,1000000] [--backends sqlite,postgresql] [--url
postgresql://...] [--tmp DIR]`; it prints a Markdown table per backend (seconds, page size, growth ratio)
and writes the figures as JSON to `--out` when given. Each command runs as a real `ratchet` subprocess,
timed end to end (start-up included).

On PostgreSQL the same SQLite history is moved with `ratchet db copy` (timed: how long a team's move
of such a record takes) into a fresh database on a throwaway cluster (bench/postgres.py's `Cluster`,
or `--url`), then ANALYZEd, and the same commands run with `--db postgresql://...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import make_policy, ratchet_bin, seed_files
from .gate import grow_history
from .postgres import Cluster

PER_DAY = 3_000  # actions a day: a team of agents; 10^6 actions are about eleven months of it
GROWTH_TARGET = 2.0  # from 10^5 to 10^6 at the default period
# With 10^5 actions in the period, as ratios to `ratchet status` on the same record in the same run.
# The busy case: every action inside the default period (30 days), spread over its last `BUSY_DAYS` days.
SPREAD, BUSY = "spread", "busy"
BUSY_DAYS = 29
METRICS_X_STATUS = 1.5
REPORT_X_STATUS = 4.0
PAGE_TARGET_BYTES = 2 * 2**20


def build(root: Path, size: int, per_day: float = PER_DAY) -> tuple[Path, Path, Path]:
    """A workspace, the bench policy and a database holding `size` actions at `per_day` a day, ending now."""
    from ratchet.engine import Engine

    workspace, db = root / "ws", root / "state" / "ratchet.db"
    workspace.mkdir(parents=True)
    seed_files(workspace)
    policies = make_policy(root / "policies")

    async def create() -> Any:
        engine = await Engine.open(workspace, policies=policies, db=db, client="bench-setup")
        policy = engine.policy
        await engine.close()
        return policy

    policy = asyncio.run(create())
    grow_history(db, policy, size)
    step = 86400 / per_day
    con = sqlite3.connect(db, isolation_level=None)
    try:
        t0 = time.time() - size * step
        con.execute(
            "UPDATE actions SET created_at = :t0 + id * :step, finished_at = :t0 + id * :step + 1.0",
            {"t0": t0, "step": step},
        )
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return workspace, policies, db


def candidate(policies: Path, out: Path) -> Path:
    """The bench policy with one class changed (docs-write may climb on fewer samples)."""
    shutil.copytree(policies, out)
    files = out / "files.toml"
    text = files.read_text(encoding="utf-8")
    marker = 'ceiling = "autonomous"\n'
    head, _, tail = text.partition(marker)
    files.write_text(head + marker + "min_samples = 5\n" + tail, encoding="utf-8")
    return out


def timed(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")
    return seconds, done.stdout


def views(
    size: int, workspace: Path, policies: Path, db: str, root: Path, simulate: bool = True, repeat: int = 1
) -> dict[str, Any]:
    """Time the views on one database (an SQLite file's path, or a PostgreSQL URL); `simulate` False leaves
    the two `simulate` runs out (the longest of the run at 10^6, and no target of the busy case). `repeat`
    rounds of status, metrics and report --html, interleaved so each round meets the same load: each figure
    is the median of its rounds (each round's seconds are kept, `*_runs`)."""
    common = ["--workspace", str(workspace), "--db", db]
    ratchet = str(ratchet_bin())
    page = root / "report.html"
    out: dict[str, Any] = {"size": size}
    # One untimed open first: it brings the database to the current schema (index builds included).
    timed([ratchet, "status", *common, "--policies", str(policies), "--json"])
    runs: dict[str, list[float]] = {"status_s": [], "metrics_s": [], "report_html_s": []}
    for _ in range(repeat):
        # The baseline of the same run: `ratchet status` on the same record (start-up and one read of the standing).
        seconds, _ = timed([ratchet, "status", *common, "--policies", str(policies), "--json"])
        runs["status_s"].append(seconds)
        seconds, text = timed([ratchet, "metrics", *common, "--policies", str(policies), "--json"])
        runs["metrics_s"].append(seconds)
        out["actions_in_period"] = json.loads(text)["total"]["actions"]
        seconds, _ = timed([ratchet, "report", *common, "--policies", str(policies), "--html", str(page)])
        runs["report_html_s"].append(seconds)
        out["page_bytes"] = page.stat().st_size
        page.unlink()
    for key, values in runs.items():
        out[key] = statistics.median(values)
        if repeat > 1:
            out[key.removesuffix("_s") + "_runs"] = values
    out["metrics_x_status"] = out["metrics_s"] / out["status_s"]
    out["report_html_x_status"] = out["report_html_s"] / out["status_s"]
    if not simulate:
        return out
    cand = root / "candidate"
    if not cand.exists():
        candidate(policies, cand)
    out["simulate_s"], text = timed(
        [ratchet, "simulate", *common, "--policies", str(cand), "--against", str(policies), "--json"]
    )
    sim = json.loads(text)
    out["simulate_replayed"] = sim["replayed"]
    out["simulate_classes"] = sim["replayed_classes"]
    out["simulate_every_class_s"], text = timed([ratchet, "simulate", *common, "--policies", str(cand), "--json"])
    out["simulate_every_class_replayed"] = json.loads(text)["replayed"]
    return out


def to_postgres(db: Path, url: str, size: int) -> tuple[str, float, float]:
    """The SQLite history copied into a fresh PostgreSQL database with `ratchet db copy`, as a team moves
    its record: the database's URL, the copy's seconds, and the seconds of an ANALYZE after it (what
    autovacuum does on its own within a minute of a bulk load; done here so the views are not timed
    against a table the planner has no statistics for)."""
    import psycopg

    from .postgres import fresh_database

    target = fresh_database(url, f"bench_evidence_{size}")
    copy_s, _ = timed([str(ratchet_bin()), "db", "copy", str(db), target])
    started = time.perf_counter()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return target, copy_s, time.perf_counter() - started


def measure(
    size: int, tmp: Path, backends: list[str], url: str | None, case: str, simulate: bool = True, repeat: int = 1
) -> list[dict[str, Any]]:
    """Build one history of `size` actions and time the views on each backend: the same rows on both."""
    root = tmp / f"evidence-{size}"
    per_day = size / BUSY_DAYS if case == BUSY else PER_DAY
    started = time.perf_counter()
    workspace, policies, db = build(root, size, per_day)
    built_s = time.perf_counter() - started
    rows = []
    for backend in backends:
        if backend == "sqlite":
            row = views(size, workspace, policies, str(db), root, simulate, repeat)
        else:
            assert url is not None
            target, copy_s, analyze_s = to_postgres(db, url, size)
            row = views(size, workspace, policies, target, root, simulate, repeat)
            row.update(copy_s=copy_s, analyze_s=analyze_s)
        row.update(backend=backend, case=case, days=round(size / per_day, 1), build_s=built_s)
        rows.append(row)
        print(json.dumps(row), flush=True)
    shutil.rmtree(root)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of one backend, a growth-ratio row and the targets."""
    small, large = rows[0], rows[-1]
    cols = (
        ("metrics", "metrics_s"),
        ("report --html", "report_html_s"),
        ("simulate --against (changed classes)", "simulate_s"),
        ("simulate (every class)", "simulate_every_class_s"),
    )
    lines = [
        "| actions (days) | in the last 30 days | " + " | ".join(c for c, _ in cols) + " | page |",
        "|---:|---:|" + "---:|" * len(cols) + "---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} ({r['days']:g}) | {r['actions_in_period']:,} | "
            + " | ".join(f"{r[k]:.2f} s" for _, k in cols)
            + f" | {r['page_bytes'] / 2**20:.2f} MiB |"
        )
    ratios = [large[k] / small[k] for _, k in cols]
    lines.append(
        f"| growth ×{large['size'] // small['size']} | | "
        + " | ".join(f"×{x:.2f}" for x in ratios)
        + f" | ×{large['page_bytes'] / small['page_bytes']:.2f} |"
    )
    met = all(x <= GROWTH_TARGET for x in ratios[:3]) and large["page_bytes"] < PAGE_TARGET_BYTES
    lines.append("")
    lines.append(
        f"Targets (growth ≤ ×{GROWTH_TARGET:g} for metrics, report and simulate; page under 2 MiB): "
        + ("met" if met else "**not met**")
    )
    return "\n".join(lines)


def busy_table(rows: list[dict[str, Any]]) -> str:
    """The busy case's table on one backend: each view's seconds and its ratio to `ratchet status`, the growth
    from the smallest size to the largest, and the targets."""
    small, large = rows[0], rows[-1]
    lines = [
        "| actions in the period | status | metrics | ×status | report --html | ×status | simulate (every class) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['actions_in_period']:,} | {r['status_s']:.2f} s | {r['metrics_s']:.2f} s | "
            f"×{r['metrics_x_status']:.2f} | {r['report_html_s']:.2f} s | ×{r['report_html_x_status']:.2f} | "
            + (f"{r['simulate_every_class_s']:.2f} s |" if "simulate_every_class_s" in r else "not run |")
        )
    growth = {
        k: large[k] / small[k] if k in large and k in small else None
        for k in ("status_s", "metrics_s", "report_html_s", "simulate_every_class_s")
    }
    sim = growth["simulate_every_class_s"]
    lines.append(
        f"| growth ×{large['size'] // small['size']} | ×{growth['status_s']:.2f} | ×{growth['metrics_s']:.2f} | | "
        f"×{growth['report_html_s']:.2f} | | " + ("not run" if sim is None else f"×{sim:.2f}") + " |"
    )
    met_ratio = small["metrics_x_status"] <= METRICS_X_STATUS and small["report_html_x_status"] <= REPORT_X_STATUS
    met_growth = all(large[k] / small[k] <= GROWTH_TARGET for k in ("metrics_s", "report_html_s"))
    lines += [
        "",
        f"Targets at {small['size']:,} in the period: metrics ≤ ×{METRICS_X_STATUS:g} status, report --html ≤ "
        f"×{REPORT_X_STATUS:g}: " + ("met" if met_ratio else "**not met**"),
        f"Growth to {large['size']:,}: metrics and report --html ≤ ×{GROWTH_TARGET:g}: "
        + ("not measured (one size)" if len(rows) < 2 else "met" if met_growth else "**not met**"),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="sqlite, postgresql or both (default: both, same history)"
    )
    parser.add_argument("--url", help="a PostgreSQL server to use (a database on it is created; default: start one)")
    parser.add_argument(
        "--case",
        default=SPREAD,
        choices=(SPREAD, BUSY),
        help=f"{SPREAD}: {PER_DAY:,} actions a day, so the period holds about as many at either size (default); "
        f"{BUSY}: every action inside the period (its last {BUSY_DAYS} days), timed against `ratchet status`",
    )
    parser.add_argument(
        "--skip-simulate-at",
        type=int,
        default=None,
        metavar="SIZE",
        help="leave the `simulate` runs out at this size and above (they are no target of the busy case)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of status, metrics and report --html; each figure the median"
    )
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",")]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown or not backends:
        parser.error(f"--backends: unknown {sorted(unknown)}; expected sqlite, postgresql or both")
    cluster = Cluster() if "postgresql" in backends and not args.url else None
    url = args.url or (cluster.start() if cluster is not None else None)
    try:
        with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
            rows = [
                row
                for s in args.sizes.split(",")
                for row in measure(
                    int(s),
                    Path(scratch),
                    backends,
                    url,
                    args.case,
                    args.skip_simulate_at is None or int(s) < args.skip_simulate_at,
                    args.repeat,
                )
            ]
    finally:
        if cluster is not None:
            cluster.stop()
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    for backend in backends:
        mine = [r for r in rows if r["backend"] == backend]
        print(f"\n{backend}:\n")
        print(table(mine) if args.case == SPREAD else busy_table(mine))
        if backend == "postgresql":
            print(
                "\n"
                + "; ".join(f"{r['size']:,}: db copy {r['copy_s']:.1f} s, ANALYZE {r['analyze_s']:.1f} s" for r in mine)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
