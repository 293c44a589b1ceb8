"""A hash chain over the record of trust: every transition and every human review.

Each row of `transitions` and of `reviews` stores `prev_hash` (the hash of the row before it in
the same table, `GENESIS` for the first) and `hash = sha256(prev_hash + canonical JSON of the
row's facts)`, where the facts are every column but the two hashes (`TRANSITION_FACTS`,
`REVIEW_FACTS`) and canonical JSON is sorted keys, no spaces, UTF-8. Rows are appended inside the
writer's transaction, under SQLite's one write lock (BEGIN IMMEDIATE) or, on PostgreSQL, under the
chain's own lock held to the commit (record/locks.py), so two writers cannot fork the chain.

What `verify` proves, and what it does not:

- It proves that no chained row was edited, deleted or inserted in the middle of the record by
  someone who did not recompute every hash after it: an UPDATE of a transition's `to_level`, a
  DELETE of a pin, an INSERT of a promotion without a hash, each breaks a link, and `verify`
  names the first broken row.
- It proves nothing against someone who can write the database file and recomputes the chain:
  the hash has no key, because any key Ratchet could keep on this machine the same writer could
  read. Nor does it notice rows removed from the end. Against both, keep the head hash out of
  band: `ratchet verify --head` prints it; `ratchet verify --expect HASH` later fails unless the
  record still extends to exactly that head (rows appended since are fine; see `verify`).
- It covers transitions and reviews (accepts, refusals, complaints). It does not cover the
  action rows themselves, their sample labels or the `samples` table (a window rebuilt from forged
  samples is believed), nor `class_state` (a cache, checked against the transitions by
  record/integrity.py on every decision, which also checks the hash of each row a decision rests on).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from ratchet.record.locks import CHAIN_KEYS, CHAIN_SPACE, take

GENESIS = "0" * 64
TRANSITION_FACTS = (
    "id", "class", "at", "from_level", "to_level", "kind", "actor", "reason", "evidence_json", "action_id"
)  # fmt: skip
REVIEW_FACTS = ("id", "action_id", "at", "kind", "actor", "seconds", "note", "identity")
CHAINS = {"transitions": TRANSITION_FACTS, "reviews": REVIEW_FACTS}
# Facts added after rows were chained: hashed only when present, so every older row keeps its hash.
LATER_FACTS = frozenset({"identity"})


def link(prev_hash: str, facts: dict[str, Any]) -> str:
    """The hash of one row: sha256 of the previous row's hash and the row's canonical JSON."""
    kept = {name: value for name, value in facts.items() if value is not None or name not in LATER_FACTS}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, table: str, facts: dict[str, Any]) -> int:
    """Insert a row at the end of `table`'s chain (inside the caller's transaction); its id."""
    names = CHAINS[table]
    if not isinstance(conn, sqlite3.Connection):
        # PostgreSQL: writers of different classes run at once; the chain's own lock orders its appends, and
        # the head read after it is the one the previous appender committed (record/locks.py).
        take(conn, "SELECT pg_advisory_xact_lock(?, ?)", (CHAIN_SPACE, CHAIN_KEYS[table]))
    last = conn.execute(f"SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    row_id = 1 if last is None else int(last[0]) + 1
    prev = GENESIS if last is None else (last[1] or GENESIS)
    full = {"id": row_id, **facts}
    values = [full[name] for name in names]
    marks = ", ".join("?" * (len(names) + 2))
    conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}, prev_hash, hash) VALUES ({marks})",
        (*values, prev, link(prev, full)),
    )
    return row_id


def add_review(
    conn: sqlite3.Connection,
    action_id: int,
    at: float,
    kind: str,
    actor: str,
    seconds: float | None,
    note: str | None,
    identity: str | None = None,
) -> int:
    """Record a human review (kind `accept`, `refuse` or `complaint`) in the chain, with who gave it; its id."""
    facts = {"action_id": action_id, "at": at, "kind": kind, "actor": actor, "seconds": seconds, "note": note}
    return append(conn, "reviews", {**facts, "identity": identity})


PENDING = "pending"


def backfill(conn: sqlite3.Connection) -> int:
    """Chain the rows of a record written before the chain existed; how many rows were hashed.

    The migration that added the chain marked the rows that existed then as `PENDING`; they are
    chained here, in order, once. A row without a hash written later (by hand, outside Ratchet) is
    never chained: `verify` and the gate report it.
    """
    done = 0
    for table, names in CHAINS.items():
        first = conn.execute(f"SELECT hash FROM {table} ORDER BY id LIMIT 1").fetchone()
        if first is None or first[0] != PENDING:
            continue
        prev = GENESIS
        for row in conn.execute(f"SELECT {', '.join(names)}, hash FROM {table} ORDER BY id").fetchall():
            if row[len(names)] != PENDING:
                break
            facts = dict(zip(names, row[: len(names)], strict=True))
            digest = link(prev, facts)
            conn.execute(f"UPDATE {table} SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, facts["id"]))
            prev = digest
            done += 1
    return done


@dataclass(frozen=True)
class Verification:
    """The outcome of walking both chains."""

    transitions: int
    reviews: int
    head: str
    broken: str | None

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken is None

    def line(self) -> str:
        """`ok: 12 transitions, 30 reviews, chain intact` or the first broken link."""
        if self.broken is not None:
            return f"broken: {self.broken}"
        return f"ok: {self.transitions} transitions, {self.reviews} reviews, chain intact"


def _walk(conn: sqlite3.Connection, table: str) -> tuple[int, str, list[str], str | None]:
    """Count, head hash, every hash in order, and the first broken link of one table's chain."""
    names = CHAINS[table]
    singular = table.rstrip("s")
    prev, prev_id = GENESIS, None
    hashes: list[str] = []
    count = 0
    for row in conn.execute(f"SELECT {', '.join(names)}, prev_hash, hash FROM {table} ORDER BY id").fetchall():
        facts = dict(zip(names, row[: len(names)], strict=True))
        row_prev, row_hash = row[len(names)], row[len(names) + 1]
        where = f"{singular} {facts['id']}"
        if row_hash is None:
            return count, prev, hashes, f"{where} has no hash: it was written outside Ratchet"
        if row_prev != prev:
            after = f"{singular} {prev_id}" if prev_id is not None else "the start of the record"
            return (
                count,
                prev,
                hashes,
                (f"{where} does not follow {after}: a row between them was deleted, or rows were reordered"),
            )
        if link(prev, facts) != row_hash:
            return count, prev, hashes, f"{where} does not match its hash: it was edited after it was written"
        prev, prev_id = row_hash, facts["id"]
        hashes.append(row_hash)
        count += 1
    return count, prev, hashes, None


def head_of(transitions_head: str, reviews_head: str) -> str:
    """One value naming both chains' heads, the one to keep out of band: the first 128 bits of each."""
    return transitions_head[:32] + reviews_head[:32]


def verify(conn: sqlite3.Connection, expect: str | None = None) -> Verification:
    """Walk both chains; with `expect`, also require that the record still contains that head.

    A head taken earlier is found when both chains still contain the rows it names: rows appended
    since are fine; rows removed from the end, or a rewritten record, are not.
    """
    n_t, head_t, hashes_t, broken_t = _walk(conn, "transitions")
    n_r, head_r, hashes_r, broken_r = _walk(conn, "reviews")
    head = head_of(head_t, head_r)
    broken = broken_t or broken_r
    if broken is None and expect is not None and expect != head:
        want_t, want_r = expect.strip().lower()[:32], expect.strip().lower()[32:]
        found_t = any(h[:32] == want_t for h in (GENESIS, *hashes_t))
        found_r = any(h[:32] == want_r for h in (GENESIS, *hashes_r))
        if len(expect.strip()) != 64 or not (found_t and found_r):
            broken = (
                f"the record does not contain head {expect}: rows were removed from the end, or the "
                "record was rewritten since that head was taken"
            )
    return Verification(n_t, n_r, head, broken)
