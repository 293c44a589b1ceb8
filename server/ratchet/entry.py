"""The `ratchet` console script: a hook event reaches the hook without importing the CLI.

Claude Code starts `ratchet hook claude-code` as a new process for every hook event, twice per tool
call, so what that process imports is paid on every call. The CLI module brings the whole command
set; the hook needs only `hooks` (and the engine, for governed events, imported there on demand).
Any other command, or a hook command line this fast path does not recognise, goes to `cli.main`,
which parses and reports errors as usual.

Most hook events need nothing from Ratchet: a tool it does not govern (Read, Grep, mcp__*, ...) and
the events it does not listen to get no answer and leave no record. Those are told apart here, from
the event's JSON alone, before `hooks` (and its event loop) is imported: such a process costs the
interpreter's start and a JSON parse. Anything else, including input that is not a readable event,
goes to `hooks`, which decides, or denies (fail closed).

A governed event is first offered to the resident hook server (`hook_socket`): the decision without
the imports. When there is none yet, or it cannot be trusted, the event is decided here as always.
`ratchet serve --resident` is relayed the same way, to a resident serve server (mcp/front.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ratchet.claude_code.events import hook_event_is_silent
from ratchet.codex.events import codex_event_is_silent

_HOOK_OPTIONS = {"--workspace": "workspace", "--policies": "policies", "--db": "db"}


def hook_options(argv: Sequence[str]) -> dict[str, str] | None:
    """The options of `hook claude-code|codex [--workspace W] [--policies P] [--db D]`; None for anything else."""
    if list(argv[:1]) != ["hook"] or list(argv[1:2]) not in (["claude-code"], ["codex"]):
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
        raw = sys.stdin.buffer.read()
        client = args[1]
        if codex_event_is_silent(raw) if client == "codex" else hook_event_is_silent(raw):
            return 0
        if os.environ.get("RATCHET_HOOK_SERVER", "").strip().lower() != "off":
            from ratchet.claude_code.hook_socket import resident_answer  # start-up: not for a silent event

            answer = resident_answer(options, raw, client)
            if answer is not None:
                if answer:
                    print(answer, flush=True)
                return 0
        from pathlib import Path  # start-up: only for an event decided in this process

        from ratchet.claude_code.hooks import HookOptions, answer_event  # start-up: the engine, only here
        from ratchet.record.store import parse_location  # start-up: only for an event decided here

        workspace, policies, db = (options.get(k) for k in ("workspace", "policies", "db"))
        if client == "codex":
            from ratchet.codex.hooks import answer_event as codex_answer_event  # start-up: as above

            return codex_answer_event(options, raw)
        return answer_event(
            HookOptions(
                workspace=Path(workspace) if workspace else None,
                policies=Path(policies) if policies else None,
                db=parse_location(db) if db else None,
            ),
            raw,
        )
    if args[:1] == ["serve"]:
        from ratchet.mcp.front import serve_front, wanted  # start-up: stdlib only, for serve alone

        if wanted(args[1:], os.environ):
            code = serve_front(args[1:])
            if code is not None:
                return code
    from ratchet.cli import main as cli_main  # start-up: the whole CLI, never for a hook event

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
