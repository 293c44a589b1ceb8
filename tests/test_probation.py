"""Probation after a promotion: shown in status, explain and the MCP trust_levels result, counted down
by samples, and any failure during it notifies the human at once (a real notify command).

The policy promotes on three successes (Wilson lower bound 0.44 >= 0.4) and puts the class on
probation for its next three samples. Its ceiling is confirm, so the class stays where it was
promoted; one failure does not move the drift detector (0.29 < 0.5), so the class keeps its rung
while the human hears of the failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratchet.results import TrustLevels
from ratchet.web import pages

from .helpers import Clock, Human, connect, write, write_policy
from .helpers import run_cli as cli

POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
drift_threshold = 0.5
probation = 3
unmatched = "draft"
notify = NOTIFY

[classes.climb]
tools = ["write_file", "edit_file"]
paths = ["climb/**"]
start = "draft"
ceiling = "confirm"

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"
"""


def _policy(tmp_path: Path, sink: Path) -> Path:
    # The notify command writes the packet it reads on stdin to the sink, one JSON line per run.
    script = f"import sys; open({str(sink)!r}, 'a').write(sys.stdin.read().replace(chr(10), ' ') + chr(10))"
    return write_policy(tmp_path / "policies", POLICY.replace("NOTIFY", json.dumps([sys.executable, "-c", script])))


async def _until(sink: Path, seen: Any) -> list[dict[str, Any]]:
    """The notify runs so far, once `seen(runs)` holds (the commands run detached)."""
    with anyio.fail_after(30):
        while True:
            runs = [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []
            if seen(runs):
                return runs
            await anyio.sleep(0.05)


def _probation_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("status") == "probation-failure"]


@pytest.mark.asyncio
async def test_probation_is_shown_counts_down_and_a_failure_during_it_notifies(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = tmp_path / "notified.jsonl"
    policies = _policy(tmp_path, sink)

    async def run(*args: str) -> str:
        code, text = await cli(capsys, workspace, policies, db, *args)
        assert code == 0, text
        return text

    async def status() -> dict[str, Any]:
        return {c["action_class"]: c for c in json.loads(await run("status", "--json"))["classes"]}

    async def writes(count: int, *, accept: bool = True, folder: str = "climb") -> list[dict[str, Any]]:
        clock = Clock()
        outs = []
        async with connect(
            workspace, policies, db, human=Human(approve=accept, delay=9.0, clock=clock), clock=clock
        ) as c:
            for i in range(count):
                outs.append(await write(c, f"{folder}/f{len(list(workspace.rglob('*')))}-{i}.txt", "x\n"))
        return outs

    async def mcp_probation() -> int:
        async with connect(workspace, policies, db) as c:
            levels = (await c.call_tool("trust_levels", {})).structured_content
        assert levels is not None
        found: int = next(x for x in levels["classes"] if x["action_class"] == "climb")["probation"]
        return found

    drafts = await writes(3)
    assert (await status())["climb"]["probation"] == 0  # before any promotion: no probation
    for out in drafts:
        assert out["status"] == "draft"
        await run("approve", str(out["action_id"]))
    promoted = await status()
    assert promoted["climb"]["earned_level"] == "confirm" and promoted["climb"]["probation"] == 3
    assert await mcp_probation() == 3
    table = await run("status")
    line = next(x for x in table.splitlines() if x.startswith("climb"))
    assert "confirm (on probation: 3 left)" in line
    header = next(x for x in table.splitlines() if x.startswith("CLASS"))
    assert line.index(" confirm ") < header.index("PINNED")  # the marker widened the column, aligned
    # The review page's classes table and class page, rendered from the same standing.
    levels = TrustLevels.model_validate_json(await run("status", "--json"))
    assert "(on probation: 3 left)" in pages.classes("csrf", levels)
    climb = next(c for c in levels.classes if c.action_class == "climb")
    assert "<dt>probation</dt><dd>on probation: 3 left</dd>" in pages.class_detail("csrf", climb, "", [], [])

    # A success counts it down; explain shows where the class stood when that sample was taken.
    ok = (await writes(1))[0]
    assert ok["status"] == "executed"
    assert (await status())["climb"]["probation"] == 2 and await mcp_probation() == 2
    explained = await run("explain", str(ok["action_id"]))
    assert "on probation: 3 left when its sample was taken" in explained
    assert json.loads(await run("explain", str(ok["action_id"]), "--json"))["probation"] == 3

    # A failure during probation notifies at once, and keeps the rung (one failure is no drift).
    failed = (await writes(1, accept=False))[0]
    assert failed["status"] == "declined" and failed["moved"] is None
    runs = await _until(sink, lambda rs: _probation_runs(rs))
    notice = _probation_runs(runs)
    assert len(notice) == 1
    assert notice[0]["id"] == failed["action_id"] and notice[0]["class"] == "climb"
    assert notice[0]["probation_left"] == 1 and notice[0]["demoted"] is False
    assert "while on probation" in notice[0]["message"]
    assert (await status())["climb"]["probation"] == 1

    # The last sample serves it: the marker disappears, and a failure after it notifies no one.
    await writes(1)
    served = await status()
    assert served["climb"]["probation"] == 0 and served["climb"]["earned_level"] == "confirm"
    assert await mcp_probation() == 0
    assert "on probation" not in next(x for x in (await run("status")).splitlines() if x.startswith("climb"))
    later = (await writes(1, accept=False))[0]
    assert later["status"] == "declined"
    # A draft's inbox notification, spawned after the decline, marks that everything before it was sent.
    marker = (await writes(1, folder="queue"))[0]
    runs = await _until(sink, lambda rs: any(r.get("id") == marker["action_id"] for r in rs))
    await anyio.sleep(0.5)
    runs = [json.loads(x) for x in sink.read_text().splitlines()]
    assert [r["id"] for r in _probation_runs(runs)] == [failed["action_id"]]
