"""Git executor: plain async functions that run git for an agent, hardened against the repository.

No MCP here: callers get strings, frozen dataclasses, or a RatchetError.

Threat model. The agent cannot write ``.git/`` through Ratchet's file tools, but it may reach it some
other way (a shell-command action class), so nothing in the repository's configuration is trusted.
These tools must not become a way to run code. Every git process therefore runs:

* with a fixed environment: inherited ``GIT_*`` variables dropped (GIT_DIR, GIT_SSH_COMMAND,
  GIT_EXEC_PATH, GIT_CONFIG_PARAMETERS, ...; only GIT_AUTHOR_/GIT_COMMITTER_ NAME/EMAIL are kept so an
  operator can set the identity), no system or global config (``GIT_CONFIG_NOSYSTEM=1``,
  ``GIT_CONFIG_GLOBAL=/dev/null``), no prompts (``GIT_TERMINAL_PROMPT=0``, empty ``GIT_ASKPASS``),
  ``GIT_EDITOR=true``, ``--no-pager``, replace refs off, literal pathspecs, and
  ``GIT_CEILING_DIRECTORIES`` so ``repo`` must itself be the repository root, whose working tree
  it is (``GIT_WORK_TREE``, overriding ``core.worktree``);
* with command-scope config (``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n``, which git reads after the
  repository's files and which, unlike ``-c``, keeps key and value apart, so a subsection name
  containing ``=`` cannot forge an entry) that neutralizes every command-bearing key: fixed keys in
  ``_FIXED_CONFIG`` (fsmonitor, hooks, ssh, pager, editor, askpass, credential helpers, external diff,
  signing, protocols, submodule recursion, auto-gc) plus per-name keys found by listing the
  repository's effective config (``git config --list``, which follows ``include.path``/``includeIf``):
  ``filter.<d>.clean/smudge/process`` are emptied (git treats empty as "no filter") and
  ``required=false``; ``diff.<d>.command/textconv`` are emptied (git fails instead of running them;
  every diff also passes ``--no-ext-diff --no-textconv``); ``remote.<r>.receivepack/uploadpack`` are
  reset to git's defaults and ``mirror=false``; ``protocol.<p>.allow`` other than
  file/git/http/https/ssh becomes ``never``.
* ``core.gitProxy`` is first-match-wins, so config cannot override it; the environment can:
  ``GIT_PROXY_COMMAND=""`` disables it (verified in the tests).
* Refused outright (InvalidRequest naming the key): ``hook.*`` (config-defined hooks in newer git),
  ``remote.<r>.vcs`` for the remote being pushed to, and a push URL (after insteadOf/pushInsteadOf
  rewriting, as ``git remote get-url --push --all`` reports it) using a ``<helper>::`` transport such
  as ``ext::`` or an unknown ``scheme://``.
* A push to a local-path remote runs that repository's receive side locally, under its own config
  (git clears our config for it), so it gets a fixed ``--receive-pack`` command with its hooks,
  alternate-refs command, checkout-on-push and auto-gc turned off. Other remotes get
  ``--receive-pack=git-receive-pack``.
* ``merge.<d>.driver``, ``alias.*``, ``pager.*`` and editors are never reached: no command here merges,
  uses an alias, pages, or opens an editor. Git never runs inside a submodule (``--ignore-submodules
  =dirty``), so a submodule's own config is not reached either; a dirty submodule is not reported.

Residual risk: the per-name list is read just before each operation, so an agent able to rewrite
``.git/config`` concurrently, within milliseconds, could race it; the fixed overrides do not depend
on that listing. The key list tracks git 2.39; review it when git is upgraded.

Identity: ``git_commit(author=(name, email))`` sets author and committer; otherwise git uses the
inherited GIT_AUTHOR_*/GIT_COMMITTER_* variables or the repository's own user.name/user.email.
Every git process has its own time limit (``process_timeout``, default 60 s; an overall deadline is
the caller's ``asyncio.timeout``) and runs in its own session, whose whole process group is killed on
timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ratchet.errors import ExecutionFailed, InvalidRequest
from ratchet.executors.shell import process_alive

__all__ = [
    "DEFAULT_TIMEOUT",
    "CommitInfo",
    "CommitResult",
    "GitResult",
    "PushPreview",
    "RevertPreview",
    "check_ref_name",
    "command_env",
    "configured_remotes",
    "current_branch",
    "git_commit",
    "git_diff",
    "git_push",
    "git_revert",
    "git_status",
    "push_preview",
    "revert_preview",
    "staged_diff",
]

DEFAULT_TIMEOUT = 60.0
MAX_LISTED_COMMITS = 100
_DIFF_FLAGS = ("--no-ext-diff", "--no-textconv", "--no-color")
_KEPT_GIT_VARS = frozenset({"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"})
_DROPPED_VARS = frozenset({"EDITOR", "VISUAL", "PAGER", "SSH_ASKPASS", "LESS"})
_FIXED_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",  # set-but-empty stops git falling back to core.askPass or SSH_ASKPASS
    "GIT_PROXY_COMMAND": "",  # same trick: core.gitProxy is first-match-wins, config can't reset it
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_NO_REPLACE_OBJECTS": "1",  # refs/replace could make a preview show other content
    "GIT_LITERAL_PATHSPECS": "1",  # a path is a path: no ':(exclude)' or glob magic
    "LC_ALL": "C",
}
_ALLOWED_PROTOCOLS = ("file", "git", "http", "https", "ssh")
_FIXED_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", os.devnull),  # <devnull>/<hook> never exists: no hook can run
    ("core.sshCommand", "ssh -o BatchMode=yes"),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("core.askPass", ""),
    ("credential.helper", ""),  # an empty entry resets the helper list, URL-specific ones too
    ("diff.external", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("protocol.allow", "never"),
    *((f"protocol.{p}.allow", "always") for p in _ALLOWED_PROTOCOLS),
    ("submodule.recurse", "false"),
    ("push.recurseSubmodules", "no"),
    ("diff.ignoreSubmodules", "dirty"),  # never run git inside a submodule, with its own config
    ("status.submoduleSummary", "false"),
    ("push.followTags", "false"),
    ("push.pushOption", ""),
    ("core.useReplaceRefs", "false"),
    ("safe.bareRepository", "explicit"),
    ("maintenance.auto", "false"),
    ("gc.auto", "0"),
    ("color.ui", "false"),
    ("core.attributesFile", os.devnull),  # not the user's global attributes (read even without a config)
)
# The receive side of a local-path push runs with the *target* repository's config.
_LOCAL_RECEIVE_PACK = (
    "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.alternateRefsCommand=true"
    " -c receive.denyCurrentBranch=refuse -c receive.autogc=false receive-pack"
)
_URL_SCHEMES = frozenset({"file", "git", "http", "https", "ssh", "git+ssh", "ssh+git"})
_HELPER_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_REF_BAD_CHAR = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True)
class GitResult:
    """One finished git process."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CommitInfo:
    """A commit as shown to a human: full sha and subject line."""

    sha: str
    subject: str


@dataclass(frozen=True)
class CommitResult:
    """What ``git_commit`` recorded."""

    sha: str
    subject: str
    files: tuple[str, ...]
    insertions: int
    deletions: int

    @property
    def summary(self) -> str:
        """One line, e.g. ``1a2b3c4 fix parser (2 files changed, +3 -1)``."""
        n = len(self.files)
        return f"{self.sha[:7]} {self.subject} ({n} file{'s' * (n != 1)} changed, +{self.insertions} -{self.deletions})"


@dataclass(frozen=True)
class PushPreview:
    """What pushing ``refs/heads/<branch>`` to ``remote`` would do, judged from local refs.

    ``remote_sha`` is the remote-tracking ref ``refs/remotes/<remote>/<branch>`` (None: the branch is
    new there), so it is as fresh as the last fetch; the push itself is checked by the remote.
    ``commits`` (newest first, at most MAX_LISTED_COMMITS of ``commit_count``) are those on the branch
    and not on ``remote_sha`` or, for a new branch, on no ref of that remote. ``diffstat`` is against
    ``remote_sha``, or against the empty tree for a new branch. ``overwritten`` lists commits a forced
    push would drop from the remote branch (only when ``non_fast_forward``).
    """

    remote: str
    branch: str
    urls: tuple[str, ...]
    local_sha: str
    remote_sha: str | None
    commits: tuple[CommitInfo, ...]
    commit_count: int
    diffstat: str
    non_fast_forward: bool
    overwritten: tuple[CommitInfo, ...]


def check_ref_name(value: str, what: str) -> str:
    """Return ``value`` if it is a valid branch-style name, else raise InvalidRequest naming ``what``.

    Implements ``git check-ref-format --branch`` rules without running git, plus: no leading ``-``
    (it would read as an option) and not ``HEAD``.
    """

    def refuse(problem: str) -> InvalidRequest:
        return InvalidRequest(
            f"{what} {value!r} {problem}; expected a branch-style name such as 'feature/login' "
            "(git check-ref-format --branch rules)"
        )

    if not isinstance(value, str) or not value:
        raise refuse("is empty")
    if value.startswith("-"):
        raise refuse("looks like a command-line option")
    if value in ("@", "HEAD"):
        raise refuse("is reserved by git")
    if bad := _REF_BAD_CHAR.search(value):
        raise refuse(f"contains the forbidden character {bad.group()!r}")
    for seq in ("..", "@{", "//"):
        if seq in value:
            raise refuse(f"contains {seq!r}")
    if value.startswith("/") or value.endswith(("/", ".")):
        raise refuse("starts with '/' or ends with '/' or '.'")
    for part in value.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            raise refuse(f"has a component {part!r} starting with '.' or ending with '.lock'")
    return value


def _check_remote_name(remote: str) -> str:
    if isinstance(remote, str) and (remote.startswith("-") or ":" in remote):
        raise InvalidRequest(
            f"remote {remote!r} looks like an option or a URL; expected the name of a remote already "
            "configured in the repository (see `git remote`)"
        )
    return check_ref_name(remote, "remote")


def _check_paths(paths: Sequence[str]) -> list[str]:
    if isinstance(paths, str):
        raise InvalidRequest(f"paths {paths!r} is a single string; expected a list of paths")
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path or "\x00" in path:
            raise InvalidRequest(f"paths[{i}] {path!r} is empty or not text; expected a file path")
        if path.startswith("-"):
            raise InvalidRequest(
                f"paths[{i}] {path!r} looks like a command-line option; expected a file path "
                "(write './-name' for a file whose name starts with '-')"
            )
    return list(paths)


def _split_key(name: str) -> tuple[str, str | None, str]:
    """``section.sub.sec.var`` -> (section, subsection, var); section and var are case-insensitive."""
    section, _, rest = name.partition(".")
    sub, dot, var = rest.rpartition(".")
    return section.lower(), (sub if dot else None), var.lower()


def _config_overrides(names: Sequence[str]) -> list[tuple[str, str]]:
    """Command-scope overrides neutralizing the per-name keys among ``names``; see module docstring."""
    out = list(_FIXED_CONFIG)
    refused: list[str] = []
    for name in dict.fromkeys(names):
        section, sub, var = _split_key(name)
        if section == "hook":
            refused.append(name)
        elif sub is None:
            continue
        elif section == "filter":
            out += [(f"filter.{sub}.{v}", "") for v in ("clean", "smudge", "process")]
            out.append((f"filter.{sub}.required", "false"))
        elif section == "diff" and var in ("command", "textconv"):
            out.append((f"diff.{sub}.{var}", ""))
        elif section == "remote" and var in ("receivepack", "uploadpack", "mirror"):
            default = {"receivepack": "git-receive-pack", "uploadpack": "git-upload-pack"}
            out.append((f"remote.{sub}.{var}", default.get(var, "false")))
        elif section == "protocol" and var == "allow" and sub not in _ALLOWED_PROTOCOLS:
            out.append((f"protocol.{sub}.allow", "never"))
    if refused:
        raise InvalidRequest(
            f"repository config sets {', '.join(refused)}, which would let git run a command; "
            "expected no config-defined hooks (remove them with `git config --unset`)"
        )
    return out


def _base_env(repo: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("GIT_") or k in _KEPT_GIT_VARS) and k not in _DROPPED_VARS
    }
    env.update(_FIXED_ENV)
    env["GIT_CEILING_DIRECTORIES"] = str(repo.parent)  # never discover a parent's repository
    env["GIT_WORK_TREE"] = str(repo)  # core.worktree could otherwise point the tools elsewhere
    return env


# For git started by a command Ratchet runs: signature verification (`git log --format=%G?`) runs
# gpg.*program, and a repository alias can run shell code under a builtin-looking name.
_COMMAND_CONFIG: tuple[tuple[str, str], ...] = (
    ("gpg.program", "gpg"),
    ("gpg.openpgp.program", "gpg"),
    ("gpg.x509.program", "gpgsm"),
    ("gpg.ssh.program", "ssh-keygen"),
    ("gpg.ssh.defaultKeyCommand", ""),
)


async def command_env(env: Mapping[str, str], cwd: Path, *, process_timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """`env` hardened so that any git a command started in `cwd` runs (directly, or from a script or
    a Makefile) gets these tools' neutralized configuration: the fixed environment (no system or
    global config, no prompts, pager and editor fixed) and the command-scope overrides of the module
    docstring, computed from the effective config of the repository at `cwd` (``diff.external`` is
    emptied only where the repository sets it, as an empty one fails every diff); in addition
    ``gpg.*program`` are reset to git's defaults and repository aliases are emptied (an alias can run
    shell code under an innocent name; an empty alias fails). Inherited ``GIT_*`` variables other
    than the identity are dropped. ``LC_ALL`` and literal pathspecs are left to the command.
    InvalidRequest if the config defines hooks (``hook.*``), as for the tools.
    """
    out = {k: v for k, v in env.items() if (not k.startswith("GIT_") or k in _KEPT_GIT_VARS)}
    out.update({k: v for k, v in _FIXED_ENV.items() if k not in ("LC_ALL", "GIT_LITERAL_PATHSPECS")})
    names: list[str] = []
    with contextlib.suppress(FileNotFoundError):  # no git: no git config can run either
        code, listing, _ = await _spawn(
            ["git", "config", "--null", "--name-only", "--list"], cwd=cwd, env=out, process_timeout=process_timeout
        )
        if code == 0:  # outside a repository with no config, git lists nothing (and may exit 1)
            names = [n for n in listing.decode("utf-8", "replace").split("\0") if n]
    # diff.external="" makes git try to run "" (the tools pass --no-ext-diff; commands do not), so it is
    # emptied only when the repository sets it: a planted external diff then fails instead of running.
    planted = any(n.lower() == "diff.external" for n in names)
    overrides = [kv for kv in _config_overrides(names) if planted or kv[0] != "diff.external"]
    overrides += list(_COMMAND_CONFIG)
    overrides += [(name, "") for name in dict.fromkeys(names) if _split_key(name)[0] == "alias"]
    out["GIT_CONFIG_COUNT"] = str(len(overrides))
    for i, (key, value) in enumerate(overrides):
        out[f"GIT_CONFIG_KEY_{i}"], out[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return out


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], process_timeout: float
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in its own session; kill the whole process group on timeout or cancellation."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,  # never wait on input; hash-object --stdin reads nothing
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), process_timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise ExecutionFailed(
            f"{' '.join(argv)} timed out after {process_timeout:g} s; its process group was killed"
        ) from None
    except BaseException:
        _kill_group(proc.pid)  # cancelled: leave nothing running behind us
        raise
    assert proc.returncode is not None  # communicate() returned, so the process was reaped
    return proc.returncode, out, err


class _Git:
    """One repository plus the hardened environment computed for one public operation."""

    def __init__(self, repo: Path, env: dict[str, str], names: list[str], timeout: float) -> None:
        self.repo, self.env, self.names, self.timeout = repo, env, names, timeout

    @classmethod
    async def open(cls, repo: Path, process_timeout: float, extra_env: Mapping[str, str] | None = None) -> _Git:
        repo = Path(repo).resolve()
        if not repo.is_dir():
            raise InvalidRequest(f"repo {str(repo)!r} is not a directory; expected a git working tree")
        env = _base_env(repo)
        # Reading config runs nothing; this listing decides which per-name keys to neutralize.
        listing = await cls(repo, env, [], process_timeout).run("config", "--null", "--name-only", "--list")
        names = [n for n in listing.stdout.split("\0") if n]
        overrides = _config_overrides(names)
        env = {**env, **(extra_env or {}), "GIT_CONFIG_COUNT": str(len(overrides))}
        for i, (key, value) in enumerate(overrides):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        return cls(repo, env, names, process_timeout)

    async def run(self, *args: str, ok: Sequence[int] = (0,), extra_env: Mapping[str, str] | None = None) -> GitResult:
        argv = ["git", "--no-pager", *args]
        env = {**self.env, **(extra_env or {})}
        code, out, err = await _spawn(argv, cwd=self.repo, env=env, process_timeout=self.timeout)
        result = GitResult(argv, code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if code not in ok:
            detail = (result.stderr.strip() or result.stdout.strip() or "no output")[-2000:]
            raise ExecutionFailed(f"{' '.join(argv[:3])} failed (exit {code}): {detail}")
        return result

    async def log(self, *revs: str, limit: int = MAX_LISTED_COMMITS) -> tuple[CommitInfo, ...]:
        out = (await self.run("log", f"--max-count={limit}", "--format=%H%x00%s", *revs, "--")).stdout
        return tuple(CommitInfo(*line.split("\0", 1)) for line in out.splitlines() if "\0" in line)


async def git_status(repo: Path, *, process_timeout: float = DEFAULT_TIMEOUT) -> str:
    """Porcelain v1 status with the ``## branch...upstream [ahead N]`` header line."""
    g = await _Git.open(repo, process_timeout)
    args = ("status", "--porcelain=v1", "--branch", "--untracked-files=normal", "--ignore-submodules=dirty")
    return (await g.run(*args)).stdout


async def git_diff(
    repo: Path, *, staged: bool = False, paths: Sequence[str] = (), process_timeout: float = DEFAULT_TIMEOUT
) -> str:
    """Unified diff of the working tree against the index, or of the index against HEAD if ``staged``."""
    paths = _check_paths(paths)
    g = await _Git.open(repo, process_timeout)
    cached = ("--cached",) if staged else ()
    return (await g.run("diff", *_DIFF_FLAGS, *cached, "--", *paths)).stdout


async def staged_diff(repo: Path, paths: Sequence[str] = (), *, process_timeout: float = DEFAULT_TIMEOUT) -> str:
    """Diffstat and patch of what ``git_commit(repo, msg, paths)`` would record, for a preview.

    With ``paths`` the paths are staged into a throwaway copy of the index, so new files show up and
    the real index is left alone; without, this is the index against HEAD.
    """
    paths = _check_paths(paths)
    g = await _Git.open(repo, process_timeout)
    if not paths:
        return await _text_diff(g, paths, {})
    index = g.repo / (await g.run("rev-parse", "--git-path", "index")).stdout.strip()
    with tempfile.TemporaryDirectory(prefix=f"{INDEX_PREFIX}{os.getpid()}-") as tmp:
        scratch = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if index.is_file():
            await asyncio.to_thread(shutil.copyfile, index, scratch["GIT_INDEX_FILE"])
        await g.run("add", "--", *paths, extra_env=scratch)
        return await _text_diff(g, paths, scratch)


BINARY_NOTE = "note: {path} is text, but the repository's attributes make git call it binary: shown as text"


async def _text_diff(g: _Git, paths: Sequence[str], env: Mapping[str, str]) -> str:
    """The staged diffstat and patch with every text file shown as text, whatever the repository's
    attributes say (`-diff`, `binary` or a diff driver in .gitattributes or .git/info/attributes, which
    no configuration switches off): a file git would show as "Binary files differ" is looked at
    itself, by git's own rule (a NUL in its first 8000 bytes), and a text one is diffed with --text
    and named in a note at the top. Only real binary content is left to git's binary line."""
    numstat = await g.run(
        "diff", "--cached", "--numstat", "-z", "--no-renames", *_DIFF_FLAGS, "--", *paths, extra_env=env
    )
    changed = [rec.split("\t", 2) for rec in numstat.stdout.split("\0") if rec.count("\t") >= 2]
    marked = [path for added, _, path in changed if added == "-"]
    binary = {path for path in marked if await _binary_content(g, path, env)}
    notes = "".join(BINARY_NOTE.format(path=path) + "\n" for path in marked if path not in binary)
    patch = ("diff", "--cached", "--stat", "--patch", *_DIFF_FLAGS)
    if not binary:
        return notes + (await g.run(*patch, "--text", "--", *paths, extra_env=env)).stdout
    text = [path for _, _, path in changed if path not in binary]
    shown = (await g.run(*patch, "--no-renames", "--text", "--", *text, extra_env=env)).stdout if text else ""
    rest = (await g.run(*patch, "--no-renames", "--", *sorted(binary), extra_env=env)).stdout
    return notes + shown + rest


async def _binary_content(g: _Git, path: str, env: Mapping[str, str]) -> bool:
    """Whether the staged (or, for a deletion, the committed) content of `path` is binary by git's rule."""
    for rev in (f":{path}", f"HEAD:{path}"):
        blob = await g.run("cat-file", "blob", rev, ok=(0, 128), extra_env=env)
        if blob.exit_code == 0:
            return "\0" in blob.stdout[:8000]
    return True


async def staged_names(repo: Path, *, process_timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The paths a commit of the index would record, exactly as git names them: NUL-separated, never quoted
    (a name git would quote, `src/café.py`, is read as it is), renames as their new and old paths."""
    g = await _Git.open(repo, process_timeout)
    listed = (await g.run("diff", "--cached", "--name-only", "--no-renames", "-z")).stdout
    return [name for name in listed.split("\0") if name]


INDEX_PREFIX = "ratchet-index-"  # + the creating process's pid: a commit preview's throwaway index


def discard_stale_indexes(tmpdir: Path | None = None) -> list[Path]:
    """Remove the throwaway index directories of commit previews whose process is gone (a crash or a
    kill mid-preview); return what was removed. A live process's directories are left alone."""
    removed = []
    base = Path(tmpdir or tempfile.gettempdir())
    for path in base.glob(f"{INDEX_PREFIX}*-*"):
        pid = path.name[len(INDEX_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir() or path.is_symlink() or process_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


async def git_commit(
    repo: Path,
    message: str,
    paths: Sequence[str] = (),
    *,
    author: tuple[str, str] | None = None,
    process_timeout: float = DEFAULT_TIMEOUT,
) -> CommitResult:
    """Commit the index, or with ``paths`` exactly those paths (``git add`` then ``commit --only``).

    Other staged changes stay staged and out of the commit. No hooks run and nothing is signed.
    """
    paths = _check_paths(paths)
    if not isinstance(message, str) or not message.strip() or "\x00" in message:
        raise InvalidRequest("message is empty or contains NUL; expected a commit message")
    extra: dict[str, str] = {}
    if author is not None:
        name, email = author
        if not name.strip() or not email.strip() or "\x00" in name + email:
            raise InvalidRequest(f"author {author!r} is incomplete; expected (name, email)")
        extra = {f"GIT_{who}_{k}": v for who in ("AUTHOR", "COMMITTER") for k, v in (("NAME", name), ("EMAIL", email))}
    g = await _Git.open(repo, process_timeout, extra)
    if paths:
        await g.run("add", "--", *paths)
    only = ("--only", "--", *paths) if paths else ()
    await g.run("commit", "--quiet", "--no-verify", "--no-gpg-sign", f"--message={message}", *only)
    [head] = await g.log("HEAD", limit=1)
    numstat = await g.run("diff-tree", "-r", "--root", "--no-commit-id", "--no-renames", "--numstat", "-z", "HEAD")
    files, added, deleted = [], 0, 0
    for entry in filter(None, numstat.stdout.split("\0")):
        plus, minus, path = entry.split("\t", 2)
        files.append(path)
        added += int(plus) if plus.isdigit() else 0  # binary files show '-'
        deleted += int(minus) if minus.isdigit() else 0
    return CommitResult(head.sha, head.subject, tuple(files), added, deleted)


@dataclass(frozen=True)
class RevertPreview:
    """What reverting one commit would do: the commit, the branch it lands on, HEAD now, and the patch."""

    sha: str
    subject: str
    branch: str
    head: str
    diff: str
    paths: tuple[str, ...] = ()  # the paths it changes, read exactly (NUL-separated, never quoted)


_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


async def revert_preview(repo: Path, sha: str, *, process_timeout: float = DEFAULT_TIMEOUT) -> RevertPreview:
    """The diffstat and patch a ``git revert`` of ``sha`` would record (the commit's own, reversed).

    Refuses a sha that is not a full object name, a commit not on the current branch, a root commit
    and a merge commit (which parent to keep is a human's call, not a default).
    """
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise InvalidRequest(f"commit {sha!r} is not a full commit sha; expected 40 (or 64) hex digits")
    g = await _Git.open(repo, process_timeout)
    parents = (await g.run("rev-list", "--parents", "--max-count=1", sha)).stdout.split()
    if len(parents) < 2:
        raise InvalidRequest(f"commit {sha[:10]} is a root commit; there is nothing before it to revert to")
    if len(parents) > 2:
        raise InvalidRequest(f"commit {sha[:10]} is a merge; revert it by hand, choosing the parent to keep")
    merged = await g.run("merge-base", "--is-ancestor", sha, "HEAD", ok=(0, 1))
    if merged.exit_code != 0:
        raise InvalidRequest(f"commit {sha[:10]} is not on the current branch; nothing of it to revert here")
    branch = (await g.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1))).stdout.strip() or "HEAD"
    head = (await g.run("rev-parse", "HEAD")).stdout.strip()
    subject = (await g.run("log", "--max-count=1", "--format=%s", sha, "--")).stdout.strip()
    diff = (await g.run("diff", "--stat", "--patch", *_DIFF_FLAGS, sha, parents[1], "--")).stdout
    listed = (await g.run("diff", "--name-only", "--no-renames", "-z", sha, parents[1], "--")).stdout
    return RevertPreview(sha, subject, branch, head, diff, tuple(n for n in listed.split("\0") if n))


async def git_revert(repo: Path, sha: str, *, process_timeout: float = DEFAULT_TIMEOUT) -> CommitResult:
    """Record a new commit that reverses ``sha`` (``git revert --no-edit``); the original stays in history.

    No hooks run and nothing is signed. A revert that conflicts is aborted, leaving the tree as it was,
    and raises ExecutionFailed.
    """
    await revert_preview(repo, sha, process_timeout=process_timeout)  # the same refusals as the preview
    g = await _Git.open(repo, process_timeout)
    try:
        await g.run("revert", "--no-edit", "--no-gpg-sign", sha)
    except ExecutionFailed:
        await g.run("revert", "--abort", ok=(0, 128))
        raise
    [head] = await g.log("HEAD", limit=1)
    numstat = await g.run("diff-tree", "-r", "--no-commit-id", "--no-renames", "--numstat", "-z", "HEAD")
    files, added, deleted = [], 0, 0
    for entry in filter(None, numstat.stdout.split("\0")):
        plus, minus, path = entry.split("\t", 2)
        files.append(path)
        added += int(plus) if plus.isdigit() else 0
        deleted += int(minus) if minus.isdigit() else 0
    return CommitResult(head.sha, head.subject, tuple(files), added, deleted)


async def current_branch(repo: Path, *, process_timeout: float = DEFAULT_TIMEOUT) -> str:
    """The checked-out branch's short name; InvalidRequest if HEAD is detached."""
    g = await _Git.open(repo, process_timeout)
    result = await g.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1))
    if result.exit_code:
        raise InvalidRequest("HEAD is detached; expected a checked-out branch")
    return result.stdout.strip()


async def configured_remotes(repo: Path, *, process_timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Names of the remotes configured in the repository (``git remote``)."""
    g = await _Git.open(repo, process_timeout)
    return (await g.run("remote")).stdout.split()


def _url_is_local(url: str, remote: str) -> bool:
    """True for a local path or file:// URL; InvalidRequest for transports that can run commands."""

    def refuse(why: str) -> InvalidRequest:
        return InvalidRequest(f"remote {remote!r} pushes to {url!r}, {why}; expected an ssh, https or path URL")

    if not url or url.startswith("-"):
        raise refuse("which is empty or option-like")
    if helper := _HELPER_URL.match(url):
        raise refuse(f"which uses the remote-helper transport {helper.group()!r} that can run commands")
    if scheme := _SCHEME_URL.match(url):
        if scheme.group(1).lower() not in _URL_SCHEMES:
            raise refuse(f"whose scheme {scheme.group(1)!r} would run a remote helper")
        return scheme.group(1).lower() == "file"
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or 0 <= slash < colon  # git's rule: a colon before any slash means scp-like ssh


async def _push_target(g: _Git, remote: str, branch: str) -> tuple[tuple[str, ...], bool, str]:
    """Validate a push target: (push URLs, any local, local branch sha)."""
    remotes = (await g.run("remote")).stdout.split()
    if not remotes:
        raise InvalidRequest(
            f"this repository has no remotes, so there is nowhere to push {remote!r}; a human adds one "
            "(`git remote add NAME URL`)"
        )
    if remote not in remotes:
        raise InvalidRequest(f"remote {remote!r} is not configured in this repository; expected one of {remotes}")
    vcs = [n for n in g.names if _split_key(n) == ("remote", remote, "vcs")]
    if vcs:
        raise InvalidRequest(f"repository config sets {vcs[0]}, a remote helper that runs a program; refused")
    urls = tuple((await g.run("remote", "get-url", "--push", "--all", remote)).stdout.splitlines())
    if not urls:
        raise InvalidRequest(f"remote {remote!r} has no URL; expected a configured push URL")
    local = [_url_is_local(url, remote) for url in urls]
    found = await g.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", ok=(0, 1))
    if found.exit_code:
        raise InvalidRequest(f"branch {branch!r} does not exist locally; expected an existing local branch")
    return urls, any(local), found.stdout.strip()


async def _tracking_sha(g: _Git, remote: str, branch: str) -> str | None:
    ref = f"refs/remotes/{remote}/{branch}^{{commit}}"
    found = await g.run("rev-parse", "--verify", "--quiet", ref, ok=(0, 1))
    return found.stdout.strip() or None


async def push_preview(
    repo: Path, remote: str, branch: str, *, process_timeout: float = DEFAULT_TIMEOUT
) -> PushPreview:
    """Describe what ``git_push(repo, remote, branch)`` would send; see PushPreview. Runs no network."""
    _check_remote_name(remote)
    check_ref_name(branch, "branch")
    g = await _Git.open(repo, process_timeout)
    urls, _, local_sha = await _push_target(g, remote, branch)
    remote_sha = await _tracking_sha(g, remote, branch)
    overwritten: tuple[CommitInfo, ...] = ()
    if remote_sha is None:
        exclude: tuple[str, ...] = ("--not", f"--remotes={remote}")
        base = (await g.run("hash-object", "-t", "tree", "--stdin")).stdout.strip()  # the empty tree
        nff = False
    else:
        exclude, base = ("--not", remote_sha), remote_sha
        ancestor = await g.run("merge-base", "--is-ancestor", remote_sha, local_sha, ok=(0, 1))
        nff = ancestor.exit_code == 1
        if nff:
            overwritten = await g.log(remote_sha, "--not", local_sha)
    count = int((await g.run("rev-list", "--count", local_sha, *exclude)).stdout)
    stat = await g.run("diff", "--stat=120", *_DIFF_FLAGS, base, local_sha, "--")
    return PushPreview(
        remote=remote,
        branch=branch,
        urls=urls,
        local_sha=local_sha,
        remote_sha=remote_sha,
        commits=await g.log(local_sha, *exclude),
        commit_count=count,
        diffstat=stat.stdout,
        non_fast_forward=nff,
        overwritten=overwritten,
    )


async def git_push(
    repo: Path, remote: str, branch: str, *, force: bool = False, process_timeout: float = DEFAULT_TIMEOUT
) -> GitResult:
    """Push ``refs/heads/<branch>:refs/heads/<branch>`` to a configured remote; ExecutionFailed if refused.

    ``force=True`` means ``--force-with-lease=refs/heads/<branch>:<sha>`` with <sha> the current
    remote-tracking ref (empty: the branch must not exist there): the remote branch is overwritten only
    if it still holds that value, which is what ``push_preview`` reported unless a fetch ran since.
    No tags, no hooks, no submodule pushes.
    """
    _check_remote_name(remote)
    check_ref_name(branch, "branch")
    g = await _Git.open(repo, process_timeout)
    _, local, _ = await _push_target(g, remote, branch)
    args = ["push", "--no-verify", "--no-follow-tags", "--recurse-submodules=no"]
    args.append(f"--receive-pack={_LOCAL_RECEIVE_PACK if local else 'git-receive-pack'}")
    if force:
        args.append(f"--force-with-lease=refs/heads/{branch}:{await _tracking_sha(g, remote, branch) or ''}")
    return await g.run(*args, "--", remote, f"refs/heads/{branch}:refs/heads/{branch}")
