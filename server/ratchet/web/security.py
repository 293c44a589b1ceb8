"""The review page's guard: who may load it, from where, and who may change anything through it.

The page can approve drafts and lift pins, so it is a trust root like the human's CLI. Everything
here exists so that nothing but the human's own browser, holding the token, can act through it:

- **Token.** The page's own secret (`<database>.page-token`, web/serve.py; read with
  `http_serve.ensure_token`/`read_token`: a file only its owner can read), never the MCP bearer that
  HTTP clients hold in their configuration (the bearer is refused at the login). `ratchet web`
  prints a URL carrying it once (`/login?token=...`); the
  login answer sets a cookie and redirects to a URL without it. The cookie is `HttpOnly` (no script
  reads it) and `SameSite=Strict` (no other site's page sends it), its name carries the port (cookies
  are not kept apart by port), and its value is a random nonce with an HMAC of the nonce under the
  token: stateless, it survives a restart, and a new token invalidates every cookie at once.
  A request without a valid cookie is answered 401.
- **Host and Origin** (DNS rebinding: a hostile site whose name resolves to 127.0.0.1). The Host
  header must name an allowed host (the loopback names, the bound host, any `--allowed-host`: the
  same list `http_serve.security_settings` gives the MCP endpoint), else 403. An Origin, when sent,
  must be one of those hosts, else 403; a state-changing request must send one.
- **CSRF.** Every POST carries `X-Ratchet-CSRF`, an HMAC of the cookie's nonce under the token that
  the page gets in its own HTML; a POST without it (or with another session's) is 403. POSTs take
  JSON only, which a cross-site form cannot send.
- **Content-Security-Policy** on every answer: scripts only from this server's own files (no inline
  script, no eval), nothing fetched from elsewhere, no framing; plus `nosniff`, no referrer and no
  caching of pages.

What it does not cover: a process running as the same OS user can read the token file, as it could
the trust database; a command whose class has `network = true` and that may read the token file can
reach a loopback page (commands without network have their own network namespace, so 127.0.0.1 is
not this machine's).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, unquote

from ratchet.mcp.http import ASGIApp, Receive, Scope, Send, security_settings

CSRF_HEADER = "x-ratchet-csrf"
STATIC_PREFIX = "/static/"
LOGIN_PATH = "/login"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def _mac(token: str, purpose: str, nonce: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    """A browser that logged in: its nonce, from which the cookie and the CSRF token derive."""

    nonce: str
    csrf: str


class Guard:
    """ASGI middleware in front of the review pages (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, *, host: str, port: int, allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self._token = token
        settings = security_settings(host, allowed_hosts)
        # "name:*" patterns from the MCP endpoint's list: a name, with any port.
        self._hosts = {h.removesuffix(":*").lower() for h in settings.allowed_hosts}
        self._origins = {o.removesuffix(":*").lower() for o in settings.allowed_origins}
        self.cookie = f"ratchet_web_{port}"

    # -- checks ----------------------------------------------------------------------------------

    def host_ok(self, host: str | None) -> bool:
        """Whether a Host header names an allowed host (any port)."""
        if not host:
            return False
        name = host.lower()
        if name.startswith("["):  # [::1]:8766
            name = name[: name.find("]") + 1] if "]" in name else name
        elif ":" in name:
            name = name.rsplit(":", 1)[0]
        return name in self._hosts

    def origin_ok(self, origin: str) -> bool:
        """Whether an Origin header is one of the allowed hosts (any port, http or https)."""
        text = origin.lower()
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False
        if rest.startswith("["):
            name = rest[: rest.find("]") + 1] if "]" in rest else rest
            tail = rest[len(name) :]
        else:
            name, _, port = rest.partition(":")
            tail = f":{port}" if port else ""
        if tail and not (tail[0] == ":" and tail[1:].isdigit()):
            return False
        return f"{scheme}://{name}" in self._origins

    def session_of(self, cookie_header: str | None) -> Session | None:
        """The logged-in session a Cookie header carries, or None."""
        if not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # a malformed header is simply no session
            return None
        morsel = jar.get(self.cookie)
        if morsel is None:
            return None
        nonce, _, mac = morsel.value.partition(".")
        if not nonce or not hmac.compare_digest(mac, _mac(self._token, "session", nonce)):
            return None
        return Session(nonce, _mac(self._token, "csrf", nonce))

    def new_cookie(self) -> str:
        """A Set-Cookie value for a fresh session."""
        nonce = secrets.token_urlsafe(18)
        value = f"{nonce}.{_mac(self._token, 'session', nonce)}"
        return f"{self.cookie}={value}; Path=/; HttpOnly; SameSite=Strict"

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        path: str = scope.get("path", "/")
        if not self.host_ok(headers.get("host")):
            await _refuse(send, 403, "forbidden host", "the Host header names a host this server does not serve")
            return
        origin = headers.get("origin")
        if origin is not None and not self.origin_ok(origin):
            await _refuse(send, 403, "forbidden origin", "requests from another site are refused")
            return
        if method not in ("GET", "HEAD", "POST"):
            await _refuse(send, 405, "method not allowed", "GET or POST only")
            return
        if path.startswith(STATIC_PREFIX) and method != "POST":
            await self.app(scope, receive, _secured(send))
            return
        if path == LOGIN_PATH and method == "GET":
            await self._login(scope, send)
            return
        session = self.session_of(headers.get("cookie"))
        if session is None:
            await _unauthorized(send, path, scope.get("query_string", b""), method)
            return
        if method == "POST":
            if origin is None:
                await _refuse(send, 403, "no origin", "a state-changing request must send an Origin header")
                return
            given = headers.get(CSRF_HEADER, "")
            if not given or not hmac.compare_digest(given, session.csrf):
                await _refuse(send, 403, "csrf", f"a state-changing request needs the page's {CSRF_HEADER} header")
                return
            if not headers.get("content-type", "").lower().startswith("application/json"):
                await _refuse(send, 415, "unsupported media type", "POST a JSON body (application/json)")
                return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, _secured(send))

    async def _login(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        target = own_path((query.get("next") or ["/"])[0])
        if not token or not hmac.compare_digest(token.encode(), self._token.encode()):
            await _refuse(send, 401, "unauthorized", "wrong or missing token; use the URL `ratchet web` printed")
            return
        await _secured(send)(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", target.encode("latin-1", "replace")),
                    (b"set-cookie", self.new_cookie().encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


# What a path of this page may hold: no scheme or host, no backslash, no space or control character (which a
# browser drops or rewrites: `/\t/host` is `//host` to it), nothing percent-encoded into one of those.
_OWN_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


def own_path(target: str) -> str:
    """`target` when it is a path of this page (a login's `next`), else `/`: never another host."""
    decoded = unquote(target)
    for form in (target, decoded):
        if not _OWN_PATH.fullmatch(form) or "//" in form.split("?", 1)[0] or "\\" in form:
            return "/"
    return target


def _secured(send: Send) -> Send:
    """`send`, with the security headers added to the response start."""

    async def wrapped(message: dict) -> None:  # type: ignore[type-arg]
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in HEADERS if k not in present]
            if b"cache-control" not in present:
                extra.append((b"cache-control", b"no-store"))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped  # type: ignore[return-value]


async def _refuse(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    await _secured(send)(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Send, path: str, query: bytes, method: str) -> None:
    """401. A page gets a short HTML answer; a link followed from another site (a notification in a chat)
    arrives without the SameSite=Strict cookie, so the answer offers the same address again from here,
    where the browser sends it."""
    if method != "GET" or path.startswith("/api/"):
        await _refuse(send, 401, "unauthorized", "log in with the URL `ratchet web` printed (it carries the token)")
        return
    again = own_path(quote(path, safe="/") + ("?" + query.decode("latin-1") if query else ""))  # never `//host`
    retried = b"retry=1" in query
    if not retried:
        again += ("&" if "?" in again else "?") + "retry=1"
    link = html.escape(quote(again, safe="/?=&"))
    refresh = "" if retried else f'<meta http-equiv="refresh" content="0;url={link}">'
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}<title>Ratchet: log in</title>'
        '<link rel="stylesheet" href="/static/app.css"></head><body><main class="login"><h1>Not logged in</h1>'
        "<p>Open the address <code>ratchet web</code> printed (it carries the token once and sets a cookie), "
        f'then <a href="{link}">continue here</a>.</p></main></body></html>'
    ).encode()
    await _secured(send)(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
