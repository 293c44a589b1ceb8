"""Confinement through the MCP tools: every escape attempt is refused by name and changes nothing outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from .helpers import connect


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def layout(tmp_path: Path, workspace: Path) -> dict[str, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched\n")
    sibling = tmp_path / "ws-evil"  # shares the workspace's name as a prefix
    sibling.mkdir()
    (workspace / "auto").mkdir()
    os.symlink(outside / "victim.txt", workspace / "auto/leaf-link.txt")
    os.symlink(outside, workspace / "auto/dir-link")
    (workspace / ".git").mkdir()
    (workspace / ".git/config").write_text("[core]\n")
    return {"outside": outside, "sibling": sibling}


CASES = [
    ("../outside/victim.txt", "outside-workspace"),
    ("auto/../../outside/victim.txt", "outside-workspace"),
    ("{outside}/victim.txt", "outside-workspace"),
    ("auto/leaf-link.txt", "symlink-leaf"),
    ("auto/dir-link/victim.txt", "outside-workspace"),
    ("auto/dir-link/new.txt", "outside-workspace"),
    ("{sibling}/x.txt", "outside-workspace"),
    ("../ws-evil/x.txt", "outside-workspace"),
    (".git/config", "git-internals"),
    (".GIT/config", "git-internals"),
    ("auto/.git/hooks/pre-commit", "git-internals"),
    ("{policies}/policy.toml", "protected"),
    ("{db}", "protected"),
    ("{db}-wal", "protected"),
    (".ratchet/ratchet.db", "ratchet-state"),
    ("", "invalid-path"),
    ("auto/nul\0.txt", "invalid-path"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("spelling", "rule"), CASES)
async def test_escape_attempts_are_refused(
    tmp_path: Path,
    workspace: Path,
    policies: Path,
    db: Path,
    layout: dict[str, Path],
    spelling: str,
    rule: str,
) -> None:
    path = spelling.format(outside=layout["outside"], sibling=layout["sibling"], policies=policies, db=db)
    before = _snapshot(tmp_path)
    async with connect(workspace, policies, db) as client:
        write = await client.call_tool("write_file", {"path": path, "content": "pwned\n"})
        edit = await client.call_tool("edit_file", {"path": path, "edits": [{"old_text": "u", "new_text": "p"}]})
    for result in (write, edit):
        assert result.is_error, result
        assert f"rule {rule!r}" in result.content[0].text
    after = _snapshot(tmp_path)
    changed = {k for k in after if before.get(k) != after[k] and not k.startswith("state/")}
    assert changed == set()
    assert (layout["outside"] / "victim.txt").read_text() == "untouched\n"


@pytest.mark.asyncio
async def test_a_policy_dir_reached_through_a_link_inside_the_workspace(
    workspace: Path, policies: Path, db: Path
) -> None:
    os.symlink(policies, workspace / "pol")
    async with connect(workspace, policies, db) as client:
        result = await client.call_tool("write_file", {"path": "pol/policy.toml", "content": "[defaults]\n"})
    assert result.is_error and "protected" in result.content[0].text
    assert "[classes.climb]" in (policies / "policy.toml").read_text()


@pytest.mark.asyncio
async def test_refusals_are_recorded(server: Client, db: Path) -> None:
    import sqlite3

    await server.call_tool("write_file", {"path": "../x.txt", "content": "x"})
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT tool, status, error FROM actions").fetchall()
    finally:
        con.close()
    assert [(r[0], r[1]) for r in rows] == [("write_file", "refused")]
    assert "outside-workspace" in rows[0][2]
