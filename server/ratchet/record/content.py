"""The content store: the prior bytes of every file Ratchet changed, kept so the change can be undone.

It lives beside the trust database (`<database directory>/content/`), which the command sandbox
binds read-only, so an agent's command can neither plant a "prior version" nor delete one. Each
changed file gets an entry named by its action id: the path, whether the file existed, its
permission bits and the fingerprint of what Ratchet wrote (so an undo can tell whether the file
changed since). The bytes themselves are a blob named by their SHA-256, shared by every entry that
kept the same bytes.

Bounds come from `[defaults.undo]`: a file larger than `max_file_bytes` is not kept, and `gc`
drops entries older than `max_age_days`, then the oldest entries until the blobs fit in
`max_total_bytes`. A dropped entry leaves a tombstone that says why, so `undo` can say "its prior
content was dropped" rather than "never kept". Classes marked `secret` are never kept: the caller
does not call `keep` for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from ratchet.errors import StoreError
from ratchet.policy.model import UndoStore

_BLOB = "blobs"
_ENTRY = "entries"


@dataclass(frozen=True)
class Kept:
    """What an action's file held before Ratchet changed it."""

    action_id: int
    path: str
    existed: bool
    mode: int | None
    blob: str | None  # the SHA-256 hex of the prior bytes (None when the file did not exist)
    size: int
    after: str  # the fingerprint ("sha256:<hex>") of what Ratchet wrote
    at: float


@dataclass(frozen=True)
class Dropped:
    """An entry whose prior content is gone: too large to keep, or past the store's bounds."""

    action_id: int
    path: str
    reason: str
    at: float


@dataclass(frozen=True)
class GcReport:
    """What `gc` removed."""

    entries_dropped: int
    blobs_removed: int
    bytes_freed: int
    bytes_kept: int


class ContentStore:
    """Prior versions of changed files, bounded by size and age."""

    def __init__(self, root: Path, bounds: UndoStore, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.bounds = bounds
        self.clock = clock

    @classmethod
    def beside(cls, db_path: Path, bounds: UndoStore, clock: Callable[[], float] = time.time) -> ContentStore:
        """The store that belongs to the trust database at `db_path`."""
        return cls(db_path.parent / "content", bounds, clock)

    def keep(self, action_id: int, path: str, prior: bytes | None, mode: int | None, after: str) -> Kept | Dropped:
        """Record what `path` held before action `action_id` wrote `after` (a fingerprint)."""
        now = self.clock()
        if prior is not None and len(prior) > self.bounds.max_file_bytes:
            dropped = Dropped(
                action_id,
                path,
                f"the prior content ({len(prior)} bytes) was larger than max_file_bytes "
                f"({self.bounds.max_file_bytes}) in [defaults.undo]",
                now,
            )
            self._write_entry(action_id, {"dropped": asdict(dropped)})
            return dropped
        blob = None
        if prior is not None:
            blob = hashlib.sha256(prior).hexdigest()
            target = self._dir(_BLOB) / blob
            if not target.exists():
                _atomic_write(target, prior)
        kept = Kept(action_id, path, prior is not None, mode, blob, len(prior or b""), after, now)
        self._write_entry(action_id, {"kept": asdict(kept)})
        return kept

    def get(self, action_id: int) -> Kept | Dropped | None:
        """The entry for an action, or None when nothing was ever kept for it."""
        try:
            data = json.loads((self.root / _ENTRY / f"{action_id}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"content store entry for action {action_id} is unreadable: {exc}") from exc
        if "kept" in data:
            return Kept(**data["kept"])
        return Dropped(**data["dropped"])

    def prior_bytes(self, kept: Kept) -> bytes | None:
        """The kept bytes (None for a file that did not exist); StoreError if the blob is missing."""
        if kept.blob is None:
            return None
        try:
            data = (self.root / _BLOB / kept.blob).read_bytes()
        except OSError as exc:
            raise StoreError(f"the prior content of action {kept.action_id} is missing from the content store") from exc
        if hashlib.sha256(data).hexdigest() != kept.blob:
            raise StoreError(f"the prior content of action {kept.action_id} does not match its hash; not restoring it")
        return data

    def gc(self) -> GcReport:
        """Drop entries past `max_age_days`, then the oldest until the blobs fit `max_total_bytes`."""
        entries = sorted(self._kept_entries(), key=lambda k: (k.at, k.action_id))
        horizon = self.clock() - self.bounds.max_age_days * 86_400
        dropped = 0
        keep: list[Kept] = []
        for kept in entries:
            if kept.at < horizon:
                self._tombstone(kept, f"dropped after {self.bounds.max_age_days:g} days (max_age_days)")
                dropped += 1
            else:
                keep.append(kept)
        sizes = self._blob_sizes()
        total = sum(sizes[b] for b in {k.blob for k in keep if k.blob} if b in sizes)
        while keep and total > self.bounds.max_total_bytes:
            oldest = keep.pop(0)
            self._tombstone(oldest, f"dropped to keep the store under {self.bounds.max_total_bytes} bytes")
            dropped += 1
            if oldest.blob and all(k.blob != oldest.blob for k in keep):
                total -= sizes.get(oldest.blob, 0)
        referenced = {k.blob for k in keep if k.blob}
        removed = freed = 0
        for blob, size in sizes.items():
            if blob not in referenced:
                with suppress(FileNotFoundError):
                    (self.root / _BLOB / blob).unlink()
                    removed += 1
                    freed += size
        return GcReport(dropped, removed, freed, sum(sizes[b] for b in referenced if b in sizes))

    def _kept_entries(self) -> list[Kept]:
        directory = self.root / _ENTRY
        if not directory.is_dir():
            return []
        found = []
        for entry in directory.glob("*.json"):
            with suppress(ValueError, StoreError):
                item = self.get(int(entry.stem))
                if isinstance(item, Kept):
                    found.append(item)
        return found

    def _blob_sizes(self) -> dict[str, int]:
        directory = self.root / _BLOB
        if not directory.is_dir():
            return {}
        return {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file()}

    def _tombstone(self, kept: Kept, reason: str) -> None:
        self._write_entry(kept.action_id, {"dropped": asdict(Dropped(kept.action_id, kept.path, reason, self.clock()))})

    def _write_entry(self, action_id: int, data: dict[str, object]) -> None:
        _atomic_write(self._dir(_ENTRY) / f"{action_id}.json", json.dumps(data).encode("utf-8"))

    def _dir(self, name: str) -> Path:
        directory = self.root / name
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the content store at {self.root}: {exc}") from exc
        return directory


def _atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temp file and a rename, so a crash leaves old or new, never half.

    Not fsynced, like the trust database's commits (`synchronous = NORMAL`, record/store.py): a killed
    process loses nothing (the page cache outlives it), a power cut may lose the newest entries, and an
    undo of such an action says that nothing was kept. Two fsyncs on every governed write were the
    price otherwise.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        tmp.replace(target)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write to the content store at {target.parent}: {exc}") from exc
