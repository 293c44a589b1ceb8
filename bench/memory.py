"""5. Memory: the server's peak resident set (VmHWM) after ten thousand actions.

One `ratchet serve` on a fresh database, one client, `memory_actions` autonomous writes (rotating
over 100 real files), with VmRSS and VmHWM read from /proc/PID/status after connecting and at even
checkpoints. The bare server gets the same calls for comparison (same SDK, same write, no gate).
A leak shows as RSS still climbing between the later checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import (
    BENCH_DIR,
    Config,
    child_pid,
    client,
    content,
    make_policy,
    ratchet_args,
    ratchet_bin,
    ratio,
    seed_files,
    stdio_params,
    target,
    vm_status,
)


async def _drive(name: str, params: Any, marker: str, actions: int, checkpoints: int, log: Path) -> dict[str, Any]:
    every = max(1, actions // checkpoints)
    series: list[dict[str, int]] = []
    with log.open("w") as errlog:
        async with client(params, errlog) as c:
            pid = child_pid(marker)
            if pid is None:
                raise RuntimeError(f"cannot find the {name} server process")
            series.append({"actions": 0, **vm_status(pid)})
            for i in range(actions):
                result = await c.call_tool("write_file", {"path": target(i), "content": content(i)})
                status = (result.structured_content or {}).get("status")
                if result.is_error or (name == "ratchet" and status != "executed"):
                    raise RuntimeError(f"{name} write failed: {result.content}")
                if (i + 1) % every == 0 or i + 1 == actions:
                    series.append({"actions": i + 1, **vm_status(pid)})
            final = vm_status(pid)
    later = [p["VmRSS"] for p in series[len(series) // 2 :]]
    return {
        "actions": actions,
        "peak_rss_mib": round(final["VmHWM"] / 1024, 1),
        "rss_after_connect_mib": round(series[0]["VmRSS"] / 1024, 1),
        "rss_at_end_mib": round(final["VmRSS"] / 1024, 1),
        "rss_growth_second_half_kib": later[-1] - later[0] if later else 0,
        "series_kib": series,
    }


async def measure(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Ratchet, then the bare server, each driven through `memory_actions` writes."""
    root = tmp / "memory"
    policies = make_policy(root / "policies")
    ws, ws_bare = root / "ws-ratchet", root / "ws-bare"
    seed_files(ws)
    seed_files(ws_bare)
    servers = {
        "ratchet": (stdio_params(ratchet_bin(), ratchet_args(ws, policies, root / "state" / "ratchet.db")), str(ws)),
        "bare": (
            stdio_params(sys.executable, [str(BENCH_DIR / "bare_server.py"), "--workspace", str(ws_bare)]),
            str(ws_bare),
        ),
    }
    if not cfg.memory_bare:
        del servers["bare"]
    out: dict[str, Any] = {}
    for name, (params, marker) in servers.items():
        out[name] = await _drive(
            name, params, marker, cfg.memory_actions, cfg.memory_checkpoints, root / f"{name}.stderr"
        )
    bare_peak = out["bare"]["peak_rss_mib"] if "bare" in out else None
    return {
        "what": "VmHWM of the server process after N autonomous write_file calls over stdio",
        "servers": out,
        "ratios": {"ratchet/bare peak": ratio(out["ratchet"]["peak_rss_mib"], bare_peak)},
    }


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    import anyio

    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result
