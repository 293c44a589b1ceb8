"""What a person approves is what they were shown: a short digest of a change.

`ratchet show`, `ratchet queue`, the review page, the client's dialog and `review_drafts` each display
the digest of the change they show (12 hex digits of a SHA-256 over its tool, target, arguments,
preview, fingerprint and classes), and an approval carries the digest it was given on: the page and the
dialog implicitly, the CLI from what `show` or `queue` last displayed on this machine, or `--expect`.
The approval computes the digest again from the row as it stands and refuses when it differs: a draft
whose arguments, preview, class or bound files changed after it was shown is never run on that
approval. The approval also derives the preview again from the stored arguments and refuses when it is
not the preview recorded (a preview rewritten to hide what the arguments do).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

LENGTH = 12


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(tool: str, target: str, args: Any, preview: str, fingerprint: str | None, classes: tuple[str, ...]) -> str:
    """The short digest of a change."""
    facts = {"tool": tool, "target": target, "args": args, "preview": preview, "fingerprint": fingerprint}
    text = _canonical({**facts, "classes": classes})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:LENGTH]


def of_row(row: dict[str, Any]) -> str:
    """The digest of a recorded action (a draft) as it stands in the record."""
    try:
        args = json.loads(row["args_json"])
    except (TypeError, ValueError):
        args = row["args_json"]
    classes = (str(row["class"]), str(row["evidence_class"] or row["class"]))
    return digest(row["tool"], row["target"], args, row["preview"], row["fingerprint"], classes)


def normal(given: str) -> str:
    """A digest as a person typed it (case and spaces forgiven)."""
    return given.strip().lower()
