"""Codex's own shell and apply_patch through `ratchet hook codex`: the real console script, with hook
events in the shapes the real Codex 0.171 sends (tool_name `Bash` / `apply_patch`, tool_input
{"command": ...}), decided by the same policy and gate as Ratchet's tools. A patch is judged file by
file; anything broken is a deny; the installed command blocks when Ratchet cannot run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ratchet import install
from ratchet.claude_code import hook_socket
from ratchet.codex import hooks as codex_hooks
from ratchet.errors import InvalidRequest

from .helpers import CODEX_POLICY as POLICY
from .helpers import SANDBOX_POLICY, rows, write_policy


class Codex:
    """Plays Codex: sends hook events to the real `ratchet hook codex` and reads the answers."""

    def __init__(self, ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
        self.bin, self.workspace, self.policies, self.db = ratchet_bin, workspace, policies, db
        self.transcript = workspace.parent / "rollout.jsonl"
        self.n = 0
        self.rewritten: str | None = None  # the command of the last `allow` with `updatedInput`

    def argv(self) -> list[str]:
        return [str(self.bin), "hook", "codex", "--policies", str(self.policies), "--db", str(self.db)]

    def event(self, name: str, tool: str, command: str, call_id: str, cwd: Path | None = None) -> dict[str, Any]:
        return {
            "session_id": "01a2-codex",
            "turn_id": "t1",
            "transcript_path": str(self.transcript),
            "cwd": str(cwd or self.workspace),
            "hook_event_name": name,
            "model": "gpt-5.5",
            "permission_mode": "default",
            "tool_name": tool,
            "tool_input": {"command": command},
            "tool_use_id": call_id,
        }

    def send(self, event: dict[str, Any] | str) -> str:
        raw = event if isinstance(event, str) else json.dumps(event)
        done = subprocess.run(self.argv(), input=raw, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def pre(self, tool: str, command: str, cwd: Path | None = None) -> tuple[str, str]:
        """A PreToolUse; (the reason of a deny or '' when it may run, the call's id)."""
        self.n += 1
        call_id = f"call_{self.n}"
        out = self.send(self.event("PreToolUse", tool, command, call_id, cwd))
        self.rewritten = None
        if not out:
            return "", call_id
        answer = json.loads(out)["hookSpecificOutput"]
        if answer["permissionDecision"] == "allow":
            self.rewritten = answer["updatedInput"]["command"]
            return "", call_id
        assert answer["hookEventName"] == "PreToolUse" and answer["permissionDecision"] == "deny"
        return str(answer["permissionDecisionReason"]), call_id

    def post(self, tool: str, command: str, call_id: str, *, status: str | None, exit_code: int | None) -> None:
        """Codex's transcript line for the finished call (unless `status` is None), then PostToolUse."""
        if status is not None:
            item: dict[str, Any] = {"type": "CommandExecution", "id": call_id, "status": status}
            if exit_code is not None:
                item["exit_code"] = exit_code
            line = {"type": "event_msg", "payload": {"type": "item_completed", "item": item}}
            with self.transcript.open("a") as out:
                out.write(json.dumps(line) + "\n")
        event = self.event("PostToolUse", tool, command, call_id)
        event["tool_response"] = "output"
        assert self.send(event) == ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin), *args, "--workspace", str(self.workspace), "--policies", str(self.policies)]
        return subprocess.run([*argv, "--db", str(self.db)], capture_output=True, text=True, timeout=120, check=False)

    def rows(self) -> list[dict[str, Any]]:
        """Every recorded action, read straight from the database."""
        return [dict(r) for r in rows(self.db, "SELECT * FROM actions ORDER BY id")]


@pytest.fixture
def codex(ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path) -> Codex:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    for rel, text in {"src/app.py": "x = 1\n", ".env": "SECRET=1\n", "docs/a.md": "# A\n"}.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    return Codex(ratchet_bin, workspace, write_policy(tmp_path / "codex-policies", POLICY), db)


@pytest.fixture
def boxed(codex: Codex, tmp_path: Path) -> Codex:
    """Codex's hook with read-classed echo, cat and python3 (profile read-only) and a write-classed touch."""
    return Codex(codex.bin, codex.workspace, write_policy(tmp_path / "boxed-policies", SANDBOX_POLICY), codex.db)


def _run_as_codex(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The allowed input run as Codex runs a shell command: `bash -lc LINE` in the call's directory."""
    return subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_an_allowed_shell_command_runs_under_its_class_sandbox_profile(boxed: Codex) -> None:
    ws = boxed.workspace
    # Classed as a read, the script it runs writes: the read-only profile stops it.
    (ws / "w.py").write_text("open('by-reads', 'w').write('x')\n")
    reason, _ = boxed.pre("Bash", "python3 w.py")
    assert reason == "" and boxed.rewritten is not None
    done = _run_as_codex(boxed.rewritten, ws)
    assert done.returncode != 0 and "Read-only file system" in done.stderr, done.stderr
    assert not (ws / "by-reads").exists()  # the read class's profile held, though Codex would let it write
    reason, _ = boxed.pre("Bash", "touch by-touches")
    assert reason == "" and boxed.rewritten is not None
    done = _run_as_codex(boxed.rewritten, ws)
    assert done.returncode == 0, done.stderr
    assert (ws / "by-touches").exists()  # the write class's profile: the workspace is writable
    # Guarded paths stay out of reach of a write class too: git's hooks are read-only in its sandbox.
    reason, _ = boxed.pre("Bash", "touch .git/hooks/pre-commit")
    assert reason == "" and boxed.rewritten is not None
    assert _run_as_codex(boxed.rewritten, ws).returncode != 0
    assert not (ws / ".git/hooks/pre-commit").exists()
    # Standard input stays closed inside the sandbox as before.
    reason, _ = boxed.pre("Bash", "cat; echo end")
    assert reason == "" and boxed.rewritten is not None, reason
    done = subprocess.run(
        ["bash", "-c", boxed.rewritten], cwd=ws, input="typed\n", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "end\n", (done.stdout, done.stderr)


def _draft(reason: str) -> int:
    assert "queued this as draft" in reason, reason
    return int(reason.split("as draft ")[1].split()[0])


def test_shell_autonomous_runs_and_is_recorded_with_its_outcome(codex: Codex) -> None:
    reason, ok_id = codex.pre("Bash", "ls  # list")
    assert reason == ""  # Codex runs it under its own sandbox and approval policy, its input closed
    # Under its class's sandbox profile (as Claude Code's Bash), its standard input closed.
    rewritten = codex.rewritten
    assert rewritten is not None and rewritten.startswith("( ") and rewritten.endswith("\n) </dev/null")
    assert "bash -c 'ls  # list'" in rewritten and "--args 3" in rewritten
    reason, fail_id = codex.pre("Bash", "ls missing-dir")
    assert reason == ""
    codex.post("Bash", "ls  # list", ok_id, status="completed", exit_code=0)
    codex.post("Bash", "ls missing-dir", fail_id, status="failed", exit_code=2)
    # One whose result is not in the transcript is left without an outcome: no evidence either way.
    reason, unknown_id = codex.pre("Bash", "ls -a")
    codex.post("Bash", "ls -a", unknown_id, status=None, exit_code=None)
    by_target = {r["target"]: r for r in codex.rows()}
    assert by_target["ls  # list"]["status"] == "executed" and by_target["ls  # list"]["external_tool"] == "Bash"
    assert by_target["ls  # list"]["session_id"] == "codex-01a2-codex"
    assert by_target["ls missing-dir"]["status"] == "failed"
    assert by_target["ls -a"]["status"] == "allowed"


def test_shell_write_at_confirm_is_denied_with_a_draft_that_the_person_approves(codex: Codex) -> None:
    reason, _ = codex.pre("Bash", "echo x > docs/b.md")
    draft = _draft(reason)
    assert "docs/b.md (class docs at confirm)" in reason and "Ratchet's own tools" in reason
    assert not (codex.workspace / "docs/b.md").exists()
    done = codex.cli("approve", str(draft))
    assert done.returncode == 0, done.stderr
    assert (codex.workspace / "docs/b.md").read_text() == "x\n"


PATCH = """*** Begin Patch
*** Update File: src/app.py
@@
-x = 1
+x = 2
*** Update File: .env
@@
-SECRET=1
+SECRET=2
*** Add File: notes/n.md
+note
*** End Patch
"""


def test_a_patch_is_judged_file_by_file_and_runs_only_when_every_file_may(codex: Codex) -> None:
    reason, _ = codex.pre("apply_patch", PATCH)
    assert "2 of its 3 file changes need the person" in reason
    draft = _draft(reason)
    assert "Stopped: edit_file `.env`" in reason  # the packet of the blocked file
    assert "allowed on their own: notes/n.md" in reason  # held back with the rest, and said so
    assert (codex.workspace / "src/app.py").read_text() == "x = 1\n"
    assert not (codex.workspace / "notes").exists()
    queue = json.loads(codex.cli("queue", "--json").stdout)
    assert [(d["action_id"], d["tool"], d["target"]) for d in queue] == [(draft, "edit_file", "src/app.py")]
    assert codex.cli("approve", str(draft)).returncode == 0
    assert (codex.workspace / "src/app.py").read_text() == "x = 2\n"
    assert (codex.workspace / ".env").read_text() == "SECRET=1\n"

    # Every file autonomous: no answer, each recorded, and the PostToolUse of the patch settles them all.
    both = "*** Begin Patch\n*** Add File: notes/a.md\n+a\n*** Add File: notes/b.md\n+b\n*** End Patch\n"
    reason, call_id = codex.pre("apply_patch", both)
    assert reason == "" and codex.rewritten is None  # a patch is not rewritten: no answer at all
    codex.post("apply_patch", both, call_id, status=None, exit_code=None)
    executed = {r["target"] for r in codex.rows() if r["status"] == "executed"}
    assert {"notes/a.md", "notes/b.md"} <= executed


def test_deletes_and_moves_are_judged_as_what_they_do(codex: Codex) -> None:
    reason, _ = codex.pre("apply_patch", "*** Begin Patch\n*** Delete File: src/app.py\n*** End Patch\n")
    assert "rm -- src/app.py" in reason and _draft(reason)
    move = "*** Begin Patch\n*** Update File: docs/a.md\n*** Move to: notes/a.md\n@@\n-# A\n+# B\n*** End Patch\n"
    reason, _ = codex.pre("apply_patch", move)
    # The new file's class (notes: autonomous) would allow it; removing the old one is a command (draft).
    assert "allowed on their own: notes/a.md" in reason and "rm -- docs/a.md" in reason
    assert (codex.workspace / "docs/a.md").exists() and not (codex.workspace / "notes").exists()


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ("*** Add File: x\n+y\n", "does not start with '*** Begin Patch'"),
        ("*** Begin Patch\n*** Add File: notes/x\n+y\n", "does not end with '*** End Patch'"),
        ("*** Begin Patch\n*** Update File: src/app.py\n@@\n-nope\n+x\n*** End Patch\n", "does not match"),
        ("*** Begin Patch\n*** Update File: src/none.py\n@@\n-a\n+b\n*** End Patch\n", "does not exist"),
        ("*** Begin Patch\n*** Frobnicate: x\n*** End Patch\n", "expected '*** Add File:'"),
        ("*** Begin Patch\n*** Add File: ../outside.txt\n+x\n*** End Patch\n", "outside"),
        ("*** Begin Patch\n*** Add File: .codex/hooks.json\n+{}\n*** End Patch\n", "Codex's own configuration"),
        ("*** Begin Patch\n*** Add File: notes/../.codex/config.toml\n+x\n*** End Patch\n", "Codex's own"),
    ],
)
def test_a_patch_that_cannot_be_judged_is_denied(codex: Codex, patch: str, why: str) -> None:
    reason, _ = codex.pre("apply_patch", patch)
    assert reason.startswith("Ratchet refused apply_patch") and why in reason and "Nothing was run" in reason
    assert not (codex.workspace.parent / "outside.txt").exists()


def test_unreadable_events_are_denied_and_other_tools_get_no_answer(codex: Codex) -> None:
    out = json.loads(codex.send("{not json"))["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "could not read the hook event" in out["permissionDecisionReason"]
    bad = codex.event("PreToolUse", "Bash", "ls", "c1")
    bad["tool_input"] = {"cmd": "ls"}
    assert "tool_input.command is missing" in codex.send(bad)
    assert codex.send(codex.event("PreToolUse", "mcp__ratchet__write_file", "x", "c2")) == ""
    assert not codex.db.exists() or all(r["target"] != "x" for r in codex.rows())


def test_a_broken_policy_fails_closed(codex: Codex) -> None:
    (codex.policies / "broken.toml").write_text("[classes.x\n")
    reason, _ = codex.pre("Bash", "ls")
    assert reason.startswith("Ratchet could not decide") and "fail closed" in reason


def test_the_hunks_apply_as_codex_applies_them() -> None:
    text = "a\nb\nc\nd\n"
    ops = codex_hooks.parse_patch("*** Begin Patch\n*** Update File: f\n@@ b\n c\n-d\n+D\n*** End Patch")
    assert codex_hooks.apply_hunks("f", text, ops[0].hunks) == "a\nb\nc\nD\n"
    # Trailing whitespace in the patch is forgiven, as Codex does.
    ops = codex_hooks.parse_patch("*** Begin Patch\n*** Update File: f\n@@\n-a  \n+A\n*** End Patch")
    assert codex_hooks.apply_hunks("f", text, ops[0].hunks) == "A\nb\nc\nd\n"
    ops = codex_hooks.parse_patch("*** Begin Patch\n*** Update File: f\n@@ zz\n-a\n+b\n*** End Patch")
    with pytest.raises(InvalidRequest, match="context line"):
        codex_hooks.apply_hunks("f", text, ops[0].hunks)


# -- the installed command: fail closed where Codex lets a failed hook through ---------------------


def _installed(command: str, event: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    line = install.codex_fail_closed(install.codex_hook_command(command, None, None))
    return subprocess.run(
        ["sh", "-c", line], input=json.dumps(event), capture_output=True, text=True, timeout=60, check=False
    )


def test_the_installed_command_blocks_when_ratchet_is_missing_or_crashes(codex: Codex, tmp_path: Path) -> None:
    event = codex.event("PreToolUse", "Bash", "ls", "c1")
    # Ratchet missing: the shell cannot find it; exit 2 with the reason on stderr is Codex's block.
    done = _installed(str(tmp_path / "no-such-ratchet"), event)
    assert done.returncode == 2 and "Ratchet's hook could not run (exit 127)" in done.stderr
    # Ratchet crashes without a word (exit 1, nothing on stderr): still exit 2, still a reason.
    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\nexit 1\n")
    crash.chmod(0o755)
    done = _installed(str(crash), event)
    assert done.returncode == 2 and "(exit 1)" in done.stderr and "did not run" in done.stderr
    # A working Ratchet answers on stdout and exits 0.
    env = {**os.environ}
    done = subprocess.run(
        ["sh", "-c", install.codex_fail_closed(" ".join(codex.argv()))],
        input=json.dumps(codex.event("PreToolUse", "Bash", "echo x > .env", "c2")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_stop_settles_calls_codex_turned_down_as_not_run(codex: Codex) -> None:
    reason, refused_id = codex.pre("Bash", "ls /")
    assert reason == ""
    reason, _ = codex.pre("Bash", "ls -l")
    # Codex's own approval (a person, its reviewer, or policy `never`) refused the first: the model got
    # an output, but no command ran, so there is no completed item and no PostToolUse.
    line = {"type": "response_item", "payload": {"type": "function_call_output", "call_id": refused_id, "output": "no"}}
    with codex.transcript.open("a") as out:
        out.write(json.dumps(line) + "\n")
    stop = codex.event("Stop", "", "", "")
    for key in ("tool_name", "tool_input", "tool_use_id"):
        stop.pop(key)
    assert codex.send(stop) == ""
    by_target = {r["target"]: r for r in codex.rows()}
    assert by_target["ls /"]["status"] == "declined" and by_target["ls /"]["sample"] is None
    assert by_target["ls /"]["reviewer"] is None  # nobody's answer on record
    assert by_target["ls -l"]["status"] == "allowed"  # no result yet: left for a later Stop


# -- the resident hook server answers Codex's events too -------------------------------------------


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _stop_servers(sockets: Path) -> None:
    """Stop the resident hook servers a test started (their pid is in their lock file)."""
    for lock in sockets.glob("*.lock"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(lock.read_text().strip()), signal.SIGTERM)


class FakeServer:
    """A socket at the hook's endpoint that answers every connection with `reply` after reading it."""

    def __init__(self, path: Path, reply: bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        path.chmod(0o600)
        secret = path.with_suffix(".secret")  # beside it, as the real server writes its secret
        secret.write_text("0" * 64)
        secret.chmod(0o600)
        self.sock.listen()
        self.reply = reply
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    pass
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


PROBE = """
import sys
from ratchet.entry import main
code = main(sys.argv[1:])
print("DIRECT" if "ratchet.codex.hooks" in sys.modules else "NOT-IN-PROCESS", file=sys.stderr)
sys.exit(code)
"""


def _probe(codex: Codex, env: dict[str, str], raw: str) -> tuple[str, str]:
    argv = [sys.executable, "-c", PROBE, *codex.argv()[1:]]
    done = subprocess.run(argv, input=raw, capture_output=True, text=True, timeout=120, check=True, env=env)
    return done.stdout.strip(), done.stderr


def test_the_resident_server_decides_codex_events_as_the_hook_process_does(codex: Codex, tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    env = {k: v for k, v in os.environ.items() if k not in hook_socket.KEYED_ENV}
    env[hook_socket.SOCKET_DIR_ENV], env[hook_socket.SERVER_ENV] = str(sockets), "on"
    events = [
        codex.event("PreToolUse", "Bash", "ls", "r1"),
        codex.event("PreToolUse", "Bash", "echo x > docs/r.md", "r2"),
        codex.event("PreToolUse", "apply_patch", PATCH, "r3"),
    ]
    first, err = _probe(codex, env, json.dumps(events[0]))  # no server yet: decided here, one started
    assert "</dev/null" in first and err.strip().endswith("DIRECT"), err
    ep = hook_socket.endpoint({"policies": str(codex.policies), "db": str(codex.db)}, env)
    try:
        _wait_for(Path(ep.socket))
        answers = []
        for event in events[1:]:
            out, err = _probe(codex, env, json.dumps(event))
            assert err.strip().endswith("NOT-IN-PROCESS"), err  # decided by the resident server
            answers.append(json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"])
        assert "queued this as draft" in answers[0] and "2 of its 3 file changes" in answers[1]
        ungoverned = codex.event("PreToolUse", "mcp__ratchet__write_file", "x", "r4")
        out, err = _probe(codex, env, json.dumps(ungoverned))
        assert out == "" and err.strip().endswith("NOT-IN-PROCESS")  # no answer, nothing imported or sent
    finally:
        _stop_servers(sockets)


def test_a_misbehaving_resident_server_denies_a_codex_patch(codex: Codex, tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in hook_socket.KEYED_ENV}
    env[hook_socket.SOCKET_DIR_ENV], env[hook_socket.SERVER_ENV] = str(sockets), "on"
    ep = hook_socket.endpoint({"policies": str(codex.policies), "db": str(codex.db)}, env)
    server = FakeServer(Path(ep.socket), b"not json")
    try:
        patch = "*** Begin Patch\n*** Add File: notes/n.md\n+n\n*** End Patch\n"  # autonomous: would run
        out, _ = _probe(codex, env, json.dumps(codex.event("PreToolUse", "apply_patch", patch, "m1")))
        answer = json.loads(out)["hookSpecificOutput"]
        assert answer["permissionDecision"] == "deny" and "fail closed" in answer["permissionDecisionReason"]
    finally:
        server.close()
