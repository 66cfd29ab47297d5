from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING: _ClassVar[OrderStatus]
    ORDER_STATUS_ROUTING: _ClassVar[OrderStatus]
    ORDER_STATUS_BUILDING: _ClassVar[OrderStatus]
    ORDER_STATUS_SUBMITTED: _ClassVar[OrderStatus]
    ORDER_STATUS_CONFIRMED: _ClassVar[OrderStatus]
    ORDER_STATUS_FAILED: _ClassVar[OrderStatus]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING: OrderStatus
ORDER_STATUS_ROUTING: OrderStatus
ORDER_STATUS_BUILDING: OrderStatus
ORDER_STATUS_SUBMITTED: OrderStatus
ORDER_STATUS_CONFIRMED: OrderStatus
ORDER_STATUS_FAILED: OrderStatus

class OrderSpec(_message.Message):
    __slots__ = ("input_mint", "output_mint", "amount_in", "slippage_bps", "input_decimals", "output_decimals", "input_symbol", "output_symbol")
    INPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_DECIMALS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DECIMALS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    input_mint: str
    output_mint: str
    amount_in: int
    slippage_bps: int
    input_decimals: int
    output_decimals: int
    input_symbol: str
    output_symbol: str
    def __init__(self, input_mint: _Optional[str] = ..., output_mint: _Optional[str] = ..., amount_in: _Optional[int] = ..., slippage_bps: _Optional[int] = ..., input_decimals: _Optional[int] = ..., output_decimals: _Optional[int] = ..., input_symbol: _Optional[str] = ..., output_symbol: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "spec", "status", "attempts", "route_json", "amount_out", "tx_hash", "dex", "executed_price", "failure_reason", "created_at_us", "updated_at_us", "last_seq", "events")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_JSON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    DEX_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_PRICE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    spec: OrderSpec
    status: OrderStatus
    attempts: int
    route_json: str
    amount_out: int
    tx_hash: str
    dex: str
    executed_price: str
    failure_reason: str
    created_at_us: int
    updated_at_us: int
    last_seq: int
    events: _containers.RepeatedCompositeFieldContainer[OrderEvent]
    def __init__(self, order_id: _Optional[str] = ..., spec: _Optional[_Union[OrderSpec, _Mapping]] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., attempts: _Optional[int] = ..., route_json: _Optional[str] = ..., amount_out: _Optional[int] = ..., tx_hash: _Optional[str] = ..., dex: _Optional[str] = ..., executed_price: _Optional[str] = ..., failure_reason: _Optional[str] = ..., created_at_us: _Optional[int] = ..., updated_at_us: _Optional[int] = ..., last_seq: _Optional[int] = ..., events: _Optional[_Iterable[_Union[OrderEvent, _Mapping]]] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("order_id", "seq", "status", "data_json", "at_us")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    AT_US_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    seq: int
    status: OrderStatus
    data_json: str
    at_us: int
    def __init__(self, order_id: _Optional[str] = ..., seq: _Optional[int] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., data_json: _Optional[str] = ..., at_us: _Optional[int] = ...) -> None: ...

class OrderUpdate(_message.Message):
    __slots__ = ("attempts", "route_json", "amount_out", "tx_hash", "dex", "executed_price", "failure_reason")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_JSON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    DEX_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_PRICE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    route_json: str
    amount_out: int
    tx_hash: str
    dex: str
    executed_price: str
    failure_reason: str
    def __init__(self, attempts: _Optional[int] = ..., route_json: _Optional[str] = ..., amount_out: _Optional[int] = ..., tx_hash: _Optional[str] = ..., dex: _Optional[str] = ..., executed_price: _Optional[str] = ..., failure_reason: _Optional[str] = ...) -> None: ...

class NewEvent(_message.Message):
    __slots__ = ("order_id", "seq", "status", "data_json", "update")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    seq: int
    status: OrderStatus
    data_json: str
    update: OrderUpdate
    def __init__(self, order_id: _Optional[str] = ..., seq: _Optional[int] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., data_json: _Optional[str] = ..., update: _Optional[_Union[OrderUpdate, _Mapping]] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key", "request_hash", "order_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    spec: OrderSpec
    idempotency_key: str
    request_hash: str
    order_id: str
    def __init__(self, spec: _Optional[_Union[OrderSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., request_hash: _Optional[str] = ..., order_id: _Optional[str] = ...) -> None: ...

class CreateOrderResponse(_message.Message):
    __slots__ = ("order", "created")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    order: Order
    created: bool
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class AppendEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[NewEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[NewEvent, _Mapping]]] = ...) -> None: ...

class AppendResult(_message.Message):
    __slots__ = ("order_id", "seq", "code", "message", "event")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    seq: int
    code: int
    message: str
    event: OrderEvent
    def __init__(self, order_id: _Optional[str] = ..., seq: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., event: _Optional[_Union[OrderEvent, _Mapping]] = ...) -> None: ...

class AppendEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AppendResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AppendResult, _Mapping]]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id", "with_events")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WITH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    with_events: bool
    def __init__(self, order_id: _Optional[str] = ..., with_events: _Optional[bool] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("limit", "cursor", "status")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    cursor: str
    status: OrderStatus
    def __init__(self, limit: _Optional[int] = ..., cursor: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_cursor")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_cursor: str
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("order_id", "after_seq")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    after_seq: int
    def __init__(self, order_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[OrderEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[OrderEvent, _Mapping]]] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("order_id", "attempt", "signature", "signed_tx", "last_valid_block_height", "blockhash", "state", "created_at_us", "updated_at_us")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_TX_FIELD_NUMBER: _ClassVar[int]
    LAST_VALID_BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    attempt: int
    signature: str
    signed_tx: bytes
    last_valid_block_height: int
    blockhash: str
    state: str
    created_at_us: int
    updated_at_us: int
    def __init__(self, order_id: _Optional[str] = ..., attempt: _Optional[int] = ..., signature: _Optional[str] = ..., signed_tx: _Optional[bytes] = ..., last_valid_block_height: _Optional[int] = ..., blockhash: _Optional[str] = ..., state: _Optional[str] = ..., created_at_us: _Optional[int] = ..., updated_at_us: _Optional[int] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ...) -> None: ...

class ListUnfinishedOrdersRequest(_message.Message):
    __slots__ = ("limit", "older_than_us")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_US_FIELD_NUMBER: _ClassVar[int]
    limit: int
    older_than_us: int
    def __init__(self, limit: _Optional[int] = ..., older_than_us: _Optional[int] = ...) -> None: ...
