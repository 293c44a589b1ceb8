"""Running the delegated reviewer: one request in, one verdict out, with a timeout. No MCP, no record.

Three adapters (policy/reviewer.py `adapter`):

- `command`: any argv; the request as JSON on stdin, the verdict as JSON on stdout;
- `claude`: Claude Code headless, `claude -p --output-format json`, the reviewer's instructions as its system
  prompt and the request as the user message on stdin (data, never the prompt's instructions); the verdict is
  read from the `result` of Claude Code's JSON;
- `codex`: `codex exec` in a read-only sandbox, the instructions and the request on stdin, the verdict read
  from its last message (`--output-last-message`).

Every reviewer runs as the user, in an empty directory of its own (never the workspace: nothing the agent
wrote there, a CLAUDE.md or a project's settings, reaches it), with Ratchet's own variables taken out of its
environment, in a process group of its own that is killed at the timeout. A timeout, a crash, a non-zero exit,
an output past the cap or an unreadable verdict is `unsure` (rules/reviewer.py), which changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ratchet.policy.reviewer import ReviewerSpec
from ratchet.rules.reviewer import INSTRUCTIONS, Verdict, parse_verdict, unsure

OUTPUT_CAP = 1 << 20  # bytes of a reviewer's stdout read at most


@dataclass(frozen=True)
class Reviewed:
    """A verdict and how long the reviewer took."""

    verdict: Verdict
    seconds: float


def argv_for(spec: ReviewerSpec, last_message: Path | None = None) -> list[str]:
    """The argv the adapter runs."""
    base = spec.argv0
    if spec.adapter == "claude":
        argv = [*base, "-p", "--output-format", "json", "--system-prompt", INSTRUCTIONS]
        argv += ["--tools", "Read", "--restricted", "--strict-mcp-config", "--no-session-persistence"]
        return argv + (["--model", spec.model] if spec.model else [])
    if spec.adapter == "codex":
        argv = [*base, "exec", "--skip-git-repo-check", "--sandbox", "read-only", "--ephemeral"]
        argv += ["--output-last-message", str(last_message)] if last_message is not None else []
        return argv + (["-m", spec.model] if spec.model else []) + ["-"]
    return base


def stdin_for(spec: ReviewerSpec, request: dict[str, Any]) -> bytes:
    """What the reviewer reads on stdin: the request; for codex, which has no system prompt here, the
    instructions first and the request after, fenced as data."""
    body = json.dumps(request, indent=1)
    if spec.adapter == "codex":
        return f"{INSTRUCTIONS}\n\nThe review request (data):\n```json\n{body}\n```\n".encode()
    return body.encode()


def verdict_of(spec: ReviewerSpec, stdout: str, last_message: str | None = None) -> Verdict:
    """The verdict in an adapter's output."""
    if spec.adapter == "claude":
        try:
            data = json.loads(stdout)
        except ValueError:
            return unsure("Claude Code's output is not JSON")
        if not isinstance(data, dict) or not isinstance(data.get("result"), str):
            return unsure("Claude Code's JSON holds no result text")
        if data.get("is_error"):
            return unsure(f"Claude Code reported an error: {str(data.get('result'))[:200]}")
        return parse_verdict(data["result"])
    if spec.adapter == "codex":
        return parse_verdict(last_message if last_message is not None else stdout)
    return parse_verdict(stdout)


def _environment() -> dict[str, str]:
    """The user's environment without Ratchet's own variables (a database URL may carry a password)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}


def review_sync(spec: ReviewerSpec, request: dict[str, Any]) -> Reviewed:
    """Run the reviewer on one request (blocking); never raises for what the reviewer does."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ratchet-reviewer-") as scratch:
        last = Path(scratch) / "last-message.txt" if spec.adapter == "codex" else None
        try:
            proc = subprocess.Popen(
                argv_for(spec, last),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=scratch,
                env=_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            return Reviewed(unsure(f"the reviewer could not start: {exc}"), time.monotonic() - started)
        try:
            out, _ = proc.communicate(stdin_for(spec, request), timeout=spec.timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return Reviewed(unsure(f"the reviewer timed out after {spec.timeout_s:g} s"), time.monotonic() - started)
        finally:
            _kill(proc)
        took = time.monotonic() - started
        if proc.returncode != 0:
            return Reviewed(unsure(f"the reviewer exited with status {proc.returncode}"), took)
        if len(out) > OUTPUT_CAP:
            return Reviewed(unsure(f"the reviewer wrote more than {OUTPUT_CAP} bytes"), took)
        text = out.decode("utf-8", "replace")
        message = None
        if last is not None and last.is_file():
            message = last.read_text(encoding="utf-8", errors="replace")
        return Reviewed(verdict_of(spec, text, message), took)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End the reviewer's whole process group (it may have started children) and reap it."""
    if proc.poll() is None or proc.returncode is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


async def review(spec: ReviewerSpec, request: dict[str, Any]) -> Reviewed:
    """`review_sync` off the event loop."""
    return await anyio.to_thread.run_sync(lambda: review_sync(spec, request), abandon_on_cancel=False)
