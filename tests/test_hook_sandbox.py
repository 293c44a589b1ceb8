"""Claude Code's own Bash runs under its class's sandbox profile: the PreToolUse hook rewrites an
allowed (or asked) command (`updatedInput`) so that it runs in Ratchet's sandbox. Shown with the real
hook process and the rewritten line run by bash as Claude Code runs it, and with the real Claude Code
(headless, a scripted model on loopback), its own sandbox on and off."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ratchet.claude_code import hook_socket
from ratchet.executors.sandbox import sandbox_status

from .helpers import git, make_repo, write_policy

POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2

[classes.reads]
description = "claims to read"
tools = ["run_command"]
argv = [["echo"], ["cat"], ["python3"]]
start = "autonomous"
floor = "autonomous"
allow_shell = true
sandbox = "read-only"

[classes.touches]
description = "writes the workspace"
tools = ["run_command"]
argv = [["touch"]]
start = "autonomous"
floor = "autonomous"
allow_shell = true

[classes.asked]
description = "asked each time"
tools = ["run_command"]
argv = [["mkdir"]]
start = "confirm"
ceiling = "confirm"
allow_shell = true
"""

# A command this policy trusts as a read that writes all the same: a misclassification, which the read-only
# profile holds. (Shell tricks such as `x='a[$(touch pwned)]'; echo $[x]` no longer pass as a read at all:
# test_bash_expansions.py.)
TRICK = "python3 w.py"
WRITER = "open('pwned', 'w').write('x')\n"
CLAUDE_ENV = "RATCHET_TEST_CLAUDE"  # the Claude Code executable for the headless tests (.ci/run sets it)
CLIENTS = Path(__file__).resolve().parent / "clients"


@pytest.fixture(autouse=True)
def _needs_a_sandbox() -> None:
    status = sandbox_status()
    assert status.available, f"these tests need the sandbox: {status.detail}"


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The hook's socket directory, in $HOME (not under /tmp, which every sandbox replaces anyway);
    the resident servers started there are stopped afterwards."""
    folder = Path.home() / f".ratchet-hk-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv(hook_socket.SOCKET_DIR_ENV, str(folder))
    # Decided in each hook process unless a test turns the resident server on (and waits for it): a
    # server started in the background after this fixture ended would outlive the test.
    monkeypatch.setenv(hook_socket.SERVER_ENV, "off")
    for name in ("CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ATTENDED", "RATCHET_HOOK_ATTENDED"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield folder
    finally:
        for lock in folder.glob("*.lock"):
            text = lock.read_text().strip()
            if text:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(text), signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


class Hook:
    """The real `ratchet hook claude-code`, and bash running what it allowed as Claude Code would."""

    def __init__(self, ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
        self.argv = [str(ratchet_bin), "hook", "claude-code", "--workspace", str(workspace)]
        self.argv += ["--policies", str(policies), "--db", str(db)]
        self.options = {"workspace": str(workspace), "policies": str(policies), "db": str(db)}
        self.workspace = workspace
        self.n = 0

    def event(self, command: str) -> dict[str, Any]:
        self.n += 1
        return {
            "session_id": "s1",
            "transcript_path": str(self.workspace.parent / "t.jsonl"),
            "cwd": str(self.workspace),
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "run it"},
            "tool_use_id": f"toolu_{self.n:03d}",
        }

    def pre(self, command: str) -> dict[str, Any]:
        event = self.event(command)
        done = subprocess.run(self.argv, input=json.dumps(event), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        decision: dict[str, Any] = json.loads(done.stdout)["hookSpecificOutput"]
        return decision

    def run(self, decision: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
        """What Claude Code runs: the rewritten input when the hook gave one, else the command as written."""
        line = decision.get("updatedInput", {}).get("command", command)
        return subprocess.run(
            ["bash", "-c", line], cwd=self.workspace, capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture
def hook(tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path, sockets: Path) -> Hook:
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    return Hook(ratchet_bin, workspace, write_policy(tmp_path / "policies", POLICY), db)


def test_an_allowed_read_runs_read_only_and_an_allowed_write_writes(hook: Hook, workspace: Path) -> None:
    (workspace / "w.py").write_text(WRITER)
    trick = hook.pre(TRICK)
    assert trick["permissionDecision"] == "allow" and "class reads" in trick["permissionDecisionReason"]
    ran = hook.run(trick, TRICK)
    assert not (workspace / "pwned").exists(), ran.stderr
    assert "Read-only file system" in ran.stderr
    touch = hook.pre("touch made.txt")
    assert touch["permissionDecision"] == "allow"
    assert hook.run(touch, "touch made.txt").returncode == 0 and (workspace / "made.txt").exists()
    # The command line runs unchanged inside: output, status and working directory are its own.
    (workspace / "sub").mkdir()
    cat = hook.pre("cat missing.txt; echo status=$?")
    out = subprocess.run(
        ["bash", "-c", cat["updatedInput"]["command"]], cwd=workspace / "sub", capture_output=True, text=True
    )
    assert out.stdout == "status=1\n" and "missing.txt" in out.stderr


def test_an_asked_command_is_rewritten_too_and_may_not_plant_client_config(hook: Hook, workspace: Path) -> None:
    asked = hook.pre("mkdir -p .claude && mkdir out")
    assert asked["permissionDecision"] == "ask" and "updatedInput" in asked
    ran = hook.run(asked, "mkdir -p .claude && mkdir out")
    assert ran.returncode != 0 and ".claude" in ran.stderr
    assert not (workspace / ".claude").exists() and (workspace / "out").is_dir()


def test_the_hook_socket_and_its_directory_cannot_be_reached_from_an_allowed_command(
    hook: Hook, sockets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hook_socket.SERVER_ENV, "on")
    hook.pre("echo warm")  # starts the resident server
    deadline = time.monotonic() + 60
    while not list(sockets.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (sock,) = sockets.glob("*.sock")
    # The same uid outside any sandbox still gets no answer without the server's secret.
    ep = hook_socket.endpoint(hook.options)
    assert Path(ep.socket) == sock
    setup = hook_socket.setup(ep.argv, os.environ)
    event = json.dumps(hook.event("echo forged")).encode()
    for forged in ("", "0" * 64):
        with hook_socket.connect(ep) as conn, pytest.raises(ValueError):
            hook_socket.exchange(conn, event, True, setup, secret=forged)
    with hook_socket.connect(ep) as conn:
        answer = json.loads(hook_socket.exchange(conn, event, True, setup, secret=hook_socket.read_secret(ep)))
    assert answer["hookSpecificOutput"]["permissionDecision"] == "allow"
    (hook.workspace / "probe.py").write_text(
        "import os, socket\n"
        f"print(sorted(os.listdir({str(sockets)!r})) if os.path.isdir({str(sockets)!r}) else 'HIDDEN')\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(sock)!r}); print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    probe = "python3 probe.py"
    decision = hook.pre(probe)
    assert decision["permissionDecision"] == "allow", decision["permissionDecisionReason"]
    ran = hook.run(decision, probe)
    assert ran.stdout.splitlines() == ["[]", "FileNotFoundError"], ran.stdout + ran.stderr
    # Unsandboxed, the same probe reaches it: the test would see a socket that was there.
    bare = subprocess.run(
        ["bash", "-c", probe], cwd=hook.workspace, capture_output=True, text=True, timeout=60, check=False
    )
    assert "CONNECTED" in bare.stdout, bare.stdout + bare.stderr


# -- the real Claude Code ---------------------------------------------------------------------------


def _claude() -> Path | None:
    given = os.environ.get(CLAUDE_ENV)
    return Path(given) if given else None


@pytest.fixture
def claude() -> Path:
    found = _claude()
    if found is None:
        if os.environ.get("CI"):
            raise AssertionError(f"Claude Code is needed here: set {CLAUDE_ENV} or run .ci/run, which installs it")
        pytest.skip(f"Claude Code not installed (set {CLAUDE_ENV} to its executable)")
    return found


@pytest.mark.parametrize("own_sandbox", [False, True], ids=["claude-sandbox-off", "claude-sandbox-on"])
def test_in_the_real_claude_code_a_read_cannot_write_and_a_write_can(
    own_sandbox: bool, tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path, claude: Path, sockets: Path
) -> None:
    if own_sandbox and shutil.which("socat") is None:
        raise AssertionError("Claude Code's sandbox needs socat (apt-get install socat; .ci/run installs it)")
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    (workspace / "w.py").write_text(WRITER)
    git(workspace, "add", "w.py")
    git(workspace, "commit", "-q", "-m", "init")
    policies = write_policy(tmp_path / "policies", POLICY)
    hook = f"{ratchet_bin} hook claude-code --workspace {workspace} --policies {policies} --db {db}"
    events = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop")
    settings: dict[str, Any] = {
        "hooks": {
            name: [
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": hook + (" || exit 2" if name == "PreToolUse" else "")}],
                }
            ]
            for name in events
        },
        "sandbox": {"enabled": own_sandbox, "allowUnsandboxedCommands": False, "failIfUnavailable": own_sandbox},
    }
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text(json.dumps(settings))
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    # Ratchet's sandbox nests inside Claude Code's only where the user lets commands make namespaces.
    (home / ".claude" / "settings.json").write_text(json.dumps({"sandbox": {"allowNestedUserNamespaces": True}}))
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {"name": "Bash", "input": {"command": TRICK, "description": "run a script"}},
                {"name": "Bash", "input": {"command": "touch made.txt", "description": "make a file"}},
                {"text": "done"},
            ]
        )
    )
    log, port_file = tmp_path / "model.jsonl", tmp_path / "port"
    model = subprocess.Popen(
        [
            sys.executable,
            str(CLIENTS / "fake_anthropic.py"),
            "--script",
            str(script),
            "--log",
            str(log),
            "--port-file",
            str(port_file),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_CODE_", "ANTHROPIC_"))}
        env.update(
            HOME=str(home),
            ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port_file.read_text()}",
            ANTHROPIC_API_KEY="sk-ant-dummy",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_TELEMETRY="1",
            DISABLE_AUTOUPDATER="1",
        )
        done = subprocess.run(
            [str(claude), "-p", "do the task", "--output-format", "json", "--model", "claude-sonnet-4-5"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        model.terminate()
        model.wait(timeout=10)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [r["text"] for line in log.read_text().splitlines() for r in json.loads(line).get("tool_results", [])]
    assert len(results) == 2, results
    assert not (workspace / "pwned").exists(), results[0]
    assert "Read-only file system" in results[0], results[0]
    assert (workspace / "made.txt").exists(), results[1]


def test_a_bash_call_whose_sandbox_cannot_be_planned_is_denied_not_run_bare(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path, sockets: Path
) -> None:
    """A `.git` that is a symbolic link (a command could swap it) cannot be protected: the allowed class's
    call is refused with the reason, never allowed to run outside the sandbox."""
    real = tmp_path / "elsewhere"
    make_repo(real, identity=("Dev", "dev@example.com"))
    (workspace / ".git").symlink_to(real / ".git")
    hook = Hook(ratchet_bin, workspace, write_policy(tmp_path / "policies", POLICY), db)
    decision = hook.pre("touch made.txt")
    assert decision["permissionDecision"] == "deny", decision
    assert "symbolic link" in decision["permissionDecisionReason"] and "updatedInput" not in decision
    assert not (workspace / "made.txt").exists()
