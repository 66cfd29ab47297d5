"""The page in a real browser (Playwright driving Debian's Chromium, headless) against the whole
engine: fields are found by their visible labels, as a person or a screen reader finds them.

Needs /usr/bin/chromium (`apt-get install chromium`); never `playwright install`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from common.grpc_auth import call_metadata, client_token
from common.stack import Stack
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.stackutil import running_stack

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "web"
DOCS_SCREENSHOT = REPO / "docs" / "screenshot.png"
LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]
VENUES = ("raydium_cpmm", "meteora_dlmm", "split")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

# Records, in the page, every timeline row as it is added and every change of the connection
# indicator, with the time it happened: what a person watching the page would have seen, in order.
RECORDER = """
window.__rows = [];
window.__connection = [];
new MutationObserver((mutations) => {
  for (const m of mutations) {
    if (m.type === 'attributes' && m.target.id === 'connection') {
      window.__connection.push(m.target.dataset.state);
    }
    for (const node of m.addedNodes) {
      if (node.nodeType !== 1) continue;
      const rows = node.matches('li[data-status]') ? [node] : [...node.querySelectorAll('li[data-status]')];
      for (const row of rows) {
        const card = row.closest('article.order-card');
        window.__rows.push({ orderId: card && card.dataset.orderId, status: row.dataset.status,
                             seq: Number(row.dataset.seq), t: performance.now() });
      }
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
"""


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Playwright's sync API owns this thread's event loop: async helpers run on another thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("web-logs")) as s:
        yield s


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:  # the stack first: it starts with asyncio.run
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.add_init_script(RECORDER)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(stack.url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#cluster")).not_to_have_text("…")  # the token list has loaded
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors  # no uncaught script error in the page


def fill_order(page: Page, token_in: str, token_out: str, amount: str, slippage: str) -> None:
    page.get_by_label("Token in", exact=True).fill(token_in)
    page.get_by_label("Token out", exact=True).fill(token_out)
    page.get_by_label("Amount", exact=True).fill(amount)
    page.get_by_label("Slippage (bps)", exact=True).fill(slippage)
    page.get_by_role("button", name="Execute order").click()


def newest_card(page: Page, known: set[str]) -> str:
    """The id of the order card that appeared after submitting (cards not in `known`)."""
    cards = page.locator("article.order-card")
    expect(cards).to_have_count(len(known) + 1)
    ids = {cards.nth(i).get_attribute("data-order-id") for i in range(cards.count())}
    (order_id,) = ids - known
    assert order_id
    return order_id


def card_ids(page: Page) -> set[str]:
    return {
        x
        for x in page.locator("article.order-card").evaluate_all("cards => cards.map(c => c.dataset.orderId)")
    }


def timeline(page: Page, order_id: str) -> list[tuple[str, int]]:
    rows = page.locator(f'article.order-card[data-order-id="{order_id}"] li[data-status]')
    return [
        (r["status"], int(r["seq"]))
        for r in rows.evaluate_all("rows => rows.map(r => ({status: r.dataset.status, seq: r.dataset.seq}))")
    ]


def seen_rows(page: Page, order_id: str) -> list[tuple[str, int]]:
    return [(r["status"], r["seq"]) for r in page.evaluate("window.__rows") if r["orderId"] == order_id]


def order_json(stack: Stack, order_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.url}/api/orders/{order_id}", timeout=10)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def save_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_an_order_from_the_form_shows_each_status_in_order_and_the_result(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    fill_order(page, "SOL", "USDC", "1.5", "100")
    order_id = newest_card(page, known)
    card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
    expect(card).to_have_attribute("data-status", "confirmed")

    # every status, by name, in order, each once — as they arrived and as they stand
    assert seen_rows(page, order_id) == [(s, i) for i, s in enumerate(LIFECYCLE, 1)]
    assert timeline(page, order_id) == [(s, i) for i, s in enumerate(LIFECYCLE, 1)]
    expect(card.locator("li[data-status] .step-name")).to_have_text(LIFECYCLE)  # the names a person reads

    order = order_json(stack, order_id)
    assert order["status"] == "confirmed"
    expect(card.locator('[data-field="dex"]')).to_have_text(order["dex"])
    assert order["dex"] in VENUES
    expect(card.locator('[data-field="amountOut"]')).to_have_text(order["amountOut"])
    expect(card.locator('[data-field="executedPrice"]')).to_have_text(order["executedPrice"])
    expect(card.locator('[data-field="txHash"]')).to_have_text(order["txHash"])
    assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{64,88}", order["txHash"])
    expect(card.locator('[data-field="failureReason"]')).to_have_count(0)
    # what the swap cost: fees and rent in SOL, the wallet's change per mint (signed)
    costs = order["costs"]
    expect(card.locator('[data-field="networkFee"]')).to_have_text(costs["networkFee"])
    expect(card.locator('[data-field="priorityFee"]')).to_have_text(costs["priorityFee"])
    expect(card.locator('[data-field="rent"]')).to_have_text(costs["rent"])
    changes = {c["symbol"]: c["change"] for c in costs["balanceChanges"]}
    assert changes["SOL"].startswith("-") and not changes["USDC"].startswith("-")
    expect(card.locator('[data-field="balanceChanges"] div')).to_have_text(
        [f"{changes['SOL']} SOL", f"+{changes['USDC']} USDC"]
    )
    # both venues' quotes side by side, the chosen one marked
    expect(card.locator(".quote")).to_have_count(2)
    expect(card.locator('.quote[data-chosen="true"]')).to_have_count(1 if order["dex"] != "split" else 2)

    # the history table catches up once the order ended; the picture shows both
    expect(page.locator(f'#history-body tr[data-order-id="{order_id}"]')).to_have_attribute(
        "data-status", "confirmed"
    )
    shot = save_screenshot(page, "confirmed-order.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1" or not DOCS_SCREENSHOT.exists():
        shutil.copyfile(shot, DOCS_SCREENSHOT)


@pytest.mark.parametrize("amount", ["abc", "-1", "0", "1.0000000001"])
def test_an_invalid_amount_shows_the_error_beside_the_field_and_submits_nothing(
    page: Page, stack: Stack, amount: str
) -> None:
    submitted: list[str] = []
    page.on("request", lambda r: submitted.append(r.url) if r.method == "POST" else None)
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent", lambda frame: submitted.append(str(frame)) if "execute" in str(frame) else None
        ),
    )
    # the socket that is already open: watch what it sends from here on
    page.evaluate("""() => { const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (d) { if (String(d).includes('"execute"')) window.__executes =
            (window.__executes || 0) + 1; return send.call(this, d); }; }""")
    before = len(httpx.get(f"{stack.url}/api/orders", params={"limit": 200}).json()["orders"])
    known = card_ids(page)

    fill_order(page, "SOL", "USDC", amount, "100")

    field = page.get_by_label("Amount", exact=True)
    error = page.locator("#error-amount")
    expect(error).to_be_visible()
    expect(error).not_to_have_text("")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    assert "error-amount" in (field.get_attribute("aria-describedby") or "").split()
    # beside the field: in the field's own group, right under the input, overlapping it horizontally
    assert error.evaluate("e => e.closest('.field') === document.getElementById('amount').closest('.field')")
    box, err_box = field.bounding_box(), error.bounding_box()
    assert box and err_box
    assert 0 <= err_box["y"] - (box["y"] + box["height"]) < 60
    assert err_box["x"] < box["x"] + box["width"] and box["x"] < err_box["x"] + err_box["width"]
    for other in ("tokenIn", "tokenOut", "slippageBps"):
        expect(page.locator(f"#error-{other}")).to_have_text("")

    page.wait_for_timeout(300)
    assert submitted == [] and page.evaluate("window.__executes || 0") == 0
    assert card_ids(page) == known
    after = len(httpx.get(f"{stack.url}/api/orders", params={"limit": 200}).json()["orders"])
    assert after == before


def test_a_gateway_restart_mid_order_reconnects_and_resumes_without_duplicates(
    page: Page, stack: Stack
) -> None:
    """The worker is paused so the order is caught mid-flight; the gateway dies; the order goes on in
    the worker while the page has no gateway; the gateway comes back; the page reconnects and
    resubscribes from its last seq."""
    worker = stack.procs["worker"].popen
    assert worker is not None
    known = card_ids(page)
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        try:
            fill_order(page, "SOL", "USDC", "0.5", "100")
            order_id = newest_card(page, known)
            card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
            expect(card.locator('li[data-status="pending"]')).to_have_count(1)
            assert order_json(stack, order_id)["status"] == "pending"  # mid-order: accepted, not yet driven

            stack.stop_proc("gateway", kill=True)  # the first half of Stack.restart("gateway")
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        finally:
            os.kill(worker.pid, signal.SIGCONT)

        # the order finishes while no gateway runs: the page cannot hear it live
        with grpc.insecure_channel(stack.settings.persistence_addr) as channel:
            orders = orders_pb2_grpc.OrdersStub(channel)
            for _ in range(300):
                got = orders.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=order_id),
                    timeout=5,
                    metadata=call_metadata(client_token(stack.settings, "admin")),
                )
                if got.status == orders_pb2.ORDER_STATUS_CONFIRMED:
                    break
                threading.Event().wait(0.05)
            assert got.status == orders_pb2.ORDER_STATUS_CONFIRMED
        assert timeline(page, order_id) == [("pending", 1)]
    finally:
        gateway = stack.procs["gateway"].popen
        if gateway is None or gateway.poll() is not None:
            stack.start_proc("gateway")  # the second half (also when this test failed half-way)
            run_async(stack.wait_ready("gateway"))

    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(card).to_have_attribute("data-status", "confirmed")
    assert timeline(page, order_id) == [(s, i) for i, s in enumerate(LIFECYCLE, 1)]  # no duplicate row
    assert seen_rows(page, order_id) == [(s, i) for i, s in enumerate(LIFECYCLE, 1)]
    states = page.evaluate("window.__connection")
    assert "reconnecting" in states and states[-1] == "connected"
    expect(card.locator('[data-field="txHash"]')).to_have_text(order_json(stack, order_id)["txHash"])
    save_screenshot(page, "after-gateway-restart.png")


def test_the_history_table_shows_the_order_and_filters_by_status(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    fill_order(page, "USDC", "SOL", "30", "50")
    order_id = newest_card(page, known)
    expect(page.locator(f'article.order-card[data-order-id="{order_id}"]')).to_have_attribute(
        "data-status", "confirmed"
    )

    row = page.locator(f'#history-body tr[data-order-id="{order_id}"]')
    expect(row).to_have_attribute("data-status", "confirmed")  # refreshed when the order ended
    order = order_json(stack, order_id)
    expect(row).to_contain_text("USDC → SOL")
    expect(row).to_contain_text(f"{order['amountOut']} SOL")
    expect(page.locator("#history-body tr[data-order-id]").first).to_have_attribute("data-order-id", order_id)

    status_filter = page.get_by_label("Status", exact=True)
    status_filter.select_option("failed")
    expect(row).to_have_count(0)
    expect(page.locator('#history-body tr[data-order-id]:not([data-status="failed"])')).to_have_count(0)
    status_filter.select_option("confirmed")
    expect(row).to_have_count(1)
    expect(page.locator('#history-body tr[data-order-id]:not([data-status="confirmed"])')).to_have_count(0)


def test_a_quote_preview_shows_both_venues_and_executes_that_quote(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    page.get_by_label("Token in", exact=True).fill("SOL")
    page.get_by_label("Token out", exact=True).fill("USDC")
    page.get_by_label("Amount", exact=True).fill("0.7")
    page.get_by_label("Order type", exact=True).select_option("market")
    page.get_by_role("button", name="Preview quote").click()
    preview = page.locator("#quote-preview")
    expect(preview).to_be_visible()
    expect(preview.locator(".quote-venues li")).to_have_count(2)
    expect(preview).to_contain_text("raydium_cpmm")
    expect(preview).to_contain_text("meteora_dlmm")
    expect(preview).to_contain_text("Minimum out")
    expect(preview).to_contain_text("Price impact")
    save_screenshot(page, "quote-preview.png")
    page.get_by_role("button", name="Execute this quote").click()
    order_id = newest_card(page, known)
    expect(page.locator(f'article.order-card[data-order-id="{order_id}"]')).to_have_attribute(
        "data-status", "confirmed"
    )
    expect(preview).to_be_hidden()
    assert order_json(stack, order_id)["quoteId"]


def test_a_limit_order_rests_open_and_is_cancelled_from_the_history(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    page.get_by_label("Token in", exact=True).fill("SOL")
    page.get_by_label("Token out", exact=True).fill("USDC")
    page.get_by_label("Amount", exact=True).fill("1")
    page.get_by_label("Order type", exact=True).select_option("limit")
    price = page.get_by_label("Limit price", exact=True)
    price.fill("1.1234567")  # USDC has 6 decimals: refused beside the field, nothing sent
    page.get_by_role("button", name="Execute order").click()
    expect(page.locator("#error-triggerPrice")).to_contain_text("6 decimal places")
    expect(page.locator("article.order-card")).to_have_count(len(known))
    price.fill("100000")
    page.get_by_label("Expires in (s)", exact=True).fill("600")
    page.get_by_role("button", name="Execute order").click()
    order_id = newest_card(page, known)
    card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
    expect(card).to_have_attribute("data-status", "open")
    assert order_json(stack, order_id)["limitPrice"] == "100000"

    page.get_by_label("Status", exact=True).select_option("open")
    row = page.locator(f'#history-body tr[data-order-id="{order_id}"]')
    expect(row).to_have_attribute("data-status", "open")
    save_screenshot(page, "open-limit-order.png")
    row.get_by_role("button", name=f"Cancel order {order_id}").click()
    expect(row).to_have_count(0)  # the open list no longer holds it
    expect(card).to_have_attribute("data-status", "cancelled")
    assert order_json(stack, order_id)["status"] == "cancelled"


def test_a_stop_order_rests_open_then_triggers_when_the_market_is_under_it(page: Page, stack: Stack) -> None:
    """A stop (sell when the price falls to the stop price or below) whose stop price is above the
    market: the form sends it as a stop, it rests `open` and the trigger loop's next pass fires it;
    the card then shows it routed, built, submitted and confirmed like a market order."""
    known = card_ids(page)
    page.get_by_label("Token in", exact=True).fill("SOL")
    page.get_by_label("Token out", exact=True).fill("USDC")
    page.get_by_label("Amount", exact=True).fill("0.5")
    page.get_by_label("Order type", exact=True).select_option("stop")
    page.get_by_label("Stop price", exact=True).fill("1000000")  # far above any SOL price in USDC
    page.get_by_label("Expires in (s)", exact=True).fill("600")
    page.get_by_role("button", name="Execute order").click()
    order_id = newest_card(page, known)
    card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
    expect(card).to_have_attribute("data-status", "confirmed")
    order = order_json(stack, order_id)
    assert order["type"] == "stop" and order["stopPrice"] == "1000000", order
    statuses = [s for s, _ in timeline(page, order_id)]
    assert statuses[:2] == ["pending", "open"] and statuses[-1] == "confirmed", statuses


def test_a_sniper_order_rests_open_for_a_pair_with_no_pool(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    page.get_by_label("Token in", exact=True).fill("SOL")
    page.get_by_label("Token out", exact=True).fill("NEW")  # NEW has no pool
    page.get_by_label("Amount", exact=True).fill("1")
    page.get_by_label("Order type", exact=True).select_option("sniper")
    expect(page.get_by_label("Limit price", exact=True)).to_be_hidden()
    liquidity = page.get_by_label("Min liquidity", exact=True)
    liquidity.fill("50.0000000001")  # SOL has 9 decimals: refused beside the field, nothing sent
    page.get_by_role("button", name="Execute order").click()
    expect(page.locator("#error-minLiquidity")).to_contain_text("9 decimal places")
    expect(page.locator("article.order-card")).to_have_count(len(known))
    liquidity.fill("50")
    page.get_by_label("Max price", exact=True).fill("0.01")
    page.get_by_label("Expires in (s)", exact=True).fill("600")
    page.get_by_role("button", name="Execute order").click()
    order_id = newest_card(page, known)
    card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
    expect(card).to_have_attribute("data-status", "open")
    order = order_json(stack, order_id)
    assert (order["type"], order["minLiquidity"], order["maxPrice"]) == ("sniper", "50", "0.01")
    page.get_by_label("Status", exact=True).select_option("open")
    row = page.locator(f'#history-body tr[data-order-id="{order_id}"]')
    expect(row).to_have_attribute("data-status", "open")
    row.get_by_role("button", name=f"Cancel order {order_id}").click()
    expect(card).to_have_attribute("data-status", "cancelled")


def test_an_exact_out_order_receives_exactly_the_asked_amount(page: Page, stack: Stack) -> None:
    known = card_ids(page)
    page.get_by_label("Amount is", exact=True).select_option(label="Receive exactly")
    page.get_by_label("Token out", exact=True).fill("USDC")
    expect(page.locator("#hint-amount")).to_have_text("In USDC, up to 6 decimal places.")
    fill_order(page, "SOL", "USDC", "3.210987", "100")
    order_id = newest_card(page, known)
    card = page.locator(f'article.order-card[data-order-id="{order_id}"]')
    expect(card.locator('[data-field="targetAmountOut"]')).to_have_text("3.210987")
    expect(card).to_have_attribute("data-status", "confirmed")
    assert timeline(page, order_id) == [(s, i) for i, s in enumerate(LIFECYCLE, 1)]
    order = order_json(stack, order_id)
    assert order["status"] == "confirmed" and order["exactOut"] is True
    assert order["amountOutRaw"] == order["targetAmountOutRaw"] == "3210987"  # exactly what was asked
    assert int(order["amountInSpentRaw"]) > 0
    expect(card.locator('[data-field="amountOut"]')).to_have_text("3.210987")

    # "Receive exactly" is for market orders: on a limit order it is refused beside the field
    submitted: list[str] = []
    page.on("request", lambda r: submitted.append(r.url) if r.method == "POST" else None)
    page.get_by_label("Order type", exact=True).select_option("limit")
    page.get_by_label("Limit price", exact=True).fill("150")
    page.get_by_role("button", name="Execute order").click()
    expect(page.locator("#error-amountMode")).to_have_text("Receive exactly is for market orders only.")
    assert submitted == []
    page.get_by_label("Order type", exact=True).select_option("market")
    page.get_by_label("Amount is", exact=True).select_option(label="Spend exactly")
