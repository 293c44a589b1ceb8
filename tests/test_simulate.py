"""`ratchet simulate`: replay recorded history against a candidate policy, and change nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import LEVELS_POLICY, write, write_policy
from .helpers import climb_history as _history
from .helpers import run_cli as cli

GENERATED = """
[classes.generated]
tools = ["write_file", "edit_file"]
paths = ["auto/gen/**"]
start = "blocked"
ceiling = "blocked"
"""


def _snapshot(db: Path) -> tuple[list[tuple[Any, ...]], ...]:
    con = sqlite3.connect(db)
    try:
        return tuple(
            [tuple(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()]
            for table in ("actions", "transitions", "class_state", "complaints", "streaks")
        )
    finally:
        con.close()


async def _simulate(capsys: pytest.CaptureFixture[str], workspace: Path, candidate: Path, db: Path) -> dict[str, Any]:
    code, text = await cli(capsys, workspace, candidate, db, "simulate", "--json")
    assert code == 0, text
    report: dict[str, Any] = json.loads(text)
    return report


@pytest.mark.asyncio
async def test_the_policy_of_record_replays_the_record(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    report = await _simulate(capsys, workspace, policies, db)
    assert report["replayed"] == 15 and report["skipped"] == [] and report["changes"] == []
    moves = [(m["action_class"], m["from_level"], m["to_level"], m["action_id"]) for m in report["moves"]]
    climb = ids["climb"]
    assert moves == [
        ("climb", "draft", "confirm", climb[2]),
        ("climb", "confirm", "autonomous", climb[5]),
        ("climb", "autonomous", "confirm", climb[11]),  # the complaint
    ]
    assert all(m["recorded"] and m["recorded_action_id"] == m["action_id"] for m in report["moves"])
    assert report["moves_not_simulated"] == []
    assert (report["interventions_added"], report["interventions_saved"]) == (0, 0)
    assert report["interventions_recorded"] == report["interventions_simulated"] == 7  # 6 approvals, 1 complaint


@pytest.mark.asyncio
async def test_a_stricter_candidate_reports_the_actions_it_would_have_stopped(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    # A guard class for generated files, and climb capped at confirm.
    stricter = LEVELS_POLICY.replace(
        'paths = ["climb/**"]\nstart = "draft"\nceiling = "autonomous"',
        'paths = ["climb/**"]\nstart = "draft"\nceiling = "confirm"',
    )
    candidate = write_policy(tmp_path / "candidate", stricter + GENERATED)
    before = _snapshot(db)
    report = await _simulate(capsys, workspace, candidate, db)
    assert _snapshot(db) == before  # nothing synced, nothing written

    assert report["stopped"] == ids["gen"]
    climb = ids["climb"]
    assert report["held"] == climb[6:]  # ran autonomously; capped at confirm, this client drafts them
    assert report["released"] == [] and report["reclassified"] == len(ids["gen"])
    changes = {c["action_id"]: c for c in report["changes"]}
    assert set(changes) == set(ids["gen"]) | set(climb[6:])
    assert changes[ids["gen"][0]]["simulated_class"] == "generated"
    assert (changes[ids["gen"][0]]["recorded_route"], changes[ids["gen"][0]]["simulated_route"]) == ("execute", "block")
    assert changes[climb[6]]["simulated_route"] == "draft" and "no-elicitation" in changes[climb[6]]["triggers"]
    assert [m["to_level"] for m in report["moves_not_simulated"]] == ["autonomous", "confirm"]
    assert report["interventions_added"] == 6 and report["interventions_saved"] == 0

    code, text = await cli(capsys, workspace, candidate, db, "simulate")
    assert code == 0 and f"action {ids['gen'][0]:>5}  auto/gen/g4.txt" in text and "assumptions:" in text
    assert "execute -> block   auto -> generated at blocked" in text


@pytest.mark.asyncio
async def test_a_looser_candidate_promotes_earlier(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    # Two approvals in a row are enough: Wilson lower bound of 2/2 is 0.342.
    looser = LEVELS_POLICY.replace("min_samples = 3\npromote_at = 0.4", "min_samples = 2\npromote_at = 0.3")
    report = await _simulate(capsys, workspace, write_policy(tmp_path / "candidate", looser), db)
    climb = ids["climb"]
    promotions = [
        (m["from_level"], m["to_level"], m["action_id"], m["recorded_action_id"])
        for m in report["moves"]
        if m["kind"] == "promote"
    ]
    assert promotions == [("draft", "confirm", climb[1], climb[2]), ("confirm", "autonomous", climb[3], climb[5])]
    assert report["released"] == climb[4:6] and report["stopped"] == report["held"] == []
    assert report["unreviewed_failures"] == []
    assert report["interventions_saved"] == 2 and report["interventions_added"] == 0
    code, text = await cli(capsys, workspace, tmp_path / "candidate", db, "simulate")
    assert code == 0, text
    assert f"climb: draft -> confirm (promote) at action {climb[1]}; recorded at action {climb[2]}" in text


@pytest.mark.asyncio
async def test_released_failures_are_called_out(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await write(client, "queue/q.txt")
    code, _ = await cli(capsys, workspace, policies, db, "reject", str(out["action_id"]), "--reason", "no")
    assert code == 0
    looser = LEVELS_POLICY.replace(
        'paths = ["queue/**"]\nstart = "draft"\nceiling = "draft"', 'paths = ["queue/**"]\nstart = "autonomous"'
    )
    report = await _simulate(capsys, workspace, write_policy(tmp_path / "c", looser), db)
    assert report["released"] == report["unreviewed_failures"] == [out["action_id"]]
    assert report["interventions_saved"] == 1
    code, text = await cli(capsys, workspace, tmp_path / "missing", db, "simulate")
    assert code == 1 and "policy directory not found" in text


@pytest.mark.asyncio
async def test_a_late_approval_counts_when_it_was_given(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .helpers import Human

    async def approve(action_id: int) -> None:
        code, text = await cli(capsys, workspace, policies, db, "approve", str(action_id))
        assert code == 0, text

    async with Client(build_server(ServerConfig(workspace, policies, db)), elicitation_callback=Human()) as client:
        f = [(await write(client, f"climb/f{n}.txt"))["action_id"] for n in range(3)]
        await approve(f[0])
        await approve(f[1])
        f.append((await write(client, "climb/f3.txt"))["action_id"])  # decided before f2's approval: a draft
        await approve(f[2])  # the third success promotes: the next write is confirmed in the dialog
        out = await write(client, "climb/f4.txt")
        assert (out["class_level"], out["status"]) == ("confirm", "executed")
        await approve(f[3])
    report = await _simulate(capsys, workspace, policies, db)
    assert report["changes"] == [] and [m["action_id"] for m in report["moves"]] == [f[2]]
