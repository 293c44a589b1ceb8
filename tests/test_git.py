"""The git executor against real repositories (tmp_path, a local bare remote), no mocks of git.

Each malicious-config test first proves its trap is live with plain git (the marker appears), then
shows the executor does not spring it.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ratchet.errors import ExecutionFailed, InvalidRequest
from ratchet.executors import git as g

from .helpers import git as raw
from .helpers import make_repo

AUTHOR = ("Test Author", "author@example.com")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on branch main, pushed to a bare remote at tmp_path/remote.git as origin."""
    return make_repo(tmp_path / "work", tmp_path / "remote.git", message="initial")


@pytest.fixture
def trap(tmp_path: Path) -> tuple[Path, Path]:
    """(script, marker): an executable that touches marker, for use as a hook or configured command."""
    marker, script = tmp_path / "MARKER", tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    script.chmod(0o755)
    return script, marker


def sprung(marker: Path) -> bool:
    """Whether the trap fired; resets it for the next check."""
    fired = marker.exists()
    marker.unlink(missing_ok=True)
    return fired


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    write(repo / name, text)
    raw(repo, "add", name)
    raw(repo, "commit", "-qm", message)
    return raw(repo, "rev-parse", "HEAD").strip()


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_status_and_diff(repo: Path) -> None:
    write(repo / "README.md", "hello\nmore\n")
    write(repo / "new.txt", "new\n")
    status = await g.git_status(repo)
    assert status.splitlines()[0] == "## main...origin/main"
    assert " M README.md" in status and "?? new.txt" in status
    assert "+more" in await g.git_diff(repo)
    assert await g.git_diff(repo, staged=True) == ""
    assert await g.git_diff(repo, paths=["new.txt"]) == ""
    raw(repo, "add", "README.md")
    assert "+more" in await g.git_diff(repo, staged=True, paths=["README.md"])
    assert await g.current_branch(repo) == "main"
    assert await g.configured_remotes(repo) == ["origin"]


@pytest.mark.asyncio
async def test_repo_must_be_a_repository_root(repo: Path, tmp_path: Path) -> None:
    (repo / "sub").mkdir()
    with pytest.raises(ExecutionFailed, match="not a git repository"):
        await g.git_status(repo / "sub")  # GIT_CEILING_DIRECTORIES stops discovery of the parent
    with pytest.raises(InvalidRequest, match="not a directory"):
        await g.git_status(tmp_path / "missing")


@pytest.mark.asyncio
async def test_inherited_git_dir_is_ignored(repo: Path, tmp_path: Path, monkeypatch: Any) -> None:
    other = tmp_path / "other"
    raw(tmp_path, "init", "-q", "-b", "elsewhere", str(other))
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert (await g.git_status(repo)).startswith("## main")
    raw(repo, "config", "core.worktree", str(other))  # the repo cannot point the tools elsewhere
    write(repo / "README.md", "changed\n")
    assert " M README.md" in await g.git_status(repo)


@pytest.mark.asyncio
async def test_detached_head_has_no_current_branch(repo: Path) -> None:
    raw(repo, "checkout", "-q", "--detach")
    with pytest.raises(InvalidRequest, match="detached"):
        await g.current_branch(repo)


# --- commit ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_commit_records_only_given_paths(repo: Path) -> None:
    write(repo / "a.txt", "a\n")
    write(repo / "b.txt", "b\n")
    raw(repo, "add", "b.txt")  # staged, but not named: must stay out of the commit
    write(repo / "README.md", "changed\n")
    result = await g.git_commit(repo, "add a, touch readme", ["a.txt", "README.md"], author=AUTHOR)
    assert result.files == ("README.md", "a.txt")
    assert (result.insertions, result.deletions) == (2, 1)
    assert result.subject == "add a, touch readme"
    assert result.sha == raw(repo, "rev-parse", "HEAD").strip()
    assert result.summary.startswith(f"{result.sha[:7]} add a, touch readme (2 files changed")
    assert raw(repo, "log", "-1", "--format=%an <%ae>|%cn").strip() == "Test Author <author@example.com>|Test Author"
    assert "A  b.txt" in raw(repo, "status", "--porcelain")


@pytest.mark.asyncio
async def test_commit_of_index_and_failures(repo: Path) -> None:
    with pytest.raises(ExecutionFailed, match="nothing"):
        await g.git_commit(repo, "empty", author=AUTHOR)
    write(repo / "c.txt", "c\n")
    raw(repo, "add", "c.txt")
    assert (await g.git_commit(repo, "-m looks like an option", author=AUTHOR)).files == ("c.txt",)
    assert raw(repo, "log", "-1", "--format=%s").strip() == "-m looks like an option"
    with pytest.raises(InvalidRequest, match="message"):
        await g.git_commit(repo, "  ", author=AUTHOR)
    # Literal pathspecs: a glob names a file called '*.txt', which does not exist.
    with pytest.raises(ExecutionFailed, match="did not match"):
        await g.git_commit(repo, "glob", ["*.txt"], author=AUTHOR)


@pytest.mark.asyncio
async def test_commit_preview_shows_what_commit_records(repo: Path) -> None:
    write(repo / "README.md", "hello\nsecond\n")
    write(repo / "new.txt", "brand new\n")
    write(repo / "other.txt", "not in preview\n")
    raw(repo, "add", "other.txt")
    index_before = raw(repo, "status", "--porcelain")
    preview = await g.staged_diff(repo, ["README.md", "new.txt"])
    assert "new file mode" in preview and "+brand new" in preview and "+second" in preview
    assert "2 files changed" in preview and "other.txt" not in preview
    assert raw(repo, "status", "--porcelain") == index_before  # the real index is untouched
    assert "other.txt" in await g.staged_diff(repo)  # no paths: the index as it stands
    await g.git_commit(repo, "as previewed", ["README.md", "new.txt"], author=AUTHOR)
    shown = raw(repo, "show", "--format=", "--stat", "--patch", "HEAD")
    assert shown.split("\n", 3)[3] == preview.split("\n", 3)[3]  # same patch, from the same files


# --- push ------------------------------------------------------------------------------------------


def remote_sha(repo: Path, branch: str) -> str:
    return raw(repo.parent / "remote.git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)


@pytest.mark.asyncio
async def test_push_new_feature_branch(repo: Path) -> None:
    raw(repo, "switch", "-q", "-c", "feature/x")
    first = commit_file(repo, "f.txt", "one\n", "first feature commit")
    second = commit_file(repo, "f.txt", "one\ntwo\n", "second feature commit")
    preview = await g.push_preview(repo, "origin", "feature/x")
    assert preview.remote_sha is None and not preview.non_fast_forward
    assert preview.urls == (str(repo.parent / "remote.git"),)
    assert [c.sha for c in preview.commits] == [second, first] and preview.commit_count == 2
    assert preview.commits[0].subject == "second feature commit"
    assert "README.md" in preview.diffstat and "f.txt" in preview.diffstat  # vs the empty tree
    result = await g.git_push(repo, "origin", "feature/x")
    assert result.exit_code == 0
    assert result.argv[-3:] == ["--", "origin", "refs/heads/feature/x:refs/heads/feature/x"]
    assert remote_sha(repo, "feature/x").strip() == second


@pytest.mark.asyncio
async def test_push_preview_existing_branch_and_non_fast_forward(repo: Path, tmp_path: Path) -> None:
    base = raw(repo, "rev-parse", "HEAD").strip()
    c1 = commit_file(repo, "x.txt", "1\n", "one")
    c2 = commit_file(repo, "x.txt", "1\n2\n", "two")
    preview = await g.push_preview(repo, "origin", "main")
    assert preview.remote_sha == base and not preview.non_fast_forward
    assert [c.subject for c in preview.commits] == ["two", "one"]
    assert "x.txt" in preview.diffstat and "README.md" not in preview.diffstat
    await g.git_push(repo, "origin", "main")
    assert remote_sha(repo, "main").strip() == c2
    assert (await g.push_preview(repo, "origin", "main")).commits == ()

    raw(repo, "reset", "-q", "--hard", c1)  # rewrite history: the remote's c2 would be lost
    c3 = commit_file(repo, "y.txt", "3\n", "rewritten")
    preview = await g.push_preview(repo, "origin", "main")
    assert preview.non_fast_forward and [c.sha for c in preview.overwritten] == [c2]
    assert [c.sha for c in preview.commits] == [c3]
    with pytest.raises(ExecutionFailed, match="rejected"):
        await g.git_push(repo, "origin", "main")
    await g.git_push(repo, "origin", "main", force=True)
    assert remote_sha(repo, "main").strip() == c3

    # The lease: someone else pushes; our remote-tracking ref is now stale, so force is refused.
    other = tmp_path / "other"
    raw(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(other))
    commit_file(other, "z.txt", "theirs\n", "theirs")
    raw(other, "push", "-q", "origin", "main")
    commit_file(repo, "w.txt", "ours\n", "ours")
    with pytest.raises(ExecutionFailed, match="stale info"):
        await g.git_push(repo, "origin", "main", force=True)


# --- refusals before git runs ----------------------------------------------------------------------

BAD_REFS = ["", "-f", "--mirror", "a..b", "a@{1}", "a\x01b", "a b", "x.lock", ".hidden", "a/.b", "a//b"]
BAD_REFS += ["a/", "/a", "end.", "x~1", "x^2", "x:y", "x?", "x*", "x[a", "a\\b", "@", "HEAD"]


@pytest.mark.parametrize("value", BAD_REFS)
def test_check_ref_name_refuses(value: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^branch .*expected a branch-style name"):
        g.check_ref_name(value, "branch")


@pytest.mark.parametrize("value", ["main", "feature/login", "v1.2", "fix-42", "user@host", "ünï"])
def test_check_ref_name_accepts(value: str) -> None:
    assert g.check_ref_name(value, "branch") == value


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda r: g.git_push(r, "--receive-pack=touch x", "main"), "remote"),
        (lambda r: g.git_push(r, "https://evil.example/x.git", "main"), "remote"),
        (lambda r: g.git_push(r, "origin", "--all"), "branch"),
        (lambda r: g.git_push(r, "origin", "main:refs/tags/x"), "branch"),
        (lambda r: g.push_preview(r, "origin", "--tags"), "branch"),
        (lambda r: g.git_diff(r, paths=["--output=/tmp/x"]), "paths[0]"),
        (lambda r: g.staged_diff(r, ["ok.txt", "-A"]), "paths[1]"),
        (lambda r: g.git_commit(r, "msg", ["--amend"]), "paths[0]"),
        (lambda r: g.git_commit(r, "msg", "README.md"), "paths"),
    ],
)
@pytest.mark.asyncio
async def test_option_like_arguments_refused_without_running_git(
    repo: Path, monkeypatch: Any, call: Any, named: str
) -> None:
    async def no_git(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"git ran: {args}")

    monkeypatch.setattr(g, "_spawn", no_git)
    with pytest.raises(InvalidRequest, match="expected") as caught:
        await call(repo)
    assert str(caught.value).startswith(named)


@pytest.mark.asyncio
async def test_unknown_remote_and_missing_branch_refused(repo: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"'upstream' is not configured.*\['origin'\]"):
        await g.git_push(repo, "upstream", "main")
    with pytest.raises(InvalidRequest, match="does not exist locally"):
        await g.push_preview(repo, "origin", "nope")


@pytest.mark.parametrize("how", ["url", "pushurl", "insteadOf"])
@pytest.mark.asyncio
async def test_command_transport_remote_refused(repo: Path, trap: tuple[Path, Path], how: str) -> None:
    _, marker = trap
    ext = f"ext::sh -c touch% {marker}"
    raw(repo, "config", "protocol.ext.allow", "always")  # the repo itself tries to re-enable ext::
    if how == "insteadOf":
        raw(repo, "config", f"url.{ext}.insteadOf", str(repo.parent / "remote.git"))
    else:
        raw(repo, "config", f"remote.origin.{how}", ext)
    raw(repo, "push", "origin", "main", check=False)
    assert sprung(marker)  # control: plain git runs the command
    with pytest.raises(InvalidRequest, match="remote-helper transport 'ext::'"):
        await g.push_preview(repo, "origin", "main")
    with pytest.raises(InvalidRequest, match="ext::"):
        await g.git_push(repo, "origin", "main")
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_remote_helper_vcs_and_config_hooks_refused(repo: Path) -> None:
    raw(repo, "config", "remote.origin.vcs", "evil")
    with pytest.raises(InvalidRequest, match=r"remote\.origin\.vcs"):
        await g.git_push(repo, "origin", "main")
    raw(repo, "config", "hook.evil.command", "touch x")
    with pytest.raises(InvalidRequest, match=r"hook\.evil\.command"):
        await g.git_status(repo)


# --- malicious repository config is neutralized -----------------------------------------------------


@pytest.mark.asyncio
async def test_fsmonitor_does_not_run(repo: Path, trap: tuple[Path, Path]) -> None:
    script, marker = trap
    raw(repo, "config", "core.fsmonitor", str(script))
    raw(repo, "status", check=False)
    assert sprung(marker)
    write(repo / "README.md", "changed\n")
    await g.git_status(repo)
    await g.git_diff(repo)
    await g.staged_diff(repo, ["README.md"])
    await g.git_commit(repo, "c", ["README.md"], author=AUTHOR)
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_filter_driver_does_not_run(repo: Path, trap: tuple[Path, Path]) -> None:
    script, marker = trap
    # Defined in an included file, so only an include-aware listing sees it.
    driver = f"\tclean = {script}\n\tsmudge = {script}\n\tprocess = {script}\n\trequired = true\n"
    write(repo / ".git" / "extra.cfg", f'[filter "evil"]\n{driver}')
    raw(repo, "config", "include.path", "extra.cfg")
    write(repo / ".gitattributes", "* filter=evil\n")
    write(repo / "README.md", "changed\n")
    raw(repo, "add", "README.md", check=False)
    assert sprung(marker)
    raw(repo, "reset", "-q")
    await g.git_status(repo)
    assert "+changed" in await g.git_diff(repo)  # content passes through unfiltered
    assert "+changed" in await g.staged_diff(repo, ["README.md"])
    result = await g.git_commit(repo, "c", ["README.md", ".gitattributes"], author=AUTHOR)
    assert result.files == (".gitattributes", "README.md")
    assert raw(repo, "show", "HEAD:README.md") == "changed\n"
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_hooks_do_not_run(repo: Path, trap: tuple[Path, Path], tmp_path: Path) -> None:
    script, marker = trap
    for hook in ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction"):
        (repo / ".git" / "hooks" / hook).symlink_to(script)
    for hook in ("pre-receive", "update", "post-receive"):  # the local remote's own hooks
        (tmp_path / "remote.git" / "hooks" / hook).symlink_to(script)
    write(repo / "a.txt", "a\n")
    raw(repo, "add", "a.txt")
    raw(repo, "commit", "-qm", "control", check=False)
    assert sprung(marker)
    await g.git_commit(repo, "c", ["a.txt"], author=AUTHOR)
    await g.git_push(repo, "origin", "main")
    assert not sprung(marker)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit").symlink_to(script)
    raw(repo, "config", "core.hooksPath", str(hooks))
    write(repo / "b.txt", "b\n")
    await g.git_commit(repo, "c2", ["b.txt"], author=AUTHOR)
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_ssh_command_and_git_proxy_do_not_run(repo: Path, trap: tuple[Path, Path], monkeypatch: Any) -> None:
    script, marker = trap
    raw(repo, "config", "core.sshCommand", str(script))
    raw(repo, "config", "core.gitProxy", str(script))
    raw(repo, "remote", "add", "viassh", "ssh://127.0.0.1:1/x.git")
    raw(repo, "remote", "add", "viagit", "git://127.0.0.1:1/x.git")
    for remote in ("viassh", "viagit"):
        raw(repo, "push", remote, "main", check=False)
        assert sprung(marker)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))  # inherited variables are dropped too
    monkeypatch.setenv("GIT_PROXY_COMMAND", str(script))
    for remote in ("viassh", "viagit"):
        with pytest.raises(ExecutionFailed):
            await g.git_push(repo, remote, "main", process_timeout=20)
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_diff_drivers_do_not_run(repo: Path, trap: tuple[Path, Path]) -> None:
    script, marker = trap
    raw(repo, "config", "diff.external", str(script))
    raw(repo, "config", "diff.evil.command", str(script))
    raw(repo, "config", "diff.evil.textconv", str(script))
    raw(repo, "config", "log.showSignature", "true")
    raw(repo, "config", "gpg.program", str(script))
    write(repo / ".gitattributes", "* diff=evil\n")
    write(repo / "README.md", "changed\n")
    raw(repo, "diff", check=False)
    assert sprung(marker)
    assert "+changed" in await g.git_diff(repo)
    assert "+changed" in await g.staged_diff(repo, ["README.md"])
    await g.git_commit(repo, "c", ["README.md", ".gitattributes"], author=AUTHOR)
    assert "README.md" in (await g.push_preview(repo, "origin", "main")).diffstat
    assert not sprung(marker)


@pytest.mark.asyncio
async def test_receivepack_and_push_config_do_not_apply(repo: Path, trap: tuple[Path, Path]) -> None:
    script, marker = trap
    raw(repo, "config", "remote.origin.receivepack", f"{script}; git-receive-pack")
    raw(repo, "config", "remote.origin.uploadpack", f"{script}; git-upload-pack")
    raw(repo, "push", "origin", "main", check=False)
    assert sprung(marker)
    raw(repo, "config", "remote.origin.mirror", "true")  # would push --mirror --force
    raw(repo, "config", "push.followTags", "true")  # would push tags
    raw(repo, "tag", "-a", "-m", "t", "v1")
    raw(repo, "branch", "keep-local")
    commit_file(repo, "a.txt", "a\n", "more")
    await g.git_push(repo, "origin", "main")
    assert not sprung(marker)
    assert remote_sha(repo, "main").strip() == raw(repo, "rev-parse", "HEAD").strip()
    bare = repo.parent / "remote.git"
    assert raw(bare, "tag") == "" and raw(bare, "branch", "--format=%(refname)") == "refs/heads/main\n"


@pytest.mark.asyncio
async def test_submodule_config_is_not_reached(repo: Path, trap: tuple[Path, Path]) -> None:
    script, marker = trap
    sub = repo / "sub"
    raw(repo, "init", "-q", "-b", "main", "sub")
    commit_file(sub, "f", "a\n", "sub")
    raw(sub, "config", "filter.evil.clean", str(script))
    write(sub / ".git" / "info" / "attributes", "* filter=evil\n")
    raw(repo, "add", "sub")
    raw(repo, "commit", "-qm", "add gitlink")
    await asyncio.sleep(0.01)
    write(sub / "f", "b\n")  # same size, new mtime: status must re-read it through the filter
    raw(repo, "status", check=False)
    assert sprung(marker)
    await g.git_status(repo)
    await g.git_diff(repo)
    await g.staged_diff(repo, ["README.md"])
    assert not sprung(marker)


@pytest.fixture
def http_401() -> Iterator[str]:
    """An HTTP server that demands credentials for every request."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    server.shutdown()


@pytest.mark.asyncio
async def test_credential_helper_does_not_run(repo: Path, trap: tuple[Path, Path], http_401: str) -> None:
    script, marker = trap
    raw(repo, "remote", "add", "web", http_401)
    raw(repo, "config", "credential.helper", f"!{script}")
    raw(repo, "config", f"credential.{http_401}.helper", f"!{script}")
    raw(repo, "config", "core.askPass", str(script))
    raw(repo, "push", "web", "main", check=False)
    assert sprung(marker)
    with pytest.raises(ExecutionFailed, match="terminal prompts disabled"):
        await g.git_push(repo, "web", "main", process_timeout=20)
    assert not sprung(marker)


# --- time limits -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    argv = ["sh", "-c", f"sleep 30 & echo $! > '{pidfile}'; wait"]
    started = time.monotonic()
    with pytest.raises(ExecutionFailed, match=r"timed out after 0\.5 s"):
        await g._spawn(argv, cwd=tmp_path, env=dict(os.environ), process_timeout=0.5)
    assert time.monotonic() - started < 5
    grandchild = int(pidfile.read_text())
    for _ in range(100):  # gone, or a zombie waiting for init to reap it
        stat = Path(f"/proc/{grandchild}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the grandchild survived the timeout")
