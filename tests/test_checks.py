"""Verification checks: expansion without a shell, and real confined runs of real programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.executors.checks import expand, run_checks
from ratchet.executors.confined import Confinement
from ratchet.policy.model import DEFAULT_ENV_ALLOW


def test_paths_splat_as_separate_arguments_and_path_runs_once_per_target() -> None:
    assert expand(["ruff", "check", "{paths}"], ["a.py", "b c.py"]) == [["ruff", "check", "./a.py", "./b c.py"]]
    assert expand(["lint", "--file={path}"], ["a.py", "b.py"]) == [["lint", "--file=./a.py"], ["lint", "--file=./b.py"]]
    assert expand(["pytest", "-q"], ["a.py"]) == [["pytest", "-q"]]


def test_a_target_that_looks_like_an_option_is_passed_as_a_path() -> None:
    assert expand(["ruff", "check", "{path}"], ["--config=evil.toml"]) == [["ruff", "check", "./--config=evil.toml"]]
    assert expand(["x", "{paths}"], ["-rf"]) == [["x", "./-rf"]]


def test_shell_metacharacters_in_a_target_stay_one_argument() -> None:
    assert expand(["cat", "{path}"], ["a; rm -rf ~"]) == [["cat", "./a; rm -rf ~"]]


# Checks run `python3` from PATH, not sys.executable: a virtual environment under /tmp is hidden by the
# sandbox's private /tmp, exactly as it would be from an agent's command.


@pytest.fixture
def confinement(tmp_path: Path) -> Confinement:
    ws = tmp_path / "ws"
    (ws / ".ratchet").mkdir(parents=True)
    return Confinement(ws, (ws / ".ratchet",), DEFAULT_ENV_ALLOW, 64_000)


@pytest.mark.asyncio
async def test_a_real_check_passes_good_code_and_fails_broken_code_with_its_output(confinement: Confinement) -> None:
    (confinement.workspace / "good.py").write_text("x = 1\n")
    (confinement.workspace / "bad.py").write_text("def broken(:\n")
    check = [["python3", "-m", "py_compile", "{path}"]]
    good, bad = await run_checks(check, ["good.py", "bad.py"], confinement, timeout_s=60, token="t")
    assert good.passed and good.exit_code == 0
    assert not bad.passed and bad.exit_code != 0 and "SyntaxError" in bad.tail and "bad.py" in bad.tail


@pytest.mark.asyncio
async def test_a_check_that_hangs_is_killed_and_fails(confinement: Confinement) -> None:
    (result,) = await run_checks(
        [["python3", "-c", "import time; time.sleep(60)"]], ["a.py"], confinement, timeout_s=0.5, token="t"
    )
    assert not result.passed and result.timed_out and "timed out" in result.summary()


@pytest.mark.asyncio
async def test_a_check_that_cannot_start_fails_and_says_why(confinement: Confinement) -> None:
    (result,) = await run_checks([["no-such-checker-xyz", "{path}"]], ["a.py"], confinement, timeout_s=5, token="t")
    assert not result.passed and result.exit_code is None and "no-such-checker-xyz" in result.tail


@pytest.mark.asyncio
async def test_a_check_runs_confined_like_an_agent_command(confinement: Confinement) -> None:
    """A check is a program from the repository's own tooling: it gets no more reach than the agent."""
    from ratchet.executors.sandbox import sandbox_status

    if not sandbox_status().available:
        pytest.fail("bubblewrap is required for this test (apt-get install bubblewrap)")
    script = "open('.ratchet/planted', 'w').write('x')"
    (result,) = await run_checks([["python3", "-c", script]], ["a.py"], confinement, timeout_s=30, token="t")
    assert not result.passed and not (confinement.workspace / ".ratchet" / "planted").exists()
