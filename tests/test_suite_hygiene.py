"""The test suite's own shape: every test file stands on its own. What tests share lives in
`helpers.py` (and the fixtures in `conftest.py`); a test file that imports from another test file ties
the two together, so that editing one silently changes, or breaks, the other. And the suite leaves no
Ratchet process running behind it (conftest.py checks at the end of the run)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client

from .conftest import MakeServer
from .helpers import (
    RUN_ENV,
    Clock,
    Human,
    git,
    left_behind,
    ratchet_processes,
    require_module,
    rows,
    write,
    write_policy,
)

TESTS = Path(__file__).parent
SHARED = {"conftest", "helpers"}  # the modules every test file may import from


def imported_modules(tree: ast.Module) -> list[str]:
    """Every module of this directory that `tree` imports from, by its name (`test_x`, `helpers`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] != "tests":
                continue
            inner = parts[1:] if node.level == 0 else [p for p in parts if p]
            if inner:
                found.append(inner[0])
            else:  # `from . import test_x` / `from tests import test_x`
                found += [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1] for a in node.names if a.name.startswith("tests.") and "." in a.name]
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_no_test_file_imports_from_another(path: Path) -> None:
    imported = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    others = sorted({name for name in imported if name not in SHARED and (TESTS / f"{name}.py").exists()})
    assert not others, f"{path.name} imports from {others}: move what they share into tests/helpers.py"


@pytest.mark.parametrize(
    "source",
    [
        "from .test_hooks import Claude",
        "from tests.test_hooks import Claude",
        "from . import test_hooks",
        "from tests import test_hooks",
        "import tests.test_hooks",
        "def f():\n    from .test_hooks import Claude\n",
    ],
)
def test_the_check_sees_every_spelling_of_such_an_import(source: str) -> None:
    assert imported_modules(ast.parse(source)) == ["test_hooks"]


def test_the_check_lets_the_shared_modules_and_libraries_through() -> None:
    source = "from .helpers import Human\nfrom .conftest import X\nfrom ratchet.cli import main\nimport json\n"
    assert imported_modules(ast.parse(source)) == ["helpers", "conftest"]


@pytest.mark.asyncio
async def test_the_server_fixture_is_a_real_server_on_a_git_workspace_and_a_sqlite_file(
    server: Client, workspace: Path, remote: Path, db: Path
) -> None:
    out = await write(server, "auto/a.txt")
    assert out["status"] == "executed" and (workspace / "auto/a.txt").read_text() == "x\n"
    assert git(workspace, "rev-parse", "--show-toplevel").strip() == str(workspace)
    assert git(workspace, "ls-remote", "origin", "main").split()[0] == git(workspace, "rev-parse", "HEAD").strip()
    assert remote.is_dir() and git(remote, "rev-parse", "--is-bare-repository").strip() == "true"
    assert [tuple(r) for r in rows(db, "SELECT tool, status FROM actions")] == [("write_file", "executed")]


@pytest.mark.asyncio
async def test_make_server_takes_a_policy_a_human_and_a_clock(
    make_server: MakeServer, tmp_path: Path, workspace: Path
) -> None:
    clock = Clock()
    human = Human(approve=False, delay=9.0, clock=clock)
    only_ask = write_policy(tmp_path / "only-ask", '[classes.ask]\ntools = ["write_file"]\nstart = "confirm"\n')
    async with make_server(only_ask, human=human, clock=clock) as client:
        out = await write(client, "anything.txt")
    assert (out["status"], out["action_class"]) == ("declined", "ask") and len(human.seen) == 1
    assert not (workspace / "anything.txt").exists()


def test_the_leftover_check_finds_a_ratchet_process_this_run_started_and_no_other(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, ratchet_bin: Path
) -> None:
    """The session's finaliser (conftest.py `no_ratchet_process_left_behind`) fails the run on a Ratchet
    process left running: here one detached `ratchet serve` with the run's environment, and one given an
    environment of its own, are both found; once ended, neither is."""
    marker, since = os.environ[RUN_ENV], time.time() - 1
    argv = [str(ratchet_bin), "serve", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    stripped = {"PATH": os.environ["PATH"]}
    started = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env=env)
        for env in (None, stripped)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while {p.pid for p in started} - {pid for pid, _ in ratchet_processes(marker, since, sys.executable)}:
            assert time.monotonic() < deadline, ratchet_processes(marker, since, sys.executable)
            time.sleep(0.1)
        # Another run's processes (another marker, started before it) are not this run's.
        assert not {p.pid for p in started} & {pid for pid, _ in ratchet_processes("other", time.time() + 60, "x")}
    finally:
        for p in started:
            p.kill()
            p.wait(timeout=30)
    assert not {p.pid for p in started} & {pid for pid, _ in left_behind(marker, since, sys.executable, grace_s=0)}


# -- nothing is skipped in CI for want of a dependency ------------------------------------------------


def test_a_missing_module_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "ratchet_no_such_module_for_the_test"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{missing} cannot be imported.*pip install"):
        require_module(missing, "pip install it")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=f"{missing} cannot be imported"):
        require_module(missing, "pip install it")
    assert require_module("json", "-").dumps([1]) == "[1]"


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_no_test_file_skips_a_missing_import_silently(path: Path) -> None:
    """`pytest.importorskip` would skip in CI too when an install broke; `helpers.require_module` fails there."""
    calls = [
        node
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "importorskip"
    ]
    assert not calls, f"{path.name} uses pytest.importorskip: use helpers.require_module"
