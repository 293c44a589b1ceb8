"""The provenance rule itself (rules/provenance.py), without a server: which answers are a person's
evidence on each channel, how many lines a reader has to read, the sentence that explains a verdict, and
the clock that times answers. The end-to-end behaviour is in test_provenance.py, test_parallel_reading.py
and test_hook_reading.py; these pin the rule they rest on, case by case, in milliseconds."""

from __future__ import annotations

from typing import Any

import pytest

from ratchet.rules import provenance
from ratchet.rules.provenance import (
    COUNTED,
    UNANSWERED,
    UNVERIFIED,
    AnswerClock,
    assess,
    change_size,
    describe,
    diff_lines,
    question_key,
    reading_seconds,
    reading_start,
    too_fast,
)

DIFF = "--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n-old\n+new\n+more\n context\n"  # 3 changed lines
NEEDED = provenance.READ_BASE_SECONDS + 3 * provenance.READ_SECONDS_PER_LINE  # 2.75 s


def _assess(channel: str | None, seconds: float | None, *, accepted: bool = True, **kw: Any) -> str:
    args: dict[str, Any] = {"preview": DIFF, "promotion_evidence": "any", "dismissed": False, "hidden": 0}
    args.update(kw)
    return assess(accepted=accepted, channel=channel, seconds=seconds, **args)


def test_the_lines_a_reader_must_read_are_the_changed_ones_and_the_folded_ones() -> None:
    assert diff_lines(DIFF, 0) == 3  # the +++/--- headers and context lines are not changes
    assert diff_lines(DIFF, 7) == 10
    assert diff_lines("$ make test\n", 0) == 0
    assert diff_lines("+++ only a header\n--- and another\n", 0) == 0
    assert reading_seconds(0) == provenance.READ_BASE_SECONDS == 2.0
    assert reading_seconds(3) == NEEDED == 2.75


def test_too_fast_is_strictly_below_the_rule_and_untimed_is_too_fast() -> None:
    assert too_fast(None, DIFF, 0)
    assert too_fast(NEEDED - 0.01, DIFF, 0)
    assert not too_fast(NEEDED, DIFF, 0)  # exactly the rule's time is enough
    assert too_fast(NEEDED, DIFF, 1)  # one folded line more to read


def test_the_size_line_counts_additions_and_removals() -> None:
    assert change_size(DIFF, 0) == "+2 −1 lines"
    assert change_size(DIFF, 4) == "+2 −1 lines (and 4 more not shown)"
    assert change_size("--- /dev/null\n+++ b/n.txt\n+a\n", 0) == "+1 −0 lines, new file"
    assert change_size("--- a/g.txt\n+++ /dev/null\n-a\n-b\n", 0) == "+0 −2 lines, file deleted"
    assert change_size("$ make\n", 0) is None  # not a diff
    assert change_size("", 0) is None
    assert change_size("--- a/x\n", 0) == "+0 −0 lines"  # a header alone: nothing past it
    assert change_size("--- a/e.txt\n+++ /dev/null\n", 0) == "+0 −0 lines, file deleted"  # an empty file


@pytest.mark.parametrize("channel", ["elicitation", "hook-dialog", "web"])
def test_dialog_channels_are_judged_by_the_reading_rule(channel: str) -> None:
    assert _assess(channel, NEEDED) == COUNTED
    assert _assess(channel, NEEDED - 0.1) == UNVERIFIED  # a fast yes runs, but is no sample
    assert _assess(channel, None) == UNVERIFIED
    assert _assess(channel, NEEDED, accepted=False) == COUNTED
    assert _assess(channel, NEEDED - 0.1, accepted=False) == UNANSWERED  # a fast no is nobody's answer
    assert _assess(channel, None, accepted=False) == UNANSWERED
    assert _assess(channel, NEEDED, promotion_evidence="cli") == UNVERIFIED  # read, but not where it counts
    assert _assess(channel, NEEDED, accepted=False, promotion_evidence="cli") == COUNTED  # a no always may
    assert _assess(channel, 60.0, dismissed=True) == UNANSWERED


def test_the_cli_bulk_and_auto_mode_are_judged_by_what_they_are() -> None:
    assert _assess("cli", 0.0) == COUNTED  # the person's own terminal; its time is queue time
    assert _assess("cli", None, promotion_evidence="cli") == COUNTED
    assert _assess("cli", 0.0, accepted=False) == COUNTED
    assert _assess("bulk", 600.0) == UNVERIFIED  # one decision for many drafts is no reading of each
    assert _assess("bulk", 0.0, accepted=False) == COUNTED  # refusing a flood only lowers a class
    assert _assess("auto-mode", 600.0) == UNVERIFIED  # a classifier may have answered
    assert _assess("auto-mode", 600.0, accepted=False) == UNANSWERED
    assert _assess("reviewer", 600.0) == UNVERIFIED  # a delegated reviewer is never a person's evidence
    assert _assess("reviewer", 600.0, accepted=False) == UNANSWERED
    assert _assess(None, NEEDED) == COUNTED and _assess(None, NEEDED, promotion_evidence="cli") == UNVERIFIED
    assert _assess("bulk", 600.0, dismissed=True) == UNANSWERED  # dismissed before anything else


def test_each_verdict_is_explained_in_one_sentence() -> None:
    assert describe(None, "cli", 1.0, DIFF, 0) is None
    assert describe(COUNTED, "elicitation", 3.0, DIFF, 0) == "answered in 3.00 s (elicitation); counted as evidence"
    assert describe(COUNTED, None, None, DIFF, 0) == "no time was recorded; counted as evidence"
    assert describe(UNVERIFIED, "hook-dialog", 0.5, DIFF, 0) == (
        "answered in 0.50 s (hook-dialog): faster than the reading-time rule (2.75 s), not counted"
    )
    assert describe(UNVERIFIED, "web", 2.75, DIFF, 0) == (
        "answered in 2.75 s (web), but the class takes promotion evidence only from the CLI; not counted"
    )
    assert describe(UNVERIFIED, "web", None, DIFF, 0) == (
        "no time was recorded (web): faster than the reading-time rule (2.75 s), not counted"
    )
    assert describe(UNVERIFIED, "bulk", 9.0, DIFF, 0) == (
        "approved with its whole class in one decision (bulk): it ran, but not counted as evidence"
    )
    assert describe(UNANSWERED, "elicitation", 0.01, DIFF, 2) == (
        "no human answered (elicitation): answered in 0.01 s, faster than the reading-time rule (3.25 s) or "
        "dismissed; not counted"
    )
    assert describe(UNANSWERED, None, None, DIFF, 0) == (
        "no human answered: no time was recorded, faster than the reading-time rule (2.75 s) or dismissed; not counted"
    )


def test_a_question_key_is_the_call_itself() -> None:
    assert question_key("call", {"a": 1, "b": 2}) == question_key("call", {"b": 2, "a": 1})
    assert question_key("call", {"a": 1}) != question_key("call", {"a": 2})
    assert question_key("call", 7) != question_key("draft", 7)
    assert len(question_key("draft", 7)) == 32


def test_reading_starts_at_the_later_of_the_question_and_the_previous_answer() -> None:
    assert reading_start(10.0, None) == 10.0
    assert reading_start(None, 12.0) is None  # an unknown question stays untimed
    assert reading_start(10.0, 12.0) == 12.0
    assert reading_start(12.0, 10.0) == 12.0


def test_the_clock_times_answers_and_forgets_what_it_cannot_keep() -> None:
    now = [1000.0]
    clock = AnswerClock(lambda: now[0])
    clock.asked("q", fresh=True)
    assert clock.asked_at("q") == 1000.0 and clock.asked_at("other") is None
    now[0] = 1002.5
    assert clock.answered("q", "s") == 2.5
    assert clock.since("s", 1001.0) == 1002.5  # the session's answer just now
    assert clock.since("s", 1003.0) == 1003.0
    assert clock.since("s", None) is None
    assert clock.since("fresh-session", 1001.0) == 1001.0
    now[0] = 1001.0  # a clock that stepped back gives no negative time
    clock.asked("late", fresh=True)
    now[0] = 1000.0
    assert clock.answered("late") == 0.0
    # Questions never answered are forgotten past a bound, the oldest first; so are old sessions.
    for i in range(provenance._MAX_WAITING + 1):
        clock.asked(f"w{i}", fresh=True)
        clock.answer_given(f"s{i}")
    assert clock.asked_at("w0") is None and clock.asked_at("w1") is not None
    assert clock.asked_at(f"w{provenance._MAX_WAITING}") is not None
    assert clock.since("s0", 1.0) == 1.0 and clock.since("s1", 1.0) == 1000.0
    # Asking an old question afresh makes it the newest, so it is not the next to be forgotten.
    clock.asked("w1", fresh=True)
    clock.asked("new", fresh=True)
    assert clock.asked_at("w1") is not None and clock.asked_at("w2") is None
    clock.answer_given("s1")
    clock.answer_given("newest")
    assert clock.since("s1", 1.0) == 1000.0 and clock.since("s2", 1.0) == 1.0
