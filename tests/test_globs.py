"""Path globs: what each wildcard matches, how specific a pattern is, and which patterns are refused."""

from __future__ import annotations

import pytest

from ratchet.policy.globs import GlobError, PathGlob, compile_glob


def matches(pattern: str, path: str) -> bool:
    """Compile `pattern` and match it against the whole workspace-relative `path`."""
    return compile_glob(pattern).matches(path)


def specificity(pattern: str) -> int:
    """The compiled pattern's specificity score."""
    return compile_glob(pattern).specificity


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # `**` as the last segment: anything below, at any depth, but only below that directory.
        ("docs/**", "docs/a", True),
        ("docs/**", "docs/a/b.md", True),
        ("docs/**", "docs/.hidden/x", True),
        ("docs/**", "docsx/a", False),
        ("docs/**", "docs", False),
        ("docs/**", "x/docs/a", False),
        # `**/` as a leading segment: zero or more whole directories.
        ("**/*.md", "README.md", True),
        ("**/*.md", "a/b/c.md", True),
        ("**/*.md", "a/b/c.mdx", False),
        ("**/*.md", "a/b.md/c", False),
        ("**/*.md", "a/b/cmd", False),
        # `**` in the middle: zero or more directories between.
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/bb", False),
        ("a/**/b", "ab", False),
        # `*` stays within one segment.
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        ("docs/*", "docs/a", True),
        ("docs/*", "docs/a/b", False),
        ("src/*/main.py", "src/pkg/main.py", True),
        ("src/*/main.py", "src/a/b/main.py", False),
        ("src/*/main.py", "src/main.py", False),
        # dotfiles are matched by `*` and by `**` (a protecting rule must not be dodged by a dot).
        ("*", ".env", True),
        ("secrets/*", "secrets/.key", True),
        ("**/.env", ".env", True),
        ("**/.env", "a/b/.env", True),
        ("**/.env", "a/b/.envrc", False),
        ("**/*", ".github/workflows/ci.yml", True),
        # `?` is exactly one character, never `/`.
        ("?.md", "a.md", True),
        ("?.md", "ab.md", False),
        ("?.md", ".md", False),
        ("a?b", "a/b", False),
        ("a?b", "a.b", True),
        # character classes and ranges.
        ("file[0-9].txt", "file7.txt", True),
        ("file[0-9].txt", "filex.txt", False),
        ("file[0-9].txt", "file10.txt", False),
        ("[abc].py", "b.py", True),
        ("[abc].py", "d.py", False),
        ("[]a]", "]", True),
        ("[]a]", "a", True),
        ("[]a]", "b", False),
        # negated classes: anything but the listed characters, and never `/`.
        ("[!abc].py", "d.py", True),
        ("[!abc].py", "a.py", False),
        ("a[!x]b", "ayb", True),
        ("a[!x]b", "axb", False),
        ("a[!x]b", "a/b", False),
        ("a[!x]b", "ab", False),
        ("x[!^]y", "x^y", False),
        ("x[!^]y", "xzy", True),
        # everything else is literal: regex metacharacters, case, the dot.
        ("file.txt", "file.txt", True),
        ("file.txt", "fileXtxt", False),
        ("a+b(c)$", "a+b(c)$", True),
        ("a+b(c)$", "aab(c)", False),
        ("docs/a.md", "Docs/a.md", False),
        ("docs/a.md", "docs/a.md/", False),
        ("docs/a.md", "x/docs/a.md", False),
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_compiled_glob_keeps_its_pattern() -> None:
    glob = compile_glob("docs/**")
    assert isinstance(glob, PathGlob)
    assert glob.pattern == "docs/**"


# -- specificity -------------------------------------------------------------------------------


def test_specificity_counts_literal_characters() -> None:
    # "docs/" is five literal characters; "/.md" in "**/*.md" is four.
    assert specificity("docs/**") == 5
    assert specificity("**/*.md") == 4
    assert specificity("**/test_*.py") == len("/test_.py")


def test_exact_path_outranks_any_wildcard() -> None:
    exact = specificity(".env")
    assert exact > specificity("**/.env")  # fewer literal characters, still wins
    assert exact > specificity("some/very/long/literal/directory/prefix/that/goes/on/*")
    assert exact > specificity("a?cdefghijklmnopqrstuvwxyz0123456789")


def test_longer_literal_outranks_shorter() -> None:
    assert specificity("docs/api/**") > specificity("docs/**")
    assert specificity("**/test_*.py") > specificity("**/*.py")
    assert specificity("src/*/main.py") > specificity("src/**")


def test_specificity_orders_patterns() -> None:
    patterns = ["**", "**/*.py", "src/**", "src/api/**", "src/api/*.py", "src/api/app.py"]
    ranked = sorted(patterns, key=specificity, reverse=True)
    assert ranked == ["src/api/app.py", "src/api/*.py", "src/api/**", "**/*.py", "src/**", "**"]


def test_character_class_members_are_not_literal_characters() -> None:
    # Per the documented rule ("literal characters count"), `src/main*` (8 literal characters) is more
    # specific than `src/[abcdefgh]*` (4 literal characters; the class is one wildcard position).
    assert specificity("src/main*") > specificity("src/[abcdefgh]*")


# -- malformed patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/etc/passwd", "leading '/'"),
        ("..", "'..'"),
        ("../secrets", "'..'"),
        ("docs/../secrets", "'..'"),
        ("./docs", "'.'"),
        ("a//b", "segment ''"),
        ("docs/", "segment ''"),
        ("", "empty pattern"),
        ("[abc", "unclosed '['"),
        ("docs/file[0-9.txt", "unclosed '['"),
        ("a]", "unmatched ']'"),
        ("[!]", "unclosed"),
        ("**/*.{md,rst}", "braces"),
        ("a}b", "braces"),
        ("a**b", "'**' must be a whole path segment"),
        ("docs/**.md", "'**' must be a whole path segment"),
        ("***", "'**' must be a whole path segment"),
        ("docs\\a.md", "backslash"),
    ],
)
def test_malformed_pattern_raises_glob_error(pattern: str, problem: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert problem in str(caught.value)


def test_glob_error_is_a_value_error() -> None:
    assert issubclass(GlobError, ValueError)


def test_reversed_range_raises_glob_error() -> None:
    with pytest.raises(GlobError):
        compile_glob("file[z-a].txt")


def test_negated_class_may_start_with_a_literal_bracket() -> None:
    glob = compile_glob("[!]a].txt")
    assert glob.matches("b.txt")
    assert not glob.matches("].txt")
    assert not glob.matches("a.txt")
