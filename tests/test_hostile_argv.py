"""Hostile arguments: a command whose own options or operands write or run must not pass for a read.

Table tests of the analysis (policy/argv.py rules 12-16) and of how the starter policy classes what it
finds. The end-to-end versions, through the MCP server, are in test_hostile_commands.py.
"""

from __future__ import annotations

import pytest

from ratchet.policy.argv import CommandAnalysis, analyse_argv, analyse_shell
from ratchet.policy.levels import Level
from ratchet.policy.load import load_policy, starter_policy_dir
from ratchet.policy.model import Subject
from ratchet.policy.options import GIT_SUBCOMMANDS, PROGRAMS

WS = "/ws"


def A(argv: list[str]) -> CommandAnalysis:
    return analyse_argv(argv, WS)


def S(script: str) -> CommandAnalysis:
    return analyse_shell(script, WS)


# ---- every program of every starter class that is, or can become, autonomous -------------------

# For each program: argvs using its side-effect options, and what the analysis must make of them:
# a path it writes, or "opaque". Programs with no such option are listed in NO_SIDE_EFFECT_OPTIONS.
SIDE_EFFECTS: dict[str, list[tuple[list[str], str]]] = {
    "sort": [
        (["sort", "-o", "out.txt", "in"], "out.txt"),
        (["sort", "in", "--output=out.txt"], "out.txt"),  # GNU permutes: options after operands count
        (["sort", "--out=out.txt", "in"], "out.txt"),  # getopt_long abbreviation
        (["sort", "--o=out.txt", "in"], "out.txt"),  # the shortest one
        (["sort", "-uo", "out.txt", "in"], "out.txt"),  # in a cluster
        (["sort", "-oout.txt", "in"], "out.txt"),  # attached
        (["sort", "--compress-program=sh", "in"], "opaque"),
        (["sort", "--comp", "sh", "in"], "opaque"),
        (["sort", "-T", "dir", "in"], "opaque"),
    ],
    "uniq": [(["uniq", "-", "pwn.py"], "pwn.py"), (["uniq", "-c", "in", "out"], "out")],
    "tree": [(["tree", "-o", "out.txt"], "out.txt"), (["tree", "-R"], "opaque")],
    "rg": [
        (["rg", "--pre", "./x.sh", "foo"], "opaque"),
        (["rg", "--pre=./x.sh", "foo"], "opaque"),
        (["rg", "--pre-glob", "*.pdf", "foo"], "opaque"),
        (["rg", "-z", "foo"], "opaque"),
        (["rg", "--search-zip", "foo"], "opaque"),
        (["rg", "--hostname-bin", "./x.sh", "foo"], "opaque"),
    ],
    "file": [(["file", "-C", "-m", "magic"], "opaque"), (["file", "-z", "a.gz"], "opaque")],
    "pytest": [
        (["pytest", "--junitxml=report.xml"], "report.xml"),
        (["pytest", "--junit-xml", "report.xml"], "report.xml"),
        (["pytest", "--basetemp=build/tmp"], "build/tmp"),
        (["pytest", "-p", "evil_plugin"], "opaque"),
        (["pytest", "-vp", "evil_plugin"], "opaque"),
        (["pytest", "-o", "cache_dir=.git/x"], "opaque"),
        (["pytest", "--cov-report=xml:.git/hooks/pre-commit"], "opaque"),
        (["pytest", "--rootdir=.ratchet"], "opaque"),
        (["pytest", "--junitx=report.xml"], "report.xml"),  # argparse abbreviation (loose table)
        (["pytest", "--b", "build/tmp"], "build/tmp"),
    ],
    "tox": [(["tox", "-c", "other.ini"], "opaque")],
    "nox": [(["nox", "-f", "other.py"], "opaque")],
    "npm": [
        (["npm", "test", "--script-shell", "./x.sh"], "opaque"),
        (["npm", "run", "test", "--prefix", "/x"], "opaque"),
    ],
    "yarn": [(["yarn", "test", "--cwd", "/x"], "opaque")],
    "pnpm": [(["pnpm", "test", "-C", "/x"], "opaque")],
    "go": [
        (["go", "test", "-exec", "./x.sh", "./..."], "opaque"),
        (["go", "test", "-toolexec=./x.sh"], "opaque"),
        (["go", "build", "-o", "bin/app"], "bin/app"),
        (["go", "vet", "-vettool=./x"], "opaque"),
    ],
    "cargo": [
        (["cargo", "test", "--config", "target.x.runner='sh'"], "opaque"),
        (["cargo", "build", "--target-dir", "t"], "t"),
    ],
    "jest": [(["jest", "--outputFile=r.json"], "r.json"), (["jest", "--testRunner", "./x.js"], "opaque")],
    "vitest": [(["vitest", "--outputFile", "r.json"], "r.json"), (["vitest", "--config", "x.ts"], "opaque")],
    "make": [
        (["make", "test", "SHELL=./x.sh"], "opaque"),
        (["make", "-f", "other.mk"], "opaque"),
        (["make", "--eval=x:"], "opaque"),
    ],
    "mvn": [(["mvn", "test", "-s", "settings.xml"], "opaque")],
    "gradle": [(["gradle", "test", "-I", "init.gradle"], "opaque")],
    "rspec": [(["rspec", "-o", "out.txt"], "out.txt"), (["rspec", "-r", "./evil"], "opaque")],
    "phpunit": [(["phpunit", "--log-junit", "j.xml"], "j.xml"), (["phpunit", "--bootstrap", "x.php"], "opaque")],
    "ruff": [(["ruff", "check", "-o", "r.txt"], "r.txt"), (["ruff", "check", "--output-file=r.txt"], "r.txt")],
    "black": [(["black", "--config", "x.toml", "."], "opaque")],
    "isort": [(["isort", "--settings-path", "x", "."], "opaque")],
    "flake8": [(["flake8", "--output-file", "r.txt"], "r.txt"), (["flake8", "--enable-extensions", "X"], "opaque")],
    "pylint": [(["pylint", "--output=r.txt", "src"], "r.txt"), (["pylint", "--load-plugins", "evil", "src"], "opaque")],
    "mypy": [(["mypy", "--junit-xml", "j.xml"], "j.xml"), (["mypy", "--python-executable", "./x"], "opaque")],
    "pyright": [(["pyright", "--pythonpath", "./x"], "opaque")],
    "eslint": [(["eslint", "-o", "r.txt", "."], "r.txt"), (["eslint", "--rulesdir", "x", "."], "opaque")],
    "prettier": [(["prettier", "--plugin", "./x.js", "."], "opaque")],
    "tsc": [
        (["tsc", "--outDir", "dist"], "dist"),
        (["tsc", "--outdir", "dist"], "dist"),
        (["tsc", "--plugins", "x"], "opaque"),
    ],
    "rustfmt": [(["rustfmt", "--config-path", "x"], "opaque")],
    "build": [(["python", "-m", "build", "--outdir", "out"], "out")],
}
# Their strict tables name every option they accept, and none writes or runs: any other option fails
# closed (shown below). gofmt and shellcheck (loose) have no option that writes outside their operands
# (gofmt -w rewrites its operands: the formatter's own job, which its class describes) or runs one.
NO_SIDE_EFFECT_OPTIONS = {
    "ls", "cat", "head", "tail", "wc", "grep", "pwd", "echo", "which", "stat", "du", "diff", "cut", "true",
    "gofmt", "shellcheck",
}  # fmt: skip
GIT_SIDE_EFFECTS: dict[str, list[tuple[list[str], str]]] = {
    "status": [(["git", "status", "--bogus"], "opaque")],
    "diff": [
        (["git", "diff", "--output=.git/hooks/post-checkout", "HEAD"], ".git/hooks/post-checkout"),
        (["git", "diff", "HEAD", "--output", "out.patch"], "out.patch"),
        (["git", "diff", "--out=out.patch"], "out.patch"),  # parse-options abbreviation
        (["git", "diff", "--ext-diff"], "opaque"),
        (["git", "diff", "--textconv"], "opaque"),
    ],
    "log": [
        (["git", "log", "--output=o.txt"], "o.txt"),
        (["git", "log", "-p", "--ext-diff"], "opaque"),
        (["git", "log", "--show-signature"], "opaque"),
        (["git", "log", "--format=%H %G?"], "opaque"),
        (["git", "log", "--pretty=format:%GS"], "opaque"),
    ],
    "show": [(["git", "show", "--output=o.txt", "HEAD"], "o.txt"), (["git", "show", "--ext-diff"], "opaque")],
    "branch": [
        (["git", "branch", "-D", "victim"], "opaque"),
        (["git", "branch", "-d", "victim"], "opaque"),
        (["git", "branch", "--delete", "victim"], "opaque"),
        (["git", "branch", "-m", "a", "b"], "opaque"),
        (["git", "branch", "-M", "b"], "opaque"),
        (["git", "branch", "-c", "a", "b"], "opaque"),
        (["git", "branch", "-C", "a", "b"], "opaque"),
        (["git", "branch", "--move", "a", "b"], "opaque"),
        (["git", "branch", "--copy", "a", "b"], "opaque"),
        (["git", "branch", "-f", "main", "HEAD~1"], "opaque"),
        (["git", "branch", "--force", "main"], "opaque"),
        (["git", "branch", "-u", "origin/x"], "opaque"),
        (["git", "branch", "--set-upstream-to=origin/x"], "opaque"),
        (["git", "branch", "--unset-upstream"], "opaque"),
        (["git", "branch", "--track", "x", "origin/x"], "opaque"),
        (["git", "branch", "--edit-description"], "opaque"),
        (["git", "branch", "newbranch"], "opaque"),  # creates a branch
        (["git", "branch", "newbranch", "HEAD~1"], "opaque"),
        (["git", "branch", "-a", "newbranch"], "opaque"),
    ],
}


def _autonomous_programs() -> dict[str, tuple[str, bool]]:
    """program (git: `git SUB`) -> (class, whether the class *starts* autonomous), from the starter set."""
    policy = load_policy(starter_policy_dir())
    found: dict[str, tuple[str, bool]] = {}
    for cls in policy.classes.values():
        if "run_command" not in cls.tools or cls.argv is None:
            continue
        if Level.AUTONOMOUS not in (cls.start, cls.ceiling):
            continue
        for prefix in cls.argv:
            analysis = analyse_argv(list(prefix))
            for cmd in analysis.commands:
                name = f"git {cmd[1]}" if cmd[0] == "git" else cmd[0]
                starts = cls.start is Level.AUTONOMOUS or found.get(name, ("", False))[1]
                found[name] = (cls.name, starts)
    return found


def test_the_starter_set_has_autonomous_command_classes() -> None:
    programs = _autonomous_programs()
    # The enumeration below is not vacuous: it sees the read-only, test, lint and build programs.
    assert {"sort", "uniq", "git diff", "git branch", "pytest", "ruff", "make", "build"} <= set(programs)
    assert len(programs) > 40


@pytest.mark.parametrize("program", sorted(_autonomous_programs()))
def test_every_autonomous_program_has_its_side_effect_options_caught(program: str) -> None:
    cls, starts_autonomous = _autonomous_programs()[program]
    if program.startswith("git "):
        sub = program.split()[1]
        assert sub in GIT_SUBCOMMANDS, f"{program} (class {cls}) has no option table"
        spec, cases = GIT_SUBCOMMANDS[sub], GIT_SIDE_EFFECTS[sub]
    else:
        assert program in PROGRAMS, f"{program} (class {cls}) has no option table"
        spec = PROGRAMS[program]
        cases = SIDE_EFFECTS.get(program, [])
        assert cases or program in NO_SIDE_EFFECT_OPTIONS, f"{program}: no side-effect case written"
    if starts_autonomous:
        # A class that runs unattended from the start: every option is known, the rest fail closed.
        assert spec.strict or program in ("echo", "true"), f"{program} needs a strict option table"
        if program not in ("echo", "true"):
            unknown = A([*program.split(), "--no-such-option-xyz"])
            assert unknown.opaque and "fail closed" in " ".join(unknown.reasons), unknown.reasons
    for argv, expected in cases:
        analysis = A(argv)
        if expected == "opaque":
            assert analysis.opaque, (argv, analysis.reasons)
        else:
            assert analysis.writes == [expected], (argv, analysis)
    # An opaque call adds an argv-free subject: only the starter catch-all matches it, never autonomous.
    catch_all = load_policy(starter_policy_dir()).classify(Subject(tool="run_command")).cls
    assert catch_all.name == "command-other" and catch_all.ceiling < Level.AUTONOMOUS


# ---- the examples and their neighbours -----------------------------------------------------


@pytest.mark.parametrize(
    ("analysis", "writes"),
    [
        pytest.param(A(["uniq", "-", "pwn.py"]), ["pwn.py"], id="uniq stdin to a file"),
        pytest.param(A(["uniq", "-", ".git/config"]), [".git/config"], id="uniq to .git/config"),
        pytest.param(A(["sort", "-o", ".ratchet/policies/zz.toml"]), [".ratchet/policies/zz.toml"], id="sort -o"),
        pytest.param(
            A(["git", "diff", "--output=.git/hooks/post-checkout", "HEAD"]),
            [".git/hooks/post-checkout"],
            id="git diff --output",
        ),
        pytest.param(
            S("echo '[classes.zz]' | uniq - .ratchet/policies/zz.toml"),
            [".ratchet/policies/zz.toml"],
            id="hook pipeline",
        ),
        pytest.param(A(["tee", "a", "-a", "b"]), ["a", "b"], id="tee"),
        pytest.param(A(["cp", "x", "y", "dest"]), ["dest"], id="cp"),
        pytest.param(A(["cp", "-t", "dest", "x"]), ["dest"], id="cp -t"),
        pytest.param(A(["mv", "a", "b"]), ["a", "b"], id="mv removes its source"),
        pytest.param(A(["ln", "-sf", "x", ".git/hooks/pre-commit"]), [".git/hooks/pre-commit"], id="ln"),
        pytest.param(A(["install", "-m", "755", "x", "bin/x"]), ["bin/x"], id="install"),
        pytest.param(A(["dd", "if=x", "of=.git/config"]), [".git/config"], id="dd of="),
        pytest.param(A(["find", ".", "-fprint", ".git/config"]), [".git/config"], id="find -fprint"),
        pytest.param(A(["find", ".", "-fprintf", "out", "%p"]), ["out"], id="find -fprintf"),
        pytest.param(A(["env", "nice", "sort", "-o", "x", "y"]), ["x"], id="through wrappers"),
        pytest.param(A(["sh", "-c", "sort -o x y"]), ["x"], id="through sh -c"),
        pytest.param(A(["python3", "-m", "pytest", "--junitxml=j.xml"]), ["j.xml"], id="python -m"),
    ],
)
def test_writes_by_options_and_operands_are_listed(analysis: CommandAnalysis, writes: list[str]) -> None:
    assert analysis.writes == writes, analysis.reasons
    assert not analysis.opaque, analysis.reasons


@pytest.mark.parametrize(
    "argv",
    [
        ["git", "-c", "core.pager=sh", "log"],
        ["git", "-c", "core.fsmonitor=./x", "status"],
        ["git", "-C", "/elsewhere", "status"],
        ["git", "--git-dir=/elsewhere/.git", "log"],
        ["git", "--work-tree", "/", "status"],
        ["git", "--exec-path=./bin", "status"],
        ["git", "--config-env=core.pager=X", "log"],
        ["git", "-p", "log"],
        ["git", "--paginate", "log"],
        ["git", "--namespace=x", "branch"],
        ["git", "--upload-pack=./x", "status"],  # not a global option: unknown, so opaque too
        ["less", "README.md"],
        ["more", "README.md"],
        ["man", "git"],
        ["vi", "x"],
        ["tar", "-I", "./x.sh", "-xf", "a.tar"],
        ["tar", "--use-compress-program=./x.sh", "-xf", "a.tar"],
        ["tar", "--to-command=./x.sh", "-xf", "a.tar"],
        ["tar", "--checkpoint-action=exec=./x.sh", "-cf", "a.tar", "."],
        ["tar", "xIf", "./x.sh", "a.tar"],
        ["xargs", "sort"],  # input words could be `-o FILE`
        ["xargs", "uniq", "-"],  # input words are operands: the output file
        ["xargs", "cp", "x"],
        ["xargs", "git", "branch"],
        ["find", ".", "-exec", "uniq", "{}", "out", ";"],  # {} shifts uniq's operands
        ["find", ".", "-name", "v*", "-exec", "git", "branch", "{}", ";"],
        ["sh", "-c", "sort -o $HOME/x y"],  # an option's value the shell expands
        ["sh", "-c", "uniq - ~/x"],
        ["sh", "-c", "git diff --output=$(echo x)"],
        ["find", ".", "-exec", "sort", "-o", "{}", "x", ";"],  # without {}, -o would seem to name x
        # Variables that give these programs options or programs (rule 3).
        ["env", "RIPGREP_CONFIG_PATH=rg.conf", "rg", "foo"],
        ["env", "GIT_EXTERNAL_DIFF=./x", "git", "diff"],
        ["env", "GIT_TRACE=.git/hooks/pre-commit", "git", "status"],
        ["env", "GIT_DIR=/elsewhere", "git", "log"],
        ["env", "PAGER=./x", "git", "log"],
        ["env", "PYTEST_ADDOPTS=-p evil", "pytest"],
        ["env", "MAKEFLAGS=--eval=x", "make", "test"],
        ["env", "GOFLAGS=-toolexec=./x", "go", "test"],
        ["env", "npm_config_script_shell=./x", "npm", "test"],
        ["sh", "-c", "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.fsmonitor GIT_CONFIG_VALUE_0=./x git status"],
        ["sh", "-c", "export GIT_PAGER=./x; git log"],
    ],
)
def test_options_that_run_programs_or_change_git_are_opaque(argv: list[str]) -> None:
    analysis = A(argv)
    assert analysis.opaque, analysis.reasons


@pytest.mark.parametrize(
    "argv",
    [
        ["git", "tag", "-d", "v1"],
        ["git", "tag", "v2"],
        ["git", "config", "core.fsmonitor", "./x"],
        ["git", "config", "--unset", "user.name"],
        ["git", "update-ref", "-d", "refs/heads/victim"],
        ["git", "symbolic-ref", "HEAD", "refs/heads/x"],
        ["git", "reflog", "expire", "--expire=now", "--all"],
        ["git", "reflog", "delete", "HEAD@{1}"],
        ["git", "gc", "--prune=now"],
        ["git", "checkout", "victim"],
        ["git", "switch", "-c", "x"],
        ["git", "reset", "--hard", "HEAD~1"],
        ["git", "restore", "."],
        ["git", "stash"],
        ["git", "notes", "add", "-m", "x"],
        ["git", "worktree", "add", "../x"],
        ["git", "branch", "-D", "victim"],
        ["git", "--no-pager", "branch", "-D", "victim"],
        ["git", "log", "--output=x"],
    ],
)
def test_mutating_git_never_falls_into_an_autonomous_starter_class(argv: list[str]) -> None:
    policy = load_policy(starter_policy_dir())
    analysis = A(argv)
    subjects = [Subject(tool="run_command", commands=(tuple(c),)) for c in analysis.commands]
    if analysis.opaque:
        subjects.append(Subject(tool="run_command"))
    classes = [policy.classify(s).cls for s in subjects]
    writes = [policy.classify(Subject(tool="write_file", paths=(p,))).cls for p in analysis.writes]
    # The most conservative class of the call (what the gate decides by) can never run unattended.
    lowest = min(classes + writes, key=lambda c: (c.ceiling, c.start))
    assert lowest.ceiling < Level.AUTONOMOUS and lowest.start < Level.AUTONOMOUS, (argv, lowest.name)


@pytest.mark.parametrize(
    "argv",
    [
        ["grep", "-rn", "TODO", "src"],
        ["grep", "-E", "a|b", "-r", ".", "--include=*.py"],
        ["rg", "-n", "--hidden", "-g", "!.git", "TODO"],
        ["rg", "-t", "py", "-C", "2", "def "],
        ["ls", "-la", "src"],
        ["cat", "-n", "README.md"],
        ["head", "-n", "20", "x"],
        ["head", "-5", "x"],
        ["tail", "-f", "log.txt"],
        ["wc", "-l", "a", "b"],
        ["sort", "-u", "-k2,2", "-t", ",", "x.csv"],
        ["uniq", "-c", "x"],
        ["cut", "-d:", "-f1", "/etc/passwd"],
        ["du", "-sh", "."],
        ["tree", "-L", "2", "-I", "node_modules"],
        ["diff", "-u", "a", "b"],
        ["stat", "-c", "%s", "x"],
        ["file", "-b", "--mime-type", "x"],
        ["which", "-a", "python"],
        ["echo", "--output=x", "-o", "y"],  # echo prints its words; none is an option that writes
        ["git", "status", "--short", "-b"],
        ["git", "status", "--porcelain=v2", "-uno"],
        ["git", "diff", "--stat", "HEAD~1", "--", "src"],
        ["git", "diff", "--cached", "-U5", "--no-ext-diff"],
        ["git", "log", "--oneline", "-5", "--graph", "--decorate"],
        ["git", "log", "--format=%H %an %s", "-n", "3"],
        ["git", "--no-pager", "log", "-p", "-M", "--follow", "--", "x.py"],
        ["git", "show", "HEAD:README.md"],
        ["git", "show", "--stat", "HEAD"],
        ["git", "branch"],
        ["git", "branch", "-a", "-vv"],
        ["git", "branch", "--list", "feature/*"],
        ["git", "branch", "--show-current"],
        ["git", "branch", "--contains", "HEAD"],
        ["git", "branch", "--merged", "main"],
        ["pytest", "-q", "-p", "no:cacheprovider", "-k", "not slow", "tests/"],
        ["python", "-m", "pytest", "-x", "--lf"],
        ["ruff", "check", "--fix", "."],
        ["mypy", "--strict", "server"],
        ["make", "test", "-j4"],
        ["pytest", "--co", "-q"],
        ["pytest", "--cov=src", "--cov-report=term-missing"],
        ["pytest", "-ktest_foo", "--tb=short"],
        ["tox", "-elint-docs"],
        ["mvn", "test", "-DskipTests", "-q"],
        ["gradle", "test", "-Pprofile=ci"],
        ["eslint", "--cache", "src"],
        ["prettier", "--cache", "--check", "."],
        ["pylint", "--output-format=json", "src"],
        ["go", "test", "-run", "TestX", "./..."],
        ["xargs", "grep", "-l", "foo"],
        ["find", ".", "-name", "*.py", "-exec", "grep", "-l", "x", "{}", "+"],
    ],
)
def test_ordinary_reads_and_tool_runs_stay_analysed(argv: list[str]) -> None:
    """Usability: fail-closed tables must still know what people type every day."""
    analysis = A(argv)
    assert not analysis.opaque, analysis.reasons
    assert analysis.writes == []


def test_git_global_options_without_effect_are_dropped_so_the_subcommand_matches() -> None:
    assert A(["git", "--no-pager", "-P", "log", "-3"]).commands == [["git", "log", "-3"]]
    assert A(["git", "--no-optional-locks", "status"]).commands == [["git", "status"]]


# ---- rule 15: shell expansions in write targets ------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "echo x > $HOME/f",
        "echo x > ${HOME}/f",
        "echo x > ~/f",
        "echo x > ~root/f",
        'echo x > "$(printf .git/config)"',
        "echo x > `printf .git/config`",
        "echo x > *.toml",
        "echo x > .ratchet/policies/?z.toml",
        "echo x > .ratchet/policies/[z]z.toml",
        "echo x > {a,b}",
        "echo x > .ratchet/policies/{zz,yy}.toml",
        "echo x > $'.git/config'",
        'echo x > $".git/config"',
        'echo x > "$HOME/f"',  # $ still expands inside double quotes
        "echo x >> $X",
        "echo x 2> $X",
        "echo x &> $X",
        "echo x >| $X",
        "echo x <> $X",
        "echo x > a$((1+1))",
        "sort -o $OUT in",
        "sort --output=~/x in",
        "uniq - $F",
        "git diff --output=$F",
        "tee ~/x",
    ],
)
def test_expanded_write_targets_are_opaque(script: str) -> None:
    analysis = S(script)
    assert analysis.opaque, analysis.reasons
    assert analysis.redirects == [] and analysis.writes == []


@pytest.mark.parametrize(
    ("script", "target"),
    [
        ("echo x > 'a*b'", "a*b"),
        ('echo x > "a b"', "a b"),
        ("echo x > '$HOME'", "$HOME"),
        ("echo x > \\$HOME", "$HOME"),
        ('echo x > "~/f"', "~/f"),
        ("echo x > a~b", "a~b"),
        ('echo x > "{a,b}"', "{a,b}"),
    ],
)
def test_quoted_literal_targets_stay_literal(script: str, target: str) -> None:
    analysis = S(script)
    assert not analysis.opaque, analysis.reasons
    assert analysis.redirects == [target]


# ---- rule 16: the human's CLI --------------------------------------------------------------------


@pytest.mark.parametrize(
    "analysis",
    [
        pytest.param(A(["ratchet", "approve", "1"]), id="bare"),
        pytest.param(A(["/usr/local/bin/ratchet", "pin", "x", "autonomous"]), id="absolute"),
        pytest.param(A([".venv/bin/ratchet", "approve", "1"]), id="relative"),
        pytest.param(A(["/ws/.venv/bin/ratchet", "approve", "1"]), id="inside the workspace"),
        pytest.param(A(["RATCHET", "approve", "1"]), id="case-insensitive filesystem"),
        pytest.param(A(["env", "FOO=1", "ratchet", "approve", "1"]), id="env"),
        pytest.param(A(["nohup", "ratchet", "approve", "1"]), id="nohup"),
        pytest.param(A(["timeout", "5", "ratchet", "status"]), id="timeout"),
        pytest.param(A(["sh", "-c", "ratchet approve 1"]), id="sh -c"),
        pytest.param(A(["bash", "-lc", "cd . && ratchet approve 1"]), id="bash -lc"),
        pytest.param(A(["xargs", "ratchet", "approve"]), id="xargs"),
        pytest.param(A(["find", ".", "-exec", "ratchet", "approve", "1", ";"]), id="find -exec"),
        pytest.param(A(["python", "-m", "ratchet", "approve", "1"]), id="python -m ratchet"),
        pytest.param(A(["python3.12", "-m", "ratchet.cli", "approve", "1"]), id="python -m ratchet.cli"),
        pytest.param(A(["python", "server/ratchet/cli.py", "approve", "1"]), id="python cli.py"),
        pytest.param(A(["python", "server/ratchet/cli/__main__.py", "approve", "1"]), id="python cli/__main__.py"),
        pytest.param(A(["python", "/x/ratchet/cli/__init__.py", "approve", "1"]), id="python cli/__init__.py"),
        pytest.param(A(["python", "server/ratchet/entry.py", "approve", "1"]), id="python entry.py"),
        pytest.param(A(["python", "-m", "server.ratchet.cli", "approve", "1"]), id="python -m package path"),
        pytest.param(A(["python", "server/ratchet", "approve", "1"]), id="python package directory"),
        pytest.param(A(["python", ".venv/bin/ratchet", "approve", "1"]), id="python console script"),
        pytest.param(A(["python", "-c", "import ratchet.cli; ratchet.cli.main(['approve', '1'])"]), id="python -c"),
        pytest.param(A(["uv", "run", "ratchet", "approve", "1"]), id="uv run"),
        pytest.param(A(["pipx", "run", "ratchet", "approve", "1"]), id="pipx run"),
        pytest.param(S("true; r\\atchet approve 1"), id="shell escapes"),
        pytest.param(S("'rat''chet' approve 1"), id="shell quotes"),
        pytest.param(S("exec -a x ratchet approve 1"), id="exec -a"),
        pytest.param(S("if true; then ratchet approve 1; fi"), id="if body"),
        pytest.param(A(["strace", "-f", "ratchet", "approve", "1"]), id="strace"),
        pytest.param(A(["watch", "-n1", "ratchet approve 1"]), id="watch"),
        pytest.param(A(["sudo", "ratchet", "approve", "1"]), id="sudo"),
    ],
)
def test_every_spelling_of_the_human_cli_is_found(analysis: CommandAnalysis) -> None:
    assert analysis.human_cli, analysis


@pytest.mark.parametrize(
    "argv",
    [
        ["grep", "-rn", "ratchet", "src"],
        ["python", "-m", "ratchetlib"],
        ["python", "server/ratchet/demo.py"],
        ["echo", "ratchet"],
        ["ratchet-other-tool"],
    ],
)
def test_mentioning_ratchet_is_not_running_it(argv: list[str]) -> None:
    assert not A(argv).human_cli
