"""Shell analysis fails closed: every form of bash's manual ("Shell Expansions", "Quoting", "Shell
Commands", "Redirections", "Aliases", "Shell Functions") is either understood (the commands listed
are what bash runs) or opaque; never a plain command that would run something else.

The payloads that made bash run a command the analysis never saw are also run in a real bash, so
the test shows each form is dangerous and not merely unusual.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ratchet.policy.argv import analyse_argv, analyse_shell
from ratchet.policy.load import starter_policy_dir

from .helpers import Claude, git

OPAQUE = None  # the analysis must say it cannot tell
SPECIAL = ["$?", "$#", "$@", "$*", "$$", "$!", "$-", "$0", "$1", "${10}"]
TRIMS = ["${X#a}", "${X##a}", "${X%a}", "${X%%a}"]

# (the manual's section and form, script, OPAQUE or the commands bash runs)
FORMS: list[tuple[str, str, list[list[str]] | None]] = [
    # 3.5.1 Brace expansion: a program word is computed; arguments of programs whose options matter too
    ("brace: program", "{rm,-rf,x}", OPAQUE),
    ("brace: argument of echo", "echo {a,b}", [["echo", "{a,b}"]]),
    ("brace: argument that becomes an option", "sort {-o,out.txt} notes", OPAQUE),
    # 3.5.2 Tilde expansion
    ("tilde: argument", "ls ~", [["ls", "~"]]),
    ("tilde: redirection target", "echo x > ~/f", OPAQUE),
    ("tilde: program", "~/bin/tool", OPAQUE),
    # 3.5.3 Shell parameter expansion: POSIX forms understood, every bash-only operator opaque
    ("parameter: $name", "echo $HOME", [["echo", "$HOME"]]),
    ("parameter: ${name}", "echo ${HOME}", [["echo", "${HOME}"]]),
    ("parameter: special", "echo $? $# $@ $* $$ $! $- $0 $1 ${10}", [["echo", *SPECIAL]]),
    ("parameter: ${name:-word}", "echo ${X:-d}", [["echo", "${X:-d}"]]),
    ("parameter: ${name-word}", "echo ${X-d}", [["echo", "${X-d}"]]),
    ("parameter: ${name:=word}", "echo ${X:=d}", [["echo", "${X:=d}"]]),
    ("parameter: ${name:?word}", "echo ${X:?d}", [["echo", "${X:?d}"]]),
    ("parameter: ${name:+word}", "echo ${X:+d}", [["echo", "${X:+d}"]]),
    ("parameter: ${#name}", "echo ${#X}", [["echo", "${#X}"]]),
    ("parameter: ${name#pattern}", "echo ${X#a} ${X##a} ${X%a} ${X%%a}", [["echo", *TRIMS]]),
    ("parameter: nested arithmetic in a word", "echo ${X:-$[y]}", OPAQUE),
    ("parameter: ${name:offset}", "echo ${X:y}", OPAQUE),
    ("parameter: ${name:offset:length}", "echo ${X:1:y}", OPAQUE),
    ("parameter: ${@:offset}", "echo ${@:2}", OPAQUE),
    ("parameter: ${!name}", "echo ${!X}", OPAQUE),
    ("parameter: ${!prefix*}", "echo ${!X*}", OPAQUE),
    ("parameter: ${!name[@]}", "echo ${!X[@]}", OPAQUE),
    ("parameter: ${name[subscript]}", "echo ${X[y]}", OPAQUE),
    ("parameter: ${name[@]}", "echo ${X[@]}", OPAQUE),
    ("parameter: ${#name[@]}", "echo ${#X[@]}", OPAQUE),
    ("parameter: ${name/pattern/string}", "echo ${X/a/b} ", OPAQUE),
    ("parameter: ${name//pattern/string}", "echo ${X//a/b}", OPAQUE),
    ("parameter: ${name^pattern}", "echo ${X^^}", OPAQUE),
    ("parameter: ${name,pattern}", "echo ${X,,}", OPAQUE),
    ("parameter: ${name@Q}", "echo ${X@Q}", OPAQUE),
    ("parameter: ${name@P}", "echo ${X@P}", OPAQUE),
    ("parameter: ${name@E}", "echo ${X@E}", OPAQUE),
    ("parameter: ${name@A}", "echo ${X@A}", OPAQUE),
    ("parameter: inside double quotes", 'echo "${X@P}"', OPAQUE),
    ("parameter: zsh flags", "echo ${(e)X}", OPAQUE),
    ("parameter: zsh $=name", "echo $=X", OPAQUE),
    ("parameter: zsh $~name", "echo $~X", OPAQUE),
    ("parameter: value as an option", "sort $X notes", OPAQUE),
    ("parameter: quoted value as an option", 'sort "$X" notes', OPAQUE),
    ("parameter: value as a wrapper's operand", "timeout $X echo hi", OPAQUE),
    # 3.5.4 Command substitution
    ("command substitution: $(...)", "echo $(id)", OPAQUE),
    ("command substitution: backquotes", "echo `id`", OPAQUE),
    ("command substitution: in double quotes", 'echo "$(id)"', OPAQUE),
    ("command substitution: held in an assignment", "x='a[$(id)]'", OPAQUE),
    ("command substitution: held in backquotes", "x='`id`'", OPAQUE),
    ("command substitution: held in export", "export x='a[$(id)]'", OPAQUE),
    ("command substitution: held in a prefix assignment", "x='$(id)' echo hi", OPAQUE),
    ("command substitution: held in env", "env 'x=$(id)' echo hi", OPAQUE),
    # 3.5.5 Arithmetic expansion (and the arithmetic contexts elsewhere)
    ("arithmetic: $((...))", "echo $((1+2))", OPAQUE),
    ("arithmetic: $((...)) with a variable", "echo $((x))", OPAQUE),
    ("arithmetic: $[...]", "echo $[x]", OPAQUE),
    ("arithmetic: $[...] in double quotes", 'echo "$[x]"', OPAQUE),
    ("arithmetic: ((...))", "((x))", OPAQUE),
    ("arithmetic: let", "let x=y", OPAQUE),
    ("arithmetic: declare -i", "declare -i x=y", OPAQUE),
    ("arithmetic: typeset -i", "typeset -i x=y", OPAQUE),
    ("arithmetic: local -i", "local -i x=y", OPAQUE),
    ("arithmetic: declare -n (nameref)", "declare -n r=x", OPAQUE),
    ("arithmetic: declare -a", "declare -a x", OPAQUE),
    ("arithmetic: subscript assignment", "a[x]=1", OPAQUE),
    ("arithmetic: subscript in declare", "declare 'a[x]=1'", OPAQUE),
    ("arithmetic: [[ -eq ]]", "[[ $x -eq 1 ]]", OPAQUE),
    ("arithmetic: [[ ]] alone", "[[ -f x ]]", OPAQUE),
    ("arithmetic: read into a subscript", "read 'a[x]'", OPAQUE),
    ("arithmetic: unset a subscript", "unset 'a[x]'", OPAQUE),
    ("arithmetic: printf -v", "printf -v 'a[x]' 1", OPAQUE),
    ("arithmetic: test -v", "test -v 'a[x]'", OPAQUE),
    ("arithmetic: [ -v ]", "[ -v 'a[x]' ]", OPAQUE),
    # 3.5.6 Process substitution
    ("process substitution: <(...)", "cat <(id)", OPAQUE),
    ("process substitution: >(...)", "echo x > >(id)", OPAQUE),
    # 3.5.7 Word splitting (of an unquoted expansion) and IFS
    ("word splitting: IFS assignment", "IFS=/ ls", OPAQUE),
    ("word splitting: echo of a variable", "echo $X", [["echo", "$X"]]),
    # 3.5.8 Filename expansion
    ("pathname: argument of ls", "ls *.py", [["ls", "*.py"]]),
    ("pathname: argument whose file names become options", "rg TODO *", OPAQUE),
    ("pathname: after --", "rg TODO -- *", [["rg", "TODO", "--", "*"]]),
    ("pathname: git pathspecs after --", "git log -- src/*.py", [["git", "log", "--", "src/*.py"]]),
    ("pathname: git before --", "git log $X", OPAQUE),
    ("pathname: program", "./scr* x", OPAQUE),
    ("pathname: extglob", "ls !(x)", OPAQUE),
    ("pathname: redirection target", "echo x > *.txt", OPAQUE),
    # 3.1.2 Quoting
    ("quoting: single", "echo 'a $(id) b'", [["echo", "a $(id) b"]]),
    ("quoting: double", 'echo "a $X b"', [["echo", "a $X b"]]),
    ("quoting: escape", "echo a\\ b", [["echo", "a b"]]),
    ("quoting: $'...' ANSI-C", "echo $'\\x41'", OPAQUE),
    ("quoting: $'...' ANSI-C program", "$'\\x72m' -rf x", OPAQUE),
    ('quoting: $"..." locale', 'echo $"hello"', OPAQUE),
    ("quoting: literal $ in double quotes", 'echo "cost: 5$"', [["echo", "cost: 5$"]]),
    # 3.6 Redirections, here-documents and here-strings
    ("redirection: output", "echo x > out.txt", [["echo", "x"]]),
    ("redirection: here-document", "cat <<EOF\nx\nEOF", OPAQUE),
    ("redirection: here-string", "cat <<< hello", [["cat"]]),
    ("redirection: here-string with arithmetic", "cat <<< $[x]", OPAQUE),
    ("redirection: expanded target", "echo x > $F", OPAQUE),
    # 3.2 Shell commands: pipelines, lists, compound commands, coprocesses, functions
    ("pipeline", "ls | wc -l", [["ls"], ["wc", "-l"]]),
    ("list", "ls && echo ok || echo no; pwd & wc x", [["ls"], ["echo", "ok"], ["echo", "no"], ["pwd"], ["wc", "x"]]),
    ("time pipeline", "time ls", [["ls"]]),
    ("negation", "! ls", [["ls"]]),
    ("subshell", "(ls)", OPAQUE),
    ("group", "{ ls; }", [["ls"]]),
    ("if", "if ls; then pwd; fi", [["ls"], ["pwd"]]),
    ("for", "for i in a; do ls; done", OPAQUE),
    ("arithmetic for", "for ((i=0; i<x; i++)); do ls; done", OPAQUE),
    ("case", "case x in a) ls;; esac", OPAQUE),
    ("select", "select x in a; do ls; done", OPAQUE),
    ("coproc", "coproc ls", OPAQUE),
    ("function definition", "f() { rm x; }; f", OPAQUE),
    ("function keyword", "function f { rm x; }", OPAQUE),
    # 6.6 Aliases and builtins that run or rebind code
    ("alias", "alias ls='rm -rf x'", OPAQUE),
    ("eval", "eval ls", OPAQUE),
    ("source", "source x.sh", OPAQUE),
    ("dot", ". x.sh", OPAQUE),
    ("trap", "trap 'rm x' EXIT", OPAQUE),
    ("enable", "enable -f x.so x", OPAQUE),
    ("zsh =command", "=rm x", OPAQUE),
]


@pytest.mark.parametrize(("script", "expected"), [pytest.param(f[1], f[2], id=f[0]) for f in FORMS])
def test_every_expansion_form_is_understood_or_opaque(script: str, expected: list[list[str]] | None) -> None:
    analysis = analyse_shell(script)
    if expected is OPAQUE:
        assert analysis.opaque, (script, analysis.commands, analysis.reasons)
        assert analysis.reasons  # says why
    else:
        assert not analysis.opaque, (script, analysis.reasons)
        assert analysis.commands == expected


# Each runs `touch pwned` in a real bash although its only visible program is `echo` (or `true`).
PAYLOADS = [
    pytest.param("x='a[$(touch pwned)]'; echo $[x]", id="$[x]"),
    pytest.param("x='a[$(touch pwned)]'; echo $((x))", id="$((x))"),
    pytest.param("x='a[$(touch pwned)]'; v=abc; echo ${v:x}", id="${v:x}"),
    pytest.param("x='a[$(touch pwned)]'; echo ${v[x]}", id="${v[x]}"),
    pytest.param("x='a[$(touch pwned)]'; echo ${!x}", id="${!x}"),
    pytest.param("x='$(touch pwned)'; echo ${x@P}", id="${x@P}"),
    pytest.param("x='a[$(touch pwned)]'; [[ $x -eq 0 ]]; echo", id="[[ -eq ]]"),
    pytest.param("x='a[$(touch pwned)]'; declare -i y=x; echo", id="declare -i"),
]


@pytest.mark.parametrize("script", PAYLOADS)
def test_the_payloads_run_code_in_real_bash_and_are_opaque(script: str, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-c", script], cwd=tmp_path, capture_output=True, timeout=10, check=False)
    assert (tmp_path / "pwned").exists(), "the form no longer runs code in bash: the payload is stale"
    assert analyse_shell(script).opaque
    assert analyse_argv(["bash", "-c", script]).opaque


def test_a_hook_bash_command_with_arithmetic_is_not_allowed(tmp_path: Path, ratchet_bin: Path) -> None:
    """Through Claude Code's hook the issue's line was allowed and ran `touch`; now it is not allowed."""
    ws = tmp_path / "ws"
    ws.mkdir()
    policies = ws / ".ratchet" / "policies"
    shutil.copytree(starter_policy_dir(), policies)
    git(ws, "init", "-q", "-b", "main")
    claude = Claude(ratchet_bin, ws, policies, tmp_path / "state" / "ratchet.db")
    plain, _ = claude.bash("echo hello")
    assert plain is not None and plain["permissionDecision"] == "allow"  # echo itself is still a read
    for script in ("x='a[$(touch pwned)]'; echo $[x]", "x='$(touch pwned)'; echo ${x@P}"):
        decision, _ = claude.bash(script)
        assert decision is not None and decision["permissionDecision"] != "allow", script
    assert not (ws / "pwned").exists()
