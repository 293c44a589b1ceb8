"""Which repository a workspace is a clone of, by a name every clone agrees on, without credentials.

A team sharing one record asks "what happened in repository X", whoever cloned it where. Each action
records its repository (the `origin_repo` column, set where its origin is, engine/origin.py): the URL of
the workspace's git remote `origin`, normalised so that the forms one repository is cloned by give one
name, `host/org/repo`: `git@host:org/repo.git`, `https://user:token@host/org/repo.git` and
`ssh://git@host:22/org/repo/` all give `host/org/repo`. The user name, any password or token, the
scheme, the port, a query or fragment, a trailing `.git` and trailing slashes are dropped; the host is
lower-cased. A remote that is a local path (a bare repository on a shared disk) is its absolute path,
normalised the same way.

A credential is never kept: a remote URL may carry a token (`https://x-access-token:TOKEN@...`), and
the record is shared. A workspace with no `origin` remote, outside any repository, or on a machine
without git is named by its directory's name.

git runs as a real subprocess (`git remote get-url origin`, which reads configuration only and runs no
hook), with a short time limit and without the caller's `GIT_*` environment, once per workspace per
process.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 3.0  # reading one config value; a git that takes longer is not waited for
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def _tidy(path: str) -> str:
    """A repository path without surrounding slashes or a trailing `.git`."""
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return path.rstrip("/")


def _local(path: str, base: Path | None) -> str:
    """A local repository path, absolute (a relative one taken from `base`, else the current directory)."""
    given = Path(path).expanduser()
    if not given.is_absolute():
        given = (base if base is not None else Path.cwd()) / given
    text = os.path.normpath(given)
    return "/" + _tidy(text) if text.startswith("/") else _tidy(text)


def normalise(url: str, base: Path | None = None) -> str:
    """The name of the repository a remote URL (any form git takes) points at: `host/org/repo`, or the
    absolute path of a local one (`base`: where a relative path is taken from). Never a credential."""
    text = url.strip()
    scheme = _SCHEME.match(text)
    if scheme and text[: scheme.end()].lower() == "file://":
        return _local(text[scheme.end() :] or "/", base)
    head = text.split("/", 1)[0]
    if not scheme and (":" not in head or _DRIVE.match(text)):
        return _local(text, base)
    # `scheme://[userinfo@]host[:port]/path` or scp-like `[userinfo@]host:path`. Everything up to the
    # last `@` is taken for userinfo, even where a malformed URL puts a `/` or `:` inside it: a token
    # never survives, at the price of a path holding an `@` (which no hosting service gives).
    rest = text[scheme.end() :] if scheme else text
    rest = rest.rpartition("@")[2]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    if scheme:
        authority, _, path = rest.partition("/")
        host = authority.rpartition("]")[0] + "]" if authority.startswith("[") else authority.partition(":")[0]
    else:
        host, _, path = rest.partition(":")
    path = _tidy(path)
    return f"{host.lower()}/{path}" if path else host.lower()


def as_given(value: str) -> str:
    """A repository named by a person (`--repo`): a URL of any form, or a local path (`/`, `.`, `~`), is
    normalised (a relative path from the current directory); a name (`host/org/repo`, or the directory name
    of a workspace with no remote) is taken as it is, without a trailing `.git` or slash."""
    text = value.strip()
    head = text.split("/", 1)[0]
    if _SCHEME.match(text) or ":" in head or "@" in head or text.startswith(("/", ".", "~")):
        return normalise(text)
    return _tidy(text)


def _remote_url(root: Path) -> str | None:
    """`git remote get-url origin` in `root`; None without git, outside a repository, with no such remote,
    or when git does not answer in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    url = done.stdout.strip()
    return url if done.returncode == 0 and url else None


@functools.cache
def _of(root: str) -> str:
    path = Path(root)
    url = _remote_url(path)
    if url is None:
        return path.name or root
    return normalise(url, path)


def of_workspace(root: Path) -> str:
    """The repository `root` is a clone of (see the module docstring), read once per process."""
    return _of(str(root))
