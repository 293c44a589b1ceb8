"""What binding a command draft to the files it reads adds to preparing a command.

    .venv/bin/python -m bench.binding [--rounds 9] [--calls 300]

Every `run_command` is prepared (analysed, its preview built) before the gate decides; since command
drafts bind the workspace files their command names or obviously reads (operations/commands.py), the
prepare also looks each word up in the workspace and hashes the files found. Two sides, interleaved in
rounds from one process so a noisy neighbour slows them alike: the prepare as it is, and the same prepare
with the file lookup switched off, over three commands (a script run, `make`, a shell pipeline). Reports
the median microseconds per prepare of each side and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from ratchet.executors.workspace import Workspace
from ratchet.operations import commands
from ratchet.operations.base import OpContext
from ratchet.policy.model import CommandSettings

CASES: list[dict[str, Any]] = [
    {"argv": ["python3", "tests/gen.py", "--out", "build/x"]},
    {"argv": ["make", "all"]},
    {"command": "ls -la src && echo done | wc -l"},
]


async def _side(ctx: OpContext, calls: int, named: Callable[..., list[str]]) -> float:
    real = commands._named
    commands._named = named
    try:
        start = time.perf_counter()
        for _ in range(calls):
            for case in CASES:
                await commands.OPERATIONS[0].prepare(ctx, dict(case))
        return (time.perf_counter() - start) / (calls * len(CASES)) * 1e6
    finally:
        commands._named = real


async def run(rounds: int, calls: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="ratchet-bench-binding-"))
    (root / "tests").mkdir()
    (root / "src").mkdir()
    (root / "tests/gen.py").write_text("print('generated')\n" * 200)
    (root / "Makefile").write_text("all:\n\ttrue\n")
    ctx = OpContext(Workspace(root, []), CommandSettings())
    bound, unbound = [], []
    for _ in range(rounds):
        bound.append(await _side(ctx, calls, commands._named))
        unbound.append(await _side(ctx, calls, lambda *_: []))
    on, off = statistics.median(bound), statistics.median(unbound)
    return {"bound_us": round(on, 1), "unbound_us": round(off, 1), "ratio": round(on / off, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.binding", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    found = anyio.run(run, args.rounds, args.calls)
    print(
        f"prepare of a command: {found['bound_us']} us with its files bound, {found['unbound_us']} us without "
        f"(x{found['ratio']})"
    )


if __name__ == "__main__":
    main()
