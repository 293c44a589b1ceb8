"""Drafts: approved once, exactly as drafted; stale drafts refused; in-chat review by the human only."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet.engine import Engine
from ratchet.errors import DraftAlreadyResolved, DraftStale
from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human


async def _draft(workspace: Path, policies: Path, db: Path, path: str, content: str) -> int:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        result = await client.call_tool("write_file", {"path": path, "content": content})
    assert result.structured_content["status"] == "draft"
    draft_id: int = result.structured_content["draft_id"]
    return draft_id


@pytest.mark.asyncio
async def test_approving_twice_runs_once(workspace: Path, policies: Path, db: Path) -> None:
    draft_id = await _draft(workspace, policies, db, "queue/a.txt", "one\n")
    engines = [await Engine.open(workspace, policies=policies, db=db, session=False) for _ in range(2)]
    results: list[object] = []

    async def approve(engine: Engine) -> None:
        try:
            results.append((await engine.approve(draft_id)).status)
        except DraftAlreadyResolved as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for engine in engines:
            tg.start_soon(approve, engine)
    for engine in engines:
        await engine.close()
    assert sorted(map(str, results))[-1] == "executed"
    assert sum(1 for r in results if r == "executed") == 1
    assert sum(1 for r in results if isinstance(r, DraftAlreadyResolved)) == 1
    assert (workspace / "queue/a.txt").read_text() == "one\n"


@pytest.mark.asyncio
async def test_a_stale_draft_is_refused_and_changes_nothing(workspace: Path, policies: Path, db: Path) -> None:
    (workspace / "queue").mkdir()
    (workspace / "queue/b.txt").write_text("original\n")
    draft_id = await _draft(workspace, policies, db, "queue/b.txt", "agent's version\n")
    (workspace / "queue/b.txt").write_text("human edited meanwhile\n")
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        with pytest.raises(DraftStale, match="changed since it was drafted"):
            await engine.approve(draft_id)
        assert (await engine.view(draft_id)).status == "stale"
        with pytest.raises(DraftAlreadyResolved):
            await engine.approve(draft_id)
    finally:
        await engine.close()
    assert (workspace / "queue/b.txt").read_text() == "human edited meanwhile\n"


@pytest.mark.asyncio
async def test_approve_with_edits_counts_as_rework(workspace: Path, policies: Path, db: Path, tmp_path: Path) -> None:
    draft_id = await _draft(workspace, policies, db, "climb/c.txt", "agent\n")
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        view = await engine.approve(draft_id, content="human fixed\n", note="tightened")
        levels = {c.action_class: c for c in (await engine.trust_levels()).classes}
    finally:
        await engine.close()
    assert view.status == "executed" and view.edited and view.review_note == "tightened"
    assert (workspace / "climb/c.txt").read_text() == "human fixed\n"
    assert levels["climb"].samples == 1 and levels["climb"].successes == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_review_drafts_asks_the_human_in_the_client(workspace: Path, policies: Path, db: Path, mode: str) -> None:
    first = await _draft(workspace, policies, db, "queue/1.txt", "first\n")
    second = await _draft(workspace, policies, db, "queue/2.txt", "second\n")
    human = Human(approve=True)
    async with Client(
        build_server(ServerConfig(workspace, policies, db)), mode=mode, elicitation_callback=human
    ) as client:
        result = await client.call_tool("review_drafts", {})
    out = result.structured_content
    assert [r["action_id"] for r in out["reviewed"]] == [first, second]
    assert [r["status"] for r in out["reviewed"]] == ["executed", "executed"]
    assert [r["reviewer"] for r in out["reviewed"]] == ["elicitation", "elicitation"]
    assert len(human.seen) == 2 and "+first" in human.seen[0].message
    assert (workspace / "queue/1.txt").read_text() == "first\n"


@pytest.mark.asyncio
async def test_the_agent_cannot_approve_its_own_draft(workspace: Path, policies: Path, db: Path) -> None:
    draft_id = await _draft(workspace, policies, db, "queue/self.txt", "mine\n")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:  # no human to ask
        tools = {t.name for t in (await client.list_tools()).tools}
        review = await client.call_tool("review_drafts", {})
        # Arguments the agent might try to smuggle in are not part of any schema.
        smuggled = await client.call_tool("get_draft", {"draft_id": draft_id, "approve": True})
        # The headless permission tool answers from the level: asking it about the same change queues
        # another draft, it never runs or approves the first.
        prompt = {"file_path": str(workspace / "queue/self.txt"), "content": "mine\n"}
        answer = await client.call_tool("permission_prompt", {"tool_name": "Write", "input": prompt})
    # No tool approves, rejects, resolves or changes policy: review_drafts only relays the human's answer.
    assert tools == {
        "claude_code_hook",  # answers Claude Code's own hooks only; refuses the agent (test_claude_code_real.py)
        "write_file",
        "edit_file",
        "run_command",
        "git_status",
        "git_diff",
        "git_commit",
        "git_push",
        "trust_levels",
        "class_metrics",
        "get_draft",
        "review_drafts",
        "request_handoff",
        "get_handoff",
        "start_task",
        "end_task",
        "permission_prompt",
    }
    assert answer.content[0].type == "text" and '"behavior": "deny"' in answer.content[0].text
    assert review.structured_content["reviewed"] == []
    assert "cannot ask its human" in review.structured_content["message"]
    assert smuggled.structured_content["status"] == "draft"
    assert not (workspace / "queue/self.txt").exists()
    # Decline in the client's dialog leaves the draft queued for later.
    async with Client(
        build_server(ServerConfig(workspace, policies, db)), elicitation_callback=Human(action="decline")
    ) as client:
        review = await client.call_tool("review_drafts", {})
    assert review.structured_content["remaining"] == 2


@pytest.mark.asyncio
async def test_cli_queue_show_reject(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ratchet.cli import main

    draft_id = await _draft(workspace, policies, db, "queue/r.txt", "nope\n")
    base = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]

    async def cli(*argv: str) -> int:
        return await anyio.to_thread.run_sync(main, [*argv, *base])

    assert await cli("queue", "--json") == 0
    queued = json.loads(capsys.readouterr().out)
    assert [q["action_id"] for q in queued] == [draft_id]
    assert await cli("show", str(draft_id)) == 0
    assert "+nope" in capsys.readouterr().out
    assert await cli("reject", str(draft_id), "--reason", "wrong file") == 0
    assert await cli("approve", str(draft_id)) == 1
    assert "rejected, not a queued draft" in capsys.readouterr().err
    assert not (workspace / "queue/r.txt").exists()


class Chooser:
    """The human at review_drafts' form, picking one explicit choice per draft after reading it."""

    def __init__(self, choices: dict[str, str], clock: Clock) -> None:
        self.choices, self.clock = choices, clock
        self.seen: list[types.ElicitRequestParams] = []

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params)
        self.clock.advance(30)
        choice = next(c for name, c in self.choices.items() if name in params.message)
        if choice in ("decline", "cancel"):
            return types.ElicitResult(action=choice)  # type: ignore[arg-type]
        return types.ElicitResult(action="accept", content={"decision": choice, "reason": "not this"})


@pytest.mark.asyncio
async def test_review_drafts_offers_explicit_choices_and_decline_leaves_a_draft_queued(
    workspace: Path, policies: Path, db: Path, clock: Clock
) -> None:
    ids = {
        name: await _draft(workspace, policies, db, f"queue/{name}.txt", f"{name}\n") for name in ("a", "b", "c", "d")
    }
    human = Chooser({"queue/a": "approve", "queue/b": "reject", "queue/c": "leave queued", "queue/d": "decline"}, clock)
    async with Client(
        build_server(ServerConfig(workspace, policies, db, clock=clock)), elicitation_callback=human
    ) as c:
        review = await c.call_tool("review_drafts", {})
        views = {n: (await c.call_tool("get_draft", {"draft_id": i})).structured_content for n, i in ids.items()}
    form = human.seen[0].requested_schema["properties"]["decision"]
    assert form["enum"] == ["approve", "reject", "leave queued"]
    assert "Decline or Esc leaves it queued" in human.seen[0].message
    assert {n: v["status"] for n, v in views.items()} == {
        "a": "executed",
        "b": "rejected",
        "c": "draft",
        "d": "draft",
    }
    assert (workspace / "queue/a.txt").read_text() == "a\n" and not (workspace / "queue/b.txt").exists()
    assert review.structured_content["remaining"] == 2
