"""A small POSIX/bash lexer: a script's words and operators, or `Dark` when it cannot be followed."""

from __future__ import annotations

import re
from typing import NamedTuple

from ratchet.policy.argv_options import names


class Word(NamedTuple):
    text: str  # after quote removal; expansions like $X are kept literally
    plain: int  # how many leading characters were unquoted (== len(text) for a fully plain word)
    expands: bool = False  # the shell would expand it: unquoted $ ~ * ? [ {, or $ inside "..."


class Dark(Exception):
    """The script uses a construct whose effect we cannot follow."""


_OPS = sorted(
    names("&& || ;;& ;; ;& |& &>> &> <<< <<- << <> >> >| >& <& <( >( ; & | < > ( )") | {"\n"},
    key=len,
    reverse=True,  # longest first, so `&&` is not read as `&` `&`
)


_OP_CHARS = frozenset(op[0] for op in _OPS)


SEPARATORS = names("; && || | |& &") | {"\n"}


WRITES = names("> >> >| &> &>> <> >&")


REDIRECTS = WRITES | {"<", "<&", "<<<"}


DARK_OPS = {
    **dict.fromkeys(["(", ")"], "a subshell or function definition"),
    **dict.fromkeys(["<<", "<<-"], "a heredoc"),
    **dict.fromkeys(["<(", ">("], "process substitution"),
    **dict.fromkeys([";;", ";&", ";;&"], "a case clause"),
}


STRUCTURE = names("! { } if then else elif fi while until do done")


COMPOUND = names("for case select function coproc")


def lex(script: str) -> list[Word | str]:
    """Split a script into words and operators the way a POSIX shell would; raise Dark if unsure."""
    tokens: list[Word | str] = []
    buf: list[str] = []
    plain = -1  # where quoting started in the current word; -1 while it is all plain
    started = expands = False
    i, n = 0, len(script)

    def end_word() -> None:
        nonlocal plain, started, expands
        if started:
            text = "".join(buf)
            tokens.append(Word(text, len(text) if plain < 0 else plain, expands))
        buf.clear()
        plain, started, expands = -1, False, False

    def quoted() -> None:
        nonlocal plain, started
        plain = sum(map(len, buf)) if plain < 0 else plain  # once per word
        started = True

    while i < n:
        c = script[i]
        if c == "\\":
            if not script.startswith("\n", i + 1):  # backslash-newline is a line continuation
                quoted()
                buf.append(script[i + 1 : i + 2])
            i += 2
        elif c == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise Dark("an unterminated quote")
            quoted()
            buf.append(script[i + 1 : end])
            i = end + 1
        elif c == '"':
            quoted()
            i, dollar = _double_quoted(script, i + 1, buf)
            expands |= dollar
        elif c == "`" or script.startswith("$(", i):
            raise Dark(_substitution(script, i))
        elif c == "$":
            _dollar(script, i, in_double=False)  # bash-only expansions raise Dark (rule 17)
            expands = True
            buf.append(c)
            started = True
            i += 1
        elif c == "#" and not started:  # a comment only at the start of a word
            end = script.find("\n", i)
            i = n if end < 0 else end
        elif c in " \t":  # not \r: to a shell it is part of the word (`pytest\r` is not pytest)
            end_word()
            i += 1
        elif c in _OP_CHARS and (op := next((o for o in _OPS if script.startswith(o, i)), None)) is not None:
            if op[0] in "<>" and plain < 0 and "".join(buf).isdigit():
                buf.clear()  # `2>`: the digits name a file descriptor, they are not a word
                started = False
            end_word()
            tokens.append(op)
            i += len(op)
        else:
            # `~` expands at the start of a word and after `=` or `:` (assignments); zsh expands a
            # leading `=` (`=rm` is rm's path).
            expands |= c in "*?[{" or (c == "~" and (not buf or buf[-1] in "=:")) or (c == "=" and not started)
            buf.append(c)
            started = True
            i += 1
    end_word()
    return tokens


def _double_quoted(script: str, i: int, buf: list[str]) -> tuple[int, bool]:
    """Read a double-quoted string starting after its quote; return the index after the closing one
    and whether it holds an expansion (`$`: parameters and arithmetic still expand inside "...")."""
    dollar = False
    while i < len(script):
        c = script[i]
        if c == '"':
            return i + 1, dollar
        dollar |= c == "$"
        if c == "`" or script.startswith("$(", i):
            raise Dark(_substitution(script, i))
        if c == "$":
            _dollar(script, i, in_double=True)
        if c == "\\" and i + 1 < len(script):
            nxt = script[i + 1]
            if nxt != "\n":
                buf.append(nxt if nxt in '$`"\\' else c + nxt)  # inside "", \ escapes only these
            i += 2
            continue
        buf.append(c)
        i += 1
    raise Dark("an unterminated quote")


def _substitution(script: str, i: int) -> str:
    if script.startswith("$((", i):
        return "arithmetic expansion $((...)) (bash evaluates variables' values in it) or command substitution"
    return "command substitution"


_PARAM = re.compile(r"(#?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!0-])")


_LITERAL_AFTER_DOLLAR = frozenset(" \t\n/.,:;&|<>)}%\\")  # `$` before these is a literal dollar sign


_BASH_OPERATORS = {
    "[": "an array subscript (bash evaluates it as arithmetic, running any $(...) in a variable's value)",
    ":": "a substring offset ${name:offset} (arithmetic: bash evaluates variables' values in it)",
    "/": "a pattern substitution ${name/pattern/string}",
    "^": "a case modification ${name^}",
    ",": "a case modification ${name,}",
    "@": "a transformation ${name@...} (@P runs prompt expansion, which runs command substitutions)",
}


def _dollar(script: str, i: int, in_double: bool) -> None:
    """Check the expansion starting at the `$` at `i`; raise Dark for any form we do not fully
    understand (rule 17). Understood: `$name`, `$1`, the special parameters, `${name}`, and the POSIX
    operators `${name:-w}` `${name-w}` (`=`, `?`, `+` likewise), `${#name}`, `${name#p}` `${name%p}`
    (and `##`, `%%`); their words are lexed on, so an expansion nested in them is checked too."""
    nxt = script[i + 1 : i + 2]
    if nxt == "[":
        raise Dark("arithmetic expansion $[...] (bash evaluates variables' values in it)")
    if nxt in ("'", '"'):
        if in_double:
            return  # `"$"` or `"$'"`: a literal dollar sign inside double quotes
        raise Dark("$'...' or $\"...\" quoting (bash rewrites the quoted text: it is not the literal word)")
    if nxt == "{":
        _brace(script, i + 2)
        return
    if not nxt or nxt in _LITERAL_AFTER_DOLLAR or (in_double and nxt == '"'):
        return
    if not _PARAM.match(nxt):
        raise Dark(f"the expansion ${nxt}... (not a plain parameter: zsh and bash give it other meanings)")


def _brace(script: str, j: int) -> None:
    """`${` ends at `j`: the parameter expansion must be one of the POSIX forms (see _dollar)."""
    rest = script[j : j + 200]
    if rest.startswith(("!}", "#}")):
        return  # ${!} (last background pid) and ${#} (number of arguments)
    if rest.startswith("!"):
        raise Dark("indirect expansion ${!name} (bash evaluates the named variable, subscripts included)")
    match = _PARAM.match(rest)
    if match is None:
        raise Dark("a parameter expansion ${...} we do not understand")
    after = rest[match.end() :]
    if after.startswith("}"):
        return
    if match.group(1):
        raise Dark("a length expansion ${#...} of an array or with an operator")
    if after[:1] in ("-", "=", "?", "+", "#", "%") or (after[:1] == ":" and after[1:2] in ("-", "=", "?", "+")):
        return
    raise Dark(_BASH_OPERATORS.get(after[:1], "a parameter expansion ${...} we do not understand"))
