"""What the agent and the server's log read when a tool call goes wrong outside Ratchet's own code.

The MCP SDK checks a call's arguments against the tool's schema before Ratchet sees it; a wrongly shaped
call gets pydantic's raw report (`2 validation errors for start_taskArguments ... For further
information visit https://errors.pydantic.dev/...`). `ArgumentErrors`, a server middleware, rewrites it
into one sentence naming each argument and what was wrong, without the third-party link, and logs one
call line as every other call gets (server.py's call log).

The SDK also logs every tool error a second time, and `serve --http`'s session manager announces itself,
without the `ratchet:` prefix; `quiet_sdk_logs` drops those INFO lines (warnings and crashes stay).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, TextContent

calls_log = logging.getLogger("ratchet.calls")

_HEAD = re.compile(r"^Error executing tool (\S+): (\d+) validation errors? for \S+\n")
_TYPE = re.compile(r"\s*\[type=[^\]]*\]\s*$")


def clear_message(text: str) -> tuple[str, list[str]] | None:
    """The agent's sentence for the SDK's report of arguments that do not fit a tool (and the arguments
    named); None for any other text."""
    head = _HEAD.match(text)
    if head is None:
        return None
    tool, problems, fields, field = head[1], [], [], "(arguments)"
    for line in text[head.end() :].splitlines():
        if not line.strip() or line.startswith("    "):  # the link to pydantic's pages
            continue
        if not line.startswith(" "):
            field = line.strip()
            continue
        what = _TYPE.sub("", line.strip())
        problems.append(f"{field}: {what[:1].lower()}{what[1:]}")
        fields.append(field)
    said = "; ".join(problems) or "they do not match its input schema"
    return (
        f"{tool} was called with arguments it does not take, so nothing was done: {said}. Call it again with "
        "the arguments its input schema lists",
        fields,
    )


class ArgumentErrors:
    """Server middleware: a `tools/call` whose arguments the SDK refused gets `clear_message`'s sentence."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/call":
            return result
        # The handler's result, as a model or already as the JSON-RPC result's dict.
        model = result if isinstance(result, CallToolResult) else None
        if isinstance(result, dict) and result.get("isError"):
            model = CallToolResult.model_validate(result)
        if model is None or not model.is_error:
            return result
        first = model.content[0] if model.content else None
        found = clear_message(first.text) if isinstance(first, TextContent) else None
        if found is None:
            return result
        message, fields = found
        if calls_log.isEnabledFor(logging.INFO):
            tool = (ctx.params or {}).get("name", "?") if isinstance(ctx.params, dict) else "?"
            calls_log.info(
                "ratchet: %s %s - - -> wrong arguments: %s", time.strftime("%H:%M:%S"), tool, ", ".join(fields)
            )
        cleared = model.model_copy(update={"content": [TextContent(type="text", text=message)]})
        return cleared.model_dump(by_alias=True, exclude_none=True) if isinstance(result, dict) else cleared


class _SdkEcho(logging.Filter):
    """Drops the SDK's INFO lines that repeat what Ratchet already said (or that say nothing to a user)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_sdk_logs() -> None:
    """Leave the SDK's tool-call and session-manager INFO lines out of `ratchet serve`'s stderr."""
    for name in ("mcp.server.mcpserver.server", "mcp.server.streamable_http_manager"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _SdkEcho) for f in logger.filters):
            logger.addFilter(_SdkEcho())
