"""An action's status is a type with a lifecycle: the moves are written once and an illegal one is refused."""

from __future__ import annotations

import sqlite3
from typing import get_args

import pytest

from ratchet.errors import StoreError
from ratchet.record import actions, lifecycle
from ratchet.record.lifecycle import IllegalMove, Status
from ratchet.record.schema import MIGRATIONS
from ratchet.record.store import Store, parse_location
from ratchet.results import Outcome

from .helpers import intent_row


def test_every_move_is_between_known_states_and_final_states_have_none() -> None:
    for here, targets in lifecycle.MOVES.items():
        assert here not in targets  # no state moves to itself
        assert targets <= set(Status)
    assert {Status.EXECUTED, Status.REJECTED, Status.INTERRUPTED, Status.REFUSED} <= lifecycle.FINAL
    assert lifecycle.sources(Status.APPROVING) == (Status.DRAFT, Status.APPROVED)
    assert set(lifecycle.sources(Status.REJECTED)) == {Status.DRAFT, Status.APPROVED}  # withdrawn while it waits
    assert set(lifecycle.sources(Status.INTERRUPTED)) == {Status.RUNNING, Status.APPROVING}


def test_an_illegal_move_names_both_states_and_what_is_allowed() -> None:
    with pytest.raises(
        IllegalMove, match=r"draft cannot become executed; from draft it may become: approved, approving, rejected"
    ):
        lifecycle.check(Status.DRAFT, Status.EXECUTED)
    with pytest.raises(IllegalMove, match="executed is final"):
        lifecycle.check("executed", Status.FAILED)
    with pytest.raises(StoreError, match="unknown action status 'drafted'"):
        lifecycle.parse("drafted")
    lifecycle.check(Status.RUNNING, Status.EXECUTED)  # a legal move passes


def test_the_api_speaks_the_lifecycle_words() -> None:
    assert set(get_args(Outcome)) <= {s.value for s in Status}
    assert Status.DRAFT == "draft"
    # The partial index of open actions names exactly the open states, in the newest schema.
    newest = [step for step in MIGRATIONS if "actions_open" in step][-1]
    assert all(f"'{s.value}'" in newest for s in lifecycle.OPEN)


@pytest.mark.asyncio
async def test_the_record_refuses_an_illegal_move_and_keeps_the_row_as_it_was(backend: str) -> None:
    store = await Store.open(parse_location(backend))
    try:
        executed = await store.run(lambda c: actions.insert_intent(c, intent_row(Status.RUNNING)))
        await store.run(lambda c: actions.finish(c, executed, Status.EXECUTED, None, None))
        with pytest.raises(IllegalMove, match="executed is final; it cannot become failed"):
            await store.run(lambda c: actions.finish(c, executed, Status.FAILED, None, "again"))
        with pytest.raises(IllegalMove, match="cannot be recorded as 'executed' from the start"):
            await store.run(lambda c: actions.insert_intent(c, intent_row(Status.EXECUTED)))
        draft = await store.run(lambda c: actions.insert_intent(c, intent_row(Status.DRAFT)))
        with pytest.raises(IllegalMove, match="draft cannot become executed"):
            await store.run(lambda c: actions.finish(c, draft, Status.EXECUTED, None, None))

        def read(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
            return [(r[0], r[1]) for r in conn.execute("SELECT status, error FROM actions ORDER BY id")]

        rows = await store.call(read)
    finally:
        await store.close()
    assert rows == [("executed", None), ("draft", None)]  # nothing half-written, nothing extra
