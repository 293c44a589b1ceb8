"""policy/shell_lexer.py on its own: a script's exact words (text, how much of each is unquoted, whether
the shell would expand it) and operators, and every construct it refuses to follow (`Dark`)."""

from __future__ import annotations

import pytest

from ratchet.policy.shell_lexer import Dark, Word, lex

W = Word


def understood(words: str) -> tuple[str, list[Word | str]]:
    """`echo` with these unquoted expansions, each one word the shell expands."""
    return f"echo {words}", [W("echo", 4), *(W(w, len(w), True) for w in words.split(" "))]


# script -> the tokens lex returns: words (text after quote removal, unquoted prefix length, expands) and
# operators as strings.
TOKENS: list[tuple[str, list[Word | str]]] = [
    # inside double quotes a backslash escapes only $ ` " \ and a newline; the rest keep it
    ('echo "a\\"b"', [W("echo", 4), W('a"b', 0)]),
    ('echo "a\\$b\\\\c\\`d"', [W("echo", 4), W("a$b\\c`d", 0)]),
    ('echo "a\\xb"', [W("echo", 4), W("a\\xb", 0)]),
    ('echo "a\\\nb"', [W("echo", 4), W("ab", 0)]),
    # operators, longest first: `&&` is not `&` `&`, `>>` is not `>` `>`
    ("a && b", [W("a", 1), "&&", W("b", 1)]),
    ("a>>f", [W("a", 1), ">>", W("f", 1)]),
    (
        "a\tb;c|d|&e&f\nj",
        [W("a", 1), W("b", 1), ";", W("c", 1), "|", W("d", 1), "|&", W("e", 1), "&", W("f", 1), "\n", W("j", 1)],
    ),
    (
        "cat <<<x <>f >|g &>h &>>i",
        [W("cat", 3), "<<<", W("x", 1), "<>", W("f", 1), ">|", W("g", 1), "&>", W("h", 1), "&>>", W("i", 1)],
    ),
    # digits before a redirection name a file descriptor; digits inside a word do not
    ("a 2>f 2>>g 2>&1", [W("a", 1), ">", W("f", 1), ">>", W("g", 1), ">&", W("1", 1)]),
    ("a x2>f", [W("a", 1), W("x2", 2), ">", W("f", 1)]),
    ('a "2">f 2\\>g', [W("a", 1), W("2", 0), ">", W("f", 1), W("2>g", 1)]),
    # how much of a word is unquoted: counted up to its first quote, once
    ('"a"b"c"', [W("abc", 0)]),
    ('ab"c"d', [W("abcd", 2)]),
    ("ab'c'd'e'", [W("abcde", 2)]),
    ("a\\ b", [W("a b", 1)]),
    ("a\\\nb", [W("ab", 2)]),
    # a comment starts only at the start of a word; \r is part of a word
    ("a#b #c\nd", [W("a#b", 3), "\n", W("d", 1)]),
    ("a #c", [W("a", 1)]),
    ("#c", []),
    ("a\r b", [W("a\r", 2), W("b", 1)]),
    # what the shell would expand: $ (unquoted or in double quotes), globs, braces, ~ at the start or after
    # = or :, a leading = (zsh)
    ("echo $x \"$y\" '$z'", [W("echo", 4), W("$x", 2, True), W("$y", 0, True), W("$z", 0)]),
    ("a *.py ? [ab] {a,b}", [W("a", 1), W("*.py", 4, True), W("?", 1, True), W("[ab]", 4, True), W("{a,b}", 5, True)]),
    ("a ~ b~ x=~/a y=b:~/c", [W("a", 1), W("~", 1, True), W("b~", 2), W("x=~/a", 5, True), W("y=b:~/c", 7, True)]),
    ("=rm a=b", [W("=rm", 3, True), W("a=b", 3)]),
    ('a*"x" "$x"y', [W("a*x", 2, True), W("$xy", 0, True)]),
    # a dollar sign the shell leaves as it is
    ("echo $ $/x $.", [W("echo", 4), W("$", 1, True), W("$/x", 3, True), W("$.", 2, True)]),
    ('echo "$" "$ x"', [W("echo", 4), W("$", 0, True), W("$ x", 0, True)]),
    # the parameter expansions understood
    understood("${x} ${#x} ${!} ${#} $1 $@ $?"),
    understood("${x:-y} ${x-y} ${x=a} ${x?a} ${x+a} ${x:=a} ${x:?a} ${x:+a}"),
    understood("${x#a} ${x##a} ${x%a} ${x%%a}"),
]


@pytest.mark.parametrize(("script", "tokens"), TOKENS, ids=[t[0] for t in TOKENS])
def test_a_script_is_split_into_exactly_these_tokens(script: str, tokens: list[Word | str]) -> None:
    assert lex(script) == tokens


# script -> a phrase of the reason it cannot be followed
DARK: list[tuple[str, str]] = [
    ('echo "oops', "unterminated"),
    ("echo 'oops", "unterminated"),
    ('echo "a\\', "unterminated"),
    ('echo "a\\"', "unterminated"),
    ("echo $((1+2))", "arithmetic expansion \\$\\(\\("),
    ('echo "$((1))"', "arithmetic expansion \\$\\(\\("),
    ("echo $(x)", "^command substitution$"),
    ("echo `x`", "^command substitution$"),
    ('echo "$(x)"', "^command substitution$"),
    ('echo "`x`"', "^command substitution$"),
    ("echo $[1]", "arithmetic expansion \\$\\["),
    ('echo "$[1]"', "arithmetic expansion \\$\\["),
    ("echo $'x'", "quoting"),
    ('echo $"x"', "quoting"),
    ("echo ${!x}", "indirect expansion"),
    ('echo "${!x}"', "indirect expansion"),
    ("echo ${x[1]}", "array subscript"),
    ("echo ${x:1}", "substring offset"),
    ("echo ${x/a/b}", "pattern substitution"),
    ("echo ${x^}", "case modification"),
    ("echo ${x,}", "case modification"),
    ("echo ${x@P}", "transformation"),
    ("echo ${#x[@]}", "length expansion"),
    ("echo ${#x:-y}", "length expansion"),
    ("echo ${(e)x}", "we do not understand"),
    ("echo ${x;}", "we do not understand"),
    ("echo ${x", "we do not understand"),
    ("echo $=x", "the expansion \\$="),
    ("echo $~x", "the expansion \\$~"),
    ('echo "$=x"', "the expansion \\$="),
]


@pytest.mark.parametrize(("script", "reason"), DARK, ids=[d[0] for d in DARK])
def test_a_construct_that_cannot_be_followed_is_dark(script: str, reason: str) -> None:
    with pytest.raises(Dark, match=reason):
        lex(script)
