"""`ratchet serve --http`: streamable HTTP behind a bearer token, never an open door.

Every HTTP request must carry `Authorization: Bearer <token>`; anything else is answered 401 with a
JSON body that says what was expected (never the token). The token is a secret in a file only its
owner can read:

- by default `<database>.http-token` beside the trust database (so `.ratchet/ratchet.db.http-token`,
  which the `ratchet.db*` line of `.ratchet/.gitignore` keeps out of git), created on first use with
  mode 0600 from `secrets.token_urlsafe`;
- or the file named by `--token-file`, which must already exist.

A token file that its group or others may read or write, that belongs to another user, or that is
not a regular file is refused with an error naming the file, its mode and the fix; so is a token
shorter than MIN_TOKEN_CHARS. Tokens are compared with `hmac.compare_digest`.

A host that is not loopback (127.0.0.0/8, ::1, `localhost`) is refused unless `--token-file` names
the token explicitly: a server reachable from the network is a decision, not a default. The SDK's
DNS-rebinding protection (Host and Origin checked against a list) stays on in every case: loopback
names on loopback, and the bound host (for a wildcard bind, this machine's name), its loopback names
and any `--allowed-host` otherwise.

Sessions: the MCP server gives each MCP session (the transport's `Mcp-Session-Id`) its own Ratchet
session; see `server.SessionPerClient`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import stat
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidRequest, UsageError
from ratchet.record.store import TOKEN_SUFFIX as TOKEN_SUFFIX
from ratchet.record.store import default_token_file as default_token_file

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings  # start-up: the SDK; web needs tokens only

log = logging.getLogger("ratchet")

MIN_TOKEN_CHARS = 32
PATH = "/mcp"
GRACEFUL_SHUTDOWN_S = 3  # open streams get this long after a signal; running calls are then cancelled (and recorded)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Pages = Callable[[ASGIApp, Any, str, Path], ASGIApp]  # (gated MCP app, its Starlette app, token, token file)


def is_loopback(host: str) -> bool:
    """Whether `host` only ever reaches this machine: 127.0.0.0/8, ::1 or `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve anywhere


def check_host(host: str, token_file: Path | None) -> None:
    """Refuse a non-loopback host unless the token file was named explicitly."""
    if not is_loopback(host) and token_file is None:
        raise UsageError(
            f"--host {host} is not loopback: serving beyond this machine needs an explicit --token-file PATH "
            "(a file readable only by you holding the bearer token clients must send); or use --host 127.0.0.1"
        )


def read_token(path: Path) -> str:
    """The token in `path`, after checking that only its owner can read it (InvalidRequest otherwise)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise InvalidRequest(f"token file {path} does not exist; create it (mode 0600) or omit --token-file") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read token file {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InvalidRequest(f"token file {path} is not a regular file (a link or a device?); expected a plain file")
    if st.st_uid != os.getuid():
        raise InvalidRequest(f"token file {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise InvalidRequest(
            f"token file {path} has mode {mode:04o}: its group or others may read or change it; expected 0600 "
            f"(run: chmod 600 {path})"
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read token file {path}: {exc}") from exc
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise InvalidRequest(
            f"token file {path} holds {len(token)} characters; expected one token of at least {MIN_TOKEN_CHARS} "
            "characters without spaces (e.g. from `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


def ensure_token(path: Path) -> str:
    """The token in the default file, created (mode 0600, never readable by others) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            pass  # another server created it first: read theirs
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
    return read_token(path)


def security_settings(host: str, allowed_hosts: Sequence[str]) -> TransportSecuritySettings:
    """The SDK's Host/Origin (DNS-rebinding) checks, on for every host."""
    from mcp.server.transport_security import TransportSecuritySettings  # start-up: the SDK; web needs tokens only

    names = ["127.0.0.1", "localhost", "[::1]"]
    if not is_loopback(host):
        wildcard = host in ("0.0.0.0", "::", "[::]", "")
        names += [socket.gethostname()] if wildcard else [f"[{host}]" if ":" in host else host]
    names += list(allowed_hosts)
    unique = list(dict.fromkeys(names))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{n}:*" for n in unique],
        allowed_origins=[f"{scheme}://{n}:*" for n in unique for scheme in ("http", "https")],
    )


class BearerGate:
    """ASGI middleware: an HTTP request without the right `Authorization: Bearer` token gets a 401."""

    def __init__(self, app: ASGIApp, token: str, token_file: Path) -> None:
        self.app = app
        self._token = token.encode("utf-8")
        self._where = str(token_file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        problem = self._problem(given)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "unauthorized",
                "message": problem,
                "expected": f"an 'Authorization: Bearer <token>' header with the token in {self._where}",
            }
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"www-authenticate", b'Bearer realm="ratchet"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _problem(self, given: list[bytes]) -> str | None:
        if not given:
            return "no Authorization header"
        if len(given) > 1:
            return "more than one Authorization header"
        scheme, _, value = given[0].partition(b" ")
        if scheme.lower() != b"bearer" or not value.strip():
            return "the Authorization header is not a bearer token"
        # Constant time in the token's content: no early exit on the first differing byte.
        if not hmac.compare_digest(value.strip(), self._token):
            return "wrong bearer token"
        return None


@dataclass(frozen=True)
class HttpOptions:
    """What `serve --http` was given."""

    host: str
    port: int
    token_file: Path | None
    allowed_hosts: tuple[str, ...] = ()


def serve_http(server: MCPServer, options: HttpOptions, db: Path, pages: Pages | None = None) -> None:
    """Run `server` over streamable HTTP behind the bearer token until SIGINT/SIGTERM.

    uvicorn catches both signals, stops accepting, gives open streams GRACEFUL_SHUTDOWN_S, then shuts
    the app's lifespan down: running calls are cancelled (and recorded as interrupted) and the
    database is closed before the process exits.
    """
    import uvicorn  # start-up: only when serving HTTP

    check_host(options.host, options.token_file)
    token_file = options.token_file or default_token_file(db)
    token = read_token(token_file) if options.token_file is not None else ensure_token(token_file)
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        host=options.host,
        transport_security=security_settings(options.host, options.allowed_hosts),
    )
    shown = f"[{options.host}]" if ":" in options.host else options.host
    print(
        f"ratchet: serving http://{shown}:{options.port}{PATH}; clients must send 'Authorization: Bearer <token>' "
        f"with the token in {token_file}",
        file=sys.stderr,
        flush=True,
    )
    served: ASGIApp = BearerGate(app, token, token_file)
    if pages is not None:  # the review pages (ratchet.web) beside /mcp, behind the same token
        served = pages(served, app, token, token_file)
    config = uvicorn.Config(
        served,
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )
    uvicorn.Server(config).run()
