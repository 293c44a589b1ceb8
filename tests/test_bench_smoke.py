"""Smoke test for the benchmark harness (`python -m bench`): its tiny mode, end to end, as a subprocess.

It runs every bench at toy scale (no npm or pip installs), then checks the report's structure and the
multi-session bench's integrity checks: two `ratchet serve` processes on one database, 50 actions each,
every record there exactly once. It asserts no times: those belong to the full run on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import PgCluster

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench-out")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out), "--tmp", str(out / "scratch")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    failure = done.stderr[done.stderr.find("Traceback") :] if "Traceback" in done.stderr else done.stderr
    assert done.returncode == 0, failure[-4000:]
    return json.loads((out / "bench.json").read_text()), out


def _summary_ok(s: dict[str, Any], n: int) -> None:
    assert s["n"] == n and s["unit"] in ("ms", "us")
    assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]


def test_report_structure(results: tuple[dict[str, Any], Path]) -> None:
    r, out = results
    assert r["mode"] == "tiny" and r["errors"] == {}
    assert r["ran"] == ["gate", "roundtrip", "sessions", "startup", "memory", "redaction", "concurrency"]
    assert r["redaction"]["current_mb_s"] > 0 and r["redaction"]["previous_mb_s"] > 0
    assert r["concurrency"]["calls"] >= 60 and r["concurrency"]["calls_per_second"] > 0
    assert {"python", "sqlite", "mcp", "cpus", "loadavg_at_start", "loadavg_at_end"} <= set(r["machine"])

    gate = r["gate"]
    assert list(gate["sizes"]) == ["100", "1000"]
    for size, s in gate["sizes"].items():
        assert s["rows_before"] == int(size)  # the bulk-inserted history is all there
        _summary_ok(s["full"], 20)
        _summary_ok(s["write_alone"], 20)  # the same write timed alone, as many times, in the same rounds
        assert s["gate"]["median"] == round(s["full"]["median"] - s["write_alone"]["median"], 4)
        assert len(s["round_medians_ms"]) == len(s["round_gates_ms"]) == 2
    # Every gate call is recorded: 5 warm-up + 20 timed, and at the largest size 20 split + 1 traced + 20 profiled.
    assert gate["sizes"]["100"]["rows_after"] >= 100 + 25
    assert gate["sizes"]["1000"]["rows_after"] >= 1000 + 25 + 41
    assert gate["pure_decision"]["classify_and_decide"]["n"] == 500
    statements = gate["statements"]["statements"]
    assert gate["statements"]["count"] >= 3 and all(st["sql"] for st in statements)
    assert any(st["sql"].startswith("INSERT INTO actions") for st in statements)  # the intent is recorded
    assert not any(p.startswith("SCAN actions") for st in statements for p in st["plan"])
    # Two units of work per autonomous call: decide + intent, then the outcome (on SQLite with no hop to
    # the store's thread unless another process holds the write lock).
    assert gate["split"]["db"]["units_per_call"] == 2
    assert gate["split"]["db"]["hops_per_call"] <= gate["split"]["db"]["units_per_call"]
    assert gate["cprofile"]["by_tottime"]

    rt = r["roundtrip"]
    assert set(rt["servers"]) == {"ratchet", "bare"}  # no external servers in tiny mode
    for s in rt["servers"].values():
        _summary_ok(s, rt["calls_per_server"])
    assert rt["ratios"]["ratchet/bare"]["median"] > 0
    assert any("official-fs skipped" in n for n in rt["notes"])

    st = r["startup"]
    assert {"ratchet", "bare"} <= set(st["servers"])
    assert st["servers"]["bare"]["tools"] == 1 and st["servers"]["ratchet"]["tools"] > 1

    mem = r["memory"]["servers"]["ratchet"]
    assert mem["actions"] == 50 and mem["peak_rss_mib"] >= mem["rss_after_connect_mib"] > 0
    assert [p["actions"] for p in mem["series_kib"]] == [0, 25, 50]

    names = [t["name"] for t in r["targets"]]
    assert len(names) == 4 and all(isinstance(t["met"], bool) for t in r["targets"])
    assert "## Targets" in (out / "bench.md").read_text()
    assert "## Findings and proposals" in (out / "profile.md").read_text()


def test_sessions_lose_and_duplicate_nothing(results: tuple[dict[str, Any], Path]) -> None:
    r, _ = results
    ss = r["sessions"]
    assert ss["sessions"] == 2 and ss["actions"] == 100
    c = ss["checks"]
    assert c["rows"] == c["expected"] == 100
    assert c["actions_per_session"] == [50, 50] and c["session_rows"] == 2
    assert c["lost"] == 0 and c["lost_files"] == 0
    assert c["duplicated_ids"] == c["duplicated_intents"] == c["duplicated_targets"] == 0
    assert c["unexpected_rows"] == 0 and c["answered_ids_not_matching_rows"] == 0
    assert c["not_executed"] == 0 and c["lock_errors"] == 0 and c["call_failures"] == 0
    assert c["window_size"] == c["window_distinct_recorded"] == 100
    assert c["ok"] is True
    assert ss["latency"]["n"] == 100


def test_serve_writers_on_postgresql_and_sqlite_lose_and_duplicate_nothing(pg_cluster: PgCluster) -> None:
    """`python -m bench.postgres --serve` at toy scale: real `ratchet serve` writers on each backend, and
    the integrity counts the full run reports, each of which would show a lost or doubled action."""
    argv = [sys.executable, "-m", "bench.postgres", "--url", pg_cluster.url(), "--serve", "--procs", "2"]
    done = subprocess.run(
        [*argv, "--actions", "10", "--no-round-trip", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = json.loads(done.stdout)["throughput"]
    assert sorted(r["backend"] for r in runs) == ["postgresql", "sqlite"]
    for r in runs:
        assert r["processes"] == 2 and r["expected"] == r["recorded"] == r["answered"] == 20, r
        zeros = ("lost", "duplicated", "answered_ids_duplicated", "left_running", "servers_left_running")
        assert all(r[k] == 0 for k in (*zeros, "call_failures", "server_errors")), r
        assert r["actions_per_s"] > 0 and r["p99_ms"] >= r["median_ms"] > 0, r
