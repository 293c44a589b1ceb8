"""A team's record read by person, workspace or repository: `--by`, `--origin-workspace`, `--repo`.

The record is made by real servers: alice's agent in a clone of a bare repository and in a plain
directory with no git, bob's in another clone of the same repository (cloned by a `file://` URL, so the
two clones name their remote differently and must still agree). The human's commands are the real
console script in its own process, on each backend.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client

from ratchet import identity, repository
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.record.store import parse_location

from .helpers import LEVELS_POLICY, console_env, db_rows, git, make_repo, write, write_policy


@dataclass(frozen=True)
class Team:
    """The shared record and where it was made."""

    db: str
    policies: Path
    clone_a: Path  # alice's clone
    clone_b: Path  # bob's clone of the same repository
    scratch: Path  # alice's directory with no git
    remote: Path  # the bare repository both clones come from
    ids: dict[str, int]  # each call's action id, by its path
    bin: Path  # the console script

    @property
    def repo(self) -> str:
        """The name both clones record: the bare repository's path without `.git`."""
        return str(self.remote)[: -len(".git")]


def _agent(workspace: Path, policies: Path, db: str) -> Client:
    return Client(build_server(ServerConfig(workspace, policies, parse_location(db))))


HANDOFF = {
    "what_tried": "profiled the endpoint; the cache misses dominate",
    "uncertainty": "which eviction policy the team wants here",
    "options": ["lru cache", "no cache"],
    "recommended": "lru cache",
}


async def _calls(workspace: Path, policies: Path, db: str, *paths: str) -> dict[str, int]:
    """The agent's writes (and, for the path `handoff`, a handoff) through a real server on `workspace`:
    each one's action id."""
    out = {}
    async with _agent(workspace, policies, db) as client:
        for path in paths:
            if path == "handoff":
                asked = (await client.call_tool("request_handoff", HANDOFF)).structured_content or {}
                out[path] = int(asked["id"])
                continue
            result = await write(client, path, f"{path}\n")
            out[path] = int(result.get("action_id") or result["draft_id"])
    return out


@pytest_asyncio.fixture
async def team(backend: str, tmp_path: Path, ratchet_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY)
    remote = tmp_path / "remote.git"
    clone_a = make_repo(tmp_path / "clone-a", remote)
    git(tmp_path, "clone", "-q", f"file://{remote}", "clone-b")
    clone_b = tmp_path / "clone-b"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ids: dict[str, int] = {}
    monkeypatch.setenv(identity.ENV, "alice")
    ids |= await _calls(clone_a, policies, backend, "auto/a1.txt", "auto/a2.txt", "queue/a.txt")
    monkeypatch.setenv(identity.ENV, "bob")
    ids |= await _calls(clone_b, policies, backend, "queue/b1.txt", "queue/b2.txt", "auto/b.txt", "handoff")
    monkeypatch.setenv(identity.ENV, "alice")
    ids |= await _calls(scratch, policies, backend, "stop/c.txt", "auto/c.txt")
    return Team(backend, policies, clone_a, clone_b, scratch, remote, ids, ratchet_bin)


def ratchet(team: Team, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`ratchet ARGS` as carol types it, in alice's clone, on the shared record."""
    env = {**console_env(), identity.ENV: "carol"}
    argv = [str(team.bin), *args, "--workspace", str(team.clone_a), "--policies", str(team.policies), "--db", team.db]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def as_json(team: Team, *args: str, cwd: Path | None = None) -> Any:
    return json.loads(ratchet(team, *args, "--json", cwd=cwd).stdout)


@pytest.mark.asyncio
async def test_each_action_records_its_repository_and_two_clones_agree(team: Team) -> None:
    got = db_rows(team.db, "SELECT origin_workspace, origin_repo FROM actions ORDER BY id")
    assert len(got) == 9
    assert set(got) == {
        (str(team.clone_a), team.repo),
        (str(team.clone_b), team.repo),  # cloned by a file:// URL: the same name
        (str(team.scratch), "scratch"),  # no git: the directory's name
    }


@pytest.mark.asyncio
async def test_inbox_by_person_workspace_repository_and_together(team: Team) -> None:
    ids = team.ids

    def inbox(*filters: str, cwd: Path | None = None) -> list[int]:
        out = as_json(team, "inbox", *filters, cwd=cwd)
        if filters:
            return sorted(i["id"] for i in out["items"])
        return sorted(i["id"] for i in out)

    bobs = [ids["queue/b1.txt"], ids["queue/b2.txt"], ids["handoff"]]  # his agent's handoff too
    assert inbox() == sorted([ids["queue/a.txt"], ids["stop/c.txt"], *bobs])
    assert inbox("--by", "alice") == sorted([ids["queue/a.txt"], ids["stop/c.txt"]])
    assert inbox("--by", "bob") == sorted(bobs)
    assert inbox("--repo", team.repo) == sorted([ids["queue/a.txt"], *bobs])
    assert inbox("--origin-workspace", str(team.clone_b)) == sorted(bobs)
    # Any URL form of the repository names it; a relative workspace is taken from the current directory.
    assert inbox("--repo", f"file://{team.remote}/") == inbox("--repo", team.repo)
    assert inbox("--origin-workspace", "scratch", cwd=team.scratch.parent) == [ids["stop/c.txt"]]
    assert inbox("--by", "alice", "--repo", team.repo) == [ids["queue/a.txt"]]
    assert inbox("--by", "bob", "--origin-workspace", str(team.scratch)) == []

    text = ratchet(team, "inbox", "--by", "alice", "--repo", "scratch").stdout
    assert "filter: only items of actions recorded by alice, in repository scratch" in text
    assert f"{ids['stop/c.txt']}  stopped" in text and "queue/a.txt" not in text
    unknown = ratchet(team, "inbox", "--by", "zed")
    assert "inbox empty (recorded by zed)" in unknown.stdout
    assert "filter: no action in the record was recorded by zed" in unknown.stdout
    out = as_json(team, "inbox", "--by", "zed", "--repo", team.repo)
    assert out["items"] == [] and out["filter"] == {
        "by": "zed",
        "workspace": None,
        "repo": team.repo,
        "unknown": ["no action in the record was recorded by zed"],
    }


@pytest.mark.asyncio
async def test_metrics_count_the_filtered_actions_only(team: Team) -> None:
    def total(*filters: str) -> dict[str, Any]:
        out = as_json(team, "metrics", *filters)
        figures: dict[str, Any] = out["total"]
        return {"filter": out["filter"], **figures}

    everyone = total()
    assert everyone["actions"] == 8 and everyone["counts"]["autonomous"] == 4 and everyone["autonomous_share"] == 0.5
    assert everyone["filter"] == {"by": None, "workspace": None, "repo": None, "unknown": []}
    alice = total("--by", "alice")
    assert (alice["actions"], alice["counts"]["autonomous"], alice["counts"]["blocked"]) == (5, 3, 1)
    assert alice["autonomous_share"] == 0.6 and alice["filter"]["by"] == "alice"
    bob = total("--by", "bob")
    assert (bob["actions"], bob["counts"]["pending"], bob["counts"]["autonomous"]) == (3, 2, 1)
    clones = total("--repo", f"{team.remote}")
    assert clones["actions"] == 6 and clones["filter"]["repo"] == team.repo
    assert total("--origin-workspace", str(team.clone_b))["actions"] == 3
    both = total("--by", "alice", "--repo", team.repo)
    assert (both["actions"], both["counts"]["autonomous"], both["counts"]["pending"]) == (3, 2, 1)
    nobody = total("--repo", "elsewhere/none")
    assert nobody["actions"] == 0 and nobody["autonomous_share"] is None
    assert nobody["filter"]["unknown"] == ["no action in the record was in repository elsewhere/none"]
    # The undo and verification figures go with the filter too: bob's one executed action, alice's three.
    text = ratchet(team, "metrics", "--by", "bob").stdout
    assert text.splitlines()[0] == "filter: only actions recorded by bob"
    assert "3 actions" in text
    # The default period still applies under a filter: nothing was recorded a week ago.
    assert total("--by", "alice", "--until", "7d")["actions"] == 0


@pytest.mark.asyncio
async def test_report_filters_its_metrics_and_keeps_trajectories_team_wide(team: Team, tmp_path: Path) -> None:
    everyone = as_json(team, "report")
    alice = as_json(team, "report", "--by", "alice", "--origin-workspace", str(team.scratch))
    assert everyone["metrics"]["total"]["actions"] == 8
    assert alice["metrics"]["total"]["actions"] == 2
    assert alice["metrics"]["total"]["counts"]["blocked"] == 1
    assert alice["filter"] == {"by": "alice", "workspace": str(team.scratch), "repo": None, "unknown": []}
    assert alice["metrics"]["filter"] == alice["filter"]
    # A class's standing moved with everyone's actions: its trajectory is the team's under any filter.
    assert [t["points"] for t in alice["trajectories"]] == [t["points"] for t in everyone["trajectories"]]
    text = ratchet(team, "report", "--by", "bob").stdout
    assert "filter: only actions recorded by bob" in text and "trajectories are team-wide" in text
    page = tmp_path / "bob.html"
    ratchet(team, "report", "--repo", "scratch", "--html", str(page))
    html = page.read_text()
    assert "filter: only actions in repository scratch" in html and "2 actions" in html


@pytest.mark.asyncio
async def test_status_filters_the_queue_and_says_the_standings_are_team_wide(team: Team) -> None:
    everyone = as_json(team, "status")
    bob = as_json(team, "status", "--by", "bob")
    assert (everyone["queued"], bob["queued"]) == (3, 2)
    assert bob["classes"] == everyone["classes"]  # standings: team-wide
    newest_first = [team.ids[p] for p in ("handoff", "auto/b.txt", "queue/b2.txt", "queue/b1.txt")]
    assert [a["action_id"] for a in bob["recent"]] == newest_first
    assert bob["filter"]["by"] == "bob" and everyone["filter"]["by"] is None and "recent" not in everyone
    text = ratchet(team, "status", "--repo", "scratch").stdout
    assert "class standings below are team-wide, not filtered" in text
    assert "0 drafts queued matching the filter" in text and "recent actions matching the filter:" in text
    assert "stop/c.txt" in text and "queue/b1.txt" not in text
    plain = ratchet(team, "status").stdout
    assert "3 drafts queued" in plain and "filter:" not in plain


@pytest.mark.asyncio
async def test_queue_and_history_take_the_same_filters(team: Team) -> None:
    ids = team.ids
    queued = as_json(team, "queue", "--origin-workspace", str(team.clone_b))
    assert [d["action_id"] for d in queued["drafts"]] == [ids["queue/b1.txt"], ids["queue/b2.txt"]]
    history = as_json(team, "history", "--repo", "scratch")
    assert [d["action_id"] for d in history["actions"]] == [ids["auto/c.txt"], ids["stop/c.txt"]]
    # history's own --by (recorded or reviewed) combines with the others.
    mixed = as_json(team, "history", "--by", "alice", "--repo", team.repo)
    assert [d["action_id"] for d in mixed["actions"]] == [ids[p] for p in ("queue/a.txt", "auto/a2.txt", "auto/a1.txt")]
    assert len(as_json(team, "history")) == 9  # no filter: the list as before


@pytest.mark.asyncio
async def test_a_remote_url_with_a_token_is_recorded_without_it(tmp_path: Path, db: Path) -> None:
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY)
    secret = "ghp_S3cretTokenValue"
    forms = {
        "https": f"https://x-access-token:{secret}@Git.Example.com/team/app.git",
        "ssh": "git@git.example.com:team/app.git",
        "scp-with-password": f"deploy:{secret}@git.example.com:team/app/",
    }
    for name, url in forms.items():
        ws = make_repo(tmp_path / name)
        git(ws, "remote", "add", "origin", url)
        await _calls(ws, policies, str(db), "auto/x.txt")
    assert {r[0] for r in db_rows(str(db), "SELECT origin_repo FROM actions")} == {"git.example.com/team/app"}
    kept = [p for p in db.parent.rglob("*") if p.is_file()]  # the database, its journal, anything beside it
    assert db in kept
    for path in kept:
        assert secret.encode() not in path.read_bytes(), path


def test_repository_names_agree_across_url_forms_and_never_keep_a_credential() -> None:
    same = [
        "git@github.com:org/repo.git",
        "https://user:tok@github.com/org/repo.git",
        "ssh://git@github.com/org/repo",
        "ssh://git@GitHub.com:22/org/repo/",
        "https://oauth2:glpat-XYZ@github.com/org/repo.git?ref=main#frag",
        "git+ssh://git@github.com/org/repo.git",
        "alice:hunter2@github.com:org/repo.git",
    ]
    assert {repository.normalise(u) for u in same} == {"github.com/org/repo"}
    for url in ("https://u:pa/ss@host/org/x.git", "ssh://u:p@ss@host/org/x"):  # malformed userinfo
        name = repository.normalise(url)
        assert name == "host/org/x", url
    assert repository.normalise("/srv/git/app.git/") == "/srv/git/app"
    assert repository.normalise("file:///srv/git/app.git") == "/srv/git/app"
    assert repository.normalise("../app.git", Path("/srv/work/ws")) == "/srv/work/app"
    # What a person types to --repo: a URL or path is normalised, a name taken as it is.
    assert repository.as_given("https://tok@github.com/org/repo.git") == "github.com/org/repo"
    assert repository.as_given("github.com/org/repo.git") == "github.com/org/repo"
    assert repository.as_given("scratch") == "scratch"


def test_a_workspace_without_git_or_remote_is_named_by_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain-dir"
    plain.mkdir()
    no_remote = make_repo(tmp_path / "local-only")
    assert repository.of_workspace(plain) == "plain-dir"
    assert repository.of_workspace(no_remote) == "local-only"
    cloned = make_repo(tmp_path / "cloned", tmp_path / "shared.git")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))  # a machine without git
    assert repository.of_workspace(cloned) == "cloned"
    monkeypatch.undo()
    assert repository.normalise(git(cloned, "remote", "get-url", "origin").strip()) == str(tmp_path / "shared")
