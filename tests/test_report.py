"""`ratchet report`: the metrics and every class's trajectory, in a terminal, as JSON, and as one offline page."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from .helpers import LEVELS_POLICY, drive_history, write_policy
from .helpers import climb_history as _history
from .helpers import run_cli as cli

# Classes that moved first (climb and auto were promoted or demoted, queue is pinned), then those with
# evidence (ask), then the rest; within each group the policy's order (alphabetical, then the built-in one).
CLASSES = ["auto", "climb", "queue", "ask", "stop", "unclassified"]


@pytest.mark.asyncio
async def test_report_html_is_one_offline_page_with_a_plot_per_class(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await drive_history(tmp_path, workspace, policies, db, capsys)
    ids = await _history(workspace, policies, db, capsys)
    code, text = await cli(capsys, workspace, policies, db, "pin", "queue", "blocked", "--reason", "audit week")
    assert code == 0, text
    page = tmp_path / "out" / "report.html"
    code, text = await cli(capsys, workspace, policies, db, "report", "--html", str(page))
    assert code == 0 and str(page) in text
    doc = page.read_text(encoding="utf-8")
    assert doc.startswith("<!doctype html>") and doc.rstrip().endswith("</html>")
    # Nothing fetched: no remote src/href, no script at all, no @import or url() in the CSS.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", doc, re.IGNORECASE)
    assert "http://" not in doc and "https://" not in doc
    assert "<script" not in doc.lower() and "@import" not in doc and "url(" not in doc
    plots = re.findall(r'<svg [^>]*aria-label="Trust trajectory of ([^"]+)"', doc)
    assert plots == CLASSES and doc.count("<svg") == len(CLASSES)
    climb = doc.split('aria-label="Trust trajectory of climb"')[1].split("</svg>")[0]
    # Two promotions (green triangles) and the complaint's demotion (red triangle), each with its action.
    assert climb.count('fill="#15803d"><title>') == 2 and climb.count('fill="#b91c1c"><title>') == 1
    assert f"promote (action {ids['climb'][2]})" in climb and f"complaint-demote (action {ids['climb'][11]})" in climb


def _section(doc: str, name: str) -> str:
    return doc.split(f"<section><h3>{name} ")[1].split("</section>")[0]


def _text(fragment: str) -> str:
    """What a printed page shows of a fragment: its text outside the plot, tooltips and all markup left out."""
    outside = re.sub(r"<svg .*?</svg>", "", fragment, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", outside))


@pytest.mark.asyncio
async def test_report_html_prints_each_path_and_every_mark_as_text(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    for args in (
        ("pin", "queue", "blocked", "--reason", "audit week"),
        ("freeze", "--level", "draft", "--reason", "incident"),
    ):
        code, text = await cli(capsys, workspace, policies, db, *args)
        assert code == 0, text
    page = tmp_path / "report.html"
    code, text = await cli(capsys, workspace, policies, db, "report", "--html", str(page))
    assert code == 0, text
    doc = page.read_text(encoding="utf-8")
    climb = ids["climb"]
    # The path is text under the plot, not only the marks' tooltips.
    assert (
        f"path: draft -> confirm (@{climb[2]}) -> autonomous (@{climb[5]}) -> confirm (@{climb[11]}) -> "
        "[frozen at draft]" in _text(_section(doc, "climb"))
    )
    # Every mark's time, action and reason is printed too: the complaint, its demotion.
    printed = _text(_section(doc, "climb"))
    assert f"complaint (action {climb[11]}): bad" in printed
    assert (
        f"complaint-demote (action {climb[11]}): autonomous -> confirm: complaint on action {climb[11]}: bad" in printed
    )
    # The pin and the freeze are on the level line (a dashed cap, labelled in text) and in the path.
    queue = _section(doc, "queue")
    assert "path: draft -> [pinned blocked] -> [frozen at draft]" in _text(queue)
    plot = queue.split("<svg ")[1].split("</svg>")[0]
    assert re.search(r'<line [^>]*stroke="#7c3aed"[^>]*stroke-dasharray="6 3"/>', plot)
    assert '<text x="' in plot and ">pinned blocked</text>" in plot
    # A class with neither move nor evidence has only the freeze in its path, and comes after those that do.
    assert "path: confirm -> [frozen at draft]" in _text(_section(doc, "ask"))
    plots = re.findall(r'<svg [^>]*aria-label="Trust trajectory of ([^"]+)"', doc)
    assert plots == ["climb", "queue", "auto", "ask", "stop", "unclassified"]


@pytest.mark.asyncio
async def test_report_json_rebuilds_each_trajectory_from_the_record(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    code, text = await cli(capsys, workspace, policies, db, "report", "--json")
    assert code == 0, text
    report = json.loads(text)
    assert report["metrics"]["total"]["actions"] == 15
    trajectories = {t["action_class"]: t for t in report["trajectories"]}
    # Classes that moved first, then those with evidence, then the rest (alphabetical within each).
    assert list(trajectories) == ["climb", "auto", "ask", "queue", "stop", "unclassified"]
    climb = trajectories["climb"]
    assert (climb["promotions"], climb["demotions"], climb["level_now"]) == (2, 1, "confirm")
    moves = [(p["event"], p["level"], p["action_id"]) for p in climb["points"] if p["event"] != "sample"]
    assert moves == [
        ("promote", "confirm", ids["climb"][2]),
        ("promote", "autonomous", ids["climb"][5]),
        ("complaint", "autonomous", ids["climb"][11]),
        ("complaint-demote", "confirm", ids["climb"][11]),
    ]
    samples = [p for p in climb["points"] if p["event"] == "sample"]
    assert len(samples) == 12 and all(p["ok"] for p in samples)
    assert [p["n"] for p in samples[:4]] == [1, 2, 3, 1]  # a promotion starts a fresh window
    # The rebuilt window ends where the live one stands.
    code, text = await cli(capsys, workspace, policies, db, "status", "--json")
    live = {c["action_class"]: c for c in json.loads(text)["classes"]}
    for name, t in trajectories.items():
        last = t["points"][-1] if t["points"] else None
        assert (last["n"] if last else 0) == live[name]["samples"], name
        assert t["level_now"] == live[name]["earned_level"]

    code, text = await cli(capsys, workspace, policies, db, "report")
    assert code == 0
    climb_line = next(line for line in text.splitlines() if line.strip().startswith("climb ") and "up" in line)
    assert (
        f"draft -> confirm (@{ids['climb'][2]}) -> autonomous (@{ids['climb'][5]}) -> confirm (@{ids['climb'][11]})"
        in climb_line
    )
    # A period after everything: no actions, no points, and the level the class stood at before it.
    code, text = await cli(capsys, workspace, policies, db, "report", "--json", "--since", "2999-01-01")
    late = {t["action_class"]: t for t in json.loads(text)["trajectories"]}
    assert late["climb"]["points"] == [] and late["climb"]["level_before"] == "confirm"


@pytest.mark.asyncio
async def test_report_flags_recorded_moves_the_current_trust_rules_do_not_replay(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await _history(workspace, policies, db, capsys)
    # The same classes, but promotion now needs five samples: the record's promotions at 3 are not replayed.
    stricter = write_policy(tmp_path / "stricter", LEVELS_POLICY.replace("min_samples = 3", "min_samples = 5"))
    code, text = await cli(capsys, workspace, stricter, db, "report", "--json")
    assert code == 0, text
    climb = next(t for t in json.loads(text)["trajectories"] if t["action_class"] == "climb")
    first = f"draft -> confirm (promote at action {ids['climb'][2]})"
    assert any(u.endswith(first) for u in climb["unreplayed"]), climb["unreplayed"]
    replayed = [(p["event"], p["action_id"], p["recorded"]) for p in climb["points"] if p["recorded"] is not None]
    assert replayed[0] == ("promote", ids["climb"][4], False)  # the fifth sample, under the stricter rule
    code, text = await cli(capsys, workspace, stricter, db, "report")
    assert code == 0 and "recorded, but not what the current trust rules replay" in text
