"""The ratchet: when a class has earned a rung, and when it has lost one. Pure functions.

A *sample* is one resolved action of a class at its current level: success (approved unchanged,
or executed with no complaint) or failure (rejected, edited before approval, declined, complained
about, or failed to execute where the class counts that). The window holds the last
`window_size` samples at the current level; every transition starts a fresh window.

Promotion: after each sample, promote one rung (never past the ceiling) when the window holds at
least `min_samples` samples and the Wilson score lower bound (95%) of its success rate is at or
above `promote_at`. A naive "x% of the last n" bar re-tested after every sample is fooled by
luck; the lower bound asks for the rate to be high *and* well supported by the sample count.

Demotion: several failures within a short span. The class is demoted one rung when the last
`SPANS` samples of its window hold too many failures: 3 failures within the last 8 samples, or 4
within the last 20. A class as good as a steady 99% meets either about once in 40,000 actions
(2-3% of 1,000-action stretches), while a class fallen to 70% is caught in a median of 9 actions and
a p90 of 20 (docs/trust.md, `bench/calibration.py`). Two failures alone never demote a class that
has served its probation: at 99% two failures in a row happen about once in 10,000 actions, and
treating them as drift made the earlier detector demote a steady 99% class in 11% of
1,000-action stretches.

Probation: for the first `probation` samples after a promotion the class is on probation. A stricter
rule applies on top of the spans: a Bernoulli CUSUM drift detector (the log-likelihood ratio of
"the class has fallen to demote_below" against "it is as good as promote_at", floored at zero,
demoting when it reaches `drift_threshold`; with the defaults two failures in a row, or three close
together). A promotion is the moment a lucky stretch is most likely to have been mistaken for
quality, so the evidence gets a shorter fuse there; 20 samples of it cost a steady 99% class about
0.2% more false demotions, and catch a class that was promoted by luck and is really 70% good in a
median of 8 actions. The settle rule (rules/settle.py) counts the probation down; the engine tells
the human at once of any failure during it.

The spans fit classes that call a failure rate of 20% or more bad (`demote_below` 0.80 or higher,
the default); a span whose share of failures is below the class's bad rate (`1 - demote_below`) is
not used, and a class left with none (one tuned to tolerate many failures) is judged by the CUSUM
at every sample, as on probation.

A complaint demotes at once where the class says so. Cost per sample is O(1), independent of how
much history exists: the window keeps its running figures (`Tally`: successes, failures in each span,
the drift detector) as samples join and leave it, exactly as a pass over its samples gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ratchet.policy.levels import Level
from ratchet.policy.model import TrustParams

Z_95 = 1.959963984540054
# (failures, span): demote when the last `span` samples of the window hold at least `failures` failures.
SPANS: tuple[tuple[int, int], ...] = ((3, 8), (4, 20))
SPAN_LENGTHS = tuple(span for _, span in SPANS)


@dataclass(frozen=True)
class Sample:
    """One resolved action in a window."""

    action_id: int
    ok: bool


class Tally(NamedTuple):
    """A window's running figures, kept as samples join and leave it (`add_sample`), so that judging the
    window after a sample costs O(1) instead of a pass over it. Each figure is exactly what a pass over the
    samples gives (`recount`, `cusum`): the one rule, kept incrementally.

    The drift detector is kept from the window's first sample: a CUSUM floored at zero. When the oldest
    sample leaves, the detector started one sample later stands at the same value as soon as the kept one
    has touched zero at or after the sample that left (floating-point addition and the floor are monotone,
    so the later start is never above the kept one, and both are at zero there); only when the kept one
    stayed above zero through the whole window is the detector replayed over the window (`since_zero`)."""

    successes: int
    failures_in: tuple[int, ...]  # failures among the window's last `span` samples, for each span of SPANS
    drift: float | None  # the detector's value (None: not kept; replayed over the window when asked)
    since_zero: int  # samples the detector took since it last stood at zero (the window's start is a zero)
    steps: tuple[float, float] | None  # the increments `drift` was kept with (None: the empty window's, any)


def recount(samples: tuple[Sample, ...]) -> Tally:
    """A window's figures by a pass over its samples (the detector is left to be replayed when asked)."""
    successes = sum(1 for s in samples if s.ok)
    failures_in = tuple(sum(1 for s in samples[-span:] if not s.ok) for _, span in SPANS)
    return Tally(successes, failures_in, None if samples else 0.0, 0, None)


@dataclass(frozen=True)
class Window:
    """The evidence gathered at a class's current level, oldest sample first, with its running figures
    (`Tally`: computed from the samples when not given, kept by `add_sample` as samples join and leave)."""

    samples: tuple[Sample, ...] = ()
    tally: Tally = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.tally is None:
            object.__setattr__(self, "tally", recount(self.samples))

    @property
    def n(self) -> int:
        """How many samples the window holds."""
        return len(self.samples)

    @property
    def successes(self) -> int:
        """How many of them succeeded."""
        return self.tally.successes


@dataclass(frozen=True)
class Evidence:
    """What a transition (or a status line) rests on, printable and storable."""

    n: int
    successes: int
    rate: float | None
    lower: float | None
    upper: float | None
    drift: float
    action_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One line a human can read: `48/50 ok (96.0%), 95% bounds 0.866-0.989, drift 0.00`."""
        if self.n == 0 or self.rate is None:
            return "no samples at this level yet"
        return (
            f"{self.successes}/{self.n} ok ({self.rate:.1%}), 95% bounds "
            f"{self.lower:.3f}-{self.upper:.3f}, drift {self.drift:.2f}"
        )


class Verdict(NamedTuple):
    """Whether the window moves the class, and why (`evidence`: the window's figures, computed when read)."""

    move: Literal["promote", "demote"] | None
    to_level: Level
    reason: str
    window: Window
    params: TrustParams

    @property
    def evidence(self) -> Evidence:
        """The figures of the window judged."""
        return evidence(self.window, self.params)


def wilson_bounds(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (0, 1 when there is no sample)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


_LOWER: dict[tuple[int, int], float] = {}


def lower_bound(successes: int, n: int) -> float:
    """The Wilson lower bound of `successes` in `n` (`wilson_bounds`' first), remembered: a window takes few
    distinct (successes, n) pairs, and a replay asks for them a hundred thousand times."""
    key = (successes, n)
    found = _LOWER.get(key)
    if found is None:
        found = _LOWER[key] = wilson_bounds(successes, n)[0]
    return found


_STEPS: dict[tuple[float, float], tuple[float, float]] = {}


def drift_steps(params: TrustParams) -> tuple[float, float]:
    """The CUSUM increments (on success, on failure): the log-likelihood ratio of bad vs good."""
    key = (params.promote_at, params.demote_below)
    found = _STEPS.get(key)
    if found is None:
        fail_good = 1.0 - params.promote_at
        fail_bad = 1.0 - params.demote_below
        found = _STEPS[key] = math.log((1.0 - fail_bad) / (1.0 - fail_good)), math.log(fail_bad / fail_good)
    return found


def cusum(samples: tuple[Sample, ...], steps: tuple[float, float]) -> tuple[float, int]:
    """The drift detector replayed over `samples` from zero: its value, and how many samples it took since it
    last stood at zero."""
    on_success, on_failure = steps
    value, since = 0.0, 0
    for sample in samples:
        value = max(0.0, value + (on_success if sample.ok else on_failure))
        since = 0 if value == 0.0 else since + 1
    return value, since


def drift(window: Window, params: TrustParams) -> float:
    """The drift detector's value over the window: the one kept with it (`Tally`), or replayed over it."""
    steps = drift_steps(params)
    kept = window.tally
    if kept.drift is not None and (kept.steps is None or kept.steps == steps):
        return kept.drift
    return cusum(window.samples, steps)[0]


_SPANS: dict[float, tuple[tuple[int, int], ...]] = {}


def spans(params: TrustParams) -> tuple[tuple[int, int], ...]:
    """The `SPANS` that fit the class: those whose share of failures is at least the failure rate its
    policy calls bad (1 - demote_below). A class tuned to tolerate many failures keeps the CUSUM alone."""
    found = _SPANS.get(params.demote_below)
    if found is None:
        bad = 1.0 - params.demote_below
        found = _SPANS[params.demote_below] = tuple((k, m) for k, m in SPANS if k / m >= bad - 1e-9)
    return found


def span_failures(window: Window, params: TrustParams) -> tuple[int, int] | None:
    """The first of the class's spans the window's latest samples breach, as (failures, span); None if none does."""
    found = window.tally.failures_in
    for failures, span, at in _fitting(params):
        if found[at] >= failures:
            return failures, span
    return None


_FITTING: dict[float, tuple[tuple[int, int, int], ...]] = {}


def _fitting(params: TrustParams) -> tuple[tuple[int, int, int], ...]:
    """The class's spans (`spans`), each with its place in `Tally.failures_in`."""
    found = _FITTING.get(params.demote_below)
    if found is None:
        mine = spans(params)
        found = _FITTING[params.demote_below] = tuple((k, m, i) for i, (k, m) in enumerate(SPANS) if (k, m) in mine)
    return found


def add_sample(window: Window, sample: Sample, params: TrustParams) -> Window:
    """The window after one more sample (the oldest dropped beyond window_size), its figures kept in O(1)
    (`Tally`; recounted when the window loses more than one sample, as when a policy shrank it)."""
    old = window.samples
    samples = (*old, sample)[-params.window_size :]
    gone = len(old) + 1 - len(samples)
    kept = window.tally
    steps = drift_steps(params)
    if gone > 1:
        return Window(samples)
    failed = not sample.ok
    left = old[0] if gone else None
    successes = kept.successes + sample.ok - (left is not None and left.ok)
    size = len(samples)
    failures_in = tuple(
        [
            size - successes if size <= span else found + failed - (not old[-span].ok)
            for span, found in zip(SPAN_LENGTHS, kept.failures_in, strict=True)
        ]
    )
    if kept.drift is None or (kept.steps is not None and kept.steps != steps):
        value, since = cusum(samples, steps)
    else:
        value = max(0.0, kept.drift + (steps[1] if failed else steps[0]))
        since = 0 if value == 0.0 else kept.since_zero + 1
        if gone and since > len(old):  # above zero through the whole window: replay from the new start
            value, since = cusum(samples, steps)
    return Window(samples, Tally(successes, failures_in, value, since, steps))


def flip_sample(window: Window, action_id: int) -> Window | None:
    """Turn an action's success into a failure (a complaint); None when it is not in the window."""
    if all(sample.action_id != action_id for sample in window.samples):
        return None
    return Window(tuple(Sample(s.action_id, False) if s.action_id == action_id else s for s in window.samples))


def evidence(window: Window, params: TrustParams) -> Evidence:
    """The window's figures."""
    value = drift(window, params)
    if window.n == 0:
        return Evidence(0, 0, None, None, None, value, [])
    lower, upper = wilson_bounds(window.successes, window.n)
    return Evidence(
        window.n,
        window.successes,
        window.successes / window.n,
        lower,
        upper,
        value,
        [s.action_id for s in window.samples],
    )


def judge(
    window: Window, level: Level, floor: Level, ceiling: Level, params: TrustParams, *, probation: bool = False
) -> Verdict:
    """Decide whether the class moves one rung, from its window (and, on probation, the stricter rule).
    O(1): the window's running figures (`Tally`) are read, not recomputed."""
    breached = span_failures(window, params)
    if breached is not None and level > floor:
        failures, span = breached
        reason = f"{failures} failures within the last {span} samples"
        return Verdict("demote", level.down(), reason, window, params)
    if (probation or not spans(params)) and level > floor:
        value = drift(window, params)
        if value >= params.drift_threshold:
            reason = (
                f"on probation: drift detector reached {value:.2f} >= {params.drift_threshold} "
                f"(failures are outrunning a {params.demote_below:.0%} class)"
            )
            return Verdict("demote", level.down(), reason, window, params)
    n = window.n
    lower = lower_bound(window.successes, n) if n else None
    if level < ceiling and lower is not None and n >= params.min_samples and lower >= params.promote_at:
        reason = (
            f"Wilson lower bound {lower:.3f} >= promote_at {params.promote_at} "
            f"over {n} samples (min {params.min_samples})"
        )
        return Verdict("promote", level.up(), reason, window, params)
    return Verdict(None, level, _standing(n, lower, level, ceiling, params), window, params)


def _standing(n: int, lower: float | None, level: Level, ceiling: Level, params: TrustParams) -> str:
    if level >= ceiling:
        return f"at its ceiling ({ceiling.label})"
    if n < params.min_samples:
        return f"{params.min_samples - n} more samples before promotion can be considered"
    return f"lower bound {lower:.3f} below promote_at {params.promote_at}"


def figures(window: Window) -> tuple[int, float | None, float | None]:
    """The window's size, success rate and Wilson lower bound (None, None when empty), in O(1): what a
    trajectory's point shows (`evidence` has every figure)."""
    n = window.n
    if n == 0:
        return 0, None, None
    return n, window.successes / n, lower_bound(window.successes, n)


def samples_to_promote(window: Window, params: TrustParams) -> int | None:
    """How many consecutive successes from here would promote (None if the window cannot get there)."""
    for extra in range(0, params.window_size + 1):
        samples = (*window.samples, *(Sample(-1, True) for _ in range(extra)))[-params.window_size :]
        n = len(samples)
        successes = sum(1 for s in samples if s.ok)
        if n >= params.min_samples and wilson_bounds(successes, n)[0] >= params.promote_at:
            return extra
    return None
