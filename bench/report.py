"""Markdown from bench.json: the tables (bench.md) and where the gate's time goes (profile.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _x(value: Any) -> str:
    return "–" if value is None else f"×{value}"


def targets_md(r: dict[str, Any]) -> str:
    """The targets table."""
    lines = ["| target | goal | measured | met |", "|---|---|---|---|"]
    for t in r.get("targets", []):
        lines.append(f"| {t['name']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def _header(r: dict[str, Any], title: str) -> list[str]:
    m = r["machine"]
    return [
        f"# {title}",
        "",
        f"`{r['command']}` — mode **{r['mode']}**, {m['started']}, {r['seconds'].get('total')} s.  ",
        f"Ratchet from `{m['ratchet']['package']}` (checkout at {m['ratchet'].get('repo_head', '?')}"
        + (", with uncommitted changes in server/" if m["ratchet"].get("server_dirty") else "")
        + ").  ",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}, mcp {m['mcp']}, "
        f"aiosqlite {m['aiosqlite']}; scratch on {m['tmp_fs']}; load average "
        f"{m['loadavg_at_start'][0]} at start, {m.get('loadavg_at_end', ['?'])[0]} at end.  ",
        "All times are over repeated calls in this one run: median, p90, p99 in milliseconds unless "
        "marked µs; every ratio compares figures from this same run.",
        "",
    ]


def bench_md(r: dict[str, Any]) -> str:
    """bench/results/bench.md."""
    out = _header(r, "Ratchet benchmarks")
    out += ["## Targets", "", targets_md(r), ""]
    if r.get("errors"):
        out += ["**Errors:**", ""] + [f"- {k}: `{v}`" for k, v in r["errors"].items()] + [""]
    g = r.get("gate")
    if g and "sizes" in g:
        out += [
            "## 1. The gate in process, against history size",
            "",
            f"{g['what']}; starter policies plus one autonomous class; sizes measured in interleaved blocks.",
            "",
            "| recorded actions | calls | whole call: median | p90 | p99 | the write alone (median) "
            "| the gate: call − write (median) | per-round medians of the call | Engine.open | DB size |",
            "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for s in g["sizes"].values():
            f = s["full"]
            rounds = ", ".join(f"{x:.2f}" for x in s["round_medians_ms"])
            alone = f"{s['write_alone']['median']:.3f}" if "write_alone" in s else "–"
            gate = f"{s['gate']['median']:.3f}" if "gate" in s else "–"
            out.append(
                f"| {s['size']:,} | {f['n']} | {f['median']:.3f} | {f['p90']:.3f} | {f['p99']:.3f} "
                f"| {alone} | {gate} | {rounds} "
                f"| {s['engine_open_ms']:.1f} ms | {s['db_bytes'] / 2**20:.0f} MiB |"
            )
        gr = g["growth"]
        pd = g["pure_decision"]
        sp = g["split"]
        out += [
            "",
            f"Growth {gr['smallest']:,} → {gr['largest']:,} rows: median {_x(gr['median_ratio'])}, "
            f"p99 {_x(gr['p99_ratio'])}.",
            "",
            "The split (details in profile.md):",
            "",
            "| part | median | p99 |",
            "|---|---:|---:|",
            f"| pure decision: classify + decide, no I/O ({pd['classes_in_policy']} classes) "
            f"| {pd['classify_and_decide']['median']:.1f} µs | {pd['classify_and_decide']['p99']:.1f} µs |",
            f"| gate without the write (full path minus prepare and the atomic write) "
            f"| {sp['gate_without_write']['median']:.3f} | {sp['gate_without_write']['p99']:.3f} |",
            f"| full recorded path, instrumented (at {max(int(k) for k in g['sizes']):,} rows) "
            f"| {sp['total']['median']:.3f} | {sp['total']['p99']:.3f} |",
            "",
        ]
    rt = r.get("roundtrip")
    if rt and "servers" in rt:
        out += [
            "## 2. Round trip over stdio: `write_file`",
            "",
            f"{rt['what']}; {rt['calls_per_server']} timed calls per server.",
            "",
            "| server | median | p90 | p99 | server CPU per call | first call | median vs bare "
            "| median vs official-fs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        bare = rt["servers"]["bare"]["median"]
        off = rt["servers"].get("official-fs", {}).get("median")
        for name, s in rt["servers"].items():
            out.append(
                f"| {name} | {s['median']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} "
                f"| {_f(s['server_cpu_ms_per_call'], 2)} ms | {_f(s.get('first_call_ms'), 1)} "
                f"| ×{s['median'] / bare:.2f} "
                f"| {('×%.2f' % (s['median'] / off)) if off else '–'} |"
            )
        out.append("")
        for name, v in rt["ratios"].items():
            extra = ", ".join(f"{k} {v[k]}" for k in v if k != "median")
            out.append(f"- {name}: median {_x(v['median'])} ({extra})")
        out += [f"- note: {n}" for n in rt.get("notes", [])]
        out += [
            "- official-fs writes without fsync; ratchet and bare fsync the file and its directory.",
            "",
        ]
    ss = r.get("sessions")
    if ss and "checks" in ss:
        c = ss["checks"]
        lat = ss["latency"]
        out += [
            "## 3. Many sessions, one database",
            "",
            f"{ss['what']}.",
            "",
            "| servers | actions | wall | throughput | latency median | p99 | rows | lost | duplicated "
            "| lock errors | failed calls | checks |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| {ss['sessions']} | {ss['actions']:,} | {ss['wall_seconds']} s | {ss['throughput_per_s']}/s "
            f"| {lat['median']:.2f} | {lat['p99']:.2f} | {c['rows']:,} | {c['lost']} (+{c['lost_files']} files) "
            f"| {c['duplicated_intents'] + c['duplicated_targets'] + c['duplicated_ids']} | {c['lock_errors']} "
            f"| {c['call_failures']} | {'all passed' if c['ok'] else '**FAILED**'} |",
            "",
        ]
    st = r.get("startup")
    if st and "servers" in st:
        out += [
            "## 4. Start-up to the first answered `tools/list`",
            "",
            f"{st['what']}; {st['starts_per_server']} timed starts each after {st['warmup_starts_per_server']} "
            "warm-up start(s).",
            "",
            "| server | median | p90 | max | tools |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, s in st["servers"].items():
            out.append(f"| {name} | {s['median']:.1f} | {s['p90']:.1f} | {s['max']:.1f} | {s['tools']} |")
        out.append("")
        out += [f"- {k}: {_x(v) if isinstance(v, float) else v}" for k, v in st["ratios"].items()]
        out += [f"- note: {n}" for n in st.get("notes", [])]
        out.append("")
    mem = r.get("memory")
    if mem and "servers" in mem:
        out += [
            "## 5. Memory after many actions",
            "",
            f"{mem['what']}.",
            "",
            "| server | actions | peak RSS (VmHWM) | RSS after connect | RSS at end | RSS growth, 2nd half |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, s in mem["servers"].items():
            out.append(
                f"| {name} | {s['actions']:,} | {s['peak_rss_mib']} MiB | {s['rss_after_connect_mib']} MiB "
                f"| {s['rss_at_end_mib']} MiB | {s['rss_growth_second_half_kib']} KiB |"
            )
        out += ["", f"- ratchet/bare peak: {_x(mem['ratios']['ratchet/bare peak'])}", ""]
    red = r.get("redaction")
    if red:
        out += [
            "## 6. Redaction throughput",
            "",
            f"1 MB of mixed text ({red['mixed_text_bytes']:,} characters): {red['current_mb_s']} MB/s "
            f"(the previous patterns, same text, same process: {red['previous_mb_s']} MB/s). 2,000 PEM "
            f"BEGIN lines: {red['pem_2000_begins_current_s']} s (previously {red['pem_2000_begins_previous_s']} s).",
            "",
        ]
    con = r.get("concurrency")
    if con:
        out += [
            "## 7. Concurrent calls in one session",
            "",
            f"{con['calls']} calls of every level fired at once in one in-process session: "
            f"{con['calls_per_second']} calls/s (best of {con['rounds']}).",
            "",
        ]
    out += ["Seconds per bench: " + ", ".join(f"{k} {v}" for k, v in r["seconds"].items()), ""]
    return "\n".join(out)


def gap_all(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The server profile's per-function gap to the bare server (empty when it did not run)."""
    sprof = r.get("server_profile") or {}
    rows: list[dict[str, Any]] = sprof.get("gap_vs_bare", [])
    return rows


def _plain(g: dict[str, Any], size: int) -> str:
    s = g["sizes"].get(str(size))
    return f"{s['full']['median']:.3f}" if s else "?"


def _micro(micro: dict[str, Any], prefix: str) -> str:
    for name, m in micro.items():
        if name.startswith(prefix) and "median" in m:
            return f"{m['median']:.0f} µs"
    return "?"


def _find(rows: list[dict[str, Any]], needle: str) -> dict[str, Any] | None:
    for row in rows:
        if needle in row["function"]:
            return row
    return None


def _profile_rows(rows: list[dict[str, Any]], key: str) -> list[str]:
    lines = ["| function | calls/op | own µs/op | cumulative µs/op |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| `{row['function']}` | {row['calls_per_op']} | {row['tottime_us_per_op']} | {row['cumtime_us_per_op']} |"
        )
    return lines


def profile_md(r: dict[str, Any], results_dir: Path | None = None) -> str:
    """bench/results/profile.md: where the time goes, and what would take it away. `results_dir` holds
    the other benches' results files (run_command, sandbox_reuse, hook_bash) for the sections on
    start-up and on the ways into the sandbox."""
    g = r["gate"]
    out = _header(r, "Where the gate's time goes")
    missed = [t for t in r.get("targets", []) if not t["met"]]
    out += ["## Targets missed", ""]
    out += [f"- {t['name']}: goal {t['goal']}, measured {t['measured']}" for t in missed] or ["- none"]
    out.append("")
    out += _startup_section(r)
    out += _sandbox_section(results_dir)
    if "split" not in g:
        return "\n".join(out)
    sp, db, hop = g["split"], g["split"]["db"], g["hop"]
    largest = max(int(k) for k in g["sizes"])
    phases = sp["phases_median_us"]
    total = sum(phases.values()) or 1.0
    out += [
        f"## One gate call, phase by phase ({sp['calls']} instrumented calls at {largest:,} recorded actions)",
        "",
        "Wrappers, in the bench process only, on the operation's prepare and execute, the result builder and "
        "the store's units of work (`Store.call`, `Store.run`; nothing in `server/` changed), around "
        "`engine.govern`. What it does before the write, less preparing, is deciding and recording the intent "
        "(one unit of work); after it, recording the outcome. Medians per phase, so the column sums to "
        "about the median call.",
        "",
        "| phase | median µs | share |",
        "|---|---:|---:|",
    ]
    out += [f"| {name} | {us:.0f} | {us / total:.0%} |" for name, us in phases.items()]
    out += [
        f"| **sum of medians** | **{total:.0f}** | |",
        "",
        f"Median instrumented call {sp['total']['median']:.3f} ms against {_plain(g, largest)} ms un-instrumented "
        "at this size (the wrappers and the per-unit timing add their own cost, so read the shares more than "
        f"the absolute figures); without `prepare` and the write itself {sp['gate_without_write']['median']:.3f} ms.",
        "",
        "## The database: units of work and round trips",
        "",
        f"- Units of work per call: **{db['units_per_call']:.0f}** "
        f"({', '.join(f'{k} {v:.0f}' for k, v in db['units_by_phase'].items())}), of which went to the "
        f"store's thread (a round trip, a hop): **{db['hops_per_call']:.0f}**; "
        f"SQL statements per call: **{g['statements']['count']}**.",
        f"- The event loop spends **{db['wait_per_call_us']:.0f} µs** per call on the database; the units' "
        f"functions themselves work **{db['inside_sqlite_per_call_us']:.0f} µs** of that. The rest, "
        f"**{db['overhead_per_call_us']:.0f} µs**, is the store's lock, the busy-timeout switch, BEGIN and "
        "COMMIT, and any hop.",
        f"- The same trivial `SELECT 1`: plain sqlite3 {hop['sqlite3_select_1']['median']:.1f} µs; `Store.call` "
        f"through the store's thread {hop['store_call_1_hop']['median']:.1f} µs"
        + (
            f", `Store.call(short=True)` on the loop's thread {hop['store_call_short_no_hop']['median']:.1f} µs"
            if "store_call_short_no_hop" in hop
            else ""
        )
        + "; one aiosqlite "
        f"hop (`execute_fetchall`) {hop['aiosqlite_execute_fetchall_1_hop']['median']:.1f} µs; "
        f"`async with db.execute() as c: await c.fetchone()` (three hops: execute, fetchone, cursor close) "
        f"{hop['aiosqlite_execute_fetchone_close_3_hops']['median']:.1f} µs. Hops per statement of Ratchet's "
        "`Store` helpers: "
        + (", ".join(f"`{k}` {v}" for k, v in g.get("store_hops", {}).items()) or "not measured")
        + ".",
        "",
        "Every statement a gate call runs, with SQLite's plan at this history size "
        f"(statements that scan `actions`: {_scans(g['statements']['statements'])}):",
        "",
        "| # | statement | plan |",
        "|---:|---|---|",
    ]
    for i, st in enumerate(g["statements"]["statements"], 1):
        sql = st["sql"].replace("|", "\\|")
        out.append(f"| {i} | `{sql}` | {'; '.join(st['plan']) or '–'} |")
    micro = g.get("micro_us", {})
    if micro:
        out += [
            "",
            "## Pieces of a write, timed alone (no profiler)",
            "",
            "| piece | median µs | p99 µs |",
            "|---|---:|---:|",
        ]
        for name, m in micro.items():
            if "error" in m:
                out.append(f"| {name} | {m['error']} | |")
            else:
                out.append(f"| {name} | {m['median']:.1f} | {m['p99']:.1f} |")
    out += [
        "",
        "## cProfile of the gate path (event-loop thread; the worker thread is not profiled)",
        "",
        "cProfile's own overhead inflates these (compare the un-profiled split above); `calls/op` counts every "
        "resumption of a coroutine as a call; `select.epoll.poll` is the loop idling while it waits for the "
        "database thread; and cProfile's clock is wall time, so a moment spent waiting for the GIL while the "
        "database thread holds it is charged to whatever the loop thread was running.",
        "",
    ]
    cp = g["cprofile"]
    out += [f"{cp['calls']} calls. By own time:", "", *_profile_rows(cp["by_tottime"], "tottime")]
    out += ["", "Ratchet's and aiosqlite's functions by cumulative time:", ""]
    out += _profile_rows(cp["by_cumtime_ratchet"][:15], "cumtime")
    sprof = r.get("server_profile")
    if sprof and "by_tottime" in sprof:
        out += [
            "",
            f"## `ratchet serve` under cProfile over stdio ({sprof['calls']} calls)",
            "",
            "Two profiled runs of the server, one with a single call and one with the calls added; the tables "
            "are the difference, per call, so start-up, imports and first-call work drop out. By own time:",
            "",
        ]
        out += _profile_rows(sprof["by_tottime"], "tottime")
        out += ["", "Ratchet's and aiosqlite's functions by cumulative time:", ""]
        out += _profile_rows(sprof["by_cumtime_ratchet"][:20], "cumtime")
        out += ["", "The MCP SDK's, anyio's and pydantic's functions by own time:", ""]
        out += _profile_rows(sprof.get("by_tottime_sdk", []), "tottime")
        gap = sprof.get("gap_vs_bare", [])
        if gap:
            own = sprof["own_us_per_op"]
            out += [
                "",
                f"Where Ratchet's server spends more own time per write than the bare server's (total own time per "
                f"write under cProfile, wall clock: ratchet {own['ratchet']} µs, bare {own['bare']} µs):",
                "",
                "| function | calls/op ratchet | calls/op bare | extra own µs/op |",
                "|---|---:|---:|---:|",
            ]
            out += [
                f"| `{row['function']}` | {row['ratchet_calls_per_op']} | {row['bare_calls_per_op']} "
                f"| {row['extra_own_us_per_op']} |"
                for row in gap
            ]
    elif sprof:
        out += ["", f"Server profile failed: {sprof.get('error')}"]
    out += ["", "## Off the gate path: queries that read the whole history", ""]
    out += ["| where | plan | ms at this size |", "|---|---|---:|"]
    for p in g["outside_gate_plans"]:
        out.append(f"| {p['where']} | {'; '.join(p['plan'])} | {p['ms']} |")
    out += ["", "## Findings and proposals", ""]
    out += _findings(r)
    out.append("")
    return "\n".join(out)


def _scans(statements: list[dict[str, Any]]) -> str:
    found = [str(i) for i, st in enumerate(statements, 1) if any(p.startswith("SCAN actions") for p in st["plan"])]
    return ", ".join(f"#{i}" for i in found) or "none"


def _tables(sqls: list[str]) -> str:
    names = []
    for q in sqls:
        m = re.search(r"\bFROM\s+(\w+)", q, re.IGNORECASE)
        if m and f"`{m.group(1)}`" not in names:
            names.append(f"`{m.group(1)}`")
    return ", ".join(names) or "none"


def _findings(r: dict[str, Any]) -> list[str]:
    """Numbered findings, each with its figures from this run and, where there is one, a proposal."""
    items: list[list[str]] = []
    g = r["gate"]
    sp, db = g["split"], g["split"]["db"]
    phases = sp["phases_median_us"]
    by_name = {k.split(" ", 1)[0]: v for k, v in phases.items()}
    total = sum(phases.values()) or 1.0
    execute = by_name.get("execute", 0.0)
    prepare = by_name.get("prepare", 0.0)
    outcome = by_name.get("result", 0.0)
    hop = g["hop"]
    hop_us = hop["store_call_1_hop"]["median"] - hop["sqlite3_select_1"]["median"]
    hops = db["hops_per_call"]
    units = db["units_per_call"]
    statements = g["statements"]["count"]
    pure = g["pure_decision"]["classify_and_decide"]["median"]
    sqls = [st["sql"] for st in g["statements"]["statements"]]
    writes = [i for i, q in enumerate(sqls) if q.upper().startswith(("BEGIN", "INSERT", "UPDATE", "DELETE", "--"))]
    reads = [q for q in sqls[: writes[0] if writes else len(sqls)] if q.upper().startswith("SELECT")]
    mark = next((i for i, q in enumerate(sqls) if q.startswith("--")), len(sqls))
    action_updates = [q for q in sqls[mark:] if q.upper().startswith("UPDATE ACTIONS")]
    rows = g["cprofile"]["by_cumtime_ratchet"]
    relpath = _find(rows, "(relpath)")
    redact = _find(rows, "(redact)")
    micro = g.get("micro_us", {})
    first = min(g["sizes"].values(), key=lambda s: s["size"])
    last = max(g["sizes"].values(), key=lambda s: s["size"])
    gate_only = sp["gate_without_write"]["median"]

    head = (
        f"**The gate's own cost, without the write and the preparation the bare server also does: "
        f"{gate_only:.3f} ms median** (instrumented, at {last['size']:,} rows); the full recorded path "
        f"{sp['total']['median']:.3f} ms. Where it goes, largest first, below."
    )
    if "gate" in last and "write_alone" in last:
        gates = " / ".join(f"{s['gate']['median']:.3f}" for s in g["sizes"].values())
        counts = " / ".join(f"{s['size']:,}" for s in g["sizes"].values())
        head += (
            f" Un-instrumented, as the governed call less the same write timed alone in the same rounds: "
            f"{gates} ms at {counts} rows (whole call {last['full']['median']:.3f} ms, the write alone "
            f"{last['write_alone']['median']:.3f} ms at {last['size']:,})."
        )
    items.append([head, *_what_would_close(g, by_name, micro)])
    by_phase = ", ".join(f"{k} {v:.0f}" for k, v in db["units_by_phase"].items())
    db_item = [
        f"**The database: {units:.0f} units of work per call** ({by_phase}) for {statements} statements, "
        f"{hops:.0f} of them a round trip to the store's thread (a unit runs on the event loop's thread unless "
        f"another process holds SQLite's write lock). The units' functions work "
        f"{db['inside_sqlite_per_call_us']:.0f} µs of the {db['wait_per_call_us']:.0f} µs the loop spends on "
        f"the database. A round trip to the store's thread, were it taken, costs about {hop_us:.0f} µs in this "
        "run (the trivial `SELECT 1` below), far more when the two cores are busy."
    ]
    if hops > 3:
        db_item.append(
            "Run each transaction as **one function on the database thread** (`await "
            "anyio.to_thread.run_sync(fn)` over a plain `sqlite3` connection, or one aiosqlite call wrapping a "
            f"callable): about {hops:.0f} → 3 hops (one to decide, one for the intent, one for the outcome), "
            f"saving roughly {(hops - 3) * hop_us:.0f} µs per call at this run's hop cost."
        )
    multi = {k: v for k, v in g.get("store_hops", {}).items() if v > 1}
    if multi:
        db_item.append(
            "Store helpers that take more than one hop for one statement: "
            + ", ".join(f"`Store.{k}` {v}" for k, v in multi.items())
            + " (`async with db.execute() as c: await c.fetchone()` is three: execute, fetchone, cursor close; "
            "`db.execute_fetchall(...)`, `db.execute_insert(...)` or a bare `await db.execute(...)` is one)."
        )
    merges = []
    if len(reads) > 1:
        merges.append(f"evaluate runs {len(reads)} SELECTs before deciding ({_tables(reads)}), which fit in one query")
    if len(action_updates) > 1:
        merges.append(f"the outcome runs {len(action_updates)} UPDATEs of the same `actions` row, which can be one")
    class_reads = [q for q in sqls if re.search(r"\bFROM\s+class_state\b", q, re.IGNORECASE)]
    if len(class_reads) > 1:
        merges.append(
            f"`class_state` is read {len(class_reads)} times (the decision, then the sample inside the outcome "
            "transaction, which must re-read for concurrent sessions but can share its hop with the writes)"
        )
    if merges:
        db_item.append("Merge statements: " + "; ".join(merges) + ".")
    items.append(db_item)
    if redact:
        items.append(
            [
                f"**Redaction runs {redact['calls_per_op']:.0f} times per write on the event loop** "
                f"(`redact(json.dumps(args))` alone: {_micro(micro, 'redact(json.dumps')} for a ~700-byte file; "
                f"the preview diff: {_micro(micro, 'redact(preview')}), each a pass of every secret pattern over "
                "the whole text, so it grows with the file: the arguments (full content included) and the "
                "preview at insert, the result, the preview again for the tool result, and once more inside "
                "SQLite (`redact(args_json)` in the outcome UPDATE, on the worker thread).",
                "Redact the stored arguments once (the insert already stores them redacted for anything that "
                "is not a draft, so the SQL pass repeats it), reuse the redacted preview for the result, and "
                "fold the patterns into one alternation so each text is scanned once.",
            ]
        )
    items.append(
        [
            f"**The write itself: {execute:.0f} µs ({execute / total:.0%} of the call).** `apply_plan` fsyncs "
            "the temp file and then the directory (two `posix.fsync` per write). That is the durability promise, "
            "and the bare server in the round-trip bench pays it too, so it cancels out of that ratio; but on "
            "this disk it alone uses up most of a 1 ms budget.",
            "If the budget is meant to include the write: make the directory fsync configurable, or skip it "
            "when the file already existed (atomicity stays: readers and a crash still see the old bytes or the "
            "new ones; what is given up is that the rename is durable before the call returns).",
        ]
    )
    items.append(
        [
            f"**Preparing the call: {prepare:.0f} µs** ({_micro(micro, 'fs.plan_write')} for `fs.plan_write` "
            f"alone: confinement {_micro(micro, 'Workspace.relpath')}, reading and hashing the target "
            f"{_micro(micro, 'fs.read_state')}, the diff {_micro(micro, 'unified diff')}). The bare server does "
            "the same work (same executor), so it is not gate overhead. A write confines its path "
            f"{relpath['calls_per_op'] if relpath else '?'} times (`plan_write`, `read_state`, `apply_plan`) and "
            "walks and reads the target twice (the second read is the stale-draft guard in `apply_plan`)."
        ]
    )
    items.append(
        [
            f"**The decision itself is cheap: classify + decide {pure:.1f} µs** median with no I/O (every "
            "class's globs are tried on every call; fine at this policy size). Building the `ToolOutcome` "
            f"result costs {outcome:.0f} µs."
        ]
    )
    scanning = _scans(g["statements"]["statements"])
    items.append(
        [
            (
                "**History size does not reach the gate path.** Every statement is a primary-key or index "
                "SEARCH (or an INSERT); "
                if scanning == "none"
                else f"**Statements {scanning} scan `actions`**, so they grow with history; "
            )
            + f"the median went {first['full']['median']:.3f} → {last['full']['median']:.3f} ms from "
            f"{first['size']:,} to {last['size']:,} rows (×{g['growth']['median_ratio']}, "
            f"p99 ×{g['growth']['p99_ratio']})."
        ]
    )
    scans = [p for p in g.get("outside_gate_plans", []) if any(s.startswith("SCAN") for s in p["plan"])]
    if scans:
        text = (
            f"**Off the gate path, {len(scans)} queries scan the whole history** although a partial index "
            "`actions_open ON actions (status) WHERE status IN ('running', 'drafted', 'approving')` exists: "
            "SQLite uses a partial index only when the query's WHERE implies the index's WHERE, and "
            "`status IN ('running', 'approving')` / `status = 'drafted'` do not. "
            + "; ".join(f"{p['where']}: {p['ms']} ms at {last['size']:,} rows" for p in scans)
            + f". Engine.open took {last['engine_open_ms']} ms at {last['size']:,} rows vs "
            f"{first['engine_open_ms']} ms at {first['size']:,}, and `ratchet serve` opens the engine twice "
            "(the fail-closed check, then the lifespan)."
        )
        st = r.get("startup", {}).get("servers", {})
        big = next((k for k in st if k.startswith("ratchet@")), None)
        if big and "ratchet" in st:
            text += (
                f" Start-up to the first `tools/list`: {st[big]['median']:.0f} ms on that history vs "
                f"{st['ratchet']['median']:.0f} ms on a small one."
            )
        items.append(
            [
                text,
                "Repeat the index's condition in the query (`WHERE status IN ('running', 'drafted', 'approving') "
                "AND status IN ('running', 'approving')`), or index `status` without a WHERE.",
            ]
        )
    rt = r.get("roundtrip")
    if rt and "ratios" in rt:
        rb = rt["ratios"]["ratchet/bare"]
        s = rt["servers"]
        text = (
            f"**Over stdio** Ratchet adds {rb['added_ms_median']} ms to the bare server's "
            f"{s['bare']['median']:.3f} ms median (×{rb['median']}); server CPU per call "
            f"{_f(s['ratchet']['server_cpu_ms_per_call'], 2)} ms vs {_f(s['bare']['server_cpu_ms_per_call'], 2)} "
            f"ms. In process, the gate without the write and the preparation costs {gate_only:.3f} ms "
            "(finding 1): most of the difference."
        )
        sprof = r.get("server_profile") or {}
        srows = sprof.get("by_cumtime_ratchet", [])
        gate_fn, body_fn = _find(srows, "(_gate)"), _find(srows, "(_carry_out)")
        if gate_fn and body_fn:
            text += (
                f" Under cProfile, per call: the resolver `_gate` (the gate's evaluation, before the tool body) "
                f"{gate_fn['cumtime_us_per_op']} µs, the tool body `_carry_out` {body_fn['cumtime_us_per_op']} µs."
            )
        gap = [row for row in sprof.get("gap_vs_bare", []) if "epoll" not in row["function"]][:6]
        if gap:
            own = sprof["own_us_per_op"]
            text += (
                f" Own time per write under cProfile (wall clock, idling included): ratchet {own['ratchet']:.0f} µs, "
                f"bare {own['bare']:.0f} µs; the largest extra, besides idling for the database: "
                + ", ".join(f"`{row['function']}` +{row['extra_own_us_per_op']} µs" for row in gap)
                + "."
            )
        items.append([text])
        ours = [row for row in gap_all(r) if row["function"].startswith("ratchet/")][:6]
        if ours:
            small = [
                "**Smaller per-write costs in Ratchet's own code** (server profile, extra own µs per write over "
                "the bare server): "
                + ", ".join(
                    f"`{row['function']}` +{row['extra_own_us_per_op']} ({row['ratchet_calls_per_op']:g} calls)"
                    for row in ours
                )
                + "."
            ]
            casefold = next((row for row in ours if "_casefold_parts" in row["function"]), None)
            if casefold and casefold["ratchet_calls_per_op"] >= 10:
                small.append(
                    "`Workspace.relpath` case-folds the target and each protected path again for every protected "
                    f"path on every call ({casefold['ratchet_calls_per_op']:g} `_casefold_parts` calls per write): "
                    "fold the protected paths once in `Workspace.__init__` and the target once per call."
                )
            if any(
                name in row["function"]
                for name in ("rules/trust.py", "rules/settle.py", "record/standing.py")
                for row in ours
            ):
                small.append(
                    "The class window (up to `window_size` samples) is parsed from JSON, rebuilt as `Sample` "
                    "objects, scanned for successes and drift, and re-serialized on every write: O(window) Python "
                    "per call. Flat with history, but a running count kept next to the window, or the window kept "
                    "as compact text, would make it O(1)."
                )
            items.append(small)
    mem = r.get("memory", {}).get("servers", {})
    if "ratchet" in mem:
        m = mem["ratchet"]
        text = (
            f"**Memory**: peak RSS {m['peak_rss_mib']} MiB after {m['actions']:,} writes "
            f"({m['rss_after_connect_mib']} MiB after connecting; {m['rss_growth_second_half_kib']} KiB growth over "
            "the second half of the run"
        )
        if "bare" in mem:
            text += f"; the bare server: {mem['bare']['peak_rss_mib']} MiB"
        items.append([text + ")."])
    lines: list[str] = []
    for number, (head, *subs) in enumerate(items, 1):
        lines.append(f"{number}. {head}")
        lines += [f"   - {sub}" for sub in subs]
    return lines


def _what_would_close(g: dict[str, Any], by_name: dict[str, float], micro: dict[str, Any]) -> list[str]:
    """Where the gate's remaining time goes, from this run's figures, and what would take it away."""
    last = max(g["sizes"].values(), key=lambda s: s["size"])
    if "write_alone" not in last:
        return []
    rows = g["cprofile"]["by_cumtime_ratchet"]
    keep = next(
        (
            row
            for row in rows
            if row["function"].startswith("ratchet/record/content.py") and "(keep)" in row["function"]
        ),
        None,
    )
    db = g["split"]["db"]
    execute, alone = by_name.get("execute", 0.0), last["write_alone"]["median"] * 1e3
    subs = [
        f"The write as the gate runs it ({execute:.0f} µs, instrumented) against the same write alone "
        f"({alone:.0f} µs, {execute - alone:+.0f} µs): what the gate adds to it is keeping the prior version for "
        "undo (two files created and renamed in the content store beside the database"
        + (f"; {keep['cumtime_us_per_op']:.0f} µs per call under cProfile" if keep else "")
        + "), and the write's two fsyncs waiting for a journal commit that also carries the record's and the "
        "content store's fresh pages (same file system). What would take it away: keep the prior bytes in the "
        "intent's own row or one append-only file per session instead of two new files per call, and keep "
        "the record on another file system than the workspace.",
        f"The database: {db['units_per_call']:.0f} units of work, their functions "
        f"{db['inside_sqlite_per_call_us']:.0f} µs (SQLite and the Python around each statement) of the "
        f"{db['wait_per_call_us']:.0f} µs the loop spends on them. Most of it is the settling: the class's "
        "window of record (up to `window_size` samples) read, rebuilt, scanned and written back as JSON on "
        "every outcome. A window kept as running counts "
        "(successes, drift, the last failures) beside the samples would make the outcome a few indexed "
        "statements.",
    ]
    if micro:
        subs.append(
            f"Around them, on the event loop: confining and reading the target ({_micro(micro, 'fs.plan_write')}, "
            f"the bare server pays it too), redacting the stored arguments ({_micro(micro, 'redact(json.dumps')}), "
            "classifying against every class's globs, building the result. Each is tens to a few hundred µs; under "
            "1 ms in all needs the two items above first."
        )
    return subs


def _startup_section(r: dict[str, Any]) -> list[str]:
    """Start-up against the bare server: what this run measured, why importing less cannot close it, and
    what the stdio front to a resident server does."""
    start = r.get("startup")
    if not start or "ratchet" not in start.get("servers", {}) or "bare" not in start["servers"]:
        return []
    servers = start["servers"]
    ratchet, bare = servers["ratchet"]["median"], servers["bare"]["median"]
    out = [
        "## Start-up to the first `tools/list`",
        "",
        f"This run: `ratchet serve` {ratchet:.0f} ms, the bare `MCPServer` {bare:.0f} ms (×{ratchet / bare:.2f}, "
        f"{ratchet - bare:+.0f} ms). Both import the MCP SDK (its `mcp/__init__` imports the client side "
        "too, with its pydantic models; the `mcp_types` models alone are most of it), which is most of either "
        "start. On top of it Ratchet does what serving needs and the bare server does not: its own modules "
        "(the CLI's parser imports every command's module, and policy, record, engine and operations are on "
        "the serving path), building 17 tools' argument and output models (the SDK's `func_metadata`; "
        "0.4-0.8 s on a loaded host), and opening the engine twice (the check that fails closed before "
        "speaking MCP, then the server's lifespan: 70-180 ms each on a loaded host).",
        "",
        "So importing less cannot bring Ratchet under the bare server: the bare server's whole start is the "
        "SDK, which Ratchet pays as well. What does is the thin stdio front to a resident server, "
        "`ratchet serve --resident` (mcp/front.py, cli/resident.py): the `ratchet` command imports only the "
        "standard library and hands its stdio, directory, umask and environment over a Unix socket (in the "
        "hook server's private directory, hidden in every sandbox) to a resident that has everything imported "
        "and the server built; it forks a process per session that runs the CLI's own `serve` on them. What is "
        "left of a warm start is an interpreter start, the fork, the fail-closed check and the lifespan "
        "opening the engine, and the first answers.",
        "",
    ]
    resident, cold = servers.get("ratchet --resident"), servers.get("ratchet --resident (cold)")
    if resident:
        out += [
            f"Through the front with its resident running: {resident['median']:.0f} ms "
            f"(×{resident['median'] / bare:.2f} the bare server)"
            + (
                f"; its cold start, which starts the resident and then relays to it, {cold['median']:.0f} ms "
                f"(×{cold['median'] / bare:.2f})."
                if cold
                else "."
            ),
            "",
        ]
    return out


def _sandbox_section(results_dir: Path | None) -> list[str]:
    """`run_command` of `true` and Claude Code's Bash: where the time goes, per way into the sandbox."""
    if results_dir is None:
        return []
    found = {}
    for name in ("run_command", "sandbox_reuse", "hook_bash"):
        path = results_dir / f"{name}.json"
        if path.is_file():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    if not found:
        return []
    out = ["## The ways into the sandbox: `run_command` of `true`, and Claude Code's Bash", ""]
    run = found.get("run_command")
    if run:
        prov = run.get("provenance", {})
        out += [
            f"`{prov.get('command', 'python -m bench.run_command')}` (commit `{prov.get('commit', '?')}`): "
            f"`true` spawned directly {run['direct_ms']['median']:.2f} ms; through the gate in the sandbox "
            f"{run['gated_ms']['median']:.2f} ms (×{run['ratio_median']:.1f}, target ×3); in a class with "
            f"`sandbox = false` {run['gated_unsandboxed_ms']['median']:.2f} ms (that side pays for the "
            "parent-death trampoline, a Python interpreter start, instead of bubblewrap).",
            "",
        ]
    reuse = found.get("sandbox_reuse")
    if reuse:
        prov = reuse.get("provenance", {})
        sides = reuse["sides"]
        out += [
            f"`{prov.get('command', 'python -m bench.sandbox_reuse')}` (commit `{prov.get('commit', '?')}`), "
            "the sandbox alone, without the gate:",
            "",
            "| way in | median ms | p90 ms | ×direct |",
            "|---|---:|---:|---:|",
        ]
        for side, f in sides.items():
            out.append(f"| {side} | {f['median']:.2f} | {f['p90']:.2f} | ×{f['ratio_to_direct']:.1f} |")
        out += [
            "",
            f"Building the plan (binds, git's config targets) once: {reuse['plan_ms']:.1f} ms.",
            "",
        ]
    hook = found.get("hook_bash")
    if hook:
        true = hook["commands"]["true"]
        out += [
            f"Claude Code's Bash under the sandbox (`python -m bench.hook_bash --runs {hook['runs']}`): `true` "
            f"{true['bare']['median']:.2f} ms bare, bubblewrap's floor {true['bwrap-floor']['added_median']:+.2f} ms, "
            f"read-only {true['read-only']['added_median']:+.2f} ms, "
            f"workspace {true['workspace']['added_median']:+.2f} ms; the worst added "
            f"{hook['worst_added_ms']:+.2f} ms per command (target +{hook['target_added_ms']:.0f} ms: "
            f"{'met' if hook['target_met'] else 'missed'}).",
            "",
        ]
    out += [
        "Where the time goes, per governed `true`: one bubblewrap per command (a user, mount, PID, network, "
        "IPC and UTS namespace, a private `/dev`, `/proc` and `/tmp`, a dozen binds), then waiting for the "
        "PID namespace to be torn down after bubblewrap has exited (its first process lingers in the "
        "process group for a few milliseconds; `run_command` waits for it, because until it is gone a "
        "process of the command may still be running). That wait was polled every 20 ms with a /proc scan "
        "through pathlib; it is now polled from half a millisecond up, reading /proc as bytes "
        "(executors/shell.py `_kill_group`, `_group_alive`). Around the spawn the gate itself: classify, "
        "decide, the intent and the outcome in the record, the child's pid recorded before it runs "
        "(a write transaction), and `git config --list` run once per command to neutralise the repository's "
        "config for any git the command starts (executors/git.py `command_env`).",
        "",
        "What would close it: the `reused` row is the floor of a sandbox prepared once per session. It is "
        "not built, because reusing one sandbox gives up what a sandbox per command guarantees by "
        "construction: a private `/tmp` and a PID namespace per command, so that nothing one command "
        "leaves (a file in `/tmp`, a background process) reaches the next. Inside a sandbox without "
        "capabilities a resident runner cannot make a new mount or PID namespace per command, so it would "
        "have to empty `/tmp` and kill every other process in its namespace between commands, and carry "
        "`run_argv`'s guarantees (process-group kill on timeout, capped output of both streams, progress, "
        "stdin) over its own protocol; each of those needs a test that tries to leak across commands. "
        "Claude Code's Bash would reach the same runner through a small client in the rewritten line. "
        "Cheaper steps short of that: cache `command_env`'s config listing on the stat of the repository's "
        "config files (a few ms per command), and record the child's pid in the intent's transaction "
        "instead of one of its own.",
        "",
    ]
    return out
