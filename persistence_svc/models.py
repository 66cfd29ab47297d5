"""Plain data passed between the servicer and the store: validated inputs and stored rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson

from common.timefmt import EPOCH, from_us, to_us

__all__ = ["EPOCH", "from_us", "to_us"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def compact_json(value: Any) -> str:
    """Compact, keys sorted: one event reads the same whether just written or read from jsonb
    (which keeps its own key order)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits, which orjson does not write: the exact slow path
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Spec:
    input_mint: str
    output_mint: str
    amount_in: int
    slippage_bps: int
    input_decimals: int
    output_decimals: int
    input_symbol: str
    output_symbol: str
    quoted_route: bytes = b""  # execute-by-quote: a serialized orderengine.v1.Route; b"" = route it
    quote_id: str = ""
    max_price_impact_bps: int = 0  # 0 = no bound
    order_type: str = "market"  # "market" | "limit" | "stop" | "sniper"
    trigger_price: int = 0  # resting orders: output base units per one whole input token
    expires_at_us: int = 0  # resting orders: unix microseconds
    amount_out: int = 0  # exact-out: the output to receive exactly (amount_in is then 0)
    min_liquidity: int = 0  # sniper: the least the pool holds of the input mint (base units)
    max_price: int = 0  # sniper: input base units per one whole output token; 0 = no bound


@dataclass(frozen=True)
class NewOrder:
    order_id: uuid.UUID
    order_id_given: bool
    spec: Spec
    idempotency_key: str | None
    request_hash: str | None
    owner: str = ""  # the API key's id at the edge; "" = none


@dataclass(frozen=True)
class Update:
    """Order fields an event sets; None = leave as is."""

    attempts: int | None = None
    route_json: str | None = None  # compact JSON text of an object
    amount_out: int | None = None
    tx_hash: str | None = None
    dex: str | None = None
    executed_price: str | None = None
    failure_reason: str | None = None
    route_proto: bytes | None = None  # a serialized orderengine.v1.Route
    amount_in_spent: int | None = None  # debited from the wallet (confirmed)
    cost: bytes | None = None  # a serialized orderengine.v1.TradeCost (confirmed)


@dataclass(frozen=True)
class EventInput:
    order_id: uuid.UUID
    seq: int
    status: str
    data: dict[str, Any]
    data_json: str  # compact JSON of `data`
    update: Update = field(default_factory=Update)


@dataclass(frozen=True)
class ExecutionInput:
    order_id: uuid.UUID
    attempt: int
    signature: str
    signed_tx: bytes
    last_valid_block_height: int
    blockhash: str
    state: str


@dataclass(frozen=True)
class OrderRow:
    order_id: uuid.UUID
    spec: Spec
    status: str
    attempts: int
    route_json: str
    amount_out: int
    tx_hash: str
    dex: str
    executed_price: str
    failure_reason: str
    created_at: datetime
    updated_at: datetime
    last_seq: int
    route_proto: bytes = b""  # the chosen route, a serialized orderengine.v1.Route; b"" before routing
    amount_in_spent: int = 0  # debited from the wallet, once confirmed
    cost: bytes = b""  # what the confirmed swap cost, a serialized orderengine.v1.TradeCost; b"" before


@dataclass(frozen=True)
class EventRow:
    order_id: uuid.UUID
    seq: int
    status: str
    data: dict[str, Any]
    at: datetime
    known_data_json: str | None = field(default=None, compare=False, repr=False)

    @property
    def data_json(self) -> str:
        """`data` as compact_json, reusing the text it was written from when there is one."""
        return self.known_data_json if self.known_data_json is not None else compact_json(self.data)


@dataclass(frozen=True)
class ExecutionRow:
    order_id: uuid.UUID
    attempt: int
    signature: str
    signed_tx: bytes
    last_valid_block_height: int
    blockhash: str
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AppendOutcome:
    """The result of one event of a batch: OK with the stored event (new, or the stored repeat),
    or a status code and a message fit for the client."""

    code: grpc.StatusCode
    message: str = ""
    event: EventRow | None = None
    new: bool = False
    # the event is `open`, or its order was open before it (it triggered, was cancelled, expired or
    # failed while resting): what the resting books follow (`{prefix}:events:resting`)
    resting: bool = False


@dataclass(frozen=True)
class CreateOutcome:
    order: OrderRow
    created: bool
    first_event: EventRow | None  # set when created
