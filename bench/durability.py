"""What `synchronous = FULL` would cost the gate: the same governed write with the record at SQLite's
`synchronous = NORMAL` (Ratchet's setting) and at `FULL`, interleaved in one run.

    .venv/bin/python -m bench.durability [--calls 200]

Two engines on two databases in one temp directory, each doing `Engine.evaluate` + `Engine.carry_out`
of an autonomous `write_file` (real atomic fsynced write); the second engine's connection is switched
to `PRAGMA synchronous = FULL` after it opened (the bench only; `record/store.py` keeps NORMAL).
The calls alternate between the two, the order flipping each round, so a noisy neighbour slows both
alike. Reports medians and p90 in milliseconds and the FULL/NORMAL ratio of the medians, and writes
them with the command and the commit measured to bench/results/durability.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.provenance import stamp
from ratchet.engine import Engine

POLICY = """
[classes.bench]
tools = ["write_file"]
paths = ["bench/**"]
start = "autonomous"
"""
RESULTS = Path(__file__).parent / "results" / "durability.json"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(calls: int) -> dict[str, Any]:
    """Interleaved timings of the write at NORMAL and at FULL; figures in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-durability-") as tmp:
        root = Path(tmp)
        (root / "policies").mkdir()
        (root / "policies" / "p.toml").write_text(POLICY)
        engines: list[Engine] = []
        for name in ("normal", "full"):
            (root / name).mkdir()
            engines.append(await Engine.open(root / name, policies=root / "policies", db=root / f"{name}.db"))
        await engines[1].store.call(lambda conn: conn.execute("PRAGMA synchronous = FULL"))
        modes = [await e.store.call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) for e in engines]
        assert modes == [1, 2], modes  # NORMAL, FULL
        times: list[list[float]] = [[], []]

        async def write(side: int, n: int) -> None:
            args = {"path": "bench/file.txt", "content": f"{n}\n"}
            outcome = await engines[side].carry_out(await engines[side].evaluate("write_file", args))
            assert outcome.status == "executed", outcome.message

        try:
            for n in range(5):
                for side in (0, 1):
                    await write(side, n)
            for n in range(calls):
                for side in (0, 1) if n % 2 == 0 else (1, 0):
                    started = time.perf_counter()
                    await write(side, n + 10)
                    times[side].append((time.perf_counter() - started) * 1000)
        finally:
            for engine in engines:
                await engine.close()
    normal, full = (statistics.median(t) for t in times)
    return {
        "calls": calls,
        "normal_ms": {"median": normal, "p90": _quantile(times[0], 0.9)},
        "full_ms": {"median": full, "p90": _quantile(times[1], 0.9)},
        "ratio_median": full / normal,
        "added_ms_median": full - normal,
    }


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.durability", *sys.argv[1:]]))
    result = {**anyio.run(measure, args.calls), "provenance": provenance}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| governed write_file ({result['calls']} calls each) | median ms | p90 ms |")
    print("|---|---:|---:|")
    print(f"| synchronous = NORMAL | {result['normal_ms']['median']:.2f} | {result['normal_ms']['p90']:.2f} |")
    print(f"| synchronous = FULL | {result['full_ms']['median']:.2f} | {result['full_ms']['p90']:.2f} |")
    print(f"\nFULL / NORMAL x{result['ratio_median']:.2f} (+{result['added_ms_median']:.2f} ms per call, median)")


if __name__ == "__main__":
    main()
