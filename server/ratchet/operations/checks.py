"""What the engine needs of the executors to verify an action: run a class's checks, and put back a
file a failing check condemned. The engine reaches executors only through operations/.

Checks run through executors/checks.py (confined exactly like an agent's command); a file is put
back through executors/fs.py `restore` (exact bytes, only while it holds what the action wrote).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ratchet.executors import fs
from ratchet.executors.checks import CheckResult, run_checks
from ratchet.executors.confined import Confinement
from ratchet.executors.workspace import Workspace
from ratchet.operations.base import Prepared
from ratchet.policy.model import ActionClass, CommandSettings


@dataclass(frozen=True)
class Prior:
    """What a write or an edit replaced: its path, its bytes (None: the file did not exist), its mode."""

    path: str
    data: bytes | None
    mode: int | None


def confinement(ws: Workspace, commands: CommandSettings, cls: ActionClass) -> Confinement:
    """Where a check of `cls` may write and what it may reach: what an agent's command of the class gets."""
    return Confinement(ws.root, ws.protected, commands.env_allow, commands.output_cap, cls.sandbox, cls.network)


def prior_of(prepared: Prepared) -> Prior | None:
    """What a prepared write or edit will replace (the bytes it was planned against), or None for
    another tool. The write applies only while the file still holds exactly these bytes."""
    plan = prepared.plan
    if not isinstance(plan, fs.WritePlan):
        return None
    before = plan.before
    data = before.text.encode("utf-8") if before.exists and before.text is not None else None
    return Prior(plan.rel, data, before.mode)


def restore(ws: Workspace, path: str, data: bytes | None, mode: int | None, *, expect: str, token: str) -> None:
    """Put `data` back at `path` (remove it for None) while it still holds `expect`; DraftStale otherwise."""
    fs.restore(ws, path, data, mode, expect=expect, token=token)


async def run(
    checks: Sequence[Sequence[str]], paths: Sequence[str], confined: Confinement, *, timeout_s: float, token: str
) -> list[CheckResult]:
    """Run checks on `paths` (executors/checks.py `run_checks`)."""
    return await run_checks(checks, paths, confined, timeout_s=timeout_s, token=token)


__all__ = ["CheckResult", "Confinement", "Prior", "confinement", "prior_of", "restore", "run"]
