"""Run a command where it physically cannot write what Ratchet protects: a bubblewrap sandbox.

The executor half of `run_command`'s confinement. It knows nothing about MCP or policies: given an
argv, the workspace root, the protected paths (policy directory, trust database and its siblings)
and whether the network is allowed, `plan` returns the argv that runs the command inside a sandbox,
and `sandbox_status` says whether a sandbox can be had on this host at all (probed once, for real).

Why bubblewrap and not Landlock
-------------------------------
Landlock (the kernel's unprivileged access-control LSM) grants rights by whole hierarchies: once a
directory is writable, everything below it is, and no rule can take a sub-path back. The workspace
must be writable while holes inside it must not be (`.ratchet/`, `.git/config`, `.git/hooks/`), so
Landlock cannot express the policy. Bubblewrap builds a private mount namespace in which later bind
mounts lie over earlier ones: the workspace is bound writable and the holes are bound read-only on
top of it. A mount point also cannot be removed or renamed from inside (EBUSY), so `mv .git x` and
`rm -r .ratchet` fail too. Bubblewrap is small, widely reviewed (Flatpak runs on it), packaged by
every major distribution (`apt-get install bubblewrap`), and needs no daemon. Run as root it keeps
every capability unless told otherwise, so the sandbox always drops them all (`--cap-drop ALL`);
with them, a command could simply remount the read-only binds writable.

Profiles
--------
Every class names one (policy `sandbox = "read-only" | "workspace"`; "off" never reaches here).
`read-only`, for a class that claims to read: nothing of the host is writable, only the private
`/tmp` below; the workspace is bound read-only (visible even under the host's `/tmp`), nothing is
created in it and nothing must-not-appear is needed. `workspace`, for a class that writes: what
follows. Both hide the runtime directory and the hidden files.

What the command sees (profile `workspace`)
-------------------------------------------
Writable (the only places):
  - the workspace root, recursively, except the holes below;
  - `/tmp`: a private tmpfs per call (also `$TMPDIR`, and `$XDG_CACHE_HOME` unless the environment
    names one), discarded when the call ends;
  - a private `/dev` (null, zero, random, urandom, tty, pts, shm) with no disks in it.
Read-only:
  - everything else of the host's filesystem (`/`, `$HOME`, `/etc`, `/usr`, `/proc/sys`,
    `/proc/sysrq-trigger`, `/sys`, other mounts);
  - the policy directory, and the directory of the trust database (so its `-wal`, `-shm` and
    `-journal` are unwritable even before they exist), wherever they are: bound read-only again after
    the private `/tmp` is laid, so they stay visible and unwritable even under `/tmp`. A database
    directly in the workspace root cannot be protected that way, and the sandbox refuses to start;
    one directly in `/tmp` is bound alone (a missing sibling is then created in the private `/tmp`,
    never on the host);
  - the workspace's `.ratchet/` (created, empty, when absent: otherwise a command could create
    `.ratchet/policies/` and make itself the team's policy);
  - the repository's `.git/config`, `.git/config.worktree`, `.git/commondir` and `.git/hooks/`
    (created when absent), and the `.git` file of a linked worktree or submodule (the git directory
    it names, when outside the workspace, is read-only as a whole). These are what
    git reads to decide which programs to run (`core.fsmonitor`, `core.hooksPath`, aliases,
    `include.path`, hooks, and `commondir`, which moves where the config is read from). Objects,
    refs, logs, the index and `HEAD` stay writable, so `git add` and `git commit` work. The git
    directory is also bound onto itself, so it cannot be renamed away and replaced by a forged one.
    `.git/info/` is read-only too (attributes decide how a diff is shown: `* -diff` would turn a commit
    preview into "Binary files differ"), and so are the directory `core.hooksPath` names and the
    files `include.path` / `includeIf.*.path` name inside the workspace (those that do not exist
    must not appear);
  - `read_only`: what the policy keeps from commands (policy/guarded.py: client configurations,
    paths of classes that need a human, the Ratchet installation inside the workspace), bound
    read-only where they exist; those of `never_create` that do not exist must not appear;
  - a program under the host's `/tmp` (outside the workspace) and every `PATH` entry there: its tree
    bound read-only into the private `/tmp`, so a tool or virtual environment unpacked there still
    runs.
Hidden or separate:
  - the host's `/tmp`, replaced by the private one: a file there outside the workspace is not seen,
    and writing one creates it in the private copy only;
  - other processes: a new PID namespace, so the Ratchet server cannot be seen, signalled or read
    through `/proc/PID/root`, and killing the sandbox's first process kills every process in it;
  - the network, unless the class says `network = true`: a new network namespace with only its own
    loopback, so neither the host's listeners (loopback included) nor abstract Unix sockets are
    reachable;
  - the user's runtime directory (`$XDG_RUNTIME_DIR`, else `/run/user/UID`) and the hook server's
    socket directory: replaced by empty ones, so no session bus, ssh or gpg agent, hook server socket
    or hook secret is reachable;
  - System V IPC and the hostname (IPC and UTS namespaces);
  - every capability: the command runs with none, even when Ratchet runs as root, so it cannot
    remount or unmount anything (a capability-less root can still write sysctls, hence the
    read-only `/proc/sys`).
Must not appear: when the workspace has no `.git`, or the git directory has no `commondir` (or
`config`, `config.worktree`), nothing can be bound over a path that does not exist, so those paths
are checked after the call: one the command created is removed and the call fails, naming it (see
`remove_planted`). So `git init` through `run_command` fails; the human initialises repositories.
Refused outright (the call fails before anything runs): a `.ratchet`, `.git`, `.git/hooks` or git
control file that is a symbolic link, or a `.ratchet` that is a file, since a command could swap
what it points to between calls.

What the sandbox does not protect against
-----------------------------------------
  - Anything in the workspace the human later runs: a Makefile, a test, a `conftest.py`, a package
    script, a nested repository (`sub/.git/config`) that the human's `git` enters, or the
    configuration of a submodule under `.git/modules/`. Those are ordinary workspace files.
  - Reading: the command can read whatever the user can (`$HOME`, keys, the trust database). With
    the network off it cannot send them anywhere except into the workspace or its output.
  - Unix sockets in the filesystem outside the runtime directory (a container daemon's) remain
    connectable, with or without the network; a socket that grants root on the host (Docker's) is
    the user's own risk.
  - Resource use: CPU, memory and disk within the workspace and the tmpfs are not limited here (the
    call's timeout bounds time).
  - A hard link to a protected file made outside the sandbox beforehand: the binds protect paths,
    not inodes. (Inside the sandbox a new hard link to a protected file fails: EXDEV.)
  - A path that must not appear exists on the host until the call ends, and a call running at the
    same time sees it.
  - A kernel or bubblewrap vulnerability.
  - Git in a linked worktree whose git directory lies outside the workspace: that directory is
    bound read-only (so `git status` and `git diff` work), and commits through `run_command` fail
    there (the git tools work).

Exit status: a command killed by signal N shows as status 128 + N (bubblewrap reports it so).

`RATCHET_SANDBOX=off` in the server's environment makes `sandbox_status` report no sandbox, exactly
as on a host without bubblewrap or user namespaces: for testing that path, and for hosts where
the probe would be misleading.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from ratchet.claude_code.hook_socket import socket_dir
from ratchet.errors import ExecutionFailed
from ratchet.executors.shell import check_program

__all__ = [
    "READ_ONLY",
    "SANDBOX_ENV",
    "WORKSPACE",
    "SandboxPlan",
    "SandboxStatus",
    "plan",
    "remove_planted",
    "runtime_dirs",
    "sandbox_env",
    "sandbox_status",
    "sandbox_status_async",
]

SANDBOX_ENV = "RATCHET_SANDBOX"
# The profiles a class names (policy `sandbox = ...`; "off" never reaches this module).
READ_ONLY, WORKSPACE = "read-only", "workspace"
BWRAP = "bwrap"
# Files beside the database that SQLite creates and trusts.
DB_SIBLINGS = ("-wal", "-shm", "-journal")
# Entries of a git directory that decide which programs git runs.
_GIT_CONTROL_FILES = ("config", "config.worktree", "commondir")
_PROBE_TIMEOUT_S = 10.0
# Directories never bound read-only as a whole for a protected file in them.
_NEVER_WHOLE = (Path("/"), Path("/tmp"))


@dataclass(frozen=True)
class SandboxStatus:
    """Whether commands can be sandboxed here, and a one-line why."""

    available: bool
    detail: str


@dataclass(frozen=True)
class SandboxPlan:
    """A sandboxed command: the argv to spawn, the environment it needs, and paths that must not appear."""

    argv: list[str]
    env: dict[str, str]
    must_not_appear: tuple[Path, ...]


_probed: SandboxStatus | None = None  # the probe's answer, once known (the host does not change)


def sandbox_status() -> SandboxStatus:
    """Whether a sandbox can be had: `RATCHET_SANDBOX=off` says no, else a real probe (run once)."""
    if os.environ.get(SANDBOX_ENV, "").strip().lower() == "off":
        return SandboxStatus(False, f"{SANDBOX_ENV}=off in the server's environment")
    global _probed
    if _probed is None:
        _probed = _probe()
    return _probed


async def sandbox_status_async() -> SandboxStatus:
    """`sandbox_status` for the event loop: the one-time probe (a subprocess) runs in a worker thread."""
    if _probed is None and os.environ.get(SANDBOX_ENV, "").strip().lower() != "off":
        return await anyio.to_thread.run_sync(sandbox_status)
    return sandbox_status()


def _probe() -> SandboxStatus:
    """Run `true` under the very options every command gets; anything short of exit 0 means no sandbox."""
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        return SandboxStatus(False, "bubblewrap (bwrap) is not installed; on Debian: apt-get install bubblewrap")
    true = shutil.which("true") or "/bin/true"
    argv = [bwrap, *_base_options(network=False), "--", true]
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return SandboxStatus(False, f"bubblewrap could not be run: {exc}")
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return SandboxStatus(False, f"bubblewrap cannot build a sandbox here: {why[-1] if why else done.returncode}")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return SandboxStatus(True, version or "bubblewrap")


def _base_options(*, network: bool) -> list[str]:
    options = [
        "--die-with-parent",  # SIGKILL to the sandbox when the server (its parent) dies
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--ro-bind",
        "/proc/sys",
        "/proc/sys",
        "--ro-bind-try",
        "/proc/sysrq-trigger",
        "/proc/sysrq-trigger",
        "--tmpfs",
        "/tmp",
    ]
    if not network:
        options.append("--unshare-net")
    return options


def plan(
    argv: Sequence[str],
    *,
    workspace: Path,
    cwd: Path | None,
    protected: Sequence[Path],
    network: bool,
    env: Mapping[str, str],
    hidden: Sequence[Path] = (),
    profile: str = WORKSPACE,
    read_only: Sequence[Path] = (),
    never_create: Sequence[Path] = (),
    check: bool = True,
) -> SandboxPlan:
    """The bubblewrap argv that runs `argv` in `cwd` under `profile`.

    `workspace`: only the workspace, minus its holes, is writable. The holes are the `protected`
    paths (Ratchet's own state), `.ratchet/`, git's control files, and `read_only`: paths inside the
    workspace that gate the agent or run outside the sandbox later (bound read-only where they exist;
    those of `never_create` that do not exist must not appear). `read-only`: nothing of the host is
    writable, only the private `/tmp`. Either way the runtime directory (and every socket in it) is
    hidden and `hidden` files are shown empty. `cwd` None keeps the caller's working directory.

    Creates `.ratchet/` and the git directory's `hooks/` when they are missing (empty directories) so
    they can be bound read-only. Raises ExecutionFailed when the layout cannot be protected (a
    `.ratchet` or `.git` that is a symbolic link, a database directly in the workspace root) or the
    program does not exist (unless `check` is false: a shell string checked by its shell).
    """
    if profile not in (READ_ONLY, WORKSPACE):
        raise ExecutionFailed(f"unknown sandbox profile {profile!r}; expected {READ_ONLY!r} or {WORKSPACE!r}")
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        raise ExecutionFailed("bubblewrap (bwrap) is not installed, so the command cannot be sandboxed")
    root = Path(os.path.realpath(workspace))
    if check:
        check_program(argv[0], cwd or root, env)  # bubblewrap would only say so in its stderr
    if profile == READ_ONLY:
        return _read_only_plan(bwrap, argv, root, cwd, protected, network, env, hidden)
    outside: dict[Path, None] = {}
    inside: dict[Path, None] = {}
    writable: dict[Path, None] = {}
    must_not_appear: list[Path] = []
    absent = {Path(os.path.realpath(p)) for p in never_create}
    for item in read_only:
        path = Path(os.path.realpath(item))
        if not path.is_relative_to(root) or path == root:
            continue  # outside the workspace it is read-only already
        if path.exists():
            inside[path] = None
        elif path in absent:
            must_not_appear.append(path)

    for item in protected:
        path = Path(os.path.realpath(item))
        # A protected file is protected with its directory, so that a sibling that does not exist yet
        # (a -journal) cannot be created either.
        folder = path if path.is_dir() else path.parent
        if folder == root:
            raise ExecutionFailed(
                f"{path.name} lies directly in the workspace root, so its {'/'.join(DB_SIBLINGS)} siblings cannot "
                "be protected from commands: keep the trust database in .ratchet/ or outside the workspace"
            )
        if folder in _NEVER_WHOLE:
            # Binding all of / or /tmp read-only would take the private /tmp away: the file alone.
            if path.exists():
                outside[path] = None
            continue
        (inside if folder.is_relative_to(root) else outside)[folder] = None

    state = _own_dir(root / ".ratchet")
    inside[state] = None

    git = root / ".git"
    if git.is_symlink():
        raise ExecutionFailed(
            ".git in the workspace is a symbolic link, which a command could replace; Ratchet cannot protect it"
        )
    if not git.exists():
        must_not_appear.append(git)
    else:
        for gitdir, pin in _git_dirs(root):
            if pin is not None:
                inside[pin] = None  # the `.git` file of a linked worktree or submodule
            if not gitdir.is_relative_to(root):
                outside[gitdir] = None  # read-only, and visible even under the private /tmp
                continue
            writable[gitdir] = None
            inside[_own_dir(gitdir / "hooks")] = None
            inside[_own_dir(gitdir / "info")] = None  # attributes and excludes: what previews show
            for target in _git_config_targets(root, gitdir):
                if target.is_relative_to(root) and target != root:
                    if target.exists():
                        inside[target] = None
                    else:
                        must_not_appear.append(target)
            for name in _GIT_CONTROL_FILES:
                control = gitdir / name
                if control.is_symlink():
                    raise ExecutionFailed(
                        f"{control} is a symbolic link, which a command could replace; Ratchet cannot protect it"
                    )
                if control.exists():
                    inside[control] = None
                else:
                    must_not_appear.append(control)

    options = [bwrap, *_base_options(network=network)]
    for path in outside:
        options += ["--ro-bind", str(path), str(path)]
    options += _tmp_tools(argv, env, cwd or root, root)
    options += ["--bind", str(root), str(root)]
    for path in sorted(writable, key=lambda p: len(p.parts)):
        options += ["--bind", str(path), str(path)]
    for path in sorted(inside, key=lambda p: len(p.parts)):
        options += ["--ro-bind", str(path), str(path)]
    return _finish(options, argv, cwd, env, hidden, tuple(must_not_appear))


def _read_only_plan(
    bwrap: str,
    argv: Sequence[str],
    root: Path,
    cwd: Path | None,
    protected: Sequence[Path],
    network: bool,
    env: Mapping[str, str],
    hidden: Sequence[Path],
) -> SandboxPlan:
    """Everything read-only but the private `/tmp`: what a class that claims to read is trusted with."""
    options = [bwrap, *_base_options(network=network)]
    folders: dict[Path, None] = {}
    for item in protected:  # visible (read-only) even when they lie under the host's /tmp
        path = Path(os.path.realpath(item))
        folder = path if path.is_dir() else path.parent
        if not folder.is_relative_to(root) and folder not in _NEVER_WHOLE and folder.exists():
            folders[folder] = None
    for folder in folders:
        options += ["--ro-bind", str(folder), str(folder)]
    options += _tmp_tools(argv, env, cwd or root, root)
    options += ["--ro-bind", str(root), str(root)]  # visible when it lies under the host's /tmp
    return _finish(options, argv, cwd, env, hidden, ())


def _finish(
    options: list[str],
    argv: Sequence[str],
    cwd: Path | None,
    env: Mapping[str, str],
    hidden: Sequence[Path],
    must_not_appear: tuple[Path, ...],
) -> SandboxPlan:
    """Hide the secrets and the runtime directory (after every bind, so nothing lies over them)."""
    for path in hidden:  # after the binds above, so the empty file is what the command sees
        if path.is_file():
            options += ["--ro-bind", os.devnull, str(path)]
    for folder in runtime_dirs():
        options += ["--tmpfs", str(folder)]
    if cwd is not None:
        options += ["--chdir", str(cwd)]
    options += ["--", *argv]
    return SandboxPlan(options, sandbox_env(env), must_not_appear)


def sandbox_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` as a sandboxed command gets it: temporary files (and caches, unless named) in the private `/tmp`."""
    inner = dict(env)
    inner["TMPDIR"] = "/tmp"
    inner.setdefault("XDG_CACHE_HOME", "/tmp/.cache")
    return inner


def runtime_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The directories that hold the user's sockets and the human's channels, hidden in the sandbox.

    The user's runtime directory (`$XDG_RUNTIME_DIR`, else `/run/user/UID`: a session bus, ssh and
    gpg agents, the resident hook server) and the hook server's own directory wherever it is put.
    """
    env = os.environ if environ is None else environ
    found: dict[Path, None] = {}
    candidates = [env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}", socket_dir(env)]
    for text in candidates:
        path = Path(text)
        if path.is_absolute() and path.is_dir():
            path = Path(os.path.realpath(path))
            if path not in _NEVER_WHOLE and path != Path("/run"):
                found[path] = None
    return list(found)


def _tmp_tools(argv: Sequence[str], env: Mapping[str, str], cwd: Path, root: Path) -> list[str]:
    """Read-only binds that keep a program living under the host's `/tmp` runnable in the sandbox.

    The private `/tmp` hides the host's, so a virtual environment or tool there (a clone under `/tmp`,
    a tool a CI job unpacked there) would not be found. The program's own directory tree is bound
    read-only: for `/tmp/x/.venv/bin/python`, `/tmp/x/.venv`; the same for every `PATH` entry under
    `/tmp`, and for the real file a link there points to.
    """
    tmp = Path("/tmp")
    found: dict[Path, None] = {}

    def add(program: Path) -> None:
        for candidate in (program, Path(os.path.realpath(program))):
            folder = candidate.parent
            folder = folder.parent if folder.name == "bin" else folder
            if folder.is_relative_to(tmp) and folder != tmp and not folder.is_relative_to(root) and folder.is_dir():
                found[folder] = None

    program = argv[0] if argv else ""
    if "/" in program:
        add(cwd / program)
    elif program and (where := shutil.which(program, path=env.get("PATH", os.defpath))) is not None:
        add(Path(where))
    for entry in env.get("PATH", "").split(os.pathsep):
        if entry.startswith("/tmp/"):
            add(Path(entry) / "_")
    options: list[str] = []
    for folder in sorted(found, key=lambda p: len(p.parts)):
        if not any(folder.is_relative_to(other) and folder != other for other in found):
            options += ["--ro-bind", str(folder), str(folder)]
    return options


def remove_planted(paths: Sequence[Path]) -> list[Path]:
    """Remove those of `paths` a command created (it had no right to); return what was removed."""
    removed = []
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        removed.append(path)
    return removed


def _own_dir(path: Path) -> Path:
    """`path` as a real directory (created when missing), or ExecutionFailed if it is anything else."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ExecutionFailed(
            f"{path} is not a plain directory (a link or a file), which a command could replace; "
            "Ratchet cannot protect it"
        )
    path.mkdir(exist_ok=True)
    return path


def _git_config_targets(root: Path, gitdir: Path) -> list[Path]:
    """What the repository's config names that decides which programs git runs or which config it
    reads: the directory `core.hooksPath` names and the files `include.path` / `includeIf.*.path` name."""
    git = shutil.which("git")
    if git is None:
        return []
    try:
        done = subprocess.run(
            [
                git,
                "config",
                "-z",
                "--show-origin",
                "--get-regexp",
                r"^(core\.hookspath|include\.path|includeif\..*\.path)$",
            ],
            cwd=root,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env={
                "PATH": os.environ.get("PATH", os.defpath),
                "GIT_DIR": str(gitdir),
                "HOME": os.environ.get("HOME", "/"),
            },
        )
    except (OSError, subprocess.SubprocessError):
        return []
    found: list[Path] = []
    fields = done.stdout.decode("utf-8", "replace").split("\0")
    for origin, entry in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = entry.partition("\n")
        if not value:
            continue
        named = Path(value).expanduser()
        if key.lower() == "core.hookspath":
            base = root
        else:
            source = Path(origin.removeprefix("file:"))
            base = source.parent if source.is_absolute() else gitdir
        found.append(Path(os.path.realpath(base / named)))
    return found


def _git_dirs(root: Path) -> list[tuple[Path, Path | None]]:
    """The repository's git directory (and its common directory), each with the `.git` file naming it."""
    dot_git = root / ".git"
    pin: Path | None = None
    if dot_git.is_dir():
        gitdir = dot_git
    else:
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if not text.startswith("gitdir:"):
            raise ExecutionFailed(f"{dot_git} is a file but not a git link ('gitdir: PATH'); Ratchet cannot protect it")
        gitdir = Path(os.path.realpath(root / text.removeprefix("gitdir:").strip()))
        pin = dot_git
    found = [(gitdir, pin)]
    common = gitdir / "commondir"
    if common.is_file():
        target = common.read_text(encoding="utf-8", errors="replace").strip()
        found.append((Path(os.path.realpath(gitdir / target)), None))
    return found
