"""Drafts approved on one machine and run on another: the record's side of "execution happens where the
workspace lives" (engine/origin.py is the engine's).

A draft records its origin (host and workspace) when it is queued. A human's approval given anywhere
else moves it `draft -> approved` with the approval kept as JSON (`approval_json`), and wakes the
origin: on PostgreSQL with `NOTIFY` on `CHANNEL`, delivered when the unit of work commits; on SQLite
the origin polls. The origin claims it `approved -> approving` (`actions.claim_draft`), atomically,
so two processes of one origin racing for it run it once.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable

from ratchet.record import actions, lifecycle, postgres
from ratchet.record.lifecycle import Status

log = logging.getLogger("ratchet")

# The PostgreSQL notification channel an approval for another machine is announced on.
CHANNEL = "ratchet_approved"
_OPEN_SQL = ", ".join(f"'{s.value}'" for s in lifecycle.OPEN)


def approve_elsewhere(
    conn: sqlite3.Connection,
    action_id: int,
    approval_json: str,
    review: actions.Review,
) -> bool:
    """Move a queued draft to `approved`, keeping the human's approval for its origin to carry out, and
    announce it; False when it was no longer a queued draft. The review's columns are filled in so the
    queue shows who approved it; the review is chained when the origin runs it, as a local approval is."""
    lifecycle.check(Status.DRAFT, Status.APPROVED)
    changed = conn.execute(
        "UPDATE actions SET status = ?, approval_json = ?, reviewer = ?, review_note = ?, review_channel = ?, "
        "review_seconds = ?, edited = ?, reviewed_by = ? WHERE id = ? AND status = ?",
        (
            Status.APPROVED.value,
            approval_json,
            review.reviewer,
            review.note,
            review.channel,
            review.seconds,
            int(review.edited),
            review.identity,
            action_id,
            Status.DRAFT.value,
        ),
    ).rowcount
    if changed:
        announce(conn)
    return bool(changed)


def announce(conn: sqlite3.Connection) -> None:
    """Wake the origins listening on a shared PostgreSQL record (sent when the transaction commits); on
    SQLite nothing: the origins poll."""
    if isinstance(conn, postgres.Connection):
        conn.execute("SELECT pg_notify(?, '')", (CHANNEL,))


def waiting_for(conn: sqlite3.Connection, host: str, workspace: str) -> list[actions.Row]:
    """The approved drafts of this origin, oldest first."""
    # The first condition repeats the partial index's own (`actions_open`), so SQLite uses it.
    rows = conn.execute(
        f"SELECT * FROM actions WHERE status IN ({_OPEN_SQL}) AND status = ? AND origin_host = ? "
        "AND origin_workspace = ? ORDER BY id",
        (Status.APPROVED.value, host, workspace),
    )
    return [dict(r) for r in rows]


class Listener:
    """A dedicated PostgreSQL connection, on its own thread, that `LISTEN`s for approvals and calls `wake`
    (from that thread) on each. A lost connection is opened again after `retry_s`; the origin's poll
    covers what was announced meanwhile."""

    def __init__(self, url: str, wake: Callable[[], None], *, retry_s: float = 2.0) -> None:
        self.url = url
        self.wake = wake
        self.retry_s = retry_s
        self._stop = threading.Event()
        self.listening = threading.Event()  # set once LISTEN is in place (tests wait for it)
        self._thread = threading.Thread(target=self._serve, name="ratchet-listen", daemon=True)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; the thread ends within a fraction of a second."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        import psycopg  # optional: the postgres extra

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=postgres.CONNECT_TIMEOUT, application_name="ratchet"
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self.wake()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("ratchet: listening for approvals on %s: %s", postgres.shown(self.url), exc)
                self._stop.wait(self.retry_s)


def stop_quietly(listener: Listener | None) -> None:
    """Stop a listener if there is one."""
    if listener is not None:
        with contextlib.suppress(RuntimeError):
            listener.stop()
