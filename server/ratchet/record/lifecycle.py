"""An action's status and the moves it may make: the one vocabulary of the API and the database.

Every recorded action is born in one of the states on the left and moves only along the arrows;
the states with no arrow out are final. A row is never moved back, and nothing else moves it.

    (insert) ──> running ───────┬──> executed
                                ├──> failed
                                └──> interrupted   (the process died, or the client cancelled)

    (insert) ──> draft ──> approving ──┬──> executed / failed
                   │  │        ^       ├──> stale        (the target changed since drafting)
                   │  │        │       └──> interrupted
                   │  └──> approved     (approved on another machine: its origin runs it)
                   │           │
                   └──> rejected <──┘   (withdrawn while it waits)

    (insert) ──> allowed / asked ──┬──> executed / failed   (a client ran it itself)
                                   ├──> declined
                                   └──> unanswered

    (insert) ──> escalated ──> resolved      (an agent's handoff, answered)
    (insert) ──> declined / blocked / refused (final at once; a block is answered, not moved)

The same words are used everywhere: a tool's outcome, `get_draft`, `ratchet history` and the
`actions.status` column all say `draft`, never a second spelling.
"""

from __future__ import annotations

from enum import StrEnum

from ratchet.errors import StoreError


class Status(StrEnum):
    """What became of a recorded action (see the module docstring for its lifecycle)."""

    RUNNING = "running"
    DRAFT = "draft"
    APPROVING = "approving"
    APPROVED = "approved"
    ALLOWED = "allowed"
    ASKED = "asked"
    ESCALATED = "escalated"
    EXECUTED = "executed"
    FAILED = "failed"
    DECLINED = "declined"
    BLOCKED = "blocked"
    REFUSED = "refused"
    REJECTED = "rejected"
    STALE = "stale"
    INTERRUPTED = "interrupted"
    UNANSWERED = "unanswered"
    RESOLVED = "resolved"


S = Status

# Where a new row may start.
BORN: frozenset[Status] = frozenset(
    {S.RUNNING, S.DRAFT, S.ALLOWED, S.ASKED, S.ESCALATED, S.DECLINED, S.BLOCKED, S.REFUSED}
)

# Every allowed move, written once: from a state to the states it may become.
MOVES: dict[Status, frozenset[Status]] = {
    S.RUNNING: frozenset({S.EXECUTED, S.FAILED, S.INTERRUPTED}),
    S.DRAFT: frozenset({S.APPROVING, S.APPROVED, S.REJECTED}),
    # Decided by a human elsewhere; claimed by the process of the draft's origin (engine/origin.py).
    S.APPROVED: frozenset({S.APPROVING, S.REJECTED}),
    S.APPROVING: frozenset({S.EXECUTED, S.FAILED, S.STALE, S.INTERRUPTED}),
    S.ALLOWED: frozenset({S.EXECUTED, S.FAILED, S.DECLINED, S.UNANSWERED}),
    S.ASKED: frozenset({S.EXECUTED, S.FAILED, S.DECLINED, S.UNANSWERED}),
    S.ESCALATED: frozenset({S.RESOLVED}),
}

# Not yet settled: waiting for an executor, a human, a draft's origin or a client (the `actions_open`
# index holds these four; `allowed`/`asked` wait for a client's report).
OPEN: tuple[Status, ...] = (S.RUNNING, S.DRAFT, S.APPROVING, S.APPROVED)
# In the queue a human sees: waiting for an answer, or approved and waiting for the draft's origin.
QUEUED: tuple[Status, ...] = (S.DRAFT, S.APPROVED)
# What a process that died leaves behind, turned into `interrupted` at the next open.
IN_FLIGHT: tuple[Status, ...] = (S.RUNNING, S.APPROVING)
# Waiting for a client to say what became of a call it ran itself.
WITH_CLIENT: tuple[Status, ...] = (S.ALLOWED, S.ASKED)
# Stopped for a human: a block's packet or an agent's handoff.
ESCALATIONS: tuple[Status, ...] = (S.BLOCKED, S.ESCALATED)
FINAL: frozenset[Status] = frozenset(s for s in Status if s not in MOVES)


class IllegalMove(StoreError):
    """A status change the lifecycle does not allow: a bug, refused before it reaches the record."""


def parse(value: str) -> Status:
    """A recorded status word as a Status; StoreError names an unknown word."""
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise StoreError(f"unknown action status {value!r}; the record knows: {known}") from None


def sources(to: Status) -> tuple[Status, ...]:
    """The states that may move to `to` (what an UPDATE's `WHERE status IN (...)` names)."""
    return tuple(s for s, targets in MOVES.items() if to in targets)


def check_born(status: Status) -> Status:
    """Refuse a new row in a state no action starts in."""
    if status not in BORN:
        raise IllegalMove(
            f"an action cannot be recorded as {status.value!r} from the start; it starts as one of: "
            f"{', '.join(sorted(s.value for s in BORN))}"
        )
    return status


def check(current: Status | str, to: Status) -> None:
    """Refuse a move the lifecycle does not allow, naming both states and the moves that are allowed."""
    here = parse(current) if not isinstance(current, Status) else current
    allowed = MOVES.get(here, frozenset())
    if to not in allowed:
        if not allowed:
            raise IllegalMove(f"an action that is {here.value} is final; it cannot become {to.value}")
        raise IllegalMove(
            f"an action that is {here.value} cannot become {to.value}; from {here.value} it may become: "
            f"{', '.join(sorted(s.value for s in allowed))}"
        )
