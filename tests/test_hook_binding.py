"""Hook events are bound to their call: an outcome event (PostToolUse, PostToolUseFailure,
PermissionDenied) settles only the waiting call of the same session, the same tool and the same
tool_use_id, and a transcript settles only its own session's calls. Driven through the real
`ratchet hook claude-code`, as a hostile agent (or a confused client) would send them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ratchet.engine import Engine
from ratchet.rules.provenance import reading_seconds

from .helpers import Claude
from .helpers import decided as _decided
from .helpers import rows as _rows


@pytest.fixture
def alice(ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path) -> Claude:
    return Claude(ratchet_bin, workspace, hook_policies, db, session="alice")


@pytest.fixture
def mallory(ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path) -> Claude:
    return Claude(ratchet_bin, workspace, hook_policies, db, session="mallory")


def _row(claude: Claude, tool_use_id: str) -> Any:
    (row,) = _rows(claude.db, "SELECT * FROM actions WHERE external_id = ?", tool_use_id)
    return row


def _window(claude: Claude, cls: str) -> tuple[str, int, int]:
    c = claude.status(cls)
    return c["level"], c["samples"], c["successes"]


def _stderr_of(claude: Claude, event: dict[str, Any]) -> str:
    done = claude.run(json.dumps(event))
    assert done.stdout == ""  # never an answer, never an error the client sees
    return done.stderr


def _status(db: Path, external_id: str) -> str:
    (row,) = _rows(db, "SELECT status FROM actions WHERE external_id = ?", external_id)
    return str(row["status"])


@pytest.mark.asyncio
async def test_the_engine_binds_an_outcome_by_session_id_and_tool(
    workspace: Path, hook_policies: Path, db: Path
) -> None:
    """The binding itself (record/binding.py), in process: what waits and what an outcome settles, by session,
    id and tool. Each filter holds alone, whatever a hook checked before asking."""
    alice = await Engine.open(workspace, policies=hook_policies, db=db, session="claude-alice")
    mallory = await Engine.open(workspace, policies=hook_policies, db=db, session="claude-mallory")
    try:
        for name, tool in (("w", "Write"), ("u", None)):  # a call bound without a tool (recorded before tools were)
            ev = await alice.evaluate("write_file", {"path": f"climb/{name}.txt", "content": "x\n"}, shell_rule=False)
            await alice.record_external(ev, f"toolu_{name}", external_tool=tool)
            assert _status(db, f"toolu_{name}") == "asked"
        assert await alice.waiting_external() == {"toolu_w", "toolu_u"}
        assert await alice.waiting_external("Write") == {"toolu_w", "toolu_u"}
        assert await alice.waiting_external("Bash") == {"toolu_u"}  # only the call that names no tool
        assert await mallory.waiting_external() == set() and await mallory.waiting_external("Write") == set()
        # Another tool, another session: nothing is settled.
        await alice.record_external_outcome("toolu_w", ran=True, ok=True, external_tool="Bash")
        await mallory.record_external_outcome("toolu_w", ran=True, ok=True, external_tool="Write")
        await mallory.record_external_outcome("toolu_u", ran=True, ok=True)
        assert (_status(db, "toolu_w"), _status(db, "toolu_u")) == ("asked", "asked")
        # The same session, id and tool settle it, once; the call that names no tool is settled by any tool's outcome.
        await alice.record_external_outcome("toolu_w", ran=False, ok=False, answered=False, external_tool="Write")
        await alice.record_external_outcome("toolu_u", ran=False, ok=False, answered=False, external_tool="Edit")
        assert (_status(db, "toolu_w"), _status(db, "toolu_u")) == ("unanswered", "unanswered")
        assert await alice.waiting_external() == set()
        await alice.record_external_outcome("toolu_w", ran=True, ok=True, external_tool="Write")
        assert _status(db, "toolu_w") == "unanswered"
    finally:
        await mallory.close()
        await alice.close()


def test_an_outcome_from_another_session_settles_nothing(alice: Claude, mallory: Claude) -> None:
    d, asked = alice.write("climb/a.txt", "a\n")
    assert _decided(d) == "ask"
    before = _window(alice, "climb")
    # Another session replays alice's tool_use_id with every outcome event, for the right tool.
    for name in ("PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        note = _stderr_of(mallory, mallory.event(name, tool_name="Write", tool_input={}, tool_use_id=asked))
        assert "ignored" in note and "claude-mallory" in note
    assert _row(alice, asked)["status"] == "asked"  # still waiting for its own session's outcome
    assert _window(alice, "climb") == before
    # The right session, tool and id settle it.
    assert alice.post("Write", asked) is None
    row = _row(alice, asked)
    assert (row["status"], row["sample"], row["session_id"]) == ("executed", "success", "claude-alice")
    assert _window(alice, "climb")[1:] == (before[1] + 1, before[2] + 1)


def test_an_outcome_for_another_tool_settles_nothing(alice: Claude) -> None:
    d, asked = alice.write("climb/b.txt", "b\n")
    assert _decided(d) == "ask"
    d, allowed = alice.bash("echo hi")
    assert _decided(d) == "allow"
    before = _window(alice, "climb"), _window(alice, "echo-run")
    # Same session, known ids, but naming another tool (also one Ratchet does not govern).
    for tool in ("Bash", "Edit", "MultiEdit", "NotebookEdit"):
        note = _stderr_of(alice, alice.event("PermissionDenied", tool_name=tool, tool_input={}, tool_use_id=asked))
        assert f"no call of session claude-alice and tool {tool} waits for it; ignored" in note
    for tool in ("Write", "Edit"):
        note = _stderr_of(alice, alice.event("PostToolUseFailure", tool_name=tool, tool_input={}, tool_use_id=allowed))
        assert f"no call of session claude-alice and tool {tool} waits for it; ignored" in note
    alice.post("Read", asked, name="PostToolUseFailure")  # an ungoverned tool's event is not even read
    assert _row(alice, asked)["status"] == "asked" and _row(alice, allowed)["status"] == "allowed"
    assert (_window(alice, "climb"), _window(alice, "echo-run")) == before
    # The right tool settles each.
    alice.post("Write", asked, name="PermissionDenied", reason="auto mode denied it")
    alice.post("Bash", allowed)
    # Auto mode's classifier denied it: settled, as no person's answer (`unanswered`, no sample).
    assert (_row(alice, asked)["status"], _row(alice, asked)["sample"]) == ("unanswered", None)
    assert _row(alice, allowed)["status"] == "executed"


def test_two_waiting_calls_of_one_session_are_each_settled_by_their_own_id(alice: Claude) -> None:
    # Two calls of the same session and tool wait at once; the outcome of the older one must settle
    # that one, not the newest waiting call (the id is what binds an outcome to its call).
    d, first = alice.write("climb/one.txt", "1\n")
    assert _decided(d) == "ask"
    d, second = alice.write("climb/two.txt", "2\n")
    assert _decided(d) == "ask" and first != second
    before = _window(alice, "climb")
    # PermissionDenied is auto mode's classifier: it settles the call it names, as no person's answer.
    alice.post("Write", first, name="PermissionDenied", reason="the classifier said no")
    assert (_row(alice, first)["status"], _row(alice, first)["sample"]) == ("unanswered", None)
    assert _row(alice, second)["status"] == "asked"  # the newer call still waits for its own outcome
    time.sleep(reading_seconds(1) + 0.3)  # the person reads the one-line change before approving it
    alice.post("Write", second, duration_ms=3)
    assert (_row(alice, second)["status"], _row(alice, second)["sample"]) == ("executed", "success")
    assert (_row(alice, first)["status"], _row(alice, first)["target"]) == ("unanswered", "climb/one.txt")
    assert _window(alice, "climb")[1:] == (before[1] + 1, before[2] + 1)


def test_an_outcome_settles_once(alice: Claude) -> None:
    d, asked = alice.write("climb/c.txt", "c\n")
    assert _decided(d) == "ask"
    alice.post("Write", asked)
    after = _window(alice, "climb")
    # Replaying the outcome (or its opposite) does not count twice or flip the record.
    assert "ignored" in _stderr_of(
        alice, alice.event("PostToolUse", tool_name="Write", tool_input={}, tool_use_id=asked)
    )
    _stderr_of(alice, alice.event("PermissionDenied", tool_name="Write", tool_input={}, tool_use_id=asked))
    assert _window(alice, "climb") == after
    assert _row(alice, asked)["status"] == "executed"


def test_a_reused_tool_use_id_settles_only_its_own_sessions_call(alice: Claude, mallory: Claude) -> None:
    # Both sessions have a waiting call under the same tool_use_id (the ids are the client's, not ours);
    # alice's is the newer one.
    same = "toolu_same_001"
    for claude, name in ((mallory, "m.txt"), (alice, "a.txt")):
        tool_input = {"file_path": str(claude.workspace / "climb" / name), "content": "x\n"}
        ev = claude.event("PreToolUse", tool_name="Write", tool_input=tool_input, tool_use_id=same)
        assert _decided(claude.send(ev)) == "ask"
    mallory.post("Write", same, name="PermissionDenied", reason="denied")
    rows = {r["target"]: r for r in _rows(alice.db, "SELECT * FROM actions WHERE external_id = ?", same)}
    assert (rows["climb/m.txt"]["status"], rows["climb/m.txt"]["session_id"]) == ("unanswered", "claude-mallory")
    assert rows["climb/a.txt"]["status"] == "asked"  # alice's newer call with that id is untouched
    alice.post("Write", same)
    rows = {r["target"]: r for r in _rows(alice.db, "SELECT * FROM actions WHERE external_id = ?", same)}
    assert rows["climb/a.txt"]["status"] == "executed" and rows["climb/m.txt"]["status"] == "unanswered"


def test_an_id_asked_twice_in_one_session_settles_its_newest_call_first(alice: Claude) -> None:
    # The client asks twice under one tool_use_id in one session (its ids are its own): two calls wait under it.
    # The outcome is of the call the client decided on last, so it settles the newest; the older one waits on.
    same = "toolu_twice_001"
    for name in ("old.txt", "new.txt"):
        tool_input = {"file_path": str(alice.workspace / "climb" / name), "content": "x\n"}
        ev = alice.event("PreToolUse", tool_name="Write", tool_input=tool_input, tool_use_id=same)
        assert _decided(alice.send(ev)) == "ask"
    alice.post("Write", same, name="PermissionDenied", reason="denied")
    rows = {r["target"]: r["status"] for r in _rows(alice.db, "SELECT * FROM actions WHERE external_id = ?", same)}
    assert rows == {"climb/new.txt": "unanswered", "climb/old.txt": "asked"}
    alice.post("Write", same, name="PermissionDenied", reason="denied")
    rows = {r["target"]: r["status"] for r in _rows(alice.db, "SELECT * FROM actions WHERE external_id = ?", same)}
    assert rows == {"climb/new.txt": "unanswered", "climb/old.txt": "unanswered"}


def _rejection(tool_use_id: str) -> str:
    entry = {
        "type": "user",
        "timestamp": datetime.now(UTC).isoformat(),  # Claude Code stamps every transcript entry
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use_id,
                    "is_error": True,
                    "content": "The user doesn't want to proceed with this tool use.",
                }
            ],
        },
    }
    return json.dumps(entry) + "\n"


def test_a_transcript_settles_only_its_own_sessions_calls(alice: Claude, mallory: Claude) -> None:
    d, asked = alice.write("climb/e.txt", "e\n")
    assert _decided(d) == "ask"
    d, own = mallory.write("climb/f.txt", "f\n")
    assert _decided(d) == "ask"
    before = _window(alice, "climb")
    time.sleep(reading_seconds(1) + 0.3)  # the dialogs were read before they were declined
    # Mallory's transcript claims alice's call (and its own) was declined; its Stop settles only its own.
    mallory.transcript.write_text(_rejection(asked) + _rejection(own))
    assert mallory.send(mallory.event("Stop", stop_hook_active=False)) is None
    assert _row(alice, asked)["status"] == "asked"
    assert (_row(mallory, own)["status"], _row(mallory, own)["session_id"]) == ("declined", "claude-mallory")
    assert _window(alice, "climb")[1] == before[1] + 1  # one sample: mallory's own decline
    # Alice's own transcript settles hers.
    alice.transcript.write_text(_rejection(asked))
    alice.send(alice.event("SessionEnd", reason="other"))
    assert _row(alice, asked)["status"] == "declined"
