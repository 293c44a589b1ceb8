"""Shared fixtures: a real workspace directory, a policy directory written for the test, and the
elicitation callbacks that play the human (the one seam we fake: the client's dialog)."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import mcp.types as types
import pytest
from mcp.client.session import ClientRequestContext

# Every level side by side, and one class with a tiny window to watch the ratchet move.
LEVELS_POLICY = """
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
unmatched = "draft"

[classes.auto]
tools = ["write_file", "edit_file"]
paths = ["auto/**"]
start = "autonomous"

[classes.ask]
tools = ["write_file", "edit_file"]
paths = ["ask/**"]
start = "confirm"
ceiling = "confirm"

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"

[classes.stop]
tools = ["write_file", "edit_file"]
paths = ["stop/**"]
start = "blocked"

[classes.climb]
tools = ["write_file", "edit_file"]
paths = ["climb/**"]
start = "draft"
ceiling = "autonomous"
"""

Elicitor = Callable[[ClientRequestContext, types.ElicitRequestParams], Awaitable[types.ElicitResult]]


def write_policy(directory: Path, text: str, name: str = "policy.toml") -> Path:
    """Write one policy file into `directory` (created) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace directory (inside its own parent, so outside paths are real too)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A policy directory holding LEVELS_POLICY, outside the workspace."""
    return write_policy(tmp_path / "policies", LEVELS_POLICY)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The trust database path, outside the workspace."""
    return tmp_path / "state" / "ratchet.db"


class Clock:
    """A clock the test moves by hand: given to the server (`ServerConfig.clock`) it times the human's
    answers, so a test can play a human who reads for a minute without waiting a minute."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Human:
    """Plays the human at the client's elicitation dialog and remembers what it was shown.

    `delay` is how long the human takes to answer: on `clock` (moved by hand, no waiting) when one is
    given, else really slept. The default answers at once, like a client that answers by itself.
    """

    def __init__(
        self, action: str = "accept", approve: bool = True, delay: float = 0.0, clock: Clock | None = None
    ) -> None:
        self.action = action
        self.approve = approve
        self.delay = delay
        self.clock = clock
        self.seen: list[types.ElicitRequestParams] = []

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params)
        if self.clock is not None:
            self.clock.advance(self.delay)
        elif self.delay:
            await anyio.sleep(self.delay)
        if self.action != "accept":
            return types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        if "decision" in params.requested_schema.get("properties", {}):  # review_drafts' explicit choice
            return types.ElicitResult(action="accept", content={"decision": "approve" if self.approve else "reject"})
        return types.ElicitResult(action="accept", content={"approve": self.approve})


async def run_cli(
    capsys: pytest.CaptureFixture[str], workspace: Path, policies: Path, db: Path, *args: str
) -> tuple[int, str]:
    """The real CLI entry point, in a worker thread (it runs its own event loop), on the same database."""
    from ratchet.cli import main

    argv = [args[0], "--workspace", str(workspace), "--policies", str(policies), "--db", str(db), *args[1:]]
    code = await anyio.to_thread.run_sync(main, argv)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock for timing the human's answers."""
    return Clock()


@pytest.fixture
def ratchet_bin() -> Path:
    """The installed console script."""
    return Path(sys.executable).parent / "ratchet"
