"""The delegated reviewer, simulated: human prompts and bad actions run, with and without a tracked reviewer.

`python -m bench.reviewer [--trials N] [--quick] [--workers W] [--seed S] [--out DIR]`

A stream of 10,000 agent actions is drawn from a mix of every starter class (the ones whose ceiling is
below `autonomous` included, in the shares of `MIX`), each action good or bad (bad: a careful person would
reject it). The classes are the starter policies' own (`ratchet.policy.load.starter_policy_dir`): their
start, floor, ceiling, trust parameters and CLI-only flags, and every move of a class goes through the
product's settle rule (`ratchet.rules.settle.settle`, the same call the live record makes), as
bench/calibration.py drives the trust rule. A simulated person answers prompts (reads with probability
`reading`, an unread approval is unverified: it runs but is no sample; when reading, right with probability
`accuracy`) and complains about a share of the bad actions that ran, some actions later. A simulated
reviewer gives a verdict on every action a person decides (approve, deny or unsure): it accepts a bad action
with probability `false_accept` and rejects a good one with probability `false_reject`, and with
probability `correlation` its error shares the person's dice (it errs where the person errs).

Arms, on the same streams (common random numbers: the arms' differences are the rules', not the dice's):

(a) Ratchet without a reviewer: a person answers every confirm and draft call; classes climb on the
    person's answers.
(b) A reviewer deciding everything from the start, untracked (the vendors' model): every call that is not
    autonomous or blocked is the reviewer's alone (CLI-only classes too: that model has no such notion);
    a denial is a dead end. Classes stay at their start.
(c) Ratchet with the tracked reviewer: it shadows every person's decision; per class it gains authority by
    `holds` and loses it by `revoked` or a complaint (the rule below). With authority, a confirm call it
    approves runs without a prompt, except a share `audit_share` that still goes to the person (an audit,
    a person's answer for the class and for the reviewer's score). Its denials and `unsure` go to the
    person. Only a person's answers are samples: the reviewer's approvals run work but never promote.
(d) As (c), but the reviewer-approved, uncomplained outcomes count toward promotion (a success sample each,
    flipped by a later complaint): measured, not adopted (see the report's argument).

The authority rule (`AuthorityRule`, `holds`, `revoked`) is a small pure function of counts, as the issue
states it: authority while the upper 95% Wilson bound of the false-accept rate (false accepts among the
reviewer's approvals set beside a person's counted answer, since the class's last revocation) is below
`threshold` over at least `min_samples` approvals; lost at once by a complaint about an action it let run,
or by disagreement that lifts that bound to the threshold. It mirrors `ratchet.rules.reviewer.authority`
and `revoked_by_audit`: `--product-rule` decides the issue's rule with those instead, where the product has
them (tests/test_bench_reviewer.py checks both decide alike). Two options, off in the
issue's rule, are measured as variants: an agreement bar (the lower bound of agreement on the class's own
shadow answers) and a span rule on the verdicts a person checks while the reviewer holds authority.

Reported, with 95% intervals over trials: human prompts and bad actions run per 1,000 actions over actions
1-5,000 and 5,001-10,000 for each arm; the ratio of (a)'s prompts to (c)'s; the share of trials in which a
reviewer at 70% agreement gains authority anywhere; audited decisions until a reviewer that drifts loses
authority; and whether pooling across classes lets a reviewer good on docs approve source.

A speed-up that changes nothing: a success sample cannot demote a class (it lowers every span's failure
count and the drift detector), and it cannot promote one at its ceiling or whose window stays below the
promotion bar, so there the bench adds it to the window exactly as `settle` would (`observe`);
tests/test_bench_reviewer.py checks both paths give the same standings. Everything else is `settle`.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench.calibration import durations, proportion
from bench.provenance import stamp
from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy, starter_policy_dir
from ratchet.policy.model import ActionClass, TrustParams
from ratchet.rules.settle import Complained, Observed, Standing, settle
from ratchet.rules.trust import Sample, Window, add_sample, wilson_bounds

Arm = Literal["a", "b", "c", "d"]
ARMS: tuple[Arm, ...] = ("a", "b", "c", "d")
ARM_NAMES = {
    "a": "(a) Ratchet, no reviewer",
    "b": "(b) reviewer decides all, untracked",
    "c": "(c) Ratchet + tracked reviewer",
    "d": "(d) as (c), reviewer approvals promote",
}
APPROVE, DENY, UNSURE = "approve", "deny", "unsure"
SHADOWED, LET_RUN = 1, 2  # the reviewer's part in an action someone may complain about

HORIZON = 10_000
CHUNK = 10  # trials per task, fixed so results do not depend on --workers
DEFAULT_TRIALS = 24
QUICK_TRIALS = 6
DEFAULT_SEED = 29
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Targets from the issue.
TARGET_RATIO = 5.0  # (a)'s prompts over (c)'s, actions 5,001-10,000
TARGET_BAD_MARGIN = 1.0  # (c)'s bad actions run at most (a)'s plus this, per 1,000 actions, 5,001-10,000
TARGET_SEVENTY = 0.01  # share of trials in which a 70%-agreement reviewer gains authority
TARGET_DRIFT_MEDIAN = 20  # audited decisions until a drifting reviewer loses authority (median)

# The mix: (class, share of actions, share of its calls a careful person would reject). Reads dominate an
# agent's calls; writes to source and tests next; the risky commands are rarer and worse. The promotable
# classes are good enough to climb (a person rejects about 1 in 100); some classes whose ceiling is confirm
# are not (2-3 in 100: the trust rule keeps them at draft, as it should), so the reviewer never acts there.
MIX: tuple[tuple[str, float, float], ...] = (
    ("read-only-run", 0.22, 0.002),
    ("git-read", 0.05, 0.001),
    ("tests-run", 0.12, 0.005),
    ("lint-format-run", 0.05, 0.005),
    ("build-run", 0.04, 0.01),
    ("source-write", 0.16, 0.01),
    ("tests-write", 0.06, 0.01),
    ("docs-write", 0.04, 0.01),
    ("git-commit", 0.04, 0.01),
    ("push-branch", 0.015, 0.01),
    ("push-protected", 0.005, 0.02),
    ("package-install", 0.03, 0.015),
    ("file-delete", 0.03, 0.01),
    ("network-run", 0.03, 0.02),
    ("git-via-shell", 0.03, 0.01),
    ("command-other", 0.06, 0.02),
    ("build-config-write", 0.02, 0.01),
    ("ci-config-write", 0.005, 0.02),
    ("agent-config-write", 0.005, 0.02),
    ("secrets-write", 0.003, 0.5),
    ("push-force", 0.002, 0.5),
)


# --------------------------------------------------------------------------------------------------
# People and reviewers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """The person who answers prompts and complains about what went wrong."""

    accuracy: float = 0.99  # right when reading (approves a good call, rejects a bad one)
    reading: float = 0.90  # reads the change; otherwise approves unread (unverified: runs, no sample)
    notice: float = 0.5  # share of the bad actions that ran that someone complains about...
    notice_lag: float = 50.0  # ...this many actions later, on average (geometric)


@dataclass(frozen=True)
class Reviewer:
    """A simulated reviewer: its error rates on bad and good calls, its correlation with the person."""

    name: str
    false_accept: float  # P(approve | bad)
    false_reject: float  # P(deny | good)
    correlation: float = 0.3  # P(its error draw is the person's own)
    unsure: float = 0.01  # P(unsure), whatever the call

    @classmethod
    def of(cls, name: str, accuracy: float, bias: float, **kw: Any) -> Reviewer:
        """From an accuracy and an approval bias in [-1, 1]: errors on bad calls (1 - accuracy) * (1 + bias),
        on good calls (1 - accuracy) * (1 - bias)."""
        miss = 1.0 - accuracy
        return cls(name, min(1.0, miss * (1 + bias)), max(0.0, miss * (1 - bias)), **kw)


# The vendor's own figures (17% of over-eager actions let through, 0.4% of safe ones blocked); the
# independent stress test's (81% let through); a reviewer at 70% agreement (errs 30% either way).
VENDOR = Reviewer("vendor-reported (accepts 17% of bad, rejects 0.4% of good)", 0.17, 0.004)
STRESS = Reviewer("stress-tested (accepts 81% of bad, rejects 0.4% of good)", 0.81, 0.004)
SEVENTY = Reviewer.of("70% agreement (errs 30% either way)", 0.70, 0.0)
GOOD_DOCS = Reviewer("99% on docs", 0.01, 0.01)


def review(rev: Reviewer, bad: bool, u_person: float, u_corr: float, u_own: float, u_unsure: float) -> str:
    """The reviewer's verdict on one call. With probability `correlation` it draws its error from the
    person's own uniform (so it errs where the person errs), else from its own."""
    if u_unsure < rev.unsure:
        return UNSURE
    u = u_person if u_corr < rev.correlation else u_own
    wrong = u < (rev.false_accept if bad else rev.false_reject)
    return APPROVE if bad == wrong else DENY


def answer(person: Person, bad: bool, u_read: float, u_person: float) -> tuple[bool, bool]:
    """The person's answer: (approved, counted). An unread approval runs but is no evidence."""
    if u_read >= person.reading:
        return True, False
    wrong = u_person < 1.0 - person.accuracy
    return bad == wrong, True


# --------------------------------------------------------------------------------------------------
# The authority rule: pure, swappable for ratchet.rules.reviewer's when comparing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorityRule:
    """When a class's reviewer holds authority. The defaults are the issue's rule with the product's
    defaults (threshold 0.10, 40 approvals, 1 in 10 audited); the last four fields are variants."""

    threshold: float = 0.10
    min_samples: int = 40
    audit_share: float = 0.1
    # Variant: gain also needs the lower 95% bound of agreement on the class's own shadow answers >= this.
    agreement_at: float | None = None
    # Variant: revoke when the last `span[1]` verdicts a person checked while it held authority (audited
    # approvals, and denials the person answered) hold at least `span[0]` disagreements.
    span: tuple[int, int] | None = None
    # Pooling: borrow up to `pool_weight` approvals at the other classes' pooled false-accept rate, once
    # the class has `own_min` approvals of its own (0: no pooling). `pooled_only`: the naive rule that
    # judges a class by the pooled tally alone (the pooling demonstration's foil).
    pool_weight: int = 0
    own_min: int = 20
    pooled_only: bool = False
    # The product's own rule (`ratchet.rules.reviewer.authority` and `revoked_by_audit`) in place of this
    # bench's restatement, for the rule only (no variant): `--product-rule`.
    product: bool = False


@dataclass
class Tally:
    """A class's reviewer record since its last revocation: verdicts beside a person's counted answer."""

    approvals: int = 0
    false_accepts: int = 0
    shadow: int = 0  # verdicts given while it held no authority (unselected: what agreement is judged on)
    shadow_agree: int = 0
    checked: list[bool] = field(default_factory=list)  # disagreements, in order, while holding authority


def upper(k: float, n: float) -> float:
    """The upper 95% Wilson bound of k in n (1.0 without samples)."""
    return wilson_bounds(k, n)[1] if n > 0 else 1.0  # type: ignore[arg-type]  # pooled counts are fractional


def holds(own: Tally, others: Tally | None, rule: AuthorityRule) -> bool:
    """Whether the class's reviewer gains authority: enough approvals and the false-accept bound below the
    threshold (with the variants' conditions where the rule turns them on). `others`: every other class's
    record, all time (used only by the pooling options)."""
    if rule.product:
        module = product_rules()
        return bool(module.authority(product_tally(own), rule.threshold, rule.min_samples).holds)
    k: float = own.false_accepts
    n: float = own.approvals
    agree, shadow = own.shadow_agree, own.shadow
    if rule.pooled_only and others is not None:
        k, n = k + others.false_accepts, n + others.approvals
        agree, shadow = agree + others.shadow_agree, shadow + others.shadow
    elif rule.pool_weight and others is not None and others.approvals:
        if own.approvals < rule.own_min:
            return False
        m = min(rule.pool_weight, others.approvals)
        k, n = k + m * others.false_accepts / others.approvals, n + m
    if n < rule.min_samples or upper(k, n) >= rule.threshold:
        return False
    if rule.agreement_at is not None:
        return shadow > 0 and wilson_bounds(agree, shadow)[0] >= rule.agreement_at
    return True


def revoked(own: Tally, rule: AuthorityRule) -> bool:
    """Whether disagreement takes a held authority away: the false-accept bound lifted to the threshold by
    a false accept (the issue's rule), or the span variant's disagreements among checked verdicts."""
    if rule.product:
        return bool(product_rules().revoked_by_audit(product_tally(own), rule.threshold))
    if own.false_accepts > 0 and upper(own.false_accepts, own.approvals) >= rule.threshold:
        return True
    if rule.span is not None:
        k, m = rule.span
        return sum(own.checked[-m:]) >= k
    return False


def product_rules() -> Any:
    """The product's reviewer rules module; a clear exit when the product has none yet."""
    try:
        from ratchet.rules import reviewer  # type: ignore[attr-defined,unused-ignore]  # not in every checkout
    except ImportError:
        raise SystemExit(
            "--product-rule: this checkout has no ratchet.rules.reviewer (the product's authority rule); "
            "run without it to use the bench's restatement of the issue's rule"
        ) from None
    missing = [name for name in ("Tally", "authority", "revoked_by_audit") if not hasattr(reviewer, name)]
    if missing:
        raise SystemExit(f"--product-rule: ratchet.rules.reviewer has no {', '.join(missing)}")
    return reviewer


def product_tally(own: Tally) -> Any:
    """The bench's tally as the product counts it: approvals beside a person's answer, false accepts among them."""
    return product_rules().Tally(
        n=own.approvals,
        agree=own.approvals - own.false_accepts,
        approvals=own.approvals,
        false_accepts=own.false_accepts,
    )


# --------------------------------------------------------------------------------------------------
# The stream and one arm over it
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One trial's actions: the class index and every uniform an arm may draw, shared by all arms."""

    cls: list[int]
    bad: list[bool]
    u: list[tuple[float, float, float, float, float, float, float]]  # read, person, corr, own, unsure, audit, notice
    lag: list[int]


def make_stream(seed: int, trial: int, shares: Sequence[float], bads: Sequence[float], n: int, lag: float) -> Stream:
    """The seeded stream of one trial (the same whatever the arm, rule or reviewer)."""
    rng = random.Random(f"ratchet-reviewer/{seed}/{trial}")
    cum = []
    total = 0.0
    for s in shares:
        total += s
        cum.append(total)
    cls, bad, us, lags = [], [], [], []
    q = 1.0 / lag
    for _ in range(n):
        i = min(bisect.bisect_right(cum, rng.random() * total), len(shares) - 1)
        cls.append(i)
        bad.append(rng.random() < bads[i])
        r = rng.random
        us.append((r(), r(), r(), r(), r(), r(), r()))
        lags.append(1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - q)))
    return Stream(cls, bad, us, lags)


def observe(cls: ActionClass, standing: Standing, action_id: int, ok: bool) -> Standing:
    """The standing after one sample: `settle` itself, except for a success that cannot move the class (at
    its ceiling, or with a window whose lower bound stays below `promote_at`), which joins the window as
    settle would add it (the speed-up the module describes)."""
    if ok and standing.pinned is None:
        window = add_sample(standing.window, Sample(action_id, True), cls.trust)
        if standing.level >= cls.ceiling or not may_promote(window, cls.trust):
            return Standing(standing.level, window, None, max(standing.probation - 1, 0))
    return settle(cls, standing, Observed(action_id, ok)).standing


def may_promote(window: Window, params: TrustParams) -> bool:
    """Whether the window meets the trust rule's promotion bar (rules/trust.py `judge`)."""
    n = len(window.samples)
    if n < params.min_samples:
        return False
    return wilson_bounds(sum(1 for s in window.samples if s.ok), n)[0] >= params.promote_at


@dataclass
class Counts:
    """What one arm did over one trial, per half (index 0: actions 1-5,000; 1: 5,001-10,000)."""

    prompts: list[int] = field(default_factory=lambda: [0, 0])
    bad_runs: list[int] = field(default_factory=lambda: [0, 0])
    reviewer_runs: list[int] = field(default_factory=lambda: [0, 0])
    gains: dict[str, int] = field(default_factory=dict)  # first gain of authority, per class: action
    revocations: int = 0
    complaint_revocations: int = 0
    class_prompts: dict[str, int] = field(default_factory=dict)  # second half, per class
    final_levels: dict[str, str] = field(default_factory=dict)
    # The drift scenario: per class that held authority when the reviewer drifted, the verdicts a person
    # checked there (audited approvals, and denials the person answered) and the audited approvals alone,
    # until it lost authority; `lost` False when it still held it at the end.
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def eligible_for_reviewer(cls: ActionClass) -> bool:
    """Whether the reviewer may ever decide this class's calls (never secrets, CLI-only or blocked)."""
    return not (cls.secret or cls.require_cli_approval or cls.ceiling == Level.BLOCKED)


def run_arm(
    arm: Arm,
    stream: Stream,
    classes: Sequence[ActionClass],
    person: Person,
    reviewers: Sequence[Reviewer],
    rule: AuthorityRule,
    drift: tuple[int, Sequence[Reviewer]] | None = None,
    stop_at_gain: bool = False,
) -> Counts:
    """One arm over one stream; `reviewers[i]` is the reviewer as class i meets it (`drift`: from action
    `drift[0]` on, `drift[1]` instead)."""
    n = len(stream.cls)
    half = n // 2
    standings = [Standing(c.start) for c in classes]
    allowed = [eligible_for_reviewer(c) for c in classes]
    tallies = [Tally() for _ in classes]
    epochs = [0] * len(classes)
    auth = [False] * len(classes)
    life = [Tally() for _ in classes]  # each class's record, all time (for pooling)
    use_pool = rule.pool_weight > 0 or rule.pooled_only
    # Complaints due: (due, action, class, the reviewer's part in it, epoch of its tally then); the part is
    # SHADOWED (its approval is in the tally as an agreement) or LET_RUN (it ran on its word), else 0.
    pending: list[tuple[int, int, int, int, int]] = []
    out = Counts()
    tracked = arm in ("c", "d")
    watched: dict[int, list[int]] = {}  # the drift scenario's classes: [checked, audits]

    def revoke(i: int, by_complaint: bool, t: int) -> None:
        auth[i] = False
        tallies[i] = Tally()
        epochs[i] += 1
        out.revocations += 1
        out.complaint_revocations += by_complaint
        if i in watched:
            checked, audits = watched.pop(i)
            lost = {"checked": checked, "audits": audits, "lost": True, "by_complaint": by_complaint}
            out.drift[classes[i].name] = lost

    def record(i: int, verdict: str, ok: bool, t: int, audit: bool) -> None:
        """A verdict set beside a person's counted answer: the reviewer's score, then its authority."""
        tally, whole = tallies[i], life[i]
        if verdict == APPROVE:
            tally.approvals += 1
            tally.false_accepts += not ok
            whole.approvals += 1
            whole.false_accepts += not ok
        if auth[i]:
            if verdict != UNSURE:
                tally.checked.append((verdict == APPROVE) != ok)
            if i in watched:
                watched[i][0] += 1
                watched[i][1] += audit
            if revoked(tally, rule):
                revoke(i, False, t)
            return
        agreed = verdict != UNSURE and (verdict == APPROVE) == ok
        tally.shadow += 1
        tally.shadow_agree += agreed
        whole.shadow += 1
        whole.shadow_agree += agreed
        others = None
        if use_pool:
            others = Tally(
                sum(x.approvals for x in life) - whole.approvals,
                sum(x.false_accepts for x in life) - whole.false_accepts,
                sum(x.shadow for x in life) - whole.shadow,
                sum(x.shadow_agree for x in life) - whole.shadow_agree,
            )
        if holds(tally, others, rule):
            auth[i] = True
            out.gains.setdefault(classes[i].name, t)

    for t in range(n):
        while pending and pending[0][0] <= t:
            _, aid, i, part, epoch = heapq.heappop(pending)
            if arm != "b":
                standings[i] = settle(classes[i], standings[i], Complained(aid)).standing
            if part == SHADOWED:  # it approved what the person approved: now a false accept
                life[i].false_accepts += 1
                if epoch == epochs[i]:
                    tallies[i].false_accepts += 1
                    if auth[i] and revoked(tallies[i], rule):
                        revoke(i, False, t)
            elif part == LET_RUN and auth[i]:  # it ran on the reviewer's word: authority goes at once
                revoke(i, True, t)
        if drift is not None and t >= drift[0]:
            if t == drift[0]:
                reviewers = drift[1]
                watched = {j: [0, 0] for j, a in enumerate(auth) if a}
            if not watched:
                break  # every class that held authority has lost it: the drift scenario is measured
        i = stream.cls[t]
        cls = classes[i]
        bad = stream.bad[t]
        u_read, u_person, u_corr, u_own, u_unsure, u_audit, u_notice = stream.u[t]
        w = 0 if t < half else 1
        level = cls.start if arm == "b" else standings[i].level
        if level == Level.BLOCKED:
            continue
        part = 0
        if level == Level.AUTONOMOUS:
            ran = True
            if arm != "b":
                standings[i] = observe(cls, standings[i], t, True)
        elif arm == "b":
            ran = review(reviewers[i], bad, u_person, u_corr, u_own, u_unsure) == APPROVE
            out.reviewer_runs[w] += ran
        else:
            verdict = UNSURE
            if tracked and allowed[i]:
                verdict = review(reviewers[i], bad, u_person, u_corr, u_own, u_unsure)
            with_authority = auth[i] and level == Level.CONFIRM
            if with_authority and verdict == APPROVE and u_audit >= rule.audit_share:
                ran, part = True, LET_RUN
                out.reviewer_runs[w] += 1
                if arm == "d":
                    standings[i] = observe(cls, standings[i], t, True)
            else:
                out.prompts[w] += 1
                if w:
                    out.class_prompts[cls.name] = out.class_prompts.get(cls.name, 0) + 1
                ran, counted = answer(person, bad, u_read, u_person)
                if counted:
                    if tracked and allowed[i]:
                        record(i, verdict, ran, t, with_authority and verdict == APPROVE)
                        if stop_at_gain and out.gains:
                            break
                        if ran and verdict == APPROVE:
                            part = SHADOWED
                    standings[i] = observe(cls, standings[i], t, ran)
        if ran and bad:
            out.bad_runs[w] += 1
            if u_notice < person.notice:
                heapq.heappush(pending, (t + stream.lag[t], t, i, part, epochs[i]))
    for j, (checked, audits) in watched.items():
        out.drift[classes[j].name] = {"checked": checked, "audits": audits, "lost": False, "by_complaint": False}
    out.final_levels = {c.name: s.level.label for c, s in zip(classes, standings, strict=True)}
    return out


# --------------------------------------------------------------------------------------------------
# The experiments
# --------------------------------------------------------------------------------------------------

# The rules compared. "issue": the rule with the product's defaults. "pooled": the same with the
# false-accept bound pooled across classes (up to 40 approvals borrowed, 10 of the class's own first).
# "guarded": the rule plus an agreement bar for gaining (lower bound >= 0.85 on the class's own
# shadow answers) and a span rule for losing (3 disagreements among the last 20 verdicts a person checked).
RULES: dict[str, AuthorityRule] = {
    "issue": AuthorityRule(),
    "pooled": AuthorityRule(pool_weight=40, own_min=10),
    "guarded": AuthorityRule(agreement_at=0.85, span=(3, 20)),
    "guarded, pooled": AuthorityRule(agreement_at=0.85, span=(3, 20), pool_weight=40, own_min=10),
    "pooled alone": AuthorityRule(pooled_only=True),
    "guarded, pooled alone": AuthorityRule(agreement_at=0.85, span=(3, 20), pooled_only=True),
}
PERSONAS: dict[str, Reviewer] = {"vendor": VENDOR, "stress": STRESS, "seventy": SEVENTY}
# Drifts, halfway through a trial: from the vendor-reported reviewer to one at 70% agreement, or to a rubber
# stamp that accepts 90% of bad calls (and still rejects 0.4% of good ones).
RUBBER = Reviewer("rubber stamp (accepts 90% of bad, rejects 0.4% of good)", 0.90, 0.004)
DRIFTS: dict[str, Reviewer] = {"to 70% agreement": SEVENTY, "to a rubber stamp": RUBBER}

# The main experiment's rows: (key, arm, persona, rule).
ROWS: tuple[tuple[str, Arm, str, str], ...] = (
    ("a", "a", "vendor", "issue"),
    ("b", "b", "vendor", "issue"),
    ("c", "c", "vendor", "issue"),
    ("d", "d", "vendor", "issue"),
    ("c pooled", "c", "vendor", "pooled"),
    ("c guarded", "c", "vendor", "guarded"),
    ("b stress", "b", "stress", "issue"),
    ("c stress", "c", "stress", "issue"),
    ("d stress", "d", "stress", "issue"),
    ("c stress guarded", "c", "stress", "guarded"),
    ("b seventy", "b", "seventy", "issue"),
    ("c seventy", "c", "seventy", "issue"),
    ("c seventy guarded", "c", "seventy", "guarded"),
)
POOL_RULES = ("issue", "pooled", "pooled alone", "guarded", "guarded, pooled", "guarded, pooled alone")
POOL_HORIZON = 2_000
POOL_SHARES = [0.8, 0.2]  # docs-write, source-write: docs' record outweighs source's in any pooled figure

# Sensitivity: (a) and (c) with the vendor-reported reviewer under one assumption changed at a time.
SENSITIVITY: tuple[tuple[str, str], ...] = (
    ("as above", "the assumptions above"),
    ("complaints rarer", "the person complains about 20% of the bad actions that ran, not 50%"),
    ("classes at their ceiling", "every class starts at its ceiling (a team whose classes have climbed)"),
    ("audit 1 in 20", "audit share 0.05 instead of 0.1"),
    (
        "best case",
        "every class starts at its ceiling, a person rejects 0.2% of every unblocked class's calls, and "
        "complains about 20% of the bad ones that ran",
    ),
)


@dataclass(frozen=True)
class Config:
    """How much simulation to do; every count derives from `trials` (the main experiment's)."""

    trials: int = DEFAULT_TRIALS
    seed: int = DEFAULT_SEED
    workers: int = 2
    horizon: int = HORIZON
    seventy_trials: int = 10 * DEFAULT_TRIALS
    drift_trials: int = DEFAULT_TRIALS
    pool_trials: int = DEFAULT_TRIALS
    sensitivity_trials: int = DEFAULT_TRIALS // 2
    person: Person = field(default_factory=Person)
    product_rule: bool = False  # the rule as the product implements it (`AuthorityRule.product`)

    def rules(self) -> dict[str, AuthorityRule]:
        """The rules compared, with the product's own for "issue" when asked."""
        return {**RULES, "issue": AuthorityRule(product=True)} if self.product_rule else RULES

    @classmethod
    def scaled(cls, trials: int, seed: int = DEFAULT_SEED, workers: int = 2, product_rule: bool = False) -> Config:
        """A configuration whose counts derive from `trials`."""
        trials = max(trials, 1)
        sensitivity = max(trials // 2, 2)
        return cls(trials, seed, workers, HORIZON, 10 * trials, trials, trials, sensitivity, Person(), product_rule)


@dataclass(frozen=True)
class Task:
    """One chunk of trials of one experiment, shippable to a worker process."""

    experiment: Literal["main", "seventy", "drift", "pool", "sensitivity"]
    first: int
    count: int
    config: Config


def starter_classes() -> dict[str, ActionClass]:
    """The starter policies' classes, by name."""
    return dict(load_policy(starter_policy_dir()).classes)


def mix_classes() -> tuple[list[ActionClass], list[float], list[float]]:
    """The mix's classes (the starter policies' own), shares and bad rates."""
    found = starter_classes()
    missing = [name for name, _, _ in MIX if name not in found]
    if missing:
        raise SystemExit(f"the starter policies have no class {missing}: update bench/reviewer.py's MIX")
    return [found[name] for name, _, _ in MIX], [s for _, s, _ in MIX], [b for _, _, b in MIX]


def pool_classes() -> list[ActionClass]:
    """docs-write and source-write held at confirm (floor and ceiling), for the pooling demonstration."""
    found = starter_classes()
    return [
        replace(found[name], start=Level.CONFIRM, floor=Level.CONFIRM, ceiling=Level.CONFIRM)
        for name in ("docs-write", "source-write")
    ]


def run_task(task: Task) -> tuple[str, int, list[dict[str, Any]]]:
    """Run one chunk (in a worker process or inline)."""
    cfg = task.config
    rules = cfg.rules()
    out: list[dict[str, Any]] = []
    if task.experiment == "pool":
        classes = pool_classes()
        for trial in range(task.first, task.first + task.count):
            stream = make_stream(cfg.seed + 1, trial, POOL_SHARES, [0.01, 0.01], POOL_HORIZON, cfg.person.notice_lag)
            row: dict[str, Any] = {}
            for rule in POOL_RULES:
                split = run_arm("c", stream, classes, cfg.person, [GOOD_DOCS, SEVENTY], rules[rule])
                even = run_arm("c", stream, classes, cfg.person, [VENDOR, VENDOR], rules[rule])
                row[rule] = {"split": split.gains.get("source-write"), "even": even.gains.get("source-write")}
            out.append(row)
        return task.experiment, task.first, out
    classes, shares, bads = mix_classes()
    k = len(classes)
    for trial in range(task.first, task.first + task.count):
        stream = make_stream(cfg.seed, trial, shares, bads, cfg.horizon, cfg.person.notice_lag)
        row = {}
        if task.experiment == "main":
            for key, arm, persona, rule in ROWS:
                row[key] = run_arm(arm, stream, classes, cfg.person, [PERSONAS[persona]] * k, rules[rule]).as_dict()
        elif task.experiment == "sensitivity":
            for name, _ in SENSITIVITY:
                person, assumed, group, run_on = cfg.person, rules["issue"], classes, stream
                if name == "complaints rarer":
                    person = replace(person, notice=0.2)
                elif name == "classes at their ceiling":
                    group = [replace(c, start=c.ceiling) for c in classes]
                elif name == "audit 1 in 20":
                    assumed = replace(assumed, audit_share=0.05)
                elif name == "best case":
                    group = [replace(c, start=c.ceiling) for c in classes]
                    person = replace(person, notice=0.2)
                    best = [0.002 if b < 0.5 else b for b in bads]
                    run_on = make_stream(cfg.seed, trial, shares, best, cfg.horizon, person.notice_lag)
                for arm in ("a", "c"):
                    row[f"{name}|{arm}"] = run_arm(arm, run_on, group, person, [VENDOR] * k, assumed).as_dict()
        elif task.experiment == "seventy":
            for rule in ("issue", "guarded"):
                done = run_arm("c", stream, classes, cfg.person, [SEVENTY] * k, rules[rule], stop_at_gain=True)
                row[rule] = min(done.gains.values()) if done.gains else None
        else:
            for name, after in DRIFTS.items():
                for rule in ("issue", "guarded"):
                    drift = (cfg.horizon // 2, [after] * k)
                    done = run_arm("c", stream, classes, cfg.person, [VENDOR] * k, rules[rule], drift=drift)
                    row[f"{name}|{rule}"] = done.drift
        out.append(row)
    return task.experiment, task.first, out


def tasks_for(config: Config) -> list[Task]:
    """Every chunk of every experiment, the most expensive first (for two-worker balance)."""
    tasks = []
    for experiment, trials in (
        ("main", config.trials),
        ("drift", config.drift_trials),
        ("seventy", config.seventy_trials),
        ("pool", config.pool_trials),
        ("sensitivity", config.sensitivity_trials),
    ):
        for first in range(0, trials, CHUNK):
            tasks.append(Task(experiment, first, min(CHUNK, trials - first), config))  # type: ignore[arg-type]
    return tasks


def simulate(config: Config) -> dict[str, list[dict[str, Any]]]:
    """Run every chunk (over `config.workers` processes) and reassemble each experiment in trial order."""
    tasks = tasks_for(config)
    if config.workers > 1:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            done = list(pool.map(run_task, tasks, chunksize=1))
    else:
        done = [run_task(task) for task in tasks]
    pieces: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {}
    for experiment, first, rows in done:
        pieces.setdefault(experiment, []).append((first, rows))
    return {key: [r for _, chunk in sorted(parts, key=lambda p: p[0]) for r in chunk] for key, parts in pieces.items()}


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------

Z = 1.959963984540054


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """The mean over trials with a normal 95% interval."""
    n = len(values)
    mean = statistics.fmean(values)
    half = Z * statistics.stdev(values) / math.sqrt(n) if n > 1 else 0.0
    return {"mean": round(mean, 3), "ci95": [round(mean - half, 3), round(mean + half, 3)], "trials": n}


def ratio_ci(num: Sequence[float], den: Sequence[float], seed: int, resamples: int = 2_000) -> dict[str, Any]:
    """mean(num) / mean(den) with a paired percentile-bootstrap 95% interval over trials."""
    n = len(num)
    value = statistics.fmean(num) / statistics.fmean(den) if statistics.fmean(den) else math.inf
    rng = random.Random(f"ratchet-reviewer-bootstrap/{seed}")
    found = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        d = sum(den[j] for j in picks)
        found.append(sum(num[j] for j in picks) / d if d else math.inf)
    found.sort()
    low, high = found[int(0.025 * resamples)], found[min(int(0.975 * resamples), resamples - 1)]
    return {"ratio": round(value, 2), "ci95": [round(low, 2), round(high, 2)], "trials": n}


def per_1000(rows: Sequence[dict[str, Any]], key: str, field_: str, half: int, horizon: int) -> list[float]:
    """One figure per 1,000 actions of one half, per trial."""
    return [1000.0 * r[key][field_][half] / (horizon // 2) for r in rows]


def summarise_main(rows: list[dict[str, Any]], config: Config) -> dict[str, Any]:
    """Per row: prompts, bad actions run and reviewer runs per 1,000 actions, per half; ratios and
    differences against (a), paired over trials."""
    h = config.horizon
    out: dict[str, Any] = {}
    for key, arm, persona, rule in ROWS:
        fig: dict[str, Any] = {"arm": arm, "reviewer": PERSONAS[persona].name, "rule": rule}
        for half, label in ((0, "first"), (1, "second")):
            fig[label] = {
                "prompts": mean_ci(per_1000(rows, key, "prompts", half, h)),
                "bad_runs": mean_ci(per_1000(rows, key, "bad_runs", half, h)),
                "reviewer_runs": mean_ci(per_1000(rows, key, "reviewer_runs", half, h)),
            }
            if arm != "a":
                a_p, x_p = per_1000(rows, "a", "prompts", half, h), per_1000(rows, key, "prompts", half, h)
                a_b, x_b = per_1000(rows, "a", "bad_runs", half, h), per_1000(rows, key, "bad_runs", half, h)
                fig[label]["prompt_ratio"] = ratio_ci(a_p, x_p, config.seed + half) if any(x_p) else None
                fig[label]["bad_minus_a"] = mean_ci([x - y for x, y in zip(x_b, a_b, strict=True)])
        fig["revocations"] = mean_ci([float(r[key]["revocations"]) for r in rows])
        fig["complaint_revocations"] = mean_ci([float(r[key]["complaint_revocations"]) for r in rows])
        fig["classes_with_authority"] = mean_ci([float(len(r[key]["gains"])) for r in rows])
        out[key] = fig
    classes = [name for name, _, _ in MIX]
    out["class_prompts_second_half"] = {
        name: {k: round(statistics.fmean(r[k]["class_prompts"].get(name, 0) for r in rows), 1) for k in ("a", "c")}
        for name in classes
    }
    out["final_levels_c"] = {
        name: dict(sorted(_count(r["c"]["final_levels"][name] for r in rows).items())) for name in classes
    }
    return out


def _count(values: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for v in values:
        found[v] = found.get(v, 0) + 1
    return found


def summarise_drift(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per drift and rule: audited decisions (and checked verdicts) until a class that held authority when
    the reviewer drifted loses it, over every (trial, class); censored where it never did."""
    out: dict[str, Any] = {}
    for key in rows[0] if rows else ():
        cases = [c for r in rows for c in r[key].values()]
        audits = [c["audits"] if c["lost"] else None for c in cases]
        checked = [c["checked"] if c["lost"] else None for c in cases]
        out[key] = {
            "cases": len(cases),
            "audits": durations(audits, max((c["audits"] for c in cases), default=0)),
            "checked": durations(checked, max((c["checked"] for c in cases), default=0)),
            "by_complaint": sum(1 for c in cases if c["by_complaint"]),
        }
    return out


def summarise(raw: dict[str, list[dict[str, Any]]], config: Config) -> dict[str, Any]:
    """Every figure, and the targets checked."""
    main = summarise_main(raw["main"], config)
    seventy = {rule: proportion([r[rule] for r in raw["seventy"]]) for rule in ("issue", "guarded")}
    drift = summarise_drift(raw["drift"])
    pool = {
        rule: {
            "split_gains": proportion([r[rule]["split"] for r in raw["pool"]]),
            "even_time": durations([r[rule]["even"] for r in raw["pool"]], POOL_HORIZON),
        }
        for rule in POOL_RULES
    }
    sensitivity = {}
    for name, what in SENSITIVITY:
        rows = [{arm: r[f"{name}|{arm}"] for arm in ("a", "c")} for r in raw["sensitivity"]]
        h = config.horizon
        fig: dict[str, Any] = {"what": what}
        for half, label in ((0, "first"), (1, "second")):
            a_p, c_p = per_1000(rows, "a", "prompts", half, h), per_1000(rows, "c", "prompts", half, h)
            a_b, c_b = per_1000(rows, "a", "bad_runs", half, h), per_1000(rows, "c", "bad_runs", half, h)
            fig[label] = {
                "a_prompts": mean_ci(a_p),
                "c_prompts": mean_ci(c_p),
                "prompt_ratio": ratio_ci(a_p, c_p, config.seed + half),
                "a_bad": mean_ci(a_b),
                "c_bad": mean_ci(c_b),
                "bad_minus_a": mean_ci([x - y for x, y in zip(c_b, a_b, strict=True)]),
            }
        sensitivity[name] = fig
    return {"main": main, "seventy": seventy, "drift": drift, "pooling": pool, "sensitivity": sensitivity}


def check_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against the figures (the issue's rule; the guarded variant beside it)."""
    main, checks = figures["main"], []
    ratio = main["c"]["second"]["prompt_ratio"]
    checks.append(
        {
            "target": f"(c) asks a person >= {TARGET_RATIO:g}x less than (a), actions 5,001-10,000",
            "value": ratio,
            "met": ratio["ratio"] >= TARGET_RATIO,
            "conclusive": ratio["ci95"][0] >= TARGET_RATIO or ratio["ci95"][1] < TARGET_RATIO,
        }
    )
    diff = main["c"]["second"]["bad_minus_a"]
    checks.append(
        {
            "target": f"(c)'s bad actions run <= (a)'s + {TARGET_BAD_MARGIN:g} per 1,000, actions 5,001-10,000",
            "value": diff,
            "met": diff["mean"] <= TARGET_BAD_MARGIN,
            "conclusive": diff["ci95"][1] <= TARGET_BAD_MARGIN or diff["ci95"][0] > TARGET_BAD_MARGIN,
        }
    )
    for rule in ("issue", "guarded"):
        fig = figures["seventy"][rule]
        checks.append(
            {
                "target": f"a 70%-agreement reviewer gains authority in <= 1% of trials ({rule} rule)",
                "value": fig,
                "met": fig["rate"] <= TARGET_SEVENTY,
                "conclusive": fig["ci95"][1] <= TARGET_SEVENTY or fig["ci95"][0] > TARGET_SEVENTY,
            }
        )
    for key, fig in figures["drift"].items():
        med = fig["audits"]["median"]
        low, high = fig["audits"]["median_ci95"]
        checks.append(
            {
                "target": f"a reviewer drifting {key.replace('|', ' (')} rule) loses authority within a median "
                f"of {TARGET_DRIFT_MEDIAN} audited decisions",
                "value": {"median": med, "ci95": [low, high], "cases": fig["cases"]},
                "met": med is not None and med <= TARGET_DRIFT_MEDIAN,
                "conclusive": (high is not None and high <= TARGET_DRIFT_MEDIAN)
                if med is not None and med <= TARGET_DRIFT_MEDIAN
                else (low is None or low > TARGET_DRIFT_MEDIAN),
            }
        )
    for rule in ("pooled", "guarded, pooled"):
        fig = figures["pooling"][rule]["split_gains"]
        own = figures["pooling"]["issue" if rule == "pooled" else "guarded"]["split_gains"]
        checks.append(
            {
                "target": f"pooling ({rule}) lets a reviewer good on docs, at 70% on source, approve source no "
                "more often than the class's own record does",
                "value": {"pooled": fig, "own_record": own},
                "met": fig["events"] <= own["events"],
                "conclusive": True,
            }
        )
    return checks


def run(config: Config) -> dict[str, Any]:
    """The whole benchmark: simulate, summarise, check targets. Returns the JSON-ready report."""
    started = time.perf_counter()
    raw = simulate(config)
    figures = summarise(raw, config)
    elapsed = time.perf_counter() - started
    return {
        "benchmark": "delegated reviewer, simulated (issue 29 item 6)",
        "config": {
            "trials": config.trials,
            "seventy_trials": config.seventy_trials,
            "drift_trials": config.drift_trials,
            "pool_trials": config.pool_trials,
            "sensitivity_trials": config.sensitivity_trials,
            "seed": config.seed,
            "workers": config.workers,
            "horizon": config.horizon,
            "chunk": CHUNK,
            "authority_rule": "ratchet.rules.reviewer (the product's)" if config.product_rule else "bench/reviewer.py",
        },
        "runtime_s": round(elapsed, 1),
        "python": platform.python_version(),
        "person": config.person.__dict__,
        "reviewers": {k: v.__dict__ for k, v in {**PERSONAS, "good on docs": GOOD_DOCS, "rubber": RUBBER}.items()},
        "rules": {k: {**v.__dict__, "span": list(v.span) if v.span else None} for k, v in RULES.items()},
        "mix": [{"class": name, "share": share, "bad": bad} for name, share, bad in MIX],
        "figures": figures,
        "targets": check_targets(figures),
    }


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _ci(fig: dict[str, Any], digits: int = 1) -> str:
    low, high = fig["ci95"]
    return f"{fig['mean']:.{digits}f} [{low:.{digits}f}–{high:.{digits}f}]"


def _ratio(fig: dict[str, Any] | None) -> str:
    if fig is None:
        return "—"
    low, high = fig["ci95"]
    return f"{fig['ratio']:.2f}× [{low:.2f}–{high:.2f}]"


def _pct(fig: dict[str, Any]) -> str:
    low, high = fig["ci95"]
    return f"{100 * fig['rate']:.1f}% [{100 * low:.1f}–{100 * high:.1f}%] ({fig['events']}/{fig['trials']})"


def _quant(fig: dict[str, Any], stat: str = "median") -> str:
    value = fig[stat]
    low, high = fig[f"{stat}_ci95"]

    def num(x: int | None) -> str:
        return "never" if x is None else str(x)

    text = f"{num(value)} [{num(low)}–{num(high)}]"
    return text + (f", {fig['censored']} of {fig['trials']} never" if fig["censored"] else "")


def arms_table(report: dict[str, Any]) -> str:
    """The headline table: each row's prompts and bad actions run per 1,000 actions, per half."""
    main = report["figures"]["main"]
    rows = [
        "| Arm | Reviewer | Rule | Prompts /1,000, 1–5,000 | Prompts /1,000, 5,001–10,000 | (a)'s prompts ÷ this, "
        "5,001–10,000 | Bad run /1,000, 1–5,000 | Bad run /1,000, 5,001–10,000 | Run on the reviewer's word "
        "/1,000, 5,001–10,000 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, arm, _persona, rule in ROWS:
        fig = main[key]
        first, second = fig["first"], fig["second"]
        rows.append(
            f"| {ARM_NAMES[arm]} | {fig['reviewer'].split(' (')[0]} | {rule if arm in ('c', 'd') else '—'} | "
            f"{_ci(first['prompts'])} | {_ci(second['prompts'])} | {_ratio(second.get('prompt_ratio'))} | "
            f"{_ci(first['bad_runs'], 2)} | {_ci(second['bad_runs'], 2)} | {_ci(second['reviewer_runs'])} |"
        )
    return "\n".join(rows)


def class_table(report: dict[str, Any]) -> str:
    """Where the prompts of actions 5,001-10,000 come from, per class: (a) and (c), mean per trial."""
    main = report["figures"]["main"]
    share = {name: (s, b) for name, s, b in MIX}
    rows = [
        "| Class | Share of actions | Bad | Ceiling | (a) prompts | (c) prompts | (c)'s level at 10,000 (trials) |",
        "|---|---|---|---|---|---|---|",
    ]
    ceilings = {c.name: c.ceiling.label for c in mix_classes()[0]}
    for name, counts in main["class_prompts_second_half"].items():
        levels = ", ".join(f"{lvl} {n}" for lvl, n in main["final_levels_c"][name].items())
        s, b = share[name]
        rows.append(
            f"| {name} | {100 * s:.1f}% | {100 * b:.1f}% | {ceilings[name]} | {counts['a']:.1f} | "
            f"{counts['c']:.1f} | {levels} |"
        )
    return "\n".join(rows)


def drift_table(report: dict[str, Any]) -> str:
    """Audited decisions (and all checked verdicts) until a drifting reviewer loses authority in a class."""
    rows = [
        "| Drift | Rule | Classes that held authority | Audited approvals until lost: median | p90 | "
        "Verdicts a person checked until lost: median | Lost by a complaint |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, fig in report["figures"]["drift"].items():
        drift, rule = key.split("|")
        rows.append(
            f"| {drift} | {rule} | {fig['cases']} | {_quant(fig['audits'])} | {_quant(fig['audits'], 'p90')} | "
            f"{_quant(fig['checked'])} | {fig['by_complaint']} |"
        )
    return "\n".join(rows)


def pool_table(report: dict[str, Any]) -> str:
    """Pooling: does a reviewer good on docs get authority on source, where it is at 70% agreement?"""
    rows = [
        "| Rule | Source gains authority (docs 99%, source 70%), trials | Actions until source gains authority "
        "(the vendor-reported reviewer on both): median |",
        "|---|---|---|",
    ]
    for rule, fig in report["figures"]["pooling"].items():
        rows.append(f"| {rule} | {_pct(fig['split_gains'])} | {_quant(fig['even_time'])} |")
    return "\n".join(rows)


def sensitivity_table(report: dict[str, Any]) -> str:
    """(a) against (c) with one assumption changed at a time, actions 5,001-10,000 (and the ratio over 1-5,000)."""
    rows = [
        "| Assumption | (a) prompts /1,000 | (c) prompts /1,000 | (a) ÷ (c), 5,001–10,000 | (a) ÷ (c), 1–5,000 | "
        "(a) bad /1,000 | (c) bad /1,000 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, fig in report["figures"]["sensitivity"].items():
        second, first = fig["second"], fig["first"]
        rows.append(
            f"| {name}: {fig['what']} | {_ci(second['a_prompts'])} | {_ci(second['c_prompts'])} | "
            f"{_ratio(second['prompt_ratio'])} | {_ratio(first['prompt_ratio'])} | {_ci(second['a_bad'], 2)} | "
            f"{_ci(second['c_bad'], 2)} |"
        )
    return "\n".join(rows)


def _value(check: dict[str, Any]) -> str:
    value = check["value"]
    if "ratio" in value:
        return _ratio(value)
    if "mean" in value:
        return f"{value['mean']:+.2f} per 1,000 [{value['ci95'][0]:+.2f}–{value['ci95'][1]:+.2f}]"
    if "rate" in value:
        return _pct(value)
    if "median" in value:
        low, mid, high = (("never" if x is None else x) for x in (value["ci95"][0], value["median"], value["ci95"][1]))
        return f"median {mid} [{low}–{high}] over {value['cases']} classes"
    return f"pooled {_pct(value['pooled'])}; own record alone {_pct(value['own_record'])}"


def target_lines(report: dict[str, Any]) -> list[str]:
    """One ✓/✗ line per target."""
    lines = []
    for check in report["targets"]:
        settled = "" if check["conclusive"] else " — the 95% interval straddles the target"
        lines.append(f"- {'✓' if check['met'] else '✗'} {check['target']}: {_value(check)}{settled}")
    return lines


def last_line(report: dict[str, Any]) -> str:
    """The figures in one line, the ratio first."""
    main, fig = report["figures"]["main"], report["figures"]
    second, first = main["c"]["second"], main["c"]["first"]
    drift = fig["drift"]
    medians = "; ".join(
        f"{k.replace('|', ', ')} {'never' if v['audits']['median'] is None else v['audits']['median']}"
        for k, v in drift.items()
    )
    return (
        f"{second['prompt_ratio']['ratio']:.1f}× fewer human prompts with the tracked reviewer over actions "
        f"5,001–10,000 ({main['a']['second']['prompts']['mean']:.0f} → {second['prompts']['mean']:.0f} per "
        f"1,000; target 5×), {first['prompt_ratio']['ratio']:.1f}× over 1–5,000; bad actions run "
        f"{main['a']['second']['bad_runs']['mean']:.2f} → {second['bad_runs']['mean']:.2f} per 1,000 "
        f"(target ≤ +1); a 70%-agreement reviewer gains authority in {100 * fig['seventy']['issue']['rate']:.1f}% "
        f"of trials under the issue's rule, {100 * fig['seventy']['guarded']['rate']:.1f}% guarded (target ≤ 1%); "
        f"audited decisions until a drifting reviewer loses authority (median): {medians} (target ≤ 20)"
    )


def note(report: dict[str, Any]) -> list[str]:
    """What the figures do and do not prove, and the argument on arm (d), with this run's figures."""
    main = report["figures"]["main"]
    a, c, d = (main[k]["second"] for k in ("a", "c", "d"))
    ds = main["d stress"]["second"]
    cs = main["c stress"]["second"]
    best = report["figures"]["sensitivity"].get("best case", {}).get("second")
    best_text = f" (best case above: {_ratio(best['prompt_ratio'])})" if best else ""
    return [
        "## What these figures prove, and what they do not",
        "",
        "- They are a simulation. The people, the reviewers and the mix are assumptions stated above, not "
        "measurements of a team or of a model: the vendor-reported and stress-tested reviewers borrow the "
        "published error rates the issue cites; no real reviewer was run here. A team's own figures come from "
        "its shadow verdicts (`ratchet status`, `ratchet simulate`).",
        "- Given those assumptions they are the product's rules at work: the classes, levels, ceilings and "
        "CLI-only flags are the starter policies' own, every move of a class goes through `rules/settle.py`, "
        "and every arm sees the same actions, so the differences between arms are the rules'. The authority "
        "rule is the issue's, restated as a pure function in this bench (`holds`, `revoked`), not the product's "
        "own module.",
        "- Why (c) saves less than 5× here: the reviewer decides confirm calls only. A class at draft asks a "
        "person on every call: the six classes whose ceiling is confirm start at draft until a person's "
        "answers lift them, a class a person rejects 2 calls in 100 of cannot earn confirm at all, and every "
        "complaint drops a class a rung (a confirm class to draft). Only a person's answers promote, so the "
        "promotable classes cost the same prompts in both arms, and each complaint's demotion costs the same "
        "climb back. The audit share and the calls the reviewer denies keep about 1 prompt in 8 even where it "
        "holds authority; the CLI-only classes and classes too rare to reach 40 approvals keep all of theirs"
        f"{best_text}.",
        "- A false-accept rate counted among the reviewer's approvals never exceeds the share of bad calls "
        "unless the reviewer approves bad calls more readily than good ones: a reviewer that approves "
        "everything, on a class where a person rejects 2 calls in 100, has a false-accept rate near 2%. "
        "A threshold of 0.10 therefore admits any reviewer on such a class, the "
        "70%-agreement one and the stress-tested one included; the bound alone cannot keep them out, and a "
        "threshold low enough to would need hundreds of approvals per class. An agreement bar on the class's "
        "own shadow answers (the guarded rule) does keep the 70% reviewer out.",
        "- A reviewer that starts approving bad calls shows it on audits only as often as bad calls come: at "
        "1-2 bad calls in 100, an audit meets one of its false accepts about once in 50 to 100 audits, so no "
        "rule on audits alone can catch it within a median of 20. Complaints are the quicker signal (the last "
        "column of the drift table), and they depend on people noticing. A reviewer that drifts to 70% "
        "agreement shows it at once in the denials a person answers; the guarded rule's span catches that.",
        f"- Arm (d), reviewer approvals counting toward promotion: {_ratio(d.get('prompt_ratio'))} fewer prompts "
        f"than (a) against (c)'s {_ratio(c.get('prompt_ratio'))}, but {d['bad_runs']['mean']:.2f} bad actions "
        f"run per 1,000 against (c)'s {c['bad_runs']['mean']:.2f} and (a)'s {a['bad_runs']['mean']:.2f}; with "
        f"the stress-tested reviewer {ds['bad_runs']['mean']:.2f} against {cs['bad_runs']['mean']:.2f}. It "
        "turns the reviewer's approvals into autonomy, where nothing checks a call any more, and a lenient "
        "reviewer climbs classes faster: against. Not adopted.",
        "",
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown report written to reviewer.md and printed."""
    cfg, person = report["config"], report["person"]
    mix = ", ".join(f"{m['class']} {100 * m['share']:.1f}% ({100 * m['bad']:.1f}% bad)" for m in report["mix"])
    return "\n".join(
        [
            "# The delegated reviewer, simulated",
            "",
            f"Command: `{report['command']}`  ",
            f"Runtime: {report['runtime_s']:.0f} s on {cfg['workers']} worker(s), Python {report['python']}, "
            f"seed {cfg['seed']}; {cfg['trials']} trials of {cfg['horizon']:,} actions per arm "
            f"({cfg['seventy_trials']} for the 70% reviewer, {cfg['drift_trials']} for drift, "
            f"{cfg['pool_trials']} for pooling). The issue's rule decided by "
            f"{cfg.get('authority_rule', 'bench/reviewer.py')}.  ",
            f"Person: right {100 * person['accuracy']:.0f}% of the time when reading, reads "
            f"{100 * person['reading']:.0f}% of prompts (an unread approval runs but is no sample), complains "
            f"about {100 * person['notice']:.0f}% of the bad actions that ran, {person['notice_lag']:.0f} "
            "actions later on average.  ",
            f"Mix (share of actions, share a careful person would reject): {mix}.",
            "",
            "Rules: *issue*, the issue's (authority while the upper 95% bound of false accepts among the "
            "reviewer's approvals beside a person's answer, since its last revocation, is below 0.10 over at "
            "least 40 approvals; 1 in 10 of its approvals audited; lost at once by a complaint about a call it "
            "let run, or by a false accept that lifts the bound to 0.10); *pooled*, the same with up to 40 "
            "approvals borrowed at the other classes' false-accept rate once the class has 10 of its own; "
            "*guarded*, the issue's plus an agreement bar for gaining (lower bound of agreement on the class's "
            "own shadow answers at least 0.85) and a span for losing (3 disagreements among the last 20 verdicts "
            "a person checked). The reviewer decides confirm calls only, never a CLI-only, secret or blocked "
            "class; its denials and `unsure` go to the person.",
            "",
            "Per 1,000 actions: mean over trials [95% interval]; ratios: (a)'s mean ÷ the row's "
            "[paired bootstrap 95%]. Every arm sees the same actions.",
            "",
            arms_table(report),
            "",
            "## Targets",
            "",
            *target_lines(report),
            "",
            f"## Sensitivity: one assumption changed ({cfg['sensitivity_trials']} trials each)",
            "",
            sensitivity_table(report),
            "",
            "## Where (c)'s remaining prompts are (actions 5,001–10,000, mean per trial)",
            "",
            class_table(report),
            "",
            f"## A reviewer that drifts at action {cfg['horizon'] // 2:,}",
            "",
            "Per class that held authority when the vendor-reported reviewer drifted; an audited approval is one "
            "of its approvals sent to the person anyway; checked verdicts add its denials, which go to the person.",
            "",
            drift_table(report),
            "",
            "## Pooling across classes",
            "",
            f"docs-write and source-write held at confirm, {100 * POOL_SHARES[0]:.0f}% and {100 * POOL_SHARES[1]:.0f}% "
            f"of the actions, 1% bad each, {POOL_HORIZON:,} "
            "actions per trial. Pooled: up to 40 approvals borrowed at the other classes' false-accept rate "
            "once the class has 10 of its own; pooled alone: the class judged on every class's record.",
            "",
            pool_table(report),
            "",
            *note(report),
            last_line(report),
            "",
        ]
    )


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.reviewer", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help=f"trials per arm (default {DEFAULT_TRIALS})")
    parser.add_argument("--quick", action="store_true", help=f"a fast run ({QUICK_TRIALS} trials), not written")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"base seed (default {DEFAULT_SEED})")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--out", type=Path, default=None, help="where reviewer.json/.md go (default bench/results)")
    parser.add_argument(
        "--product-rule",
        action="store_true",
        help="decide the issue's rule with the product's ratchet.rules.reviewer instead of the bench's restatement",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, write the JSON and Markdown; the last line states the figures."""
    args = parse_args(argv)
    trials = args.trials if args.trials is not None else (QUICK_TRIALS if args.quick else DEFAULT_TRIALS)
    config = Config.scaled(trials, seed=args.seed, workers=max(args.workers, 1), product_rule=args.product_rule)
    if config.product_rule:
        product_rules()  # fail before simulating when the product has no such rule
    shown = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join([".venv/bin/python", "-m", "bench.reviewer", *shown])
    provenance = stamp(command)
    report = run(config)
    report["command"] = command
    report["provenance"] = provenance
    markdown = render_markdown(report)
    out = args.out if args.out is not None else (None if args.quick else RESULTS_DIR)
    print(markdown)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "reviewer.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "reviewer.md").write_text(markdown, encoding="utf-8")
        print(f"wrote {out / 'reviewer.json'} and {out / 'reviewer.md'}")
    print(last_line(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
