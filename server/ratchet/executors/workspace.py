"""Workspace confinement: decide whether a path the agent names may be written, and where it lands.

Every tool that touches the filesystem asks ``Workspace.relpath`` first. It resolves ``..`` and the
symlinks of every existing component itself (one ``lstat`` per component, no ``realpath`` shortcuts)
so that what it checks is where the bytes would actually go, and then applies the rules below. The
answer is a normalized workspace-relative POSIX path that contains no symlinks and no ``..``, which
the executor walks again with ``O_NOFOLLOW`` directory descriptors at write time (see executors/fs.py);
this module is the policy, that walk is the race guard.

Rules, in the order they are checked (the first that applies names the refusal):

    invalid-path       empty, NUL byte, ends in ``..`` or ``/``, names the root, or cannot be resolved
    protected          inside or equal to a protected path (policy dir, trust db and its siblings)
    outside-workspace  not inside the root once every existing component is resolved
    symlink-leaf       the final component is a symlink: writes never follow links, even inward
    git-internals      a ``.git`` component, case-insensitively, as given or as resolved
    ratchet-state      a ``.ratchet`` component, likewise
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ratchet.errors import InvalidRequest, PathRefused
from ratchet.inert import controls

__all__ = ["PROJECT_MARKERS", "Workspace", "find_project_root"]

# Linux gives up after 40 link hops (MAXSYMLINKS); a longer chain is a loop or an attack.
_MAX_SYMLINK_HOPS = 40

# Components no tool may ever name, compared casefolded: on case-insensitive filesystems
# (macOS, Windows shares) ".GIT/config" opens the very same file as ".git/config".
_FORBIDDEN_COMPONENTS = {".git": "git-internals", ".ratchet": "ratchet-state"}


# What marks a project's root: the team's Ratchet directory, or the repository (a `.git` directory,
# or the `.git` file of a worktree or submodule).
PROJECT_MARKERS = (".ratchet", ".git")


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `.ratchet/` or `.git`; `start` if none does.

    A client that launches Ratchet from a subdirectory (`proj/src`) still gets the project's
    policies and database (`proj/.ratchet/`), not a second set beside the launch directory.

    A `.ratchet/` inside a repository but not at its root (`proj/src/.ratchet/` under `proj/.git`)
    is refused: anything an agent's tests or builds run may have written it there, to be taken for
    the team's policy by a server started in that subdirectory. Name the workspace explicitly
    (an absolute `--workspace`) to use it anyway.
    """
    start = Path(os.path.realpath(start))
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
        if (directory / ".ratchet").is_dir():
            repo = next((d for d in directory.parents if (d / ".git").exists()), None)
            if repo is not None:
                raise InvalidRequest(
                    f"{directory / '.ratchet'} lies inside the repository {repo} but not at its root: it is not "
                    f"taken for the project's policy (an agent's command may have written it). Pass an absolute "
                    f"--workspace ({repo}, or {directory} if that is really the project), or remove it"
                )
            return directory
    return start


class Workspace:
    """The directory tree an agent may write in, minus the paths it may never touch."""

    def __init__(
        self,
        root: Path,
        protected: Sequence[Path] = (),
        hidden: Sequence[Path] = (),
        *,
        read_only: Sequence[Path] = (),
        reviewed: Sequence[Path] = (),
    ) -> None:
        """Resolve ``root`` (must be an existing directory) and the ``protected`` paths.

        Relative protected paths are taken relative to the root. Protected paths need not exist
        (a ``-wal`` file appears and disappears with the database) and may lie outside the root.
        ``hidden`` files are secrets an agent's command must not even read (the review token): the
        sandbox shows them empty. ``read_only`` and ``reviewed`` are what the sandbox keeps read-only
        (always, or unless a person approved the command; see policy/guarded.py).
        """
        self.hidden: tuple[Path, ...] = tuple(Path(os.path.realpath(p)) for p in hidden)
        # Paths a sandboxed process may not write (policy/guarded.py): always, or unless a person
        # approved the command. The tools' own writes are governed by the classes, not by these.
        self.read_only: tuple[Path, ...] = tuple(read_only)
        self.reviewed: tuple[Path, ...] = tuple(reviewed)
        given = Path(os.path.normpath(Path(root).absolute()))
        self.root: Path = Path(os.path.realpath(given))
        if not self.root.is_dir():
            raise InvalidRequest(f"workspace root {str(root)!r} is not an existing directory")
        # Kept so that absolute paths spelled through a symlinked root still get the lexical
        # .git/.ratchet check on the components the caller actually wrote.
        self._given_root = given
        guarded: dict[Path, None] = {}
        for item in map(Path, protected):
            spelled = Path(os.path.normpath(item if item.is_absolute() else self.root / item))
            # Both spellings: the resolved one catches writes through any alias, the lexical one
            # keeps the name protected even if it is (or becomes) a link to somewhere else.
            guarded[_resolve(spelled, str(item))] = None
            guarded[spelled] = None
        self.protected: tuple[Path, ...] = tuple(guarded)
        # Folded once here, not on every check: relpath runs on every call of every tool.
        self._folded_protected = tuple((guarded, str(guarded).casefold()) for guarded in self.protected)
        self._root_text = str(self.root)

    def relpath(self, path: str) -> str:
        """Return ``path`` as a normalized workspace-relative POSIX path, or raise ``PathRefused``.

        ``path`` may be relative to the root or absolute. The leaf and its parents need not exist.
        The result never contains a symlink: symlinked parents inside the workspace are replaced by
        their targets, and a symlink leaf is refused (rule ``symlink-leaf``).
        """
        if not path or "\0" in path:
            raise PathRefused(path, "invalid-path", "the path is empty or contains a NUL byte")
        if found := controls(path):
            raise PathRefused(
                path,
                "invalid-path",
                f"the path contains control characters ({', '.join(dict.fromkeys(found))}): a file name a person "
                "reads in a listing or a dialog must be printable text; expected no newline, tab, escape, C1 "
                "or bidirectional control",
            )
        given = PurePosixPath(path)
        # PurePosixPath drops a trailing "/", but the caller meant a directory, which is not writable.
        if not given.parts or given.name in ("", "..") or path.endswith("/"):
            raise PathRefused(path, "invalid-path", "the path must end in a file name")

        # From here on plain strings (one lstat per component, no Path objects): this runs several
        # times on every call of every tool. `given.parent` is already normalized ("." and "//" gone).
        parent = str(given.parent)
        if not given.is_absolute():
            parent = self._root_text if parent == "." else f"{self._root_text}/{parent}"
        # Resolve the parent fully but not the leaf: the leaf is what gets replaced, so a link there
        # is refused rather than followed.
        location = _join(_resolve_text(parent, path), given.name)

        folded = location.casefold()
        for guarded, folded_guard in self._folded_protected:
            if _within(folded, folded_guard):
                raise PathRefused(path, "protected", f"{guarded} is managed by Ratchet itself")
        if location == self._root_text:
            raise PathRefused(path, "invalid-path", "the path names the workspace root itself")
        if not _within(location, self._root_text):  # component-wise, so /ws-evil is not inside /ws
            raise PathRefused(path, "outside-workspace", f"it resolves to {location}, outside {self.root}")
        if _is_symlink(location, path):
            raise PathRefused(path, "symlink-leaf", "it is a symbolic link; writes never follow links")

        rel = location[len(self._root_text) :].lstrip("/")
        for part in (*self._lexical_parts(given), *rel.split("/")):
            rule = _FORBIDDEN_COMPONENTS.get(part.casefold())
            if rule is not None:
                raise PathRefused(path, rule, f"{part!r} holds state that only its owner may change")
        return rel

    def resolve(self, path: str) -> Path:
        """Return the absolute location of ``path`` inside the workspace (see ``relpath``)."""
        return self.root / self.relpath(path)

    def _lexical_parts(self, given: PurePosixPath) -> tuple[str, ...]:
        """The components the caller wrote, below the root, before any resolution."""
        if not given.is_absolute():
            return given.parts
        normal = PurePosixPath(os.path.normpath(given))
        for root in (self.root, self._given_root):
            if normal.is_relative_to(root):
                return normal.relative_to(root).parts
        return ()


def _resolve(path: Path, original: str) -> Path:
    """Resolve every existing component of absolute ``path``, appending the missing rest verbatim.

    Unlike ``os.path.realpath`` (which, non-strict, silently stops on a loop and hands back a path
    that still contains a link) this either returns a link-free path or refuses.
    """
    pending = list(path.parts[1:])
    resolved = Path(path.anchor)
    hops = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            resolved = resolved.parent
            continue
        candidate = resolved / name
        if not _is_symlink(candidate, original):
            # A missing component (or one under a file) is appended as is; the write creates it
            # or fails, and the executor's O_NOFOLLOW walk re-checks it either way.
            resolved = candidate
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise PathRefused(original, "invalid-path", "too many levels of symbolic links")
        target = candidate.readlink()
        if target.is_absolute():
            resolved = Path(target.anchor)
        pending[:0] = target.parts[1:] if target.is_absolute() else target.parts
    return resolved


def _resolve_text(path: str, original: str) -> str:
    """`_resolve` on strings: every existing component of absolute `path` resolved, the rest verbatim.

    The same walk, the same anchor (POSIX keeps a leading "//" apart from "/", as pathlib does) and the
    same refusals; only without a Path object per component.
    """
    anchor = "//" if path.startswith("//") and not path.startswith("///") else "/"
    pending = [name for name in reversed(path.split("/")) if name not in ("", ".")]
    resolved = anchor
    hops = 0
    while pending:
        name = pending.pop()
        if name == "..":
            resolved = _parent(resolved)
            continue
        candidate = _join(resolved, name)
        if not _is_symlink(candidate, original):
            # A missing component (or one under a file) is appended as is; the write creates it
            # or fails, and the executor's O_NOFOLLOW walk re-checks it either way.
            resolved = candidate
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise PathRefused(original, "invalid-path", "too many levels of symbolic links")
        target = os.readlink(candidate)  # noqa: PTH115 - strings throughout, see the docstring
        if target.startswith("/"):
            resolved = "//" if target.startswith("//") and not target.startswith("///") else "/"
        pending.extend(name for name in reversed(target.split("/")) if name not in ("", "."))
    return resolved


def _join(folder: str, name: str) -> str:
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


def _parent(path: str) -> str:
    """The parent of a normalized absolute path; an anchor ("/" or "//") is its own parent."""
    anchor = "//" if path.startswith("//") else "/"
    head = path.rpartition("/")[0]
    return head if len(head) > len(anchor) else anchor


def _within(path: str, folder: str) -> bool:
    """Whether normalized absolute `path` is `folder` or lies below it, component-wise."""
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def _is_symlink(path: Path | str, original: str) -> bool:
    """``lstat`` one component; a missing one is not a link, an unreadable one is refused."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        # Not knowing whether a component is a link means not knowing where the write lands.
        raise PathRefused(original, "invalid-path", f"cannot inspect {path}: {exc.strerror}") from exc
