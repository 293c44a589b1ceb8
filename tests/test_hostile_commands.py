"""Hostile run_command calls with the starter policies, through the real MCP client and the real hook.

Each call below ran at `autonomous` before the command analysis saw side effects. Now each is held
(draft, refused or blocked) and, after it, no protected file changed, the victim branch still exists,
no pending draft was approved and no class level moved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ratchet.cli import main
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.load import starter_policy_dir

from .helpers import Claude, git


class Repo:
    """A workspace that is a git repository with a `victim` branch and the starter policy in `.ratchet/`."""

    def __init__(self, tmp_path: Path) -> None:
        self.ws = tmp_path / "ws"
        self.ws.mkdir()
        self.policies = self.ws / ".ratchet" / "policies"
        shutil.copytree(starter_policy_dir(), self.policies)
        self.db = tmp_path / "state" / "ratchet.db"
        git(self.ws, "init", "-q", "-b", "main")
        (self.ws / "README.md").write_text("hello\n")
        (self.ws / "notes.txt").write_text("b\na\nb\n")
        git(self.ws, "add", "README.md", "notes.txt")
        git(self.ws, "commit", "-q", "-m", "init")
        git(self.ws, "branch", "victim")

    def protected(self) -> dict[str, str]:
        """A digest of every protected file: .git/config, .git/hooks/*, .ratchet/**."""
        files = [self.ws / ".git" / "config", *sorted((self.ws / ".git" / "hooks").rglob("*"))]
        files += sorted((self.ws / ".ratchet").rglob("*"))
        return {str(f.relative_to(self.ws)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}

    def branches(self) -> list[str]:
        return git(self.ws, "branch", "--format=%(refname:short)").split()

    def server(self) -> Client:
        return Client(build_server(ServerConfig(self.ws, self.policies, self.db)))

    def cli(self, *args: str) -> int:
        base = ["--workspace", str(self.ws), "--policies", str(self.policies), "--db", str(self.db)]
        return main([args[0], *base, *args[1:]])


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


async def _run(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("run_command", args)
    if result.structured_content is None:  # refused before it could be recorded as an outcome
        return {"status": "error", "level": None, "text": result.content[0].text}
    out: dict[str, Any] = result.structured_content
    out["text"] = result.content[0].text
    return out


async def _levels(client: Client) -> dict[str, str]:
    levels = await client.call_tool("trust_levels", {})
    assert levels.structured_content is not None
    return {c["action_class"]: c["level"] for c in levels.structured_content["classes"]}


PWN = "import sqlite3\nsqlite3.connect('x').execute('UPDATE class_state SET level = \"autonomous\"')\n"
FSMONITOR = "[core]\n\tfsmonitor = touch pwned-by-fsmonitor\n"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("args", "expected", "created"),
    [
        pytest.param({"argv": ["uniq", "-", "pwn.py"], "stdin": PWN}, "draft", "pwn.py", id="uniq stdin into pwn.py"),
        pytest.param(
            {"argv": ["uniq", "-", ".git/config"], "stdin": FSMONITOR}, "error", None, id="uniq into .git/config"
        ),
        pytest.param(
            {"argv": ["sort", "-o", ".ratchet/policies/zz.toml"], "stdin": '[classes.zz]\nstart = "autonomous"\n'},
            "error",
            ".ratchet/policies/zz.toml",
            id="sort -o into the policy directory",
        ),
        pytest.param(
            {"argv": ["git", "diff", "--output=.git/hooks/post-checkout", "HEAD"]},
            "error",
            ".git/hooks/post-checkout",
            id="git diff --output into a hook",
        ),
        pytest.param({"argv": ["git", "branch", "-D", "victim"]}, "draft", None, id="git branch -D"),
        pytest.param({"argv": ["git", "branch", "evil"]}, "draft", None, id="git branch NAME creates"),
        pytest.param({"argv": ["git", "-c", "core.fsmonitor=touch x", "status"]}, "draft", "x", id="git -c"),
        pytest.param({"argv": ["sort", "--compress-program=sh", "notes.txt"]}, "draft", None, id="sort runs a program"),
        pytest.param({"argv": ["sort", "notes.txt", "--out=sorted.py"]}, "draft", "sorted.py", id="sort --out= abbrev"),
        pytest.param(
            {"command": "echo '[classes.zz]' | uniq - .ratchet/policies/zz.toml"},
            "error",
            ".ratchet/policies/zz.toml",
            id="pipeline into the policy directory",
        ),
    ],
)
async def test_the_issue_examples_no_longer_run_at_autonomous(
    repo: Repo, args: dict[str, Any], expected: str, created: str | None
) -> None:
    before, branches = repo.protected(), repo.branches()
    async with repo.server() as client:
        levels = await _levels(client)
        out = await _run(client, **args)
        after_levels = await _levels(client)
    assert out["status"] == expected, out["text"]
    assert out["level"] != "autonomous"
    if expected == "draft":
        assert out["level"] == "draft" and "draft_id" in out and out["draft_id"] is not None
    else:  # refused: it names a protected path (Ratchet's state or git internals)
        assert "refused" in out["text"].lower() or "git-internals" in out["text"] or "ratchet" in out["text"]
    if created is not None:
        assert not (repo.ws / created).exists()
    assert repo.protected() == before
    assert repo.branches() == branches and "victim" in branches
    assert after_levels == levels


@pytest.mark.asyncio
async def test_option_writes_to_the_trust_database_are_refused(repo: Repo) -> None:
    async with repo.server() as client:
        levels = await _levels(client)
        outs = [
            await _run(client, argv=["sort", "-o", str(repo.db), "notes.txt"]),
            await _run(client, argv=["uniq", "-", f"{repo.db}-wal"], stdin="junk"),
            await _run(client, argv=["sh", "-c", f"sort notes.txt --output=../state/{repo.db.name}"]),
        ]
        after = await _levels(client)
    for out in outs:
        assert out["status"] == "error" and "managed by Ratchet" in out["text"], out
    assert repo.db.read_bytes()[:16] == b"SQLite format 3\x00" and after == levels
    with sqlite3.connect(repo.db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.asyncio
async def test_a_written_file_holds_the_call_to_its_class_with_a_stated_trigger(repo: Repo) -> None:
    async with repo.server() as client:
        out = await _run(client, argv=["sort", "-o", "src/app.py", "notes.txt"])
        fine = await _run(client, argv=["sort", "notes.txt"])
    assert out["status"] == "draft"
    assert any(t["name"] == "side-effect" and "src/app.py" in t["detail"] for t in out["triggers"])
    assert "sort -o writes src/app.py" in out["preview"]
    assert not (repo.ws / "src/app.py").exists()
    # The same program without the side effect still runs unattended.
    assert fine["status"] == "executed" and fine["result"]["stdout"] == "a\nb\nb\n"


# ---- repository configuration that runs code, through run_command git -----------------------------


def _plant(repo: Repo) -> None:
    """What an agent could have written into .git/ some other way: an fsmonitor, a hook, a textconv
    driver, an alias. Each creates a marker file in the workspace when git runs it."""
    script = repo.ws.parent / "planted.sh"  # outside the workspace: the agent's program
    script.write_text('#!/bin/sh\ntouch "$MARK_DIR/$1"\nexit 0\n')
    script.chmod(0o755)
    mark = repo.ws.parent / "marks"
    mark.mkdir()
    with (repo.ws / ".git" / "config").open("a") as f:
        f.write(
            f"[core]\n\tfsmonitor = MARK_DIR={mark} {script} fsmonitor\n"
            f'[diff "evil"]\n\ttextconv = MARK_DIR={mark} {script} textconv; cat\n'
            f"[alias]\n\tst = !MARK_DIR={mark} {script} alias\n"
        )
    hook = repo.ws / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\nMARK_DIR={mark} {script} hook\n")
    hook.chmod(0o755)
    (repo.ws / ".gitattributes").write_text("*.txt diff=evil\n")
    (repo.ws / "notes.txt").write_text("changed\n")


def _marks(repo: Repo) -> set[str]:
    return {p.name for p in (repo.ws.parent / "marks").iterdir()}


def _clear(repo: Repo) -> None:
    for p in (repo.ws.parent / "marks").iterdir():
        p.unlink()


@pytest.mark.asyncio
async def test_git_through_run_command_works_in_an_ordinary_repository(repo: Repo) -> None:
    """The neutralized configuration must not break everyday git: diff, log, show, status, branch."""
    (repo.ws / "notes.txt").write_text("changed\n")
    async with repo.server() as client:
        outs = {
            name: await _run(client, argv=argv)
            for name, argv in {
                "diff": ["git", "diff"],
                "log": ["git", "log", "-p", "-1"],
                "show": ["git", "show", "--stat", "HEAD"],
                "status": ["git", "status", "--short"],
                "branch": ["git", "branch", "-a"],
            }.items()
        }
    for name, out in outs.items():
        assert out["status"] == "executed" and out["level"] == "autonomous", (name, out["text"])
    assert "+changed" in outs["diff"]["result"]["stdout"]
    assert "victim" in outs["branch"]["result"]["stdout"]


@pytest.mark.asyncio
async def test_git_through_run_command_does_not_run_planted_repository_config(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(repo)
    # The plant works: plain git, outside Ratchet, runs every one of them.
    git(repo.ws, "status")
    git(repo.ws, "diff")
    git(repo.ws, "checkout", "-q", "-b", "plain")
    git(repo.ws, "st")
    assert _marks(repo) == {"fsmonitor", "textconv", "hook", "alias"}
    git(repo.ws, "checkout", "-q", "main")
    _clear(repo)

    async with repo.server() as client:
        status = await _run(client, argv=["git", "status"])
        diff = await _run(client, argv=["git", "diff"])
        nested = await _run(client, argv=["sh", "-c", "git status && git diff"])
        checkout = await _run(client, argv=["git", "checkout", "-q", "-b", "through-ratchet"])
        alias = await _run(client, argv=["git", "st"])
    # The read-only ones ran unattended: status did its job; diff refused the emptied textconv driver
    # (git fails rather than run it, as in the git tools) instead of running the planted one.
    assert status["status"] == "executed" and "notes.txt" in status["result"]["stdout"]
    assert diff["level"] == "autonomous" and diff["status"] == "failed"
    assert "cannot run" in diff["result"]["stderr"]
    assert nested["level"] == "autonomous" and "notes.txt" in nested["result"]["stdout"]
    # ...the others were drafted; the human approves them, and they run without the planted code.
    assert checkout["status"] == "draft" and alias["status"] == "draft"
    assert await anyio.to_thread.run_sync(repo.cli, "approve", str(checkout["draft_id"])) == 0
    await anyio.to_thread.run_sync(repo.cli, "approve", str(alias["draft_id"]))  # the emptied alias fails
    capsys.readouterr()
    assert "through-ratchet" in repo.branches()  # the checkout really ran
    assert _marks(repo) == set()


@pytest.mark.asyncio
async def test_a_planted_external_diff_or_pager_does_not_run(repo: Repo) -> None:
    mark = repo.ws.parent / "marks"
    mark.mkdir()
    with (repo.ws / ".git" / "config").open("a") as f:
        f.write(f"[diff]\n\texternal = touch {mark}/external\n[core]\n\tpager = touch {mark}/pager\n")
    (repo.ws / "notes.txt").write_text("changed\n")
    git(repo.ws, "diff")
    assert _marks(repo) == {"external"}  # the plant works outside Ratchet
    _clear(repo)
    async with repo.server() as client:
        diff = await _run(client, argv=["git", "diff"])
        log = await _run(client, argv=["git", "log", "-p", "-1"])
    assert diff["level"] == "autonomous" and diff["status"] == "failed"  # emptied: git refuses to run it
    assert log["status"] == "executed"
    assert _marks(repo) == set()


# ---- shell expansions in redirect targets ---------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "command",
    [
        "echo x > $HOME/f",
        "echo x > ~/f",
        'echo x > "$(printf f)"',
        "echo x > *.toml",
        "echo x > {a,b}",
        "echo x > $'f'",
    ],
)
async def test_expanded_redirect_targets_are_not_taken_for_literal_paths(
    repo: Repo, command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (repo.ws / "a.toml").write_text("")
    before = sorted(p.name for p in repo.ws.iterdir())
    async with repo.server() as client:
        levels = await _levels(client)
        out = await _run(client, command=command)
        after = await _levels(client)
    # read-only-run allows shell strings and echo is in it; the expansion makes the call opaque, so
    # the catch-all decides, and it does not accept shell strings.
    assert out["status"] == "error" and "does not accept shell strings" in out["text"], out
    assert not (home / "f").exists() and (repo.ws / "a.toml").read_text() == ""
    assert sorted(p.name for p in repo.ws.iterdir()) == before
    assert after == levels


@pytest.mark.asyncio
async def test_a_quoted_literal_target_is_still_a_literal_write(repo: Repo) -> None:
    async with repo.server() as client:
        out = await _run(client, command="echo x > 'odd*name.md'")
    # A literal path: held to that file's class (docs-write starts at confirm; no client dialog here).
    assert out["status"] == "draft" and any("odd*name.md" in t["detail"] for t in out["triggers"])


# ---- the human's CLI, invoked by the agent --------------------------------------------------------


def _spellings(ratchet_bin: Path, draft: int) -> list[list[str]]:
    py = sys.executable
    return [
        ["ratchet", "approve", str(draft)],
        [str(ratchet_bin), "approve", str(draft)],
        [".venv/bin/ratchet", "approve", str(draft)],
        ["env", "RATCHET_X=1", "ratchet", "approve", str(draft)],
        ["nohup", str(ratchet_bin), "approve", str(draft)],
        ["sh", "-c", f"ratchet approve {draft}"],
        ["xargs", "ratchet", "approve"],
        [py, "-m", "ratchet", "approve", str(draft)],
        [py, "-m", "ratchet.cli", "approve", str(draft)],
        [py, str(ratchet_bin), "approve", str(draft)],
        [py, "-c", f"from ratchet.cli import main; main(['approve', '{draft}'])"],
        ["ratchet", "pin", "read-only-run", "blocked"],
        ["ratchet", "status"],
    ]


@pytest.mark.asyncio
async def test_the_agent_never_runs_the_human_cli(repo: Repo, ratchet_bin: Path) -> None:
    (repo.ws / ".venv" / "bin").mkdir(parents=True)
    (repo.ws / ".venv" / "bin" / "ratchet").symlink_to(ratchet_bin)
    async with repo.server() as client:
        pending = await _run(client, argv=["git", "branch", "-D", "victim"])
        assert pending["status"] == "draft"
        levels = await _levels(client)
        outs = [
            await _run(client, argv=argv, stdin=str(pending["draft_id"]))
            for argv in _spellings(ratchet_bin, pending["draft_id"])
        ]
        shell = await _run(client, command=f"true && ratchet approve {pending['draft_id']}")
        after = await _levels(client)
        draft = await client.call_tool("get_draft", {"draft_id": pending["draft_id"]})
    for argv, out in zip(
        [*_spellings(ratchet_bin, pending["draft_id"]), ["shell string"]], [*outs, shell], strict=True
    ):
        assert out["status"] == "blocked", (argv, out)
        assert any(t["name"] == "human-cli" for t in out["triggers"]), argv
        packet = out["packet"]
        assert packet is not None and "ask the human" in json.dumps(packet).lower(), argv
    assert draft.structured_content is not None and draft.structured_content["status"] == "draft"
    assert "victim" in repo.branches()
    assert after == levels


def test_the_hook_denies_the_human_cli_and_the_policy_pipeline(repo: Repo, ratchet_bin: Path) -> None:
    claude = Claude(ratchet_bin, repo.ws, repo.policies, repo.db)
    before = repo.protected()
    cli, _ = claude.bash("ratchet approve 1")
    pipeline, _ = claude.bash("echo '[classes.zz]' | uniq - .ratchet/policies/zz.toml")
    expanded, _ = claude.bash("echo x > ~/f")
    read, _ = claude.bash("git log --oneline -1")
    assert cli is not None and cli["permissionDecision"] == "deny"
    assert "ask the human" in cli["permissionDecisionReason"].lower()
    assert pipeline is not None and pipeline["permissionDecision"] == "deny"
    assert expanded is not None and expanded["permissionDecision"] != "allow"
    assert read is not None and read["permissionDecision"] == "allow"  # ordinary reads still pass
    assert not (repo.ws / ".ratchet/policies/zz.toml").exists()
    assert repo.protected() == before
