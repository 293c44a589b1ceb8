"""What this machine's CLI showed a person: each draft's digest (rules/shown.py) when `ratchet show` or
`ratchet queue` displayed it, so that a later `ratchet approve ID` is an approval of that change and no other.

Kept in a small JSON file beside the trust database (`<db>.shown.json`; for PostgreSQL beside the workspace's
`.ratchet/postgres`), which the agent's file tools and sandboxed commands cannot write (a protected path).
A draft never displayed here is approved as it stands; `--expect DIGEST` names the digest explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ratchet.record.store import Location, beside

SUFFIX = ".shown.json"
KEEP = 1000  # the newest entries kept


def path_for(location: Location, workspace: Path) -> Path:
    """The file for this database and workspace."""
    return Path(f"{beside(location, workspace)}{SUFFIX}")


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(path: Path, digests: dict[int, str]) -> None:
    """Note the digests just displayed (best effort: a file that cannot be written leaves approvals unbound)."""
    if not digests:
        return
    kept = _read(path)
    for action_id, digest in digests.items():
        kept.pop(str(action_id), None)
        kept[str(action_id)] = digest
    newest = dict(list(kept.items())[-KEEP:])
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(newest), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)


def recall(path: Path, action_id: int) -> str | None:
    """The digest last displayed here for this draft, if any."""
    return _read(path).get(str(action_id))
