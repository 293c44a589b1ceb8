"""The resident hook server is never a secret: `ratchet status` says that it runs and for how long it
idles, `ratchet hook-server stop` ends it, and after it nothing of it is left (no process, no socket)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ratchet.claude_code import hook_socket

from .helpers import HOOK_POLICY, write_policy


def env_for(sockets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in hook_socket.KEYED_ENV and not k.startswith("CLAUDE_")}
    return {**env, hook_socket.SOCKET_DIR_ENV: str(sockets), hook_socket.SERVER_ENV: "on", "NO_COLOR": "1"}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_status_names_the_running_hook_server_and_hook_server_stop_ends_it(tmp_path: Path, ratchet_bin: Path) -> None:
    sockets, workspace = tmp_path / "sockets", tmp_path / "ws"
    workspace.mkdir()
    policies = write_policy(tmp_path / "policies", HOOK_POLICY)
    common = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(tmp_path / "r.db")]
    env = env_for(sockets)

    def ratchet(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ratchet_bin), *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    before = ratchet("hook-server", "status", *common)
    assert before.returncode == 0, before.stderr
    assert "hook server: none running (a Claude Code hook event starts one; it exits after 10 min" in before.stdout
    event = {
        "session_id": "s",
        "transcript_path": str(tmp_path / "t.jsonl"),
        "cwd": str(workspace),
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "echo hi"},
        "tool_use_id": "t1",
    }
    first = subprocess.run(
        [str(ratchet_bin), "hook", "claude-code", *common], input=json.dumps(event), env=env, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    assert '"allow"' in first.stdout
    deadline = time.monotonic() + 60
    while not list(sockets.glob("*.json")):
        assert time.monotonic() < deadline, "no hook server started"
        time.sleep(0.1)
    state = json.loads(next(sockets.glob("*.json")).read_text())
    pid = state["pid"]
    assert alive(pid) and state["workspace"] == str(workspace)

    shown = ratchet("status", *common)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("hook server:"))
    assert f"running (pid {pid}, since" in line and "exits after 10 min without an event" in line
    assert "`ratchet hook-server stop` ends it now" in line
    as_json = json.loads(ratchet("status", *common, "--json").stdout)["hook_servers"]
    assert [s["pid"] for s in as_json] == [pid] and as_json[0]["idle_s"] == 600
    # Another workspace's status does not claim it; --all sees it from anywhere.
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert "none running" in ratchet("hook-server", "status", "--workspace", str(elsewhere)).stdout
    assert f"pid {pid}" in ratchet("hook-server", "status", "--all", "--workspace", str(elsewhere)).stdout

    stopped = ratchet("hook-server", "stop", *common)
    assert stopped.returncode == 0 and stopped.stdout == f"hook server {pid} stopped\n", stopped.stderr
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, "the hook server outlived `ratchet hook-server stop`"
        time.sleep(0.05)
    assert not list(sockets.glob("*.sock")) and not list(sockets.glob("*.json"))
    assert "exiting (stopped)" in next(sockets.glob("*.log")).read_text()
    assert "hook server: none running" in ratchet("status", *common).stdout
    assert ratchet("hook-server", "stop", *common).stdout == "no hook server running\n"
