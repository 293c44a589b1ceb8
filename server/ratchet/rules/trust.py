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

A complaint demotes at once where the class says so. Cost per sample is O(window_size),
independent of how much history exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ratchet.policy.levels import Level
from ratchet.policy.model import TrustParams

Z_95 = 1.959963984540054
# (failures, span): demote when the last `span` samples of the window hold at least `failures` failures.
SPANS: tuple[tuple[int, int], ...] = ((3, 8), (4, 20))


@dataclass(frozen=True)
class Sample:
    """One resolved action in a window."""

    action_id: int
    ok: bool


@dataclass(frozen=True)
class Window:
    """The evidence gathered at a class's current level, oldest sample first."""

    samples: tuple[Sample, ...] = ()

    @property
    def n(self) -> int:
        """How many samples the window holds."""
        return len(self.samples)

    @property
    def successes(self) -> int:
        """How many of them succeeded."""
        return sum(1 for sample in self.samples if sample.ok)


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


@dataclass(frozen=True)
class Verdict:
    """Whether the window moves the class, and why."""

    move: Literal["promote", "demote"] | None
    to_level: Level
    reason: str
    evidence: Evidence


def wilson_bounds(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (0, 1 when there is no sample)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def drift_steps(params: TrustParams) -> tuple[float, float]:
    """The CUSUM increments (on success, on failure): the log-likelihood ratio of bad vs good."""
    fail_good = 1.0 - params.promote_at
    fail_bad = 1.0 - params.demote_below
    return math.log((1.0 - fail_bad) / (1.0 - fail_good)), math.log(fail_bad / fail_good)


def drift(window: Window, params: TrustParams) -> float:
    """The drift detector's value over the window (replayed: O(window_size), no hidden state)."""
    on_success, on_failure = drift_steps(params)
    value = 0.0
    for sample in window.samples:
        value = max(0.0, value + (on_success if sample.ok else on_failure))
    return value


def spans(params: TrustParams) -> tuple[tuple[int, int], ...]:
    """The `SPANS` that fit the class: those whose share of failures is at least the failure rate its
    policy calls bad (1 - demote_below). A class tuned to tolerate many failures keeps the CUSUM alone."""
    bad = 1.0 - params.demote_below
    return tuple((k, m) for k, m in SPANS if k / m >= bad - 1e-9)


def span_failures(window: Window, params: TrustParams) -> tuple[int, int] | None:
    """The first of the class's spans the window's latest samples breach, as (failures, span); None if none does."""
    for failures, span in spans(params):
        if sum(1 for sample in window.samples[-span:] if not sample.ok) >= failures:
            return failures, span
    return None


def add_sample(window: Window, sample: Sample, params: TrustParams) -> Window:
    """The window after one more sample (the oldest dropped beyond window_size)."""
    return Window((*window.samples, sample)[-params.window_size :])


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
    """Decide whether the class moves one rung, from its window (and, on probation, the stricter rule)."""
    ev = evidence(window, params)
    breached = span_failures(window, params)
    if breached is not None and level > floor:
        failures, span = breached
        reason = f"{failures} failures within the last {span} samples"
        return Verdict("demote", level.down(), reason, ev)
    if (probation or not spans(params)) and ev.drift >= params.drift_threshold and level > floor:
        return Verdict(
            "demote",
            level.down(),
            (
                f"on probation: drift detector reached {ev.drift:.2f} >= {params.drift_threshold} "
                f"(failures are outrunning a {params.demote_below:.0%} class)"
            ),
            ev,
        )
    if level < ceiling and ev.lower is not None and window.n >= params.min_samples and ev.lower >= params.promote_at:
        return Verdict(
            "promote",
            level.up(),
            (
                f"Wilson lower bound {ev.lower:.3f} >= promote_at {params.promote_at} "
                f"over {window.n} samples (min {params.min_samples})"
            ),
            ev,
        )
    return Verdict(None, level, _standing(window, level, ceiling, params, ev), ev)


def _standing(window: Window, level: Level, ceiling: Level, params: TrustParams, ev: Evidence) -> str:
    if level >= ceiling:
        return f"at its ceiling ({ceiling.label})"
    if window.n < params.min_samples:
        return f"{params.min_samples - window.n} more samples before promotion can be considered"
    return f"lower bound {ev.lower:.3f} below promote_at {params.promote_at}"


def samples_to_promote(window: Window, params: TrustParams) -> int | None:
    """How many consecutive successes from here would promote (None if the window cannot get there)."""
    for extra in range(0, params.window_size + 1):
        samples = (*window.samples, *(Sample(-1, True) for _ in range(extra)))[-params.window_size :]
        n = len(samples)
        successes = sum(1 for s in samples if s.ok)
        if n >= params.min_samples and wilson_bounds(successes, n)[0] >= params.promote_at:
            return extra
    return None
