"""Headless Claude Code (`claude -p`): no answer is no evidence. An unattended `ask` becomes a queued
draft, an ask the client denied unasked settles as `unanswered`, and the `--permission-prompt-tool`
answers from the class's level alone."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.claude_code.events import unattended
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.rules.provenance import reading_seconds

from .helpers import LEVELS_POLICY, write_policy

POLICY = (
    LEVELS_POLICY
    + """
[classes.echo-run]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"
allow_shell = true
"""
)
HEADLESS = {"CLAUDE_CODE_ENTRYPOINT": "sdk-cli"}
HUMAN_DECLINE = "The user doesn't want to proceed with this tool use."


class Session:
    """One Claude Code session's hook events, sent to the real console script."""

    def __init__(self, bin_: Path, workspace: Path, policies: Path, db: Path, env: dict[str, str]) -> None:
        self.bin, self.workspace, self.policies, self.db, self.env = bin_, workspace, policies, db, env
        self.transcript = workspace.parent / "transcript.jsonl"
        self.n = 0

    def send(self, event: dict[str, Any]) -> dict[str, Any] | None:
        argv = [str(self.bin), "hook", "claude-code", "--workspace", str(self.workspace)]
        argv += ["--policies", str(self.policies), "--db", str(self.db)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_CODE_", "RATCHET_HOOK"))}
        env["RATCHET_HOOK_SERVER"] = "off"  # decided in the hook's own process: no resident server outlives it
        env.update(self.env)
        done = subprocess.run(
            argv, input=json.dumps(event), capture_output=True, text=True, timeout=60, check=False, env=env
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["hookSpecificOutput"] if done.stdout.strip() else None

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "session_id": "s1",
            "transcript_path": str(self.transcript),
            "cwd": str(self.workspace),
            "permission_mode": "default",
            "hook_event_name": name,
            **fields,
        }

    def bash(self, command: str) -> tuple[dict[str, Any], str]:
        self.n += 1
        tool_use_id = f"toolu_{self.n:03d}"
        tool_input = {"command": command, "description": command}
        answer = self.send(self.event("PreToolUse", tool_name="Bash", tool_input=tool_input, tool_use_id=tool_use_id))
        assert answer is not None
        return answer, tool_use_id

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin), args[0], "--workspace", str(self.workspace), "--policies", str(self.policies)]
        return subprocess.run(
            [*argv, "--db", str(self.db), *args[1:]], capture_output=True, text=True, timeout=60, check=False
        )

    def classes(self) -> dict[str, tuple[str, int]]:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return {c["action_class"]: (c["level"], c["samples"]) for c in json.loads(done.stdout)["classes"]}

    def row(self, tool_use_id: str) -> sqlite3.Row:
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            found: sqlite3.Row = con.execute("SELECT * FROM actions WHERE external_id = ?", (tool_use_id,)).fetchone()
            return found
        finally:
            con.close()


@pytest.fixture
def hook_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "hook-policies", POLICY)


def test_the_unattended_signals() -> None:
    assert unattended({"CLAUDE_CODE_ENTRYPOINT": "sdk-cli"})
    assert unattended({"CLAUDE_CODE_SESSION_ATTENDED": "0", "CLAUDE_CODE_ENTRYPOINT": "cli"})
    assert not unattended({"CLAUDE_CODE_ENTRYPOINT": "cli"})
    assert not unattended({})
    assert not unattended({"CLAUDE_CODE_ENTRYPOINT": "sdk-cli", "RATCHET_HOOK_ATTENDED": "1"})
    assert unattended({"CLAUDE_CODE_ENTRYPOINT": "cli", "RATCHET_HOOK_ATTENDED": "0"})


def test_an_unattended_ask_is_a_draft_that_approving_makes(
    ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path
) -> None:
    claude = Session(ratchet_bin, workspace, hook_policies, db, HEADLESS)
    (workspace / "ask").mkdir()
    assert claude.cli("init").returncode == 0  # the database, and the standings to compare with
    before = claude.classes()
    for _ in range(2):  # two headless runs of a redirect into a confirm-level file
        answer, tool_use_id = claude.bash("echo hi > ask/notes.md")
        assert answer["permissionDecision"] == "deny"
        reason = answer["permissionDecisionReason"]
        assert "a human will review it" in reason and "queued this as draft" in reason
        assert claude.row(tool_use_id)["status"] == "draft"
    assert not (workspace / "ask/notes.md").exists()
    assert claude.classes() == before  # no class moved, no window grew
    draft = int(reason.split("as draft ")[1].split()[0])
    approved = claude.cli("approve", str(draft))
    assert approved.returncode == 0, approved.stderr
    assert (workspace / "ask/notes.md").read_text() == "hi\n"
    # The same call in an attended session is put to the human.
    attended = Session(ratchet_bin, workspace, hook_policies, db, {"CLAUDE_CODE_ENTRYPOINT": "cli"})
    assert attended.bash("echo again > ask/notes.md")[0]["permissionDecision"] == "ask"


def _result(tool_use_id: str, text: str, at: float | None = None) -> str:
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True, "content": text}
    entry: dict[str, Any] = {"type": "user", "message": {"role": "user", "content": [block]}}
    if at is not None:  # Claude Code stamps every transcript entry
        entry["timestamp"] = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(entry) + "\n"


def test_an_ask_denied_unasked_is_unanswered_and_a_human_decline_still_counts(
    ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path
) -> None:
    # An attended-looking session (the signals were missing), whose client denied the ask by itself.
    claude = Session(ratchet_bin, workspace, hook_policies, db, {})
    (workspace / "ask").mkdir()
    asked, unasked_id = claude.bash("echo a > ask/a.md")
    assert asked["permissionDecision"] == "ask"
    declined, declined_id = claude.bash("echo b > ask/b.md")
    assert declined["permissionDecision"] == "ask"
    time.sleep(reading_seconds(0) + 0.5)  # the person read the command before declining it
    claude.transcript.write_text(
        _result(unasked_id, asked["permissionDecisionReason"]) + _result(declined_id, HUMAN_DECLINE, time.time())
    )
    assert claude.send(claude.event("Stop", stop_hook_active=False)) is None
    unasked, human = claude.row(unasked_id), claude.row(declined_id)
    assert (unasked["status"], unasked["sample"], unasked["reviewer"]) == ("unanswered", None, None)
    assert (human["status"], human["sample"]) == ("declined", "failure")
    assert claude.classes()["ask"][1] == 1  # one sample: the human's decline, not the client's


@pytest.mark.asyncio
async def test_the_permission_prompt_tool_answers_from_the_level(
    workspace: Path, hook_policies: Path, db: Path
) -> None:
    for d in ("auto", "ask", "queue", "stop"):
        (workspace / d).mkdir()
    server = build_server(ServerConfig(workspace, hook_policies, db))

    async def ask(client: Client, tool: str, tool_input: dict[str, Any], n: int) -> dict[str, Any]:
        args = {"tool_name": tool, "input": tool_input, "tool_use_id": f"toolu_{n}"}
        result = await client.call_tool("permission_prompt", args)
        # Claude Code accepts exactly one text block, nothing else (found in a real `claude -p` run).
        assert len(result.content) == 1 and result.content[0].type == "text" and result.structured_content is None
        answer: dict[str, Any] = json.loads(result.content[0].text)
        return answer

    async with Client(server) as client:
        write = {"file_path": str(workspace / "auto/x.md"), "content": "x\n"}
        assert await ask(client, "Write", write, 1) == {"behavior": "allow", "updatedInput": write}
        for n, where in enumerate(("ask", "queue"), start=2):
            answer = await ask(client, "Write", {"file_path": str(workspace / f"{where}/x.md"), "content": "x\n"}, n)
            assert answer["behavior"] == "deny" and "queued this as draft" in answer["message"], answer
        blocked = await ask(client, "Write", {"file_path": str(workspace / "stop/x.md"), "content": "x\n"}, 4)
        assert blocked["behavior"] == "deny" and "stopped this call" in blocked["message"]
        other = await ask(client, "WebFetch", {"url": "http://127.0.0.1/"}, 5)
        assert other["behavior"] == "deny" and "permissions.allow" in other["message"]
        own = await ask(client, "mcp__ratchet__write_file", {"path": "a", "content": "b"}, 6)
        assert own["behavior"] == "allow"
        queue = await client.call_tool("trust_levels", {})
    assert queue.structured_content is not None
    # Nothing was written by answering; the two drafts wait for a human.
    assert not any((workspace / d / "x.md").exists() for d in ("auto", "ask", "queue", "stop"))
    con = sqlite3.connect(db)
    try:
        statuses = sorted(r[0] for r in con.execute("SELECT status FROM actions WHERE tool = 'write_file'"))
    finally:
        con.close()
    assert statuses == ["allowed", "blocked", "draft", "draft"]


def test_a_hook_dialog_decline_is_timed_to_its_moment_in_the_transcript(
    ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path
) -> None:
    """The human declined 3 s after the question; the Stop that reports it comes later."""
    claude = Session(ratchet_bin, workspace, hook_policies, db, {})
    (workspace / "ask").mkdir()
    asked, tool_use_id = claude.bash("echo a > ask/a.md")
    assert asked["permissionDecision"] == "ask"
    created = float(claude.row(tool_use_id)["created_at"])
    when = datetime.fromtimestamp(created + 3.0, UTC).isoformat().replace("+00:00", "Z")
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True, "content": HUMAN_DECLINE}
    entry = {"type": "user", "timestamp": when, "message": {"role": "user", "content": [block]}}
    claude.transcript.write_text(json.dumps(entry) + "\n")
    time.sleep(max(0.0, created + 4.5 - time.time()))  # the settling event arrives later than the answer did
    assert claude.send(claude.event("Stop", stop_hook_active=False)) is None
    row = claude.row(tool_use_id)
    assert row["status"] == "declined" and row["review_channel"] == "hook-dialog"
    assert abs(float(row["review_seconds"]) - 3.0) < 0.01
