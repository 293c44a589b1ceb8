"""`ratchet report`: the metrics and every class's trajectory, in a terminal, as JSON, and as one offline page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .helpers import climb_history as _history
from .helpers import drive_history
from .helpers import run_cli as cli

CLASSES = ["ask", "auto", "climb", "queue", "stop", "unclassified"]  # LEVELS_POLICY's, then the built-in one


@pytest.mark.asyncio
async def test_report_html_is_one_offline_page_with_a_plot_per_class(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await drive_history(tmp_path, workspace, policies, db, capsys)
    ids = await _history(workspace, policies, db, capsys)
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
    assert list(trajectories) == CLASSES
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
