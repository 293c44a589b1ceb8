"""Claude Code's own dialog (a hook's `ask`) judged by the reading-time rule, through the real
`ratchet hook claude-code`: every event in a process of its own, so the session's previous answer is read
from the record. An answer is timed from the later of its question and the session's previous answer, to
the moment it was given (the outcome's arrival less the tool's `duration_ms`): a burst of dialogs put up
at once and clicked through earns one reading, the same dialogs read one at a time promote, and a
long-running command approved at once is not a reading because its PostToolUse came late."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ratchet.rules.provenance import reading_seconds

from .helpers import Claude
from .helpers import decided as _decided
from .helpers import rows as _rows

LINES = 12  # each change read is a new file of 12 lines: the rule asks 2 s + 12 x 0.25 s = 5 s of reading
CONTENT = "".join(f"line {j}\n" for j in range(LINES))
READ = reading_seconds(LINES)


@pytest.fixture
def claude(ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path) -> Claude:
    """Claude Code in `workspace`, with HOOK_POLICY (class `climb` starts at confirm; three successes promote)."""
    return Claude(ratchet_bin, workspace, hook_policies, db)


def _ask_all(claude: Claude, n: int) -> list[str]:
    """`n` Writes put up at once (subagents, or tools Claude Code runs in parallel): every PreToolUse answered
    `ask` before any dialog is answered. Their tool_use_ids."""
    ids = []
    for i in range(n):
        d, tool_use_id = claude.write(f"climb/p{i}.txt", CONTENT)
        assert _decided(d) == "ask"
        ids.append(tool_use_id)
    return ids


def _approved(claude: Claude, tool_use_id: str) -> None:
    """The person approved; the Write ran in a few milliseconds and PostToolUse says so."""
    response = {"filePath": "x", "success": True}
    assert claude.post("Write", tool_use_id, tool_response=response, duration_ms=4) is None


def _evidence(claude: Claude) -> list[tuple[str, str | None, str]]:
    rows = _rows(claude.db, "SELECT status, sample, evidence FROM actions WHERE class = 'climb' ORDER BY id")
    return [(r["status"], r["sample"], r["evidence"]) for r in rows]


def test_a_burst_of_parallel_dialogs_answered_at_once_promotes_nothing(claude: Claude) -> None:
    ids = _ask_all(claude, 6)
    time.sleep(READ + 0.5)  # every dialog has been up long enough to read one of them
    with ThreadPoolExecutor(len(ids)) as pool:  # ... and all six are clicked through at once
        list(pool.map(lambda t: _approved(claude, t), ids))

    found = _evidence(claude)
    assert [f[0] for f in found] == ["executed"] * 6  # every approved call ran
    # One reading: the first answer recorded is timed from its question; each other one only from the answer
    # before it, a moment ago, so it ran but is no sample.
    assert Counter(f[1:] for f in found) == {("success", "counted"): 1, (None, "unverified"): 5}
    climb = claude.status("climb")
    assert (climb["level"], climb["samples"]) == ("confirm", 1)
    seconds = _rows(claude.db, "SELECT review_seconds FROM actions WHERE evidence = 'unverified'")
    assert all(r[0] < READ for r in seconds)
    moments = _rows(claude.db, "SELECT answered_at FROM actions WHERE class = 'climb'")
    assert all(r[0] is not None for r in moments)


def test_the_same_dialogs_read_one_at_a_time_promote(claude: Claude) -> None:
    """The control: dialogs put up at once, each read for the rule's time before it is answered."""
    ids = _ask_all(claude, 3)
    for tool_use_id in ids:
        time.sleep(READ + 0.5)
        _approved(claude, tool_use_id)
    assert [f[1:] for f in _evidence(claude)] == [("success", "counted")] * 3
    assert claude.status("climb")["level"] == "autonomous"


def test_a_long_run_approved_at_once_is_not_a_reading(claude: Claude) -> None:
    """PostToolUse comes after the tool ran: its arrival is not the moment of the answer. Claude Code's
    `duration_ms` (the tool's own run, timed from the permission) is taken off, so an approval given at
    once stays one, however long the command then ran."""
    (d, tool_use_id), asked = claude.write("climb/long.txt", CONTENT), time.time()
    assert _decided(d) == "ask"
    time.sleep(READ + 0.5)  # approved at once; the tool then runs for the whole of this
    ran_ms = int((time.time() - asked) * 1000)
    assert claude.post("Write", tool_use_id, tool_response={"success": True}, duration_ms=ran_ms) is None
    row = _rows(claude.db, "SELECT status, sample, evidence, review_seconds FROM actions WHERE class = 'climb'")[0]
    assert (row["status"], row["sample"], row["evidence"]) == ("executed", None, "unverified")
    assert row["review_seconds"] < READ


def test_a_decline_stamped_in_the_future_is_timed_to_its_settling(claude: Claude) -> None:
    """An answer cannot come after the moment it is recorded: a transcript entry that claims a decline an
    hour from now (a transcript anyone could have written) earns no reading time from the claim."""
    d, tool_use_id = claude.write("climb/later.txt", CONTENT)
    assert _decided(d) == "ask"
    entry: dict[str, Any] = {
        "type": "user",
        "timestamp": datetime.fromtimestamp(time.time() + 3600, UTC).isoformat(),
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True, "content": "No."}],
        },
    }
    claude.transcript.write_text(json.dumps(entry) + "\n")
    assert claude.send(claude.event("Stop", stop_hook_active=False)) is None
    row = _rows(claude.db, "SELECT status, sample, evidence, review_seconds FROM actions WHERE class = 'climb'")[0]
    assert (row["status"], row["sample"], row["evidence"]) == ("declined", None, "unanswered")
    assert row["review_seconds"] < READ
