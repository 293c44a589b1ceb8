"""`ratchet serve` (the governed tools over stdio or HTTP) and `ratchet web` (the review page)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ratchet.cli.common import (
    Add,
    existing_db,
    opened,
)
from ratchet.errors import UsageError
from ratchet.executors.notify import watch_address
from ratchet.record.store import Location, beside

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ratchet.mcp.server import ServerConfig

# A server built ahead of a session by the resident serve server (cli/resident.py), taken by the one
# `cmd_serve` whose configuration it was built for (a forked child of that resident).
_PREPARED: list[tuple[ServerConfig, MCPServer]] = []


def prepare(config: ServerConfig) -> None:
    """Build the server for `config` now, so that a later `cmd_serve` with the same configuration only
    runs it (the resident builds it once before it forks a process per session)."""
    import dataclasses  # start-up: only for serve

    from ratchet.mcp.server import build_server  # start-up: the MCP SDK, only for serve

    config = dataclasses.replace(config, closed=config.closed or threading.Event())
    _PREPARED[:] = [(config, build_server(config))]


def _server_for(config: ServerConfig) -> tuple[MCPServer, threading.Event]:
    """The prepared server when it was built for exactly `config` (its own `closed` event), else a new one."""
    import dataclasses  # start-up: only for serve

    from ratchet.mcp.server import build_server  # start-up: the MCP SDK, only for serve

    for prepared, server in _PREPARED:
        if prepared.closed is not None and dataclasses.replace(prepared, closed=config.closed) == config:
            _PREPARED.clear()  # one session per build: its lifespan and `closed` event are this session's
            return server, prepared.closed
    closed = config.closed or threading.Event()
    return build_server(dataclasses.replace(config, closed=closed)), closed


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The server's configuration for `ratchet serve`'s arguments (the workspace already found)."""
    from ratchet.mcp.server import ServerConfig  # start-up: the MCP SDK, only for serve

    return ServerConfig(Path(args.workspace).resolve(), args.policies, args.db, quiet=args.quiet)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the governed tools over stdio (or streamable HTTP with --http: bearer token required, loopback
    unless --token-file is given). SIGINT/SIGTERM record running calls as interrupted and close the database.
    With --resident (or RATCHET_SERVE_RESIDENT=1) the `ratchet` command relays stdio to a resident server
    that has Ratchet imported already; when the resident cannot be used, a line on stderr says why and this
    process serves."""

    from ratchet.mcp.tool_errors import quiet_sdk_logs  # start-up: the MCP SDK, only for serve

    quiet_sdk_logs()  # the SDK's own INFO lines would repeat each tool error, unprefixed
    workspace = Path(args.workspace).resolve()
    if not args.http and (args.token_file or args.allowed_host):
        raise UsageError("--token-file and --allowed-host apply to --http only")
    if args.http and args.resident:
        raise UsageError("--resident applies to stdio only, not --http")
    if args.http:
        from ratchet.mcp.http import check_host  # start-up: the HTTP transport, only for --http

        check_host(args.host, args.token_file)  # before anything is opened or created

    async def check() -> Location:
        # Fail closed before speaking MCP: a broken policy or database never serves half-configured.
        async with opened(args) as engine:
            return engine.location

    db = beside(anyio.run(check), workspace)
    server, closed = _server_for(serve_config(args))
    if args.http:
        from ratchet.mcp.http import HttpOptions, serve_http  # start-up: uvicorn, only for --http
        from ratchet.web import pages_for_serve  # start-up: starlette, only for --http

        options = HttpOptions(args.host, args.port, args.token_file, tuple(args.allowed_host or ()))
        pages = pages_for_serve(workspace, args.policies, args.db, args.host, args.port, options.allowed_hosts, db)
        serve_http(server, options, db, pages)
        return 0

    watch_address(db)  # a `ratchet web` on this database: notifications link to it
    from ratchet.mcp.stdio import serve_stdio  # start-up: the MCP SDK's stdio transport, only for serve

    return serve_stdio(server, closed)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the review page in a browser: the inbox (approve, reject, resolve in one click), the classes and
    their brakes. Loopback only unless --token-file is given; prints a login URL carrying the token once."""
    from ratchet.web import WebOptions, serve_web  # start-up: starlette and uvicorn, only for web

    ws, hosts = Path(args.workspace).resolve(), tuple(args.allowed_host or ())
    options = WebOptions(ws, args.policies, args.db, args.host, args.port, args.token_file, hosts)
    serve_web(options, beside(existing_db(args), ws))
    return 0


def add_serve(add: Add) -> None:
    p = add("serve", cmd_serve)
    p.add_argument("--quiet", action="store_true", help="no line on stderr per tool call")
    p.add_argument(
        "--resident",
        action="store_true",
        help="relay stdio to a resident server of this set-up (started on first use, it exits after 10 min "
        "without a session; `ratchet hook-server status|stop` shows and ends it): start-up without the "
        "imports; also RATCHET_SERVE_RESIDENT=1",
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="HTTP: the file holding the bearer token (mode 0600; required for a non-loopback --host; default: "
        "<database>.http-token beside the trust database, created on first use)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="HTTP: another Host/Origin name clients use to reach this server (repeatable; loopback names and "
        "the bound host are always allowed)",
    )


def add_web(add: Add) -> None:
    p = add("web", cmd_web)
    p.add_argument("--host", default="127.0.0.1", help="host to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8766, help="port (default: 8766; 0 picks a free one)")
    p.add_argument("--token-file", type=Path, default=None, help="as for serve --http (required beyond loopback)")
    p.add_argument("--allowed-host", action="append", metavar="NAME", help="another Host/Origin name (repeatable)")
