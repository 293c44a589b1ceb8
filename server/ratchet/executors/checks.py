"""Verification checks: programs a class names to judge an action, independent of the agent.

A class's `verify` is a list of argv lists such as `["ruff", "check", "{path}"]`. After an action of
the class executes, each check runs confined exactly as an agent's command would (executors/confined.py:
sandboxed, no network, scrubbed environment, a timeout that kills the process group, capped output),
from the workspace root. Checks are not agent actions: they are not gated or recorded as actions;
their results are recorded on the action they judge.

Expansion never goes through a shell. An argument `{paths}` becomes every target as separate
arguments; `{path}` (anywhere inside an argument) runs the check once per target with the target in
its place. Every target is passed as `./relative/path`, so a file the agent named cannot be read as an
option (`-rf`) or as an argument file (`@args`, which pytest and others expand) by the check program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ratchet.errors import ExecutionFailed
from ratchet.executors.confined import Confinement, run_confined
from ratchet.redact import redact

# How much of a check's output the record and the packet keep: its end, where the failure usually is.
TAIL_CHARS = 2000


@dataclass(frozen=True)
class CheckResult:
    """One check's run on an action's targets."""

    argv: tuple[str, ...]
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    tail: str  # the end of stdout and stderr, redacted

    def summary(self) -> str:
        """One line: what ran and how it ended."""
        how = "passed" if self.passed else "timed out" if self.timed_out else f"failed (exit {self.exit_code})"
        return f"{' '.join(self.argv)}: {how}"


def expand(check: Sequence[str], paths: Sequence[str]) -> list[list[str]]:
    """The argv lists one check becomes for these targets (see the module docstring)."""
    safe = [p if p.startswith("./") else f"./{p.lstrip('/')}" for p in paths]
    if any("{path}" in arg for arg in check):
        return [_splat([arg.replace("{path}", path) for arg in check], safe) for path in safe]
    return [_splat(list(check), safe)]


def _splat(argv: list[str], paths: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        if arg == "{paths}":
            out.extend(paths)
        else:
            out.append(arg.replace("{paths}", " ".join(paths)))
    return out


async def run_checks(
    checks: Sequence[Sequence[str]],
    paths: Sequence[str],
    confinement: Confinement,
    *,
    timeout_s: float,
    token: str,
) -> list[CheckResult]:
    """Run every check on `paths`, in order, all of them (one failing does not skip the rest)."""
    results: list[CheckResult] = []
    for check in checks:
        for argv in expand(check, paths):
            results.append(await _run_one(argv, confinement, timeout_s, token))
    return results


async def _run_one(argv: list[str], confinement: Confinement, timeout_s: float, token: str) -> CheckResult:
    try:
        run = await run_confined(
            argv,
            confinement,
            cwd=confinement.workspace,
            timeout_s=timeout_s,
            extra_env={"RATCHET_CHECK": token},
        )
    except ExecutionFailed as exc:  # the program could not start: the check failed, and says why
        return CheckResult(tuple(argv), False, None, False, 0.0, redact(str(exc))[-TAIL_CHARS:])
    done = run.result
    output = (done.stdout + ("\n" if done.stdout and done.stderr else "") + done.stderr).strip()
    if run.planted:
        names = ", ".join(str(p) for p in run.planted)
        output += f"\n[the check created {names}; Ratchet removed it]"
    passed = done.exit_code == 0 and not done.timed_out and not run.planted
    return CheckResult(
        tuple(argv), passed, done.exit_code, done.timed_out, round(done.duration_s, 3), redact(output)[-TAIL_CHARS:]
    )
