"""2. Round trip over stdio: Ratchet against a bare MCPServer and the official filesystem server.

Every server is started the same way (a subprocess over stdio) and driven by the same client code
(`mcp.Client`, the same SDK), all three alive at once. Calls go in interleaved blocks, rotating the
order each round, so machine noise lands on every server alike; ratios are of figures from this
one run. Every call overwrites one of 100 real files with ~700 bytes that differ from what is there.

- `ratchet`: `ratchet serve`, an autonomous class, so every call is classified, decided, recorded
  and executed (the full gate).
- `bare`: `bench/bare_server.py`, the same write (Ratchet's own fs executor) with no gate.
- `official-fs`: `@modelcontextprotocol/server-filesystem`'s `write_file` (Node), npm-installed
  into `bench/.node/` by the bench. Note: it does not fsync; Ratchet's and the bare server's writes do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from . import (
    BENCH_DIR,
    Config,
    child_pid,
    client,
    content,
    cpu_seconds,
    make_policy,
    median,
    ratchet_args,
    ratchet_bin,
    ratio,
    seed_files,
    stdio_params,
    summary,
    target,
)

FS_PACKAGE = "@modelcontextprotocol/server-filesystem"
FS_VERSION = "2026.8.31"
NODE_DIR = BENCH_DIR / ".node"


def ensure_fs_server(notes: list[str]) -> Path | None:
    """The official filesystem server's entry point, npm-installing it into bench/.node/ if needed."""
    entry = NODE_DIR / "node_modules" / FS_PACKAGE / "dist" / "index.js"
    package_json = entry.parent.parent / "package.json"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        notes.append("official-fs skipped: node/npm not found on PATH")
        return None
    if entry.exists() and f'"version": "{FS_VERSION}"' in package_json.read_text():
        return entry
    NODE_DIR.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(NODE_DIR),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"{FS_PACKAGE}@{FS_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 or not entry.exists():
        notes.append(f"official-fs skipped: npm install failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return None
    return entry


@dataclass
class Server:
    """One server under test."""

    name: str
    params: Any
    marker: str  # a unique string in its command line, to find its pid
    path_of: Callable[[int], str]
    check: Callable[[Any], None]
    calls: int = 0
    latencies: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    cpu: float | None = None
    first_call: float | None = None
    client: Any = None
    pid: int | None = None

    async def call(self) -> float:
        i = self.calls
        self.calls += 1
        t0 = time.perf_counter()
        result = await self.client.call_tool("write_file", {"path": self.path_of(i), "content": content(i)})
        elapsed = time.perf_counter() - t0
        self.check(result)
        return elapsed


async def _hold(s: Server, log: Path, ready: Any, finished: Any) -> None:
    """Own one server's client connection until the measurement is over."""
    with log.open("w") as errlog:
        async with client(s.params, errlog) as c:
            s.client = c
            s.pid = child_pid(s.marker)
            ready.set()
            await finished.wait()


async def _drive(cfg: Config, under_test: list[Server]) -> None:
    """Warm up, then time calls in blocks, rotating which server goes first each round."""
    for s in under_test:
        s.first_call = await s.call()  # a cold server: lazily built models, first page-ins
        for _ in range(cfg.rt_warmup):
            await s.call()
    cpu_before = {s.name: cpu_seconds(s.pid) if s.pid else None for s in under_test}
    for r in range(cfg.rt_rounds):
        order = under_test[r % len(under_test) :] + under_test[: r % len(under_test)]
        for s in order:
            block = [await s.call() for _ in range(cfg.rt_block)]
            s.latencies.extend(block)
            s.round_medians.append(median(block))
    for s in under_test:
        before = cpu_before[s.name]
        if s.pid and before is not None:
            s.cpu = (cpu_seconds(s.pid) - before) / len(s.latencies)


def _check_ratchet(result: Any) -> None:
    status = (result.structured_content or {}).get("status")
    if result.is_error or status != "executed":
        raise RuntimeError(f"ratchet write not executed: {status}: {result.content}")


def _check_plain(result: Any) -> None:
    if result.is_error:
        raise RuntimeError(f"write failed: {result.content}")


def servers(cfg: Config, tmp: Path, notes: list[str]) -> list[Server]:
    """Ratchet, the bare server and (when it can be installed) the official filesystem server."""
    out: list[Server] = []
    policies = make_policy(tmp / "rt-policies")
    ws = tmp / "rt-ratchet"
    seed_files(ws)
    out.append(
        Server(
            "ratchet",
            stdio_params(ratchet_bin(), ratchet_args(ws, policies, tmp / "rt-state" / "ratchet.db")),
            str(ws),
            target,
            _check_ratchet,
        )
    )
    ws_bare = tmp / "rt-bare"
    seed_files(ws_bare)
    out.append(
        Server(
            "bare",
            stdio_params(sys.executable, [str(BENCH_DIR / "bare_server.py"), "--workspace", str(ws_bare)]),
            str(ws_bare),
            target,
            _check_plain,
        )
    )
    if cfg.external:
        entry = ensure_fs_server(notes)
        if entry is not None:
            ws_fs = (tmp / "rt-official").resolve()
            seed_files(ws_fs)
            node = shutil.which("node") or "node"
            out.append(
                Server(
                    "official-fs",
                    stdio_params(node, [str(entry), str(ws_fs)]),
                    str(ws_fs),
                    lambda i, root=ws_fs: str(root / target(i)),
                    _check_plain,
                )
            )
    else:
        notes.append("official-fs skipped: external comparison servers disabled (--no-external / --tiny)")
    return out


async def measure(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Connect all servers, warm them up, then time calls in interleaved blocks."""
    notes: list[str] = []
    under_test = servers(cfg, tmp, notes)
    logs = tmp / "rt-logs"
    logs.mkdir(exist_ok=True)
    async with anyio.create_task_group() as tg:
        finished = anyio.Event()
        ready = [anyio.Event() for _ in under_test]
        for s, event in zip(under_test, ready, strict=True):
            tg.start_soon(_hold, s, logs / f"{s.name}.stderr", event, finished)  # connect all at once
        try:
            with anyio.fail_after(120):
                for event in ready:
                    await event.wait()
            await _drive(cfg, under_test)
        finally:
            finished.set()
    by = {s.name: s for s in under_test}
    out: dict[str, Any] = {
        "what": "client.call_tool('write_file') over stdio, same client and SDK, all servers alive, interleaved",
        "calls_per_server": cfg.rt_rounds * cfg.rt_block,
        "servers": {
            s.name: {
                **summary(s.latencies),
                "server_cpu_ms_per_call": round(s.cpu * 1e3, 4) if s.cpu is not None else None,
                "first_call_ms": round(s.first_call * 1e3, 3) if s.first_call is not None else None,
                "round_medians_ms": [round(m * 1e3, 4) for m in s.round_medians],
            }
            for s in under_test
        },
        "ratios": {},
        "notes": notes,
    }
    ratchet, bare = by["ratchet"], by["bare"]
    rs = out["servers"]
    out["ratios"]["ratchet/bare"] = {
        "median": ratio(rs["ratchet"]["median"], rs["bare"]["median"]),
        "p99": ratio(rs["ratchet"]["p99"], rs["bare"]["p99"]),
        "median_of_round_ratios": round(
            median([a / b for a, b in zip(ratchet.round_medians, bare.round_medians, strict=True)]), 3
        ),
        "server_cpu": ratio(rs["ratchet"]["server_cpu_ms_per_call"], rs["bare"]["server_cpu_ms_per_call"]),
        "added_ms_median": round(rs["ratchet"]["median"] - rs["bare"]["median"], 4),
    }
    if "official-fs" in by:
        official = by["official-fs"]
        for name in ("ratchet", "bare"):
            out["ratios"][f"{name}/official-fs"] = {
                "median": ratio(rs[name]["median"], rs["official-fs"]["median"]),
                "p99": ratio(rs[name]["p99"], rs["official-fs"]["p99"]),
                "median_of_round_ratios": round(
                    median([a / b for a, b in zip(by[name].round_medians, official.round_medians, strict=True)]), 3
                ),
            }
        out["official_fs_version"] = FS_VERSION
    return out


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result
