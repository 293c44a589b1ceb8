"""Where a class stood when a period began, rebuilt from the record, so that a view replays the period
alone instead of the whole history.

The earned level is the `to_level` of the class's last level move before the period (where it began,
if none); the pin and the freeze are the last ones recorded before it. The window is exact without
replaying from the start: every move starts a fresh window, and a window holds the last `window_size`
samples, so only the samples after the last move can be in it, and of those only the last
`window_size`; a complaint that can still show in it came after the `window_size`-th last sample,
and the sample it flips, if it flips one, is among the `window_size` before the complaint. Replaying
the last twice `window_size` samples and the complaints among them (`Before.tail`, read by
record/evidence.py) therefore rebuilds the window the full replay would hold. These samples are
folded in without judging: the record shows no move between the last move and the period, and the
views check only the moves in the period they replay.
"""

from __future__ import annotations

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass
from ratchet.record.evidence import Before, TransitionRecord
from ratchet.rules.outcome import counts_as, recorded
from ratchet.rules.settle import FreezeCap, Standing
from ratchet.rules.trust import Sample, Window, add_sample, flip_sample

TAIL_WINDOWS = 2  # how many windows' worth of samples before a period rebuild its window (see the docstring)


def tail_size(cls: ActionClass) -> int:
    """The samples before a period to read for `cls`."""
    return TAIL_WINDOWS * cls.trust.window_size


def freeze_cap(t: TransitionRecord | None) -> FreezeCap | None:
    """The freeze a recorded freeze or unfreeze leaves in force."""
    if t is None or t.kind != "freeze":
        return None
    return FreezeCap(Level.parse(t.to_level), t.evidence.get("until"))


def standing_at(cls: ActionClass, before: Before, initial: str) -> tuple[Standing, FreezeCap | None]:
    """The class's standing and the freeze in force when the period began; `initial` is where the class
    began (the first move's `from_level`, else its cached level)."""
    level = Level.parse(before.last_move.to_level if before.last_move is not None else initial)
    pinned = Level.parse(before.pin.to_level) if before.pin is not None and before.pin.kind == "pin" else None
    events: list[tuple[float, int, int, bool | None]] = []
    for a in before.tail:
        ok = counts_as(
            recorded(a.sample, status=a.status, edited=a.edited, answer=a.evidence),
            counts_failures=cls.count_execution_failures,
        )
        if ok is not None:
            events.append((a.settled_at, 0, a.id, ok))
    events += [(c.at, 1, c.action_id, None) for c in before.complaints]
    window = Window()
    for _, _, aid, ok in sorted(events, key=lambda e: e[:3]):
        if ok is not None:
            window = add_sample(window, Sample(aid, ok), cls.trust)
        else:
            window = flip_sample(window, aid) or add_sample(window, Sample(aid, False), cls.trust)
    return Standing(level, window, pinned), freeze_cap(before.freeze)
