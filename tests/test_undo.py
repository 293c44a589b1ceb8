"""`ratchet undo` and `ratchet gc` through the installed console script, on real files, a real git
repository with a bare remote and a real SQLite file; the agent's calls through the real MCP server.

Undo puts back the exact prior bytes and mode of a write or an edit (a created file is removed), refuses a
file changed since (naming who changed it) unless --force, reverts a commit through a draft a human
approves, refuses a command, keeps nothing for a secret class, and counts as a complaint unless
--not-a-complaint. The content store keeps to its bounds, and the agent has no way to undo.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from .helpers import agent, agent_results, console, git, rows, running_web, write_policy

UNDO_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[defaults.undo]
max_total_bytes = 100000
max_file_bytes = 1000

[classes.auto]
tools = ["write_file", "edit_file"]
paths = ["auto/**"]
start = "autonomous"

[classes.keys]
tools = ["write_file", "edit_file"]
paths = ["keys/**"]
start = "autonomous"
secret = true

[classes.commits]
tools = ["git_commit"]
start = "autonomous"

[classes.cmds]
tools = ["run_command"]
argv = [["touch"]]
start = "autonomous"
"""


@pytest.fixture
def undo_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "undo-policies", UNDO_POLICY)


def calls(workspace: Path, policies: Path, db: Path, *made: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent's calls through the real server; each must have run."""
    out = anyio.run(agent_results, workspace, policies, db, *made)
    for result in out:
        assert result.get("status") == "executed", result
    return out


def _bin() -> Path:
    """The installed console script (as the `ratchet_bin` fixture names it)."""
    return Path(sys.executable).parent / "ratchet"


def run(workspace: Path, policies: Path, db: Path, *argv: str) -> Any:
    return console(_bin(), workspace, policies, db, *argv)


def level_of(db: Path, name: str) -> str:
    return str(rows(db, "SELECT level FROM class_state WHERE name = ?", name)[0]["level"])


def test_undo_restores_the_exact_prior_bytes_and_mode_of_a_write_and_of_an_edit(
    workspace: Path, undo_policies: Path, db: Path
) -> None:
    target = workspace / "auto" / "run.sh"
    target.parent.mkdir()
    prior = b"#!/bin/sh\r\necho one\r\necho two\r\n"
    target.write_bytes(prior)
    target.chmod(0o750)
    [written] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/run.sh", "content": "echo new\n"}))
    assert target.read_bytes() == b"echo new\r\n"  # the write kept the CRLF endings
    done = run(
        workspace,
        undo_policies,
        db,
        "undo",
        str(written["action_id"]),
        "--reason",
        "wrong script",
        "--not-a-complaint",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == prior
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    out = json.loads(done.stdout)
    assert out["done"] is True and out["complaint"] is False and "restored auto/run.sh" in out["message"]

    [edited] = calls(
        workspace,
        undo_policies,
        db,
        ("edit_file", {"path": "auto/run.sh", "edits": [{"old_text": "echo two", "new_text": "echo TWO"}]}),
    )
    assert target.read_bytes() == b"#!/bin/sh\r\necho one\r\necho TWO\r\n"
    done = run(workspace, undo_policies, db, "undo", str(edited["action_id"]))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == prior and stat.S_IMODE(target.stat().st_mode) == 0o750
    # The record: both undos, the second counted as a complaint, the first (--not-a-complaint) not.
    kept = rows(db, "SELECT action_id, complaint, actor, reason FROM undos ORDER BY id")
    assert [(r["action_id"], r["complaint"], r["actor"]) for r in kept] == [
        (written["action_id"], 0, "cli"),
        (edited["action_id"], 1, "cli"),
    ]
    complaints = rows(db, "SELECT action_id FROM complaints")
    assert [r["action_id"] for r in complaints] == [edited["action_id"]]
    # Visible in show, history and explain.
    shown = run(workspace, undo_policies, db, "show", str(written["action_id"]))
    assert "undo: undone" in shown.stdout and "wrong script" in shown.stdout
    assert "executed (undone)" in run(workspace, undo_policies, db, "history").stdout
    explained = run(workspace, undo_policies, db, "explain", str(edited["action_id"]))
    assert "undo:     undone" in explained.stdout
    # Undone once: a second undo is refused.
    again = run(workspace, undo_policies, db, "undo", str(written["action_id"]))
    assert again.returncode == 1 and "already undone" in again.stderr


def test_a_created_file_is_removed_and_an_undo_counts_against_the_class(
    workspace: Path, undo_policies: Path, db: Path
) -> None:
    [made] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/new.txt", "content": "fresh\n"}))
    assert level_of(db, "auto") == "autonomous"
    done = run(workspace, undo_policies, db, "undo", str(made["action_id"]), "--reason", "not wanted")
    assert done.returncode == 0, done.stderr
    assert not (workspace / "auto" / "new.txt").exists()
    assert "removed auto/new.txt" in done.stdout
    # A complaint moves the class exactly as `ratchet complain` does: here a demotion.
    assert level_of(db, "auto") != "autonomous"
    assert "counted as a complaint against class auto" in done.stdout
    # `ratchet metrics`: the class's undo rate and the time from the action to its undo.
    metrics = run(workspace, undo_policies, db, "metrics", "--json")
    assert metrics.returncode == 0, metrics.stderr
    [auto] = [u for u in json.loads(metrics.stdout)["undos"] if u["action_class"] == "auto"]
    assert (auto["executed"], auto["undone"], auto["undo_rate"]) == (1, 1, 1.0)
    assert auto["median_seconds_to_undo"] is not None and auto["median_seconds_to_undo"] >= 0
    assert "undone: auto 1/1 (100%)" in run(workspace, undo_policies, db, "metrics").stdout


def test_undo_refuses_a_file_changed_since_naming_who_and_force_restores(
    workspace: Path, undo_policies: Path, db: Path
) -> None:
    (workspace / "auto").mkdir()
    (workspace / "auto" / "a.txt").write_text("original\n")
    [first] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/a.txt", "content": "agent one\n"}))
    (workspace / "auto" / "a.txt").write_text("a human's edit\n")
    refused = run(workspace, undo_policies, db, "undo", str(first["action_id"]))
    assert refused.returncode == 1
    assert "changed outside Ratchet" in refused.stderr and "--force" in refused.stderr
    assert (workspace / "auto" / "a.txt").read_text() == "a human's edit\n"
    [second] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/a.txt", "content": "agent two\n"}))
    refused = run(workspace, undo_policies, db, "undo", str(first["action_id"]))
    assert refused.returncode == 1
    assert f"changed by action {second['action_id']} (write_file, session " in refused.stderr
    assert rows(db, "SELECT count(*) AS n FROM undos")[0]["n"] == 0  # a refused undo records nothing
    forced = run(workspace, undo_policies, db, "undo", str(first["action_id"]), "--force", "--not-a-complaint")
    assert forced.returncode == 0, forced.stderr
    assert (workspace / "auto" / "a.txt").read_text() == "original\n"
    assert rows(db, "SELECT forced FROM undos")[0]["forced"] == 1


def test_a_commit_is_undone_by_a_revert_commit_after_approval(
    git_workspace: Path, remote: Path, undo_policies: Path, db: Path
) -> None:
    ws = git_workspace
    before = git(ws, "rev-parse", "HEAD").strip()
    _, committed = calls(
        ws,
        undo_policies,
        db,
        ("write_file", {"path": "auto/feature.txt", "content": "feature\n"}),
        ("git_commit", {"message": "add the feature", "paths": ["auto/feature.txt"]}),
    )
    sha = committed["result"]["sha"]
    assert git(ws, "rev-parse", "HEAD").strip() == sha
    queued = run(ws, undo_policies, db, "undo", str(committed["action_id"]), "--reason", "bad feature", "--json")
    assert queued.returncode == 0, queued.stderr
    out = json.loads(queued.stdout)
    assert out["done"] is False and out["revert_id"] is not None
    revert_id = out["revert_id"]
    # Nothing changed yet: the revert is a draft to approve.
    assert git(ws, "rev-parse", "HEAD").strip() == sha
    shown = run(ws, undo_policies, db, "show", str(revert_id))
    assert "git_revert" in shown.stdout and "-feature" in shown.stdout and "[draft]" in shown.stdout
    approved = run(ws, undo_policies, db, "approve", str(revert_id))
    assert approved.returncode == 0, approved.stdout + approved.stderr
    log = git(ws, "log", "--format=%H %s").splitlines()
    assert log[0].split(" ", 1)[1] == 'Revert "add the feature"'
    assert log[1] == f"{sha} add the feature" and log[2].startswith(before)
    assert git(ws, "diff", before, "HEAD") == ""  # the tree is back
    assert not (ws / "auto" / "feature.txt").exists()
    assert git(ws, "status", "--porcelain") == ""
    shown = run(ws, undo_policies, db, "show", str(committed["action_id"]))
    assert f"revert draft {revert_id} (executed)" in shown.stdout and "undo done" in shown.stdout
    # The revert earns the commit class nothing; the undo was its complaint.
    assert rows(db, "SELECT sample FROM actions WHERE id = ?", revert_id)[0]["sample"] is None
    assert [r["action_id"] for r in rows(db, "SELECT action_id FROM complaints")] == [committed["action_id"]]


def test_a_command_cannot_be_undone_and_a_secret_class_keeps_nothing(
    workspace: Path, undo_policies: Path, db: Path
) -> None:
    results = anyio.run(
        agent_results,
        workspace,
        undo_policies,
        db,
        ("run_command", {"argv": ["touch", "made.txt"]}),
        ("write_file", {"path": "keys/token.txt", "content": "s3cret\n"}),
    )
    command, secret = results
    refused = run(workspace, undo_policies, db, "undo", str(command["action_id"]))
    assert refused.returncode == 1 and "a command cannot be undone" in refused.stderr
    assert secret["status"] == "executed"
    refused = run(workspace, undo_policies, db, "undo", str(secret["action_id"]))
    assert refused.returncode == 1
    assert "class keys is marked secret" in refused.stderr and "no prior version was kept" in refused.stderr
    entries = db.parent / "content" / "entries"
    assert not (entries / f"{secret['action_id']}.json").exists()
    assert (workspace / "keys" / "token.txt").read_text() == "s3cret\n"


def test_gc_drops_the_oldest_prior_versions_first_and_undo_says_so(workspace: Path, tmp_path: Path, db: Path) -> None:
    # Each prior version is 400 bytes; the store holds 1000: gc keeps the two newest.
    small = write_policy(tmp_path / "small", UNDO_POLICY)
    (workspace / "auto").mkdir()
    for n in range(4):
        (workspace / "auto" / f"{n}.txt").write_text(str(n) * 399 + "\n")
    (workspace / "auto" / "big.txt").write_text("b" * 2000)
    made = calls(
        workspace,
        small,
        db,
        *(("write_file", {"path": f"auto/{n}.txt", "content": "new\n"}) for n in range(4)),
        ("write_file", {"path": "auto/big.txt", "content": "small now\n"}),
    )
    policy = small / "policy.toml"
    policy.write_text(policy.read_text().replace("max_total_bytes = 100000", "max_total_bytes = 1000"))
    collected = run(workspace, small, db, "gc", "--json")
    assert collected.returncode == 0, collected.stderr
    report = json.loads(collected.stdout)
    assert report["entries_dropped"] == 2 and report["bytes_kept"] == 800
    oldest = run(workspace, small, db, "undo", str(made[0]["action_id"]))
    assert oldest.returncode == 1
    assert "was dropped from the content store: dropped to keep the store under 1000 bytes" in oldest.stderr
    assert (workspace / "auto" / "0.txt").read_text() == "new\n"
    newest = run(workspace, small, db, "undo", str(made[3]["action_id"]))
    assert newest.returncode == 0, newest.stderr
    assert (workspace / "auto" / "3.txt").read_text() == "3" * 399 + "\n"
    # Too large to keep at all (max_file_bytes): the undo says why.
    big = run(workspace, small, db, "undo", str(made[4]["action_id"]))
    assert big.returncode == 1 and "larger than max_file_bytes (1000)" in big.stderr


@pytest.mark.asyncio
async def test_the_agent_cannot_undo_and_the_web_button_needs_the_token_and_csrf(
    workspace: Path, undo_policies: Path, db: Path
) -> None:
    async with agent(workspace, undo_policies, db) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names and not any("undo" in n or "revert" in n for n in names)
        made = await client.call_tool("write_file", {"path": "auto/w.txt", "content": "agent\n"})
        action_id = made.structured_content["action_id"]
    async with running_web(workspace, undo_policies, db) as web:

        def probe() -> dict[str, Any]:
            url = f"/api/actions/{action_id}/undo"
            with httpx2.Client(base_url=web.base, timeout=30) as http:
                headers = {"Origin": web.base, "X-Ratchet-CSRF": "x"}
                assert http.post(url, json={"reason": "r"}, headers=headers).status_code == 401
                assert http.get(f"/login?token={web.token}").status_code == 303
                page = http.get(f"/explain/{action_id}").text
                assert f'data-post="{url}"' in page  # the button is on the action's page
                csrf = re.search(r'name="ratchet-csrf" content="([^"]+)"', page)
                assert csrf
                assert http.post(url, json={"reason": "r"}, headers={"Origin": web.base}).status_code == 403
                bad = {"Origin": web.base, "X-Ratchet-CSRF": "0" * 64}
                assert http.post(url, json={"reason": "r"}, headers=bad).status_code == 403
                assert (workspace / "auto" / "w.txt").exists()
                good = {"Origin": web.base, "X-Ratchet-CSRF": csrf[1]}
                answer = http.post(url, json={"reason": "from the page", "not_a_complaint": "on"}, headers=good)
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

        answer = await anyio.to_thread.run_sync(probe)
    assert answer["status"] == "undone"
    assert not (workspace / "auto" / "w.txt").exists()
    [row] = rows(db, "SELECT actor, channel, complaint FROM undos")
    assert (row["actor"], row["channel"], row["complaint"]) == ("web", "web", 0)


def test_the_agent_can_neither_plant_nor_remove_a_prior_version(workspace: Path, undo_policies: Path) -> None:
    # The default layout: the database, and the content store beside it, in the workspace's .ratchet/.
    db = workspace / ".ratchet" / "ratchet.db"
    (workspace / "auto").mkdir()
    (workspace / "auto" / "a.txt").write_text("before\n")
    [made] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/a.txt", "content": "after\n"}))
    entry = workspace / ".ratchet" / "content" / "entries" / f"{made['action_id']}.json"
    kept = entry.read_bytes()
    planted, command = anyio.run(
        agent_results,
        workspace,
        undo_policies,
        db,
        ("write_file", {"path": f".ratchet/content/entries/{made['action_id']}.json", "content": "{}"}),
        ("run_command", {"argv": ["touch", f".ratchet/content/entries/{made['action_id']}.json", "auto/ok.txt"]}),
    )
    assert planted.get("status") != "executed"  # refused: the store is managed by Ratchet itself
    assert command["status"] == "failed" and "Read-only file system" in command["result"]["stderr"]
    assert entry.read_bytes() == kept
    done = run(workspace, undo_policies, db, "undo", str(made["action_id"]), "--not-a-complaint")
    assert done.returncode == 0, done.stderr
    assert (workspace / "auto" / "a.txt").read_text() == "before\n"


def test_undo_never_follows_a_link_put_in_the_file_s_place(
    workspace: Path, tmp_path: Path, undo_policies: Path, db: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside, untouched\n")
    [made] = calls(workspace, undo_policies, db, ("write_file", {"path": "auto/l.txt", "content": "agent\n"}))
    (workspace / "auto" / "l.txt").unlink()
    (workspace / "auto" / "l.txt").symlink_to(outside)
    refused = run(workspace, undo_policies, db, "undo", str(made["action_id"]), "--force")
    assert refused.returncode == 1 and "link" in refused.stderr
    assert outside.read_text() == "outside, untouched\n"
    assert (workspace / "auto" / "l.txt").is_symlink()
