"""What a per-action check adds to a governed write: the check's own run time plus a bounded overhead.

    .venv/bin/python -m bench.verify [--calls 40]

Three sides, interleaved in rounds so a noisy neighbour slows them alike, from one event loop:
a governed write (`Engine.evaluate` + `Engine.carry_out`, autonomous) in a class without checks; the
same write in a class with one check (`python -m py_compile {path}`, sandboxed like an agent's
command); and that same check run directly with `run_checks` on the same file and confinement.
The verification overhead is (checked write - plain write) - direct check: what Ratchet adds beyond
the check's own run (recording its result in the settling transaction, building the outcome).
Reports medians and p90 in milliseconds and the ratio of the added cost to the check's own run.
Writes bench/results/verify.json.
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
from ratchet.executors.checks import run_checks

POLICY = f"""
[classes.plain]
tools = ["write_file"]
paths = ["plain/**"]
start = "autonomous"

[classes.checked]
tools = ["write_file"]
paths = ["checked/**"]
start = "autonomous"
verify = [[{json.dumps(sys.executable)}, "-m", "py_compile", "{{path}}"]]
"""


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p90": _quantile(values, 0.9)}


async def measure(calls: int) -> dict[str, Any]:
    """Interleaved timings of the three sides; figures in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-verify-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "policies").mkdir()
        (root / "policies" / "p.toml").write_text(POLICY)
        engine = await Engine.open(root / "ws", policies=root / "policies", db=root / "r.db")
        cls = engine.policy.classes["checked"]
        confinement = engine.verifier.confinement(cls)
        plain: list[float] = []
        checked: list[float] = []
        direct: list[float] = []

        async def governed(path: str, n: int) -> None:
            args = {"path": path, "content": f"x = {n}\n"}
            outcome = await engine.carry_out(await engine.evaluate("write_file", args))
            assert outcome.status == "executed", outcome.message

        try:
            for n in range(3):
                await governed("plain/m.py", n)
                await governed("checked/m.py", n)
                await run_checks(cls.verify, ["checked/m.py"], confinement, timeout_s=60, token="bench")
            for n in range(calls):
                for side in (0, 1, 2) if n % 2 == 0 else (2, 1, 0):
                    started = time.perf_counter()
                    if side == 0:
                        await governed("plain/m.py", n + 10)
                        plain.append((time.perf_counter() - started) * 1000)
                    elif side == 1:
                        await governed("checked/m.py", n + 10)
                        checked.append((time.perf_counter() - started) * 1000)
                    else:
                        (result,) = await run_checks(
                            cls.verify, ["checked/m.py"], confinement, timeout_s=60, token="bench"
                        )
                        assert result.passed, result.tail
                        direct.append((time.perf_counter() - started) * 1000)
        finally:
            await engine.close()
    p_med, c_med, d_med = statistics.median(plain), statistics.median(checked), statistics.median(direct)
    added = c_med - p_med
    return {
        "calls": calls,
        "plain_write_ms": _figures(plain),
        "checked_write_ms": _figures(checked),
        "check_direct_ms": _figures(direct),
        "added_by_check_ms_median": added,
        "overhead_beyond_check_ms_median": added - d_med,
        "added_to_check_ratio_median": added / d_med,
    }


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.verify", *sys.argv[1:]]))
    result = {**anyio.run(measure, args.calls), "provenance": provenance}
    out = Path(__file__).parent / "results" / "verify.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| side ({result['calls']} calls each) | median ms | p90 ms |")
    print("|---|---:|---:|")
    for key, label in (
        ("plain_write_ms", "governed write, class without checks"),
        ("checked_write_ms", "governed write, class with a py_compile check"),
        ("check_direct_ms", "the same check run directly (run_checks)"),
    ):
        print(f"| {label} | {result[key]['median']:.2f} | {result[key]['p90']:.2f} |")
    print(
        f"\nthe check adds {result['added_by_check_ms_median']:.2f} ms to a write (median), "
        f"x{result['added_to_check_ratio_median']:.2f} the check's own run; "
        f"overhead beyond the check {result['overhead_beyond_check_ms_median']:+.2f} ms"
    )


if __name__ == "__main__":
    main()
