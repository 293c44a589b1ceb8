"""Reviewing from a terminal, through the real console script: several drafts at once (one bad id
reported and the rest still done), --all-from CLASS behind a confirmation, an option picked by number
or prefix, and messages that say what to do instead of misleading."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import blocked_and_handoff, console, console_env, queue_drafts, write_policy


def test_approve_takes_several_ids_and_one_bad_id_does_not_stop_the_rest(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    a, b = queue_drafts(workspace, policies, db, "a.txt", "b.txt")
    done = console(ratchet_bin, workspace, policies, db, "approve", str(a), "999", str(b))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"draft {a}: executed",
        "draft 999: not done: no action 999; `ratchet queue` lists the drafts",
        f"draft {b}: executed",
    ]
    assert done.stderr == "ratchet: error: 1 of 3 drafts not approved: 999\n"
    assert (workspace / "queue/a.txt").read_text() == "a.txt\n" and (workspace / "queue/b.txt").exists()
    # Approving again: each is reported as already done, nothing runs twice.
    again = console(ratchet_bin, workspace, policies, db, "approve", str(a), str(b), "--json")
    assert again.returncode == 1
    outcomes = json.loads(again.stdout)
    assert [(o["id"], o["ok"]) for o in outcomes] == [(a, False), (b, False)]
    assert all("not a queued draft" in o["error"] for o in outcomes)


def test_reject_all_from_a_class_asks_first(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    a, b = queue_drafts(workspace, policies, db, "a.txt", "b.txt")
    refused = console(ratchet_bin, workspace, policies, db, "reject", "--all-from", "queue", "--reason", "no")
    assert refused.returncode == 2 and "--yes" in refused.stderr  # off a terminal, nobody to ask
    both = console(ratchet_bin, workspace, policies, db, "reject", str(a), "--all-from", "queue", "--reason", "no")
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = console(ratchet_bin, workspace, policies, db, "approve", "--all-from", "nope", "--yes")
    assert unknown.returncode == 1 and "unknown class 'nope'" in unknown.stderr and "queue" in unknown.stderr

    # On a terminal it asks; anything but yes does nothing.
    primary, secondary = pty.openpty()
    os.write(primary, b"n\n")  # the answer, typed ahead
    try:
        declined = console(
            ratchet_bin, workspace, policies, db, "reject", "--all-from", "queue", "--reason", "no",
            stdin=secondary, input=None,
        )  # fmt: skip
    finally:
        os.close(secondary)
        os.close(primary)
    assert declined.returncode == 0, declined.stderr
    assert f"reject 2 queued draft(s) of class queue ({a}, {b})? [y/N]" in declined.stderr
    assert declined.stdout == "no drafts rejected\n"

    done = console(ratchet_bin, workspace, policies, db, "reject", "--all-from", "queue", "--yes", "--reason", "no")
    assert done.returncode == 0 and done.stdout.splitlines() == [f"draft {a}: rejected", f"draft {b}: rejected"]
    assert not (workspace / "queue").exists()


def test_resolve_takes_the_option_number_or_an_unambiguous_prefix(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    stopped, handoff = blocked_and_handoff(workspace, policies, db)
    ambiguous = console(ratchet_bin, workspace, policies, db, "resolve", str(handoff), "--option", "l")
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr and "lru cache, lfu cache" in ambiguous.stderr
    out_of_range = console(ratchet_bin, workspace, policies, db, "resolve", str(handoff), "--option", "7")
    assert out_of_range.returncode == 1 and "1. lru cache, 2. lfu cache, 3. no cache" in out_of_range.stderr
    unknown = console(ratchet_bin, workspace, policies, db, "resolve", str(handoff), "--option", "arc")
    assert unknown.returncode == 1 and "unknown option 'arc'" in unknown.stderr
    done = console(ratchet_bin, workspace, policies, db, "resolve", str(handoff), "--option", "LR", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resolution"] == "lru cache"
    by_number = console(ratchet_bin, workspace, policies, db, "resolve", str(stopped), "--option", "2", "--json")
    assert by_number.returncode == 0, by_number.stderr
    assert json.loads(by_number.stdout)["resolution"] == "take-over"


def test_approving_a_stopped_action_points_to_resolve(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    stopped, _ = blocked_and_handoff(workspace, policies, db)
    done = console(ratchet_bin, workspace, policies, db, "approve", str(stopped))
    assert done.returncode == 1 and "at most once" not in done.stderr
    assert f"`ratchet resolve {stopped} --option" in done.stderr and "not queued as a draft" in done.stderr


def test_unpin_of_a_class_that_is_not_pinned_is_refused_and_records_nothing(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    queue_drafts(workspace, policies, db, "a.txt")  # the database exists
    before = json.loads(console(ratchet_bin, workspace, policies, db, "transitions", "--json").stdout)
    done = console(ratchet_bin, workspace, policies, db, "unpin", "auto", "--reason", "tidy")
    assert done.returncode == 1 and done.stderr == "ratchet: error: class auto is not pinned; nothing to unpin\n"
    assert json.loads(console(ratchet_bin, workspace, policies, db, "transitions", "--json").stdout) == before


def test_report_json_and_html_together_is_a_usage_error(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, tmp_path: Path
) -> None:
    queue_drafts(workspace, policies, db, "a.txt")
    page = tmp_path / "report.html"
    done = console(ratchet_bin, workspace, policies, db, "report", "--json", "--html", str(page))
    assert done.returncode == 2 and "--json and --html" in done.stderr and not page.exists()


def test_init_refuses_a_workspace_that_does_not_exist(ratchet_bin: Path, tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "project"
    done = subprocess.run(
        [str(ratchet_bin), "init", "--workspace", str(typo)],
        env=console_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and f"workspace {typo} does not exist" in done.stderr
    assert not (tmp_path / "typo").exists()


GIT_POLICY = """
[classes.push]
tools = ["git_push"]
start = "autonomous"
"""


@pytest.fixture
def bare_repo(workspace: Path) -> Path:
    """A git repository with no remote at all."""
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=workspace, check=True)
    return workspace


@pytest.mark.asyncio
async def test_a_push_without_any_remote_says_so(bare_repo: Path, tmp_path: Path, db: Path) -> None:
    policies = write_policy(tmp_path / "git-policies", GIT_POLICY)
    async with Client(build_server(ServerConfig(bare_repo, policies, db))) as client:
        result = await client.call_tool("git_push", {"remote": "origin"})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and "has no remotes" in text and "git remote add" in text
    assert "one of none" not in text
