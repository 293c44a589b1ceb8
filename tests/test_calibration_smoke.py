"""Smoke test for the trust calibration benchmark (bench/calibration.py): tiny trial counts, fixed seed.

It runs the real rule (`ratchet.rules.trust`) through the benchmark and checks the report's shape and a few
facts a fixed seed pins down: a 0.99 class earns its rung, the naive "19 of the last 20" rule is fooled
by a 0.85 class while the ratchet is not, and the written files match what was printed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "calibration.py"
FIGURES = {"false_promotion_085", "false_promotion_090", "time_to_earn_099", "time_to_demote_070", "false_demotion_099"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ratchet_bench_calibration", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def calibration() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def report(calibration: ModuleType) -> dict[str, Any]:
    config = calibration.Config(
        trials=8,
        seed=8,
        workers=1,
        earn_trials=8,
        demote_trials=40,
        hold_trials=3,
        alt_trials=2,
        alt_earn_trials=4,
        alt_demote_trials=10,
        alternatives=(("drift_threshold 1.5", {"drift_threshold": 1.5}),),
        # The compared demotion detectors (the report's `candidates`): two of them, a few trials each.
        candidates=(
            ("spans, probation 20 (defaults)", "ratchet", {}, None),
            ("before: CUSUM alone, threshold 2.0", "cusum", {}, None),
        ),
        cand_trials=2,
        cand_demote_trials=10,
    )
    result: dict[str, Any] = calibration.run(config)
    return result


def test_report_structure(report: dict[str, Any]) -> None:
    assert set(report["rules"]) == {"ratchet", "naive"}
    for rule in ("ratchet", "naive"):
        assert set(report["rules"][rule]) == FIGURES
        fp = report["rules"][rule]["false_promotion_085"]
        assert fp["trials"] == 8
        lower, upper = fp["ci95"]
        assert 0.0 <= lower <= fp["rate"] <= upper <= 1.0
        assert {c["statistic"] for c in report["targets"][rule]} == {"rate", "median", "p90"}
        assert all(isinstance(c["met"], bool) for c in report["targets"][rule])
    assert report["rules"]["ratchet"]["time_to_demote_070"]["trials"] == 40
    assert [a["label"] for a in report["alternatives"]] == ["drift_threshold 1.5"]
    assert set(report["alternatives"][0]["figures"]) == FIGURES
    # Each compared detector has the held-scenario figures; the defaults' row is the defaults' run.
    assert [c["rule"] for c in report["candidates"]] == ["ratchet", "cusum"]
    assert report["candidates"][0]["figures"] == report["rules"]["ratchet"]
    assert set(report["candidates"][1]["figures"]) == {"false_demotion_099", "time_to_demote_070"}
    assert report["candidates"][1]["figures"]["time_to_demote_070"]["trials"] == 10
    json.dumps(report)  # JSON-ready


def test_fixed_seed_facts(report: dict[str, Any]) -> None:
    ratchet, naive = report["rules"]["ratchet"], report["rules"]["naive"]
    earn = ratchet["time_to_earn_099"]
    # A 0.99 class earns its rung; with the defaults never before 52 straight successes.
    assert earn["censored"] == 0
    assert earn["median"] is not None and 52 <= earn["median"] <= 200
    # The naive rule promotes a 0.85 class within 1,000 actions; the Wilson bound does not.
    assert naive["false_promotion_085"]["rate"] >= 0.9
    assert ratchet["false_promotion_085"]["events"] == 0
    # The naive rule cannot demote before it holds 20 samples; the CUSUM reacts sooner.
    assert naive["time_to_demote_070"]["median"] == 20
    assert ratchet["time_to_demote_070"]["median"] < 20


def test_exact_check_matches_known_cusum(calibration: ModuleType) -> None:
    from ratchet.policy.model import TrustParams

    exact = calibration.exact_demotion_time(TrustParams(), 0.70, (8,))
    assert (exact["median"], exact["p90"]) == (8, 18)
    assert 0.5 < exact["cdf"]["8"] < 0.55


def test_main_writes_results(calibration: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = calibration.main(["--trials", "2", "--seed", "3", "--workers", "1", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "calibration.md").read_text(encoding="utf-8")
    assert data["config"]["seed"] == 3 and data["command"].endswith("--out " + str(tmp_path))
    assert "| Figure | Target |" in markdown and "| Detector |" in markdown and markdown in printed
    assert ("✓" in markdown) or ("✗" in markdown)


def test_seeded_and_independent_of_workers(calibration: ModuleType) -> None:
    config = calibration.Config(
        trials=30,
        seed=5,
        workers=1,
        earn_trials=30,
        demote_trials=30,
        hold_trials=0,
        alt_trials=0,
        alt_earn_trials=0,
        alt_demote_trials=0,
        alternatives=(),
        candidates=(),
    )
    config = calibration.Config(**{**config.__dict__, "horizon": 150})
    first = calibration.run(config)["rules"]
    again = calibration.run(config)["rules"]
    pooled = calibration.run(calibration.Config(**{**config.__dict__, "workers": 2}))["rules"]
    assert first == again == pooled
