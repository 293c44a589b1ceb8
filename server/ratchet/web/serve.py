"""Running the review page: on its own (`ratchet web`), or beside `/mcp` under `ratchet serve --http`.

Both take the host rules of `serve --http` (mcp/http.py): loopback unless a token file is named, the
token file private to its owner, Host and Origin checked. The page's token is its own (`<database>.page-
token`, created on first use), never the MCP bearer: every HTTP MCP client holds the bearer in its
configuration, where the agent can read it, and whoever logs into the page answers for the human.
`ratchet web` binds its socket before printing, so `--port 0` prints the port it really got, and
prints the login URL that carries the token once; while it runs, it publishes its address (no token
in it) beside the trust database, where the notify command's packets find it (executors/notify.py).
"""

from __future__ import annotations

import contextlib
import hmac
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from ratchet.errors import InvalidRequest
from ratchet.executors import notify
from ratchet.mcp.http import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    check_host,
    default_token_file,
    ensure_token,
    read_token,
)
from ratchet.record.store import Location, default_page_token_file
from ratchet.web.app import WebConfig, build_app
from ratchet.web.security import LOGIN_PATH, Guard

DEFAULT_PORT = 8766
GRACEFUL_SHUTDOWN_S = 1  # open event streams are closed this soon after Ctrl-C
MCP_PATH = "/mcp"


@dataclass(frozen=True)
class WebOptions:
    """What `ratchet web` was given."""

    workspace: Path
    policies: Path | None
    db: Location | None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token_file: Path | None = None
    allowed_hosts: tuple[str, ...] = ()


def base_url(host: str, port: int) -> str:
    """The address a browser on this machine (or, for a wildcard bind, the network) uses."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = socket.gethostname()
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now (so port 0 resolves before anything is printed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_web(options: WebOptions, db: Path) -> None:
    """`ratchet web`: serve the review page until Ctrl-C (SIGINT/SIGTERM; the CLI says `interrupted`)."""

    check_host(options.host, options.token_file)
    token_file = options.token_file or default_page_token_file(db)
    token = read_token(token_file) if options.token_file is not None else ensure_token(token_file)
    refuse_the_bearer(token, db)
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    base = base_url(options.host, port)
    pages = build_app(WebConfig(options.workspace, options.policies, options.db, publish=base))
    app = Guard(
        pages,
        token,
        host=options.host,
        port=port,
        allowed_hosts=options.allowed_hosts,
    )
    print(f"ratchet: review page at {base}/ (token in {token_file})", file=sys.stderr, flush=True)
    print(f"open once to log in: {base}{LOGIN_PATH}?token={token}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    try:
        Server(config, pages).run(sockets=[sock])
    finally:
        sock.close()


class Server(uvicorn.Server):
    """uvicorn's server, telling the page's event streams to end as soon as it is asked to stop: an open tab
    holds a stream, which would otherwise outlive the graceful shutdown and be cancelled with a traceback."""

    def __init__(self, config: uvicorn.Config, pages: Starlette) -> None:
        super().__init__(config)
        self.pages = pages

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.pages.state.web.closing = True
        super().handle_exit(sig, frame)


class Split:
    """`/mcp` to the MCP endpoint (behind its bearer gate), everything else to the review page; one
    lifespan that starts and stops both."""

    def __init__(self, mcp: ASGIApp, mcp_app: Starlette, pages: ASGIApp, pages_app: Starlette) -> None:
        self.mcp, self.pages = mcp, pages

        @contextlib.asynccontextmanager
        async def both(_: Starlette) -> AsyncIterator[None]:
            async with mcp_app.router.lifespan_context(mcp_app), pages_app.router.lifespan_context(pages_app):
                yield

        self.lifespan = Starlette(lifespan=both)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
            await self.mcp(scope, receive, send)
        else:
            await self.pages(scope, receive, send)


def refuse_the_bearer(token: str, db: Path) -> None:
    """InvalidRequest when the page's token is the MCP bearer (`--token-file` naming the bearer's file)."""
    bearer = default_token_file(db)
    if bearer.exists() and hmac.compare_digest(bearer.read_text(encoding="utf-8").strip().encode(), token.encode()):
        raise InvalidRequest(
            f"the review page's token is the MCP bearer in {bearer}, which every HTTP client holds; give the page "
            f"a secret of its own (omit --token-file: {default_page_token_file(db)} is created)"
        )


def pages_for_serve(
    workspace: Path,
    policies: Path | None,
    db: Path | None,
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
    beside_db: Path,
) -> Callable[[ASGIApp, Starlette, str, Path], ASGIApp]:
    """For `serve --http`: wrap its gated MCP app so the review pages are served beside `/mcp`, with the same token."""

    def wrap(mcp: ASGIApp, mcp_app: Starlette, token: str, token_file: Path) -> ASGIApp:
        # The page has a secret of its own: the MCP bearer (`token`) sits in every HTTP client's
        # configuration, where the agent can read it, and must never log into the human's page.
        page_file = default_page_token_file(beside_db)
        page_token = ensure_token(page_file)
        if hmac.compare_digest(page_token.encode(), token.encode()):
            raise InvalidRequest(f"{page_file} holds the MCP bearer token; the review page needs a secret of its own")
        pages_app = build_app(WebConfig(workspace, policies, db))
        guarded = Guard(pages_app, page_token, host=host, port=port, allowed_hosts=allowed_hosts)
        base = base_url(host, port)
        notify.set_web_address(base)
        print(
            f"ratchet: review page at {base}/; log in once at {base}{LOGIN_PATH}?token=TOKEN with the page's own "
            f"token in {page_file} (the MCP bearer in {token_file} is not a page login)",
            file=sys.stderr,
            flush=True,
        )
        return Split(mcp, mcp_app, guarded, pages_app)

    return wrap
