"""The delegated reviewer's benchmark (bench/reviewer.py) at toy scale: its machinery, in seconds.

The bench drives the product's settle rule with simulated people and reviewers. These tests check that its
one shortcut (`observe`) decides exactly as `settle` does, that its authority rule has the bounds the issue
states, and, on a few short seeded streams, facts the figures rest on: an untracked reviewer runs more bad
actions than a tracked one, a 70%-agreement reviewer gains authority under the bound alone but never with
the agreement bar, and pooling lets a reviewer good on docs approve source only when a class is judged on
the pooled record alone.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import reviewer as rb  # noqa: E402

from ratchet.policy.levels import Level  # noqa: E402
from ratchet.rules.settle import Observed, Standing, settle  # noqa: E402

HORIZON = 3_000


@pytest.fixture(scope="module")
def mix() -> tuple[list[Any], list[float], list[float]]:
    return rb.mix_classes()


def test_observe_decides_exactly_as_settle(mix: tuple[list[Any], list[float], list[float]]) -> None:
    """The bench's shortcut for successes that cannot move a class leaves every standing as settle would."""
    classes, _, _ = mix
    moves = 0
    for cls in classes:
        if cls.ceiling == Level.BLOCKED:
            continue
        rng = random.Random(cls.name)
        fast = slow = Standing(cls.start)
        for action in range(600):
            ok = rng.random() < (0.97 if action % 200 < 150 else 0.6)  # stretches of quality and of drift
            fast = rb.observe(cls, fast, action, ok)
            before = slow.level
            slow = settle(cls, slow, Observed(action, ok)).standing
            moves += slow.level != before
            assert (fast.level, fast.window, fast.probation) == (slow.level, slow.window, slow.probation), (
                cls.name,
                action,
            )
    assert moves > 20  # the streams promote and demote: the comparison covers moves, not only steady state


def test_the_authority_rule_has_the_issues_bounds() -> None:
    rule = rb.AuthorityRule()  # threshold 0.10, 40 approvals
    assert not rb.holds(rb.Tally(approvals=39), None, rule)  # too few approvals
    assert rb.holds(rb.Tally(approvals=40), None, rule)  # 0 of 40: upper bound 8.8% < 10%
    assert not rb.holds(rb.Tally(approvals=40, false_accepts=1), None, rule)  # 1 of 40: 12.9%
    assert rb.holds(rb.Tally(approvals=60, false_accepts=1), None, rule)  # 1 of 60: 8.9%
    assert rb.revoked(rb.Tally(approvals=60, false_accepts=2), rule)  # 2 of 60: 11.4%, lost
    assert not rb.revoked(rb.Tally(approvals=400, false_accepts=2), rule)  # 2 of 400: 1.8%, kept
    guarded = rb.RULES["guarded"]
    shadow = rb.Tally(approvals=60, shadow=60, shadow_agree=42)  # 70% agreement, no false accept
    assert rb.holds(shadow, None, rule) and not rb.holds(shadow, None, guarded)
    assert rb.revoked(rb.Tally(approvals=100, checked=[False] * 17 + [True] * 3), guarded)


def _stream(mix: tuple[list[Any], list[float], list[float]], trial: int) -> rb.Stream:
    _, shares, bads = mix
    return rb.make_stream(7, trial, shares, bads, HORIZON, rb.Person().notice_lag)


def test_an_untracked_reviewer_runs_more_bad_actions_than_a_tracked_one(
    mix: tuple[list[Any], list[float], list[float]],
) -> None:
    classes, _, _ = mix
    person, k = rb.Person(), len(classes)
    untracked = tracked = without = 0
    for trial in range(2):
        stream = _stream(mix, trial)
        untracked += sum(rb.run_arm("b", stream, classes, person, [rb.STRESS] * k, rb.RULES["issue"]).bad_runs)
        c = rb.run_arm("c", stream, classes, person, [rb.STRESS] * k, rb.RULES["issue"])
        tracked += sum(c.bad_runs)
        a = rb.run_arm("a", stream, classes, person, [rb.STRESS] * k, rb.RULES["issue"])
        without += sum(a.bad_runs)
        assert sum(a.reviewer_runs) == 0 and sum(c.reviewer_runs) > 0
        assert sum(c.prompts) < sum(a.prompts)  # the reviewer saves prompts...
    assert untracked > tracked  # ...and the tracked one runs fewer bad actions than one deciding everything


def test_a_70_percent_reviewer_gains_authority_only_without_the_agreement_bar(
    mix: tuple[list[Any], list[float], list[float]],
) -> None:
    classes, _, _ = mix
    person, k = rb.Person(), len(classes)
    for trial in range(3):
        stream = _stream(mix, trial)
        guarded = rb.run_arm("c", stream, classes, person, [rb.SEVENTY] * k, rb.RULES["guarded"], stop_at_gain=True)
        assert guarded.gains == {}
        assert sum(guarded.reviewer_runs) == 0
    issue = rb.run_arm("c", _stream(mix, 0), classes, person, [rb.SEVENTY] * k, rb.RULES["issue"], stop_at_gain=True)
    assert issue.gains  # the bound alone admits it: a finding the report states, not a success


def test_pooling_lets_docs_vouch_for_source_only_when_judged_on_the_pool_alone() -> None:
    classes = rb.pool_classes()
    person = rb.Person()
    reviewers = [rb.GOOD_DOCS, rb.SEVENTY]  # 99% on docs, 70% on source
    pooled_alone = pooled = 0
    for trial in range(3):
        stream = rb.make_stream(3, trial, rb.POOL_SHARES, [0.01, 0.01], 1_500, person.notice_lag)
        alone = rb.run_arm("c", stream, classes, person, reviewers, rb.RULES["guarded, pooled alone"])
        mine = rb.run_arm("c", stream, classes, person, reviewers, rb.RULES["guarded, pooled"])
        pooled_alone += "source-write" in alone.gains
        pooled += "source-write" in mine.gains
        assert "docs-write" in mine.gains  # docs earns its own authority either way
    assert pooled == 0
    assert pooled_alone == 3


def test_a_small_run_reports_every_figure_and_ends_with_the_ratio() -> None:
    config = rb.Config(
        trials=2, workers=1, horizon=2_000, seventy_trials=2, drift_trials=2, pool_trials=2, sensitivity_trials=2
    )
    report = rb.run(config)
    report["command"] = "test"
    markdown = rb.render_markdown(report)
    main = report["figures"]["main"]
    assert set(main) >= {key for key, *_ in rb.ROWS}
    assert main["b"]["second"]["prompts"]["mean"] == 0.0  # the untracked reviewer never asks anyone
    assert main["a"]["second"]["reviewer_runs"]["mean"] == 0.0
    targets = [t["target"] for t in report["targets"]]
    assert "(c) asks a person >= 5x less than (a), actions 5,001-10,000" in targets
    assert sum(t.startswith("a 70%-agreement reviewer gains authority") for t in targets) == 2
    assert sum(t.startswith("a reviewer drifting") for t in targets) == 4
    last = markdown.rstrip().splitlines()[-1]
    assert re.match(r"^\d+\.\d× fewer human prompts", last), last
    assert "## What these figures prove, and what they do not" in markdown


def test_the_bench_rule_decides_as_the_products_where_the_product_has_one(
    mix: tuple[list[Any], list[float], list[float]],
) -> None:
    """`--product-rule` swaps in ratchet.rules.reviewer's authority rule: the bench's restatement must decide
    every tally, and a whole arm, exactly as it does."""
    from ratchet.rules import reviewer as product

    assert all(hasattr(product, name) for name in ("Tally", "authority", "revoked_by_audit"))
    mine, theirs = rb.AuthorityRule(), rb.AuthorityRule(product=True)
    for approvals in range(0, 161):
        for false_accepts in range(0, min(approvals, 25) + 1):
            tally = rb.Tally(approvals=approvals, false_accepts=false_accepts)
            assert rb.holds(tally, None, mine) == rb.holds(tally, None, theirs), (approvals, false_accepts)
            assert rb.revoked(tally, mine) == rb.revoked(tally, theirs), (approvals, false_accepts)
    classes, _, _ = mix
    stream, k = _stream(mix, 0), len(classes)
    ours = rb.run_arm("c", stream, classes, rb.Person(), [rb.VENDOR] * k, mine)
    assert ours == rb.run_arm("c", stream, classes, rb.Person(), [rb.VENDOR] * k, theirs)
