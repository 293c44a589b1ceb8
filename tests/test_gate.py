"""The gate: a class's level, lowered (never raised) by each trigger, with every reason recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy
from ratchet.policy.model import ActionClass, ConfidenceThresholds, Policy, TrustParams
from ratchet.rules.gate import ROUTE_OF_LEVEL, Decision, Route, Trigger, decide, no_sandbox_trigger

POLICY = """
[defaults]
max_consecutive_failures = 3

[defaults.confidence]
autonomous_at = 0.9
flag_at = 0.7
escalate_at = 0.5

[classes.docs-write]
tools = ["write_file"]
paths = ["docs/**"]
start = "autonomous"

[classes.ci-config-write]
tools = ["write_file"]
paths = [".github/**"]
start = "confirm"
require_cli_approval = true
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    directory: Path = tmp_path_factory.mktemp("gate-policy")
    (directory / "gate.toml").write_text(POLICY, encoding="utf-8")
    return load_policy(directory)


@pytest.fixture
def docs(policy: Policy) -> ActionClass:
    return policy.classes["docs-write"]


@pytest.fixture
def ci(policy: Policy) -> ActionClass:
    return policy.classes["ci-config-write"]


def names(decision: Decision) -> list[str]:
    """The names of the triggers that fired, in order."""
    return [t.name for t in decision.triggers]


def trigger(decision: Decision, name: str) -> Trigger:
    """The one trigger of that name."""
    found = [t for t in decision.triggers if t.name == name]
    assert len(found) == 1, decision.triggers
    return found[0]


# -- confidence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "level", "route", "flagged", "fired"),
    [
        (None, Level.AUTONOMOUS, Route.EXECUTE, False, []),
        (1.0, Level.AUTONOMOUS, Route.EXECUTE, False, []),
        (0.95, Level.AUTONOMOUS, Route.EXECUTE, False, []),
        (0.9, Level.AUTONOMOUS, Route.EXECUTE, False, []),  # at autonomous_at: stands
        (0.8999, Level.AUTONOMOUS, Route.EXECUTE, True, ["confidence"]),
        (0.8, Level.AUTONOMOUS, Route.EXECUTE, True, ["confidence"]),  # flagged, the level stands
        (0.7001, Level.AUTONOMOUS, Route.EXECUTE, True, ["confidence"]),
        (0.7, Level.CONFIRM, Route.CONFIRM, False, ["confidence"]),  # at flag_at: confirm
        (0.6, Level.CONFIRM, Route.CONFIRM, False, ["confidence"]),
        (0.5001, Level.CONFIRM, Route.CONFIRM, False, ["confidence"]),
        (0.5, Level.BLOCKED, Route.BLOCK, False, ["confidence"]),  # at escalate_at: refused
        (0.3, Level.BLOCKED, Route.BLOCK, False, ["confidence"]),
        (0.0, Level.BLOCKED, Route.BLOCK, False, ["confidence"]),
    ],
)
def test_confidence_tiers(
    docs: ActionClass, confidence: float | None, level: Level, route: Route, flagged: bool, fired: list[str]
) -> None:
    d = decide(docs, Level.AUTONOMOUS, confidence=confidence)
    assert (d.level, d.route, d.flagged, names(d)) == (level, route, flagged, fired)
    assert d.class_level == Level.AUTONOMOUS
    if fired:
        assert trigger(d, "confidence").cap == level


def test_confidence_trigger_detail_names_the_threshold(docs: ActionClass) -> None:
    assert "flag_at 0.7" in trigger(decide(docs, Level.AUTONOMOUS, confidence=0.6), "confidence").detail
    assert "escalate_at 0.5" in trigger(decide(docs, Level.AUTONOMOUS, confidence=0.3), "confidence").detail
    assert "autonomous_at 0.9" in trigger(decide(docs, Level.AUTONOMOUS, confidence=0.8), "confidence").detail


def test_class_thresholds_are_used(docs: ActionClass) -> None:
    strict = dataclasses.replace(
        docs, confidence=ConfidenceThresholds(autonomous_at=0.99, flag_at=0.95, escalate_at=0.9)
    )
    assert decide(strict, Level.AUTONOMOUS, confidence=0.95).route is Route.CONFIRM
    assert decide(strict, Level.AUTONOMOUS, confidence=0.9).route is Route.BLOCK
    assert decide(strict, Level.AUTONOMOUS, confidence=0.98).flagged
    assert decide(docs, Level.AUTONOMOUS, confidence=0.98).triggers == ()


def test_draft_class_with_full_confidence_stays_draft(docs: ActionClass) -> None:
    d = decide(docs, Level.DRAFT, confidence=1.0)
    assert (d.level, d.route, d.triggers) == (Level.DRAFT, Route.DRAFT, ())


@pytest.mark.parametrize("class_level", list(Level))
@pytest.mark.parametrize("confidence", [None, 0.0, 0.3, 0.5, 0.51, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0])
def test_confidence_never_raises_the_level(docs: ActionClass, class_level: Level, confidence: float | None) -> None:
    d = decide(docs, class_level, confidence=confidence)
    assert d.level <= class_level
    assert d.route is ROUTE_OF_LEVEL[d.level]


def test_medium_confidence_on_a_draft_class_still_drafts(docs: ActionClass) -> None:
    d = decide(docs, Level.DRAFT, confidence=0.6)
    assert (d.level, d.route) == (Level.DRAFT, Route.DRAFT)
    assert d.triggers == ()  # confidence lowered nothing here, so it is not reported as a trigger
    flagged = decide(docs, Level.DRAFT, confidence=0.8)
    # A flag marks a call that runs unreviewed; a draft is reviewed anyway.
    assert (flagged.level, flagged.route, flagged.flagged) == (Level.DRAFT, Route.DRAFT, False)


# -- repeated failure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "route"),
    [(0, Route.EXECUTE), (1, Route.EXECUTE), (2, Route.EXECUTE), (3, Route.BLOCK), (4, Route.BLOCK)],
)
def test_repeated_failure_halts_at_the_limit(docs: ActionClass, failures: int, route: Route) -> None:
    d = decide(docs, Level.AUTONOMOUS, session_failures=failures)
    assert d.route is route
    if route is Route.BLOCK:
        assert d.level == Level.BLOCKED
        t = trigger(d, "repeated-failure")
        assert t.cap == Level.BLOCKED
        assert f"{failures} consecutive failures" in t.detail
        assert "limit 3" in t.detail
    else:
        assert d.level == Level.AUTONOMOUS
        assert "repeated-failure" not in names(d)


def test_repeated_failure_limit_comes_from_the_class(docs: ActionClass) -> None:
    touchy = dataclasses.replace(docs, trust=TrustParams(max_consecutive_failures=1))
    assert decide(touchy, Level.AUTONOMOUS, session_failures=0).route is Route.EXECUTE
    assert decide(touchy, Level.AUTONOMOUS, session_failures=1).route is Route.BLOCK
    patient = dataclasses.replace(docs, trust=TrustParams(max_consecutive_failures=10))
    assert decide(patient, Level.AUTONOMOUS, session_failures=9).route is Route.EXECUTE
    assert decide(patient, Level.AUTONOMOUS, session_failures=10).route is Route.BLOCK


# -- pins --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "level", "route", "fired"),
    [
        (Level.CONFIRM, Level.CONFIRM, Route.CONFIRM, ["pinned"]),
        (Level.DRAFT, Level.DRAFT, Route.DRAFT, ["pinned"]),
        (Level.BLOCKED, Level.BLOCKED, Route.BLOCK, ["pinned"]),
        (Level.AUTONOMOUS, Level.AUTONOMOUS, Route.EXECUTE, []),
    ],
)
def test_pinned_caps(docs: ActionClass, pinned: Level, level: Level, route: Route, fired: list[str]) -> None:
    d = decide(docs, Level.AUTONOMOUS, pinned=pinned)
    assert (d.level, d.route, names(d)) == (level, route, fired)
    if fired:
        assert trigger(d, "pinned").cap == pinned
        assert pinned.label in trigger(d, "pinned").detail


def test_a_pin_never_raises(docs: ActionClass) -> None:
    d = decide(docs, Level.DRAFT, pinned=Level.AUTONOMOUS)
    assert (d.level, d.route, d.triggers) == (Level.DRAFT, Route.DRAFT, ())


# -- confirm fallbacks -------------------------------------------------------------------------


def test_confirm_without_elicitation_drafts(docs: ActionClass) -> None:
    d = decide(docs, Level.CONFIRM, can_elicit=False)
    assert d.route is Route.DRAFT
    assert names(d) == ["no-elicitation"]
    assert trigger(d, "no-elicitation").cap == Level.DRAFT


def test_confirm_with_elicitation_confirms(docs: ActionClass) -> None:
    d = decide(docs, Level.CONFIRM, can_elicit=True)
    assert (d.route, d.triggers) == (Route.CONFIRM, ())


@pytest.mark.parametrize(("level", "route"), [(Level.AUTONOMOUS, Route.EXECUTE), (Level.DRAFT, Route.DRAFT)])
def test_no_elicitation_only_matters_for_confirm(docs: ActionClass, level: Level, route: Route) -> None:
    d = decide(docs, level, can_elicit=False)
    assert (d.route, d.triggers) == (route, ())


def test_confidence_drop_to_confirm_without_elicitation_drafts(docs: ActionClass) -> None:
    d = decide(docs, Level.AUTONOMOUS, confidence=0.6, can_elicit=False)
    assert d.route is Route.DRAFT
    assert names(d) == ["confidence", "no-elicitation"]


def test_cli_approval_class_drafts_instead_of_confirming(ci: ActionClass) -> None:
    d = decide(ci, Level.CONFIRM)
    assert d.route is Route.DRAFT
    assert names(d) == ["cli-approval-required"]
    assert trigger(d, "cli-approval-required").cap == Level.DRAFT


def test_cli_approval_class_without_elicitation_still_drafts(ci: ActionClass) -> None:
    d = decide(ci, Level.CONFIRM, can_elicit=False)
    assert d.route is Route.DRAFT
    assert "cli-approval-required" in names(d)


def test_cli_approval_class_blocks_when_blocked(ci: ActionClass) -> None:
    d = decide(ci, Level.CONFIRM, confidence=0.2)
    assert (d.level, d.route, names(d)) == (Level.BLOCKED, Route.BLOCK, ["confidence"])


# -- every reason, together --------------------------------------------------------------------


def test_every_trigger_that_fired_is_named(docs: ActionClass) -> None:
    d = decide(docs, Level.AUTONOMOUS, pinned=Level.CONFIRM, confidence=0.6, session_failures=3, can_elicit=False)
    assert names(d) == ["pinned", "repeated-failure", "confidence"]
    assert (d.level, d.route) == (Level.BLOCKED, Route.BLOCK)  # the lowest cap wins


def test_pin_and_flag_together(docs: ActionClass) -> None:
    d = decide(docs, Level.AUTONOMOUS, pinned=Level.CONFIRM, confidence=0.8, can_elicit=False)
    assert names(d) == ["pinned", "no-elicitation"]
    assert not d.flagged  # it does not run unreviewed, so there is nothing to flag
    assert (d.level, d.route) == (Level.DRAFT, Route.DRAFT)
    runs = decide(docs, Level.AUTONOMOUS, confidence=0.8)
    assert names(runs) == ["confidence"] and runs.flagged and runs.route is Route.EXECUTE


def test_why_mentions_class_rule_level_triggers_and_route(docs: ActionClass) -> None:
    d = decide(docs, Level.AUTONOMOUS, pinned=Level.CONFIRM, confidence=0.3)
    why = d.why()
    assert d.class_name == "docs-write"
    assert d.rule == docs.rule
    assert docs.rule.startswith("gate.toml:")
    for part in ("docs-write", docs.rule, "autonomous", "pinned", "confidence", "-> block"):
        assert part in why, part


def test_why_without_triggers(ci: ActionClass) -> None:
    why = decide(ci, Level.DRAFT).why()
    assert why == f"class ci-config-write ({ci.rule}) is at draft -> draft"


def test_trigger_as_dict() -> None:
    t = Trigger("pinned", "a human pinned the class at draft", Level.DRAFT)
    assert t.as_dict() == {"name": "pinned", "detail": "a human pinned the class at draft", "cap": "draft"}


def test_blocked_class_stays_blocked(docs: ActionClass) -> None:
    d = decide(docs, Level.BLOCKED, confidence=1.0, pinned=Level.AUTONOMOUS)
    assert (d.level, d.route, d.triggers) == (Level.BLOCKED, Route.BLOCK, ())


def test_a_command_class_without_a_sandbox_here_is_capped_at_confirm(docs: ActionClass) -> None:
    """Where no OS sandbox can be had, a command class that wants one is confirmed by a human, command by
    command; a class that runs no commands, one that opted out of the sandbox, or a host that has one is
    not capped."""
    commands = dataclasses.replace(docs, name="tests-run", tools=("run_command",))
    capped = no_sandbox_trigger(commands, False, "bubblewrap is missing")
    assert capped is not None and (capped.name, capped.cap) == ("no-sandbox", Level.CONFIRM)
    assert "bubblewrap is missing" in capped.detail
    assert decide(commands, Level.AUTONOMOUS, extra=(capped,)).route is Route.CONFIRM
    assert no_sandbox_trigger(commands, True, "ok") is None  # the sandbox is there
    assert no_sandbox_trigger(dataclasses.replace(commands, sandbox=False), False, "missing") is None  # "off"
    assert no_sandbox_trigger(docs, False, "missing") is None  # writes files only: no command to sandbox
    mixed = dataclasses.replace(commands, tools=("write_file", "run_command"))
    assert no_sandbox_trigger(mixed, False, "missing") is not None


def test_a_decision_cannot_be_changed_once_made(docs: ActionClass) -> None:
    """What the gate decided (and each reason) is frozen: code after the gate cannot raise a call's level
    or drop a trigger by assigning to the decision."""
    decision = decide(docs, Level.AUTONOMOUS, confidence=0.6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.level = Level.AUTONOMOUS  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.triggers[0].cap = Level.AUTONOMOUS  # type: ignore[misc]
    assert decision.level is Level.CONFIRM


def test_a_server_that_cannot_record_answers_drafts_what_it_would_ask(docs: ActionClass) -> None:
    """Under the agent's database role nobody's answer can be recorded here: a confirm becomes a draft for
    the reviewer side; a call that runs without asking is not touched."""
    asked = decide(docs, Level.CONFIRM, answers_here=False)
    assert (asked.level, asked.route, names(asked)) == (Level.DRAFT, Route.DRAFT, ["reviewer-side"])
    runs = decide(docs, Level.AUTONOMOUS, answers_here=False)
    assert (runs.level, runs.route, runs.triggers) == (Level.AUTONOMOUS, Route.EXECUTE, ())


def test_a_call_with_no_failures_reported_is_not_halted(docs: ActionClass) -> None:
    """A caller that gives no failure count (a session with none) never trips the halt, even for a class
    that halts at its first failure."""
    touchy = dataclasses.replace(docs, trust=TrustParams(max_consecutive_failures=1))
    assert decide(touchy, Level.AUTONOMOUS).route is Route.EXECUTE
    assert decide(touchy, Level.AUTONOMOUS, session_failures=1).route is Route.BLOCK
