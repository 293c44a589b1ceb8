"""Verification as evidence: a class's checks judge its actions, independently of the agent.

Real programs (the interpreter's own py_compile), the real sandbox, a real server driven by the SDK's
client, a real SQLite file. A failing check turns the action's sample into a failure that drives the
demotion detector; `task_end` checks flip counted successes; `undo_on_failure` puts the file back;
checks are never agent actions and run confined like one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from .conftest import MakeServer
from .helpers import rows, run_cli, write, write_policy

PY = json.dumps(sys.executable)
COMPILE = f'[[{PY}, "-m", "py_compile", "{{path}}"]]'


def policy(tmp_path: Path, extra: str = "", verify: str = COMPILE, name: str = "policies") -> Path:
    """One autonomous class over src/** with `verify` checks (default trust parameters: three failures
    within eight samples demote), and a draft class over drafts/** with the same checks."""
    return write_policy(
        tmp_path / name,
        f"""
[defaults]
unmatched = "draft"

[classes.py-write]
tools = ["write_file", "edit_file"]
paths = ["src/**"]
start = "autonomous"
verify = {verify}
verify_timeout_s = 60
{extra}

[classes.py-draft]
tools = ["write_file", "edit_file"]
paths = ["drafts/**"]
start = "draft"
ceiling = "draft"
verify = {verify}
""",
    )


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    out: dict[str, Any] = result.structured_content
    return out


@pytest.mark.asyncio
async def test_a_failing_check_makes_the_sample_a_failure_with_its_output_and_three_demote(
    tmp_path: Path, make_server: MakeServer, db: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = policy(tmp_path, "max_consecutive_failures = 3")
    async with make_server(policies) as client:
        good = await write(client, "src/good.py", "x = 1\n")
        assert good["status"] == "executed" and [c["passed"] for c in good["checks"]] == [True]
        assert "verified: 1 check(s) passed" in good["message"]

        bad = await write(client, "src/bad.py", "def broken(:\n")
        assert bad["status"] == "executed"  # it ran fine; the check judged it
        (check,) = bad["checks"]
        assert not check["passed"] and check["exit_code"] == 1 and "SyntaxError" in check["tail"]
        assert "verification FAILED" in bad["message"] and "SyntaxError" in bad["message"]
        assert bad["moved"] is None  # one failure is not yet drift

        worse = await write(client, "src/worse.py", "class (\n")
        assert worse["moved"] is None  # two failures alone are not drift outside probation
        worst = await write(client, "src/worst.py", "lambda (\n")
        assert worst["moved"] is not None, worst["message"]  # three within the last eight samples are
        assert (worst["moved"]["from_level"], worst["moved"]["to_level"]) == ("autonomous", "confirm")

        shown = await call(client, "get_draft", {"draft_id": bad["action_id"]})
        assert shown["checks"][0]["passed"] is False and "SyntaxError" in shown["checks"][0]["tail"]

        # The session's streak halts the class: the packet tells the human what the checks found.
        stopped = await write(client, "src/next.py", "n = 1\n")
        assert stopped["status"] == "blocked", stopped["message"]
        failed = stopped["packet"]["failed_checks"]
        assert len(failed) == 3 and all("py_compile" in line for line in failed)
        assert "Checks that failed" in stopped["message"]

    samples = {r["id"]: r["sample"] for r in rows(db, "SELECT id, sample FROM actions WHERE status = 'executed'")}
    assert samples == {
        good["action_id"]: "success",
        bad["action_id"]: "failure",
        worse["action_id"]: "failure",
        worst["action_id"]: "failure",
    }
    recorded = rows(db, "SELECT action_id, phase, passed, tail, argv_json FROM checks ORDER BY id")
    assert [(r["action_id"], r["phase"], r["passed"]) for r in recorded] == [
        (good["action_id"], "each", 1),
        (bad["action_id"], "each", 0),
        (worse["action_id"], "each", 0),
        (worst["action_id"], "each", 0),
    ]
    assert "SyntaxError" in recorded[1]["tail"] and json.loads(recorded[1]["argv_json"])[-1] == "./src/bad.py"
    (demotion,) = rows(db, "SELECT kind, to_level, action_id FROM transitions WHERE kind = 'demote'")
    assert demotion["to_level"] == "confirm" and demotion["action_id"] == worst["action_id"]
    assert (workspace / "src" / "bad.py").read_text() == "def broken(:\n"  # no undo unless the class says so

    code, out = await run_cli(capsys, workspace, policies, db, "explain", str(bad["action_id"]))
    assert code == 0 and "check:" in out and "py_compile ./src/bad.py: failed (exit 1) [each]" in out
    code, out = await run_cli(capsys, workspace, policies, db, "metrics", "--json")
    assert code == 0, out
    (verified,) = json.loads(out)["verification"]
    assert (verified["action_class"], verified["level"]) == ("py-write", "autonomous")
    assert (verified["executed"], verified["verified"], verified["check_failures"]) == (4, 4, 3)


@pytest.mark.asyncio
async def test_task_end_checks_run_at_end_task_and_turn_those_samples_into_failures(
    tmp_path: Path, make_server: MakeServer, db: Path
) -> None:
    async with make_server(policy(tmp_path, 'verify_on = "task_end"')) as client:
        await call(
            client, "start_task", {"goal": "add two modules", "scope": {"paths": ["src/**"]}, "budget": {"actions": 10}}
        )
        bad = await write(client, "src/a.py", "def broken(:\n")
        good = await write(client, "src/b.py", "y = 2\n")
        assert bad["checks"] == [] and good["checks"] == []  # nothing runs before the task ends
        assert rows(db, "SELECT count(*) AS n FROM checks")[0]["n"] == 0
        assert {r["sample"] for r in rows(db, "SELECT sample FROM actions")} == {"success"}

        ended = await call(client, "end_task", {"summary": "done"})
        assert ended["checks_failed_on"] == [bad["action_id"]]
        assert "task-end checks failed" in ended["message"] and "SyntaxError" in ended["message"]

    samples = {r["id"]: r["sample"] for r in rows(db, "SELECT id, sample FROM actions")}
    assert samples == {bad["action_id"]: "failure", good["action_id"]: "success"}
    window = {r["action_id"]: r["ok"] for r in rows(db, "SELECT action_id, ok FROM samples")}
    assert window == {bad["action_id"]: 0, good["action_id"]: 1}  # flipped in place, not added
    recorded = rows(db, "SELECT action_id, phase, passed FROM checks ORDER BY action_id")
    assert [(r["action_id"], r["phase"], r["passed"]) for r in recorded] == [
        (bad["action_id"], "task_end", 0),
        (good["action_id"], "task_end", 1),
    ]


@pytest.mark.asyncio
async def test_a_task_end_check_over_all_paths_judges_every_action_of_the_task(
    tmp_path: Path, make_server: MakeServer, db: Path
) -> None:
    every = f'[[{PY}, "-m", "py_compile", "{{paths}}"]]'
    async with make_server(policy(tmp_path, 'verify_on = "task_end"', verify=every)) as client:
        await call(client, "start_task", {"goal": "g", "scope": {"paths": ["src/**"]}, "budget": {"actions": 10}})
        first = await write(client, "src/a.py", "a = 1\n")
        second = await write(client, "src/b.py", "def broken(:\n")
        ended = await call(client, "end_task", {"summary": "done"})
    assert ended["checks_failed_on"] == [first["action_id"], second["action_id"]]
    (argv,) = {r["argv_json"] for r in rows(db, "SELECT argv_json FROM checks")}
    assert json.loads(argv)[-2:] == ["./src/a.py", "./src/b.py"]  # one run, every target a separate argument


@pytest.mark.asyncio
async def test_undo_on_failure_puts_the_file_back_and_the_record_says_why(
    tmp_path: Path, make_server: MakeServer, db: Path, workspace: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "m.py").write_bytes(b"x = 1\r\n")
    async with make_server(policy(tmp_path, "undo_on_failure = true")) as client:
        kept = await write(client, "src/ok.py", "z = 3\n")
        assert kept["undone"] is None and (workspace / "src" / "ok.py").read_text() == "z = 3\n"
        bad = await write(client, "src/m.py", "def broken(:\n")
        assert bad["status"] == "executed" and bad["undone"] and "restored src/m.py" in bad["undone"]
        assert (workspace / "src" / "m.py").read_bytes() == b"x = 1\r\n"  # exactly the prior bytes
        created = await write(client, "src/new.py", "class (\n")
        assert not (workspace / "src" / "new.py").exists()  # a file the failing write created is gone again
        shown = await call(client, "get_draft", {"draft_id": bad["action_id"]})
        assert shown["undone"] and "undo_on_failure" in shown["undone"] and "by check" in shown["undone"]

    # The check's undo is an undo like a human's, with the check as its actor and no complaint: the
    # failure is counted once, as the check's.
    undos = rows(db, "SELECT action_id, actor, complaint, reason, detail FROM undos ORDER BY id")
    assert [(u["action_id"], u["actor"], u["complaint"]) for u in undos] == [
        (bad["action_id"], "check", 0),
        (created["action_id"], "check", 0),
    ]
    assert "py_compile" in undos[0]["reason"] and "undo_on_failure" in undos[0]["reason"]
    assert "removed src/new.py" in undos[1]["detail"]
    assert rows(db, "SELECT sample FROM actions WHERE id = ?", bad["action_id"])[0]["sample"] == "failure"
    assert rows(db, "SELECT count(*) AS n FROM complaints")[0]["n"] == 0


@pytest.mark.asyncio
async def test_an_approved_draft_is_verified_too(
    tmp_path: Path, make_server: MakeServer, db: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = policy(tmp_path)
    async with make_server(policies) as client:
        queued = await write(client, "drafts/d.py", "def broken(:\n")
        assert queued["status"] == "draft"
    code, out = await run_cli(capsys, workspace, policies, db, "approve", str(queued["action_id"]))
    assert code == 0, out
    (row,) = rows(db, "SELECT status, sample FROM actions WHERE id = ?", queued["action_id"])
    assert (row["status"], row["sample"]) == ("executed", "failure")
    (check,) = rows(db, "SELECT passed, tail FROM checks WHERE action_id = ?", queued["action_id"])
    assert check["passed"] == 0 and "SyntaxError" in check["tail"]
    code, out = await run_cli(capsys, workspace, policies, db, "show", str(queued["action_id"]))
    assert code == 0 and "py_compile" in out and "SyntaxError" in out


@pytest.mark.asyncio
async def test_checks_are_not_agent_actions_and_run_sandboxed(
    tmp_path: Path, make_server: MakeServer, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check that tries to write Ratchet's own policy directory fails and writes nothing; the history
    holds the agent's write alone."""
    from ratchet.executors.sandbox import sandbox_status

    if not sandbox_status().available:
        pytest.fail("bubblewrap is required for this test (apt-get install bubblewrap)")
    home = workspace / ".ratchet"
    db = home / "ratchet.db"
    plant = "open('.ratchet/policies/zz-planted.toml', 'w').write('[classes.x]')"
    policies = policy(home, verify=f'[[{PY}, "-c", {json.dumps(plant)}]]', name="policies")
    async with make_server(policies, db=db) as client:
        out = await write(client, "src/a.py", "a = 1\n")
    assert not out["checks"][0]["passed"]
    assert not (policies / "zz-planted.toml").exists()
    assert rows(db, "SELECT sample FROM actions")[0]["sample"] == "failure"
    code, listed = await run_cli(capsys, workspace, policies, db, "history", "--json")
    assert code == 0
    history = json.loads(listed)
    assert [(h["tool"], h["target"]) for h in history] == [("write_file", "src/a.py")]


def test_a_path_check_on_a_class_without_file_targets_is_refused_at_load(tmp_path: Path) -> None:
    from ratchet.errors import PolicyError
    from ratchet.policy.load import load_policy

    directory = write_policy(
        tmp_path / "p",
        '[classes.tests-run]\ntools = ["run_command"]\nargv = [["pytest"]]\nstart = "draft"\n'
        'verify = [["ruff", "check", "{path}"]]\n',
    )
    with pytest.raises(PolicyError, match=r"no file targets"):
        load_policy(directory)
