"""`python -m bench.telemetry`: what exporting each decision costs a governed call.

The gate in process (`engine.evaluate` + `engine.carry_out` of an autonomous `write_file`, as bench/gate.py
measures it) with telemetry off (no `OTEL_*`), and on: OTLP/HTTP to a receiver on loopback that accepts and
discards, spans batched and metrics aggregated as in production. Off and on run in interleaved blocks in one
process (the order rotating each round), so a noisy neighbour slows both alike; the figures are medians per
call and their ratio; then the telemetry call alone (`telemetry.decided` on the last decision), on and off.

Options: `--rounds N` (default 12), `--block N` calls per block (default 25).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio

from ratchet import telemetry
from ratchet.engine import Engine

POLICY = """
[classes.bench]
tools = ["write_file"]
paths = ["b/**"]
start = "autonomous"
"""


class _Discard(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _set(mode: str, url: str) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    if mode == "on":
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url


async def _measure(root: Path, url: str, rounds: int, block: int) -> dict[str, list[float]]:
    workspace, policies = root / "ws", root / "policies"
    workspace.mkdir()
    policies.mkdir()
    (policies / "policy.toml").write_text(POLICY)
    times: dict[str, list[float]] = {"off": [], "on": [], "off alone": [], "on alone": []}
    async with await Engine.open(workspace, policies=policies, db=root / "bench.db") as engine:
        n = 0
        for r in range(rounds):
            for mode in ["off", "on"] if r % 2 == 0 else ["on", "off"]:
                _set(mode, url)
                for _ in range(block):
                    n += 1
                    started = time.perf_counter()
                    ev = await engine.evaluate("write_file", {"path": f"b/f{n % 50}.txt", "content": f"{n}\n"})
                    outcome = await engine.carry_out(ev)
                    times[mode].append(time.perf_counter() - started)
        _set("off", url)
        # The telemetry call alone, per decision, on and off in interleaved blocks (the rest of the call held out).
        for r in range(rounds):
            for mode in ["off", "on"] if r % 2 == 0 else ["on", "off"]:
                _set(mode, url)
                telemetry.active()  # the exporters are built once per configuration, not per decision
                started = time.perf_counter()
                for _ in range(block):
                    telemetry.decided(engine.setting, ev, outcome)
                times[f"{mode} alone"].append((time.perf_counter() - started) / block)
        _set("off", url)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=25)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    saved = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            times = anyio.run(_measure, Path(tmp), url, args.rounds, args.block)
        telemetry.shutdown()
    finally:
        server.shutdown()
        os.environ.update(saved)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    alone_off, alone_on = statistics.median(times["off alone"]), statistics.median(times["on alone"])
    print(f"governed write in process, median of {len(times['off'])} calls each (interleaved blocks of {args.block}):")
    print(f"  telemetry off: {off * 1000:.3f} ms")
    print(f"  telemetry on (OTLP/HTTP to loopback): {on * 1000:.3f} ms")
    print(f"the telemetry call per decision: off {alone_off * 1e6:.1f} µs, on {alone_on * 1e6:.1f} µs")
    print(
        f"telemetry on costs ×{on / off:.2f} the call with it off; the decision's span and metrics alone "
        f"{alone_on / off * 100:.1f}% of a call, the check with it off {alone_off / off * 100:.2f}%"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
