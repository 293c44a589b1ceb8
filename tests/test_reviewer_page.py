"""The review page in a real browser (Debian's Chromium driven by Playwright, as tests/test_web_browser.py) with
a delegated reviewer: each draft shows its pre-review, and one click approves the drafts of a class the
reviewer approved, leaving the one it denied. Without Chromium this is skipped, except in CI."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from .helpers import LEVELS_POLICY, Clock, Human, connect, require_module, running_web, write_policy

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = require_module("playwright.async_api", "pip install -e '.[dev]'")

REVIEWER = r"""
import json, os, sys
request = json.loads(sys.stdin.read())
word = "deny" if "bad" in request["change"]["target"] else "approve"
print(json.dumps({"verdict": word, "risk": "low", "reason": "the reviewer says " + word}))
"""


@pytest.mark.asyncio
async def test_the_page_approves_a_class_drafts_the_reviewer_approved_in_one_click(
    tmp_path: Path, workspace: Path, db: Path, clock: Clock
) -> None:
    script = tmp_path / "reviewer" / "review.py"
    script.parent.mkdir()
    script.write_text(REVIEWER)
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY)
    (policies / "reviewer.toml").write_text(f"[reviewer]\ncommand = {json.dumps([sys.executable, str(script)])}\n")
    async with connect(workspace, policies, db, human=Human()) as client:
        for name in ("a", "b", "c", "bad"):
            out = await client.call_tool("write_file", {"path": f"queue/{name}.txt", "content": f"{name}\n"})
            assert out.structured_content is not None and out.structured_content["status"] == "draft"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(db)) as con:
            if con.execute("SELECT count(*) FROM reviewer_verdicts").fetchone()[0] == 4:
                break
        await anyio.sleep(0.1)
    async with running_web(workspace, policies, db, clock) as web, playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(web.login)
            group = page.locator('#groups .group[data-class="queue"]')
            await group.wait_for()
            assert "the reviewer says deny" in await page.locator("li.item").filter(has_text="bad.txt").inner_text()
            button = group.locator("button.group-approve-reviewed")
            assert await button.inner_text() == "Approve the 3 the reviewer approved"
            async with page.expect_response("**/api/classes/queue/drafts") as answered:
                await button.click()
            assert (await answered.value).status == 200
            await page.wait_for_function("document.querySelectorAll('li.item').length === 1")
            assert problems == []
        finally:
            await browser.close()
    with closing(sqlite3.connect(db)) as con:
        status = dict(con.execute("SELECT target, status FROM actions").fetchall())
    assert status == {
        "queue/a.txt": "executed",
        "queue/b.txt": "executed",
        "queue/c.txt": "executed",
        "queue/bad.txt": "draft",
    }
