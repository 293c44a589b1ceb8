"""4. Start-up: from spawning the server to the first answered `tools/list`.

Every server is started the same way: its console script (or interpreter) as a stdio subprocess,
`mcp.Client` connecting (the SDK's `auto` negotiation), then one `tools/list`. The clock stops when
that answer arrives; shutting down is not counted. Starts alternate between the servers, one
discarded warm-up start each (page cache, .pyc files).

- `ratchet`: `ratchet serve` on a database that already exists (the everyday case), small history.
- `ratchet@10^6`: the same on the gate bench's largest history, when that bench ran in this run.
- `bare`: `bench/bare_server.py` (the same SDK and imports, no policy, no database).
- `official-git`: `mcp-server-git --repository REPO`, the official Python git server, pip-installed
  into `bench/.venv-git/` by the bench (its own venv: it pins its own dependencies).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import (
    BENCH_DIR,
    Config,
    client,
    make_policy,
    ratchet_args,
    ratchet_bin,
    ratio,
    seed_files,
    stdio_params,
    summary,
)

GIT_PACKAGE = "mcp-server-git"
GIT_VERSION = "2026.10.19"
GIT_VENV = BENCH_DIR / ".venv-git"


def ensure_git_server(notes: list[str]) -> Path | None:
    """`mcp-server-git` in bench/.venv-git/, pip-installing it there if needed."""
    exe = GIT_VENV / "bin" / "mcp-server-git"
    if exe.exists() and list(GIT_VENV.glob(f"lib/python*/site-packages/mcp_server_git-{GIT_VERSION}.dist-info")):
        return exe
    try:
        if not (GIT_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(GIT_VENV)], check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            [
                str(GIT_VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"{GIT_PACKAGE}=={GIT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        notes.append(f"official-git skipped: could not create {GIT_VENV}: {exc}")
        return None
    if done.returncode != 0 or not exe.exists():
        notes.append(f"official-git skipped: pip install failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return None
    return exe


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
        "PATH": "/usr/bin:/bin",
    }
    (path / "README.md").write_text("bench repository\n")
    for argv in (["git", "init", "-q"], ["git", "add", "README.md"], ["git", "commit", "-q", "-m", "init"]):
        subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True, timeout=60)
    return path


async def _start(params: Any, errlog: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    async with client(params, errlog) as c:
        tools = await c.list_tools()
        elapsed = time.perf_counter() - t0
    return elapsed, len(tools.tools)


async def measure(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Start each server `startup_reps` times (plus one warm-up), alternating; time to first tools/list."""
    notes: list[str] = []
    root = tmp / "startup"
    root.mkdir()
    policies = make_policy(root / "policies")
    ws = root / "ws"
    seed_files(ws)
    candidates: dict[str, Any] = {
        "ratchet": stdio_params(ratchet_bin(), ratchet_args(ws, policies, root / "state" / "ratchet.db")),
        "bare": stdio_params(sys.executable, [str(BENCH_DIR / "bare_server.py"), "--workspace", str(ws)]),
    }
    big = max(cfg.gate_sizes)
    big_root = tmp / f"gate-{big}"
    if not cfg.startup_big_history:
        notes.append("ratchet on the largest history skipped in this mode")
    elif (big_root / "state" / "ratchet.db").exists():
        candidates[f"ratchet@{big:,}"] = stdio_params(
            ratchet_bin(), ratchet_args(big_root / "ws", tmp / "gate-policies", big_root / "state" / "ratchet.db")
        )
    else:
        notes.append("ratchet on the largest history skipped: the gate bench did not run first in this run")
    if cfg.external:
        exe = ensure_git_server(notes)
        if exe is not None:
            candidates["official-git"] = stdio_params(exe, ["--repository", str(_git_repo(root / "repo"))])
    else:
        notes.append("official-git skipped: external comparison servers disabled (--no-external / --tiny)")
    times: dict[str, list[float]] = {name: [] for name in candidates}
    tools: dict[str, int] = {}
    names = list(candidates)
    with (root / "servers.stderr").open("w") as errlog:
        for rep in range(cfg.startup_warmup + cfg.startup_reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                elapsed, count = await _start(candidates[name], errlog)
                tools[name] = count
                if rep >= cfg.startup_warmup:  # the first start(s) of each are a warm-up
                    times[name].append(elapsed)
    servers = {name: {**summary(times[name]), "tools": tools[name]} for name in names}
    ratios: dict[str, Any] = {"ratchet/bare": ratio(servers["ratchet"]["median"], servers["bare"]["median"])}
    if "official-git" in servers:
        ratios["ratchet/official-git"] = ratio(servers["ratchet"]["median"], servers["official-git"]["median"])
        ratios["bare/official-git"] = ratio(servers["bare"]["median"], servers["official-git"]["median"])
        ratios["official_git_version"] = GIT_VERSION
    for name in names:
        if name.startswith("ratchet@"):
            ratios[f"{name}/ratchet"] = ratio(servers[name]["median"], servers["ratchet"]["median"])
    return {
        "what": "spawn to the first answered tools/list, same client code, alternating starts",
        "starts_per_server": cfg.startup_reps,
        "warmup_starts_per_server": cfg.startup_warmup,
        "servers": servers,
        "ratios": ratios,
        "notes": notes,
    }


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    import anyio

    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result
