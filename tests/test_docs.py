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


@pytest.mark.parametrize("command", _commands())
def test_every_option_and_argument_of_every_command_has_help(command: str) -> None:
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    bare = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not (action.help and action.help.strip() and action.help != "==SUPPRESS==")
    ]
    assert bare == [], f"`ratchet {command}` has arguments without help: {bare}"


def test_the_top_level_options_have_help() -> None:
    bare = [a.dest for a in build_parser()._actions if not a.help]
    assert bare == []


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


def _security_references() -> list[tuple[str, str | None]]:
    """(test file, test name or None) for every test docs/security.md names; `::name` alone means the
    file named last in the same table cell."""
    import re

    refs: list[tuple[str, str | None]] = []
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        current: str | None = None
        for token in re.findall(r"`([^`]+)`", line):
            named = re.fullmatch(r"(test_\w+\.py)(?:::(\w+))?(?:\[[^\]]*\])?", token)
            alone = re.fullmatch(r"::(\w+)(?:\[[^\]]*\])?", token)
            if named:
                current = named[1]
                refs.append((current, named[2]))
            elif alone and current is not None:
                refs.append((current, alone[1]))
    return refs


def test_every_test_docs_security_names_exists() -> None:
    """The security page is the list of what holds: a renamed or deleted test must not leave it stale."""
    refs = _security_references()
    assert len(refs) >= 40
    missing = []
    for file, name in refs:
        path = ROOT / "tests" / file
        if not path.exists() or (name is not None and f"def {name}(" not in path.read_text()):
            missing.append(f"{file}::{name}" if name else file)
    assert missing == [], f"docs/security.md names tests that do not exist: {missing}"
