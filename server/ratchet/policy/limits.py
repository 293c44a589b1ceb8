"""Limits on every input: how large a call may be before any work is done on it, and how often.

`[defaults.limits]` sets them for every class; `[classes.NAME.limits]` raises or lowers any size
limit for one class. A class is known only once a call is classified, and classifying a command
means lexing it, so a call is checked twice:

1. At the very start of the operation's prepare, before any diff, lexing or redaction, against the
   loosest value that any class governing the tool (or the defaults) allows: the work a call can
   cost is bounded by the largest limit the policy grants anywhere.
2. Right after classification, against the limits of the class (or classes) it fell into.

Either refusal is a `LimitExceeded` naming the limit, the call's value, and where to raise it.
The rate limits (handoffs and notifications per minute) and the draft caps (drafts waiting per
session and per workspace, engine/flood.py) are not per class: they live in `[defaults.limits]` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ratchet.errors import LimitExceeded

KIB = 1024
MIB = 1024 * KIB
# How long a ceiling check may spend encoding at once: bounded memory for a string of any size.
_CHUNK = 1 * MIB


class SizeLimits(BaseModel):
    """The per-call size limits a class may override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_write_bytes: int = Field(10 * MIB, ge=1, description="bytes of a write_file's content or an edit's result")
    max_edits: int = Field(100, ge=1, description="edits in one edit_file call")
    max_argv_bytes: int = Field(64 * KIB, ge=1, description="a run_command argv: its bytes plus one per argument")
    max_shell_bytes: int = Field(64 * KIB, ge=1, description="bytes of a run_command shell string")
    max_stdin_bytes: int = Field(1 * MIB, ge=0, description="bytes of a run_command's stdin")
    max_text_bytes: int = Field(
        64 * KIB, ge=1, description="bytes of any other text: intent, uncertainty, a commit message, a handoff's fields"
    )


class Limits(SizeLimits):
    """The `[defaults.limits]` table: the size limits and the rates."""

    handoffs_per_minute: int = Field(10, ge=1, description="request_handoff calls one session may make per minute")
    notifications_per_minute: int = Field(
        10, ge=1, description="notify runs per minute; events past it are coalesced into one run with a count"
    )
    max_drafts_per_session: int = Field(
        50, ge=1, description="drafts one session may have waiting for a human; past it a call is refused, not queued"
    )
    max_drafts_per_workspace: int = Field(
        200, ge=1, description="drafts waiting for a human from every session of one workspace (host and path)"
    )

    @model_validator(mode="after")
    def _caps_nest(self) -> Self:
        if self.max_drafts_per_session > self.max_drafts_per_workspace:
            raise ValueError(
                f"max_drafts_per_session ({self.max_drafts_per_session}) exceeds max_drafts_per_workspace "
                f"({self.max_drafts_per_workspace}); expected the session's cap at most the workspace's"
            )
        return self


class ClassLimits(BaseModel):
    """A class's `[classes.NAME.limits]`: any size limit, raised or lowered; the rest come from the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_write_bytes: int | None = Field(None, ge=1)
    max_edits: int | None = Field(None, ge=1)
    max_argv_bytes: int | None = Field(None, ge=1)
    max_shell_bytes: int | None = Field(None, ge=1)
    max_stdin_bytes: int | None = Field(None, ge=0)
    max_text_bytes: int | None = Field(None, ge=1)

    def over(self, defaults: Limits) -> SizeLimits:
        """The class's effective size limits."""
        return SizeLimits(**{**_sizes(defaults), **self.model_dump(exclude_none=True)})


SIZE_KEYS: tuple[str, ...] = tuple(SizeLimits.model_fields)
# What each limit measures, for the refusal message.
WHAT = {
    "max_write_bytes": "bytes",
    "max_edits": "edits",
    "max_argv_bytes": "bytes",
    "max_shell_bytes": "bytes",
    "max_stdin_bytes": "bytes",
    "max_text_bytes": "bytes",
}


def _sizes(limits: SizeLimits) -> dict[str, int]:
    return {key: getattr(limits, key) for key in SIZE_KEYS}


def utf8_len(text: str) -> int:
    """The UTF-8 size of `text` in linear time and bounded memory (no copy of a huge string at once)."""
    if text.isascii():  # O(1) in CPython: the string knows it is ASCII
        return len(text)
    return sum(len(text[i : i + _CHUNK].encode("utf-8", "surrogatepass")) for i in range(0, len(text), _CHUNK))


def argv_bytes(argv: Sequence[str]) -> int:
    """An argv's size as the kernel counts it: each argument's bytes and its terminating NUL."""
    return sum(utf8_len(arg) + 1 for arg in argv)


def where_to_raise(key: str, defaults_file: str, cls: str | None = None) -> str:
    """How to raise a limit, in the policy's own words."""
    if key in SIZE_KEYS:
        return f"raise it with [defaults.limits] {key} in {defaults_file}, or [classes.{cls or 'NAME'}.limits] {key}"
    return f"raise it with [defaults.limits] {key} in {defaults_file}"


class LimitedClass(Protocol):
    """What the checks read of an action class (policy/model.py's `ActionClass`): its name, the tools it
    governs and its size limits."""

    @property
    def name(self) -> str: ...

    @property
    def tools(self) -> frozenset[str]: ...

    @property
    def limits(self) -> SizeLimits: ...


class Ceiling:
    """The first check: the loosest size limits any class governing a tool (or the defaults) allows."""

    def __init__(self, defaults: Limits, classes: Iterable[LimitedClass], defaults_file: str) -> None:
        self.defaults = defaults
        self.defaults_file = defaults_file
        self._classes = list(classes)

    def limit(self, tool: str, key: str) -> int:
        """The largest value of `key` any class that governs `tool` allows (at least the default's)."""
        values = [int(getattr(self.defaults, key))]
        values += [int(getattr(c.limits, key)) for c in self._classes if tool in c.tools]
        return max(values)

    def check(self, tool: str, key: str, value: int, what: str) -> int:
        """Refuse `value` if it is over every class's limit; return it (to record with the call)."""
        limit = self.limit(tool, key)
        if value > limit:
            raise LimitExceeded(
                key,
                value,
                limit,
                f"{tool}: {_amount(what, value, key)}, over the limit {key} = {limit}; "
                + where_to_raise(key, self.defaults_file),
            )
        return value

    def text(self, tool: str, name: str, value: str | None) -> int:
        """Check one free-text argument (intent, a commit message...) against max_text_bytes; its size."""
        if not isinstance(value, str):
            return 0
        return self.check(tool, "max_text_bytes", utf8_len(value), name)


def check_class(tool: str, sizes: dict[str, int], classes: Iterable[LimitedClass], defaults_file: str) -> None:
    """The second check: the call's measured sizes against each class it fell into."""
    for cls in classes:
        for key, value in sizes.items():
            limit = int(getattr(cls.limits, key))
            if value > limit:
                raise LimitExceeded(
                    key,
                    value,
                    limit,
                    f"{tool}: {_amount(_WHAT_IT_IS[key], value, key)}, over class {cls.name}'s limit "
                    f"{key} = {limit}; " + where_to_raise(key, defaults_file, cls.name),
                )


_WHAT_IT_IS = {
    "max_write_bytes": "the content",
    "max_edits": "the number of edits",
    "max_argv_bytes": "the argv",
    "max_shell_bytes": "the shell string",
    "max_stdin_bytes": "stdin",
    "max_text_bytes": "a text argument",
}


def _amount(what: str, value: int, key: str) -> str:
    return f"{value} edits in one call" if key == "max_edits" else f"{what} is {value} {WHAT[key]}"


def rate_refusal(
    key: str, count: int, limit: int, window_s: float, wait_s: float, defaults_file: str, what: str
) -> LimitExceeded:
    """A refusal for a rate limit: how many, over which limit, when to retry, and how to raise it."""
    return LimitExceeded(
        key,
        count,
        limit,
        f"{what}: {count} in the last {window_s:g} seconds reach the limit {key} = {limit}; try again in "
        f"{max(wait_s, 0.1):.1f} seconds, or " + where_to_raise(key, defaults_file),
    )
