"""Every view and human command after a promotion, under probation, on both backends (PostgreSQL 15 refuses
a subquery in FROM without an alias, which SQLite and later PostgreSQL accept: a promotion once made
`status`, `approve`, `reject` and `trust_levels` fail there). And an approval whose effect happened but whose
outcome could not be fully recorded: the effect is recorded as it is, never "may have run".
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .helpers import db_rows
from .test_shown import agent_on, cli, queued, shown_policies, status_of

pytestmark = pytest.mark.asyncio
__all__ = ["shown_policies"]  # the fixture, used here by name


def pg_major(url: str) -> int:
    return int(db_rows(url, "SHOW server_version_num")[0][0]) // 10000


async def test_after_a_promotion_every_view_and_command_works_on_probation(
    backend: str, workspace: Path, shown_policies: Path, ratchet_bin: Path
) -> None:
    if backend.startswith("postgresql://"):
        assert pg_major(backend) >= 15  # the tests' own server: Debian's current release is 15
    # Three approvals promote climb (window 10, min_samples 3, promote_at 0.4): draft -> confirm.
    for n in range(3):
        draft_id = await queued(
            workspace, shown_policies, backend, "write_file", {"path": f"climb/{n}", "content": "x\n"}
        )
        done = cli(ratchet_bin, workspace, shown_policies, backend, "approve", str(draft_id))
        assert done.returncode == 0, done.stdout + done.stderr
    moves = db_rows(backend, "SELECT from_level, to_level, kind FROM transitions WHERE class = 'climb' ORDER BY id")
    assert moves == [("draft", "confirm", "promote")], moves
    # At confirm, without a dialog the agent's write is queued: one to approve, one to reject, on probation.
    ids = [
        await queued(workspace, shown_policies, backend, "write_file", {"path": f"climb/p{n}", "content": "p\n"})
        for n in range(2)
    ]
    status = cli(ratchet_bin, workspace, shown_policies, backend, "status", "--json")
    assert status.returncode == 0, status.stderr
    climb = next(c for c in json.loads(status.stdout)["classes"] if c["action_class"] == "climb")
    assert climb["level"] == "confirm" and climb["probation"] == 20, climb
    approved = cli(ratchet_bin, workspace, shown_policies, backend, "approve", str(ids[0]))
    assert approved.returncode == 0, approved.stdout + approved.stderr
    rejected = cli(ratchet_bin, workspace, shown_policies, backend, "reject", str(ids[1]), "--reason", "no")
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    assert [status_of(backend, i) for i in ids] == ["executed", "rejected"]
    for view in ("queue", "history", "inbox", "report", "metrics", "explain"):
        argv = [view, str(ids[0])] if view == "explain" else [view]
        seen = cli(ratchet_bin, workspace, shown_policies, backend, *argv)
        assert seen.returncode == 0, (view, seen.stderr)
    async with agent_on(workspace, shown_policies, backend) as client:
        levels = (await client.call_tool("trust_levels", {})).structured_content
    assert levels is not None
    climb = next(c for c in levels["classes"] if c["action_class"] == "climb")
    assert climb["probation"] == 18, climb  # the approval and the rejection were its first two samples


async def test_an_approval_whose_outcome_cannot_be_fully_recorded_records_its_effect(
    backend: str, workspace: Path, shown_policies: Path, ratchet_bin: Path
) -> None:
    """The write happened; recording its evidence failed (a sample the database refuses): the draft is
    `executed` with its result and what went wrong, not left to the next open as "may have run"."""
    draft_id = await queued(workspace, shown_policies, backend, "write_file", {"path": "climb/x", "content": "x\n"})
    if backend.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION no_samples() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'samples are not being taken'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER no_samples BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION no_samples()"
            )
    else:
        con = sqlite3.connect(backend)
        with con:
            con.execute(
                "CREATE TRIGGER no_samples BEFORE INSERT ON samples BEGIN "
                "SELECT RAISE(ABORT, 'samples are not being taken'); END"
            )
        con.close()
    done = cli(ratchet_bin, workspace, shown_policies, backend, "approve", str(draft_id))
    assert done.returncode != 0 and "samples are not being taken" in done.stdout + done.stderr
    assert (workspace / "climb/x").read_text() == "x\n"
    # A later open (any command) finds nothing in flight to call "may have run".
    assert cli(ratchet_bin, workspace, shown_policies, backend, "queue").returncode == 0
    row = db_rows(backend, "SELECT status, error, result_json FROM actions WHERE id = ?", draft_id)[0]
    assert row[0] == "executed", row
    assert "recorded without its review or evidence" in row[1] and "may have run" not in row[1], row
    assert row[2] is not None and json.loads(row[2])["path"] == "climb/x"
