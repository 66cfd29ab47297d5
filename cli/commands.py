"""`python -m cli`: submit and follow orders, and read history, from a terminal or a script.

    python -m cli execute SOL USDC 1.5 --slippage-bps 100     # live progress until it ends
    python -m cli execute SOL USDC 1.5 --json                  # one JSON line per event
    python -m cli quote SOL USDC 1.5                            # both venues, the route; a quote id
    python -m cli execute --quote-id <quote id>                 # execute exactly that quote
    python -m cli execute SOL USDC --amount-out 150            # receive exactly 150 USDC (exact-out)
    python -m cli execute SOL USDC 1 --limit-price 155 --expires-in 3600   # rests until it triggers
    python -m cli execute SOL NEW 1 --sniper --min-liquidity 50 --max-price 0.01  # fires on a new pool
    python -m cli orders cancel <order id>
    python -m cli orders list --status confirmed --limit 20
    python -m cli orders show <order id>

Every command takes --url (default http://127.0.0.1:3000), --api-key and --json.

Exit codes: 0 the order confirmed (or the command succeeded), 1 the order failed, 2 bad input (the
engine's error names the field), 3 the engine could not be reached or did not answer in time.

It speaks only the public HTTP + WebSocket contract (DESIGN.md), like any other client: POST with an
Idempotency-Key (a retry after a lost answer cannot create a second order), then follow the order
on the WebSocket from afterSeq, reconnecting with the last seq seen if the socket drops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import quote, urlencode

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from common import lifecycle

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
HTTP_TIMEOUT_S = 10.0


def next_step(status: str) -> str:
    """The status an order in `status` waits for on its way to confirmed, read from the lifecycle:
    the first later status it may move to, other than failed ("" before any event: pending)."""
    if not status:
        return lifecycle.PENDING
    if status == lifecycle.OPEN:
        return "its trigger"
    if status not in lifecycle.STATUSES:
        return "the next step"
    allowed = lifecycle.TRANSITIONS.get(status, frozenset())
    later = lifecycle.STATUSES[lifecycle.STATUSES.index(status) + 1 :]
    return next((s for s in later if s in allowed and s != lifecycle.FAILED), "the next step")


class CliError(Exception):
    """Ends the command with `exit_code`; `error` is the engine's error object when there is one."""

    def __init__(self, exit_code: int, message: str, field: str | None = None, code: str = "error") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.field = field
        self.code = code

    def as_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"type": "error", "error": err}

    def human(self) -> str:
        return f"error: {self.field}: {self.message}" if self.field else f"error: {self.message}"


# ------------------------------------------------------------------------------------------------
# talking to the gateway


@dataclass
class Client:
    url: str
    api_key: str | None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self.http = httpx.AsyncClient(base_url=self.url.rstrip("/"), headers=headers, timeout=HTTP_TIMEOUT_S)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; transient failures (unreachable, 503 with Retry-After) are retried a few times —
        safe for reads and for POST, which always carries an Idempotency-Key."""
        for attempt in range(4):
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == 3:
                    raise CliError(
                        EXIT_UNAVAILABLE,
                        f"cannot reach the engine at {self.url} ({type(exc).__name__})",
                        code="unreachable",
                    ) from None
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code == 503 and attempt < 3:
                retry_after = response.headers.get("retry-after", "1")
                await asyncio.sleep(min(float(retry_after) if retry_after.isdigit() else 1.0, 5.0))
                continue
            return self._answer(response)
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.is_success:
            return doc
        err: dict[str, Any] = {}
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            err = doc["error"]
        message = str(err.get("message") or f"the engine answered HTTP {response.status_code}")
        code = str(err.get("code") or f"http_{response.status_code}")
        exit_code = EXIT_BAD_INPUT if 400 <= response.status_code < 500 else EXIT_UNAVAILABLE
        field_name = err.get("field") if isinstance(err.get("field"), str) else None
        raise CliError(exit_code, message, field_name, code)

    def ws_url(self, order_id: str, after_seq: int) -> str:
        base = self.url.rstrip("/")
        scheme = "wss" if base.startswith("https://") else "ws"
        params = {"orderId": order_id, "afterSeq": str(after_seq)}
        if self.api_key:
            params["apiKey"] = self.api_key
        return f"{scheme}://{base.split('://', 1)[1]}/api/orders/ws?{urlencode(params)}"


# ------------------------------------------------------------------------------------------------
# output


def parse_at(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{seconds:.2f} s"


def symbol(token: Any, fallback: str = "") -> str:
    if isinstance(token, dict):
        return str(token.get("symbol") or token.get("mint") or fallback)
    return fallback


class Display:
    """What the user sees. Human: one line per status with its time and the time the step took,
    a live "waiting…" line on a terminal, then the result. JSON: one line per event, nothing else."""

    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.live = not as_json and out.isatty()
        self.prev_at: datetime | None = None
        self.first_at: datetime | None = None
        self.waiting_since = time.monotonic()
        self.status = ""
        self._ticker: asyncio.Task[None] | None = None
        self._spinner_shown = False

    # -- events ---------------------------------------------------------------------------------
    def json_line(self, doc: Any) -> None:
        self.out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self.out.flush()

    def line(self, text: str) -> None:
        self.clear_spinner()
        self.out.write(text + "\n")
        self.out.flush()

    def accepted(
        self, doc: dict[str, Any], token_in: str, token_out: str, amount: str, slippage: int | None
    ) -> None:
        if self.as_json:
            self.json_line({"type": "accepted", **doc})
            return
        slip = f", max slippage {slippage} bps" if slippage is not None else ""
        spend = f"{amount} {token_in}" if amount else token_in
        self.line(f"Order {doc['orderId']}: {spend} → {token_out}{slip}")
        self.waiting_since = time.monotonic()

    def status_event(self, msg: dict[str, Any], out_symbol: str) -> None:
        if self.as_json:
            self.json_line(msg)
            return
        status = str(msg.get("status"))
        at = parse_at(msg.get("at"))
        delta = "start"
        if at is not None:
            if self.prev_at is not None:
                delta = "+" + fmt_ms((at - self.prev_at).total_seconds())
            self.first_at = self.first_at or at
            self.prev_at = at
        clock = at.strftime("%H:%M:%S.%f")[:-3] if at else "--:--:--.---"
        mark = "✗" if status == "failed" else "✓"
        detail = self.detail(status, msg.get("data") or {}, out_symbol)
        self.line(f"  {mark} {status:<10} {clock}  {delta:>9}  {detail}".rstrip())
        self.status = status
        self.waiting_since = time.monotonic()

    @staticmethod
    def detail(status: str, data: dict[str, Any], out_symbol: str) -> str:
        if status == "routing":
            parts = []
            if isinstance(data.get("attempt"), int) and data["attempt"] > 1:
                parts.append(f"attempt {data['attempt']}")
            if data.get("retryOf"):
                parts.append(f"retry of: {data['retryOf']}")
            if data.get("error"):
                parts.append(str(data["error"]))
            if isinstance(data.get("trigger"), dict):
                parts.append(f"triggered: market at {data['trigger'].get('marketPrice')} {out_symbol}")
            quotes = [q for q in data.get("quotes") or [] if isinstance(q, dict)]
            shown = [
                f"{q.get('venue')} {q.get('amountOut')} {out_symbol}"
                if not q.get("error")
                else f"{q.get('venue')} no quote"
                for q in quotes
            ]
            if shown:
                parts.append(" · ".join(shown))
            route = data.get("route") if isinstance(data.get("route"), dict) else None
            if route:
                parts.append(f"→ {route.get('dex')}")
            return "  ".join(parts)
        if status == "open" and data.get("type") == "sniper":
            bound = f", at most {data['maxPrice']} per token" if data.get("maxPrice") else ""
            until = data.get("expiresAt")
            return f"sniper: a pool with {data.get('minLiquidity')} of the input{bound}, until {until}"
        if status == "open":
            price = data.get("limitPrice") or data.get("stopPrice")
            return f"{data.get('type')} at {price} {out_symbol}, until {data.get('expiresAt')}"
        if status in ("cancelled", "expired"):
            return str(data.get("reason", ""))
        if status == "submitted":
            return f"signature {data.get('signature', '')}"
        if status == "failed":
            return str(data.get("reason", ""))
        return ""

    def note(self, text: str) -> None:
        if self.as_json:
            return
        self.clear_spinner()
        self.err.write(text + "\n")
        self.err.flush()

    def result(self, order: dict[str, Any], final: dict[str, Any]) -> None:
        if self.as_json:
            return
        data = final.get("data") or {}
        total = ""
        if self.first_at is not None and self.prev_at is not None:
            total = f" in {fmt_ms((self.prev_at - self.first_at).total_seconds())}"
        out_sym = symbol(order.get("tokenOut"), "")
        in_sym = symbol(order.get("tokenIn"), "")
        if final.get("status") == "confirmed":
            self.line(f"Confirmed{total}")
            rows = [
                ("venue", data.get("dex") or order.get("dex")),
                ("amount out", f"{data.get('amountOut') or order.get('amountOut')} {out_sym}".strip()),
                (
                    "price",
                    f"{data.get('executedPrice') or order.get('executedPrice')} {out_sym} per {in_sym}",
                ),
                ("signature", data.get("txHash") or order.get("txHash")),
                *cost_rows(data.get("costs") or order.get("costs")),
            ]
        elif final.get("status") == lifecycle.OPEN:
            self.line(f"Open: it waits for its trigger until {data.get('expiresAt')}")
            rows = [("cancel", f"python -m cli orders cancel {final.get('orderId')}")]
        else:
            self.line(f"{str(final.get('status', 'failed')).capitalize()}{total}")
            rows = [
                ("reason", data.get("reason") or order.get("failureReason")),
                ("attempts", order.get("attempts")),
            ]
        for name, value in rows:
            self.line(f"  {name:<11} {value}")

    # -- the live "waiting" line (terminals only) ------------------------------------------------
    def start(self) -> None:
        if self.live:
            self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.clear_spinner()

    async def _tick(self) -> None:
        frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        i = 0
        while True:
            nxt = next_step(self.status)
            nxt = "confirmation" if nxt == lifecycle.CONFIRMED else nxt
            waited = time.monotonic() - self.waiting_since
            self.out.write(f"\r  {frames[i % len(frames)]} waiting for {nxt}… {waited:4.1f} s\x1b[K")
            self.out.flush()
            self._spinner_shown = True
            i += 1
            await asyncio.sleep(0.1)

    def clear_spinner(self) -> None:
        if self._spinner_shown:
            self.out.write("\r\x1b[K")
            self._spinner_shown = False


# ------------------------------------------------------------------------------------------------
# commands


async def follow(
    client: Client,
    order_id: str,
    display: Display,
    out_symbol: str,
    timeout_s: float,
    until: frozenset[str] = lifecycle.TERMINAL,
) -> dict[str, Any]:
    """Follows the order on the WebSocket until its terminal event, which it returns. A dropped
    socket — or one the gateway closed over a limit (1013, 4429), or a subscription it ended
    (`catchup_failed`) — is reopened after a growing backoff with afterSeq = the last seq seen:
    nothing is missed, nothing repeated."""
    last_seq = 0
    attempt = 0
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                async with websockets.connect(
                    client.ws_url(order_id, last_seq), open_timeout=HTTP_TIMEOUT_S, max_size=4 * 1024 * 1024
                ) as ws:
                    async for raw in ws:
                        msg = json.loads(raw)
                        kind = msg.get("type")
                        if kind == "ping":
                            await ws.send('{"action":"pong"}')
                        elif kind == "status" and msg.get("orderId") == order_id:
                            seq = msg.get("seq")
                            if not isinstance(seq, int) or seq <= last_seq:
                                continue  # never shown twice
                            last_seq = seq
                            attempt = 0  # served again: the backoff starts over
                            display.status_event(msg, out_symbol)
                            if msg.get("status") in until:
                                return dict(msg)
                        elif kind == "error":
                            if msg.get("code") == "unknown_order":
                                raise CliError(EXIT_BAD_INPUT, "no such order", "orderId", "unknown_order")
                            display.note(f"engine: {msg.get('message')}")
                            if msg.get("code") == "catchup_failed" and msg.get("orderId") == order_id:
                                break  # the subscription ended: reconnect and resume by seq
                attempt += 1
                delay = min(5.0, 0.25 * 2 ** min(attempt, 5)) * (0.5 + random.random() / 2)
                await asyncio.sleep(delay)
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError):
                # (a TimeoutError here is the socket's open timing out; the overall deadline is
                # raised by asyncio.timeout above, outside this loop)
                attempt += 1
                delay = min(5.0, 0.25 * 2 ** min(attempt, 5)) * (0.5 + random.random() / 2)
                display.note(f"connection lost; resuming after seq {last_seq} in {delay:.1f} s")
                await asyncio.sleep(delay)


def order_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of a market order (or a quote) from the command's arguments."""
    body: dict[str, Any] = {"tokenIn": args.token_in, "tokenOut": args.token_out}
    if args.amount_out is not None:
        body["amountOut"] = args.amount_out  # exact-out: receive exactly this much TOKEN_OUT
    else:
        body["amount"] = args.amount
    if args.slippage_bps is not None:
        body["slippageBps"] = args.slippage_bps
    if args.max_price_impact_bps is not None:
        body["maxPriceImpactBps"] = args.max_price_impact_bps
    if getattr(args, "limit_price", None) is not None:
        body.update(type="limit", limitPrice=args.limit_price)
    if getattr(args, "stop_price", None) is not None:
        body.update(type="stop", stopPrice=args.stop_price)
    if getattr(args, "sniper", False):
        body["type"] = "sniper"
        if args.min_liquidity is not None:
            body["minLiquidity"] = args.min_liquidity
        if args.max_price is not None:
            body["maxPrice"] = args.max_price
    if getattr(args, "expires_in", None) is not None:
        body["expiresInS"] = args.expires_in
    return body


async def cmd_cancel(args: argparse.Namespace, client: Client, display: Display) -> int:
    order = await client.request("POST", f"/api/orders/{quote(args.order_id, safe='')}/cancel", json={})
    if display.as_json:
        display.json_line(order)
    else:
        display.line(f"Cancelled {order['orderId']}")
    return EXIT_OK


async def cmd_quote(args: argparse.Namespace, client: Client, display: Display) -> int:
    q = await client.request("POST", "/api/quotes", json=order_body(args))
    if display.as_json:
        display.json_line(q)
        return EXIT_OK
    in_sym, out_sym = symbol(q.get("tokenIn"), args.token_in), symbol(q.get("tokenOut"), args.token_out)
    exact = q.get("exactOut") is True
    spend = f"{q['amountIn']} {in_sym} (at most {q['maxAmountIn']})" if exact else f"{q['amountIn']} {in_sym}"
    receive = f"exactly {q['amountOut']} {out_sym}" if exact else out_sym
    display.line(
        f"Quote {q['quoteId']}: {spend} → {receive}, max slippage {q['slippageBps']} bps"
        f" (valid until {q['expiresAt']})"
    )
    for v in q.get("quotes") or []:
        if v.get("error"):
            display.line(f"  {v['venue']:<13} cannot quote: {v['error']}")
        else:
            shown = (
                f"needs {v['amountInRaw']} base units of {in_sym}"
                if exact
                else f"{v['amountOut']:>18} {out_sym}"
            )
            display.line(f"  {v['venue']:<13} {shown}  impact {v['priceImpactBps']} bps")
    route = q["route"]
    bound = f"at most {q['maxAmountIn']} {in_sym}" if exact else f"at least {q['minAmountOut']} {out_sym}"
    display.line(
        f"  route         {route['dex']} → {q['amountOut']} {out_sym}, {bound}, "
        f"price impact {q['priceImpactBps']} bps, fees {q['fee']} {in_sym}"
    )
    display.line(f"Execute it: python -m cli execute --quote-id {q['quoteId']}")
    return EXIT_OK


async def cmd_execute(args: argparse.Namespace, client: Client, display: Display) -> int:
    body = {"quoteId": args.quote_id} if args.quote_id else order_body(args)
    key = args.idempotency_key or str(uuid.uuid4())
    accepted = await client.request(
        "POST", "/api/orders/execute", json=body, headers={"Idempotency-Key": key}
    )
    order_id = accepted["orderId"]
    if args.quote_id:  # the quote knows the order: show what it is
        placed = await client.request("GET", f"/api/orders/{quote(order_id)}")
        args.token_in, args.token_out = (
            symbol(placed.get("tokenIn"), "?"),
            symbol(placed.get("tokenOut"), "?"),
        )
        args.amount, args.slippage_bps = placed.get("amountIn"), placed.get("slippageBps")
        args.amount_out = placed.get("targetAmountOut")
    if args.amount_out is not None:  # exact-out: what it receives is known, what it spends is not yet
        display.accepted(
            accepted, args.token_in, f"exactly {args.amount_out} {args.token_out}", "", args.slippage_bps
        )
    else:
        display.accepted(accepted, args.token_in, args.token_out, args.amount, args.slippage_bps)
    resting = args.limit_price is not None or args.stop_price is not None or args.sniper
    until = lifecycle.TERMINAL if args.wait or not resting else lifecycle.TERMINAL | {lifecycle.OPEN}
    display.start()
    try:
        try:
            final = await follow(client, order_id, display, args.token_out, args.timeout, until)
        except TimeoutError:
            raise CliError(
                EXIT_UNAVAILABLE,
                f"order {order_id} did not finish within {args.timeout:g} s "
                f"(it goes on; see `orders show {order_id}`)",
                code="timeout",
            ) from None
    finally:
        await display.stop()
    order: dict[str, Any] = {}
    if not display.as_json:
        with contextlib.suppress(CliError):
            order = await client.request("GET", f"/api/orders/{quote(order_id)}")
    display.result(order, final)
    return EXIT_OK if final.get("status") in ("confirmed", lifecycle.OPEN) else EXIT_FAILED


async def cmd_list(args: argparse.Namespace, client: Client, display: Display) -> int:
    params: dict[str, str] = {"limit": str(args.limit)}
    if args.status:
        params["status"] = args.status
    if args.cursor:
        params["cursor"] = args.cursor
    page = await client.request("GET", "/api/orders", params=params)
    if display.as_json:
        display.json_line(page)
        return EXIT_OK
    orders = page.get("orders") or []
    header = (
        f"{'created':<24} {'order id':<36} {'pair':<14} {'amount in':>16} {'amount out':>18} "
        f"{'venue':<13} status"
    )
    display.line(header)
    for o in orders:
        pair = f"{symbol(o.get('tokenIn'), '?')}→{symbol(o.get('tokenOut'), '?')}"
        display.line(
            f"{o.get('createdAt', ''):<24} {o.get('orderId', ''):<36} {pair:<14} "
            f"{o.get('amountIn') or '—':>16} {o.get('amountOut') or '—':>18} "
            f"{o.get('dex') or '—':<13} {o.get('status')}"
        )
    if not orders:
        display.line("(no orders)")
    if page.get("nextCursor"):
        display.line(f"more: --cursor {page['nextCursor']}")
    return EXIT_OK


def cost_rows(costs: Any) -> list[tuple[str, str]]:
    """What a confirmed swap cost (its `costs`), as rows: the fees and the rent in SOL, then the
    wallet's signed balance change per mint ("-1.500005 SOL, +225.61 USDC")."""
    if not isinstance(costs, dict):
        return []
    changes = ", ".join(
        f"{'' if str(c.get('change') or c.get('changeRaw')).startswith('-') else '+'}"
        f"{c.get('change') or c.get('changeRaw')} {c.get('symbol') or c.get('mint')}"
        for c in costs.get("balanceChanges") or []
        if isinstance(c, dict)
    )
    return [
        ("fees", f"{costs.get('networkFee')} SOL network + {costs.get('priorityFee')} SOL priority"),
        ("rent", f"{costs.get('rent')} SOL"),
        ("wallet", changes or "—"),
    ]


async def cmd_show(args: argparse.Namespace, client: Client, display: Display) -> int:
    order = await client.request("GET", f"/api/orders/{quote(args.order_id, safe='')}")
    if display.as_json:
        display.json_line(order)
        return EXIT_OK
    in_sym, out_sym = symbol(order.get("tokenIn"), "?"), symbol(order.get("tokenOut"), "?")
    display.line(
        f"Order {order['orderId']}: {order.get('amountIn')} {in_sym} → {out_sym}, "
        f"max slippage {order.get('slippageBps')} bps — {order.get('status')}"
    )
    for event in order.get("events") or []:
        display.status_event({"type": "status", "orderId": order["orderId"], **event}, out_sym)
    amount_out = order.get("amountOut") and f"{order['amountOut']} {out_sym}"
    rows = [
        ("venue", order.get("dex")),
        ("amount out", amount_out),
        ("price", order.get("executedPrice")),
        ("signature", order.get("txHash")),
        *cost_rows(order.get("costs")),
        ("reason", order.get("failureReason")),
        ("attempts", order.get("attempts")),
        ("created", order.get("createdAt")),
        ("updated", order.get("updatedAt")),
    ]
    for name, value in rows:
        if value not in (None, ""):
            display.line(f"  {name:<11} {value}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# arguments


def _slippage(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be an integer number of basis points (1-5000)")
    return int(text)


def _impact(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be an integer number of basis points (1-10000)")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 200:
        raise argparse.ArgumentTypeError("must be an integer from 1 to 200")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://127.0.0.1:3000", help="the gateway (default %(default)s)")
    common.add_argument("--api-key", default=None, help="sent as Authorization: Bearer <key>")
    common.add_argument(
        "--json", action="store_true", help="machine-readable output: one JSON line per event"
    )

    parser = argparse.ArgumentParser(
        prog="python -m cli",
        description="Submit market orders to the order engine and follow them live; read order history.",
        epilog="exit codes: 0 confirmed / ok, 1 order failed, 2 bad input, 3 engine unreachable or timed out",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{execute,quote,orders}")

    ex = commands.add_parser(
        "execute",
        parents=[common],
        help="submit a market order (or execute a quote: --quote-id) and follow it to its end",
    )
    qt = commands.add_parser(
        "quote", parents=[common], help="quote an order on every venue; execute it with --quote-id"
    )
    for cmd, optional in ((ex, "?"), (qt, "?")):
        cmd.add_argument(
            "token_in", metavar="TOKEN_IN", nargs=optional, help="symbol or mint address to sell"
        )
        cmd.add_argument(
            "token_out", metavar="TOKEN_OUT", nargs=optional, help="symbol or mint address to buy"
        )
        cmd.add_argument(
            "amount", metavar="AMOUNT", nargs=optional, help="amount of TOKEN_IN, a decimal (e.g. 1.5)"
        )
        cmd.add_argument(
            "--amount-out",
            default=None,
            help="exact-out, instead of AMOUNT: receive exactly this much TOKEN_OUT (e.g. 150), spending "
            "at most the quote plus slippage",
        )
        cmd.add_argument(
            "--slippage-bps",
            type=_slippage,
            default=None,
            help="maximum slippage in basis points, 1-5000 (default: the engine's)",
        )
        cmd.add_argument(
            "--max-price-impact-bps",
            type=_impact,
            default=None,
            help="refuse a route that moves a pool further, 1-10000 bps (default: the engine's)",
        )
    qt.set_defaults(run=cmd_quote)
    ex.add_argument(
        "--quote-id",
        default=None,
        help="execute this quote (from `quote`) instead of TOKEN_IN TOKEN_OUT AMOUNT",
    )
    ex.add_argument("--idempotency-key", default=None, help="reuse to make a retried submit harmless")
    resting = ex.add_mutually_exclusive_group()
    resting.add_argument(
        "--limit-price", default=None, help="a limit order: at least this much TOKEN_OUT per TOKEN_IN"
    )
    resting.add_argument(
        "--stop-price", default=None, help="a stop order: execute once the market falls to this price"
    )
    resting.add_argument(
        "--sniper",
        action="store_true",
        help="a sniper order: execute once a pool of the pair (none may exist yet) holds --min-liquidity",
    )
    ex.add_argument(
        "--min-liquidity", default=None, help="sniper: the TOKEN_IN the pool must hold (e.g. 50 SOL)"
    )
    ex.add_argument("--max-price", default=None, help="sniper: at most this much TOKEN_IN per TOKEN_OUT")
    ex.add_argument(
        "--expires-in",
        type=int,
        default=None,
        help="seconds a limit/stop/sniper order waits (default: the engine's)",
    )
    ex.add_argument("--wait", action="store_true", help="follow a resting order past open, until it ends")
    ex.add_argument(
        "--timeout", type=_seconds, default=120.0, help="give up following after this many seconds"
    )
    ex.set_defaults(run=cmd_execute)

    orders = commands.add_parser("orders", help="read orders")
    sub = orders.add_subparsers(dest="orders_command", required=True, metavar="{list,show,cancel}")
    ls = sub.add_parser("list", parents=[common], help="order history, newest first")
    ls.add_argument("--status", choices=lifecycle.STATUSES, default=None)
    ls.add_argument("--limit", type=_limit, default=20)
    ls.add_argument("--cursor", default=None, help="the nextCursor of the previous page")
    ls.set_defaults(run=cmd_list)
    show = sub.add_parser("show", parents=[common], help="one order with its events")
    show.add_argument("order_id", metavar="ORDER_ID")
    show.set_defaults(run=cmd_show)
    cancel = sub.add_parser("cancel", parents=[common], help="cancel an open limit, stop or sniper order")
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cancel.set_defaults(run=cmd_cancel)
    return parser


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    display = Display(out, err, args.json)
    client = Client(args.url, args.api_key)
    try:
        code: int = await args.run(args, client, display)
        return code
    except CliError as exc:
        await display.stop()
        if display.as_json:
            display.json_line(exc.as_json())
        err.write(exc.human() + "\n")
        err.flush()
        return exc.exit_code
    except InvalidURI:
        err.write(f"error: --url: not a valid URL: {args.url}\n")
        return EXIT_BAD_INPUT
    finally:
        await client.aclose()


def _check_amounts(
    parser: argparse.ArgumentParser, command: str, given: list[str], amount_out: str | None
) -> None:
    """TOKEN_IN TOKEN_OUT and exactly one of AMOUNT and --amount-out."""
    if amount_out is not None and len(given) == 3:
        parser.error(f"{command}: give AMOUNT (spend exactly) or --amount-out (receive exactly), not both")
    if len(given) != (2 if amount_out is not None else 3):
        parser.error(
            f"{command}: TOKEN_IN TOKEN_OUT AMOUNT (or TOKEN_IN TOKEN_OUT --amount-out X) are required"
        )


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "execute":
        given = [a for a in (args.token_in, args.token_out, args.amount) if a is not None]
        terms = (
            args.slippage_bps,
            args.max_price_impact_bps,
            args.limit_price,
            args.stop_price,
            args.expires_in,
            args.min_liquidity,
            args.max_price,
        )
        if args.sniper is False and (args.min_liquidity is not None or args.max_price is not None):
            parser.error("execute: --min-liquidity and --max-price are for --sniper orders")
        if args.quote_id and (given or args.sniper or any(t is not None for t in terms)):
            parser.error("execute: --quote-id executes the quote as quoted; give no order with it")
        if args.quote_id and args.amount_out is not None:
            parser.error("execute: --quote-id executes the quote as quoted; give no order with it")
        if not args.quote_id:
            _check_amounts(parser, "execute", given, args.amount_out)
        if args.amount_out is not None and (args.limit_price or args.stop_price or args.sniper):
            parser.error("execute: --amount-out (exact-out) is for market orders only")
    if args.command == "quote":
        _check_amounts(
            parser, "quote", [a for a in (args.token_in, args.token_out, args.amount) if a], args.amount_out
        )
    if not args.url.startswith(("http://", "https://")):
        (err or sys.stderr).write(f"error: --url: must start with http:// or https://, got {args.url!r}\n")
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(run(args, out or sys.stdout, err or sys.stderr))
    except KeyboardInterrupt:
        return 130
