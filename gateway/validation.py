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

ORDER_FIELDS = ("tokenIn", "tokenOut", "amount", "amountOut", "slippageBps")
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
    amount_in: int  # 0 for an exact-out order
    slippage_bps: int
    amount_out: int = 0  # exact-out ("amountOut"): receive exactly this, spend at most quote + slippage
    max_price_impact_bps: int | None = None  # None: the server's MAX_PRICE_IMPACT_BPS
    quoted_route: types_pb2.Route | None = None  # execute-by-quote: exactly this route
    quote_id: str = ""
    order_id: str = ""  # "" = a new id; execute-by-quote: the quote's own order id
    order_type: str = "market"  # "market" | "limit" | "stop" | "sniper"
    trigger_price: int = 0  # limit/stop: output base units per one whole input token
    expires_at_us: int = 0  # limit/stop/sniper: unix microseconds
    min_liquidity: int = 0  # sniper: input base units the pool must hold
    max_price: int = 0  # sniper: input base units per one whole output token; 0 = no bound
    expiry_given: str = ""  # how the client spelled the expiry (for the idempotency hash)

    def canonical_hash(self) -> str:
        """Hash of the request's meaning (not its spelling): same order → same hash."""
        doc: list[Any] = [self.token_in.mint, self.token_out.mint, self.amount_in, self.slippage_bps]
        if self.amount_out:
            doc.append(["amountOut", self.amount_out])
        if self.max_price_impact_bps is not None:
            doc.append(["maxPriceImpactBps", self.max_price_impact_bps])
        if self.quote_id:
            doc.append(["quoteId", self.quote_id])
        if self.order_type != "market":
            doc.append([self.order_type, self.trigger_price, self.expiry_given])
        if self.order_type == "sniper":
            doc.append([self.min_liquidity, self.max_price])
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

    # `amount` (spend exactly, in tokenIn) or `amountOut` (receive exactly, in tokenOut): one of them
    raw_amount, raw_out = body.get("amount"), body.get("amountOut")
    if raw_amount is not None and raw_out is not None:
        raise ApiError(
            422,
            "conflicting_fields",
            "give amount (spend exactly) or amountOut (receive exactly), not both",
            "amountOut",
        )
    if raw_amount is None and raw_out is None:
        raise ApiError(422, "missing_field", "amount (or amountOut) is required", "amount")
    amount_in = amount_out = 0
    if raw_out is not None:
        amount_out = _amount(raw_out, token_out.decimals, "amountOut")
    else:
        amount_in = _amount(raw_amount, token_in.decimals, "amount")

    slippage = body.get("slippageBps", default_slippage_bps)
    if slippage is None:
        slippage = default_slippage_bps
    if isinstance(slippage, bool) or not isinstance(slippage, int) or not 1 <= slippage <= 5000:
        raise ApiError(
            422, "invalid_slippage", "slippageBps must be an integer from 1 to 5000", "slippageBps"
        )
    return OrderRequest(token_in, token_out, amount_in, slippage, amount_out)


def _amount(raw: Any, decimals: int, field: str) -> int:
    """An amount (decimal string or number) as integer base units of a mint with `decimals`."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ApiError(422, "invalid_amount", f"{field} must be a decimal string or a number", field)
    if isinstance(raw, float):
        # JSON numbers arrive as floats; take their shortest decimal spelling, never binary arithmetic.
        text = repr(raw)
        if "e" in text or "E" in text or text in ("nan", "inf", "-inf"):
            raise ApiError(422, "invalid_amount", f"{field} must be written as a plain decimal", field)
    else:
        text = str(raw)
    if len(text) > 64:
        raise ApiError(422, "invalid_amount", f"{field} is too long", field)
    if not _AMOUNT.fullmatch(text):  # ASCII digits only: int("٣") is 3, and " 1" is not a number
        raise ApiError(
            422, "invalid_amount", f'{field} must be a positive decimal number such as "1.5"', field
        )
    try:
        return parse_amount(text, decimals)
    except ValueError as exc:
        raise ApiError(422, "invalid_amount", f"{field} {exc}", field) from None


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


RESTING_FIELDS = ("type", "limitPrice", "stopPrice", "expiresAt", "expiresInS", "minLiquidity", "maxPrice")
ORDER_TYPES = ("market", "limit", "stop", "sniper")
SNIPER_FIELDS = ("minLiquidity", "maxPrice")


def parse_resting(body: dict[str, Any], req: OrderRequest, max_expiry_s: int, now_us: int) -> OrderRequest:
    """`type` and, for a limit or stop order, its price (`limitPrice` / `stopPrice`: tokenOut per
    tokenIn, a decimal with at most tokenOut's decimals, kept exactly as an integer of tokenOut base
    units per whole tokenIn) and its expiry (`expiresInS` or `expiresAt`, at most max_expiry_s ahead;
    neither: the maximum). A sniper order: see `_sniper`."""
    kind = body.get("type", "market")
    if kind is None:
        kind = "market"
    if not isinstance(kind, str) or kind not in ORDER_TYPES:
        raise ApiError(422, "invalid_type", "type must be market, limit, stop or sniper", "type")
    if kind != "market" and req.amount_out:
        raise ApiError(
            422,
            "unsupported",
            f"amountOut (receive exactly) is for market orders only; give amount for a {kind} order",
            "amountOut",
        )
    if kind == "market":
        for name in RESTING_FIELDS[1:]:
            if body.get(name) is not None:
                raise ApiError(422, "unexpected_field", f"{name} is only for resting orders", name)
        return req
    if kind == "sniper":
        return _sniper(body, req, max_expiry_s, now_us)
    for name in SNIPER_FIELDS:
        if body.get(name) is not None:
            raise ApiError(422, "unexpected_field", f"{name} is only for sniper orders", name)
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


def _decimal_field(body: dict[str, Any], name: str, decimals: int, what: str) -> int:
    """A positive decimal (string or number) with at most `decimals` decimals, as an integer of base
    units; ApiError naming the field otherwise."""
    raw = body.get(name)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ApiError(422, "invalid_amount", f"{name} must be a decimal string such as {what}", name)
    text = repr(raw) if isinstance(raw, float) else str(raw)
    if len(text) > 64 or not _AMOUNT.fullmatch(text):
        raise ApiError(
            422, "invalid_amount", f"{name} must be a positive decimal number such as {what}", name
        )
    try:
        return parse_amount(text, decimals)
    except ValueError as exc:
        raise ApiError(422, "invalid_amount", f"{name} {exc}", name) from None


def _sniper(body: dict[str, Any], req: OrderRequest, max_expiry_s: int, now_us: int) -> OrderRequest:
    """A sniper order: `minLiquidity` (required; tokenIn, the side the order pays with: the pool
    must hold at least this much of it) and `maxPrice` (optional; the most tokenIn paid per whole
    tokenOut, at most tokenIn's decimals), both kept exactly as integers of tokenIn base units; the
    expiry as for limit orders."""
    for name in ("limitPrice", "stopPrice"):
        if body.get(name) is not None:
            raise ApiError(422, "unexpected_field", f"{name} is not for a sniper order", name)
    if body.get("minLiquidity") is None:
        raise ApiError(422, "missing_field", "minLiquidity is required for a sniper order", "minLiquidity")
    symbol_in = req.token_in.symbol or "tokenIn"
    min_liquidity = _decimal_field(body, "minLiquidity", req.token_in.decimals, f'"50" ({symbol_in})')
    max_price = 0
    if body.get("maxPrice") is not None:
        max_price = _decimal_field(
            body,
            "maxPrice",
            req.token_in.decimals,
            f'"0.005" ({symbol_in} per {req.token_out.symbol or "tokenOut"})',
        )
    expires_at_us, given = _expiry(body, max_expiry_s, now_us)
    return dataclasses.replace(
        req,
        order_type="sniper",
        min_liquidity=min_liquidity,
        max_price=max_price,
        expires_at_us=expires_at_us,
        expiry_given=given,
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
