"""Claude Code's Bash under Ratchet's sandbox: what running an allowed command in its class's profile costs.

    .venv/bin/python -m bench.hook_bash [--runs 200]

The PreToolUse hook rewrites an allowed Bash command into Ratchet's sandbox (hook_sandbox.py). This
measures what that adds per command where it matters, in the run: each side is `bash -c LINE` spawned
from Python as Claude Code spawns its shell, in a real git repository with the starter policies'
guarded paths, interleaved in rounds (the order alternating) so a noisy neighbour slows every side
alike:

- `bare`: the command as written (what ran before the rewrite);
- `bwrap-floor`: the same under the least bubblewrap can do (`bwrap --dev-bind / / -- bash -c LINE`: one
  mount namespace, nothing changed in it), which sets apart what the host charges for any such
  sandbox from what Ratchet's profiles add on top;
- `read-only`: the rewritten line under the read-only profile (`read-only-run`, `git-read`);
- `workspace`: the rewritten line under the workspace profile (with its check for paths that must
  not appear, run in the same shell after the sandbox ends).

Two commands: `true` (the sandbox's cost alone) and `git status --short` (a typical read). Also the
time the hook itself spends building the rewrite (`sandboxed_bash`, in process: the plan and its
files). Reports medians and p90 in milliseconds and the added median per command. *Target*: at most
+30 ms per command. Writes bench/results/hook_bash.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from ratchet.claude_code.hook_sandbox import sandboxed_bash
from ratchet.engine import Engine
from ratchet.operations.confine import confinement
from ratchet.policy.load import starter_policy_dir

TARGET_MS = 30.0
COMMANDS = ("true", "git status --short")
SIDES = ("bare", "bwrap-floor", "read-only", "workspace")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _repo(root: Path) -> Path:
    ws = root / "ws"
    ws.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "B"}
    env["GIT_COMMITTER_EMAIL"] = "b@e"
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    for i in range(50):
        (ws / f"f{i}.txt").write_text(f"{i}\n")
    subprocess.run(["git", "add", "."], cwd=ws, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "files"], cwd=ws, check=True, env=env)
    return ws


async def _lines(ws: Path, db: Path) -> tuple[dict[tuple[str, str], str], list[float]]:
    """The line each side runs, per command; and the hook's own time to build a rewrite, per call."""
    engine = await Engine.open(ws, policies=starter_policy_dir(), db=db)
    try:
        lines: dict[tuple[str, str], str] = {}
        built: list[float] = []
        for command in COMMANDS:
            lines[(command, "bare")] = command
            # Any bubblewrap sandbox's own floor here: one namespace, the host bound as it is.
            lines[(command, "bwrap-floor")] = f"bwrap --dev-bind / / -- bash -c {shlex.quote(command)}"
            for profile in ("read-only", "workspace"):
                confined = confinement(
                    engine.workspace,
                    engine.policy.defaults.commands,
                    sandbox=True,
                    profile=profile,
                    network=False,
                    approved=False,
                )
                for _ in range(20):
                    started = time.perf_counter()
                    lines[(command, profile)] = sandboxed_bash(command, confined)
                    built.append((time.perf_counter() - started) * 1000)
        return lines, built
    finally:
        await engine.close()


def measure(runs: int) -> dict[str, Any]:
    """Interleaved timings of every command on every side; figures in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-hook-bash-") as tmp:
        root = Path(tmp)
        ws = _repo(root)
        lines, built = anyio.run(_lines, ws, root / "state" / "r.db")
        times: dict[tuple[str, str], list[float]] = {key: [] for key in lines}
        keys = list(lines)
        for key in keys:  # warm-up: page cache, the plan files
            for _ in range(3):
                subprocess.run(["bash", "-c", lines[key]], cwd=ws, capture_output=True, check=True)
        for n in range(runs):
            for key in keys if n % 2 == 0 else reversed(keys):
                started = time.perf_counter()
                done = subprocess.run(["bash", "-c", lines[key]], cwd=ws, capture_output=True, check=False)
                times[key].append((time.perf_counter() - started) * 1000)
                assert done.returncode == 0, done.stderr
    result: dict[str, Any] = {"runs": runs, "target_added_ms": TARGET_MS, "commands": {}}
    for command in COMMANDS:
        bare = statistics.median(times[(command, "bare")])
        sides = {}
        for side in SIDES:
            values = times[(command, side)]
            median = statistics.median(values)
            sides[side] = {"median": median, "p90": _quantile(values, 0.9), "added_median": median - bare}
        result["commands"][command] = sides
    result["rewrite_build_ms"] = {"median": statistics.median(built), "p90": _quantile(built, 0.9)}
    worst = max(s["added_median"] for c in result["commands"].values() for s in c.values())
    result["above_floor_ms"] = max(
        c[side]["median"] - c["bwrap-floor"]["median"]
        for c in result["commands"].values()
        for side in ("read-only", "workspace")
    )
    result["worst_added_ms"] = worst
    result["target_met"] = worst <= TARGET_MS
    return result


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    result = measure(args.runs)
    out = Path(__file__).parent / "results" / "hook_bash.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| `bash -c` of ({result['runs']} runs each) | side | median ms | p90 ms | added ms (median) |")
    print("|---|---|---:|---:|---:|")
    for command, sides in result["commands"].items():
        for side, figures in sides.items():
            print(
                f"| `{command}` | {side} | {figures['median']:.2f} | {figures['p90']:.2f} | "
                f"{figures['added_median']:+.2f} |"
            )
    build = result["rewrite_build_ms"]
    print(f"\nthe hook's rewrite (plan and files): median {build['median']:.2f} ms, p90 {build['p90']:.2f} ms")
    print(f"Ratchet's profiles above the bubblewrap floor: at most {result['above_floor_ms']:+.2f} ms per command")
    verdict = "met" if result["target_met"] else "missed"
    print(f"worst added median: {result['worst_added_ms']:+.2f} ms per command (target +{TARGET_MS:g} ms: {verdict})")


if __name__ == "__main__":
    main()
