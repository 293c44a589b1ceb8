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

import hashlib
import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError
from .globs import GlobError, PathGlob, compile_glob
from .levels import Level
from .limits import ClassLimits, Limits, SizeLimits
from .provenance import PROMOTION_EVIDENCE

M = TypeVar("M", bound=BaseModel)
UNCLASSIFIED = "unclassified"
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
    """How a class earns and loses a rung. See trust.py for the statistics."""

    window_size: int = Field(100, ge=5, le=10_000)
    min_samples: int = Field(40, ge=1)
    promote_at: float = Field(0.93, gt=0, lt=1)
    demote_below: float = Field(0.80, gt=0, lt=1)
    drift_threshold: float = Field(2.0, gt=0)
    max_consecutive_failures: int = Field(3, ge=1)

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


class Defaults(TrustParams):
    """The `[defaults]` table."""

    unmatched: str = "draft"
    confidence: ConfidenceThresholds = ConfidenceThresholds()
    commands: CommandSettings = CommandSettings()
    # Escalations (stopped actions and handoffs) a session may raise before they are flagged.
    escalation_budget: int = Field(10, ge=0)
    # A command run with the packet as JSON on stdin whenever something lands in the inbox.
    notify: list[str] | None = None
    # Sizes and rates every call is held to (limits.py); classes may override the sizes.
    limits: Limits = Limits()

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
    # run_command: run inside the OS sandbox (see tools/sandbox.py); `false` is an opt-out lint flags.
    sandbox: bool = True
    # run_command: may the sandboxed command reach the network?
    network: bool = False
    promotion_evidence: str = "any"
    chat_approval: bool = False
    window_size: int | None = Field(None, ge=5, le=10_000)
    min_samples: int | None = Field(None, ge=1)
    promote_at: float | None = Field(None, gt=0, lt=1)
    demote_below: float | None = Field(None, gt=0, lt=1)
    drift_threshold: float | None = Field(None, gt=0)
    max_consecutive_failures: int | None = Field(None, ge=1)
    confidence: PartialConfidence | None = None
    limits: ClassLimits | None = None
    examples: Examples = Examples()

    @field_validator("start", "floor", "ceiling")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        return None if value is None else Level.parse(value).label

    @field_validator("promotion_evidence")
    @classmethod
    def _evidence(cls, value: str) -> str:
        if value not in PROMOTION_EVIDENCE:
            raise ValueError(
                f"unknown promotion_evidence {value!r}; expected 'any' (every channel, timed by the reading "
                "rule) or 'cli' (only approvals given with `ratchet approve` count toward promotion)"
            )
        return value

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
    limits: SizeLimits = field(default_factory=SizeLimits)
    # Which answers count toward promotion (provenance.py): "any" channel, or only the "cli".
    promotion_evidence: str = "any"
    # Whether review_drafts may offer this class's drafts in the chat (run_command classes: no by default).
    chat_approval: bool = False

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
            trust=TrustParams(**_trust_fields(self.defaults)),
            confidence=self.defaults.confidence,
            file="(built-in)",
            line=0,
            limits=SizeLimits(**{k: getattr(self.defaults.limits, k) for k in SizeLimits.model_fields}),
        )

    def get(self, name: str) -> ActionClass | None:
        """The class with this name, including the built-in `unclassified`."""
        return self.unclassified if name == UNCLASSIFIED else self.classes.get(name)


def _trust_fields(source: BaseModel) -> dict[str, Any]:
    return {name: getattr(source, name) for name in TrustParams.model_fields}


def load_policy(directory: Path) -> Policy:
    """Load and validate every `*.toml` in `directory`; raise PolicyError on the first problem."""
    if not directory.is_dir():
        raise PolicyError(str(directory), "", "policy directory not found")
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise PolicyError(str(directory), "", "no *.toml policy files in the directory")
    defaults: Defaults | None = None
    defaults_file = ""
    raw_classes: list[tuple[str, str, Any, str]] = []
    digest = hashlib.sha256()
    for path in files:
        text = _read(path)
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(path.name, "", f"TOML syntax error: {exc}") from exc
        unknown = set(data) - {"defaults", "classes"}
        if unknown:
            raise PolicyError(path.name, sorted(unknown)[0], "unknown top-level key; expected 'defaults' or 'classes'")
        if "defaults" in data:
            if defaults is not None:
                raise PolicyError(path.name, "defaults", f"defaults are already set in {defaults_file}")
            defaults = _validate(Defaults, data["defaults"], path.name, "defaults")
            defaults_file = path.name
        classes = data.get("classes", {})
        if not isinstance(classes, dict):
            raise PolicyError(path.name, "classes", "expected tables such as [classes.docs-write]")
        raw_classes.extend((path.name, name, spec, text) for name, spec in classes.items())
    defaults = defaults or Defaults()
    compiled: dict[str, ActionClass] = {}
    for file, name, spec_data, text in raw_classes:
        if not CLASS_NAME.match(name) or name == UNCLASSIFIED:
            raise PolicyError(
                file,
                f"classes.{name}",
                f"class names are lower-case letters, digits, '-', '_' or '.' (and '{UNCLASSIFIED}' is reserved)",
            )
        if name in compiled:
            raise PolicyError(file, f"classes.{name}", f"class already declared in {compiled[name].file}")
        spec = _validate(ClassSpec, spec_data, file, f"classes.{name}")
        compiled[name] = _compile(name, spec, defaults, file, _line_of(text, name))
    policy = Policy(directory, defaults, compiled, digest.hexdigest()[:16], defaults_file or "00-defaults.toml")
    check_examples(policy)
    return policy


def lint_warnings(policy: Policy) -> list[str]:
    """What `ratchet lint` flags without failing: settings a reviewer should see, each naming class and file."""
    warnings = []
    for cls in sorted(policy.classes.values(), key=lambda c: c.name):
        if "run_command" in cls.tools and not cls.sandbox:
            warnings.append(
                f"warning: class {cls.name} ({cls.rule}) sets sandbox = false: its commands run outside the "
                "sandbox and can write the policy, the trust database, .git/hooks and anything outside the workspace"
            )
        if "run_command" in cls.tools and cls.network and cls.ceiling >= Level.AUTONOMOUS:
            warnings.append(
                f"warning: class {cls.name} ({cls.rule}) sets network = true and may reach autonomous: "
                "its commands can send what they read to the network without a human"
            )
    return warnings


def check_examples(policy: Policy) -> None:
    """Every example must land in its own class (or, for not_match, elsewhere)."""
    for cls in policy.classes.values():
        for kind, examples, want in (
            ("match", cls.examples.match, True),
            ("not_match", cls.examples.not_match, False),
        ):
            for index, example in enumerate(examples):
                got = classify_example(policy, example).name
                if (got == cls.name) != want:
                    problem = f"example {example.model_dump(exclude_none=True)} is classified as {got!r}" + (
                        "" if want else f", but it must not be {cls.name!r}"
                    )
                    raise PolicyError(cls.file, f"classes.{cls.name}.examples.{kind}[{index}]", problem)


def example_subjects(example: ExampleAction) -> list[Subject]:
    """The matcher's view of a policy example: an argv is unwrapped exactly as a real command is."""
    base = Subject(
        tool=example.tool,
        paths=(example.path,) if example.path else (),
        branch=example.branch,
        remote=example.remote,
        force=example.force,
    )
    if not example.argv:
        return [base]
    from .commands import analyse_argv  # commands.py knows nothing of policies; imported where needed

    analysis = analyse_argv(example.argv)
    subjects = [replace(base, commands=(tuple(cmd),)) for cmd in analysis.commands]
    return [*subjects, base] if analysis.opaque or not subjects else subjects


def classify_example(policy: Policy, example: ExampleAction) -> ActionClass:
    """The class a fresh workspace would give the example: of several parts, the most conservative."""
    classes = [policy.classify(s).cls for s in example_subjects(example)]
    return min(classes, key=lambda c: (c.start, c.ceiling, c.name))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(path.name, "", f"cannot read the file: {exc}") from exc


def _validate(model: type[M], data: Any, file: str, prefix: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join([prefix, *(str(part) for part in error["loc"])])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key; expected one of: {', '.join(sorted(_fields_at(model, error['loc'][:-1])))}"
        raise PolicyError(file, key, message) from exc


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys valid in the (nested) table at `loc`, for an unknown-key message."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            break
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            break
        current = nested
    return list(current.model_fields)


def _compile(name: str, spec: ClassSpec, defaults: Defaults, file: str, line: int) -> ActionClass:
    trust_data = _trust_fields(defaults)
    trust_data.update({k: v for k, v in spec.model_dump().items() if k in TrustParams.model_fields and v is not None})
    key = f"classes.{name}"
    try:
        trust = TrustParams(**trust_data)
    except ValidationError as exc:
        raise PolicyError(file, key, exc.errors()[0]["msg"]) from exc
    return ActionClass(
        name=name,
        description=spec.description,
        tools=frozenset(spec.tools),
        paths=_globs(spec.paths, file, f"{key}.paths"),
        argv=_argv(spec.argv),
        branches=_globs(spec.branches, file, f"{key}.branches"),
        remotes=tuple(spec.remotes) if spec.remotes is not None else None,
        force=spec.force,
        start=Level.parse(spec.start),
        floor=spec.floor_level,
        ceiling=Level.parse(spec.ceiling),
        priority=spec.priority,
        demote_on_complaint=spec.demote_on_complaint,
        count_execution_failures=spec.count_execution_failures,
        require_cli_approval=spec.require_cli_approval,
        allow_shell=spec.allow_shell,
        novelty=spec.novelty,
        trust=trust,
        confidence=_confidence(spec, defaults, file, key),
        file=file,
        line=line,
        examples=spec.examples,
        sandbox=spec.sandbox,
        network=spec.network,
        limits=(spec.limits or ClassLimits()).over(defaults.limits),
        promotion_evidence=spec.promotion_evidence,
        chat_approval=spec.chat_approval,
    )


def _confidence(spec: ClassSpec, defaults: Defaults, file: str, key: str) -> ConfidenceThresholds:
    if spec.confidence is None:
        return defaults.confidence
    merged = {**defaults.confidence.model_dump(), **spec.confidence.model_dump(exclude_none=True)}
    try:
        return ConfidenceThresholds(**merged)
    except ValidationError as exc:
        raise PolicyError(file, f"{key}.confidence", exc.errors()[0]["msg"]) from exc


def _globs(patterns: Sequence[str] | None, file: str, key: str) -> tuple[PathGlob, ...] | None:
    if patterns is None:
        return None
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(compile_glob(pattern))
        except GlobError as exc:
            raise PolicyError(file, f"{key}[{index}]", f"bad glob {pattern!r}: {exc}") from exc
    return tuple(compiled)


def _argv(prefixes: list[list[str]] | None) -> tuple[tuple[str, ...], ...] | None:
    return None if prefixes is None else tuple(tuple(prefix) for prefix in prefixes)


def _line_of(text: str, name: str) -> int:
    header = re.compile(rf"^[ \t]*\[[ \t]*classes[ \t]*\.[ \t]*[\"']?{re.escape(name)}[\"']?[ \t]*\]", re.MULTILINE)
    found = header.search(text) or re.search(rf"classes\s*\.\s*[\"']?{re.escape(name)}\b", text)
    return text.count("\n", 0, found.start()) + 1 if found else 1


POLICIES_ENV = "RATCHET_POLICIES"


def starter_policy_dir() -> Path:
    """The starter policy set shipped with Ratchet (the repository's `policies/`)."""
    packaged = Path(__file__).parent / "starter_policies"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "policies"  # a source checkout or editable install


def resolve_policy_dir(workspace: Path, given: Path | None) -> Path:
    """`--policies`, else `$RATCHET_POLICIES`, else `<workspace>/.ratchet/policies`, else the starter set."""
    if given is not None:
        return given
    env = os.environ.get(POLICIES_ENV)
    if env:
        return Path(env)
    team = workspace / ".ratchet" / "policies"
    return team if team.is_dir() else starter_policy_dir()
