"""Leading options read by a small option table, as wrappers and interpreters take them (`Opts`)."""

from __future__ import annotations

import re
from typing import NamedTuple


class Opts(NamedTuple):
    flags: frozenset[str] = frozenset()  # options without an argument (long ones may take `=V`)
    valued: frozenset[str] = frozenset()  # options taking an argument, attached or the next word
    attached: frozenset[str] = frozenset()  # options whose optional argument can only be attached
    stop: frozenset[str] = frozenset()  # valued options that end option parsing (python -c/-m)
    numeric: bool = False  # accepts `-N` (nice -5)


def names(words: str) -> frozenset[str]:
    """A set of names written as one space-separated string."""
    return frozenset(words.split())


def opts(flags: str = "", valued: str = "", attached: str = "", stop: str = "", numeric: bool = False) -> Opts:
    return Opts(names(flags), names(valued), names(attached), names(stop), numeric)


def parse_options(args: list[str], spec: Opts) -> tuple[int, dict[str, str]] | None:
    """Skip leading options; return (index of the first operand, options seen), None if unknown."""
    seen: dict[str, str] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return i + 1, seen
        name, eq, value = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        if name in spec.flags:
            seen[name] = value
        elif tok.startswith("--"):
            if name not in spec.valued or (not eq and i + 1 >= len(args)):
                return None
            if not eq:
                i += 1
                value = args[i]
            seen[name] = value
        elif spec.numeric and re.fullmatch(r"-[+-]?\d+", tok):
            pass
        elif not tok.startswith("-") or tok == "-":
            return i, seen
        else:
            for j in range(1, len(tok)):  # a cluster of short options: -iu NAME, -lc
                opt, rest = "-" + tok[j], tok[j + 1 :]
                if opt in spec.valued or opt in spec.attached:
                    if not rest and opt in spec.valued:
                        if i + 1 >= len(args):
                            return None
                        i += 1
                        rest = args[i]
                    seen[opt] = rest
                    if opt in spec.stop:
                        return i + 1, seen
                    break
                if opt not in spec.flags:
                    return None
                seen[opt] = ""
        i += 1
    return i, seen
