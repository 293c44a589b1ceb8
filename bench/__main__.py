"""Run Ratchet's benchmarks: `.venv/bin/python -m bench [--quick]` from the repository root.

A full run writes bench/results/bench.json (every figure), bench/results/bench.md (the tables) and
bench/results/profile.md (where the gate's time goes, with proposals): the committed figures. A
`--quick` or `--tiny` run writes to a new scratch directory instead (or to `--out DIR`), so a trial run
never overwrites them. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import RESULTS, Config, config, machine

BENCHES = ("gate", "roundtrip", "sessions", "startup", "memory", "redaction", "concurrency")

# The targets. "Flat" needs a number: the median at the largest history may be at most this
# many times the median at the smallest (interleaved blocks keep machine noise out of the ratio).
GATE_MEDIAN_MS = 1.0
GATE_FLAT_RATIO = 1.15
ROUNDTRIP_RATIO = 1.3


def _runner(name: str) -> Callable[[Config, Path], dict[str, Any]]:
    from . import concurrency, gate, memory, redaction, roundtrip, sessions, startup

    runners: dict[str, Callable[[Config, Path], dict[str, Any]]] = {
        "gate": gate.run,
        "roundtrip": roundtrip.run,
        "sessions": sessions.run,
        "startup": startup.run,
        "memory": memory.run,
        "redaction": redaction.bench,
        "concurrency": concurrency.bench,
    }
    return runners[name]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of the issue's targets with the measured figure and whether it was met."""
    out: list[dict[str, Any]] = []
    gate = results.get("gate")
    if gate and "sizes" in gate:
        if all("gate" in s for s in gate["sizes"].values()):
            worst_gate = max(gate["sizes"].values(), key=lambda s: s["gate"]["median"])
            out.append(
                {
                    "name": "gate: Ratchet's own work under 1 ms at every history size "
                    "(governed call minus the same write alone)",
                    "goal": f"< {GATE_MEDIAN_MS} ms",
                    "measured": f"{worst_gate['gate']['median']:.3f} ms (worst, at {worst_gate['size']:,} rows; "
                    f"whole call {worst_gate['full']['median']:.3f} ms, write alone "
                    f"{worst_gate['write_alone']['median']:.3f} ms)",
                    "met": worst_gate["gate"]["median"] < GATE_MEDIAN_MS,
                }
            )
        else:  # a results file from before the write was timed alone
            worst = max(s["full"]["median"] for s in gate["sizes"].values())
            worst_size = max(gate["sizes"].values(), key=lambda s: s["full"]["median"])["size"]
            out.append(
                {
                    "name": "gate: median under 1 ms at every history size (whole call, real write)",
                    "goal": f"< {GATE_MEDIAN_MS} ms",
                    "measured": f"{worst:.3f} ms (worst median, at {worst_size:,} rows)",
                    "met": worst < GATE_MEDIAN_MS,
                }
            )
        growth = gate["growth"]
        out.append(
            {
                "name": f"gate: no growth with history ({growth['smallest']:,} -> {growth['largest']:,} rows)",
                "goal": f"median ratio <= {GATE_FLAT_RATIO}",
                "measured": f"median x{growth['median_ratio']}, p99 x{growth['p99_ratio']}"
                + (f"; the gate alone x{growth['gate_median_ratio']}" if "gate_median_ratio" in growth else ""),
                "met": growth["median_ratio"] is not None and growth["median_ratio"] <= GATE_FLAT_RATIO,
            }
        )
    rt = results.get("roundtrip")
    if rt and "ratios" in rt:
        r = rt["ratios"]["ratchet/bare"]
        out.append(
            {
                "name": "round trip: ratchet serve vs bare MCPServer, stdio write_file",
                "goal": f"median ratio <= {ROUNDTRIP_RATIO}",
                "measured": f"x{r['median']} (p99 x{r['p99']}, per-round x{r['median_of_round_ratios']}, "
                f"+{r['added_ms_median']} ms)",
                "met": r["median"] is not None and r["median"] <= ROUNDTRIP_RATIO,
            }
        )
    ss = results.get("sessions")
    if ss and "checks" in ss:
        c = ss["checks"]
        out.append(
            {
                "name": f"many sessions: {ss['sessions']} servers, {ss['actions']:,} actions, one database",
                "goal": "0 lost, 0 duplicated, 0 lock errors",
                "measured": f"{c['lost']} lost ({c['lost_files']} files), "
                f"{c['duplicated_intents'] + c['duplicated_targets'] + c['duplicated_ids']} duplicated, "
                f"{c['lock_errors']} lock errors, {c['call_failures']} failed calls; "
                f"{ss['throughput_per_s']} actions/s",
                "met": bool(c["ok"]),
            }
        )
    return out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the benches, write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer calls and actions (about a minute)")
    size.add_argument("--tiny", action="store_true", help="seconds, no installs: the smoke test's mode")
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(BENCHES)}")
    parser.add_argument(
        "--no-external", action="store_true", help="skip the official comparison servers (no npm/pip installs)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results directory (default: bench/results for a full run, a new scratch directory for --quick/--tiny)",
    )
    parser.add_argument("--tmp", type=Path, help="where the scratch workspaces go (default: the system temp dir)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--render-only", action="store_true", help="measure nothing: rewrite bench.md and profile.md from bench.json"
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    if args.out is None:
        # Only a full run replaces the committed figures; a trial run's figures go where they cannot.
        trial = mode != "full" and not args.render_only
        args.out = Path(tempfile.mkdtemp(prefix="ratchet-bench-out-")) if trial else RESULTS
    if args.render_only:
        return _render(args.out, json.loads((args.out / "bench.json").read_text()))

    cfg = config(mode, external=not args.no_external)
    selected = BENCHES if not args.only else tuple(b.strip() for b in args.only.split(",") if b.strip())
    unknown = set(selected) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench {sorted(unknown)[0]!r}; expected some of {', '.join(BENCHES)}")

    if args.tmp:
        args.tmp.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ratchet-bench-", dir=args.tmp))
    command = "python -m bench" + ("".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])))
    results: dict[str, Any] = {
        "schema": 1,
        "mode": mode,
        "command": command,
        "machine": machine(tmp),
        "ran": list(selected),
        "errors": {},
        "seconds": {},
    }
    started = time.perf_counter()
    try:
        for name in BENCHES:
            if name not in selected:
                continue
            print(f"== {name} ({mode})", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                results[name] = _runner(name)(cfg, tmp)
            except Exception as exc:
                results["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                traceback.print_exc()
            results["seconds"][name] = round(time.perf_counter() - t0, 1)
            print(f"   {name}: {results['seconds'][name]} s", file=sys.stderr, flush=True)
        results["targets"] = targets(results)
        missed = [t["name"] for t in results["targets"] if not t["met"]]
        if missed and cfg.server_profile_calls > 0 and "roundtrip" in selected:
            print("== server profile (a target was missed)", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            results["server_profile"] = _server_profile(cfg, tmp)
            results["seconds"]["server_profile"] = round(time.perf_counter() - t0, 1)
    finally:
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results["seconds"]["total"] = round(time.perf_counter() - started, 1)
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"scratch kept in {tmp}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "bench.json", json.dumps(results, indent=2) + "\n")
    return _render(args.out, results)


def _render(out: Path, results: dict[str, Any]) -> int:
    """Write bench.md (and profile.md when the gate bench ran); the exit status the run deserves."""
    from . import report

    _write(out / "bench.md", report.bench_md(results))
    written = ["bench.json", "bench.md"]
    if "gate" in results:
        _write(out / "profile.md", report.profile_md(results, out))
        written.append("profile.md")
    print(report.targets_md(results), file=sys.stderr)
    print(f"wrote {', '.join(written)} in {out} ({results['seconds']['total']} s of measuring)", file=sys.stderr)
    sessions_ok = "sessions" not in results or results["sessions"]["checks"]["ok"]
    return 0 if not results["errors"] and sessions_ok else 1


def _server_profile(cfg: Config, tmp: Path) -> dict[str, Any]:
    import anyio

    from . import make_policy, profiling, ratchet_args, seed_files

    root = tmp / "server-profile"
    ws, ws_bare = root / "ws-ratchet", root / "ws-bare"
    seed_files(ws)
    seed_files(ws_bare)
    policies = make_policy(root / "policies")
    try:
        result: dict[str, Any] = anyio.run(
            profiling.server_profile,
            ratchet_args(ws, policies, root / "state" / "ratchet.db"),
            ["--workspace", str(ws_bare)],
            root,
            cfg.server_profile_calls,
            "profiled ",
        )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return result


if __name__ == "__main__":
    sys.exit(main())
