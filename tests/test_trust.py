"""The ratchet's statistics: Wilson bounds, the drift detector, the window, and exactly when `judge` moves.

With the default TrustParams (window 100, min 40, promote_at 0.93, demote_below 0.80, drift 2.0):

- The Wilson lower bound of n/n simplifies to n / (n + z^2), z = 1.959964 (z^2 = 3.841459). It reaches
  0.93 when n >= 0.93 * z^2 / 0.07 = 51.04, so an all-success run first promotes at sample 52
  (51 / 54.84 = 0.92995 < 0.93 <= 52 / 55.84 = 0.93121). min_samples (40) is not the binding limit.
- With one failure (at sample 10) the window is (n-1)/n: the lower bound is 0.92916 at n = 76 and
  0.93004 at n = 77, so it first promotes at sample 77.
- The drift detector adds log(0.80 / 0.93) = -0.15057 per success and log(0.20 / 0.07) = +1.04982 per
  failure, floored at 0. For S,S,F,S,F,F: 0, 0, 1.04982, 0.89925, 1.94907, 2.99889 -> the first value
  >= 2.0 is at sample 6. F,F reaches 2.09964 at sample 2; F,S,F never does (1.94907). The detector
  only demotes on probation (the first `probation` samples after a promotion).
- Outside probation a class is demoted by several failures within a short span (trust.SPANS): 3 within
  the last 8 samples, or 4 within the last 20. S,S,F,S,F,F breaches the first at sample 6; two
  failures in a row, alone, never demote.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable
from dataclasses import replace

import pytest

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass, ConfidenceThresholds, TrustParams
from ratchet.rules.settle import (
    CLI_SESSION,
    Complained,
    Disproved,
    Event,
    FreezeCap,
    HumanDemoted,
    Observed,
    Pinned,
    PolicyMoved,
    Settled,
    Standing,
    is_padding,
    recorded_sample,
    settle,
    streak_after,
    work_key,
)
from ratchet.rules.trust import (
    Z_95,
    Sample,
    Verdict,
    Window,
    add_sample,
    drift,
    drift_steps,
    evidence,
    flip_sample,
    judge,
    samples_to_promote,
    spans,
    wilson_bounds,
)

DEFAULT = TrustParams()
S, F = True, False


def window_of(outcomes: Iterable[bool], first_id: int = 1) -> Window:
    """A window holding these outcomes, action ids counting from `first_id`."""
    return Window(tuple(Sample(first_id + i, ok) for i, ok in enumerate(outcomes)))


def first_move(
    outcomes: Iterable[bool],
    *,
    level: Level = Level.CONFIRM,
    floor: Level = Level.DRAFT,
    ceiling: Level = Level.AUTONOMOUS,
    params: TrustParams = DEFAULT,
    probation: int = 0,
) -> tuple[int, Verdict] | None:
    """Feed outcomes one at a time into a fresh window; the 1-based index and verdict of the first move
    (the first `probation` samples judged on probation)."""
    window = Window()
    for index, ok in enumerate(outcomes, start=1):
        window = add_sample(window, Sample(index, ok), params)
        verdict = judge(window, level, floor, ceiling, params, probation=index <= probation)
        if verdict.move is not None:
            return index, verdict
        assert verdict.to_level == level
    return None


def wilson_by_quadratic(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's interval as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n, solved for p."""
    p_hat = successes / n
    k = z * z / n
    a = 1 + k
    b = -(2 * p_hat + k)
    c = p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


# -- Wilson bounds ----------------------------------------------------------------------------


def test_z_is_the_two_sided_95_percent_quantile() -> None:
    assert math.erf(Z_95 / math.sqrt(2)) == pytest.approx(0.95, abs=1e-12)


def test_wilson_without_samples_is_uninformative() -> None:
    assert wilson_bounds(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("successes", "n"), [(10, 10), (50, 50), (45, 50), (0, 10), (1, 2), (93, 100), (48, 50)])
def test_wilson_matches_the_formula(successes: int, n: int) -> None:
    lower, upper = wilson_bounds(successes, n)
    want_lower, want_upper = wilson_by_quadratic(successes, n, Z_95)
    assert lower == pytest.approx(want_lower, abs=1e-9)
    assert upper == pytest.approx(want_upper, abs=1e-9)
    assert 0.0 <= lower <= successes / n <= upper + 1e-12 <= 1.0 + 1e-12


@pytest.mark.parametrize("n", [10, 50, 52, 100])
def test_wilson_of_a_perfect_record(n: int) -> None:
    lower, upper = wilson_bounds(n, n)
    assert lower == pytest.approx(n / (n + Z_95**2), abs=1e-9)
    assert upper == pytest.approx(1.0, abs=1e-12)


def test_wilson_known_values() -> None:
    # Published 95% Wilson intervals: 10/10 -> 0.7225-1, 45/50 -> 0.7864-0.9565.
    assert wilson_bounds(10, 10)[0] == pytest.approx(0.72246, abs=1e-5)
    assert wilson_bounds(45, 50) == pytest.approx((0.78640, 0.95652), abs=1e-5)
    assert wilson_bounds(0, 10) == pytest.approx((0.0, Z_95**2 / (10 + Z_95**2)), abs=1e-9)


# -- drift -------------------------------------------------------------------------------------

UP = math.log(0.20 / 0.07)  # per failure
DOWN = math.log(0.80 / 0.93)  # per success (negative)


def test_drift_steps() -> None:
    on_success, on_failure = drift_steps(DEFAULT)
    assert on_success == pytest.approx(DOWN, abs=1e-12)
    assert on_failure == pytest.approx(UP, abs=1e-12)
    assert on_success == pytest.approx(-0.150573, abs=1e-6)
    assert on_failure == pytest.approx(1.049822, abs=1e-6)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], 0.0),
        ([S] * 10, 0.0),
        ([F], UP),
        ([F, F], 2 * UP),
        ([F, S, S, S], UP + 3 * DOWN),
        ([F] + [S] * 10, 0.0),  # floored at zero, not negative
        ([S] * 50 + [F], UP),  # a long good record is no credit against a new failure
        ([S, S, F, S, F, F], 3 * UP + DOWN),
        ([F, S, F], 2 * UP + DOWN),
    ],
)
def test_drift_replays_the_window(outcomes: list[bool], expected: float) -> None:
    assert drift(window_of(outcomes), DEFAULT) == pytest.approx(expected, abs=1e-12)


# -- the window --------------------------------------------------------------------------------


def test_add_sample_keeps_at_most_window_size() -> None:
    params = TrustParams(window_size=5, min_samples=3, promote_at=0.4, demote_below=0.2)
    window = Window()
    for action_id in range(1, 9):
        before = window
        window = add_sample(window, Sample(action_id, action_id % 2 == 0), params)
        assert before.n == min(action_id - 1, 5)  # the old window is untouched
        assert window.n == min(action_id, 5)
    assert [s.action_id for s in window.samples] == [4, 5, 6, 7, 8]
    assert window.successes == 3


def test_flip_sample() -> None:
    window = window_of([S, S, F, S])
    flipped = flip_sample(window, 2)
    assert flipped is not None
    assert [s.ok for s in flipped.samples] == [S, F, F, S]
    assert [s.action_id for s in flipped.samples] == [1, 2, 3, 4]
    assert window.successes == 3  # unchanged
    again = flip_sample(flipped, 3)  # already a failure: stays one
    assert again is not None
    assert [s.ok for s in again.samples] == [S, F, F, S]
    assert flip_sample(window, 99) is None


def test_evidence_summary() -> None:
    ev = evidence(window_of([F, F] + [S] * 48), DEFAULT)
    assert (ev.n, ev.successes, ev.rate) == (50, 48, 0.96)
    assert ev.action_ids == list(range(1, 51))
    assert ev.summary() == "48/50 ok (96.0%), 95% bounds 0.865-0.989, drift 0.00"
    empty = evidence(Window(), DEFAULT)
    assert (empty.n, empty.rate, empty.lower) == (0, None, None)
    assert empty.summary() == "no samples at this level yet"


# -- judge: exactly when the class moves ----------------------------------------------------------


def test_all_successes_promote_at_sample_52() -> None:
    assert wilson_bounds(51, 51)[0] < 0.93 <= wilson_bounds(52, 52)[0]
    moved = first_move([S] * 100)
    assert moved is not None
    index, verdict = moved
    assert index == 52
    assert (verdict.move, verdict.to_level) == ("promote", Level.AUTONOMOUS)
    assert verdict.evidence.n == 52
    assert "over 52 samples" in verdict.reason


def test_one_failure_at_sample_10_promotes_at_sample_77() -> None:
    outcomes = [index != 10 for index in range(1, 101)]
    assert wilson_bounds(75, 76)[0] < 0.93 <= wilson_bounds(76, 77)[0]
    moved = first_move(outcomes)
    assert moved is not None
    index, verdict = moved
    assert index == 77
    assert verdict.move == "promote"
    assert (verdict.evidence.n, verdict.evidence.successes) == (77, 76)


@pytest.mark.parametrize(
    ("outcomes", "index"),
    [
        ([S, S, F, S, F, F], 6),  # 3 failures within the last 8
        ([F, S, F, S, F], 5),
        ([S] * 30 + [F, *([S] * 5), F, F], 38),
        ([F, *([S] * 6), F, *([S] * 5), F, *([S] * 4), F], 19),  # 4 failures within the last 20, never 3 in 8
    ],
)
def test_several_failures_within_a_short_span_demote(outcomes: list[bool], index: int) -> None:
    moved = first_move([*outcomes, *([S] * 20)])
    assert moved is not None
    got, verdict = moved
    assert got == index
    assert (verdict.move, verdict.to_level) == ("demote", Level.DRAFT)
    assert "failures within the last" in verdict.reason


@pytest.mark.parametrize(
    ("outcomes", "index"),
    [
        ([S, S, F, S, F, F], 6),
        ([F, F], 2),
        ([S] * 15 + [F, F], 17),
        ([F, S, F, S, F], 5),  # 1.0498 -> 0.8993 -> 1.9491 -> 1.7985 -> 2.8483
    ],
)
def test_on_probation_the_drift_detector_demotes_at(outcomes: list[bool], index: int) -> None:
    moved = first_move([*outcomes, *([S] * 20)], probation=DEFAULT.probation)
    assert moved is not None
    got, verdict = moved
    assert got == index
    assert (verdict.move, verdict.to_level) == ("demote", Level.DRAFT)
    assert verdict.evidence.drift >= DEFAULT.drift_threshold


def test_two_failures_in_a_row_demote_only_on_probation() -> None:
    # The false alarm the span rule removes: a steady 99% class shows F,F about once in 10,000 actions.
    assert first_move([S] * 30 + [F, F] + [S] * 20) is None
    moved = first_move([S] * 15 + [F, F], probation=20)
    assert moved is not None and moved[0] == 17 and "on probation: drift detector" in moved[1].reason
    assert first_move([S] * 25 + [F, F] + [S] * 20, probation=20) is None  # probation served


def test_spans_fit_the_classes_bad_rate() -> None:
    assert spans(DEFAULT) == ((3, 8), (4, 20))  # bad rate 0.20: both
    assert spans(TrustParams(demote_below=0.85, promote_at=0.95)) == ((3, 8), (4, 20))
    assert spans(TrustParams(demote_below=0.70)) == ((3, 8),)  # bad rate 0.30: 4 of 20 is too few
    lenient = TrustParams(demote_below=0.5, promote_at=0.8)
    assert spans(lenient) == ()
    # With no span the CUSUM judges every sample: F,F reaches ln(0.5/0.2) * 2 = 1.83 < 2.0, F,F,F demotes.
    moved = first_move([S] * 30 + [F, F, F], params=lenient)
    assert moved is not None and moved[0] == 33 and "drift detector" in moved[1].reason


@pytest.mark.parametrize("outcomes", [[F, S, F], [F, S, S, F], [S, F, *([S] * 6), F], [F] + [S] * 10 + [F]])
def test_isolated_failures_do_not_demote(outcomes: list[bool]) -> None:
    assert first_move(outcomes) is None
    assert first_move(outcomes, probation=DEFAULT.probation) is None


def test_never_promotes_before_min_samples() -> None:
    # Lower bar: the bound of n/n passes 0.5 from n = 4, but 40 samples are required.
    lenient = TrustParams(promote_at=0.5, demote_below=0.3)
    assert wilson_bounds(4, 4)[0] >= 0.5
    moved = first_move([S] * 100, params=lenient)
    assert moved is not None
    assert moved[0] == 40
    # And with the default bar, a min_samples above 52 is what binds.
    patient = TrustParams(min_samples=60)
    moved = first_move([S] * 100, params=patient)
    assert moved is not None
    assert moved[0] == 60


def test_standing_reason_counts_down_to_min_samples() -> None:
    verdict = judge(
        window_of([S] * 39), Level.DRAFT, Level.DRAFT, Level.AUTONOMOUS, TrustParams(promote_at=0.5, demote_below=0.3)
    )
    assert verdict.move is None
    assert verdict.reason == "1 more samples before promotion can be considered"


@pytest.mark.parametrize("level", [Level.DRAFT, Level.CONFIRM, Level.AUTONOMOUS])
def test_never_promotes_past_the_ceiling(level: Level) -> None:
    assert first_move([S] * 300, level=level, floor=Level.BLOCKED, ceiling=level) is None
    verdict = judge(window_of([S] * 100), level, Level.BLOCKED, level, DEFAULT)
    assert verdict.reason == f"at its ceiling ({level.label})"


def test_promotion_is_one_rung() -> None:
    moved = first_move([S] * 100, level=Level.DRAFT)
    assert moved is not None
    assert moved[1].to_level == Level.CONFIRM


@pytest.mark.parametrize("level", [Level.BLOCKED, Level.DRAFT, Level.CONFIRM])
def test_never_demotes_below_the_floor(level: Level) -> None:
    assert first_move([F] * 100, level=level, floor=level) is None
    verdict = judge(window_of([F] * 10), level, level, Level.AUTONOMOUS, DEFAULT)
    assert verdict.evidence.drift >= DEFAULT.drift_threshold  # the detector fired; the floor held
    assert (verdict.move, verdict.to_level) == (None, level)


def test_demotion_is_one_rung() -> None:
    moved = first_move([F, F, F], level=Level.AUTONOMOUS, floor=Level.BLOCKED)
    assert moved is not None
    assert moved[1].to_level == Level.CONFIRM


def test_demotion_is_checked_before_promotion() -> None:
    # With a 200-sample window, 197 successes then F,F,F still clear the promotion bar, but 3
    # failures within the last 8 demote: demotion wins.
    wide = TrustParams(window_size=200)
    window = window_of([S] * 197 + [F, F, F])
    assert wilson_bounds(197, 200)[0] >= wide.promote_at
    verdict = judge(window, Level.CONFIRM, Level.DRAFT, Level.AUTONOMOUS, wide)
    assert (verdict.move, verdict.to_level) == ("demote", Level.DRAFT)


def test_samples_to_promote() -> None:
    assert samples_to_promote(Window(), DEFAULT) == 52
    assert samples_to_promote(window_of([S] * 10), DEFAULT) == 42
    assert samples_to_promote(window_of([S] * 52), DEFAULT) == 0
    assert samples_to_promote(window_of([F]), DEFAULT) == 76  # n = 77 with one failure, as above
    # 30 failures must slide out of the 100-sample window until one is left: 98/100 has a lower
    # bound of 0.92999 (< 0.93), 99/100 has 0.94551, so 99 more successes are needed.
    assert wilson_bounds(98, 100)[0] < 0.93 <= wilson_bounds(99, 100)[0]
    assert samples_to_promote(window_of([F] * 30), DEFAULT) == 99


def _drive(seed: int, rate: float, count: int) -> tuple[list[tuple[int, str]], Level]:
    """Drive a class from confirm (floor draft) with `count` outcomes of the given success rate.

    Each move applies one rung and starts a fresh window, as the engine does. Returns the moves made
    (1-based sample index and direction) and the final level.
    """
    rng = random.Random(seed)
    level, floor, ceiling = Level.CONFIRM, Level.DRAFT, Level.AUTONOMOUS
    window = Window()
    moves: list[tuple[int, str]] = []
    for index in range(1, count + 1):
        window = add_sample(window, Sample(index, rng.random() < rate), DEFAULT)
        verdict = judge(window, level, floor, ceiling, DEFAULT)
        if verdict.move is not None:
            moves.append((index, verdict.move))
            level = verdict.to_level
            window = Window()
    return moves, level


def test_an_85_percent_class_never_promotes() -> None:
    moves, level = _drive(seed=0, rate=0.85, count=1000)
    assert all(direction != "promote" for _, direction in moves)
    # With seed 0 the drift detector catches it at sample 18; at its floor it stays.
    assert moves == [(18, "demote")]
    assert level == Level.DRAFT


def test_an_85_percent_window_never_reaches_the_bar() -> None:
    # The harshest version: no resets, the window slides over all 1000 samples at the floor.
    rng = random.Random(0)
    window = Window()
    best = 0.0
    for index in range(1, 1001):
        window = add_sample(window, Sample(index, rng.random() < 0.85), DEFAULT)
        verdict = judge(window, Level.DRAFT, Level.DRAFT, Level.AUTONOMOUS, DEFAULT)
        assert verdict.move is None, index
        if window.n >= DEFAULT.min_samples:
            best = max(best, wilson_bounds(window.successes, window.n)[0])
    assert window.n == DEFAULT.window_size
    assert 0.8 < best < DEFAULT.promote_at


def test_a_99_percent_class_promotes_and_holds() -> None:
    # Seed 1 draws one early failure, so promotion comes at 77 (as for a failure at sample 10);
    # after that the detector never fires.
    moves, level = _drive(seed=1, rate=0.99, count=1000)
    assert moves == [(77, "promote")]
    assert level == Level.AUTONOMOUS


# -- the settle rule (rules/settle.py): one event at a time ---------------------------------------------
#
# SMALL: window 10, min 3, promote_at 0.4, demote_below 0.2, drift 0.5. The lower bound of n/n is
# n / (n + z^2): 2/2 gives 0.34243, 3/3 gives 0.43849, so three successes promote. The detector adds
# log(0.2 / 0.4) = -0.69315 per success and log(0.8 / 0.6) = +0.28768 per failure: F,F reaches 0.57536
# and demotes; F,S,F does not (0.28768, 0, 0.28768).

SMALL = TrustParams(window_size=10, min_samples=3, promote_at=0.4, demote_below=0.2, drift_threshold=0.5)


def klass(**changes: object) -> ActionClass:
    """A class starting at draft with floor draft and ceiling autonomous, judged with SMALL."""
    base = ActionClass(
        name="docs",
        description="",
        tools=frozenset({"write_file"}),
        paths=None,
        argv=None,
        branches=None,
        remotes=None,
        force=None,
        start=Level.DRAFT,
        floor=Level.DRAFT,
        ceiling=Level.AUTONOMOUS,
        priority=0,
        demote_on_complaint=True,
        count_execution_failures=True,
        require_cli_approval=False,
        allow_shell=False,
        novelty=False,
        trust=SMALL,
        confidence=ConfidenceThresholds(),
        file="policy.toml",
        line=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # the fields are ActionClass's


def run(cls: ActionClass, standing: Standing, events: Iterable[Event], freeze: Level | None = None) -> list[Settled]:
    """Every step's outcome, each event applied to the standing the one before left."""
    out = []
    for event in events:
        step = settle(cls, standing, event, freeze)
        out.append(step)
        standing = step.standing
    return out


def test_three_successes_promote_and_the_move_carries_the_judged_window() -> None:
    steps = run(klass(), Standing(Level.DRAFT), [Observed(1, S), Observed(2, S), Observed(3, S)])
    assert [s.move for s in steps[:2]] == [None, None] and [s.standing.window.n for s in steps[:2]] == [1, 2]
    move = steps[2].move
    assert move is not None and (move.kind, move.actor, move.from_level, move.to_level, move.action_id) == (
        "promote",
        "ratchet",
        Level.DRAFT,
        Level.CONFIRM,
        3,
    )
    assert (move.evidence.n, move.evidence.successes, move.evidence.action_ids) == (3, 3, [1, 2, 3])
    assert move.evidence.lower == pytest.approx(3 / (3 + Z_95**2))
    # A move starts a fresh window; a promotion puts the class on probation.
    assert steps[2].standing == Standing(Level.CONFIRM, probation=SMALL.probation)
    assert all(s.sample == "added" for s in steps)


def test_on_probation_two_failures_in_a_row_demote_one_between_does_not() -> None:
    at = Standing(Level.CONFIRM, probation=5)
    steps = run(klass(), at, [Observed(1, F), Observed(2, S), Observed(3, F)])
    assert all(s.move is None for s in steps)
    assert [s.standing.probation for s in steps] == [4, 3, 2]  # each sample added counts it down
    # SMALL calls a 80% failure rate bad: no span fits it, so the CUSUM judges every sample, probation or not.
    assert spans(SMALL) == ()
    assert run(klass(), Standing(Level.CONFIRM), [Observed(1, F), Observed(2, F)])[-1].move is not None
    assert drift(steps[-1].standing.window, SMALL) == pytest.approx(math.log(0.8 / 0.6))
    moved = run(klass(), at, [Observed(1, F), Observed(2, F)])[-1].move
    assert moved is not None and (moved.kind, moved.to_level) == ("demote", Level.DRAFT)
    assert moved.evidence.drift == pytest.approx(2 * math.log(0.8 / 0.6))


def test_a_pin_or_a_freeze_at_the_level_holds_promotion_but_not_demotion() -> None:
    three = [Observed(1, S), Observed(2, S), Observed(3, S)]
    pinned = run(klass(), Standing(Level.CONFIRM, pinned=Level.CONFIRM), three)
    assert all(s.move is None for s in pinned) and pinned[-1].standing.window.n == 3
    frozen = run(klass(), Standing(Level.CONFIRM), three, freeze=Level.DRAFT)
    assert all(s.move is None for s in frozen)
    # A pin above the level holds nothing back; the window it kept promotes once the pin is lifted.
    assert run(klass(), Standing(Level.DRAFT, pinned=Level.CONFIRM), three)[-1].move is not None
    lifted = run(klass(), pinned[-1].standing, [Pinned(None), Observed(4, S)])
    assert lifted[0].move is None and lifted[1].move is not None and lifted[1].move.evidence.n == 4
    down = run(klass(), Standing(Level.CONFIRM, pinned=Level.CONFIRM, probation=5), [Observed(1, F), Observed(2, F)])[
        -1
    ]
    assert down.move is not None and down.standing == Standing(Level.DRAFT, pinned=Level.CONFIRM)


def test_a_complaint_demotes_at_once_on_the_window_as_it_stood() -> None:
    before = run(klass(), Standing(Level.CONFIRM), [Observed(1, S), Observed(2, S)])[-1].standing
    step = settle(klass(), before, Complained(2, "broke the build"))
    assert step.move is not None and step.sample is None
    assert (step.move.kind, step.move.actor, step.move.to_level) == ("complaint", "human", Level.DRAFT)
    assert step.move.reason == "complaint on action 2: broke the build"
    assert (step.move.evidence.n, step.move.evidence.successes) == (2, 2)


def test_a_complaint_at_the_floor_or_without_demotion_turns_the_sample_into_a_failure() -> None:
    soft = klass(demote_on_complaint=False)
    before = run(soft, Standing(Level.CONFIRM, probation=5), [Observed(1, F), Observed(2, S)])[-1].standing
    flipped = settle(soft, before, Complained(2))
    assert flipped.sample == "flipped" and flipped.move is not None and flipped.move.kind == "demote"
    assert flipped.move.evidence.action_ids == [1, 2] and flipped.move.evidence.successes == 0
    # At its floor a demoting class cannot drop: the complaint is judged as a failure instead.
    floor = settle(klass(), Standing(Level.DRAFT), Complained(7))
    assert floor.sample == "added" and floor.move is None
    assert floor.standing.window.samples == (Sample(7, F),)


def test_a_human_demotion_stops_at_the_floor_and_never_raises() -> None:
    step = settle(klass(), Standing(Level.AUTONOMOUS), HumanDemoted(Level.BLOCKED, "audit"))
    assert step.move is not None and (step.move.kind, step.move.to_level, step.move.action_id) == (
        "human-demote",
        Level.DRAFT,
        None,
    )
    assert settle(klass(), Standing(Level.DRAFT), HumanDemoted(Level.BLOCKED, "audit")).move is None
    assert settle(klass(), Standing(Level.DRAFT), PolicyMoved(Level.CONFIRM, "start")).standing.level == Level.CONFIRM


def test_probation_follows_a_promotion_only_and_ends_with_any_move() -> None:
    promoted = run(klass(), Standing(Level.DRAFT), [Observed(i, S) for i in (1, 2, 3)])[-1].standing
    assert promoted.probation == SMALL.probation
    # A flipped sample adds nothing, so it does not count probation down; a pin keeps it.
    two = run(klass(demote_on_complaint=False), promoted, [Observed(4, S), Complained(4), Pinned(Level.CONFIRM)])
    assert [s.standing.probation for s in two] == [SMALL.probation - 1] * 3
    # A human's demotion, a policy move and a complaint's demotion end it.
    assert settle(klass(), promoted, HumanDemoted(Level.DRAFT, "x")).standing.probation == 0
    assert settle(klass(), promoted, PolicyMoved(Level.CONFIRM, "x")).standing.probation == 0
    assert settle(klass(), promoted, Complained(3)).standing.probation == 0
    # It counts down to zero and stays there.
    top = klass(ceiling=Level.CONFIRM)
    served = run(top, replace(promoted, probation=2), [Observed(i, S) for i in (5, 6, 7)])
    assert [s.standing.probation for s in served] == [1, 0, 0]
    # A further promotion starts a new probation.
    assert run(klass(), served[-1].standing, [Observed(8, S)])[-1].standing.probation == SMALL.probation


def test_the_streak_and_the_recorded_sample() -> None:
    assert [streak_after("s1", 2, F), streak_after("s1", 2, S), streak_after(CLI_SESSION, 2, F)] == [3, 0, None]

    def given(
        sample: str | None, *, edited: bool = False, answer: str = "counted", failed: bool = False
    ) -> bool | None:
        return recorded_sample(sample, edited=edited, answer=answer, failed=failed, counts_failures=not failed)

    assert [given("success"), given("complained"), given("failure"), given(None)] == [True, True, False, None]
    assert given("complained", edited=True) is False  # an edited approval was already a failure
    assert given("complained", answer="unverified") is None  # an approval that was no evidence gave no sample
    assert given("failure", failed=True) is None  # a failed run, in a class that does not count those


def test_work_is_its_tool_arguments_target_and_the_change_before_it() -> None:
    """A padding success is one whose work (tool, arguments in any key order, fingerprint, and the session's
    last change before it) is that of a success already in the window; a failure is never padding."""
    key = work_key("run_command", '{"argv": ["make"], "cwd": "."}', "f1", 7)
    assert key == work_key("run_command", '{"cwd": ".", "argv": ["make"]}', "f1", 7)  # key order is not work
    assert len(key) == 64
    others = [
        work_key("write_file", '{"argv": ["make"], "cwd": "."}', "f1", 7),
        work_key("run_command", '{"argv": ["make", "-j"], "cwd": "."}', "f1", 7),
        work_key("run_command", '{"argv": ["make"], "cwd": "."}', "f2", 7),
        work_key("run_command", '{"argv": ["make"], "cwd": "."}', None, 7),
        work_key("run_command", '{"argv": ["make"], "cwd": "."}', "f1", 8),  # re-run after an edit: new work
        work_key("run_command", '{"argv": ["make"], "cwd": "."}', "f1", None),
    ]
    assert len({key, *others}) == 7
    assert work_key("t", "not json", None, None) == work_key("t", "not json", None, None)
    assert work_key("t", "not json", None, None) != work_key("t", "not json!", None, None)
    assert work_key("t", "", "", 0) != work_key("t", "", "", None)  # change 0 is a change
    assert is_padding(True, key, iter([others[0], key]))
    assert not is_padding(True, key, others)
    assert not is_padding(False, key, [key])  # a failure always counts
    assert not is_padding(True, key, [])


def test_what_the_rule_returns_cannot_be_changed_after_the_fact() -> None:
    """The rule is pure: the standing it returns, the move it records and the event it was given are values;
    code after it cannot raise a level or rewrite a recorded move by assigning to them."""
    event = PolicyMoved(Level.CONFIRM, "start")
    step = settle(klass(), Standing(Level.DRAFT), event)
    assert step.move is not None and step.standing.level is Level.CONFIRM
    for value, name in ((step.standing, "level"), (step.move, "to_level"), (event, "to"), (step, "move")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, Level.AUTONOMOUS)
    assert (step.standing.level, step.move.to_level, event.to) == (Level.CONFIRM,) * 3


def test_a_disproved_success_becomes_a_failure_and_never_demotes_at_once() -> None:
    """A task-end check failed on an action already counted: its success in the window becomes a failure;
    one no longer in the window adds a failure; neither is a demotion by itself (unlike a complaint)."""
    at = Standing(Level.CONFIRM)
    steps = run(klass(), at, [Observed(1, S), Observed(2, S), Disproved(1, "tests fail at the task's end")])
    assert steps[-1].move is None and steps[-1].sample == "flipped"
    assert [(s.action_id, s.ok) for s in steps[-1].standing.window.samples] == [(1, F), (2, S)]
    added = settle(klass(), at, Disproved(9))
    assert added.move is None and added.sample == "added"
    assert [(s.action_id, s.ok) for s in added.standing.window.samples] == [(9, F)]


def test_the_last_sample_on_probation_is_judged_on_probation() -> None:
    """Probation counts down one per sample: the last one left is still judged by the probation rule."""
    cls = klass(trust=DEFAULT)
    on = run(cls, Standing(Level.CONFIRM, probation=5), [Observed(i, S) for i in range(1, 4)] + [Observed(4, F)])
    assert on[-1].standing.probation == 1 and on[-1].move is None
    last = settle(cls, on[-1].standing, Observed(5, F))
    assert last.move is not None and last.move.kind == "demote" and "on probation" in last.move.reason
    served = settle(cls, replace(on[-1].standing, probation=0), Observed(5, F))
    assert served.move is None


def test_a_freeze_holds_until_its_end_and_not_past_it() -> None:
    assert FreezeCap(Level.DRAFT, 100.0).at(99.9) is Level.DRAFT
    assert FreezeCap(Level.DRAFT, 100.0).at(100.0) is None  # lifted at its end
    assert FreezeCap(Level.DRAFT, 100.0).at(150.0) is None
    assert FreezeCap(Level.BLOCKED, None).at(1e12) is Level.BLOCKED  # until lifted by hand


def test_a_failure_that_is_not_a_failed_run_counts_wherever_it_was_recorded() -> None:
    """A `failure` label from a decline or a failed check counts even in a class that does not count failed
    runs; only a failed run is left out there."""

    def given(failed: bool, counts_failures: bool) -> bool | None:
        return recorded_sample(
            "failure", edited=False, answer="counted", failed=failed, counts_failures=counts_failures
        )

    assert given(False, False) is False  # a decline or a failed check, in a class that does not count runs
    assert given(True, False) is None
    assert given(True, True) is False


def test_every_event_and_cap_is_a_value() -> None:
    events: list[object] = [
        Observed(1, S),
        Complained(1),
        Disproved(1),
        Pinned(None),
        HumanDemoted(Level.DRAFT, "x"),
        PolicyMoved(Level.DRAFT, "x"),
        FreezeCap(Level.DRAFT, None),
    ]
    for value in events:
        first = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, first, 2)
