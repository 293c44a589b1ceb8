"""The agent's next step is in the text of every result that did not run: a blocked call says to call
get_handoff and not to retry; a confirm that fell back to a draft says why, not only in structured fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server

from .helpers import LEVELS_POLICY, write_policy


@pytest.mark.asyncio
async def test_blocked_and_fallback_results_say_the_next_step(tmp_path: Path, workspace: Path, db: Path) -> None:
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY)
    for d in ("ask", "stop"):
        (workspace / d).mkdir()
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:  # cannot elicit
        fallback = await client.call_tool("write_file", {"path": "ask/a.md", "content": "a\n"})
        blocked = await client.call_tool("write_file", {"path": "stop/s.md", "content": "s\n"})
    assert fallback.structured_content is not None and blocked.structured_content is not None
    text = fallback.content[0].text if fallback.content[0].type == "text" else ""
    assert fallback.structured_content["status"] == "draft"
    assert "the client cannot ask its human" in text and "Do not retry" in text, text
    text = blocked.content[0].text if blocked.content[0].type == "text" else ""
    action_id = blocked.structured_content["action_id"]
    assert blocked.structured_content["status"] == "blocked"
    assert f"get_handoff({action_id}" in text and "do not retry" in text, text
