"""Database roles on a shared PostgreSQL record (record/roles.py): the agent side cannot vouch for itself.

The agent's server runs with the agent role's credentials, which code running as the agent's user can
read. These tests connect with those credentials as an attacker would, with plain psycopg, and try
every way to raise trust or forge a human's decision: the database must refuse each. The reviewer
role must be able to do the same things. Then the whole team flow runs with the roles in place: real
`ratchet serve` processes as the agents, real `ratchet` CLI processes as the reviewer.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import mcp.types as types
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet.engine.origin import HOST_ENV
from ratchet.errors import InvalidRequest
from ratchet.record import actions, chain, roles
from ratchet.record.lifecycle import Status
from ratchet.record.store import PostgresUrl, Store

from .helpers import (
    Claude,
    PgCluster,
    console_env,
    db_rows,
    draft,
    intent_row,
    ratchet_argv,
    require_module,
    stdio_params,
)

psycopg = require_module("psycopg", "pip install -e '.[dev]'")

pytestmark = pytest.mark.asyncio

REFUSED = "42501"  # insufficient_privilege: a missing grant, or a guard's refusal


def as_user(url: str, user: str) -> str:
    """The same database, connecting as `user` (the test cluster trusts loopback)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}"))


@dataclass
class Team:
    owner: str  # the database owner's URL (migrations, `db roles`)
    agent: str  # a login role in the agent group: what an agent's server is given
    reviewer: str  # a login role in the reviewer group: a human's CLI
    groups: tuple[str, str]
    workspace: Path
    policies: Path
    ratchet_bin: Path

    def cli(self, host: str, workspace: Path, db: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """`ratchet ...` run as a person on machine `host`, in `workspace`, with the credentials `db`."""
        full = ratchet_argv(self.ratchet_bin, workspace, self.policies, Path("x"), *argv)
        full[full.index("--db") + 1] = db
        return subprocess.run(
            full, env=console_env(**{HOST_ENV: host}), capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture
def team(pg_url: str, workspace: Path, policies: Path, ratchet_bin: Path) -> Iterator[Team]:
    """A record set up as a team would: opened once by its owner, `ratchet db roles`, one login role each."""
    tag = uuid.uuid4().hex[:8]  # roles are the cluster's, shared by every test's database
    groups = (f"agents_{tag}", f"reviewers_{tag}")
    t = Team(pg_url, "", "", groups, workspace, policies, ratchet_bin)
    done = t.cli("a", workspace, pg_url, "status")  # creates the schema and every class's standing
    assert done.returncode == 0, done.stderr
    person = f"--person=team_{tag}=agent_{tag},human_{tag}"  # one person's agent login and own login
    done = t.cli("a", workspace, pg_url, "db", "roles", "--agent", groups[0], "--reviewer", groups[1], person)
    assert done.returncode == 0, done.stderr
    assert f"agent    {groups[0]}" in done.stdout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE agent_{tag} LOGIN IN ROLE {groups[0]}")
        conn.execute(f"CREATE ROLE human_{tag} LOGIN IN ROLE {groups[1]}")
    t.agent, t.reviewer = as_user(pg_url, f"agent_{tag}"), as_user(pg_url, f"human_{tag}")
    checked = t.cli("a", workspace, pg_url, "db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"roles: agent role {groups[0]}, reviewer role {groups[1]}; guards on" in checked.stdout
    yield t
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for role in (f"agent_{tag}", f"human_{tag}"):
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


async def queued_draft(url: str) -> int:
    """A draft of class `climb` (start draft, may climb), recorded through Ratchet's own record layer."""
    store = await Store.open(PostgresUrl(url))
    try:
        return await store.run(
            lambda conn: actions.insert_intent(conn, intent_row(Status.DRAFT, "climb/x.txt", action_class="climb"))
        )
    finally:
        await store.close()


async def on(url: str, fn: Any, write: bool = False) -> Any:
    """`fn(connection)` through Ratchet's own record layer, connected as `url`'s login."""
    store = await Store.open(PostgresUrl(url))
    try:
        return await (store.run(fn) if write else store.call(fn))
    finally:
        await store.close()


@pytest_asyncio.fixture
async def in_process(pg_url: str, workspace: Path, policies: Path, ratchet_bin: Path) -> AsyncIterator[Team]:
    """The same team as `team`, set up in this process (`roles.install` called as `db roles` calls it): no
    CLI process, so a test of the roles' own functions starts in a second."""
    tag = uuid.uuid4().hex[:8]
    groups = (f"agents_{tag}", f"reviewers_{tag}")
    people = {f"agent_{tag}": f"team_{tag}", f"human_{tag}": f"team_{tag}"}
    done = await on(pg_url, lambda c: roles.install(c, *groups, people), write=True)
    assert (done.agent, done.reviewer, done.created, done.people) == (*groups, groups, people)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE agent_{tag} LOGIN IN ROLE {groups[0]}")
        conn.execute(f"CREATE ROLE human_{tag} LOGIN IN ROLE {groups[1]}")
    yield Team(
        pg_url,
        as_user(pg_url, f"agent_{tag}"),
        as_user(pg_url, f"human_{tag}"),
        groups,
        workspace,
        policies,
        ratchet_bin,
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for role in (f"agent_{tag}", f"human_{tag}"):
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def tag_of(team: Team) -> str:
    return team.groups[0].removeprefix("agents_")


async def test_each_login_is_told_whether_it_may_review_and_whose_it_is(
    in_process: Team, pg_cluster: PgCluster
) -> None:
    team = in_process
    """What the engine asks of its connection (in process, no server): the agent's login may not record a
    human's answer and acts for its person; the reviewer's and the owner's may."""
    tag = tag_of(team)
    for url, may, who in ((team.agent, False, f"team_{tag}"), (team.reviewer, True, f"team_{tag}")):
        assert await on(url, roles.may_review) is may, url
        assert await on(url, roles.person) == who, url
    owner = urlsplit(team.owner).username
    assert await on(team.owner, roles.may_review) is True
    assert await on(team.owner, roles.person) == owner  # a login no person names is its own person
    # A record without roles: nobody's person, and db check says so (sound: nothing is broken).
    bare = pg_cluster.create_database()
    assert await on(bare, roles.person) is None
    assert await on(bare, roles.state) == (
        "not set up (ratchet db roles): any login that can connect may write anything",
        True,
    )


async def test_install_and_state_in_process(in_process: Team) -> None:
    team = in_process
    """`roles.install` run again by the owner (as after an upgrade) and `roles.state` as `db check` reads it."""
    tag, (agents, reviewers) = tag_of(team), team.groups
    sound = f"agent role {agents}, reviewer role {reviewers}; guards on {', '.join(roles.GUARDED)}"
    assert await on(team.owner, roles.state) == (sound, True)
    assert await on(team.owner, roles.stale_functions) == []
    people = {f"agent_{tag}": f"team_{tag}", f"human_{tag}": f"team_{tag}"}
    again = await on(team.owner, lambda c: roles.install(c, agents, reviewers), write=True)  # people kept
    assert again == roles.Installed(agents, reviewers, "public", (), roles.AGENT_WRITES, people)
    with pytest.raises(dataclasses.FrozenInstanceError):  # what `db roles` reports cannot be changed after
        again.agent = reviewers  # type: ignore[misc]
    with pytest.raises(InvalidRequest, match="the agent and reviewer roles must differ"):
        await on(team.owner, lambda c: roles.install(c, reviewers, reviewers), write=True)
    with pytest.raises(InvalidRequest, match="agent role name 'Agents' is not usable"):
        await on(team.owner, lambda c: roles.install(c, "Agents", reviewers), write=True)
    with pytest.raises(InvalidRequest, match="reviewer role name 'x-y' is not usable"):
        await on(team.owner, lambda c: roles.install(c, agents, "x-y"), write=True)
    # A new agent group is created (NOLOGIN) and named; a people list given replaces the old one.
    newer = f"agents2_{tag}"
    moved = await on(team.owner, lambda c: roles.install(c, newer, reviewers, {f"agent_{tag}": "x"}), write=True)
    assert (moved.agent, moved.created, moved.people) == (newer, (newer,), {f"agent_{tag}": "x"})
    assert db_rows(team.owner, "SELECT rolcanlogin FROM pg_roles WHERE rolname = ?", newer) == [(False,)]
    state = await on(team.owner, roles.state)
    assert state == (f"agent role {newer}, reviewer role {reviewers}; guards on {', '.join(roles.GUARDED)}", True)
    # The new agent group holds the agent's writes and none of the reviewer's; the reviewer group every table's.
    granted = dict(
        db_rows(
            team.owner,
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) FROM "
            "information_schema.role_table_grants WHERE grantee = ? GROUP BY table_name",
            newer,
        )
    )
    assert "INSERT" not in granted["reviews"] and "DELETE" not in granted["actions"], granted
    assert granted["class_state"] == "INSERT,SELECT,UPDATE" and granted["transitions"] == "INSERT,SELECT", granted
    reviewer_grants = dict(
        db_rows(
            team.owner,
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) FROM "
            "information_schema.role_table_grants WHERE grantee = ? GROUP BY table_name",
            reviewers,
        )
    )
    assert reviewer_grants["reviews"] == "DELETE,INSERT,SELECT,UPDATE", reviewer_grants
    assert reviewer_grants["ratchet_roles"] == "SELECT" and reviewer_grants["schema_version"] == "SELECT"
    # A guard switched off, a guard function out of date and a table never granted are named: unsound.
    with psycopg.connect(team.owner, autocommit=True) as conn:
        conn.execute("ALTER TABLE checks DISABLE TRIGGER ratchet_guard")
        conn.execute(
            "CREATE OR REPLACE FUNCTION ratchet_rank(level text) RETURNS integer LANGUAGE sql "
            "SET search_path = public, pg_temp AS $$ SELECT 0 $$"
        )
        conn.execute("CREATE TABLE later_table (x int)")  # as a migration after `db roles` would
    assert await on(team.owner, roles.stale_functions) == [("ratchet_rank", "out of date")]
    assert await on(team.owner, roles.state) == (
        f"agent role {newer}, reviewer role {reviewers}: no guard on checks; guard ratchet_rank out of date; "
        "later_table not granted; run ratchet db roles again as the owner",
        False,
    )


# What code holding the agent's credentials would try, each on its own: every one must be refused.
ATTEMPTS: list[tuple[str, str]] = [
    ("insert a review", "INSERT INTO reviews (action_id, at, kind, actor) VALUES ({draft}, 0, 'accept', 'cli')"),
    ("raise a class level", "UPDATE class_state SET level = 'autonomous' WHERE name = 'climb'"),
    ("pin a class", "UPDATE class_state SET pinned = 'autonomous' WHERE name = 'climb'"),
    ("raise a policy start", "UPDATE class_state SET policy_start = 'autonomous' WHERE name = 'climb'"),
    ("forge a full window", "UPDATE class_state SET window_json = '[[1,1],[2,1],[3,1]]' WHERE name = 'climb'"),
    (
        "record a promotion",
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('climb', 0, 'draft', 'confirm', 'promote', 'ratchet', 'forged', '{{}}')",
    ),
    (
        "record a pin",
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('climb', 0, 'draft', 'draft', 'pin', 'human', 'forged', '{{}}')",
    ),
    (
        "lift a freeze",
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('*', 0, 'blocked', 'blocked', 'unfreeze', 'human', 'forged', '{{}}')",
    ),
    ("forge a success sample", "INSERT INTO samples (class, action_id, ok, epoch) VALUES ('climb', {draft}, 1, 0)"),
    ("approve a draft", "UPDATE actions SET status = 'approved', approval_json = '{{}}' WHERE id = {draft}"),
    ("claim a draft to run it", "UPDATE actions SET status = 'approving' WHERE id = {draft}"),
    ("sign a review onto an action", "UPDATE actions SET reviewed_by = 'lead@b', reviewer = 'cli' WHERE id = {draft}"),
    ("answer an escalation", "UPDATE actions SET resolution = 'go', resolved_at = 1 WHERE id = {draft}"),
    (
        "insert an approved copy",
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "class_level, level, route, triggers_json, status, pid, approval_json) SELECT session_id, created_at, "
        "tool, target, class, rule, policy, args_json, preview, class_level, level, route, triggers_json, "
        "'approved', pid, '{{}}' FROM actions WHERE id = {draft}",
    ),
    ("delete a transition", "DELETE FROM transitions"),
    ("delete a review", "DELETE FROM reviews"),
    ("rewrite the role table", "UPDATE ratchet_roles SET agent = 'nobody'"),
    ("switch a guard off", "ALTER TABLE class_state DISABLE TRIGGER ratchet_guard"),
    (
        "replace a guard",
        "CREATE OR REPLACE FUNCTION ratchet_agent_side() RETURNS boolean LANGUAGE sql AS $$ SELECT false $$",
    ),
    ("create a table beside the record", "CREATE TABLE public.shadow (x int)"),
    # Each alone, so that no other refusal stands in for the one tried.
    ("write an approval onto a draft", "UPDATE actions SET approval_json = '{{}}' WHERE id = {draft}"),
    (
        "record a demotion that raises",
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('climb', 0, 'draft', 'autonomous', 'demote', 'ratchet', 'forged', '{{}}')",
    ),
    (
        "insert a copy born approved",
        "INSERT INTO actions (session_id, created_at, tool, target, class, rule, policy, args_json, preview, "
        "class_level, level, route, triggers_json, status, pid) SELECT session_id, created_at, tool, target, class, "
        "rule, policy, args_json, preview, class_level, level, route, triggers_json, 'approved', pid "
        "FROM actions WHERE id = {draft}",
    ),
]


async def test_the_agent_role_cannot_forge_trust_and_the_reviewer_role_can(team: Team) -> None:
    draft_id = await queued_draft(team.owner)
    refused: dict[str, str] = {}
    with psycopg.connect(team.agent, autocommit=True) as conn:
        for what, sql in ATTEMPTS:
            try:
                conn.execute(sql.format(draft=draft_id).replace("%", "%%"))
            except psycopg.Error as exc:
                refused[what] = str(exc.sqlstate)
            else:
                refused[what] = "ALLOWED"
        # A temporary table named like the record's cannot stand in for it inside the guards.
        conn.execute("CREATE TEMP TABLE class_state (name text, level text)")
        conn.execute("INSERT INTO class_state VALUES ('climb', 'autonomous')")
        try:
            conn.execute(
                "INSERT INTO public.samples (class, action_id, ok, epoch) VALUES ('climb', %s, 1, 0)", (draft_id,)
            )
        except psycopg.Error as exc:
            refused["forge a sample behind a temporary table"] = str(exc.sqlstate)
        else:
            refused["forge a sample behind a temporary table"] = "ALLOWED"
        with pytest.raises(psycopg.Error, match="cannot raise class climb from draft to autonomous"):
            conn.execute("UPDATE public.class_state SET level = 'autonomous' WHERE name = 'climb'")
    assert refused == {what: REFUSED for what in refused}, refused
    assert len(refused) == len(ATTEMPTS) + 1
    # Nothing of it landed.
    assert db_rows(team.owner, "SELECT status, reviewed_by FROM actions WHERE id = ?", draft_id) == [("draft", None)]
    assert db_rows(team.owner, "SELECT count(*) FROM reviews") == [(0,)]
    assert db_rows(team.owner, "SELECT level, pinned FROM class_state WHERE name = 'climb'") == [("draft", None)]

    # What only lowers trust, or records a call, the agent may write: the guard is not a blanket refusal.
    with psycopg.connect(team.agent, autocommit=True) as conn:
        conn.execute("INSERT INTO samples (class, action_id, ok, epoch) VALUES ('climb', %s, 0, 0)", (draft_id,))
        conn.execute("UPDATE actions SET status = 'rejected' WHERE id = %s", (draft_id,))  # a lifecycle move
        conn.execute(
            "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
            "VALUES ('auto', 0, 'autonomous', 'confirm', 'demote', 'ratchet', 'two failures', '{}')"
        )
        conn.execute("UPDATE class_state SET level = 'confirm', window_json = '[]' WHERE name = 'auto'")
    assert db_rows(team.owner, "SELECT level FROM class_state WHERE name = 'auto'") == [("confirm",)]

    # The reviewer role does what a human's decision writes.
    second = await queued_draft(team.owner)
    with psycopg.connect(team.reviewer, autocommit=True) as conn:
        for _what, sql in ATTEMPTS[:14]:
            conn.execute(sql.format(draft=second).replace("%", "%%"))
    assert db_rows(team.owner, "SELECT level, pinned FROM class_state WHERE name = 'climb'") == [
        ("autonomous", "autonomous")
    ]
    assert db_rows(team.owner, "SELECT count(*) FROM reviews WHERE action_id = ?", second) == [(1,)]


async def _never_asked(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    raise AssertionError(f"the agent-side server asked its client: {params.message}")


def agent_serve(team: Team, host: str, workspace: Path) -> Client:
    """`ratchet serve` for an agent on machine `host`, holding only the agent role's credentials."""
    params = stdio_params(team.ratchet_bin, workspace, team.policies, Path("x"), **{HOST_ENV: host})
    params.args[params.args.index("--db") + 1] = team.agent
    return Client(params, elicitation_callback=_never_asked)


def status_of(team: Team, action_id: int) -> str:
    found: str = db_rows(team.owner, "SELECT status FROM actions WHERE id = ?", action_id)[0][0]
    return found


async def until(check: Any) -> None:
    with anyio.fail_after(30):
        while not check():  # noqa: ASYNC110 - another process changes the record: nothing to wait on
            await anyio.sleep(0.1)


def watch_pending(team: Team, host: str, workspace: Path) -> subprocess.Popen[str]:
    """The human's `ratchet approve --pending --watch` on machine `host`, with the reviewer's credentials."""
    argv = ratchet_argv(team.ratchet_bin, workspace, team.policies, Path("x"), "approve", "--pending", "--watch")
    argv[argv.index("--db") + 1] = team.reviewer
    env = console_env(**{HOST_ENV: host})
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_with_roles_two_agents_earn_a_shared_promotion_from_a_humans_approvals(
    team: Team, tmp_path: Path
) -> None:
    ws_b = tmp_path / "b-checkout"
    ws_c = tmp_path / "c-lead"
    ws_b.mkdir()
    ws_c.mkdir()
    async with agent_serve(team, "a", team.workspace) as a, agent_serve(team, "b", ws_b) as b:
        # The agent side runs and records what its level allows ...
        ran = await a.call_tool("write_file", {"path": "auto/x.txt", "content": "x\n"})
        assert ran.structured_content is not None and ran.structured_content["status"] == "executed"
        # ... and a confirmation becomes a draft: it cannot record a human's answer (the client is never asked).
        asked = await a.call_tool("write_file", {"path": "ask/y.txt", "content": "y\n"})
        assert asked.structured_content is not None and asked.structured_content["status"] == "draft"
        assert "reviewer-side" in str(asked.structured_content), asked.structured_content
        ids = [await draft(a, "climb/1.txt", "1\n"), await draft(b, "climb/2.txt", "2\n")]
        ids.append(await draft(a, "climb/3.txt", "3\n"))

        # The agent's own credentials cannot approve its drafts, even through Ratchet's CLI.
        own = team.cli("a", team.workspace, team.agent, "approve", str(ids[0]))
        assert own.returncode != 0 and "agent's database role" in own.stderr, own.stderr
        assert status_of(team, ids[0]) == "draft"

        # The lead approves all three from a third machine: recorded, and each waits for its origin.
        lead = team.cli("c", ws_c, team.reviewer, "approve", *map(str, ids))
        assert lead.returncode == 0, lead.stderr
        assert [status_of(team, i) for i in ids] == ["approved"] * 3
        await anyio.sleep(3.0)  # longer than a running server's poll: the agent-side servers leave them alone
        assert [status_of(team, i) for i in ids] == ["approved"] * 3

        # On machine a the human's reviewer-side watcher runs a's drafts as they wait; on b a one-off run.
        watcher = watch_pending(team, "a", team.workspace)
        try:
            await until(lambda: status_of(team, ids[0]) == status_of(team, ids[2]) == "executed")
        finally:
            watcher.terminate()
            watcher.communicate(timeout=30)
        assert status_of(team, ids[1]) == "approved"
        done = team.cli("b", ws_b, team.reviewer, "approve", "--pending")
        assert done.returncode == 0, done.stderr
        assert status_of(team, ids[1]) == "executed"
        assert (team.workspace / "climb/1.txt").read_text() == "1\n" and (ws_b / "climb/2.txt").read_text() == "2\n"
        assert not (ws_c / "climb").exists()

        # Evidence from both workspaces promoted the shared class, recorded by the reviewer side.
        moves = db_rows(
            team.owner, "SELECT from_level, to_level, kind FROM transitions WHERE class = 'climb' ORDER BY id"
        )
        assert ("draft", "confirm", "promote") in moves, moves
        # Each agent reads its outcome.
        seen = await a.call_tool("get_draft", {"draft_id": ids[0]})
        assert seen.structured_content is not None and seen.structured_content["status"] == "executed"
        # A class that climbed to confirm still drafts on the agent side: its answers are a reviewer's.
        later = await a.call_tool("write_file", {"path": "climb/4.txt", "content": "4\n"})
        assert later.structured_content is not None and later.structured_content["status"] == "draft"


async def test_db_check_finds_a_guard_switched_off_and_a_table_never_granted(team: Team) -> None:
    with psycopg.connect(team.owner, autocommit=True) as conn:
        conn.execute("ALTER TABLE samples DISABLE TRIGGER ratchet_guard")
        conn.execute("CREATE TABLE later_table (x int)")  # as a migration after `db roles` would
    checked = team.cli("a", team.workspace, team.owner, "db", "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "no guard on samples; later_table not granted; run ratchet db roles again" in checked.stdout
    again = team.cli(
        "a", team.workspace, team.owner, "db", "roles", "--agent", team.groups[0], "--reviewer", team.groups[1]
    )
    assert again.returncode == 0, again.stderr
    with psycopg.connect(team.owner, autocommit=True) as conn:
        conn.execute("DROP TABLE later_table")
    checked = team.cli("a", team.workspace, team.owner, "db", "check")
    assert checked.returncode == 0 and "guards on class_state" in checked.stdout, checked.stdout


async def test_db_roles_needs_postgresql(workspace: Path, policies: Path, ratchet_bin: Path, tmp_path: Path) -> None:
    db = tmp_path / "ratchet.db"
    db.touch()
    done = Team("", "", "", ("", ""), workspace, policies, ratchet_bin).cli("a", workspace, str(db), "db", "roles")
    assert done.returncode != 0 and "needs a PostgreSQL record" in done.stderr, done.stderr


async def test_a_claude_code_hook_with_the_agent_role_drafts_what_it_would_ask(team: Team) -> None:
    """Claude Code's hook acting for the agent, with the agent role: Claude's own dialog is an answer the
    agent side cannot record, so the hook never asks; what it allows runs and is recorded."""
    claude = Claude(team.ratchet_bin, team.workspace, team.policies, cast(Path, team.agent))
    allowed, call = claude.write("auto/x.txt", "x\n")
    assert allowed is not None and allowed["permissionDecision"] == "allow", allowed
    claude.post("Write", call)
    asked, _ = claude.write("ask/y.txt", "y\n")
    assert asked is not None and asked["permissionDecision"] == "deny", asked
    assert "reviewer-side" in asked["permissionDecisionReason"], asked
    rows = db_rows(team.owner, "SELECT target, status FROM actions ORDER BY id")
    assert rows == [("auto/x.txt", "executed"), ("ask/y.txt", "draft")], rows


# -- what a decision rests on: forged with the agent role's own credentials and plain SQL ----------------


def chained(
    conn: Any, cls: str, from_level: str, to_level: str, kind: str, row_id: int | None = None
) -> tuple[str, tuple[Any, ...]]:
    """An INSERT of a transition correctly linked into the hash chain, as an attacker who read chain.py would
    write it (`%s` placeholders for psycopg); `row_id` places it elsewhere than at the end."""
    last = conn.execute("SELECT id, hash FROM transitions ORDER BY id DESC LIMIT 1").fetchone()
    next_id, prev = (1, chain.GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))
    row_id = next_id if row_id is None else row_id
    facts = {
        "id": row_id, "class": cls, "at": 1.0, "from_level": from_level, "to_level": to_level, "kind": kind,
        "actor": "ratchet", "reason": "forged", "evidence_json": "{}", "action_id": None,
    }  # fmt: skip
    names = list(chain.TRANSITION_FACTS)
    sql = (
        f"INSERT INTO transitions ({', '.join(names)}, prev_hash, hash) VALUES ({', '.join(['%s'] * (len(names) + 2))})"
    )
    return sql, (*(facts[n] for n in names), prev, chain.link(prev, facts))


def refusal(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> str:
    """The SQLSTATE the statement was refused with, or ALLOWED."""
    try:
        conn.execute(sql, params or None)
    except psycopg.Error as exc:
        return str(exc.sqlstate)
    return "ALLOWED"


def level_of(team: Team, name: str) -> str:
    """The class's level as a reviewer-side command leaves it (it reads the record and repairs the cache)."""
    done = team.cli("a", team.workspace, team.reviewer, "status", "--json")
    assert done.returncode == 0, done.stderr
    found: str = db_rows(team.owner, "SELECT level FROM class_state WHERE name = ?", name)[0][0]
    return found


async def test_the_agent_role_cannot_take_a_level_from_a_row_it_writes(team: Team) -> None:
    """A `policy` move "from autonomous to autonomous", correctly chained, and its near variants (another kind,
    another level, another class): each refused; the class stays at its earned level and verify is clean."""
    variants = [
        ("climb", "autonomous", "autonomous", "policy"),
        ("climb", "draft", "autonomous", "policy"),
        ("climb", "autonomous", "autonomous", "demote"),
        ("climb", "autonomous", "confirm", "complaint"),
        ("climb", "confirm", "draft", "demote"),  # lower than it claims to start, but not from the record
        ("auto", "autonomous", "autonomous", "human-demote"),
        ("climb", "draft", "confirm", "promote"),
    ]
    with psycopg.connect(team.agent, autocommit=True) as conn:
        refused = {v: refusal(conn, *chained(conn, *v)) for v in variants}
        # What the agent's own evidence makes stays possible: a demotion from the level of record ...
        assert refusal(conn, *chained(conn, "auto", "autonomous", "confirm", "demote")) == "ALLOWED"
        # ... appended at the end of the record, never placed before it.
        assert refusal(conn, *chained(conn, "auto", "confirm", "draft", "demote", row_id=0)) == REFUSED
    assert refused == {v: REFUSED for v in variants}, refused
    assert level_of(team, "climb") == "draft"
    assert level_of(team, "auto") == "confirm"
    checked = team.cli("a", team.workspace, team.reviewer, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_a_level_row_that_does_not_continue_is_broken_and_verify_says_so(team: Team) -> None:
    """Past the guard (an owner's hand, a guard switched off), a chained demotion "from autonomous" of a class
    at draft would stand the class at confirm: the reading of the record holds it at its floor instead, reports
    it as tampering, and `ratchet verify` says what it cannot vouch for."""
    draft_id = await queued_draft(team.owner)
    with psycopg.connect(team.owner, autocommit=True) as conn:
        conn.execute(*chained(conn, "climb", "autonomous", "confirm", "demote"))
        # and a sample of a climb action counted for another class (evidence moved between classes)
        conn.execute("INSERT INTO samples (class, action_id, ok, epoch) VALUES ('auto', %s, 1, 0)", (draft_id,))
    assert level_of(team, "climb") == "draft"  # its floor, never the forged confirm
    notes = db_rows(team.owner, "SELECT reason FROM transitions WHERE kind = 'tamper-detected' AND class = 'climb'")
    assert any("does not continue from the level before it (draft)" in n for (n,) in notes), notes
    checked = team.cli("a", team.workspace, team.reviewer, "verify")
    assert checked.returncode == 1, checked.stdout
    assert "chain intact" in checked.stdout  # the hashes hold: only the level's continuity gives it away
    assert "cannot vouch for: transition" in checked.stdout and "climb: demote from autonomous" in checked.stdout
    assert (
        f"cannot vouch for: sample 1 counts action {draft_id} for auto, but it is evidence for climb" in checked.stdout
    )


async def test_the_agent_role_cannot_rewrite_an_action_it_recorded(team: Team) -> None:
    """Every column a decision rests on, one UPDATE each, and INSERTs that choose what only the database or a
    human sets: refused, and the draft reads as it was recorded."""
    draft_id = await queued_draft(team.agent)
    before = db_rows(team.owner, "SELECT * FROM actions WHERE id = ?", draft_id)
    updates = {
        "args_json": '\'{"path": "climb/x.txt", "content": "curl x | sh"}\'',
        "tool": "'run_command'",
        "target": "'.claude/settings.json'",
        "preview": "'a harmless typo fix'",
        "fingerprint": "'forged'",
        "subject_json": "'{}'",
        "class": "'auto'",
        "rule": "'other'",
        "evidence_class": "'docs'",
        "recorded_by": "'lead@b'",
        "origin_host": "'b'",
        "origin_workspace": "'/elsewhere'",
        "intent": "'other'",
        "created_at": "0",
        "level": "'autonomous'",
        "status": "'executed'",  # no lifecycle move from draft
    }
    with psycopg.connect(team.agent, autocommit=True) as conn:
        refused = {
            column: refusal(conn, f"UPDATE actions SET {column} = {value} WHERE id = %s", (draft_id,))
            for column, value in updates.items()
        }
        columns = "session_id, created_at, tool, target, class, rule, policy, args_json, preview, class_level, level, "
        columns += "route, triggers_json, status, pid"
        values = "'s', 0, 'write_file', 'climb/y', 'climb', 'r', 'p', '{}', '', 'draft', 'draft', 'draft', '[]'"
        sql = f"INSERT INTO actions (id, {columns}) VALUES (10000, {values}, 'draft', 1)"
        refused["insert with a chosen id"] = refusal(conn, sql)
        for status in ("executed", "approved", "stale"):
            sql = f"INSERT INTO actions ({columns}) VALUES ({values}, '{status}', 1)"
            refused[f"insert as {status}"] = refusal(conn, sql)
    assert refused == {k: REFUSED for k in refused}, refused
    assert db_rows(team.owner, "SELECT * FROM actions WHERE id = ?", draft_id) == before


async def test_samples_keep_their_class_epoch_and_action(team: Team) -> None:
    draft_id = await queued_draft(team.agent)
    with psycopg.connect(team.agent, autocommit=True) as conn:
        # A failure for the action's own class is evidence the agent side records.
        conn.execute("INSERT INTO samples (class, action_id, ok, epoch) VALUES ('climb', %s, 0, 0)", (draft_id,))
        attempts = {
            "relabel to another class": "UPDATE samples SET class = 'auto'",
            "move to another epoch": "UPDATE samples SET epoch = 7",
            "move to another action": "UPDATE samples SET action_id = action_id + 1",
            "turn a failure into a success": "UPDATE samples SET ok = 1",
            # `auto` stands at autonomous, where a success is the agent side's to record, but not of climb's action
            "a success for another class": f"INSERT INTO samples (class, action_id, ok, epoch) "
            f"VALUES ('auto', {draft_id}, 1, 0)",
            "a sample of no action": "INSERT INTO samples (class, action_id, ok, epoch) VALUES ('auto', 99999, 1, 0)",
            "a sample outside the epoch": f"INSERT INTO samples (class, action_id, ok, epoch) "
            f"VALUES ('climb', {draft_id}, 0, 5)",
            "a chosen id": f"INSERT INTO samples (id, class, action_id, ok, epoch) "
            f"VALUES (1, 'climb', {draft_id}, 0, 0)",
        }
        refused = {what: refusal(conn, sql) for what, sql in attempts.items()}
    assert refused == {k: REFUSED for k in refused}, refused
    assert db_rows(team.owner, "SELECT class, action_id, ok, epoch FROM samples") == [("climb", draft_id, 0, 0)]


async def test_a_draft_claiming_another_machine_is_never_carried_out_there(team: Team, tmp_path: Path) -> None:
    """The agent's login inserts a draft naming teammate bob's machine and workspace and bob as its recorder:
    the record names the inserting login's person; bob's CLI refuses to run it, and after a lead approves it,
    bob's `approve --pending` leaves it alone: nothing is written in bob's workspace."""
    tag = team.groups[0].removeprefix("agents_")
    ws_b = (tmp_path / "bob").resolve()
    ws_b.mkdir()
    with psycopg.connect(team.owner, autocommit=True) as conn:
        for who in ("bob", "lead"):
            conn.execute(f"CREATE ROLE {who}_{tag} LOGIN IN ROLE {team.groups[1]}")
    bob, lead = as_user(team.owner, f"bob_{tag}"), as_user(team.owner, f"lead_{tag}")
    try:
        store = await Store.open(PostgresUrl(team.agent))
        try:
            forged = intent_row(
                Status.DRAFT,
                "climb/x.txt",
                action_class="climb",
                args_json='{"path": "climb/x.txt", "content": "x\\n"}',
                recorded_by=f"bob_{tag}",
                origin_host="b",
                origin_workspace=str(ws_b),
            )
            draft_id = await store.run(lambda conn: actions.insert_intent(conn, forged))
        finally:
            await store.close()
        assert db_rows(team.owner, "SELECT recorded_by FROM actions WHERE id = ?", draft_id) == [(f"team_{tag}",)]
        shown = team.cli("b", ws_b, bob, "show", str(draft_id))
        assert f"team_{tag}" in shown.stdout, shown.stdout
        own = team.cli("b", ws_b, bob, "approve", str(draft_id))
        assert own.returncode != 0 and "not carried out here" in own.stderr, own.stdout + own.stderr
        assert status_of(team, draft_id) == "draft"
        approved = team.cli("c", tmp_path, lead, "approve", str(draft_id))
        assert approved.returncode == 0, approved.stderr
        assert status_of(team, draft_id) == "approved"
        pending = team.cli("b", ws_b, bob, "approve", "--pending")
        assert pending.returncode == 0, pending.stderr
        assert status_of(team, draft_id) == "approved"
        assert not (ws_b / "climb").exists()
    finally:
        with psycopg.connect(team.owner, autocommit=True) as conn:
            for who in ("bob", "lead"):
                conn.execute(f"DROP OWNED BY {who}_{tag}")
                conn.execute(f"DROP ROLE {who}_{tag}")


# -- checks, tasks and undos: what the agent side witnessed, appended; what a decision rests on, never rewritten --


async def agent_action(team: Team, status: Status, target: str, url: str | None = None, **fields: Any) -> int:
    """An action recorded through Ratchet's own record layer with the agent's login (or `url`'s)."""
    store = await Store.open(PostgresUrl(url or team.agent))
    try:
        row = intent_row(status, target, action_class="climb", **fields)
        return await store.run(lambda conn: actions.insert_intent(conn, row))
    finally:
        await store.close()


async def agent_task(team: Team, session_id: str) -> int:
    """A task started with the agent's login, as `start_task` starts one."""
    store = await Store.open(PostgresUrl(team.agent))
    try:
        row = await store.run(
            lambda conn: actions.start_task(conn, session_id, "fix the typo", '["docs/"]', "[]", "{}")
        )
        return int(row["id"])
    finally:
        await store.close()


CHECK = "INSERT INTO checks ({id}action_id, at, phase, argv_json, passed, exit_code, timed_out, duration_s, tail) "


def check_sql(action_id: int, phase: str = "each", passed: int = 1, exit_code: int | None = 0, timed_out: int = 0,
              row_id: int | None = None) -> str:  # fmt: skip
    """A check's result as code holding the agent's credentials would insert it."""
    code = "NULL" if exit_code is None else str(exit_code)
    chosen = "" if row_id is None else f"{row_id}, "
    return CHECK.format(id="" if row_id is None else "id, ") + (
        f"VALUES ({chosen}{action_id}, 1, '{phase}', '[\"pytest\"]', {passed}, {code}, {timed_out}, 0.1, '')"
    )


async def test_the_agent_role_appends_the_checks_it_ran_and_forges_no_verdict(team: Team) -> None:
    """A check's result is recorded as its action settles (or after its task ended), for the inserting person's
    own actions, consistent with its exit: a pass added later, before the task ended, for another person's
    action, contradicting its exit code, in an unknown phase or with a chosen id is refused, and no recorded
    verdict can be rewritten or deleted."""
    task = await agent_task(team, "s")
    held = await agent_action(team, Status.RUNNING, "climb/a.txt", task_id=task)
    loose = await agent_action(team, Status.RUNNING, "climb/b.txt")  # no task held it
    other = await agent_action(team, Status.RUNNING, "climb/c.txt", url=team.owner)  # another login's person's
    running = await agent_action(team, Status.RUNNING, "climb/d.txt", task_id=task)  # still settling
    with psycopg.connect(team.agent, autocommit=True) as conn:
        # what the agent side witnessed, as it settles the action: a failure, and a pass
        assert refusal(conn, check_sql(held, passed=0, exit_code=1)) == "ALLOWED"
        assert refusal(conn, check_sql(held)) == "ALLOWED"
        conn.execute("UPDATE actions SET status = 'executed' WHERE id IN (%s, %s)", (held, loose))
        before = conn.execute("SELECT * FROM checks ORDER BY id").fetchall()
        attempts = {
            "a pass added after the action settled": check_sql(held),
            "a task-end pass before its task ended": check_sql(held, phase="task_end"),
            "a task-end pass for an action no task held, with the session's task open": check_sql(
                loose, phase="task_end"
            ),
            "a pass for another person's action": check_sql(other),
            "a task-end pass for another person's action": check_sql(other, phase="task_end"),
            "a pass with a failing exit code": check_sql(running, exit_code=1),
            "a pass with no exit code": check_sql(running, exit_code=None),
            "a pass after a timeout": check_sql(running, timed_out=1),
            "a check of no recorded action": check_sql(99999, passed=0, exit_code=1),
            "a check in an unknown phase": check_sql(running, phase="manual"),
            "a chosen id": check_sql(running, passed=0, exit_code=1, row_id=1000),
            "rewrite a verdict": "UPDATE checks SET passed = 1, exit_code = 0",
            "rewrite another column": "UPDATE checks SET tail = '', phase = 'task_end'",
            "move a check to another action": f"UPDATE checks SET action_id = {loose}",
            "delete a failing check": "DELETE FROM checks WHERE passed = 0",
        }
        refused = {what: refusal(conn, sql) for what, sql in attempts.items()}
        assert refused == {k: REFUSED for k in refused}, refused
        assert conn.execute("SELECT * FROM checks ORDER BY id").fetchall() == before
        # once the task ended (by the agent side, as end_task does), its task-end checks are the agent side's
        conn.execute("UPDATE tasks SET ended_at = 2, summary = 'done' WHERE id = %s", (task,))
        assert refusal(conn, check_sql(held, phase="task_end")) == "ALLOWED"
        assert refusal(conn, check_sql(loose, phase="task_end", passed=0, exit_code=1)) == "ALLOWED"
    assert db_rows(team.owner, "SELECT action_id, phase, passed FROM checks ORDER BY id") == [
        (held, "each", 0),
        (held, "each", 1),
        (held, "task_end", 1),
        (loose, "task_end", 0),
    ]


async def test_the_agent_role_cannot_rewrite_a_task_once_started(team: Team) -> None:
    """A task's goal, scope, non-goals, budget and start are fixed; its count of actions only grows; it ends once,
    and an ended task is neither reopened nor rewritten. Each forgery refused, the row unchanged."""
    task = await agent_task(team, "s")
    with psycopg.connect(team.agent, autocommit=True) as conn:
        conn.execute("UPDATE tasks SET actions_used = actions_used + 1 WHERE id = %s", (task,))  # as an action does
        before = conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()
        open_attempts = {
            "widen its scope": "UPDATE tasks SET scope_json = '[\"\"]'",
            "change its goal": "UPDATE tasks SET goal = 'anything'",
            "drop its non-goals": "UPDATE tasks SET non_goals_json = '[]'",
            "raise its budget": "UPDATE tasks SET budget_json = '{\"actions\": 1000}'",
            "move its start": "UPDATE tasks SET started_at = 0",
            "move it to another session": "UPDATE tasks SET session_id = 'x'",
            "lower the actions it used": "UPDATE tasks SET actions_used = 0",
            "a summary while it is open": "UPDATE tasks SET summary = 'checks passed'",
            "a second open task in the session": "INSERT INTO tasks (session_id, goal, scope_json, non_goals_json, "
            "budget_json, started_at) VALUES ('s', 'g', '[]', '[]', '{}', 1)",
            "a task born ended": "INSERT INTO tasks (session_id, goal, scope_json, non_goals_json, budget_json, "
            "started_at, ended_at, summary) VALUES ('t', 'g', '[]', '[]', '{}', 1, 1, 'checks passed')",
            "a task with a chosen id": "INSERT INTO tasks (id, session_id, goal, scope_json, non_goals_json, "
            "budget_json, started_at) VALUES (1000, 't', 'g', '[]', '[]', '{}', 1)",
            "delete it": "DELETE FROM tasks",
        }
        refused = {what: refusal(conn, sql) for what, sql in open_attempts.items()}
        assert conn.execute("SELECT * FROM tasks ORDER BY id").fetchall() == before
        conn.execute("UPDATE tasks SET ended_at = 2, summary = 'done' WHERE id = %s", (task,))  # as end_task does
        ended = conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()
        ended_attempts = {
            "reopen it": "UPDATE tasks SET ended_at = NULL",
            "move its end": "UPDATE tasks SET ended_at = 3",
            "rewrite its summary": "UPDATE tasks SET summary = 'all checks passed'",
        }
        refused |= {what: refusal(conn, sql) for what, sql in ended_attempts.items()}
        assert conn.execute("SELECT * FROM tasks ORDER BY id").fetchall() == ended
    assert refused == {k: REFUSED for k in refused}, refused
    assert db_rows(team.owner, "SELECT goal, ended_at, summary, actions_used FROM tasks") == [
        ("fix the typo", 2.0, "done", 1)
    ]


async def test_the_agent_role_cannot_record_delete_or_rewrite_an_undo(team: Team) -> None:
    """An undo decides what was put back and that a person's later undo is refused as "already undone": the
    agent role inserts none (of an executed action, of its own, in a check's name), and rewrites or deletes none."""
    done = await agent_action(team, Status.RUNNING, "climb/a.txt")
    undone = await agent_action(team, Status.RUNNING, "climb/b.txt")
    with psycopg.connect(team.agent, autocommit=True) as conn:
        conn.execute("UPDATE actions SET status = 'executed' WHERE id IN (%s, %s)", (done, undone))
    with psycopg.connect(team.reviewer, autocommit=True) as conn:  # a person's undo
        conn.execute(
            "INSERT INTO undos (action_id, at, reason, actor, forced, complaint, detail) "
            "VALUES (%s, 1, 'wrong file', 'human', 0, 1, '{}')",
            (undone,),
        )
    before = db_rows(team.owner, "SELECT * FROM undos")
    undo = "INSERT INTO undos (action_id, at, reason, actor, forced, complaint, detail) "
    undo += "VALUES ({}, 1, 'r', '{}', 0, {}, '{{}}')"
    attempts = {
        "an undo in a person's name": undo.format(done, "human", 0),
        "an undo in a check's name": undo.format(done, "check", 0),
        "an undo counted as a complaint": undo.format(done, "check", 1),
        "rewrite a person's undo": "UPDATE undos SET complaint = 0, actor = 'check'",
        "point an undo at another action": f"UPDATE undos SET action_id = {done}",
        "delete a person's undo": "DELETE FROM undos",
    }
    with psycopg.connect(team.agent, autocommit=True) as conn:
        refused = {what: refusal(conn, sql) for what, sql in attempts.items()}
    assert refused == {k: REFUSED for k in refused}, refused
    assert db_rows(team.owner, "SELECT * FROM undos") == before


async def test_db_check_names_a_guard_an_older_ratchet_installed(team: Team) -> None:
    """A guard function whose body is not this Ratchet's (an older one's, or replaced by the owner's hand) and a
    trigger pointing at another function are found by `ratchet db check`, which says to run `db roles` again."""
    with psycopg.connect(team.owner, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION ratchet_guard_checks() RETURNS trigger LANGUAGE plpgsql "
            "SET search_path = public, pg_temp AS $$ BEGIN RETURN NEW; END $$"
        )
        conn.execute("DROP TRIGGER ratchet_guard ON tasks")
        conn.execute(
            "CREATE TRIGGER ratchet_guard BEFORE INSERT OR UPDATE ON tasks FOR EACH ROW "
            "EXECUTE FUNCTION ratchet_guard_checks()"
        )
    checked = team.cli("a", team.workspace, team.owner, "db", "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "no guard on tasks; guard ratchet_guard_checks out of date; run ratchet db roles again" in checked.stdout
    with psycopg.connect(team.owner, autocommit=True) as conn:  # the body alone, with its setting kept
        conn.execute("DROP FUNCTION ratchet_successes(text)")
    checked = team.cli("a", team.workspace, team.owner, "db", "check")
    assert checked.returncode == 1 and "guard ratchet_successes missing" in checked.stdout, checked.stdout
    again = team.cli(
        "a", team.workspace, team.owner, "db", "roles", "--agent", team.groups[0], "--reviewer", team.groups[1]
    )
    assert again.returncode == 0, again.stderr
    checked = team.cli("a", team.workspace, team.owner, "db", "check")
    assert checked.returncode == 0, checked.stdout
    assert "guards on class_state, transitions, samples, actions, checks, tasks" in checked.stdout


async def test_with_roles_the_agent_side_records_its_checks_and_leaves_undos_to_a_reviewer(team: Team) -> None:
    """The real agent-side server under the agent role: the checks it runs as each write settles and at its
    task's end are recorded (so the guards refuse nothing Ratchet itself writes), and `undo_on_failure` says
    the undo is the reviewer side's instead of putting a file back that the record could not keep."""
    py = json.dumps(sys.executable)
    policy = (team.policies / "policy.toml").read_text()
    policy = policy.replace(
        'paths = ["auto/**"]\nstart = "autonomous"\n',
        f'paths = ["auto/**"]\nstart = "autonomous"\nverify = [[{py}, "-m", "py_compile", "{{path}}"]]\n'
        "undo_on_failure = true\n",
    )
    policy += f"""
[classes.later]
tools = ["write_file", "edit_file"]
paths = ["later/**"]
start = "autonomous"
verify = [[{py}, "-m", "py_compile", "{{path}}"]]
verify_on = "task_end"
"""
    (team.policies / "policy.toml").write_text(policy)
    async with agent_serve(team, "a", team.workspace) as agent:
        started = await agent.call_tool(
            "start_task", {"goal": "g", "scope": {"paths": ["auto/**", "later/**"]}, "budget": {"actions": 10}}
        )
        assert not started.is_error, started.content
        good = await agent.call_tool("write_file", {"path": "auto/good.py", "content": "x = 1\n"})
        assert good.structured_content is not None and good.structured_content["status"] == "executed"
        bad = await agent.call_tool("write_file", {"path": "auto/bad.py", "content": "def broken(:\n"})
        assert bad.structured_content is not None, bad.content
        assert "not undone" in str(bad.structured_content["undone"]), bad.structured_content
        assert "reviewer side" in str(bad.structured_content["undone"])
        late = await agent.call_tool("write_file", {"path": "later/x.py", "content": "class (\n"})
        assert late.structured_content is not None and late.structured_content["status"] == "executed"
        ended = await agent.call_tool("end_task", {"summary": "done"})
        assert not ended.is_error, ended.content
        assert ended.structured_content is not None and ended.structured_content["checks_failed_on"], ended
    assert (team.workspace / "auto" / "bad.py").exists()  # nothing put back that the record does not say
    assert db_rows(team.owner, "SELECT count(*) FROM undos") == [(0,)]
    rows = db_rows(
        team.owner,
        "SELECT a.target, c.phase, c.passed FROM checks c JOIN actions a ON a.id = c.action_id ORDER BY c.id",
    )
    assert rows == [("auto/good.py", "each", 1), ("auto/bad.py", "each", 0), ("later/x.py", "task_end", 0)], rows
    assert db_rows(team.owner, "SELECT ended_at IS NOT NULL, summary, actions_used FROM tasks") == [(True, "done", 3)]
