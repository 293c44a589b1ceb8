"""Metrics from a history built by driving the real server (in-process MCP client, human dialog played by
the elicitation callback) and the real CLI on the same database, checked against counts made by hand."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.evidence.metrics import ActionFacts, diff_lines, figures, parse_when, reading_seconds
from ratchet.mcp.server import ServerConfig, build_server

from .helpers import drive_history, write
from .helpers import rows as _rows
from .helpers import run_cli as cli


@pytest.mark.asyncio
async def test_metrics_match_counts_by_hand(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await drive_history(tmp_path, workspace, policies, db, capsys)
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json", "--since", "1d")
    assert code == 0, text
    report = json.loads(text)
    classes = {c["action_class"]: c for c in report["classes"]}
    assert set(classes) == {"auto", "ask", "queue", "stop"}

    auto = classes["auto"]
    assert set(auto["levels"]) == {"autonomous", "confirm"}
    at_auto = auto["levels"]["autonomous"]
    assert (at_auto["actions"], at_auto["counts"]["autonomous"], at_auto["complaints"]) == (3, 3, 1)
    assert at_auto["defect_escape_rate"] == pytest.approx(1 / 3)
    assert at_auto["autonomous_share"] == 1.0 and at_auto["interventions"] == 1
    assert at_auto["actions_per_decision"] == 3.0 and at_auto["mean_seconds_between_interventions"] is None
    at_confirm = auto["levels"]["confirm"]
    assert (at_confirm["actions"], at_confirm["counts"]["approved"], at_confirm["interventions"]) == (1, 1, 1)
    # A confirmation accepted at once in the dialog is timed, a rubber stamp, and no evidence (unverified).
    assert at_confirm["rubber_stamp_checked"] == 1 and at_confirm["rubber_stamp_share"] == 1.0
    assert at_confirm["unverified"] == 1 and at_confirm["unanswered"] == 0
    overall = auto["overall"]
    assert (overall["actions"], overall["interventions"], overall["actions_per_decision"]) == (4, 2, 2.0)
    assert overall["autonomous_share"] == 0.75 and overall["approved_share"] == 0.25
    complaint_at = _rows(db, "SELECT at FROM complaints")[0]["at"]
    a4_done = _rows(db, "SELECT finished_at FROM actions WHERE id = ?", ids["a4"])[0]["finished_at"]
    assert overall["mean_seconds_between_interventions"] == pytest.approx(a4_done - complaint_at)

    ask = classes["ask"]["levels"]["confirm"]
    assert (ask["actions"], ask["counts"]["approved"], ask["counts"]["declined"]) == (2, 1, 1)
    assert ask["rejected_share"] == 0.5 and ask["interventions"] == 2

    queue = classes["queue"]["levels"]["draft"]
    counts = queue["counts"]
    assert (counts["approved"], counts["edited"], counts["rejected"], counts["pending"]) == (1, 1, 1, 1)
    assert queue["rework_rate"] == 0.5 and queue["rejected_share"] == 0.25 and queue["edited_share"] == 0.25
    assert queue["interventions"] == 3 and queue["actions_per_decision"] == pytest.approx(4 / 3)
    reviews = _rows(db, "SELECT review_seconds FROM actions WHERE id IN (?, ?)", ids["q1"], ids["q2"])
    assert queue["median_review_seconds"] == pytest.approx(statistics.median(r[0] for r in reviews))
    # q1 was approved within milliseconds of drafting: faster than anyone reads two lines.
    assert (queue["rubber_stamp_checked"], queue["rubber_stamp_share"]) == (1, 1.0)

    stop = classes["stop"]["levels"]["blocked"]
    assert (stop["actions"], stop["escalation_rate"], stop["interventions"], stop["actions_per_decision"]) == (
        1,
        1.0,
        0,
        None,
    )
    total = report["total"]
    assert (total["actions"], total["interventions"], total["complaints"]) == (11, 7, 1)
    assert total["escalation_rate"] == pytest.approx(1 / 11) and total["autonomous_share"] == pytest.approx(3 / 11)
    # Approvals overall: q1, q2 (edited), k1 and a4 (confirmed in the dialog).
    assert total["defect_escape_rate"] == pytest.approx(1 / 3) and total["rework_rate"] == 0.25

    code, text = await cli(capsys, workspace, policies, db, "metrics")
    assert code == 0 and "queue" in text and "  at draft" in text and "rubber stamps" in text


@pytest.mark.asyncio
async def test_the_period_selects_actions(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await drive_history(tmp_path, workspace, policies, db, capsys)
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json", "--until", "2000-01-01")
    assert code == 0 and json.loads(text)["total"]["actions"] == 0
    assert json.loads(text)["total"]["autonomous_share"] is None
    cut = _rows(db, "SELECT created_at FROM actions WHERE id = ?", ids["k2"])[0]["created_at"]
    since = str(cut)  # a Unix time is read as one; here: from the decline on
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json", "--since", since, "--class", "ask")
    ask = json.loads(text)["classes"]
    assert [c["action_class"] for c in ask] == ["ask"] and ask[0]["overall"]["counts"]["declined"] == 1
    assert ask[0]["overall"]["actions"] == 1
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--since", "1d", "--until", "2d")
    assert code == 1 and "period is empty" in text
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--since", "last tuesday")
    assert code == 1 and "ISO date" in text


def test_period_bounds_and_the_reading_rule() -> None:
    assert parse_when("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_when("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_when("2025-01-01T00:00:00+00:00") == 1735689600.0
    assert parse_when(None) is None
    diff = "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n"
    assert diff_lines(diff, 0) == 2 and reading_seconds(2) == 2.5
    assert diff_lines("--- a/x\n+++ b/x\n-a\n+b\n c\n[diff truncated: 40 more lines not shown]\n", 40) == 42


def _fact(i: int, kind: str, seconds: float | None = None, lines: int = 4, **extra: Any) -> ActionFacts:
    return ActionFacts(i, "c", "draft", kind, float(i), float(i) + 1, seconds, lines, **extra)


def test_rubber_stamps_are_approvals_faster_than_reading() -> None:
    # 4 changed lines: 3 s to read. 1 s is a stamp, 5 s is not; edited approvals are never stamps.
    f = figures([_fact(1, "approved", 1.0), _fact(2, "approved", 5.0), _fact(3, "edited", 0.5), _fact(4, "rejected")])
    assert (f.rubber_stamp_checked, f.rubber_stamp_share) == (2, 0.5)
    assert f.median_review_seconds == 1.0 and f.rework_rate == pytest.approx(1 / 3)
    assert f.mean_seconds_between_interventions == pytest.approx(1.0)  # decided at 2, 3, 4, 5
    assert figures([]).autonomous_share is None and figures([]).actions == 0


@pytest.mark.asyncio
async def test_a_resolved_escalation_is_an_intervention_and_a_handoff_is_not_an_action(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        stopped = (await write(client, "stop/s.txt"))["action_id"]
        handoff = await client.call_tool(
            "request_handoff",
            {"what_tried": "tried both migrations on a copy", "uncertainty": "which one to keep", "options": ["a"]},
        )
        assert not handoff.is_error
    for item in (stopped, handoff.structured_content["id"]):
        code, text = await cli(capsys, workspace, policies, db, "resolve", str(item), "--note", "do it by hand")
        assert code == 0, text
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json")
    report = json.loads(text)
    assert [c["action_class"] for c in report["classes"]] == ["stop"]  # the handoff is no governed action
    stop = report["classes"][0]["levels"]["blocked"]
    assert (stop["actions"], stop["counts"]["blocked"], stop["interventions"]) == (1, 1, 1)
    code, text = await cli(capsys, workspace, policies, db, "simulate", "--json")
    sim = json.loads(text)
    assert sim["replayed"] == 1 and sim["changes"] == [] and sim["skipped"] == []
    assert (sim["interventions_recorded"], sim["interventions_added"], sim["interventions_saved"]) == (1, 0, 0)
    code, text = await cli(capsys, workspace, policies, db, "explain", str(stopped))
    assert code == 0 and "review:   resolved: note by a human at the CLI" in text and "do it by hand" in text
    code, text = await cli(capsys, workspace, policies, db, "explain", str(handoff.structured_content["id"]))
    assert code == 0 and "a handoff the agent asked for" in text and "answered resolved: note" in text
