"""Where a per-command bubblewrap's time goes: the real argv `run_command` builds, one part taken out at a time.

    .venv/bin/python -m bench.sandbox_parts [--runs 100]

Every side spawns `true` from the same Python process, interleaved in rounds (the order alternating),
and is timed twice: until bubblewrap exits (`exit`), and then until no live process is left in its
process group (`wait`: the PID namespace's first process lingers while the kernel tears the
namespace down; `run_command` waits for it, executors/shell.py `_kill_group`). The sides:

- `direct`: `true` alone; `bwrap floor`: bubblewrap with only `--bind / /` (its own start, a mount
  namespace);
- `full`: executors/sandbox.py `plan` for profile `workspace`, network off, in a real git repository;
- `-X`: `full` without one part X (a namespace, `--die-with-parent`, the private `/dev` or `/proc`,
  the capability drop, every bind after the private `/tmp`); `+user`: with a user namespace too.

A part's cost is `full` minus `-X`, within one run. Writes bench/results/sandbox_parts.json.
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

from bench.provenance import stamp
from ratchet.executors.sandbox import plan, sandbox_status
from ratchet.executors.shell import _group_alive


def _without(argv: list[str], *parts: tuple[str, ...]) -> list[str]:
    out = list(argv)
    for part in parts:
        for i in range(len(out)):
            if tuple(out[i : i + len(part)]) == part:
                del out[i : i + len(part)]
                break
        else:
            raise AssertionError(f"{part} is not in the plan's argv")
    return out


def _sides(full: list[str], program: str) -> dict[str, list[str]]:
    bwrap = full[0]
    tmp = full.index("/tmp") + 1  # after `--tmpfs /tmp`: the binds of the layout
    end = full.index("--")
    return {
        "direct": [program],
        "bwrap floor": [bwrap, "--bind", "/", "/", program],
        "full": full,
        "-net": _without(full, ("--unshare-net",)),
        "-pid": _without(full, ("--unshare-pid",)),
        "-ipc": _without(full, ("--unshare-ipc",)),
        "-uts": _without(full, ("--unshare-uts",)),
        "-cgroup": _without(full, ("--unshare-cgroup-try",)),
        "-die-with-parent": _without(full, ("--die-with-parent",)),
        "-dev": _without(full, ("--dev", "/dev")),
        "-proc": _without(
            full,
            ("--proc", "/proc"),
            ("--ro-bind", "/proc/sys", "/proc/sys"),
            ("--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger"),
        ),
        "-cap-drop": _without(full, ("--cap-drop", "ALL")),
        "-binds after /tmp": [*full[:tmp], *full[end:]],
        "+user": [bwrap, "--unshare-user", *full[1:]],
    }


def measure(runs: int) -> dict[str, Any]:
    """Interleaved timings of every side; figures in milliseconds."""
    status = sandbox_status()
    if not status.available:
        raise SystemExit(f"no sandbox on this host: {status.detail}")
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-parts-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
        (root / "state").mkdir()
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root)}
        program = shutil.which("true", path=env["PATH"]) or "/bin/true"
        boxed = plan([program], workspace=ws, cwd=ws, protected=[root / "state" / "r.db"], network=False, env=env)
        sides = _sides(boxed.argv, program)
        exits: dict[str, list[float]] = {side: [] for side in sides}
        waits: dict[str, list[float]] = {side: [] for side in sides}
        for n in range(runs + 3):
            for side in sides if n % 2 == 0 else reversed(list(sides)):
                began = time.perf_counter()
                proc = subprocess.Popen(sides[side], cwd=ws, env=boxed.env, start_new_session=True)
                assert proc.wait() == 0, side
                exited = time.perf_counter()
                pause = 0.0005
                while _group_alive(proc.pid) and time.perf_counter() - exited < 0.5:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.02)
                if n >= 3:  # the first rounds warm the page cache
                    exits[side].append((exited - began) * 1000)
                    waits[side].append((time.perf_counter() - exited) * 1000)
    direct = statistics.median(exits["direct"])
    full = statistics.median(exits["full"]) + statistics.median(waits["full"])
    figures = {}
    for side in sides:
        exit_ms, wait_ms = statistics.median(exits[side]), statistics.median(waits[side])
        figures[side] = {
            "exit_ms": exit_ms,
            "wait_ms": wait_ms,
            "total_ms": exit_ms + wait_ms,
            "ratio_to_direct": (exit_ms + wait_ms) / direct,
            "saved_vs_full_ms": full - exit_ms - wait_ms,
        }
    return {"runs": runs, "sides": figures}


def main() -> None:
    """Run the comparison, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.sandbox_parts", *sys.argv[1:]]))
    result = {**measure(args.runs), "provenance": provenance, "load_average": os.getloadavg()}
    out = Path(__file__).parent / "results" / "sandbox_parts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| `true` ({result['runs']} runs each) | exit ms | wait ms | ×direct | saved against full, ms |")
    print("|---|---:|---:|---:|---:|")
    for side, f in result["sides"].items():
        print(
            f"| {side} | {f['exit_ms']:.2f} | {f['wait_ms']:.2f} | ×{f['ratio_to_direct']:.1f} "
            f"| {f['saved_vs_full_ms']:+.2f} |"
        )
    print(f"\nload average {result['load_average'][0]:.1f}")


if __name__ == "__main__":
    main()
