"""What an outcome counts as, in one place: a success, a failure, or no sample. A pure function.

Every way a call ends reaches `counts_as`: a call Ratchet ran (at once, after a confirmation, or as
an approved draft), a call a person declined or rejected, a call a client ran itself and reported
(through its hooks), and, for a replay (`ratchet simulate`, `ratchet report`), an outcome read back
from the record (`recorded`). The live record, the simulation and the report so agree on what each
outcome is worth; only the class's rules may differ (a candidate policy that counts execution
failures, say). What a sample then does to its class is rules/settle.py's (padding, the window, the
moves).

The rule, as `counts_as` applies it, in order:

- A run that succeeded and that a check of its class then failed is a failure, whatever else holds.
- An undo's revert (its own draft, approved or rejected) is no sample: the undo counted already.
- Nothing ran (stale, withdrawn, not asked, not answered): no sample. A person's decline is a failure,
  unless no person could have answered it (`unanswered` provenance, rules/provenance.py).
- A success approved with the person's own content is rework: a failure. A success on an answer that
  is no evidence of a person's reading (`unverified`, `unanswered`) is no sample. Otherwise a success.
- A failed run is a failure where the class counts execution failures, otherwise no sample; except a
  call asked in the client's own dialog and run there, where the person's approval is the sample
  (a success, if that approval is evidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ratchet.rules.provenance import COUNTED, UNANSWERED


class Ended(StrEnum):
    """How a call ended, as far as evidence goes."""

    SUCCEEDED = "succeeded"  # it ran and did what it said
    FAILED = "failed"  # it ran (or its executor refused it) and did not succeed
    STALE = "stale"  # its target moved under it: it did not run; nobody's mistake
    DECLINED = "declined"  # a person said no (a confirmation declined, a draft rejected, a client's dialog)
    WITHDRAWN = "withdrawn"  # an approved draft withdrawn while it waited for its origin: judged good already
    NOT_ASKED = "not asked"  # it did not run and no person was asked (a client denied a call Ratchet allowed)
    UNANSWERED = "unanswered"  # it did not run and no person could have answered
    NOT_COUNTED = "not counted"  # a replay: the record shows no sample (none was taken, or a repeat)


@dataclass(frozen=True)
class CallOutcome:
    """The facts of one ended call that decide what it counts as.

    `answer` is the provenance of the person's answer that let it run or stopped it (`counted`,
    `unverified`, `unanswered`; None: no person's answer was involved, or one whose provenance is not
    judged, which counts). `edited`: approved with the person's own content. `check_failed`: a check
    its class names failed on it after it ran. `revert`: an undo's revert commit. `client_asked`: the
    client asked the person in its own dialog and ran it itself.
    """

    ended: Ended
    answer: str | None = None
    edited: bool = False
    check_failed: bool = False
    revert: bool = False
    client_asked: bool = False

    @property
    def answer_counts(self) -> bool:
        """Whether the person's answer is evidence of a reading (no answer judged: it is)."""
        return self.answer in (None, COUNTED)


def counts_as(outcome: CallOutcome, *, counts_failures: bool) -> bool | None:
    """What `outcome` counts as for its class: True a success, False a failure, None no sample.
    `counts_failures` is the class's `count_execution_failures`."""
    ended = outcome.ended
    if ended is Ended.SUCCEEDED and outcome.check_failed:
        return False
    if outcome.revert:
        return None
    if ended is Ended.DECLINED:
        return None if outcome.answer == UNANSWERED else False
    if ended is Ended.SUCCEEDED:
        if outcome.edited:
            return False
        return True if outcome.answer_counts else None
    if ended is Ended.FAILED:
        if counts_failures:
            return False
        if outcome.client_asked:  # the person approved it in the client's dialog: the approval is the sample
            return True if outcome.answer_counts else None
        return None
    return None  # stale, withdrawn, not asked, unanswered, not counted: nothing to judge


def recorded(sample: str | None, *, status: str, edited: bool, answer: str | None) -> CallOutcome:
    """A recorded action's outcome as a replay reads it back: `sample` is the label the live rule left
    (success, failure, complained: a complaint overwrote its own; repeat or none: no sample), `status`
    its final status, `edited` an approval with the person's content, `answer` its provenance.

    The label stands for what the record alone cannot say again (a check's failure, the padding rule);
    what a candidate policy may change (whether a failed run counts) is judged again."""
    if sample == "success":
        return CallOutcome(Ended.SUCCEEDED)
    if sample == "complained":  # the sample it gave before the complaint
        return CallOutcome(Ended.SUCCEEDED, answer=answer, edited=edited)
    if sample == "failure":
        if status == "failed":
            return CallOutcome(Ended.FAILED)
        if status == "executed":  # a check failed on it, or it was approved with the person's content
            return CallOutcome(Ended.SUCCEEDED, edited=edited, check_failed=not edited)
        return CallOutcome(Ended.DECLINED)
    return CallOutcome(Ended.NOT_COUNTED)


__all__ = ["CallOutcome", "Ended", "counts_as", "recorded"]
