"""Validation of order requests from HTTP and WebSocket: one set of rules for both edges.

Every rejection names the field; nothing malformed gets past this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from solders.pubkey import Pubkey

from common.amounts import parse_amount
from common.markets import Markets, Token
from orderengine.v1 import types_pb2

ORDER_FIELDS = ("tokenIn", "tokenOut", "amount", "slippageBps")
_TOKEN = re.compile(r"[A-Za-z0-9$._-]{1,64}")  # a symbol or a base58 mint (gateway/openapi.py)
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
MAX_IDEMPOTENCY_KEY = 128


class ApiError(Exception):
    """An error answered to a client: HTTP status, machine code, message, and the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"error": err}


@dataclass(frozen=True)
class OrderRequest:
    token_in: Token
    token_out: Token
    amount_in: int
    slippage_bps: int
    max_price_impact_bps: int | None = None  # None: the server's MAX_PRICE_IMPACT_BPS
    quoted_route: types_pb2.Route | None = None  # execute-by-quote: exactly this route
    quote_id: str = ""
    order_id: str = ""  # "" = a new id; execute-by-quote: the quote's own order id
    order_type: str = "market"  # "market" | "limit" | "stop"
    trigger_price: int = 0  # limit/stop: output base units per one whole input token
    expires_at_us: int = 0  # limit/stop: unix microseconds
    expiry_given: str = ""  # how the client spelled the expiry (for the idempotency hash)

    def canonical_hash(self) -> str:
        """Hash of the request's meaning (not its spelling): same order → same hash."""
        doc: list[Any] = [self.token_in.mint, self.token_out.mint, self.amount_in, self.slippage_bps]
        if self.max_price_impact_bps is not None:
            doc.append(["maxPriceImpactBps", self.max_price_impact_bps])
        if self.quote_id:
            doc.append(["quoteId", self.quote_id])
        if self.order_type != "market":
            doc.append([self.order_type, self.trigger_price, self.expiry_given])
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _resolve_token(markets: Markets, value: Any, field: str) -> Token:
    if value is None:
        raise ApiError(422, "missing_field", f"{field} is required", field)
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ApiError(422, "invalid_token", f"{field} must be a token symbol or mint address", field)
    token = markets.token(value)
    if token is None:
        try:
            Pubkey.from_string(value.strip())
        except ValueError:
            raise ApiError(422, "unknown_token", f"{field}: unknown token {value.strip()!r}", field) from None
        raise ApiError(422, "unknown_token", f"{field}: mint {value.strip()} is not traded here", field)
    return token


def parse_order_request(
    body: Any, markets: Markets, default_slippage_bps: int, extra_allowed: tuple[str, ...] = ()
) -> OrderRequest:
    """Validates a decoded JSON body of POST /api/orders/execute (or a WS execute message)."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    for key in body:
        if key not in ORDER_FIELDS and key not in extra_allowed:
            raise ApiError(422, "unknown_field", f"unknown field {str(key)[:40]!r}", str(key)[:40])
    token_in = _resolve_token(markets, body.get("tokenIn"), "tokenIn")
    token_out = _resolve_token(markets, body.get("tokenOut"), "tokenOut")
    if token_in.mint == token_out.mint:
        raise ApiError(422, "same_token", "tokenOut must differ from tokenIn", "tokenOut")

    raw_amount = body.get("amount")
    if raw_amount is None:
        raise ApiError(422, "missing_field", "amount is required", "amount")
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, (str, int, float)):
        raise ApiError(422, "invalid_amount", "amount must be a decimal string or a number", "amount")
    if isinstance(raw_amount, float):
        # JSON numbers arrive as floats; take their shortest decimal spelling, never binary arithmetic.
        text = repr(raw_amount)
        if "e" in text or "E" in text or text in ("nan", "inf", "-inf"):
            raise ApiError(422, "invalid_amount", "amount must be written as a plain decimal", "amount")
    else:
        text = str(raw_amount)
    if len(text) > 64:
        raise ApiError(422, "invalid_amount", "amount is too long", "amount")
    if not _AMOUNT.fullmatch(text):  # ASCII digits only: int("٣") is 3, and " 1" is not a number
        raise ApiError(
            422, "invalid_amount", 'amount must be a positive decimal number such as "1.5"', "amount"
        )
    try:
        amount_in = parse_amount(text, token_in.decimals)
    except ValueError as exc:
        raise ApiError(422, "invalid_amount", f"amount {exc}", "amount") from None

    slippage = body.get("slippageBps", default_slippage_bps)
    if slippage is None:
        slippage = default_slippage_bps
    if isinstance(slippage, bool) or not isinstance(slippage, int) or not 1 <= slippage <= 5000:
        raise ApiError(
            422, "invalid_slippage", "slippageBps must be an integer from 1 to 5000", "slippageBps"
        )
    return OrderRequest(token_in, token_out, amount_in, slippage)


def parse_max_price_impact(body: dict[str, Any]) -> int | None:
    """`maxPriceImpactBps`: an integer from 1 to 10000, or absent (None: the server's default)."""
    value = body.get("maxPriceImpactBps")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ApiError(
            422,
            "invalid_max_price_impact",
            "maxPriceImpactBps must be an integer from 1 to 10000",
            "maxPriceImpactBps",
        )
    return value


RESTING_FIELDS = ("type", "limitPrice", "stopPrice", "expiresAt", "expiresInS")
ORDER_TYPES = ("market", "limit", "stop")


def parse_resting(body: dict[str, Any], req: OrderRequest, max_expiry_s: int, now_us: int) -> OrderRequest:
    """`type` and, for a limit or stop order, its price (`limitPrice` / `stopPrice`: tokenOut per
    tokenIn, a decimal with at most tokenOut's decimals, kept exactly as an integer of tokenOut base
    units per whole tokenIn) and its expiry (`expiresInS` or `expiresAt`, at most max_expiry_s ahead;
    neither: the maximum)."""
    kind = body.get("type", "market")
    if kind is None:
        kind = "market"
    if not isinstance(kind, str) or kind not in ORDER_TYPES:
        raise ApiError(422, "invalid_type", "type must be market, limit or stop", "type")
    if kind == "market":
        for name in RESTING_FIELDS[1:]:
            if body.get(name) is not None:
                raise ApiError(422, "unexpected_field", f"{name} is only for limit and stop orders", name)
        return req
    price_field, other = ("limitPrice", "stopPrice") if kind == "limit" else ("stopPrice", "limitPrice")
    if body.get(other) is not None:
        raise ApiError(422, "unexpected_field", f"{other} is not for a {kind} order", other)
    raw = body.get(price_field)
    if raw is None:
        raise ApiError(422, "missing_field", f"{price_field} is required for a {kind} order", price_field)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ApiError(422, "invalid_price", f"{price_field} must be a decimal string", price_field)
    text = repr(raw) if isinstance(raw, float) else str(raw)
    if len(text) > 64 or not _AMOUNT.fullmatch(text):
        raise ApiError(
            422,
            "invalid_price",
            f"{price_field} must be a positive decimal number of {req.token_out.symbol or 'tokenOut'} per "
            f'{req.token_in.symbol or "tokenIn"}, such as "151.25"',
            price_field,
        )
    try:
        trigger = parse_amount(text, req.token_out.decimals)
    except ValueError as exc:
        raise ApiError(422, "invalid_price", f"{price_field} {exc}", price_field) from None
    expires_at_us, given = _expiry(body, max_expiry_s, now_us)
    return dataclasses.replace(
        req, order_type=kind, trigger_price=trigger, expires_at_us=expires_at_us, expiry_given=given
    )


def _expiry(body: dict[str, Any], max_expiry_s: int, now_us: int) -> tuple[int, str]:
    in_s, at = body.get("expiresInS"), body.get("expiresAt")
    latest = now_us + max_expiry_s * 1_000_000
    if in_s is not None and at is not None:
        raise ApiError(422, "conflicting_fields", "give expiresInS or expiresAt, not both", "expiresAt")
    if in_s is not None:
        if isinstance(in_s, bool) or not isinstance(in_s, (int, float)) or not 1 <= in_s <= max_expiry_s:
            raise ApiError(
                422,
                "invalid_expiry",
                f"expiresInS must be a number of seconds from 1 to {max_expiry_s}",
                "expiresInS",
            )
        return now_us + int(in_s * 1_000_000), f"in:{in_s}"
    if at is not None:
        parsed = None
        if isinstance(at, str) and len(at) <= 40:
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
        if parsed is None or parsed.tzinfo is None:
            raise ApiError(
                422, "invalid_expiry", "expiresAt must be an ISO-8601 time with a zone", "expiresAt"
            )
        at_us = int(parsed.timestamp() * 1_000_000)
        if at_us <= now_us:
            raise ApiError(422, "invalid_expiry", "expiresAt is in the past", "expiresAt")
        if at_us > latest:
            raise ApiError(
                422, "invalid_expiry", f"expiresAt is more than {max_expiry_s} s ahead", "expiresAt"
            )
        return at_us, f"at:{at_us}"
    return latest, "default"


def parse_quote_id(body: dict[str, Any], extra_allowed: tuple[str, ...] = ()) -> str:
    """The body of an execute-by-quote request: `quoteId` (a quote's UUID) and nothing else."""
    for key in body:
        if key != "quoteId" and key not in extra_allowed:
            raise ApiError(
                422,
                "unknown_field",
                f"unknown field {str(key)[:40]!r}: a quote is executed with quoteId alone",
                str(key)[:40],
            )
    value = body.get("quoteId")
    if not isinstance(value, str) or not is_order_id(value):
        raise ApiError(
            422, "invalid_quote_id", "quoteId must be the quoteId POST /api/quotes answered", "quoteId"
        )
    return value


def is_order_id(value: str) -> bool:
    """An order id as the engine writes it: a UUID in its canonical 36-character form."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def check_idempotency_key(key: str | None) -> str:
    if key is None:
        return ""
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not (key.isascii() and key.isprintable()):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            "Idempotency-Key",
        )
    return key
