"""Provenance of human answers: an answer no human could have given is no evidence.

Driven through a real MCP client in-process (both protocol styles) and the real CLI. The human's
reading time is played on a hand-moved clock the server times answers with (`ServerConfig.clock`),
so seventy confirmations need no seventy minutes; one test waits for real.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.engine import Engine
from ratchet.errors import PolicyError
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.load import load_policy, starter_policy_dir
from ratchet.rules.provenance import AnswerClock, reading_seconds

from .helpers import Clock, Human, connect, run_cli, write_policy

MODES = ["auto", "legacy"]  # 2026-07-28 (question and answer in different rounds) and 2025-11-25
READ = 6.0  # seconds a human takes over a one-line change: above the rule's 2 s + 0.25 s per line


def _rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


async def _write(client: Client, path: str, content: str = "a line\n") -> dict[str, Any]:
    out: dict[str, Any] = (await client.call_tool("write_file", {"path": path, "content": content})).structured_content
    return out


async def _classes(client: Client) -> dict[str, dict[str, Any]]:
    levels = (await client.call_tool("trust_levels", {})).structured_content
    return {c["action_class"]: c for c in levels["classes"]}


@pytest.mark.asyncio
async def test_seventy_instant_acceptances_leave_docs_write_at_confirm(
    workspace: Path, db: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    starter = starter_policy_dir()
    human = Human(delay=0.0, clock=clock)  # a client that accepts everything it is asked, at once
    async with connect(workspace, starter, db, clock=clock, human=human) as c:
        outs = [await _write(c, f"docs/n{i}.md", f"note {i}\n") for i in range(70)]
        docs = (await _classes(c))["docs-write"]
    assert [o["status"] for o in outs] == ["executed"] * 70
    assert all((workspace / f"docs/n{i}.md").read_text() == f"note {i}\n" for i in range(70))
    assert len(human.seen) == 70  # every call was still asked: the class never moved
    assert (docs["level"], docs["samples"], docs["unverified"], docs["unanswered"]) == ("confirm", 0, 70, 0)
    assert _rows(db, "SELECT count(*) FROM transitions WHERE class = 'docs-write'")[0][0] == 0
    rows = _rows(db, "SELECT review_channel, evidence, sample, review_seconds FROM actions WHERE class = 'docs-write'")
    assert {(r["review_channel"], r["evidence"], r["sample"]) for r in rows} == {("elicitation", "unverified", None)}
    assert all(r["review_seconds"] == 0.0 for r in rows)

    code, text = await run_cli(capsys, workspace, starter, db, "status")
    assert code == 0 and "not evidence: 70 unverified, 0 unanswered" in text
    code, text = await run_cli(capsys, workspace, starter, db, "metrics", "--json")
    assert code == 0 and json.loads(text)["total"]["unverified"] == 70
    code, text = await run_cli(capsys, workspace, starter, db, "metrics")
    assert code == 0 and "70 approvals not counted as evidence (unverified)" in text
    assert "not evidence: 70 unverified approvals, 0 unanswered calls" in text
    code, text = await run_cli(capsys, workspace, starter, db, "explain", str(outs[0]["action_id"]))
    assert code == 0 and "answered in 0.00 s (elicitation): faster than the reading-time rule" in text
    assert "not counted" in text


@pytest.mark.asyncio
async def test_the_same_seventy_with_a_human_reading_time_promote(workspace: Path, db: Path, clock: Clock) -> None:
    starter = starter_policy_dir()
    human = Human(delay=READ, clock=clock)
    async with connect(workspace, starter, db, clock=clock, human=human) as c:
        outs = [await _write(c, f"docs/n{i}.md", f"note {i}\n") for i in range(70)]
        docs = (await _classes(c))["docs-write"]
    assert docs["level"] == "autonomous"
    asked = len(human.seen)
    assert 40 <= asked < 70  # min_samples 40: promoted on the evidence, then no more questions
    assert [o["class_level"] for o in outs[asked:]] == ["autonomous"] * (70 - asked)
    moves = _rows(db, "SELECT from_level, to_level, evidence_json FROM transitions WHERE class = 'docs-write'")
    assert [(m["from_level"], m["to_level"]) for m in moves] == [("confirm", "autonomous")]
    assert json.loads(moves[0]["evidence_json"])["n"] == asked
    counted = _rows(db, "SELECT count(*) FROM actions WHERE evidence = 'counted' AND review_seconds = ?", READ)
    assert counted[0][0] == asked


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["decline", "accept"])
async def test_clients_that_answer_by_themselves_move_no_class(
    workspace: Path, db: Path, clock: Clock, mode: str, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    starter = starter_policy_dir()
    async with Client(build_server(ServerConfig(workspace, starter, db, clock=clock)), mode=mode) as c:
        before = {name: c["level"] for name, c in (await _classes(c)).items()}
    # Codex headless declines every question within a millisecond; another client accepts them all as
    # fast. Ten calls in two sessions: docs and test writes, both confirm-level starter classes.
    bot = Human(action, delay=0.001, clock=clock)
    outs = []
    for session in range(2):
        server = build_server(ServerConfig(workspace, starter, db, clock=clock))
        async with Client(server, mode=mode, elicitation_callback=bot) as c:
            outs += [await _write(c, f"docs/s{session}-{i}.md") for i in range(3)]
            outs += [await _write(c, f"tests/test_s{session}_{i}.py") for i in range(2)]
            after = await _classes(c)
    assert len(bot.seen) == 10
    assert {name: c["level"] for name, c in after.items()} == before
    assert all(c["samples"] == 0 for c in after.values())
    assert _rows(db, "SELECT count(*) FROM transitions")[0][0] == 0
    assert _rows(db, "SELECT count(*) FROM streaks WHERE failures > 0")[0][0] == 0
    written = [(workspace / f"docs/s{s}-{i}.md").exists() for s in range(2) for i in range(3)]
    explained = []
    for out in (outs[0], outs[9]):
        code, text = await run_cli(capsys, workspace, starter, db, "explain", str(out["action_id"]))
        assert code == 0, text
        explained.append(text)
    if action == "decline":
        # No answer: each change waits as a draft; nothing was written and no class paid for it.
        assert [o["status"] for o in outs] == ["draft"] * 10
        assert all("no human answered" in o["message"] for o in outs)
        assert not any(written)
        queued = {r[0] for r in _rows(db, "SELECT id FROM actions WHERE status = 'draft' AND evidence = 'unanswered'")}
        assert queued == {o["draft_id"] for o in outs}
        assert (after["docs-write"]["unanswered"], after["tests-write"]["unanswered"]) == (6, 4)
        assert all("no human answered (elicitation)" in text for text in explained)
        # A human approves one at the terminal later: that is an answer, and evidence.
        code, text = await run_cli(capsys, workspace, starter, db, "approve", str(outs[0]["draft_id"]))
        assert code == 0, text
        row = _rows(db, "SELECT review_channel, evidence, sample FROM actions WHERE id = ?", outs[0]["draft_id"])[0]
        assert tuple(row) == ("cli", "counted", "success") and (workspace / "docs/s0-0.md").exists()
    else:
        # The changes ran, and are no evidence either.
        assert [o["status"] for o in outs] == ["executed"] * 10 and all(written)
        assert (after["docs-write"]["unverified"], after["tests-write"]["unverified"]) == (6, 4)
        assert all("faster than the reading-time rule" in t and "not counted" in t for t in explained)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_an_answer_is_timed_from_the_question_across_rounds(
    workspace: Path, policies: Path, db: Path, clock: Clock, mode: str
) -> None:
    # On 2026-07-28 the gate's resolver runs again in the answer's round: timing that round alone
    # would give 0 s. The time must run from the first round's question to the answer.
    human = Human(delay=7.5, clock=clock)
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, mode=mode, elicitation_callback=human) as c:
        out = await _write(c, "ask/t.txt")
        edit = {"path": "ask/t.txt", "edits": [{"old_text": "a line", "new_text": "an edited line"}]}
        edited = (await c.call_tool("edit_file", edit)).structured_content
    assert out["status"] == "executed" and edited["status"] == "executed"
    sql = "SELECT review_seconds, review_channel, evidence, sample FROM actions WHERE id IN (?, ?)"
    rows = _rows(db, sql, out["action_id"], edited["action_id"])
    assert [tuple(r) for r in rows] == [(7.5, "elicitation", "counted", "success")] * 2


@pytest.mark.asyncio
async def test_a_real_human_pause_counts_on_the_wall_clock(workspace: Path, policies: Path, db: Path) -> None:
    # No clock seam: the server's own clock, and a client that really waits before answering.
    async with connect(workspace, policies, db, human=Human(delay=2.4)) as c:
        slow = await _write(c, "ask/slow.txt")
    async with connect(workspace, policies, db, human=Human()) as c:
        fast = await _write(c, "ask/fast.txt")
    rows = {r["id"]: r for r in _rows(db, "SELECT id, review_seconds, evidence FROM actions")}
    assert rows[slow["action_id"]]["evidence"] == "counted" and rows[slow["action_id"]]["review_seconds"] >= 2.4
    assert rows[fast["action_id"]]["evidence"] == "unverified"
    assert rows[fast["action_id"]]["review_seconds"] < rows[slow["action_id"]]["review_seconds"]


def test_a_question_asked_anew_is_timed_anew() -> None:
    now = [100.0]
    answers = AnswerClock(lambda: now[0])
    answers.asked("q", fresh=True)
    now[0] = 103.0
    answers.asked("q", fresh=False)  # the answer's round of the same call keeps the first moment
    now[0] = 104.0
    assert answers.answered("q") == 4.0
    assert answers.answered("q") is None  # an answer is timed once
    # A question left unanswered long ago does not make a later instant answer look slow.
    answers.asked("old", fresh=True)
    now[0] = 10_000.0
    answers.asked("old", fresh=True)  # the agent calls again: a new first round
    assert answers.answered("old") == 0.0
    assert answers.answered("never-asked") is None


COMMAND_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.notes]
tools = ["write_file"]
paths = ["notes/**"]
start = "draft"
ceiling = "draft"

[classes.echo-run]
tools = ["run_command"]
argv = [["echo"]]
start = "draft"
ceiling = "draft"
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("chat_approval", [False, True])
async def test_review_drafts_skips_a_command_draft_unless_chat_approval(
    tmp_path: Path, workspace: Path, db: Path, clock: Clock, chat_approval: bool
) -> None:
    text = COMMAND_POLICY + ("chat_approval = true\n" if chat_approval else "")
    policies = write_policy(tmp_path / "p", text)
    async with connect(workspace, policies, db) as c:  # cannot ask: drafts
        note = await _write(c, "notes/n.txt")
        run = (await c.call_tool("run_command", {"argv": ["echo", "hi"]})).structured_content
        odd = (await c.call_tool("run_command", {"argv": ["printf", "x"]})).structured_content  # unclassified
    assert (note["status"], run["status"], odd["status"]) == ("draft", "draft", "draft")
    human = Human(delay=READ, clock=clock)
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as c:
        out = (await c.call_tool("review_drafts", {})).structured_content
    reviewed = {r["action_id"]: r["status"] for r in out["reviewed"]}
    shown = " ".join(s.message for s in human.seen)
    assert reviewed[note["draft_id"]] == "executed" and (workspace / "notes/n.txt").exists()
    # A program whose class is not declared is never offered in the chat.
    assert odd["draft_id"] not in reviewed and f"draft {odd['draft_id']}: it runs a program" in out["message"]
    if chat_approval:
        assert reviewed[run["draft_id"]] == "executed" and "echo hi" in shown
    else:
        assert run["draft_id"] not in reviewed and "echo hi" not in shown
        assert f"draft {run['draft_id']}: it runs a program" in out["message"]
        assert "ratchet approve" in out["message"] and "chat_approval = true" in out["message"]
        assert _rows(db, "SELECT status FROM actions WHERE id = ?", run["draft_id"])[0][0] == "draft"


@pytest.mark.asyncio
async def test_a_fast_no_in_review_drafts_is_no_answer(workspace: Path, policies: Path, db: Path, clock: Clock) -> None:
    async with connect(workspace, policies, db) as c:
        first = await _write(c, "queue/1.txt")
        second = await _write(c, "queue/2.txt")
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=Human(approve=False, delay=0.01, clock=clock)) as c:
        out = (await c.call_tool("review_drafts", {})).structured_content
    assert out["reviewed"] == [] and out["remaining"] == 2 and "not taken as an answer" in out["message"]
    rows = _rows(
        db, "SELECT status, evidence, sample FROM actions WHERE id IN (?, ?)", first["action_id"], second["action_id"]
    )
    assert {tuple(r) for r in rows} == {("draft", "unanswered", None)}
    # An instant yes runs the draft but is no evidence; a considered yes is.
    async with Client(server, elicitation_callback=Human(delay=0.01, clock=clock)) as c:
        out = (await c.call_tool("review_drafts", {})).structured_content
    assert [r["status"] for r in out["reviewed"]] == ["executed", "executed"]
    rows = _rows(
        db,
        "SELECT review_channel, evidence, sample FROM actions WHERE id IN (?, ?)",
        first["action_id"],
        second["action_id"],
    )
    assert {tuple(r) for r in rows} == {("elicitation", "unverified", None)}


PROMOTION_CLI_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.guarded]
tools = ["write_file", "edit_file"]
paths = ["guarded/**"]
start = "confirm"
floor = "draft"
ceiling = "autonomous"
promotion_evidence = "cli"
"""


@pytest.mark.asyncio
async def test_a_class_taking_cli_evidence_only_is_promoted_by_the_cli_not_the_chat(
    tmp_path: Path, workspace: Path, db: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "p", PROMOTION_CLI_POLICY)
    human = Human(delay=30.0, clock=clock)  # a human who reads carefully, in the chat
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as c:
        chat = [await _write(c, f"guarded/c{i}.txt") for i in range(6)]
        guarded = (await _classes(c))["guarded"]
    assert [o["status"] for o in chat] == ["executed"] * 6 and len(human.seen) == 6
    assert (guarded["level"], guarded["samples"], guarded["unverified"]) == ("confirm", 0, 6)
    code, text = await run_cli(capsys, workspace, policies, db, "explain", str(chat[0]["action_id"]))
    assert "takes promotion evidence only from the CLI" in text

    # The same changes drafted (this client cannot ask) and approved at the terminal.
    async with connect(workspace, policies, db) as c:
        drafts = [await _write(c, f"guarded/d{i}.txt") for i in range(3)]
    assert [d["status"] for d in drafts] == ["draft"] * 3
    code, text = await run_cli(capsys, workspace, policies, db, "approve", str(drafts[0]["draft_id"]))
    assert code == 0, text
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        engine.answers.now = lambda: clock() + 120  # read for two minutes after drafting
        for d in drafts[1:]:
            assert (await engine.approve(d["draft_id"])).status == "executed"
        levels = {c.action_class: c for c in (await engine.trust_levels()).classes}
    finally:
        await engine.close()
    assert levels["guarded"].level == "autonomous"
    moves = _rows(db, "SELECT from_level, to_level, evidence_json FROM transitions WHERE class = 'guarded'")
    assert [(m["from_level"], m["to_level"]) for m in moves] == [("confirm", "autonomous")]
    assert json.loads(moves[0]["evidence_json"])["action_ids"] == [d["draft_id"] for d in drafts]
    rows = _rows(
        db,
        "SELECT reviewer, review_channel, evidence, sample FROM actions WHERE id IN (?, ?, ?)",
        *(d["draft_id"] for d in drafts),
    )
    assert {tuple(r) for r in rows} == {("cli", "cli", "counted", "success")}


def test_promotion_evidence_must_be_any_or_cli(tmp_path: Path) -> None:
    bad = PROMOTION_CLI_POLICY.replace('promotion_evidence = "cli"', 'promotion_evidence = "chat"')
    with pytest.raises(PolicyError, match="promotion_evidence") as err:
        load_policy(write_policy(tmp_path / "p", bad))
    assert "'any'" in str(err.value) and "'cli'" in str(err.value) and "'chat'" in str(err.value)
    flag = PROMOTION_CLI_POLICY.replace('promotion_evidence = "cli"', 'chat_approval = "sometimes"')
    with pytest.raises(PolicyError, match="chat_approval"):
        load_policy(write_policy(tmp_path / "q", flag))


@pytest.mark.asyncio
@pytest.mark.parametrize(("evidence", "expected"), [("any", ("counted", "success")), ("cli", ("unverified", None))])
async def test_a_hook_dialog_answer_records_its_channel(
    tmp_path: Path, workspace: Path, db: Path, evidence: str, expected: tuple[str, str | None]
) -> None:
    from ratchet.claude_code.hooks import HookOptions, claude_code

    policies = write_policy(tmp_path / "p", PROMOTION_CLI_POLICY.replace('"cli"', f'"{evidence}"'))
    options = HookOptions(policies=policies, db=db)
    common = {"session_id": "s1", "transcript_path": str(tmp_path / "t.jsonl"), "cwd": str(workspace)}
    pre = {
        **common,
        "hook_event_name": "PreToolUse",
        "tool_name": "Write",
        "tool_use_id": "toolu_1",
        "tool_input": {"file_path": str(workspace / "guarded/h.txt"), "content": "x\n"},
    }
    answer = json.loads(await claude_code(json.dumps(pre), options))
    assert answer["hookSpecificOutput"]["permissionDecision"] == "ask"
    post = {**common, "hook_event_name": "PostToolUse", "tool_name": "Write", "tool_use_id": "toolu_1"}
    await anyio.sleep(reading_seconds(1) + 0.2)  # the person reads the one-line change, then answers
    assert await claude_code(json.dumps({**post, "tool_input": {}, "tool_response": {"success": True}}), options) == ""
    row = _rows(db, "SELECT reviewer, review_channel, evidence, sample, review_seconds FROM actions")[0]
    assert (row["reviewer"], row["review_channel"]) == ("client", "hook-dialog")
    assert (row["evidence"], row["sample"]) == expected and row["review_seconds"] is not None


@pytest.mark.asyncio
async def test_cli_answers_record_their_channel(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(workspace, policies, db) as c:
        drafted = [await _write(c, f"queue/{n}.txt") for n in range(2)]
        blocked = await _write(c, "stop/s.txt")
    assert [d["status"] for d in drafted] == ["draft", "draft"] and blocked["status"] == "blocked"
    for args in (
        ("approve", str(drafted[0]["draft_id"])),
        ("reject", str(drafted[1]["draft_id"]), "--reason", "not this"),
        ("resolve", str(blocked["action_id"]), "--note", "I will do it myself"),
    ):
        code, text = await run_cli(capsys, workspace, policies, db, *args)
        assert code == 0, text
    rows = _rows(db, "SELECT id, status, reviewer, review_channel, evidence FROM actions ORDER BY id")
    assert [tuple(r)[1:] for r in rows] == [
        ("executed", "cli", "cli", "counted"),
        ("rejected", "cli", "cli", "counted"),  # a "no" at the terminal is the human's, however quick
        ("blocked", "cli", "cli", None),  # a resolution is an answer, not a sample
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(("action", "approve"), [("decline", True), ("accept", False), ("cancel", True)])
async def test_every_instant_no_is_no_answer(
    workspace: Path, policies: Path, db: Path, clock: Clock, action: str, approve: bool
) -> None:
    # A "no" in any form (decline, an unticked box, a dismissed dialog) within milliseconds.
    human = Human(action=action, approve=approve, delay=0.005, clock=clock)
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as c:
        outs = [await _write(c, f"ask/{i}.txt") for i in range(4)]
        ask = (await _classes(c))["ask"]
    # Four in a row would have halted the class for the session (three failures) if they counted.
    assert [o["status"] for o in outs] == ["draft"] * 4 and len(human.seen) == 4
    assert (ask["samples"], ask["unanswered"]) == (0, 4)
    rows = _rows(db, "SELECT status, reviewer, review_channel, evidence, sample FROM actions")
    assert {tuple(r) for r in rows} == {("draft", None, "elicitation", "unanswered", None)}


@pytest.mark.asyncio
async def test_a_hook_answer_is_timed_to_the_moment_the_caller_knows(workspace: Path, policies: Path, db: Path) -> None:
    engine = await Engine.open(workspace, policies=policies, db=db, session="claude-s9")
    try:
        ev = await engine.evaluate("write_file", {"path": "ask/h.txt", "content": "x\n"}, shell_rule=False)
        asked = await engine.record_external(ev, "toolu_9")
        created = _rows(db, "SELECT created_at FROM actions WHERE id = ?", asked.action_id)[0][0]
        engine.answers.now = lambda: created + 30.0  # recorded 30 s after the PreToolUse
        # Declined in the client's dialog 4 s after the PreToolUse (the transcript's timestamp), settled later.
        await engine.record_external_outcome("toolu_9", ran=False, ok=False, answered_at=created + 4.0)
    finally:
        await engine.close()
    row = _rows(db, "SELECT status, review_seconds, review_channel, evidence, sample FROM actions")[0]
    assert tuple(row) == ("declined", 4.0, "hook-dialog", "counted", "failure")


@pytest.mark.asyncio
async def test_hook_answers_given_at_one_moment_are_one_reading(workspace: Path, policies: Path, db: Path) -> None:
    """Two dialogs declined at the same moment (as a transcript stamps a burst): the first recorded is timed
    from its question, the second from that answer, 0 s; a moment claimed past the recording is cut to it."""
    engine = await Engine.open(workspace, policies=policies, db=db, session="claude-s8")
    try:
        ids = []
        for name in ("a", "b", "c"):
            ev = await engine.evaluate("write_file", {"path": f"ask/{name}.txt", "content": "x\n"}, shell_rule=False)
            ids.append((await engine.record_external(ev, f"toolu_{name}")).action_id)
        created = _rows(db, "SELECT created_at FROM actions WHERE id = ?", ids[0])[0][0]
        engine.answers.now = lambda: created + 30.0
        for name in ("a", "b"):
            await engine.record_external_outcome(f"toolu_{name}", ran=False, ok=False, answered_at=created + 10.0)
        engine.answers.now = lambda: created + 50.0
        await engine.record_external_outcome("toolu_c", ran=False, ok=False, answered_at=created + 90.0)
    finally:
        await engine.close()
    rows = _rows(db, "SELECT review_seconds, evidence, sample, answered_at - ? FROM actions ORDER BY id", created)
    assert [tuple(r) for r in rows] == [
        (10.0, "counted", "failure", 10.0),
        (0.0, "unanswered", None, 10.0),
        (40.0, "counted", "failure", 50.0),  # from the previous answer (+10 s) to the recording (+50 s)
    ]


class Reader(Human):
    """A human who takes a different time over each question, in order."""

    def __init__(self, delays: list[float], clock: Clock) -> None:
        super().__init__(clock=clock)
        self.delays = delays

    async def __call__(self, ctx: Any, params: Any) -> Any:
        self.delay = self.delays[len(self.seen)]
        return await super().__call__(ctx, params)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_review_drafts_times_each_answer(
    workspace: Path, policies: Path, db: Path, clock: Clock, mode: str
) -> None:
    async with connect(workspace, policies, db) as c:
        first = await _write(c, "climb/1.txt")
        second = await _write(c, "climb/2.txt")
    reader = Reader([0.01, 6.0], clock)  # waves the first through, reads the second
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, mode=mode, elicitation_callback=reader) as c:
        out = (await c.call_tool("review_drafts", {})).structured_content
    assert [r["status"] for r in out["reviewed"]] == ["executed", "executed"]
    sql = "SELECT id, review_seconds, evidence FROM actions WHERE id IN (?, ?) ORDER BY id"
    rows = _rows(db, sql, first["action_id"], second["action_id"])
    times, evidence = [r["review_seconds"] for r in rows], [r["evidence"] for r in rows]
    if mode == "legacy":  # one question after another: each answer timed on its own
        assert times == [pytest.approx(0.01), pytest.approx(6.0)] and evidence == ["unverified", "counted"]
    else:  # 2026-07-28 asks both in one round and gets both answers together: the batch's time, shared
        assert times == [pytest.approx(6.01 / 2)] * 2 and evidence == ["counted", "counted"]


FAILING_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.checks]
tools = ["run_command"]
argv = [["false"], ["true"]]
start = "confirm"
floor = "draft"
ceiling = "autonomous"
"""


@pytest.mark.asyncio
async def test_a_fast_yes_is_no_evidence_of_success_but_the_failure_still_counts(
    tmp_path: Path, workspace: Path, db: Path, clock: Clock
) -> None:
    policies = write_policy(tmp_path / "p", FAILING_POLICY)
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=Human(delay=0.01, clock=clock)) as c:
        ok = (await c.call_tool("run_command", {"argv": ["true"]})).structured_content
        failed = (await c.call_tool("run_command", {"argv": ["false"]})).structured_content
        checks = (await _classes(c))["checks"]
    assert (ok["status"], failed["status"]) == ("executed", "failed")
    rows = _rows(db, "SELECT evidence, sample FROM actions ORDER BY id")
    assert [tuple(r) for r in rows] == [("unverified", None), ("unverified", "failure")]
    assert (checks["samples"], checks["successes"], checks["unverified"]) == (1, 0, 2)
