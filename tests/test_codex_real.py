"""The real Codex (`codex exec`, scripted model turns on loopback) with `ratchet install codex`'s hooks
and MCP server: its own shell and apply_patch are decided by Ratchet's gate, the agent gets its
change through Ratchet's write_file once the person approves, and nothing the person did not answer
is recorded as theirs. A hook that cannot run blocks; one that Codex times out does not (documented).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ratchet.codex import app as codex_app

from .helpers import CODEX_POLICY as POLICY
from .helpers import SANDBOX_POLICY, CodexRun, codex_binary, rows, tool_outputs, write_policy

PATCH = (
    "*** Begin Patch\n*** Update File: src/app.py\n@@\n-x = 1\n+x = 2\n"
    "*** Update File: .env\n@@\n-SECRET=1\n+SECRET=2\n*** End Patch\n"
)


@pytest.fixture
def codex_run(tmp_path: Path) -> CodexRun:
    return CodexRun(codex_binary(), tmp_path / "codex")


@pytest.fixture
def project(workspace: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    for rel, text in {"src/app.py": "x = 1\n", ".env": "SECRET=1\n", "docs/.keep": ""}.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    return workspace


def _install(ratchet_bin: Path, codex_run: CodexRun, project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(ratchet_bin), "install", "codex", "--scope", "project", "--workspace", str(project), *extra],
        env=codex_run.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_codex_shell_and_patches_go_through_the_gate(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    _install(ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply")
    script = [
        {"name": "exec_command", "arguments": {"cmd": "ls"}},
        {"name": "exec_command", "arguments": {"cmd": "echo x > docs/a.md"}},
        {"type": "custom_tool_call", "name": "apply_patch", "input": PATCH},
        {"type": "tool_search_call", "arguments": {"query": "ratchet write_file", "limit": 20}},
        {"namespace": "mcp__ratchet", "name": "write_file", "arguments": {"path": "docs/a.md", "content": "x\n"}},
        {"text": "done"},
    ]
    # --trust: the project's .codex/ layer loads; the hooks are trusted for this run only. Codex's own sandbox
    # is off: an allowed command runs in Ratchet's, under its class's profile, which cannot start inside Codex's.
    outputs, done = codex_run.exec(
        project, script, "--trust", "--dangerously-bypass-hook-trust", "-s", "danger-full-access"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shell = tool_outputs(outputs, "exec_command")
    assert "Process exited with code 0" in shell[0] and "src" in shell[0]  # ls ran
    assert "Command blocked by PreToolUse hook: Ratchet queued this as draft" in shell[1]
    assert "docs/a.md (class docs at confirm)" in shell[1]
    [patch] = tool_outputs(outputs, "apply_patch")
    assert "Command blocked by PreToolUse hook" in patch and "2 of its 2 file changes need the person" in patch
    assert "edit_file src/app.py: Ratchet queued this as draft" in patch and "Stopped: edit_file `.env`" in patch
    [written] = tool_outputs(outputs, "write_file")
    assert "draft" in written  # Codex exec declined Ratchet's question itself: queued, not refused
    assert (project / "src/app.py").read_text() == "x = 1\n" and (project / ".env").read_text() == "SECRET=1\n"
    assert not (project / "docs/a.md").exists()

    recorded = {(r["tool"], r["target"]): dict(r) for r in rows(db, "SELECT * FROM actions ORDER BY id")}
    assert recorded[("run_command", "ls")]["status"] == "executed"  # its outcome, from PostToolUse
    assert recorded[("run_command", "ls")]["sample"] == "success"
    assert recorded[("run_command", "echo x > docs/a.md")]["status"] == "draft"
    assert recorded[("edit_file", "src/app.py")]["status"] == "draft"
    assert recorded[("edit_file", ".env")]["status"] == "blocked"
    mcp = recorded[("write_file", "docs/a.md")]
    assert mcp["status"] == "draft" and mcp["evidence"] == "unanswered"  # nobody answered: not a person's
    assert all(r["session_id"].startswith("codex-") for r in recorded.values() if r["tool"] != "write_file")

    # The person approves the agent's write_file from the CLI: it runs, as the person's answer.
    approved = subprocess.run(
        [
            str(ratchet_bin),
            "approve",
            str(mcp["id"]),
            "--workspace",
            str(project),
            "--policies",
            str(policies),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert approved.returncode == 0, approved.stderr
    assert (project / "docs/a.md").read_text() == "x\n"
    [after] = rows(db, "SELECT status, review_channel FROM actions WHERE id = ?", mcp["id"])
    assert (after["status"], after["review_channel"]) == ("executed", "cli")
    # No answer a person did not give is on record as a person's.
    assert not rows(db, "SELECT id FROM actions WHERE review_channel = 'elicitation' AND evidence = 'counted'")


def test_a_hook_that_cannot_run_blocks_and_one_codex_times_out_does_not(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path
) -> None:
    # Ratchet missing: the installed command exits 2 with its reason, which Codex takes as a block.
    _install(ratchet_bin, codex_run, project, "--command", str(tmp_path / "gone" / "ratchet"), "--apply")
    script = [{"name": "exec_command", "arguments": {"cmd": "echo x > docs/missing.md"}}, {"text": "done"}]
    outputs, done = codex_run.exec(
        project, script, "--trust", "--dangerously-bypass-hook-trust", "-s", "workspace-write"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [out] = tool_outputs(outputs, "exec_command")
    assert out.startswith("Command blocked by PreToolUse hook:") and "Ratchet's hook could not run (exit 127)" in out
    assert not (project / "docs/missing.md").exists()

    # A hook Codex stops at its timeout lets the call through: Codex fails open, and no hook can close that.
    slow = tmp_path / "slow-hook"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    hooks = {"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": str(slow), "timeout": 1}]}]}}
    (project / ".codex" / "hooks.json").write_text(json.dumps(hooks))
    script = [{"name": "exec_command", "arguments": {"cmd": "echo x > docs/late.md"}}, {"text": "done"}]
    outputs, done = codex_run.exec(
        project, script, "--trust", "--dangerously-bypass-hook-trust", "-s", "workspace-write"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (project / "docs/late.md").read_text() == "x\n"


def test_check_reports_trust_and_trusted_hooks_run_without_any_bypass(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "policies", POLICY)
    _install(ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply")
    check = [str(ratchet_bin), "install", "codex", "--check", "--workspace", str(project)]

    def checked() -> subprocess.CompletedProcess[str]:
        return subprocess.run(check, env=codex_run.env(), capture_output=True, text=True, timeout=120, check=False)

    done = checked()  # installed, but neither the project nor the hooks are trusted yet
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PreToolUse hook: in" in done.stdout and "NOT LOADED" in done.stdout
    assert "project: NOT trusted" in done.stdout and "Codex's shell and apply_patch: NO" in done.stdout

    # Untrusted hooks do not run: Codex's shell writes unchecked (what --check warns of).
    script = [{"name": "exec_command", "arguments": {"cmd": "echo x > docs/unchecked.md"}}, {"text": "done"}]
    outputs, _ = codex_run.exec(project, script, "--trust", "-s", "workspace-write")
    assert (project / "docs/unchecked.md").exists()
    done = checked()  # --trust trusted the project: its hooks load now, still untrusted
    assert done.returncode == 1 and done.stdout.count("trust untrusted") == 3, done.stdout
    assert "project: trusted" in done.stdout and "open /hooks and trust" in done.stdout

    # Another hook in the same file, never reviewed: trusting Ratchet's must leave it untrusted.
    hooks_file = project / ".codex" / "hooks.json"
    data = json.loads(hooks_file.read_text())
    data["hooks"]["PreToolUse"].append({"hooks": [{"type": "command", "command": "echo planted"}]})
    hooks_file.write_text(json.dumps(data))
    # Trusted as Codex's /hooks review trusts them (the hash Codex computes, through its app-server).
    trusted = _install(
        ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply", "--trust-hooks"
    )
    assert "Trusted 3 of Ratchet's hooks" in trusted.stdout, trusted.stdout
    state = codex_app.read_state(codex_run.binary, project, env=codex_run.env())
    assert [h["trustStatus"] for h in state.hooks if h["command"] == "echo planted"] == ["untrusted"]
    done = checked()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("trust trusted") == 3 and "blocks when Ratchet cannot run" in done.stdout
    assert "project: trusted" in done.stdout and "Codex's shell and apply_patch: yes" in done.stdout
    assert "sandbox mode: not set" in done.stdout and "approval policy:" in done.stdout

    script = [{"name": "exec_command", "arguments": {"cmd": "echo x > docs/checked.md"}}, {"text": "done"}]
    outputs, done = codex_run.exec(project, script, "-s", "workspace-write")  # no bypass of any kind
    assert done.returncode == 0, done.stderr[-2000:]
    [out] = tool_outputs(outputs, "exec_command")
    assert "Ratchet queued this as draft" in out and not (project / "docs/checked.md").exists()


def test_codex_auto_review_answers_its_own_approval_and_nothing_of_it_is_a_person_answer(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path, db: Path
) -> None:
    """`--approve-for-me`: Codex's reviewer (a model turn) answers Codex's own approval of an escalated
    command that Ratchet allowed; here it cannot (the scripted model's verdict is not its JSON) and the
    command does not run. Ratchet records the call as not run, with no reviewer and no sample."""
    policies = write_policy(tmp_path / "policies", POLICY)
    _install(ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply")
    escalated = {"cmd": "ls", "sandbox_permissions": "require_escalated", "justification": "list the project"}
    script = [{"name": "exec_command", "arguments": escalated}, {"text": "done"}]
    outputs, done = codex_run.exec(project, script, "--trust", "--dangerously-bypass-hook-trust", "--approve-for-me")
    assert done.returncode == 0, done.stderr[-2000:]
    [out] = tool_outputs(outputs, "exec_command")
    assert "automatic approval review" in out  # Codex's reviewer, not a person, answered
    [row] = rows(db, "SELECT * FROM actions WHERE target = 'ls'")
    assert row["status"] == "declined" and row["sample"] is None  # settled at Stop: it did not run
    assert row["reviewer"] is None and row["review_channel"] is None and row["evidence"] is None


def test_a_command_allowed_at_autonomous_cannot_be_typed_into_later(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path, db: Path
) -> None:
    """Codex's write_stdin feeds a running command and fires no hook: a script allowed at autonomous
    that reads its input (`python3 tools/repl.py` here) would run whatever is typed into it later.
    Ratchet allows it with its input closed, so it has read nothing and ended before anything can be
    typed. (A bare interpreter or shell reading code from its input is already not autonomous.)"""
    policies = write_policy(tmp_path / "policies", POLICY)
    _install(ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply")
    (project / "tools").mkdir()
    (project / "tools/repl.py").write_text("import sys\nexec(sys.stdin.readline())\n")
    typed = "open('docs/typed.md', 'w').write('x')\n"
    command = {"cmd": "python3 tools/repl.py", "tty": True, "yield_time_ms": 1000}
    script = [
        {"name": "exec_command", "arguments": command},
        {"name": "write_stdin", "arguments": {"session_id": "SESSIONID", "chars": typed, "yield_time_ms": 1000}},
        {"text": "done"},
    ]
    outputs, done = codex_run.exec(
        project, script, "--trust", "--dangerously-bypass-hook-trust", "-s", "danger-full-access"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (project / "docs/typed.md").exists()
    [started] = tool_outputs(outputs, "exec_command")
    assert "Process exited with code 0" in started  # it read an empty input and ended


def test_codex_shell_runs_in_ratchets_sandbox_only_outside_codexs_own(
    ratchet_bin: Path, codex_run: CodexRun, project: Path, tmp_path: Path, db: Path
) -> None:
    """Under `--sandbox danger-full-access` an allowed command runs under its class's profile: a
    read-classed one that writes fails, a write-classed one writes. Inside Codex's own sandbox
    (`workspace-write`) Ratchet's cannot start (no new namespaces there): nothing runs, and the
    output names the Codex setting that makes it work."""
    policies = write_policy(tmp_path / "policies", SANDBOX_POLICY)
    _install(ratchet_bin, codex_run, project, "--policies", str(policies), "--db", str(db), "--apply")
    (project / "w.py").write_text("open('by-reads', 'w').write('x')\n")
    script = [
        {"name": "exec_command", "arguments": {"cmd": "python3 w.py"}},
        {"name": "exec_command", "arguments": {"cmd": "touch by-touches"}},
        {"text": "done"},
    ]
    flags = ("--trust", "--dangerously-bypass-hook-trust", "-s")
    outputs, done = codex_run.exec(project, script, *flags, "workspace-write")
    assert done.returncode == 0, done.stderr[-2000:]
    for out in tool_outputs(outputs, "exec_command"):
        assert "Ratchet's sandbox could not start inside Codex's own sandbox" in out, out
        assert "--sandbox danger-full-access" in out
    assert not (project / "by-reads").exists() and not (project / "by-touches").exists()
    outputs, done = codex_run.exec(project, script, *flags, "danger-full-access")
    assert done.returncode == 0, done.stderr[-2000:]
    reads, touches = tool_outputs(outputs, "exec_command")
    assert "Read-only file system" in reads and not (project / "by-reads").exists(), reads
    assert "Process exited with code 0" in touches and (project / "by-touches").exists(), touches
