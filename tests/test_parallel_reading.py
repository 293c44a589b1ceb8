"""Reading time holds under parallel questions: a person reads one question at a time, so an answer is
timed from the later of its own question and the session's previous answer. A burst of parallel
confirmations clicked through one after another earns nothing; the same number read properly still
promotes. Driven through a real MCP client in-process, the human played on a hand-moved clock."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client.context import ClientRequestContext

from ratchet.policy.load import starter_policy_dir
from ratchet.rules.provenance import AnswerClock

from .helpers import Clock, connect

BURST = 62


class Clicker:
    """A person at the client's dialog who answers the questions on screen one after another, each
    `pause` seconds after the one before (on the hand-moved clock)."""

    def __init__(self, clock: Clock, pause: float) -> None:
        self.clock, self.pause = clock, pause
        self.lock = anyio.Lock()
        self.asked = 0
        self.everyone_asked = anyio.Event()

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked += 1
        if self.asked == BURST:
            self.everyone_asked.set()
        await self.everyone_asked.wait()  # the whole burst is on screen before the first click
        async with self.lock:
            # The answer before this one reaches the server before the next click (a person's
            # clicks are that far apart; the test's clock only stands still in between).
            await anyio.sleep(0.1)
            self.clock.advance(self.pause)
            return types.ElicitResult(action="accept", content={"approve": True})


async def _burst(workspace: Path, db: Path, clock: Clock, pause: float, mode: str) -> dict[str, Any]:
    clicker = Clicker(clock, pause)
    outs: list[dict[str, Any]] = []
    async with connect(workspace, starter_policy_dir(), db, clock=clock, human=clicker, mode=mode) as client:

        async def one(i: int) -> None:
            done = await client.call_tool("write_file", {"path": f"docs/n{i}.md", "content": f"note {i}\n"})
            assert done.structured_content is not None, done.content
            outs.append(done.structured_content)

        async with anyio.create_task_group() as group:
            for i in range(BURST):
                group.start_soon(one, i)
        levels = (await client.call_tool("trust_levels", {})).structured_content
    assert clicker.asked == BURST
    assert sorted(o["status"] for o in outs) == ["executed"] * BURST
    docs: dict[str, Any] = next(c for c in levels["classes"] if c["action_class"] == "docs-write")
    return docs


def _rows(db: Path, sql: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_burst_of_parallel_confirmations_clicked_through_does_not_promote(
    workspace: Path, db: Path, clock: Clock, mode: str
) -> None:
    docs = await _burst(workspace, db, clock, 0.3, mode)
    assert docs["level"] == "confirm" and docs["samples"] == 0 and docs["unverified"] == BURST
    assert _rows(db, "SELECT count(*) FROM transitions WHERE class = 'docs-write'")[0][0] == 0
    times = [r[0] for r in _rows(db, "SELECT review_seconds FROM actions WHERE class = 'docs-write'")]
    # Each answer: the time since the one before it (0.3 s, a little more where an answer reached the
    # server late), never the time since its own question (up to 62 x 0.3 s).
    assert len(times) == BURST and max(times) < 2.0 and sum(times) == pytest.approx(BURST * 0.3, abs=1.0)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_same_burst_read_properly_still_promotes(workspace: Path, db: Path, clock: Clock, mode: str) -> None:
    docs = await _burst(workspace, db, clock, 6.0, mode)
    assert docs["level"] == "autonomous", docs
    moves = _rows(db, "SELECT from_level, to_level, evidence_json FROM transitions WHERE class = 'docs-write'")
    assert [(m["from_level"], m["to_level"]) for m in moves] == [("confirm", "autonomous")]
    assert json.loads(moves[0]["evidence_json"])["n"] >= 40


def test_an_answer_is_timed_from_the_later_of_its_question_and_the_sessions_previous_answer() -> None:
    clock = Clock()
    answers = AnswerClock(clock)
    answers.asked("a", fresh=True)
    answers.asked("b", fresh=True)
    answers.asked("other", fresh=True)
    clock.advance(5.0)
    assert answers.answered("a", "s1") == pytest.approx(5.0)
    clock.advance(0.3)
    assert answers.answered("b", "s1") == pytest.approx(0.3)  # not 5.3: s1's previous answer came at 5.0
    assert answers.answered("other", "s2") == pytest.approx(5.3)  # another session reads on its own
