"""The governed tools' output schema: shaped for a quick client-side check, meaning what pydantic's meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import ConfigDict, TypeAdapter

from ratchet.mcp.server import ServerConfig, build_server
from ratchet.results import ToolOutcome


class _AsPydanticWritesIt(ToolOutcome):
    model_config = ConfigDict(json_schema_extra=None)


def _allowed(field: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """What one property admits, as a set of type names and `$ref`s, whichever way it is spelled."""
    if "anyOf" in field:
        return set().union(*(_allowed(branch, defs) for branch in field["anyOf"]))
    if "$ref" in field:
        return {field["$ref"]}
    kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
    extra = {k: v for k, v in field.items() if k not in ("type", "title", "default", "description")}
    # `additionalProperties: true` is JSON Schema's default: no constraint either way.
    assert extra in ({}, {"additionalProperties": True}) or "enum" in extra or "items" in extra, field
    return {f"{kind}:{sorted(extra.get('enum', []))}:{extra.get('items')}" for kind in kinds}


def test_every_field_admits_exactly_what_pydantics_schema_admits() -> None:
    shaped = TypeAdapter(ToolOutcome).json_schema()
    plain = TypeAdapter(_AsPydanticWritesIt).json_schema()
    assert shaped["$defs"] == plain["$defs"] and shaped["required"] == plain["required"]
    assert list(shaped["properties"]) == list(plain["properties"])
    for name, field in shaped["properties"].items():
        assert _allowed(field, shaped["$defs"]) == _allowed(plain["properties"][name], plain["$defs"]), name
        same = {k: v for k, v in field.items() if k not in ("type", "anyOf")}
        assert same == {k: v for k, v in plain["properties"][name].items() if k not in ("type", "anyOf")}, name


def test_optional_fields_are_checked_null_first_and_plain_ones_without_branches() -> None:
    properties = TypeAdapter(ToolOutcome).json_schema()["properties"]
    for name in ("preview", "result", "draft_id", "undone"):
        assert "anyOf" not in properties[name] and properties[name]["type"][0] == "null", name
    for name in ("packet", "moved"):
        assert properties[name]["anyOf"][0] == {"type": "null"}, name


@pytest.mark.asyncio
async def test_the_sdk_client_accepts_every_shape_of_result(workspace: Path, hook_policies: Path, db: Path) -> None:
    """The SDK's client validates each result against the published schema (a mismatch raises): results
    of several statuses, with and without a preview, a draft id or a packet, all pass it."""
    async with Client(build_server(ServerConfig(workspace, hook_policies, db))) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["write_file"].output_schema is not None
        seen = set()
        calls = [
            ("write_file", {"path": "auto/a.txt", "content": "x\n"}),  # executed, with a result
            ("write_file", {"path": "queue/b.txt", "content": "x\n"}),  # a draft, with its id
            ("write_file", {"path": "stop/c.txt", "content": "x\n"}),  # blocked, with a packet
            ("run_command", {"argv": ["echo", "hi"]}),  # executed, with a command's result
        ]
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            if result.structured_content is not None:
                seen.add(result.structured_content["status"])
    assert seen == {"executed", "draft", "blocked"}, seen
