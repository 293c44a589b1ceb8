"""Every CLI command and every MCP tool is documented in the README; the changelog is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from ratchet.cli import build_parser
from ratchet.mcp_server import ServerConfig, build_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return sorted(action.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_in_the_readme_and_has_help(command: str) -> None:
    assert f"ratchet {command}" in README, f"`ratchet {command}` is not documented in README.md"
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert parser.description, f"`ratchet {command}` has no --help description"


@pytest.mark.asyncio
async def test_every_tool_is_in_the_readme(workspace: Path, policies: Path, db: Path) -> None:
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        tools = [t for t in (await client.list_tools()).tools]
    undocumented = [t.name for t in tools if f"`{t.name}" not in README]
    assert undocumented == []
    assert all(t.description for t in tools)


def test_the_changelog_has_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in text and text.count("\n- ") >= 10
