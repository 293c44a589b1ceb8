"""What the tests share, in one place: the policies they start from, the seams we fake (the human at the
client's dialog, a hand-moved clock), the ways to run the CLI, a `ratchet serve` spoken to in raw
JSON-RPC, git repositories with a local bare remote, a player of Claude Code's hooks, and the histories
several evidence tests build. Fixtures that use these live in `conftest.py`; a test file imports from
here (never from another test file), so each test file can be read and run on its own."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import anyio
import mcp.types as types
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext

from ratchet.mcp.http import default_token_file, ensure_token
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.record import actions
from ratchet.record.lifecycle import Status
from ratchet.record.store import beside
from ratchet.web.app import WebConfig, build_app
from ratchet.web.security import Guard
from ratchet.web.serve import bind

# -- policies -------------------------------------------------------------------------------------

# Every level side by side, and one class with a tiny window to watch the ratchet move.
LEVELS_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.auto]
tools = ["write_file", "edit_file"]
paths = ["auto/**"]
start = "autonomous"

[classes.ask]
tools = ["write_file", "edit_file"]
paths = ["ask/**"]
start = "confirm"
ceiling = "confirm"

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"

[classes.stop]
tools = ["write_file", "edit_file"]
paths = ["stop/**"]
start = "blocked"

[classes.climb]
tools = ["write_file", "edit_file"]
paths = ["climb/**"]
start = "draft"
ceiling = "autonomous"
"""

# Every level for files (LEVELS_POLICY, with climb starting at confirm so asks can promote it) and for
# commands: what Claude Code's hooks are decided by in the hook tests.
HOOK_POLICY = (
    LEVELS_POLICY.replace('paths = ["climb/**"]\nstart = "draft"', 'paths = ["climb/**"]\nstart = "confirm"')
    + """
[classes.echo-run]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"

[classes.ls-run]
tools = ["run_command"]
argv = [["ls"]]
start = "confirm"
ceiling = "confirm"
floor = "confirm"

[classes.touch-run]
tools = ["run_command"]
argv = [["touch"]]
start = "draft"
ceiling = "draft"

[classes.rm-run]
tools = ["run_command"]
argv = [["rm"]]
start = "blocked"
"""
)


def require_module(name: str, install: str) -> ModuleType:
    """Import `name` for the tests of a module that needs it. Missing, those tests are skipped on a
    developer's machine and fail in CI (`$CI` set), where every dependency is installed: an install that
    broke must not turn into a quietly skipped suite. `install` says how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} cannot be imported ({exc}); {install}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def write_policy(directory: Path, text: str, name: str = "policy.toml") -> Path:
    """Write one policy file into `directory` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


# -- the seams we fake: the human at the client's dialog, and the clock that times the answer -------

Elicitor = Callable[[ClientRequestContext, types.ElicitRequestParams], Awaitable[types.ElicitResult]]


class Clock:
    """A clock the test moves by hand: given to the server (`ServerConfig.clock`) it times the human's
    answers, so a test can play a human who reads for a minute without waiting a minute."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Human:
    """Plays the human at the client's elicitation dialog and remembers what it was shown.

    `delay` is how long the human takes to answer: on `clock` (moved by hand, no waiting) when one is
    given, else really slept. The default answers at once, like a client that answers by itself.
    """

    def __init__(
        self, action: str = "accept", approve: bool = True, delay: float = 0.0, clock: Clock | None = None
    ) -> None:
        self.action = action
        self.approve = approve
        self.delay = delay
        self.clock = clock
        self.seen: list[types.ElicitRequestParams] = []

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params)
        if self.clock is not None:
            self.clock.advance(self.delay)
        elif self.delay:
            await anyio.sleep(self.delay)
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        if "decision" in params.requested_schema.get("properties", {}):  # review_drafts' explicit choice
            return types.ElicitResult(action="accept", content={"decision": "approve" if self.approve else "reject"})
        return types.ElicitResult(action="accept", content={"approve": self.approve})


# -- the server in-process, and the record it keeps ------------------------------------------------


def connect(
    workspace: Path,
    policies: Path | None,
    db: Path,
    *,
    human: Elicitor | None = None,
    clock: Callable[[], float] | None = None,
    mode: str = "auto",
) -> Client:
    """An MCP `Client` (enter it with `async with`) on a server built in this process, with `human` at
    the client's dialog and `clock` timing the answers."""
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    return Client(server, mode=mode, elicitation_callback=human)


async def write(client: Client, path: str, content: str = "x\n") -> dict[str, Any]:
    """One governed write through the MCP client; the structured result."""
    out: dict[str, Any] = (await client.call_tool("write_file", {"path": path, "content": content})).structured_content
    return out


def rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Rows straight from the trust database, read with plain sqlite3 (not through Ratchet)."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


# -- the CLI -------------------------------------------------------------------------------------


def ratchet_argv(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, command: str, *rest: str) -> list[str]:
    """`ratchet COMMAND --workspace .. --policies .. --db .. REST` for the installed console script."""
    argv = [str(ratchet_bin), command, "--workspace", str(workspace), "--policies", str(policies)]
    return [*argv, "--db", str(db), *rest]


def run_ratchet(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The installed console script as the human runs it, in its own process, on the same database."""
    argv = ratchet_argv(ratchet_bin, workspace, policies, db, *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


async def run_cli(
    capsys: pytest.CaptureFixture[str], workspace: Path, policies: Path, db: Path, *args: str
) -> tuple[int, str]:
    """The real CLI entry point, in a worker thread (it runs its own event loop), on the same database."""
    from ratchet.cli import main

    argv = [args[0], "--workspace", str(workspace), "--policies", str(policies), "--db", str(db), *args[1:]]
    code = await anyio.to_thread.run_sync(main, argv)
    out = capsys.readouterr()
    return code, out.out + out.err


# -- `ratchet serve` over stdio --------------------------------------------------------------------


def stdio_params(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, **env: str) -> StdioServerParameters:
    """`ratchet serve` as the MCP SDK's stdio client starts it."""
    return StdioServerParameters(
        command=str(ratchet_bin),
        args=["serve", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)],
        env={"PATH": os.environ["PATH"], **env},
    )


class Stdio:
    """A `ratchet serve` subprocess spoken to in raw JSON-RPC lines: for what the SDK's client cannot do,
    such as killing the server mid-call. A `with` block kills it if the test leaves it running."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stderr: int = subprocess.PIPE,
    ) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=cwd
        )

    def __enter__(self) -> Stdio:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def initialize(
        self, request_id: int = 1, *, protocol: str = "2025-11-25", client: str = "test", initialized: bool = True
    ) -> None:
        """The initialize handshake; the server's answer must name `request_id`. `initialized=False` stops
        before the client's `notifications/initialized`."""
        params = {"protocolVersion": protocol, "capabilities": {}, "clientInfo": {"name": client, "version": "0"}}
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params})
        assert f'"id":{request_id}' in self.line().replace(" ", "")
        if initialized:
            self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, request_id: int, name: str, arguments: dict[str, Any]) -> None:
        """A tools/call request (the answer, if any, is read with `line`)."""
        params = {"name": name, "arguments": arguments}
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    def stop(self, signum: int, timeout: float = 20) -> tuple[int, str]:
        """Send the signal; the exit code and stderr (a hang fails the test after `timeout` seconds)."""
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"ratchet serve did not exit on {signal.Signals(signum).name}")
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- git ------------------------------------------------------------------------------------------

# Plain git for setup and controls: no machine or user config, a fixed identity, never a prompt.
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Setup",
    "GIT_AUTHOR_EMAIL": "setup@example.com",
    "GIT_COMMITTER_NAME": "Setup",
    "GIT_COMMITTER_EMAIL": "setup@example.com",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Plain git, outside Ratchet; its stdout. A failure (when `check`) fails the test with git's stderr."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=30)
    if check and proc.returncode:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout


def make_repo(
    work: Path, bare: Path | None = None, *, identity: tuple[str, str] | None = None, message: str = "first"
) -> Path:
    """`work` made a repository on branch main with one commit (README.md, `message`), pushed to the bare
    repository `bare` as origin when one is given. `identity` (name, email) goes into the repository's
    own config, for commits made through Ratchet, which reads no user config. Returns `work`."""
    work.mkdir(parents=True, exist_ok=True)
    if bare is not None:
        git(work.parent, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work, "init", "-q", "-b", "main")
    if identity is not None:
        git(work, "config", "user.name", identity[0])
        git(work, "config", "user.email", identity[1])
    (work / "README.md").write_text("hello\n")
    git(work, "add", "README.md")
    git(work, "commit", "-qm", message)
    if bare is not None:
        git(work, "remote", "add", "origin", str(bare))
        git(work, "push", "-q", "-u", "origin", "main")
    return work


# -- Claude Code's hooks -----------------------------------------------------------------------------

Decision = dict[str, Any] | None


class Claude:
    """Plays Claude Code: sends hook events to the real `ratchet hook claude-code` and reads the answers."""

    def __init__(self, ratchet_bin: Path, workspace: Path, policies: Path, db: Path, session: str = "s1") -> None:
        self.bin, self.workspace, self.policies, self.db, self.session = ratchet_bin, workspace, policies, db, session
        self.transcript = workspace.parent / f"{session}.jsonl"
        self.n = 0

    def run(self, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """Run the hook command with `stdin`; it must always exit 0."""
        argv = [str(self.bin), "hook", "claude-code", "--policies", str(self.policies), "--db", str(self.db), *extra]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done

    def send(self, event: dict[str, Any], *extra: str) -> Decision:
        """One event; the decision (hookSpecificOutput) or None when the hook gave no answer."""
        done = self.run(json.dumps(event), *extra)
        if not done.stdout.strip():
            return None
        out = json.loads(done.stdout)
        decision: dict[str, Any] = out["hookSpecificOutput"]
        assert decision["hookEventName"] == "PreToolUse"
        assert decision["permissionDecision"] in ("allow", "ask", "deny")
        return decision

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        """The common input fields of every event."""
        return {
            "session_id": self.session,
            "transcript_path": str(self.transcript),
            "cwd": str(self.workspace),
            "permission_mode": "default",
            "hook_event_name": name,
            **fields,
        }

    def pre(self, tool: str, tool_input: dict[str, Any], *extra: str, **fields: Any) -> tuple[Decision, str]:
        """A PreToolUse for a new tool_use_id; returns (decision, tool_use_id)."""
        self.n += 1
        tool_use_id = f"toolu_{self.session}_{self.n:03d}"
        ev = self.event("PreToolUse", tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id, **fields)
        return self.send(ev, *extra), tool_use_id

    def post(self, tool: str, tool_use_id: str, name: str = "PostToolUse", **fields: Any) -> Decision:
        """PostToolUse (the call ran), PostToolUseFailure or PermissionDenied for an earlier call."""
        return self.send(self.event(name, tool_name=tool, tool_input={}, tool_use_id=tool_use_id, **fields))

    def write(self, rel: str, content: str) -> tuple[Decision, str]:
        """Write, with Claude Code's absolute file_path."""
        return self.pre("Write", {"file_path": str(self.workspace / rel), "content": content})

    def bash(self, command: str, *extra: str, **fields: Any) -> tuple[Decision, str]:
        """Bash, as Claude Code sends it."""
        return self.pre(
            "Bash", {"command": command, "description": f"run {command}", "timeout": 120000}, *extra, **fields
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The human's side: `ratchet COMMAND` on the same workspace, policy and database."""
        return run_ratchet(self.bin, self.workspace, self.policies, self.db, *args)

    def queue(self) -> list[dict[str, Any]]:
        """`ratchet queue --json`."""
        done = self.cli("queue", "--json")
        assert done.returncode == 0, done.stderr
        drafts: list[dict[str, Any]] = json.loads(done.stdout)
        return drafts

    def status(self, cls: str) -> dict[str, Any]:
        """One class from `ratchet status --json`."""
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = next(c for c in json.loads(done.stdout)["classes"] if c["action_class"] == cls)
        return found


def decided(d: Decision) -> str:
    """The hook's permission decision (allow, ask or deny); there must be one."""
    assert d is not None, "expected a decision"
    return str(d["permissionDecision"])


# -- histories the evidence tests read (LEVELS_POLICY) -------------------------------------------------


async def drive_history(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, int]:
    """Every disposition once or more, through the server and the CLI. Returns action ids by name."""
    ids: dict[str, int] = {}
    async with connect(workspace, policies, db, human=Human(approve=True)) as client:
        for name in ("a1", "a2", "a3"):
            ids[name] = (await write(client, f"auto/{name}.txt"))["action_id"]  # autonomous
        out = await write(client, "ask/k1.txt")
        assert out["status"] == "executed"  # confirmed in the dialog
        ids["k1"] = out["action_id"]
        out = await write(client, "stop/s1.txt")
        assert out["status"] == "blocked"
        ids["s1"] = out["action_id"]
        for name in ("q1", "q2", "q3", "q4"):
            out = await write(client, f"queue/{name}.txt", "one\ntwo\n")
            assert out["status"] == "draft"
            ids[name] = out["action_id"]
    clock = Clock()  # the "no" comes after a human's reading time; an instant one would be no answer
    async with connect(workspace, policies, db, human=Human(approve=False, delay=9.0, clock=clock), clock=clock) as c:
        out = await write(c, "ask/k2.txt")
        assert out["status"] == "declined"
        ids["k2"] = out["action_id"]
    mine = tmp_path / "mine.txt"
    mine.write_text("my version\n")
    for args in (
        ("approve", str(ids["q1"])),
        ("approve", str(ids["q2"]), "--content", str(mine)),
        ("reject", str(ids["q3"]), "--reason", "wrong file"),
        ("complain", str(ids["a2"]), "--reason", "broke the docs build"),
    ):
        code, text = await run_cli(capsys, workspace, policies, db, *args)
        assert code == 0, text
    # The complaint demoted `auto` to confirm: the next write is asked for and accepted.
    async with connect(workspace, policies, db, human=Human()) as client:
        out = await write(client, "auto/a4.txt")
        assert (out["status"], out["class_level"]) == ("executed", "confirm")
        ids["a4"] = out["action_id"]
    return ids


async def climb_history(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """Twelve climb writes approved from the CLI (draft -> confirm -> autonomous), generated files written
    autonomously, and a complaint on the last climb write."""
    climb, gen = [], []
    async with connect(workspace, policies, db) as client:
        for n in range(12):
            out = await write(client, f"climb/f{n}.txt", f"{n}\n")
            climb.append(out["action_id"])
            if out["status"] == "draft":
                code, text = await run_cli(capsys, workspace, policies, db, "approve", str(out["action_id"]))
                assert code == 0, text
            if n in (4, 8):
                gen.append((await write(client, f"auto/gen/g{n}.txt"))["action_id"])
        keep = (await write(client, "auto/keep.txt"))["action_id"]
    code, _ = await run_cli(capsys, workspace, policies, db, "complain", str(climb[-1]), "--reason", "bad")
    assert code == 0
    return {"climb": climb, "gen": gen, "keep": keep}


# -- the review page ---------------------------------------------------------------------------

WEB_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.auto]
tools = ["write_file", "edit_file"]
paths = ["auto/**"]
start = "autonomous"
floor = "draft"

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"

[classes.stop]
tools = ["write_file", "edit_file"]
paths = ["stop/**"]
start = "blocked"
"""


@dataclass
class Web:
    """A running review page."""

    base: str
    token: str
    port: int

    @property
    def login(self) -> str:
        return f"{self.base}/login?token={self.token}"


@asynccontextmanager
async def running_web(
    workspace: Path, policies: Path, db: Path, clock: Clock | None = None, *, host: str = "127.0.0.1"
) -> AsyncIterator[Web]:
    """The real app (Guard + routes + engine) under uvicorn on a free loopback port, until the block ends."""
    token = ensure_token(default_token_file(beside(db, workspace)))  # beside an SQLite file, or a workspace
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    config = WebConfig(workspace, policies, db, clock=clock or time.time)
    app = Guard(build_app(config), token, host=host, port=port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(15):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.02)
        try:
            yield Web(f"http://127.0.0.1:{port}", token, port)
        finally:
            server.should_exit = True


@asynccontextmanager
async def agent(workspace: Path, policies: Path, db: Path) -> AsyncIterator[Client]:
    """The agent: a real MCP client on the real server, on the same database."""
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        yield client


async def draft(client: Client, path: str, content: str, **extra: Any) -> int:
    result = await client.call_tool("write_file", {"path": path, "content": content, **extra})
    assert result.structured_content is not None and result.structured_content["status"] == "draft", result
    draft_id: int = result.structured_content["draft_id"]
    return draft_id


# -- the console script as a person types it ----------------------------------------------------


def console_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k not in ("RATCHET_DB", "RATCHET_POLICIES", "NO_COLOR")}
    return {**keep, **extra}


def console(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *argv: str, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """`ratchet COMMAND ... --workspace W --policies P --db D`, as a person types it."""
    full = [str(ratchet_bin), *argv, "--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    return subprocess.run(full, env=console_env(), capture_output=True, text=True, timeout=120, check=False, **kw)


async def agent_results(
    workspace: Path, policies: Path, db: Path, *calls: tuple[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Make the agent's calls through the real server; their structured results."""
    out = []
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        for tool, args in calls:
            out.append((await client.call_tool(tool, args)).structured_content or {})
    return out


def queue_drafts(workspace: Path, policies: Path, db: Path, *names: str) -> list[int]:
    calls = [("write_file", {"path": f"queue/{n}", "content": f"{n}\n"}) for n in names]
    return [r["draft_id"] for r in anyio.run(agent_results, workspace, policies, db, *calls)]


def blocked_and_handoff(workspace: Path, policies: Path, db: Path) -> tuple[int, int]:
    handoff = {
        "what_tried": "profiled the endpoint; the cache misses dominate",
        "uncertainty": "which eviction policy the team wants here",
        "options": ["lru cache", "lfu cache", "no cache"],
        "recommended": "lru cache",
    }
    stopped, asked = anyio.run(
        agent_results, workspace, policies, db, ("write_file", {"path": "stop/x.txt", "content": "x\n"}),
        ("request_handoff", handoff),
    )  # fmt: skip
    return stopped["action_id"], asked["id"]


# -- PostgreSQL: a real server on loopback, started by the tests themselves ------------------------

PG_APT = "apt-get install -y postgresql"


def postgres_bindir() -> Path | None:
    """Where PostgreSQL's server programs are: `$RATCHET_PG_BIN`, else Debian's newest, else PATH."""
    given = os.environ.get("RATCHET_PG_BIN")
    if given:
        return Path(given)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    import shutil

    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgCluster:
    """A throwaway PostgreSQL cluster: its own data directory, a free loopback port, trust auth for one role.

    PostgreSQL refuses to run as root, so as root the programs run as the `postgres` user (Debian's
    package creates it) on a directory that user owns. Databases are cheap: one per test.
    """

    ROLE = "ratchet"

    def __init__(self, bindir: Path) -> None:
        import tempfile

        # Not under pytest's own temporary tree: that is private to the user running the tests.
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="ratchet-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._databases = 0

    def _as_owner(self, *argv: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120, check=True)

    def init(self) -> None:
        """Create the cluster (no fsync: a test cluster's durability is not what is tested)."""
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.root, "postgres", "postgres")
        self._as_owner(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.ROLE, "-A", "trust", "--no-sync", "-E", "UTF8"
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.root / "server.log"
        self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect every client, as a restart does; `immediate`: as a crash)."""
        self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server as a crash would, if it runs, and delete the cluster."""
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A client's URL for `database` on this cluster."""
        return f"postgresql://{self.ROLE}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def pg_rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows straight from a PostgreSQL database, read with plain psycopg (not through Ratchet)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params or None).fetchall()


def db_rows(db: str | Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows from either backend's trust database (`?` placeholders), read without Ratchet."""
    text = str(db)
    if text.startswith("postgresql://"):
        return pg_rows(text, sql.replace("?", "%s"), *params)
    return [tuple(r) for r in rows(Path(text), sql, *params)]


def intent_row(status: Status, target: str = "a.txt", **fields: Any) -> actions.Intent:
    """A synthetic action intent for record-level tests (a `write_file` of class `docs`); `fields`
    override any other attribute (origin, level, class...)."""
    level = "draft" if status is Status.DRAFT else "autonomous"
    base: dict[str, Any] = {
        "session_id": "s",
        "tool": "write_file",
        "target": target,
        "action_class": "docs",
        "rule": "r",
        "policy": "p",
        "args_json": "{}",
        "preview": "",
        "fingerprint": None,
        "intent": None,
        "confidence": None,
        "class_level": level,
        "level": level,
        "route": "draft" if status is Status.DRAFT else "execute",
        "triggers_json": "[]",
        "flagged": False,
        "status": status,
    }
    return actions.Intent(**{**base, **fields})


# -- processes the suite leaves behind -------------------------------------------------------------

# Set by conftest.py for the whole run: every process the suite starts inherits it, unless a test gives a
# process an environment of its own (then its command line names this interpreter or console script).
RUN_ENV = "RATCHET_TEST_RUN"


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def ratchet_processes(marker: str, since: float, interpreter: str) -> list[tuple[int, str]]:
    """Live Ratchet processes this run started: (pid, command line). A Ratchet process runs the `ratchet`
    console script or a `ratchet` module; it is this run's when its environment carries `marker` in
    RUN_ENV, or when it started after `since` from this checkout's `interpreter` (or its console script)."""
    me = os.getpid()
    ticks = os.sysconf("SC_CLK_TCK")
    boot = _boot_time()
    console_script = str(Path(interpreter).parent / "ratchet")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or stat[0] == "Z":  # gone, or a zombie waiting to be reaped: not running
            continue
        ratchet = (
            Path(argv[0]).name == "ratchet"
            or any(a == "ratchet" or a.startswith("ratchet.") for a in argv[1:3])
            or (len(argv) > 1 and Path(argv[1]).name == "ratchet")
        )
        if not ratchet:
            continue
        ours = f"{RUN_ENV}={marker}".encode() in environ
        started = boot + int(stat[19]) / ticks
        mine = started >= since and (argv[0] in (interpreter, console_script) or console_script in argv[:2])
        if ours or mine:
            found.append((int(entry.name), " ".join(argv)))
    return found


def left_behind(marker: str, since: float, interpreter: str, grace_s: float = 10.0) -> list[tuple[int, str]]:
    """The Ratchet processes this run started that are still running after `grace_s` (time for those
    already on their way out to exit)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = ratchet_processes(marker, since, interpreter)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


# -- the real Codex --------------------------------------------------------------------------------
# Driven headless against a scripted model on loopback (tests/clients/fake_openai.py).
# `RATCHET_TEST_CODEX` names the Codex binary (`.ci/run` installs the pinned version from npm into
# `.ci/node/` and exports it). Without it a test skips, except in CI (`CI` set), where it fails: the
# real-client tests must never silently not run there.

# Every level for Codex's shell and patches: files by directory, commands by program.
CODEX_POLICY = """
[defaults]
unmatched = "draft"

[classes.docs]
tools = ["write_file", "edit_file"]
paths = ["docs/**"]
start = "confirm"
ceiling = "confirm"

[classes.source]
tools = ["write_file", "edit_file"]
paths = ["src/**"]
start = "draft"
ceiling = "draft"

[classes.secrets]
tools = ["write_file", "edit_file"]
paths = [".env"]
start = "blocked"

[classes.notes]
tools = ["write_file", "edit_file"]
paths = ["notes/**"]
start = "autonomous"

[classes.ls-run]
tools = ["run_command"]
argv = [["ls"]]
start = "autonomous"

[classes.echo-run]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"

[classes.rm-run]
tools = ["run_command"]
argv = [["rm"]]
start = "draft"

[classes.python-run]
tools = ["run_command"]
argv = [["python3"]]
start = "autonomous"
"""

FAKE_OPENAI = Path(__file__).parent / "clients" / "fake_openai.py"
MODEL = "gpt-5.5"  # a model Codex knows: apply_patch is offered, MCP tools sit behind tool_search


def codex_binary() -> Path:
    """The Codex binary under test, or skip (locally) / fail (in CI) when there is none."""
    given = os.environ.get("RATCHET_TEST_CODEX", "").strip()
    if given and Path(given).is_file():
        return Path(given)
    why = f"RATCHET_TEST_CODEX={given!r} is not a file" if given else "RATCHET_TEST_CODEX is not set"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI installs Codex with .ci/run and must run the real-client tests")
    pytest.skip(f"{why} (.ci/run installs the pinned Codex into .ci/node/)")


class CodexRun:
    """A scratch HOME/CODEX_HOME and PATH for Codex, and one `codex exec` per `exec` call."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.home = root / "home"
        self.codex_home = self.home / ".codex"
        self.codex_home.mkdir(parents=True, exist_ok=True)
        self.bin = root / "bin"
        self.bin.mkdir(exist_ok=True)
        # Under a temporary CODEX_HOME Codex does not create its sandbox helper: link it on PATH.
        (self.bin / "codex-linux-sandbox").symlink_to(binary.resolve())
        (self.bin / "codex").symlink_to(binary.resolve())  # for `ratchet install codex --check`
        self.root = root

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
        return {
            **keep,
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "OPENAI_API_KEY": "dummy",
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "RATCHET_HOOK_SERVER": "off",
        }

    @contextmanager
    def model(self, script: list[Any], first_delay_s: float = 1.5) -> Iterator[tuple[Path, dict[str, str]]]:
        """The scripted model on loopback for the duration: (its run directory, Codex's `-c` overrides
        that point at it). It is stopped on exit."""
        n = len(list(self.root.glob("run-*")))
        run = self.root / f"run-{n}"
        run.mkdir()
        (run / "script.json").write_text(json.dumps(script))
        argv = [sys.executable, str(FAKE_OPENAI), "--script", str(run / "script.json"), "--log", str(run / "log.jsonl")]
        server = subprocess.Popen(
            [*argv, "--port-file", str(run / "port")],
            env={**os.environ, "FAKE_FIRST_DELAY": str(first_delay_s)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not (run / "port").exists() or not (run / "port").read_text():
                assert time.monotonic() < deadline, "the scripted model did not start"
                time.sleep(0.05)
            port = (run / "port").read_text().strip()
            yield (
                run,
                {
                    "model_provider": "fake",
                    "model_providers.fake.name": "fake",
                    "model_providers.fake.wire_api": "responses",
                    "model_providers.fake.base_url": f"http://127.0.0.1:{port}/v1",
                },
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)

    def exec(
        self, cwd: Path, script: list[Any], *extra: str, timeout: float = 180
    ) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
        """Run `codex exec` in `cwd` against the scripted model; (the tool outputs the model received,
        in order, as {"name", "output"}, the finished process)."""
        with self.model(script) as (run, config):
            argv = [str(self.binary), "exec", "--skip-git-repo-check", "--json", "-m", MODEL]
            for key, value in config.items():
                argv += ["-c", f"{key}={value}"]
            done = subprocess.run(
                [*argv, *extra, "do the task"],
                cwd=cwd,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
                start_new_session=True,
            )
        return last_outputs(run), done


def last_outputs(run: Path) -> list[dict[str, Any]]:
    """The tool outputs the model received by its last request in `run`."""
    lines = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []
    outputs: list[dict[str, Any]] = json.loads(lines[-1])["outputs"] if lines else []
    return outputs


def tool_outputs(outputs: list[dict[str, Any]], name: str) -> list[str]:
    """The outputs of every call of tool `name` (a function's bare name) the model received."""
    return [str(o["output"]) for o in outputs if o.get("name") == name]


# Read-classed echo, cat and python3 (profile read-only) and a write-classed touch, for Codex's hook.
SANDBOX_POLICY = """
[defaults]
unmatched = "draft"

[classes.reads]
tools = ["run_command"]
argv = [["echo"], ["cat"], ["python3"]]
start = "autonomous"
sandbox = "read-only"
allow_shell = true

[classes.touches]
tools = ["run_command"]
argv = [["touch"]]
start = "autonomous"
allow_shell = true
"""


def reviewer_verdicts(db: Path) -> list[sqlite3.Row]:
    """The delegated reviewer's recorded verdicts, oldest first (none before the record exists)."""
    return rows(db, "SELECT * FROM reviewer_verdicts ORDER BY id") if db.exists() else []


async def wait_verdicts(db: Path, n: int, within: float = 60.0) -> list[sqlite3.Row]:
    """Wait until `n` reviewer verdicts are recorded (they are written by detached processes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = reviewer_verdicts(db)
        if len(found) >= n:
            return found
        await anyio.sleep(0.1)
    raise AssertionError(f"expected {n} verdicts, found {len(reviewer_verdicts(db))}")


async def write_via(client: Any, path: str, content: str = "new\n") -> dict[str, Any]:
    """Call `write_file` through an MCP client and return its structured result."""
    out: dict[str, Any] = (await client.call_tool("write_file", {"path": path, "content": content})).structured_content
    return out
