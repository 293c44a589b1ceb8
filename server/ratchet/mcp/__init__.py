"""The MCP edge: the governed tools as an MCP server (server.py), served over stdio or streamable HTTP."""
