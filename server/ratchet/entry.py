"""The `ratchet` console script: a hook event reaches the hook without importing the CLI.

Claude Code starts `ratchet hook claude-code` as a new process for every hook event, twice per tool
call, so what that process imports is paid on every call. The CLI module brings the whole command
set; the hook needs only `hooks` (and the engine, for governed events, imported there on demand).
Any other command, or a hook command line this fast path does not recognise, goes to `cli.main`,
which parses and reports errors as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

_HOOK_OPTIONS = {"--workspace": "workspace", "--policies": "policies", "--db": "db"}


def hook_options(argv: Sequence[str]) -> dict[str, str] | None:
    """The options of `hook claude-code [--workspace W] [--policies P] [--db D]`; None for anything else."""
    if list(argv[:2]) != ["hook", "claude-code"]:
        return None
    found: dict[str, str] = {}
    rest = list(argv[2:])
    while rest:
        flag = rest.pop(0)
        name, eq, value = flag.partition("=")
        if name not in _HOOK_OPTIONS or _HOOK_OPTIONS[name] in found or (not eq and not rest):
            return None  # unknown, repeated or missing a value: the full CLI says what is wrong
        found[_HOOK_OPTIONS[name]] = value if eq else rest.pop(0)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ratchet` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    options = hook_options(args)
    if options is not None:
        from ratchet.hooks import HookOptions, answer_event

        workspace, policies, db = (options.get(k) for k in ("workspace", "policies", "db"))
        return answer_event(
            HookOptions(
                workspace=Path(workspace) if workspace else None,
                policies=Path(policies) if policies else None,
                db=Path(db) if db else None,
            )
        )
    from ratchet.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
