"""run_command through the MCP server: classified by what really runs, killed on time, capped, scrubbed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.cli import main
from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human, write_policy

POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2

[defaults.commands]
timeout_s = 20
max_timeout_s = 60
output_cap = 4096

[classes.files]
tools = ["write_file", "edit_file"]
paths = ["out/**"]
start = "autonomous"

[classes.echo]
tools = ["run_command"]
argv = [["echo"], ["seq"], ["sleep"], ["env"], ["cat"]]
start = "autonomous"

[classes.shelly]
tools = ["run_command"]
argv = [["printf"]]
start = "autonomous"
allow_shell = true

[classes.delete]
tools = ["run_command"]
argv = [["rm"]]
start = "blocked"
ceiling = "blocked"

[classes.climbing]
tools = ["run_command"]
argv = [["true"]]
start = "draft"
ceiling = "autonomous"

[classes.other]
tools = ["run_command"]
start = "draft"
ceiling = "draft"
"""


@pytest.fixture
def cmd_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "cmd-policies", POLICY)


async def _run(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("run_command", args)
    if result.structured_content is None:  # refused before anything was recorded as an outcome
        return {"status": "error", "text": result.content[0].text}
    out: dict[str, Any] = result.structured_content
    out["text"] = result.content[0].text
    return out


def _running_with(arg: str) -> list[int]:
    """Live processes (not zombies: a killed orphan may linger unreaped, running nothing) with `arg` in argv."""
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


@pytest.mark.asyncio
async def test_argv_runs_with_a_scrubbed_environment(
    workspace: Path, cmd_policies: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATCHET_TEST_SECRET", "hunter2-do-not-leak")
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        hello = await _run(client, argv=["echo", "hello", "$HOME;", "rm -rf /"])
        env = await _run(client, argv=["env"])
        fed = await _run(client, argv=["cat"], stdin="fed through stdin\n")
    assert hello["status"] == "executed" and hello["action_class"] == "echo"
    assert hello["result"]["stdout"] == "hello $HOME; rm -rf /\n"  # argv: no shell interprets it
    assert "exit code 0" in hello["text"]
    assert "hunter2-do-not-leak" not in env["result"]["stdout"] and "PATH=" in env["result"]["stdout"]
    assert fed["result"]["stdout"] == "fed through stdin\n"


@pytest.mark.asyncio
async def test_a_command_past_its_timeout_is_killed_with_its_children(
    workspace: Path, cmd_policies: Path, db: Path
) -> None:
    (workspace / "out").mkdir()
    # The child's pid as the command sees it is its sandbox's (a PID namespace), so the background
    # child is found on the host by an argument no other process has.
    script = "sleep 30.0417 & echo started > out/child.started; sleep 30"
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        started = time.monotonic()
        out = await _run(client, argv=["sh", "-c", script], timeout_s=1)
        elapsed = time.monotonic() - started
        alive = await _run(client, argv=["echo", "still here"])
    assert out["status"] == "failed" and out["result"]["timed_out"] and "timed out" in out["text"]
    assert elapsed < 15
    assert (workspace / "out/child.started").exists()
    assert _running_with("30.0417") == []
    assert alive["status"] == "executed"


@pytest.mark.asyncio
async def test_flooding_output_is_capped_and_the_server_stays_responsive(
    workspace: Path, cmd_policies: Path, db: Path
) -> None:
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        out = await _run(client, argv=["seq", "1", "2000000"])
        after = await client.call_tool("trust_levels", {})
    result = out["result"]
    assert out["status"] == "executed" and result["truncated"]
    assert result["stdout_bytes"] > 10_000_000 and len(result["stdout"]) < 5000
    assert "truncated" in result["stdout"] and result["stdout"].startswith("1\n2\n3\n")
    assert result["stdout"].rstrip().endswith("2000000")
    assert not after.is_error


@pytest.mark.asyncio
async def test_long_runs_send_progress(workspace: Path, cmd_policies: Path, db: Path) -> None:
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        result = await client.call_tool("run_command", {"argv": ["sleep", "4.5"]}, progress_callback=on_progress)
    assert result.structured_content["status"] == "executed"
    assert seen and all("running" in (m or "") for m in seen)


DODGES = [
    ["rm", "-f", "victim.txt"],
    ["/bin/rm", "-f", "victim.txt"],
    ["env", "X=1", "rm", "-f", "victim.txt"],
    ["sh", "-c", "rm -f victim.txt"],
    ["bash", "-lc", "echo hi && rm -f victim.txt"],
    ["nice", "-n", "5", "rm", "-f", "victim.txt"],
    ["find", ".", "-name", "victim.txt", "-exec", "rm", "{}", ";"],
    ["xargs", "rm"],
    ["timeout", "5", "sh", "-c", "rm -f victim.txt"],
]


@pytest.mark.asyncio
@pytest.mark.parametrize("argv", DODGES, ids=[" ".join(a)[:30] for a in DODGES])
async def test_wrapped_commands_are_classified_by_what_they_run(
    workspace: Path, cmd_policies: Path, db: Path, argv: list[str]
) -> None:
    (workspace / "victim.txt").write_text("keep me\n")
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        out = await _run(client, argv=argv, stdin="victim.txt\n")
    assert out["status"] == "blocked" and out["action_class"] == "delete", out
    assert (workspace / "victim.txt").read_text() == "keep me\n"


OPAQUE = [
    ["python3", "-c", "import os; os.remove('victim.txt')"],
    ["sh", "-c", "$(printf rm) victim.txt"],
    ["sh", "-c", "eval 'rm victim.txt'"],
    ["./rm", "victim.txt"],
    ["sudo", "echo", "hi"],
]


@pytest.mark.asyncio
@pytest.mark.parametrize("argv", OPAQUE, ids=[" ".join(a)[:30] for a in OPAQUE])
async def test_what_cannot_be_analysed_falls_to_the_conservative_class(
    workspace: Path, cmd_policies: Path, db: Path, argv: list[str]
) -> None:
    (workspace / "victim.txt").write_text("keep me\n")
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        out = await _run(client, argv=argv)
    assert out["status"] in ("draft", "blocked") and out["action_class"] in ("other", "delete"), out
    assert (workspace / "victim.txt").read_text() == "keep me\n"


@pytest.mark.asyncio
async def test_shell_strings_only_where_the_class_allows_and_redirects_count_as_writes(
    workspace: Path, cmd_policies: Path, db: Path
) -> None:
    (workspace / "out").mkdir()
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        refused = await _run(client, command="echo hi")
        allowed = await _run(client, command="printf 'a\\nb\\n' | printf done")
        redirect_ok = await _run(client, command="printf x > out/ok.txt")
        redirect_held = await _run(client, command="printf x > elsewhere.txt")
        escape = await _run(client, command="printf x > ../escape.txt")
    assert refused["status"] == "error" and "does not accept shell strings" in refused["text"]
    assert allowed["status"] == "executed" and allowed["result"]["stdout"] == "done", allowed
    assert redirect_ok["status"] == "executed" and (workspace / "out/ok.txt").read_text() == "x"
    # The redirect writes a file no autonomous class covers: held to that file's class (draft).
    assert redirect_held["status"] == "draft" and redirect_held["triggers"][0]["name"] == "side-effect"
    assert not (workspace / "elsewhere.txt").exists()
    assert escape["status"] == "error" and "outside-workspace" in escape["text"]
    assert not (workspace.parent / "escape.txt").exists()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"argv": ["echo"], "cwd": "/tmp"}, "outside-workspace"),
        ({"argv": ["echo"], "cwd": "../elsewhere"}, "outside-workspace"),
        ({"argv": ["echo"], "cwd": ".git"}, "git-internals"),
        ({"argv": ["echo"], "timeout_s": -1}, "out of range"),
        ({"argv": ["echo"], "timeout_s": 10_000}, "out of range"),
        ({"argv": []}, "non-empty"),
        ({}, "exactly one of argv"),
        ({"argv": ["echo"], "command": "echo"}, "exactly one of argv"),
    ],
)
async def test_bad_arguments_are_refused_by_name(
    workspace: Path, cmd_policies: Path, db: Path, args: dict[str, Any], expected: str
) -> None:
    (workspace / ".git").mkdir()
    async with Client(build_server(ServerConfig(workspace, cmd_policies, db))) as client:
        out = await _run(client, **args)
    assert out["status"] == "error" and expected in out["text"]


@pytest.mark.asyncio
async def test_a_command_class_climbs_and_falls_like_any_other(
    workspace: Path, cmd_policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--workspace", str(workspace), "--policies", str(cmd_policies), "--db", str(db)]
    levels = []
    clock = Clock()  # the human reads each confirmation for a few seconds (an instant yes is no evidence)
    server = build_server(ServerConfig(workspace, cmd_policies, db, clock=clock))
    async with Client(server, elicitation_callback=Human(delay=5.0, clock=clock)) as client:
        for _ in range(7):
            out = await _run(client, argv=["true"])
            levels.append(f"{out['class_level']}:{out['status']}")
            if out["status"] == "draft":
                assert await anyio.to_thread.run_sync(main, ["approve", str(out["draft_id"]), *base]) == 0
    assert levels == ["draft:draft"] * 3 + ["confirm:executed"] * 3 + ["autonomous:executed"]
    assert await anyio.to_thread.run_sync(main, ["complain", str(out["action_id"]), "--reason", "wrong", *base]) == 0
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(main, ["status", "--json", *base]) == 0
    status = {c["action_class"]: c for c in json.loads(capsys.readouterr().out)["classes"]}
    assert status["climbing"]["level"] == "confirm"
