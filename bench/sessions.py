"""3. Many sessions, one database: N `ratchet serve` processes driven at once.

Each server is its own session (one process, one connection) on one shared workspace and one
SQLite file; each gets its own client in this process and they all call at once, each call an
autonomous `write_file` of a file no other call writes (`bench-area/s{k}/f{i}.txt`), with a unique
`intent` (`s{k}-{i}`) and content that names the call. Then the database and the files are checked:

- lost: a call that was answered `executed` but has no row, or no file with its content;
- duplicated: two rows for one intent or one target, or an id answered twice;
- lock errors: a failed call, or `database is locked` / `OperationalError` in any server's stderr;
- consistency: every row `executed` with sample `success`, one session row per server with
  exactly its share of the actions, the class window holding distinct ids of recorded rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from . import (
    BENCH_AREA,
    BENCH_CLASS,
    Config,
    client,
    content,
    make_policy,
    ratchet_args,
    ratchet_bin,
    stdio_params,
    summary,
)

LOCK_MARKERS = ("database is locked", "OperationalError", "SQLITE_BUSY", "Traceback")


def _target(k: int, i: int) -> str:
    return f"{BENCH_AREA}/s{k}/f{i:05d}.txt"


async def measure(cfg: Config, tmp: Path, *, sessions: int | None = None, actions: int | None = None) -> dict[str, Any]:
    """Drive `sessions` servers at once for `actions` calls in all; verify every record."""
    import anyio

    n_sessions = sessions or cfg.sessions
    total = actions or cfg.session_actions
    per = [total // n_sessions + (1 if k < total % n_sessions else 0) for k in range(n_sessions)]
    root = tmp / "sessions"
    ws = root / "ws"
    ws.mkdir(parents=True)
    policies = make_policy(root / "policies")
    db = root / "state" / "ratchet.db"
    params = stdio_params(ratchet_bin(), ratchet_args(ws, policies, db))
    answered: list[list[dict[str, Any]]] = [[] for _ in range(n_sessions)]
    failures: list[str] = []
    latencies: list[float] = []
    connected = 0
    all_connected = anyio.Event()
    stamps: dict[str, float] = {}

    async def drive(k: int) -> None:
        nonlocal connected
        with (root / f"server-{k}.stderr").open("w") as errlog:
            async with client(params, errlog) as c:
                connected += 1
                if connected == n_sessions:
                    stamps["start"] = time.perf_counter()
                    all_connected.set()
                with anyio.fail_after(120):
                    await all_connected.wait()
                for i in range(per[k]):
                    await call(k, i, c)
                stamps[f"end{k}"] = time.perf_counter()

    async def call(k: int, i: int, c: Any) -> None:
        t0 = time.perf_counter()
        try:
            result = await c.call_tool(
                "write_file",
                {"path": _target(k, i), "content": content(i, f"s{k}-{i} "), "intent": f"s{k}-{i}"},
            )
        except Exception as exc:
            failures.append(f"s{k}-{i}: {type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - t0)
        sc = result.structured_content or {}
        if result.is_error or sc.get("status") != "executed":
            failures.append(f"s{k}-{i}: {sc.get('status')}: {sc.get('message') or result.content}")
            return
        answered[k].append({"id": sc["action_id"], "intent": f"s{k}-{i}", "target": _target(k, i)})

    async with anyio.create_task_group() as tg:
        for k in range(n_sessions):
            tg.start_soon(drive, k)
    wall = max(v for key, v in stamps.items() if key.startswith("end")) - stamps["start"]
    checks = verify(db, ws, answered, per, root)
    checks["call_failures"] = len(failures)
    checks["call_failure_examples"] = failures[:5]
    checks["ok"] = bool(checks["ok"] and not failures and checks["lock_errors"] == 0)
    return {
        "what": f"{n_sessions} `ratchet serve` processes, one SQLite file, {total} autonomous write_file calls in all",
        "sessions": n_sessions,
        "actions": total,
        "wall_seconds": round(wall, 3),
        "throughput_per_s": round(total / wall, 1) if wall > 0 else None,
        "latency": summary(latencies),
        "checks": checks,
    }


def verify(db: Path, ws: Path, answered: list[list[dict[str, Any]]], per: list[int], logs: Path) -> dict[str, Any]:
    """Count rows, ids and targets against what the servers answered; read every file back."""
    expected = {(f"s{k}-{i}", _target(k, i)) for k, n in enumerate(per) for i in range(n)}
    answered_ids = [a["id"] for rows in answered for a in rows]
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT id, session_id, intent, target, status, sample FROM actions WHERE class = ?", (BENCH_CLASS,)
        ).fetchall()
        other_rows = con.execute("SELECT count(*) FROM actions WHERE class != ?", (BENCH_CLASS,)).fetchone()[0]
        sessions = con.execute("SELECT id FROM sessions").fetchall()
        window_json = con.execute("SELECT window_json FROM class_state WHERE name = ?", (BENCH_CLASS,)).fetchone()
        streaks = con.execute("SELECT session_id, failures FROM streaks WHERE class = ?", (BENCH_CLASS,)).fetchall()
    finally:
        con.close()
    recorded = {(r[2], r[3]) for r in rows}
    intents = Counter(r[2] for r in rows)
    targets = Counter(r[3] for r in rows)
    ids = Counter(r[0] for r in rows)
    per_session = Counter(r[1] for r in rows)
    lost_rows = expected - recorded
    answered_by_id = {a["id"]: (a["intent"], a["target"]) for rows_k in answered for a in rows_k}
    row_by_id = {r[0]: (r[2], r[3]) for r in rows}
    mismatched = sum(1 for i, want in answered_by_id.items() if row_by_id.get(i) != want)
    lost_files = 0
    for k, n in enumerate(per):
        for i in range(n):
            path = ws / _target(k, i)
            if not path.exists() or path.read_text(encoding="utf-8") != content(i, f"s{k}-{i} "):
                lost_files += 1
    window = [aid for aid, _ok in json.loads(window_json[0])] if window_json else []
    lock_errors = 0
    lock_examples: list[str] = []
    for log in sorted(logs.glob("server-*.stderr")):
        for line in log.read_text(errors="replace").splitlines():
            if any(m in line for m in LOCK_MARKERS):
                lock_errors += 1
                if len(lock_examples) < 5:
                    lock_examples.append(f"{log.name}: {line.strip()[:200]}")
    checks: dict[str, Any] = {
        "expected": len(expected),
        "rows": len(rows),
        "rows_other_classes": other_rows,
        "lost": len(lost_rows),
        "lost_files": lost_files,
        "duplicated_intents": sum(c - 1 for c in intents.values() if c > 1),
        "duplicated_targets": sum(c - 1 for c in targets.values() if c > 1),
        "duplicated_ids": sum(c - 1 for c in ids.values() if c > 1) + (len(answered_ids) - len(set(answered_ids))),
        "unexpected_rows": len(recorded - expected),
        "answered_ids_not_matching_rows": mismatched,
        "not_executed": sum(1 for r in rows if r[4] != "executed" or r[5] != "success"),
        "session_rows": len(sessions),
        "actions_per_session": sorted(per_session.values()),
        "expected_per_session": sorted(per),
        "window_size": len(window),
        "window_distinct_recorded": len(set(window) & set(row_by_id)),
        "streak_failures": sum(s[1] for s in streaks),
        "lock_errors": lock_errors,
        "lock_error_examples": lock_examples,
    }
    checks["ok"] = (
        checks["lost"] == 0
        and checks["lost_files"] == 0
        and checks["duplicated_intents"] == 0
        and checks["duplicated_targets"] == 0
        and checks["duplicated_ids"] == 0
        and checks["unexpected_rows"] == 0
        and checks["answered_ids_not_matching_rows"] == 0
        and checks["not_executed"] == 0
        and checks["rows"] == len(expected)
        and len(answered_ids) == len(expected)
        and checks["actions_per_session"] == checks["expected_per_session"]
        and checks["window_distinct_recorded"] == checks["window_size"] == min(len(expected), 100)
        and checks["streak_failures"] == 0
        and checks["session_rows"] == len(per)
    )
    return checks


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    import anyio

    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result
