"""`ratchet serve` as a person meets it: on a terminal, Ctrl-C, the per-call line, --quiet, serverInfo.version.

Every test runs the real console script: under a pseudo-terminal for what a person at a terminal
sees, over pipes (raw JSON-RPC) for what a client's log shows.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

WAITING = "waiting for an MCP client on stdin"


def _serve_argv(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *extra: str) -> list[str]:
    return [
        str(ratchet_bin),
        "serve",
        "--workspace",
        str(workspace),
        "--policies",
        str(policies),
        "--db",
        str(db),
        *extra,
    ]


def _read_until(fd: int, needle: str, timeout: float) -> str:
    """What the terminal shows until `needle` appears (or the time is up, or the child is gone)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def _wait(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None if it is still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    return None


def test_serve_on_a_terminal_says_it_waits_for_a_client_and_ctrl_c_quits_at_once(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    argv = _serve_argv(ratchet_bin, workspace, policies, db)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `ratchet serve` with the pseudo-terminal as stdin, stdout and stderr
        os.execv(argv[0], argv)
    try:
        shown = _read_until(fd, "Ctrl-C quits", timeout=60)
        assert WAITING in shown, shown
        assert "ratchet install claude-code" in shown, shown
        assert "Ctrl-C quits" in shown, shown
        # Ctrl-C typed at the terminal: the line discipline sends SIGINT to the server, no Enter needed.
        started = time.monotonic()
        os.write(fd, b"\x03")
        status = _wait(pid, timeout=12)  # CLOSE_GRACE_S is 15 s: exiting sooner means it did not hang
        elapsed = time.monotonic() - started
        print(f"ratchet serve exited {elapsed:.3f} s after Ctrl-C")
        assert status is not None, f"still running {elapsed:.1f} s after Ctrl-C"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGINT, status
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


class _Stdio:
    """`ratchet serve` over pipes, spoken to in raw JSON-RPC (legacy protocol: one call, one answer)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}))
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        while True:
            message = json.loads(self.proc.stdout.readline())
            if message.get("id") == self.next_id:
                return message

    def notify(self, method: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}) + "\n")
        self.proc.stdin.flush()

    def close(self) -> str:
        """Close stdin (the client went away) and return everything the server wrote on stderr."""
        _, stderr = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, stderr
        return stderr


def _session(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """Initialize, write a file (autonomous class), ask for a draft that does not exist; the
    initialize result and the server's stderr."""
    server = _Stdio(_serve_argv(ratchet_bin, workspace, policies, db, *extra))
    try:
        init = server.request(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        )
        server.notify("notifications/initialized")
        wrote = server.request(
            "tools/call", {"name": "write_file", "arguments": {"path": "auto/a.txt", "content": "x\n"}}
        )
        assert wrote["result"]["structuredContent"]["status"] == "executed", wrote
        missing = server.request("tools/call", {"name": "get_draft", "arguments": {"draft_id": 987654}})
        assert missing["result"]["isError"] is True, missing
    finally:
        stderr = server.close()
    return init["result"], stderr


CALL_LINE = re.compile(r"^ratchet: \d\d:\d\d:\d\d (\S+) (\S+) (\S+) -> (.+) \(\d+ ms\)$")


def test_serve_logs_one_short_line_per_call_on_stderr(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    _, stderr = _session(ratchet_bin, workspace, policies, db)
    calls = [m.groups() for line in stderr.splitlines() if (m := CALL_LINE.match(line))]
    assert len(calls) == 2, stderr
    assert calls[0] == ("write_file", "auto", "autonomous", "executed"), stderr
    tool, action_class, level, outcome = calls[1]
    assert (tool, action_class, level) == ("get_draft", "-", "-"), stderr
    assert outcome.startswith("error: ") and "987654" in outcome, stderr
    assert WAITING not in stderr  # stdin is a pipe: a client is there, nothing to explain


def test_serve_quiet_logs_no_call_line(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    _, stderr = _session(ratchet_bin, workspace, policies, db, "--quiet")
    assert not [line for line in stderr.splitlines() if CALL_LINE.match(line)], stderr
    assert (workspace / "auto/a.txt").read_text() == "x\n"  # the calls did run


def test_server_info_version_is_the_package_version(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    init, _ = _session(ratchet_bin, workspace, policies, db, "--quiet")
    version = importlib.metadata.version("ratchet-mcp")
    assert version
    assert (init["serverInfo"]["name"], init["serverInfo"]["version"]) == ("ratchet", version)
