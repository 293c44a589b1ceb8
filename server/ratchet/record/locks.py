"""What a write unit of work locks, and how long units waited for their locks.

A unit of work (`Store.run`) locks the whole record unless it names a narrower `Scope`:

- **The whole record** (the default): every check-then-write that spans classes (a freeze, a policy sync,
  the flood brakes, a handoff's budget, an integrity repair) runs alone, as before.
- **A scope of classes**: the units on a call's hot path (an autonomous call's intent and its outcome, a
  draft's claim and its settling) lock only the classes whose window, streak and standing they read and
  write. Two calls of different classes settle at the same time; two of one class one after the other,
  so a class's window and streak are read and written by one writer at a time. Such a unit still excludes
  a whole-record unit, and the other way round.
- **The hash chain** (record/chain.py) is appended under a lock of its own, taken only when a row is
  appended (a move, a review): the order of a chain is the order in which the database granted that lock,
  and each appender reads the head its predecessor committed.
- **A draft's claim** is `UPDATE ... WHERE status = 'draft'` on a row locked with `FOR UPDATE SKIP LOCKED`:
  of two claimers one takes the row and the other skips it at once instead of queueing behind it.

On PostgreSQL these are transaction-scoped advisory locks: the whole record is one key taken exclusively,
and taken shared by a scoped unit, which then takes each class's key (in name order: no two units wait on
each other in a cycle) and, when it appends to a chain, that chain's key. SQLite has one writer at a time
whatever the scope (`BEGIN IMMEDIATE` takes the file's write lock): scopes change nothing there, the chain
is ordered by that lock, and a claim's conditional UPDATE is exclusive on its own.

`WAITS` adds up, in this process, the seconds units spent waiting for their locks (`BEGIN IMMEDIATE`'s
wait on SQLite, the advisory locks on PostgreSQL) and how many units ran: what bench/postgres.py reports
as the share of a call's time spent waiting.
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
