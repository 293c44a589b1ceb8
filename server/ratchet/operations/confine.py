"""The one place a `Confinement` is built: every process the agent causes runs under what this returns.

`run_command`, an approved command draft, a class's verification checks and Claude Code's own Bash
(through the hook's input rewrite) all get their confinement here, so no caller can forget a part:
the class's sandbox profile and network, Ratchet's protected state, the paths the policy keeps
read-only (policy/guarded.py; those of lower-ceiling classes writable only when a person approved the
call), and the secrets hidden from every process (the review page's token).
"""

from __future__ import annotations

from ratchet.executors.confined import Confinement
from ratchet.executors.workspace import Workspace
from ratchet.policy.model import CommandSettings


def confinement(
    ws: Workspace, commands: CommandSettings, *, sandbox: bool, profile: str, network: bool, approved: bool
) -> Confinement:
    """Where a process of a class with this `profile` may write and what it may reach."""
    read_only = ws.read_only if approved else (*ws.read_only, *ws.reviewed)
    return Confinement(
        ws.root,
        ws.protected,
        commands.env_allow,
        commands.output_cap,
        sandbox=sandbox,
        network=network,
        hidden=ws.hidden,
        profile=profile,
        read_only=read_only,
        never_create=ws.read_only,
    )


__all__ = ["confinement"]
