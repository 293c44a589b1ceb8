"""git through the MCP server, on a real repository with a local bare remote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import Clock, Human, write_policy
from .helpers import git as plain_git

POLICY = """
[classes.read]
tools = ["git_status", "git_diff"]
start = "autonomous"

[classes.commit]
tools = ["git_commit"]
start = "autonomous"

[classes.files]
tools = ["write_file", "edit_file"]
start = "autonomous"

[classes.push-branch]
tools = ["git_push"]
force = false
start = "autonomous"

[classes.push-main]
tools = ["git_push"]
branches = ["main", "release/*"]
force = false
start = "confirm"
ceiling = "confirm"

[classes.push-force]
tools = ["git_push"]
force = true
priority = 100
start = "blocked"
ceiling = "blocked"
"""


def git(cwd: Path, *args: str) -> str:
    return plain_git(cwd, *args).strip()


@pytest.fixture
def repo(git_workspace: Path, remote: Path) -> tuple[Path, Path]:
    return git_workspace, remote


@pytest.fixture
def git_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "git-policies", POLICY)


async def _call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.structured_content is None:
        return {"status": "error", "text": result.content[0].text}
    out: dict[str, Any] = result.structured_content
    return out


@pytest.mark.asyncio
async def test_commit_and_push_a_feature_branch_lands_on_the_remote(
    repo: tuple[Path, Path], git_policies: Path, db: Path
) -> None:
    workspace, bare = repo
    git(workspace, "checkout", "-b", "feature/login")
    async with Client(build_server(ServerConfig(workspace, git_policies, db))) as client:
        await _call(client, "write_file", path="login.py", content="def login(): ...\n")
        diff = await _call(client, "git_diff")
        commit = await _call(client, "git_commit", message="Add login", paths=["login.py"])
        status = await _call(client, "git_status")
        push = await _call(client, "git_push", branch="feature/login")
    assert commit["status"] == "executed" and "+def login(): ..." in commit["preview"]
    assert commit["result"]["files"] == ["login.py"]
    assert "## feature/login" in status["result"]["output"]
    assert diff["status"] == "executed"
    assert push["status"] == "executed" and push["action_class"] == "push-branch"
    assert "Add login" in push["preview"] and "login.py" in push["preview"]
    assert git(bare, "rev-parse", "refs/heads/feature/login") == git(workspace, "rev-parse", "HEAD")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_push_to_main_shows_the_commits_and_declining_leaves_the_remote_alone(
    repo: tuple[Path, Path], git_policies: Path, db: Path, mode: str, clock: Clock
) -> None:
    workspace, bare = repo
    before = git(bare, "rev-parse", "refs/heads/main")
    (workspace / "README.md").write_text("hello, world\n")
    human = Human(approve=False, delay=20.0, clock=clock)  # read the push, then said no
    async with Client(
        build_server(ServerConfig(workspace, git_policies, db, clock=clock)), mode=mode, elicitation_callback=human
    ) as client:
        commit = await _call(client, "git_commit", message="Greet the world", paths=["README.md"])
        push = await _call(client, "git_push")
    assert commit["status"] == "executed"
    assert push["status"] == "declined" and push["action_class"] == "push-main"
    message = human.seen[0].message
    assert "Greet the world" in message and "README.md" in message and "1 commit(s) to push" in message
    assert git(bare, "rev-parse", "refs/heads/main") == before


@pytest.mark.asyncio
async def test_a_force_push_is_refused_with_a_packet(repo: tuple[Path, Path], git_policies: Path, db: Path) -> None:
    workspace, bare = repo
    before = git(bare, "rev-parse", "refs/heads/main")
    git(workspace, "commit", "--amend", "-m", "rewritten history")
    async with Client(build_server(ServerConfig(workspace, git_policies, db))) as client:
        push = await _call(client, "git_push", branch="main", force=True)
    assert push["status"] == "blocked" and push["action_class"] == "push-force"
    assert push["packet"]["action"]["tool"] == "git_push"
    assert "NOT a fast-forward" in push["packet"]["draft"]
    assert git(bare, "rev-parse", "refs/heads/main") == before


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("git_push", {"remote": "--upload-pack=touch /tmp/pwned"}, "remote"),
        ("git_push", {"remote": "/tmp/some/other.git"}, "remote"),
        ("git_push", {"remote": "nowhere"}, "nowhere"),
        ("git_push", {"branch": "--delete"}, "branch"),
        ("git_push", {"branch": "main..evil"}, "branch"),
        ("git_commit", {"message": "x", "paths": ["../outside.txt"]}, "outside-workspace"),
        ("git_commit", {"message": "x", "paths": [".git/config"]}, "git-internals"),
        ("git_commit", {"message": "x", "paths": ["-A"]}, "looks like a command-line option"),
        ("git_diff", {"paths": ["--output=/tmp/x"]}, "looks like a command-line option"),
    ],
)
async def test_option_like_and_outside_arguments_are_refused_before_git_runs(
    repo: tuple[Path, Path], git_policies: Path, db: Path, tool: str, args: dict[str, Any], expected: str
) -> None:
    workspace, bare = repo
    before = git(bare, "rev-parse", "refs/heads/main")
    async with Client(build_server(ServerConfig(workspace, git_policies, db))) as client:
        out = await _call(client, tool, **args)
    assert out["status"] in ("error", "failed"), out
    assert expected in str(out)
    assert not Path("/tmp/pwned").exists() and not Path("/tmp/x").exists()
    assert git(bare, "rev-parse", "refs/heads/main") == before


@pytest.mark.asyncio
async def test_a_drafted_commit_goes_stale_when_the_index_moves(
    repo: tuple[Path, Path], tmp_path: Path, db: Path
) -> None:
    from ratchet.engine import Engine
    from ratchet.errors import DraftStale

    workspace, _ = repo
    policies = write_policy(
        tmp_path / "p2",
        POLICY.replace('tools = ["git_commit"]\nstart = "autonomous"', 'tools = ["git_commit"]\nstart = "draft"'),
    )
    (workspace / "a.txt").write_text("a\n")
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        draft = await _call(client, "git_commit", message="Add a", paths=["a.txt"])
    assert draft["status"] == "draft" and "+a" in draft["preview"]
    (workspace / "a.txt").write_text("changed after drafting\n")
    engine = await Engine.open(workspace, policies=policies, db=db, session=False)
    try:
        with pytest.raises(DraftStale):
            await engine.approve(draft["draft_id"])
    finally:
        await engine.close()
    assert git(workspace, "log", "--format=%s") == "first"
