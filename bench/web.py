"""The review page in a real browser: an inbox of 500 waiting drafts against an empty one, same run.

`.venv/bin/python -m bench.web [--items 500] [--runs 5] [--out FILE]` (default bench/results/web.json, with the
command and the commit measured) needs Chromium at
/usr/bin/chromium (Playwright drives it; no browser is downloaded). For each inbox the page is
loaded `runs` times, alternating between the two, each in a fresh browser context (no cache):

- first paint: the browser's `first-contentful-paint` (the page's shell: header and toolbar);
- inbox JSON: when the inbox's one JSON answer had fully arrived;
- interactive: from navigation start until the first screen of items is on the page with its
  buttons wired (app.js renders the first 30 at once, the rest in slices between frames);
- all rendered: until every item is on the page;
- requests: every request the page made while loading (document, script, stylesheet, the inbox's
  one JSON answer, the event stream): it must not grow with the number of items.

Figures are medians in milliseconds, and the ratio of the full inbox to the empty one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from bench.provenance import stamp
from ratchet.engine import Engine
from ratchet.mcp.http import default_token_file, ensure_token
from ratchet.web.app import WebConfig, build_app
from ratchet.web.security import Guard
from ratchet.web.serve import bind

CHROMIUM = "/usr/bin/chromium"
RESULTS = Path(__file__).parent / "results" / "web.json"
KEYS = ("first_paint_ms", "inbox_json_ms", "interactive_ms", "complete_ms", "requests")
POLICY = """
[defaults]
unmatched = "draft"

# A long inbox on purpose: the draft caps (engine/flood.py) would hold one session at 50.
[defaults.limits]
max_drafts_per_session = 100000
max_drafts_per_workspace = 100000

[classes.queue]
tools = ["write_file", "edit_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"
"""


async def seed(root: Path, items: int) -> tuple[Path, Path, Path]:
    """A workspace, policy and database holding `items` queued drafts (each a 12-line new file)."""
    workspace, policies, db = root / "ws", root / "policies", root / "state" / "ratchet.db"
    workspace.mkdir(parents=True)
    policies.mkdir()
    (policies / "policy.toml").write_text(POLICY)
    engine = await Engine.open(workspace, policies=policies, db=db)
    try:
        for i in range(items):
            content = "".join(f"line {j} of file {i}: value = {i * j}\n" for j in range(12))
            ev = await engine.evaluate("write_file", {"path": f"queue/module_{i}.py", "content": content})
            await engine.carry_out(ev, intent=f"add module {i}")
    finally:
        await engine.close()
    return workspace, policies, db


async def ready(page: Any, mark: str = "ratchet-inbox-ready") -> float:
    """When app.js set `mark` (ms from navigation start). Polled from outside the page: the page's
    Content-Security-Policy forbids the string evaluation Playwright's waiting would need."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        at = await page.evaluate(f"(performance.getEntriesByName('{mark}')[0] || {{startTime: null}}).startTime")
        if at is not None:
            return float(at)
        await anyio.sleep(0.02)
    raise TimeoutError("the inbox never became ready")


def requests_into(sink: list[str]) -> Any:
    """A request listener that records each URL in `sink`."""
    return lambda r: sink.append(r.url)


async def measure(base: str, token: str, expected: int, runs: int, browser: Any) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        ctx = await browser.new_context()
        page = await ctx.new_page()
        # Log in first (the cookie), so the measured load is the inbox itself.
        await page.goto(f"{base}/login?token={token}")
        await ready(page)
        requests: list[str] = []
        page.on("request", requests_into(requests))
        await page.goto(base + "/", wait_until="commit")
        complete = await ready(page)
        interactive = await ready(page, "ratchet-inbox-usable") if expected else complete
        shown = await page.evaluate("document.querySelectorAll('li.item button.approve').length")
        assert shown == expected, f"{shown} items on the page, expected {expected}"
        paint = await page.evaluate(
            "(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime"
        )
        inbox_done = await page.evaluate(
            "(performance.getEntriesByType('resource').find(e => e.name.includes('/api/inbox')) || {}).responseEnd"
        )
        out.append(
            {
                "inbox_json_ms": float(inbox_done or 0),
                "first_paint_ms": paint,
                "interactive_ms": interactive,
                "complete_ms": complete,
                "requests": float(len(requests)),
            }
        )
        await ctx.close()
    return out


async def run(items: int, runs: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="ratchet-bench-web-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        full = await seed(root / "full", items)
        empty = await seed(root / "empty", 0)
        seeded_s = time.perf_counter() - started
        servers = []
        for workspace, policies, db in (full, empty):
            token = ensure_token(default_token_file(db))
            sock = bind("127.0.0.1", 0)
            port = sock.getsockname()[1]
            app = Guard(build_app(WebConfig(workspace, policies, db)), token, host="127.0.0.1", port=port)
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
            servers.append((server, sock, f"http://127.0.0.1:{port}", token))
        results: dict[str, list[dict[str, float]]] = {"full": [], "empty": []}
        async with anyio.create_task_group() as tg:
            for server, sock, _, _ in servers:
                tg.start_soon(server.serve, [sock])
            while not all(s.started for s, *_ in servers):  # noqa: ASYNC110 - uvicorn offers a flag
                await anyio.sleep(0.05)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for _ in range(runs):  # alternate, so machine noise falls on both alike
                    for name, (_, _, base, token), n in zip(("full", "empty"), servers, (items, 0), strict=True):
                        results[name] += await measure(base, token, n, 1, browser)
                await browser.close()
            for server, *_ in servers:
                server.should_exit = True

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in results[name]), 1)

    figures = {name: {key: med(name, key) for key in KEYS} for name in ("full", "empty")}
    return {
        "items": items,
        "runs": runs,
        "seeded_s": round(seeded_s, 2),
        **figures,
        "ratio": {
            key: round(figures["full"][key] / figures["empty"][key], 2) if figures["empty"][key] else None
            for key in KEYS
        },
        "raw": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    provenance = stamp(shlex.join([".venv/bin/python", "-m", "bench.web", *shown]))
    result = {**anyio.run(run, args.items, args.runs), "provenance": provenance}
    for name in ("empty", "full"):
        f = result[name]
        label = f"{result['items'] if name == 'full' else 0} items"
        print(
            f"{label:>10}: first paint {f['first_paint_ms']:7.1f} ms, inbox JSON {f['inbox_json_ms']:7.1f} ms, "
            f"interactive {f['interactive_ms']:7.1f} ms, all rendered {f['complete_ms']:7.1f} ms, "
            f"{f['requests']:.0f} requests"
        )
    r = result["ratio"]
    print("     ratio: " + ", ".join(f"{k.removesuffix('_ms')} x{r[k]}" for k in KEYS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
