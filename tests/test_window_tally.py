"""The window's running figures (rules/trust.py `Tally`) against a full pass over its samples.

`add_sample` keeps a window's successes, its failures within each span and the drift detector as samples
join and leave it, so that judging a window after each sample costs O(1) (the replays of `ratchet report`
and `ratchet simulate` judge every sample of a period). These tests hold the running figures to what a
pass over the window's samples gives, bit for bit (the drift is a float compared with `==`), on long random
histories that drift between good and bad stretches, lose samples off the window's front, start fresh
windows and flip samples (complaints); and hold `settle` to the decisions a recomputation from the samples
alone makes. The reference here is the rule as it was written before the running figures: sums over the
window and its spans, and the detector replayed from the window's first sample.
"""

from __future__ import annotations

import math
import random

import pytest

from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass, ConfidenceThresholds, TrustParams
from ratchet.rules import trust
from ratchet.rules.settle import Complained, Observed, Pinned, Standing, settle
from ratchet.rules.trust import SPANS, Sample, Window, add_sample, drift, flip_sample, judge, spans

PARAMS = {
    "default": TrustParams(),
    "small window": TrustParams(
        window_size=6, min_samples=5, promote_at=0.6, demote_below=0.3
    ),  # shorter than the spans
    "mid window": TrustParams(window_size=12, min_samples=10, promote_at=0.75, demote_below=0.6),
    "tolerant": TrustParams(demote_below=0.5, promote_at=0.9),  # no span fits: the CUSUM judges every sample
    "strict": TrustParams(promote_at=0.97, demote_below=0.9, drift_threshold=1.0, window_size=200, min_samples=150),
}


def reference(samples: tuple[Sample, ...], params: TrustParams) -> tuple[int, tuple[int, ...], float]:
    """Successes, failures within each span, and the detector, by a pass over the samples."""
    fail_good, fail_bad = 1.0 - params.promote_at, 1.0 - params.demote_below
    on_success = math.log((1.0 - fail_bad) / (1.0 - fail_good))
    on_failure = math.log(fail_bad / fail_good)
    value = 0.0
    for s in samples:
        value = max(0.0, value + (on_success if s.ok else on_failure))
    failures = tuple(sum(1 for s in samples[-span:] if not s.ok) for _, span in SPANS)
    return sum(1 for s in samples if s.ok), failures, value


def reference_move(
    samples: tuple[Sample, ...], level: Level, floor: Level, ceiling: Level, params: TrustParams, probation: bool
) -> str | None:
    """The move the rule makes on these samples, decided from the pass above."""
    successes, failures, value = reference(samples, params)
    fitting = spans(params)
    breached = any(f >= k for (k, m), f in zip(SPANS, failures, strict=True) if (k, m) in fitting)
    if breached and level > floor:
        return "demote"
    if (probation or not fitting) and value >= params.drift_threshold and level > floor:
        return "demote"
    n = len(samples)
    if level < ceiling and n and n >= params.min_samples and trust.wilson_bounds(successes, n)[0] >= params.promote_at:
        return "promote"
    return None


def busy_class() -> ActionClass:
    """A class that moves often: a short window, a low bar, probation after each promotion; a complaint flips
    its sample (no demotion at once), so flips are exercised."""
    return ActionClass(
        name="busy",
        description="",
        tools=frozenset({"write_file"}),
        paths=None,
        argv=None,
        branches=None,
        remotes=None,
        force=None,
        start=Level.CONFIRM,
        floor=Level.DRAFT,
        ceiling=Level.AUTONOMOUS,
        priority=0,
        demote_on_complaint=False,
        count_execution_failures=True,
        require_cli_approval=False,
        allow_shell=False,
        novelty=False,
        trust=TrustParams(window_size=30, min_samples=20, promote_at=0.85, probation=15),
        confidence=ConfidenceThresholds(),
        file="policy.toml",
        line=1,
    )


def history(rng: random.Random, length: int) -> list[bool]:
    """Stretches of a random length, each at its own success rate (a good class, a slipping one, a broken one)."""
    out: list[bool] = []
    while len(out) < length:
        rate = rng.choice((1.0, 0.99, 0.95, 0.8, 0.7, 0.3, 0.0))
        out += [rng.random() < rate for _ in range(rng.randint(1, 150))]
    return out[:length]


def check_running(params: TrustParams, seed: int, length: int) -> int:
    """Walk a random history through `add_sample` (with fresh windows and flips on the way), holding the
    running figures to the reference after every step; return how many steps were checked."""
    rng = random.Random(seed)
    window = Window()
    checked = 0
    for i, ok in enumerate(history(rng, length)):
        roll = rng.random()
        if roll < 0.002:
            window = Window()  # a move: a fresh window
        elif roll < 0.006 and window.samples:
            flipped = flip_sample(window, rng.choice(window.samples).action_id)  # a complaint
            assert flipped is not None
            window = flipped
        window = add_sample(window, Sample(i, ok), params)
        successes, failures, value = reference(window.samples, params)
        kept = window.tally
        assert (kept.successes, kept.failures_in) == (successes, failures), f"step {i}: {kept} != {failures}"
        assert window.successes == successes
        assert drift(window, params) == value, f"step {i}: drift {drift(window, params)!r} != {value!r}"
        checked += 1
    return checked


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_running_figures_are_a_pass_over_the_window(name: str) -> None:
    """20,000 samples per set of trust parameters: after every one, the kept successes, span failures and drift
    equal a pass over the window (the drift to the last bit)."""
    assert check_running(PARAMS[name], seed=sum(map(ord, name)), length=20_000) == 20_000


def test_the_kept_drift_is_used_and_replayed_when_it_must_be() -> None:
    """The kept drift is the one read (no pass over the window), and a window whose detector stayed above
    zero through it is replayed from its new start when its oldest sample leaves."""
    params = PARAMS["small window"]
    window = Window()
    for i in range(6):
        window = add_sample(window, Sample(i, False), params)
    assert window.tally.since_zero == 6 and window.tally.drift == reference(window.samples, params)[2]
    window = add_sample(window, Sample(6, False), params)  # the first failure leaves: the detector restarts later
    assert window.tally.drift == reference(window.samples, params)[2]
    assert window.tally.drift < 7 * trust.drift_steps(params)[1]
    built = Window(window.samples)  # built from samples alone: no kept drift, replayed when asked
    assert built.tally.drift is None and drift(built, params) == window.tally.drift


def test_settle_decides_as_a_recomputation_from_the_samples() -> None:
    """A long random life of a class (samples, complaints, a pin): at every event, the move the settle rule
    makes on the running window is the move the reference makes from the window's samples alone, and the
    class ends where a replay with every window rebuilt from its samples (no running figures kept) ends."""
    rng = random.Random(30)
    cls = busy_class()
    running, rebuilt = Standing(cls.start), Standing(cls.start)
    moves = 0
    for i, ok in enumerate(history(rng, 30_000)):
        roll = rng.random()
        event: Observed | Complained | Pinned
        if roll < 0.003 and running.window.samples:
            event = Complained(rng.choice(running.window.samples).action_id)
        elif roll < 0.0035:
            event = Pinned(rng.choice((None, Level.CONFIRM, Level.AUTONOMOUS)))
        else:
            event = Observed(i, ok)
        a = settle(cls, running, event)
        b = settle(
            cls, Standing(rebuilt.level, Window(rebuilt.window.samples), rebuilt.pinned, rebuilt.probation), event
        )
        assert a.move == b.move and a.standing == b.standing, f"event {i}: {a.move} != {b.move}"
        if isinstance(event, Observed):
            window = add_sample(running.window, Sample(i, ok), cls.trust)
            held = running.pinned is not None and running.pinned <= running.level
            ceiling = running.level if held else cls.ceiling
            expected = reference_move(
                window.samples, running.level, cls.floor, ceiling, cls.trust, running.probation > 0
            )
            assert (a.move.kind if a.move is not None else None) == expected, f"event {i}"
            verdict = judge(window, running.level, cls.floor, ceiling, cls.trust, probation=running.probation > 0)
            assert verdict.move == expected
        moves += a.move is not None
        running, rebuilt = a.standing, b.standing
    assert moves > 20  # the history drove the class up and down many times


def test_the_comparison_catches_a_planted_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not blind: with the running count of the shorter span planted one sample off (the
    sample leaving a span of 8 taken as the 9th last), it fails."""
    monkeypatch.setattr(trust, "SPAN_LENGTHS", tuple(span + 1 if span == 8 else span for span in trust.SPAN_LENGTHS))
    with pytest.raises(AssertionError, match="step"):
        check_running(PARAMS["default"], seed=1, length=5_000)
