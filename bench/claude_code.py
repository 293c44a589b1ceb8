"""What Ratchet's hooks cost per tool call in the real Claude Code, with and without them, in one run.

Drives the real `claude -p` (RATCHET_TEST_CLAUDE names its executable; `.ci/run` installs it)
against the scripted model server (tests/clients/fake_anthropic.py, loopback), for a session of TURNS
sequential `ls` calls (Bash; its class is autonomous, so every call is allowed and runs). Set-ups of
one project, identical but for the hooks:

    none      Ratchet's MCP server connected, no hooks (the baseline)
    command   `ratchet install claude-code --hook-path command`: a `ratchet hook` process per event,
              handing it to the resident hook server (warmed up first)
    mcp       `ratchet install claude-code --hook-path mcp`: `mcp_tool` hooks answered by the Ratchet
              server the session already runs
    floor     as `none`, plus `mcp_tool` hooks (PreToolUse, PostToolUse) on a trivial MCP server that
              answers `{}` at once (bench/trivial_hook_server.py): what the client's own mechanism costs

Runs are interleaved (one of each set-up per round, the order rotating) after one discarded warm-up
round. Reported: the median session time per set-up and, per tool call, (median - baseline) / TURNS.

    .venv/bin/python -m bench.claude_code [--turns 5] [--runs 3] [--sandbox on|off] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.provenance import stamp

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "clients" / "fake_anthropic.py"
POLICY = """
[defaults]
unmatched = "draft"

[classes.ls]
tools = ["run_command"]
argv = [["ls"]]
start = "autonomous"
"""
SETUPS = ("none", "floor", "command", "mcp")
MODEL = "claude-sonnet-5-5"


def claude() -> Path:
    given = os.environ.get("RATCHET_TEST_CLAUDE", "").strip()
    if not given or not Path(given).is_file():
        sys.exit("set RATCHET_TEST_CLAUDE to the pinned Claude Code's executable (.ci/run installs it)")
    return Path(given)


def prepare(base: Path, setup: str, sandbox: bool) -> tuple[Path, Path]:
    """A project with Ratchet installed as `setup` says, and its HOME."""
    ws, home = base / setup / "proj", base / setup / "home"
    ws.mkdir(parents=True)
    home.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    policies = base / setup / "policies"
    policies.mkdir()
    (policies / "policy.toml").write_text(POLICY)
    ratchet = Path(sys.executable).parent / "ratchet"
    path = "command" if setup == "command" else "mcp"
    env = {**os.environ, "PATH": f"{claude().parent}:{os.environ['PATH']}"}
    subprocess.run(
        [
            *(str(ratchet), "install", "claude-code", "--workspace", str(ws), "--policies", str(policies)),
            *("--db", str(base / setup / "ratchet.db"), "--apply", "--hook-path", path),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    settings_file = ws / ".claude" / "settings.json"
    settings = json.loads(settings_file.read_text())
    if setup in ("none", "floor"):
        settings.pop("hooks")
    if setup == "floor":
        mcp_file = ws / ".mcp.json"
        servers = json.loads(mcp_file.read_text())
        servers["mcpServers"]["floor"] = {
            "type": "stdio",
            "command": sys.executable,
            "args": [str(ROOT / "bench" / "trivial_hook_server.py")],
        }
        mcp_file.write_text(json.dumps(servers, indent=2))
        hook = {"type": "mcp_tool", "server": "floor", "tool": "hook", "input": {"tool_name": "${tool_name}"}}
        hook |= {"timeout": 60, "onFailure": "block"}
        settings["hooks"] = {e: [{"matcher": "Bash", "hooks": [hook]}] for e in ("PreToolUse", "PostToolUse")}
        settings["permissions"]["allow"].append("mcp__floor")
        settings["permissions"]["deny"].append("mcp__floor__hook")
    if not sandbox:  # the same in every set-up: Claude Code's sandbox off (bwrap per command is noisy under load)
        settings["sandbox"]["enabled"] = False
    settings_file.write_text(json.dumps(settings, indent=2))
    (home / ".claude.json").write_text(
        json.dumps(
            {"projects": {str(ws): {"hasTrustDialogAccepted": True, "enabledMcpjsonServers": ["ratchet", "floor"]}}}
        )
    )
    return ws, home


def session(ws: Path, home: Path, turns: int, sockets: Path) -> float:
    """One `claude -p` session of `turns` sequential `ls` calls; its wall time in seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-cc-") as tmp:
        script = Path(tmp) / "script.json"
        calls = [{"name": "Bash", "input": {"command": "ls", "description": "list"}} for _ in range(turns)]
        script.write_text(json.dumps([*calls, {"text": "done"}]))
        port_file = Path(tmp) / "port"
        model = subprocess.Popen(
            [
                *(sys.executable, str(FAKE), "--script", str(script), "--log", str(Path(tmp) / "log.jsonl")),
                *("--port", "0", "--port-file", str(port_file)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while not (port_file.exists() and port_file.read_text().strip()):
                time.sleep(0.02)
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port_file.read_text().split()[0]}",
                "ANTHROPIC_API_KEY": "sk-ant-dummy",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_AUTOUPDATER": "1",
                "RATCHET_HOOK_SOCKET_DIR": str(sockets),
            }
            argv = [str(claude()), "-p", "list", "--output-format", "json", "--model", MODEL]
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
            try:
                out, err = proc.communicate(timeout=300)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            took = time.perf_counter() - started
            errors = [
                r["text"]
                for line in (Path(tmp) / "log.jsonl").read_text().splitlines()
                for r in json.loads(line)["tool_results"]
                if r["is_error"]
            ]
            summary = json.loads(out) if proc.returncode == 0 else {}
            if summary.get("num_turns") != turns + 1 or errors:
                raise RuntimeError(f"the session did not run {turns} calls: {errors} {err.decode()[-500:]}")
            return took
        finally:
            os.killpg(model.pid, signal.SIGKILL)
            model.wait()


def stop_servers(sockets: Path) -> None:
    """End the resident hook servers this bench started (their pid is in the lock file)."""
    for lock in sockets.glob("*.lock"):
        with contextlib.suppress(ValueError, ProcessLookupError, OSError):
            os.kill(int(lock.read_text().split()[0]), signal.SIGTERM)


def run(turns: int, runs: int, sandbox: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-claude-code-") as tmp:
        base = Path(tmp)
        sockets = base / "sockets"
        sockets.mkdir(mode=0o700)
        projects = {s: prepare(base, s, sandbox) for s in SETUPS}
        times: dict[str, list[float]] = {s: [] for s in SETUPS}
        try:
            for s in SETUPS:  # warm-up: discarded (starts the resident hook server, fills caches)
                session(*projects[s], turns, sockets)
            for r in range(runs):
                order = SETUPS[r % len(SETUPS) :] + SETUPS[: r % len(SETUPS)]
                for s in order:
                    times[s].append(session(*projects[s], turns, sockets))
        finally:
            stop_servers(sockets)
    medians = {s: statistics.median(t) for s, t in times.items()}
    per_call = {s: (medians[s] - medians["none"]) / turns * 1000 for s in SETUPS}
    command = f"python -m bench.claude_code --turns {turns} --runs {runs} --sandbox {'on' if sandbox else 'off'}"
    return {
        "provenance": stamp(command),
        "client": "Claude Code 2.1.337",
        "turns": turns,
        "runs": runs,
        "sandbox": sandbox,
        "load_average": os.getloadavg(),
        "seconds": times,
        "median_s": medians,
        "per_call_ms": per_call,
        "target_per_call_ms": 20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--sandbox", choices=["on", "off"], default="on", help="Claude Code's sandbox in every set-up")
    args = parser.parse_args()
    result = run(args.turns, args.runs, args.sandbox == "on")
    for s in SETUPS:
        print(f"{s:8} median {result['median_s'][s]:.2f} s  per tool call {result['per_call_ms'][s]:+.0f} ms")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
