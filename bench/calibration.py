"""Calibration benchmark for the ratchet's trust rule (issue 8).

Drives the project's real trust module (`ratchet.rules.trust.add_sample` and `ratchet.rules.trust.judge`, the
same calls `ratchet.record.standing.apply_sample` makes for every resolved action) with simulated action
classes whose true success rate is known, many seeded trials each, and reports:

1. False promotion: the probability that a class with true success rate 0.85 (and 0.90) is
   promoted at least once within 1,000 actions, with a 95% Wilson interval.
2. Time to earn: how many samples a 0.99 class needs to climb one rung (median, p90).
3. Time to demote: how many actions a freshly promoted class that drifts to 0.70 takes to be
   demoted (median, p90).
4. False demotion: the probability that a steady 0.99 class, freshly promoted, is demoted within
   1,000 actions.
5. The same figures for the naive baseline "19 of the last 20" (see `naive_trial`).
6. Alternative parameter settings (the trade-off).
7. Demotion detectors compared (`CANDIDATES`): the span rule with and without probation, the CUSUM
   the ratchet used before (alone, at its old and a raised threshold) and a CUSUM whose "good" rate
   comes from the evidence that earned the promotion. Only demotion differs between them; the
   promotion rule is the module's in every row.

Scenarios (each trial starts with a fresh, empty window, as after a transition):

* `climb`: the class sits at its floor (draft, floor draft, ceiling autonomous), so it can only be
  promoted; the trial ends at the first promotion or after the horizon. At the floor no demotion
  ever resets the window, so one window slides over every action of the trial.
* `held`: the class has just been promoted to confirm (floor draft) and confirm is its ceiling, so it
  can only be demoted (on probation for its first `probation` samples, as after a live promotion);
  the trial ends at the first demotion or after the horizon. (At a true rate of 0.70 a promotion
  is impossible in practice anyway: it needs 52 successes in a row.)

Every trial draws its outcomes from `random.Random` seeded by a string built from the base seed,
the scenario, the true rate and the chunk number, never from the rule or its parameters: the
ratchet, the naive rule and every alternative setting see exactly the same outcome sequences
(common random numbers), so their differences are the rules', not the dice's. Results do not depend
on the number of workers.

Usage: `.venv/bin/python bench/calibration.py [--trials N] [--seed S] [--quick] [--workers W]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

try:  # run as `python bench/calibration.py` or imported as `bench.calibration`
    from bench.provenance import stamp
except ImportError:  # pragma: no cover - the script's own directory is on sys.path instead
    from provenance import stamp  # type: ignore[no-redef]

from ratchet.policy.levels import Level
from ratchet.policy.model import TrustParams
from ratchet.rules.settle import is_padding
from ratchet.rules.trust import Sample, Window, add_sample, drift_steps, judge, wilson_bounds

Rule = Literal["ratchet", "naive", "cusum"]
Scenario = Literal["climb", "held"]

HORIZON = 1_000
CHUNK = 25  # trials per task: small enough to balance two workers, fixed so results ignore --workers
NAIVE_N = 20
NAIVE_K = 19
DEFAULT_TRIALS = 2_000
QUICK_TRIALS = 200
DEFAULT_SEED = 8
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The class positions each scenario puts on the ladder: (level, floor, ceiling).
LADDER: dict[str, tuple[Level, Level, Level]] = {
    "climb": (Level.DRAFT, Level.DRAFT, Level.AUTONOMOUS),
    "held": (Level.CONFIRM, Level.DRAFT, Level.CONFIRM),
}

# Targets from issue 8, on the default policy.
TARGET_FP_085 = 0.005
TARGET_FP_090 = 0.05
TARGET_EARN_MEDIAN = 60
TARGET_DEMOTE_MEDIAN = 9
TARGET_DEMOTE_P90 = 20
TARGET_FALSE_DEMOTION = 0.03  # a steady 0.99 class, within 1,000 actions

# Demotion detectors compared (rule, overrides of the defaults, the CUSUM's "good" rate or None for
# promote_at). "cusum" is the detector the ratchet used before the span rule: the CUSUM alone, at
# every sample. 0.981 is the posterior mean (s + 1) / (n + 2) of the 52/52 window that promotes a
# typical 0.99 class: a "good" rate taken from the evidence that earned the promotion.
CANDIDATES: tuple[tuple[str, Rule, dict[str, Any], float | None], ...] = (
    ("spans, probation 20 (defaults)", "ratchet", {}, None),
    ("spans, no probation", "ratchet", {"probation": 0}, None),
    ("spans, probation 50", "ratchet", {"probation": 50}, None),
    ("before: CUSUM alone, threshold 2.0", "cusum", {}, None),
    ("CUSUM alone, threshold 2.2", "cusum", {"drift_threshold": 2.2}, None),
    (
        "CUSUM alone, good rate 0.981 from the promotion's evidence, threshold 4.7",
        "cusum",
        {"drift_threshold": 4.7},
        0.981,
    ),
)

# Alternative settings for the trade-off section: one knob moved at a time from the defaults.
ALTERNATIVES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("promote_at 0.90", {"promote_at": 0.90}),
    ("promote_at 0.95", {"promote_at": 0.95}),
    ("drift_threshold 1.5", {"drift_threshold": 1.5}),
    ("drift_threshold 2.5", {"drift_threshold": 2.5}),
)


# --------------------------------------------------------------------------------------------------
# Configuration and work units
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """How much simulation to do. `trials` sizes the headline false-promotion estimates.

    Each figure has its own trial count: trials that run the full horizon cost ~1,000 `judge()`
    calls, a demotion at 0.70 about ten, so the cheap figures get more trials for the same time.
    """

    trials: int = DEFAULT_TRIALS  # false promotion at 0.85 and 0.90, default setting and naive rule
    seed: int = DEFAULT_SEED
    workers: int = 2
    horizon: int = HORIZON
    earn_trials: int = DEFAULT_TRIALS  # time to earn at 0.99 (~60 actions a trial)
    demote_trials: int = 5 * DEFAULT_TRIALS  # time to demote at 0.70 (~10 actions a trial)
    hold_trials: int = 3 * DEFAULT_TRIALS  # false demotion of a steady 0.99 class (~1,000 a trial): the goal

    alt_trials: int = DEFAULT_TRIALS // 10  # per alternative: false promotion and false demotion
    alt_earn_trials: int = DEFAULT_TRIALS // 2  # per alternative: time to earn
    alt_demote_trials: int = 2 * DEFAULT_TRIALS  # per alternative: time to demote
    alternatives: tuple[tuple[str, dict[str, Any]], ...] = ALTERNATIVES
    candidates: tuple[tuple[str, Rule, dict[str, Any], float | None], ...] = CANDIDATES
    cand_trials: int = DEFAULT_TRIALS  # per candidate: false demotion (time to demote: cand_demote_trials)
    cand_demote_trials: int = 2 * DEFAULT_TRIALS

    @classmethod
    def scaled(cls, trials: int, seed: int = DEFAULT_SEED, workers: int = 2) -> Config:
        """A configuration whose every trial count derives from `trials` (the headline count)."""
        trials = max(trials, 1)
        return cls(
            trials=trials,
            seed=seed,
            workers=workers,
            earn_trials=trials,
            demote_trials=5 * trials,
            hold_trials=3 * trials,
            alt_trials=max(trials // 10, 1),
            alt_earn_trials=max(trials // 2, 1),
            alt_demote_trials=2 * trials,
            cand_trials=trials,
            cand_demote_trials=2 * trials,
        )

    def counts(self) -> dict[str, tuple[int, int]]:
        """Trials per figure: (default setting and naive rule, each alternative setting)."""
        return {
            "false_promotion_085": (self.trials, self.alt_trials),
            "false_promotion_090": (self.trials, self.alt_trials),
            "time_to_earn_099": (self.earn_trials, self.alt_earn_trials),
            "time_to_demote_070": (self.demote_trials, self.alt_demote_trials),
            "false_demotion_099": (self.hold_trials, self.alt_trials),
        }


@dataclass(frozen=True)
class Task:
    """One chunk of trials of one experiment, shippable to a worker process."""

    key: str
    rule: Rule
    params: dict[str, Any] | None
    scenario: Scenario
    p_true: float
    horizon: int
    first_trial: int
    trials: int
    seed: int
    cost: float = field(default=0.0, compare=False)  # for scheduling only: expected judge() calls
    good: float | None = None  # the "cusum" rule's good rate (None: promote_at)


@dataclass(frozen=True)
class Experiment:
    """A figure to estimate: a rule (with parameters) in a scenario at a true success rate."""

    key: str
    rule: Rule
    params: dict[str, Any] | None
    scenario: Scenario
    p_true: float
    trials: int
    good: float | None = None


# --------------------------------------------------------------------------------------------------
# Trials
# --------------------------------------------------------------------------------------------------


def outcome_rng(seed: int, scenario: Scenario, p_true: float, chunk: int) -> random.Random:
    """The outcome stream for one chunk: shared by every rule and setting (common random numbers)."""
    return random.Random(f"ratchet-calibration/{seed}/{scenario}/{p_true:.6f}/{chunk}")


def ratchet_trial(
    outcomes: random.Random, p_true: float, scenario: Scenario, params: TrustParams, horizon: int
) -> int | None:
    """One trial of the real rule: the action number of the scenario's move, or None within the horizon.

    Each action calls `add_sample` then `judge` on the module's own Window, exactly as the gate does,
    after the padding rule (`ratchet.rules.settle.is_padding`): a success whose work is already counted
    in the window is no sample. An honest class's actions are each new work (its own key), so the rule
    must leave every figure as it was without it.
    """
    level, floor, ceiling = LADDER[scenario]
    wanted = "promote" if scenario == "climb" else "demote"
    probation = params.probation if scenario == "held" else 0  # held: just promoted, so on probation
    window = Window()
    for action in range(1, horizon + 1):
        ok = outcomes.random() < p_true
        if is_padding(ok, f"work-{action}", (f"work-{s.action_id}" for s in window.samples if s.ok)):
            continue
        window = add_sample(window, Sample(action, ok), params)
        verdict = judge(window, level, floor, ceiling, params, probation=action <= probation)
        if verdict.move == wanted:
            return action
        if verdict.move is not None:  # impossible by construction of LADDER; fail loudly if not
            raise RuntimeError(f"unexpected {verdict.move} in scenario {scenario}: {verdict.reason}")
    return None


def cusum_trial(
    outcomes: random.Random, p_true: float, scenario: Scenario, params: TrustParams, horizon: int, good: float | None
) -> int | None:
    """One trial of a CUSUM-alone detector (the ratchet's rule before the span rule), with the same
    promotion rule: demote when the Bernoulli CUSUM of "fallen to demote_below" against "as good as
    `good`" (promote_at when None) reaches drift_threshold, replayed over the window at every sample."""
    level, floor, ceiling = LADDER[scenario]
    base = params.promote_at if good is None else good
    on_success = math.log(params.demote_below / base)
    on_failure = math.log((1.0 - params.demote_below) / (1.0 - base))
    window: deque[bool] = deque(maxlen=params.window_size)
    for action in range(1, horizon + 1):
        window.append(outcomes.random() < p_true)
        value = 0.0
        for ok in window:
            value = max(0.0, value + (on_success if ok else on_failure))
        if level > floor and value >= params.drift_threshold:
            return action if scenario == "held" else None
        n, successes = len(window), sum(window)
        if level < ceiling and n >= params.min_samples and wilson_bounds(successes, n)[0] >= params.promote_at:
            return action if scenario == "climb" else None
    return None


def naive_trial(outcomes: random.Random, p_true: float, scenario: Scenario, horizon: int) -> int | None:
    """One trial of the naive baseline "95% of the last 20".

    Promote when the last 20 samples at the level hold at least 19 successes; demote (the mirror)
    when at least 20 samples exist and the last 20 hold fewer than 19. Both look at the last 20
    samples since the last transition; demotion is checked first, as in `judge`.
    """
    level, floor, ceiling = LADDER[scenario]
    recent: deque[bool] = deque(maxlen=NAIVE_N)
    successes = 0
    for action in range(1, horizon + 1):
        ok = outcomes.random() < p_true
        if len(recent) == NAIVE_N:
            successes -= recent[0]
        recent.append(ok)
        successes += ok
        if len(recent) < NAIVE_N:
            continue
        if level > floor and successes < NAIVE_K:
            return action if scenario == "held" else None
        if level < ceiling and successes >= NAIVE_K:
            return action if scenario == "climb" else None
    return None


def run_task(task: Task) -> tuple[str, int, list[int | None]]:
    """Run one chunk (in a worker process or inline): the experiment key, first trial and outcomes."""
    chunk = task.first_trial // CHUNK
    outcomes = outcome_rng(task.seed, task.scenario, task.p_true, chunk)
    params = TrustParams(**task.params) if task.params is not None else None
    results: list[int | None] = []
    for _ in range(task.trials):
        if task.rule == "ratchet":
            assert params is not None
            results.append(ratchet_trial(outcomes, task.p_true, task.scenario, params, task.horizon))
        elif task.rule == "cusum":
            assert params is not None
            results.append(cusum_trial(outcomes, task.p_true, task.scenario, params, task.horizon, task.good))
        else:
            results.append(naive_trial(outcomes, task.p_true, task.scenario, task.horizon))
    return task.key, task.first_trial, results


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def proportion(results: Sequence[int | None]) -> dict[str, Any]:
    """How many trials saw the event, as a rate with its 95% Wilson interval."""
    n = len(results)
    events = sum(1 for r in results if r is not None)
    lower, upper = wilson_bounds(events, n)
    rate = events / n if n else None
    if rate is not None:  # wilson_bounds(0, n) returns ~1e-17, not 0: keep the interval around the rate
        lower, upper = min(lower, rate), max(upper, rate)
    return {"trials": n, "events": events, "rate": rate, "ci95": [lower, upper]}


def _order_stat(ordered: Sequence[float], rank: int) -> int | None:
    """The rank-th smallest (1-based, clamped); None when it is a censored trial (no move at all)."""
    value = ordered[min(max(rank, 1), len(ordered)) - 1]
    return None if math.isinf(value) else int(value)


def quantile(ordered: Sequence[float], q: float) -> int | None:
    """Nearest-rank quantile of sorted values (censored trials sort last as +inf)."""
    return _order_stat(ordered, math.ceil(q * len(ordered)))


def quantile_ci(ordered: Sequence[float], q: float) -> list[int | None]:
    """An approximate distribution-free 95% interval for a quantile, from binomial order statistics."""
    n = len(ordered)
    spread = 1.959963984540054 * math.sqrt(n * q * (1 - q))
    return [_order_stat(ordered, math.floor(n * q - spread)), _order_stat(ordered, math.ceil(n * q + spread) + 1)]


def durations(results: Sequence[int | None], horizon: int) -> dict[str, Any]:
    """Median, p90 and mean of the actions a move took; trials with no move count as censored."""
    ordered = sorted(math.inf if r is None else float(r) for r in results)
    done = [r for r in results if r is not None]
    return {
        "trials": len(results),
        "censored": len(results) - len(done),
        "cap": horizon,
        "median": quantile(ordered, 0.5),
        "median_ci95": quantile_ci(ordered, 0.5),
        "p90": quantile(ordered, 0.9),
        "p90_ci95": quantile_ci(ordered, 0.9),
        "mean_uncensored": sum(done) / len(done) if done else None,
    }


def exact_demotion_time(params: TrustParams, p_true: float, targets: Sequence[int] = ()) -> dict[str, Any]:
    """Cross-check for the time-to-demote simulation: the exact distribution, by a Markov chain.

    Within the first `window_size` samples of a fresh window, `trust.drift` replays a plain
    Bernoulli CUSUM from zero, so the demotion time's distribution follows exactly from the module's
    own increments (`trust.drift_steps`) over the finitely many reachable drift values. Quantiles
    beyond `window_size` (where the window starts to slide) are reported as None.
    """
    on_success, on_failure = drift_steps(params)
    states: dict[float, float] = {0.0: 1.0}
    cdf: list[float] = []
    demoted = 0.0
    for _ in range(params.window_size):
        following: dict[float, float] = {}
        for value, prob in states.items():
            for step, q in ((on_success, p_true), (on_failure, 1.0 - p_true)):
                nxt = round(max(0.0, value + step), 9)
                if nxt >= params.drift_threshold:
                    demoted += prob * q
                else:
                    following[nxt] = following.get(nxt, 0.0) + prob * q
        states = following
        cdf.append(demoted)

    def first_at(level: float) -> int | None:
        return next((t for t, c in enumerate(cdf, 1) if c >= level), None)

    return {
        "median": first_at(0.5),
        "p90": first_at(0.9),
        "cdf": {str(t): cdf[t - 1] for t in targets if 0 < t <= len(cdf)},
    }


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------

FIGURES: tuple[tuple[str, Scenario, float, str], ...] = (
    # (figure name, scenario, true rate, kind)
    ("false_promotion_085", "climb", 0.85, "proportion"),
    ("false_promotion_090", "climb", 0.90, "proportion"),
    ("time_to_earn_099", "climb", 0.99, "duration"),
    ("time_to_demote_070", "held", 0.70, "duration"),
    ("false_demotion_099", "held", 0.99, "proportion"),
)


def experiments(config: Config) -> list[Experiment]:
    """Every (rule, setting, figure) the configuration asks for."""
    counts = config.counts()
    default = TrustParams().model_dump()
    settings: list[tuple[str, Rule, dict[str, Any] | None, int]] = [("default", "ratchet", default, 0)]
    settings.append(("naive", "naive", None, 0))
    settings.extend((label, "ratchet", {**default, **overrides}, 1) for label, overrides in config.alternatives)
    found: list[Experiment] = []
    for label, rule, params, which in settings:
        for figure, scenario, p_true, _kind in FIGURES:
            trials = counts[figure][which]
            if trials > 0:
                found.append(Experiment(f"{label}|{figure}", rule, params, scenario, p_true, trials))
    held = {"false_demotion_099": config.cand_trials, "time_to_demote_070": config.cand_demote_trials}
    for label, rule, overrides, good in config.candidates:
        if rule == "ratchet" and not overrides:
            continue  # the defaults: already simulated above
        for figure, scenario, p_true, _kind in FIGURES:
            if held.get(figure, 0) > 0:
                key = f"candidate {label}|{figure}"
                found.append(Experiment(key, rule, {**default, **overrides}, scenario, p_true, held[figure], good))
    return found


# Rough judge() calls per trial, for scheduling only: trials that never move run the full horizon.
COST_PER_TRIAL = {
    "false_promotion_085": 1.0,
    "false_promotion_090": 1.0,
    "time_to_earn_099": 0.07,
    "time_to_demote_070": 0.01,
    "false_demotion_099": 1.0,
}


def tasks_for(config: Config, found: Iterable[Experiment]) -> list[Task]:
    """Split experiments into fixed-size chunks, the most expensive first (for two-worker balance)."""
    tasks: list[Task] = []
    for exp in found:
        per_trial = COST_PER_TRIAL[exp.key.split("|")[1]] * config.horizon
        weight = per_trial * (0.05 if exp.rule == "naive" else 1.0)
        for first in range(0, exp.trials, CHUNK):
            count = min(CHUNK, exp.trials - first)
            tasks.append(
                Task(
                    exp.key,
                    exp.rule,
                    exp.params,
                    exp.scenario,
                    exp.p_true,
                    config.horizon,
                    first,
                    count,
                    config.seed,
                    weight * count,
                    exp.good,
                )
            )
    tasks.sort(key=lambda t: -t.cost)
    return tasks


def simulate(config: Config) -> dict[str, list[int | None]]:
    """Run every chunk (over `config.workers` processes) and reassemble each experiment in trial order."""
    tasks = tasks_for(config, experiments(config))
    if config.workers > 1:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            done = list(pool.map(run_task, tasks, chunksize=1))
    else:
        done = [run_task(task) for task in tasks]
    pieces: dict[str, list[tuple[int, list[int | None]]]] = {}
    for key, first, results in done:
        pieces.setdefault(key, []).append((first, results))
    return {key: [r for _, chunk in sorted(parts) for r in chunk] for key, parts in pieces.items()}


def summarise(config: Config, raw: dict[str, list[int | None]]) -> dict[str, dict[str, Any]]:
    """Figures per setting label: proportions with Wilson intervals, durations with quantiles."""
    out: dict[str, dict[str, Any]] = {}
    for key, results in raw.items():
        label, figure = key.split("|")
        kind = next(k for name, _s, _p, k in FIGURES if name == figure)
        out.setdefault(label, {})[figure] = (
            proportion(results) if kind == "proportion" else durations(results, config.horizon)
        )
    return out


def _verdict(met: bool | None, conclusive: bool | None) -> dict[str, Any]:
    return {"met": met, "conclusive": conclusive}


def check_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue-8 target against one setting's figures: met, and whether the interval settles it."""
    checks: list[dict[str, Any]] = []
    for figure, target in (
        ("false_promotion_085", TARGET_FP_085),
        ("false_promotion_090", TARGET_FP_090),
        ("false_demotion_099", TARGET_FALSE_DEMOTION),
    ):
        fig = figures.get(figure)
        if fig is None or fig["rate"] is None:
            continue
        met = fig["rate"] <= target
        lower, upper = fig["ci95"]
        checks.append(
            {
                "figure": figure,
                "statistic": "rate",
                "target": target,
                "value": fig["rate"],
                "ci95": fig["ci95"],
                **_verdict(met, upper <= target if met else lower > target),
            }
        )
    for figure, stat, target in (
        ("time_to_earn_099", "median", TARGET_EARN_MEDIAN),
        ("time_to_demote_070", "median", TARGET_DEMOTE_MEDIAN),
        ("time_to_demote_070", "p90", TARGET_DEMOTE_P90),
    ):
        fig = figures.get(figure)
        if fig is None:
            continue
        value = fig[stat]
        met = value is not None and value <= target
        lower, upper = fig[f"{stat}_ci95"]
        conclusive = (upper is not None and upper <= target) if met else (lower is None or lower > target)
        checks.append(
            {
                "figure": figure,
                "statistic": stat,
                "target": target,
                "value": value,
                "ci95": fig[f"{stat}_ci95"],
                **_verdict(met, conclusive),
            }
        )
    return checks


def run(config: Config) -> dict[str, Any]:
    """The whole benchmark: simulate, summarise, check targets. Returns the JSON-ready report."""
    started = time.perf_counter()
    raw = simulate(config)
    settings = summarise(config, raw)
    elapsed = time.perf_counter() - started
    alternatives = [
        {"label": label, "overrides": overrides, "figures": settings[label]}
        for label, overrides in config.alternatives
        if label in settings
    ]
    return {
        "benchmark": "ratchet trust calibration (issue 8)",
        "config": {
            "trials": config.trials,
            "seed": config.seed,
            "workers": config.workers,
            "horizon": config.horizon,
            "trials_per_figure": {
                figure: {"default_and_naive": main, "each_alternative": alt}
                for figure, (main, alt) in config.counts().items()
            },
            "chunk": CHUNK,
        },
        "runtime_s": round(elapsed, 2),
        "python": platform.python_version(),
        "default_params": TrustParams().model_dump(),
        "scenarios": {
            "climb": "level draft, floor draft, ceiling autonomous: only promotion possible",
            "held": "level confirm (fresh window after a promotion), floor draft, ceiling confirm: only demotion",
        },
        "naive_rule": (
            f"promote when the last {NAIVE_N} samples at the level hold >= {NAIVE_K} successes; demote when "
            f">= {NAIVE_N} samples exist and the last {NAIVE_N} hold < {NAIVE_K} successes"
        ),
        "rules": {"ratchet": settings.get("default", {}), "naive": settings.get("naive", {})},
        "targets": {
            "ratchet": check_targets(settings.get("default", {})),
            "naive": check_targets(settings.get("naive", {})),
        },
        "alternatives": alternatives,
        "candidates": [
            {
                "label": label,
                "rule": rule,
                "overrides": overrides,
                "good": good,
                "figures": settings.get("default" if rule == "ratchet" and not overrides else f"candidate {label}", {}),
            }
            for label, rule, overrides, good in config.candidates
        ],
        "exact_check": {
            "what": "time to demote at 0.70 by the probation detector alone (the CUSUM), exact distribution "
            "from trust.drift_steps (no simulation); the span rule can only demote sooner",
            "default": exact_demotion_time(TrustParams(), 0.70, (TARGET_DEMOTE_MEDIAN, TARGET_DEMOTE_P90)),
            **{
                label: exact_demotion_time(TrustParams(**{**TrustParams().model_dump(), **overrides}), 0.70)
                for label, overrides in config.alternatives
            },
        },
    }


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"


def fmt_proportion(fig: dict[str, Any] | None) -> str:
    """`0.05% [0.01–0.28%] (2/4000)`."""
    if not fig:
        return "—"
    lower, upper = fig["ci95"]
    return f"{_pct(fig['rate'])} [{_pct(lower)}–{_pct(upper)}] ({fig['events']}/{fig['trials']})"


def _num(x: float | None, cap: int) -> str:
    return f">{cap}" if x is None else f"{x:g}"


def fmt_quantile(fig: dict[str, Any] | None, stat: str) -> str:
    """`52 [52–52]` with the censored count when some trials never moved."""
    if not fig:
        return "—"
    cap = fig["cap"]
    lower, upper = fig[f"{stat}_ci95"]
    text = f"{_num(fig[stat], cap)} [{_num(lower, cap)}–{_num(upper, cap)}]"
    return text + (f", {fig['censored']} never moved" if fig["censored"] else "")


def _mark(check: dict[str, Any] | None) -> str:
    if check is None:
        return ""
    mark = "✓" if check["met"] else "✗"
    return mark if check["conclusive"] else f"{mark} (interval straddles target)"


def _find(checks: list[dict[str, Any]], figure: str, stat: str) -> dict[str, Any] | None:
    return next((c for c in checks if c["figure"] == figure and c["statistic"] == stat), None)


def main_table(report: dict[str, Any]) -> str:
    """The headline table: default ratchet vs the naive rule against each target."""
    rows: list[str] = [
        "| Figure | Target | Ratchet (defaults) | | Naive 19-of-last-20 | |",
        "|---|---|---|---|---|---|",
    ]
    lines: tuple[tuple[str, str, str, str], ...] = (
        ("False promotion, true rate 0.85, within 1,000 actions", "false_promotion_085", "rate", "≤ 0.5%"),
        ("False promotion, true rate 0.90, within 1,000 actions", "false_promotion_090", "rate", "≤ 5%"),
        ("Time to earn one rung, true rate 0.99: median", "time_to_earn_099", "median", f"≤ {TARGET_EARN_MEDIAN}"),
        ("Time to earn one rung, true rate 0.99: p90", "time_to_earn_099", "p90", "—"),
        ("Time to demote, drift to 0.70: median", "time_to_demote_070", "median", f"≤ {TARGET_DEMOTE_MEDIAN}"),
        ("Time to demote, drift to 0.70: p90", "time_to_demote_070", "p90", f"≤ {TARGET_DEMOTE_P90}"),
        ("False demotion, steady 0.99, within 1,000 actions", "false_demotion_099", "rate", "≤ 3%"),
    )
    for title, figure, stat, target in lines:
        cells: list[str] = []
        for rule in ("ratchet", "naive"):
            fig = report["rules"][rule].get(figure)
            cells.append(fmt_proportion(fig) if stat == "rate" else fmt_quantile(fig, stat))
            cells.append(_mark(_find(report["targets"][rule], figure, stat)))
        rows.append(f"| {title} | {target} | {' | '.join(cells)} |")
    return "\n".join(rows)


def alternatives_table(report: dict[str, Any]) -> str:
    """The trade-off table: the defaults and each alternative setting, one knob moved."""
    rows = [
        "| Setting | False promotion 0.85 | False promotion 0.90 | Earn 0.99 median / p90 | "
        "Demote 0.70 median / p90 | False demotion 0.99 |",
        "|---|---|---|---|---|---|",
    ]
    entries = [("defaults", report["rules"]["ratchet"]), *((a["label"], a["figures"]) for a in report["alternatives"])]
    for label, figs in entries:
        earn, drop = figs.get("time_to_earn_099"), figs.get("time_to_demote_070")
        earn_cell = f"{_num(earn['median'], earn['cap'])} / {_num(earn['p90'], earn['cap'])}" if earn else "—"
        drop_cell = f"{_num(drop['median'], drop['cap'])} / {_num(drop['p90'], drop['cap'])}" if drop else "—"
        rows.append(
            f"| {label} | {fmt_proportion(figs.get('false_promotion_085'))} | "
            f"{fmt_proportion(figs.get('false_promotion_090'))} | {earn_cell} | {drop_cell} | "
            f"{fmt_proportion(figs.get('false_demotion_099'))} |"
        )
    return "\n".join(rows)


def candidates_table(report: dict[str, Any]) -> str:
    """The demotion detectors compared, against the goal; the promotion figures are the defaults' (the
    promotion rule is the same in every row)."""
    rows = [
        f"| Detector | False demotion 0.99, 1,000 actions (≤ {_pct(TARGET_FALSE_DEMOTION)}) | "
        f"Demote 0.70 median (≤ {TARGET_DEMOTE_MEDIAN}) | Demote 0.70 p90 (≤ {TARGET_DEMOTE_P90}) | "
        "False promotion 0.85 / 0.90 | Earn 0.99 median | Goal |",
        "|---|---|---|---|---|---|---|",
    ]
    base = report["rules"]["ratchet"]
    fp85, fp90, earn = (base.get(k) for k in ("false_promotion_085", "false_promotion_090", "time_to_earn_099"))
    promo = f"{_pct(fp85['rate']) if fp85 else '—'} / {_pct(fp90['rate']) if fp90 else '—'}"
    earned = _num(earn["median"], earn["cap"]) if earn else "—"
    for cand in report.get("candidates", []):
        figs = cand["figures"]
        fd, drop = figs.get("false_demotion_099"), figs.get("time_to_demote_070")
        if fd is None or drop is None:
            continue
        med, p90 = drop["median"], drop["p90"]
        met = (
            fd["rate"] <= TARGET_FALSE_DEMOTION
            and med is not None
            and med <= TARGET_DEMOTE_MEDIAN
            and p90 is not None
            and p90 <= TARGET_DEMOTE_P90
        )
        rows.append(
            f"| {cand['label']} | {fmt_proportion(fd)} | {fmt_quantile(drop, 'median')} | "
            f"{fmt_quantile(drop, 'p90')} | {promo} | {earned} | {'✓' if met else '✗'} |"
        )
    return "\n".join(rows)


def target_lines(report: dict[str, Any]) -> list[str]:
    """One ✓/✗ line per target for the default ratchet."""
    names = {
        ("false_promotion_085", "rate"): "false promotion at 0.85",
        ("false_promotion_090", "rate"): "false promotion at 0.90",
        ("time_to_earn_099", "median"): "time to earn at 0.99 (median)",
        ("time_to_demote_070", "median"): "time to demote at 0.70 (median)",
        ("time_to_demote_070", "p90"): "time to demote at 0.70 (p90)",
        ("false_demotion_099", "rate"): "false demotion of a steady 0.99 class",
    }
    lines = []
    for check in report["targets"]["ratchet"]:
        name = names[(check["figure"], check["statistic"])]
        if check["statistic"] == "rate":
            value = f"{_pct(check['value'])} (95% CI {_pct(check['ci95'][0])}–{_pct(check['ci95'][1])})"
            target = f"≤ {_pct(check['target'])}"
        else:
            value = _num(check["value"], HORIZON)
            target = f"≤ {check['target']}"
        settled = "" if check["conclusive"] else " — the 95% interval straddles the target"
        lines.append(f"- {'✓' if check['met'] else '✗'} {name}: {value}, target {target}{settled}")
    return lines


def exact_line(report: dict[str, Any]) -> str:
    """The exact cross-check of the time-to-demote figures, as one sentence."""
    exact = report["exact_check"]
    default = exact["default"]
    cdf = ", ".join(f"P(T ≤ {t}) = {p:.3f}" for t, p in default["cdf"].items())
    others = "; ".join(
        f"{label}: {e['median']} / {e['p90']}" for label, e in exact.items() if label not in ("what", "default")
    )
    return (
        f"Cross-check ({exact['what']}): defaults median {default['median']}, p90 {default['p90']} ({cdf})"
        + (f"; {others}" if others else "")
        + "."
    )


def render_markdown(report: dict[str, Any], command: str) -> str:
    """The Markdown report written to calibration.md and printed."""
    cfg = report["config"]
    params = ", ".join(f"{k}={v}" for k, v in report["default_params"].items())
    trial_counts = ", ".join(
        f"{figure} {n['default_and_naive']} / {n['each_alternative']}" for figure, n in cfg["trials_per_figure"].items()
    )
    return "\n".join(
        [
            "# Ratchet trust calibration",
            "",
            f"Command: `{command}`  ",
            f"Runtime: {report['runtime_s']:.1f} s on {cfg['workers']} worker(s), Python {report['python']}, "
            f"seed {cfg['seed']}.  ",
            f"Trials per figure (defaults and naive / each alternative): {trial_counts}.  ",
            f"Defaults: {params}.",
            "",
            "Rates: estimate [95% Wilson interval] (events/trials). Times: nearest-rank quantile in actions "
            "[approximate 95% order-statistic interval]; `>1000` means some trials never moved.",
            "",
            main_table(report),
            "",
            "## Targets (ratchet, defaults)",
            "",
            *target_lines(report),
            "",
            "## Demotion detectors compared",
            "",
            "Each row sees the same outcomes. The promotion rule is the module's in every row, so the false",
            "promotion and time-to-earn columns repeat the defaults' figures. Probation applies in the held",
            "scenario (a freshly promoted class); the no-probation row is also the figure for a drift that",
            "starts after probation was served.",
            "",
            candidates_table(report),
            "",
            "## Trade-off: one parameter moved from the defaults",
            "",
            alternatives_table(report),
            "",
            exact_line(report),
            "",
            f"Naive rule: {report['naive_rule']}.  ",
            f"Scenarios: climb = {report['scenarios']['climb']}; held = {report['scenarios']['held']}.",
            "",
        ]
    )


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"trials per headline false-promotion estimate (default {DEFAULT_TRIALS}; other counts scale from it)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"base seed (default {DEFAULT_SEED})")
    parser.add_argument("--quick", action="store_true", help=f"a fast smoke run ({QUICK_TRIALS} trials)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (default: 2, or 1 on a single core)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where calibration.json/.md go")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the targets, write the JSON and Markdown reports."""
    args = parse_args(argv)
    trials = args.trials if args.trials is not None else (QUICK_TRIALS if args.quick else DEFAULT_TRIALS)
    config = Config.scaled(trials, seed=args.seed, workers=max(args.workers, 1))
    shown = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join([".venv/bin/python", "bench/calibration.py", *shown])
    provenance = stamp(command)  # the checkout as it is when the run starts: what gets measured
    report = run(config)
    report["command"] = command
    report["provenance"] = provenance
    markdown = render_markdown(report, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "calibration.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"wrote {args.out / 'calibration.json'} and {args.out / 'calibration.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
