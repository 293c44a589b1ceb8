"""`ratchet serve --http` as a real subprocess on a free loopback port: a bearer token on every
request, refused hosts and token files, the SDK's Host/Origin checks, one Ratchet session per client."""

from __future__ import annotations

import hmac
import json
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ratchet.mcp.http import BearerGate, is_loopback

from .helpers import free_port

TOKEN = "t" * 20 + "0123456789abcdefghij"  # 40 characters


class Server:
    """A running `ratchet serve --http`."""

    def __init__(self, proc: subprocess.Popen[str], port: int, stderr: Path) -> None:
        self.proc, self.port, self.stderr = proc, port, stderr
        self.url = f"http://127.0.0.1:{port}/mcp"

    def post(self, headers: dict[str, str] | None = None, host: str | None = None) -> httpx2.Response:
        """A raw initialize POST, with exactly these extra headers."""
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        sent = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **(headers or {})}
        if host is not None:
            sent["Host"] = host
        return httpx2.post(self.url, content=json.dumps(body), headers=sent, timeout=30)

    @asynccontextmanager
    async def client(self, token: str, *, mode: str = "auto", **headers: str) -> AsyncIterator[Client]:
        """The SDK's streamable HTTP client, sending the bearer token (and any other headers)."""
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers}, timeout=60) as http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
                yield client


def _argv(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *extra: str) -> list[str]:
    return [
        str(ratchet_bin),
        "serve",
        "--http",
        "--workspace",
        str(workspace),
        "--policies",
        str(policies),
        "--db",
        str(db),
        *extra,
    ]


@pytest.fixture
def serve(ratchet_bin: Path, workspace: Path, policies: Path, db: Path, tmp_path: Path) -> Iterator[Any]:
    """Start `ratchet serve --http` (extra arguments as given) and wait until it answers; stopped after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("w") as err:
            argv = _argv(ratchet_bin, workspace, policies, db, "--port", str(port), *extra)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True)
        started.append(proc)
        server = Server(proc, port, log)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server exited: {log.read_text()}"
            try:
                server.post()
                return server
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the HTTP server never answered"
                time.sleep(0.1)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _token_of(db: Path) -> str:
    return (db.parent / (db.name + ".http-token")).read_text().strip()


# -- the token -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_no_token_and_a_wrong_token_are_401_and_the_right_one_lists_and_calls(
    serve: Any, db: Path, workspace: Path
) -> None:
    server: Server = serve()
    token_file = db.parent / (db.name + ".http-token")
    assert token_file.stat().st_mode & 0o777 == 0o600  # generated on first use, readable by its owner only
    assert str(token_file) in server.stderr.read_text()  # the path is printed...
    token = _token_of(db)
    assert len(token) >= 32 and token not in server.stderr.read_text()  # ...never the token

    for headers in (
        None,
        {"Authorization": "Bearer wrong-token-of-the-right-kind-0123456789"},
        {"Authorization": f"Bearer {token[:-1]}"},  # one character short
        {"Authorization": f"Bearer {token}x"},  # one character long
        {"Authorization": f"Basic {token}"},  # not a bearer token
        {"Authorization": token},  # no scheme at all
        {"X-Authorization": f"Bearer {token}"},
    ):
        answer = server.post(headers)
        assert answer.status_code == 401, (headers, answer.text)
        body = answer.json()
        assert body["error"] == "unauthorized" and "Authorization: Bearer" in body["expected"]
        assert str(token_file) in body["expected"] and token not in answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert server.post({"Authorization": f"Bearer {token}"}).status_code == 200

    async with server.client(token) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        levels = await client.call_tool("trust_levels", {})
        wrote = await client.call_tool("write_file", {"path": "auto/h.txt", "content": "via http\n"})
    assert {"write_file", "run_command", "trust_levels"} <= names
    assert levels.structured_content is not None and "auto" in {
        c["action_class"] for c in levels.structured_content["classes"]
    }
    assert wrote.structured_content is not None and wrote.structured_content["status"] == "executed"
    assert (workspace / "auto/h.txt").read_text() == "via http\n"

    with pytest.raises(Exception):  # noqa: B017 - the SDK's client fails to connect; nothing ran
        async with server.client("not-the-token-at-all-0123456789abcdef") as client:
            await client.call_tool("write_file", {"path": "auto/x.txt", "content": "no\n"})
    assert not (workspace / "auto/x.txt").exists()


@pytest.mark.asyncio
async def test_a_token_file_given_explicitly_is_used_and_the_same_token_survives_a_restart(
    serve: Any, tmp_path: Path, db: Path
) -> None:
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server: Server = serve("--token-file", str(token_file))
    assert server.post({"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert server.post().status_code == 401
    assert not (db.parent / (db.name + ".http-token")).exists()  # no second token was made
    server.proc.terminate()
    server.proc.wait(timeout=20)
    # The generated token is kept: a restart serves the same one.
    first = serve()
    token = _token_of(db)
    first.proc.terminate()
    first.proc.wait(timeout=20)
    again: Server = serve()
    assert _token_of(db) == token
    assert again.post({"Authorization": f"Bearer {token}"}).status_code == 200


def _serve_once(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`ratchet serve --http` that is expected to refuse to start."""
    argv = _argv(ratchet_bin, workspace, policies, db, "--port", str(free_port()), *extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org", "localhost.example.org"])
def test_a_non_loopback_host_without_a_token_file_refuses_to_start(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, host: str
) -> None:
    done = _serve_once(ratchet_bin, workspace, policies, db, "--host", host)
    assert done.returncode == 2, done.stderr
    assert f"--host {host} is not loopback" in done.stderr and "--token-file" in done.stderr
    assert not db.exists() and not (db.parent / (db.name + ".http-token")).exists()  # nothing was created


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o660])
def test_a_token_file_others_can_read_or_change_is_refused(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, tmp_path: Path, mode: int
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(mode)
    for host in ("127.0.0.1", "0.0.0.0"):
        done = _serve_once(ratchet_bin, workspace, policies, db, "--host", host, "--token-file", str(token_file))
        assert done.returncode == 1, done.stderr
        assert f"has mode {mode:04o}" in done.stderr and f"chmod 600 {token_file}" in done.stderr
        assert TOKEN not in done.stderr


def test_a_generated_token_file_that_became_readable_is_refused_too(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    token_file = db.parent / (db.name + ".http-token")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    done = _serve_once(ratchet_bin, workspace, policies, db)
    assert done.returncode == 1 and "has mode 0644" in done.stderr, done.stderr


def test_a_short_empty_linked_or_missing_token_file_is_refused(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.write_text("secret\n")
    short.chmod(0o600)
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    good = tmp_path / "good"
    good.write_text(TOKEN)
    good.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(good)
    cases = {
        short: "holds 6 characters; expected one token of at least 32",
        empty: "holds 0 characters",
        link: "is not a regular file",
        tmp_path / "absent": "does not exist",
    }
    for path, message in cases.items():
        done = _serve_once(ratchet_bin, workspace, policies, db, "--token-file", str(path))
        assert done.returncode == 1 and message in done.stderr, (path, done.stderr)


def test_token_options_without_http_are_refused(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    argv = [str(ratchet_bin), "serve", "--workspace", str(workspace), "--token-file", "/nonexistent"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2 and "apply to --http only" in done.stderr


# -- Host and Origin (DNS rebinding) ---------------------------------------------------------------


def test_host_and_origin_checks_stay_on_behind_the_token(serve: Any, db: Path) -> None:
    server: Server = serve()
    auth = {"Authorization": f"Bearer {_token_of(db)}"}
    # A page on another origin, or a rebound name, is refused even with the token.
    assert server.post({**auth, "Origin": "http://evil.example"}).status_code == 403
    assert server.post(auth, host=f"evil.example:{server.port}").status_code == 421
    assert server.post({**auth, "Origin": f"http://localhost:{server.port}"}).status_code == 200
    assert server.post(auth, host=f"localhost:{server.port}").status_code == 200
    # Without the token the gate answers first: nothing about the server leaks past it.
    assert server.post({"Origin": "http://evil.example"}).status_code == 401


def test_an_explicit_token_file_serves_beyond_loopback_with_host_checks_on(serve: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    # Bound to every interface (reached here over loopback only), with one extra allowed name.
    server: Server = serve("--host", "0.0.0.0", "--token-file", str(token_file), "--allowed-host", "ratchet.internal")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert server.post().status_code == 401
    assert server.post(auth).status_code == 200
    assert server.post(auth, host=f"ratchet.internal:{server.port}").status_code == 200
    assert server.post(auth, host=f"evil.example:{server.port}").status_code == 421
    assert server.post({**auth, "Origin": "http://evil.example"}).status_code == 403


# -- sessions --------------------------------------------------------------------------------------


def _sessions(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return [(r[0], r[1]) for r in con.execute("SELECT session_id, target FROM actions ORDER BY id")]
    finally:
        con.close()


@pytest.mark.asyncio
async def test_two_http_clients_are_two_sessions(serve: Any, db: Path) -> None:
    server: Server = serve()
    token = _token_of(db)
    # Two clients at once, each with its own MCP session (the handshake era), one write each.
    async with server.client(token, mode="legacy") as one, server.client(token, mode="legacy") as two:
        await one.call_tool("write_file", {"path": "auto/one-1.txt", "content": "1\n"})
        await two.call_tool("write_file", {"path": "auto/two-1.txt", "content": "2\n"})
        await one.call_tool("write_file", {"path": "auto/one-2.txt", "content": "1\n"})
    rows = dict((target, sid) for sid, target in _sessions(db))
    assert rows["auto/one-1.txt"] == rows["auto/one-2.txt"]  # one client, one session
    assert rows["auto/one-1.txt"] != rows["auto/two-1.txt"]  # two clients, two sessions
    assert all(sid.startswith("http-") for sid in rows.values())
    # The 2026-07-28 protocol has no session: a client says which one it is with Ratchet-Session.
    async with server.client(token, **{"Ratchet-Session": "alice"}) as alice:
        await alice.call_tool("write_file", {"path": "auto/alice.txt", "content": "a\n"})
    async with server.client(token, **{"Ratchet-Session": "bob"}) as bob:
        await bob.call_tool("write_file", {"path": "auto/bob.txt", "content": "b\n"})
    rows = dict((target, sid) for sid, target in _sessions(db))
    assert len({rows["auto/alice.txt"], rows["auto/bob.txt"], rows["auto/one-1.txt"], rows["auto/two-1.txt"]}) == 4
    # Each session's packets see only its own history.
    async with server.client(token, mode="legacy") as three:
        stopped = await three.call_tool("write_file", {"path": "stop/s.txt", "content": "no\n"})
    assert stopped.structured_content is not None
    packet = stopped.structured_content["packet"]
    assert packet["session_id"] not in set(rows.values()) and packet["history"] == []


# -- the gate itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.asyncio
async def test_the_gate_passes_lifespan_and_refuses_websockets_and_duplicate_headers() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    gate = BearerGate(app, TOKEN, Path("/token"))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    await gate({"type": "lifespan"}, receive, send)
    await gate({"type": "websocket", "headers": [(b"authorization", f"Bearer {TOKEN}".encode())]}, receive, send)
    twice = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"Authorization", b"Bearer other")]
    await gate({"type": "http", "headers": twice}, receive, send)
    await gate({"type": "http", "headers": [(b"AUTHORIZATION", f"bearer {TOKEN}".encode())]}, receive, send)
    assert reached == ["lifespan", "http"]  # the websocket and the doubled header never reach the app
    assert sent[0] == {"type": "websocket.close", "code": 1008}
    assert sent[1]["status"] == 401 and b"more than one Authorization header" in sent[2]["body"]


class _Comparisons:
    """Stands in for the `hmac` module as the gate sees it (a seam we own: its module's global): records
    every comparison and answers with the real `hmac.compare_digest`, or with a forced answer."""

    def __init__(self, forced: bool | None = None) -> None:
        self.calls: list[tuple[bytes | str, bytes | str]] = []
        self.forced = forced

    def compare_digest(self, a: bytes | str, b: bytes | str) -> bool:
        self.calls.append((a, b))
        return hmac.compare_digest(a, b) if self.forced is None else self.forced  # type: ignore[arg-type]


async def _gate_status(gate: BearerGate, authorization: bytes) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    await gate({"type": "http", "headers": [(b"authorization", authorization)]}, receive, send)
    return 200 if not sent else int(sent[0]["status"])  # the app below sends nothing: it was reached


@pytest.mark.asyncio
async def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bearer token, right or wrong, long or short, is judged by one `hmac.compare_digest` call and
    by nothing else: no `==` first (which would exit at the first differing byte), no length check that
    answers before it."""
    import ratchet.mcp.http as http_serve

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    gate = BearerGate(app, TOKEN, Path("/token"))
    recorded = _Comparisons()
    monkeypatch.setattr(http_serve, "hmac", recorded)
    tried = {TOKEN: 200, "x" + TOKEN[1:]: 401, TOKEN[:-1] + "x": 401, TOKEN[:5]: 401, TOKEN + "extra": 401}
    for given, status in tried.items():
        assert await _gate_status(gate, f"Bearer {given}".encode()) == status, given
    assert [bytes(a) for a, _ in recorded.calls] == [given.encode() for given in tried]
    assert {bytes(b) for _, b in recorded.calls} == {TOKEN.encode()}
    # The comparison's answer alone decides: forced to say "equal", a wrong token passes; forced to say
    # "different", the right one does not.
    monkeypatch.setattr(http_serve, "hmac", _Comparisons(forced=True))
    assert await _gate_status(gate, b"Bearer " + b"w" * len(TOKEN)) == 200
    assert await _gate_status(gate, b"Bearer short") == 200
    monkeypatch.setattr(http_serve, "hmac", _Comparisons(forced=False))
    assert await _gate_status(gate, f"Bearer {TOKEN}".encode()) == 401


class _Request:
    def __init__(self, **headers: str) -> None:
        self.headers = headers


def test_session_keys_cannot_be_confused_across_kinds() -> None:
    from ratchet.mcp.server import _session_key

    # A Ratchet-Session header naming another client's MCP session id does not join that session.
    assert _session_key(_Request(**{"ratchet-session": "abc"})) != _session_key(_Request(**{"mcp-session-id": "abc"}))
    # The transport's session wins over a header the client chose.
    both = _Request(**{"mcp-session-id": "abc", "ratchet-session": "other"})
    assert _session_key(both) == _session_key(_Request(**{"mcp-session-id": "abc"}))
    # stdio (no request) and HTTP without either header act in the server's own session.
    assert _session_key(None) is None and _session_key(_Request()) is None
    assert _session_key(_Request(**{"ratchet-session": "  "})) is None
