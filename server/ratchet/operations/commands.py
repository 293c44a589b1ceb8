"""run_command: an argv (or, where the class allows it, a shell string) classified by what really runs.

The matcher sees one subject per simple command the call would execute (after unwrapping `env`,
`sh -c`, `xargs`, `find -exec`...; see policy/argv.py), an argv-less subject when what runs cannot be
known (only classes without an `argv` rule match it: the conservative catch-all), and a write
subject per file a shell redirection or a program's own option or operand writes (`sort -o F`,
`uniq IN OUT`, `git diff --output=F`; see policy/argv.py rules 12-15). A command that runs Ratchet's
own CLI is refused whatever the policy says (rule 16): the CLI is how the human decides.

A command's fingerprint is the content of the workspace files it names or obviously reads (`bound`: a
script operand or any operand naming a file, the files of `-r`/`-c`/`-f` and their long forms, a Makefile,
package manifests and test configuration of the tools that read them): the preview lists them with their
hashes, and a draft whose files changed since it was drafted goes stale instead of running what no one read.
What a program reads beyond that (an import, a file it opens by a name it computes) is not bound.

Every command runs with git's configuration neutralized as for the git tools (executors/git.py
`command_env`), so a git it starts, directly or from a script, runs no fsmonitor, hook, external
diff, textconv, filter, pager, editor or alias planted in the repository's config.

Every command runs in the OS sandbox under its class's profile (executors/sandbox.py; built by
operations/confine.py): `read-only` (nothing but a private `/tmp` writable) or `workspace` (only the
workspace, minus `.ratchet/`, git's control files, the client configurations and the other protected
paths, and a private `/tmp`); no network unless the class says `network = true`; none at all only
where the class says `sandbox = "off"`. Where no
sandbox can be had the gate holds command classes to `confirm` (trigger `no-sandbox`) and the
approved command runs unsandboxed, with a parent-death signal so it dies with the server.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
from pathlib import Path
from typing import Any

from ratchet.errors import ExecutionFailed, InvalidRequest
from ratchet.executors.confined import run_confined
from ratchet.executors.shell import kill_leftovers
from ratchet.executors.workspace import Workspace
from ratchet.operations.base import Leftover, OpContext, Operation, Prepared, kept_args
from ratchet.operations.confine import confinement
from ratchet.policy.argv import analyse_argv, analyse_shell
from ratchet.policy.limits import argv_bytes, utf8_len
from ratchet.policy.model import Subject
from ratchet.redact import redact, redact_argv

SHELL = "/bin/sh"


async def _prepare(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    argv: list[str] | None = args.get("argv")
    script: str | None = args.get("command")
    if (argv is None) == (script is None):
        raise InvalidRequest("give exactly one of argv (a list: program and arguments) or command (a shell string)")
    sizes = _sizes(ctx, argv, script, args.get("stdin"))  # before the lexer sees anything
    ws, settings = ctx.workspace, ctx.commands
    root = str(ws.root)
    analysis = analyse_argv(argv, root) if argv is not None else analyse_shell(script or "", root)
    cwd = _cwd(ctx, args.get("cwd"))
    timeout = args.get("timeout_s")
    if timeout is None:
        timeout = settings.timeout_s
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or not 0 < timeout <= settings.max_timeout_s:
        raise InvalidRequest(
            f"timeout_s {timeout!r} is out of range; expected more than 0 and at most "
            f"{settings.max_timeout_s:g} seconds (the policy's max_timeout_s)"
        )
    subjects = [Subject(tool="run_command", commands=(tuple(cmd),)) for cmd in analysis.commands]
    if analysis.opaque or not subjects:
        subjects.append(Subject(tool="run_command"))  # only argv-free (catch-all) classes match this
    for target in [*analysis.redirects, *analysis.writes]:
        if target not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            subjects.append(Subject(tool="write_file", paths=(ws.relpath(str(Path(cwd, target))),)))
    shown = shlex.join(argv) if argv is not None else script or ""
    # Each word is redacted before quoting: shell quoting (`'"'"'`) would hide a secret's shape.
    display = shlex.join(redact_argv(argv)) if argv is not None else redact(shown)
    lines = [f"$ {display}", f"cwd: {ws.relpath(str(cwd)) if cwd != ws.root else '.'}  timeout: {timeout:g}s"]
    lines += [f"note: {reason}" for reason in analysis.reasons]
    if args.get("stdin"):
        lines.append(f"stdin: {len(args['stdin'])} characters")
    files = _hashes(ctx, _named(ws, cwd, [tuple(c) for c in analysis.commands]))
    lines += [f"reads: {rel} (sha256 {digest[:12]})" for rel, digest in files.items()]
    clean = {"argv": argv, "command": script, "cwd": args.get("cwd"), "timeout_s": timeout, "stdin": args.get("stdin")}
    plan = {"argv": list(argv) if argv is not None else [SHELL, "-c", shown], "cwd": cwd, "timeout_s": timeout}
    refusals: tuple[tuple[str, str], ...] = (("human-cli", _HUMAN_CLI),) if analysis.human_cli else ()
    return Prepared(
        "run_command",
        clean,
        tuple(subjects),
        display[:200],  # redacted before the cut, so no secret is cut into an unrecognisable part
        "\n".join(lines),
        _bound_fingerprint(files),
        plan,
        shell=script is not None,
        record=kept_args("run_command", clean),
        sizes=sizes,
        refusals=refusals,
    )


_HUMAN_CLI = (
    "this command runs `ratchet`, the human's own CLI (approve, pin, reset, ...: how the human decides "
    "what the agent may do); the agent never runs it. Ask the human to run it themself if it is needed"
)


def _sizes(ctx: OpContext, argv: Any, script: Any, stdin: Any) -> dict[str, int]:
    """Measure and check the call's sizes against the loosest limits (the class's come later)."""
    sizes: dict[str, int] = {}
    ceiling = ctx.ceiling
    if argv is not None:
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise InvalidRequest("argv must be a list of strings: the program and its arguments")
        sizes["max_argv_bytes"] = ceiling.check("run_command", "max_argv_bytes", argv_bytes(argv), "the argv")
    if script is not None:
        if not isinstance(script, str):
            raise InvalidRequest("command must be a shell string")
        sizes["max_shell_bytes"] = ceiling.check("run_command", "max_shell_bytes", utf8_len(script), "the shell string")
    if stdin is not None:
        if not isinstance(stdin, str):
            raise InvalidRequest("stdin must be text")
        sizes["max_stdin_bytes"] = ceiling.check("run_command", "max_stdin_bytes", utf8_len(stdin), "stdin")
    return sizes


def _cwd(ctx: OpContext, cwd: str | None) -> Path:
    ws = ctx.workspace
    if cwd in (None, "", "."):
        return ws.root
    path = ws.resolve(cwd)
    if not path.is_dir():
        raise InvalidRequest(f"cwd {cwd!r} is not a directory in the workspace")
    return path


# Files a program reads by convention, from its working directory, when it runs.
_IMPLICIT = {
    "make": ("Makefile", "makefile", "GNUmakefile"),
    "gmake": ("Makefile", "makefile", "GNUmakefile"),
    "npm": ("package.json", "package-lock.json", ".npmrc"),
    "npx": ("package.json", "package-lock.json", ".npmrc"),
    "yarn": ("package.json", "yarn.lock", ".yarnrc", ".yarnrc.yml"),
    "pnpm": ("package.json", "pnpm-lock.yaml", ".npmrc"),
    "pytest": ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "conftest.py"),
    "py.test": ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "conftest.py"),
    "tox": ("tox.ini", "pyproject.toml", "setup.cfg"),
    "pip": ("pyproject.toml", "setup.py", "setup.cfg"),
    "pip3": ("pyproject.toml", "setup.py", "setup.cfg"),
    "cargo": ("Cargo.toml", "Cargo.lock", "build.rs"),
    "go": ("go.mod", "go.sum"),
    "bundle": ("Gemfile", "Gemfile.lock"),
    "rake": ("Rakefile",),
    "gradle": ("build.gradle", "build.gradle.kts", "settings.gradle"),
    "mvn": ("pom.xml",),
}
# Options whose value is a file the program reads (pip -r/-c, make -f, a tool's configuration).
_FILE_OPTIONS = frozenset(
    {"-r", "-c", "-f", "--requirement", "--constraint", "--file", "--makefile", "--rcfile", "--config", "-C"}
)
MAX_BOUND = 32
MAX_WORDS = 256
MAX_HASHED = 4 * 1024 * 1024


def _file_in(root: str, cwd: str, name: str) -> str | None:
    """`name` (relative to `cwd`) as a workspace-relative path, when it is a regular file inside the workspace
    `root`. String paths on purpose: this runs for the words of every command prepared."""
    if not name or "\x00" in name:
        return None
    joined = os.path.join(cwd, name)  # noqa: PTH118 - see the docstring
    if not os.path.isfile(joined):  # noqa: PTH113 - most words name no file: one stat, nothing resolved
        return None
    real = os.path.realpath(joined)
    if not real.startswith(root + os.sep):
        return None
    return real[len(root) + 1 :]


def _named(ws: Workspace, cwd: Path, commands: list[tuple[str, ...]]) -> list[str]:
    """The workspace files the commands name or obviously read (see the module docstring), in order, once each."""
    found: list[str] = []
    root, here = str(ws.root), str(cwd)

    def add(name: str) -> None:
        rel = _file_in(root, here, name)
        if rel is not None and rel not in found and len(found) < MAX_BOUND:
            found.append(rel)

    for argv in commands:
        if not argv:
            continue
        program = argv[0]
        if "/" in program:
            add(program)
        words = list(argv[1 : 1 + MAX_WORDS])  # a script's operands come first; a huge argv is not walked
        name = Path(program).name
        if name.startswith("python") and words[:2] == ["-m", "pytest"]:
            name = "pytest"
        for implicit in _IMPLICIT.get(name, ()):
            add(implicit)
        for i, word in enumerate(words):
            if word.startswith("-"):
                option, eq, value = word.partition("=")
                if eq and option in _FILE_OPTIONS:
                    add(value)
                elif option in _FILE_OPTIONS and i + 1 < len(words):
                    add(words[i + 1])
                continue
            add(word)
    return found


def bound(ctx: OpContext, argv: list[str] | None, script: str | None, cwd: Path) -> dict[str, str]:
    """The files a command binds, each with the SHA-256 of its content now."""
    root = str(ctx.workspace.root)
    analysis = analyse_argv(argv, root) if argv is not None else analyse_shell(script or "", root)
    return _hashes(ctx, _named(ctx.workspace, cwd, [tuple(c) for c in analysis.commands]))


def _hashes(ctx: OpContext, names: list[str]) -> dict[str, str]:
    """Each bound file's content as a SHA-256 (a large one's size and time stand for it)."""
    out: dict[str, str] = {}
    for rel in names:
        path = ctx.workspace.root / rel
        try:
            info = path.stat()
            if info.st_size > MAX_HASHED:  # a large data file: its size and time stand for its content
                out[rel] = hashlib.sha256(f"{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[rel] = "unreadable"
    return out


def _bound_fingerprint(files: dict[str, str]) -> str | None:
    """One value for the bound files' contents (None: the command binds no file)."""
    if not files:
        return None
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()


async def _fingerprint(ctx: OpContext, args: dict[str, Any]) -> str | None:
    try:
        cwd = _cwd(ctx, args.get("cwd"))
    except InvalidRequest:
        return "cwd gone"
    return _bound_fingerprint(bound(ctx, args.get("argv"), args.get("command"), cwd))


async def _run(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    plan, settings = prepared.plan, ctx.commands
    # Sandboxed where the class wants it and the host can; otherwise the gate has already held the
    # call to a human's confirmation (trigger no-sandbox) or the policy opted the class out.
    confined = confinement(
        ctx.workspace, settings, sandbox=ctx.sandbox, profile=ctx.profile, network=ctx.network, approved=ctx.approved
    )
    run = await run_confined(
        plan["argv"],
        confined,
        cwd=plan["cwd"],
        timeout_s=plan["timeout_s"],
        extra_env={"RATCHET_ACTION": token},
        stdin=prepared.args.get("stdin"),
        on_progress=ctx.progress,
        on_spawn=ctx.on_spawn,
    )
    done, planted = run.result, run.planted
    result = {
        "exit_code": done.exit_code,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "stdout_bytes": done.stdout_bytes,
        "stderr_bytes": done.stderr_bytes,
        "truncated": done.truncated,
        "timed_out": done.timed_out,
        "duration_s": round(done.duration_s, 3),
    }
    if planted:
        names = ", ".join(p.relative_to(ctx.workspace.root).as_posix() for p in planted)
        raise ExecutionFailed(
            f"the command created {names}, which would decide what programs git runs, configure a coding client "
            "or gate the agent; Ratchet removed it. Create repositories and these configurations outside run_command",
            result,
        )
    if done.timed_out:
        raise ExecutionFailed(f"timed out after {plan['timeout_s']:g}s; the process group was killed", result)
    if done.exit_code != 0:
        raise ExecutionFailed(f"exited with status {done.exit_code}", result)
    return result


def _recover(ws: Workspace, leftover: Leftover) -> None:
    if leftover.child_pid is not None:
        # What is left of a command whose server died (the record already says it may have run).
        kill_leftovers(leftover.child_pid, f"RATCHET_ACTION={leftover.action_id}")


OPERATIONS = (Operation("run_command", _prepare, _fingerprint, _run, _recover),)
