"""Many concurrent calls in one MCP session, with the human's CLI approving at the same time: every
call settles exactly once, with the result its level calls for, and the evidence adds up.

Claude Code issues tool calls in parallel, and the SDK handles a session's requests concurrently, so
the store must serialise its units of work on the shared connection (one transaction at a time).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet.mcp.server import ServerConfig, build_server
from ratchet.record.store import parse_location

from .helpers import db_rows, ratchet_argv, stdio_params, write_policy

# Classes that cannot move during the burst (floors and ceilings pinned, a failure limit no burst
# reaches), so every call's expected result follows from its class alone.
POLICY = """
[defaults]
window_size = 500
min_samples = 500
promote_at = 0.9
demote_below = 0.5
max_consecutive_failures = 1000
unmatched = "blocked"

[classes.auto]
tools = ["write_file", "edit_file"]
paths = ["auto/**"]
start = "autonomous"
floor = "autonomous"

[classes.ask]
tools = ["write_file", "edit_file"]
paths = ["ask/**"]
start = "confirm"
floor = "confirm"
ceiling = "confirm"

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
floor = "draft"
ceiling = "draft"

[classes.stop]
tools = ["write_file", "edit_file"]
paths = ["stop/**"]
start = "blocked"
ceiling = "blocked"

[classes.echo]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"
floor = "autonomous"
"""

AUTO, ASK_YES, ASK_NO, QUEUE, STOP, ECHO = 16, 8, 8, 12, 8, 10  # 62 calls


class Judge:
    """The human at the client's dialog: approves `ask/yes-*`, declines `ask/no-*` (the faked seam)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.reading = anyio.Lock()

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params.message)
        # A human reads the change (longer than the reading-time rule, or the answer would be no
        # evidence), one dialog at a time: an answer is timed from the session's previous answer when
        # that came after its question. The other calls go on meanwhile, so the dialogs overlap.
        async with self.reading:
            await anyio.sleep(3.0)
            return types.ElicitResult(action="accept", content={"approve": "ask/yes-" in params.message})


def _calls() -> list[tuple[str, dict[str, Any], str]]:
    """(tool, arguments, expected status) for the whole burst."""
    calls: list[tuple[str, dict[str, Any], str]] = []
    calls += [("write_file", {"path": f"auto/a{i}.txt", "content": f"a{i}\n"}, "executed") for i in range(AUTO)]
    calls += [("write_file", {"path": f"ask/yes-{i}.txt", "content": f"y{i}\n"}, "executed") for i in range(ASK_YES)]
    calls += [("write_file", {"path": f"ask/no-{i}.txt", "content": f"n{i}\n"}, "declined") for i in range(ASK_NO)]
    calls += [("write_file", {"path": f"queue/q{i}.txt", "content": f"q{i}\n"}, "draft") for i in range(QUEUE)]
    calls += [("write_file", {"path": f"stop/s{i}.txt", "content": f"s{i}\n"}, "blocked") for i in range(STOP)]
    calls += [("run_command", {"argv": ["echo", f"e{i}"]}, "executed") for i in range(ECHO)]
    # Interleave the kinds so every level is in flight at once.
    return [calls[i] for i in sorted(range(len(calls)), key=lambda i: (i * 7919) % len(calls))]


async def burst(client: Client, cli: list[str]) -> tuple[list[tuple[str, dict[str, Any], str, Any]], Any]:
    """Fire every call at once and the CLI approval alongside; return each call with its result."""
    done: list[tuple[str, dict[str, Any], str, Any]] = []
    approved: list[Any] = []

    async def one(tool: str, args: dict[str, Any], expected: str) -> None:
        try:
            result: Any = await client.call_tool(tool, args)
        except Exception as exc:  # an error is a result here: the test counts it as a failure
            result = exc
        done.append((tool, args, expected, result))

    async def approve() -> None:
        approved.append(await anyio.run_process(cli, check=False))

    async with anyio.create_task_group() as tg:
        for tool, args, expected in _calls():
            tg.start_soon(one, tool, args, expected)
        tg.start_soon(approve)
    return done, approved[0]


def _check(workspace: Path, db: str, done: list[tuple[str, dict[str, Any], str, Any]], approval: Any) -> None:
    errors = [(args, r) for _, args, _, r in done if isinstance(r, Exception) or r.is_error]
    assert errors == [], errors
    wrong = [(args, expected, r.structured_content["status"]) for _, args, expected, r in done]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert wrong == [], wrong
    assert approval.returncode == 0, approval.stderr.decode()

    statuses = Counter(r[0] for r in db_rows(db, "SELECT status FROM actions"))
    per_target = Counter(r[0] for r in db_rows(db, "SELECT target FROM actions WHERE tool = 'write_file'"))
    windows = {name: json.loads(window) for name, window in db_rows(db, "SELECT name, window_json FROM class_state")}
    # Every call recorded exactly once and settled: nothing left running or approving.
    assert all(n == 1 for n in per_target.values()), per_target
    assert statuses["running"] == 0 and statuses["approving"] == 0, statuses
    # The burst plus the one draft queued before it and approved by the CLI during it.
    assert statuses == Counter(
        {"executed": AUTO + ASK_YES + ECHO + 1, "declined": ASK_NO, "draft": QUEUE, "blocked": STOP}
    ), statuses
    # The windows hold exactly the sampled calls: one success per executed call, one failure per decline.
    assert Counter(ok for _, ok in windows["auto"]) == Counter({1: AUTO})
    assert Counter(ok for _, ok in windows["echo"]) == Counter({1: ECHO})
    assert Counter(ok for _, ok in windows["ask"]) == Counter({1: ASK_YES, 0: ASK_NO})
    assert Counter(ok for _, ok in windows["queue"]) == Counter({1: 1})  # the CLI's approval
    assert windows["stop"] == []
    for i in range(AUTO):
        assert (workspace / f"auto/a{i}.txt").read_text() == f"a{i}\n"
    for i in range(ASK_YES):
        assert (workspace / f"ask/yes-{i}.txt").read_text() == f"y{i}\n"
    assert not any((workspace / f"ask/no-{i}.txt").exists() for i in range(ASK_NO))
    assert not any((workspace / f"queue/q{i}.txt").exists() for i in range(QUEUE))
    assert (workspace / "queue/first.txt").read_text() == "first\n"


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["in-process", "stdio"])
async def test_sixty_concurrent_calls_settle_exactly_once(
    transport: str, ratchet_bin: Path, workspace: Path, tmp_path: Path, backend: str
) -> None:
    """On each backend: SQLite's file, and PostgreSQL."""
    db = parse_location(backend)
    policies = write_policy(tmp_path / "policies", POLICY)
    judge = Judge()
    server: Any = (
        build_server(ServerConfig(workspace, policies, db))
        if transport == "in-process"
        else stdio_params(ratchet_bin, workspace, policies, db)
    )
    async with Client(server, elicitation_callback=judge) as client:
        first = await client.call_tool("write_file", {"path": "queue/first.txt", "content": "first\n"})
        assert first.structured_content["status"] == "draft"
        cli = ratchet_argv(ratchet_bin, workspace, policies, db, "approve", str(first.structured_content["draft_id"]))
        done, approval = await burst(client, cli)
        levels = await client.call_tool("trust_levels", {})
    assert len(done) >= 60
    _check(workspace, backend, done, approval)
    # Each confirmation was asked once, and only for the confirm class.
    assert len(judge.seen) == ASK_YES + ASK_NO and all("ask/" in m for m in judge.seen)
    samples = {c["action_class"]: c["samples"] for c in levels.structured_content["classes"]}
    assert samples["auto"] == AUTO and samples["ask"] == ASK_YES + ASK_NO and samples["echo"] == ECHO
