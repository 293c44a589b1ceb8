"""What a write unit of work locks, when, and how long units waited for their locks.

A unit of work (`Store.run`) locks the whole record unless it names a narrower `Scope`:

- **The whole record** (the default): every check-then-write that spans classes (a freeze, a policy sync,
  the flood brakes, a handoff's budget, an integrity repair) runs alone, as before.
- **A scope** (`Scope.of()`, the units on a call's hot path: an intent, a draft's claim, an outcome) takes the
  whole record shared, so it still excludes a whole-record unit and the other way round, and locks a class
  only where it reads and writes that class's standing, as late as it can: `settling(conn, name)`, called
  right before the standing is read. What a call's outcome writes of its own (its row, its checks' results,
  what its class has now seen) is written before that lock; under it are only the class's window and level
  decision, its session's streak (whose reset depends on that decision: a success that is padding leaves it)
  and any move. Two calls of different classes settle at the same time; two of one class one after the other,
  so each sample's window and move follow every earlier sample of the class, exactly once, in order
  (tests/test_writers.py replays the settle rule over the samples of eight racing writers and finds the
  record it made). A scope may also name classes to lock from its start (`Scope.of("a", "b")`).
- **The hash chain** (record/chain.py) is appended under a lock of its own, taken only when a row is
  appended (a move, a review; after the class's lock): the order of a chain is the order in which the
  database granted that lock, and each appender reads the head its predecessor committed. A sequence could
  number the rows without it, but not chain them: each row's hash is computed from the one before it.
- **A draft's claim** is `UPDATE ... WHERE status = 'draft'` on a row locked with `FOR UPDATE SKIP LOCKED`:
  of two claimers one takes the row and the other skips it at once instead of queueing behind it.

On PostgreSQL these are transaction-scoped advisory locks: the whole record is one key taken exclusively,
or shared by a scoped unit (sent with its BEGIN, one round trip), which then takes each class's key (in
name order, after any it holds: no two units wait on each other in a cycle) and, when it appends to a
chain, that chain's key. A class's lock goes out in the same round trip as the reads that follow it
(record/postgres.py `Connection.read_all`: each read a statement of its own in READ COMMITTED, so it sees
what was committed before the lock was granted), and the unit's last writes go out with its COMMIT
(`Connection.later`): a class is held for two round trips, the rule's reckoning in between and the
commit. SQLite has one writer at a time whatever the scope (`BEGIN IMMEDIATE` takes the file's write
lock): scopes change nothing there, the chain is ordered by that lock, and a claim's conditional UPDATE is
exclusive on its own.

`WAITS` adds up, in this process, the seconds units spent waiting for their locks and how many units ran:
what bench/postgres.py reports as the share of a call's time spent waiting. On SQLite it is timed by this
process around `BEGIN IMMEDIATE`. On PostgreSQL it is the server's clock read just before and just after
each lock statement, in the same query string (`take`): the time the lock was waited for, without the round
trip that carried it (which the figures of earlier versions, timed by the client, counted as waiting too:
about one round trip per unit of work, 4% of a call with a single writer).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

# Advisory lock keys (PostgreSQL): the whole record is a single bigint key (record/postgres.py's WRITE_LOCK);
# classes and chains are (namespace, key) pairs, a key space apart from the single-key one.
CLASS_SPACE = 0x7261  # a class: (CLASS_SPACE, hashtext(name))
CHAIN_SPACE = 0x7262  # a chain: (CHAIN_SPACE, its number below)
CHAIN_KEYS = {"transitions": 1, "reviews": 2}


@dataclass(frozen=True)
class Scope:
    """The classes a unit of work reads and writes the standing of (locked exclusively, in name order)."""

    classes: tuple[str, ...]

    @classmethod
    def of(cls, *names: str) -> Scope:
        """The scope of these classes (duplicates dropped, in name order)."""
        return cls(tuple(sorted(set(names))))


class Waits:
    """Seconds spent waiting for write locks, and units of work run, in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0
        self.units = 0

    def add(self, seconds: float, units: int = 0) -> None:
        """Count `seconds` of waiting (and `units` more units of work)."""
        with self._lock:
            self.seconds += seconds
            self.units += units

    def reset(self) -> None:
        """Start counting again from zero."""
        with self._lock:
            self.seconds, self.units = 0.0, 0


WAITS = Waits()


class Timer:
    """`with Timer(): ...` adds the block's seconds to `WAITS`."""

    def __enter__(self) -> Timer:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        WAITS.add(time.perf_counter() - self._started)


def settling(conn: sqlite3.Connection | Any, *names: str) -> None:
    """Take the locks of these classes now, inside the unit of work, as late as it can: right before it reads
    the standing it will settle (PostgreSQL; in name order, after any it holds). Nothing on SQLite, whose one
    writer already excludes every other, nor in a unit that holds the whole record."""
    if not isinstance(conn, sqlite3.Connection):
        conn.hold(names)


CLOCK = "SELECT clock_timestamp()"  # PostgreSQL's clock as a statement runs (not the transaction's start)


def between_clocks(cursor: Any) -> float:
    """The seconds between the first and the last `CLOCK` reading among a query string's results (PostgreSQL)."""
    stamps = []
    while True:
        if cursor.description is not None and cursor.description[0].name == "clock_timestamp":
            stamps.append(cursor.fetchone()[0])
        if not cursor.nextset():
            break
    return float((stamps[-1] - stamps[0]).total_seconds())


def take(conn: Any, sql: str, params: tuple[Any, ...]) -> None:
    """Take a PostgreSQL lock (`sql`, one statement that waits for it), counting in `WAITS` the wait the
    server's clock saw, sent with the two clock readings as one query string: one round trip."""
    WAITS.add(between_clocks(conn.execute(f"{CLOCK}; {sql}; {CLOCK}", params)))
