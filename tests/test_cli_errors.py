"""Every CLI error is one line, through the real console script: no traceback, exit 1 for a runtime
error, 2 for a usage error, 130 when interrupted, 141 when the reader closes the pipe; commands that
read the record never create a database."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ratchet.cli import _failed
from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Stdio


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RATCHET_DB", "RATCHET_POLICIES", "RATCHET_TRACEBACK")}


def _run(ratchet_bin: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ratchet_bin), *argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )


def _one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stderr.endswith("\n"), done.stderr
    assert done.returncode == code, (done.returncode, done.stderr)
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _databases(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".db", ".db-wal", ".db-shm"))]


READERS = [
    ["queue"],
    ["status"],
    ["inbox"],
    ["metrics"],
    ["report"],
    ["explain", "1"],
    ["history"],
    ["show", "1"],
    ["transitions"],
    ["escalations"],
    ["approve", "1"],
    ["reject", "1", "--reason", "no"],
    ["complain", "1", "--reason", "wrong"],
    ["resolve", "1", "--note", "do b"],
]


@pytest.mark.parametrize("argv", READERS, ids=lambda a: a[0])
def test_commands_that_read_the_record_never_create_a_database(
    ratchet_bin: Path, workspace: Path, argv: list[str]
) -> None:
    line = _one_line(_run(ratchet_bin, workspace, *argv), 1, "no trust database at", "ratchet serve", "ratchet init")
    assert str(workspace / ".ratchet" / "ratchet.db") in line  # where it looked
    assert not (workspace / ".ratchet").exists() and _databases(workspace.parent) == []
    elsewhere = workspace.parent / "state" / "given.db"
    done = _run(ratchet_bin, workspace, *argv, "--db", str(elsewhere))
    assert str(elsewhere) in _one_line(done, 1) and not elsewhere.parent.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["queue", "--bogus"], ["unrecognized arguments: --bogus", "--help"]),
        (["show", "seven"], ["invalid int value", "ratchet show --help"]),
        ([], ["required: COMMAND"]),
        (["pin", "docs-write", "sometimes", "--reason", "x"], ["invalid choice"]),
        (["install", "codex", "--scope", "local"], ["claude-code only"]),
    ],
)
def test_usage_errors_exit_2_in_one_line(ratchet_bin: Path, workspace: Path, argv: list[str], words: list[str]) -> None:
    _one_line(_run(ratchet_bin, workspace, *argv), 2, *words)
    assert _databases(workspace.parent) == []


def test_unreadable_files_are_one_line(ratchet_bin: Path, workspace: Path, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    (policies / "broken.toml").mkdir(parents=True)  # a "file" that cannot be read as one
    _one_line(_run(ratchet_bin, workspace, "lint", str(policies)), 1, "broken.toml", "cannot read the file")
    _one_line(_run(ratchet_bin, workspace, "status", "--policies", str(policies)), 1)
    undecodable = tmp_path / "latin.toml"
    undecodable.write_bytes(b"[defaults]\nunmatched = '\xe9'\n")
    (tmp_path / "p2").mkdir()
    undecodable.rename(tmp_path / "p2" / "latin.toml")
    _one_line(_run(ratchet_bin, workspace, "lint", str(tmp_path / "p2")), 1, "latin.toml")
    content = tmp_path / "content-dir"
    content.mkdir()
    _one_line(_run(ratchet_bin, workspace, "approve", "1", "--content", str(content)), 1, str(content))
    _one_line(_run(ratchet_bin, workspace, "approve", "1", "--content", str(tmp_path / "none")), 1, "No such file")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, " * 100)
    _one_line(_run(ratchet_bin, workspace, "status", "--db", str(garbage)), 1, str(garbage), "not a database")
    assert _databases(workspace) == []


NOBODY = 65534


def _as_nobody(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`ratchet ARGV` (the CLI's `main`) in a forked child that dropped root for nobody before it ran:
    how a test that needs a user without root's powers runs where the suite runs as root (as CI does).
    The caller runs the command once in its own process first, so that the modules it needs are
    imported before the fork and nobody need not read the source tree (wherever CI cloned it)."""
    from ratchet.cli import main

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        code = 70
        try:
            os.close(read)
            os.dup2(write, 2)
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - closed by _exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = 71 if os.geteuid() == 0 else main(argv)
        except BaseException as exc:
            os.write(2, f"the child failed: {exc!r}\n".encode())
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read, encoding="utf-8") as out:
        err = out.read()
    _, status = os.waitpid(pid, 0)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), "", err)


def test_a_file_without_read_permission_is_one_line(ratchet_bin: Path, workspace: Path, tmp_path: Path) -> None:
    # Root reads any file, so as root (CI) the CLI runs as nobody, on a directory nobody may list.
    root = os.geteuid() == 0
    policies = Path(tempfile.mkdtemp(prefix="ratchet-unreadable-")) if root else tmp_path / "policies"
    try:
        policies.mkdir(exist_ok=True)
        policies.chmod(0o755)
        (policies / "b.toml").write_text('[classes.b]\ntools = ["write_file"]\npaths = ["b/**"]\nstart = "confirm"\n')
        if root:
            from ratchet.cli import main

            with contextlib.redirect_stdout(io.StringIO()):  # the modules lint needs, imported as root
                assert main(["lint", "--workspace", str(policies), str(policies)]) == 0
            readable = _as_nobody(policies, ["lint", "--workspace", str(policies), str(policies)])
            assert readable.returncode == 0, readable.stderr  # nobody may read the directory and b.toml
        secret = policies / "a.toml"
        secret.write_text("[defaults]\n")
        secret.chmod(0)
        done = (
            _as_nobody(policies, ["lint", "--workspace", str(policies), str(policies)])
            if root
            else _run(ratchet_bin, workspace, "lint", str(policies))
        )
        _one_line(done, 1, "a.toml", "ermission denied")
    finally:
        if root:
            shutil.rmtree(policies)


def test_a_database_directory_that_cannot_be_made_is_one_line(
    ratchet_bin: Path, workspace: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    db = blocker / "sub" / "ratchet.db"
    for argv in (["demote", "docs-write", "--reason", "x"], ["init"]):
        _one_line(_run(ratchet_bin, workspace, *argv, "--db", str(db)), 1, str(db))
    done = subprocess.run(
        [str(ratchet_bin), "serve", "--db", str(db)],
        cwd=workspace,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _one_line(done, 1, "cannot open trust database", str(db))
    assert _databases(tmp_path) == []


@pytest.mark.asyncio
async def test_a_closed_pipe_is_no_traceback(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        await client.call_tool("write_file", {"path": "auto/a.txt", "content": "a\n"})
    con = sqlite3.connect(db)
    try:
        for _ in range(12):  # 4096 rows: far more output than a pipe holds
            con.execute(
                "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, "
                "preview, class_level, level, route, triggers_json, status, pid) SELECT session_id, created_at, "
                "tool, target, class, rule, policy, args_json, preview, class_level, level, route, triggers_json, "
                "status, pid FROM actions"
            )
        con.commit()
    finally:
        con.close()
    argv = [str(ratchet_bin), "history", "--limit", "5000", "--policies", str(policies), "--db", str(db)]
    first, stderr, code = await anyio.to_thread.run_sync(_head_one, argv, workspace)
    assert b"auto/a.txt" in first and first.lstrip().startswith(b"ID ")  # the header, then the newest row
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and stderr == "", stderr
    assert code == 141


def _head_one(argv: list[str], cwd: Path) -> tuple[bytes, str, int]:
    """Read the first two lines of the command's output and close the pipe, as `| head -2` does."""
    proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline() + proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return first, stderr, proc.wait(timeout=120)


def test_ctrl_c_is_one_line_and_exit_130(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    argv = [str(ratchet_bin), "serve", "--policies", str(policies), "--db", str(db)]
    with Stdio(argv, cwd=workspace, env=_env()) as server:
        # Serving: the interrupt lands in the running command.
        server.initialize(protocol="2025-06-18", initialized=False)
        proc = server.proc
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr and proc.returncode == 130, stderr
    # The one line after serve's own start-up line: what it does on the way out (mcp/stdio.py).
    assert stderr.splitlines()[1:] == ["ratchet: SIGINT received; recording running calls and closing the database"]


def test_a_database_from_the_future_is_one_line(ratchet_bin: Path, workspace: Path, tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 999")
    con.close()
    _one_line(_run(ratchet_bin, workspace, "status", "--db", str(db)), 1, "schema version 999", "upgrade Ratchet")


def test_an_internal_error_is_one_line_unless_the_traceback_is_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bug = TypeError("unsupported operand\ntype(s)")
    assert _failed(bug) == 1
    line = capsys.readouterr().err
    assert line == (
        "ratchet: error: internal error: TypeError: unsupported operand type(s) "
        "(set RATCHET_TRACEBACK=1 for the traceback)\n"
    )
    monkeypatch.setenv("RATCHET_TRACEBACK", "1")
    with pytest.raises(TypeError):
        _failed(bug)
