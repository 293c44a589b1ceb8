"""Starter policies: code outranks directories. A script, a Makefile or Sphinx's conf.py under docs/ is
code a build runs, not documentation; `ratchet lint` flags a class that takes such files by directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ratchet.policy.load import executed_files, lint_warnings, load_policy, starter_policy_dir
from ratchet.policy.model import Subject

from .helpers import write_policy


def _class_of(path: str) -> str:
    policy = load_policy(starter_policy_dir())
    return policy.classify(Subject(tool="write_file", paths=(path,))).cls.name


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("docs/conf.py", "source-write"),
        ("docs/source/conf.py", "source-write"),
        ("docs/build.sh", "source-write"),
        ("docs/tools/gen.py", "source-write"),
        ("docs/make.bat", "source-write"),
        ("docs/Makefile", "build-config-write"),
        ("docs/requirements.txt", "build-config-write"),
        ("docs/rules.mk", "build-config-write"),
    ],
)
def test_code_under_docs_is_not_documentation(path: str, cls: str) -> None:
    assert _class_of(path) == cls


@pytest.mark.parametrize("path", ["docs/guide/install.md", "README.md", "docs/index.rst", "docs/img/arch.svg"])
def test_documentation_is_still_documentation(path: str) -> None:
    assert _class_of(path) == "docs-write"


def test_the_starter_policies_lint_clean_of_executed_files() -> None:
    policy = load_policy(starter_policy_dir())
    assert not [w for w in lint_warnings(policy) if "executed" in w]
    assert all(executed_files(policy, c) == [] for c in policy.classes.values())


DOCS_BY_DIRECTORY = """
[classes.docs]
tools = ["write_file", "edit_file"]
paths = ["docs/**", "**/*.md"]
start = "confirm"
ceiling = "autonomous"

[classes.source]
tools = ["write_file", "edit_file"]
paths = ["src/**", "**/*.py"]
start = "draft"

[classes.ci]
tools = ["write_file", "edit_file"]
paths = [".github/**"]
start = "draft"
ceiling = "draft"
"""


def test_lint_flags_a_class_whose_paths_take_files_that_get_executed(tmp_path: Path, ratchet_bin: Path) -> None:
    directory = write_policy(tmp_path / "p", DOCS_BY_DIRECTORY)
    policy = load_policy(directory)
    found = executed_files(policy, policy.classes["docs"])
    assert "docs/Makefile" in found and "docs/build.sh" in found and "docs/.envrc" in found
    assert "docs/conf.py" in found  # docs/** is the more specific pattern: the directory took the code
    assert executed_files(policy, policy.classes["source"]) == []  # a code class names code
    assert executed_files(policy, policy.classes["ci"]) == []  # held to a human: it guards what it takes
    done = subprocess.run(
        [str(ratchet_bin), "lint", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr  # a warning, not an error: the policy is valid
    out = done.stdout + done.stderr
    assert "warning: class docs" in out and "docs/conf.py" in out and "code outranks directories" in out
    assert "class source" not in out.split("warning:", 1)[1] and "class ci" not in out.split("warning:", 1)[1]
