"""What `ratchet hook claude-code` (and `hook codex`) costs per tool call: the whole process (start, decide, answer).

Claude Code starts the hook command once per tool call and waits for its answer, so the figure that
matters is wall time from spawn to exit. Each case runs the real console script with a hook event on
stdin against a workspace that already has its database (the everyday case), on the starter
policies; the baseline is a trivial Python script on the same interpreter that only reads stdin and
prints an allow. Each governed case runs twice: `direct` decides in the hook process
(RATCHET_HOOK_SERVER=off), `resident` hands the event to the resident hook server over its socket
(started by the warm-up round, in a scratch socket directory, stopped at the end). Runs are
interleaved (one of each case per round, the order rotating) so a noisy neighbour slows every case
alike; two discarded warm-up rounds first.

    .venv/bin/python -m bench.hook [--runs 30] [--importtime] [--out FILE]

Prints median and p90 per case and each as a ratio of the baseline's median, and writes them with the
command and the commit measured to bench/results/hook.json (or FILE). `--importtime` adds
where `import ratchet.cli` spends its time (`python -X importtime`), the floor under every case.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.provenance import stamp

RESULTS = Path(__file__).parent / "results" / "hook.json"

BASELINE = """\
import json, sys
sys.stdin.read()
print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow",
                                         "permissionDecisionReason": "baseline"}}))
"""


def ratchet_bin() -> Path:
    """This interpreter's `ratchet` console script."""
    return Path(sys.executable).parent / "ratchet"


def event(workspace: Path, name: str, tool: str, tool_input: dict[str, Any], n: int) -> str:
    """A hook event in Claude Code's shape."""
    return json.dumps(
        {
            "session_id": "bench",
            "transcript_path": str(workspace.parent / "bench.jsonl"),
            "cwd": str(workspace),
            "permission_mode": "default",
            "hook_event_name": name,
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": f"toolu_bench_{n}",
        }
    )


DIRECT = {"RATCHET_HOOK_SERVER": "off"}
RESIDENT = {"RATCHET_HOOK_SERVER": "on"}


def cases(workspace: Path, baseline: Path) -> dict[str, tuple[list[str], Any, dict[str, str]]]:
    """name -> (argv, stdin maker taking the run number, environment added)."""
    hook = [str(ratchet_bin()), "hook", "claude-code"]
    docs = workspace / "docs" / "guide.md"
    table: dict[str, tuple[list[str], Any, dict[str, str]]] = {
        "baseline (python: read stdin, print allow)": ([sys.executable, str(baseline)], lambda n: "{}", {}),
        "python -c 'import ratchet.cli'": ([sys.executable, "-c", "import ratchet.cli"], lambda n: "", {}),
        "hook: Read (not governed, no answer)": (
            hook,
            lambda n: event(workspace, "PreToolUse", "Read", {"file_path": str(docs)}, n),
            {},
        ),
    }
    for way, env in (("direct", DIRECT), ("resident", RESIDENT)):
        table[f"hook {way}: Bash `ls -la` -> allow (recorded)"] = (
            hook,
            lambda n: event(workspace, "PreToolUse", "Bash", {"command": "ls -la", "description": "list"}, n),
            env,
        )
        table[f"hook {way}: Write docs/guide.md -> ask (diff, recorded)"] = (
            hook,
            lambda n: event(workspace, "PreToolUse", "Write", {"file_path": str(docs), "content": f"v{n}\n"}, n),
            env,
        )
        table[f"hook {way}: PostToolUse (outcome -> window)"] = (
            hook,
            lambda n: event(workspace, "PostToolUse", "Bash", {"command": "ls -la"}, n),
            env,
        )
        # Codex's shell, in Codex's shape (`ratchet hook codex`): allowed with its input closed, recorded.
        table[f"hook codex {way}: Bash `ls -la` -> allow (recorded)"] = (
            [str(ratchet_bin()), "hook", "codex"],
            lambda n: event(workspace, "PreToolUse", "Bash", {"command": "ls -la"}, n),
            env,
        )
    return table


def stop_servers(directory: Path) -> None:
    """Stop the resident hook servers this bench started (their pid is in their lock file)."""
    for lock in directory.glob("*.lock"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(lock.read_text().strip()), signal.SIGTERM)


def measure(runs: int, tmp: Path) -> dict[str, list[float]]:
    """Interleaved wall times (ms) per case."""
    workspace = tmp / "ws"
    (workspace / "docs").mkdir(parents=True)
    (workspace / "docs" / "guide.md").write_text("v0\n")
    baseline = tmp / "baseline.py"
    baseline.write_text(BASELINE)
    table = cases(workspace, baseline)
    names = list(table)
    env = {k: v for k, v in os.environ.items() if k not in ("RATCHET_POLICIES", "RATCHET_DB")}  # starter set
    env["RATCHET_HOOK_SOCKET_DIR"] = str(tmp / "sockets")
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_no in range(runs + 2):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                argv, stdin, extra = table[name]
                n = round_no * len(names) + names.index(name)
                started = time.perf_counter()
                done = subprocess.run(
                    argv, input=stdin(n), capture_output=True, text=True, env={**env, **extra}, cwd=workspace
                )
                elapsed = (time.perf_counter() - started) * 1000
                if done.returncode != 0:
                    raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr}")
                if "Bash" in name and '"allow"' not in done.stdout:
                    raise SystemExit(f"{name}: expected an allow, got {done.stdout!r}")
                if round_no > 1:  # rounds 0-1 warm the caches, create the database, start the resident server
                    times[name].append(elapsed)
            if round_no == 0:
                time.sleep(3)  # the resident server started by round 0 is up before round 1
    finally:
        stop_servers(tmp / "sockets")
    return times


def p90(values: list[float]) -> float:
    """90th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]


def render(times: dict[str, list[float]]) -> str:
    """The table: median, p90 and the ratio of each median to the baseline's."""
    base = statistics.median(next(iter(times.values())))
    width = max(len(n) for n in times)
    lines = [f"{'case':<{width}}  {'median ms':>9}  {'p90 ms':>8}  {'x baseline':>10}", "-" * (width + 33)]
    for name, values in times.items():
        med = statistics.median(values)
        lines.append(f"{name:<{width}}  {med:>9.1f}  {p90(values):>8.1f}  {med / base:>10.1f}")
    return "\n".join(lines)


def summary(times: dict[str, list[float]], runs: int, provenance: dict[str, Any]) -> dict[str, Any]:
    """The JSON written beside the table: per case its median and p90 (ms) and its median's ratio to
    the baseline's (the first case)."""
    base = statistics.median(next(iter(times.values())))
    cases_out = {
        name: {"median_ms": statistics.median(values), "p90_ms": p90(values), "ratio": statistics.median(values) / base}
        for name, values in times.items()
    }
    return {"runs": runs, "cases": cases_out, "provenance": provenance}


def importtime(top: int = 12) -> str:
    """The slowest imports under `import ratchet.cli` (cumulative microseconds), from -X importtime."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ratchet.cli"], capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        fields = [part.strip() for part in line[len("import time:") :].split("|")]
        rows.append((int(fields[1]), int(fields[0]), fields[2]))
    total = max(rows)[0]
    lines = [f"import ratchet.cli: {total / 1000:.0f} ms cumulative; slowest modules (cumulative / own ms):"]
    for cumulative, own, name in sorted(rows, reverse=True)[:top]:
        lines.append(f"  {cumulative / 1000:7.1f} {own / 1000:7.1f}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="measured runs per case (default 30)")
    parser.add_argument("--importtime", action="store_true", help="also show where import time goes")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.hook", *shown]))
    with tempfile.TemporaryDirectory(prefix="ratchet-hook-bench-") as tmp:
        times = measure(args.runs, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary(times, args.runs, provenance), indent=2) + "\n", encoding="utf-8")
    print(
        f"ratchet hook claude-code, whole process per call, {args.runs} runs each, interleaved "
        f"(Python {sys.version.split()[0]})"
    )
    print(render(times))
    if args.importtime:
        print()
        print(importtime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
