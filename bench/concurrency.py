"""Concurrent calls in one MCP session: calls per second for a burst of every level.

`.venv/bin/python -m bench.concurrency` prints JSON: the burst of tests/test_concurrency.py (writes
at autonomous, confirmations answered, drafts, blocked calls, commands) fired at once in process.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from tests.test_concurrency import POLICY, _calls

from ratchet.mcp.server import ServerConfig, build_server

from . import Config


async def _human(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"approve": "ask/yes-" in params.message})


async def burst(rounds: int = 3) -> dict[str, Any]:
    figures = []
    for _r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "ws").mkdir()
            (root / "policies").mkdir()
            (root / "policies" / "policy.toml").write_text(POLICY)
            server = build_server(ServerConfig(root / "ws", root / "policies", root / "ratchet.db"))
            async with Client(server, elicitation_callback=_human) as client:
                calls = _calls()
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for tool, args, _ in calls:
                        tg.start_soon(client.call_tool, tool, args)
                elapsed = time.perf_counter() - start
            figures.append(len(calls) / elapsed)
    return {"calls": len(_calls()), "calls_per_second": round(max(figures), 1), "rounds": rounds}


def bench(cfg: Config, tmp: Path) -> dict[str, Any]:
    """The bench runner's entry (one round in tiny mode)."""
    return anyio.run(burst, 1 if cfg.mode == "tiny" else 3)


if __name__ == "__main__":
    print(json.dumps(anyio.run(burst), indent=2))
