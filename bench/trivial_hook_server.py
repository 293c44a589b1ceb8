"""A trivial MCP server whose one tool answers every hook event with `{}` (no decision), at once.

bench.claude_code's `floor` set-up points `mcp_tool` hooks at it: what Claude Code's own `mcp_tool`
hook mechanism costs per tool call, with an MCP server on the same SDK as Ratchet's that does nothing.

    python bench/trivial_hook_server.py
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("floor")


@server.tool()
async def hook(tool_name: Any = None) -> str:
    """Answers a hook event with no decision."""
    return "{}"


if __name__ == "__main__":
    server.run()
