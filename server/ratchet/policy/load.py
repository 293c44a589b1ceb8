"""Loading the policy directory: every `*.toml`, validated and compiled, fail-closed."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ratchet.errors import PolicyError
from ratchet.policy.argv import analyse_argv
from ratchet.policy.globs import GlobError, PathGlob, compile_glob
from ratchet.policy.levels import Level
from ratchet.policy.limits import ClassLimits
from ratchet.policy.model import (
    CLASS_NAME,
    UNCLASSIFIED,
    ActionClass,
    ClassSpec,
    ConfidenceThresholds,
    Defaults,
    ExampleAction,
    Policy,
    Subject,
    TrustParams,
    trust_fields,
)
from ratchet.policy.reviewer import ReviewerSpec

M = TypeVar("M", bound=BaseModel)


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
    reviewer: ReviewerSpec | None = None
    reviewer_file = ""
    digest = hashlib.sha256()
    for path in files:
        text = _read(path)
        _digest_file(digest, path, text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(path.name, "", f"TOML syntax error: {exc}") from exc
        unknown = set(data) - {"defaults", "classes", "reviewer"}
        if unknown:
            raise PolicyError(
                path.name, sorted(unknown)[0], "unknown top-level key; expected 'defaults', 'classes' or 'reviewer'"
            )
        if "reviewer" in data:
            if reviewer_file:
                raise PolicyError(path.name, "reviewer", f"the reviewer is already set in {reviewer_file}")
            reviewer = _validate(ReviewerSpec, data["reviewer"], path.name, "reviewer")
            reviewer_file = path.name
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
    policy = Policy(
        directory,
        defaults,
        compiled,
        digest.hexdigest()[:16],
        defaults_file or "00-defaults.toml",
        reviewer,
        reviewer_file,
    )
    check_examples(policy)
    return policy


# Files some program runs when it meets them: a build (Makefile), a doc builder (Sphinx's conf.py), a
# test runner (conftest.py), the interpreter (sitecustomize.py, .pth), direnv (.envrc), and scripts.
EXECUTED_FILES = (
    "conf.py", "conftest.py", "setup.py", "noxfile.py", "sitecustomize.py", "usercustomize.py", "startup.pth",
    "Makefile", "GNUmakefile", "rules.mk", "justfile", "Rakefile", "Dockerfile", "package.json", ".envrc",
    "build.sh", "run.bash", "tool.py", "tool.js", "tool.ps1", "tool.bat",
)  # fmt: skip
CODE_SUFFIXES = (".py", ".sh", ".bash", ".zsh", ".js", ".ts", ".go", ".rs", ".rb", ".pl", ".php", ".ps1", ".java")
_WRITES = ("write_file", "edit_file")


def executed_files(policy: Policy, cls: ActionClass) -> list[str]:
    """Files that get executed which the class takes although none of its patterns names code: a class
    for documentation (or any other non-code content) by directory, catching `docs/conf.py`. Code
    outranks directories: such a file should fall to a code or build class. Only classes that may
    reach autonomous: a class held to a human (CI or agent configuration) guards what it takes."""
    if not cls.paths or not any(tool in cls.tools for tool in _WRITES) or cls.ceiling < Level.AUTONOMOUS:
        return []
    patterns = [glob.pattern for glob in cls.paths]
    if any(p.endswith(CODE_SUFFIXES) or p.rsplit("/", 1)[-1] in EXECUTED_FILES for p in patterns):
        return []  # the class names code itself: it is a code class, and says so
    tool = next(t for t in _WRITES if t in cls.tools)
    roots = {p.split("*", 1)[0].rstrip("/") for p in patterns if "*" in p}
    found = []
    for root in sorted(roots):
        for name in EXECUTED_FILES:
            path = f"{root}/{name}" if root else name
            if policy.classify(Subject(tool=tool, paths=(path,))).cls.name == cls.name:
                found.append(path)
    return found


def lint_warnings(policy: Policy) -> list[str]:
    """What `ratchet lint` flags without failing: settings a reviewer should see, each naming class and file."""
    warnings = []
    for cls in sorted(policy.classes.values(), key=lambda c: c.name):
        if found := executed_files(policy, cls):
            warnings.append(
                f"warning: class {cls.name} ({cls.rule}) takes files that get executed ({', '.join(found[:6])}"
                f"{', ...' if len(found) > 6 else ''}) though none of its patterns names code: a build, a doc "
                "builder or a test runner runs them, so they are code, not content. Name the content's file "
                "types instead of its directory (code outranks directories), or let a code class take them"
            )
        if "run_command" in cls.tools and not cls.sandbox:
            warnings.append(
                f"warning: class {cls.name} ({cls.rule}) sets sandbox = false (profile 'off'): its commands run "
                "outside the sandbox and can write the policy, the trust database, .git/hooks and anything "
                "outside the workspace"
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

    analysis = analyse_argv(example.argv)
    subjects = [replace(base, commands=(tuple(cmd),)) for cmd in analysis.commands]
    return [*subjects, base] if analysis.opaque or not subjects else subjects


def classify_example(policy: Policy, example: ExampleAction) -> ActionClass:
    """The class a fresh workspace would give the example: of several parts, the most conservative."""
    classes = [policy.classify(s).cls for s in example_subjects(example)]
    return min(classes, key=lambda c: (c.start, c.ceiling, c.name))


def _digest_file(digest: Any, path: Path, text: str) -> None:
    """What a policy's fingerprint covers of one file: its name and its text."""
    digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")


def files_digest(directory: Path) -> str | None:
    """The full sha256 of what `load_policy` reads and fingerprints (each `*.toml`'s name and text, in
    order), or None when a file cannot be read (then only `load_policy` can say what is wrong)."""
    digest = hashlib.sha256()
    try:
        for path in sorted(directory.glob("*.toml")):
            _digest_file(digest, path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return digest.hexdigest()


class PolicyCache:
    """Loaded policies kept for a long-lived process (the resident hook server), each reused only while
    its files hold exactly the text it was loaded from: every `load` reads and hashes the files (a
    fraction of a millisecond) and parses and validates them again (the milliseconds) only when they
    changed. An edit counts at the next call, and a broken one fails closed as `load_policy` does."""

    def __init__(self) -> None:
        self._kept: dict[Path, tuple[str, Policy]] = {}

    def load(self, directory: Path) -> Policy:
        """The policy in `directory` (see the class docstring); PolicyError as `load_policy`."""
        digest = files_digest(directory)
        kept = self._kept.get(directory)
        if digest is not None and kept is not None and kept[0] == digest:
            return kept[1]
        policy = load_policy(directory)
        # Kept only if the files did not change while they were loaded: the policy's own fingerprint
        # (a prefix of the same digest) matches what was hashed before.
        if digest is not None and digest.startswith(policy.fingerprint):
            self._kept[directory] = (digest, policy)
        else:
            self._kept.pop(directory, None)
        return policy


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
    trust_data = trust_fields(defaults)
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
        sandbox=spec.sandbox != "off",
        profile=str(spec.sandbox),
        network=spec.network,
        limits=(spec.limits or ClassLimits()).over(defaults.limits),
        promotion_evidence=spec.promotion_evidence,
        chat_approval=spec.chat_approval,
        require_other_reviewer=spec.require_other_reviewer,
        reviewer=spec.reviewer,
        verify=tuple(tuple(check) for check in spec.verify or ()),
        verify_on=spec.verify_on,
        verify_timeout_s=spec.verify_timeout_s,
        undo_on_failure=spec.undo_on_failure,
        secret=spec.secret,
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
    packaged = Path(__file__).parents[1] / "starter_policies"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "policies"  # a source checkout or editable install


def resolve_policy_dir(workspace: Path, given: Path | None) -> Path:
    """`--policies`, else `$RATCHET_POLICIES`, else `<workspace>/.ratchet/policies`, else the starter set."""
    if given is not None:
        return given
    env = os.environ.get(POLICIES_ENV)
    if env:
        return Path(env)
    team = workspace / ".ratchet" / "policies"
    return team if team.is_dir() else starter_policy_dir()
