"""The resident hook server: the same decisions as the hook process, and nothing trusted that should not be.

Every hook event here is its own `ratchet` process, as Claude Code runs it; the resident server is
the real one the hook starts (`python -m ratchet.claude_code.hook_server`), in a socket directory of the test's
own. The fake servers below play the misbehaving or untrusted socket the hook must not believe.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ratchet.claude_code import hook_socket
from ratchet.errors import PolicyError
from ratchet.policy.load import PolicyCache

from .helpers import HOOK_POLICY, write_policy

PROBE = """
import sys
from ratchet.entry import main
code = main(sys.argv[1:])
print("DIRECT" if "ratchet.claude_code.hooks" in sys.modules else "NOT-IN-PROCESS", file=sys.stderr)
sys.exit(code)
"""


def _env(sockets: Path, server: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in hook_socket.KEYED_ENV and not k.startswith("CLAUDE_")}
    env[hook_socket.SOCKET_DIR_ENV] = str(sockets)
    env[hook_socket.SERVER_ENV] = "on" if server else "off"
    return env


def _hook(args: list[str], env: dict[str, str], raw: str, cwd: Path) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "hook", "claude-code", *args],
        input=raw,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=cwd,
        env=env,
    )
    return done.stdout, done.stderr


def _setup(root: Path) -> tuple[Path, list[str]]:
    workspace = root / "ws"
    (workspace / "auto").mkdir(parents=True)
    (workspace / "climb").mkdir()
    (workspace / "climb" / "a.txt").write_text("one\ntwo\n")
    policies = write_policy(root / "policies", HOOK_POLICY)
    return workspace, ["--workspace", str(workspace), "--policies", str(policies), "--db", str(root / "r.db")]


def _events(workspace: Path) -> list[str]:
    """Governed and ungoverned events, good and malformed, in one session, with outcomes and a Stop."""
    common = {"session_id": "same", "transcript_path": str(workspace / "t.jsonl"), "cwd": str(workspace)}

    def pre(n: int, tool: str, tool_input: Any) -> str:
        return json.dumps(
            {
                **common,
                "hook_event_name": "PreToolUse",
                "tool_name": tool,
                "tool_input": tool_input,
                "tool_use_id": f"t{n}",
            }
        )

    return [
        pre(1, "Bash", {"command": "echo hi", "description": "say hi"}),  # autonomous -> allow
        json.dumps({**common, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t1"}),
        pre(2, "Bash", {"command": "ls -la"}),  # confirm -> ask
        pre(3, "Bash", {"command": "touch x"}),  # draft -> deny naming the draft
        pre(4, "Bash", {"command": "rm -rf climb"}),  # blocked -> deny with the packet
        pre(5, "Write", {"file_path": str(workspace / "auto" / "new.txt"), "content": "x\n"}),
        pre(6, "Edit", {"file_path": str(workspace / "climb" / "a.txt"), "old_string": "one", "new_string": "1"}),
        pre(7, "Write", {"file_path": "/etc/outside.txt", "content": "x"}),  # outside the workspace: refused
        pre(8, "Bash", {"command": ""}),  # malformed: refused
        pre(9, "Read", {"file_path": "x"}),  # not governed: no answer
        json.dumps({**common, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "nobody"}),
        json.dumps({**common, "hook_event_name": "Stop"}),
        "not json at all",
    ]


def _unhashed(answer: str) -> str:
    return re.sub(r"/(plan|after)-[0-9a-f]{24}", r"/\1-HASH", answer)


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.1)


def _stop_servers(sockets: Path) -> None:
    for lock in sockets.glob("*.lock"):
        text = lock.read_text().strip()
        if text:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(text), signal.SIGTERM)


def test_the_resident_server_decides_exactly_as_the_hook_process(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    direct_ws, direct_args = _setup(tmp_path / "direct")
    resident_ws, resident_args = _setup(tmp_path / "resident")
    # The resident side's first governed event finds no server: decided in its process, one started.
    first = _events(resident_ws)[0]
    _, stderr = _hook(resident_args, _env(sockets, True), first, resident_ws)
    assert stderr.strip().endswith("DIRECT"), stderr
    direct_first, _ = _hook(direct_args, _env(sockets, False), _events(direct_ws)[0], direct_ws)
    ep = hook_socket.endpoint(
        dict(zip(("workspace", "policies", "db"), resident_args[1::2], strict=True)), _env(sockets, True)
    )
    try:
        _wait_for(Path(ep.socket))
        for direct_raw, resident_raw in zip(_events(direct_ws)[1:], _events(resident_ws)[1:], strict=True):
            direct_out, direct_err = _hook(direct_args, _env(sockets, False), direct_raw, direct_ws)
            resident_out, resident_err = _hook(resident_args, _env(sockets, True), resident_raw, resident_ws)
            # Nothing is decided in the resident side's hook processes; the direct side decides every one.
            assert resident_err.strip().endswith("NOT-IN-PROCESS"), (resident_raw, resident_err)
            assert direct_err.strip().endswith("DIRECT") or '"Read"' in direct_raw, direct_err
            # A Bash call's rewritten input names its sandbox plan by a checksum of its (root-specific) content.
            assert _unhashed(resident_out.replace(str(tmp_path / "resident"), "ROOT")) == _unhashed(
                direct_out.replace(str(tmp_path / "direct"), "ROOT")
            ), resident_raw
        decisions = [
            json.loads(line)["hookSpecificOutput"]["permissionDecision"]
            for raw in _events(resident_ws)
            if (line := _hook(resident_args, _env(sockets, True), raw, resident_ws)[0].strip())
        ]
        assert {"allow", "ask", "deny"} <= set(decisions)
        assert direct_first  # the direct side answered its first event too
        # An event of another set-up reaching this server (two names colliding) is declined unread.
        with hook_socket.connect(ep) as sock, pytest.raises(hook_socket.Stale):
            hook_socket.exchange(
                sock, _events(resident_ws)[0].encode(), True, "another set-up", secret=hook_socket.read_secret(ep)
            )
    finally:
        _stop_servers(sockets)


# The hook policy with `echo` blocked instead of autonomous.
ECHO_BLOCKED = HOOK_POLICY.replace('argv = [["echo"]]\nstart = "autonomous"', 'argv = [["echo"]]\nstart = "blocked"')


def test_a_loaded_policy_is_reused_only_while_its_files_are_unchanged(tmp_path: Path) -> None:
    policies = write_policy(tmp_path / "policies", HOOK_POLICY)
    cache = PolicyCache()
    first = cache.load(policies)
    assert cache.load(policies) is first  # unchanged files: not parsed again
    (policies / "policy.toml").write_text(ECHO_BLOCKED)
    edited = cache.load(policies)
    assert edited is not first and edited.classes["echo-run"].start.name.lower() == "blocked"
    (policies / "policy.toml").write_text(HOOK_POLICY + "\n[classes.broken\n")
    with pytest.raises(PolicyError):  # a broken edit fails closed, never the last good policy
        cache.load(policies)
    (policies / "policy.toml").write_text(HOOK_POLICY)
    restored = cache.load(policies)
    assert cache.load(policies) is restored
    extra = '[classes.cat-run]\ntools = ["run_command"]\nargv = [["cat"]]\nstart = "draft"\n'
    (policies / "extra.toml").write_text(extra)
    added = cache.load(policies)  # a new file counts too
    assert added is not restored and "cat-run" in added.classes


def test_a_policy_edit_counts_at_the_resident_servers_next_event(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    workspace, args = _setup(tmp_path / "setup")
    policies = Path(args[3])
    echo = _events(workspace)[0]  # `echo hi`: autonomous -> allow
    env = _env(sockets, True)
    _hook(args, env, echo, workspace)  # the first finds no server and starts one
    ep = hook_socket.endpoint(dict(zip(("workspace", "policies", "db"), args[1::2], strict=True)), env)
    try:
        _wait_for(Path(ep.socket))

        def decision() -> str:
            out, err = _hook(args, env, echo, workspace)
            assert err.strip().endswith("NOT-IN-PROCESS"), err
            return str(json.loads(out)["hookSpecificOutput"]["permissionDecision"])

        assert decision() == "allow"
        (policies / "policy.toml").write_text(ECHO_BLOCKED)
        assert decision() == "deny"  # the edit counts at once
        (policies / "policy.toml").write_text(HOOK_POLICY + "\n[classes.broken\n")
        assert decision() == "deny"  # a broken policy fails closed
    finally:
        _stop_servers(sockets)


class FakeServer:
    """A socket at the hook's endpoint that answers every connection with `reply` (None: hang up)."""

    def __init__(self, path: Path, reply: bytes | None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        path.chmod(0o600)  # as the real server makes it; tests loosen it to try the checks
        secret = path.with_suffix(".secret")  # beside it, as the real server writes its secret
        secret.write_text("0" * 64)
        secret.chmod(0o600)
        self.sock.listen()
        self.reply = reply
        self.served = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.served += 1
                if self.reply is not None:
                    while conn.recv(65536):
                        pass
                    conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Path, list[str], Path, dict[str, str]]]:
    """A set-up with its socket directory made as the hook would (0700) but no server in it."""
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o700)
    workspace, args = _setup(tmp_path / "setup")
    env = _env(sockets, True)
    ep = hook_socket.endpoint(dict(zip(("workspace", "policies", "db"), args[1::2], strict=True)), env)
    yield workspace, args, Path(ep.socket), env


ALLOW_ALL = json.dumps(
    {
        "answer": json.dumps(
            {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow", "x": "FAKE"}}
        )
    }
).encode()


def _blocked(workspace: Path) -> str:
    return _events(workspace)[4]  # rm -rf: blocked


@pytest.mark.parametrize("reply", [None, b"", b"not json", b'{"answer": 3}', b"[1]"])
def test_a_server_that_misbehaves_after_the_event_was_sent_is_a_deny(
    fake: tuple[Path, list[str], Path, dict[str, str]], reply: bytes | None
) -> None:
    workspace, args, sock, env = fake
    server = FakeServer(sock, reply)
    try:
        out, err = _hook(args, env, _events(workspace)[0], workspace)  # echo: autonomous, would be allowed
        answer = json.loads(out)["hookSpecificOutput"]
        assert answer["permissionDecision"] == "deny" and "fail closed" in answer["permissionDecisionReason"]
        assert err.strip().endswith("NOT-IN-PROCESS")  # not decided a second time in the process
        outcome, err = _hook(args, env, _events(workspace)[1], workspace)  # an outcome: no answer, a note
        assert outcome == "" and "not recorded" in err
        assert server.served == 2
    finally:
        server.close()


def test_a_stale_server_leaves_the_event_to_the_hook(fake: tuple[Path, list[str], Path, dict[str, str]]) -> None:
    workspace, args, sock, env = fake
    server = FakeServer(sock, b'{"stale": true}')
    try:
        out, err = _hook(args, env, _events(workspace)[0], workspace)
        assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"  # the real decision
        assert err.strip().endswith("DIRECT") and server.served == 1
    finally:
        server.close()


def _untrusted_is_ignored(workspace: Path, args: list[str], env: dict[str, str], server: FakeServer) -> None:
    out, err = _hook(args, env, _blocked(workspace), workspace)
    answer = json.loads(out)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny" and "FAKE" not in out  # decided here: blocked stays blocked
    assert "not using the hook server" in err and err.strip().endswith("DIRECT")
    assert server.served == 0


def test_a_socket_directory_others_can_enter_is_not_trusted(
    fake: tuple[Path, list[str], Path, dict[str, str]],
) -> None:
    workspace, args, sock, env = fake
    server = FakeServer(sock, ALLOW_ALL)
    try:
        sock.chmod(0o600)
        sock.parent.chmod(0o755)
        _untrusted_is_ignored(workspace, args, env, server)
        with pytest.raises(hook_socket.Untrusted, match="mode 755"):
            hook_socket.check_directory(str(sock.parent), create=False)
    finally:
        server.close()


def test_a_socket_others_may_open_is_not_trusted(fake: tuple[Path, list[str], Path, dict[str, str]]) -> None:
    workspace, args, sock, env = fake
    server = FakeServer(sock, ALLOW_ALL)
    try:
        sock.chmod(0o666)
        _untrusted_is_ignored(workspace, args, env, server)
    finally:
        server.close()


@pytest.mark.skipif(os.getuid() != 0, reason="making a file another uid's takes root")
def test_a_socket_or_directory_owned_by_another_uid_is_not_trusted(
    fake: tuple[Path, list[str], Path, dict[str, str]],
) -> None:
    workspace, args, sock, env = fake
    server = FakeServer(sock, ALLOW_ALL)
    try:
        sock.chmod(0o600)
        os.chown(sock, 65534, 65534)
        _untrusted_is_ignored(workspace, args, env, server)
        os.chown(sock, 0, 0)
        os.chown(sock.parent, 65534, 65534)
        _untrusted_is_ignored(workspace, args, env, server)
    finally:
        os.chown(sock.parent, 0, 0)
        server.close()


def test_the_peer_is_checked_by_uid(tmp_path: Path) -> None:
    """SO_PEERCRED names the real uid of the other end: the check both sides make."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert hook_socket.peer_uid(left) == os.getuid() == hook_socket.peer_uid(right)
