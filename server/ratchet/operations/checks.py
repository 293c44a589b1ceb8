"""What the engine needs of the executors to verify an action: run a class's checks, confined exactly
like an agent's command (executors/checks.py). The engine reaches executors only through operations/;
a file a failing check condemned is put back by the undo (operations/files.py `restore_file`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ratchet.executors.checks import CheckResult, run_checks
from ratchet.executors.confined import Confinement
from ratchet.executors.workspace import Workspace
from ratchet.operations import confine
from ratchet.policy.model import ActionClass, CommandSettings


def confinement(ws: Workspace, commands: CommandSettings, cls: ActionClass) -> Confinement:
    """Where a check of `cls` may write and what it may reach: what an agent's command of the class gets
    (the one helper, operations/confine.py: the review token hidden like every other process's)."""
    return confine.confinement(
        ws, commands, sandbox=cls.sandbox, profile=cls.profile, network=cls.network, approved=False
    )


async def run(
    checks: Sequence[Sequence[str]], paths: Sequence[str], confined: Confinement, *, timeout_s: float, token: str
) -> list[CheckResult]:
    """Run checks on `paths` (executors/checks.py `run_checks`)."""
    return await run_checks(checks, paths, confined, timeout_s=timeout_s, token=token)


__all__ = ["CheckResult", "Confinement", "confinement", "run"]
