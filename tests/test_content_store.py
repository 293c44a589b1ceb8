"""The content store keeps prior versions within its bounds; `fs.restore` puts back exact bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ratchet.errors import DraftStale, PathRefused, StoreError
from ratchet.executors import fs
from ratchet.executors.workspace import Workspace
from ratchet.policy.model import UndoStore
from ratchet.record.content import ContentStore, Dropped, Kept


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _store(tmp_path: Path, now: Now, **bounds: Any) -> ContentStore:
    return ContentStore(tmp_path / "content", UndoStore(**bounds), clock=now)


def test_kept_bytes_come_back_exactly_and_a_new_file_keeps_none(tmp_path: Path) -> None:
    store = _store(tmp_path, Now())
    prior = b"line one\r\nline two\r\n\x00binary tail"
    kept = store.keep(7, "src/a.txt", prior, 0o640, "sha256:after")
    assert isinstance(kept, Kept) and kept.existed and kept.mode == 0o640 and kept.size == len(prior)
    again = store.get(7)
    assert again == kept and store.prior_bytes(again) == prior
    new = store.keep(8, "src/new.txt", None, None, "sha256:x")
    assert isinstance(new, Kept) and not new.existed and store.prior_bytes(new) is None
    assert store.get(9) is None


def test_a_file_over_max_file_bytes_is_not_kept_and_says_why(tmp_path: Path) -> None:
    store = _store(tmp_path, Now(), max_file_bytes=10)
    dropped = store.keep(1, "big.bin", b"x" * 11, 0o644, "sha256:y")
    assert isinstance(dropped, Dropped) and "max_file_bytes" in dropped.reason
    assert store.get(1) == dropped
    assert not (tmp_path / "content" / "blobs").exists() or not any((tmp_path / "content" / "blobs").iterdir())


def test_gc_drops_by_age_then_oldest_first_to_fit_the_size_bound(tmp_path: Path) -> None:
    now = Now()
    store = _store(tmp_path, now, max_total_bytes=25, max_age_days=1)
    store.keep(1, "a", b"a" * 10, 0o644, "f1")  # old: dropped by age
    now.t += 86_400 * 2
    store.keep(2, "b", b"b" * 10, 0o644, "f2")
    now.t += 1
    store.keep(3, "c", b"c" * 10, 0o644, "f3")
    now.t += 1
    store.keep(4, "d", b"d" * 10, 0o644, "f4")
    report = store.gc()
    # 1 by age; then 30 bytes > 25: 2 (the oldest left) goes; 20 bytes fit.
    assert report.entries_dropped == 2 and report.blobs_removed == 2 and report.bytes_kept == 20
    first, second = store.get(1), store.get(2)
    assert isinstance(first, Dropped) and "max_age_days" in first.reason
    assert isinstance(second, Dropped) and "25 bytes" in second.reason
    assert isinstance(store.get(3), Kept) and isinstance(store.get(4), Kept)
    three = store.get(3)
    assert isinstance(three, Kept) and store.prior_bytes(three) == b"c" * 10


def test_a_blob_two_entries_share_survives_until_neither_needs_it(tmp_path: Path) -> None:
    now = Now()
    store = _store(tmp_path, now, max_age_days=1)
    store.keep(1, "a", b"same", 0o644, "f1")
    now.t += 86_400 * 2
    store.keep(2, "b", b"same", 0o644, "f2")
    report = store.gc()
    assert report.entries_dropped == 1 and report.blobs_removed == 0
    kept = store.get(2)
    assert isinstance(kept, Kept) and store.prior_bytes(kept) == b"same"


def test_a_tampered_blob_is_refused_not_restored(tmp_path: Path) -> None:
    store = _store(tmp_path, Now())
    kept = store.keep(1, "a", b"original", 0o644, "f")
    assert isinstance(kept, Kept) and kept.blob is not None
    (tmp_path / "content" / "blobs" / kept.blob).write_bytes(b"planted")
    with pytest.raises(StoreError, match="does not match its hash"):
        store.prior_bytes(kept)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


def test_restore_puts_back_exact_bytes_and_mode(ws: Workspace) -> None:
    target = ws.root / "crlf.txt"
    prior = b"a\r\nb\r\n"
    target.write_bytes(b"changed\n")
    target.chmod(0o600)
    done = fs.restore(ws, "crlf.txt", prior, 0o750, expect=fs.fingerprint(b"changed\n"), token="t1")
    assert done.bytes_written == len(prior) and not done.removed
    assert target.read_bytes() == prior and stat.S_IMODE(target.stat().st_mode) == 0o750


def test_restore_removes_a_file_that_did_not_exist_before(ws: Workspace) -> None:
    (ws.root / "new").mkdir()
    (ws.root / "new" / "f.txt").write_text("agent wrote this\n")
    done = fs.restore(ws, "new/f.txt", None, None, expect=fs.fingerprint(b"agent wrote this\n"), token="t2")
    assert done.removed and not (ws.root / "new" / "f.txt").exists()


def test_restore_refuses_when_the_file_changed_since_unless_forced(ws: Workspace) -> None:
    target = ws.root / "f.txt"
    target.write_text("someone else's edit\n")
    with pytest.raises(DraftStale, match="changed since"):
        fs.restore(ws, "f.txt", b"old\n", 0o644, expect=fs.fingerprint(b"what ratchet wrote\n"), token="t3")
    assert target.read_text() == "someone else's edit\n"
    fs.restore(ws, "f.txt", b"old\n", 0o644, expect=None, token="t3")
    assert target.read_text() == "old\n"


def test_restore_never_follows_a_link_planted_at_the_path(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    os.symlink(outside, ws.root / "f.txt")
    with pytest.raises(PathRefused):
        fs.restore(ws, "f.txt", b"old\n", 0o644, expect=None, token="t4")
    assert outside.read_text() == "keep me\n"
