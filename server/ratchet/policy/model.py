"""The policy directory: defaults and action classes, loaded from `*.toml`, validated, fail-closed.

A policy directory holds any number of TOML files, read in name order. One of them may hold
`[defaults]`; every file may declare classes as `[classes.NAME]` tables. Unknown keys, unknown
levels, malformed globs, duplicate class names and examples that contradict their class are all
errors that name the file, the key and the problem; nothing is served half-configured.

Which class an action belongs to (overlaps are expected: `docs/**` and `**/.env` both match
`docs/.env`):

1. Only classes whose `tools` list the action's tool and whose every other constraint holds.
2. The highest `priority` wins (guard classes such as secrets use it to win outright).
3. Then the most specific match: the matching patterns' literal characters (an exact path beats
   any wildcard; a longer argv prefix beats a shorter one).
4. Then the more conservative class: lower `ceiling`, then lower `start`.
5. Then the class name, so classification never depends on file order.

An action no class matches falls into the built-in `unclassified` class, held at
`defaults.unmatched` (draft or lower) and never promoted: trust is granted by writing a class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ratchet.policy.globs import PathGlob
from ratchet.policy.levels import Level
from ratchet.policy.limits import ClassLimits, Limits, SizeLimits
from ratchet.policy.reviewer import ReviewerSpec
from ratchet.rules.provenance import PROMOTION_EVIDENCE

UNCLASSIFIED = "unclassified"
# Sandbox profiles a class may name (executors/sandbox.py): what the processes it causes may write.
SANDBOX_PROFILES = ("read-only", "workspace", "off")
CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfidenceThresholds(_Strict):
    """Agent-reported confidence tiers: the level stands, is flagged, drops to confirm, or stops."""

    autonomous_at: float = Field(0.9, ge=0, le=1)
    flag_at: float = Field(0.7, ge=0, le=1)
    escalate_at: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.autonomous_at >= self.flag_at >= self.escalate_at:
            raise ValueError("expected autonomous_at >= flag_at >= escalate_at")
        return self


class PartialConfidence(_Strict):
    """A class's own confidence thresholds; the ones it leaves out come from `[defaults.confidence]`."""

    autonomous_at: float | None = Field(None, ge=0, le=1)
    flag_at: float | None = Field(None, ge=0, le=1)
    escalate_at: float | None = Field(None, ge=0, le=1)


class TrustParams(_Strict):
    """How a class earns and loses a rung. See rules/trust.py for the statistics."""

    window_size: int = Field(100, ge=5, le=10_000)
    min_samples: int = Field(40, ge=1)
    promote_at: float = Field(0.93, gt=0, lt=1)
    demote_below: float = Field(0.80, gt=0, lt=1)
    drift_threshold: float = Field(2.0, gt=0)
    max_consecutive_failures: int = Field(3, ge=1)
    # Samples after a promotion during which the class is on probation (rules/trust.py).
    probation: int = Field(20, ge=0, le=10_000)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.min_samples > self.window_size:
            raise ValueError(f"min_samples ({self.min_samples}) exceeds window_size ({self.window_size})")
        if self.demote_below >= self.promote_at:
            raise ValueError("expected demote_below < promote_at")
        # Even a window of nothing but successes has a Wilson lower bound of n / (n + z^2).
        needed = math.ceil(1.959963984540054**2 * self.promote_at / (1 - self.promote_at))
        if self.window_size < needed:
            raise ValueError(
                f"window_size {self.window_size} can never promote at promote_at {self.promote_at}: "
                f"even all successes need a window of at least {needed}"
            )
        return self


DEFAULT_ENV_ALLOW = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "TZ",
    "TMPDIR",
    "SHELL",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "GOPATH",
    "GOCACHE",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "NODE_PATH",
    "JAVA_HOME",
]


class CommandSettings(_Strict):
    """How commands run: what environment they see, how long they may take, how much output comes back."""

    env_allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_ALLOW))
    timeout_s: float = Field(120.0, gt=0)
    max_timeout_s: float = Field(1800.0, gt=0)
    output_cap: int = Field(64_000, ge=1024)

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.timeout_s > self.max_timeout_s:
            raise ValueError("expected timeout_s <= max_timeout_s")
        return self


class UndoStore(_Strict):
    """`[defaults.undo]`: the prior content Ratchet keeps so a file change can be undone, and its bounds."""

    max_total_bytes: int = Field(256 * 1024 * 1024, ge=0)
    max_file_bytes: int = Field(8 * 1024 * 1024, ge=0)
    max_age_days: float = Field(30.0, gt=0)


class Defaults(TrustParams):
    """The `[defaults]` table."""

    unmatched: str = "draft"
    confidence: ConfidenceThresholds = ConfidenceThresholds()
    commands: CommandSettings = CommandSettings()
    # Escalations (stopped actions and handoffs) a session may raise before they are flagged.
    escalation_budget: int = Field(10, ge=0)
    # A command run with the packet as JSON on stdin whenever something lands in the inbox.
    notify: list[str] | None = None
    # Sizes and rates every call is held to (policy/limits.py); classes may override the sizes.
    limits: Limits = Limits()
    # Prior content kept for `ratchet undo` (never for classes marked `secret`).
    undo: UndoStore = UndoStore()

    @field_validator("notify")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError('notify is an argv list such as ["notify-send", "Ratchet"]; omit it to disable')
        return value

    @field_validator("unmatched")
    @classmethod
    def _conservative(cls, value: str) -> str:
        if Level.parse(value) > Level.DRAFT:
            raise ValueError("unmatched actions must stay conservative: expected 'draft' or 'blocked'")
        return Level.parse(value).label


class ExampleAction(_Strict):
    """A concrete action a class must (or must not) match; `ratchet lint` proves it."""

    tool: str
    path: str | None = None
    argv: list[str] | None = None
    branch: str | None = None
    remote: str | None = None
    force: bool | None = None


class Examples(_Strict):
    match: list[ExampleAction] = []
    not_match: list[ExampleAction] = []


class ClassSpec(_Strict):
    """One `[classes.NAME]` table as written."""

    description: str = ""
    tools: list[str] = Field(min_length=1)
    paths: list[str] | None = None
    argv: list[list[str]] | None = None
    branches: list[str] | None = None
    remotes: list[str] | None = None
    force: bool | None = None
    start: str
    floor: str | None = None  # default: draft, or the start if that is lower
    ceiling: str = "autonomous"
    priority: int = 0
    demote_on_complaint: bool = True
    count_execution_failures: bool = True
    require_cli_approval: bool = False
    allow_shell: bool = False
    novelty: bool = False
    # The sandbox profile every process of the class runs under (executors/sandbox.py): "read-only" (the
    # whole filesystem read-only, a private /tmp), "workspace" (the workspace writable minus the protected
    # set), or "off" (no sandbox: an opt-out lint flags). `true` means "workspace", `false` "off".
    sandbox: bool | str = "workspace"
    # run_command: may the sandboxed command reach the network?
    network: bool = False
    promotion_evidence: str = "any"
    chat_approval: bool = False
    # Checks run after an action of the class executes (argv lists; `{path}`/`{paths}` expand to its
    # targets as separate arguments, never through a shell); a failing check makes the sample a failure.
    verify: list[list[str]] | None = None
    verify_on: Literal["each", "task_end"] = "each"
    verify_timeout_s: float = Field(120.0, gt=0)
    # Undo the change at once when a check fails.
    undo_on_failure: bool = False
    # The class's content is never kept (no undo store, no prior versions).
    secret: bool = False
    # A draft of the class is approved by another identity than the one that recorded it (identity.py).
    require_other_reviewer: bool = False
    # Whether the policy's delegated reviewer (policy/reviewer.py) may judge and decide the class's calls.
    reviewer: bool = True
    window_size: int | None = Field(None, ge=5, le=10_000)
    min_samples: int | None = Field(None, ge=1)
    promote_at: float | None = Field(None, gt=0, lt=1)
    demote_below: float | None = Field(None, gt=0, lt=1)
    drift_threshold: float | None = Field(None, gt=0)
    max_consecutive_failures: int | None = Field(None, ge=1)
    probation: int | None = Field(None, ge=0, le=10_000)
    confidence: PartialConfidence | None = None
    limits: ClassLimits | None = None
    examples: Examples = Examples()

    @field_validator("start", "floor", "ceiling")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        return None if value is None else Level.parse(value).label

    @field_validator("sandbox")
    @classmethod
    def _profile(cls, value: bool | str) -> str:
        if value is True:
            return "workspace"
        if value is False:
            return "off"
        if value not in SANDBOX_PROFILES:
            raise ValueError(
                f"unknown sandbox profile {value!r}; expected one of {', '.join(map(repr, SANDBOX_PROFILES))} "
                "(or true for 'workspace', false for 'off')"
            )
        return value

    @field_validator("promotion_evidence")
    @classmethod
    def _evidence(cls, value: str) -> str:
        if value not in PROMOTION_EVIDENCE:
            raise ValueError(
                f"unknown promotion_evidence {value!r}; expected 'any' (every channel, timed by the reading "
                "rule) or 'cli' (only approvals given with `ratchet approve` count toward promotion)"
            )
        return value

    @field_validator("verify")
    @classmethod
    def _checks(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        if value is not None and any(not check or not check[0] for check in value):
            raise ValueError('each check is an argv list that names a program, such as ["ruff", "check", "{path}"]')
        return value

    @model_validator(mode="after")
    def _undo_needs_checks(self) -> Self:
        if self.undo_on_failure and not self.verify:
            raise ValueError("undo_on_failure undoes a change whose check failed: expected a verify list as well")
        targeted = [c for c in self.verify or () if any(p in a for a in c for p in ("{path}", "{paths}"))]
        if targeted and not set(self.tools) & {"write_file", "edit_file", "git_commit"}:
            raise ValueError(
                f"check {targeted[0]} names {{path}}/{{paths}}, but tools {self.tools} have no file targets; "
                "expected a check without them (or a class with write_file, edit_file or git_commit)"
            )
        if self.undo_on_failure and self.verify_on != "each":
            raise ValueError('undo_on_failure needs verify_on = "each" (a check at task end judges many changes)')
        return self

    @field_validator("argv")
    @classmethod
    def _prefixes(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        if value is not None and any(not prefix for prefix in value):
            raise ValueError("an argv prefix must hold at least the program name")
        return value

    @property
    def floor_level(self) -> Level:
        """The floor as written, or draft (the start if lower): automatic demotion stops there."""
        return Level.parse(self.floor) if self.floor is not None else min(Level.parse(self.start), Level.DRAFT)

    @model_validator(mode="after")
    def _ladder(self) -> Self:
        floor, start, ceiling = self.floor_level, Level.parse(self.start), Level.parse(self.ceiling)
        if not floor <= start <= ceiling:
            raise ValueError(f"expected floor <= start <= ceiling, got {floor.label} / {start.label} / {ceiling.label}")
        return self


@dataclass(frozen=True)
class Subject:
    """What the matcher sees of an action: the tool and the arguments rules can name."""

    tool: str
    paths: tuple[str, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()
    branch: str | None = None
    remote: str | None = None
    force: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with each action so history can be re-classified."""
        return {
            "tool": self.tool,
            "paths": list(self.paths),
            "commands": [list(c) for c in self.commands],
            "branch": self.branch,
            "remote": self.remote,
            "force": self.force,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subject:
        """The inverse of `as_dict`."""
        return cls(
            tool=data["tool"],
            paths=tuple(data.get("paths", ())),
            commands=tuple(tuple(c) for c in data.get("commands", ())),
            branch=data.get("branch"),
            remote=data.get("remote"),
            force=data.get("force"),
        )


@dataclass(frozen=True)
class ActionClass:
    """A validated, compiled class: what it matches, its ladder bounds and its trust parameters."""

    name: str
    description: str
    tools: frozenset[str]
    paths: tuple[PathGlob, ...] | None
    argv: tuple[tuple[str, ...], ...] | None
    branches: tuple[PathGlob, ...] | None
    remotes: tuple[str, ...] | None
    force: bool | None
    start: Level
    floor: Level
    ceiling: Level
    priority: int
    demote_on_complaint: bool
    count_execution_failures: bool
    require_cli_approval: bool
    allow_shell: bool
    novelty: bool
    trust: TrustParams
    confidence: ConfidenceThresholds
    file: str
    line: int
    examples: Examples = field(default_factory=Examples)
    sandbox: bool = True
    network: bool = False
    # The sandbox profile (SANDBOX_PROFILES); `sandbox` is False exactly when it is "off".
    profile: str = "workspace"
    limits: SizeLimits = field(default_factory=SizeLimits)
    # Which answers count toward promotion (rules/provenance.py): "any" channel, or only the "cli".
    promotion_evidence: str = "any"
    # Whether review_drafts may offer this class's drafts in the chat (run_command classes: no by default).
    chat_approval: bool = False
    # Checks run after an action executes (see ClassSpec.verify) and what a failure does.
    verify: tuple[tuple[str, ...], ...] = ()
    verify_on: str = "each"
    verify_timeout_s: float = 120.0
    undo_on_failure: bool = False
    secret: bool = False
    # Approving a draft of the class needs another identity than the one that recorded the draft.
    require_other_reviewer: bool = False
    # Whether the delegated reviewer may judge and decide the class's calls (`reviewer = false`: never).
    reviewer: bool = True

    @property
    def rule(self) -> str:
        """Where the class is declared, as `file:line`."""
        return f"{self.file}:{self.line}"

    def specificity(self, subject: Subject) -> int | None:
        """How specifically this class matches the subject, or None when it does not match."""
        if subject.tool not in self.tools:
            return None
        score = 0
        if self.paths is not None:
            if not subject.paths:
                return None
            best = [max((g.specificity for g in self.paths if g.matches(p)), default=-1) for p in subject.paths]
            if min(best) < 0:
                return None
            score += min(best)
        if self.argv is not None:
            if not subject.commands:
                return None
            lengths = [
                max((len(pre) for pre in self.argv if tuple(cmd[: len(pre)]) == pre), default=-1)
                for cmd in subject.commands
            ]
            if min(lengths) < 0:
                return None
            score += 100 * min(lengths)
        if self.branches is not None:
            if subject.branch is None:
                return None
            matching = [g.specificity for g in self.branches if g.matches(subject.branch)]
            if not matching:
                return None
            score += max(matching)
        if self.remotes is not None:
            if subject.remote not in self.remotes:
                return None
            score += 1
        if self.force is not None:
            if bool(subject.force) != self.force:
                return None
            score += 1
        return score


@dataclass(frozen=True)
class Classification:
    """The class an action fell into and why."""

    cls: ActionClass
    specificity: int
    also_matched: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A loaded policy directory."""

    directory: Path
    defaults: Defaults
    classes: dict[str, ActionClass]
    fingerprint: str
    # The file holding [defaults] (named in limit refusals: where to raise a limit).
    defaults_file: str = "00-defaults.toml"
    # The delegated reviewer (`[reviewer]`, policy/reviewer.py) and the file declaring it; None: none.
    reviewer: ReviewerSpec | None = None
    reviewer_file: str = ""

    def classify(self, subject: Subject) -> Classification:
        """Find the class for an action; see the module docstring for how overlaps resolve."""
        best: tuple[tuple[int, int, int, int], ActionClass, int] | None = None
        matched: list[str] = []
        for cls in self.classes.values():
            score = cls.specificity(subject)
            if score is None:
                continue
            matched.append(cls.name)
            key = (cls.priority, score, -cls.ceiling, -cls.start)
            if best is None or key > best[0] or (key == best[0] and cls.name < best[1].name):
                best = (key, cls, score)
        if best is None:
            return Classification(self.unclassified, 0, ())
        return Classification(best[1], best[2], tuple(sorted(n for n in matched if n != best[1].name)))

    @property
    def unclassified(self) -> ActionClass:
        """The conservative class for actions no rule names."""
        level = Level.parse(self.defaults.unmatched)
        return ActionClass(
            name=UNCLASSIFIED,
            description="actions no policy class matches",
            tools=frozenset(),
            paths=None,
            argv=None,
            branches=None,
            remotes=None,
            force=None,
            start=level,
            floor=Level.BLOCKED,
            ceiling=level,
            priority=0,
            demote_on_complaint=True,
            count_execution_failures=True,
            require_cli_approval=False,
            allow_shell=False,
            novelty=False,
            trust=TrustParams(**trust_fields(self.defaults)),
            confidence=self.defaults.confidence,
            file="(built-in)",
            line=0,
            limits=SizeLimits(**{k: getattr(self.defaults.limits, k) for k in SizeLimits.model_fields}),
        )

    def get(self, name: str) -> ActionClass | None:
        """The class with this name, including the built-in `unclassified`."""
        return self.unclassified if name == UNCLASSIFIED else self.classes.get(name)


def trust_fields(source: BaseModel) -> dict[str, Any]:
    return {name: getattr(source, name) for name in TrustParams.model_fields}
