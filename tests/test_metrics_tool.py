"""The agent reads its own classes' figures through the read-only class_metrics tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import connect


@pytest.mark.asyncio
async def test_class_metrics_tool_counts_what_the_session_did(workspace: Path, policies: Path, db: Path) -> None:
    async with connect(workspace, policies, db) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for n in range(3):
            await client.call_tool("write_file", {"path": f"auto/{n}.txt", "content": "x"})
        await client.call_tool("write_file", {"path": "stop/x.txt", "content": "x"})
        result = await client.call_tool("class_metrics", {"action_class": "auto"})
        bad = await client.call_tool("class_metrics", {"since": "last tuesday-ish"})
    assert tools["class_metrics"].annotations is not None and tools["class_metrics"].annotations.read_only_hint
    report = result.structured_content
    assert not result.is_error and [c["action_class"] for c in report["classes"]] == ["auto"]
    overall = report["classes"][0]["overall"]
    assert overall["actions"] == 3 and overall["autonomous_share"] == 1.0
    assert bad.is_error and "cannot read 'last tuesday-ish' as a time" in bad.content[0].text
