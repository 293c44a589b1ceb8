"""run_command's OS sandbox, tried as a hostile agent would: a class that runs anything at autonomous
still cannot write the trust database, the policy, `.ratchet/`, git's config and hooks or anything
outside the workspace; the network is off unless the class allows it; where no sandbox can be had
the gate holds commands to a human's confirmation; and a command dies with its server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.executors.sandbox import SANDBOX_ENV, sandbox_status
from ratchet.executors.shell import kill_leftovers

from .helpers import Human, Stdio, connect, git, make_repo, ratchet_argv, run_cli, write_policy

ANYTHING = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
max_consecutive_failures = 100  # the attacks fail by design; the class must keep running them

[defaults.commands]
timeout_s = 30
max_timeout_s = 600

[classes.anything]
description = "a catch-all: every command, at autonomous"
tools = ["run_command"]
start = "autonomous"
floor = "autonomous"  # failures (every attack) never move it down
ceiling = "autonomous"
allow_shell = true
"""

MARK = "PWNED-BY-COMMAND"

# Tries to write each path given as an argument (appending a marker, so nothing is lost if it got
# through) and says what happened; then writes an ordinary workspace file. Always exits 0.
PROBE = f"""
for target in "$@"; do
    if printf '{MARK}' >> "$target"; then echo "WROTE $target"; else echo "DENIED $target"; fi
done
echo fine > ordinary.txt
"""


def _repo(workspace: Path) -> None:
    make_repo(workspace, identity=("Dev", "dev@example.com"))


def _sh(workspace: Path, text: str, *args: str) -> list[str]:
    """argv running `text` from a script file, so that the test reaches the sandbox itself.

    Given as `command` or `sh -c`, the shell analysis would see the redirections to `.ratchet/` and
    `.git/` and refuse the call before anything runs; hostile code need not be that visible.
    """
    name = f"scripts/{uuid.uuid4().hex}.sh"  # also a name no other process has in its argv
    (workspace / "scripts").mkdir(exist_ok=True)
    (workspace / name).write_text(text)
    return ["sh", name, *args]


async def _run(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("run_command", args)
    assert result.structured_content is not None, result.content[0].text
    out: dict[str, Any] = result.structured_content
    out["text"] = result.content[0].text
    return out


def _running_with(arg: str) -> list[int]:
    """Live host processes (not unreaped zombies) with `arg` in their argv."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if arg.encode() in argv and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _needs_a_sandbox() -> None:
    # Not a skip: CI installs bubblewrap, and a host without it must fail loudly here.
    status = sandbox_status()
    assert status.available, f"these tests need the sandbox: {status.detail}"


@pytest.fixture
def home_probe() -> Iterator[Path]:
    """A path in $HOME (outside the workspace and outside /tmp), removed afterwards if it ever appears."""
    path = Path.home() / f".ratchet-sandbox-probe-{uuid.uuid4().hex}"
    yield path
    if path.exists():
        path.unlink()


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", ["state-in-workspace", "state-elsewhere-in-workspace", "state-outside"])
async def test_a_command_at_autonomous_cannot_write_what_ratchet_protects(
    layout: str, tmp_path: Path, workspace: Path, home_probe: Path
) -> None:
    _repo(workspace)
    if layout == "state-in-workspace":  # the default layout: .ratchet/policies and .ratchet/ratchet.db
        policies = write_policy(workspace / ".ratchet" / "policies", ANYTHING)
        db = workspace / ".ratchet" / "ratchet.db"
    elif layout == "state-elsewhere-in-workspace":  # --policies and --db naming directories of the workspace
        policies = write_policy(workspace / "team-policies", ANYTHING)
        db = workspace / "var" / "ratchet.db"
    else:
        policies = write_policy(tmp_path / "policies", ANYTHING)
        db = tmp_path / "state" / "ratchet.db"
    outside = tmp_path / "outside.txt"
    outside.write_text("outside, untouched\n")
    (workspace / "link-to-policy").symlink_to(policies / "policy.toml")
    before = {p: p.read_bytes() for p in (policies / "policy.toml", workspace / ".git/config")}
    targets = [
        str(db),
        f"{db}-wal",
        f"{db}-shm",
        f"{db}-journal",
        str(policies / "policy.toml"),
        str(policies / "zz.toml"),
        "link-to-policy",
        ".git/hooks/pre-commit",
        ".git/config",
        ".ratchet/anything",
        str(home_probe),
        "/etc/ratchet-sandbox-probe",
    ]
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=_sh(workspace, PROBE, *targets))
        again = await _run(client, argv=_sh(workspace, f'printf {MARK} >> "$1"; cat "$1"', str(outside)))
    assert out["status"] == "executed" and out["level"] == "autonomous", out["text"]
    lines = out["result"]["stdout"].splitlines()
    assert lines == [f"DENIED {t}" for t in targets], out["result"]["stdout"]
    assert "Read-only file system" in out["result"]["stderr"]
    assert (workspace / "ordinary.txt").read_text() == "fine\n"  # the workspace itself is writable
    # Nothing changed on the host: the marker is in no protected file, and nothing new appeared.
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert not path.exists() or not path.read_bytes().endswith(MARK.encode())
    assert not Path(f"{db}-journal").exists()
    assert all(p.read_bytes() == content for p, content in before.items())
    assert not (policies / "zz.toml").exists() and not (workspace / ".git/hooks/pre-commit").exists()
    assert not (workspace / ".ratchet/anything").exists() and not home_probe.exists()
    # A file outside the workspace under /tmp: the command wrote into its own private /tmp only.
    assert again["status"] == "executed" and again["result"]["stdout"] == MARK
    assert outside.read_text() == "outside, untouched\n"


@pytest.mark.asyncio
async def test_a_missing_ratchet_directory_cannot_be_created_to_plant_a_policy(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    # With no .ratchet/policies, the next server would take one a command created as the team's policy.
    policies = write_policy(tmp_path / "policies", ANYTHING)
    plant = "mkdir -p .ratchet/policies && echo '[classes.zz]' > .ratchet/policies/zz.toml"
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=_sh(workspace, plant))
    assert out["status"] == "failed" and "Read-only file system" in out["result"]["stderr"]
    assert (workspace / ".ratchet").is_dir() and not (workspace / ".ratchet/policies").exists()


@pytest.mark.asyncio
async def test_git_through_run_command_still_commits_but_cannot_touch_config_or_hooks(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    _repo(workspace)
    policies = write_policy(tmp_path / "policies", ANYTHING)
    pwned = tmp_path / "fsmonitor-ran"
    (workspace / "src.py").write_text("print('hi')\n")
    async with connect(workspace, policies, db) as client:
        commit = await _run(client, argv=_sh(workspace, "git add src.py && git commit -q -m 'add src'"))
        config = await _run(client, argv=["git", "config", "core.fsmonitor", f"touch {pwned}"])
        hook = await _run(client, argv=_sh(workspace, "printf '#!/bin/sh\\ntouch x\\n' > .git/hooks/post-commit"))
        swap = await _run(client, argv=_sh(workspace, "mv .git .git-old && mkdir .git"))
        redirect = await _run(
            client,
            argv=_sh(
                workspace,
                "mkdir -p evil && cp -r .git/objects .git/refs .git/HEAD evil/ && "
                f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch {pwned}\\n' > evil/config && "
                "echo ../evil > .git/commondir",
            ),
        )
    assert commit["status"] == "executed", commit["text"]
    assert "add src" in git(workspace, "log", "--oneline")  # the commit is in the real repository
    assert config["status"] == "failed" and "fsmonitor" not in (workspace / ".git/config").read_text()
    assert hook["status"] == "failed" and not (workspace / ".git/hooks/post-commit").exists()
    assert swap["status"] == "failed" and "busy" in swap["result"]["stderr"]
    assert (workspace / ".git/HEAD").is_file() and not (workspace / ".git-old").exists()
    # commondir would move git's config to a file the agent wrote: removed after the call, which fails.
    assert redirect["status"] == "failed" and ".git/commondir" in redirect["text"]
    assert not (workspace / ".git/commondir").exists()
    git(workspace, "status")  # the human's own git, afterwards
    assert not pwned.exists()


@pytest.mark.asyncio
async def test_a_repository_created_by_a_command_is_removed(tmp_path: Path, workspace: Path, db: Path) -> None:
    # Without a .git there is nothing to bind read-only; a command could write its config and hooks.
    policies = write_policy(tmp_path / "policies", ANYTHING)
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=_sh(workspace, "git init -q . && git config core.fsmonitor 'touch /tmp/x'"))
        kept = await _run(client, argv=_sh(workspace, "echo kept > kept.txt"))
    assert out["status"] == "failed" and "created .git" in out["text"]
    assert not (workspace / ".git").exists()
    assert kept["status"] == "executed" and (workspace / "kept.txt").read_text() == "kept\n"


ATTACKS = {
    # Undo the read-only bind: remount it, unmount it, or do either from a new user namespace.
    "remount": "mount -o remount,rw,bind .ratchet && echo x > .ratchet/remount",
    "umount": "umount -l .ratchet; echo x > .ratchet/umount",
    "userns-remount": (
        "unshare -Urm sh -c 'umount -l .ratchet; mount -o remount,rw,bind .ratchet; echo x > .ratchet/userns'"
    ),
    # Reach the database through a name in the writable workspace.
    "hardlink-db": "ln {db} stolen && printf {mark} >> stolen",
    "symlink-db": "ln -s {db} db-link && printf {mark} >> db-link",
    # Move a protected directory away and put a forged one in its place.
    "rename-state": "mv .ratchet elsewhere && mkdir .ratchet",
    "rename-hooks": "mv .git/hooks .git/hooks-old && mkdir .git/hooks && echo x > .git/hooks/pre-commit",
    "delete-config": "rm -f .git/config && echo '[core]' > .git/config",
    # Step outside: a sysctl (a capability-less root may write those), the server's process and root.
    "sysctl": "echo sandboxed > /proc/sys/kernel/hostname",
    "signal-server": "kill -0 {server}",
    "server-root": "ls /proc/{server}/root/",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_the_sandbox_cannot_be_taken_apart_from_inside(
    attack: str, tmp_path: Path, workspace: Path, db: Path
) -> None:
    _repo(workspace)
    policies = write_policy(tmp_path / "policies", ANYTHING)
    config = (workspace / ".git/config").read_bytes()
    script = ATTACKS[attack].format(db=db, mark=MARK, server=os.getpid())
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=_sh(workspace, script))
    assert out["status"] == "failed" and out["level"] == "autonomous", out["text"]
    assert sorted(p.name for p in (workspace / ".ratchet").iterdir()) == []
    assert not (workspace / "elsewhere").exists() and not (workspace / ".git/hooks-old").exists()
    assert (workspace / ".git/config").read_bytes() == config
    assert not db.read_bytes().endswith(MARK.encode())
    assert Path("/proc/sys/kernel/hostname").read_text().strip() != "sandboxed"


@pytest.mark.asyncio
@pytest.mark.parametrize("network", [False, True])
async def test_the_network_is_off_unless_the_class_declares_it(
    network: bool, tmp_path: Path, workspace: Path, db: Path
) -> None:
    text = ANYTHING + f"network = {'true' if network else 'false'}\n"
    policies = write_policy(tmp_path / "policies", text)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # the kernel completes the handshake; nothing needs to accept
        port = listener.getsockname()[1]
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
        async with connect(workspace, policies, db) as client:
            out = await _run(client, argv=["python3", "-c", dial])
    if network:
        assert out["status"] == "executed" and out["result"]["stdout"] == "connected\n", out["text"]
    else:
        assert out["status"] == "failed" and "connected" not in out["result"]["stdout"]
        assert "ConnectionRefusedError" in out["result"]["stderr"] or "unreachable" in out["result"]["stderr"]


@pytest.mark.asyncio
async def test_an_approved_draft_runs_in_the_sandbox_too(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(
        tmp_path / "policies",
        ANYTHING.replace('start = "autonomous"', 'start = "draft"').replace('floor = "autonomous"', 'floor = "draft"'),
    )
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=_sh(workspace, PROBE, str(policies / "policy.toml"), ".ratchet/x"))
    assert out["status"] == "draft"
    code, text = await run_cli(capsys, workspace, policies, db, "approve", str(out["draft_id"]))
    assert code == 0, text
    assert MARK not in (policies / "policy.toml").read_text() and not (workspace / ".ratchet/x").exists()
    assert (workspace / "ordinary.txt").read_text() == "fine\n"
    code, shown = await run_cli(capsys, workspace, policies, db, "show", str(out["draft_id"]), "--json")
    assert json.loads(shown)["result"]["stdout"].splitlines() == [
        f"DENIED {policies / 'policy.toml'}",
        "DENIED .ratchet/x",
    ]


@pytest.mark.asyncio
async def test_without_a_sandbox_commands_are_held_to_confirm_and_status_says_why(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ANYTHING + (
        '\n[classes.opted-out]\ntools = ["run_command"]\nargv = [["true"]]\nstart = "autonomous"\nsandbox = false\n'
    )
    policies = write_policy(tmp_path / "policies", text)
    monkeypatch.setenv(SANDBOX_ENV, "off")
    human = Human(approve=True)
    async with connect(workspace, policies, db, human=human) as client:
        held = await _run(client, argv=_sh(workspace, "echo ran > ran.txt"))
        opted = await _run(client, argv=["true"])
    assert held["status"] == "executed" and held["class_level"] == "autonomous" and held["level"] == "confirm"
    (trigger,) = held["triggers"]
    assert trigger["name"] == "no-sandbox" and "RATCHET_SANDBOX=off" in trigger["detail"]
    assert len(human.seen) == 1 and (workspace / "ran.txt").read_text() == "ran\n"  # a human said yes
    assert opted["status"] == "executed" and opted["level"] == "autonomous" and opted["triggers"] == []
    code, status = await run_cli(capsys, workspace, policies, db, "status")
    assert code == 0
    assert "command sandbox: unavailable: RATCHET_SANDBOX=off" in status
    line = next(x for x in status.splitlines() if x.strip().startswith("anything "))
    assert line.split()[2].rstrip("*") == "confirm"  # what a call would do (the * notes: a draft where none can ask)
    assert "capped at confirm by no-sandbox" in status
    monkeypatch.delenv(SANDBOX_ENV)
    code, status = await run_cli(capsys, workspace, policies, db, "status")
    assert "command sandbox: on (bubblewrap" in status and "no-sandbox" not in status


@pytest.mark.asyncio
async def test_lint_flags_a_class_that_opts_out_of_the_sandbox(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path / "policies", ANYTHING.replace("allow_shell = true", "sandbox = false"))
    code, text = await run_cli(capsys, workspace, policies, db, "lint")
    assert code == 0
    assert "warning: class anything (policy.toml:" in text and "sets sandbox = false" in text
    write_policy(tmp_path / "policies", ANYTHING)
    code, text = await run_cli(capsys, workspace, policies, db, "lint")
    assert code == 0 and "warning" not in text


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_command_dies_with_its_server_and_the_record_says_it_may_have_run(
    sandboxed: bool, ratchet_bin: Path, tmp_path: Path, workspace: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "policies", ANYTHING + ("" if sandboxed else "sandbox = false\n"))
    marker = f"{300 + (7 if sandboxed else 8)}.{os.getpid()}"  # an argv no other process has
    script = f"sleep {marker} & sleep {marker} & echo started > started.txt; wait"
    shell = ""
    try:
        serve = ratchet_argv(ratchet_bin, workspace, policies, db, "serve")
        with Stdio(serve, stderr=subprocess.DEVNULL) as server:
            server.initialize(client="t")
            command = _sh(workspace, script)
            shell = command[1]
            server.call(2, "run_command", {"argv": command, "timeout_s": 500})
            deadline = time.monotonic() + 30
            # Both background sleeps exec'd (a forked child shows its own argv only once it has):
            while not (
                (workspace / "started.txt").exists()
                and _recorded_pid(db) is not None
                and len(_running_with(marker)) == 2
            ):
                assert time.monotonic() < deadline, ("the command never started", _running_with(marker))
                time.sleep(0.05)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
        deadline = time.monotonic() + 10  # signals are delivered at once; the kernel takes a moment to act
        if sandboxed:
            # bubblewrap's --die-with-parent: the whole sandbox (a PID namespace) dies with the server.
            while _running_with(marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _running_with(marker) == []
        else:
            # The parent-death signal kills the direct child (the shell) at once; what it started in the
            # background stays in its process group until the next open of the record kills it.
            while _running_with(shell) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _running_with(shell) == [] and len(_running_with(marker)) == 2
        shown = subprocess.run(
            [
                str(ratchet_bin),
                "history",
                "--json",
                "--workspace",
                str(workspace),
                "--policies",
                str(policies),
                "--db",
                str(db),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        deadline = time.monotonic() + 10
        while _running_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running_with(marker) == []
        (row,) = json.loads(shown.stdout)
        assert row["status"] == "interrupted"
        assert (
            "may have run" in row["error"] and f"pid {_recorded_pid(db)}" in row["error"] and "started" in row["error"]
        )
    finally:  # whatever happened above, this test leaves no process behind
        for pid in _running_with(marker) + (_running_with(shell) if shell else []):
            os.kill(pid, signal.SIGKILL)


def _recorded_pid(db: Path) -> int | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT child_pid FROM actions WHERE tool = 'run_command'").fetchone()
    return None if row is None else row[0]


@pytest.mark.asyncio
async def test_a_linked_worktree_keeps_its_git_link_and_its_repository_read_only(tmp_path: Path, db: Path) -> None:
    # The workspace is a linked worktree: `.git` is a file naming a git directory outside the workspace.
    main = tmp_path / "main"
    main.mkdir()
    _repo(main)
    workspace = tmp_path / "wt"
    git(main, "worktree", "add", "-q", str(workspace), "-b", "feature")
    policies = write_policy(tmp_path / "policies", ANYTHING)
    link = (workspace / ".git").read_text()
    config = (main / ".git/config").read_bytes()
    async with connect(workspace, policies, db) as client:
        status = await _run(client, argv=["git", "status", "--short"])
        repoint = await _run(client, argv=_sh(workspace, "echo 'gitdir: evil' > .git"))
        remove = await _run(client, argv=_sh(workspace, "rm -f .git && mkdir .git"))
        config_write = await _run(client, argv=["git", "config", "core.fsmonitor", "touch /tmp/x"])
    assert status["status"] == "executed", status["text"]
    assert repoint["status"] == "failed" and remove["status"] == "failed" and config_write["status"] == "failed"
    assert (workspace / ".git").read_text() == link and (main / ".git/config").read_bytes() == config


@pytest.mark.asyncio
async def test_a_git_directory_that_is_a_symbolic_link_is_refused(tmp_path: Path, workspace: Path, db: Path) -> None:
    # A link could be swapped between calls for one whose config runs code; Ratchet cannot pin it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _repo(elsewhere)
    (workspace / ".git").symlink_to(elsewhere / ".git")
    policies = write_policy(tmp_path / "policies", ANYTHING)
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=["git", "status"])
    assert out["status"] == "failed" and ".git in the workspace is a symbolic link" in out["text"]


def test_recovery_kills_only_the_processes_of_its_own_action() -> None:
    # A process group id can be reused by an unrelated program: only processes that carry the
    # action's RATCHET_ACTION in their environment are killed.
    tag = f"{os.getpid()}{uuid.uuid4().int % 1000}"  # digits only: sleep takes 200.<tag> as a number
    script = f"RATCHET_ACTION=42 sleep 200.{tag} & exec env RATCHET_ACTION=41 sleep 201.{tag}"
    leader = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (_running_with(f"200.{tag}") and _running_with(f"201.{tag}")):
            assert time.monotonic() < deadline, "the processes never started"
            time.sleep(0.05)
        assert kill_leftovers(leader.pid, "RATCHET_ACTION=4") == 0  # a prefix of both is neither
        assert kill_leftovers(leader.pid, "RATCHET_ACTION=41") == 1
        leader.wait(timeout=10)
        assert _running_with(f"201.{tag}") == [] and len(_running_with(f"200.{tag}")) == 1
    finally:
        for pid in _running_with(f"200.{tag}") + _running_with(f"201.{tag}"):
            os.kill(pid, signal.SIGKILL)
        if leader.poll() is None:
            leader.kill()


@pytest.mark.asyncio
async def test_a_command_cannot_approve_its_own_draft_or_edit_the_record(
    workspace: Path, ratchet_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The human's CLI and SQLite itself, run by the agent's command against the default layout.
    queued = '\n[classes.queued]\ntools = ["write_file"]\npaths = ["q/**"]\nstart = "draft"\nceiling = "draft"\n'
    policies = write_policy(workspace / ".ratchet" / "policies", ANYTHING + queued)
    db = workspace / ".ratchet" / "ratchet.db"
    edit = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute(\"UPDATE class_state SET level = 'autonomous'\"); c.commit()"
    )
    async with connect(workspace, policies, db) as client:
        draft = (await client.call_tool("write_file", {"path": "q/x.txt", "content": "x\n"})).structured_content
        assert draft is not None and draft["status"] == "draft"
        where = ["--workspace", ".", "--policies", str(policies), "--db", str(db)]
        # Under its own name the analysis refuses it before it runs (the human-cli rule); under another
        # name it falls to the catch-all and runs: the sandbox must still hold.
        refused = await _run(client, argv=[str(ratchet_bin), "approve", str(draft["draft_id"]), *where])
        assert refused["status"] == "blocked"
        disguised = workspace.parent / "renamed-cli"
        shutil.copy(ratchet_bin, disguised)
        approve = await _run(client, argv=[str(disguised), "approve", str(draft["draft_id"]), *where])
        sql = await _run(client, argv=["python3", "-c", edit, str(db)])
    assert approve["status"] == "failed" and sql["status"] == "failed"
    assert "readonly" in sql["result"]["stderr"] or "Read-only" in sql["result"]["stderr"]
    assert not (workspace / "q/x.txt").exists()
    code, text = await run_cli(capsys, workspace, policies, db, "queue")
    assert code == 0 and f"\n{draft['draft_id']:>2}  draft" in text
    code, text = await run_cli(capsys, workspace, policies, db, "status")
    assert re.search(r"\nqueued +draft ", text)


@pytest.mark.asyncio
async def test_nothing_of_a_sandboxed_command_runs_once_its_call_has_returned(tmp_path: Path) -> None:
    """`run_command` waits until the sandbox's process group is gone (the PID namespace's first process
    lingers while the kernel tears the namespace down), now polled from half a millisecond up: when
    the call returns, no process the command started still runs, even one that ignores SIGTERM or
    left the command's process group."""
    from ratchet.executors.confined import Confinement, run_confined

    workspace = tmp_path / "ws"
    workspace.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    marker = f"{400 + os.getpid() % 97}.{os.getpid()}"  # an argv no other process has
    # One in the command's process group, one in a session of its own (beyond a group kill: only the
    # namespace's end takes it), both ignoring SIGTERM.
    script = f"trap '' TERM; sleep {marker} & setsid sleep {marker} & echo started"
    confinement = Confinement(workspace, [state / "r.db"], ["PATH", "HOME"], 64_000)
    for _ in range(5):
        ran = await run_confined(["sh", "-c", script], confinement, cwd=workspace, timeout_s=30, extra_env={})
        assert ran.sandboxed and ran.result.exit_code == 0 and ran.result.stdout == "started\n"
        assert _running_with(marker) == [], "a process of the sandboxed command outlived its call"
