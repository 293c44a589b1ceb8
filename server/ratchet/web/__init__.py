"""`ratchet web`: the human's review page in a browser, on loopback, behind the bearer token.

The inbox (stopped actions, handoffs, drafts) with each item's diff, class, rule, triggers, intent
and cost of delay, kept live by server-sent events; one click approves, rejects, resolves or
complains; the classes with their trust trajectories, transitions and brakes (pin, unpin, demote,
freeze). Every answer is the same engine call the CLI makes, recorded with the channel `web` and its
review time (app.py). Who may use it is security.py's business; serve.py runs it on its own
(`ratchet web`) or beside `/mcp` under `ratchet serve --http`. Starlette and uvicorn come with the
MCP SDK; the page is one local script and one stylesheet, no build step and nothing fetched.
"""

from __future__ import annotations

from ratchet.web.app import WebConfig, build_app
from ratchet.web.serve import WebOptions, pages_for_serve, serve_web

__all__ = ["WebConfig", "WebOptions", "build_app", "pages_for_serve", "serve_web"]
