"""What the options of known programs do: which name a file the program writes, which make it run
another program, and which are harmless. Pure data and one parser; policy/argv.py applies the result.

A `Spec` lists a program's options by effect. A *strict* spec (every program of a starter class that
starts at `autonomous`) names every option it accepts: an option it does not know makes the command
opaque, so an option added by a later version of the program, or one we forgot, fails closed. A
*loose* spec (programs that run the project's own code anyway: test runners, linters, builds) names
only the options that write a file or run a program outside that code; other options pass.

Long options may be abbreviated (GNU getopt_long, git, argparse accept any unambiguous prefix): a
prefix of an option that writes or runs is taken for it, whatever else it could also be.
GNU programs permute, so options are read after operands too, up to `--`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["GIT_GLOBAL", "GIT_SUBCOMMANDS", "PROGRAMS", "Scan", "Spec", "scan"]


def _names(text: str) -> frozenset[str]:
    """`"-a -b --all"` -> the names; a word `+xyz` stands for the short options -x -y -z."""
    out: set[str] = set()
    for word in text.split():
        if word.startswith("+"):
            out |= {f"-{c}" for c in word[1:]}
        else:
            out.add(word)
    return frozenset(out)


@dataclass(frozen=True)
class Spec:
    """One program's options by effect (see the module docstring)."""

    flags: frozenset[str] = frozenset()  # no value (a long one may still take `=V`)
    valued: frozenset[str] = frozenset()  # a value, attached or the next word
    optional: frozenset[str] = frozenset()  # a value only when attached (`-M50%`, `-u no`)
    writes: frozenset[str] = frozenset()  # the value is a file the program writes
    runs: frozenset[str] = frozenset()  # runs a program or code, or writes where we cannot tell
    strict: bool = True  # an unknown option makes the command opaque
    numeric: bool = False  # accepts `-5` (head, diff, git log)
    output_operand: int | None = None  # this operand (0-based) is a file the program writes
    operands_written: bool = False  # every operand is a file the program writes (tee)
    last_operand_written: bool = False  # the last of two or more operands is written (cp, ln)
    single_dash_long: bool = False  # `-name` / `-name=V` are long options (go)
    casefold: bool = False  # option names are case-insensitive (tsc)

    @cached_property
    def risky(self) -> frozenset[str]:
        """Options that write or run."""
        return self.writes | self.runs

    @cached_property
    def table(self) -> dict[str, str]:
        """Every option by its (case-folded, for `casefold`) name."""
        known = self.flags | self.valued | self.optional | self.risky
        return {n.lower() if self.casefold else n: n for n in known}

    def takes_value(self, name: str) -> bool:
        """Whether `name` consumes a value (the next word when not attached)."""
        return name in self.valued or name in self.risky


def spec(
    flags: str = "",
    valued: str = "",
    optional: str = "",
    writes: str = "",
    runs: str = "",
    *,
    strict: bool = True,
    numeric: bool = False,
    output_operand: int | None = None,
    operands_written: bool = False,
    last_operand_written: bool = False,
    runs_flags: str = "",
    single_dash_long: bool = False,
    casefold: bool = False,
) -> Spec:
    """Build a Spec from space-separated names. `runs_flags` are flags (no value) that run a program."""
    run_flags = _names(runs_flags)
    return Spec(
        _names(flags) | run_flags,
        _names(valued),
        _names(optional),
        _names(writes),
        _names(runs) | run_flags,
        strict,
        numeric,
        output_operand,
        operands_written,
        last_operand_written,
        single_dash_long,
        casefold,
    )


@dataclass
class Scan:
    """What one argv's options amount to."""

    operands: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # canonical option names, in order
    values: dict[str, str] = field(default_factory=dict)  # last value given to each valued option
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (path, option, word it came from)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (option, value) of options that run
    unknown: list[str] = field(default_factory=list)  # options the (strict) spec does not know


_NUMERIC = re.compile(r"-\d+")


def _long(spec: Spec, name: str) -> str | None:
    """The option `name` stands for, allowing unambiguous (or risky) prefixes; None when unknown."""
    table = spec.table
    key = name.lower() if spec.casefold else name
    if key in table:
        return table[key]
    if len(name) < 3:
        return None
    candidates = sorted(n for f, n in table.items() if len(f) > 2 and f.startswith(key))
    risky = [n for n in candidates if n in spec.risky]
    if risky:  # `sort --o=F` is `--output=F` to getopt; a prefix of anything risky is taken for it
        return risky[0]
    if len(name) < 4:  # `--x`: too short to be read as an abbreviation of a harmless option
        return None
    if len(candidates) == 1:
        return candidates[0]
    return None  # unknown or ambiguous: the program would refuse it or pick something we cannot tell


def scan(args: list[str], spec: Spec) -> Scan:
    """Read `args` (the words after the program, or after a git subcommand) against `spec`."""
    out = Scan()

    def effect(name: str, value: str, word: str) -> None:
        out.seen.append(name)
        if name in spec.writes:
            out.writes.append((value, name, word))
        elif name in spec.runs:
            out.runs.append((name, value))

    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            out.operands += args[i:]
            break
        if word == "-" or not word.startswith("-"):
            out.operands.append(word)
            continue
        if spec.numeric and _NUMERIC.fullmatch(word):
            continue
        if word.startswith("--") or (spec.single_dash_long and len(word.partition("=")[0]) > 2):
            given, eq, value = word.partition("=")
            if spec.single_dash_long:
                given = "-" + given.lstrip("-")
            name = _long(spec, given)
            if name is None:
                if spec.strict:
                    out.unknown.append(given)
                continue
            if spec.takes_value(name) and not eq:
                if i >= len(args):
                    out.unknown.append(f"{given} (its value is missing)")
                    break
                value = args[i]
                i += 1
            if eq or spec.takes_value(name):
                out.values[name] = value
            effect(name, value, word)
            continue
        for j in range(1, len(word)):  # a cluster of short options: -rn, -n5, -o FILE
            name, rest = "-" + word[j], word[j + 1 :]
            if name in spec.optional:
                out.seen.append(name)
                out.values[name] = rest
                break
            if spec.takes_value(name):
                if not rest:
                    if i >= len(args):
                        out.unknown.append(f"{name} (its value is missing)")
                        break
                    rest = args[i]
                    i += 1
                out.values[name] = rest
                effect(name, rest, word if word[j + 1 :] else rest)
                break
            if name in spec.flags:
                effect(name, "", word)
            elif spec.strict:
                out.unknown.append(name)
                break
            # loose: an unknown short option is read as a flag, so the rest of the cluster is still seen
    if spec.operands_written:
        out.writes += [(op, "operand", op) for op in out.operands if op != "-"]
    elif spec.output_operand is not None and len(out.operands) > spec.output_operand:
        op = out.operands[spec.output_operand]
        if op != "-":
            out.writes.append((op, "output operand", op))
    elif spec.last_operand_written and len(out.operands) >= 2:
        out.writes.append((out.operands[-1], "destination operand", out.operands[-1]))
    return out


# ---- read-only-run: strict tables (GNU coreutils 9, grep 3, ripgrep 14, tree 2, file 5) -----------

_LS = spec(
    "+aAbBcCdDfFgGhHiklLmnNopqQrRsStuUvwxXZ1 --all --almost-all --author --escape --ignore-backups "
    "--directory --dired --classify --file-type --full-time --group-directories-first --no-group "
    "--human-readable --si --dereference-command-line --dereference-command-line-symlink-to-dir --inode "
    "--kibibytes --dereference --numeric-uid-gid --literal --hide-control-chars --show-control-chars "
    "--quote-name --reverse --recursive --size --context --zero --color --colour --hyperlink --help --version",
    "-I -T -w --block-size --format --hide --ignore --indicator-style --quoting-style --sort --time "
    "--time-style --tabsize --width",
)
_CAT = spec(
    "+AbeEnstTuv --show-all --number-nonblank --show-ends --number --squeeze-blank --show-tabs "
    "--show-nonprinting --help --version"
)
_HEAD = spec(
    "+qvz --quiet --silent --verbose --zero-terminated --help --version", "-c -n --bytes --lines", numeric=True
)
_TAIL = spec(
    "+fFqvz --follow --retry --quiet --silent --verbose --zero-terminated --help --version",
    "-c -n -s --bytes --lines --pid --sleep-interval --max-unchanged-stats",
    numeric=True,
)
_WC = spec("+clmwL --bytes --chars --lines --words --max-line-length --total --help --version", "--files0-from")
_GREP = spec(
    "+EFGPivwxyclLoqsbHhnTZzaIrRUV --extended-regexp --fixed-strings --basic-regexp --perl-regexp "
    "--ignore-case --no-ignore-case --invert-match --word-regexp --line-regexp --count --color --colour "
    "--files-without-match --files-with-matches --only-matching --quiet --silent --no-messages "
    "--byte-offset --with-filename --no-filename --line-number --initial-tab --null --null-data --text "
    "--recursive --dereference-recursive --line-buffered --binary --no-group-separator --help --version",
    "-e -f -m -A -B -C -d -D --regexp --file --max-count --label --after-context --before-context "
    "--context --binary-files --devices --directories --exclude --exclude-from --exclude-dir --include "
    "--group-separator",
    numeric=True,
)
_RG = spec(
    "+abcFHiIlLnNopqsSuUvwxV0. -h --hidden --no-hidden --no-ignore --ignore --follow --no-follow --files "
    "--files-with-matches --files-without-match --count --count-matches --json --no-json --vimgrep --column "
    "--no-column --heading --no-heading --line-number --no-line-number --ignore-case --smart-case "
    "--case-sensitive --fixed-strings --no-fixed-strings --word-regexp --line-regexp --invert-match "
    "--no-invert-match --only-matching --multiline --no-multiline --multiline-dotall --no-multiline-dotall "
    "--no-messages --messages --no-filename --with-filename --null --null-data --pcre2 --no-pcre2 --quiet "
    "--stats --no-stats --sort-files --text --no-text --trim --no-trim --unrestricted --no-ignore-vcs "
    "--no-ignore-dot --no-ignore-global --no-ignore-parent --no-ignore-exclude --no-ignore-files "
    "--no-ignore-messages --no-config --crlf --no-crlf --byte-offset --passthru --passthrough --pretty "
    "--debug --trace --type-list --help --version --glob-case-insensitive --one-file-system --no-unicode "
    "--binary --no-binary --block-buffered --line-buffered --no-require-git --ignore-file-case-insensitive "
    "--include-zero --max-columns-preview --auto-hybrid-regex --invert-match --files-without-match "
    "--no-search-zip --no-pre",
    "-A -B -C -e -E -f -g -j -m -M -r -t -T -d --after-context --before-context --context --regexp "
    "--encoding --file --glob --iglob --max-count --max-depth --maxdepth --max-filesize --max-columns "
    "--type --type-not --type-add --type-clear --replace --sort --sortr --threads --engine --color "
    "--colors --context-separator --field-context-separator --field-match-separator --path-separator "
    "--dfa-size-limit --regex-size-limit --ignore-file --hyperlink-format --generate",
    runs="--pre --pre-glob --hostname-bin",
    runs_flags="-z --search-zip",
)
_TREE = spec(
    "+aAdfFgilnpqrsuxCDJNQSXhv --noreport --dirsfirst --filesfirst --du --prune --inodes --device "
    "--fromfile --gitignore --matchdirs --ignore-case --metafirst --info --fflinks --nolinks --help "
    "--version --condense --hintro --houtro --si",
    "-L -P -I -H -T --charset --filelimit --timefmt --sort --gitfile --infofile",
    writes="-o",
    runs_flags="-R",  # -R writes 00Tree.html into every directory
)
_FILE = spec(
    "+bcdEhiklLNnprsSv0 --brief --mime --mime-type --mime-encoding --keep-going --list --no-pad "
    "--no-buffer --preserve-date --raw --special-files --no-dereference --dereference --print0 "
    "--extension --apple --exclude-quiet --checking-printout --debug --help --version",
    "-e -F -f -m -P --separator --files-from --magic-file --exclude --parameter",
    runs="",
    runs_flags="-C --compile -z -Z --uncompress --uncompress-noreport",  # -C writes NAME.mgc; -z runs decompressors
)
_STAT = spec("+LfZt --dereference --file-system --terse --help --version", "-c --format --printf --cached")
_DU = spec(
    "+0abcDhHklLmPsSx --null --all --apparent-size --bytes --total --dereference-args --human-readable "
    "--inodes --dereference --count-links --no-dereference --separate-dirs --si --summarize "
    "--one-file-system --time --help --version",
    "-B -d -t -X --block-size --max-depth --threshold --time-style --exclude-from --exclude --files0-from",
)
_DIFF = spec(
    "+iEZbwBacuenytlrNsqpdTv --normal --brief --report-identical-files --context --unified --ed --rcs "
    "--side-by-side --left-column --suppress-common-lines --show-c-function --expand-tabs --initial-tab "
    "--suppress-blank-empty --paginate --recursive --no-dereference --new-file --unidirectional-new-file "
    "--ignore-file-name-case --no-ignore-file-name-case --ignore-case --ignore-tab-expansion "
    "--ignore-trailing-space --ignore-space-change --ignore-all-space --ignore-blank-lines --text "
    "--strip-trailing-cr --minimal --speed-large-files --color --help --version",
    "-C -U -W -I -F -x -X -S -D --width --show-function-line --label --tabsize --exclude --exclude-from "
    "--starting-file --from-file --to-file --ignore-matching-lines --ifdef --horizontal-lines --palette "
    "--line-format --old-line-format --new-line-format --unchanged-line-format --old-group-format "
    "--new-group-format --unchanged-group-format --changed-group-format",
    numeric=True,
)
_SORT = spec(
    "+bdfgiMhnRrVcCmsuz --ignore-leading-blanks --dictionary-order --ignore-case --general-numeric-sort "
    "--ignore-nonprinting --month-sort --human-numeric-sort --numeric-sort --random-sort --reverse "
    "--version-sort --check --merge --stable --unique --zero-terminated --debug --help --version",
    "-k -t -S --sort --random-source --key --field-separator --buffer-size --parallel --batch-size --files0-from",
    writes="-o --output",
    runs="--compress-program -T --temporary-directory",  # -T: temporary files wherever it says
)
_UNIQ = spec(
    "+cdDiuz --count --repeated --all-repeated --ignore-case --unique --zero-terminated --group --help --version",
    "-f -s -w --skip-fields --skip-chars --check-chars",
    numeric=True,
    output_operand=1,  # uniq [INPUT [OUTPUT]]
)
_CUT = spec(
    "+nsz --complement --only-delimited --zero-terminated --help --version",
    "-b -c -d -f --bytes --characters --delimiter --fields --output-delimiter",
)
_PWD = spec("-L -P --logical --physical --help --version")
_WHICH = spec("-a -s --all --help --version")
_ANY = spec(strict=False)  # echo, true: every word is printed or ignored

# ---- writers (no starter class; analysed so a class that allows them sees what they write) --------

_TEE = spec("+aip --append --ignore-interrupts --output-error --help --version", operands_written=True)
_CP_FLAGS = (
    "+abdfHilLnPprRsuvxTZ --archive --attributes-only --backup --copy-contents --force --interactive "
    "--link --dereference --no-clobber --no-dereference --preserve --parents --recursive --reflink "
    "--remove-destination --sparse --strip-trailing-slashes --symbolic-link --update --verbose "
    "--one-file-system --no-target-directory --context --debug --help --version --exchange --no-copy"
)
_CP = spec(_CP_FLAGS, "-S --suffix --no-preserve", writes="-t --target-directory", last_operand_written=True)
_INSTALL = spec(
    "+bcCdDpsvTZ --compare --directory --preserve-timestamps --strip --verbose --no-target-directory "
    "--backup --context --debug --preserve-context --help --version",
    "-g -m -o -S --group --mode --owner --suffix --strip-program",
    writes="-t --target-directory",
    runs="--strip-program",
    last_operand_written=True,
)

PROGRAMS: dict[str, Spec] = {
    "ls": _LS,
    "cat": _CAT,
    "head": _HEAD,
    "tail": _TAIL,
    "wc": _WC,
    "grep": _GREP,
    "egrep": _GREP,
    "fgrep": _GREP,
    "rg": _RG,
    "tree": _TREE,
    "pwd": _PWD,
    "echo": _ANY,
    "true": _ANY,
    "which": _WHICH,
    "file": _FILE,
    "stat": _STAT,
    "du": _DU,
    "diff": _DIFF,
    "sort": _SORT,
    "uniq": _UNIQ,
    "cut": _CUT,
    "tee": _TEE,
    "cp": _CP,
    "mv": spec(_CP_FLAGS, "-S --suffix", writes="-t --target-directory", operands_written=True),  # sources go
    "ln": _CP,
    "install": _INSTALL,
    "tar": spec(
        runs="-I -F --to-command --use-compress-program --checkpoint-action --rsh-command --info-script "
        "--new-volume-script --rmt-command",
        strict=False,
    ),
    # Programs that run the project's own code (loose: only what reaches outside that code is named).
    "pytest": spec(
        # Known harmless options: an exact name wins over a risky prefix (`--co` is not `--config-file`).
        "--co --collect-only --lf --last-failed --ff --failed-first --nf --new-first --sw --stepwise --pdb "
        "--cov --cov-append --cov-branch --cov-fail-under --cache-show --cache-clear --durations --maxfail "
        "--strict-markers --disable-warnings --runxfail --capture --showlocals --no-header --import-mode "
        "--deselect --ignore --ignore-glob --tb --color --verbose --quiet --exitfirst",
        "-k -m -n -r -W",
        writes="--junitxml --junit-xml --result-log --resultlog --report-log --basetemp --html --json-report-file",
        runs="-p -o --override-ini -c --config-file --rootdir --confcutdir --debug --pdbcls --cov-report --pastebin",
        strict=False,
    ),
    "tox": spec(valued="-e", runs="-c --conf --workdir --root -x --override --installpkg", strict=False),
    "nox": spec(runs="-f --noxfile --envdir", strict=False),
    "jest": spec(
        writes="--outputFile --output-file --coverageDirectory --coverage-directory",
        runs="-c --config --rootDir --testRunner --reporters --setupFiles --globalSetup --cacheDirectory",
        strict=False,
    ),
    "vitest": spec(writes="--outputFile --output-file", runs="-c --config --root --dir --reporter", strict=False),
    "rspec": spec(writes="-o --out", runs="-r --require -O --options", strict=False),
    "phpunit": spec(
        writes="--log-junit --log-teamcity --testdox-html --testdox-text --coverage-html --coverage-clover",
        runs="-c --configuration --bootstrap",
        strict=False,
    ),
    "ruff": spec(writes="-o --output-file --cache-dir", runs="--config", strict=False),
    "black": spec(runs="--config", strict=False),
    "isort": spec(runs="--settings-path --settings-file --sp", strict=False),
    "flake8": spec(writes="--output-file", runs="--config --append-config --enable-extensions", strict=False),
    "pylint": spec(writes="--output", runs="--load-plugins --rcfile --init-hook", strict=False),
    "mypy": spec(
        writes="--cache-dir --junit-xml --html-report --txt-report --xml-report --linecount-report "
        "--any-exprs-report --cobertura-xml-report --lineprecision-report --linecoverage-report",
        runs="--config-file --python-executable",
        strict=False,
    ),
    "pyright": spec(runs="-p --project --pythonpath", strict=False),
    "eslint": spec(
        "--cache --fix --fix-dry-run --quiet --max-warnings",
        writes="-o --output-file --cache-location",
        runs="-c --config --rulesdir --plugin --resolve-plugins-relative-to --format -f",
        strict=False,
    ),
    "prettier": spec(
        "--cache --check --write --list-different",
        writes="--cache-location",
        runs="--config --plugin --plugin-search-dir",
        strict=False,
    ),
    "tsc": spec(
        writes="--outDir --outFile --out --declarationDir --tsBuildInfoFile",
        runs="-p --project --plugins",
        strict=False,
        casefold=True,
    ),
    "gofmt": spec(strict=False),
    "rustfmt": spec(runs="--config-path", strict=False),
    "shellcheck": spec(strict=False),
    "make": spec(runs="-f --file --makefile -C --directory -I --include-dir --eval", strict=False),
    "go": spec(writes="-o", runs="-exec -toolexec -vettool -modfile -overlay -C", strict=False, single_dash_long=True),
    "cargo": spec(
        writes="--target-dir --out-dir --artifact-dir",
        runs="--config -Z --manifest-path -C",
        strict=False,
    ),
    "npm": spec(runs="--prefix --userconfig --globalconfig --script-shell -C", strict=False),
    "yarn": spec(runs="--cwd --use-yarnrc", strict=False),
    "pnpm": spec(runs="-C --dir --config", strict=False),
    "mvn": spec(valued="-D -P -T -pl -rf", runs="-f --file -s --settings", strict=False),
    "gradle": spec(
        valued="-P -D -x", runs="-b --build-file -c --settings-file -I --init-script -p --project-dir", strict=False
    ),
    "build": spec(writes="-o --outdir", runs="-C --config-setting", strict=False),  # python -m build
}

# ---- git ------------------------------------------------------------------------------------------

GIT_GLOBAL = spec(
    "-P --no-pager --no-optional-locks --literal-pathspecs --glob-pathspecs --noglob-pathspecs "
    "--icase-pathspecs --no-replace-objects --no-lazy-fetch --no-advice --version --help "
    "--html-path --man-path --info-path",
    runs="-c -C --git-dir --work-tree --exec-path --config-env --namespace --super-prefix --attr-source --list-cmds",
    runs_flags="-p --paginate --bare",
)

_GIT_DIFF_FLAGS = (
    "+psuRazWDhw -b --patch --no-patch --raw --patch-with-raw --patch-with-stat --stat --numstat "
    "--shortstat --dirstat --dirstat-by-file --cumulative --summary --compact-summary --name-only "
    "--name-status --submodule --color --no-color --color-moved --no-color-moved --color-moved-ws "
    "--no-color-moved-ws --word-diff --color-words --no-renames --rename-empty --no-rename-empty "
    "--check --full-index --binary --abbrev --break-rewrites --find-renames --find-copies "
    "--find-copies-harder --irreversible-delete --pickaxe-all --pickaxe-regex --text --ignore-cr-at-eol "
    "--ignore-space-at-eol --ignore-space-change --ignore-all-space --ignore-blank-lines "
    "--function-context --exit-code --quiet --no-ext-diff --no-textconv --ignore-submodules "
    "--no-prefix --default-prefix --ita-invisible-in-index --ita-visible-in-index --minimal --patience "
    "--histogram --indent-heuristic --no-indent-heuristic --relative --no-relative --unified "
    "--no-stat --merge-base --cached --staged --no-index --help --stat-width --stat-name-width "
    "--stat-graph-width --stat-count --full-diff --dd --combined-all-paths --remerge-diff -m -c --cc "
    "--diff-merges --no-diff-merges -t -r"
)
_GIT_DIFF_VALUED = (
    "-S -G -O -I --diff-algorithm --diff-filter --src-prefix --dst-prefix --line-prefix "
    "--ignore-matching-lines --inter-hunk-context --anchored --skip-to --rotate-to --output-indicator-new "
    "--output-indicator-old --output-indicator-context --find-object --orderfile --ws-error-highlight"
)
_GIT_DIFF_OPTIONAL = "-U -M -C -B -l -X"
_GIT_DIFF_RUNS = "--ext-diff --textconv --open-files-in-pager"
_GIT_LOG_FLAGS = (
    " --oneline --graph --decorate --no-decorate --all --branches --tags --remotes --merges --no-merges "
    "--first-parent --reverse --abbrev-commit --no-abbrev-commit --parents --children --left-right "
    "--cherry-pick --cherry-mark --cherry --boundary --topo-order --date-order --author-date-order "
    "--walk-reflogs -g --source --full-history --simplify-by-decoration --simplify-merges --ancestry-path "
    "--no-walk --do-walk --follow --notes --no-notes --expand-tabs --no-expand-tabs --mailmap "
    "--use-mailmap --no-mailmap --no-use-mailmap --log-size --all-match --invert-grep "
    "--regexp-ignore-case -i -E -F -P --basic-regexp --extended-regexp --fixed-strings --perl-regexp "
    "--pretty --relative-date --sparse --dense --show-pulls --single-worktree --reflog --alternate-refs "
    "--bisect --stdin --not --show-linear-break --date-order --clear-decorations --no-min-parents "
    "--no-max-parents --exclude-first-parent-only --max-parents --min-parents --show-notes"
)
_GIT_LOG_VALUED = (
    " -n --max-count --skip --since --after --until --before --author --committer --grep --grep-reflog "
    "--format --date --encoding --exclude --glob --decorate-refs --decorate-refs-exclude --since-as-filter "
    "-L"
)

GIT_SUBCOMMANDS: dict[str, Spec] = {
    "status": spec(
        "+sbvz --short --branch --show-stash --porcelain --long --verbose --untracked-files "
        "--ignore-submodules --ignored --column --no-column --ahead-behind --no-ahead-behind --renames "
        "--no-renames --find-renames --no-optional-locks",
        optional="-u -M",
    ),
    "diff": spec(
        _GIT_DIFF_FLAGS,
        _GIT_DIFF_VALUED,
        _GIT_DIFF_OPTIONAL,
        writes="--output",
        runs=_GIT_DIFF_RUNS,
        numeric=True,
    ),
    "log": spec(
        _GIT_DIFF_FLAGS + _GIT_LOG_FLAGS,
        _GIT_DIFF_VALUED + _GIT_LOG_VALUED,
        _GIT_DIFF_OPTIONAL,
        writes="--output",
        runs=_GIT_DIFF_RUNS + " --show-signature",
        numeric=True,
    ),
    "show": spec(
        _GIT_DIFF_FLAGS + _GIT_LOG_FLAGS,
        _GIT_DIFF_VALUED + _GIT_LOG_VALUED,
        _GIT_DIFF_OPTIONAL,
        writes="--output",
        runs=_GIT_DIFF_RUNS + " --show-signature",
        numeric=True,
    ),
    # Only the listing forms of `git branch` are known; -d/-D/-m/-M/-c/-C/-f/-u/--track/... are not,
    # so they make the command opaque (policy/argv.py also refuses operands outside list mode).
    "branch": spec(
        "+alrvi --list --all --remotes --verbose --show-current --ignore-case --omit-empty --no-color "
        "--color --column --no-column --abbrev --no-abbrev --contains --no-contains --merged --no-merged",
        "--sort --format --points-at",
    ),
}
