"""Command analysis: every normalization rule and every opaque case, table-driven."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from ratchet.errors import InvalidRequest
from ratchet.policy.argv import MAX_DEPTH, CommandAnalysis, analyse_argv, analyse_shell

A = analyse_argv
S = analyse_shell

# (input, expected commands, expected opaque, a phrase expected in the reasons or "")
CASES: list[tuple[str, CommandAnalysis, list[list[str]], bool, str]] = [
    # 1. program paths become basenames
    ("abs path", A(["/usr/bin/pytest", "-q"]), [["pytest", "-q"]], False, "classified as 'pytest'"),
    # ...but not paths the agent can write: relative, or inside the workspace
    ("rel path", A(["./node_modules/.bin/jest"]), [["./node_modules/.bin/jest"]], False, ""),
    ("dot slash", A(["./pytest", "-q"]), [["./pytest", "-q"]], False, ""),
    ("in workspace", A(["/ws/bin/pytest"], workspace="/ws"), [["/ws/bin/pytest"]], False, ""),
    ("sibling of workspace", A(["/ws-other/pytest"], workspace="/ws"), [["pytest"]], False, "classified as"),
    ("nested rel", S("sh -c './pytest -q'"), [["./pytest", "-q"]], False, ""),
    ("plain", A(["pytest", "tests/"]), [["pytest", "tests/"]], False, ""),
    # 2. wrappers are peeled
    ("env", A(["env", "-i", "-u", "HOME", "A=1", "B=2", "pytest", "-x"]), [["pytest", "-x"]], False, "env"),
    ("env cluster", A(["env", "-iuHOME", "--", "pytest"]), [["pytest"]], False, ""),
    ("env alone", A(["env"]), [["env"]], False, ""),
    ("env -S", A(["env", "-S", "pytest -q"]), [["env", "-S", "pytest -q"]], True, "env -S"),
    ("env unknown option", A(["env", "--frob", "pytest"]), [["env", "--frob", "pytest"]], True, "unrecognised"),
    ("nice -n", A(["nice", "-n", "10", "pytest"]), [["pytest"]], False, "nice"),
    ("nice -N", A(["nice", "-5", "pytest"]), [["pytest"]], False, ""),
    ("nice -N only where numeric", A(["env", "-5", "pytest"]), [["env", "-5", "pytest"]], True, "unrecognised"),
    ("nice long option, nothing run", A(["nice", "--adjustment", "5"]), [["nice", "--adjustment", "5"]], False, ""),
    ("short option without its value", A(["nice", "-n"]), [["nice", "-n"]], True, "unrecognised"),
    ("nohup", A(["nohup", "pytest"]), [["pytest"]], False, ""),
    ("timeout", A(["timeout", "-k", "5", "--signal=INT", "30s", "pytest"]), [["pytest"]], False, ""),
    ("timeout long option's value", A(["timeout", "--signal", "INT", "30s", "pytest"]), [["pytest"]], False, ""),
    ("long option without its value", A(["timeout", "--signal"]), [["timeout", "--signal"]], True, "unrecognised"),
    ("time", A(["time", "-p", "pytest"]), [["pytest"]], False, ""),
    ("stdbuf", A(["stdbuf", "-oL", "-e", "0", "pytest"]), [["pytest"]], False, ""),
    ("command", A(["command", "-p", "pytest"]), [["pytest"]], False, ""),
    ("command -v", A(["command", "-v", "pytest"]), [["command", "-v", "pytest"]], False, ""),
    ("exec", A(["exec", "-a", "name", "pytest"]), [["pytest"]], False, ""),
    ("nested wrappers", A(["nice", "nohup", "env", "A=1", "timeout", "9", "/bin/pytest"]), [["pytest"]], False, ""),
    ("busybox", A(["busybox", "sh", "-c", "ls"]), [["ls"]], False, ""),
    ("prefix assignments", S("A=1 B='x y' pytest -q"), [["pytest", "-q"]], False, ""),
    ("assignment only", S("A=1"), [], False, ""),
    # 3. assignments that change what runs
    ("env PATH", A(["env", "PATH=.", "pytest"]), [["pytest"]], True, "PATH"),
    ("prefix LD_PRELOAD", S("LD_PRELOAD=./x.so pytest"), [["pytest"]], True, "LD_PRELOAD"),
    ("export PATH", S("export PATH=.:$PATH; pytest"), [["export", "PATH=.:$PATH"], ["pytest"]], True, "PATH"),
    ("standalone PATH", S("PATH=.\npytest"), [["pytest"]], True, "PATH"),
    # 4. privilege wrappers are opaque, inner command still listed
    ("sudo", A(["sudo", "-u", "root", "--", "rm", "-rf", "/"]), [["rm", "-rf", "/"]], True, "privileges"),
    ("su", A(["su", "-c", "rm x"]), [["su", "-c", "rm x"]], True, "privileges"),
    # 5. shells
    (
        "bash -c",
        A(["bash", "-c", "pytest -q && rm -rf build"]),
        [["pytest", "-q"], ["rm", "-rf", "build"]],
        False,
        "-c",
    ),
    ("bash -lc", A(["bash", "-lc", "pytest"]), [["pytest"]], False, ""),
    ("sh -ec", A(["/bin/sh", "-ec", "pytest"]), [["pytest"]], False, ""),
    ("sh -o pipefail -c", A(["sh", "-euo", "pipefail", "-c", "pytest"]), [["pytest"]], False, ""),
    ("zsh -c", A(["zsh", "--no-rcs", "-c", "pytest"]), [["pytest"]], False, ""),
    ("dash -c with $0", A(["dash", "-c", "pytest", "name", "arg"]), [["pytest"]], False, ""),
    ("bash --rcfile", A(["bash", "--rcfile", "rc", "-c", "ls"]), [["ls"]], False, ""),
    ("shell script file", A(["bash", "run.sh", "x"]), [["bash", "run.sh", "x"]], False, ""),
    ("shell from stdin", A(["bash"]), [["bash"]], True, "stdin"),
    ("shell -s", A(["sh", "-s", "x"]), [["sh", "-s", "x"]], True, "stdin"),
    ("shell -c no script", A(["sh", "-c"]), [["sh", "-c"]], True, ""),
    ("sh -c $@", A(["sh", "-c", '"$@"', "sh", "rm", "x"]), [["$@"]], True, "computed"),
    # 6. xargs
    ("xargs", A(["xargs", "-0", "-n1", "-P", "4", "rm", "-f"]), [["rm", "-f"]], False, "appended"),
    # mv removes its source, whose name xargs substitutes from input: not a literal path (rules 12, 15).
    ("xargs -I", A(["xargs", "-I{}", "sh", "-c", "mv {} x"]), [["mv", "{}", "x"]], True, "which the shell expands"),
    ("xargs default", A(["xargs"]), [["echo"]], False, ""),
    ("xargs unknown", A(["xargs", "--frob", "rm"]), [["xargs", "--frob", "rm"]], True, ""),
    # 7. find
    (
        "find -exec",
        A(["find", ".", "-name", "*.pyc", "-exec", "rm", "-f", "{}", ";", "-print"]),
        [["find", ".", "-name", "*.pyc", "-print"], ["rm", "-f"]],
        False,
        "each found path",
    ),
    ("find -execdir +", A(["find", "-execdir", "chmod", "+x", "{}", "+"]), [["find"], ["chmod", "+x"]], False, ""),
    ("find -ok sh -c", A(["find", "-ok", "sh", "-c", "rm x", ";"]), [["find"], ["rm", "x"]], False, ""),
    ("find -delete", A(["find", ".", "-name", "x", "-delete"]), [["find", ".", "-name", "x", "-delete"]], False, ""),
    ("find -exec {}", A(["find", ".", "-exec", "{}", ";"]), [["find", "."]], True, "found file"),
    # 8. interpreters
    ("python -c", A(["python", "-c", "import os"]), [["python", "-c", "import os"]], True, "-c"),
    ("python3 -Bc", A(["python3", "-Bc", "x"]), [["python3", "-Bc", "x"]], True, ""),
    ("python -m", A(["python", "-m", "pytest", "-q"]), [["pytest", "-q"]], False, "-m pytest"),
    (
        "python3.11 -u -m",
        A(["/usr/bin/python3.11", "-u", "-mpip", "install", "x"]),
        [["pip", "install", "x"]],
        False,
        "",
    ),
    ("python script", A(["python", "script.py", "-c"]), [["python", "script.py", "-c"]], False, ""),
    ("python stdin", A(["python3"]), [["python3"]], True, "stdin"),
    ("python -", A(["python3", "-"]), [["python3", "-"]], True, "stdin"),
    ("python unknown", A(["python", "--frob"]), [["python", "--frob"]], True, "unrecognised"),
    ("node -e", A(["node", "-e", "x"]), [["node", "-e", "x"]], True, "command line"),
    ("node --eval=", A(["node", "--eval=x"]), [["node", "--eval=x"]], True, ""),
    ("node -pe", A(["node", "-pe", "x"]), [["node", "-pe", "x"]], True, ""),
    ("node script", A(["node", "--inspect", "app.js"]), [["node", "--inspect", "app.js"]], False, ""),
    ("node repl", A(["node"]), [["node"]], True, "stdin"),
    ("perl -lne", A(["perl", "-lne", "print"]), [["perl", "-lne", "print"]], True, ""),
    ("ruby -e", A(["ruby", "-e", "x"]), [["ruby", "-e", "x"]], True, ""),
    ("php -r", A(["php", "-r", "x"]), [["php", "-r", "x"]], True, ""),
    ("lua -e", A(["lua", "-e", "x"]), [["lua", "-e", "x"]], True, ""),
    ("deno eval", A(["deno", "eval", "x"]), [["deno", "eval", "x"]], True, "deno"),
    ("deno run", A(["deno", "run", "-A", "x.ts"]), [["deno", "run", "-A", "x.ts"]], False, ""),
    ("awk program", A(["awk", "{print $1}"]), [["awk", "{print $1}"]], True, "system()"),
    ("awk -f", A(["awk", "-f", "prog.awk", "in"]), [["awk", "-f", "prog.awk", "in"]], False, ""),
    ("gawk -f -e", A(["gawk", "-f", "p.awk", "-e", "x"]), [["gawk", "-f", "p.awk", "-e", "x"]], True, ""),
    # 9. builtins that run or rebind code
    ("eval", S("eval 'rm x'"), [["eval", "rm x"]], True, "eval"),
    ("source", S("source env.sh; pytest"), [["source", "env.sh"], ["pytest"]], True, "source"),
    ("dot", S(". ./env.sh"), [[".", "./env.sh"]], True, "rebinds"),
    ("trap", S("trap 'rm x' EXIT"), [["trap", "rm x", "EXIT"]], True, ""),
    ("alias", S("alias pytest='rm -rf /'"), [["alias", "pytest=rm -rf /"]], True, ""),
    # 10. shell strings
    ("separators", S("a; b && c || d | e |& f & g\nh"), [[x] for x in "abcdefgh"], False, ""),
    ("quotes", S("""echo 'a b' "c $d" e\\ f"""), [["echo", "a b", "c $d", "e f"]], False, ""),
    ("comment", S("echo hi # ; rm -rf x\nls"), [["echo", "hi"], ["ls"]], False, ""),
    ("hash inside word", S("echo a#b; rm x"), [["echo", "a#b"], ["rm", "x"]], False, ""),
    ("carriage return is a word char", S("pytest\r\n"), [["pytest\r"]], False, ""),
    ("line continuation", S("pytest \\\n  -q"), [["pytest", "-q"]], False, ""),
    (
        "if/while bodies",
        S("if pytest; then rm -rf x; fi; while true; do ls; done"),
        [["pytest"], ["rm", "-rf", "x"], ["true"], ["ls"]],
        False,
        "",
    ),
    ("braces group", S("{ pytest; ! ls; }"), [["pytest"], ["ls"]], False, ""),
    ("quoted reserved word", S("'if' x"), [["if", "x"]], False, ""),
    ("test brackets", S("[ -f x ] && pytest"), [["[", "-f", "x", "]"], ["pytest"]], False, ""),
    ("redirect", S("pytest > out.log 2>&1"), [["pytest"]], False, "writes via redirection to out.log"),
    ("fd redirect", S("pytest 2>err.log"), [["pytest"]], False, "err.log"),
    ("input redirect", S("wc -l < in.txt"), [["wc", "-l"]], False, ""),
    ("herestring", S("bash <<< 'rm x'"), [["bash"]], True, "stdin"),
    ("exec redirect", S("exec >log; pytest"), [["pytest"]], False, "log"),
    ("shell -c nested", S("""sh -c 'bash -c "env nice pytest"'"""), [["pytest"]], False, ""),
    ("literal $( in single quotes", S("echo '$(x)'"), [["echo", "$(x)"]], False, ""),
    # 10. opaque shell constructs
    ("command substitution", S("echo $(rm -rf /)"), [], True, "command substitution"),
    ("in double quotes", S('echo "$(id)"'), [], True, "command substitution"),
    ("backticks", S("echo `id`"), [], True, "command substitution"),
    ("arithmetic", S("echo $((1+2))"), [], True, "command substitution"),
    ("process substitution", S("diff <(a) <(b)"), [], True, "process substitution"),
    ("heredoc", S("cat <<EOF\nhi\nEOF"), [], True, "heredoc"),
    ("subshell", S("(rm -rf x)"), [], True, "subshell"),
    ("function", S("f() { rm x; }; f"), [], True, "function"),
    ("function keyword", S("function f { rm x; }"), [], True, "'function'"),
    ("for loop", S("for i in a; do rm $i; done"), [["rm", "$i"]], True, "'for'"),
    ("case", S("case x in a) rm;; esac"), [], True, ""),
    ("unterminated quote", S("echo 'oops"), [], True, "unterminated"),
    ("variable program", S("$CMD args"), [["$CMD", "args"]], True, "computed"),
    ("glob program", S("./script* x"), [["./script*", "x"]], True, "computed"),
    ("brace program", S("{rm,-rf,x}"), [["{rm,-rf,x}"]], True, "computed"),
    ("ansi-c program", S("$'\\x72m' x"), [], True, "$'...'"),
    ("redirect without target", S("pytest >"), [], True, "no target"),
    # 11. bounded recursion
    ("depth", A(["env"] * (MAX_DEPTH + 3) + ["pytest"]), [], True, "deeper than"),
]


@pytest.mark.parametrize(
    ("analysis", "commands", "opaque", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_analysis(analysis: CommandAnalysis, commands: list[list[str]], opaque: bool, reason: str) -> None:
    assert analysis.commands == commands
    assert analysis.opaque is opaque, analysis.reasons
    if reason:
        assert any(reason in r for r in analysis.reasons), analysis.reasons


def test_redirect_targets_are_listed() -> None:
    result = S("pytest > out.log 2>&1; echo x >> a.txt; cmd &> both; ls >&2; ls 2>/dev/null <in")
    assert result.redirects == ["out.log", "a.txt", "both", "/dev/null"]
    assert not result.opaque


def test_sh_c_in_shell_reports_inner_opacity() -> None:
    result = A(["bash", "-c", "pytest && $(curl x)"])
    assert result.opaque and any("command substitution" in r for r in result.reasons)


def test_nested_shell_depth_is_bounded() -> None:
    script = "pytest 'a b'"
    nested = script
    for _ in range(MAX_DEPTH):
        nested = "sh -c " + shlex.quote(nested)
    assert S(nested).commands == [["pytest", "a b"]] and not S(nested).opaque
    for _ in range(MAX_DEPTH + 2):
        script = "sh -c " + shlex.quote(script)  # quoting of quoting: exercises the lexer too
    result = S(script)
    assert result.opaque and any("deeper than" in r for r in result.reasons)


def test_nesting_is_followed_to_max_depth_and_one_level_more_is_opaque() -> None:
    """The bound sits exactly at MAX_DEPTH, for wrappers in an argv and shells in a script alike."""
    at_bound = A(["env"] * MAX_DEPTH + ["pytest"])
    assert at_bound.commands == [["pytest"]] and not at_bound.opaque, at_bound.reasons
    past = A(["env"] * (MAX_DEPTH + 1) + ["pytest"])
    assert past.opaque and any("deeper than" in r for r in past.reasons), past.reasons
    script = "pytest"
    for _ in range(MAX_DEPTH + 1):
        script = "sh -c " + shlex.quote(script)
    assert S(script).opaque and any("deeper than" in r for r in S(script).reasons)


def test_an_analysis_cannot_be_changed_after_the_fact() -> None:
    result = A(["pytest"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.opaque = True  # type: ignore[misc]


@pytest.mark.parametrize("argv", [[], [""], ["", "pytest"]])
def test_empty_argv_is_invalid(argv: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        analyse_argv(argv)


def test_an_empty_argument_after_the_program_is_an_argument() -> None:
    assert analyse_argv(["pytest", ""]).commands == [["pytest", ""]]


def test_string_argv_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        analyse_argv("pytest -q")


@pytest.mark.parametrize("script", ["", "  \n\t"])
def test_blank_script_is_invalid(script: str) -> None:
    with pytest.raises(InvalidRequest):
        analyse_shell(script)
