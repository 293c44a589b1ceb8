"""Every CLI command and every MCP tool is documented in the README; the changelog is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.cli.parser import build_parser
from ratchet.mcp.server import ServerConfig, build_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return sorted(action.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_in_the_readme_and_has_help(command: str) -> None:
    assert f"ratchet {command}" in README, f"`ratchet {command}` is not documented in README.md"
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert parser.description, f"`ratchet {command}` has no --help description"


@pytest.mark.parametrize("command", _commands())
def test_every_option_and_argument_of_every_command_has_help(command: str) -> None:
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    bare = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not (action.help and action.help.strip() and action.help != "==SUPPRESS==")
    ]
    assert bare == [], f"`ratchet {command}` has arguments without help: {bare}"


def test_the_top_level_options_have_help() -> None:
    bare = [a.dest for a in build_parser()._actions if not a.help]
    assert bare == []


@pytest.mark.asyncio
async def test_every_tool_is_in_the_readme(workspace: Path, policies: Path, db: Path) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        tools = [t for t in (await client.list_tools()).tools]
    undocumented = [t.name for t in tools if f"`{t.name}" not in README]
    assert undocumented == []
    assert all(t.description for t in tools)


def test_the_changelog_has_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in text and text.count("\n- ") >= 10


def _security_references() -> list[tuple[str, str | None]]:
    """(test file, test name or None) for every test docs/security.md names; `::name` alone means the
    file named last in the same table cell."""
    import re

    refs: list[tuple[str, str | None]] = []
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        current: str | None = None
        for token in re.findall(r"`([^`]+)`", line):
            named = re.fullmatch(r"(test_\w+\.py)(?:::(\w+))?(?:\[[^\]]*\])?", token)
            alone = re.fullmatch(r"::(\w+)(?:\[[^\]]*\])?", token)
            if named:
                current = named[1]
                refs.append((current, named[2]))
            elif alone and current is not None:
                refs.append((current, alone[1]))
    return refs


def test_every_test_docs_security_names_exists() -> None:
    """The security page is the list of what holds: a renamed or deleted test must not leave it stale."""
    refs = _security_references()
    assert len(refs) >= 40
    missing = []
    for file, name in refs:
        path = ROOT / "tests" / file
        if not path.exists() or (name is not None and f"def {name}(" not in path.read_text()):
            missing.append(f"{file}::{name}" if name else file)
    assert missing == [], f"docs/security.md names tests that do not exist: {missing}"


# -- every figure has its run ----------------------------------------------------------------------
#
# Each figure the README and docs/trust.md quote from a benchmark is read here from the committed
# results file that the benchmark's command wrote, formatted as the docs give it, and found in the doc
# at its place (a pattern whose first group is the figure). A figure edited by hand, or a results file
# replaced without updating the docs, fails the test; so does a doc that names another command or
# commit than the file records.

RESULTS = ROOT / "bench" / "results"
DOCS = {"README.md": ROOT / "README.md", "docs/trust.md": ROOT / "docs" / "trust.md"}


def _results(name: str) -> Any:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _pct(rate: float, digits: int = 2) -> str:
    return f"{rate * 100:.{digits}f}%"


def _calibration_figures() -> list[tuple[str, str, str]]:
    cal = _results("calibration.json")
    ours = {(t["figure"], t["statistic"]): t for t in cal["targets"]["ratchet"]}
    naive = {(t["figure"], t["statistic"]): t for t in cal["targets"]["naive"]}
    exact = cal["exact_check"]
    command = cal.get("provenance", {}).get("command", cal["command"])
    # A results file written before files recorded their commit: the docs name the commit that committed it.
    committed = "measured at" if "provenance" in cal else "committed in"
    commit = cal["provenance"]["commit"] if "provenance" in cal else _last_commit_of(RESULTS / "calibration.json")
    commit = commit or ANY_COMMIT  # without the history, any commit named is taken
    fp85, fp90, fd99 = (ours[(f, "rate")] for f in ("false_promotion_085", "false_promotion_090", "false_demotion_099"))
    earn, d_med, d_p90 = (
        ours[("time_to_earn_099", "median")],
        ours[("time_to_demote_070", "median")],
        ours[("time_to_demote_070", "p90")],
    )

    def count(t: dict[str, Any]) -> str:
        row = next(r for r in _calibration_rows() if r[0] == t["figure"])
        return f"{row[1]} of {row[2]:,}"

    readme = "README.md"
    lead = r"\| a class truly 85% good is promoted within 1,000 actions \| ≤ 0\.5% \| "
    return [
        (readme, r"`bench/results/calibration\.json`, (committed in|measured at) `", committed),
        (readme, r"`bench/results/calibration\.json`, (?:committed in|measured at) `([0-9a-f]+)`", commit),
        (readme, r"simulated classes of known quality \(`([^`]+)`", command),
        (readme, lead + r"([^|]+?) \|", f"{_pct(fp85['value'])} ({count(fp85)})"),
        (
            readme,
            r"promoted within 1,000 actions \| ≤ 0\.5% \| [^|]+\| ([^|]+?) \|",
            _pct(naive[("false_promotion_085", "rate")]["value"], 1),
        ),
        (
            readme,
            r"90% good is promoted within 1,000 actions \| ≤ 5% \| ([^|]+?) \|",
            f"{_pct(fp90['value'])} ({count(fp90)})",
        ),
        (
            readme,
            r"90% good is promoted within 1,000 actions \| ≤ 5% \| [^|]+\| ([^|]+?) \|",
            _pct(naive[("false_promotion_090", "rate")]["value"], 1),
        ),
        (readme, r"to earn a rung \(median\) \| ≤ (\d+) \|", str(earn["target"])),
        (readme, r"to earn a rung \(median\) \| ≤ \d+ \| (\d+) \|", str(earn["value"])),
        (readme, r"is demoted \(median / p90\) \| (≤ \d+ / ≤ \d+) \|", f"≤ {d_med['target']} / ≤ {d_p90['target']}"),
        (readme, r"is demoted \(median / p90\) \| [^|]+ \| (\d+ / \d+) \|", f"{d_med['value']} / {d_p90['value']}"),
        (readme, r"demoted within 1,000 actions \| (≤ \d+%) \|", f"≤ {fd99['target'] * 100:.0f}%"),
        (readme, r"demoted within 1,000 actions \| ≤ \d+% \| ([^|]+?) \|", f"{_pct(fd99['value'])} ({count(fd99)})"),
        (
            readme,
            r"demoted within 1,000 actions \| ≤ \d+% \| [^|]+\| ([^|]+?) \|",
            _pct(naive[("false_demotion_099", "rate")]["value"], 1),
        ),
        ("docs/trust.md", r"Command: `([^`]+)` \(seed", command),
        ("docs/trust.md", r"\(seed \d+\), (?:results committed in|measured at commit) `([0-9a-f]+)`", commit),
        (
            "docs/trust.md",
            r"alone demotes more slowly \(exact (\d+ / \d+);",
            f"{exact['promote_at 0.90']['median']} / {exact['promote_at 0.90']['p90']}",
        ),
        (
            "docs/trust.md",
            r"demotion is slower \(\d+ / \d+; exact (\d+ / \d+) for",
            f"{exact['drift_threshold 2.5']['median']} / {exact['drift_threshold 2.5']['p90']}",
        ),
        (
            "docs/trust.md",
            r"cost such a class its rung in ([\d.]+%) of 1,000-action",
            _detector_rate("before: CUSUM alone, threshold 2.0"),
        ),
    ]


def _last_commit_of(path: Path) -> str | None:
    """The commit that last changed `path` (7 hex digits), from git; None where the history cannot say
    (not a git checkout, or a shallow clone)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    if git("rev-parse", "--is-shallow-repository") != "false":
        return None
    return git("log", "-1", "--format=%h", "--abbrev=7", "--", str(path)) or None


def _calibration_rows() -> list[tuple[str, int, int]]:
    """(figure, events, trials) of the defaults' rates, from calibration.md's main table."""
    import re

    names = {
        "False promotion, true rate 0.85": "false_promotion_085",
        "False promotion, true rate 0.90": "false_promotion_090",
        "False demotion, steady 0.99": "false_demotion_099",
    }
    found = []
    for line in (RESULTS / "calibration.md").read_text(encoding="utf-8").splitlines():
        for label, figure in names.items():
            if line.startswith(f"| {label}"):
                events, trials = re.search(r"\((\d+)/(\d+)\)", line).groups()  # type: ignore[union-attr]
                found.append((figure, int(events), int(trials)))
    return found


def _detector_rate(name: str) -> str:
    for line in (RESULTS / "calibration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {name} |"):
            return line.split("|")[2].strip().split(" ")[0]
    raise AssertionError(f"calibration.md has no detector row {name!r}")


def _bench_figures() -> list[tuple[str, str, str]]:
    bench = _results("bench.json")
    gate, trip = bench["gate"], bench["roundtrip"]["ratios"]
    sizes = [gate["sizes"][n]["full"]["median"] for n in ("1000", "100000", "1000000")]
    gates = [gate["sizes"][n]["gate"]["median"] for n in ("1000", "100000", "1000000")]
    alone = [gate["sizes"][n]["write_alone"]["median"] for n in ("1000", "100000", "1000000")]
    hook = _results("hook.json")
    cases = hook["cases"]
    resident = [c["ratio"] for name, c in cases.items() if name.startswith("hook resident")]
    direct = [c["ratio"] for name, c in cases.items() if name.startswith("hook direct")]
    ungoverned = next(c["ratio"] for name, c in cases.items() if "not governed" in name)
    verify, run, durable, web = (
        _results(f) for f in ("verify.json", "run_command.json", "durability.json", "web.json")
    )
    r = "README.md"
    return [
        (r, r"`bench/results/bench\.json`, measured at commit `([0-9a-f]+)`", bench["machine"]["ratchet"]["repo_head"]),
        (r, r"\| ([\d.]+ / [\d.]+ / [\d.]+) ms \| < 1 ms \|", " / ".join(f"{m:.2f}" for m in gates)),
        (r, r"\| ([\d.]+ / [\d.]+ / [\d.]+) ms; the write alone", " / ".join(f"{m:.2f}" for m in sizes)),
        (r, r"the write alone ([\d.]+ / [\d.]+ / [\d.]+) ms \|", " / ".join(f"{m:.2f}" for m in alone)),
        (r, r"\| flat yes \(×([\d.]+)\)", f"{gate['growth']['median_ratio']:.2f}"),
        (
            r,
            r"the pure decision \(classify \+ decide\) \| (\d+) µs",
            f"{gate['pure_decision']['classify_and_decide']['median']:.0f}",
        ),
        (r, r"the prepare and the write itself \| ([\d.]+) ms", f"{gate['split']['gate_without_write']['median']:.2f}"),
        (r, r"doing the same write \| ×([\d.]+) \(", f"{trip['ratchet/bare']['median']:.2f}"),
        (r, r"doing the same write \| ×[\d.]+ \(\+([\d.]+) ms", f"{trip['ratchet/bare']['added_ms_median']:.1f}"),
        (r, r"server CPU ×([\d.]+)\)", f"{trip['ratchet/bare']['server_cpu']:.2f}"),
        (r, r"\(Node, no fsync\) \| ×([\d.]+)", f"{trip['ratchet/official-fs']['median']:.1f}"),
        (r, r"the bare Python server alone is ×([\d.]+)\)", f"{trip['bare/official-fs']['median']:.1f}"),
        (r, r"10,000 writes \| (\d+) actions/s", f"{bench['sessions']['throughput_per_s']:.0f}"),
        (r, r"\| (\d+) MiB \(×[\d.]+\), no growth", f"{bench['memory']['servers']['ratchet']['peak_rss_mib']:.0f}"),
        (r, r"MiB \(×([\d.]+)\), no growth", f"{bench['memory']['ratios']['ratchet/bare peak']:.2f}"),
        (r, r"\(`([^`]+)`, `bench/results/hook\.json`", hook["provenance"]["command"]),
        (r, r"`bench/results/hook\.json`, commit `([0-9a-f]+)`", hook["provenance"]["commit"]),
        (r, r"through the resident hook server ×([\d.]+–[\d.]+);", f"{min(resident):.1f}–{max(resident):.1f}"),
        (r, r"decided in the hook process ×(\d+–\d+);", f"{min(direct):.0f}–{max(direct):.0f}"),
        (r, r"an ungoverned event ×([\d.]+) \|", f"{ungoverned:.1f}"),
        (r, r"\(`([^`]+)`, `bench/results/verify\.json`", verify["provenance"]["command"]),
        (r, r"`bench/results/verify\.json`, commit `([0-9a-f]+)`", verify["provenance"]["commit"]),
        (r, r"adds (\d+) ms to a write", f"{verify['added_by_check_ms_median']:.0f}"),
        (r, r"to a write, ×([\d.]+) the same check", f"{verify['added_to_check_ratio_median']:.2f}"),
        (r, r"the same check run directly \((\d+) ms\)", f"{verify['check_direct_ms']['median']:.0f}"),
        (r, r"\(`([^`]+)`, `bench/results/run_command\.json`", run["provenance"]["command"]),
        (r, r"`bench/results/run_command\.json`, commit `([0-9a-f]+)`", run["provenance"]["commit"]),
        (
            r,
            r"directly \(`[^`]+`, `bench/results/run_command\.json`, commit `[0-9a-f]+`\) \| ×([\d.]+)",
            f"{run['ratio_median']:.1f}",
        ),
        (r, r"\| ×[\d.]+ \(\+([\d.]+) ms\); the same call in a class", f"{run['overhead_ms_median']:.1f}"),
        (
            r,
            r"`sandbox = false` took ([\d.]+ ms (?:less|more))",
            f"{abs(run['sandbox_ms_median']):.1f} ms {'less' if run['sandbox_ms_median'] > 0 else 'more'}",
        ),
        (
            r,
            r"one bubblewrap per command \(`RATCHET_SANDBOX_REUSE=off`\) ×(\d+\.\d)",
            f"{run['ratio_per_call_sandbox_median']:.1f}",
        ),
        (r, r"\(`([^`]+)`, `bench/results/durability\.json`", durable["provenance"]["command"]),
        (r, r"`bench/results/durability\.json`, commit `([0-9a-f]+)`", durable["provenance"]["commit"]),
        (r, r"durability\.json`, commit `[0-9a-f]+`\) \| ×([\d.]+) \(", f"{durable['ratio_median']:.2f}"),
        (r, r"\| ×[\d.]+ \(\+([\d.]+) ms a call\)", f"{durable['added_ms_median']:.1f}"),
        (r, r"\(`([^`]+)`, `bench/results/web\.json`", web["provenance"]["command"]),
        (r, r"`bench/results/web\.json`, commit `([0-9a-f]+)`", web["provenance"]["commit"]),
        (r, r"first paint (\d+) ms \(×", f"{web['full']['first_paint_ms']:.0f}"),
        (r, r"first paint \d+ ms \(×([\d.]+)\)", f"{web['ratio']['first_paint_ms']:.2f}"),
        (r, r"interactive (\d+) ms \(×", f"{web['full']['interactive_ms']:.0f}"),
        (r, r"interactive \d+ ms \(×([\d.]+)\)", f"{web['ratio']['interactive_ms']:.2f}"),
        (r, r"all 500 rendered ([\d.]+) s \(×", f"{web['full']['complete_ms'] / 1000:.2f}"),
        (r, r"all 500 rendered [\d.]+ s \(×([\d.]+)\)", f"{web['ratio']['complete_ms']:.2f}"),
        (r, r"(\d+) requests either way", f"{web['full']['requests']:.0f}"),
        *_writer_figures(),
        *_busy_figures(),
        *_startup_figures(),
    ]


def _startup_figures() -> list[tuple[str, str, str]]:
    """The README's start-up row, from `python -m bench.startup` (bench/results/startup.json)."""
    st = _results("startup.json")
    servers, ratios, load = st["servers"], st["ratios"], st["load_average"]
    ones = (load["before"][0], load["after"][0])
    r = "README.md"
    lead = r"`ratchet serve --resident` with its resident running "
    return [
        (r, r"\(`([^`]+)`, `bench/results/startup\.json`", st["provenance"]["command"]),
        (r, r"`bench/results/startup\.json`, commit `([0-9a-f]+)`", st["provenance"]["commit"]),
        (
            r,
            r"startup\.json`, commit `[0-9a-f]+`, load average ([\d.]+ to [\d.]+)",
            f"{min(ones):.1f} to {max(ones):.1f}",
        ),
        (r, lead + r"([\d.]+) s:", f"{servers['ratchet --resident']['median'] / 1000:.2f}"),
        (r, lead + r"[\d.]+ s: ×([\d.]+) the bare server", f"{ratios['resident/bare']:.2f}"),
        (r, r"the bare server \(([\d.]+) s\); its cold start", f"{servers['bare']['median'] / 1000:.2f}"),
        (
            r,
            r"its cold start \(no resident yet\) ([\d.]+) s",
            f"{servers['ratchet --resident (cold)']['median'] / 1000:.2f}",
        ),
        (r, r"its cold start \(no resident yet\) [\d.]+ s, ×([\d.]+);", f"{ratios['resident cold/bare']:.2f}"),
        (r, r"`ratchet serve` in its own process ([\d.]+) s", f"{servers['ratchet']['median'] / 1000:.2f}"),
        (r, r"in its own process [\d.]+ s, ×([\d.]+) the bare server", f"{ratios['ratchet/bare']:.2f}"),
        (r, r"×([\d.]+) the official git server", f"{ratios['ratchet/official-git']:.2f}"),
    ]


def _busy_figures() -> list[tuple[str, str, str]]:
    evidence = _results("evidence.json")
    smallest = min(row["size"] for row in evidence["rows"])
    rows = {r["backend"]: r for r in evidence["rows"] if r["size"] == smallest}  # the ratios are at 10^5
    r = "README.md"
    return [
        (r, r"`bench/results/evidence\.json`, commit `([0-9a-f]+)`", evidence["provenance"]["commit"]),
        *(
            (r, rf"{name}: metrics ×([\d.]+)", f"{rows[backend]['metrics_x_status']:.2f}")
            for name, backend in (("SQLite", "sqlite"), ("PostgreSQL", "postgresql"))
        ),
        *(
            (r, rf"{name}: metrics ×[\d.]+, report --html ×([\d.]+)", f"{rows[backend]['report_html_x_status']:.2f}")
            for name, backend in (("SQLite", "sqlite"), ("PostgreSQL", "postgresql"))
        ),
    ]


def _writer_figures() -> list[tuple[str, str, str]]:
    writers = _results("writers.json")

    def runs(which: str) -> dict[int, dict[str, Any]]:
        found = writers[which]["throughput"]
        return {t["processes"]: t for t in found if t["backend"] == "postgresql"}

    own, one = runs("own_class"), runs("one_class")
    r = "README.md"
    return [
        (r, r"`bench/results/writers\.json`, commit `([0-9a-f]+)`", writers["provenance"]["commit"]),
        (
            r,
            r"PostgreSQL, a class each: lock wait ([\d.]+% / [\d.]+% / [\d.]+% / [\d.]+%) of",
            " / ".join(f"{own[n]['lock_wait_share']:.1%}" for n in (1, 2, 4, 8)),
        ),
        (r, r"all in one class: ([\d.]+%) at 8", f"{one[8]['lock_wait_share']:.1%}"),
        (
            r,
            r"(0) lost, 0 duplicated in every run \|",
            str(sum(t["lost"] + t["duplicated"] for w in (own, one) for t in w.values())),
        ),
    ]


def _reviewer_figures() -> list[tuple[str, str, str]]:
    """The README's table of the delegated reviewer's simulation, from bench/results/reviewer.json."""
    rev = _results("reviewer.json")
    fig, main = rev["figures"], rev["figures"]["main"]
    a, c = main["a"], main["c"]
    seventy = fig["seventy"]
    drift = {key: value["audits"]["median"] for key, value in fig["drift"].items()}
    pooled = fig["pooling"]

    def median(key: str) -> str:
        return "never" if drift[key] is None else str(drift[key])

    r = "README.md"
    lead = r"actions 5,001–10,000, \(a\) → \(c\) \| "
    return [
        (
            r,
            r"simulated people and reviewers \(`([^`]+)`, `bench/results/reviewer\.json`",
            rev["provenance"]["command"],
        ),
        (r, r"`bench/results/reviewer\.json`, measured at commit `([0-9a-f]+)`", rev["provenance"]["commit"]),
        (
            r,
            r"human prompts per 1,000 " + lead + r"5× fewer \| ([^|]+?) \|",
            f"{a['second']['prompts']['mean']:.0f} → {c['second']['prompts']['mean']:.0f} "
            f"({c['second']['prompt_ratio']['ratio']:.2f}× fewer)",
        ),
        (
            r,
            r"the same, actions 1–5,000 \| reported \| ([^|]+?) \|",
            f"{c['first']['prompt_ratio']['ratio']:.2f}× fewer",
        ),
        (
            r,
            r"bad actions run per 1,000 " + lead + r"≤ \(a\) \+ 1 \| ([^|]+?) \|",
            f"{a['second']['bad_runs']['mean']:.2f} → {c['second']['bad_runs']['mean']:.2f}",
        ),
        (
            r,
            r"a 70%-agreement reviewer gains authority[^|]*\| ≤ 1% \| ([^|]+?) \|",
            f"{100 * seventy['issue']['rate']:.1f}% / {100 * seventy['guarded']['rate']:.1f}% "
            f"of {seventy['guarded']['trials']}",
        ),
        (
            r,
            r"drifts to 70% agreement[^|]*\| ≤ 20 \| ([^|]+?) \|",
            f"{median('to 70% agreement|issue')} / {median('to 70% agreement|guarded')}",
        ),
        (
            r,
            r"drifts to a rubber stamp[^|]*\| ≤ 20 \| ([^|]+?) \|",
            f"{median('to a rubber stamp|issue')} / {median('to a rubber stamp|guarded')}",
        ),
        (
            r,
            r"approves source on docs' record[^|]*\| never \| ([^|]+?) \|",
            f"{100 * pooled['guarded, pooled']['split_gains']['rate']:.1f}% / "
            f"{100 * pooled['guarded, pooled alone']['split_gains']['rate']:.1f}%",
        ),
    ]


ANY_COMMIT = r"[0-9a-f]{7}"
TRUST_TABLE_ROWS = (
    "| False ",
    "| Time to ",
    "| spans,",
    "| before:",
    "| CUSUM ",
    "| defaults |",
    "| promote_at 0",
    "| drift_threshold ",
)


def figure_mismatches(texts: dict[str, str]) -> list[str]:
    """Every figure of the docs (`texts`: doc name -> text) that is missing or differs from its results
    file, as a line naming the doc, the place, what the doc says and what the file says."""
    import re

    problems = []
    for doc, pattern, expected in _calibration_figures() + _bench_figures() + _reviewer_figures():
        found = re.search(pattern, texts[doc])
        if found is None:
            problems.append(f"{doc}: no figure at /{pattern}/ (expected {expected!r})")
        elif not (re.fullmatch(expected, found[1]) if expected == ANY_COMMIT else found[1] == expected):
            problems.append(f"{doc}: /{pattern}/ says {found[1]!r}, its results file {expected!r}")
    # docs/trust.md's calibration tables are calibration.md's rows, verbatim.
    rows = set((RESULTS / "calibration.md").read_text(encoding="utf-8").splitlines())
    for line in texts["docs/trust.md"].splitlines():
        table_row = line.startswith(TRUST_TABLE_ROWS)
        if table_row and line not in rows:
            problems.append(f"docs/trust.md: table row not in bench/results/calibration.md: {line}")
    return problems


def _texts() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in DOCS.items()}


def test_every_figure_in_the_docs_matches_its_results_file() -> None:
    assert figure_mismatches(_texts()) == []


@pytest.mark.parametrize(
    ("doc", "old", "new"),
    [
        ("README.md", "| 2.83% (34 of 1,200) |", "| 2.38% (34 of 1,200) |"),  # a rate typed wrong
        ("README.md", "| ≤ 9 / ≤ 20 |", "| ≤ 8 / ≤ 20 |"),  # a target the bench does not use
        ("README.md", "0.00% (0 of 400)", "0.00% (0 of 2,000)"),  # a run size it did not have
        ("README.md", "| 9.86 / 9.70 / 10.33 ms |", "| 9.86 / 9.70 / 10.38 ms |"),
        ("docs/trust.md", "| 52 / 121 | 8 / 18 |", "| 52 / 112 | 8 / 18 |"),  # a trade-off table cell
        ("README.md", "| 100.0% / 0.0% of 240 |", "| 10.0% / 0.0% of 240 |"),  # the reviewer's simulation
    ],
)
def test_a_planted_mismatch_is_caught(doc: str, old: str, new: str) -> None:
    texts = _texts()
    assert old in texts[doc]
    texts[doc] = texts[doc].replace(old, new, 1)
    problems = figure_mismatches(texts)
    assert len(problems) == 1 and problems[0].startswith(doc), problems
