"""The draft caps: an agent cannot flood the person. Past `max_drafts_per_session` (or
`max_drafts_per_workspace`) drafts waiting, a call is refused and not queued, the agent is told to stop
and hand off, the person is notified once per flood, and `ratchet queue`, `ratchet approve --class` /
`reject --class` and the review page clear a flood with one decision per class."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.errors import PolicyError
from ratchet.policy.load import load_policy
from ratchet.record.store import parse_location

from .helpers import agent_results, connect, console, db_rows, rows, write_policy

CLASSES = ("docs", "src", "tests")


def flood_policy(log: Path, extra: str = "") -> str:
    return f"""
[defaults]
unmatched = "draft"
notify = ["sh", "-c", "cat > \\"$(mktemp \\"$0/n.XXXXXX\\")\\"", "{log}"]
{extra}
""" + "".join(
        f'\n[classes.{name}]\ntools = ["write_file", "edit_file"]\npaths = ["{name}/**"]\nstart = "draft"\n'
        for name in CLASSES
    )


def notices(log: Path, settle_s: float = 3.0) -> list[dict[str, Any]]:
    """The notify command's payloads, one file each (its runs are detached: wait until no more arrive)."""
    deadline, last = time.monotonic() + settle_s, -1
    while time.monotonic() < deadline:
        count = len(list(log.iterdir()))
        if count == last and count:
            break
        last = count
        time.sleep(0.5)
    return [json.loads(p.read_text()) for p in sorted(log.iterdir()) if p.read_text().strip()]


def flood_notices(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [p for p in payloads if p.get("status") == "draft-cap"]
    for p in payloads:  # a notice held by the rate limit would ride in a coalesced run: it must not
        found += [e for e in p.get("events", []) if e.get("status") == "draft-cap"]
    return found


async def flood(client: Client, n: int, session_tag: str = "") -> tuple[list[int], list[str]]:
    """`n` writes, one class after another in turn; the draft ids queued and the errors the agent read."""
    drafted, refused = [], []
    for i in range(n):
        result = await client.call_tool(
            "write_file", {"path": f"{CLASSES[i % 3]}/f{session_tag}{i}.txt", "content": f"{i}\n"}
        )
        if result.is_error:
            refused.append(result.content[0].text)  # type: ignore[union-attr]
        else:
            assert result.structured_content is not None
            drafted.append(result.structured_content["draft_id"])
    return drafted, refused


@pytest.mark.asyncio
async def test_1500_drafts_from_one_session_the_cap_holds_the_agent_is_told_and_the_person_notified_once(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path
) -> None:
    log = tmp_path / "notify"
    log.mkdir()
    policies = write_policy(tmp_path / "policies", flood_policy(log))
    started = time.monotonic()
    async with connect(workspace, policies, db) as client:
        drafted, refused = await flood(client, 1500)
    took = time.monotonic() - started
    assert len(drafted) == 50 and len(refused) == 1450, took
    first = refused[0]
    assert "draft cap reached: 50 drafts of this session already wait for a human" in first
    assert "max_drafts_per_session = 50" in first and "request_handoff" in first and "nothing was changed" in first
    waiting = rows(db, "SELECT count(*) FROM actions WHERE status = 'draft'")[0][0]
    capped = rows(
        db, "SELECT count(*), min(status), max(status), max(length(preview)) FROM actions WHERE route = ?", "draft-cap"
    )
    assert waiting == 50 and tuple(capped[0]) == (1450, "refused", "refused", 0)
    assert not any((workspace / c).exists() for c in CLASSES)  # nothing written, by drafts or refusals
    # One notice for the flood, at once (never held by the notify rate limit), with what waits per class.
    found = flood_notices(notices(log))
    assert len(found) == 1, found
    assert found[0]["waiting"] == 50 and found[0]["classes"] == {"docs": 17, "src": 17, "tests": 16}
    assert "ratchet approve --class" in found[0]["message"]

    # `ratchet queue` groups the flood by class: one line per class saying how to answer it whole.
    shown = console(ratchet_bin, workspace, policies, db, "queue")
    assert shown.returncode == 0, shown.stderr
    for name, n in (("docs", 17), ("src", 17), ("tests", 16)):
        assert f"{name}: {n} drafts waiting" in shown.stdout
        assert f"ratchet approve --class {name}" in shown.stdout and f"ratchet reject --class {name}" in shown.stdout
    assert len(shown.stdout.splitlines()) < 40, shown.stdout  # not fifty rows: a screen
    inbox = console(ratchet_bin, workspace, policies, db, "inbox")
    assert len(inbox.stdout.splitlines()) < 20, inbox.stdout
    assert "... and 14 more drafts of docs (`ratchet queue --class docs` lists them" in inbox.stdout

    # One decision per class clears it: approve one class, reject another (the reason kept with each).
    approved = console(ratchet_bin, workspace, policies, db, "approve", "--class", "docs", "--yes")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.count(": executed") == 17
    assert "not evidence" in approved.stdout and "by class" in approved.stdout
    rejected = console(ratchet_bin, workspace, policies, db, "reject", "--class", "src", "--yes", "--reason", "flood")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.count(": rejected") == 17
    assert len(list((workspace / "docs").iterdir())) == 17 and not (workspace / "src").exists()
    # A bulk approval runs each draft but is no per-draft evidence of reading; a bulk rejection counts.
    docs = rows(db, "SELECT evidence, review_channel, sample FROM actions WHERE class = 'docs' AND status = 'executed'")
    assert {tuple(r) for r in docs} == {("unverified", "bulk", None)}
    src = rows(db, "SELECT evidence, review_channel, sample FROM actions WHERE class = 'src' AND status = 'rejected'")
    assert {tuple(r) for r in src} == {("counted", "bulk", "failure")}
    left = console(ratchet_bin, workspace, policies, db, "queue", "--json")
    assert {d["action_class"] for d in json.loads(left.stdout)} == {"tests"}


@pytest.mark.asyncio
async def test_a_flood_notice_is_sent_again_only_once_its_drafts_were_answered(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path
) -> None:
    log = tmp_path / "notify"
    log.mkdir()
    policies = write_policy(tmp_path / "policies", flood_policy(log, "[defaults.limits]\nmax_drafts_per_session = 3"))
    async with connect(workspace, policies, db) as client:
        drafted, refused = await flood(client, 6)
        assert (len(drafted), len(refused)) == (3, 3)
        # One answered, one place free: the next draft is queued, the one after refused without a second notice.
        assert console(ratchet_bin, workspace, policies, db, "approve", str(drafted[0])).returncode == 0
        more, refused_more = await flood(client, 2, "b")
        assert (len(more), len(refused_more)) == (1, 1)
        assert len(flood_notices(notices(log))) == 1
        # Every draft that waited at the notice answered: a new flood is noticed again.
        for d in [*drafted[1:], *more]:
            assert console(ratchet_bin, workspace, policies, db, "reject", str(d), "--reason", "no").returncode == 0
        again, refused_again = await flood(client, 4, "c")
        assert (len(again), len(refused_again)) == (3, 1)
    assert len(flood_notices(notices(log))) == 2


@pytest.mark.asyncio
async def test_the_workspace_cap_holds_across_sessions(tmp_path: Path, workspace: Path, db: Path) -> None:
    log = tmp_path / "notify"
    log.mkdir()
    limits = "[defaults.limits]\nmax_drafts_per_session = 3\nmax_drafts_per_workspace = 5"
    policies = write_policy(tmp_path / "policies", flood_policy(log, limits))
    async with connect(workspace, policies, db) as one:
        first, _ = await flood(one, 3, "a")
    async with connect(workspace, policies, db) as two:
        second, refused = await flood(two, 3, "b")
    assert (len(first), len(second)) == (3, 2)
    assert "drafts of workspace" in refused[0] and "max_drafts_per_workspace = 5" in refused[0]
    assert rows(db, "SELECT count(*) FROM actions WHERE status = 'draft'")[0][0] == 5


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ("max_drafts_per_session = 0", "max_drafts_per_session"),
        ("max_drafts_per_workspace = -1", "max_drafts_per_workspace"),
        ("max_drafts_per_session = 300", "exceeds max_drafts_per_workspace"),
        ('max_drafts_per_session = "many"', "max_drafts_per_session"),
    ],
)
def test_a_broken_cap_fails_the_policy_at_load(tmp_path: Path, limits: str, expected: str) -> None:
    policies = write_policy(tmp_path / "p", flood_policy(tmp_path / "log", f"[defaults.limits]\n{limits}"))
    with pytest.raises(PolicyError) as caught:
        load_policy(policies)
    assert expected in str(caught.value) and "policy.toml" in str(caught.value)


def test_the_caps_default_to_50_per_session_and_200_per_workspace(tmp_path: Path) -> None:
    limits = load_policy(write_policy(tmp_path / "p", flood_policy(tmp_path / "log"))).defaults.limits
    assert (limits.max_drafts_per_session, limits.max_drafts_per_workspace) == (50, 200)


def test_a_class_approved_whole_is_not_promoted_by_it_while_approvals_one_by_one_promote(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path
) -> None:
    """The reading-time rule kept honest: one decision for six drafts is not six readings. The same six
    approved one by one (each the person's own command) promote the class, as the control."""
    quick = "[defaults]\nwindow_size = 10\nmin_samples = 3\npromote_at = 0.4\ndemote_below = 0.2\n"
    policies = write_policy(tmp_path / "policies", flood_policy(tmp_path / "log").replace("[defaults]\n", quick))

    def docs_drafts(tag: str) -> list[int]:
        calls = [("write_file", {"path": f"docs/{tag}{i}.md", "content": f"{i}\n"}) for i in range(6)]
        return [r["draft_id"] for r in anyio.run(agent_results, workspace, policies, db, *calls)]

    def docs_standing() -> dict[str, Any]:
        out = console(ratchet_bin, workspace, policies, db, "status", "--json").stdout
        return next(c for c in json.loads(out)["classes"] if c["action_class"] == "docs")

    docs_drafts("f")
    assert console(ratchet_bin, workspace, policies, db, "approve", "--class", "docs", "--yes").returncode == 0
    whole = docs_standing()
    assert (whole["level"], whole["samples"], whole["unverified"]) == ("draft", 0, 6)
    assert rows(db, "SELECT count(*) FROM transitions WHERE class = 'docs'")[0][0] == 0
    for i in docs_drafts("g"):
        assert console(ratchet_bin, workspace, policies, db, "approve", str(i)).returncode == 0
    assert docs_standing()["level"] != "draft"  # promoted (a rung or more) by six readings


@pytest.mark.asyncio
async def test_the_cap_holds_on_both_backends(tmp_path: Path, workspace: Path, backend: str) -> None:
    policies = write_policy(
        tmp_path / "policies", flood_policy(tmp_path / "log", "[defaults.limits]\nmax_drafts_per_session = 4")
    )
    async with connect(workspace, policies, parse_location(backend)) as client:  # type: ignore[arg-type]
        drafted, refused = await flood(client, 10)
    assert (len(drafted), len(refused)) == (4, 6) and "max_drafts_per_session = 4" in refused[-1]
    assert db_rows(backend, "SELECT count(*) FROM actions WHERE status = 'draft'")[0][0] == 4
    assert db_rows(backend, "SELECT count(*) FROM actions WHERE route = 'draft-cap' AND status = 'refused'")[0][0] == 6


def test_claude_codes_own_writes_are_held_to_the_cap_too(
    tmp_path: Path, workspace: Path, db: Path, ratchet_bin: Path
) -> None:
    policies = write_policy(
        tmp_path / "policies", flood_policy(tmp_path / "log", "[defaults.limits]\nmax_drafts_per_session = 2")
    )
    answers = []
    for i in range(4):
        event = {
            "session_id": "claude-1",
            "transcript_path": str(tmp_path / "t.jsonl"),
            "cwd": str(workspace),
            "hook_event_name": "PreToolUse",
            "tool_name": "Write",
            "tool_input": {"file_path": str(workspace / "docs" / f"n{i}.md"), "content": "x\n"},
            "tool_use_id": f"toolu_{i}",
        }
        argv = [str(ratchet_bin), "hook", "claude-code", "--workspace", str(workspace), "--policies", str(policies)]
        done = subprocess.run(
            [*argv, "--db", str(db)], input=json.dumps(event), capture_output=True, text=True, timeout=60, check=True
        )
        answers.append(json.loads(done.stdout)["hookSpecificOutput"])
    assert [a["permissionDecision"] for a in answers] == ["deny"] * 4  # a draft is a deny naming it, too
    assert "queued this as draft" in answers[1]["permissionDecisionReason"]
    assert "draft cap reached: 2 drafts of this session" in answers[2]["permissionDecisionReason"]
    assert "request_handoff" in answers[3]["permissionDecisionReason"]
    assert rows(db, "SELECT count(*) FROM actions WHERE status = 'draft'")[0][0] == 2
