"""The filesystem executor: plan a write or an exact-match edit, then apply it atomically.

Planning is pure reading: ``plan_write``/``plan_edit`` confine the path, read the current file and
return a ``WritePlan`` carrying its fingerprint, the full new text and a diff to preview.
``apply_plan`` refuses if the file changed since (``DraftStale``), then writes a temp file beside the
target and renames it into place, so readers see the old bytes or the new ones, never half of each.

Every open below the workspace root goes through directory descriptors opened with
``O_DIRECTORY | O_NOFOLLOW``, walked one component at a time from the root: a parent swapped for a
symlink after ``Workspace.relpath`` checked it cannot redirect the write. Because the target is
replaced by rename, a hard link to a file outside the workspace is unlinked, never written through.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from ratchet.errors import DraftStale, EditAmbiguous, EditNotFound, ExecutionFailed, InvalidRequest, PathRefused
from ratchet.executors.workspace import Workspace

__all__ = [
    "Edit",
    "FileState",
    "WritePlan",
    "WriteResult",
    "apply_plan",
    "fingerprint",
    "plan_edit",
    "plan_write",
    "read_state",
    "temp_path_for",
    "whole_diff",
]

_MAX_DIFF_LINES = 2000
_MAX_DIFF_CHARS = 200_000
_NAME_MAX = 255  # bytes per path component on every filesystem we care about
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NO_FOLLOW = "it is a symbolic link; writes never follow links"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileState:
    """What a path held when it was read."""

    exists: bool
    fingerprint: str  # "sha256:<hex>" of the bytes, or "absent"
    text: str | None  # decoded UTF-8 text (None if absent)
    newline: str  # "\r\n" if most line endings are CRLF, else "\n"
    mode: int | None  # permission bits if it exists


@dataclass(frozen=True)
class Edit:
    """Replace literal ``old_text`` with ``new_text``: once (``count=None``) or exactly ``count`` times."""

    old_text: str
    new_text: str
    count: int | None = None


@dataclass(frozen=True)
class WritePlan:
    """A previewable write: apply it only while the file still matches ``before``."""

    rel: str
    before: FileState
    new_text: str
    diff: str
    # Changed lines the preview folds away past its size budget (its marker says so for humans; the
    # reading-time rule counts this number, recorded with the action).
    hidden_lines: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What ``apply_plan`` did."""

    rel: str
    created: bool
    bytes_written: int
    fingerprint: str


def fingerprint(data: bytes | None) -> str:
    """Return ``"sha256:<hex>"`` of ``data``, or ``"absent"`` for a missing file."""
    return "absent" if data is None else "sha256:" + hashlib.sha256(data).hexdigest()


def read_state(ws: Workspace, rel: str) -> FileState:
    """Read the file at workspace path ``rel`` (confined again here) without following links."""
    rel = ws.relpath(rel)
    try:
        with ExitStack() as stack:
            parent, missing, leaf = _walk(ws, rel, stack)
            data, mode = (None, None) if missing else _read_leaf(parent, leaf, rel)
    except OSError as exc:
        raise InvalidRequest(f"{rel} cannot be read: {exc.strerror}") from exc
    if data is None:
        return FileState(exists=False, fingerprint="absent", text=None, newline="\n", mode=None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{rel} is not UTF-8 text (byte {exc.start}); it cannot be edited") from exc
    crlf = text.count("\r\n")
    newline = "\r\n" if crlf > text.count("\n") - crlf else "\n"
    return FileState(exists=True, fingerprint=fingerprint(data), text=text, newline=newline, mode=mode)


def plan_write(ws: Workspace, path: str, content: str) -> WritePlan:
    """Plan replacing (or creating) ``path`` with ``content``, keeping an existing file's CRLF endings."""
    rel = ws.relpath(path)
    before = read_state(ws, rel)
    new_text = content
    # Only convert content that carries no CR at all: if the agent wrote CRs, it meant them.
    if before.newline == "\r\n" and "\r" not in content:
        new_text = content.replace("\n", "\r\n")
    return _plan(rel, before, new_text)


def plan_edit(
    ws: Workspace, path: str, edits: Sequence[Edit], before_diff: Callable[[str], None] | None = None
) -> WritePlan:
    """Plan applying exact-match ``edits`` in order, each to the result of the previous one.

    ``before_diff`` sees the edited text before it is diffed (and may refuse it, e.g. for its size).
    """
    rel = ws.relpath(path)
    if not edits:
        raise InvalidRequest("edits is empty; pass at least one {old_text, new_text}")
    before = read_state(ws, rel)
    if before.text is None:
        raise InvalidRequest(f"{rel} does not exist; create it with a write instead of an edit")
    crlf = before.newline == "\r\n"
    # Agents quote files with LF; match against LF text so their old_text finds a CRLF file's lines.
    text = before.text.replace("\r\n", "\n") if crlf else before.text
    for index, edit in enumerate(edits):
        old, new = edit.old_text, edit.new_text
        if crlf:
            old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
        if not old:
            raise InvalidRequest(f"edits[{index}]: old_text is empty; quote the text to replace")
        if edit.count is not None and edit.count < 1:
            raise InvalidRequest(f"edits[{index}]: count must be at least 1, got {edit.count}")
        found = text.count(old)
        wanted = 1 if edit.count is None else edit.count
        if found == 0:
            raise EditNotFound(
                f"edits[{index}]: old_text {_excerpt(old)} does not occur in {rel}"
                + (" (after earlier edits)" if index else "")
                + "; re-read the file and quote it exactly, including whitespace"
            )
        if found > wanted:
            raise EditAmbiguous(
                f"edits[{index}]: old_text {_excerpt(old)} occurs {found} times in {rel}, expected {wanted};"
                f" pass count={found} to replace every occurrence, or a longer old_text that occurs once"
            )
        if found < wanted:
            raise EditNotFound(
                f"edits[{index}]: old_text {_excerpt(old)} occurs {found} times in {rel}, expected {wanted}"
            )
        text = text.replace(old, new)  # str.replace is literal: "\1" and "$&" stay as written
    new_text = text.replace("\n", "\r\n") if crlf else text
    if before_diff is not None:
        before_diff(new_text)
    return _plan(rel, before, new_text)


def temp_path_for(ws: Workspace, rel: str, token: str) -> Path:
    """Where ``apply_plan`` stages ``rel``: ``.{name}.ratchet-{token}.tmp`` in the same directory."""
    parent, _, leaf = rel.rpartition("/")
    return ws.root / parent / _temp_name(leaf, token)


def discard_temp(ws: Workspace, rel: str, token: str) -> bool:
    """Remove the temp file a crashed ``apply_plan`` left for ``rel``; True if one was removed.

    Walks the parents with ``O_NOFOLLOW`` like a write does, so a parent swapped for a link since
    the crash cannot make recovery delete a file elsewhere.
    """
    try:
        with ExitStack() as stack:
            parent, missing, leaf = _walk(ws, ws.relpath(rel), stack)
            if missing:
                return False
            os.unlink(_temp_name(leaf, token), dir_fd=parent)
    except (OSError, InvalidRequest):
        return False
    return True


def apply_plan(ws: Workspace, plan: WritePlan, *, token: str) -> WriteResult:
    """Write ``plan`` atomically if the file still matches what was previewed.

    ``token`` (letters, digits, ``-``, ``_``) names the temp file, so concurrent drafts never collide.
    Raises ``DraftStale`` (nothing written) if the file changed since planning, ``PathRefused`` if
    the path is now refused or a link appeared, ``ExecutionFailed`` if the filesystem said no.
    """
    if ws.relpath(plan.rel) != plan.rel:
        raise DraftStale(f"{plan.rel}: its location changed since it was previewed; preview it again")
    data = plan.new_text.encode("utf-8")
    tmp_name = _temp_name(plan.rel.rpartition("/")[2], token)
    try:
        with ExitStack() as stack:
            parent, missing, leaf = _walk(ws, plan.rel, stack)
            current, mode = (None, None) if missing else _read_leaf(parent, leaf, plan.rel)
            if fingerprint(current) != plan.before.fingerprint:
                raise DraftStale(
                    f"{plan.rel} changed since it was previewed ({plan.before.fingerprint} is now"
                    f" {fingerprint(current)}); nothing was written, preview it again"
                )
            for name in missing:
                with suppress(FileExistsError):  # a concurrent creator; the open below re-checks it
                    os.mkdir(name, 0o777, dir_fd=parent)
                parent = _open_dir(name, parent, plan.rel, stack)
            _stage_and_rename(parent, tmp_name, leaf, data, mode)
    except OSError as exc:
        raise ExecutionFailed(f"writing {plan.rel} failed: {exc.strerror or exc}") from exc
    return WriteResult(plan.rel, created=current is None, bytes_written=len(data), fingerprint=fingerprint(data))


def _plan(rel: str, before: FileState, new_text: str) -> WritePlan:
    try:
        new_text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates survive JSON decoding but not the disk
        raise InvalidRequest(f"the new content for {rel} is not encodable as UTF-8: {exc.reason}") from exc
    diff, hidden = _diff(rel, before.text, new_text)
    return WritePlan(rel=rel, before=before, new_text=new_text, diff=diff, hidden_lines=hidden)


def _stage_and_rename(parent: int, tmp_name: str, leaf: str, data: bytes, mode: int | None) -> None:
    """Write ``data`` to a fresh temp file in ``parent``, fsync it, rename it over ``leaf``."""
    # O_EXCL|O_NOFOLLOW: never reuse or follow something already sitting at the temp name.
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, leaf, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name, dir_fd=parent)
        raise
    os.fsync(parent)  # make the rename itself durable


def _walk(ws: Workspace, rel: str, stack: ExitStack) -> tuple[int, list[str], str]:
    """Open the deepest existing directory towards ``rel`` hop by hop (closed by ``stack``).

    Returns its descriptor, the directory names still missing below it, and the leaf name."""
    *dirs, leaf = rel.split("/")
    fd = os.open(ws.root, _DIR_FLAGS)
    stack.callback(os.close, fd)
    for index, name in enumerate(dirs):
        try:
            fd = _open_dir(name, fd, rel, stack)
        except FileNotFoundError:
            return fd, dirs[index:], leaf
    return fd, [], leaf


def _open_dir(name: str, parent: int, rel: str, stack: ExitStack) -> int:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        # Linux reports a symlink opened with O_DIRECTORY|O_NOFOLLOW as ENOTDIR, others as ELOOP.
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise PathRefused(rel, "symlink-parent", f"{name!r}: {_NO_FOLLOW}") from exc
        raise InvalidRequest(f"{rel}: {name!r} is not a directory") from exc
    stack.callback(os.close, fd)
    return fd


def _read_leaf(parent: int, leaf: str, rel: str) -> tuple[bytes | None, int | None]:
    """Bytes and permission bits of regular file ``leaf`` in ``parent``; (None, None) if absent."""
    try:
        # lstat before open: opening a device or FIFO can itself have effects, so refuse them unopened.
        _require_regular(os.stat(leaf, dir_fd=parent, follow_symlinks=False).st_mode, rel)
        # O_NOFOLLOW/O_NONBLOCK: if it was swapped since the lstat, fail rather than follow or hang.
        fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathRefused(rel, "symlink-leaf", _NO_FOLLOW) from exc
        raise
    with open(fd, "rb") as handle:  # takes ownership of fd
        mode = os.fstat(fd).st_mode
        _require_regular(mode, rel)
        return handle.read(), stat.S_IMODE(mode)


def _require_regular(mode: int, rel: str) -> None:
    if stat.S_ISLNK(mode):
        raise PathRefused(rel, "symlink-leaf", _NO_FOLLOW)
    if stat.S_ISDIR(mode):
        raise InvalidRequest(f"{rel} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise InvalidRequest(f"{rel} is not a regular file")


def _temp_name(leaf: str, token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise InvalidRequest(f"write token {token!r} must be 1-64 letters, digits, '-' or '_'")
    suffix = f".ratchet-{token}.tmp"
    # Keep the name under NAME_MAX even for a 255-byte leaf, cutting on a character boundary.
    room = _NAME_MAX - 1 - len(suffix)
    stem = leaf.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return f".{stem}{suffix}"


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def whole_diff(plan: WritePlan) -> str:
    """The plan's whole diff, however long: what a person reads before approving one whose preview was cut."""
    return _diff(plan.rel, plan.before.text, plan.new_text, capped=False)[0]


def _diff(rel: str, before: str | None, after: str, *, capped: bool = True) -> tuple[str, int]:
    """Unified diff with git-style headers, capped at a line and size budget with a marker (unless not
    `capped`); and how many lines the marker stands for (0 when nothing was cut)."""
    lines = difflib.unified_diff(
        _lines(before or ""), _lines(after), "/dev/null" if before is None else f"a/{rel}", f"b/{rel}"
    )
    out: list[str] = []
    if before is None and after == "":
        out.append(f"--- /dev/null\n+++ b/{rel}\n")  # difflib emits nothing for an empty new file
    size = 0
    hidden = 0
    for count, line in enumerate(lines):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        if capped and (count >= _MAX_DIFF_LINES or size + len(line) > _MAX_DIFF_CHARS):
            hidden = sum(1 for _ in lines) + 1
            out.append(f"[diff truncated: {hidden} more lines not shown]\n")
            break
        out.append(line)
        size += len(line)
    return "".join(out), hidden


def _lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines also breaks on \x0c, \x1c, U+2028 and friends, which would
    # turn one source line into several and misnumber every hunk after it.
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@dataclass(frozen=True)
class RestoreResult:
    """What ``restore`` did."""

    rel: str
    removed: bool
    bytes_written: int


def restore(
    ws: Workspace, rel: str, prior: bytes | None, mode: int | None, *, expect: str | None, token: str
) -> RestoreResult:
    """Put back exactly ``prior`` with permission bits ``mode`` (or remove the file if ``prior`` is None).

    Only while the file still holds the fingerprint ``expect`` (what the undone change wrote);
    ``expect=None`` restores whatever it holds now. Raises ``DraftStale`` (nothing changed) when it
    changed since, ``PathRefused`` for a link, ``ExecutionFailed`` if the filesystem said no. The
    bytes are written as they are: no line-ending conversion, no decoding.
    """
    rel = ws.relpath(rel)
    try:
        with ExitStack() as stack:
            parent, missing, leaf = _walk(ws, rel, stack)
            current, _ = (None, None) if missing else _read_leaf(parent, leaf, rel)
            if expect is not None and fingerprint(current) != expect:
                raise DraftStale(
                    f"{rel} changed since the change being undone ({expect} is now {fingerprint(current)}); "
                    "nothing was restored"
                )
            if prior is None:
                if current is not None:
                    os.unlink(leaf, dir_fd=parent)
                    os.fsync(parent)
                return RestoreResult(rel, removed=current is not None, bytes_written=0)
            for name in missing:
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=parent)
                parent = _open_dir(name, parent, rel, stack)
            _stage_and_rename(parent, _temp_name(leaf, token), leaf, prior, mode)
    except OSError as exc:
        raise ExecutionFailed(f"restoring {rel} failed: {exc.strerror or exc}") from exc
    return RestoreResult(rel, removed=False, bytes_written=len(prior))
