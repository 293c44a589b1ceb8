"""Ratchet's benchmark harness: `.venv/bin/python -m bench [--quick]` (see bench/README.md).

This module holds what every bench shares: the scale settings, the statistics, the bench policy
(the starter set plus one autonomous class), the payloads, and how to find and watch a server
process. Each bench module exposes `run(cfg, tmp) -> dict`; `__main__` runs them and writes
`bench/results/bench.json` and `bench/results/bench.md`.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"

# The one class the benches drive: autonomous from the start, so every call runs the full recorded path.
BENCH_CLASS = "bench-auto"
BENCH_AREA = "bench-area"
BENCH_POLICY = f"""\
# Added by the benchmark harness to a copy of the starter policies: one class that starts autonomous,
# so a bench call is classified against the whole starter set and then runs the full recorded path.
[classes.{BENCH_CLASS}]
description = "Benchmark writes: autonomous from the start"
tools = ["write_file", "edit_file"]
paths = ["{BENCH_AREA}/**"]
start = "autonomous"
floor = "draft"
ceiling = "autonomous"

[classes.{BENCH_CLASS}.examples]
match = [{{ tool = "write_file", path = "{BENCH_AREA}/f1.txt" }}]
"""


@dataclass(frozen=True)
class Config:
    """How much of everything one run does. `full` is the default; `quick` and `tiny` scale it down."""

    mode: str
    external: bool = True  # install and run the official comparison servers
    # 1. the gate in process
    gate_sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    gate_warmup: int = 100
    gate_rounds: int = 16
    gate_block: int = 125
    gate_pure_calls: int = 20_000
    gate_profile_calls: int = 1_000
    # 2. stdio round trip
    rt_warmup: int = 50
    rt_rounds: int = 12
    rt_block: int = 50
    # 3. many sessions, one database
    sessions: int = 4
    session_actions: int = 10_000  # in all, split between the sessions
    # 4. start-up
    startup_reps: int = 10
    startup_warmup: int = 1
    startup_big_history: bool = True  # also start on the gate bench's largest database
    # 5. memory
    memory_actions: int = 10_000
    memory_checkpoints: int = 5
    memory_bare: bool = True  # also drive the bare server, for a ratio
    # profile of the server process over stdio
    server_profile_calls: int = 1_000
    extra: dict[str, Any] = field(default_factory=dict)


def config(mode: str, *, external: bool = True) -> Config:
    """The settings for `full`, `quick` or `tiny` (the smoke test's mode: seconds, no installs)."""
    if mode == "full":
        return Config("full", external)
    if mode == "quick":
        return Config(
            "quick",
            external,
            gate_sizes=(1_000, 100_000),
            gate_warmup=50,
            gate_rounds=6,
            gate_block=60,
            gate_pure_calls=5_000,
            gate_profile_calls=300,
            rt_warmup=20,
            rt_rounds=6,
            rt_block=25,
            session_actions=1_000,
            startup_reps=2,
            memory_actions=500,
            server_profile_calls=300,
        )
    if mode == "tiny":
        return Config(
            "tiny",
            False,
            gate_sizes=(100, 1_000),
            gate_warmup=5,
            gate_rounds=2,
            gate_block=10,
            gate_pure_calls=500,
            gate_profile_calls=20,
            rt_warmup=2,
            rt_rounds=2,
            rt_block=5,
            sessions=2,
            session_actions=100,
            startup_reps=1,
            startup_warmup=0,
            startup_big_history=False,
            memory_actions=50,
            memory_checkpoints=2,
            memory_bare=False,
            server_profile_calls=0,
        )
    raise ValueError(f"unknown mode {mode!r}; expected full, quick or tiny")


# -- statistics ------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, interpolated linearly between ranks."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(seconds: Sequence[float], *, unit: str = "ms") -> dict[str, Any]:
    """n, median, p90, p99, mean, min, max of durations given in seconds, in `unit` (ms or us)."""
    scale = {"ms": 1e3, "us": 1e6}[unit]
    values = sorted(v * scale for v in seconds)
    n = len(values)
    if n == 0:
        return {"n": 0, "unit": unit}
    return {
        "n": n,
        "unit": unit,
        "median": round(percentile(values, 50), 4),
        "p90": round(percentile(values, 90), 4),
        "p99": round(percentile(values, 99), 4),
        "mean": round(sum(values) / n, 4),
        "min": round(values[0], 4),
        "max": round(values[-1], 4),
    }


def median(values: Sequence[float]) -> float:
    """The median (nan if empty)."""
    return percentile(sorted(values), 50)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either side is missing."""
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


# -- the bench's fixtures --------------------------------------------------------------------------


def ratchet_bin() -> Path:
    """The `ratchet` console script of the interpreter running the bench."""
    return Path(sys.executable).parent / "ratchet"


def make_policy(directory: Path) -> Path:
    """The starter policies plus the bench's autonomous class, in `directory`."""
    from ratchet.policy.load import starter_policy_dir

    shutil.copytree(starter_policy_dir(), directory)
    (directory / "zz-bench.toml").write_text(BENCH_POLICY, encoding="utf-8")
    return directory


_BODY = "".join(f"line {i:02d}: the quick brown fox jumps over the lazy dog\n" for i in range(12))


def content(i: int, tag: str = "") -> str:
    """A ~700-byte text file; consecutive calls differ in their last line, so every write changes the file."""
    return f"{_BODY}{tag}version {i}\n"


def target(i: int, files: int = 100) -> str:
    """The workspace-relative file a call writes: a rotating set of real files in the bench class."""
    return f"{BENCH_AREA}/f{i % files:03d}.txt"


def seed_files(root: Path, files: int = 100) -> None:
    """Create the rotating target files, so bench writes overwrite real files."""
    (root / BENCH_AREA).mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / target(i, files)).write_text(content(-1), encoding="utf-8")


# -- processes -------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment a bench server gets: enough to run, nothing that points Ratchet elsewhere."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def stdio_params(command: str | Path, args: Sequence[str], *, cwd: Path | None = None) -> Any:
    """StdioServerParameters for a server the bench starts (the same way for every server)."""
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(
        command=str(command), args=[str(a) for a in args], env=child_env(), cwd=str(cwd) if cwd else None
    )


def client(params: Any, errlog: Any) -> Any:
    """An `mcp.Client` over stdio with the server's stderr going to `errlog` (an open file)."""
    from mcp import Client
    from mcp.client.stdio import stdio_client

    return Client(stdio_client(params, errlog=errlog))


def ratchet_args(workspace: Path, policies: Path, db: Path) -> list[str]:
    """`ratchet serve` for a bench workspace, policy directory and database."""
    return ["serve", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]


def child_pid(marker: str) -> int | None:
    """The pid of this process's child whose command line contains `marker` (a unique path)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if marker in cmdline:
            return int(entry.name)
    return None


def vm_status(pid: int) -> dict[str, int]:
    """VmHWM (peak resident) and VmRSS of `pid`, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fs_type(path: Path) -> str:
    """The filesystem type holding `path` (from /proc/mounts), e.g. ext4 or tmpfs."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        parts = line.split()
        inside = len(parts) >= 3 and (resolved == parts[1] or resolved.startswith(parts[1].rstrip("/") + "/"))
        if inside and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def _ratchet_source() -> dict[str, Any]:
    """Which Ratchet was measured: the package's location and, for this checkout, its commit and state."""
    import subprocess

    import ratchet

    path = Path(ratchet.__file__).resolve().parent
    # Relative to the checkout when it is this checkout's: results are committed, machine paths are not.
    shown = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    out: dict[str, Any] = {"package": shown}
    try:
        out["repo_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        if path.is_relative_to(REPO):
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--", "server"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            out["server_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def machine(tmp: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    import mcp

    try:
        import importlib.metadata as md

        mcp_version = md.version("mcp")
        aiosqlite_version = md.version("aiosqlite")
    except Exception:
        mcp_version = getattr(mcp, "__version__", "?")
        aiosqlite_version = "?"
    return {
        "ratchet": _ratchet_source(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "sqlite": sqlite3.sqlite_version,
        "mcp": mcp_version,
        "aiosqlite": aiosqlite_version,
        "tmp": str(tmp),
        "tmp_fs": fs_type(tmp),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
