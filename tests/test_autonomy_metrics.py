"""The seed's autonomy figures (the longest successful unattended run, handoffs per 100 actions, the shares run
in the sandbox and escalated), and `ratchet metrics` counted by the database giving the figures a replay of
every action's facts gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratchet.evidence.metrics import class_metrics, load_facts, period_bounds, summarize
from ratchet.record.store import Store

from .helpers import Human, connect, drive_history, write
from .helpers import run_cli as cli


@pytest.mark.asyncio
async def test_the_longest_unattended_run_counts_only_runs_ended_by_accepted_work(
    tmp_path: Path, workspace: Path, hook_policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "auto").mkdir()
    ids: dict[str, list[int]] = {}
    async with connect(workspace, hook_policies, db, human=Human(approve=True)) as client:

        async def run(name: str, n: int) -> None:
            ids[name] = [(await write(client, f"auto/{name}{i}.txt"))["action_id"] for i in range(n)]

        await run("a", 3)  # ended by a confirmation the human accepts: counts (3)
        assert (await write(client, "ask/k1.txt"))["status"] == "executed"
        await run("b", 5)  # ended by an accepted confirmation, but one of them is complained about below
        assert (await write(client, "ask/k2.txt"))["status"] == "executed"
        await run("c", 4)  # ended by a block: a human must step in
        assert (await write(client, "stop/s.txt"))["status"] == "blocked"
        await run("d", 2)  # ended by a handoff: the agent asked a human
        handoff = await client.call_tool(
            "request_handoff", {"what_tried": "both fixes", "uncertainty": "which to keep", "options": ["a"]}
        )
        assert not handoff.is_error
        out = await client.call_tool("run_command", {"argv": ["echo", "hi"]})  # a command, in the sandbox
        assert out.structured_content["status"] == "executed", out.structured_content
    code, text = await cli(capsys, workspace, hook_policies, db, "complain", str(ids["b"][2]), "--reason", "broke it")
    assert code == 0, text

    code, text = await cli(capsys, workspace, hook_policies, db, "metrics", "--json")
    assert code == 0, text
    a = json.loads(text)["autonomy"]
    # Run b (5) drew a complaint, c (4) ended at a block, d (2) at a handoff; e (the command, 1) ended the
    # session's work. The longest that stands and ended in accepted work is a.
    assert a["longest_unattended_run"] == 3
    assert a["longest_unattended_run_ids"] == [ids["a"][0], ids["a"][-1]]
    gated = 3 + 1 + 5 + 1 + 4 + 1 + 2 + 1  # writes, confirmations, the block, the command; not the handoff
    assert json.loads(text)["total"]["actions"] == gated
    assert a["handoffs"] == 1 and a["handoffs_per_100_actions"] == pytest.approx(100 / gated)
    assert a["sandboxed"] == 1 and a["sandboxed_share"] == pytest.approx(1 / gated)
    assert a["escalated"] == 3 and a["escalated_share"] == pytest.approx(3 / gated)
    code, text = await cli(capsys, workspace, hook_policies, db, "metrics")
    assert code == 0 and "longest successful unattended run: 3 actions; handoffs: 1 (" in text, text

    # The report shows the same figures: its JSON, its terminal summary and its page.
    code, text = await cli(capsys, workspace, hook_policies, db, "report", "--json")
    assert code == 0 and json.loads(text)["metrics"]["autonomy"] == a
    page = tmp_path / "report.html"
    code, text = await cli(capsys, workspace, hook_policies, db, "report", "--html", str(page))
    assert code == 0, text
    assert "longest successful unattended run: 3 actions; handoffs: 1 (" in page.read_text()

    code, text = await cli(capsys, workspace, hook_policies, db, "metrics", "--json", "--class", "auto")
    assert code == 0, text
    only = json.loads(text)["autonomy"]
    # Within one class nothing else is in the sequence: its 14 writes are one run, which the complaint spoils.
    assert only["longest_unattended_run"] == 0 and only["handoffs"] == 0
    assert only["longest_unattended_run_ids"] is None


@pytest.mark.asyncio
async def test_the_database_counts_the_figures_a_replay_of_every_action_gives(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await drive_history(tmp_path, workspace, policies, db, capsys)
    store = await Store.open(db)
    try:
        start, end = period_bounds("1d", None)
        counted = await class_metrics(store, since=start, until=end)
        replayed = summarize(await load_facts(store, start, end), start, end)
        for cls in (None, "auto", "queue"):
            one = await class_metrics(store, since=start, until=end, action_class=cls)
            facts = summarize(await load_facts(store, start, end, cls), start, end)
            assert one.total == facts.total and one.classes == facts.classes
    finally:
        await store.close()
    assert counted.total == replayed.total and counted.classes == replayed.classes
    assert counted.total.actions == 11 and counted.total.interventions >= 5
