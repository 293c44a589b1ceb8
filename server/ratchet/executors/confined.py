"""Run a program the way every agent command runs: scrubbed environment, git neutralized, sandboxed.

`run_command` (operations/commands.py), approved command drafts and a class's verification checks
(executors/checks.py) all run through here, with a `Confinement` built by the one helper
(operations/confine.py `confinement`), so a check is held to exactly what an agent's command is: the
class's sandbox profile (read-only, or only the workspace and a private `/tmp` writable minus the
protected set), the review token hidden, no network unless allowed, a timeout that kills the
process group, capped output. A sandboxed program runs in a fresh cell of a sandbox prepared once
per plan (executors/sandbox_reuse.py), or in a sandbox of its own where none can be had.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from ratchet.executors.git import command_env
from ratchet.executors.sandbox import SandboxPlan, remove_planted, sandbox_env, sandbox_status_async
from ratchet.executors.sandbox import plan as sandbox_plan
from ratchet.executors.sandbox_reuse import reuse_wanted, run_in_cell
from ratchet.executors.shell import CommandResult, ProgressCallback, SpawnCallback, run_argv, scrub_env


@dataclass(frozen=True)
class Confinement:
    """Where a program may write and what it may reach."""

    workspace: Path
    protected: Sequence[Path]
    env_allow: Sequence[str]
    output_cap: int
    sandbox: bool = True
    network: bool = False
    hidden: Sequence[Path] = ()  # files the program must not read (shown empty in the sandbox)
    profile: str = "workspace"  # executors/sandbox.py: "read-only" or "workspace"
    read_only: Sequence[Path] = ()  # workspace paths kept read-only (policy/guarded.py)
    never_create: Sequence[Path] = ()  # those of read_only that must not appear when missing


@dataclass(frozen=True)
class ConfinedRun:
    """What the program did, and the protected paths it created (removed again by Ratchet)."""

    result: CommandResult
    planted: list[Path]
    sandboxed: bool


async def _env_and_plan(
    argv: list[str], confinement: Confinement, scrubbed: dict[str, str], cwd: Path, timeout_s: float
) -> tuple[dict[str, str], SandboxPlan]:
    planned: list[SandboxPlan] = []
    failed: list[BaseException] = []

    def make_plan() -> None:
        try:
            planned.append(
                sandbox_plan(
                    argv,
                    workspace=confinement.workspace,
                    cwd=cwd,
                    protected=confinement.protected,
                    network=confinement.network,
                    env=scrubbed,
                    hidden=confinement.hidden,
                    profile=confinement.profile,
                    read_only=confinement.read_only,
                    never_create=confinement.never_create,
                )
            )
        except Exception as exc:  # raised below, after command_env's own error if it has one
            failed.append(exc)

    envs: list[dict[str, str]] = []
    env_failed: list[BaseException] = []

    async def make_env() -> None:
        try:
            envs.append(await command_env(scrubbed, cwd, process_timeout=min(timeout_s, 30.0)))
        except Exception as exc:  # raised below as itself, not inside a task group's exception group
            env_failed.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, make_plan)
        group.start_soon(make_env)
    if env_failed or failed:
        raise (env_failed or failed)[0]
    return envs[0], dataclasses.replace(planned[0], env=sandbox_env(envs[0]))


async def run_confined(
    argv: Sequence[str],
    confinement: Confinement,
    *,
    cwd: Path,
    timeout_s: float,
    extra_env: Mapping[str, str],
    stdin: str | None = None,
    on_progress: ProgressCallback | None = None,
    on_spawn: SpawnCallback | None = None,
) -> ConfinedRun:
    """Run `argv` confined; ExecutionFailed when it cannot start (a non-zero exit is a result)."""
    scrubbed = scrub_env(confinement.env_allow, os.environ, extra_env)
    spawned: list[str] = list(argv)
    guarded: tuple[Path, ...] = ()
    sandboxed = confinement.sandbox and (await sandbox_status_async()).available
    if not sandboxed:
        env = await command_env(scrubbed, cwd, process_timeout=min(timeout_s, 30.0))
    else:
        # The two each run git once (the repository's config for the command's environment; its hook
        # and include targets for the plan): side by side. The plan reads only PATH of the environment,
        # which command_env leaves alone; command_env's error comes first, as when they ran in turn.
        env, boxed = await _env_and_plan(spawned, confinement, scrubbed, cwd, timeout_s)
        guarded = boxed.must_not_appear
        if reuse_wanted():
            try:
                reused = await run_in_cell(
                    boxed,
                    spawned,
                    cwd=cwd,
                    env=boxed.env,
                    timeout_s=timeout_s,
                    stdin=stdin,
                    output_cap=confinement.output_cap,
                    on_progress=on_progress,
                    on_spawn=on_spawn,
                )
            except BaseException:
                remove_planted(guarded)
                raise
            if reused is not None:
                return ConfinedRun(reused, remove_planted(guarded), sandboxed)
        spawned, env = boxed.argv, boxed.env
    try:
        done = await run_argv(
            spawned,
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            stdin=stdin,
            output_cap=confinement.output_cap,
            on_progress=on_progress,
            on_spawn=on_spawn,
            die_with_parent=not sandboxed,  # bubblewrap's --die-with-parent covers the sandboxed case
        )
    except BaseException:
        remove_planted(guarded)
        raise
    return ConfinedRun(done, remove_planted(guarded), sandboxed)
