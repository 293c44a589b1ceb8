"""A draft's whole diff, when every preview of it was cut (2,000 lines or 200 KB: executors/fs.py).

The previews a person sees (`ratchet show`, the review page, a dialog) stop at the display limit with a
marker, yet approving runs all of the change. So a draft whose preview was cut (`hidden_lines` > 0) is
approved only by someone who had all of it: `ratchet show ID --full` and the page's "whole diff" give
the whole diff, recomputed from the draft's kept arguments against the file as it is now, and its
digest; `Engine.approve(..., whole=DIGEST)` checks that digest against the whole diff recomputed again
at the approval, so what runs is what was read (a file changed since is refused as stale anyway).
A person who approves their own version (`--content`) needs none of it: they wrote what runs.

Drafts of another origin (a shared record) are left to it: their file is on another machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ratchet.engine.core import Setting
from ratchet.engine.where import Origin
from ratchet.errors import DraftNotFound, DraftStale, WholeDiffUnseen
from ratchet.operations import operation
from ratchet.operations import whole_diff as write_diff
from ratchet.record import actions
from ratchet.record.lifecycle import Status
from ratchet.redact import redact

DIGEST_CHARS = 16  # of the sha256 shown: enough that nobody types another diff's by chance


@dataclass(frozen=True)
class WholeDiff:
    """A draft's whole diff (redacted as every preview is), how much the preview left out, and its digest."""

    action_id: int
    text: str
    lines: int
    hidden_lines: int
    digest: str

    def footer(self) -> str:
        """What `ratchet show --full` prints after it: how to approve exactly this."""
        return (
            f"whole diff of draft {self.action_id}: {self.lines} lines ({self.hidden_lines} of them not in the "
            f"preview), digest {self.digest}; approve exactly this with "
            f"`ratchet approve {self.action_id} --whole {self.digest}`"
        )


def needs_whole(row: dict[str, Any], here: Origin) -> bool:
    """Whether approving this row asks for its whole diff: a queued draft of this origin whose preview was cut."""
    if row["status"] != Status.DRAFT or not int(row["hidden_lines"] or 0):
        return False
    origin = Origin.of_row(row)
    return origin is None or origin == here


async def whole_diff(setting: Setting, action_id: int) -> WholeDiff:
    """The queued draft's whole diff, recomputed now; DraftNotFound when it is not a queued draft (only a
    queued draft's content is kept), DraftStale when its file changed since it was drafted."""
    row = await setting.store.call(lambda conn: actions.action(conn, action_id))
    if row is None:
        raise DraftNotFound(f"no action {action_id}; `ratchet queue` lists the drafts")
    if row["status"] != Status.DRAFT:
        raise DraftNotFound(
            f"action {action_id} is {row['status']}: only a queued draft's whole change is kept, and its preview "
            "is all there is to show"
        )
    op = operation(row["tool"])
    prepared = await op.prepare(setting.op_context(), json.loads(row["args_json"]))
    if prepared.fingerprint != row["fingerprint"]:
        raise DraftStale(
            f"draft {action_id}: {row['target']} changed since it was drafted; approving it would be refused as "
            "stale. Reject it, or ask the agent to redo it"
        )
    whole = write_diff(prepared.plan)
    text = redact(whole) if whole is not None else prepared.shown
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    return WholeDiff(action_id, text, len(text.splitlines()), int(row["hidden_lines"] or 0), digest)


async def check_whole(setting: Setting, here: Origin, action_id: int, whole: str | None, content: str | None) -> None:
    """Before an approval claims a draft: WholeDiffUnseen unless its preview was whole, or `whole` is the
    digest of its whole diff as it stands, or the person approves their own `content`."""
    row = await setting.store.call(lambda conn: actions.action(conn, action_id))
    if row is None or content is not None or not needs_whole(row, here):
        return
    found = await whole_diff(setting, action_id)
    hidden = found.hidden_lines
    if whole is None:
        raise WholeDiffUnseen(
            f"draft {action_id}'s diff is {found.lines} lines and every preview stops at the display limit, so "
            f"{hidden} changed lines were never shown, yet approving runs all of them. Read it whole: "
            f"`ratchet show {action_id} --full` (or the review page's whole diff), then `ratchet approve "
            f"{action_id} --whole DIGEST` with the digest it prints; or approve your own version with --content FILE"
        )
    if whole.strip().lower() != found.digest:
        raise WholeDiffUnseen(
            f"draft {action_id}: --whole {whole} is not the digest of its whole diff as it stands ({found.digest}); "
            f"read it again with `ratchet show {action_id} --full`"
        )
