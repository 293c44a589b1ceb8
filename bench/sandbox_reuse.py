"""The ways into the command sandbox: one bubblewrap sandbox per command, against one prepared once and reused.

    .venv/bin/python -m bench.sandbox_reuse [--runs 200]

What `run_command` of `true` can cost at best, taken apart from the gate. Every side runs the same
program from the same Python process, interleaved in rounds (the order alternating) so a noisy
neighbour slows every side alike:

- `direct`: `true` spawned as a child (`subprocess.run`), no sandbox: the baseline;
- `per-call`: `true` in the sandbox `run_command` builds today (executors/sandbox.py `plan`, profile
  `workspace`, network off, in a real git repository), one bubblewrap per command, the plan computed
  once (what building it costs is `plan_ms`);
- `per-call+wait`: the same, then waiting until the sandbox's process group is gone, as `run_command`
  does (executors/shell.py `_kill_group`: a PID namespace is torn down after bubblewrap has exited);
- `shared-shell`: one sandbox with the same plan, started once, whose first process is a shell that
  reads a command per line, runs it as a child (fork and exec of the program `true`) and answers its
  exit status; per command, one line out and one line back. The floor of any reuse, and not a way
  Ratchet runs commands: in it, commands share one private `/tmp` and one PID namespace, so what
  one command leaves (a file in `/tmp`, a process in the background) would reach the next;
- `reused`: how `run_command` runs a sandboxed command now (executors/sandbox_reuse.py
  `run_in_cell`): the same plan's sandbox started once, and per command a cell prepared ahead with
  its own PID, mount, IPC, UTS and network namespaces, a fresh `/tmp`, `/proc` and `/dev/shm` and no
  capability; the command's stdio passed to it, its status back once every process of it is gone;
- `plan` and `command_env`: no command at all, the two steps `run_command` takes per command before
  the spawn (executors/sandbox.py `plan`, which runs `git config` for the repository's hook and
  include targets; executors/git.py `command_env`, which runs `git config --list` to neutralise the
  repository's config for any git the command starts), each against the same baseline.

Reports medians and p90 in milliseconds and each side against `direct`. *Target* (issue 28): a
governed `run_command` of `true` at most ×3 a direct spawn. Writes bench/results/sandbox_reuse.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.provenance import stamp
from ratchet.executors.git import command_env
from ratchet.executors.sandbox import plan, sandbox_status
from ratchet.executors.sandbox_reuse import close_runners, run_in_cell
from ratchet.executors.shell import _group_alive

SIDES = ("direct", "per-call", "per-call+wait", "shared-shell", "reused", "plan", "command_env")
TARGET_RATIO = 3.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _repo(root: Path) -> Path:
    ws = root / "ws"
    ws.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    return ws


def _group_gone(pgid: int, limit_s: float = 0.5) -> None:
    """Wait, as `run_command` does, until no live process is left in the group (zombies do not count)."""
    deadline = time.perf_counter() + limit_s
    pause = 0.0005
    while _group_alive(pgid) and time.perf_counter() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


async def measure(runs: int) -> dict[str, Any]:
    """Interleaved timings of every side; figures in milliseconds."""
    status = sandbox_status()
    if not status.available:
        raise SystemExit(f"no sandbox on this host: {status.detail}")
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-reuse-") as tmp:
        root = Path(tmp)
        ws = _repo(root)
        state = root / "state"
        state.mkdir()
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root)}
        started = time.perf_counter()
        boxed = plan(["true"], workspace=ws, cwd=ws, protected=[state / "r.db"], network=False, env=env)
        plan_ms = (time.perf_counter() - started) * 1000
        # Word-split and run as a child (fork + exec of the program, as a direct spawn does); `true` is
        # named by its path so that the shell's builtin does not stand in for the program.
        loop = "while IFS= read -r line; do $line </dev/null >/dev/null 2>&1; echo $?; done"
        program = shutil.which("true", path=env["PATH"]) or "/bin/true"
        runner_argv = [*boxed.argv[: boxed.argv.index("--") + 1], "bash", "-c", loop]
        runner = subprocess.Popen(  # noqa: ASYNC220 - every side is timed blocking, alike
            runner_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=boxed.env, cwd=ws, text=True, bufsize=1
        )
        assert runner.stdin is not None and runner.stdout is not None
        runner_in, runner_out = runner.stdin, runner.stdout

        async def run(side: str) -> None:
            if side == "direct":
                done = subprocess.run(["true"], cwd=ws, env=env, check=False)  # noqa: ASYNC221
                assert done.returncode == 0
            elif side == "reused":
                result = await run_in_cell(boxed, ["true"], cwd=ws, env=boxed.env, timeout_s=30)
                assert result is not None and result.exit_code == 0, result
            elif side == "plan":
                plan(["true"], workspace=ws, cwd=ws, protected=[state / "r.db"], network=False, env=env)
            elif side == "command_env":
                await command_env(env, ws, process_timeout=30)
            elif side == "shared-shell":
                runner_in.write(f"{program}\n")
                assert runner_out.readline().strip() == "0"
            else:
                proc = subprocess.Popen(boxed.argv, cwd=ws, env=boxed.env, start_new_session=True)  # noqa: ASYNC220
                assert proc.wait() == 0
                if side == "per-call+wait":
                    _group_gone(proc.pid)

        times: dict[str, list[float]] = {side: [] for side in SIDES}
        try:
            for side in SIDES:  # warm-up: page cache, the runner's first command
                for _ in range(3):
                    await run(side)
            for n in range(runs):
                for side in SIDES if n % 2 == 0 else tuple(reversed(SIDES)):
                    began = time.perf_counter()
                    await run(side)
                    times[side].append((time.perf_counter() - began) * 1000)
        finally:
            runner_in.close()
            runner.wait(timeout=10)
            close_runners()
    direct = statistics.median(times["direct"])
    sides = {
        side: {
            "median": statistics.median(values),
            "p90": _quantile(values, 0.9),
            "ratio_to_direct": statistics.median(values) / direct,
        }
        for side, values in times.items()
    }
    return {"runs": runs, "plan_ms": plan_ms, "target_ratio": TARGET_RATIO, "sides": sides}


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.sandbox_reuse", *sys.argv[1:]]))
    result = {**anyio.run(measure, args.runs), "provenance": provenance, "load_average": os.getloadavg()}
    out = Path(__file__).parent / "results" / "sandbox_reuse.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| `true` ({result['runs']} runs each) | median ms | p90 ms | ×direct |")
    print("|---|---:|---:|---:|")
    for side, figures in result["sides"].items():
        print(f"| {side} | {figures['median']:.2f} | {figures['p90']:.2f} | ×{figures['ratio_to_direct']:.1f} |")
    print(f"\nbuilding the plan once: {result['plan_ms']:.1f} ms; load average {result['load_average'][0]:.1f}")


if __name__ == "__main__":
    main()
