"""Mutation testing of the modules Ratchet's security and trust claims rest on (cosmic-ray).

    .venv/bin/pip install -e '.[mutation]'
    nice -n 19 .venv/bin/python -m bench.mutation [--modules redact,chain,...] [--label after] [--timeout 180]
    nice -n 19 .venv/bin/python -m bench.mutation --modules redact --label before --tests-from COMMIT
    nice -n 19 .venv/bin/python -m bench.mutation --modules roles --label before --tests-from COMMIT \
        --tests "tests/test_roles.py::test_db_roles_needs_postgresql ..."   # a selection of that commit's tests

Each module is mutated one small change at a time (a comparison flipped or moved by one, `and` for
`or`, a `not` added or removed, a number changed, a loop made to run zero times, `break` for
`continue`, an exception type replaced, a decorator removed, `+` for `-` and `*` for `/`), and after
each change only the test files that cover the module are run (`MODULES` below, one worker). A mutant is
*killed* when a test fails (or the run times out), *survives* when every test passes: a survivor is a
change to the code that no test notices.

Why cosmic-ray: it writes each mutant into the source file on disk and runs an arbitrary test command,
so the tests that drive Ratchet as a real subprocess (`ratchet serve`, `ratchet hook`, the sandbox's
bubblewrap) run the mutant too. mutmut 3 instead switches mutants inside the test process through its
own copy of the sources (`mutants/`), which a console script started by a test does not import. The
working tree is never touched: the sources and tests are copied to a scratch directory and the copy is
put first on `PYTHONPATH`, so the installed `ratchet` console script imports the mutated copy.

Results go to `bench/results/mutation.json` (merged: one entry per module and label, so a `before`
run and an `after` run sit side by side) and `bench/results/mutation.md` (the score per module, before
and after, and every survivor with its place). It is not part of CI: a module takes minutes to an hour
on 2 cores. How often: one module's run whenever that module or its tests change (in the same change,
with the report committed), every module once a week on a scheduled job and before each release; a
score that drops, or a survivor nobody has judged, is a finding like a failing test.

Test selection (`MODULES`): the narrowest set of test files that still exercises the module, the fastest
first (pytest runs with `-x`, so a mutant killed by the first file costs only that file). A module with
only slow end-to-end tests gets unit tests of its own rule (as rules/provenance.py has) rather than a
run of hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.provenance import REPO, stamp

RESULTS = Path(__file__).parent / "results"

# module (under server/ratchet) -> the test files (and an optional -k selection) that cover it.
MODULES: dict[str, tuple[str, ...]] = {
    "redact.py": ("tests/test_secrets.py", "-k", "not linearly and not never_reach"),
    "record/chain.py": ("tests/test_integrity.py",),
    "record/integrity.py": ("tests/test_integrity.py",),
    # The rule case by case (milliseconds) and the clock's own tests; test_provenance.py drives the same rule
    # through servers (80 s a run) and adds nothing these do not check.
    "rules/provenance.py": (
        "tests/test_provenance_rule.py",
        "tests/test_parallel_reading.py::test_an_answer_is_timed_from_the_later_of_its_question_and_the_sessions_previous_answer",
        "tests/test_provenance.py::test_a_question_asked_anew_is_timed_anew",
    ),
    "rules/gate.py": ("tests/test_gate.py",),
    # The rule's own unit tests first (seconds), then the record's replay and padding through a real database:
    # with -x a mutant killed early costs only the first file.
    "rules/settle.py": (
        "tests/test_trust.py",
        "tests/test_probation.py",
        "tests/test_settle_replay.py",
        "tests/test_padding.py",
    ),
    "policy/options.py": ("tests/test_hostile_argv.py",),
    "policy/argv.py": ("tests/test_hostile_argv.py", "tests/test_shell.py"),
    "policy/unwrap.py": ("tests/test_hostile_argv.py", "tests/test_shell.py"),
    "policy/shell_lexer.py": ("tests/test_hostile_argv.py", "tests/test_shell.py"),
    "policy/argv_options.py": ("tests/test_hostile_argv.py", "tests/test_shell.py"),
    "executors/confined.py": ("tests/test_checks.py", "tests/test_verify.py"),
    "executors/workspace.py": ("tests/test_confinement.py", "tests/test_workspace.py"),
    # The plan read without running it (a second), then bubblewrap run and attacked (minutes).
    "executors/sandbox.py": ("tests/test_sandbox_plan.py", "tests/test_sandbox.py"),
    # The roles' own rules without a database (milliseconds), then the functions the engine and `db roles` /
    # `db check` call, in process against a real PostgreSQL (seconds). The guards' SQL is no Python cosmic-ray
    # can mutate (SQL_MUTANTS below tries them against the tests that attack them), and the rest of
    # test_roles.py (minutes: CLI processes and servers) reaches no line of roles.py's Python these do not.
    "record/roles.py": (
        "tests/test_roles_rules.py",
        "tests/test_roles.py::test_each_login_is_told_whether_it_may_review_and_whose_it_is",
        "tests/test_roles.py::test_install_and_state_in_process",
    ),
    "record/binding.py": ("tests/test_hook_binding.py",),  # the SQL that binds a hook outcome to its call
    # A hook dialog's answer timed across hook processes (the previous answer kept in the record): the
    # in-process case with exact moments first, then the real hook processes.
    "engine/dialog.py": (
        "tests/test_provenance.py::test_hook_answers_given_at_one_moment_are_one_reading",
        "tests/test_hook_reading.py",
    ),
    "record/answers.py": (
        "tests/test_provenance.py::test_hook_answers_given_at_one_moment_are_one_reading",
        "tests/test_hook_reading.py",
    ),
}
SHORT = {Path(m).stem: m for m in MODULES}

# One mutant per kind of mistake, not every operator against every other: the comparisons negated or
# moved across their boundary, + and -, * and /, `not` removed, a unary minus dropped; the rest of
# cosmic-ray's operators as they are, except the random variable replacer and inserter.
KEEP_COMPARISONS = (
    "Eq_NotEq|NotEq_Eq|Lt_GtE|LtE_Gt|Gt_LtE|GtE_Lt|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In"
)
EXCLUDED_OPERATORS = (
    r"core/ReplaceBinaryOperator_(?!(Add_Sub|Sub_Add|Mul_Div|Div_Mul)$)",
    rf"core/ReplaceComparisonOperator_(?!({KEEP_COMPARISONS})$)",
    r"core/ReplaceUnaryOperator_(?!(Delete_Not|USub_UAdd)$)",
    r"core/Variable",
)


# Mutants cosmic-ray cannot make: its operators change Python, never the text of a string, and what the hook
# binding holds is said in SQL (the audit's surviving break was one: `tool_use_id` ignored in the WHERE). Each
# is (the text as written, the text mutated); the text occurs exactly once in the module, and the mutated SQL
# keeps its placeholders, so it runs and answers differently. A condition is dropped by turning it into
# `? IS NOT NULL` (true for every value bound), which keeps the parameters as they are. Run after cosmic-ray's
# mutants with the same test command, and counted with them (operator `SqlMutant`).
SQL_MUTANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "record/binding.py": (
        ("WHERE external_id = ? AND session_id = ?", "WHERE ? IS NOT NULL AND session_id = ?"),
        ("WHERE external_id = ? AND session_id = ?", "WHERE external_id = ? AND ? IS NOT NULL"),
        ("external_tool IS NULL OR external_tool = ?) ORDER", "external_tool IS NULL OR ? IS NOT NULL) ORDER"),
        ("(? IS NULL OR external_tool IS NULL OR external_tool = ?) ORDER", "(? IS NULL OR external_tool = ?) ORDER"),
        (
            "(? IS NULL OR external_tool IS NULL OR external_tool = ?) ORDER",
            "(? IS NOT NULL AND external_tool = ?) ORDER",
        ),
        ("ORDER BY id DESC LIMIT 1", "ORDER BY id LIMIT 1"),
        ("AND session_id = ? AND status IN ({_WITH_CLIENT_SQL})", "AND session_id = ? AND status IS NOT NULL"),
        ("WHERE session_id = ? AND status IN ({_WITH_CLIENT_SQL})", "WHERE session_id = ? AND status IS NOT NULL"),
        ("WHERE session_id = ? AND status", "WHERE ? IS NOT NULL AND status"),
        ('external_tool IS NULL OR external_tool = ?)",', 'external_tool IS NULL OR ? IS NOT NULL)",'),
        ("AND external_id IS NOT NULL AND", "AND"),
        ("SELECT DISTINCT external_id", "SELECT external_id"),
        (
            "SET external_id = ?, external_tool = ? WHERE id = ?",
            "SET external_id = ?, external_tool = NULL WHERE ? IS NOT NULL AND id = ?",
        ),
    ),
    # The guards: each refusal's condition made false in turn (`IF false`), the trigger otherwise intact.
    "record/roles.py": (
        ('IF {_rank("NEW.level")} > {_rank("OLD.level")} THEN', "IF false THEN"),
        ("IF NEW.pinned IS DISTINCT FROM OLD.pinned THEN", "IF false THEN"),
        ('IF {_rank("NEW.policy_start")} > {_rank("OLD.policy_start")} THEN', "IF false THEN"),
        ("AND ratchet_successes(NEW.window_json) > ratchet_successes(OLD.window_json) THEN", "AND false THEN"),
        ("IF NEW.kind NOT IN ({kinds}) OR", "IF false OR"),
        ('OR {_rank("NEW.to_level")} > {_rank("NEW.from_level")} THEN', "OR false THEN"),
        ("IF NEW.id <= coalesce((SELECT max(id) FROM transitions), 0) THEN", "IF false THEN"),
        ("IF recorded IS NULL OR NEW.from_level <> recorded THEN", "IF false THEN"),
        ("OLD.epoch) OR NEW.ok > OLD.ok THEN", "OLD.epoch) OR false THEN"),
        ("IF judged IS NULL OR judged <> NEW.class THEN", "IF false THEN"),
        ("IF NEW.epoch <> coalesce(", "IF false AND NEW.epoch <> coalesce("),
        ("IF NEW.ok <> 0 AND coalesce(", "IF false AND coalesce("),
        ("IF ({new_content}) IS DISTINCT FROM ({old_content}) THEN", "IF false THEN"),
        ("NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status, NEW.status) IN ({moves}) THEN", "false THEN"),
        ("AND NOT (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ({final})) THEN", "AND false THEN"),
        ("IF NEW.approval_json IS DISTINCT FROM OLD.approval_json OR NEW.reviewed_by", "IF false OR NEW.reviewed_by"),
        ("IF NEW.status NOT IN ({born}) OR NEW.approval_json IS NOT NULL", "IF false OR NEW.approval_json IS NOT NULL"),
        ("AND NOT pg_has_role(current_user, r.reviewer, 'MEMBER'))", ")"),
    ),
}
# The tests an SQL mutant is run against when not the module's (MODULES): the guards are tried by the tests
# that attack them, which the module's Python needs none of.
SQL_TESTS: dict[str, tuple[str, ...]] = {
    "record/roles.py": tuple(
        f"tests/test_roles.py::{name}"
        for name in (
            "test_the_agent_role_cannot_forge_trust_and_the_reviewer_role_can",
            "test_the_agent_role_cannot_take_a_level_from_a_row_it_writes",
            "test_a_level_row_that_does_not_continue_is_broken_and_verify_says_so",
            "test_the_agent_role_cannot_rewrite_an_action_it_recorded",
            "test_samples_keep_their_class_epoch_and_action",
        )
    ),
}

ONE_COLUMN = "a one-column row (or a one-column query's rows): [-1] is [0]; the mutant [1] is an IndexError, killed"
# Survivors judged harmless, by module and the surviving line's code (stripped): why no test can or
# should tell the mutant from the original. Shown beside each such survivor in mutation.md.
HARMLESS: dict[tuple[str, str], str] = {
    ("redact.py", "MAX_CHARS = 4_000_000  # about 4 MB of text: more is cut (with a marker) before it is scanned"): (
        "the cap's exact size is a tuning figure; the tests read the constant and check the cut happens only past it"
    ),
    ("redact.py", "OFF_LOOP_CHARS = 64 * 1024  # longer texts are redacted in a worker thread, off the event loop"): (
        "a threshold for where the work runs, not what it does: the tests check both sides of the constant"
    ),
    (
        "redact.py",
        "if end < 0:",
    ): "`end` is searched from past the BEGIN line, so it is never 0: `< 1` and `<= 0` equal `< 0`",
    ("redact.py", "stop = len(text) if close < 0 else close + 5"): (
        "only `close <= 0` / `close < 1` survive: `close` is searched from past the END line, so it is never 0"
    ),
    ("redact.py", 'if label is None or "PRIVATE KEY" not in label.group(1):'): (
        "group(0) is the whole BEGIN line, which holds PRIVATE KEY exactly when its label (group 1) does"
    ),
    ("record/chain.py", "facts = dict(zip(names, row[: len(names)], strict=True))"): (
        "the row is sliced to exactly len(names) values, so zip's strict check can never fire"
    ),
    (
        "record/chain.py",
        "@dataclass(frozen=True)",
    ): "whether the verification result is frozen changes no figure it holds",
    (
        "record/chain.py",
        "if first is None or first[0] != PENDING:",
    ): "`first` is a one-column row: first[-1] is first[0]",
    ("record/chain.py", "row_id = 1 if last is None else int(last[0]) + 1"): (
        "only the first row's id moves (0 or 2): the chain links rows by order, and ids stay unique"
    ),
    ("rules/provenance.py", "_MAX_WAITING = 512"): (
        "a memory bound on questions never answered; the test reads the constant and checks the oldest is "
        "forgotten just past it, whatever its value"
    ),
    ("rules/provenance.py", "def asked(self, key: str, *, fresh: bool) -> None:"): (
        "the `*` before `fresh` read as a product: as `/`, `key` becomes positional-only and `fresh` may be "
        "positional; every caller passes `key` by position and `fresh` by name"
    ),
    (
        "rules/settle.py",
        "sample: str | None, *, edited: bool, answer: str | None, failed: bool, counts_failures: bool",
    ): (
        "the `*` before the keyword-only parameters read as a product: as `/`, `sample` becomes positional-only "
        "and the rest may be positional; every caller passes `sample` by position and the rest by name"
    ),
    ("record/answers.py", "return None if row is None or row[0] is None else float(row[0])"): (
        "`row` is a one-column row (max(answered_at)): row[-1] is row[0]"
    ),
    ("engine/dialog.py", "*,"): (
        "the `*` that makes the later parameters keyword-only read as a product: as `/` the first three become "
        "positional-only, and the one caller passes those by position and the rest by name"
    ),
    ("engine/dialog.py", "seconds = max(0.0, moment - (asked if start is None else start))"): (
        "only the floor of -1 survives: the previous answer is one from before this answer's moment and the moment "
        "is never before the question, so the difference is never negative; the floor of 1 is killed by "
        "test_provenance.py::test_hook_answers_given_at_one_moment_are_one_reading"
    ),
    ("rules/gate.py", "*,"): (
        "cosmic-ray reads the `*` that makes the later parameters keyword-only as a product: as `/` the first two "
        "become positional-only, and every caller passes those by position and the rest by name"
    ),
    ("rules/gate.py", "session_failures: int = 0,"): (
        "only the default of -1 survives: a policy's limit is at least 1 (validated at load), so -1 trips nothing "
        "that 0 does not; the default of 1 is killed by "
        "test_gate.py::test_a_call_with_no_failures_reported_is_not_halted"
    ),
    ("rules/gate.py", "if pinned is not None and pinned < class_level:"): (
        "a pin at the class's own level lowers nothing: its trigger would cap at the class level, and only "
        "triggers that lowered the call are kept"
    ),
    ("record/binding.py", "return {str(r[0]) for r in rows}"): (
        "only r[-1] survives (r[1] is an IndexError): the query selects one column, so r[-1] is r[0]"
    ),
    ("record/binding.py", "SELECT DISTINCT external_id -> SELECT external_id"): (
        "the ids are gathered into a set, which drops the duplicates DISTINCT would"
    ),
    ("record/binding.py", "AND external_id IS NOT NULL AND -> AND"): (
        "a call waits for its client (allowed or asked) only when it was recorded by record_external, which binds "
        "its id in the same unit of work: no waiting row has a NULL id, and an id of 'None' would match none"
    ),
    ("record/roles.py", 'schema = str(conn.execute("SELECT current_schema()").fetchone()[0])'): ONE_COLUMN,
    ("record/roles.py", "str(r[0])"): ONE_COLUMN,
    ("record/roles.py", "if conn.execute(\"SELECT to_regclass('ratchet_people') IS NULL\").fetchone()[0]:"): ONE_COLUMN,
    (
        "record/roles.py",
        'return str(conn.execute("SELECT ratchet_person(session_user::text)").fetchone()[0])',
    ): ONE_COLUMN,
    ("record/roles.py", "return bool(row[0])"): ONE_COLUMN,
    ("record/roles.py", "if conn.execute(\"SELECT to_regclass('ratchet_roles') IS NULL\").fetchone()[0]:"): ONE_COLUMN,
    ("record/roles.py", 'problems += [f"{r[0]} not granted" for r in ungranted]'): (
        "two mutants, one place: r[-1] is r[0] (a one-column query), equivalent; r[1] (an IndexError once a table "
        "is not granted) survived the after-run and is killed since by "
        "test_roles.py::test_install_and_state_in_process (a table created after `db roles`)"
    ),
}
# What a reader of a run must know that its figures do not say, by module and label.
NOTES: dict[tuple[str, str], str] = {
    ("record/binding.py", "after"): (
        "counted killed, the SQL mutant `AND external_id IS NOT NULL AND -> AND` survives when applied by hand "
        "(test_hook_binding.py: 8 passed); the run was at a load average of 13 to 14, where its test run failed "
        "or passed the timeout. It is equivalent (listed with its reason in the `before` survivors), so the score "
        "among the mutants that are not equivalent stays 14/14"
    ),
    ("record/roles.py", "after"): (
        'of the two survivors at `problems += [f"{r[0]} not granted" ...]` one (r[1]) is not equivalent and is '
        "killed since (see its row), so the share among the mutants that are not equivalent is one lower than shown "
        "(88 of 90; both real survivors killed since, each checked by applying it by hand). No `before` run: with "
        "the tests of before, each of about 25 survivors would have run the test_roles.py tests that reach roles.py's "
        "Python only through CLI processes, minutes each on this machine"
    ),
}
# Survivors of the committed run killed by a test written after it (each checked by applying the one
# mutant by hand and seeing the test fail): the next run counts them as killed.
KILLED_SINCE: dict[tuple[str, str], str] = {
    ("record/roles.py", "OR {_rank(NEW.to_level)} > {_rank(NEW.from_level)} THEN -> OR false THEN"): (
        "test_roles.py::test_the_agent_role_cannot_forge_trust_and_the_reviewer_role_can (a demotion that raises)"
    ),
    (
        "record/chain.py",
        "kept = {name: value for name, value in facts.items() if value is not None or name not in LATER_FACTS}",
    ): ("test_integrity.py::test_the_hash_of_a_row_is_the_documented_formula"),
    (
        "record/chain.py",
        "break",
    ): "test_integrity.py::test_a_record_from_before_the_chain_is_chained_once_table_by_table",
    ("record/chain.py", 'GENESIS = "0" * 64'): "test_integrity.py::test_the_hash_of_a_row_is_the_documented_formula",
    ("record/chain.py", 'text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)'): (
        "test_integrity.py::test_the_hash_of_a_row_is_the_documented_formula"
    ),
    ("record/chain.py", "found_r = any(h[:32] == want_r for h in (GENESIS, *hashes_r))"): (
        "test_integrity.py::test_reviews_removed_from_the_end_are_caught_by_the_kept_head"
    ),
    ("rules/settle.py", "@dataclass(frozen=True)"): (
        "test_trust.py::test_what_the_rule_returns_cannot_be_changed_after_the_fact and "
        "::test_every_event_and_cap_is_a_value (removed: ::test_a_disproved_success_becomes_a_failure_and_never_"
        "demotes_at_once)"
    ),
    ("rules/settle.py", "return self.level if self.until is None or when < self.until else None"): (
        "test_trust.py::test_a_freeze_holds_until_its_end_and_not_past_it"
    ),
    ("rules/settle.py", "return None if failed and not counts_failures else False"): (
        "test_trust.py::test_a_failure_that_is_not_a_failed_run_counts_wherever_it_was_recorded"
    ),
    ("rules/settle.py", "on_probation = standing.probation > 0"): (
        "test_trust.py::test_the_last_sample_on_probation_is_judged_on_probation"
    ),
    ("rules/provenance.py", 'elif len(lines) > 1 and lines[1] == "+++ /dev/null":'): (
        "test_provenance_rule.py::test_the_size_line_counts_additions_and_removals (an empty file deleted)"
    ),
}


def _config(module: str, tests: tuple[str, ...], timeout: float) -> str:
    command = shlex.join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests])
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    return (
        "[cosmic-ray]\n"
        f'module-path = "server/ratchet/{module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        '[cosmic-ray.distributor]\nname = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{excluded}]\n"
    )


def _scratch(root: Path, tests_from: str | None) -> Path:
    """The sources and tests, copied; the working tree stays as it is. With `tests_from` (a commit) the
    tests are that commit's, against today's sources: how a `before` run scores the tests as they were."""
    for part in ("server", "policies", *(() if tests_from else ("tests",))):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "artifacts"))
    if tests_from:
        archive = subprocess.run(["git", "archive", tests_from, "tests"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if not found.exists():
        raise SystemExit(f"{name} is not installed: .venv/bin/pip install -e '.[mutation]'")
    return str(found)


def _survivors(dump: str, root: Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Counts per outcome and the surviving mutants (place, operator, the changed line), from the lines
    of `cosmic-ray dump` (each `[work_item, result or null]`)."""
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "skipped": 0, "not_run": 0}
    survivors = []
    for line in dump.splitlines():
        if not line.strip():
            continue
        item, result = json.loads(line)
        if result is None:
            counts["not_run"] += 1
            continue
        worker, test = result["worker_outcome"], result["test_outcome"]
        if worker == "skipped":
            counts["skipped"] += 1
        elif test == "killed" or worker == "abnormal":  # a failing test, or a run past the timeout
            counts["killed"] += 1
        elif test == "survived" and worker == "normal":
            counts["survived"] += 1
            for mutation in item["mutations"]:
                row = mutation["start_pos"][0]
                text = (root / mutation["module_path"]).read_text(encoding="utf-8").splitlines()[row - 1].strip()
                survivors.append({"line": row, "operator": mutation["operator_name"], "code": text})
        else:
            counts["incompetent"] += 1  # the mutant cannot be imported or run at all
    survivors.sort(key=lambda s: (s["line"], s["operator"]))
    return counts, survivors


def _sql_mutants(
    module: str, tests: tuple[str, ...], root: Path, env: dict[str, str], timeout: float
) -> list[tuple[str, dict[str, Any] | None]]:
    """Each of the module's SQL_MUTANTS written into the scratch copy in turn and the tests run against it:
    ("killed", None) or ("survived", the survivor as _survivors lists one)."""
    path = root / "server" / "ratchet" / module
    original = path.read_text(encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *SQL_TESTS.get(module, tests)]
    out: list[tuple[str, dict[str, Any] | None]] = []
    try:
        for written, mutated in SQL_MUTANTS.get(module, ()):
            if original.count(written) != 1:
                raise SystemExit(f"{module}: the SQL mutant's text {written!r} must occur exactly once")
            path.write_text(original.replace(written, mutated), encoding="utf-8")
            try:
                done = subprocess.run(command, cwd=root, env=env, capture_output=True, timeout=timeout, check=False)
                killed = done.returncode != 0
            except subprocess.TimeoutExpired:
                killed = True
            line = original[: original.index(written)].count("\n") + 1
            code = " ".join(f"{written} -> {mutated}".replace('"', "").split())
            out.append(
                ("killed", None) if killed else ("survived", {"line": line, "operator": "SqlMutant", "code": code})
            )
    finally:
        path.write_text(original, encoding="utf-8")
    return out


def mutate(module: str, root: Path, timeout: float, tests: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run cosmic-ray on one module in the scratch copy `root`; its counts, score and survivors. `tests`: the
    selection to run instead of MODULES' (a `before` run whose tests did not exist yet)."""
    tests = tests or MODULES[module]
    env = {**os.environ, "PYTHONPATH": str(root / "server")}
    env.pop("RATCHET_DB", None)
    env.pop("RATCHET_POLICIES", None)
    name = module.replace("/", "_").removesuffix(".py")
    config, session = root / f"{name}.toml", root / f"{name}.sqlite"
    config.write_text(_config(module, tests, timeout), encoding="utf-8")
    started = time.monotonic()
    baseline = _run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], root, env)
    if baseline.returncode != 0:
        tail = (baseline.stdout + baseline.stderr).strip().splitlines()[-5:]
        return {"module": module, "tests": list(tests), "error": "the tests fail unmutated", "tail": tail}
    for step in (
        [_tool("cosmic-ray"), "init", str(config), str(session)],
        [_tool("cr-filter-operators"), str(session), str(config)],
        [_tool("cosmic-ray"), "exec", str(config), str(session)],
    ):
        done = _run(step, root, env)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            return {"module": module, "tests": list(tests), "error": f"{Path(step[0]).name} failed", "tail": tail}
    dumped = _run([_tool("cosmic-ray"), "dump", str(session)], root, env)
    counts, survivors = _survivors(dumped.stdout, root)
    for outcome, survivor in _sql_mutants(module, tests, root, env, timeout):
        counts[outcome] += 1
        if survivor is not None:
            survivors.append(survivor)
    survivors.sort(key=lambda s: (s["line"], s["operator"], s["code"]))
    judged = counts["killed"] + counts["survived"]
    return {
        "module": module,
        "tests": list(tests),
        "mutants": sum(counts.values()) - counts["skipped"],
        **counts,
        "score": round(counts["killed"] / judged, 4) if judged else None,
        "seconds": round(time.monotonic() - started, 1),
        "survivors": survivors,
    }


def render(report: dict[str, Any]) -> str:
    """bench/results/mutation.md from the merged JSON."""
    labels = sorted(
        {label for entry in report["modules"].values() for label in entry}, key=lambda x: (x != "before", x)
    )
    lines = [
        "# Mutation testing of the security and trust modules",
        "",
        "Written by `python -m bench.mutation` (cosmic-ray; see bench/mutation.py for the operators and the",
        "tests run per module). Score = killed / (killed + survived); a timeout counts as killed, a mutant",
        "that cannot be imported is left out. Where survivors were judged equivalent (listed below with the",
        "reason no test can tell them from the original), the score among the others is shown beside it.",
        "Each run names the commit it mutated.",
        "",
        "| module | tests | " + " | ".join(f"{label}: score (killed/judged), commit" for label in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for module in MODULES:
        if module not in report["modules"]:
            tests = " ".join(MODULES[module])
            lines.append(f"| `{module}` | `{tests}` | " + " | ".join("not run" for _ in labels) + " |")
    for module, entry in sorted(report["modules"].items()):
        cells = []
        for label in labels:
            run = entry.get(label)
            if run is None:
                cells.append("not run")
            elif "error" in run:
                cells.append(f"error: {run['error']}")
            else:
                judged = run["killed"] + run["survived"]
                score = f"{run['score'] * 100:.1f}%" if run["score"] is not None else "-"
                harmless = sum((module, s["code"]) in HARMLESS for s in run["survivors"])
                real = judged - harmless
                besides = ""
                if harmless and real:
                    besides = f"; {run['killed'] / real * 100:.1f}% of the {real} not equivalent"
                cells.append(f"{score} ({run['killed']}/{judged}{besides}), `{run['provenance']['commit']}`")
        tests = " ".join(next(iter(entry.values()))["tests"])
        lines.append(f"| `{module}` | `{tests}` | " + " | ".join(cells) + " |")
    noted = [(key, note) for key, note in NOTES.items() if key[1] in report["modules"].get(key[0], {})]
    if noted:
        lines += ["", "Notes on runs:", ""]
        lines += [f"- `{module}` ({label}): {note}" for (module, label), note in noted]
    for module, entry in sorted(report["modules"].items()):
        for label in labels:
            run = entry.get(label)
            if not run or not run.get("survivors"):
                continue
            lines += ["", f"## Survivors: `{module}` ({label})", "", "| line | operator | code | why harmless |"]
            lines.append("|---:|---|---|---|")
            for s in run["survivors"]:
                code = s["code"].replace("|", "\\|")
                later = [r for other, r in entry.items() if other != label and r.get("survivors") is not None]
                if later and all(s not in r["survivors"] for r in later):
                    why = "killed by the tests added since"
                elif (module, s["code"]) in HARMLESS:
                    why = HARMLESS[(module, s["code"])]
                elif (module, s["code"]) in KILLED_SINCE:
                    why = f"killed since by {KILLED_SINCE[(module, s['code'])]}"
                else:
                    why = "not yet judged"
                lines.append(f"| {s['line']} | {s['operator'].removeprefix('core/')} | `{code}` | {why} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Mutate the chosen modules, merge the results into bench/results/mutation.json, render the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--modules", default=",".join(SHORT), help=f"comma-separated, of: {', '.join(SHORT)}")
    parser.add_argument("--label", default="after", help="the run's name in the report (e.g. before, after)")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds per test run before a mutant counts as killed"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where mutation.json and mutation.md go")
    parser.add_argument("--tests-from", metavar="COMMIT", help="run that commit's tests (for a `before` run)")
    parser.add_argument(
        "--tests", help="the test selection instead of MODULES' (space-separated; one module), e.g. for a before run"
    )
    parser.add_argument("--render-only", action="store_true", help="mutate nothing: rewrite mutation.md from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        report = json.loads((args.out / "mutation.json").read_text(encoding="utf-8"))
        (args.out / "mutation.md").write_text(render(report), encoding="utf-8")
        return 0
    chosen = [SHORT.get(m.strip(), m.strip()) for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        parser.error(f"unknown modules {unknown}; known: {', '.join(SHORT)}")
    if args.tests and len(chosen) != 1:
        parser.error("--tests names the tests of one module: give exactly one in --modules")
    shown = sys.argv[1:] if argv is None else argv
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.mutation", *shown]))
    out_json = args.out / "mutation.json"
    report: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {"modules": {}}
    for module in chosen:
        with tempfile.TemporaryDirectory(prefix="ratchet-mutation-") as tmp:
            chosen_tests = tuple(shlex.split(args.tests)) if args.tests else None
            result = mutate(module, _scratch(Path(tmp), args.tests_from), args.timeout, chosen_tests)
        result["provenance"] = provenance
        if args.tests_from:
            result["tests_from"] = args.tests_from
        report["modules"].setdefault(module, {})[args.label] = result
        args.out.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (args.out / "mutation.md").write_text(render(report), encoding="utf-8")
        summary = {k: result.get(k) for k in ("killed", "survived", "incompetent", "score", "seconds", "error")}
        print(f"{module}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
