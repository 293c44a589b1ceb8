"""`ratchet demo`: a scripted agent session: every level, a CLI approval, a promotion and a demotion.

It runs the real server in-process through the SDK's client, plays the human at the client's
confirmation dialog, and calls the real CLI for approvals and the complaint, all against a
scratch workspace and database, with a small policy whose window is short enough to watch move.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet.mcp_server import ServerConfig, build_server

DEMO_POLICY = """
[defaults]
window_size = 5
min_samples = 3
promote_at = 0.4
demote_below = 0.2

[classes.docs]
description = "documentation"
tools = ["write_file", "edit_file"]
paths = ["docs/**", "**/*.md"]
start = "autonomous"

[classes.config]
description = "configuration"
tools = ["write_file", "edit_file"]
paths = ["config/**"]
start = "confirm"

[classes.source]
description = "application code"
tools = ["write_file", "edit_file"]
paths = ["src/**"]
start = "draft"

[classes.secrets]
description = "credentials"
tools = ["write_file", "edit_file"]
paths = ["**/.env"]
start = "blocked"
ceiling = "blocked"
priority = 100
"""


def _say(text: str) -> None:
    print(textwrap.fill(text, 100, subsequent_indent="   "))


async def _human_accepts(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    print("   [the client shows its human:]")
    print(textwrap.indent(params.message, "   | "))
    print("   [the human clicks: accept, at once: it runs, but an answer that fast is not evidence]")
    return types.ElicitResult(action="accept", content={"approve": True})


async def run_demo(directory: Path | None = None) -> None:
    """Run the scripted session, printing what the agent does and what Ratchet answers."""
    from ratchet.cli import main as cli

    root = directory or Path(tempfile.mkdtemp(prefix="ratchet-demo-"))
    workspace, policies, db = root / "workspace", root / "policies", root / "ratchet.db"
    workspace.mkdir(parents=True, exist_ok=True)
    policies.mkdir(exist_ok=True)
    (policies / "demo.toml").write_text(DEMO_POLICY)
    (workspace / "config").mkdir(exist_ok=True)
    (workspace / "config/app.ini").write_text("[app]\ndebug = true\n")
    base = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]

    async def run_cli(*argv: str) -> None:
        print(f"$ ratchet {' '.join(argv)}")
        await anyio.to_thread.run_sync(cli, [*argv, *base])

    async with Client(
        build_server(ServerConfig(workspace, policies, db)), elicitation_callback=_human_accepts
    ) as agent:

        async def write(path: str, content: str, note: str, **extra: Any) -> dict[str, Any]:
            print()
            _say(f"agent: write_file {path}  ({note})")
            result = await agent.call_tool("write_file", {"path": path, "content": content, **extra})
            out: dict[str, Any] = result.structured_content or {}
            text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
            first = (out.get("message") or text).splitlines()
            _say(f"ratchet: {out.get('status', 'error')}: {first[0]}")
            for line in first[1:6]:
                print(f"   {line}")
            return out

        print(f"Scratch workspace: {workspace}\n")
        docs = await write("docs/intro.md", "# Intro\n", "docs is autonomous: it just runs")
        await write("config/app.ini", "[app]\ndebug = false\n", "config is at confirm: the human sees the diff")
        draft = await write("src/app.py", "print('hi')\n", "source is at draft: queued, the agent goes on")
        await write(".env", "TOKEN=abc123secretvalue\n", "secrets are blocked: an escalation packet comes back")

        print("\nThe human reviews the queue later, from a terminal:")
        await run_cli("queue")
        await run_cli("approve", str(draft["draft_id"]))

        print("\nTwo more source drafts, each approved unchanged: the third sample earns a rung.")
        for n in (2, 3):
            out = await write(f"src/mod{n}.py", f"X = {n}\n", "another draft")
            await run_cli("approve", str(out["draft_id"]))
        print()
        await run_cli("transitions", "--class", "source")

        print("\nThe docs change turned out wrong; one complaint demotes the class at once:")
        await run_cli("complain", str(docs["action_id"]), "--reason", "wrong product name")
        await write("docs/intro.md", "# Introduction\n", "docs now needs a confirmation")
        print()
        await run_cli("status")
    print(f"\nEverything above is recorded in {db}; try `ratchet history {' '.join(base)}`.")
