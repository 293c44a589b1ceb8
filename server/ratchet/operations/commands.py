"""run_command: an argv (or, where the class allows it, a shell string) classified by what really runs.

The matcher sees one subject per simple command the call would execute (after unwrapping `env`,
`sh -c`, `xargs`, `find -exec`...; see commands.py), an argv-less subject when what runs cannot be
known (only classes without an `argv` rule match it: the conservative catch-all), and a write
subject per file a shell redirection writes. Commands have no fingerprint: a draft of a command
runs as drafted whatever changed meanwhile.
"""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path
from typing import Any

from ..commands import analyse_argv, analyse_shell
from ..errors import ExecutionFailed, InvalidRequest
from ..policy import Subject
from ..redact import redact
from ..tools.shell import run_argv, scrub_env
from . import OpContext, Operation, Prepared

SHELL = "/bin/sh"


async def _prepare(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    argv: list[str] | None = args.get("argv")
    script: str | None = args.get("command")
    if (argv is None) == (script is None):
        raise InvalidRequest("give exactly one of argv (a list: program and arguments) or command (a shell string)")
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
    for target in analysis.redirects:
        if target not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            subjects.append(Subject(tool="write_file", paths=(ws.relpath(str(Path(cwd, target))),)))
    shown = shlex.join(argv) if argv is not None else script or ""
    # Each word is redacted before quoting: shell quoting (`'"'"'`) would hide a secret's shape.
    display = shlex.join([redact(a) for a in argv]) if argv is not None else redact(shown)
    lines = [f"$ {display}", f"cwd: {ws.relpath(str(cwd)) if cwd != ws.root else '.'}  timeout: {timeout:g}s"]
    lines += [f"note: {reason}" for reason in analysis.reasons]
    if args.get("stdin"):
        lines.append(f"stdin: {len(args['stdin'])} characters")
    clean = {"argv": argv, "command": script, "cwd": args.get("cwd"), "timeout_s": timeout, "stdin": args.get("stdin")}
    plan = {"argv": list(argv) if argv is not None else [SHELL, "-c", shown], "cwd": cwd, "timeout_s": timeout}
    return Prepared(
        "run_command",
        clean,
        tuple(subjects),
        display[:200],  # redacted before the cut, so no secret is cut into an unrecognisable part
        "\n".join(lines),
        None,
        plan,
        shell=script is not None,
    )


def _cwd(ctx: OpContext, cwd: str | None) -> Path:
    ws = ctx.workspace
    if cwd in (None, "", "."):
        return ws.root
    path = ws.resolve(cwd)
    if not path.is_dir():
        raise InvalidRequest(f"cwd {cwd!r} is not a directory in the workspace")
    return path


async def _fingerprint(ctx: OpContext, args: dict[str, Any]) -> str | None:
    return None


async def _execute(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    plan, settings = prepared.plan, ctx.commands
    env = scrub_env(settings.env_allow, os.environ, {"RATCHET_ACTION": token})
    done = await run_argv(
        plan["argv"],
        cwd=plan["cwd"],
        env=env,
        timeout_s=plan["timeout_s"],
        stdin=prepared.args.get("stdin"),
        output_cap=settings.output_cap,
        on_progress=ctx.progress,
    )
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
    if done.timed_out:
        raise ExecutionFailed(f"timed out after {plan['timeout_s']:g}s; the process group was killed", result)
    if done.exit_code != 0:
        raise ExecutionFailed(f"exited with status {done.exit_code}", result)
    return result


OPERATIONS = (Operation("run_command", _prepare, _fingerprint, _execute),)
