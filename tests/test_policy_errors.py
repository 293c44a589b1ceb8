"""A broken policy directory fails closed: load_policy and `ratchet lint` name the file, the key and the problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ratchet.cli import main
from ratchet.errors import PolicyError, RatchetError
from ratchet.policy.load import load_policy

DOCS = """
[classes.docs-write]
tools = ["write_file", "edit_file"]
paths = ["docs/**"]
start = "confirm"
"""

EXAMPLES = """
[classes.docs-write.examples]
"""

SECRETS = """
[classes.secrets]
tools = ["write_file"]
paths = ["**/.env"]
priority = 100
start = "blocked"
"""


@dataclass(frozen=True)
class Case:
    """A broken policy directory and the error it must produce."""

    id: str
    files: dict[str, str] | None  # None: the directory does not exist
    file: str | None  # None: the error names the directory itself
    key: str
    problem: str


CASES = [
    Case(
        "unknown-level",
        {"p.toml": DOCS.replace('start = "confirm"', 'start = "sometimes"')},
        "p.toml",
        "classes.docs-write.start",
        "unknown level 'sometimes'; expected one of: blocked, draft, confirm, autonomous",
    ),
    Case(
        "unknown-level-ceiling",
        {"p.toml": DOCS + 'ceiling = "always"\n'},
        "p.toml",
        "classes.docs-write.ceiling",
        "unknown level 'always'",
    ),
    Case(
        "unknown-class-key", {"p.toml": DOCS + 'colour = "red"\n'}, "p.toml", "classes.docs-write.colour", "unknown key"
    ),
    Case(
        "misspelt-class-key",
        {"p.toml": DOCS + "prority = 10\n"},
        "p.toml",
        "classes.docs-write.prority",
        "unknown key; expected one of:",
    ),
    Case(
        "unknown-defaults-key",
        {"p.toml": "[defaults]\nwindow = 10\n" + DOCS},
        "p.toml",
        "defaults.window",
        "unknown key",
    ),
    Case(
        "unknown-top-level-key",
        {"p.toml": "version = 2\n" + DOCS},
        "p.toml",
        "version",
        "unknown top-level key; expected 'defaults', 'classes' or 'reviewer'",
    ),
    Case(
        "bad-glob-empty-segment",
        {"p.toml": DOCS.replace('["docs/**"]', '["docs//x"]')},
        "p.toml",
        "classes.docs-write.paths[0]",
        "bad glob 'docs//x'",
    ),
    Case(
        "bad-glob-second-pattern",
        {"p.toml": DOCS.replace('["docs/**"]', '["docs/**", "a**b"]')},
        "p.toml",
        "classes.docs-write.paths[1]",
        "bad glob 'a**b': '**' must be a whole path segment",
    ),
    Case(
        "bad-glob-branch",
        {"p.toml": DOCS + 'branches = ["/main"]\n'},
        "p.toml",
        "classes.docs-write.branches[0]",
        "bad glob '/main'",
    ),
    Case("toml-syntax", {"p.toml": "[classes.docs-write\ntools = 1\n"}, "p.toml", "", "TOML syntax error"),
    Case(
        "example-does-not-match",
        {"p.toml": DOCS + EXAMPLES + 'match = [{ tool = "write_file", path = "src/a.py" }]\n'},
        "p.toml",
        "classes.docs-write.examples.match[0]",
        "is classified as 'unclassified'",
    ),
    Case(
        "second-example-does-not-match",
        {
            "p.toml": DOCS
            + EXAMPLES
            + 'match = [{ tool = "write_file", path = "docs/a.md" }, { tool = "delete_file", path = "docs/a.md" }]\n'
        },
        "p.toml",
        "classes.docs-write.examples.match[1]",
        "'delete_file'",
    ),
    Case(
        "not-match-example-matches",
        {"p.toml": DOCS + EXAMPLES + 'not_match = [{ tool = "edit_file", path = "docs/a.md" }]\n'},
        "p.toml",
        "classes.docs-write.examples.not_match[0]",
        "is classified as 'docs-write', but it must not be 'docs-write'",
    ),
    Case(
        "example-lands-in-a-class-of-another-file",
        {
            "a.toml": DOCS + EXAMPLES + 'match = [{ tool = "write_file", path = "docs/.env" }]\n',
            "b.toml": SECRETS,
        },
        "a.toml",
        "classes.docs-write.examples.match[0]",
        "is classified as 'secrets'",
    ),
    Case(
        "duplicate-class-across-files",
        {"a.toml": DOCS, "b.toml": DOCS},
        "b.toml",
        "classes.docs-write",
        "class already declared in a.toml",
    ),
    Case(
        "defaults-in-two-files",
        {"a.toml": "[defaults]\nwindow_size = 60\n", "b.toml": "[defaults]\nmin_samples = 10\n" + DOCS},
        "b.toml",
        "defaults",
        "defaults are already set in a.toml",
    ),
    Case(
        "floor-above-start",
        {"p.toml": DOCS + 'floor = "autonomous"\n'},
        "p.toml",
        "classes.docs-write",
        "expected floor <= start <= ceiling, got autonomous / confirm / autonomous",
    ),
    Case(
        "start-above-ceiling",
        {"p.toml": DOCS + 'ceiling = "draft"\n'},
        "p.toml",
        "classes.docs-write",
        "expected floor <= start <= ceiling, got draft / confirm / draft",
    ),
    Case(
        "min-samples-above-window-in-defaults",
        {"p.toml": "[defaults]\nwindow_size = 20\nmin_samples = 30\n" + DOCS},
        "p.toml",
        "defaults",
        "min_samples (30) exceeds window_size (20)",
    ),
    Case(
        "min-samples-above-window-in-class",
        {"p.toml": DOCS + "window_size = 10\n"},
        "p.toml",
        "classes.docs-write",
        "min_samples (40) exceeds window_size (10)",
    ),
    Case(
        "demote-below-at-promote-at",
        {"p.toml": "[defaults]\npromote_at = 0.8\ndemote_below = 0.8\n" + DOCS},
        "p.toml",
        "defaults",
        "expected demote_below < promote_at",
    ),
    Case(
        "demote-below-above-promote-at-in-class",
        {"p.toml": DOCS + "demote_below = 0.95\n"},
        "p.toml",
        "classes.docs-write",
        "expected demote_below < promote_at",
    ),
    Case(
        "confidence-out-of-order-in-defaults",
        {"p.toml": "[defaults.confidence]\nautonomous_at = 0.6\nflag_at = 0.7\n" + DOCS},
        "p.toml",
        "defaults.confidence",
        "expected autonomous_at >= flag_at >= escalate_at",
    ),
    Case(
        "confidence-out-of-order-in-class",
        {"p.toml": DOCS + "confidence = { escalate_at = 0.8 }\n"},
        "p.toml",
        "classes.docs-write.confidence",
        "expected autonomous_at >= flag_at >= escalate_at",
    ),
    Case(
        "confidence-out-of-range",
        {"p.toml": "[defaults.confidence]\nflag_at = 1.5\n" + DOCS},
        "p.toml",
        "defaults.confidence.flag_at",
        "less than or equal to 1",
    ),
    Case(
        "unmatched-autonomous",
        {"p.toml": '[defaults]\nunmatched = "autonomous"\n' + DOCS},
        "p.toml",
        "defaults.unmatched",
        "unmatched actions must stay conservative",
    ),
    Case(
        "unmatched-unknown-level",
        {"p.toml": '[defaults]\nunmatched = "maybe"\n' + DOCS},
        "p.toml",
        "defaults.unmatched",
        "unknown level 'maybe'",
    ),
    Case(
        "missing-start",
        {"p.toml": DOCS.replace('start = "confirm"\n', "")},
        "p.toml",
        "classes.docs-write.start",
        "Field required",
    ),
    Case(
        "empty-tools",
        {"p.toml": DOCS.replace('["write_file", "edit_file"]', "[]")},
        "p.toml",
        "classes.docs-write.tools",
        "at least 1",
    ),
    Case(
        "upper-case-class-name",
        {"p.toml": DOCS.replace("docs-write", "Docs")},
        "p.toml",
        "classes.Docs",
        "class names are lower-case",
    ),
    Case(
        "reserved-class-name",
        {"p.toml": DOCS.replace("docs-write", "unclassified")},
        "p.toml",
        "classes.unclassified",
        "'unclassified' is reserved",
    ),
    Case(
        "empty-argv-prefix",
        {"p.toml": DOCS + "argv = [[]]\n"},
        "p.toml",
        "classes.docs-write.argv",
        "at least the program name",
    ),
    Case("classes-not-a-table", {"p.toml": 'classes = "docs"\n'}, "p.toml", "classes", "expected tables"),
    Case("empty-directory", {}, None, "", "no *.toml policy files in the directory"),
    Case("only-other-files", {"README.md": "# policies\n"}, None, "", "no *.toml policy files in the directory"),
    Case("missing-directory", None, None, "", "policy directory not found"),
]


def make_dir(tmp_path: Path, files: dict[str, str] | None) -> Path:
    """The policy directory for a case (left absent when `files` is None)."""
    directory = tmp_path / "policies"
    if files is not None:
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(text, encoding="utf-8")
    return directory


def expected_message(case: Case, directory: Path) -> tuple[str, str]:
    """The message's prefix (`file: key: ` or `file: `) and the problem it must contain."""
    file = case.file if case.file is not None else str(directory)
    prefix = f"{file}: {case.key}: " if case.key else f"{file}: "
    return prefix, case.problem


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_load_policy_names_file_key_and_problem(tmp_path: Path, case: Case) -> None:
    directory = make_dir(tmp_path, case.files)
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    error = caught.value
    assert error.file == (case.file if case.file is not None else str(directory))
    assert error.key == case.key
    assert case.problem in error.problem
    prefix, problem = expected_message(case, directory)
    assert str(error).startswith(prefix)
    assert problem in str(error)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lint_exits_1_with_the_same_message(tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_dir(tmp_path, case.files)
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert main(["lint", str(directory)]) == 1
    captured = capsys.readouterr()
    assert f"ratchet: error: {caught.value}" in captured.err.splitlines()
    assert captured.out == ""


def test_toml_syntax_error_says_where(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, {"p.toml": "[classes.docs-write\ntools = 1\n"})
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert "line 1" in caught.value.problem


def test_policy_error_is_a_ratchet_error() -> None:
    assert issubclass(PolicyError, RatchetError)
    assert str(PolicyError("a.toml", "classes.x.start", "bad")) == "a.toml: classes.x.start: bad"
    assert str(PolicyError("a.toml", "", "bad")) == "a.toml: bad"


def test_unknown_nested_key_lists_the_nested_tables_keys(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, {"p.toml": "[defaults.confidence]\nbogus = 1\n" + DOCS})
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.key == "defaults.confidence.bogus"
    assert "autonomous_at" in caught.value.problem
    assert "window_size" not in caught.value.problem


def test_invalid_glob_range_is_a_policy_error(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, {"p.toml": DOCS.replace('["docs/**"]', '["docs/[z-a]*"]')})
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.key == "classes.docs-write.paths[0]"


# -- the valid case and the real console script ------------------------------------------------

VALID = (
    DOCS
    + EXAMPLES
    + 'match = [{ tool = "write_file", path = "docs/a.md" }]\nnot_match = [{ tool = "write_file", path = "a.md" }]\n'
    + SECRETS
)


def test_lint_valid_directory_lists_the_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_dir(tmp_path, {"p.toml": VALID})
    assert main(["lint", str(directory)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"{directory}: ok: 2 classes, 2 examples hold"
    assert lines[1].split() == ["CLASS", "START", "FLOOR", "CEILING", "SANDBOX", "RULE"]  # the columns' headings
    assert lines[2].split()[:2] == ["docs-write", "confirm"]
    assert lines[3].split()[:2] == ["secrets", "blocked"]
    assert "ratchet: error" not in captured.err


def test_lint_starter_policies(capsys: pytest.CaptureFixture[str]) -> None:
    starter = Path(__file__).resolve().parents[1] / "policies"
    assert main(["lint", str(starter)]) == 0
    out = capsys.readouterr().out
    assert "ok: 21 classes" in out
    for name in ("docs-write", "tests-write", "secrets-write", "agent-config-write"):
        assert f"  {name} " in out


def ratchet_script() -> Path:
    """The installed `ratchet` console script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "ratchet"
    if beside.exists():
        return beside
    found = shutil.which("ratchet")
    assert found is not None, "the ratchet console script is not installed"
    return Path(found)


def test_console_script_fails_closed_on_unknown_level(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, {"p.toml": DOCS.replace('start = "confirm"', 'start = "sometimes"')})
    done = subprocess.run(
        [str(ratchet_script()), "lint", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "ratchet: error: p.toml: classes.docs-write.start: Value error, unknown level 'sometimes'; "
        "expected one of: blocked, draft, confirm, autonomous"
    )
    assert "Traceback" not in done.stderr


def test_a_window_that_can_never_promote_is_refused(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, {"p.toml": "[defaults]\nwindow_size = 50\n" + DOCS})
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.key.startswith("defaults")
    assert "can never promote" in caught.value.problem and "at least 52" in caught.value.problem
