"""Policy loading and classification: overlaps resolve exactly as policy/model.py's module docstring says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.errors import PolicyError
from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy, starter_policy_dir
from ratchet.policy.model import UNCLASSIFIED, Classification, ConfidenceThresholds, Policy, Subject, TrustParams
from ratchet.rules.trust import Sample, Window, judge

from .conftest import write_policy

STARTER = Path(__file__).resolve().parents[1] / "policies"


def write_dir(directory: Path, files: dict[str, str]) -> Path:
    """Write each `name -> text` into `directory` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def load(tmp_path: Path, text: str, name: str = "policy.toml") -> Policy:
    """Load a policy directory holding one file."""
    return load_policy(write_dir(tmp_path / "policies", {name: text}))


def cls_toml(
    name: str,
    *,
    paths: list[str] | None = None,
    tools: tuple[str, ...] = ("write_file", "edit_file"),
    start: str = "draft",
    extra: str = "",
) -> str:
    """One `[classes.NAME]` table."""
    lines = [f"[classes.{name}]", f"tools = {list(tools)!r}".replace("'", '"')]
    if paths is not None:
        lines.append(f"paths = {paths!r}".replace("'", '"'))
    lines.append(f'start = "{start}"')
    if extra:
        lines.append(extra.strip())
    return "\n".join(lines) + "\n\n"


def write(*paths: str, tool: str = "write_file") -> Subject:
    """A file-write subject."""
    return Subject(tool=tool, paths=paths)


def outcome(c: Classification) -> tuple[str, int, frozenset[str]]:
    """What a classification decides, independent of where the classes were declared."""
    return c.cls.name, c.specificity, frozenset(c.also_matched)


# -- overlap resolution ------------------------------------------------------------------------


def test_priority_beats_specificity(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        cls_toml("guard", paths=["**"], start="blocked", extra="priority = 10")
        + cls_toml("exact-env", paths=["docs/.env"], start="confirm"),
    )
    c = policy.classify(write("docs/.env"))
    assert c.cls.name == "guard"
    assert c.specificity == 0  # "**" has no literal character; priority alone wins
    assert c.also_matched == ("exact-env",)


def test_negative_priority_loses_to_default(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        cls_toml("exact", paths=["docs/a.md"], extra="priority = -1") + cls_toml("broad", paths=["**"]),
    )
    assert policy.classify(write("docs/a.md")).cls.name == "broad"


def test_more_specific_wins(tmp_path: Path) -> None:
    # By the documented rule the literal characters decide: "docs/**" has 5 ("docs/"), "**/*.md" has 4
    # ("/.md"), so docs/x.md is docs-write. The loser is also the more conservative class, so rule 3
    # (specificity) must be what decides, ahead of rule 4 (lower ceiling).
    policy = load(
        tmp_path,
        cls_toml("docs-write", paths=["docs/**"], start="confirm")
        + cls_toml("markdown", paths=["**/*.md"], start="draft", extra='ceiling = "confirm"'),
    )
    c = policy.classify(write("docs/x.md"))
    assert (c.cls.name, c.specificity, c.also_matched) == ("docs-write", 5, ("markdown",))
    elsewhere = policy.classify(write("src/x.md"))
    assert (elsewhere.cls.name, elsewhere.specificity, elsewhere.also_matched) == ("markdown", 4, ())


def test_longer_literal_flips_the_winner(tmp_path: Path) -> None:
    # "**/*.markdown" has 10 literal characters: more specific than "docs/**" (5).
    policy = load(
        tmp_path,
        cls_toml("docs-write", paths=["docs/**"]) + cls_toml("markdown", paths=["**/*.markdown"]),
    )
    c = policy.classify(write("docs/x.markdown"))
    assert (c.cls.name, c.specificity) == ("markdown", 10)


def test_best_matching_pattern_of_a_class_counts(tmp_path: Path) -> None:
    # A class's score is its best matching pattern for the path, not its first.
    policy = load(
        tmp_path,
        cls_toml("api", paths=["**", "src/api/**"]) + cls_toml("src", paths=["src/**"]),
    )
    c = policy.classify(write("src/api/v1.py"))
    assert (c.cls.name, c.specificity) == ("api", len("src/api/"))


def test_exact_path_beats_wildcard(tmp_path: Path) -> None:
    # ".env" has 4 literal characters, "**/.env" has 5: only the exact-path rule lets ".env" win.
    policy = load(
        tmp_path,
        cls_toml("env-files", paths=["**/.env"], start="blocked") + cls_toml("root-env", paths=[".env"]),
    )
    root = policy.classify(write(".env"))
    assert root.cls.name == "root-env"
    assert root.specificity > 10_000
    assert root.also_matched == ("env-files",)
    nested = policy.classify(write("app/.env"))
    assert (nested.cls.name, nested.specificity) == ("env-files", 5)


def test_tie_goes_to_lower_ceiling(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        cls_toml("aaa-open", paths=["a/**"], start="draft", extra='ceiling = "autonomous"')
        + cls_toml("zzz-capped", paths=["a/**"], start="draft", extra='ceiling = "confirm"'),
    )
    c = policy.classify(write("a/x"))
    assert c.cls.name == "zzz-capped"  # wins although its name sorts last
    assert c.also_matched == ("aaa-open",)


def test_tie_then_goes_to_lower_start(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        cls_toml("aaa-confirm", paths=["a/**"], start="confirm") + cls_toml("zzz-draft", paths=["a/**"], start="draft"),
    )
    assert policy.classify(write("a/x")).cls.name == "zzz-draft"


def test_ceiling_is_compared_before_start(tmp_path: Path) -> None:
    # lower ceiling wins even against a lower start
    policy = load(
        tmp_path,
        cls_toml("low-start", paths=["a/**"], start="blocked", extra='ceiling = "autonomous"')
        + cls_toml("low-ceiling", paths=["a/**"], start="confirm", extra='ceiling = "confirm"'),
    )
    assert policy.classify(write("a/x")).cls.name == "low-ceiling"


def test_full_tie_goes_to_class_name(tmp_path: Path) -> None:
    # declared "beta" first, in the earlier file: the name still decides
    policy = load_policy(
        write_dir(
            tmp_path / "p",
            {"1.toml": cls_toml("beta", paths=["a/**"]), "2.toml": cls_toml("alpha", paths=["a/**"])},
        )
    )
    c = policy.classify(write("a/x"))
    assert c.cls.name == "alpha"
    assert c.also_matched == ("beta",)


OVERLAPPING = {
    "first": cls_toml("beta", paths=["a/**"]) + cls_toml("wide", paths=["**"], start="confirm"),
    "second": cls_toml("alpha", paths=["a/**"])
    + cls_toml("capped", paths=["b/**"], extra='ceiling = "draft"')
    + cls_toml("open", paths=["b/**"]),
}

ORDER_SUBJECTS = [write("a/x"), write("b/y"), write("c/z"), write("a/x", "a/y"), Subject(tool="delete_file")]


def _two_orders(tmp_path: Path) -> tuple[Policy, Policy]:
    """The same classes in two files, once as a.toml/b.toml and once with the file order flipped."""
    forward = load_policy(
        write_dir(tmp_path / "fwd", {"a.toml": OVERLAPPING["first"], "b.toml": OVERLAPPING["second"]})
    )
    flipped = load_policy(
        write_dir(tmp_path / "rev", {"a.toml": OVERLAPPING["second"], "b.toml": OVERLAPPING["first"]})
    )
    return forward, flipped


def test_file_order_does_not_matter(tmp_path: Path) -> None:
    forward, flipped = _two_orders(tmp_path)
    assert list(forward.classes) != list(flipped.classes)  # the declaration order really did flip
    for subject in ORDER_SUBJECTS:
        assert outcome(forward.classify(subject)) == outcome(flipped.classify(subject)), subject
    assert forward.classify(write("a/x")).cls.name == "alpha"
    assert forward.classify(write("b/y")).cls.name == "capped"
    assert forward.classify(write("c/z")).cls.name == "wide"
    assert forward.classify(Subject(tool="delete_file")).cls.name == UNCLASSIFIED


def test_also_matched_order_does_not_depend_on_file_order(tmp_path: Path) -> None:
    forward, flipped = _two_orders(tmp_path)
    # b/y: "capped" wins over "open" (lower ceiling) and "wide"; the losers are the same two classes
    assert outcome(forward.classify(write("b/y"))) == outcome(flipped.classify(write("b/y")))
    assert forward.classify(write("b/y")).also_matched == flipped.classify(write("b/y")).also_matched


def test_also_matched_lists_every_loser(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        cls_toml("docs", paths=["docs/**"])
        + cls_toml("markdown", paths=["**/*.md"])
        + cls_toml("everything", paths=["**"])
        + cls_toml("secrets", paths=["**/.env"], extra="priority = 100")
        + cls_toml("other-tool", paths=["**"], tools=("delete_file",)),
    )
    c = policy.classify(write("docs/x.md"))
    assert c.cls.name == "docs"
    assert sorted(c.also_matched) == ["everything", "markdown"]
    assert "docs" not in c.also_matched


# -- constraints -------------------------------------------------------------------------------


def test_tool_must_be_listed(tmp_path: Path) -> None:
    policy = load(tmp_path, cls_toml("docs", paths=["docs/**"], tools=("write_file",)))
    assert policy.classify(write("docs/a.md")).cls.name == "docs"
    assert policy.classify(write("docs/a.md", tool="edit_file")).cls.name == UNCLASSIFIED


def test_every_path_of_the_action_must_match(tmp_path: Path) -> None:
    policy = load(tmp_path, cls_toml("docs", paths=["docs/**"]) + cls_toml("docs-api", paths=["docs/api/**"]))
    assert policy.classify(write("docs/api/a.md", "docs/api/b.md")).cls.name == "docs-api"
    both = policy.classify(write("docs/api/a.md", "docs/guide.md"))
    assert (both.cls.name, both.also_matched) == ("docs", ())
    assert policy.classify(write("docs/a.md", "src/a.py")).cls.name == UNCLASSIFIED
    # a class that names paths does not match an action without any
    assert policy.classify(Subject(tool="write_file")).cls.name == UNCLASSIFIED


def test_a_class_without_paths_matches_on_tool_alone(tmp_path: Path) -> None:
    policy = load(tmp_path, cls_toml("any-write", tools=("write_file",)) + cls_toml("docs", paths=["docs/**"]))
    assert policy.classify(write("src/a.py")).cls.name == "any-write"
    assert policy.classify(write("docs/a.md")).cls.name == "docs"  # specificity 5 beats 0


ARGV_POLICY = """
[classes.git]
tools = ["run_command"]
argv = [["git"]]
start = "confirm"

[classes.git-push]
tools = ["run_command"]
argv = [["git", "push"], ["git", "push", "--force"]]
start = "draft"

[classes.pytest]
tools = ["run_command"]
argv = [["pytest"], ["python", "-m", "pytest"]]
start = "autonomous"
"""


@pytest.mark.parametrize(
    ("commands", "expected", "score"),
    [
        ((("git", "status"),), "git", 100),
        ((("git",),), "git", 100),
        ((("git", "push", "origin", "main"),), "git-push", 200),
        ((("git", "push", "--force", "origin"),), "git-push", 300),
        ((("git", "pushx"),), "git", 100),
        ((("gitx", "push"),), UNCLASSIFIED, 0),
        ((("python", "-m", "pytest", "-q"),), "pytest", 300),
        ((("python", "-m", "pip"),), UNCLASSIFIED, 0),
        ((("pytest",), ("git", "status")), UNCLASSIFIED, 0),  # every command must match the class
        ((("git", "push"), ("git", "status")), "git", 100),
        ((), UNCLASSIFIED, 0),
    ],
)
def test_argv_prefix(tmp_path: Path, commands: tuple[tuple[str, ...], ...], expected: str, score: int) -> None:
    policy = load(tmp_path, ARGV_POLICY)
    c = policy.classify(Subject(tool="run_command", commands=commands))
    assert (c.cls.name, c.specificity) == (expected, score)


BRANCH_POLICY = """
[classes.push-any]
tools = ["git_push"]
start = "confirm"

[classes.push-main]
tools = ["git_push"]
branches = ["main", "release/*"]
remotes = ["origin"]
start = "draft"

[classes.push-feature]
tools = ["git_push"]
branches = ["feature/**"]
start = "autonomous"

[classes.force-push]
tools = ["git_push"]
force = true
priority = 10
start = "blocked"
"""


@pytest.mark.parametrize(
    ("branch", "remote", "force", "expected"),
    [
        ("main", "origin", None, "push-main"),
        ("release/1.2", "origin", None, "push-main"),
        ("release/1.2/rc", "origin", None, "push-any"),
        ("main", "fork", None, "push-any"),
        ("main", None, None, "push-any"),
        ("feature/login", "origin", None, "push-feature"),
        ("feature/a/b", "fork", None, "push-feature"),
        ("featurex", "origin", None, "push-any"),
        (None, "origin", None, "push-any"),
        ("main", "origin", False, "push-main"),
        ("main", "origin", True, "force-push"),
    ],
)
def test_branch_remote_and_force(
    tmp_path: Path, branch: str | None, remote: str | None, force: bool | None, expected: str
) -> None:
    policy = load(tmp_path, BRANCH_POLICY)
    subject = Subject(tool="git_push", branch=branch, remote=remote, force=force)
    assert policy.classify(subject).cls.name == expected


def test_subject_round_trips_through_a_dict() -> None:
    subject = Subject(
        tool="git_push", paths=("a", "b/c"), commands=(("git", "push"),), branch="main", remote="origin", force=True
    )
    assert Subject.from_dict(subject.as_dict()) == subject


# -- unmatched, floor, inheritance -------------------------------------------------------------


@pytest.mark.parametrize(("unmatched", "level"), [("draft", Level.DRAFT), ("blocked", Level.BLOCKED)])
def test_unmatched_is_unclassified_and_never_promotes(tmp_path: Path, unmatched: str, level: Level) -> None:
    policy = load(tmp_path, f'[defaults]\nunmatched = "{unmatched}"\n\n' + cls_toml("docs", paths=["docs/**"]))
    c = policy.classify(write("x.bin"))
    assert c.cls.name == UNCLASSIFIED
    assert c.also_matched == ()
    assert c.cls.start == level
    assert c.cls.ceiling == c.cls.start
    assert policy.get(UNCLASSIFIED) == c.cls
    # a perfect record still cannot move it: its ceiling is its start
    window = Window(tuple(Sample(i, True) for i in range(c.cls.trust.window_size)))
    verdict = judge(window, c.cls.start, c.cls.floor, c.cls.ceiling, c.cls.trust)
    assert verdict.move is None
    assert verdict.to_level == level


def test_unmatched_defaults_to_draft(tmp_path: Path) -> None:
    policy = load(tmp_path, cls_toml("docs", paths=["docs/**"]))
    assert policy.unclassified.start == Level.DRAFT
    assert policy.unclassified.ceiling == Level.DRAFT


@pytest.mark.parametrize(
    ("start", "floor_line", "floor"),
    [
        ("autonomous", "", Level.DRAFT),
        ("confirm", "", Level.DRAFT),
        ("draft", "", Level.DRAFT),
        ("blocked", "", Level.BLOCKED),
        ("autonomous", 'floor = "confirm"', Level.CONFIRM),
        ("confirm", 'floor = "blocked"', Level.BLOCKED),
    ],
)
def test_floor_default(tmp_path: Path, start: str, floor_line: str, floor: Level) -> None:
    policy = load(tmp_path, cls_toml("c", paths=["c/**"], start=start, extra=floor_line))
    cls = policy.classes["c"]
    assert cls.floor == floor
    assert cls.start == Level.parse(start)
    assert cls.ceiling == Level.AUTONOMOUS


def test_class_trust_overrides_merge_with_defaults(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        "[defaults]\nwindow_size = 50\nmin_samples = 20\npromote_at = 0.9\n\n"
        + cls_toml("quick", paths=["q/**"], extra="min_samples = 5\nmax_consecutive_failures = 1")
        + cls_toml("plain", paths=["p/**"]),
    )
    assert policy.classes["quick"].trust == TrustParams(
        window_size=50, min_samples=5, promote_at=0.9, max_consecutive_failures=1
    )
    assert policy.classes["plain"].trust == TrustParams(window_size=50, min_samples=20, promote_at=0.9)
    assert policy.unclassified.trust == policy.classes["plain"].trust


def test_class_without_confidence_inherits_defaults(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        "[defaults.confidence]\nautonomous_at = 0.95\nflag_at = 0.8\nescalate_at = 0.6\n\n"
        + cls_toml("c", paths=["c/**"])
        + cls_toml(
            "own", paths=["o/**"], extra="confidence = { autonomous_at = 0.99, flag_at = 0.9, escalate_at = 0.7 }"
        ),
    )
    assert policy.classes["c"].confidence == ConfidenceThresholds(autonomous_at=0.95, flag_at=0.8, escalate_at=0.6)
    assert policy.classes["own"].confidence == ConfidenceThresholds(autonomous_at=0.99, flag_at=0.9, escalate_at=0.7)


def test_partial_class_confidence_inherits_the_rest_from_defaults(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        "[defaults.confidence]\nautonomous_at = 0.95\nflag_at = 0.8\nescalate_at = 0.6\n\n"
        + cls_toml("c", paths=["c/**"], extra="confidence = { flag_at = 0.85 }"),
    )
    # Only flag_at was overridden; the team's stricter escalate_at (0.6) must not silently become 0.5.
    assert policy.classes["c"].confidence == ConfidenceThresholds(autonomous_at=0.95, flag_at=0.85, escalate_at=0.6)


def test_rule_names_file_and_line(tmp_path: Path) -> None:
    text = (
        '[classes.first]\ntools = ["write_file"]\nstart = "draft"\n# comment\n[classes.second]\ntools = ["edit_file"]\n'
    )
    policy = load(tmp_path, text + 'start = "draft"\n', name="rules.toml")
    assert policy.classes["first"].rule == "rules.toml:1"
    assert policy.classes["second"].rule == "rules.toml:5"


def test_rule_line_after_blank_lines(tmp_path: Path) -> None:
    text = "# header\n\n" + cls_toml("first", paths=["f/**"]) + cls_toml("second", paths=["s/**"])
    policy = load(tmp_path, text, name="rules.toml")
    lines = text.splitlines()
    assert policy.classes["first"].rule == f"rules.toml:{lines.index('[classes.first]') + 1}"
    assert policy.classes["second"].rule == f"rules.toml:{lines.index('[classes.second]') + 1}"


def test_non_toml_files_are_ignored(tmp_path: Path) -> None:
    directory = write_dir(
        tmp_path / "p", {"a.toml": cls_toml("docs", paths=["docs/**"]), "README.md": "not = [valid toml"}
    )
    assert list(load_policy(directory).classes) == ["docs"]


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    one = load_policy(write_dir(tmp_path / "one", {"p.toml": cls_toml("docs", paths=["docs/**"])}))
    same = load_policy(write_dir(tmp_path / "same", {"p.toml": cls_toml("docs", paths=["docs/**"])}))
    other = load_policy(write_dir(tmp_path / "other", {"p.toml": cls_toml("docs", paths=["docs/**", "x/**"])}))
    assert one.fingerprint == same.fingerprint
    assert one.fingerprint != other.fingerprint


# -- the starter policy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter() -> Policy:
    return load_policy(STARTER)


def test_starter_policy_loads(starter: Policy) -> None:
    assert set(starter.classes) == {
        "docs-write",
        "tests-write",
        "source-write",
        "build-config-write",
        "ci-config-write",
        "agent-config-write",
        "secrets-write",
        "read-only-run",
        "tests-run",
        "lint-format-run",
        "build-run",
        "package-install",
        "file-delete",
        "network-run",
        "git-via-shell",
        "command-other",
        "git-read",
        "git-commit",
        "push-branch",
        "push-protected",
        "push-force",
    }
    assert starter.classes["push-force"].ceiling == Level.BLOCKED and starter.classes["push-force"].priority == 100
    assert starter.classes["package-install"].ceiling == Level.CONFIRM
    assert starter.classes["command-other"].argv is None  # the catch-all for what cannot be analysed
    secrets = starter.classes["secrets-write"]
    assert (secrets.floor, secrets.start, secrets.ceiling) == (Level.BLOCKED, Level.BLOCKED, Level.BLOCKED)
    assert starter.classes["ci-config-write"].require_cli_approval
    assert starter.classes["build-config-write"].ceiling == Level.CONFIRM
    assert starter.defaults.unmatched == "draft"
    assert starter.defaults.window_size == 100


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".env", "secrets-write"),
        ("docs/.env", "secrets-write"),
        (".env.production", "secrets-write"),
        ("config/secrets/prod.yaml", "secrets-write"),
        ("deploy/server.pem", "secrets-write"),
        ("home/.ssh/id_ed25519", "secrets-write"),
        ("src/tests/test_x.py", "tests-write"),
        ("tests/test_api.py", "tests-write"),
        ("web/button.test.ts", "tests-write"),
        ("pkg/handler_test.go", "tests-write"),
        (".github/workflows/ci.yml", "ci-config-write"),
        (".gitlab-ci.yml", "ci-config-write"),
        ("AGENTS.md", "agent-config-write"),
        ("docs/CLAUDE.md", "agent-config-write"),
        (".claude/settings.json", "agent-config-write"),
        ("README.md", "docs-write"),
        ("docs/guide/install.md", "docs-write"),
        ("docs/environment.md", "docs-write"),
        ("pyproject.toml", "build-config-write"),
        ("services/api/Dockerfile", "build-config-write"),
        ("requirements-dev.txt", "build-config-write"),
        ("src/app.py", "source-write"),
        ("web/index.ts", "source-write"),
        ("x.bin", UNCLASSIFIED),
        ("notes.txt", UNCLASSIFIED),
    ],
)
@pytest.mark.parametrize("tool", ["write_file", "edit_file"])
def test_starter_classifies_real_paths(starter: Policy, path: str, expected: str, tool: str) -> None:
    assert starter.classify(write(path, tool=tool)).cls.name == expected


def test_starter_secrets_guard_reports_what_it_beat(starter: Policy) -> None:
    c = starter.classify(write("docs/.env.md"))  # docs-write names file types now, not the docs/ directory
    assert c.cls.name == "secrets-write"
    assert c.also_matched == ("docs-write",)


def test_starter_does_not_classify_other_tools(starter: Policy) -> None:
    assert starter.classify(write("README.md", tool="delete_file")).cls.name == UNCLASSIFIED


def test_verification_undo_and_probation_keys_compile(tmp_path: Path) -> None:
    directory = write_policy(
        tmp_path / "p",
        """
[defaults]
probation = 12
[defaults.undo]
max_total_bytes = 1000
max_age_days = 2
[classes.py]
tools = ["write_file"]
paths = ["**/*.py"]
start = "confirm"
verify = [["python", "-m", "pyflakes", "{path}"], ["pytest", "-q"]]
verify_timeout_s = 30
undo_on_failure = true
secret = true
probation = 5
[classes.docs]
tools = ["write_file"]
paths = ["docs/**"]
start = "confirm"
""",
    )
    policy = load_policy(directory)
    py, docs = policy.classes["py"], policy.classes["docs"]
    assert py.verify == (("python", "-m", "pyflakes", "{path}"), ("pytest", "-q"))
    assert (py.verify_on, py.verify_timeout_s, py.undo_on_failure, py.secret) == ("each", 30, True, True)
    assert (py.trust.probation, docs.trust.probation) == (5, 12)
    assert (docs.verify, docs.undo_on_failure, docs.secret) == ((), False, False)
    assert (policy.defaults.undo.max_total_bytes, policy.defaults.undo.max_age_days) == (1000, 2)


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("undo_on_failure = true", "expected a verify list"),
        ('verify = [["ruff", "{path}"]]\nverify_on = "task_end"\nundo_on_failure = true', 'verify_on = "each"'),
        ("verify = [[]]", "names a program"),
        ('verify = [["ruff"]]\nverify_on = "later"', "verify_on"),
        ("verify_timeout_s = 0", "verify_timeout_s"),
    ],
)
def test_verification_keys_that_cannot_work_are_refused(tmp_path: Path, lines: str, says: str) -> None:
    directory = write_policy(
        tmp_path / "p", f'[classes.py]\ntools = ["write_file"]\npaths = ["**/*.py"]\nstart = "confirm"\n{lines}\n'
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert says in str(caught.value)


def test_the_starter_secrets_class_keeps_no_content() -> None:
    assert load_policy(starter_policy_dir()).classes["secrets-write"].secret
