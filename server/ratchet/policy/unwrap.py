"""The rules of policy/argv.py applied: wrappers peeled, shells and interpreters followed, what a
program's own arguments write or run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

from ratchet.policy.argv_analysis import MAX_DEPTH, Acc
from ratchet.policy.argv_options import parse_options
from ratchet.policy.argv_tables import (
    AWKS,
    BASH_EVALUATES,
    CODE_FLAGS,
    DECLARES,
    LIST_MODE,
    NAME_BUILTINS,
    PRIVILEGED,
    PYTHON,
    PYTHON_OPTS,
    RISKY_PREFIXES,
    RISKY_VARS,
    RUNNERS,
    RUNS_CODE,
    SHELL_ESCAPES,
    SHELLS,
    SUDO_OPTS,
    WRAPPERS,
    XARGS_OPTS,
)
from ratchet.policy.options import GIT_GLOBAL, GIT_SUBCOMMANDS, PROGRAMS, Scan, Spec, scan
from ratchet.policy.shell_lexer import COMPOUND, DARK_OPS, REDIRECTS, SEPARATORS, STRUCTURE, WRITES, Dark, Word, lex

_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


_COMPUTED = re.compile(r"[$`*?\[{]")  # a program word the shell would expand into something else


def _assignment(acc: Acc, word: str) -> bool:
    """If `word` is NAME=VALUE, check it (risky names make the result opaque) and return True."""
    match = _ASSIGN.match(word)
    if match is None:
        return False
    name = match.group(1)
    if name in RISKY_VARS or name.startswith(RISKY_PREFIXES):
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


def _bash_builtin(acc: Acc, prog: str, args: list[str]) -> None:
    """Builtins that evaluate their words as arithmetic or as variable names are opaque (rule 17)."""
    if prog in BASH_EVALUATES:
        acc.dark(BASH_EVALUATES[prog])
    elif prog in DECLARES:
        for arg in args:
            if arg.startswith(("-", "+")) and arg not in ("-", "--"):
                if not _PLAIN_DECLARE.fullmatch(arg):
                    acc.dark(f"{prog} {arg}: integer, array or nameref attributes evaluate values (not analysed)")
            elif not _SIMPLE_NAME.fullmatch(arg.partition("=")[0]) or arg.partition("=")[0] in acc.expanding:
                acc.dark(f"{prog} {arg!r}: not a plain variable name (subscripts are evaluated as arithmetic)")
            else:
                _assignment(acc, arg)
    elif prog in NAME_BUILTINS and any("[" in a or a in acc.expanding for a in args):
        acc.dark(f"{prog} names a variable with a subscript or an expansion: bash evaluates it as arithmetic")
    elif prog == "printf" and any(a.startswith("-v") for a in args):
        acc.dark("printf -v assigns to a variable it names: a subscript is evaluated as arithmetic")
    elif prog in ("test", "[") and "-v" in args:
        acc.dark(f"{prog} -v names a variable: bash evaluates a subscript in it as arithmetic")


def _options_matter(prog: str) -> bool:
    """Whether a word the shell expands into unknown words (or options) can change what `prog` runs or
    writes: wrappers, shells, interpreters, git, and programs with options or operands that write or run."""
    if prog in _HANDLERS or prog in RUNS_CODE or prog in DECLARES or prog in RUNNERS or prog in ("git", "dd"):
        return True
    if PYTHON.fullmatch(prog) or prog in CODE_FLAGS or prog in AWKS or prog == "deno":
        return True
    spec = PROGRAMS.get(prog)
    return spec is not None and bool(
        spec.risky or spec.output_operand is not None or spec.operands_written or spec.last_operand_written
    )


def _expanded_arguments(acc: Acc, prog: str, args: list[str]) -> None:
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


def analyse_words(acc: Acc, argv: list[str], depth: int) -> None:
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
    if handler is None and PYTHON.fullmatch(prog):
        handler = _python
    if handler is not None:
        handler(acc, cmd, depth)
    elif prog in CODE_FLAGS or prog in AWKS or prog == "deno":
        _interpreter(acc, cmd)
    elif prog in RUNS_CODE:
        acc.dark(f"{prog} runs or rebinds code we cannot see")
        acc.commands.append(cmd)
    else:
        _program(acc, cmd)


def _is_ratchet(word: str) -> bool:
    """`ratchet`, `/x/bin/ratchet`, `.venv/bin/RATCHET` (case-insensitive filesystems), and module names
    with a `ratchet` part (`ratchet.cli`, `server.ratchet.cli`, as `python -m` gets them)."""
    name = PurePosixPath(word).name.casefold()
    return name == "ratchet" or ("/" not in word and not name.endswith(".py") and "ratchet" in name.split("."))


def _human_cli(acc: Acc, cmd: list[str]) -> None:
    acc.human_cli = True
    acc.reasons.append(f"{cmd[0]} is Ratchet's own CLI: only the human runs it")


def _program(acc: Acc, cmd: list[str]) -> None:
    """A program that is not a wrapper: apply what its arguments do, then list it."""
    prog, args = cmd[0], cmd[1:]
    if _is_ratchet(prog) or (
        prog in RUNNERS and any(a.split() and _is_ratchet(a.split()[0]) for a in args if not a.startswith("-"))
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
    if prog in SHELL_ESCAPES:
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


def _apply(acc: Acc, what: str, spec: Spec, found: Scan) -> None:
    for path, option, word in found.writes:
        acc.write(path, f"{what} {option}", word)
    runs = [f"{name} {value}".strip() for name, value in found.runs if not _harmless(what, name, value)]
    if runs:
        acc.dark(f"{what} {', '.join(runs)} runs a program or writes where we cannot tell")
    if found.unknown and spec.strict:
        acc.dark(f"{what}: option {', '.join(found.unknown)} is not in its option table (unknown options fail closed)")


def _git(acc: Acc, cmd: list[str]) -> None:
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
        if sub == "branch" and found.operands and not LIST_MODE & set(found.seen):
            acc.dark("git branch NAME creates or changes a branch: only the listing forms are read-only")
    acc.commands.append(["git", sub, *rest])


def _wrapper(acc: Acc, cmd: list[str], depth: int) -> None:
    prog, args = cmd[0], cmd[1:]
    spec, operands = (SUDO_OPTS, 0) if prog in PRIVILEGED else WRAPPERS[prog]
    if prog in PRIVILEGED:
        acc.dark(f"{prog} runs its command with other privileges: not the plain command")
        if prog == "su":
            acc.commands.append(cmd)
            return
    parsed = parse_options(args, spec)
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
    analyse_words(acc, inner, depth + 1)


def _shell_c(acc: Acc, cmd: list[str], depth: int) -> None:
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
        analyse_script(acc, operands[0], depth + 1)
    elif script_mode or from_stdin or not operands or operands[0] == "-":
        acc.dark(f"{prog} reads commands from stdin or has no script: cannot tell what it runs")
        acc.commands.append(cmd)
    else:
        acc.commands.append(cmd)  # `bash script.sh`: classified as itself


def _xargs(acc: Acc, cmd: list[str], depth: int) -> None:
    parsed = parse_options(cmd[1:], XARGS_OPTS)
    if parsed is None:
        acc.dark("xargs: unrecognised option, cannot tell which command it runs")
        acc.commands.append(cmd)
        return
    inner = cmd[1 + parsed[0] :] or ["echo"]
    acc.reasons.append(f"xargs runs {inner[0]!r} with arguments appended from its input")
    fed, acc.fed = acc.fed, "xargs"
    analyse_words(acc, inner, depth + 1)
    acc.fed = fed


def _find(acc: Acc, cmd: list[str], depth: int) -> None:
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
            analyse_words(acc, inner, depth + 1)
        else:
            acc.dark("find -exec runs each found file itself")
    acc.fed = fed


def _python(acc: Acc, cmd: list[str], depth: int) -> None:
    parsed = parse_options(cmd[1:], PYTHON_OPTS)
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


def _interpreter(acc: Acc, cmd: list[str]) -> None:
    prog, args = cmd[0], cmd[1:]
    flags = CODE_FLAGS.get(prog, frozenset())
    # Scans every word, not just leading options: over-flagging `node app.js -e` is the safe error.
    short = {f[1] for f in flags if len(f) == 2}
    code = any(
        a.partition("=")[0] in flags if a.startswith("--") else a[:1] == "-" and bool(short & set(a[1:])) for a in args
    )
    operands = [a for a in args if not a.startswith("-")]
    if prog in AWKS and not any(a.startswith("-f") or a.startswith("--file") for a in args):
        acc.dark(f"{prog} program text on the command line can run commands (system())")
    elif prog == "deno" and (not operands or operands[0] in ("eval", "repl")):
        acc.dark("deno eval/repl runs code we cannot see")
    elif code:
        acc.dark(f"{prog} runs code given on the command line")
    elif not operands and prog not in AWKS:
        acc.dark(f"{prog} reads code from stdin")
    acc.commands.append(cmd)


_HANDLERS: dict[str, Callable[[Acc, list[str], int], None]] = {
    **{name: _wrapper for name in (*WRAPPERS, *PRIVILEGED)},
    **{name: _shell_c for name in SHELLS},
    "xargs": _xargs,
    "find": _find,
}


def analyse_script(acc: Acc, script: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        acc.dark(f"commands nested deeper than {MAX_DEPTH} levels: not analysed further")
        return
    try:
        tokens = lex(script)
    except Dark as exc:
        acc.dark(f"shell script uses {exc}: cannot tell what it runs")
        return
    words: list[Word] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if isinstance(tok, Word):
            words.append(tok)
        elif tok in DARK_OPS:
            acc.dark(f"shell script uses {DARK_OPS[tok]}: cannot tell what it runs")
            return
        elif tok in REDIRECTS:
            target = tokens[i] if i < len(tokens) else None
            if not isinstance(target, Word):
                acc.dark(f"redirection {tok!r} has no target")
                return
            i += 1
            if tok in WRITES and not (tok == ">&" and (target.text.isdigit() or target.text == "-")):
                if target.expands:
                    acc.dark(f"redirection target {target.text!r} is expanded by the shell: not a literal path")
                else:
                    acc.redirects.append(target.text)
                    acc.reasons.append(f"writes via redirection to {target.text}")
        else:
            assert tok in SEPARATORS
            _simple(acc, words, depth)
            words = []
    _simple(acc, words, depth)


def _simple(acc: Acc, words: list[Word], depth: int) -> None:
    """One simple command: skip structure words and assignments, analyse the rest as an argv."""

    def bare(word: Word) -> bool:  # reserved words only count when unquoted
        return word.plain == len(word.text)

    i, n = 0, len(words)  # an index, not `words[1:]` per skipped word: linear in the words
    while i < n and bare(words[i]) and words[i].text in STRUCTURE:
        i += 1
    if i < n and bare(words[i]) and words[i].text in COMPOUND:
        acc.dark(f"shell {words[i].text!r} construct is not analysed")
        return
    while i < n and (m := _ASSIGN.match(words[i].text)) and m.end() <= words[i].plain:
        _assignment(acc, words[i].text)
        i += 1
    if i < n:
        acc.expanding |= {w.text for w in words[i:] if w.expands}
        analyse_words(acc, [w.text for w in words[i:]], depth)
