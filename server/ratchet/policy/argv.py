"""What a command really runs, so a policy's argv-prefix classes cannot be dodged by wrapping it.

`analyse_argv` / `analyse_shell` return every simple command that would execute, normalized, and
`opaque=True` when we cannot tell (the classifier must then be conservative), the files it writes
(`redirects`, `writes`) and whether it runs Ratchet's own CLI (`human_cli`). Rules, in order:

1. Program paths outside the workspace become basenames: `/usr/bin/pytest` -> `pytest`. A relative
   path (`./pytest`, `node_modules/.bin/jest`) or one inside the workspace keeps its path: the agent
   can write those files, so they are never taken for the program they are named after.
2. Wrappers are peeled and their command analysed: `env [-i] [-u N] [N=V...]`, `nice`, `nohup`,
   `timeout DURATION`, `time`, `stdbuf`, `command`, `exec`, `builtin`, `setsid`, `ionice`, `busybox`.
   Leading `N=V` assignments in shell strings are skipped the same way. An unknown wrapper option, or
   `env -S`, makes the result opaque. Alone (`env`, `nice`) the wrapper is itself the command.
3. Assigning a variable that changes what runs (PATH, LD_*, DYLD_*, BASH_ENV, PYTHONPATH,
   NODE_OPTIONS, any GIT_*, PAGER, EDITOR, RIPGREP_CONFIG_PATH, PYTEST_ADDOPTS, MAKEFLAGS, GOFLAGS,
   npm_config_*, TMPDIR, ...) by `env`, a prefix assignment or `export` makes the result opaque.
4. `sudo`/`doas`/`pkexec`/`run0`/`su`: opaque (elevated privileges are not the plain command), but the
   inner command is still analysed and listed so deny rules can see it.
5. `sh|bash|zsh|dash|ksh|mksh|ash -c SCRIPT` (flags may be combined: `-lc`, `-ec`, `-o pipefail -c`)
   -> `analyse_shell(SCRIPT)`. A shell reading commands from stdin (no operand, `-s`) is opaque;
   `bash script.sh` stays `bash script.sh`, like `python script.py`.
6. `xargs [opts] prog args` -> `prog args` (xargs appends input words; noted). Without a program: `echo`.
7. `find ... -exec|-execdir|-ok|-okdir prog args {} ;|+` -> `find ...` without the exec part, plus
   `prog args` without the `{}` placeholders. `-delete` stays in find's argv so a policy can match it;
   `-fprint|-fprint0|-fprintf|-fls FILE` write FILE (rule 12).
   A program given arguments this way (rules 6, 7) is opaque when its operands can be written (`uniq`,
   `tee`, `cp`, `mv`, ...), when it has any option that writes or runs (`sort -o`, `rg --pre`: xargs
   input words can be options, and a removed `{}` shifts the words after it), or is `git` or `dd`.
8. Code on the command line is opaque (`python -c`, `node -e/-p/--eval/--print`, `perl -e`,
   `ruby -e`, `php -r`, `lua -e`, `Rscript -e`, `deno eval`, any `awk` program without `-f`), as is
   an interpreter reading code from stdin. `python -m X args` -> `X args`; `python script.py` stays.
9. `eval`, `source`, `.`, `trap`, `alias`, `hash`, `enable`, `fc` run or rebind code: opaque.
10. Shell strings are tokenised by a small POSIX lexer (quotes, escapes, comments, line
   continuations, fd redirects like `2>`) and split on `;`, `&&`, `||`, `|`, `|&`, `&`, newlines.
   Not shlex: it reads newlines as blanks and `#` inside a word as a comment, hiding commands.
   Structure words (`if then else elif fi while until do done { } !`) are skipped, so every command
   inside `if`/`while` bodies is still listed. Opaque: `$(...)` and backticks (anywhere, even quoted
   in double quotes), process substitution, heredocs, subshells/function definitions (`(`),
   `for`/`case`/`select`/`function`/`coproc`, unterminated quotes, and a program word that the shell
   would compute (`$X`, globs, braces). Redirections are not commands; each write target is kept in
   `redirects` with the reason "writes via redirection to X".
11. Unwrapping is recursive and bounded: deeper than `MAX_DEPTH` is opaque.
12. Arguments that write are subjects: a program with an option table (policy/options.py) lists the files
   its options or operands write in `writes` (`sort -o F`/`--output=F`, `uniq IN OUT`, `tee F`,
   `tree -o F`, `git diff|log|show --output=F`, `cp`/`mv`/`ln`/`install` destinations (and `mv`'s
   sources), `dd of=F`, `pytest --junitxml=F`, ...), so the caller holds the call to each written
   file's class as well. Long options are matched by unambiguous prefix, as GNU getopt and git do
   (`sort --out=F`), and a prefix of an option that writes or runs is taken for it.
13. Arguments that run a program are opaque: `sort --compress-program`, `rg --pre`/`--pre-glob`/
   `-z`/`--hostname-bin`, `git diff --ext-diff`/`--textconv`, `git log --show-signature` or a
   `--format` with `%G`, `tar -I`/`-F`/`--to-command`/`--use-compress-program`/`--checkpoint-action`,
   `file -z`/`-C`, `tree -R`, `pytest -p` (but `-p no:NAME`), `make VAR=V`, `go -exec`/`-toolexec`,
   and any interactive program with shell escapes (`less`, `more`, `man`, `vi`, `ed`, ...).
14. Every program of a starter class that starts at `autonomous` (read-only-run) has a *strict*
   option table: an option not in it makes the command opaque, so a forgotten option, or one a later
   version adds, fails closed. Programs that run the project's own code anyway (test runners,
   linters, builds, whose starter classes can only be promoted to autonomous) have *loose* tables
   naming the options that write or run outside that code. `git`: global options that change the
   repository, configuration or programs (`-c`, `-C`, `--git-dir`, `--work-tree`, `--exec-path`,
   `--config-env`, `-p`, ...) are opaque, harmless ones (`--no-pager`, ...) are dropped so
   `git --no-pager log` is `git log`; `status`/`diff`/`log`/`show`/`branch` have strict tables, so
   `branch -D/-m/-c/-f/-u/--track`, and `git branch NAME` (which creates a branch) outside the
   listing forms (`--list`, `--contains`, `--merged`, `-v`, ...), are opaque. Other subcommands keep
   their own argv (`git reset`, `git config`, `git tag -d` fall to the git classes).
15. Words the shell would expand are not literal paths: a redirection target, or a value of an
   option or operand that writes (rule 12), with an unquoted `$`, `~` (at the start or after `=`/`:`),
   `*`, `?`, `[`, `{`, or `$'...'`, or a `$` inside double quotes, makes the analysis opaque. Quoted
   literal targets (`> 'a*b'`) stay literal. Backquotes and `$(...)` are opaque anyway (rule 10).
16. Ratchet's own CLI is the human's: a program named `ratchet` (any path, any case: case-insensitive
   filesystems find `RATCHET` too), a module `ratchet`/`ratchet.*` run with `python -m`, a script
   `ratchet` or `.../ratchet/cli/*.py`/`cli.py`/`__main__.py`/`entry.py` run by python, `python -c`
   code naming ratchet, or `ratchet` as the command of a package runner (`uv run`, `pipx run`, `npx`,
   ...) sets `human_cli`, whatever wraps it (`env`, `sh -c`, `xargs`, `nohup`, ...). The caller refuses
   such calls outright.
17. Shell strings are analysed as bash would run them (bash is the shell behind a hook's Bash calls;
   what is opaque under bash is also opaque under sh, zsh and ksh), and bash-only expansion fails
   closed: bash evaluates a variable's *value* in arithmetic, subscripts, indirection and prompt
   expansion, so `x='a[$(cmd)]'; echo $[x]` runs `cmd`. Opaque: `$[...]`, `$((...))`, `${v:offset}`,
   `${v[subscript]}`, `${!name}`, `${v/p/s}`, `${v^}`, `${v,}`, `${v@op}`, zsh's `${(flags)v}` and
   `$=v`/`$~v`, `$'...'` and `$"..."` quoting (not decoded), `[[ ]]`, `let`, `declare`/`typeset`/
   `local` with attributes other than `-x -r -g -p` or a name that is not plain, `read`/`unset`/
   `mapfile`/`getopts`/`wait` naming a subscript, `printf -v`, `test -v`, an assignment whose value
   holds `$(`, a backquote, `$[` or `${` as quoted text, and a word the shell expands (`$X`, `"$X"`,
   globs, braces) given to a program whose options or operand count matter (wrappers, shells,
   interpreters, git, programs with options or operands that write or run; after a literal `--`
   only operands follow). Understood: `$name`, `${name}`, special parameters, and the POSIX
   operators `${v:-w}` `${v-w}` (`=`, `?`, `+`), `${#v}`, `${v#p}` `${v%p}` (`##`, `%%`).

Not peeled (classified by their own name, which fails closed for allow rules): package runners
(`npx`, `uv run`, `poetry run`), tracers (`strace`), `watch`, `ssh`. Programs that run commands
themselves (`make`, `sed` with `e`, `git` aliases, `python script.py`) are classified by their own
argv: allowing them allows what they can run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple

from ratchet.errors import InvalidRequest
from ratchet.policy.options import GIT_GLOBAL, GIT_SUBCOMMANDS, PROGRAMS, Scan, Spec, scan

__all__ = ["MAX_DEPTH", "CommandAnalysis", "analyse_argv", "analyse_shell"]

MAX_DEPTH = 8


@dataclass(frozen=True)
class CommandAnalysis:
    """Every simple command that would execute; `opaque` when that cannot be known."""

    commands: list[list[str]]
    opaque: bool
    reasons: list[str]
    redirects: list[str] = field(default_factory=list)  # files written by shell redirection
    writes: list[str] = field(default_factory=list)  # files written by options and operands (rule 12)
    human_cli: bool = False  # runs Ratchet's own CLI, the human's tool (rule 16)


def analyse_argv(argv: Sequence[str], workspace: str | None = None) -> CommandAnalysis:
    """Analyse an argv that would be exec'd directly (no shell). Empty argv is InvalidRequest.

    Program paths under `workspace` (and relative ones) keep their path: the agent can write there.
    """
    if isinstance(argv, str) or not argv or not argv[0]:
        raise InvalidRequest("argv must be a non-empty list whose first item names a program")
    acc = _Acc(workspace)
    _argv(acc, list(argv), 0)
    return acc.result()


def analyse_shell(script: str, workspace: str | None = None) -> CommandAnalysis:
    """Analyse a shell script string (for classes that allow one). A blank script is InvalidRequest."""
    if not script.strip():
        raise InvalidRequest("shell script is empty: expected at least one command")
    acc = _Acc(workspace)
    _shell(acc, script, 0)
    return acc.result()


@dataclass
class _Acc:
    workspace: str | None = None
    commands: list[list[str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    expanding: set[str] = field(default_factory=set)  # shell words the shell would expand (rule 15)
    fed: str = ""  # "xargs" or "find" while analysing a command that gets arguments from them
    human_cli: bool = False
    opaque: bool = False

    def dark(self, reason: str) -> None:
        self.opaque = True
        self.reasons.append(reason)

    def result(self) -> CommandAnalysis:
        return CommandAnalysis(self.commands, self.opaque, self.reasons, self.redirects, self.writes, self.human_cli)

    def write(self, path: str, how: str, word: str) -> None:
        """`path` is written (rule 12); a value the shell would expand is no path we can name (rule 15)."""
        if word in self.expanding or path in self.expanding:
            self.dark(f"{how} writes {path!r}, which the shell expands: not a literal path")
        else:
            self.writes.append(path)
            self.reasons.append(f"{how} writes {path}")


# ---- argv analysis -------------------------------------------------------------------------------


class _Opts(NamedTuple):
    flags: frozenset[str] = frozenset()  # options without an argument (long ones may take `=V`)
    valued: frozenset[str] = frozenset()  # options taking an argument, attached or the next word
    attached: frozenset[str] = frozenset()  # options whose optional argument can only be attached
    stop: frozenset[str] = frozenset()  # valued options that end option parsing (python -c/-m)
    numeric: bool = False  # accepts `-N` (nice -5)


def _set(names: str) -> frozenset[str]:
    return frozenset(names.split())


def _o(flags: str = "", valued: str = "", attached: str = "", stop: str = "", numeric: bool = False) -> _Opts:
    return _Opts(_set(flags), _set(valued), _set(attached), _set(stop), numeric)


def _parse(args: list[str], spec: _Opts) -> tuple[int, dict[str, str]] | None:
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


_WRAPPERS: dict[str, tuple[_Opts, int]] = {  # name -> (options, operands before the command)
    "env": (
        _o(
            "-i - --ignore-environment -0 --null -v --debug --default-signal --ignore-signal "
            "--block-signal --list-signal-handling",
            "-u --unset -C --chdir -S --split-string",
        ),
        0,
    ),
    "nice": (_o(valued="-n --adjustment", numeric=True), 0),
    "nohup": (_o(), 0),
    "timeout": (_o("--foreground --preserve-status -v --verbose", "-s --signal -k --kill-after"), 1),
    "time": (_o("-p -a --append -v --verbose --portability -q --quiet", "-f --format -o --output"), 0),
    "stdbuf": (_o(valued="-i -o -e --input --output --error"), 0),
    "command": (_o("-p -v -V"), 0),
    "exec": (_o("-c -l", "-a"), 0),
    "builtin": (_o(), 0),
    "setsid": (_o("-c --ctty -f --fork -w --wait"), 0),
    "ionice": (_o("-t --ignore", "-c --class -n --classdata"), 0),
    "busybox": (_o(), 0),
}
_PRIVILEGED = _set("sudo doas pkexec run0 su")
_SUDO_OPTS = _o(
    "-A -b -E -e -H -i -k -K -n -P -S -s --preserve-env --login --shell --non-interactive "
    "--background --askpass --stdin --set-home --reset-timestamp",
    "-u -g -C -D -h -p -r -t -T -U --user --group --chdir --host --prompt --role --type "
    "--close-from --command-timeout --other-user",
)
_SHELLS = _set("sh bash zsh dash ksh mksh ash")
_XARGS_OPTS = _o(
    "-0 --null -r --no-run-if-empty -t --verbose -p --interactive -x --exit -o --open-tty --replace --eof --max-lines",
    "-a --arg-file -d --delimiter -E -I -L -n --max-args -P --max-procs -s --max-chars --process-slot-var",
    "-i -e -l",
)
_PYTHON = re.compile(r"(python|pypy)[\d.]*")
_PYTHON_OPTS = _o(
    "-b -B -d -E -h -i -I -O -P -q -s -S -u -v -V -x -R -? --help --version",
    "-W -X -c -m --check-hash-based-pycs",
    stop="-c -m",
)
_CODE_FLAGS: dict[str, frozenset[str]] = {  # long flags match exactly or with `=`; short ones in clusters
    name: _set(flags)
    for names, flags in [
        ("node nodejs bun", "-e -p --eval --print"),
        ("perl ruby", "-e -E"),
        ("php", "-r -R -B -E -a"),
        ("lua luajit Rscript osascript", "-e"),
        ("awk gawk mawk nawk", "-e --source"),
    ]
    for name in names.split()
}
_AWKS = _set("awk gawk mawk nawk")
_RUNS_CODE = _set("eval source . trap alias hash enable fc")
_DECLARES = _set("export declare typeset readonly local")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_RISKY_VARS = _set(
    "PATH BASH_ENV ENV SHELLOPTS PYTHONPATH PYTHONHOME PYTHONSTARTUP NODE_OPTIONS NODE_PATH "
    "PERL5OPT PERL5LIB RUBYOPT RUBYLIB IFS "
    # variables that add options or programs to programs with option tables (rules 12-14)
    "PAGER MANPAGER EDITOR VISUAL LESSOPEN LESSCLOSE RIPGREP_CONFIG_PATH TAR_OPTIONS TMPDIR "
    "PYTEST_ADDOPTS PYTEST_PLUGINS MAKEFLAGS MFLAGS GNUMAKEFLAGS GOFLAGS RUSTC_WRAPPER "
    "CARGO_BUILD_RUSTC_WRAPPER"
)
_RISKY_PREFIXES = ("LD_", "DYLD_", "GIT_", "npm_config_", "NPM_CONFIG_")
_COMPUTED = re.compile(r"[$`*?\[{]")  # a program word the shell would expand into something else


def _assignment(acc: _Acc, word: str) -> bool:
    """If `word` is NAME=VALUE, check it (risky names make the result opaque) and return True."""
    match = _ASSIGN.match(word)
    if match is None:
        return False
    name = match.group(1)
    if name in _RISKY_VARS or name.startswith(_RISKY_PREFIXES):
        acc.dark(f"assignment to {name} changes which program or code runs")
    if _HELD_SUBSTITUTION.search(word[match.end() :]):
        acc.dark(
            f"assignment to {name} holds a substitution as text: bash, zsh and ksh run it wherever the value "
            "is evaluated (arithmetic, subscripts, prompt expansion)"
        )
    return True


_HELD_SUBSTITUTION = re.compile(r"\$[(\[{]|`")  # only quoted text can still hold these after the lexer (rule 17)
_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_DECLARE = re.compile(r"[-+][xrgp]+")  # export/readonly/global/print: no arithmetic, array or nameref
_BASH_EVALUATES = {
    "[[": "bash's [[ ]] evaluates its operands' values as arithmetic (-eq, -lt, ...)",
    "let": "let evaluates arithmetic, running any $(...) held in a variable's value",
}
_NAME_BUILTINS = _set("read unset mapfile readarray getopts wait")  # operands name variables (subscripts too)


def _bash_builtin(acc: _Acc, prog: str, args: list[str]) -> None:
    """Builtins that evaluate their words as arithmetic or as variable names are opaque (rule 17)."""
    if prog in _BASH_EVALUATES:
        acc.dark(_BASH_EVALUATES[prog])
    elif prog in _DECLARES:
        for arg in args:
            if arg.startswith(("-", "+")) and arg not in ("-", "--"):
                if not _PLAIN_DECLARE.fullmatch(arg):
                    acc.dark(f"{prog} {arg}: integer, array or nameref attributes evaluate values (not analysed)")
            elif not _SIMPLE_NAME.fullmatch(arg.partition("=")[0]) or arg.partition("=")[0] in acc.expanding:
                acc.dark(f"{prog} {arg!r}: not a plain variable name (subscripts are evaluated as arithmetic)")
            else:
                _assignment(acc, arg)
    elif prog in _NAME_BUILTINS and any("[" in a or a in acc.expanding for a in args):
        acc.dark(f"{prog} names a variable with a subscript or an expansion: bash evaluates it as arithmetic")
    elif prog == "printf" and any(a.startswith("-v") for a in args):
        acc.dark("printf -v assigns to a variable it names: a subscript is evaluated as arithmetic")
    elif prog in ("test", "[") and "-v" in args:
        acc.dark(f"{prog} -v names a variable: bash evaluates a subscript in it as arithmetic")


def _options_matter(prog: str) -> bool:
    """Whether a word the shell expands into unknown words (or options) can change what `prog` runs or
    writes: wrappers, shells, interpreters, git, and programs with options or operands that write or run."""
    if prog in _HANDLERS or prog in _RUNS_CODE or prog in _DECLARES or prog in _RUNNERS or prog in ("git", "dd"):
        return True
    if _PYTHON.fullmatch(prog) or prog in _CODE_FLAGS or prog in _AWKS or prog == "deno":
        return True
    spec = PROGRAMS.get(prog)
    return spec is not None and bool(
        spec.risky or spec.output_operand is not None or spec.operands_written or spec.last_operand_written
    )


def _expanded_arguments(acc: _Acc, prog: str, args: list[str]) -> None:
    """A word the shell expands (`$X`, `"$X"`, `*`, `{a,b}`) may become several words or an option
    (`X='-o out'`, a file named `--pre=x.sh`): opaque where options or operand counts matter (rule 17).
    After a literal `--` only operands follow, which matters only where an operand is written."""
    spec = PROGRAMS.get(prog)
    written = spec is not None and (
        spec.output_operand is not None or spec.operands_written or spec.last_operand_written
    )
    end = args.index("--") if "--" in args and not written and (prog in PROGRAMS or prog == "git") else len(args)
    expanded = [a for a in args[:end] if a in acc.expanding]
    if expanded and _options_matter(prog):
        acc.dark(f"{prog}: argument {expanded[0]!r} is expanded by the shell and may become options or several words")


def _agent_writable(raw: str, workspace: str | None) -> bool:
    """A program named by a relative path, or an absolute one inside the workspace, is the agent's own
    file: `./pytest` is not `pytest`, so it keeps its path and no class for the real program matches it."""
    if "/" not in raw:
        return False
    if not raw.startswith("/"):
        return True
    return workspace is not None and (raw == workspace or raw.startswith(workspace.rstrip("/") + "/"))


def _argv(acc: _Acc, argv: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        acc.dark(f"commands nested deeper than {MAX_DEPTH} levels: not analysed further")
        return
    raw, args = argv[0], argv[1:]
    prog = raw if raw == "." or _agent_writable(raw, acc.workspace) else PurePosixPath(raw).name
    if not prog or ((_COMPUTED.search(raw) or raw in acc.expanding) and raw not in ("[", "[[")):
        acc.dark(f"program {raw!r} is computed at run time (expansion, glob or placeholder)")
        acc.commands.append(argv)
        return
    if prog != raw:
        acc.reasons.append(f"program path {raw!r} classified as {prog!r}")
    cmd = [prog, *args]
    _bash_builtin(acc, prog, args)
    _expanded_arguments(acc, prog, args)
    handler = _HANDLERS.get(prog)
    if handler is None and _PYTHON.fullmatch(prog):
        handler = _python
    if handler is not None:
        handler(acc, cmd, depth)
    elif prog in _CODE_FLAGS or prog in _AWKS or prog == "deno":
        _interpreter(acc, cmd)
    elif prog in _RUNS_CODE:
        acc.dark(f"{prog} runs or rebinds code we cannot see")
        acc.commands.append(cmd)
    else:
        _program(acc, cmd)


# ---- what a program's own arguments do (rules 12-16) ---------------------------------------------

_SHELL_ESCAPES = _set("less more most man pg vi vim nvim view ex ed nano emacs pico mg joe")
_RUNNERS = _set(
    "uv uvx poetry pdm hatch rye pipx conda mamba pixi npx pnpx bunx strace ltrace watch gdb valgrind "
    "chroot flock unshare nsenter firejail bwrap systemd-run tmux screen parallel script"
)
_LIST_MODE = _set("-l --list --contains --no-contains --merged --no-merged --points-at -v --verbose")


def _is_ratchet(word: str) -> bool:
    """`ratchet`, `/x/bin/ratchet`, `.venv/bin/RATCHET` (case-insensitive filesystems), and module names
    with a `ratchet` part (`ratchet.cli`, `server.ratchet.cli`, as `python -m` gets them)."""
    name = PurePosixPath(word).name.casefold()
    return name == "ratchet" or ("/" not in word and not name.endswith(".py") and "ratchet" in name.split("."))


def _human_cli(acc: _Acc, cmd: list[str]) -> None:
    acc.human_cli = True
    acc.reasons.append(f"{cmd[0]} is Ratchet's own CLI: only the human runs it")


def _program(acc: _Acc, cmd: list[str]) -> None:
    """A program that is not a wrapper: apply what its arguments do, then list it."""
    prog, args = cmd[0], cmd[1:]
    if _is_ratchet(prog) or (
        prog in _RUNNERS and any(a.split() and _is_ratchet(a.split()[0]) for a in args if not a.startswith("-"))
    ):
        _human_cli(acc, cmd)
    spec = PROGRAMS.get(prog)
    if acc.fed and (
        prog in ("git", "dd")
        or (
            spec is not None
            and (spec.output_operand is not None or spec.operands_written or spec.last_operand_written or spec.risky)
        )
    ):
        acc.dark(f"{prog} gets arguments from {acc.fed}: what it writes or runs cannot be known")
    if prog == "git":
        _git(acc, cmd)
        return
    if prog in _SHELL_ESCAPES:
        acc.dark(f"{prog} is interactive and can run shell commands (!cmd, :!, a pager's escapes)")
    elif prog == "tar" and args and re.fullmatch(r"[A-Za-z]*[IF][A-Za-z]*", args[0]):
        acc.dark("tar old-style options I or F run a program given on its command line")
    elif prog == "dd":
        for arg in args:
            if arg.startswith("of="):
                acc.write(arg[3:], "dd of=", arg)
    elif spec is not None:
        _apply(acc, prog, spec, scan(args, spec))
        if prog == "make" and any("=" in a and not a.startswith("-") for a in args):
            acc.dark("make VAR=value overrides the Makefile's variables (SHELL, CC, ...): cannot tell what it runs")
    acc.commands.append(cmd)


def _harmless(what: str, option: str, value: str) -> bool:
    """Values that make a risky option harmless: `pytest -p no:NAME` disables a plugin, and
    `--cov-report term` (no `:PATH`) only prints."""
    if what == "pytest" and option == "-p":
        return value.startswith("no:")
    return what == "pytest" and option == "--cov-report" and ":" not in value


def _apply(acc: _Acc, what: str, spec: Spec, found: Scan) -> None:
    for path, option, word in found.writes:
        acc.write(path, f"{what} {option}", word)
    runs = [f"{name} {value}".strip() for name, value in found.runs if not _harmless(what, name, value)]
    if runs:
        acc.dark(f"{what} {', '.join(runs)} runs a program or writes where we cannot tell")
    if found.unknown and spec.strict:
        acc.dark(f"{what}: option {', '.join(found.unknown)} is not in its option table (unknown options fail closed)")


def _git(acc: _Acc, cmd: list[str]) -> None:
    """git: global options that change the repository, config or program are opaque; the listed
    read-only subcommands are held to their option tables (rule 14); the command is normalized to
    `git SUBCOMMAND ...` without harmless global options."""
    args = cmd[1:]
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        found = scan([args[i]], GIT_GLOBAL)
        if found.unknown or found.runs or not found.seen:
            acc.dark(f"git {args[i]}: changes git's repository, configuration or programs (or is unknown)")
            acc.commands.append(cmd)
            return
        i += 1
    if i >= len(args):
        acc.commands.append(cmd)
        return
    sub, rest = args[i], args[i + 1 :]
    if i:
        acc.reasons.append(f"git {' '.join(args[:i])}: global options without effect on what runs; dropped")
    spec = GIT_SUBCOMMANDS.get(sub)
    if spec is not None:
        found = scan(rest, spec)
        _apply(acc, f"git {sub}", spec, found)
        formats = [found.values.get(k, "") for k in ("--format", "--pretty")]
        if any("%G" in f for f in formats):
            acc.dark(f"git {sub} --format with %G verifies signatures, which runs gpg.program")
        if sub == "branch" and found.operands and not _LIST_MODE & set(found.seen):
            acc.dark("git branch NAME creates or changes a branch: only the listing forms are read-only")
    acc.commands.append(["git", sub, *rest])


def _wrapper(acc: _Acc, cmd: list[str], depth: int) -> None:
    prog, args = cmd[0], cmd[1:]
    spec, operands = (_SUDO_OPTS, 0) if prog in _PRIVILEGED else _WRAPPERS[prog]
    if prog in _PRIVILEGED:
        acc.dark(f"{prog} runs its command with other privileges: not the plain command")
        if prog == "su":
            acc.commands.append(cmd)
            return
    parsed = _parse(args, spec)
    if parsed is None:
        acc.dark(f"{prog}: unrecognised option, cannot tell which command it runs")
        acc.commands.append(cmd)
        return
    i, seen = parsed
    if prog == "env":
        if "-S" in seen or "--split-string" in seen:
            acc.dark("env -S splits a string into a command: not analysed")
            acc.commands.append(cmd)
            return
        while i < len(args) and _assignment(acc, args[i]):
            i += 1
    inner = args[i + operands :]
    if prog == "command" and ("-v" in seen or "-V" in seen):
        acc.commands.append(cmd)  # `command -v X` only looks X up
        return
    if not inner:
        if prog not in ("exec", "command", "builtin", "time"):  # alone, those run nothing
            acc.commands.append(cmd)
        return
    acc.reasons.append(f"{prog} runs {inner[0]!r}: analysed as that command")
    _argv(acc, inner, depth + 1)


def _shell_c(acc: _Acc, cmd: list[str], depth: int) -> None:
    prog, args = cmd[0], cmd[1:]
    i, script_mode, from_stdin = 0, False, False
    while i < len(args) and args[i][:1] in ("-", "+") and args[i] not in ("-", "+"):
        tok = args[i]
        i += 1
        if tok == "--":
            break
        if tok.startswith("--"):
            i += tok in ("--rcfile", "--init-file")  # the only long options taking a word
            continue
        script_mode |= tok[0] == "-" and "c" in tok
        from_stdin |= "s" in tok
        i += tok.count("o") + tok.count("O")  # -o NAME / -O NAME take the next word
    operands = args[i:]
    if script_mode and operands:
        acc.reasons.append(f"{prog} -c: analysing its script")
        _shell(acc, operands[0], depth + 1)
    elif script_mode or from_stdin or not operands or operands[0] == "-":
        acc.dark(f"{prog} reads commands from stdin or has no script: cannot tell what it runs")
        acc.commands.append(cmd)
    else:
        acc.commands.append(cmd)  # `bash script.sh`: classified as itself


def _xargs(acc: _Acc, cmd: list[str], depth: int) -> None:
    parsed = _parse(cmd[1:], _XARGS_OPTS)
    if parsed is None:
        acc.dark("xargs: unrecognised option, cannot tell which command it runs")
        acc.commands.append(cmd)
        return
    inner = cmd[1 + parsed[0] :] or ["echo"]
    acc.reasons.append(f"xargs runs {inner[0]!r} with arguments appended from its input")
    fed, acc.fed = acc.fed, "xargs"
    _argv(acc, inner, depth + 1)
    acc.fed = fed


def _find(acc: _Acc, cmd: list[str], depth: int) -> None:
    own: list[str] = []
    runs: list[list[str]] = []
    i = 0
    while i < len(cmd):
        if cmd[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(cmd)) if cmd[j] in (";", "+")), len(cmd))
            runs.append([arg for arg in cmd[i + 1 : end] if arg != "{}"])
            acc.reasons.append(f"find {cmd[i]} runs a command on each found path")
            i = end + 1
        elif cmd[i] in ("-fprint", "-fprint0", "-fprintf", "-fls") and i + 1 < len(cmd):
            acc.write(cmd[i + 1], f"find {cmd[i]}", cmd[i + 1])  # the rest stays in find's argv
            own.append(cmd[i])
            i += 1
        else:
            own.append(cmd[i])
            i += 1
    acc.commands.append(own)
    fed, acc.fed = acc.fed, acc.fed or "find"
    for inner in runs:
        if inner:
            _argv(acc, inner, depth + 1)
        else:
            acc.dark("find -exec runs each found file itself")
    acc.fed = fed


def _python(acc: _Acc, cmd: list[str], depth: int) -> None:
    parsed = _parse(cmd[1:], _PYTHON_OPTS)
    if parsed is None:
        acc.dark(f"{cmd[0]}: unrecognised option, cannot tell what it runs")
    elif "-c" in parsed[1]:
        acc.dark(f"{cmd[0]} -c runs code given on the command line")
        if re.search(r"\bratchet\b", parsed[1]["-c"], re.IGNORECASE):
            _human_cli(acc, cmd)
    elif "-m" in parsed[1]:
        module = parsed[1]["-m"]
        acc.reasons.append(f"{cmd[0]} -m {module} classified as {module!r}")
        _program(acc, [module, *cmd[1 + parsed[0] :]])  # options analysed; never unwrapped as a wrapper
        return
    elif parsed[0] + 1 >= len(cmd) or cmd[1 + parsed[0]] == "-":
        acc.dark(f"{cmd[0]} reads code from stdin")
    else:
        script = PurePosixPath(cmd[1 + parsed[0]])
        if _is_ratchet(str(script)) or _is_ratchet_script(script):
            _human_cli(acc, cmd)
    acc.commands.append(cmd)


def _is_ratchet_script(script: PurePosixPath) -> bool:
    """A file of Ratchet's that runs its CLI as a script: `.../ratchet/cli.py` (as it once was),
    `.../ratchet/__main__.py`, `.../ratchet/entry.py`, or any module of the `.../ratchet/cli/` package."""
    parent, grand = script.parent.name.casefold(), script.parent.parent.name.casefold()
    in_cli = parent == "cli" and grand == "ratchet" and script.suffix.casefold() == ".py"
    return in_cli or (parent == "ratchet" and script.name.casefold() in ("cli.py", "__main__.py", "entry.py"))


def _interpreter(acc: _Acc, cmd: list[str]) -> None:
    prog, args = cmd[0], cmd[1:]
    flags = _CODE_FLAGS.get(prog, frozenset())
    # Scans every word, not just leading options: over-flagging `node app.js -e` is the safe error.
    short = {f[1] for f in flags if len(f) == 2}
    code = any(
        a.partition("=")[0] in flags if a.startswith("--") else a[:1] == "-" and bool(short & set(a[1:])) for a in args
    )
    operands = [a for a in args if not a.startswith("-")]
    if prog in _AWKS and not any(a.startswith("-f") or a.startswith("--file") for a in args):
        acc.dark(f"{prog} program text on the command line can run commands (system())")
    elif prog == "deno" and (not operands or operands[0] in ("eval", "repl")):
        acc.dark("deno eval/repl runs code we cannot see")
    elif code:
        acc.dark(f"{prog} runs code given on the command line")
    elif not operands and prog not in _AWKS:
        acc.dark(f"{prog} reads code from stdin")
    acc.commands.append(cmd)


_HANDLERS: dict[str, Callable[[_Acc, list[str], int], None]] = {
    **{name: _wrapper for name in (*_WRAPPERS, *_PRIVILEGED)},
    **{name: _shell_c for name in _SHELLS},
    "xargs": _xargs,
    "find": _find,
}


# ---- shell analysis ------------------------------------------------------------------------------


class _Word(NamedTuple):
    text: str  # after quote removal; expansions like $X are kept literally
    plain: int  # how many leading characters were unquoted (== len(text) for a fully plain word)
    expands: bool = False  # the shell would expand it: unquoted $ ~ * ? [ {, or $ inside "..."


class _Dark(Exception):
    """The script uses a construct whose effect we cannot follow."""


_OPS = sorted(
    _set("&& || ;;& ;; ;& |& &>> &> <<< <<- << <> >> >| >& <& <( >( ; & | < > ( )") | {"\n"},
    key=len,
    reverse=True,  # longest first, so `&&` is not read as `&` `&`
)
_OP_CHARS = frozenset(op[0] for op in _OPS)
_SEPARATORS = _set("; && || | |& &") | {"\n"}
_WRITES = _set("> >> >| &> &>> <> >&")
_REDIRECTS = _WRITES | {"<", "<&", "<<<"}
_DARK_OPS = {
    **dict.fromkeys(["(", ")"], "a subshell or function definition"),
    **dict.fromkeys(["<<", "<<-"], "a heredoc"),
    **dict.fromkeys(["<(", ">("], "process substitution"),
    **dict.fromkeys([";;", ";&", ";;&"], "a case clause"),
}
_STRUCTURE = _set("! { } if then else elif fi while until do done")
_COMPOUND = _set("for case select function coproc")


def _lex(script: str) -> list[_Word | str]:
    """Split a script into words and operators the way a POSIX shell would; raise _Dark if unsure."""
    tokens: list[_Word | str] = []
    buf: list[str] = []
    plain = -1  # where quoting started in the current word; -1 while it is all plain
    started = expands = False
    i, n = 0, len(script)

    def end_word() -> None:
        nonlocal plain, started, expands
        if started:
            text = "".join(buf)
            tokens.append(_Word(text, len(text) if plain < 0 else plain, expands))
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
                raise _Dark("an unterminated quote")
            quoted()
            buf.append(script[i + 1 : end])
            i = end + 1
        elif c == '"':
            quoted()
            i, dollar = _double_quoted(script, i + 1, buf)
            expands |= dollar
        elif c == "`" or script.startswith("$(", i):
            raise _Dark(_substitution(script, i))
        elif c == "$":
            _dollar(script, i, in_double=False)  # bash-only expansions raise _Dark (rule 17)
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
            raise _Dark(_substitution(script, i))
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
    raise _Dark("an unterminated quote")


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
    """Check the expansion starting at the `$` at `i`; raise _Dark for any form we do not fully
    understand (rule 17). Understood: `$name`, `$1`, the special parameters, `${name}`, and the POSIX
    operators `${name:-w}` `${name-w}` (`=`, `?`, `+` likewise), `${#name}`, `${name#p}` `${name%p}`
    (and `##`, `%%`); their words are lexed on, so an expansion nested in them is checked too."""
    nxt = script[i + 1 : i + 2]
    if nxt == "[":
        raise _Dark("arithmetic expansion $[...] (bash evaluates variables' values in it)")
    if nxt in ("'", '"'):
        if in_double:
            return  # `"$"` or `"$'"`: a literal dollar sign inside double quotes
        raise _Dark("$'...' or $\"...\" quoting (bash rewrites the quoted text: it is not the literal word)")
    if nxt == "{":
        _brace(script, i + 2)
        return
    if not nxt or nxt in _LITERAL_AFTER_DOLLAR or (in_double and nxt == '"'):
        return
    if not _PARAM.match(nxt):
        raise _Dark(f"the expansion ${nxt}... (not a plain parameter: zsh and bash give it other meanings)")


def _brace(script: str, j: int) -> None:
    """`${` ends at `j`: the parameter expansion must be one of the POSIX forms (see _dollar)."""
    rest = script[j : j + 200]
    if rest.startswith(("!}", "#}")):
        return  # ${!} (last background pid) and ${#} (number of arguments)
    if rest.startswith("!"):
        raise _Dark("indirect expansion ${!name} (bash evaluates the named variable, subscripts included)")
    match = _PARAM.match(rest)
    if match is None:
        raise _Dark("a parameter expansion ${...} we do not understand")
    after = rest[match.end() :]
    if after.startswith("}"):
        return
    if match.group(1):
        raise _Dark("a length expansion ${#...} of an array or with an operator")
    if after[:1] in ("-", "=", "?", "+", "#", "%") or (after[:1] == ":" and after[1:2] in ("-", "=", "?", "+")):
        return
    raise _Dark(_BASH_OPERATORS.get(after[:1], "a parameter expansion ${...} we do not understand"))


def _shell(acc: _Acc, script: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        acc.dark(f"commands nested deeper than {MAX_DEPTH} levels: not analysed further")
        return
    try:
        tokens = _lex(script)
    except _Dark as exc:
        acc.dark(f"shell script uses {exc}: cannot tell what it runs")
        return
    words: list[_Word] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if isinstance(tok, _Word):
            words.append(tok)
        elif tok in _DARK_OPS:
            acc.dark(f"shell script uses {_DARK_OPS[tok]}: cannot tell what it runs")
            return
        elif tok in _REDIRECTS:
            target = tokens[i] if i < len(tokens) else None
            if not isinstance(target, _Word):
                acc.dark(f"redirection {tok!r} has no target")
                return
            i += 1
            if tok in _WRITES and not (tok == ">&" and (target.text.isdigit() or target.text == "-")):
                if target.expands:
                    acc.dark(f"redirection target {target.text!r} is expanded by the shell: not a literal path")
                else:
                    acc.redirects.append(target.text)
                    acc.reasons.append(f"writes via redirection to {target.text}")
        else:
            assert tok in _SEPARATORS
            _simple(acc, words, depth)
            words = []
    _simple(acc, words, depth)


def _simple(acc: _Acc, words: list[_Word], depth: int) -> None:
    """One simple command: skip structure words and assignments, analyse the rest as an argv."""

    def bare(word: _Word) -> bool:  # reserved words only count when unquoted
        return word.plain == len(word.text)

    i, n = 0, len(words)  # an index, not `words[1:]` per skipped word: linear in the words
    while i < n and bare(words[i]) and words[i].text in _STRUCTURE:
        i += 1
    if i < n and bare(words[i]) and words[i].text in _COMPOUND:
        acc.dark(f"shell {words[i].text!r} construct is not analysed")
        return
    while i < n and (m := _ASSIGN.match(words[i].text)) and m.end() <= words[i].plain:
        _assignment(acc, words[i].text)
        i += 1
    if i < n:
        acc.expanding |= {w.text for w in words[i:] if w.expands}
        _argv(acc, [w.text for w in words[i:]], depth)
