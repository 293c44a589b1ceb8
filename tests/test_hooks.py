"""Claude Code's own tools through `ratchet hook claude-code`: the real console script, with hook
events in the client's documented shapes on stdin, decided by the class's level; drafts land in the
queue and run when approved from the CLI; asks feed the window exactly like MCP confirmations; and
anything broken is a deny, never an allow."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.claude_code import hooks
from ratchet.claude_code.hooks import HookOptions
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.rules.provenance import reading_seconds

from .helpers import Claude, Clock, Decision, Human, write_policy
from .helpers import decided as _decided
from .helpers import rows as _rows


@pytest.fixture
def claude(ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path) -> Claude:
    """Claude Code in `workspace`, with HOOK_POLICY."""
    return Claude(ratchet_bin, workspace, hook_policies, db)


def _draft_id(d: Decision) -> int:
    assert d is not None and d["permissionDecision"] == "deny"
    reason = str(d["permissionDecisionReason"])
    assert "queued this as draft" in reason and "Do not retry" in reason
    return int(reason.split("as draft ")[1].split()[0])


# -- the levels decide ---------------------------------------------------------------------------


def test_write_edit_and_bash_are_decided_by_their_class_level(claude: Claude, workspace: Path) -> None:
    for d in ("auto", "queue", "stop"):
        (workspace / d).mkdir()
        (workspace / d / "e.txt").write_text("one two two\n")

    assert _decided(claude.write("auto/a.txt", "a\n")[0]) == "allow"
    assert _decided(claude.write("ask/a.txt", "a\n")[0]) == "ask"
    write_draft = _draft_id(claude.write("queue/a.txt", "drafted\n")[0])
    blocked, _ = claude.write("stop/a.txt", "no\n")
    assert _decided(blocked) == "deny" and blocked is not None
    assert "Stopped: write_file `stop/a.txt`" in blocked["permissionDecisionReason"]
    assert "class `stop`" in blocked["permissionDecisionReason"]

    edit = {"old_string": "two", "new_string": "2", "replace_all": True}
    assert _decided(claude.pre("Edit", {"file_path": str(workspace / "auto/e.txt"), **edit})[0]) == "allow"
    edit_draft = _draft_id(claude.pre("Edit", {"file_path": str(workspace / "queue/e.txt"), **edit})[0])
    assert _decided(claude.pre("Edit", {"file_path": str(workspace / "stop/e.txt"), **edit})[0]) == "deny"

    assert _decided(claude.bash("echo hello")[0]) == "allow"
    asked, _ = claude.bash("ls -la")
    assert _decided(asked) == "ask" and asked is not None and "class ls-run" in asked["permissionDecisionReason"]
    bash_draft = _draft_id(claude.bash("touch made.txt")[0])
    assert _decided(claude.bash("rm -rf auto")[0]) == "deny"

    # The hook itself changed nothing: the client runs allowed calls, drafts wait for the human.
    assert not (workspace / "queue/a.txt").exists() and not (workspace / "made.txt").exists()
    assert (workspace / "queue/e.txt").read_text() == "one two two\n"
    queued = {d["action_id"]: (d["tool"], d["target"], d["action_class"]) for d in claude.queue()}
    assert queued == {
        write_draft: ("write_file", "queue/a.txt", "queue"),
        edit_draft: ("edit_file", "queue/e.txt", "queue"),
        bash_draft: ("run_command", "touch made.txt", "touch-run"),
    }

    # Approving from the CLI performs each one through Ratchet's executor.
    for draft in (write_draft, edit_draft, bash_draft):
        done = claude.cli("approve", str(draft))
        assert done.returncode == 0 and "executed" in done.stdout, done.stdout + done.stderr
    assert (workspace / "queue/a.txt").read_text() == "drafted\n"
    assert (workspace / "queue/e.txt").read_text() == "one 2 2\n"  # replace_all became count=2
    assert (workspace / "made.txt").exists()
    assert claude.queue() == []


def test_ungoverned_tools_get_no_answer(claude: Claude) -> None:
    for tool, tool_input in [
        ("Read", {"file_path": "/etc/passwd"}),
        ("Grep", {"pattern": "x"}),
        ("WebFetch", {"url": "https://example.com", "prompt": "p"}),
        ("mcp__ratchet__write_file", {"path": "queue/a.txt", "content": "x"}),
    ]:
        done = claude.run(
            json.dumps(claude.event("PreToolUse", tool_name=tool, tool_input=tool_input, tool_use_id="t"))
        )
        assert done.stdout == ""
    # Events Ratchet does not use get no answer either.
    assert claude.run(json.dumps(claude.event("Notification", message="hi"))).stdout == ""
    assert not claude.db.exists()  # nothing governed happened, so nothing was opened or created


def test_a_shell_string_is_classified_by_what_it_runs_and_writes(claude: Claude, workspace: Path) -> None:
    (workspace / "sub").mkdir()
    # echo is autonomous, but the redirection writes stop/out.txt, whose class is blocked.
    d, _ = claude.bash("echo hi > stop/out.txt")
    assert _decided(d) == "deny" and d is not None and "side-effect" in d["permissionDecisionReason"]
    assert _decided(claude.bash("echo a && touch b")[0]) == "deny"  # the most conservative part decides
    # A draft keeps the directory Claude Code was in, and runs there when approved.
    draft = _draft_id(claude.bash("touch here.txt", "--workspace", str(workspace), cwd=str(workspace / "sub"))[0])
    assert claude.cli("approve", str(draft)).returncode == 0
    assert (workspace / "sub/here.txt").exists()


def test_multiedit_and_file_creation_through_edit(claude: Claude, workspace: Path) -> None:
    (workspace / "queue").mkdir()
    target = workspace / "queue/m.txt"
    target.write_text("a b a b a\r\nend\r\n")  # CRLF: counted as the executor will match it
    edits = [
        {"old_string": "a", "new_string": "x", "replace_all": True},
        {"old_string": "x b x", "new_string": "y", "replace_all": False},
        {"old_string": "end\n", "new_string": "fin\n", "replace_all": False},
    ]
    multi = _draft_id(claude.pre("MultiEdit", {"file_path": str(target), "edits": edits})[0])
    created = _draft_id(
        claude.pre("Edit", {"file_path": str(workspace / "queue/new.txt"), "old_string": "", "new_string": "new\n"})[0]
    )
    assert {d["tool"] for d in claude.queue()} == {"edit_file", "write_file"}
    for draft in (multi, created):
        assert claude.cli("approve", str(draft)).returncode == 0
    assert target.read_bytes() == b"y b x\r\nfin\r\n"
    assert (workspace / "queue/new.txt").read_text() == "new\n"


def test_notebook_edits_use_the_edit_class_and_are_never_drafted(claude: Claude, workspace: Path) -> None:
    notebook = json.dumps({"cells": [{"id": "c1", "cell_type": "code", "source": ["1"]}], "nbformat": 4})
    for d in ("ask", "queue", "stop"):
        (workspace / d).mkdir()
        (workspace / d / "n.ipynb").write_text(notebook)

    def edit(d: str) -> Decision:
        tool_input = {"notebook_path": str(workspace / d / "n.ipynb"), "cell_id": "c1", "new_source": "2"}
        return claude.pre("NotebookEdit", {**tool_input, "edit_mode": "replace"})[0]

    assert _decided(edit("ask")) == "ask"
    queued = edit("queue")
    assert _decided(queued) == "deny" and queued is not None
    assert "cannot be drafted" in queued["permissionDecisionReason"]
    assert _decided(edit("stop")) == "deny"
    assert claude.queue() == []  # nothing was queued that approving could not honour
    statuses = [r["status"] for r in _rows(claude.db, "SELECT status FROM actions ORDER BY id")]
    assert statuses == ["asked", "refused", "blocked"]
    assert all((workspace / d / "n.ipynb").read_text() == notebook for d in ("ask", "queue", "stop"))


# -- the window ------------------------------------------------------------------------------------


def _moves(db: Path, cls: str) -> list[tuple[str, str, str, int, int]]:
    rows = _rows(db, "SELECT * FROM transitions WHERE class = ? AND kind != 'policy' ORDER BY id", cls)
    out = []
    for r in rows:
        evidence = json.loads(r["evidence_json"])
        out.append((r["from_level"], r["to_level"], r["kind"], evidence["n"], evidence["successes"]))
    return out


def test_approved_asks_promote_the_class_exactly_like_mcp_confirmations(
    claude: Claude, tmp_path: Path, hook_policies: Path
) -> None:
    # Claude Code's dialog: ask, the human reads and accepts, the tool runs, PostToolUse reports it (with the
    # tool's own run time, which is not reading time).
    seen = []
    for i in range(5):
        d, tool_use_id = claude.write(f"climb/f{i}.txt", f"{i}\n")
        seen.append(_decided(d))
        if seen[-1] == "ask":
            time.sleep(reading_seconds(1) + 0.3)  # the one-line change read (the reading-time rule)
            response = {"filePath": "x", "success": True}
            assert claude.post("Write", tool_use_id, tool_response=response, duration_ms=12) is None
    assert seen == ["ask", "ask", "ask", "allow", "allow"]

    # The same calls over MCP, answered in the elicitation dialog.
    mcp_ws, mcp_db = tmp_path / "mcp-ws", tmp_path / "mcp.db"
    mcp_ws.mkdir()

    async def over_mcp() -> list[str]:
        clock = Clock()  # the human reads each change for a few seconds (an instant answer is no evidence)
        server = build_server(ServerConfig(mcp_ws, hook_policies, mcp_db, clock=clock))
        async with Client(server, elicitation_callback=Human(delay=5.0, clock=clock)) as c:
            return [
                (await c.call_tool("write_file", {"path": f"climb/f{i}.txt", "content": f"{i}\n"})).structured_content[
                    "class_level"
                ]
                for i in range(5)
            ]

    levels = anyio.run(over_mcp)
    assert levels == ["confirm", "confirm", "confirm", "autonomous", "autonomous"]
    assert _moves(claude.db, "climb") == _moves(mcp_db, "climb") == [("confirm", "autonomous", "promote", 3, 3)]
    asked = _rows(claude.db, "SELECT status, reviewer, sample FROM actions WHERE class = 'climb' ORDER BY id")
    assert [tuple(r) for r in asked[:3]] == [("executed", "client", "success")] * 3
    assert [r["status"] for r in asked[3:]] == ["allowed", "allowed"]  # their PostToolUse has not come yet


def test_a_permission_denied_is_the_classifiers_answer_not_a_persons(claude: Claude) -> None:
    """PermissionDenied fires only when auto mode's classifier denied a call: no person answered, so it is
    `unanswered` and no sample (it used to count as a person's decline)."""
    d, tool_use_id = claude.write("climb/f0.txt", "0\n")
    assert _decided(d) == "ask"
    claude.post("Write", tool_use_id, name="PermissionDenied", reason="auto mode denied it", permission_mode="auto")
    climb = claude.status("climb")
    assert (climb["samples"], climb["successes"]) == (0, 0)
    row = _rows(claude.db, "SELECT status, sample, error FROM actions WHERE external_id = ?", tool_use_id)[0]
    assert (row["status"], row["sample"]) == ("unanswered", None)
    assert "classifier" in row["error"]


def test_answers_given_in_auto_mode_run_but_never_promote(claude: Claude) -> None:
    """In auto mode Claude Code's classifier may answer permission prompts: an approval there runs, is
    recorded under the `auto-mode` channel as unverified, and never promotes; the same approvals in
    default mode do (see test_asked_calls_that_ran_promote...)."""
    for i in range(4):
        d, tool_use_id = claude.write(f"climb/a{i}.txt", f"{i}\n")
        assert _decided(d) == "ask"
        claude.post("Write", tool_use_id, permission_mode="auto")
        row = _rows(
            claude.db, "SELECT status, sample, review_channel, evidence FROM actions WHERE external_id = ?", tool_use_id
        )[0]
        assert (row["status"], row["sample"], row["review_channel"], row["evidence"]) == (
            "executed",
            None,
            "auto-mode",
            "unverified",
        )
    climb = claude.status("climb")
    assert (climb["level"], climb["samples"]) == ("confirm", 0)


def test_a_failed_run_and_a_declined_dialog_are_evidence(claude: Claude) -> None:
    d, failed = claude.bash("ls missing")
    assert _decided(d) == "ask"
    claude.post("Bash", failed, name="PostToolUseFailure", error="Exit code 2", is_interrupt=False)
    # Declined in Claude Code's dialog: no event at all, only a tool_result in the transcript.
    d, declined = claude.bash("ls -l")
    assert _decided(d) == "ask"
    d, waiting = claude.bash("ls -a")  # still in the dialog: no result in the transcript yet
    assert _decided(d) == "ask"
    rejection = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": declined,
                    "is_error": True,
                    "content": "The user doesn't want to proceed with this tool use.",
                }
            ],
        },
    }
    time.sleep(reading_seconds(0) + 0.3)  # the person read the command before declining it
    rejection["timestamp"] = datetime.now(UTC).isoformat()  # Claude Code stamps every transcript entry
    claude.transcript.write_text(json.dumps({"type": "summary"}) + "\n" + json.dumps(rejection) + "\n")
    assert claude.send(claude.event("Stop", stop_hook_active=False)) is None
    rows = {r["external_id"]: r for r in _rows(claude.db, "SELECT * FROM actions WHERE class = 'ls-run'")}
    assert (rows[failed]["status"], rows[failed]["sample"]) == ("failed", "failure")
    assert (rows[declined]["status"], rows[declined]["sample"], rows[declined]["reviewer"]) == (
        "declined",
        "failure",
        "client",
    )
    assert rows[waiting]["status"] == "asked"
    assert claude.status("ls-run")["samples"] == 2


# -- fails closed ----------------------------------------------------------------------------------


def _denied(d: Decision, *needles: str) -> None:
    assert _decided(d) == "deny"
    assert d is not None
    for needle in needles:
        assert needle in d["permissionDecisionReason"], d["permissionDecisionReason"]


def test_a_broken_policy_denies(ratchet_bin: Path, workspace: Path, tmp_path: Path, db: Path) -> None:
    broken = write_policy(tmp_path / "broken", "[classes.docs\nstart = 'autonomous'\n")
    claude = Claude(ratchet_bin, workspace, broken, db)
    _denied(claude.write("auto/a.txt", "a\n")[0], "Ratchet could not decide", "policy.toml")
    _denied(claude.bash("echo hi")[0], "policy.toml")
    unknown_level = write_policy(tmp_path / "unknown", "[classes.x]\ntools = ['write_file']\nstart = 'sometimes'\n")
    _denied(Claude(ratchet_bin, workspace, unknown_level, db).write("a.txt", "a\n")[0], "sometimes")
    # An ungoverned tool still gets no answer, and an outcome event never blocks anything.
    assert claude.run(json.dumps(claude.event("PreToolUse", tool_name="Read", tool_input={}))).stdout == ""
    done = claude.run(json.dumps(claude.event("PostToolUse", tool_name="Write", tool_input={}, tool_use_id="t")))
    assert done.stdout == "" and "policy.toml" in done.stderr


def test_a_database_that_is_not_sqlite_denies(
    ratchet_bin: Path, workspace: Path, hook_policies: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a.db"
    bad.write_bytes(b"this is not a database\x00" * 200)
    claude = Claude(ratchet_bin, workspace, hook_policies, bad)
    _denied(claude.write("auto/a.txt", "a\n")[0], "Ratchet could not decide", str(bad))
    _denied(claude.bash("echo hi")[0], str(bad))


@pytest.mark.parametrize(
    "stdin",
    [
        "",
        "garbage",
        "{not json",
        "[1, 2]",
        '{"tool_name": "Write", "tool_input": {}}',
        '{"hook_event_name": 7}',
    ],
)
def test_unreadable_input_denies(claude: Claude, stdin: str) -> None:
    done = claude.run(stdin)
    _denied(json.loads(done.stdout)["hookSpecificOutput"], "could not read the hook event")


def test_malformed_tool_input_and_unsafe_paths_deny(claude: Claude, workspace: Path, tmp_path: Path) -> None:
    _denied(claude.pre("Bash", {})[0], "command must be a string")
    _denied(claude.pre("Write", {"file_path": str(workspace / "auto/a.txt")})[0], "content must be a string")
    _denied(claude.pre("MultiEdit", {"file_path": str(workspace / "auto/a.txt"), "edits": []})[0], "edits")
    send = claude.send(claude.event("PreToolUse", tool_name="Edit", tool_input="nope", tool_use_id="t"))
    _denied(send, "tool_input")
    _denied(claude.write(str(tmp_path / "outside.txt"), "x")[0], "outside-workspace")
    _denied(claude.write(".git/config", "x")[0], "git-internals")
    _denied(
        claude.pre("Edit", {"file_path": str(workspace / "auto/none.txt"), "old_string": "a", "new_string": "b"})[0],
        "does not exist",
    )
    _denied(claude.bash("echo hi", "--workspace", str(workspace), cwd=str(tmp_path))[0], "outside the workspace")
    refused = _rows(claude.db, "SELECT status FROM actions")
    assert refused and all(r["status"] == "refused" for r in refused)
    assert not (tmp_path / "outside.txt").exists()


def test_any_exception_denies(workspace: Path, hook_policies: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(5)

    event = {
        "session_id": "s",
        "cwd": str(workspace),
        "hook_event_name": "PreToolUse",
        "tool_name": "Write",
        "tool_input": {"file_path": str(workspace / "auto/a.txt"), "content": "a"},
        "tool_use_id": "t",
    }
    options = HookOptions(policies=hook_policies, db=db)
    monkeypatch.setattr(hooks, "_pre_tool_use", explode)
    out = json.loads(anyio.run(hooks.claude_code, json.dumps(event), options))["hookSpecificOutput"]
    _denied(out, "RuntimeError: disk on fire", "fail closed")
    monkeypatch.setattr(hooks, "_pre_tool_use", slow)
    quick = HookOptions(policies=hook_policies, db=db, deadline_s=0.2)
    out = json.loads(anyio.run(hooks.claude_code, json.dumps(event).encode(), quick))["hookSpecificOutput"]
    _denied(out, "did not decide within 0.2s")


def test_transcript_scan_finds_only_tool_results(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    lines = [
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "a", "name": "Bash"}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "a", "content": "x"}]}},
        {"type": "user", "message": {"content": "mentions b and tool_result in text"}},
    ]
    transcript.write_text("\n".join(json.dumps(x) for x in lines) + '\nnot json but "tool_result" b\n')
    assert hooks.answered_in_transcript(transcript, {"a", "b", "c"}) == {"a"}
    assert hooks.answered_in_transcript(tmp_path / "missing.jsonl", {"a"}) == set()
