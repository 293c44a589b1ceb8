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

The analysis is four modules by concept, read in this order: `shell_lexer` (a script's words and
operators), `argv_options` (leading options read by a table), `argv_tables` (the wrappers', shells' and
interpreters' tables) and `unwrap` (the rules above, applied); `argv_analysis` holds what they find.
"""

from __future__ import annotations

from collections.abc import Sequence

from ratchet.errors import InvalidRequest
from ratchet.policy.argv_analysis import MAX_DEPTH, Acc, CommandAnalysis
from ratchet.policy.unwrap import analyse_script, analyse_words

__all__ = ["MAX_DEPTH", "CommandAnalysis", "analyse_argv", "analyse_shell"]


def analyse_argv(argv: Sequence[str], workspace: str | None = None) -> CommandAnalysis:
    """Analyse an argv that would be exec'd directly (no shell). Empty argv is InvalidRequest.

    Program paths under `workspace` (and relative ones) keep their path: the agent can write there.
    """
    if isinstance(argv, str) or not argv or not argv[0]:
        raise InvalidRequest("argv must be a non-empty list whose first item names a program")
    acc = Acc(workspace)
    analyse_words(acc, list(argv), 0)
    return acc.result()


def analyse_shell(script: str, workspace: str | None = None) -> CommandAnalysis:
    """Analyse a shell script string (for classes that allow one). A blank script is InvalidRequest."""
    if not script.strip():
        raise InvalidRequest("shell script is empty: expected at least one command")
    acc = Acc(workspace)
    analyse_script(acc, script, 0)
    return acc.result()
