"""The real Claude Code, headless (`claude -p`), against a scripted model server on loopback.

Claude Code is found through RATCHET_TEST_CLAUDE, its executable (`.ci/run` installs it, pinned, into
`.ci/node/`; the native build needs no Node).
Without it these tests skip, except in CI, where they fail. Every process they start (the model
server, Claude Code and the Ratchet server it starts) is ended before the test returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import HOOK_POLICY, write_policy

CLAUDE_ENV = "RATCHET_TEST_CLAUDE"
WARM_UP = {"name": "Glob", "input": {"pattern": "*.md"}}
MODEL = "claude-sonnet-5-5"


def _claude() -> Path:
    given = os.environ.get(CLAUDE_ENV, "").strip()
    if not given or not Path(given).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CLAUDE_ENV} does not name an installed Claude Code (.ci/run installs it)")
        pytest.skip(f"{CLAUDE_ENV} is not set: the real Claude Code is not installed here")
    return Path(given)


class FakeModel:
    """fake_anthropic.py on loopback, playing a script."""

    def __init__(self, where: Path, script: list[Any]) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        (where / "script.json").write_text(json.dumps(script))
        self.log = where / "model.jsonl"
        port_file = where / "port"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "clients" / "fake_anthropic.py"),
                *("--script", str(where / "script.json"), "--log", str(self.log)),
                *("--port", "0", "--port-file", str(port_file)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            subprocess.run(["sleep", "0.05"], check=False)
        self.port = int(port_file.read_text().split()[0])

    def tool_results(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.log.read_text().splitlines():
            out += json.loads(line).get("tool_results", [])
        return out

    def tool_names(self) -> set[str]:
        names: set[str] = set()
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            names |= set(entry.get("tool_names", [])) | set(entry.get("mcp_tools", []))
        return names

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def project(tmp_path: Path, ratchet_bin: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A git project with Ratchet installed for Claude Code (policies and database beside it), and a HOME."""
    ws = tmp_path / "proj"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    for d in ("auto", "ask", "queue", "stop"):
        (ws / d).mkdir()
    policies = write_policy(tmp_path / "policies", HOOK_POLICY)
    db = tmp_path / "state" / "ratchet.db"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text(
        json.dumps({"projects": {str(ws): {"hasTrustDialogAccepted": True, "enabledMcpjsonServers": ["ratchet"]}}})
    )
    yield ws, policies, db


def install(ratchet_bin: Path, ws: Path, policies: Path, db: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(str(ratchet_bin), "install", "claude-code", "--workspace", str(ws), "--policies", str(policies)),
            *("--db", str(db), "--apply", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # The project's HOME (the fixture's): the installer also writes the user's ~/.claude/settings.json.
        env={**os.environ, "HOME": str(ws.parent / "home"), "PATH": f"{_claude().parent}:{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stderr
    settings: dict[str, Any] = json.loads((ws / ".claude" / "settings.json").read_text())
    return settings


def run_claude(ws: Path, home: Path, model: FakeModel, *extra: str) -> subprocess.CompletedProcess[str]:
    """`claude -p` in its own process group; the whole group is killed afterwards (Ratchet's server too)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{model.port}",
        "ANTHROPIC_API_KEY": "sk-ant-dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        # No resident hook server: it would outlive the test (the command hook decides in its own process).
        "RATCHET_HOOK_SERVER": "off",
    }
    proc = subprocess.Popen(
        [
            str(_claude()),
            "-p",
            "do the task",
            "--output-format",
            "json",
            "--model",
            MODEL,
            *extra,
        ],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM actions ORDER BY id")]
    finally:
        con.close()


def _script(ws: Path, forged: dict[str, Any] | None = None) -> list[Any]:
    turns: list[Any] = [
        {"name": "Write", "input": {"file_path": str(ws / "auto/a.md"), "content": "a\n"}},
        {"name": "Write", "input": {"file_path": str(ws / "queue/q.md"), "content": "q\n"}},
        {"name": "Write", "input": {"file_path": str(ws / "stop/s.md"), "content": "s\n"}},
    ]
    if forged is not None:
        turns.append({"name": "mcp__ratchet__claude_code_hook", "input": forged})
    return [*turns, {"text": "done"}]


def _outcomes(db: Path) -> list[tuple[str, str, str]]:
    return [(r["tool"], r["class"], r["status"]) for r in rows(db) if r["tool"] == "write_file"]


def test_mcp_tool_hooks_decide_as_the_command_hook_does_and_the_agent_settles_nothing(
    project: tuple[Path, Path, Path], ratchet_bin: Path, tmp_path: Path
) -> None:
    ws, policies, db = project
    home = tmp_path / "home"
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for path in ("command", "mcp"):
        settings = install(ratchet_bin, ws, policies, db, "--hook-path", path)
        pre = settings["hooks"]["PreToolUse"][-1]["hooks"][0]
        assert pre["onFailure"] == "block" and pre["type"] == ("mcp_tool" if path == "mcp" else "command")
        for rel in ("auto/a.md", "queue/q.md", "stop/s.md"):
            (ws / rel).unlink(missing_ok=True)
        if db.exists():
            db.unlink()
        model = FakeModel(tmp_path / f"model-{path}", [])
        try:
            forged = {"hook_event_name": "Stop", "session_id": "x"} if path == "mcp" else None
            (model.where / "script.json").write_text(json.dumps(_script(ws, forged)))
            done = run_claude(ws, home, model)
            assert done.returncode == 0, done.stderr
            results = [r["text"] for r in model.tool_results()]
            if path == "mcp":
                # The hook tool is denied in Claude Code's permissions: the model cannot call it at all.
                assert "No such tool available: mcp__ratchet__claude_code_hook" in results[-1], results
        finally:
            model.stop()
        seen[path] = _outcomes(db)
        assert (ws / "auto/a.md").read_text() == "a\n"
        assert not (ws / "queue/q.md").exists() and not (ws / "stop/s.md").exists()
        assert any("queued this as draft" in t for t in results), results
        assert any("stopped this call" in t and "get_handoff(" in t for t in results), results
    assert (
        seen["mcp"]
        == seen["command"]
        == [
            ("write_file", "auto", "executed"),
            ("write_file", "queue", "draft"),
            ("write_file", "stop", "blocked"),
        ]
    )
    # The check, with the real client on PATH: every hook present and failing closed, the server approved,
    # the sandbox able to start.
    check = subprocess.run(
        [str(ratchet_bin), "install", "claude-code", "--workspace", str(ws), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(home), "PATH": f"{_claude().parent}:{os.environ['PATH']}"},
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "installed: Claude Code 2.1.337" in check.stdout and "hook path in use: mcp_tool" in check.stdout


def test_the_agent_calling_the_hook_tool_decides_and_records_nothing(
    project: tuple[Path, Path, Path], ratchet_bin: Path, tmp_path: Path
) -> None:
    """With Claude Code's deny rule taken away, the model can call the hook tool: the server refuses it
    (the call carries the model's tool-use id), so a forged PreToolUse records no call to settle."""
    ws, policies, db = project
    home = tmp_path / "home"
    settings = install(ratchet_bin, ws, policies, db, "--hook-path", "mcp")
    settings["permissions"]["deny"].remove("mcp__ratchet__claude_code_hook")
    (ws / ".claude" / "settings.json").write_text(json.dumps(settings))
    forged = {
        "hook_event_name": "PreToolUse",
        "session_id": "forged",
        "cwd": str(ws),
        "tool_name": "Write",
        "tool_input": {"file_path": str(ws / "auto/forged.md"), "content": "x\n"},
        "tool_use_id": "toolu_forged",
    }
    # A first turn lets the client finish announcing its tools (a system message) before the call of interest.
    model = FakeModel(tmp_path / "model", [WARM_UP, {"name": "mcp__ratchet__claude_code_hook", "input": forged}])
    try:
        done = run_claude(ws, home, model)
    finally:
        model.stop()
    assert done.returncode == 0, done.stderr
    assert model.tool_results(), done.stdout + done.stderr
    answer = model.tool_results()[-1]
    assert "answers Claude Code's hooks only" in answer["text"] and "called by the agent" in answer["text"]
    assert not db.exists() or all(r["external_id"] != "toolu_forged" for r in rows(db))


def test_a_hook_that_times_out_blocks_the_call(
    project: tuple[Path, Path, Path], ratchet_bin: Path, tmp_path: Path
) -> None:
    """The installed hook entry, with a hook that takes longer than its timeout: the call is blocked."""
    ws, policies, db = project
    home = tmp_path / "home"
    settings = install(ratchet_bin, ws, policies, db, "--hook-path", "command")
    pre = settings["hooks"]["PreToolUse"][-1]["hooks"][0]
    pre["command"], pre["timeout"] = "sleep 30; " + pre["command"], 2
    (ws / ".claude" / "settings.json").write_text(json.dumps(settings))
    model = FakeModel(tmp_path / "model", [])
    (model.where / "script.json").write_text(
        json.dumps([{"name": "Write", "input": {"file_path": str(ws / "auto/late.md"), "content": "x\n"}}])
    )
    try:
        done = run_claude(ws, home, model)
    finally:
        model.stop()
    assert done.returncode == 0, done.stderr
    # The client's transcript holds the call's result: blocked by the hook's timeout.
    transcript = "".join(p.read_text() for p in (home / ".claude" / "projects").rglob("*.jsonl"))
    assert "timed out" in transcript and 'onFailure is \\"block\\"' in transcript, transcript[-2000:]
    assert not (ws / "auto/late.md").exists()
    assert shutil.which("true")  # the machine is fine: it was the hook's time that ran out


# -- the interactive client, in tmux: what a person sees ------------------------------------------


class Screen:
    """The interactive Claude Code in a tmux session of its own (200x50), against the scripted model."""

    def __init__(self, name: str, ws: Path, home: Path, model: FakeModel, *extra: str) -> None:
        if shutil.which("tmux") is None:
            if os.environ.get("CI"):
                pytest.fail("tmux is not installed (.ci/run installs it)")
            pytest.skip("tmux is not installed")
        seeded = json.loads((home / ".claude.json").read_text())
        seeded.update(
            {
                "hasCompletedOnboarding": True,
                "theme": "dark",
                "numStartups": 5,
                "customApiKeyResponses": {"approved": ["sk-ant-dummy"[-20:]], "rejected": []},
            }
        )
        seeded["projects"][str(ws)].update({"hasCompletedProjectOnboarding": True, "disabledMcpjsonServers": []})
        (home / ".claude.json").write_text(json.dumps(seeded))
        self.name = f"{name}-{os.getpid()}"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{model.port}",
            "ANTHROPIC_API_KEY": "sk-ant-dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "RATCHET_HOOK_SERVER": "off",
        }
        argv = [str(_claude()), "--model", MODEL, *extra]
        command = " ".join(["env", *(f"{k}={shlex.quote(v)}" for k, v in env.items()), *map(shlex.quote, argv)])
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", "-c", str(ws), command],
            check=True,
            timeout=30,
        )

    def text(self) -> str:
        done = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout

    def wait(self, pattern: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.text()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"no /{pattern}/ on screen after {seconds:g}s:\n{self.text()}")

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True, timeout=30)
            time.sleep(0.4)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True, timeout=30)
        time.sleep(0.3)
        self.keys("Enter")

    def stop(self) -> None:
        """End the session and every process in it (Claude Code and the Ratchet server it started)."""
        done = subprocess.run(
            ["tmux", "list-panes", "-t", self.name, "-F", "#{pane_pid}"], capture_output=True, text=True, check=False
        )
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False, timeout=30)
        for pid in done.stdout.split():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


def test_the_added_lines_are_on_the_screen_of_the_confirm_form_and_of_review_drafts(
    project: tuple[Path, Path, Path], ratchet_bin: Path, tmp_path: Path
) -> None:
    ws, policies, db = project
    home = tmp_path / "home"
    install(ratchet_bin, ws, policies, db)
    lines = ["alpha: the first added line", "beta: the second added line", "gamma: the third added line"]
    content = "".join(f"{line}\n" for line in lines)
    draft = ["delta: a drafted line", "epsilon: another drafted line", "zeta: the last drafted line"]
    script = [
        {"name": "mcp__ratchet__write_file", "input": {"path": "ask/x.md", "content": content}},
        {
            "name": "mcp__ratchet__write_file",
            "input": {"path": "queue/y.md", "content": "".join(f"{d}\n" for d in draft)},
        },
        {"name": "mcp__ratchet__review_drafts", "input": {}},
        {"text": "done"},
    ]
    model = FakeModel(tmp_path / "model", script)
    screen = Screen("confirm", ws, home, model)
    try:
        screen.wait(r"❯", 60)
        screen.type("add a page")
        form = screen.wait(r"Apply this change\?", 90)
        for line in lines:
            assert f"+{line}" in form, form  # on screen, without expanding anything
        screen.keys("Space", "Down", "Enter")  # tick Apply, then Accept
        review = screen.wait(r"Your decision", 90)
        for line in draft:
            assert f"+{line}" in review, review
        screen.keys("Escape")  # leave it queued
        screen.wait(r"done", 90)
    finally:
        screen.stop()
        model.stop()
    assert (ws / "ask/x.md").read_text() == content
    assert not (ws / "queue/y.md").exists()


def test_an_answer_given_in_auto_mode_is_recorded_as_such_and_does_not_promote(
    project: tuple[Path, Path, Path], ratchet_bin: Path, tmp_path: Path
) -> None:
    """Interactive auto mode: Ratchet's `ask` is put to the person (2.1.337 does not hand it to its
    classifier), but Ratchet cannot know that for every version: the approvals run, are recorded under
    `auto-mode` as unverified, and the class does not move (three such approvals in default mode promote it)."""
    ws, policies, db = project
    home = tmp_path / "home"
    install(ratchet_bin, ws, policies, db)
    (ws / "climb").mkdir()
    script: list[Any] = [
        {"name": "Write", "input": {"file_path": str(ws / f"climb/c{i}.md"), "content": f"{i}\n"}} for i in range(3)
    ]
    model = FakeModel(tmp_path / "model", [*script, {"text": "done"}])
    screen = Screen("auto", ws, home, model, "--permission-mode", "auto")
    try:
        screen.wait(r"❯", 60)
        screen.type("write three pages")
        for i in range(3):
            asked = screen.wait(rf"Ratchet asks: Write climb/c{i}\.md", 90)
            assert "Do you want" in asked, asked
            screen.keys("Enter")  # 1. Yes
            deadline = time.monotonic() + 60
            while not (ws / f"climb/c{i}.md").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        screen.wait(r"done", 90)
    finally:
        screen.stop()
        model.stop()
    written = [r for r in rows(db) if r["class"] == "climb"]
    assert [(r["status"], r["review_channel"], r["evidence"], r["sample"]) for r in written] == [
        ("executed", "auto-mode", "unverified", None)
    ] * 3
    con = sqlite3.connect(db)
    try:
        level = con.execute("SELECT level FROM class_state WHERE name = 'climb'").fetchone()
        moves = con.execute("SELECT COUNT(*) FROM transitions WHERE class = 'climb'").fetchone()
    finally:
        con.close()
    assert (level[0], moves[0]) == ("confirm", 0)
