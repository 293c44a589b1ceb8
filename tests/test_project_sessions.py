"""Evidence from real sessions: reads that find nothing are information, and a server started from a
subdirectory of the project is the project's server (its policies, its database)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import LEVELS_POLICY, write_policy


def _status(ratchet_bin: Path, workspace: Path, db: Path, cls: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(ratchet_bin), "status", "--workspace", str(workspace), "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = next(c for c in json.loads(done.stdout)["classes"] if c["action_class"] == cls)
    return found


def _init(ratchet_bin: Path, workspace: Path, db: Path) -> None:
    init = [str(ratchet_bin), "init", "--workspace", str(workspace), "--db", str(db)]
    done = subprocess.run(init, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _hook(ratchet_bin: Path, workspace: Path, db: Path, event: dict[str, Any]) -> str:
    done = subprocess.run(
        [str(ratchet_bin), "hook", "claude-code", "--workspace", str(workspace), "--db", str(db)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.asyncio
async def test_reads_that_find_nothing_leave_the_read_only_class_where_it_was(
    ratchet_bin: Path, workspace: Path, db: Path
) -> None:
    """With the starter policies: `cat missing.txt` and `ls missing/` fail, over MCP and through the
    hook's PostToolUseFailure, many times in one session; read-only-run keeps its level, gains no
    failure sample and is never halted."""
    _init(ratchet_bin, workspace, db)
    before = _status(ratchet_bin, workspace, db, "read-only-run")
    assert before["level"] == "autonomous"
    server = build_server(ServerConfig(workspace, None, db))
    async with Client(server) as client:
        for _ in range(4):
            for argv in (["cat", "missing.txt"], ["ls", "missing/"]):
                result = await client.call_tool("run_command", {"argv": argv})
                assert result.structured_content is not None
                assert result.structured_content["status"] == "failed", result.structured_content
        # Not halted by a streak of failures: the next read still runs at once.
        (workspace / "here.txt").write_text("hello\n")
        ok = await client.call_tool("run_command", {"argv": ["cat", "here.txt"]})
        assert ok.structured_content is not None and ok.structured_content["status"] == "executed"

    common = {"session_id": "s1", "transcript_path": str(workspace / "t.jsonl"), "cwd": str(workspace)}
    common["permission_mode"] = "default"
    for n, command in enumerate(["cat missing.txt", "ls missing/", "cat nope", "ls nope/"]):
        tool_use_id = f"toolu_{n}"
        tool_input = {"command": command, "description": command}
        pre = {**common, "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": tool_input}
        answer = json.loads(_hook(ratchet_bin, workspace, db, {**pre, "tool_use_id": tool_use_id}))
        assert answer["hookSpecificOutput"]["permissionDecision"] == "allow"
        failure = {**common, "hook_event_name": "PostToolUseFailure", "tool_name": "Bash", "tool_input": tool_input}
        _hook(ratchet_bin, workspace, db, {**failure, "tool_use_id": tool_use_id, "error": "Exit code 1"})

    after = _status(ratchet_bin, workspace, db, "read-only-run")
    assert after["level"] == "autonomous"
    # The one successful read is the only sample: the failed ones were information.
    assert (after["samples"], after["successes"]) == (before["samples"] + 1, before["successes"] + 1)


@pytest.mark.asyncio
async def test_a_failed_build_still_counts(ratchet_bin: Path, workspace: Path, db: Path, tmp_path: Path) -> None:
    """The other side of the rule: a class that counts execution failures gets a failure sample."""
    policies = write_policy(
        tmp_path / "p",
        '[classes.builds]\ntools = ["run_command"]\nargv = [["false"]]\nstart = "autonomous"\n',
    )
    server = build_server(ServerConfig(workspace, policies, db))
    async with Client(server) as client:
        result = await client.call_tool("run_command", {"argv": ["false"]})
        assert result.structured_content is not None and result.structured_content["status"] == "failed"
        levels = await client.call_tool("trust_levels", {})
    assert levels.structured_content is not None
    builds = next(c for c in levels.structured_content["classes"] if c["action_class"] == "builds")
    assert (builds["samples"], builds["successes"]) == (1, 0)


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    write_policy(proj / ".ratchet" / "policies", LEVELS_POLICY)
    return proj


@pytest.mark.asyncio
async def test_a_server_started_in_a_subdirectory_serves_the_project(ratchet_bin: Path, tmp_path: Path) -> None:
    proj = _project(tmp_path)
    params = StdioServerParameters(
        command=str(ratchet_bin),
        args=["serve", "--workspace", "."],  # what the installed Codex entry says
        env={"PATH": os.environ["PATH"]},
        cwd=str(proj / "src" / "deep"),
    )
    async with Client(params) as client:
        written = await client.call_tool("write_file", {"path": "auto/x.txt", "content": "x\n"})
    assert written.structured_content is not None
    assert written.structured_content["status"] == "executed", written.structured_content
    # The project's policy decided it (class `auto` exists only there), and it landed at the root.
    assert written.structured_content["action_class"] == "auto"
    assert (proj / "auto" / "x.txt").read_text() == "x\n"
    assert (proj / ".ratchet" / "ratchet.db").exists()
    assert not (proj / "src" / ".ratchet").exists() and not (proj / "src" / "deep" / ".ratchet").exists()


def test_the_cli_says_which_project_root_it_chose(ratchet_bin: Path, tmp_path: Path) -> None:
    proj = _project(tmp_path)
    done = subprocess.run(
        [str(ratchet_bin), "lint"], capture_output=True, text=True, timeout=60, check=False, cwd=proj / "src"
    )
    assert done.returncode == 0, done.stderr
    assert f"workspace {proj}" in done.stderr and "project root" in done.stderr
    assert done.stdout.startswith(f"{proj / '.ratchet' / 'policies'}: ok: 5 classes")
    # An absolute workspace is taken as given, with nothing said.
    absolute = subprocess.run(
        [str(ratchet_bin), "lint", "--workspace", str(proj / "src")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "project root" not in absolute.stderr


def test_install_codex_project_scope_writes_the_projects_config(
    ratchet_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _project(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("CODEX_HOME", None)
    done = subprocess.run(
        [str(ratchet_bin), "install", "codex", "--scope", "project", "--apply"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=proj / "src",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    config = (proj / ".codex" / "config.toml").read_text()
    assert "[mcp_servers.ratchet]" in config and 'approval_mode = "approve"' in config
    assert not (home / ".codex").exists()


def test_a_ratchet_directory_planted_below_the_repository_root_is_not_taken(ratchet_bin: Path, tmp_path: Path) -> None:
    """A test run may write `src/.ratchet/policies/` (the sandbox keeps only the root's `.ratchet/`
    read-only): a server started in `src` must not take it for the team's policy."""
    proj = _project(tmp_path)
    evil = '[classes.everything]\ntools = ["write_file", "run_command"]\nstart = "autonomous"\nallow_shell = true\n'
    write_policy(proj / "src" / ".ratchet" / "policies", evil)
    done = subprocess.run(
        [str(ratchet_bin), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=proj / "src" / "deep",
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{proj / 'src' / '.ratchet'} lies inside the repository {proj}" in done.stderr
    assert not (proj / "src" / ".ratchet" / "ratchet.db").exists()  # nothing opened, nothing created
    # Named explicitly, it is the human's choice.
    explicit = subprocess.run(
        [str(ratchet_bin), "lint", "--workspace", str(proj / "src")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert explicit.returncode == 0 and "ok: 1 classes" in explicit.stdout, explicit.stderr
