"""`ratchet serve` over stdio until the client closes stdin or sends SIGINT/SIGTERM.

On either signal the server is cancelled at once: a running call is cancelled where it stands (a
command's process group is killed, a staged write is discarded) and recorded as `interrupted`, the
lifespan closes the database, and the process exits with 128 + the signal's number (130, 143). The
SDK reads stdin in a worker thread that no cancellation reaches, so once the database is closed the
process ends without waiting for more input (`os._exit`, after flushing); before that, nothing is cut
short. If closing takes longer than CLOSE_GRACE_S the process ends anyway; the next Ratchet process
to open the database records any call left running as interrupted.

Started by hand in a terminal (stdin is a TTY), it says on stderr that it waits for an MCP client on
stdin, how to connect one instead, and that Ctrl-C quits: a stdio server is otherwise silent.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger("ratchet")

CLOSE_GRACE_S = 15.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
ON_A_TERMINAL = (
    "ratchet: waiting for an MCP client on stdin (JSON-RPC, one message a line); this is not an interactive "
    "prompt.\n"
    "ratchet: to use Ratchet, let your client start it: `ratchet install claude-code --apply` (or codex, "
    "claude-desktop; without --apply it only shows the change). Ctrl-C quits."
)


def _on_a_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # no stdin, or a closed one
        return False


def serve_stdio(server: MCPServer, closed: threading.Event) -> int:
    """Serve over stdio; `closed` is set by the server's lifespan once the database is closed."""

    if _on_a_terminal():
        print(ON_A_TERMINAL, file=sys.stderr, flush=True)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                signum = int(signal.SIGTERM)
                with anyio.open_signal_receiver(*SIGNALS) as signals:
                    async for received in signals:
                        signum = int(received)
                        break
                name = signal.Signals(signum).name
                log.info("ratchet: %s received; recording running calls and closing the database", name)
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(closed.wait, CLOSE_GRACE_S)
                    if not closed.is_set():
                        log.warning("ratchet: the database did not close within %gs; exiting anyway", CLOSE_GRACE_S)
                    for stream in (sys.stdout, sys.stderr):
                        stream.flush()
                    os._exit(128 + signum)

            tg.start_soon(watch)
            await server.run_stdio_async()
            tg.cancel_scope.cancel()  # the client closed stdin: stop watching for signals

    anyio.run(main)
    return 0
