"""Every error Ratchet raises on purpose, in one small hierarchy.

    RatchetError                      base: a message a human or a model can act on
    ├── PolicyError                   a policy file is malformed (names file, key, problem)
    ├── InvalidRequest                the caller's arguments are wrong (names what, and what was expected)
    │   ├── PathRefused               a path is outside the workspace or protected (names the rule)
    │   ├── EditNotFound              an edit's old_text does not occur in the file
    │   ├── EditAmbiguous             an edit's old_text occurs more times than the edit allows
    │   ├── LimitExceeded             a call is over a policy limit (names it, the value, how to raise it)
    │   │   └── DraftCapReached       too many drafts wait for a human: stop and hand off
    │   └── UsageError                a command line that cannot be right whatever the state (CLI exit 2)
    ├── ExecutionFailed               an executor ran and the action did not succeed
    ├── DraftError                    a draft cannot be acted on
    │   ├── DraftNotFound             no draft with that id
    │   ├── DraftAlreadyResolved      approved, rejected or expired before
    │   ├── DraftStale                its target changed since it was drafted
    │   │   └── DraftChanged          it is not what the person approving it was shown
    │   ├── OtherReviewerRequired     its class needs another person's approval than its drafter's
    │   └── WholeDiffUnseen           its diff is longer than any preview, and was not read whole
    ├── ReviewerRoleRequired          a human's act asked under the agent's database role
    └── StoreError                    the trust database is unusable (names the file)

Edges translate once: the CLI turns a RatchetError into a one-line message and exit code 1 (a
UsageError, like a malformed command line, exits 2); the MCP server
turns it into a ToolError the model can read. Anything else is a bug and surfaces as one.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DraftAlreadyResolved",
    "DraftCapReached",
    "DraftChanged",
    "DraftError",
    "DraftNotFound",
    "DraftStale",
    "EditAmbiguous",
    "EditNotFound",
    "ExecutionFailed",
    "InvalidRequest",
    "LimitExceeded",
    "OtherReviewerRequired",
    "PathRefused",
    "PolicyError",
    "RatchetError",
    "ReviewerRoleRequired",
    "StoreError",
    "UsageError",
    "WholeDiffUnseen",
]


class RatchetError(Exception):
    """Base class: the message says what was wrong and what was expected."""


class PolicyError(RatchetError):
    """A policy file is malformed. Serving refuses to start half-configured."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class InvalidRequest(RatchetError):
    """The caller's arguments cannot be acted on as given."""


class PathRefused(InvalidRequest):
    """A path escapes the workspace or names something the tools may never touch."""

    def __init__(self, path: str, rule: str, detail: str) -> None:
        self.path = path
        self.rule = rule
        super().__init__(f"path {path!r} refused by rule {rule!r}: {detail}")


class EditNotFound(InvalidRequest):
    """An exact-match edit's old_text is not in the file."""


class EditAmbiguous(InvalidRequest):
    """An exact-match edit's old_text occurs more often than the edit allows."""


class LimitExceeded(InvalidRequest):
    """A call is over one of the policy's limits: `key` is the limit, `value` the call's, `limit` the bound."""

    def __init__(self, key: str, value: int, limit: int, message: str) -> None:
        self.key = key
        self.value = value
        self.limit = limit
        super().__init__(message)


class DraftCapReached(LimitExceeded):
    """A call would queue a draft past `max_drafts_per_session` or `max_drafts_per_workspace`: nothing is
    queued, and the agent is told to stop and hand off (engine/flood.py)."""


class UsageError(InvalidRequest):
    """A command line that cannot be right whatever the state (the CLI exits 2, like argparse)."""


class ExecutionFailed(RatchetError):
    """The executor ran and the action did not succeed (the outcome is recorded as failed).

    `result` keeps what the run produced (a command's exit code and output) for the record.
    """

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        self.result = result
        super().__init__(message)


class DraftError(RatchetError):
    """A draft cannot be acted on."""


class DraftNotFound(DraftError):
    """No draft has that id."""


class DraftAlreadyResolved(DraftError):
    """The draft was approved, rejected or expired before; it runs at most once."""


class DraftStale(DraftError):
    """The draft's target changed since it was drafted; approving it would overwrite that change."""


class DraftChanged(DraftStale):
    """The draft is not what the person approving it was shown (rules/shown.py): its digest, or the preview its
    stored arguments give, differs. Nothing runs; it is stale."""


class OtherReviewerRequired(DraftError):
    """The draft's class says `require_other_reviewer`, and the approver is the one who drafted it."""


class ReviewerRoleRequired(RatchetError):
    """A human's act (an approval, a pin, ...) asked of a process whose database role is the agent's."""


class WholeDiffUnseen(DraftError):
    """A draft whose diff was cut in every preview is approved only by someone who had all of it: the
    digest of its whole diff (`ratchet show ID --full`, the page's whole diff), or their own --content."""


class StoreError(RatchetError):
    """The trust database cannot be opened or has an unknown schema."""
