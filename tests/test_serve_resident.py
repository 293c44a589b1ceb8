"""`ratchet serve --resident`: the stdio front hands each session to a process forked from a resident serve
server, and that session behaves as a `ratchet serve` process of its own: the SDK's real `Client` over
stdio, its own engine session, the front's environment and directory, elicitation, progress, signals,
a client that closes stdin or vanishes. The resident is never a secret (`ratchet status`, `ratchet
hook-server stop`), exits when idle, and serves nobody but this uid outside the sandbox.

Each test uses its own socket directory in $HOME (the sandbox's private /tmp would hide one under /tmp
whatever else held) and stops every resident it started."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from ratchet.claude_code import hook_servers, hook_socket
from ratchet.mcp import front

from .helpers import LEVELS_POLICY, Human, Stdio, ratchet_argv, write_policy

SLEEP = "41.75"  # an argument no other process on the machine is likely to run `sleep` with
POLICY = (
    LEVELS_POLICY.replace(
        "[classes.auto]", '[defaults.commands]\nenv_allow = ["PATH", "HOME", "LANG", "PROBE"]\n\n[classes.auto]'
    )
    + """
[classes.sleep-run]
tools = ["run_command"]
argv = [["sleep"]]
start = "autonomous"

[classes.probe-run]
tools = ["run_command"]
argv = [["sh"]]
start = "autonomous"
sandbox = "workspace"
"""
)


def _socket_dir(base: Path) -> Iterator[Path]:
    folder = base / f".ratchet-rs-{uuid.uuid4().hex[:8]}"  # short: a socket path has a length limit
    env = {**os.environ, hook_socket.SOCKET_DIR_ENV: str(folder)}
    try:
        yield folder
    finally:
        for server in hook_servers.running(env):  # every resident the test started is stopped
            hook_servers.stop(server)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sockets() -> Iterator[Path]:
    """A private socket directory in $HOME."""
    yield from _socket_dir(Path.home())


@pytest.fixture
def open_sockets() -> Iterator[Path]:
    """A private socket directory in the system's temporary directory (another uid reaches nothing in $HOME)."""
    yield from _socket_dir(Path(tempfile.gettempdir()))


def env_for(sockets: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in hook_socket.KEYED_ENV and not k.startswith("CLAUDE_")}
    return {**env, hook_socket.SOCKET_DIR_ENV: str(sockets), "NO_COLOR": "1", **extra}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "resident-policies", POLICY)


def serve_args(workspace: Path, policies: Path, db: Path) -> list[str]:
    return ["serve", "--resident", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]


def residents(sockets: Path) -> list[hook_servers.HookServer]:
    return [s for s in hook_servers.running(env_for(sockets)) if s.kind == hook_servers.SERVE_KIND]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])


def rows(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM actions ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def sleepers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b"sleep") and argv[1] == SLEEP.encode():
            found.append(int(proc.name))
    return found


def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def run(argv: list[str], env: dict[str, str]) -> str:
    """A `ratchet` command's stdout (it must succeed)."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True).stdout


def client(ratchet_bin: Path, argv: list[str], env: dict[str, str], cwd: Path, human: Human | None = None) -> Client:
    params = StdioServerParameters(command=str(ratchet_bin), args=argv, env=env, cwd=str(cwd))
    return Client(stdio_client(params), elicitation_callback=human)


@pytest.mark.asyncio
async def test_each_session_through_the_front_is_a_serve_process_of_its_own(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    argv = serve_args(workspace, policies, db)
    seen: list[tuple[int, str, str]] = []  # per session: its pid, its commands' PROBE, its working directory
    (workspace / "env.sh").write_text('echo "PROBE=$PROBE"\n')
    for probe in ("one", "two"):
        env = env_for(sockets, PROBE=probe)
        async with client(ratchet_bin, argv, env, workspace) as c:
            names = sorted(t.name for t in (await c.list_tools()).tools)
            assert len(names) == 17 and "write_file" in names and "claude_code_hook" in names
            out = (await c.call_tool("write_file", {"path": f"auto/{probe}.txt", "content": probe})).structured_content
            assert out is not None and out["status"] == "executed", out
            pid = rows(db)[-1]["pid"]  # recorded by the process that served the call
            ran = (await c.call_tool("run_command", {"argv": ["sh", "env.sh"]})).structured_content
            assert ran is not None and ran["status"] == "executed", ran
            seen.append((pid, ran["result"]["stdout"].strip(), str(Path(f"/proc/{pid}/cwd").readlink())))
            (server,) = residents(sockets)
            assert parent_of(pid) == server.pid and server.sessions == 1
            status = ratchet_argv(ratchet_bin, workspace, policies, db, "status")
            shown = await anyio.to_thread.run_sync(run, status, env)
            line = next(x for x in shown.splitlines() if x.startswith("resident serve server:"))
            assert f"running (pid {server.pid}, since" in line and "1 session(s) now" in line, line
            assert "exits after 10 min without a session" in line and "`ratchet hook-server stop`" in line
        wait_until(lambda pid=pid: not alive(pid), "the session's process outlived its client")
    assert (workspace / "auto/one.txt").read_text() == "one" and (workspace / "auto/two.txt").read_text() == "two"
    (first, second) = seen
    assert first[0] != second[0]  # a process per session, forked from the same resident
    assert (first[1], second[1]) == ("PROBE=one", "PROBE=two")  # each has its own front's environment
    assert first[2] == second[2] == str(workspace)
    sessions = {r["session_id"] for r in rows(db)}
    assert len(sessions) == 2, "each connection is its own Ratchet session"
    (server,) = residents(sockets)
    assert server.sessions == 0
    stopped = await anyio.to_thread.run_sync(run, [str(ratchet_bin), "hook-server", "stop", "--all"], env_for(sockets))
    assert stopped == f"resident serve server {server.pid} stopped\n"
    wait_until(lambda: not alive(server.pid), "the resident outlived `ratchet hook-server stop`")
    assert not list(sockets.glob("*.sock")) and not list(sockets.glob("*.json"))


@pytest.mark.asyncio
async def test_elicitation_and_progress_reach_the_client_through_the_front(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    human = Human()
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    env = env_for(sockets, RATCHET_SERVE_RESIDENT="1")  # the variable instead of the flag
    argv = [a for a in serve_args(workspace, policies, db) if a != "--resident"]
    async with client(ratchet_bin, argv, env, workspace, human) as c:
        asked = (await c.call_tool("write_file", {"path": "ask/a.txt", "content": "a\n"})).structured_content
        assert asked is not None and asked["status"] == "executed", asked
        assert len(human.seen) == 1 and "ask/a.txt" in human.seen[0].message
        slept = await c.call_tool(
            "run_command", {"argv": ["sleep", "4.5"], "timeout_s": 60}, progress_callback=on_progress
        )
        assert slept.structured_content is not None and slept.structured_content["status"] == "executed"
        (server,) = residents(sockets)  # served through the resident, not in the front's own process
        assert parent_of(rows(db)[-1]["pid"]) == server.pid
    assert progress and all(done > 0 for done, _ in progress), progress


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_front_ends_the_session_as_it_ends_a_serve_process(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path, signum: int, code: int
) -> None:
    with Stdio([str(ratchet_bin), *serve_args(workspace, policies, db)], env=env_for(sockets)) as server:
        server.initialize(0, client="signals")
        server.call(1, "run_command", {"argv": ["sleep", SLEEP], "timeout_s": 120})
        wait_until(lambda: any(r["status"] == "running" for r in rows(db)) and sleepers(), "the command never started")
        exit_code, stderr = server.stop(signum)
    assert exit_code == code, stderr
    assert f"{signal.Signals(signum).name} received" in stderr  # the session's own log line, on the client's stderr
    (row,) = rows(db)
    assert (row["tool"], row["status"]) == ("run_command", "interrupted")
    assert row["finished_at"] is not None and "cancelled" in row["error"]
    assert row["pid"] != server.proc.pid and not alive(row["pid"])
    assert not Path(f"{db}-wal").exists(), "the database was not closed cleanly"
    wait_until(lambda: not sleepers(), f"sleep {SLEEP} outlived the session", 20)


@pytest.mark.parametrize("resident", [False, True], ids=["per-process", "resident"])
def test_a_client_closing_stdin_mid_command_ends_it_the_same_way(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path, resident: bool
) -> None:
    argv = serve_args(workspace, policies, db)
    argv = argv if resident else [a for a in argv if a != "--resident"]
    with Stdio([str(ratchet_bin), *argv], env=env_for(sockets)) as server:
        server.initialize(0, client="stdin")
        server.call(1, "run_command", {"argv": ["sleep", SLEEP], "timeout_s": 120})
        wait_until(lambda: any(r["status"] == "running" for r in rows(db)) and sleepers(), "the command never started")
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(timeout=60) == 0
    wait_until(lambda: not sleepers(), f"sleep {SLEEP} outlived its client", 20)
    (row,) = rows(db)
    assert row["status"] == "interrupted" and "cancelled" in row["error"], dict(row)
    assert not Path(f"{db}-wal").exists()
    assert bool(residents(sockets)) == resident


def test_a_front_killed_outright_has_its_session_ended(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    with Stdio([str(ratchet_bin), *serve_args(workspace, policies, db)], env=env_for(sockets)) as server:
        server.initialize(0, client="killed")
        server.call(1, "run_command", {"argv": ["sleep", SLEEP], "timeout_s": 120})
        wait_until(lambda: any(r["status"] == "running" for r in rows(db)) and sleepers(), "the command never started")
        session = rows(db)[0]["pid"]
        server.proc.kill()  # SIGKILL: the front says nothing; the resident sees its connection close
        server.proc.wait()
        wait_until(lambda: not alive(session), "the session outlived its front", 30)
    (row,) = rows(db)
    assert row["status"] == "interrupted", dict(row)
    wait_until(lambda: not sleepers(), f"sleep {SLEEP} outlived the session", 20)


def test_a_resident_killed_outright_leaves_its_sessions_serving_and_their_fronts_waiting(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    with Stdio([str(ratchet_bin), *serve_args(workspace, policies, db)], env=env_for(sockets)) as server:
        server.initialize(0, client="orphaned")
        (resident,) = residents(sockets)
        os.kill(resident.pid, signal.SIGKILL)
        wait_until(lambda: not alive(resident.pid), "the resident survived SIGKILL")
        server.call(1, "write_file", {"path": "auto/after.txt", "content": "after"})
        assert '"executed"' in server.line()  # the session goes on, and its front stands in for it
        assert server.proc.poll() is None
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(timeout=60) == 1  # the session's own code went with the resident
        assert server.proc.stderr is not None
        assert "the resident serve server went away; waiting for session" in server.proc.stderr.read()
    (row,) = rows(db)
    assert row["status"] == "executed" and not alive(row["pid"])
    assert (workspace / "auto/after.txt").read_text() == "after"


def _start_resident(ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path) -> Path:
    """A resident for `serve --resident` here, started by one session; its socket."""
    argv = serve_args(workspace, policies, db)
    with Stdio([str(ratchet_bin), *argv], env=env_for(sockets), cwd=workspace) as server:
        server.initialize(0, client="first")
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(timeout=60) == 0
    (sock,) = sockets.glob("serve-*.sock")
    return sock


HAND_OVER = """
import json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(sys.argv[1])
except OSError as exc:
    print("CONNECT", type(exc).__name__)
    raise SystemExit(0)
try:
    socket.send_fds(sock, [b"R"], [0, 1, 2, os.open("/", os.O_RDONLY)])
    header = {"v": 1, "secret": sys.argv[2], "setup": sys.argv[3], "umask": 18, "env": {"PATH": "/usr/bin:/bin"}}
    sock.sendall(json.dumps(header).encode() + b"\\n")
    sock.settimeout(20)
    reply = sock.recv(4096).decode()
except (ConnectionResetError, BrokenPipeError):
    reply = ""
print("REPLY", reply or "HUNG-UP")
"""


def test_another_uid_cannot_reach_the_resident_even_with_its_secret(
    ratchet_bin: Path, open_sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    sockets = open_sockets
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.getuid() != 0 or python is None:
        pytest.skip("needs root and a system python3 to run a client as another uid")
    sock = _start_resident(ratchet_bin, sockets, workspace, policies, db)
    secret = sock.with_suffix(".secret").read_text().strip()
    setup = front.setup(serve_args(workspace, policies, db)[1:], env_for(sockets), str(workspace))

    def as_nobody() -> str:
        done = subprocess.run(
            [python, "-I", "-c", HAND_OVER, str(sock), secret, setup], user=65534, group=65534,
            capture_output=True, text=True, timeout=60, check=True, cwd="/",
        )  # fmt: skip
        return done.stdout.strip()

    assert as_nobody() == "CONNECT PermissionError"  # the directory is 0700, the socket 0600
    # Even with both opened to everyone and the secret leaked, the resident hangs up on another uid.
    sockets.chmod(0o755)
    sock.chmod(0o666)
    try:
        assert as_nobody() == "REPLY HUNG-UP"
    finally:
        sockets.chmod(0o700)
        sock.chmod(0o600)
    log = next(sockets.glob("serve-*.log")).read_text()
    assert "refused a connection: PermissionError: a peer of another uid" in log
    assert log.count("session ") == 2  # the first session's start and end; nothing for the other uid
    # The same hand-over from this uid, with the secret, is served: the check above is the uid's.
    done = subprocess.run(
        [sys.executable, "-I", "-c", HAND_OVER, str(sock), secret, setup], capture_output=True, text=True,
        timeout=60, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.stdout.startswith('REPLY {"pid": '), done.stdout


def test_a_caller_without_the_secret_is_hung_up_on(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    sock = _start_resident(ratchet_bin, sockets, workspace, policies, db)
    setup = front.setup(serve_args(workspace, policies, db)[1:], env_for(sockets), str(workspace))
    done = subprocess.run(
        [sys.executable, "-I", "-c", HAND_OVER, str(sock), "0" * 64, setup], capture_output=True, text=True,
        timeout=60, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.stdout.strip() == "REPLY HUNG-UP"
    assert "PermissionError: the caller does not hold this server's secret" in next(sockets.glob("*.log")).read_text()


@pytest.mark.asyncio
async def test_a_command_in_the_sandbox_cannot_see_or_reach_the_resident(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    probe = f"""
ls -A {sockets} 2>/dev/null | grep -c . || true
cat {sockets}/*.secret 2>/dev/null || echo NO-SECRET
python3 -c 'import glob, socket; s = socket.socket(socket.AF_UNIX); s.connect(glob.glob("{sockets}/*.sock")[0])' \\
    2>/dev/null && echo CONNECTED || echo NO-SOCKET
"""
    (workspace / "probe.sh").write_text(probe)
    async with client(ratchet_bin, serve_args(workspace, policies, db), env_for(sockets), workspace) as c:
        assert list(sockets.glob("*.sock")) and list(sockets.glob("*.secret"))  # there, outside the sandbox
        result = await c.call_tool("run_command", {"argv": ["sh", "probe.sh"]})
    out = result.structured_content
    assert out is not None and out["status"] == "executed", result.content
    assert out["result"]["stdout"].split() == ["0", "NO-SECRET", "NO-SOCKET"], out["result"]


def test_the_resident_exits_when_idle_and_leaves_nothing(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    argv = serve_args(workspace, policies, db)[1:]
    env = env_for(sockets)
    ep = front.endpoint(argv, env, str(workspace))
    sockets.mkdir(mode=0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratchet.cli.resident", "--key", ep.key, "--idle-s", "1", "--", *argv],
        env=env, cwd=workspace, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "exiting (idle)" in err, err
    assert not list(sockets.glob("*.sock")) and not list(sockets.glob("*.json"))


def test_a_resident_whose_files_changed_leaves_the_session_to_the_front_and_exits(
    ratchet_bin: Path, sockets: Path, workspace: Path, policies: Path, db: Path
) -> None:
    _start_resident(ratchet_bin, sockets, workspace, policies, db)
    (server,) = residents(sockets)
    changed = Path(front.__file__)  # any file of the package: the resident stamps them all
    before = changed.stat()
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        argv = [str(ratchet_bin), *serve_args(workspace, policies, db)]
        with Stdio(argv, env=env_for(sockets), cwd=workspace) as session:  # the set-up of the running resident
            session.initialize(0, client="after-upgrade")
            session.call(1, "write_file", {"path": "auto/x.txt", "content": "x"})
            assert '"executed"' in session.line()
            assert rows(db)[-1]["pid"] == session.proc.pid  # served by the front's own process
            assert session.proc.stdin is not None
            session.proc.stdin.close()
            assert session.proc.wait(timeout=60) == 0
            assert session.proc.stderr is not None
            assert "(stale: Ratchet changed since it started); serving in this process" in session.proc.stderr.read()
    finally:
        os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    wait_until(lambda: not alive(server.pid), "a stale resident kept running", 30)
    assert "exiting (code changed)" in next(sockets.glob("serve-*.log")).read_text()


def test_only_a_stdio_serve_is_relayed() -> None:
    assert front.wanted(["--resident"], {})
    assert front.wanted([], {front.RESIDENT_ENV: "1"})
    assert not front.wanted([], {front.RESIDENT_ENV: "0"})
    assert not front.wanted(["--resident", "--http"], {})
    assert not front.wanted(["--resident", "--help"], {})
    # The flag, and the variable, are not part of what makes a set-up differ; the other variables are.
    a = front.endpoint(["--resident", "--db", "x"], {front.RESIDENT_ENV: "1"}, "/w")
    b = front.endpoint(["--db", "x"], {}, "/w")
    assert a.key == b.key and a.key.startswith("serve-")
    assert front.endpoint(["--db", "x"], {"RATCHET_SANDBOX": "off"}, "/w").key != b.key
    assert front.endpoint(["--db", "x"], {}, "/elsewhere").key != b.key
    assert front.endpoint(["--db", "x"], {"PYTHONPATH": "/other"}, "/w").key != b.key  # other code, maybe
    assert front.endpoint(["--db", "x"], {"HOME": "/other"}, "/w").key == b.key  # a session's own, handed over


def test_a_wrong_argument_is_the_sessions_error_and_exit_code(
    ratchet_bin: Path, sockets: Path, workspace: Path
) -> None:
    done = subprocess.run(
        [str(ratchet_bin), "serve", "--resident", "--workspace", str(workspace), "--no-such-option"],
        env=env_for(sockets), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --no-such-option" in done.stderr, done.stderr


def test_a_server_built_ahead_is_taken_once_and_only_by_its_own_configuration(
    workspace: Path, policies: Path, db: Path
) -> None:
    """What the resident builds before it forks is what the session's `serve` runs, when it is for that
    configuration; anything else builds its own."""
    from ratchet.cli import serve
    from ratchet.mcp.server import ServerConfig

    config = ServerConfig(workspace, policies, db)
    serve.prepare(config)
    (prepared, built) = serve._PREPARED[0]
    quiet, _ = serve._server_for(ServerConfig(workspace, policies, db, quiet=True))
    assert quiet is not built
    taken, closed = serve._server_for(config)
    assert taken is built and closed is prepared.closed and closed is not None
    again, _ = serve._server_for(config)
    assert again is not built and serve._PREPARED == []


def test_the_front_imports_nothing_but_the_standard_library_and_its_own_modules() -> None:
    """What `ratchet serve --resident` loads before it hands over: no MCP SDK, pydantic, anyio or engine."""
    probe = (
        "import sys, ratchet.entry, ratchet.mcp.front\n"
        "site = [m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'pydantic', 'anyio', 'sqlite3')]\n"
        "print(sorted(site), sorted(m for m in sys.modules if m.startswith('ratchet')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    site, ours = done.stdout.strip().split("] [")
    assert site == "[", site
    assert "ratchet.engine" not in ours and "ratchet.mcp.server" not in ours and "ratchet.cli" not in ours, ours


def test_resident_with_http_is_a_usage_error(ratchet_bin: Path, sockets: Path, workspace: Path) -> None:
    done = subprocess.run(
        [str(ratchet_bin), "serve", "--resident", "--http", "--workspace", str(workspace)],
        env=env_for(sockets), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--resident applies to stdio only, not --http" in done.stderr, done.stderr
    assert not sockets.exists()  # nothing was started for it
