"""The sandbox's plan read as bubblewrap reads it (executors/sandbox.py), without running it: which paths are
bound writable, which read-only, in what order (a later bind lies over an earlier one), what must not
appear, and which layouts are refused. test_sandbox.py runs the same plans under bubblewrap and attacks
them; these say in milliseconds which bind a broken plan lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ratchet.errors import ExecutionFailed
from ratchet.executors import sandbox

from .helpers import git


@pytest.fixture(autouse=True)
def _needs_bubblewrap() -> None:
    # Not a skip (as in test_sandbox.py): CI installs bubblewrap; a plan is refused without it.
    assert shutil.which("bwrap") is not None, "these tests need bubblewrap (bwrap) on PATH"


ENV = {"PATH": os.defpath}


def _binds(argv: list[str]) -> list[tuple[str, str, str]]:
    """The (option, source, destination) of every bind, in argv order (before the command's own `--`)."""
    options = argv[: argv.index("--")]
    found = []
    for i, word in enumerate(options):
        if word in ("--bind", "--ro-bind", "--ro-bind-try"):
            found.append((word, options[i + 1], options[i + 2]))
    return found


def _place(binds: list[tuple[str, str, str]], option: str, path: Path) -> int:
    """Where `path` is bound with `option` (the last such bind: the one the command sees)."""
    places = [i for i, (o, src, dst) in enumerate(binds) if o == option and src == dst == str(path)]
    assert places, f"{option} {path} is not in the plan: {binds}"
    return places[-1]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A workspace that is a git repository, with its policies and database inside it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q")
    (ws / "policies").mkdir()
    (ws / "policies" / "policy.toml").write_text("")
    (ws / ".claude").mkdir()
    (ws / ".claude" / "settings.json").write_text("{}")
    return ws


def test_every_protected_path_inside_the_workspace_is_bound_read_only_over_the_writable_workspace(
    layout: Path,
) -> None:
    ws = layout
    planned = sandbox.plan(
        ["true"],
        workspace=ws,
        cwd=None,
        protected=[ws / "policies", ws / ".ratchet" / "ratchet.db"],
        network=False,
        env=ENV,
        read_only=[ws / ".claude" / "settings.json", ws / ".mcp.json"],
        never_create=[ws / ".mcp.json"],
    )
    binds = _binds(planned.argv)
    writable = _place(binds, "--bind", ws)
    gitdir = ws / ".git"
    assert _place(binds, "--bind", gitdir) > writable  # onto itself: it cannot be renamed away
    for path in (
        ws / "policies",
        ws / ".ratchet",
        gitdir / "config",
        gitdir / "hooks",
        gitdir / "info",
        ws / ".claude" / "settings.json",
    ):
        assert _place(binds, "--ro-bind", path) > writable, path
    assert _place(binds, "--ro-bind", gitdir / "config") > _place(binds, "--bind", gitdir)
    # Nothing else of the workspace is writable, and nothing is bound writable after the read-only ones.
    assert [dst for o, _, dst in binds if o == "--bind"] == [str(ws), str(gitdir)]
    last_writable = max(i for i, (o, _, _) in enumerate(binds) if o == "--bind")
    assert all(o != "--bind" for o, _, _ in binds[last_writable + 1 :])
    # What does not exist cannot be bound: it must not appear (checked after the call).
    assert set(planned.must_not_appear) == {gitdir / "config.worktree", gitdir / "commondir", ws / ".mcp.json"}
    assert (ws / ".ratchet").is_dir() and (gitdir / "hooks").is_dir()  # created, so they could be bound
    argv = planned.argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and "--unshare-net" in argv and "--unshare-pid" in argv
    assert argv[-2:] == ["--", "true"] and "--chdir" not in argv
    assert planned.env == {**ENV, "TMPDIR": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache"}


def test_the_network_is_shared_only_when_asked_and_a_given_cache_home_is_kept(layout: Path) -> None:
    env = {**ENV, "XDG_CACHE_HOME": "/elsewhere"}
    planned = sandbox.plan(["true"], workspace=layout, cwd=layout / "policies", protected=(), network=True, env=env)
    assert "--unshare-net" not in planned.argv and "--unshare-pid" in planned.argv
    assert planned.env["XDG_CACHE_HOME"] == "/elsewhere" and planned.env["TMPDIR"] == "/tmp"
    assert planned.argv[planned.argv.index("--chdir") + 1] == str(layout / "policies")


def test_the_read_only_profile_binds_nothing_writable(layout: Path, tmp_path: Path) -> None:
    outside = tmp_path / "state"
    outside.mkdir()
    planned = sandbox.plan(
        ["true"],
        workspace=layout,
        cwd=None,
        protected=[outside / "ratchet.db", layout / "policies"],
        network=False,
        env=ENV,
        profile=sandbox.READ_ONLY,
    )
    binds = _binds(planned.argv)
    assert all(o != "--bind" for o, _, _ in binds), binds
    assert _place(binds, "--ro-bind", layout) > _place(binds, "--ro-bind", Path("/"))
    _place(binds, "--ro-bind", outside)  # visible even when it lies under the host's /tmp
    assert planned.must_not_appear == ()
    assert not (layout / ".ratchet").exists()  # nothing is created for a read


def test_hidden_files_and_the_runtime_directory_are_laid_after_every_bind(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run-user"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    secret = layout / ".env"
    secret.write_text("TOKEN=x\n")
    for profile in (sandbox.WORKSPACE, sandbox.READ_ONLY):
        argv = sandbox.plan(
            ["true"],
            workspace=layout,
            cwd=None,
            protected=(),
            network=False,
            env=ENV,
            hidden=[secret],
            profile=profile,
        ).argv
        head = argv[: argv.index("--")]
        hide = next(i for i in range(len(head) - 2) if head[i : i + 3] == ["--ro-bind", os.devnull, str(secret)])
        tmpfs = next(i for i in range(len(head) - 1) if head[i : i + 2] == ["--tmpfs", str(runtime)])
        last_bind = max(i for i, w in enumerate(head) if w in ("--bind", "--ro-bind") and i != hide)
        assert hide > last_bind and tmpfs > last_bind, profile


@pytest.mark.parametrize(
    ("breaks", "says"),
    [
        ("db-in-root", "lies directly in the workspace root"),
        ("git-link", ".git in the workspace is a symbolic link"),
        ("config-link", "config is a symbolic link"),
        ("ratchet-file", ".ratchet is not a plain directory"),
        ("bad-git-file", "is a file but not a git link"),
        ("profile", "unknown sandbox profile 'loose'"),
    ],
)
def test_a_layout_that_cannot_be_protected_is_refused(layout: Path, tmp_path: Path, breaks: str, says: str) -> None:
    protected: list[Path] = []
    profile = sandbox.WORKSPACE
    if breaks == "db-in-root":
        protected = [layout / "ratchet.db"]
    elif breaks == "git-link":
        shutil.move(layout / ".git", tmp_path / "real-git")
        (layout / ".git").symlink_to(tmp_path / "real-git")
    elif breaks == "config-link":
        (layout / ".git" / "config").rename(tmp_path / "config")
        (layout / ".git" / "config").symlink_to(tmp_path / "config")
    elif breaks == "ratchet-file":
        (layout / ".ratchet").write_text("")
    elif breaks == "bad-git-file":
        shutil.rmtree(layout / ".git")
        (layout / ".git").write_text("not a link\n")
    else:
        profile = "loose"
    with pytest.raises(ExecutionFailed, match=None) as caught:
        sandbox.plan(["true"], workspace=layout, cwd=None, protected=protected, network=False, env=ENV, profile=profile)
    assert says in str(caught.value)


def test_a_workspace_without_git_must_not_grow_one(tmp_path: Path) -> None:
    ws = tmp_path / "plain"
    ws.mkdir()
    planned = sandbox.plan(["true"], workspace=ws, cwd=None, protected=(), network=False, env=ENV)
    assert planned.must_not_appear == (ws / ".git",)


def test_what_a_command_planted_is_removed_and_named(tmp_path: Path) -> None:
    planted_file, planted_dir, planted_link = tmp_path / "f", tmp_path / "d", tmp_path / "l"
    planted_file.write_text("x")
    (planted_dir / "sub").mkdir(parents=True)
    planted_link.symlink_to(tmp_path / "nowhere")
    never = tmp_path / "never"
    assert sandbox.remove_planted([planted_file, never, planted_dir, planted_link]) == [
        planted_file,
        planted_dir,
        planted_link,
    ]
    assert not any(p.exists() or p.is_symlink() for p in (planted_file, planted_dir, planted_link))


def test_the_runtime_directories_are_never_the_whole_of_tmp_or_run(tmp_path: Path) -> None:
    for where in ("/tmp", "/", "/run"):
        found = sandbox.runtime_dirs({"XDG_RUNTIME_DIR": where})
        assert all(p not in (Path("/"), Path("/tmp"), Path("/run")) for p in found), where
    mine = tmp_path / "xdg"
    mine.mkdir()
    assert Path(os.path.realpath(mine)) in sandbox.runtime_dirs({"XDG_RUNTIME_DIR": str(mine)})
