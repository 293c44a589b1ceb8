"""Provenance of human answers: how each answer was given, how long it took, and whether it is evidence.

Every approval or decline of a confirmation or a draft records its *channel*:

- `cli`: the human's own terminal (`ratchet approve` / `ratchet reject`); the agent cannot run it;
- `elicitation`: the MCP client's dialog (a confirmation, or `review_drafts`); it proves that a
  client answered, not that a human did: a client may answer by itself (Codex headless declines
  within a millisecond) or accept everything it is asked;
- `hook-dialog`: a client's own permission dialog, seen through its hook (Claude Code's `ask`);
- `web`: the review page;
- `bulk`: one decision for a whole class of drafts at once (`ratchet approve --class`, `reject --class`,
  the review page's per-class buttons), whatever screen it came from (the reviewer names it);
- `reviewer`: the policy's delegated reviewer (engine/reviewer.py) approved a `confirm` call in the person's
  place, on the authority its agreement with people earned: the call runs, and an approval is `unverified`
  (never a person's evidence, never a promotion);
- `auto-mode`: Claude Code's dialog while the session was in auto mode, where the client's own
  classifier model may answer permission prompts: it runs what was approved, but Ratchet cannot
  tell a person's answer from the classifier's, so an approval is `unverified` and a decline is
  `unanswered` (never a person's evidence, never a promotion).

and its *review time* in seconds:

- elicitation: from the moment the question was put to the client, or the session's previous answer
  if that came later (parallel questions are read one at a time: a burst answered one after another
  earns each answer only the time since the one before), to the moment its answer reached the tool.
  On protocol 2025-11-25 the question and the answer are one request; on 2026-07-28 they
  arrive in different rounds of the same call, so the moment of asking is kept by the engine, keyed
  by the call's tool and arguments (or the draft's id), and is reset whenever the call starts anew
  (a round that carries no answers); see `AnswerClock`. An answer round that reaches an engine
  which did not ask (another server process) is untimed, and an untimed answer is never evidence.
  `review_drafts` asks up to five drafts: on 2025-11-25 one after another (each timed from its
  question to the next question, which follows its answer), on 2026-07-28 in one batch (the batch's
  time, from its question to the answers, shared equally among the drafts answered in it);
- cli: from drafting to the approval (the queue time included: the human reads `ratchet show`).
  That is not reading time, so the rule below does not judge it: an answer at the CLI is the
  human's own command, which the agent cannot run, and always counts (`ratchet metrics` still shows
  a fast one as a possible rubber stamp);
- hook-dialog: from the PreToolUse, or the session's previous answer if that came later (as for
  elicitation; the previous answer is read from the record, `actions.answered_at`, since every hook
  event is answered by a process of its own), to the moment of the answer: the moment the outcome
  event arrived less the tool's own run time (`duration_ms`, which Claude Code's PostToolUse and
  PostToolUseFailure carry: the clock starts once the dialog was answered), or for a declined call
  the timestamp of its result in the transcript; never later than the moment it is recorded. An
  outcome without `duration_ms` (an older client) is timed to its arrival, an upper bound. Judged
  by the rule below like an elicitation: Claude Code's subagents and read-only tools can put
  several dialogs up at once, and a burst of them clicked through earns one reading, not many.

A `bulk` approval runs every draft but is `unverified`: one decision for many drafts is not a
reading of each, and counting it would let one click promote a class (a flood approved whole would
be fifty samples). A `bulk` rejection is `counted`: it runs nothing and can only lower a class, and a
person refusing a flood with a reason is the strongest signal there is.

and its *evidence*, judged by the reading-time rule already used for rubber stamps (a human needs
at least `READ_BASE_SECONDS + READ_SECONDS_PER_LINE x changed lines` to read a change):

- `counted`: the answer is evidence for the class's trust window;
- `unverified`: an acceptance faster than the rule (or with no time at all), or one given where the
  class takes promotion evidence only from the CLI (`promotion_evidence = "cli"`): the action runs,
  but its success is not a sample (an execution failure still counts where the class counts them);
- `unanswered`: a decline faster than the rule, a decline with no time, or a dismissed dialog: no
  human answered. A confirmation is queued as a draft (as when the client cannot ask), a draft
  offered by `review_drafts` stays queued, and nothing is a sample.

What this does not prove: a client that waits before answering, or a person who clicks without
reading after the rule's few seconds, still counts. The rule stops clients that answer by
themselves and instant rubber stamps; `promotion_evidence = "cli"` is for classes where that is
not enough.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

CHANNELS = ("cli", "elicitation", "hook-dialog", "web", "bulk", "auto-mode", "reviewer")
BULK = "bulk"
AUTO_MODE = "auto-mode"  # a client classifier may have answered: never a person's evidence
REVIEWER = "reviewer"  # the policy's delegated reviewer approved in the person's place: never a person's evidence
COUNTED, UNVERIFIED, UNANSWERED = "counted", "unverified", "unanswered"
EVIDENCE = (COUNTED, UNVERIFIED, UNANSWERED)
PROMOTION_EVIDENCE = ("any", "cli")

READ_BASE_SECONDS = 2.0
READ_SECONDS_PER_LINE = 0.25
READING_RULE = (
    f"an approval is a rubber stamp when it came faster than {READ_BASE_SECONDS:g} s + "
    f"{READ_SECONDS_PER_LINE:g} s per changed line of the draft"
)
# Questions never answered (a client that went away mid-call) are forgotten past this many.
_MAX_WAITING = 512


def diff_lines(preview: str, hidden: int) -> int:
    """Changed lines a reviewer has to read: `+`/`-` lines of the diff, plus the `hidden` lines the
    preview folded away, as recorded with the action when it was prepared (`actions.hidden_lines`)."""
    lines = preview.splitlines()
    shown = sum(1 for line in lines if line.startswith(("+", "-")) and not line.startswith(("+++ ", "--- ")))
    return shown + hidden


def change_size(preview: str, hidden: int) -> str | None:
    """How much a file diff changes, for the first line a human reads: `+3 −1 lines, new file` (None
    when the preview is not a diff). Lines folded out of a long diff are counted as changed."""
    lines = preview.splitlines()
    if not lines or not lines[0].startswith("--- "):
        return None
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++ "))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("--- "))
    size = f"+{added} −{removed} lines" + (f" (and {hidden} more not shown)" if hidden else "")
    if lines[0] == "--- /dev/null":
        size += ", new file"
    elif len(lines) > 1 and lines[1] == "+++ /dev/null":
        size += ", file deleted"
    return size


def reading_seconds(lines: int) -> float:
    """The least time a human needs to read a draft of `lines` changed lines (the reading rule)."""
    return READ_BASE_SECONDS + READ_SECONDS_PER_LINE * lines


def too_fast(seconds: float | None, preview: str, hidden: int) -> bool:
    """True when an answer came faster than the reading rule allows for this preview (or untimed)."""
    return seconds is None or seconds < reading_seconds(diff_lines(preview, hidden))


def assess(
    *,
    accepted: bool,
    channel: str | None,
    seconds: float | None,
    preview: str,
    promotion_evidence: str,
    dismissed: bool,
    hidden: int,
) -> str:
    """The evidence an answer gives: `counted`, `unverified` or `unanswered` (see the module docstring)."""
    if dismissed:
        return UNANSWERED
    if channel == BULK:  # one decision for a class of drafts: see the module docstring
        return UNVERIFIED if accepted else COUNTED
    if channel in (AUTO_MODE, REVIEWER):
        return UNVERIFIED if accepted else UNANSWERED
    if channel == "cli":
        return COUNTED  # the human's own terminal, which the agent cannot reach; its time is queue time
    if not accepted:
        return UNANSWERED if too_fast(seconds, preview, hidden) else COUNTED
    if too_fast(seconds, preview, hidden):
        return UNVERIFIED
    if promotion_evidence == "cli" and channel != "cli":
        return UNVERIFIED
    return COUNTED


def describe(evidence: str | None, channel: str | None, seconds: float | None, preview: str, hidden: int) -> str | None:
    """One sentence on why an answer was or was not evidence (None when nothing was recorded)."""
    if evidence is None:
        return None
    took = "no time was recorded" if seconds is None else f"answered in {seconds:.2f} s"
    needed = reading_seconds(diff_lines(preview, hidden))
    rule = f"{needed:g} s"
    via = f" ({channel})" if channel else ""
    if evidence == UNANSWERED:
        return f"no human answered{via}: {took}, faster than the reading-time rule ({rule}) or dismissed; not counted"
    if evidence == UNVERIFIED:
        if channel == BULK:
            return "approved with its whole class in one decision (bulk): it ran, but not counted as evidence"
        if seconds is not None and seconds >= needed:
            return f"{took}{via}, but the class takes promotion evidence only from the CLI; not counted"
        return f"{took}{via}: faster than the reading-time rule ({rule}), not counted"
    return f"{took}{via}; counted as evidence"


def reading_start(asked_at: float | None, previous: float | None) -> float | None:
    """When reading the answer to a question asked at `asked_at` can have started, given the session's
    previous answer at `previous`: the later of the two (None when the question's moment is unknown)."""
    if asked_at is None or previous is None:
        return asked_at
    return max(asked_at, previous)


def question_key(kind: str, payload: Any) -> str:
    """A stable key for one question: the same call (tool and arguments) or draft gives the same key."""
    text = json.dumps([kind, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class AnswerClock:
    """When each question was put to the client, so its answer can be timed across protocol rounds.

    `now` is the clock (wall time, seconds); a test may give its own. `asked(key, fresh=True)` marks
    the moment of asking; `fresh=False` (a later round of the same call) keeps the first moment.
    `answered(key)` is the seconds since, or None when this engine never asked that question.
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self._asked: dict[str, float] = {}
        self._last_answer: dict[str, float] = {}  # per session: when its previous answer came

    def asked(self, key: str, *, fresh: bool) -> None:
        """Record that a question was (or is about to be) put to the client."""
        if fresh or key not in self._asked:
            self._asked.pop(key, None)
            self._asked[key] = self.now()
            while len(self._asked) > _MAX_WAITING:
                del self._asked[next(iter(self._asked))]

    def asked_at(self, key: str) -> float | None:
        """When the question was put to the client (None if it was not), without forgetting it."""
        return self._asked.get(key)

    def answered(self, key: str, session: str | None = None) -> float | None:
        """Seconds from asking to now, forgetting the question; None if it was never asked here.

        Given the `session`, the time runs from the later of the question and the session's previous
        answer (`since`), and this answer becomes the session's previous one."""
        at = self._asked.pop(key, None)
        if session is not None:
            at = self.since(session, at)
            self.answer_given(session)
        return None if at is None else max(0.0, self.now() - at)

    def since(self, session: str, asked_at: float | None) -> float | None:
        """When reading an answer to a question asked at `asked_at` can have started: not before the
        session's previous answer. A person reads one question at a time, so a burst of parallel
        questions answered one after another earns each answer only the time since the one before."""
        return reading_start(asked_at, self._last_answer.get(session))

    def answer_given(self, session: str) -> None:
        """Note that the session's human answered now."""
        self._last_answer.pop(session, None)
        self._last_answer[session] = self.now()
        while len(self._last_answer) > _MAX_WAITING:
            del self._last_answer[next(iter(self._last_answer))]
