"""4. Start-up: from spawning the server to the first answered `tools/list`.

Every server is started the same way: its console script (or interpreter) as a stdio subprocess,
`mcp.Client` connecting (the SDK's `auto` negotiation), then one `tools/list`. The clock stops when
that answer arrives; shutting down is not counted. Starts alternate between the servers, one
discarded warm-up start each (page cache, .pyc files).

- `ratchet`: `ratchet serve` on a database that already exists (the everyday case), small history.
- `ratchet --resident`: the same through the stdio front (mcp/front.py) with its resident serve server
  running (started by a first, uncounted start): the warm start, every start after a set-up's first.
- `ratchet --resident (cold)`: the front when no resident runs (stopped just before each start): the
  first start of a set-up, which starts the resident and then relays to it; in the same rotation.
- `ratchet@10^6`: the same on the gate bench's largest history, when that bench ran in this run.
- `bare`: `bench/bare_server.py` (the same SDK and imports, no policy, no database).
- `official-git`: `mcp-server-git --repository REPO`, the official Python git server, pip-installed
  into `bench/.venv-git/` by the bench (its own venv: it pins its own dependencies).

Bytecode: every server gets PYTHONPYCACHEPREFIX set to one directory of this run and never
PYTHONDONTWRITEBYTECODE, so the warm-up start of each writes the compiled modules it imports and every
counted start reads them, as a user's installed package does (an environment that sets
PYTHONDONTWRITEBYTECODE and has no `.pyc` files would compile every module on every start, ratchet's
and the SDK's alike). Nothing is written into the source tree or the virtual environment.

`python -m bench.startup [--starts N] [--no-external]` runs this alone and writes
bench/results/startup.json with the command, the commit and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import (
    BENCH_DIR,
    Config,
    child_env,
    client,
    config,
    make_policy,
    ratchet_args,
    ratchet_bin,
    ratio,
    seed_files,
    summary,
)
from .provenance import stamp

RESULTS = BENCH_DIR / "results" / "startup.json"
RESIDENT = "ratchet --resident"
COLD = "ratchet --resident (cold)"

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
    env = _env(tmp)
    serve = ratchet_args(ws, policies, root / "state" / "ratchet.db")
    candidates: dict[str, Any] = {
        "ratchet": _params(ratchet_bin(), serve, env),
        RESIDENT: _params(ratchet_bin(), [*serve, "--resident"], env),
        "bare": _params(sys.executable, [str(BENCH_DIR / "bare_server.py"), "--workspace", str(ws)], env),
    }
    resident = cfg.mode != "tiny"  # the smoke test's mode keeps to seconds: no resident started there
    if not resident:
        del candidates[RESIDENT]
        notes.append("ratchet --resident skipped in this mode")
    big = max(cfg.gate_sizes)
    big_root = tmp / f"gate-{big}"
    if not cfg.startup_big_history:
        notes.append("ratchet on the largest history skipped in this mode")
    elif (big_root / "state" / "ratchet.db").exists():
        candidates[f"ratchet@{big:,}"] = _params(
            ratchet_bin(), ratchet_args(big_root / "ws", tmp / "gate-policies", big_root / "state" / "ratchet.db"), env
        )
    else:
        notes.append("ratchet on the largest history skipped: the gate bench did not run first in this run")
    if cfg.external:
        exe = ensure_git_server(notes)
        if exe is not None:
            candidates["official-git"] = _params(exe, ["--repository", str(_git_repo(root / "repo"))], env)
    else:
        notes.append("official-git skipped: external comparison servers disabled (--no-external / --tiny)")
    times: dict[str, list[float]] = {name: [] for name in candidates}
    tools: dict[str, int] = {}
    names = list(candidates)
    if resident:
        candidates[COLD] = candidates[RESIDENT]  # the same start, with the resident stopped just before
        times[COLD] = []
        names.append(COLD)
    try:
        with (root / "servers.stderr").open("w") as errlog:
            if resident:
                await _start(candidates[RESIDENT], errlog)  # starts the resident: a warm start finds it running
            for rep in range(cfg.startup_warmup + cfg.startup_reps):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for name in order:
                    if name == COLD:
                        _stop_residents(env)  # this start starts it again, so the next warm one finds it
                    elapsed, count = await _start(candidates[name], errlog)
                    tools[name] = count
                    if rep >= cfg.startup_warmup:  # the first start(s) of each are a warm-up
                        times[name].append(elapsed)
    except Exception:  # say what the servers said before the evidence goes with the temporary directory
        for log in [root / "servers.stderr", *Path(env["RATCHET_HOOK_SOCKET_DIR"]).glob("*.log")]:
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        _stop_residents(env)
        shutil.rmtree(env["RATCHET_HOOK_SOCKET_DIR"], ignore_errors=True)
    servers = {name: {**summary(times[name]), "tools": tools[name]} for name in names}
    cold = times.get(COLD, [])
    ratios: dict[str, Any] = {"ratchet/bare": ratio(servers["ratchet"]["median"], servers["bare"]["median"])}
    if resident:
        ratios["resident/bare"] = ratio(servers[RESIDENT]["median"], servers["bare"]["median"])
        ratios["resident/ratchet"] = ratio(servers[RESIDENT]["median"], servers["ratchet"]["median"])
    if cold:
        ratios["resident cold/bare"] = ratio(servers[COLD]["median"], servers["bare"]["median"])
        ratios["resident cold/ratchet"] = ratio(servers[COLD]["median"], servers["ratchet"]["median"])
    if "official-git" in servers:
        ratios["ratchet/official-git"] = ratio(servers["ratchet"]["median"], servers["official-git"]["median"])
        ratios["bare/official-git"] = ratio(servers["bare"]["median"], servers["official-git"]["median"])
        ratios["official_git_version"] = GIT_VERSION
    for name in names:
        if name.startswith("ratchet@"):
            ratios[f"{name}/ratchet"] = ratio(servers[name]["median"], servers["ratchet"]["median"])
    return {
        "what": "spawn to the first answered tools/list, same client code, alternating starts",
        "bytecode": "compiled by each server's warm-up start into one PYTHONPYCACHEPREFIX; never "
        "PYTHONDONTWRITEBYTECODE",
        "starts_per_server": cfg.startup_reps,
        "cold_starts": len(cold),
        "warmup_starts_per_server": cfg.startup_warmup,
        "servers": servers,
        "ratios": ratios,
        "notes": notes,
    }


def _env(tmp: Path) -> dict[str, str]:
    """Every server's environment: the bench's, bytecode in one directory of this run, and the resident's
    sockets in another (so this run's resident is its own, and stopped at the end)."""
    env = {**child_env(), "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env["RATCHET_HOOK_SOCKET_DIR"] = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # short: a socket path's limit
    return env


def _params(command: str | Path, args: list[str], env: dict[str, str]) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=str(command), args=[str(a) for a in args], env=env)


def _stop_residents(env: dict[str, str]) -> None:
    """Stop this run's resident serve server, if one runs (and wait for it to go)."""
    from ratchet.claude_code import hook_servers

    for server in hook_servers.running(env):
        hook_servers.stop(server)


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    import anyio

    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.startup`: this bench alone, written to bench/results/startup.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--starts", type=int, default=10, help="counted starts per server (default 10)")
    parser.add_argument("--no-external", action="store_true", help="without the official git server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    shown = [f"--starts={args.starts}", *(["--no-external"] if args.no_external else [])]
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.startup", *shown]))
    base = config("full", external=not args.no_external)
    cfg = Config(
        "startup",
        base.external,
        startup_reps=args.starts,
        startup_warmup=1,
        startup_big_history=False,
    )
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ratchet-startup-") as tmp:
        result = run(cfg, Path(tmp))
    after = os.getloadavg()
    result["load_average"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in after]}
    result["cores"] = os.cpu_count()
    result["provenance"] = provenance
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    servers = result["servers"]
    for name, figures in servers.items():
        print(f"{name}: median {figures['median']:.0f} ms (n={figures['n']})")
    print(json.dumps(result["ratios"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
