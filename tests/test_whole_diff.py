"""A draft whose diff is over the display limit (2,000 lines or 200 KB) is cut in every preview, yet
approving runs all of it. So it is approved only by someone who had the whole of it: `ratchet show ID
--full` prints it whole with a digest, `ratchet approve ID --whole DIGEST` approves exactly that (on a
terminal `approve` shows it whole and asks), `--content` approves the person's own version, and the
review page loads the whole diff before its Approve button works (test_web_browser.py)."""

from __future__ import annotations

import json
import os
import pty
import re
from pathlib import Path

import pytest

from .helpers import WEB_POLICY, Human, agent, connect, console, draft, rows, write_policy

LONG = "".join(f"line {i}\n" for i in range(5000))


@pytest.fixture
def web_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "web-policies", WEB_POLICY)


async def long_draft(workspace: Path, policies: Path, db: Path, name: str = "queue/long.txt") -> int:
    async with agent(workspace, policies, db) as client:
        return await draft(client, name, LONG)


@pytest.mark.asyncio
async def test_a_cut_diff_is_approved_only_with_the_digest_of_its_whole(
    ratchet_bin: Path, workspace: Path, web_policies: Path, db: Path
) -> None:
    n = await long_draft(workspace, web_policies, db)
    assert rows(db, "SELECT hidden_lines FROM actions WHERE id = ?", n)[0][0] > 2000
    shown = console(ratchet_bin, workspace, web_policies, db, "show", str(n))
    assert "[diff truncated:" in shown.stdout and "+line 4999" not in shown.stdout
    # Approving what nobody saw whole is refused, saying why and what to do; nothing runs, it stays queued.
    refused = console(ratchet_bin, workspace, web_policies, db, "approve", str(n))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "never shown" in refused.stderr and f"ratchet show {n} --full" in refused.stderr
    assert "--content FILE" in refused.stderr and f"ratchet approve {n} --whole DIGEST" in refused.stderr
    assert not (workspace / "queue/long.txt").exists()
    assert rows(db, "SELECT status FROM actions WHERE id = ?", n)[0][0] == "draft"
    # `show --full` has every line and the digest that approves exactly it.
    full = console(ratchet_bin, workspace, web_policies, db, "show", str(n), "--full")
    assert full.returncode == 0, full.stderr
    assert "+line 0\n" in full.stdout and "+line 4999\n" in full.stdout and "[diff truncated:" not in full.stdout
    digest = re.search(r"--whole ([0-9a-f]{16})`", full.stdout)
    assert digest is not None, full.stdout[-500:]
    as_json = json.loads(console(ratchet_bin, workspace, web_policies, db, "show", str(n), "--full", "--json").stdout)
    assert as_json["whole"]["digest"] == digest[1] and as_json["whole"]["lines"] == 5003
    wrong = console(ratchet_bin, workspace, web_policies, db, "approve", str(n), "--whole", "0123456789abcdef")
    assert wrong.returncode == 1 and "not the digest of its whole diff" in wrong.stderr
    done = console(ratchet_bin, workspace, web_policies, db, "approve", str(n), "--whole", digest[1])
    assert done.returncode == 0 and done.stdout == f"draft {n}: executed\n", done.stderr
    assert (workspace / "queue/long.txt").read_text() == LONG


@pytest.mark.asyncio
async def test_on_a_terminal_approve_shows_the_whole_diff_and_asks(
    ratchet_bin: Path, workspace: Path, web_policies: Path, db: Path
) -> None:
    n = await long_draft(workspace, web_policies, db)
    primary, secondary = pty.openpty()
    os.write(primary, b"y\n")  # the answer, typed ahead
    try:
        done = console(ratchet_bin, workspace, web_policies, db, "approve", str(n), stdin=secondary, input=None)
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 0, done.stderr
    assert "+line 4999" in done.stdout and "above is its whole diff, 5003 lines. Approve exactly this?" in done.stderr
    assert done.stdout.endswith(f"draft {n}: executed\n")
    assert (workspace / "queue/long.txt").read_text() == LONG


@pytest.mark.asyncio
async def test_content_approves_the_persons_own_version_and_a_changed_file_is_stale(
    tmp_path: Path, ratchet_bin: Path, workspace: Path, web_policies: Path, db: Path
) -> None:
    own, changed = (
        await long_draft(workspace, web_policies, db),
        await long_draft(workspace, web_policies, db, "queue/other.txt"),
    )
    mine = tmp_path / "mine.txt"
    mine.write_text("short and read\n")
    done = console(ratchet_bin, workspace, web_policies, db, "approve", str(own), "--content", str(mine))
    assert done.returncode == 0, done.stderr
    assert (workspace / "queue/long.txt").read_text() == "short and read\n"
    full = console(ratchet_bin, workspace, web_policies, db, "show", str(changed), "--full")
    digest = re.search(r"--whole ([0-9a-f]{16})`", full.stdout)
    assert digest is not None
    (workspace / "queue/other.txt").write_text("someone else's\n")
    stale = console(ratchet_bin, workspace, web_policies, db, "approve", str(changed), "--whole", digest[1])
    assert stale.returncode == 1 and "changed since it was drafted" in stale.stderr
    assert (workspace / "queue/other.txt").read_text() == "someone else's\n"


@pytest.mark.asyncio
async def test_the_chat_does_not_offer_a_cut_diff_and_says_where_to_read_it_whole(
    workspace: Path, web_policies: Path, db: Path
) -> None:
    n = await long_draft(workspace, web_policies, db)
    async with agent(workspace, web_policies, db) as client:
        short = await draft(client, "queue/short.txt", "short\n")
    human = Human(approve=True)
    async with connect(workspace, web_policies, db, human=human) as client:
        result = await client.call_tool("review_drafts", {})
    out = result.structured_content
    assert out is not None and [r["action_id"] for r in out["reviewed"]] == [short] and len(human.seen) == 1
    assert f"draft {n}: its diff is too long to show whole here: `ratchet show {n} --full`" in out["message"]
    assert not (workspace / "queue/long.txt").exists()
