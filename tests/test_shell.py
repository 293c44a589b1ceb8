"""The shell executor, against real subprocesses: kills, caps, stdin, env, progress, errors."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

import anyio
import pytest

from ratchet.errors import ExecutionFailed, InvalidRequest
from ratchet.executors.shell import CommandResult, run_argv, scrub_env

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


def _dead(pid: int) -> bool:
    """Gone, or a zombie: dead, and merely unreaped by an init that does not reap orphans."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_dead(pid: int, within_s: float = 1.0) -> bool:
    # SIGKILL delivery is asynchronous: allow the kernel a moment to finish the exit.
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _dead(pid):
            return True
        time.sleep(0.01)
    return _dead(pid)


def _pids(tmp_path: Path, *names: str) -> list[int]:
    return [int((tmp_path / name).read_text()) for name in names]


async def _run(argv: list[str], cwd: Path, **kwargs: object) -> CommandResult:
    return await run_argv(argv, cwd=cwd, env=ENV, **kwargs)  # type: ignore[arg-type]


# A shell that records its own pid and a background child's, then waits on it forever.
BACKGROUND = "sleep 100 & echo $! > bg.pid; echo $$ > sh.pid; wait"


@pytest.mark.asyncio
async def test_simple_command(tmp_path: Path) -> None:
    result = await _run(["sh", "-c", "echo out; echo err >&2; exit 3"], tmp_path, timeout_s=5)
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert (result.stdout_bytes, result.stderr_bytes) == (4, 4)
    assert not result.truncated and not result.timed_out
    assert result.argv == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert 0 <= result.duration_s < 3


@pytest.mark.asyncio
async def test_runs_in_cwd(tmp_path: Path) -> None:
    result = await _run(["pwd"], tmp_path, timeout_s=5)
    assert Path(result.stdout.strip()).resolve() == tmp_path.resolve()


@pytest.mark.asyncio
async def test_timeout_kills_group_including_background_child(tmp_path: Path) -> None:
    result = await _run(["sh", "-c", BACKGROUND], tmp_path, timeout_s=0.5)
    assert result.timed_out and result.exit_code is None
    assert result.duration_s < 3
    for pid in _pids(tmp_path, "bg.pid", "sh.pid"):
        assert _wait_dead(pid), f"process {pid} survived the timeout"


@pytest.mark.asyncio
async def test_timeout_escalates_to_sigkill_when_term_is_ignored(tmp_path: Path) -> None:
    # Ignored signals are inherited, so the background sleep ignores SIGTERM too.
    script = "trap '' TERM; " + BACKGROUND
    result = await _run(["sh", "-c", script], tmp_path, timeout_s=0.5)
    assert result.timed_out
    assert result.duration_s < 3
    for pid in _pids(tmp_path, "bg.pid", "sh.pid"):
        assert _wait_dead(pid)


@pytest.mark.asyncio
async def test_clean_exit_does_not_leave_background_children(tmp_path: Path) -> None:
    result = await _run(["sh", "-c", "sleep 100 & echo $! > bg.pid; echo done"], tmp_path, timeout_s=5)
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert result.duration_s < 3  # the child held our pipes; it must not make us wait for it
    (bg,) = _pids(tmp_path, "bg.pid")
    assert _wait_dead(bg)


@pytest.mark.asyncio
async def test_anyio_cancel_scope_kills_group(tmp_path: Path) -> None:
    with anyio.move_on_after(0.5) as scope:
        await _run(["sh", "-c", BACKGROUND], tmp_path, timeout_s=60)
    assert scope.cancelled_caught
    for pid in _pids(tmp_path, "bg.pid", "sh.pid"):
        assert _wait_dead(pid)


@pytest.mark.asyncio
async def test_task_cancel_kills_group_and_propagates(tmp_path: Path) -> None:
    task = asyncio.ensure_future(_run(["sh", "-c", BACKGROUND], tmp_path, timeout_s=60))
    for _ in range(250):  # wait (bounded) until both processes exist, so the cancel has work to do
        if (tmp_path / "sh.pid").exists() and (tmp_path / "bg.pid").exists():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in _pids(tmp_path, "bg.pid", "sh.pid"):
        assert _wait_dead(pid)


@pytest.mark.asyncio
async def test_process_escaping_the_group_does_not_hang_us(tmp_path: Path) -> None:
    # A grandchild in its own session keeps stdout open; we cannot kill it, but must not wait on it.
    code = (
        "import subprocess, pathlib;"
        "p = subprocess.Popen(['sleep', '30'], start_new_session=True);"
        "pathlib.Path('escaped.pid').write_text(str(p.pid))"
    )
    try:
        result = await _run([sys.executable, "-c", code], tmp_path, timeout_s=5)
        assert result.exit_code == 0 and result.duration_s < 3
    finally:
        (escaped,) = _pids(tmp_path, "escaped.pid")
        os.kill(escaped, signal.SIGKILL)


@pytest.mark.asyncio
async def test_flood_is_capped_with_marker_counts_and_bounded_memory(tmp_path: Path) -> None:
    size = 20 * 1024 * 1024
    code = (
        "import sys\n"
        "out, err = sys.stdout.buffer, sys.stderr.buffer\n"
        "out.write(b'BEGIN'); err.write(b'ebegin')\n"
        f"for _ in range({size} // 65536):\n"
        "    out.write(b'x' * 65536); err.write(b'y' * 65536)\n"
        "out.write(b'END'); err.write(b'eend')\n"
    )
    tracemalloc.start()
    try:
        result = await _run([sys.executable, "-c", code], tmp_path, timeout_s=20, output_cap=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0 and result.truncated
    assert result.stdout_bytes == size + 8
    assert result.stderr_bytes == size + 10
    assert result.stdout.startswith("BEGIN") and result.stdout.endswith("END")
    assert result.stderr.startswith("ebegin") and result.stderr.endswith("eend")
    marker = f"[... ratchet truncated {size + 8 - 1000} bytes of stdout; kept first 500 and last 500 ...]"
    assert marker in result.stdout
    assert "bytes of stderr" in result.stderr
    assert len(result.stdout) < 1200
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak} bytes while streaming 40 MB"


@pytest.mark.asyncio
async def test_endless_flood_times_out_capped(tmp_path: Path) -> None:
    result = await _run(["yes"], tmp_path, timeout_s=0.5, output_cap=100)
    assert result.timed_out and result.truncated
    assert result.stdout_bytes > 100_000
    assert result.stdout.startswith("y\ny\n") and len(result.stdout) < 300


@pytest.mark.asyncio
async def test_output_under_cap_is_untouched_and_invalid_utf8_replaced(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff end')"
    result = await _run([sys.executable, "-c", code], tmp_path, timeout_s=5, output_cap=64)
    assert result.stdout == "ok \ufffd end" and not result.truncated


@pytest.mark.asyncio
async def test_stdin_is_fed_then_closed(tmp_path: Path) -> None:
    result = await _run(["cat"], tmp_path, timeout_s=5, stdin="hello\nwörld\n")
    assert result.stdout == "hello\nwörld\n" and result.exit_code == 0


@pytest.mark.asyncio
async def test_large_stdin_while_output_floods(tmp_path: Path) -> None:
    # Writing 4 MB while cat echoes it back deadlocks unless input and output are pumped concurrently.
    text = "z" * (4 * 1024 * 1024)
    result = await _run(["cat"], tmp_path, timeout_s=10, stdin=text, output_cap=100)
    assert result.exit_code == 0 and result.stdout_bytes == len(text)


@pytest.mark.asyncio
async def test_unread_stdin_is_not_an_error(tmp_path: Path) -> None:
    result = await _run(["true"], tmp_path, timeout_s=5, stdin="x" * 1_000_000)
    assert result.exit_code == 0


@pytest.mark.asyncio
async def test_no_stdin_means_dev_null(tmp_path: Path) -> None:
    result = await _run(["cat"], tmp_path, timeout_s=5)
    assert result.exit_code == 0 and result.stdout == ""


@pytest.mark.asyncio
async def test_env_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_TEST_SECRET", "hunter2")
    monkeypatch.setenv("LC_RATCHET_TEST", "kept")
    env = scrub_env(["PATH", "LC_*"], os.environ, {"EXTRA": "given"})
    result = await run_argv(["env"], cwd=tmp_path, env=env, timeout_s=5)
    assert "hunter2" not in result.stdout and "RATCHET_TEST_SECRET" not in result.stdout
    assert "LC_RATCHET_TEST=kept" in result.stdout
    assert "EXTRA=given" in result.stdout


def test_scrub_env_matches_exact_names_and_prefixes() -> None:
    source = {"PATH": "/bin", "PATHX": "no", "LC_ALL": "C", "LANG": "en", "TOKEN": "secret"}
    assert scrub_env(["PATH", "LC_*"], source) == {"PATH": "/bin", "LC_ALL": "C"}
    assert scrub_env([], source, {"A": "1"}) == {"A": "1"}
    assert scrub_env(["PATH"], source, {"PATH": "/override"}) == {"PATH": "/override"}


@pytest.mark.parametrize("entry", ["*", "A*B*", "A*B", ""])
def test_scrub_env_refuses_patterns_that_could_pass_everything(entry: str) -> None:
    with pytest.raises(InvalidRequest):
        scrub_env([entry], {"A": "1"})


@pytest.mark.asyncio
async def test_progress_is_reported_while_running(tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []

    async def progress(elapsed: float, message: str) -> None:
        calls.append((elapsed, message))

    result = await _run(["sleep", "1.5"], tmp_path, timeout_s=5, on_progress=progress, progress_every_s=0.3)
    assert result.exit_code == 0
    assert 3 <= len(calls) <= 6
    elapsed = [e for e, _ in calls]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0.29
    assert all(m.startswith("running ") and "bytes of output" in m for _, m in calls)


@pytest.mark.asyncio
async def test_failing_progress_callback_propagates_and_kills(tmp_path: Path) -> None:
    async def progress(elapsed: float, message: str) -> None:
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await _run(["sh", "-c", BACKGROUND], tmp_path, timeout_s=60, on_progress=progress, progress_every_s=0.3)
    for pid in _pids(tmp_path, "bg.pid", "sh.pid"):
        assert _wait_dead(pid)


@pytest.mark.asyncio
async def test_death_by_signal_is_a_negative_exit_code(tmp_path: Path) -> None:
    result = await _run(["sh", "-c", "kill -9 $$"], tmp_path, timeout_s=5)
    assert result.exit_code == -9 and not result.timed_out


@pytest.mark.asyncio
async def test_missing_program_names_it(tmp_path: Path) -> None:
    with pytest.raises(ExecutionFailed, match="no-such-program-xyz"):
        await _run(["no-such-program-xyz", "--flag"], tmp_path, timeout_s=5)


@pytest.mark.asyncio
async def test_non_executable_program(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    with pytest.raises(ExecutionFailed, match=r"script\.sh"):
        await _run([str(script)], tmp_path, timeout_s=5)


@pytest.mark.parametrize(
    ("argv", "kwargs"),
    [
        ([], {}),
        ([""], {}),
        (["echo", "a\x00b"], {}),
        (["echo"], {"timeout_s": 0}),
        (["echo"], {"output_cap": -1}),
        (["echo"], {"progress_every_s": 0}),
    ],
)
@pytest.mark.asyncio
async def test_invalid_requests(tmp_path: Path, argv: list[str], kwargs: dict[str, float]) -> None:
    options: dict[str, float] = {"timeout_s": 5, **kwargs}
    with pytest.raises(InvalidRequest):
        await _run(argv, tmp_path, **options)


@pytest.mark.asyncio
async def test_missing_cwd_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="working directory"):
        await _run(["echo"], tmp_path / "nope", timeout_s=5)


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.asyncio
async def test_a_child_that_ignores_term_gets_the_whole_grace_and_is_dead_when_the_call_returns(
    tmp_path: Path,
) -> None:
    """The group is polled from half a millisecond up, not every 20 ms: still, a background child that
    ignores SIGTERM keeps its full grace before SIGKILL, and nothing of it runs once the call returns."""
    script = "trap '' TERM; sleep 100 & echo $! > bg.pid; echo done"
    result = await _run(["sh", "-c", script], tmp_path, timeout_s=5)
    (bg,) = _pids(tmp_path, "bg.pid")
    assert _state(bg) in (None, "Z", "X"), "a child of the command still ran when the call returned"
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert result.duration_s >= 0.45  # _TERM_GRACE_S (0.5 s), less the clock's rounding


@pytest.mark.asyncio
async def test_a_group_that_empties_at_once_is_not_waited_for(tmp_path: Path) -> None:
    """A command whose children all exit with it: no grace is spent (the call takes well under 0.5 s)."""
    result = await _run(["sh", "-c", "sleep 0.01 & wait; echo done"], tmp_path, timeout_s=5)
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert result.duration_s < 0.4
