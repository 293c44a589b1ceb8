"""Who did it: every action and every review names an identity, and a class can require another reviewer.

The identity is the process's own (`$RATCHET_IDENTITY`, else `user@host`): the agent's server records
the actions, the human's CLI (or the server relaying a dialog) the reviews. A class with
`require_other_reviewer = true` runs a draft only on the approval of another identity than the one that
drafted it, whatever edge the approval comes through and whatever the agent puts in its arguments.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from ratchet import identity
from ratchet.engine import Engine
from ratchet.errors import InvalidRequest, OtherReviewerRequired
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.record.store import Location, parse_location

from .helpers import LEVELS_POLICY, Human, console_env, db_rows, write, write_policy

SHARED = """
[classes.shared]
tools = ["write_file", "edit_file"]
paths = ["shared/**"]
start = "draft"
ceiling = "draft"
require_other_reviewer = true
"""


@pytest.fixture
def team_policies(tmp_path: Path) -> Path:
    """LEVELS_POLICY and a class `shared` whose drafts need another person's approval."""
    return write_policy(tmp_path / "team-policies", LEVELS_POLICY + SHARED)


def _cli(
    ratchet_bin: Path, workspace: Path, policies: Path, db: str, who: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """The console script in its own process as `who` (`$RATCHET_IDENTITY`; None: the OS default)."""
    env = {k: v for k, v in console_env().items() if k != identity.ENV}
    if who is not None:
        env[identity.ENV] = who
    argv = [str(ratchet_bin), *args, "--workspace", str(workspace), "--policies", str(policies), "--db", db]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def _agent(workspace: Path, policies: Path, db: str, human: Human | None = None) -> Client:
    """The agent's MCP client on a server in this process (its identity is this process's)."""
    location: Location = parse_location(db)
    return Client(build_server(ServerConfig(workspace, policies, location)), elicitation_callback=human)


def _edit(db: str, sql: str, *params: object) -> None:
    """Change the record by hand, outside Ratchet, and commit it."""
    if db.startswith("postgresql://"):
        assert db_rows(db, sql, *params)
        return
    con = sqlite3.connect(db)
    try:
        with con:
            assert con.execute(sql, params).fetchall()
    finally:
        con.close()


def _one(db: str, sql: str, *params: object) -> tuple[object, ...]:
    found = db_rows(db, sql, *params)
    assert len(found) == 1, found
    return found[0]


# -- who ----------------------------------------------------------------------------------------


def test_the_identity_is_user_at_host_unless_configured_and_a_bad_name_is_refused() -> None:
    default = f"{getpass.getuser()}@{socket.gethostname()}"
    assert identity.current({}) == default
    assert identity.current({identity.ENV: "   "}) == default  # blank is unset
    assert identity.current({identity.ENV: " alice "}) == "alice"
    with pytest.raises(InvalidRequest, match=r"RATCHET_IDENTITY must be one printable line"):
        identity.current({identity.ENV: "alice\nbob"})


@pytest.mark.asyncio
async def test_actions_and_reviews_record_who_on_both_backends(
    backend: str, workspace: Path, team_policies: Path, ratchet_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's server records as user@host by default; each CLI review as its own `$RATCHET_IDENTITY`."""
    monkeypatch.delenv(identity.ENV, raising=False)
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    async with _agent(workspace, team_policies, backend) as client:
        ran = await write(client, "auto/a.txt", "a\n")
        approved = await write(client, "queue/b.txt", "b\n")
        rejected = await write(client, "queue/c.txt", "c\n")
    assert ran["status"] == "executed" and approved["status"] == rejected["status"] == "draft"
    ids = (ran["action_id"], approved["action_id"], rejected["action_id"])

    ok = _cli(ratchet_bin, workspace, team_policies, backend, "bob", "approve", str(ids[1]))
    assert ok.returncode == 0, ok.stderr
    no = _cli(ratchet_bin, workspace, team_policies, backend, "carol", "reject", str(ids[2]), "--reason", "no")
    assert no.returncode == 0, no.stderr

    got = db_rows(backend, "SELECT id, recorded_by, reviewed_by, reviewer FROM actions ORDER BY id")
    assert got == [(ids[0], me, None, None), (ids[1], me, "bob", "cli"), (ids[2], me, "carol", "cli")]
    chained = db_rows(backend, "SELECT action_id, kind, identity FROM reviews ORDER BY id")
    assert chained == [(ids[1], "accept", "bob"), (ids[2], "refuse", "carol")]
    # The identity is part of each review's hash: the chain verifies, and an edited identity breaks it.
    assert _cli(ratchet_bin, workspace, team_policies, backend, None, "verify").returncode == 0
    _edit(backend, "UPDATE reviews SET identity = 'mallory' WHERE action_id = ? RETURNING id", ids[1])
    broken = _cli(ratchet_bin, workspace, team_policies, backend, None, "verify")
    assert broken.returncode == 1 and "edited after it was written" in broken.stdout + broken.stderr


@pytest.mark.asyncio
async def test_show_and_history_say_who_drafted_and_who_reviewed(
    tmp_path: Path, workspace: Path, team_policies: Path, ratchet_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "state" / "ratchet.db")
    monkeypatch.setenv(identity.ENV, "alice")
    async with _agent(workspace, team_policies, db) as client:
        first = (await write(client, "queue/a.txt", "a\n"))["action_id"]
        second = (await write(client, "queue/b.txt", "b\n"))["action_id"]
    assert _cli(ratchet_bin, workspace, team_policies, db, "bob", "approve", str(first)).returncode == 0

    shown = _cli(ratchet_bin, workspace, team_policies, db, None, "show", str(first))
    assert "recorded by: alice" in shown.stdout and "reviewed by bob (cli)" in shown.stdout, shown.stdout
    listed = _cli(ratchet_bin, workspace, team_policies, db, None, "history")
    header, *lines = listed.stdout.splitlines()
    assert "BY" in header and "REVIEWED BY" in header
    assert any(line.split()[0] == str(first) and "alice" in line and "bob" in line for line in lines), listed.stdout
    by_bob = json.loads(
        _cli(ratchet_bin, workspace, team_policies, db, None, "history", "--by", "bob", "--json").stdout
    )
    assert [d["action_id"] for d in by_bob] == [first]
    by_alice = json.loads(
        _cli(ratchet_bin, workspace, team_policies, db, None, "history", "--by", "alice", "--json").stdout
    )
    assert [d["action_id"] for d in by_alice] == [second, first]
    assert by_alice[1]["recorded_by"] == "alice" and by_alice[1]["reviewed_by"] == "bob"


# -- require_other_reviewer ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_drafters_own_approval_is_refused_and_anothers_runs_it_once(
    tmp_path: Path,
    backend: str,
    workspace: Path,
    team_policies: Path,
    ratchet_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(identity.ENV, "alice")
    async with _agent(workspace, team_policies, backend) as client:
        shared = (await write(client, "shared/a.txt", "a\n"))["action_id"]
        dropped = (await write(client, "shared/b.txt", "b\n"))["action_id"]
        own = (await write(client, "queue/c.txt", "c\n"))["action_id"]

    edit = tmp_path / "edit.txt"
    edit.write_text("alice's edit\n")
    for extra in ((), ("--content", str(edit))):
        mine = _cli(ratchet_bin, workspace, team_policies, backend, "alice", "approve", str(shared), *extra)
        assert mine.returncode == 1
        said = mine.stdout + mine.stderr
        assert "class shared" in said and "drafted by alice" in said and "another person must approve" in said
    assert _one(backend, "SELECT status, reviewed_by FROM actions WHERE id = ?", shared) == ("draft", None)
    assert not (workspace / "shared/a.txt").exists()
    assert db_rows(backend, "SELECT count(*) FROM reviews") == [(0,)]

    # A class without the rule: the drafter's own approval runs, as before.
    assert _cli(ratchet_bin, workspace, team_policies, backend, "alice", "approve", str(own)).returncode == 0
    # Refusing one's own agent's draft is always allowed.
    no = _cli(ratchet_bin, workspace, team_policies, backend, "alice", "reject", str(dropped), "--reason", "not now")
    assert no.returncode == 0, no.stderr

    theirs = _cli(ratchet_bin, workspace, team_policies, backend, "bob", "approve", str(shared))
    assert theirs.returncode == 0, theirs.stderr
    again = _cli(ratchet_bin, workspace, team_policies, backend, "carol", "approve", str(shared))
    assert again.returncode == 1 and "not a queued draft" in again.stdout + again.stderr
    assert (workspace / "shared/a.txt").read_text() == "a\n"
    assert _one(backend, "SELECT status, recorded_by, reviewed_by FROM actions WHERE id = ?", shared) == (
        "executed",
        "alice",
        "bob",
    )
    assert db_rows(backend, "SELECT count(*) FROM reviews WHERE action_id = ? AND kind = 'accept'", shared) == [(1,)]
    assert _one(backend, "SELECT status, reviewed_by FROM actions WHERE id = ?", dropped) == ("rejected", "alice")


@pytest.mark.asyncio
async def test_an_in_dialog_approval_by_the_drafter_is_refused_and_waits_for_another_person(
    tmp_path: Path, workspace: Path, team_policies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's dialog answers as the agent's own identity: the draft stays queued for someone else."""
    db = str(tmp_path / "state" / "ratchet.db")
    monkeypatch.setenv(identity.ENV, "alice")
    async with _agent(workspace, team_policies, db) as client:
        shared = (await write(client, "shared/a.txt", "a\n"))["action_id"]
    human = Human(approve=True)
    async with _agent(workspace, team_policies, db, human) as client:
        review = (await client.call_tool("review_drafts", {})).structured_content
    assert len(human.seen) == 1  # it was offered, and the human said approve
    [answered] = review["reviewed"]
    assert answered["status"] == "draft" and "another person must approve" in answered["error"]
    assert review["remaining"] == 1 and not (workspace / "shared/a.txt").exists()

    # Another person's engine (their identity, their process) approves it: it runs once.
    async with await Engine.open(workspace, policies=team_policies, db=parse_location(db), session=False) as engine:
        with pytest.raises(OtherReviewerRequired, match="drafted by alice"):
            await engine.approve(shared)
        other = Engine(dataclasses.replace(engine.setting, identity="bob"))
        view = await other.approve(shared)
    assert view.status == "executed" and view.reviewed_by == "bob" and view.recorded_by == "alice"
    assert (workspace / "shared/a.txt").read_text() == "a\n"


@pytest.mark.asyncio
async def test_an_identity_in_the_agents_arguments_changes_nothing(
    tmp_path: Path, workspace: Path, team_policies: Path, ratchet_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "state" / "ratchet.db")
    monkeypatch.setenv(identity.ENV, "alice")
    smuggled = {"identity": "bob", "reviewer": "bob", "recorded_by": "bob", "reviewed_by": "bob", "as": "bob"}
    human = Human(approve=True)
    async with _agent(workspace, team_policies, db, human) as client:
        tried = await client.call_tool("write_file", {"path": "shared/a.txt", "content": "a\n", **smuggled})
        if tried.structured_content is None or tried.structured_content.get("status") != "draft":
            tried = await client.call_tool("write_file", {"path": "shared/a.txt", "content": "a\n"})
        assert tried.structured_content is not None
        shared = tried.structured_content["action_id"]
        await client.call_tool("review_drafts", smuggled)
        await client.call_tool("get_draft", {"draft_id": shared, **smuggled})
    assert len(human.seen) == 1
    assert db_rows(db, "SELECT status, recorded_by, reviewed_by FROM actions") == [("draft", "alice", None)]
    assert not (workspace / "shared/a.txt").exists()
    # And the drafter's terminal is still not another person.
    mine = _cli(ratchet_bin, workspace, team_policies, db, "alice", "approve", str(shared))
    assert mine.returncode == 1 and "another person must approve" in mine.stdout + mine.stderr
    assert db_rows(db, "SELECT count(*) FROM reviews") == [(0,)]
