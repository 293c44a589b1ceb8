"""run_command's overhead: a trivial program through the gate at `autonomous`, against running it directly.

    .venv/bin/python -m bench.run_command [--calls 200]

Both sides run the same program (`true`) as a child process from the same event loop, interleaved
in rounds so a noisy neighbour slows both alike: directly with `anyio.run_process`, and through
`Engine.evaluate` + `Engine.carry_out` (classify the argv, decide, record the intent, spawn with a
scrubbed environment, a process group and a timeout, in the OS sandbox, record the outcome and the
sample). The gated call runs both ways into the sandbox, interleaved: as `run_command` runs it by
default (a sandbox prepared once and reused, a fresh cell per command: executors/sandbox_reuse.py),
and with `RATCHET_SANDBOX_REUSE=off` (one bubblewrap per command). A fourth side runs the same call
in a class with `sandbox = false`, so the sandbox's own cost is measured apart; that side pays for
the parent-death trampoline instead. Reports medians and p90 in milliseconds, their ratio, and the
absolute overhead per call, with the load average. Writes bench/results/run_command.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
from ratchet.executors.sandbox_reuse import REUSE_ENV, close_runners

POLICY = """
[classes.trivial]
tools = ["run_command"]
argv = [["true"]]
start = "autonomous"

[classes.trivial-unsandboxed]
tools = ["run_command"]
argv = [["true", "unsandboxed"]]
start = "autonomous"
sandbox = false
"""


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(calls: int) -> dict[str, Any]:
    """Interleaved timings of the direct and the gated run; figures in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-cmd-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "policies").mkdir()
        (root / "policies" / "p.toml").write_text(POLICY)
        engine = await Engine.open(root / "ws", policies=root / "policies", db=root / "r.db")
        direct: list[float] = []
        gated: list[float] = []
        per_call: list[float] = []
        open_: list[float] = []
        sides = (["true"], ["true", "unsandboxed"], ["true"])
        try:
            for _warm in range(5):
                await anyio.run_process(["true"])
                for argv in sides:
                    await engine.carry_out(await engine.evaluate("run_command", {"argv": argv}))
            for n in range(calls):
                order = (0, 1, 2, 3) if n % 2 == 0 else (3, 2, 1, 0)
                for side in order:
                    if side == 3:
                        os.environ[REUSE_ENV] = "off"
                    started = time.perf_counter()
                    if side == 0:
                        await anyio.run_process(["true"])
                        direct.append((time.perf_counter() - started) * 1000)
                        continue
                    outcome = await engine.carry_out(await engine.evaluate("run_command", {"argv": sides[side - 1]}))
                    ({1: gated, 2: open_, 3: per_call}[side]).append((time.perf_counter() - started) * 1000)
                    os.environ.pop(REUSE_ENV, None)
                    assert outcome.status == "executed", outcome.message
        finally:
            os.environ.pop(REUSE_ENV, None)
            close_runners()
            await engine.close()
    d_med, g_med, o_med = statistics.median(direct), statistics.median(gated), statistics.median(open_)
    p_med = statistics.median(per_call)
    return {
        "calls": calls,
        "direct_ms": {"median": d_med, "p90": _quantile(direct, 0.9)},
        "gated_ms": {"median": g_med, "p90": _quantile(gated, 0.9)},
        "gated_per_call_sandbox_ms": {"median": p_med, "p90": _quantile(per_call, 0.9)},
        "gated_unsandboxed_ms": {"median": o_med, "p90": _quantile(open_, 0.9)},
        "ratio_median": g_med / d_med,
        "ratio_per_call_sandbox_median": p_med / d_med,
        "overhead_ms_median": g_med - d_med,
        "sandbox_ms_median": g_med - o_med,
    }


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.run_command", *sys.argv[1:]]))
    result = {**anyio.run(measure, args.calls), "provenance": provenance, "load_average": os.getloadavg()}
    out = Path(__file__).parent / "results" / "run_command.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| run of `true` ({result['calls']} calls each) | median ms | p90 ms |")
    print("|---|---:|---:|")
    print(f"| directly (anyio.run_process) | {result['direct_ms']['median']:.2f} | {result['direct_ms']['p90']:.2f} |")
    print(f"| run_command through the gate | {result['gated_ms']['median']:.2f} | {result['gated_ms']['p90']:.2f} |")
    per_call = result["gated_per_call_sandbox_ms"]
    print(f"| the same, one bubblewrap per command | {per_call['median']:.2f} | {per_call['p90']:.2f} |")
    unsandboxed = result["gated_unsandboxed_ms"]
    print(f"| the same, class with sandbox = false | {unsandboxed['median']:.2f} | {unsandboxed['p90']:.2f} |")
    print(f"\none bubblewrap per command: x{result['ratio_per_call_sandbox_median']:.2f}")
    print(f"ratio x{result['ratio_median']:.2f}, overhead {result['overhead_ms_median']:.2f} ms per call (median)")
    print(f"the sandbox against the unsandboxed class: {result['sandbox_ms_median']:+.2f} ms per call (median)")


if __name__ == "__main__":
    main()
