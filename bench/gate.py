"""1. The gate in process, against history size.

One `Engine` per history size (10^3, 10^5, 10^6 recorded actions by default), each with its own
workspace and database, all open in one process. Each call is `engine.govern` of an autonomous
`write_file` overwriting a real file (the path a client that cannot ask its human takes over MCP):
confine and read the target, classify against the starter policies plus the bench class, decide and
record the intent (one unit of work), keep the prior version for undo, write (atomic, fsynced), record
the outcome, update the class window. The sizes are measured in interleaved blocks (round-robin,
rotating the order each round), so a noisy neighbour slows every size alike instead of one.

The gate is Ratchet's own work around the tool, so it is measured as the governed call minus the same
executor write timed alone (`fs.plan_write` + `fs.apply_plan`, what the bare server's tool does), in
the same workspace, alternating with the governed calls call by call: `gate` per size is the median of
the whole call less the median of the write alone, beside the whole call.

Big histories are bulk-inserted with plain sqlite3 (one INSERT ... SELECT over a recursive CTE): rows
shaped exactly as record/actions.py's `insert_intent`/`finish`/`sample` leave them, sessions and streak rows to go with
them, and the bench class's `class_state` window (and its `samples` of record) pointing at its last
recorded samples.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import BENCH_CLASS, Config, content, make_policy, median, ratio, seed_files, summary, target

WINDOW = 100  # the starter defaults' window_size

# (class, share of history out of 20, class_level/level, route, status, sample, reviewer)
_MIX = (
    ("source-write", "draft", "draft", "rejected", "failure", "cli"),
    ("docs-write", "confirm", "confirm", "executed", "success", "elicitation"),
)


def _is_bench_row(i: int) -> bool:
    return i % 20 not in (0, 1)


def grow_history(db: Path, policy: Any, upto: int, *, session_rows: int = 1_000) -> float:
    """Bulk-insert synthetic recorded actions with ids 1..upto into `db`; return the seconds it took.

    The database must have been created by `Engine.open` (schema, class_state rows) and be closed.
    """
    from ratchet.policy.model import Subject

    started = time.perf_counter()
    path_marker, n_marker = "@@PATH@@", "@@N@@"
    subject_t = json.dumps(Subject(tool="write_file", paths=(path_marker,)).as_dict())
    args_t = json.dumps({"path": path_marker, "content": f"line 01\nline 02\nhistory version {n_marker}\n"})
    result_t = json.dumps(
        {"path": path_marker, "created": False, "bytes_written": 40, "fingerprint": f"sha256:{n_marker}"}
    )
    rules = {
        name: (policy.get(name) or policy.unclassified).rule for name in (BENCH_CLASS, "source-write", "docs-write")
    }
    t0 = time.time() - upto * 0.05
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN IMMEDIATE")
        base = con.execute("SELECT coalesce(max(id), 0) FROM actions").fetchone()[0]
        lo = base + 1
        if upto >= lo:
            con.execute(
                """
                WITH RECURSIVE c(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM c WHERE i < :hi),
                r AS (
                    SELECT i,
                        CASE i % 20 WHEN 0 THEN 'src/mod' || (i % 500) || '.py'
                                    WHEN 1 THEN 'docs/page' || (i % 300) || '.md'
                                    ELSE 'bench-area/f' || printf('%03d', i % 100) || '.txt' END AS tgt,
                        CASE i % 20 WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE 2 END AS k
                    FROM c
                )
                INSERT INTO actions (id, session_id, created_at, tool, target, class, rule, policy, args_json,
                    preview, fingerprint, intent, confidence, class_level, level, route, triggers_json, flagged,
                    status, pid, result_json, error, finished_at, reviewer, review_seconds, review_note, sample,
                    subject_json, level_transition)
                SELECT i, 'hist' || (i / :per_session), :t0 + i * 0.05, 'write_file', tgt,
                    CASE k WHEN 0 THEN 'source-write' WHEN 1 THEN 'docs-write' ELSE :bench END,
                    CASE k WHEN 0 THEN :rule_src WHEN 1 THEN :rule_docs ELSE :rule_bench END,
                    :policy,
                    replace(replace(:args_t, '@@PATH@@', tgt), '@@N@@', i),
                    '--- a/' || tgt || char(10) || '+++ b/' || tgt || char(10) || '@@ -3 +3 @@' || char(10)
                        || '-history version ' || (i - 1) || char(10) || '+history version ' || i || char(10),
                    printf('sha256:%064x', i),
                    'history ' || i, NULL,
                    CASE k WHEN 0 THEN 'draft' WHEN 1 THEN 'confirm' ELSE 'autonomous' END,
                    CASE k WHEN 0 THEN 'draft' WHEN 1 THEN 'confirm' ELSE 'autonomous' END,
                    CASE k WHEN 0 THEN 'draft' WHEN 1 THEN 'confirm' ELSE 'execute' END,
                    '[]', 0,
                    CASE k WHEN 0 THEN 'rejected' ELSE 'executed' END,
                    1,
                    CASE k WHEN 0 THEN NULL ELSE replace(replace(:result_t, '@@PATH@@', tgt), '@@N@@', i) END,
                    NULL, :t0 + i * 0.05 + 0.01,
                    CASE k WHEN 0 THEN 'cli' WHEN 1 THEN 'elicitation' ELSE NULL END,
                    CASE k WHEN 2 THEN NULL ELSE 30.0 END,
                    CASE k WHEN 0 THEN 'not this way' ELSE NULL END,
                    CASE k WHEN 0 THEN 'failure' ELSE 'success' END,
                    replace(:subject_t, '@@PATH@@', tgt),
                    NULL
                FROM r
                """,
                {
                    "lo": lo,
                    "hi": upto,
                    "per_session": session_rows,
                    "t0": t0,
                    "bench": BENCH_CLASS,
                    "rule_src": rules["source-write"],
                    "rule_docs": rules["docs-write"],
                    "rule_bench": rules[BENCH_CLASS],
                    "policy": policy.fingerprint,
                    "args_t": args_t,
                    "result_t": result_t,
                    "subject_t": subject_t,
                },
            )
            sessions = range(lo // session_rows, upto // session_rows + 1)
            con.executemany(
                "INSERT OR IGNORE INTO sessions (id, started_at, client, pid) VALUES (?, ?, 'bench-history', 1)",
                ((f"hist{s}", t0 + s * session_rows * 0.05) for s in sessions),
            )
            con.executemany(
                "INSERT OR IGNORE INTO streaks (session_id, class, failures) VALUES (?, ?, 0)",
                ((f"hist{s}", cls) for s in sessions for cls in (BENCH_CLASS, "docs-write")),
            )
            window: list[list[int]] = []
            i = upto
            while i > 0 and len(window) < WINDOW:
                if _is_bench_row(i):
                    window.append([i, 1])
                i -= 1
            window.reverse()
            changed = con.execute(
                "UPDATE class_state SET level = 'autonomous', window_json = ? WHERE name = ?",
                (json.dumps(window, separators=(",", ":")), BENCH_CLASS),
            ).rowcount
            assert changed == 1, "the bench class has no class_state row: open the database with Engine first"
            # The window of record (record/integrity.py): the same samples, since the class never moved (epoch 0).
            con.executemany(
                "INSERT INTO samples (class, action_id, ok, epoch) VALUES (?, ?, 1, 0)",
                ((BENCH_CLASS, aid) for aid, _ in window),
            )
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return time.perf_counter() - started


def count_actions(db: Path) -> int:
    """Rows in `actions`."""
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM actions").fetchone()[0])
    finally:
        con.close()


class Sized:
    """One history size: its workspace, database and open engine."""

    def __init__(self, size: int, root: Path, policies: Path) -> None:
        self.size = size
        self.root = root
        self.workspace = root / "ws"
        self.db = root / "state" / "ratchet.db"
        self.policies = policies
        self.engine: Any = None
        self.calls = 0
        self.full: list[float] = []
        self.alone: list[float] = []
        self.round_medians: list[float] = []
        self.round_gates: list[float] = []
        self.writes = 0
        self.info: dict[str, Any] = {"size": size}

    async def build(self) -> None:
        from ratchet.engine import Engine

        self.workspace.mkdir(parents=True)
        seed_files(self.workspace)
        engine = await Engine.open(self.workspace, policies=self.policies, db=self.db, client="bench-setup")
        policy = engine.policy
        await engine.close()
        self.info["build_seconds"] = round(grow_history(self.db, policy, self.size), 2)
        self.info["rows_before"] = count_actions(self.db)
        self.info["db_bytes"] = self.db.stat().st_size
        started = time.perf_counter()
        self.engine = await Engine.open(self.workspace, policies=self.policies, db=self.db, client="bench")
        self.info["engine_open_ms"] = round((time.perf_counter() - started) * 1e3, 2)
        started = time.perf_counter()
        await self.engine.queue()
        self.info["queue_ms"] = round((time.perf_counter() - started) * 1e3, 2)

    async def call(self) -> float:
        """One autonomous write through the gate; seconds."""
        i = self.calls
        self.calls += 1
        args = {"path": target(i), "content": content(i)}
        t0 = time.perf_counter()
        outcome = await self.engine.govern("write_file", args)
        t1 = time.perf_counter()
        if outcome.status != "executed":
            raise RuntimeError(f"bench write was not executed: {outcome.status}: {outcome.message}")
        return t1 - t0

    async def write_alone(self) -> float:
        """The same executor write with no gate (the bare server's tool body); seconds."""
        from ratchet.executors import fs
        from ratchet.executors.workspace import Workspace

        i = self.writes
        self.writes += 1
        ws = Workspace(self.workspace)
        t0 = time.perf_counter()
        plan = fs.plan_write(ws, target(i), content(i, "alone "))
        fs.apply_plan(ws, plan, token=f"alone{i}")
        return time.perf_counter() - t0

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()
            self.engine = None
        self.info["rows_after"] = count_actions(self.db)


def pure_decision(policy: Any, calls: int) -> dict[str, Any]:
    """classify + decide on an in-memory class level: the gate's decision with no I/O at all."""
    from ratchet.policy.levels import Level
    from ratchet.policy.model import Subject
    from ratchet.rules.gate import decide

    subjects = [Subject(tool="write_file", paths=(target(i),)) for i in range(100)]
    classify_t: list[float] = []
    both: list[float] = []
    clock = time.perf_counter
    for i in range(calls):
        subject = subjects[i % 100]
        t0 = clock()
        cls = policy.classify(subject).cls
        t1 = clock()
        decision = decide(cls, Level.AUTONOMOUS, pinned=None, confidence=None, session_failures=0, can_elicit=False)
        t2 = clock()
        if decision.class_name != BENCH_CLASS:
            raise RuntimeError(f"bench path classified as {decision.class_name}")
        classify_t.append(t1 - t0)
        both.append(t2 - t0)
    return {
        "classify": summary(classify_t, unit="us"),
        "classify_and_decide": summary(both, unit="us"),
        "classes_in_policy": len(policy.classes),
    }


async def measure(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Build the histories, measure every size in interleaved blocks, then split and profile one."""
    from . import profiling

    policies = make_policy(tmp / "gate-policies")
    sized = [Sized(n, tmp / f"gate-{n}", policies) for n in cfg.gate_sizes]
    try:
        for s in sized:
            await s.build()
        for s in sized:
            for _ in range(cfg.gate_warmup):
                await s.call()
        for r in range(cfg.gate_rounds):
            order = sized[r % len(sized) :] + sized[: r % len(sized)]
            for s in order:
                block: list[float] = []
                alone: list[float] = []
                for k in range(cfg.gate_block):
                    # The governed call and the write alone alternate, each going first in turn.
                    if k % 2:
                        alone.append(await s.write_alone())
                    block.append(await s.call())
                    if not k % 2:
                        alone.append(await s.write_alone())
                s.full += block
                s.alone += alone
                s.round_medians.append(round(median(block) * 1e3, 4))
                s.round_gates.append(round((median(block) - median(alone)) * 1e3, 4))
        pure = pure_decision(sized[0].engine.policy, cfg.gate_pure_calls)
        largest = sized[-1]
        split = await profiling.gate_split(largest.engine, cfg.gate_profile_calls, largest.calls)
        largest.calls += cfg.gate_profile_calls
        statements = await profiling.gate_statements(largest.engine, largest.db, largest.calls)
        largest.calls += 1
        cprof = await profiling.gate_cprofile(largest.engine, cfg.gate_profile_calls, largest.calls)
        largest.calls += cfg.gate_profile_calls
        hop = await profiling.hop_cost(tmp / "hop.db", 2_000 if cfg.mode != "tiny" else 50)
        micro = profiling.micro_costs(largest.engine, 2_000 if cfg.mode != "tiny" else 50)
        store_hops = await profiling.store_hops(tmp / "store-hops.db")
        plans = profiling.outside_plans(largest.db)
    finally:
        for s in sized:
            await s.close()

    sizes: dict[str, Any] = {}
    for s in sized:
        full, alone = summary(s.full), summary(s.alone)
        sizes[str(s.size)] = {
            **s.info,
            "full": full,
            "write_alone": alone,
            "gate": {
                "median": round(full["median"] - alone["median"], 4),
                "median_of_rounds": round(median(s.round_gates), 4),
                "unit": "ms",
            },
            "round_medians_ms": s.round_medians,
            "round_gates_ms": s.round_gates,
        }
    first, last = sized[0], sized[-1]
    med_first, med_last = median(first.full), median(last.full)
    p99_first = sizes[str(first.size)]["full"]["p99"]
    p99_last = sizes[str(last.size)]["full"]["p99"]
    gate_first, gate_last = (sizes[str(x.size)]["gate"]["median"] for x in (first, last))
    return {
        "what": "engine.govern of an autonomous write_file overwriting a real file; the gate is the whole call "
        "less the same executor write timed alone, alternating with it",
        "sizes": sizes,
        "growth": {
            "smallest": first.size,
            "largest": last.size,
            "median_ratio": ratio(med_last, med_first),
            "p99_ratio": ratio(p99_last, p99_first),
            "gate_median_ratio": ratio(gate_last, gate_first),
        },
        "pure_decision": pure,
        "split": split,
        "statements": statements,
        "cprofile": cprof,
        "hop": hop,
        "micro_us": micro,
        "store_hops": store_hops,
        "outside_gate_plans": plans,
        "workspace_fs": os.fspath(tmp),
    }


def run(cfg: Config, tmp: Path) -> dict[str, Any]:
    """Entry point for the harness."""
    import anyio

    result: dict[str, Any] = anyio.run(measure, cfg, tmp)
    return result
