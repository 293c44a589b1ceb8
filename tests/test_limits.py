"""Limits on every input, through the real MCP client: one byte (or item) over is refused with a
message naming the limit, exactly at the limit runs; the rate limits hold; nothing is diffed,
lexed or stored for a call over a limit; an executed write keeps no content in the database."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

import ratchet.engine.handoffs
import ratchet.executors.fs
import ratchet.executors.notify
import ratchet.operations.commands
import ratchet.policy.argv
from ratchet.cli import main
from ratchet.errors import PolicyError
from ratchet.policy.limits import Limits, argv_bytes, utf8_len
from ratchet.policy.load import load_policy, starter_policy_dir

from .helpers import LEVELS_POLICY, connect, write_policy

LIMITS = """
[defaults.limits]
max_write_bytes = 100
max_edits = 3
max_argv_bytes = 50
max_shell_bytes = 40
max_stdin_bytes = 30
max_text_bytes = 60
handoffs_per_minute = 3
notifications_per_minute = 3

[classes.big]
tools = ["write_file", "edit_file"]
paths = ["big/**"]
start = "autonomous"
[classes.big.limits]
max_write_bytes = 200

[classes.small]
tools = ["write_file", "edit_file"]
paths = ["small/**"]
start = "autonomous"
[classes.small.limits]
max_write_bytes = 50

[classes.run]
tools = ["run_command"]
argv = [["true"], ["cat"]]
start = "autonomous"
allow_shell = true
"""

HANDOFF = {"what_tried": "ran the tests twice", "uncertainty": "which fixture to keep", "options": ["a", "b"]}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "small-policies", LEVELS_POLICY + LIMITS)


def _server(workspace: Path, policies: Path, db: Path) -> Client:
    return connect(workspace, policies, db)


async def _call(client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""
    return result.is_error, text, result.structured_content


def _refused(outcome: tuple[bool, str, dict[str, Any] | None], key: str, *named: str) -> None:
    is_error, text, _ = outcome
    assert is_error, text
    assert key in text and "raise it with [defaults.limits]" in text, text
    for part in named:
        assert part in text, text


def _ran(outcome: tuple[bool, str, dict[str, Any] | None]) -> dict[str, Any]:
    is_error, text, out = outcome
    assert not is_error and out is not None and out["status"] == "executed", text
    return out


# -- sizes -------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_write_size_is_counted_in_utf8_bytes_at_and_one_over(workspace: Path, small: Path, db: Path) -> None:
    at = "é" * 50  # 100 bytes, 50 characters: the limit is on bytes
    assert utf8_len(at) == 100 and utf8_len(at + "x") == 101
    async with _server(workspace, small, db) as client:
        _ran(await _call(client, "write_file", {"path": "auto/at.txt", "content": at}))
        over = await _call(client, "write_file", {"path": "auto/over.txt", "content": at + "x"})
    _refused(over, "max_write_bytes", "101 bytes", "= 100", "in policy.toml", "[classes.auto.limits]")
    assert (workspace / "auto/at.txt").read_text() == at and not (workspace / "auto/over.txt").exists()


@pytest.mark.asyncio
async def test_a_class_raises_or_lowers_the_write_limit(workspace: Path, small: Path, db: Path) -> None:
    async with _server(workspace, small, db) as client:
        _ran(await _call(client, "write_file", {"path": "big/at.txt", "content": "b" * 200}))
        over_all = await _call(client, "write_file", {"path": "big/over.txt", "content": "b" * 201})
        # 150 bytes is within what big allows, so the first check passes; auto's own limit refuses it.
        over_class = await _call(client, "write_file", {"path": "auto/mid.txt", "content": "a" * 150})
        _ran(await _call(client, "write_file", {"path": "small/at.txt", "content": "s" * 50}))
        lowered = await _call(client, "write_file", {"path": "small/over.txt", "content": "s" * 51})
    _refused(over_all, "max_write_bytes", "201 bytes", "= 200")
    _refused(over_class, "max_write_bytes", "150 bytes", "class auto's limit", "= 100", "[classes.auto.limits]")
    _refused(lowered, "max_write_bytes", "51 bytes", "class small's limit", "= 50", "[classes.small.limits]")
    assert not (workspace / "auto/mid.txt").exists() and not (workspace / "small/over.txt").exists()


@pytest.mark.asyncio
async def test_edits_per_call_and_the_edited_file_are_limited(workspace: Path, small: Path, db: Path) -> None:
    target = workspace / "auto" / "e.txt"
    target.parent.mkdir()
    target.write_text("one two three four\n")
    three = [{"old_text": w, "new_text": w.upper()} for w in ("one", "two", "three")]
    four = [*three, {"old_text": "four", "new_text": "FOUR"}]
    async with _server(workspace, small, db) as client:
        _ran(await _call(client, "edit_file", {"path": "auto/e.txt", "edits": three}))
        too_many = await _call(client, "edit_file", {"path": "auto/e.txt", "edits": four})
        # 19 bytes in the file; growing it to 101 is one byte over, to 100 runs.
        grow = "x" * (100 - 19 + len("four"))
        over = await _call(
            client, "edit_file", {"path": "auto/e.txt", "edits": [{"old_text": "four", "new_text": grow + "y"}]}
        )
        _ran(
            await _call(client, "edit_file", {"path": "auto/e.txt", "edits": [{"old_text": "four", "new_text": grow}]})
        )
    _refused(too_many, "max_edits", "4 edits", "= 3")
    _refused(over, "max_write_bytes", "101 bytes", "= 100")
    assert len(target.read_bytes()) == 100


@pytest.mark.asyncio
async def test_an_edit_that_would_multiply_the_file_is_refused_before_replacing(
    workspace: Path, small: Path, db: Path
) -> None:
    target = workspace / "auto" / "m.txt"
    target.parent.mkdir()
    target.write_text("a" * 50)
    # new_text times count says what the edit could add: 50 x 10 bytes is over before any replace runs.
    edit = {"old_text": "a", "new_text": "b" * 10, "count": 50}
    async with _server(workspace, small, db) as client:
        over = await _call(client, "edit_file", {"path": "auto/m.txt", "edits": [edit]})
    _refused(over, "max_write_bytes", "new_text times count", "501 bytes")
    assert target.read_text() == "a" * 50


@pytest.mark.asyncio
async def test_argv_shell_string_and_stdin_at_and_one_over(workspace: Path, small: Path, db: Path) -> None:
    argv = ["true", "x" * 44]
    assert argv_bytes(argv) == 50  # each argument's bytes and its NUL
    shell = "true " + "a" * 35
    assert len(shell) == 40
    async with _server(workspace, small, db) as client:
        _ran(await _call(client, "run_command", {"argv": argv}))
        argv_over = await _call(client, "run_command", {"argv": [*argv[:1], argv[1] + "x"]})
        # Many empty arguments are not free: each costs its NUL.
        empties = await _call(client, "run_command", {"argv": ["true", *[""] * 50]})
        _ran(await _call(client, "run_command", {"command": shell}))
        shell_over = await _call(client, "run_command", {"command": shell + "a"})
        out = _ran(await _call(client, "run_command", {"argv": ["cat"], "stdin": "s" * 30}))
        stdin_over = await _call(client, "run_command", {"argv": ["cat"], "stdin": "s" * 31})
    _refused(argv_over, "max_argv_bytes", "51 bytes", "= 50")
    _refused(empties, "max_argv_bytes", "55 bytes")
    _refused(shell_over, "max_shell_bytes", "41 bytes", "= 40")
    assert out["result"]["stdout"] == "s" * 30
    _refused(stdin_over, "max_stdin_bytes", "31 bytes", "= 30")


@pytest.mark.asyncio
async def test_free_text_arguments_are_limited(workspace: Path, small: Path, db: Path) -> None:
    async with _server(workspace, small, db) as client:
        _ran(await _call(client, "write_file", {"path": "auto/t.txt", "content": "t", "intent": "i" * 60}))
        intent_over = await _call(client, "write_file", {"path": "auto/u.txt", "content": "u", "intent": "i" * 61})
        handoff_over = await _call(client, "request_handoff", {**HANDOFF, "what_tried": "w" * 61})
    _refused(intent_over, "max_text_bytes", "intent is 61 bytes")
    _refused(handoff_over, "max_text_bytes", "what_tried is 61 bytes")
    assert not (workspace / "auto/u.txt").exists()
    con = sqlite3.connect(db)
    try:
        # The refused call is on record, without the oversized text.
        rows = con.execute("SELECT status, error, intent FROM actions WHERE target = 'auto/u.txt'").fetchall()
    finally:
        con.close()
    assert [(r[0], r[2]) for r in rows] == [("refused", None)] and "max_text_bytes" in rows[0][1]


@pytest.mark.asyncio
async def test_nothing_is_diffed_or_lexed_for_a_call_over_a_limit(
    workspace: Path, small: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ratchet.executors.fs, "plan_write", spy("plan_write", ratchet.executors.fs.plan_write))
    monkeypatch.setattr(ratchet.executors.fs, "_diff", spy("diff", ratchet.executors.fs._diff))
    for name in ("analyse_argv", "analyse_shell"):
        monkeypatch.setattr(ratchet.operations.commands, name, spy(name, getattr(ratchet.policy.argv, name)))
    huge = "password=" + "p" * 5_000_000  # what used to take seconds to redact and diff
    async with _server(workspace, small, db) as client:
        refusals = [
            await _call(client, "write_file", {"path": "auto/huge.txt", "content": huge}),
            await _call(client, "run_command", {"command": huge}),
            await _call(client, "run_command", {"argv": ["true", huge]}),
            await _call(client, "run_command", {"argv": ["cat"], "stdin": huge}),
        ]
        assert seen == []
        levels = await client.call_tool("trust_levels", {})  # the server still answers
    assert not levels.is_error
    for (is_error, text, _), key in zip(
        refusals, ["max_write_bytes", "max_shell_bytes", "max_argv_bytes", "max_stdin_bytes"], strict=True
    ):
        assert is_error and key in text and len(text) < 1000, text[:300]
    assert huge[:1000] not in Path(db).read_bytes().decode("latin-1")


# -- rates ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_handoffs_past_the_rate_are_refused_until_the_window_moves(
    workspace: Path, small: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_900_000_000.0]
    monkeypatch.setattr(ratchet.engine.handoffs, "clock", lambda: now[0])
    async with _server(workspace, small, db) as client:
        for _ in range(3):
            ok = await _call(client, "request_handoff", HANDOFF)
            assert not ok[0], ok[1]
        now[0] += 30
        over = await _call(client, "request_handoff", HANDOFF)
        async with _server(workspace, small, db) as other:  # another session has its own count
            assert not (await _call(other, "request_handoff", HANDOFF))[0]
        now[0] += 30.5  # the first three are now more than a minute old
        again = await _call(client, "request_handoff", HANDOFF)
    _refused(over, "handoffs_per_minute", "3 in the last 60 seconds", "= 3", "try again in 30.0 seconds")
    assert not again[0], again[1]
    con = sqlite3.connect(db)
    try:
        count = con.execute("SELECT count(*) FROM actions WHERE tool = 'request_handoff'").fetchone()[0]
    finally:
        con.close()
    assert count == 5  # the refused one left no inbox item


def _notify_policy(tmp_path: Path, sink: Path) -> Path:
    script = (
        "import sys, json; d = json.load(sys.stdin); "
        f"open({str(sink)!r}, 'a').write(json.dumps({{'status': d['status'], 'count': d.get('count', 1), "
        "'ids': d.get('ids', [d.get('id')])}) + '\\n')"
    )
    notify = json.dumps([sys.executable, "-c", script])
    return write_policy(
        tmp_path / "notify-policies", LEVELS_POLICY.replace("[defaults]\n", f"[defaults]\nnotify = {notify}\n") + LIMITS
    )


async def _runs(sink: Path, events: int) -> list[dict[str, Any]]:
    """The notify runs so far, once they account for `events` events (the processes run detached)."""
    with anyio.fail_after(30):
        while True:
            lines = sink.read_text().splitlines() if sink.exists() else []
            runs = [json.loads(line) for line in lines]
            if sum(r["count"] for r in runs) >= events:
                return runs
            await anyio.sleep(0.05)  # other processes write the file


@pytest.mark.asyncio
async def test_fifty_drafts_spawn_a_bounded_number_of_notify_runs_that_carry_the_count(
    tmp_path: Path, workspace: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = tmp_path / "runs.jsonl"
    monkeypatch.setattr(ratchet.executors.notify, "clock", lambda: 5000.0)  # the window never moves on its own
    async with _server(workspace, _notify_policy(tmp_path, sink), db) as client:
        ids = []
        for i in range(50):
            out = (await _call(client, "write_file", {"path": f"queue/{i}.txt", "content": f"{i}\n"}))[2]
            assert out is not None and out["status"] == "draft"
            ids.append(out["action_id"])
        first = await _runs(sink, 3)
        assert len(first) == 3 and all(r["count"] == 1 for r in first)  # the rest are held, not spawned
    runs = await _runs(sink, 50)  # closing the server delivers what was held, in one run
    assert len(runs) == 4
    assert runs[3]["status"] == "coalesced" and runs[3]["count"] == 47
    assert sorted(i for r in runs for i in r["ids"]) == sorted(ids)


@pytest.mark.asyncio
async def test_held_notifications_go_out_in_one_run_when_the_window_has_room(
    tmp_path: Path, workspace: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = tmp_path / "runs.jsonl"
    now = [9000.0]
    monkeypatch.setattr(ratchet.executors.notify, "clock", lambda: now[0])
    async with _server(workspace, _notify_policy(tmp_path, sink), db) as client:
        for i in range(8):
            await client.call_tool("write_file", {"path": f"stop/{i}.txt", "content": "x"})
        assert len(await _runs(sink, 3)) == 3
        now[0] += 61
        runs = await _runs(sink, 8)  # delivered while the server still runs
        assert [r["count"] for r in runs] == [1, 1, 1, 5] and runs[3]["status"] == "coalesced"
        for i in range(3):  # the coalesced run took one slot of the new window: two more go out alone
            await client.call_tool("write_file", {"path": f"stop/n{i}.txt", "content": "x"})
        runs = await _runs(sink, 10)
        assert [r["count"] for r in runs] == [1, 1, 1, 5, 1, 1]
    runs = await _runs(sink, 11)
    assert [r["count"] for r in runs] == [1, 1, 1, 5, 1, 1, 1]


# -- the record ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_executed_write_keeps_path_hash_and_size_never_the_content(
    tmp_path: Path, workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker, waiting = "MARKER-" + uuid.uuid4().hex, "DRAFTED-" + uuid.uuid4().hex
    # The marker sits past the preview's diff budget, so only a stored copy of the content could hold it.
    content = "".join(f"line {i}\n" for i in range(2500)) + marker + "\n"
    async with _server(workspace, policies, db) as client:
        out = _ran(await _call(client, "write_file", {"path": "auto/big.txt", "content": content}))
        assert marker not in out["preview"]
        (workspace / "auto/e.txt").write_text("old\n")
        _ran(
            await _call(
                client, "edit_file", {"path": "auto/e.txt", "edits": [{"old_text": "old", "new_text": "E-" + marker}]}
            )
        )
        drafts = [
            (await _call(client, "write_file", {"path": f"queue/{n}.txt", "content": f"{n} {waiting}\n"}))[2]
            for n in ("approved", "rejected")
        ]
    assert (workspace / "auto/big.txt").read_text() == content
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert marker.encode() not in raw.replace(b"E-" + marker.encode(), b"")  # the edit's diff shows its text
    con = sqlite3.connect(db)
    try:
        written = json.loads(con.execute("SELECT args_json FROM actions WHERE target = 'auto/big.txt'").fetchone()[0])
        edited = json.loads(con.execute("SELECT args_json FROM actions WHERE target = 'auto/e.txt'").fetchone()[0])
        queued = [
            con.execute("SELECT args_json FROM actions WHERE id = ?", (d["action_id"],)).fetchone()[0]  # type: ignore[index]
            for d in drafts
        ]
    finally:
        con.close()
    data = content.encode()
    assert written == {"path": "auto/big.txt", "content_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert edited["path"] == "auto/e.txt" and edited["edits"] == 1 and marker not in json.dumps(edited)
    assert all(waiting in q for q in queued)  # a waiting draft needs its content to run
    base = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    ids = [str(d["action_id"]) for d in drafts]  # type: ignore[index]
    assert await anyio.to_thread.run_sync(main, ["approve", ids[0], *base]) == 0
    assert await anyio.to_thread.run_sync(main, ["reject", ids[1], "--reason", "no", *base]) == 0
    capsys.readouterr()
    con = sqlite3.connect(db)
    try:
        left = [con.execute("SELECT args_json FROM actions WHERE id = ?", (i,)).fetchone()[0] for i in ids]
    finally:
        con.close()
    for args in left:  # once it leaves the queue, the content goes
        kept = json.loads(args)
        assert waiting not in args and set(kept) == {"path", "content_sha256", "bytes"}


# -- the policy ------------------------------------------------------------------------------------


def test_the_starter_policy_documents_the_default_limits() -> None:
    assert load_policy(starter_policy_dir()).defaults.limits == Limits()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[defaults.limits]\nmax_write_bytes = 0\n", "defaults.limits.max_write_bytes", "greater than or equal to 1"),
        ("[defaults.limits]\nmax_writes = 5\n", "defaults.limits.max_writes", "unknown key; expected one of"),
        (
            '[classes.c]\ntools = ["write_file"]\nstart = "draft"\n[classes.c.limits]\nhandoffs_per_minute = 50\n',
            "classes.c.limits.handoffs_per_minute",
            "max_write_bytes",  # the keys a class may set: the sizes, not the rates
        ),
    ],
)
def test_bad_limits_fail_closed_naming_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(tmp_path / "p", text))
    assert info.value.key == key and problem in info.value.problem


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.asyncio
async def test_an_interrupted_approval_drops_the_content_at_the_next_open(
    workspace: Path, policies: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting = "DRAFTED-" + uuid.uuid4().hex
    async with _server(workspace, policies, db) as client:
        draft = (await _call(client, "write_file", {"path": "queue/i.txt", "content": waiting}))[2]
    assert draft is not None
    pid = _dead_pid()
    con = sqlite3.connect(db)
    try:  # an approval whose process died between the claim and the outcome
        con.execute("UPDATE actions SET status = 'approving', pid = ? WHERE id = ?", (pid, draft["action_id"]))
        con.commit()
    finally:
        con.close()
    base = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    assert await anyio.to_thread.run_sync(main, ["status", *base]) == 0  # any open recovers
    capsys.readouterr()
    con = sqlite3.connect(db)
    try:
        status, args = con.execute(
            "SELECT status, args_json FROM actions WHERE id = ?", (draft["action_id"],)
        ).fetchone()
    finally:
        con.close()
    assert status == "interrupted" and waiting not in args and json.loads(args)["path"] == "queue/i.txt"


def test_the_hook_denies_a_huge_command_by_its_size(ratchet_bin: Path, workspace: Path, small: Path, db: Path) -> None:
    event = {
        "session_id": "s1",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "echo " + "a" * 1_000_000},
        "tool_use_id": "t1",
        "cwd": str(workspace),
    }
    done = subprocess.run(
        [
            str(ratchet_bin),
            "hook",
            "claude-code",
            "--workspace",
            str(workspace),
            "--policies",
            str(small),
            "--db",
            str(db),
        ],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    answer = json.loads(done.stdout)["hookSpecificOutput"]
    assert done.returncode == 0 and answer["permissionDecision"] == "deny"
    # The hook's own cap stops it before any analysis (its size is named), well inside the client's timeout.
    assert "1000005 characters" in answer["permissionDecisionReason"], answer
    assert "Nothing was run" in answer["permissionDecisionReason"]


@pytest.mark.asyncio
async def test_an_executed_command_keeps_its_stdin_as_hash_and_size(workspace: Path, small: Path, db: Path) -> None:
    fed = "S-" + uuid.uuid4().hex[:20]
    async with _server(workspace, small, db) as client:
        out = _ran(await _call(client, "run_command", {"argv": ["true"], "stdin": fed}))
    con = sqlite3.connect(db)
    try:
        args = con.execute("SELECT args_json FROM actions WHERE id = ?", (out["action_id"],)).fetchone()[0]
    finally:
        con.close()
    assert fed not in args
    assert json.loads(args)["stdin"] == {"sha256": hashlib.sha256(fed.encode()).hexdigest(), "bytes": len(fed)}
