"""The option tables and word lists of the wrappers, shells and interpreters the rules unwrap. Pure data."""

from __future__ import annotations

import re

from ratchet.policy.argv_options import Opts, names, opts

WRAPPERS: dict[str, tuple[Opts, int]] = {  # name -> (options, operands before the command)
    "env": (
        opts(
            "-i - --ignore-environment -0 --null -v --debug --default-signal --ignore-signal "
            "--block-signal --list-signal-handling",
            "-u --unset -C --chdir -S --split-string",
        ),
        0,
    ),
    "nice": (opts(valued="-n --adjustment", numeric=True), 0),
    "nohup": (opts(), 0),
    "timeout": (opts("--foreground --preserve-status -v --verbose", "-s --signal -k --kill-after"), 1),
    "time": (opts("-p -a --append -v --verbose --portability -q --quiet", "-f --format -o --output"), 0),
    "stdbuf": (opts(valued="-i -o -e --input --output --error"), 0),
    "command": (opts("-p -v -V"), 0),
    "exec": (opts("-c -l", "-a"), 0),
    "builtin": (opts(), 0),
    "setsid": (opts("-c --ctty -f --fork -w --wait"), 0),
    "ionice": (opts("-t --ignore", "-c --class -n --classdata"), 0),
    "busybox": (opts(), 0),
}


PRIVILEGED = names("sudo doas pkexec run0 su")


SUDO_OPTS = opts(
    "-A -b -E -e -H -i -k -K -n -P -S -s --preserve-env --login --shell --non-interactive "
    "--background --askpass --stdin --set-home --reset-timestamp",
    "-u -g -C -D -h -p -r -t -T -U --user --group --chdir --host --prompt --role --type "
    "--close-from --command-timeout --other-user",
)


SHELLS = names("sh bash zsh dash ksh mksh ash")


XARGS_OPTS = opts(
    "-0 --null -r --no-run-if-empty -t --verbose -p --interactive -x --exit -o --open-tty --replace --eof --max-lines",
    "-a --arg-file -d --delimiter -E -I -L -n --max-args -P --max-procs -s --max-chars --process-slot-var",
    "-i -e -l",
)


PYTHON = re.compile(r"(python|pypy)[\d.]*")


PYTHON_OPTS = opts(
    "-b -B -d -E -h -i -I -O -P -q -s -S -u -v -V -x -R -? --help --version",
    "-W -X -c -m --check-hash-based-pycs",
    stop="-c -m",
)


CODE_FLAGS: dict[str, frozenset[str]] = {  # long flags match exactly or with `=`; short ones in clusters
    name: names(flags)
    for programs, flags in [
        ("node nodejs bun", "-e -p --eval --print"),
        ("perl ruby", "-e -E"),
        ("php", "-r -R -B -E -a"),
        ("lua luajit Rscript osascript", "-e"),
        ("awk gawk mawk nawk", "-e --source"),
    ]
    for name in programs.split()
}


AWKS = names("awk gawk mawk nawk")


RUNS_CODE = names("eval source . trap alias hash enable fc")


DECLARES = names("export declare typeset readonly local")


RISKY_VARS = names(
    "PATH BASH_ENV ENV SHELLOPTS PYTHONPATH PYTHONHOME PYTHONSTARTUP NODE_OPTIONS NODE_PATH "
    "PERL5OPT PERL5LIB RUBYOPT RUBYLIB IFS "
    # variables that add options or programs to programs with option tables (rules 12-14)
    "PAGER MANPAGER EDITOR VISUAL LESSOPEN LESSCLOSE RIPGREP_CONFIG_PATH TAR_OPTIONS TMPDIR "
    "PYTEST_ADDOPTS PYTEST_PLUGINS MAKEFLAGS MFLAGS GNUMAKEFLAGS GOFLAGS RUSTC_WRAPPER "
    "CARGO_BUILD_RUSTC_WRAPPER"
)


RISKY_PREFIXES = ("LD_", "DYLD_", "GIT_", "npm_config_", "NPM_CONFIG_")


BASH_EVALUATES = {
    "[[": "bash's [[ ]] evaluates its operands' values as arithmetic (-eq, -lt, ...)",
    "let": "let evaluates arithmetic, running any $(...) held in a variable's value",
}


NAME_BUILTINS = names("read unset mapfile readarray getopts wait")  # operands name variables (subscripts too)


SHELL_ESCAPES = names("less more most man pg vi vim nvim view ex ed nano emacs pico mg joe")


RUNNERS = names(
    "uv uvx poetry pdm hatch rye pipx conda mamba pixi npx pnpx bunx strace ltrace watch gdb valgrind "
    "chroot flock unshare nsenter firejail bwrap systemd-run tmux screen parallel script"
)


LIST_MODE = names("-l --list --contains --no-contains --merged --no-merged --points-at -v --verbose")
