"""The dashboard in a real browser (``tests.support.browser``: Debian's Chromium driven by
pip ``playwright``). What a person does: open the overview, filter the runs, open a failed
run, retry it and watch it succeed, approve a pending action, call a tool in the
playground. Screenshots of each step go to ``.artifacts/screenshots/``.

Skipped when Chromium or playwright is missing; with ``CI`` set that is a failure instead,
so the pipeline cannot silently stop testing in a browser.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.browser import chromium_page, shot
from tests.support.dashboard import Dash, start
from tests.support.sandboxes import add_order

#: slow (Chromium driven by Playwright): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    async with chromium_page() as page:
        yield page


async def test_a_person_works_through_the_dashboard(dash: Dash, browser_page: Any) -> None:
    page = browser_page
    from playwright.async_api import expect

    # seed: a run that succeeds, one that fails (the order does not exist yet), a waiting
    # one, a call in the call log, and a tool call that waits for a person
    ok = await start(dash, "order_status", order_id="42")
    failed = await start(dash, "two_orders", order_id="9100")
    await start(dash, "pause")
    assert (ok["status"], failed["status"]) == ("succeeded", "failed")
    orders = dash.sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    order = next(o for o, row in orders.items() if row["status"] == "pending")
    gated = await dash.api("POST", "/tools/shop_update_order_status/call",
                           arguments={"order_id": order, "status": "cancelled"},
                           session_id="browser-chat")
    assert gated["status"] == "pending_approval"

    # 1. the overview
    await page.goto(dash.at("/"))
    await expect(page.locator('tr[data-connection="acme"]')).to_contain_text("shop")
    await expect(page.locator(".card.attention")).to_contain_text("1 pending approvals")
    await expect(page.locator("figure.chart svg").first).to_be_visible()
    await shot(page, "01-overview")

    # 2. the runs list, filtered to the failed runs of one flow (swapped in place)
    await page.goto(dash.at("/runs"))
    await expect(page.locator("tr[data-run]")).to_have_count(3)
    await page.select_option('select[name="flow"]', "two_orders")
    await page.select_option('select[name="status"]', "failed")
    await page.click('#run-filters button[type="submit"]')
    rows = page.locator("tr[data-run]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-run", failed["id"])
    assert "flow=two_orders" in page.url and "status=failed" in page.url
    await shot(page, "02-runs-filtered")

    # 3. the failed run: its timeline, then retry it and watch it succeed
    await rows.first.locator("a").click()
    await page.wait_for_url(re.compile(f"/runs/{failed['id']}$"))
    await expect(page.locator('li[data-step="missing"]')).to_have_attribute(
        "data-status", "failed")
    await expect(page.locator(".error-box").first).to_contain_text("not_found")
    await shot(page, "03-run-failed")
    add_order(dash.sandbox, "9100")
    await page.click("#retry")
    # the page polls the running run until it is done
    await expect(page.locator(".run")).to_have_attribute("data-status", "succeeded")
    await expect(page.locator('li[data-step="missing"]')).to_have_attribute(
        "data-status", "succeeded")
    await expect(page.locator("#retry")).to_have_count(0)
    await shot(page, "04-run-retried")
    assert (await dash.api("GET", f"/runs/{failed['id']}"))["status"] == "succeeded"

    # 4. approve the pending tool call, with a reason (who approves: who is signed in)
    await page.goto(dash.at("/approvals"))
    card = page.locator(f'#approval-{gated["approval_id"]}')
    await expect(card).to_have_attribute("data-status", "pending")
    await card.locator('input[name="reason"]').fill("the customer asked in chat")
    await card.get_by_role("button", name="Approve").click()
    card = page.locator(f'#approval-{gated["approval_id"]}')
    await expect(card).to_have_attribute("data-status", "approved")
    await expect(card.locator(".decided")).to_contain_text("local")
    await shot(page, "05-approved")
    decided = await dash.api("GET", f"/approvals/{gated['approval_id']}")
    assert (decided["status"], decided["decided_by"]) == ("approved", "local")

    # 5. the playground: a form made from the tool's schema, and the result
    await page.goto(dash.at("/playground?tool=shop_get_order"))
    await page.fill("#arg-order_id", "42")
    await page.click("#call-tool")
    result = page.locator("#tool-result .tool-result")
    await expect(result).to_have_attribute("data-status", "ok")
    await expect(result.locator("pre.json")).to_contain_text('"id": "42"')
    await shot(page, "06-playground")
    # and what a model would read for arguments that do not fit
    await page.fill("#arg-order_id", "")
    await page.click("#call-tool")
    await expect(result).to_have_attribute("data-status", "invalid_arguments")
    await expect(result.locator("pre.model-text")).to_contain_text("order_id")
    await shot(page, "07-playground-invalid")
