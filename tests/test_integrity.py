"""Evidence integrity, tried as someone who can write the database file with sqlite3: a level, pin or
window changed outside Ratchet is reported and not honoured; `ratchet verify` finds edited and deleted
rows of the record, and says honestly what it cannot find."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.engine import Engine
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.record import chain
from ratchet.record.store import MIGRATIONS

from .helpers import run_cli as _cli


async def _write(client: Client, path: str, content: str = "x\n") -> dict[str, Any]:
    result = await client.call_tool("write_file", {"path": path, "content": content})
    out: dict[str, Any] = result.structured_content
    return out


def _sql(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """What an attacker with the file does: plain sqlite3, outside Ratchet."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute(sql, params).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


async def _status(capsys: pytest.CaptureFixture[str], workspace: Path, policies: Path, db: Path) -> dict[str, Any]:
    code, text = await _cli(capsys, workspace, policies, db, "status", "--json")
    assert code == 0, text
    data: dict[str, Any] = json.loads(text)
    return data


def _cls(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["classes"] if c["action_class"] == name)
    return found


def _tampers(db: Path, name: str) -> list[sqlite3.Row]:
    return _sql(db, "SELECT * FROM transitions WHERE class = ? AND kind = 'tamper-detected' ORDER BY id", (name,))


# -- class_state is a cache ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_level_raised_in_class_state_mid_session_is_not_honoured(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        assert (await _write(client, "climb/a.txt"))["status"] == "draft"
        _sql(db, "UPDATE class_state SET level = 'autonomous' WHERE name = 'climb'")
        out = await _write(client, "climb/b.txt")
        assert out["status"] == "draft" and out["class_level"] == "draft"
        assert not (workspace / "climb/b.txt").exists()
        levels = (await client.call_tool("trust_levels", {})).structured_content
    assert levels["tamper_records"] == 1
    assert "class_state.level says autonomous, the record draft" in levels["tampering"][0]
    [tamper] = _tampers(db, "climb")
    assert (tamper["from_level"], tamper["to_level"], tamper["actor"]) == ("autonomous", "draft", "ratchet")
    assert _sql(db, "SELECT level FROM class_state WHERE name = 'climb'")[0][0] == "draft"  # cache restored
    code, text = await _cli(capsys, workspace, policies, db, "status")
    assert "TAMPERING: the stored standings were changed outside Ratchet 1 time(s)" in text
    assert "climb: changed outside Ratchet and not honoured" in text
    code, text = await _cli(capsys, workspace, policies, db, "inbox")
    assert code == 0 and "TAMPERING: 1 record(s)" in text and "climb: changed outside Ratchet" in text
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0  # the tamper record is itself part of the chain


@pytest.mark.asyncio
async def test_a_level_raised_while_no_server_runs_is_found_at_open(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))):
        pass  # a server's first start creates the database and the standings
    _sql(db, "UPDATE class_state SET level = 'autonomous', policy_start = 'autonomous' WHERE name = 'queue'")
    status = await _status(capsys, workspace, policies, db)  # opening finds it
    assert _cls(status, "queue")["level"] == "draft"
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "queue/a.txt")
    assert out["status"] == "draft" and not (workspace / "queue/a.txt").exists()


@pytest.mark.asyncio
async def test_a_pin_removed_in_class_state_still_holds(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        code, _ = await _cli(capsys, workspace, policies, db, "pin", "auto", "blocked", "--reason", "incident")
        assert code == 0
        _sql(db, "UPDATE class_state SET pinned = NULL WHERE name = 'auto'")
        out = await _write(client, "auto/a.txt")
    assert out["status"] == "blocked" and [t["name"] for t in out["triggers"]] == ["pinned"]
    assert not (workspace / "auto/a.txt").exists()
    [tamper] = _tampers(db, "auto")
    assert "class_state.pinned says none, the record blocked" in tamper["reason"]
    status = await _status(capsys, workspace, policies, db)
    assert _cls(status, "auto")["pinned"] == "blocked" and status["tamper_records"] == 1


@pytest.mark.asyncio
async def test_a_deleted_class_state_row_is_reported_and_rebuilt(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "demote", "auto", "--to", "draft", "--reason", "r")
    assert code == 0
    _sql(db, "DELETE FROM class_state WHERE name = 'auto'")  # so that the policy start (autonomous) applies
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "auto/a.txt")
    assert out["status"] == "draft" and out["class_level"] == "draft"
    [tamper] = _tampers(db, "auto")
    assert "its class_state row is missing" in tamper["reason"]


@pytest.mark.asyncio
async def test_a_forged_window_does_not_promote(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nine fake successes in climb's window (min_samples 3, promote_at 0.4): one real approval must not
    promote it, and the forged window is reported."""
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "climb/a.txt")
        forged = json.dumps([[9000 + n, 1] for n in range(9)])
        _sql(db, "UPDATE class_state SET window_json = ? WHERE name = 'climb'", (forged,))
        code, text = await _cli(capsys, workspace, policies, db, "approve", str(out["draft_id"]))
        assert code == 0, text
        nxt = await _write(client, "climb/b.txt")
    assert nxt["class_level"] == "draft" and nxt["status"] == "draft"
    climb = _cls(await _status(capsys, workspace, policies, db), "climb")
    assert (climb["level"], climb["samples"], climb["successes"]) == ("draft", 1, 1)
    [tamper] = _tampers(db, "climb")
    assert "class_state.window_json holds 9/9 ok, the record 0/0" in tamper["reason"]
    assert _sql(db, "SELECT * FROM transitions WHERE class = 'climb' AND kind = 'promote'") == []


@pytest.mark.asyncio
async def test_a_window_emptied_of_its_failures_is_reported_at_decision_time(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "climb/a.txt")
        code, _ = await _cli(capsys, workspace, policies, db, "reject", str(out["draft_id"]), "--reason", "no")
        assert code == 0
        _sql(db, "UPDATE class_state SET window_json = '[]' WHERE name = 'climb'")
        await _write(client, "climb/b.txt")  # the decision reads the cache and the record together
    [tamper] = _tampers(db, "climb")
    assert "window_json holds 0/0 ok, the record 0/1" in tamper["reason"]


# -- the hash chain ------------------------------------------------------------------------------------


async def _some_history(capsys: pytest.CaptureFixture[str], workspace: Path, policies: Path, db: Path) -> None:
    """Approvals, a rejection, a promotion, a complaint, a pin and a freeze: every kind of chained row."""
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        for n in range(3):
            out = await _write(client, f"climb/{n}.txt")
            code, _ = await _cli(capsys, workspace, policies, db, "approve", str(out["draft_id"]))
            assert code == 0
        out = await _write(client, "queue/a.txt")
        code, _ = await _cli(capsys, workspace, policies, db, "reject", str(out["draft_id"]), "--reason", "no")
        done = await _write(client, "auto/a.txt")
    for args in (
        ("complain", str(done["action_id"]), "--reason", "bad"),
        ("pin", "ask", "draft", "--reason", "audit"),
        ("freeze", "--level", "confirm", "--reason", "week"),
    ):
        code, text = await _cli(capsys, workspace, policies, db, *args)
        assert code == 0, text


@pytest.mark.asyncio
async def test_verify_passes_on_an_honest_record(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    kinds = [r[0] for r in _sql(db, "SELECT kind FROM transitions ORDER BY id")]
    assert kinds == ["promote", "complaint", "pin", "freeze"]
    transitions = len(kinds)
    reviews = _sql(db, "SELECT kind FROM reviews ORDER BY id")
    assert [r[0] for r in reviews] == ["accept"] * 3 + ["refuse", "complaint"]
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0 and text.strip() == f"ok: {transitions} transitions, 5 reviews, chain intact"


@pytest.mark.asyncio
async def test_verify_names_a_transition_edited_in_place(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    [promote] = _sql(db, "SELECT id FROM transitions WHERE kind = 'promote'")
    _sql(db, "UPDATE transitions SET to_level = 'autonomous' WHERE id = ?", (promote[0],))
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 1
    assert f"broken: transition {promote[0]} does not match its hash: it was edited" in text


@pytest.mark.asyncio
async def test_db_check_says_which_link_broke_not_only_its_exit_code(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    code, text = await _cli(capsys, workspace, policies, db, "db", "check")
    assert code == 0 and "chain: ok: 4 transitions, 5 reviews, chain intact" in text.splitlines(), text
    refused = _sql(db, "SELECT id FROM reviews WHERE kind = 'refuse'")[0][0]
    _sql(db, "UPDATE reviews SET kind = 'accept' WHERE id = ?", (refused,))
    code, text = await _cli(capsys, workspace, policies, db, "db", "check")
    assert code == 1
    broken = f"chain: broken: review {refused} does not match its hash: it was edited after it was written"
    assert broken in text.splitlines(), text
    assert "intact" not in text
    code, text = await _cli(capsys, workspace, policies, db, "db", "check", "--json")
    found = json.loads(text)
    assert code == 1 and found["ok"] is False
    assert found["chain"] == f"broken: review {refused} does not match its hash: it was edited after it was written"


@pytest.mark.asyncio
async def test_verify_names_the_row_after_a_deleted_middle_transition(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    ids = [r[0] for r in _sql(db, "SELECT id FROM transitions ORDER BY id")]
    victim = ids[len(ids) // 2]
    _sql(db, "DELETE FROM transitions WHERE id = ?", (victim,))
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    after, before = ids[ids.index(victim) + 1], ids[ids.index(victim) - 1]
    assert code == 1
    assert f"transition {after} does not follow transition {before}: a row between them was deleted" in text


@pytest.mark.asyncio
async def test_verify_names_an_edited_review_and_an_inserted_transition(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    refused = _sql(db, "SELECT id FROM reviews WHERE kind = 'refuse'")[0][0]
    _sql(db, "UPDATE reviews SET kind = 'accept' WHERE id = ?", (refused,))
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 1 and f"review {refused} does not match its hash" in text
    _sql(db, "UPDATE reviews SET kind = 'refuse' WHERE id = ?", (refused,))
    _sql(
        db,
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('climb', 0, 'confirm', 'autonomous', 'promote', 'ratchet', 'earned', '{}')",
    )
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 1 and "has no hash: it was written outside Ratchet" in text


def test_the_hash_of_a_row_is_the_documented_formula() -> None:
    """sha256(previous hash + the row's canonical JSON: sorted keys, no spaces, UTF-8), a later fact
    (`identity`) left out while it is empty: a record written by an earlier Ratchet keeps verifying."""
    import hashlib

    facts = {"id": 1, "action_id": 7, "at": 1.5, "kind": "accept", "actor": "hüman", "seconds": None, "note": None}
    canonical = '{"action_id":7,"actor":"hüman","at":1.5,"id":1,"kind":"accept","note":null,"seconds":null}'
    genesis = "0" * 64  # the first row's previous hash, as documented
    assert genesis == chain.GENESIS
    expected = hashlib.sha256((genesis + canonical).encode("utf-8")).hexdigest()
    assert chain.link(genesis, {**facts, "identity": None}) == expected
    reordered = canonical.replace('"id":1,', '"id":1,"identity":"dev@host",')  # sorted: between id and kind
    expected = hashlib.sha256((expected + reordered).encode("utf-8")).hexdigest()
    assert chain.link(chain.link(genesis, facts), {**facts, "identity": "dev@host"}) == expected


@pytest.mark.asyncio
async def test_a_record_from_before_the_chain_is_chained_once_table_by_table(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The migration that added the chain marked the rows it found `pending`; `backfill` chains each
    table that starts pending, in order, once, giving the rows the hashes an honest writer would have,
    and stops at a row that is not pending (one written by hand later stays unchained)."""
    await _some_history(capsys, workspace, policies, db)
    original = [tuple(r) for r in _sql(db, "SELECT id, prev_hash, hash FROM reviews ORDER BY id")]
    # Only the reviews were written before the chain; the transitions are chained already.
    _sql(db, "UPDATE reviews SET prev_hash = NULL, hash = ?", (chain.PENDING,))
    con = sqlite3.connect(db)
    try:
        assert chain.backfill(con) == len(original)
        con.commit()
        assert chain.backfill(con) == 0  # once
    finally:
        con.close()
    assert [tuple(r) for r in _sql(db, "SELECT id, prev_hash, hash FROM reviews ORDER BY id")] == original
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0 and "chain intact" in text
    # A pending record with a review added by hand, without a hash: chaining stops there, so neither
    # that row nor any after it is chained.
    middle = original[2][0]
    _sql(db, "UPDATE reviews SET prev_hash = NULL, hash = ?", (chain.PENDING,))
    _sql(db, "UPDATE reviews SET hash = NULL WHERE id = ?", (middle,))
    con = sqlite3.connect(db)
    try:
        assert chain.backfill(con) == 2
        con.commit()
    finally:
        con.close()
    after = [r[0] for r in _sql(db, "SELECT hash FROM reviews WHERE id > ? ORDER BY id", (middle,))]
    assert after and set(after) == {chain.PENDING}
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 1 and f"review {middle} has no hash" in text


@pytest.mark.asyncio
async def test_a_recomputed_chain_passes_verify_but_not_a_head_kept_elsewhere(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the chain does not prove, shown: a writer who recomputes every hash gets past `verify`;
    only a head kept out of band (`--head`, then `--expect`) catches it."""
    await _some_history(capsys, workspace, policies, db)
    code, head = await _cli(capsys, workspace, policies, db, "verify", "--head")
    head = head.strip()
    assert code == 0 and len(head) == 64
    # Appending honestly keeps the old head valid.
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "auto", "draft", "--reason", "later")
    code, text = await _cli(capsys, workspace, policies, db, "verify", "--expect", head)
    assert code == 0 and "chain intact" in text
    # The attacker rewrites the promotion and recomputes the chain from there.
    _sql(db, "UPDATE transitions SET reason = 'rewritten' WHERE kind = 'promote'")
    con = sqlite3.connect(db)
    try:
        assert chain.backfill(con) == 0  # Ratchet never re-chains a chained table; the attacker does it by hand
        names = chain.TRANSITION_FACTS
        prev = chain.GENESIS
        for row in con.execute(f"SELECT {', '.join(names)} FROM transitions ORDER BY id").fetchall():
            facts = dict(zip(names, row, strict=True))
            digest = chain.link(prev, facts)
            con.execute("UPDATE transitions SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, facts["id"]))
            prev = digest
        con.commit()
    finally:
        con.close()
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0  # not detectable from inside the file: documented
    code, text = await _cli(capsys, workspace, policies, db, "verify", "--expect", head)
    assert code == 1 and f"the record does not contain head {head}" in text


@pytest.mark.asyncio
async def test_rows_removed_from_the_end_are_caught_by_the_kept_head(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _some_history(capsys, workspace, policies, db)
    code, head = await _cli(capsys, workspace, policies, db, "verify", "--head")
    last = _sql(db, "SELECT max(id) FROM transitions")[0][0]
    _sql(db, "DELETE FROM transitions WHERE id = ?", (last,))  # e.g. drop the freeze's last row
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0
    code, text = await _cli(capsys, workspace, policies, db, "verify", "--expect", head.strip())
    assert code == 1 and "rows were removed from the end" in text


@pytest.mark.asyncio
async def test_reviews_removed_from_the_end_are_caught_by_the_kept_head(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The head names both chains: dropping the last review alone (the transitions untouched) is caught."""
    await _some_history(capsys, workspace, policies, db)
    code, head = await _cli(capsys, workspace, policies, db, "verify", "--head")
    last = _sql(db, "SELECT max(id) FROM reviews")[0][0]
    _sql(db, "DELETE FROM reviews WHERE id = ?", (last,))
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0  # the rest of the chain still links
    code, text = await _cli(capsys, workspace, policies, db, "verify", "--expect", head.strip())
    assert code == 1 and "rows were removed from the end" in text


@pytest.mark.asyncio
async def test_a_record_from_before_the_chain_is_chained_at_first_open(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database at the schema before this one: its transitions, window and reviews carry over, chained,
    and the class stands where it stood (nothing reported as tampering)."""
    mine = next(i for i, step in enumerate(MIGRATIONS) if "CREATE TABLE reviews" in step)
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    try:
        for step in MIGRATIONS[:mine]:
            con.executescript(step)
        con.execute(f"PRAGMA user_version = {mine}")
        con.execute(
            "INSERT INTO transitions (id, class, at, from_level, to_level, kind, actor, reason, evidence_json) "
            "VALUES (1, 'climb', 1.0, 'draft', 'confirm', 'promote', 'ratchet', 'earned', '{}'), "
            "(2, 'ask', 2.0, 'confirm', 'draft', 'pin', 'human', 'audit', '{}')"
        )
        con.execute(
            "INSERT INTO class_state VALUES ('climb', 'confirm', 'draft', NULL, '[[7,1],[8,0]]', 1.0, 1), "
            "('ask', 'confirm', 'confirm', 'draft', '[]', 1.0, NULL)"
        )
        con.execute(
            "INSERT INTO actions (id, session_id, created_at, tool, target, class, rule, policy, args_json, "
            "preview, class_level, level, route, triggers_json, status, pid, reviewer, review_seconds, "
            "finished_at) VALUES (7, 's', 3.0, 'write_file', 'climb/a', 'climb', 'r', 'p', '{}', '', "
            "'confirm', 'draft', 'draft', '[]', 'executed', 1, 'cli', 4.0, 5.0)"
        )
        con.commit()
    finally:
        con.close()
    status = await _status(capsys, workspace, policies, db)
    climb = _cls(status, "climb")
    assert (climb["level"], climb["samples"], climb["successes"]) == ("confirm", 2, 1)
    assert _cls(status, "ask")["level"] == "draft" and status["tamper_records"] == 0
    code, text = await _cli(capsys, workspace, policies, db, "verify")
    assert code == 0 and text.strip() == "ok: 2 transitions, 1 reviews, chain intact"
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        hashes = await engine.store.call(
            lambda c: c.execute("SELECT prev_hash, hash FROM transitions ORDER BY id").fetchall()
        )
    finally:
        await engine.close()
    assert hashes[0][0] == chain.GENESIS and hashes[1][0] == hashes[0][1]


# -- the rows a decision rests on are checked against their own hash --------------------------------------


@pytest.mark.asyncio
async def test_a_transition_and_the_cache_edited_together_are_not_honoured(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The consistent forgery: the last move's to_level and class_state both say autonomous. The row no
    longer matches its hash, so the class is held at its floor, and that is reported once, not per call."""
    code, _ = await _cli(capsys, workspace, policies, db, "demote", "auto", "--to", "confirm", "--reason", "r")
    assert code == 0
    _sql(db, "UPDATE transitions SET to_level = 'autonomous' WHERE class = 'auto' AND kind = 'human-demote'")
    _sql(db, "UPDATE class_state SET level = 'autonomous' WHERE name = 'auto'")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        outs = [await _write(client, f"auto/{n}.txt") for n in range(2)]
    assert [(o["class_level"], o["status"]) for o in outs] == [("draft", "draft")] * 2
    assert not (workspace / "auto/0.txt").exists()
    [tamper] = _tampers(db, "auto")
    assert "(its level) does not match its hash; held at floor draft" in tamper["reason"]


@pytest.mark.asyncio
async def test_a_forged_promotion_inserted_by_hand_is_not_honoured(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))):
        pass  # a server's first start creates the database and the standings
    _sql(
        db,
        "INSERT INTO transitions (class, at, from_level, to_level, kind, actor, reason, evidence_json) "
        "VALUES ('climb', 0, 'draft', 'autonomous', 'promote', 'ratchet', 'earned', '{}')",
    )
    _sql(db, "UPDATE class_state SET level = 'autonomous', transition_id = (SELECT max(id) FROM transitions)")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "climb/a.txt")
    assert out["status"] == "draft" and not (workspace / "climb/a.txt").exists()
    assert _tampers(db, "climb") != []


@pytest.mark.asyncio
async def test_a_pin_turned_into_an_unpin_by_hand_still_holds(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "auto", "blocked", "--reason", "incident")
    assert code == 0
    _sql(db, "UPDATE transitions SET kind = 'unpin' WHERE class = 'auto' AND kind = 'pin'")
    _sql(db, "UPDATE class_state SET pinned = NULL WHERE name = 'auto'")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "auto/a.txt")
    assert out["status"] == "blocked" and not (workspace / "auto/a.txt").exists()
    # The human clears it by acting again: a fresh, intact pin row decides from then on.
    code, _ = await _cli(capsys, workspace, policies, db, "pin", "auto", "confirm", "--reason", "re-pinned")
    assert code == 0
    assert _cls(await _status(capsys, workspace, policies, db), "auto")["pinned"] == "confirm"


@pytest.mark.asyncio
async def test_a_lifted_freeze_forged_by_hand_keeps_every_class_held(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await _cli(capsys, workspace, policies, db, "freeze", "--level", "draft", "--reason", "incident")
    assert code == 0
    _sql(db, "UPDATE transitions SET kind = 'unfreeze' WHERE class = '*'")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        out = await _write(client, "auto/a.txt")
    assert out["status"] == "blocked" and [t["name"] for t in out["triggers"]] == ["freeze"]
    assert "changed outside Ratchet" in out["triggers"][0]["detail"]
    [tamper] = _tampers(db, "*")  # reported once, for the pseudo-class of every class
    assert "a freeze record" in tamper["reason"]
    assert (await _status(capsys, workspace, policies, db))["tamper_records"] == 1
    code, text = await _cli(capsys, workspace, policies, db, "unfreeze", "--reason", "checked")
    assert code == 0, text
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        assert (await _write(client, "auto/b.txt"))["status"] == "executed"
