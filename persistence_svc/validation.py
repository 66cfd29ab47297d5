"""Request validation: proto messages → validated inputs, or InvalidArgument naming the field.

Everything that Postgres would refuse (NUL bytes, non-finite numbers, out-of-range integers) is
refused here first, so bad input always gets INVALID_ARGUMENT and never an internal error.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from common import lifecycle
from common.errors import InvalidArgument
from orderengine.v1 import orders_pb2, types_pb2
from persistence_svc.models import EventInput, ExecutionInput, NewOrder, Spec, Update, compact_json

MAX_SEQ = 1_000_000
MAX_ATTEMPTS = 1_000
MAX_JSON_BYTES = 64 * 1024
MAX_SIGNED_TX_BYTES = 64 * 1024
MAX_KEY_CHARS = 255
MAX_HASH_CHARS = 255
MAX_OWNER_CHARS = 64
MAX_QUOTE_ID_CHARS = 64
MAX_ROUTE_LEGS = 8
MAX_COST_CHANGES = 16  # a swap changes SOL and its two mints; room for what a real node reports
MAX_SYMBOL_CHARS = 32
MAX_REASON_CHARS = 4096
EXECUTION_STATES = ("signed", "sent", "landed", "failed", "expired")

_DECIMAL = re.compile(r"^\d{1,40}(\.\d{1,40})?$")
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{1,128}$")


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("must be a UUID", field=field) from None


def _text(value: str, field: str, max_chars: int, *, required: bool = False) -> str:
    if required and not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > max_chars:
        raise InvalidArgument(f"must be at most {max_chars} characters", field=field)
    if "\x00" in value:
        raise InvalidArgument("must not contain NUL characters", field=field)
    return value


def _pubkey(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument("is required", field=field)
    try:
        Pubkey.from_string(value)
    except ValueError:
        raise InvalidArgument("must be a base58 public key", field=field) from None
    return value


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("non-finite number")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_json_object(text: str, field: str) -> tuple[dict[str, Any], str]:
    """A JSON object from `text` ("" means {}), and its compact form. Refuses what jsonb refuses."""
    if not text:
        return {}, "{}"
    if len(text) > MAX_JSON_BYTES:
        raise InvalidArgument(f"must be at most {MAX_JSON_BYTES} bytes", field=field)
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidArgument("must be valid JSON", field=field) from None
    if not isinstance(value, dict):
        raise InvalidArgument("must be a JSON object", field=field)
    if "\\u0000" in text and _has_nul(value):
        raise InvalidArgument("must not contain NUL characters", field=field)
    return value, compact_json(value)


def parse_status(value: int, field: str) -> str:
    status = lifecycle.from_proto(value)
    if status is None:
        raise InvalidArgument("must be a known order status", field=field)
    return status


def parse_create_order(request: orders_pb2.CreateOrderRequest, new_id: uuid.UUID) -> NewOrder:
    if not request.HasField("spec"):
        raise InvalidArgument("is required", field="spec")
    s = request.spec
    input_mint = _pubkey(s.input_mint, "spec.input_mint")
    output_mint = _pubkey(s.output_mint, "spec.output_mint")
    if input_mint == output_mint:
        raise InvalidArgument("must differ from spec.input_mint", field="spec.output_mint")
    if s.amount_out and s.amount_in:
        raise InvalidArgument("give amount_in or amount_out (exact out), not both", field="spec.amount_out")
    if s.amount_in <= 0 and not s.amount_out:
        raise InvalidArgument("must be greater than zero (or give amount_out)", field="spec.amount_in")
    if not 1 <= s.slippage_bps <= 5000:
        raise InvalidArgument("must be between 1 and 5000", field="spec.slippage_bps")
    if s.input_decimals > 18:
        raise InvalidArgument("must be between 0 and 18", field="spec.input_decimals")
    if s.output_decimals > 18:
        raise InvalidArgument("must be between 0 and 18", field="spec.output_decimals")
    spec = Spec(
        input_mint=input_mint,
        output_mint=output_mint,
        amount_in=s.amount_in,
        slippage_bps=s.slippage_bps,
        input_decimals=s.input_decimals,
        output_decimals=s.output_decimals,
        input_symbol=_text(s.input_symbol, "spec.input_symbol", MAX_SYMBOL_CHARS),
        output_symbol=_text(s.output_symbol, "spec.output_symbol", MAX_SYMBOL_CHARS),
        quoted_route=_quoted_route(s),
        quote_id=_text(s.quote_id, "spec.quote_id", MAX_QUOTE_ID_CHARS),
        max_price_impact_bps=_max_impact(s.max_price_impact_bps),
        **_resting(s),
        amount_out=s.amount_out,
    )
    if spec.amount_out and spec.order_type != "market":
        raise InvalidArgument("exact-out is for market orders only", field="spec.amount_out")
    order_id = parse_uuid(request.order_id, "order_id") if request.order_id else new_id
    key = _text(request.idempotency_key, "idempotency_key", MAX_KEY_CHARS) or None
    request_hash = _text(request.request_hash, "request_hash", MAX_HASH_CHARS) or None
    if key is not None and request_hash is None:
        raise InvalidArgument("is required with an idempotency_key", field="request_hash")
    owner = parse_owner(request.owner)
    return NewOrder(order_id, bool(request.order_id), spec, key, request_hash, owner)


def _quoted_route(s: orders_pb2.OrderSpec) -> bytes:
    """The route an execute-by-quote order must take: a valid route that spends exactly the order's
    amount with a min-out on every leg (b"" when the order is routed by the worker)."""
    if not s.HasField("quoted_route"):
        if s.quote_id:
            raise InvalidArgument("is required with a quote_id", field="spec.quoted_route")
        return b""
    route = s.quoted_route
    serialized = parse_route(route, "spec.quoted_route")
    if s.amount_out:
        if not route.exact_out or route.amount_out != s.amount_out:
            raise InvalidArgument("must be exact-out, delivering spec.amount_out", field="spec.quoted_route")
    elif route.exact_out or sum(leg.amount_in for leg in route.legs) != s.amount_in:
        raise InvalidArgument("must spend exactly spec.amount_in", field="spec.quoted_route")
    if any(leg.min_amount_out == 0 for leg in route.legs):
        raise InvalidArgument("every leg needs a min_amount_out above zero", field="spec.quoted_route")
    return serialized


ORDER_TYPES: dict[orders_pb2.OrderType.ValueType, str] = {
    orders_pb2.ORDER_TYPE_MARKET: "market",
    orders_pb2.ORDER_TYPE_LIMIT: "limit",
    orders_pb2.ORDER_TYPE_STOP: "stop",
    orders_pb2.ORDER_TYPE_SNIPER: "sniper",
}
MAX_EXPIRES_AT_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z


def _resting(s: orders_pb2.OrderSpec) -> dict[str, Any]:
    """A resting order's type, trigger price and expiry (a market order has neither); a sniper
    order's minimum liquidity and optional price bound instead of a trigger price."""
    order_type = ORDER_TYPES.get(s.order_type)
    if order_type is None:
        raise InvalidArgument("must be a known order type", field="spec.order_type")
    if order_type != "sniper":
        if s.min_liquidity:
            raise InvalidArgument("is only for sniper orders", field="spec.min_liquidity")
        if s.max_price:
            raise InvalidArgument("is only for sniper orders", field="spec.max_price")
    if order_type == "sniper":
        if s.trigger_price:
            raise InvalidArgument(
                "is not for sniper orders (max_price is their bound)", field="spec.trigger_price"
            )
        if s.min_liquidity == 0:
            raise InvalidArgument("must be greater than zero", field="spec.min_liquidity")
        if not 0 < s.expires_at_us <= MAX_EXPIRES_AT_US:
            raise InvalidArgument("must be a time (unix microseconds)", field="spec.expires_at_us")
        if s.HasField("quoted_route"):
            raise InvalidArgument("a quoted order is a market order", field="spec.quoted_route")
    elif order_type == "market":
        if s.trigger_price:
            raise InvalidArgument("is only for limit and stop orders", field="spec.trigger_price")
        if s.expires_at_us:
            raise InvalidArgument("is only for resting orders", field="spec.expires_at_us")
    else:
        if s.trigger_price == 0:  # a uint64: numeric(20, 0) holds every value
            raise InvalidArgument("must be greater than zero", field="spec.trigger_price")
        if not 0 < s.expires_at_us <= MAX_EXPIRES_AT_US:
            raise InvalidArgument("must be a time (unix microseconds)", field="spec.expires_at_us")
        if s.HasField("quoted_route"):
            raise InvalidArgument("a quoted order is a market order", field="spec.quoted_route")
    return {
        "order_type": order_type,
        "trigger_price": s.trigger_price,
        "expires_at_us": s.expires_at_us,
        "min_liquidity": s.min_liquidity,
        "max_price": s.max_price,
    }


def _max_impact(value: int) -> int:
    if value > 10_000:
        raise InvalidArgument("must be between 0 and 10000", field="spec.max_price_impact_bps")
    return value


def parse_owner(value: str) -> str:
    """An order owner: at most MAX_OWNER_CHARS printable ASCII characters ("" = none)."""
    owner = _text(value, "owner", MAX_OWNER_CHARS)
    if not all(33 <= ord(c) <= 126 for c in owner):
        raise InvalidArgument("must be printable ASCII without spaces", field="owner")
    return owner


def parse_update(update: orders_pb2.OrderUpdate, prefix: str) -> Update:
    attempts = route_json = amount_out = tx_hash = dex = executed_price = failure_reason = None
    if update.HasField("attempts"):
        if update.attempts > MAX_ATTEMPTS:
            raise InvalidArgument(f"must be at most {MAX_ATTEMPTS}", field=f"{prefix}.attempts")
        attempts = update.attempts
    if update.HasField("route_json"):
        if not update.route_json:
            raise InvalidArgument("must be a JSON object", field=f"{prefix}.route_json")
        _, route_json = parse_json_object(update.route_json, f"{prefix}.route_json")
    if update.HasField("amount_out"):
        amount_out = update.amount_out
    if update.HasField("tx_hash"):
        tx_hash = update.tx_hash
        if tx_hash and not _BASE58.match(tx_hash):
            raise InvalidArgument("must be a base58 signature", field=f"{prefix}.tx_hash")
    if update.HasField("dex"):
        dex = update.dex
        if dex and not _NAME.match(dex):
            raise InvalidArgument("must be a venue name such as raydium_cpmm", field=f"{prefix}.dex")
    if update.HasField("executed_price"):
        executed_price = update.executed_price
        if executed_price and not _DECIMAL.match(executed_price):
            raise InvalidArgument("must be a decimal string", field=f"{prefix}.executed_price")
    if update.HasField("failure_reason"):
        failure_reason = _text(update.failure_reason, f"{prefix}.failure_reason", MAX_REASON_CHARS)
    route_proto = parse_route(update.route, f"{prefix}.route") if update.HasField("route") else None
    return Update(
        attempts,
        route_json,
        amount_out,
        tx_hash,
        dex,
        executed_price,
        failure_reason,
        route_proto,
        amount_in_spent=update.amount_in if update.HasField("amount_in") else None,
        cost=parse_cost(update.cost, f"{prefix}.cost") if update.HasField("cost") else None,
    )


def parse_cost(cost: types_pb2.TradeCost, field: str) -> bytes:
    """What a confirmed swap cost (at most MAX_COST_CHANGES balance changes, each a mint's
    address once, none zero), serialized for the cost column."""
    if len(cost.balance_changes) > MAX_COST_CHANGES:
        raise InvalidArgument(
            f"must have at most {MAX_COST_CHANGES} entries", field=f"{field}.balance_changes"
        )
    seen: set[str] = set()
    for i, change in enumerate(cost.balance_changes):
        where = f"{field}.balance_changes[{i}]"
        _pubkey(change.mint, f"{where}.mint")
        if change.mint in seen:
            raise InvalidArgument("repeats the mint of another entry", field=f"{where}.mint")
        seen.add(change.mint)
        if change.change == 0:
            raise InvalidArgument(
                "must not be zero (a mint whose balance did not change is left out)", field=f"{where}.change"
            )
    return cost.SerializeToString(deterministic=True)


def parse_route(route: types_pb2.Route, field: str) -> bytes:
    """A chosen route (1..MAX_ROUTE_LEGS legs, totals that are the legs' sums), serialized for the
    route_proto column."""
    if not 1 <= len(route.legs) <= MAX_ROUTE_LEGS:
        raise InvalidArgument(f"must have 1 to {MAX_ROUTE_LEGS} legs", field=f"{field}.legs")
    for i, leg in enumerate(route.legs):
        where = f"{field}.legs[{i}]"
        if not _NAME.match(leg.venue):
            raise InvalidArgument("must be a venue name such as raydium_cpmm", field=f"{where}.venue")
        _pubkey(leg.pool, f"{where}.pool")
        if leg.amount_in <= 0:
            raise InvalidArgument("must be greater than zero", field=f"{where}.amount_in")
        if leg.min_amount_out > leg.amount_out:
            raise InvalidArgument("must not exceed amount_out", field=f"{where}.min_amount_out")
        if leg.exact_out != route.exact_out:
            raise InvalidArgument("must be the route's exact_out", field=f"{where}.exact_out")
        if leg.exact_out and (leg.min_amount_out != leg.amount_out or leg.max_amount_in < leg.amount_in):
            raise InvalidArgument(
                "an exact-out leg delivers amount_out exactly, spending at most max_amount_in (≥ amount_in)",
                field=f"{where}.max_amount_in",
            )
    if route.amount_out != sum(leg.amount_out for leg in route.legs):
        raise InvalidArgument("must be the sum of the legs' amount_out", field=f"{field}.amount_out")
    if route.min_amount_out != sum(leg.min_amount_out for leg in route.legs):
        raise InvalidArgument("must be the sum of the legs' min_amount_out", field=f"{field}.min_amount_out")
    if route.max_amount_in != sum(leg.max_amount_in for leg in route.legs):
        raise InvalidArgument("must be the sum of the legs' max_amount_in", field=f"{field}.max_amount_in")
    return route.SerializeToString(deterministic=True)


def parse_new_event(event: orders_pb2.NewEvent, prefix: str = "") -> EventInput:
    """`prefix` names the event inside a batch ("events[3]."); "" for a unary call."""
    order_id = parse_uuid(event.order_id, f"{prefix}order_id")
    if not 1 <= event.seq <= MAX_SEQ:
        raise InvalidArgument(f"must be between 1 and {MAX_SEQ}", field=f"{prefix}seq")
    status = parse_status(event.status, f"{prefix}status")
    data, data_json = parse_json_object(event.data_json, f"{prefix}data_json")
    update = parse_update(event.update, f"{prefix}update") if event.HasField("update") else Update()
    return EventInput(order_id, event.seq, status, data, data_json, update)


def parse_execution(request: orders_pb2.Execution) -> ExecutionInput:
    order_id = parse_uuid(request.order_id, "order_id")
    if not 1 <= request.attempt <= MAX_ATTEMPTS:
        raise InvalidArgument(f"must be between 1 and {MAX_ATTEMPTS}", field="attempt")
    try:
        Signature.from_string(request.signature)
    except ValueError:
        raise InvalidArgument("must be a base58 transaction signature", field="signature") from None
    if not request.signed_tx:
        raise InvalidArgument("is required", field="signed_tx")
    if len(request.signed_tx) > MAX_SIGNED_TX_BYTES:
        raise InvalidArgument(f"must be at most {MAX_SIGNED_TX_BYTES} bytes", field="signed_tx")
    try:
        Hash.from_string(request.blockhash)
    except Exception:  # solders raises its own ParseHashError
        raise InvalidArgument("must be a base58 blockhash", field="blockhash") from None
    if request.state not in EXECUTION_STATES:
        raise InvalidArgument(f"must be one of {', '.join(EXECUTION_STATES)}", field="state")
    return ExecutionInput(
        order_id=order_id,
        attempt=request.attempt,
        signature=request.signature,
        signed_tx=bytes(request.signed_tx),
        last_valid_block_height=request.last_valid_block_height,
        blockhash=request.blockhash,
        state=request.state,
    )


def page_limit(value: int, default: int, maximum: int) -> int:
    """0 → default; above the maximum → the maximum."""
    return default if value == 0 else min(value, maximum)
