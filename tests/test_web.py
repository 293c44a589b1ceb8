"""The review page over real HTTP: who may load it and change anything (token, cookie, Host, Origin,
CSRF, CSP), `ratchet web` and `serve --http` as real subprocesses, and the notify packet's link.

The browser-driven tests are in test_web_browser.py; `running_web` here serves the real app with
uvicorn on a real loopback socket, in the test's event loop, with a hand-moved clock for review times.
"""

from __future__ import annotations

import hmac
import json
import re
import select
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from ratchet.executors import notify
from ratchet.mcp.http import default_token_file, ensure_token
from ratchet.record.store import default_page_token_file
from ratchet.web.serve import bind

from .helpers import WEB_POLICY, Clock, Web, agent, draft, running_web, write_policy


@pytest.fixture
def web_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "web-policies", WEB_POLICY)


@contextmanager
def logged_in(web: Web) -> Iterator[httpx2.Client]:
    """An HTTP client that logged in with the token URL (holding the cookie)."""
    with httpx2.Client(base_url=web.base, timeout=30) as http:
        answer = http.get(f"/login?token={web.token}")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        yield http


def csrf_of(http: httpx2.Client) -> tuple[str, str]:
    page = http.get("/").text
    csrf = re.search(r'name="ratchet-csrf" content="([^"]+)"', page)
    view = re.search(r'name="ratchet-view" content="([^"]+)"', page)
    assert csrf and view
    return csrf[1], view[1]


# -- the attack families ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_without_the_token_every_page_and_answer_is_401(workspace: Path, web_policies: Path, db: Path) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "a\n")
        async with running_web(workspace, web_policies, db) as web:

            def probe() -> None:
                with httpx2.Client(base_url=web.base, timeout=30) as http:
                    for path in ("/", "/api/inbox", "/classes", "/classes/queue", "/recent", f"/explain/{draft_id}"):
                        assert http.get(path).status_code == 401, path
                    post = http.post(
                        f"/api/drafts/{draft_id}/approve", json={}, headers={"Origin": web.base, "X-Ratchet-CSRF": "x"}
                    )
                    assert post.status_code == 401
                    assert http.get("/login?token=" + "x" * len(web.token)).status_code == 401
                    assert http.get("/login").status_code == 401
                    # A forged cookie (right name, a nonce with a wrong MAC) is no session.
                    forged = f"ratchet_web_{web.port}=abc.{'0' * 64}"
                    assert http.get("/api/inbox", headers={"Cookie": forged}).status_code == 401
                    # The notify link's bounce: a page without the cookie offers the same address once more.
                    page = http.get(f"/item/{draft_id}")
                    assert page.status_code == 401 and f"/item/{draft_id}?retry=1" in page.text

            await anyio.to_thread.run_sync(probe)
        assert (await client.call_tool("get_draft", {"draft_id": draft_id})).structured_content["status"] == "draft"
    assert not (workspace / "queue/a.txt").exists()


@pytest.mark.asyncio
async def test_a_foreign_host_or_origin_is_403_and_a_post_without_csrf_is_403(
    workspace: Path, web_policies: Path, db: Path
) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "a\n")
        async with running_web(workspace, web_policies, db) as web:

            def probe() -> None:
                with logged_in(web) as http:
                    csrf, view = csrf_of(http)
                    assert http.get("/api/inbox").status_code == 200
                    # DNS rebinding: a hostile name resolving to 127.0.0.1 sends its own Host.
                    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", ""):
                        assert http.get("/api/inbox", headers={"Host": host}).status_code == 403, host
                    # A login through a rebinding host is refused before the token is even looked at.
                    assert http.get(f"/login?token={web.token}", headers={"Host": "evil.example"}).status_code == 403
                    url = f"/api/drafts/{draft_id}/approve"
                    good = {"Origin": web.base, "X-Ratchet-CSRF": csrf}
                    for origin in ("http://evil.example", "null", f"{web.base}.evil.example", "file://"):
                        answer = http.post(url, json={"view": view}, headers={**good, "Origin": origin})
                        assert answer.status_code == 403, origin
                    assert http.post(url, json={"view": view}, headers={"Origin": web.base}).status_code == 403
                    wrong = {**good, "X-Ratchet-CSRF": "0" * 64}
                    assert http.post(url, json={"view": view}, headers=wrong).status_code == 403
                    assert http.post(url, json={"view": view}, headers={"X-Ratchet-CSRF": csrf}).status_code == 403
                    # A cross-site form cannot send JSON: a form-encoded body is refused too.
                    form = http.post(
                        url, content=b"view=x", headers={**good, "Content-Type": "application/x-www-form-urlencoded"}
                    )
                    assert form.status_code == 415
                    # Another login's CSRF token is not this one's.
                    with logged_in(web) as other:
                        other_csrf, _ = csrf_of(other)
                    assert other_csrf != csrf
                    assert http.post(url, json={}, headers={**good, "X-Ratchet-CSRF": other_csrf}).status_code == 403
                    # The right one works: exactly one approval, then a conflict.
                    assert http.post(url, json={"view": view}, headers=good).status_code == 200
                    again = http.post(url, json={"view": view}, headers=good)
                    assert again.status_code == 409 and "at most once" in again.json()["message"]

            await anyio.to_thread.run_sync(probe)
    assert (workspace / "queue/a.txt").read_text() == "a\n"


@pytest.mark.asyncio
async def test_every_answer_carries_a_strict_content_security_policy(
    workspace: Path, web_policies: Path, db: Path
) -> None:
    async with agent(workspace, web_policies, db) as client:
        await draft(client, "queue/a.txt", "a\n")
        async with running_web(workspace, web_policies, db) as web:

            def probe() -> None:
                with logged_in(web) as http:
                    for path in ("/", "/api/inbox", "/classes", "/classes/queue", "/recent", "/static/app.js"):
                        answer = http.get(path)
                        csp = answer.headers["content-security-policy"]
                        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
                        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
                        assert answer.headers["x-content-type-options"] == "nosniff"
                    # No inline script or style anywhere in a served page.
                    for path in ("/", "/classes", "/classes/queue", "/recent"):
                        text = http.get(path).text
                        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
                        assert "<style" not in text and " style=" not in text, path
                    assert http.get("/api/inbox", headers={"Host": "evil.example"}).headers["content-security-policy"]

            await anyio.to_thread.run_sync(probe)


@pytest.mark.asyncio
async def test_a_command_in_the_agents_sandbox_cannot_reach_the_pages_actions(
    workspace: Path, tmp_path: Path, db: Path
) -> None:
    policies = write_policy(
        tmp_path / "net-policies",
        WEB_POLICY
        + """
[classes.offline-curl]
tools = ["run_command"]
argv = [["curl", "--max-time", "5", "-s", "-o", "/dev/null"]]
start = "autonomous"

[classes.online-curl]
tools = ["run_command"]
argv = [["curl", "--max-time", "6", "-s", "-o", "/dev/null"]]
start = "autonomous"
network = true
""",
    )
    async with agent(workspace, policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "a\n")
        async with running_web(workspace, policies, db) as web:
            url = f"{web.base}/api/drafts/{draft_id}/approve"
            post = ["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}", url]
            offline = await client.call_tool(
                "run_command", {"argv": ["curl", "--max-time", "5", "-s", "-o", "/dev/null", *post]}
            )
            online = await client.call_tool(
                "run_command", {"argv": ["curl", "--max-time", "6", "-s", "-o", "/dev/null", *post]}
            )
        status = (await client.call_tool("get_draft", {"draft_id": draft_id})).structured_content["status"]
    off, on = offline.structured_content, online.structured_content
    assert off is not None and on is not None
    assert off["action_class"] == "offline-curl" and on["action_class"] == "online-curl"
    # Without network the sandbox's own namespace has no server at 127.0.0.1; with it, no token: 401.
    assert off["result"]["exit_code"] != 0 and off["result"]["stdout"] in ("", "000"), off
    assert on["result"]["stdout"] == "401", on
    assert status == "draft" and not (workspace / "queue/a.txt").exists()


@pytest.mark.asyncio
async def test_a_command_cannot_read_the_review_token_even_with_network(
    workspace: Path, tmp_path: Path, db: Path
) -> None:
    """Whoever holds the token answers for the human: the sandbox shows the token file empty."""
    policies = write_policy(
        tmp_path / "read-policies",
        WEB_POLICY
        + '\n[classes.read]\ntools = ["run_command"]\nargv = [["cat"]]\nstart = "autonomous"\nnetwork = true\n',
    )
    token_file = default_token_file(db)
    token = ensure_token(token_file)
    async with agent(workspace, policies, db) as client:
        read = await client.call_tool("run_command", {"argv": ["cat", str(token_file)]})
    done = read.structured_content
    assert done is not None and done["action_class"] == "read" and done["result"] is not None, done
    # The command ran (autonomous, networked) and read nothing: the file is masked inside the sandbox.
    assert done["result"]["stdout"] == "" and token not in json.dumps(done)
    assert token_file.read_text().strip() == token  # the human's copy is untouched


# -- the engine's operations, through the page -------------------------------------------------------


@pytest.mark.asyncio
async def test_answers_through_the_page_are_the_engines_with_channel_web_and_review_time(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        fast = await draft(client, "queue/fast.txt", "f\n")
        slow = await draft(client, "queue/slow.txt", "s\n")
        async with running_web(workspace, web_policies, db, clock) as web:

            def probe() -> list[dict[str, Any]]:
                with logged_in(web) as http:
                    csrf, view = csrf_of(http)
                    head = {"Origin": web.base, "X-Ratchet-CSRF": csrf}
                    http.get(f"/api/inbox?view={view}")
                    # A rejection faster than the diff can be read is no answer: the draft stays queued.
                    too_fast = http.post(
                        f"/api/drafts/{fast}/reject", json={"view": view, "reason": "no"}, headers=head
                    )
                    clock.advance(40)
                    missing = http.post(f"/api/drafts/{slow}/reject", json={"view": view}, headers=head)
                    rejected = http.post(
                        f"/api/drafts/{slow}/reject", json={"view": view, "reason": "wrong file"}, headers=head
                    )
                    approved = http.post(f"/api/drafts/{fast}/approve", json={"view": view}, headers=head)
                    return [
                        too_fast.json(),
                        missing.json() | {"code": missing.status_code},
                        rejected.json(),
                        approved.json(),
                    ]

            too_fast, missing, rejected, approved = await anyio.to_thread.run_sync(probe)
        assert too_fast["status"] == "draft" and "stays queued" in too_fast["message"]
        assert missing["code"] == 422 and "reason is required" in missing["message"]
        assert rejected["status"] == "rejected" and approved["status"] == "executed"
        got_slow = (await client.call_tool("get_draft", {"draft_id": slow})).structured_content
        got_fast = (await client.call_tool("get_draft", {"draft_id": fast})).structured_content
    assert got_slow["status"] == "rejected" and got_slow["review_note"] == "wrong file"
    assert got_fast["status"] == "executed" and got_fast["reviewer"] == "web"
    assert got_fast["review_seconds"] == pytest.approx(40, abs=1)
    with sqlite3.connect(db) as conn:
        rows = dict(
            conn.execute("SELECT id, review_channel || '/' || evidence FROM actions WHERE id IN (?, ?)", (fast, slow))
        )
    assert rows == {fast: "web/counted", slow: "web/counted"}


# -- the CLI and serve --http ---------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if re.search(pattern, line):
                return line.strip()
        if proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r}; exit {proc.poll()}")


@pytest.mark.asyncio
async def test_ratchet_web_prints_a_login_url_once_and_keeps_the_token_private(
    workspace: Path, web_policies: Path, db: Path, ratchet_bin: Path
) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "a\n")
    args = ["web", "--workspace", str(workspace), "--policies", str(web_policies), "--db", str(db)]
    refused = await anyio.run_process([ratchet_bin, *args, "--host", "0.0.0.0"], check=False)
    assert refused.returncode == 2 and b"--token-file" in refused.stderr
    proc = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(
            [ratchet_bin, *args, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
    )
    try:
        line = _read_line(proc, r"/login\?token=")
        url = line.split()[-1]
        token_file = default_page_token_file(db)  # the page's own secret, not the MCP bearer
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert url.endswith(token_file.read_text().strip())
        base = url.split("/login")[0]

        def probe() -> dict[str, Any]:
            with httpx2.Client(timeout=30, follow_redirects=True) as http:
                page = http.get(url)
                assert page.status_code == 200 and str(page.url) == base + "/"
                inbox: dict[str, Any] = http.get(base + "/api/inbox").json()
                return inbox

        inbox = await anyio.to_thread.run_sync(probe)
        assert [i["id"] for i in inbox["items"]] == [draft_id]
        assert notify.address_file(db).read_text().strip() == base  # where notifications find it
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)
    assert not notify.address_file(db).exists()


@pytest.mark.asyncio
async def test_serve_http_serves_the_pages_beside_mcp_behind_their_own_token_not_the_bearer(
    workspace: Path, web_policies: Path, db: Path, ratchet_bin: Path
) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "a\n")
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    args = ["serve", "--http", "--port", str(port), "--workspace", str(workspace), "--policies", str(web_policies)]
    argv = [ratchet_bin, *args, "--db", str(db)]
    proc = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def probe() -> tuple[int, int, int, list[int]]:
            with httpx2.Client(timeout=30) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        first = http.get(base + "/api/inbox")
                        break
                    except httpx2.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                bearer = default_token_file(db).read_text().strip()
                mcp = http.post(base + "/mcp", json={}, headers={"Accept": "application/json"})
                # The MCP bearer, which every HTTP client holds in its configuration, is no page login.
                with_bearer = http.get(f"{base}/login?token={bearer}")
                after_bearer = http.get(base + "/api/inbox")
                login = http.get(f"{base}/login?token={default_page_token_file(db).read_text().strip()}")
                inbox = http.get(base + "/api/inbox")
                codes = (first.status_code, mcp.status_code, with_bearer.status_code, after_bearer.status_code)
                return (*codes, login.status_code, [i["id"] for i in inbox.json()["items"]])

        outcome = await anyio.to_thread.run_sync(probe)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert outcome == (401, 401, 401, 401, 303, [draft_id])


# -- notify links ----------------------------------------------------------------------------------------


def _notify_policy(tmp_path: Path, out: Path) -> Path:
    script = tmp_path / "notify.py"
    script.write_text(f"import sys\nopen({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')\n")
    return write_policy(
        tmp_path / "notify-policies",
        WEB_POLICY.replace("[defaults]", f"[defaults]\nnotify = {json.dumps([sys.executable, str(script)])}"),
    )


def _payloads(out: Path, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if out.exists():
            lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
            if len(lines) >= n:
                return lines
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} notifications in {out}")


@pytest.mark.asyncio
async def test_the_notify_packet_links_to_the_item_on_the_page(
    workspace: Path, tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "notified.jsonl"
    policies = _notify_policy(tmp_path, out)
    async with agent(workspace, policies, db) as client:
        # Nothing configured or known: no link.
        first = await draft(client, "queue/a.txt", "a\n")
        # A `ratchet web` on this database published its address (read at each event by the server).
        notify.publish_address(db, "http://127.0.0.1:8766")
        notify.watch_address(db)
        second = await draft(client, "queue/b.txt", "b\n")
        # A configured address wins (a tunnel's or a proxy's), and never carries the token.
        monkeypatch.setenv(notify.WEB_URL_ENV, "https://review.example.org/ratchet/")
        third = await draft(client, "queue/c.txt", "c\n")
    got = {p["id"]: p for p in await anyio.to_thread.run_sync(_payloads, out, 3)}
    assert "url" not in got[first]
    assert got[second]["url"] == f"http://127.0.0.1:8766/item/{second}"
    assert got[third]["url"] == f"https://review.example.org/ratchet/item/{third}"
    token = ensure_token(default_token_file(db))
    assert token not in out.read_text()
    notify.withdraw_address(db, "http://127.0.0.1:8766")
    assert not notify.address_file(db).exists()


def test_a_coalesced_notification_links_to_the_inbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "got.jsonl"
    script = tmp_path / "n.py"
    script.write_text(f"import sys\nopen({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')\n")
    monkeypatch.setenv(notify.WEB_URL_ENV, "http://127.0.0.1:9999")
    notifier = notify.Notifier([sys.executable, str(script)], per_minute=1)
    assert notifier.send({"id": 1})
    notifier.send({"id": 2})
    notifier.send({"id": 3})
    assert notifier.flush()
    payloads = _payloads(out, 2)
    coalesced = next(p for p in payloads if p.get("status") == "coalesced")
    assert coalesced["url"] == "http://127.0.0.1:9999/" and coalesced["count"] == 2


def test_the_token_file_is_private_to_its_owner(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    token = ensure_token(default_token_file(db))
    assert len(token) >= 32
    assert stat.S_IMODE(default_token_file(db).stat().st_mode) == 0o600


class _Comparisons:
    """Stands in for the `hmac` module as the page's guard sees it (its module's global, a seam we own):
    records the comparisons of the login token and answers with the real one, or a forced answer."""

    def __init__(self, forced: bool | None = None) -> None:
        self.calls: list[tuple[bytes, bytes]] = []
        self.forced = forced

    def compare_digest(self, a: bytes, b: bytes) -> bool:
        self.calls.append((a, b))
        return hmac.compare_digest(a, b) if self.forced is None else self.forced

    def new(self, *args: Any, **kwargs: Any) -> Any:  # the cookie's MAC is made with the real module
        return hmac.new(*args, **kwargs)


@pytest.mark.asyncio
async def test_the_login_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The login token is judged by one `hmac.compare_digest` call and nothing else (no `==` first, no
    length check answering before it), tried through the guard itself."""
    import ratchet.web.security as security

    token = "k" * 20 + "0123456789abcdefghij"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    guard = security.Guard(app, token, host="127.0.0.1", port=8766)

    async def login(given: str) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request"}

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/login",
            "query_string": f"token={given}".encode(),
            "headers": [(b"host", b"127.0.0.1:8766")],
        }
        await guard(scope, receive, send)
        return int(sent[0]["status"])

    recorded = _Comparisons()
    monkeypatch.setattr(security, "hmac", recorded)
    tried = {token: 303, "x" + token[1:]: 401, token[:-1] + "x": 401, token[:5]: 401, token + "extra": 401}
    for given, status in tried.items():
        assert await login(given) == status, given
    assert [a for a, _ in recorded.calls] == [given.encode() for given in tried]
    assert {b for _, b in recorded.calls} == {token.encode()}
    monkeypatch.setattr(security, "hmac", _Comparisons(forced=True))
    assert await login("w" * 3) == 303  # the comparison's answer alone decides
    monkeypatch.setattr(security, "hmac", _Comparisons(forced=False))
    assert await login(token) == 401
