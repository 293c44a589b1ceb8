"""`ratchet demo`: a scripted agent session: every level, a CLI approval, a promotion and a demotion.

It runs the real server in-process through the SDK's client, plays the human at the client's
confirmation dialog, and runs the real CLI (handed in by the caller, so this module does not import
it) for approvals and the complaint, all against a scratch workspace and database, with a small policy
whose window is short enough to watch move.
"""

from __future__ import annotations

import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet import terminal
from ratchet.errors import InvalidRequest
from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.model import TrustParams
from ratchet.rules.escalation import EscalationPacket
from ratchet.rules.trust import Window, samples_to_promote

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


def _quoted(text: str) -> str:
    """`text` as the client or the agent would show it, each line (blank ones too) behind a bar."""
    return "\n".join(f"   | {line}".rstrip() for line in text.splitlines())


def _say(text: str) -> None:
    print(textwrap.fill(text, 100, subsequent_indent="   "))


async def _human_accepts(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    print("   [the client shows its human:]")
    print(_quoted(params.message))
    print("   [the human clicks: accept, at once: it runs, but an answer that fast is not evidence]")
    return types.ElicitResult(action="accept", content={"approve": True})


def thresholds() -> str:
    """What the demo's toy thresholds are, against the defaults a real policy starts from."""
    toy = TrustParams(**tomllib.loads(DEMO_POLICY)["defaults"])
    real = TrustParams()

    def needs(p: TrustParams) -> str:
        return (
            f"{samples_to_promote(Window(), p)} straight approvals (window_size {p.window_size}, "
            f"min_samples {p.min_samples}, promote_at {p.promote_at})"
        )

    return (
        f"This demo's policy uses toy thresholds so you can watch the ratchet move: a class is promoted "
        f"after {needs(toy)}. Ratchet's defaults need {needs(real)}."
    )


def scratch(directory: Path | None) -> Path:
    """The demo's root: a new temporary directory, or `directory` when it is new or empty (a used one
    is refused: the demo's story starts from nothing)."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="ratchet-demo-"))
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidRequest(
            f"--dir {directory} is not an empty directory (a demo ran there before?); pass a new or empty "
            "directory, or leave out --dir for a fresh temporary one"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def run_demo(directory: Path | None, cli: Callable[[Sequence[str]], int]) -> None:
    """Run the scripted session, printing what the agent does and what Ratchet answers; `cli` is the
    `ratchet` command line's entry point, run for the human's commands."""
    root = scratch(directory)
    workspace, policies, db = root / "workspace", root / "policies", root / "ratchet.db"
    workspace.mkdir()
    policies.mkdir()
    (policies / "demo.toml").write_text(DEMO_POLICY)
    (workspace / "config").mkdir()
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
            if out.get("packet"):  # a stopped action: the whole packet, as `ratchet show` prints it
                _say(f"ratchet: {out['status']}: the agent gets this escalation packet:")
                packet = terminal.packet(EscalationPacket.model_validate(out["packet"]), colour=False)
                print(_quoted(packet))
                return out
            first = (out.get("message") or text).splitlines()
            _say(f"ratchet: {out.get('status', 'error')}: {first[0]}")
            for line in first[1:]:
                print(f"   {line}")
            return out

        print(f"Scratch workspace: {workspace}\n")
        _say(thresholds())
        docs = await write("docs/intro.md", "# Intro\n", "docs is autonomous: it just runs")
        await write("config/app.ini", "[app]\ndebug = false\n", "config is at confirm: the human sees the diff")
        draft = await write("src/app.py", "print('hi')\n", "source is at draft: queued, the agent goes on")
        await write(".env", "TOKEN=abc123secretvalue\n", "secrets are blocked: an escalation packet comes back")

        print("\nThe human reviews the queue later, from a terminal:")
        await run_cli("queue")
        await run_cli("approve", str(draft["draft_id"]))

        print("\nTwo more source drafts, each approved unchanged: the third sample earns a rung.")
        ids = []
        for n in (2, 3):
            out = await write(f"src/mod{n}.py", f"X = {n}\n", "another draft")
            ids.append(str(out["draft_id"]))
        await run_cli("approve", *ids)
        print()
        await run_cli("transitions", "--class", "source")

        print("\nThe docs change turned out wrong; one complaint demotes the class at once:")
        await run_cli("complain", str(docs["action_id"]), "--reason", "wrong product name")
        await write("docs/intro.md", "# Introduction\n", "docs now needs a confirmation")
        print()
        await run_cli("status")
    print(f"\nEverything above is recorded in {db}; try `ratchet history {' '.join(base)}`.")
    print(f"The demo's files stay in {root} for you to look at; remove that directory when you are done.")
