"""Path globs for policy rules: `*`, `?`, `[...]` within a segment and `**` across segments.

Patterns are matched against workspace-relative POSIX paths (`docs/guide.md`). They are compiled
once at policy load; a malformed pattern is a policy error, never a silent non-match. `*` matches
dotfiles too, so `secrets/*` covers `secrets/.key`: a rule that protects must not be dodged by a dot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WILDCARDS = frozenset("*?[")


class GlobError(ValueError):
    """The pattern cannot be compiled; the message says what is wrong."""


@dataclass(frozen=True)
class PathGlob:
    """A compiled path pattern and how specific it is."""

    pattern: str
    regex: re.Pattern[str]
    specificity: int

    def matches(self, path: str) -> bool:
        """True when the whole workspace-relative path matches."""
        return self.regex.fullmatch(path) is not None


def compile_glob(pattern: str) -> PathGlob:
    """Compile a policy path pattern, or raise GlobError saying what is wrong with it."""
    if not pattern:
        raise GlobError("empty pattern")
    if pattern.startswith("/"):
        raise GlobError("patterns are relative to the workspace; remove the leading '/'")
    if "\\" in pattern:
        raise GlobError("backslash is not allowed; use '/' between segments")
    if "{" in pattern or "}" in pattern:
        raise GlobError("braces are not supported; list each alternative as its own pattern")
    segments = pattern.split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in ("", ".", ".."):
            raise GlobError(f"segment {segment!r} is not allowed (no empty, '.' or '..' segments)")
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in segment:
            raise GlobError("'**' must be a whole path segment, as in 'docs/**' or '**/*.md'")
        parts.append(_segment_regex(segment, pattern) + ("" if last else "/"))
    try:
        regex = re.compile("".join(parts))
    except re.error as exc:  # e.g. a reversed range such as [z-a]
        raise GlobError(f"invalid pattern {pattern!r}: {exc}") from exc
    return PathGlob(pattern, regex, _specificity(pattern))


def _segment_regex(segment: str, pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            start = i + 1
            negate = segment[start : start + 1] == "!"
            if negate:
                start += 1
            # A ']' first in the class is a member, as in fnmatch: '[]a]' and '[!]a]'.
            end = segment.find("]", start + 1 if segment[start : start + 1] == "]" else start)
            if end == -1:
                raise GlobError(f"unclosed '[' in {pattern!r}")
            body = segment[start:end]
            if not body:
                raise GlobError(f"empty character class in {pattern!r}")
            escaped = body.replace("\\", "\\\\").replace("^", "\\^").replace("]", "\\]").replace("[", "\\[")
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
            i = end
        elif char == "]":
            raise GlobError(f"unmatched ']' in {pattern!r}")
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


_CLASS = re.compile(r"\[!?\]?[^\]]*\]")


def _specificity(pattern: str) -> int:
    """Literal characters count (a character class counts for nothing); an exact path outranks any wildcard."""
    literal = sum(1 for char in _CLASS.sub("", pattern) if char not in _WILDCARDS)
    exact = not any(char in _WILDCARDS for char in pattern)
    return literal + (10_000 if exact else 0)
