"""The evidence views at scale: a default period (`--since` widens it), a replay from the recorded
standing at the period's start, a bounded plot, and `simulate` replaying only the classes a candidate
changes.

Histories are recorded by the real server; an "old" part is made by moving the actions' recorded times
back (created_at, finished_at and their complaints' times) in the real SQLite file: the record of a
team that has been at it for months. Transitions are hash-chained, so a test that needs a move before
its period names the period's start (`--since`) between two parts of a history instead."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from ratchet.evidence.report import MAX_PLOT_POINTS, Trajectory, TrajectoryPoint, svg_plot

from .helpers import LEVELS_POLICY, connect, write, write_policy
from .helpers import run_cli as cli

DAY = 86400.0


def _age(db: Path, action_ids: list[int], days: float) -> None:
    """Move the actions (and their complaints) `days` back in time."""
    shift = days * DAY
    marks = ", ".join("?" for _ in action_ids)
    con = sqlite3.connect(db)
    try:
        con.execute(
            f"UPDATE actions SET created_at = created_at - ?, finished_at = finished_at - ? WHERE id IN ({marks})",
            (shift, shift, *action_ids),
        )
        con.execute(f"UPDATE complaints SET at = at - ? WHERE action_id IN ({marks})", (shift, *action_ids))
        con.commit()
    finally:
        con.close()


async def _climb_history(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str], *, split: list[float] | None = None
) -> list[int]:
    """Five approved drafts of `climb` (the third promotes it to confirm) and three autonomous `auto` writes;
    `split` gets the time between the fourth approval and the fifth."""
    ids = []
    async with connect(workspace, policies, db) as client:
        for n in range(5):
            out = await write(client, f"climb/c{n}.txt")
            ids.append(out["action_id"])
        for n in range(3):
            ids.append((await write(client, f"auto/a{n}.txt"))["action_id"])
    for i, aid in enumerate(ids[:5]):
        if i == 4 and split is not None:
            split.append(time.time())
            await asyncio.sleep(0.05)
        code, text = await cli(capsys, workspace, policies, db, "approve", str(aid))
        assert code == 0, text
    return ids


@pytest.mark.asyncio
async def test_metrics_show_the_last_30_days_unless_since_widens_them(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _climb_history(workspace, policies, db, capsys)
    _age(db, ids[:5], 60)  # climb's history is two months old; auto's is today's

    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json")
    assert code == 0, text
    report = json.loads(text)
    assert report["since"] == pytest.approx(time.time() - 30 * DAY, abs=120)
    assert report["total"]["actions"] == 3 and [c["action_class"] for c in report["classes"]] == ["auto"]

    for since in ("all", "90d"):
        code, text = await cli(capsys, workspace, policies, db, "metrics", "--json", "--since", since)
        assert code == 0, text
        wide = json.loads(text)
        assert wide["total"]["actions"] == 8 and {c["action_class"] for c in wide["classes"]} == {"auto", "climb"}
    assert json.loads(text)["since"] is not None
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--json", "--since", "all")
    assert json.loads(text)["since"] is None
    code, text = await cli(capsys, workspace, policies, db, "metrics", "--since", "yesterday-ish")
    assert code != 0 and "'all'" in text  # the error names what it can read


@pytest.mark.asyncio
async def test_the_report_replays_the_period_from_where_the_class_stood(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split: list[float] = []
    ids = await _climb_history(workspace, policies, db, capsys, split=split)
    climb = ids[:5]

    # A period that begins after the promotion (at the third approval) and the fourth sample.
    code, text = await cli(capsys, workspace, policies, db, "report", "--json", "--since", repr(split[0]))
    assert code == 0, text
    t = {x["action_class"]: x for x in json.loads(text)["trajectories"]}["climb"]
    # The period began with climb at confirm, its window holding the sample after the promotion.
    assert t["level_before"] == "confirm" and t["carried"] == 1 and t["replayed_from"] == pytest.approx(split[0])
    assert [(p["event"], p["action_id"]) for p in t["points"]] == [("sample", climb[4])]
    assert t["points"][0]["n"] == 2  # the carried sample and the new one: the window the live record holds
    assert t["promotions"] == 1 and t["unreplayed"] == []  # counted from the record; not judged again

    # The default period holds all of this history; --since all too.
    for extra in ((), ("--since", "all")):
        code, text = await cli(capsys, workspace, policies, db, "report", "--json", *extra)
        assert code == 0, text
        t = {x["action_class"]: x for x in json.loads(text)["trajectories"]}["climb"]
        assert t["level_before"] == "draft" and t["carried"] == 0
        moves = [(p["event"], p["action_id"], p["recorded"]) for p in t["points"] if p["recorded"] is not None]
        assert moves == [("promote", climb[2], True)] and t["unreplayed"] == []
        assert [p["action_id"] for p in t["points"] if p["event"] == "sample"] == climb

    # An old history falls out of the default period, and --since widens it again.
    _age(db, ids, 60)
    code, text = await cli(capsys, workspace, policies, db, "report", "--json")
    t = {x["action_class"]: x for x in json.loads(text)["trajectories"]}["auto"]
    assert t["points"] == []
    code, text = await cli(capsys, workspace, policies, db, "report", "--json", "--since", "90d")
    t = {x["action_class"]: x for x in json.loads(text)["trajectories"]}["auto"]
    assert [p["action_id"] for p in t["points"]] == ids[5:]


def _long_trajectory(samples: int) -> Trajectory:
    points = []
    level = "draft"
    for i in range(samples):
        if i and i % 400 == 0:  # a promotion every 400 samples, and a complaint after it
            was, level = level, {"draft": "confirm", "confirm": "autonomous"}.get(level, "autonomous")
            points.append(
                TrajectoryPoint(at=1e9 + i, event="promote", level=level, pinned=None, rate=1, lower=0.9, n=0, was=was)
            )
            points.append(
                TrajectoryPoint(at=1e9 + i, event="complaint", level=level, pinned=None, rate=1, lower=0.9, n=0)
            )
        ok = i % 7 != 0
        points.append(
            TrajectoryPoint(
                at=1e9 + i, event="sample", level=level, pinned=None, rate=0.8, lower=0.7, n=10, ok=ok, action_id=i
            )
        )
    return Trajectory(
        action_class="busy",
        description="",
        rule="r",
        start="draft",
        floor="blocked",
        ceiling="autonomous",
        promote_at=0.4,
        level_now=level,
        level_before="draft",
        promotions=2,
        demotions=0,
        points=points,
    )


def test_a_plot_draws_a_bounded_number_of_points_and_keeps_every_move() -> None:
    small, big = _long_trajectory(300), _long_trajectory(20 * MAX_PLOT_POINTS)
    assert len(big.points) > 10 * MAX_PLOT_POINTS
    drawn = []
    for t in (small, big):
        svg = svg_plot(t)
        level_path = re.search(r'<path d="(M[^"]*)" fill="none"', svg)
        assert level_path is not None
        drawn.append(level_path.group(1).count(" H") - 1)  # one step per drawn point, plus the closing one
        assert svg.count('fill="#15803d"><title>') == sum(p.event == "promote" for p in t.points)  # every move
    assert drawn[0] == len(small.points)  # under the bound: every point
    assert drawn[1] <= MAX_PLOT_POINTS  # over it: bounded
    assert f"{len(big.points)} evidence events" in svg_plot(big) and f"{drawn[1]} drawn" in svg_plot(big)
    assert len(svg_plot(big)) < 40 * len(svg_plot(small))  # 67 times the events, a bounded page


@pytest.mark.asyncio
async def test_simulate_replays_only_the_classes_the_candidate_changes(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _climb_history(workspace, policies, db, capsys)
    looser = write_policy(
        tmp_path / "candidate",
        LEVELS_POLICY.replace('paths = ["climb/**"]\n', 'paths = ["climb/**"]\nmin_samples = 2\npromote_at = 0.3\n'),
    )
    code, text = await cli(capsys, workspace, looser, db, "simulate", "--json", "--against", str(policies))
    assert code == 0, text
    report = json.loads(text)
    assert report["replayed_classes"] == ["climb"]
    assert report["skipped_classes"] == ["ask", "auto", "queue", "stop", "unclassified"]
    assert report["replayed"] == 5  # climb's actions only; auto's three routed as recorded
    assert [(m["action_class"], m["action_id"]) for m in report["moves"]] == [
        ("climb", ids[1]),
        ("climb", ids[3]),
    ]  # earlier
    code, text = await cli(capsys, workspace, looser, db, "simulate", "--against", str(policies))
    assert code == 0 and "skipped (unchanged, routed as recorded): ask, auto, queue, stop, unclassified" in text

    # Without the policy in force to compare with, every class is replayed.
    code, text = await cli(capsys, workspace, looser, db, "simulate", "--json")
    every = json.loads(text)
    assert every["replayed_classes"] is None and every["replayed"] == 8 and every["moves"] == report["moves"]

    # A candidate that changes what a class matches can move any action: every class is replayed.
    moved = write_policy(
        tmp_path / "moved", LEVELS_POLICY.replace('paths = ["auto/**"]', 'paths = ["auto/**", "x/**"]')
    )
    code, text = await cli(capsys, workspace, moved, db, "simulate", "--json", "--against", str(policies))
    assert json.loads(text)["replayed_classes"] is None and json.loads(text)["replayed"] == 8

    # The default period: an old history is not replayed unless --since widens it.
    _age(db, ids, 60)
    code, text = await cli(capsys, workspace, looser, db, "simulate", "--json", "--against", str(policies))
    assert json.loads(text)["replayed"] == 0
    code, text = await cli(capsys, workspace, looser, db, "simulate", "--json", "--since", "all")
    assert json.loads(text)["replayed"] == 8
