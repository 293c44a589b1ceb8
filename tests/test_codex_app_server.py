"""The real Codex app-server (the protocol behind Codex's IDE and desktop clients), driven by a client
that plays the person at its own seam: what Codex sends as Ratchet's confirm form (the change itself),
who answers Ratchet's questions under each approval policy, and what of that Ratchet records.

Seen in Codex 0.171: with approvalPolicy `untrusted` or `on-request` Ratchet's form reaches the client
(the person) whether the approvals reviewer is `user` or `auto_review` (the reviewer does not answer
MCP forms); with `never` Codex declines the form itself within milliseconds and the client never sees
it. Codex's own approvals of its shell and patches (`item/.../requestApproval`) go to the client too;
Ratchet does not see them and records none as anyone's answer.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ratchet.codex import app as codex_app

from .helpers import CODEX_POLICY as POLICY
from .helpers import MODEL, CodexRun, codex_binary, last_outputs, rows, tool_outputs, write_policy


@pytest.fixture
def codex_run(tmp_path: Path) -> CodexRun:
    return CodexRun(codex_binary(), tmp_path / "codex")


def _turn(
    run: CodexRun, project: Path, script: list[dict[str, Any]], policy: str, reviewer: str, person_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One thread, one turn; every request the app-server puts to its client is answered by the
    person after `person_s` (Ratchet's form: approve ticked; Codex's own approvals: accept). Returns
    (the requests the client saw, the tool outputs the model received)."""
    seen: list[dict[str, Any]] = []
    with (
        run.model(script, first_delay_s=0.5) as (model_run, config),
        codex_app.AppServer(run.binary, env=run.env(), cwd=project, config=config) as server,
    ):
        thread = server.request(
            "thread/start",
            {
                "cwd": str(project),
                "model": MODEL,
                "approvalPolicy": policy,
                "approvalsReviewer": reviewer,
                "sandbox": "workspace-write",
            },
        )
        ready = time.monotonic() + 90  # Ratchet's server lists its tools before the model's first turn
        while not any(
            m.get("method") == "mcpServer/startupStatus/updated"
            and (m.get("params") or {}).get("name") == "ratchet"
            and (m.get("params") or {}).get("status") == "ready"
            for m in server.pending
        ):
            assert time.monotonic() < ready, "Ratchet's MCP server did not start in Codex"
            server.pending.append(server.message(60))
        server.pending.clear()
        server.request(
            "turn/start", {"threadId": thread["thread"]["id"], "input": [{"type": "text", "text": "do the task"}]}
        )
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            message = server.pending.pop(0) if server.pending else server.message(120)
            method = message.get("method", "")
            if "id" in message and method:
                seen.append({"method": method, "params": message.get("params") or {}})
                time.sleep(person_s)
                if method == "mcpServer/elicitation/request":
                    answer: dict[str, Any] = {"action": "accept", "content": {"approve": True}}
                else:
                    answer = {"decision": "accept"}
                server.send({"id": message["id"], "result": answer})
            elif method == "turn/completed":
                break
        else:
            pytest.fail("the turn did not complete")
    return seen, last_outputs(model_run)


def test_the_confirm_form_shows_the_change_and_only_a_person_answer_counts(
    ratchet_bin: Path, codex_run: CodexRun, workspace: Path, tmp_path: Path, db: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "docs").mkdir()
    policies = write_policy(tmp_path / "policies", POLICY)
    installed = subprocess.run(
        [
            str(ratchet_bin),
            "install",
            "codex",
            "--scope",
            "user",
            "--workspace",
            str(workspace),
            "--apply",
            "--policies",
            str(policies),
            "--db",
            str(db),
            "--trust-hooks",
        ],
        env=codex_run.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert (codex_run.codex_home / "hooks.json").exists()  # user scope: the hooks beside the user's config
    assert "Trusted 3 of Ratchet's hooks" in installed.stdout, installed.stdout  # the person's one command

    search = {"type": "tool_search_call", "arguments": {"query": "ratchet write_file", "limit": 20}}
    write = {
        "namespace": "mcp__ratchet",
        "name": "write_file",
        "arguments": {"path": "docs/e.md", "content": "# Title\nfirst line\n"},
    }
    shell = {"name": "exec_command", "arguments": {"cmd": "echo x > docs/f.md"}}
    seen, outputs = _turn(
        codex_run, workspace, [search, write, shell, {"text": "done"}], "on-request", "auto_review", 3
    )

    [form] = [s["params"] for s in seen if s["method"] == "mcpServer/elicitation/request"]
    assert form["serverName"] == "ratchet" and form["mode"] == "form"
    message = form["message"]
    # What the person sees first: what changes and why; then the change itself, line by line.
    assert message.startswith("Ratchet: write_file docs/e.md: +2 −0 lines, new file\nWhy you are asked: class docs")
    assert "+++ b/docs/e.md" in message and "+# Title\n+first line" in message
    assert form["requestedSchema"]["properties"]["approve"]["type"] == "boolean"
    assert (workspace / "docs/e.md").read_text() == "# Title\nfirst line\n"
    # Codex's own shell, at confirm: its hook cannot ask, so Ratchet queued it instead.
    [denied] = tool_outputs(outputs, "exec_command")
    assert "Ratchet queued this as draft" in denied and not (workspace / "docs/f.md").exists()

    # approvalPolicy never: Codex declines Ratchet's form itself, and the client never sees it.
    write_g = {**write, "arguments": {"path": "docs/g.md", "content": "g\n"}}
    seen, _ = _turn(codex_run, workspace, [search, write_g, {"text": "done"}], "never", "auto_review", 3)
    assert not [s for s in seen if s["method"] == "mcpServer/elicitation/request"]
    assert not (workspace / "docs/g.md").exists()

    recorded = {r["target"]: dict(r) for r in rows(db, "SELECT * FROM actions WHERE tool = 'write_file'")}
    # The person's answer, through the client's form, read for three seconds: evidence.
    assert (recorded["docs/e.md"]["review_channel"], recorded["docs/e.md"]["evidence"]) == ("elicitation", "counted")
    # Codex's own answer in milliseconds: nobody's; queued as a draft, no sample.
    g = recorded["docs/g.md"]
    assert (g["status"], g["evidence"], g["sample"]) == ("draft", "unanswered", None)
    # Nothing else carries a person's answer: the shell draft and Codex's own approvals are nobody's.
    assert {r["target"] for r in rows(db, "SELECT target FROM actions WHERE evidence = 'counted'")} == {"docs/e.md"}
