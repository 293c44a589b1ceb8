"""The baseline: a bare `MCPServer` whose `write_file` does the same write as Ratchet, without the gate.

Same SDK, same transport (stdio), same executor: Ratchet's own `tools.fs` confines the path, reads
the target, computes the preview diff and writes atomically (temp file, fsync, rename, fsync of the
directory). What it leaves out is everything the gate adds: classification, the decision, the
database (intent, outcome, window), the resolver round, and the larger structured result.

    python bench/bare_server.py --workspace DIR      # serves over stdio
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field


class Written(BaseModel):
    """What the write did."""

    path: str
    created: bool
    bytes_written: int
    fingerprint: str


def build(workspace: Path) -> MCPServer:
    """The bare server for one workspace."""
    from ratchet.errors import RatchetError
    from ratchet.executors import fs
    from ratchet.executors.workspace import Workspace

    ws = Workspace(workspace)
    tokens = itertools.count(1)
    mcp = MCPServer("bare")

    @mcp.tool(
        title="Write a file (no gate)",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def write_file(
        path: Annotated[str, Field(description="file path, relative to the workspace")],
        content: Annotated[str, Field(description="the complete new file content")],
    ) -> Written:
        """Create or overwrite a file (atomic), with no gate and no record."""
        try:
            plan = fs.plan_write(ws, path, content)
            result = fs.apply_plan(ws, plan, token=f"bare{next(tokens)}")
        except RatchetError as exc:
            raise ToolError(str(exc)) from exc
        return Written(
            path=result.rel,
            created=result.created,
            bytes_written=result.bytes_written,
            fingerprint=result.fingerprint,
        )

    return mcp


def main(argv: list[str] | None = None) -> int:
    """Serve over stdio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    args = parser.parse_args(argv)
    build(args.workspace.resolve()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
