"""The review page sends a browser only to its own paths (web/security.py `own_path`): the login's `next` and
the "not logged in" page's address again, whatever the request's path or parameter holds (`//host/...`, a tab
or newline a browser drops, a backslash it reads as a slash, any of them percent-encoded, a scheme)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import anyio
import httpx2
import pytest

from ratchet.web.security import own_path

from .helpers import WEB_POLICY, running_web, write_policy

HOSTILE = [
    "//evil.example/x",
    "///evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/ /evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%5Cevil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "/.//evil.example",
    "/item//evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
]
OWN = ["/", "/item/3", "/classes/docs", "/classes/docs?x=1", "/metrics"]


def test_own_path_keeps_the_pages_paths_and_nothing_else() -> None:
    assert {t: own_path(t) for t in HOSTILE} == {t: "/" for t in HOSTILE}
    assert {t: own_path(t) for t in OWN} == {t: t for t in OWN}


def raw_get(port: int, target: str) -> str:
    """A GET with the request target exactly as given (an HTTP client would normalise `//host/x`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


@pytest.mark.asyncio
async def test_the_login_and_the_not_logged_in_page_redirect_only_to_their_own_paths(
    workspace: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "web-policies", WEB_POLICY)
    async with running_web(workspace, policies, db) as web:

        def probe() -> tuple[dict[str, str], dict[str, list[str]]]:
            logins = {}
            with httpx2.Client(base_url=web.base, timeout=30) as http:
                for target in [*HOSTILE, *OWN]:
                    answer = http.get("/login", params={"token": web.token, "next": target})
                    assert answer.status_code == 303, (target, answer.status_code)
                    logins[target] = answer.headers["location"]
            pages = {}
            for target in ("//evil.example/x", "//evil.example", "/\\evil.example", "/%2F%2Fevil.example", "/item/3"):
                text = raw_get(web.port, target)
                pages[target] = re.findall(r'(?:url=|href=")([^">]+)', text.split("\r\n\r\n", 1)[-1])
            return logins, pages

        logins, pages = await anyio.to_thread.run_sync(probe)
    assert {t: logins[t] for t in HOSTILE} == {t: "/" for t in HOSTILE}
    assert {t: logins[t] for t in OWN} == {t: t for t in OWN}
    for target, links in pages.items():
        addresses = [link for link in links if not link.startswith("/static/")]
        assert addresses, (target, links)
        for link in addresses:
            assert link.startswith("/") and not link.startswith("//") and "\\" not in link, (target, link)
            assert "evil" not in link.replace("%2F", "/").lower() or not link.startswith("//"), (target, link)
    assert pages["//evil.example/x"] and all(not a.startswith("//") for a in pages["//evil.example/x"])
    assert "/item/3?retry=1" in pages["/item/3"]
