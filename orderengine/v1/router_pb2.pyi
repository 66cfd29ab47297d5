from orderengine.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuoteRequest(_message.Message):
    __slots__ = ("request_id", "input_mint", "output_mint", "amount_in", "slippage_bps", "order_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    input_mint: str
    output_mint: str
    amount_in: int
    slippage_bps: int
    order_id: str
    def __init__(self, request_id: _Optional[str] = ..., input_mint: _Optional[str] = ..., output_mint: _Optional[str] = ..., amount_in: _Optional[int] = ..., slippage_bps: _Optional[int] = ..., order_id: _Optional[str] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("request_id", "quotes", "route", "slot")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    quotes: _containers.RepeatedCompositeFieldContainer[_types_pb2.VenueQuote]
    route: _types_pb2.Route
    slot: int
    def __init__(self, request_id: _Optional[str] = ..., quotes: _Optional[_Iterable[_Union[_types_pb2.VenueQuote, _Mapping]]] = ..., route: _Optional[_Union[_types_pb2.Route, _Mapping]] = ..., slot: _Optional[int] = ...) -> None: ...

class QuoteStreamResponse(_message.Message):
    __slots__ = ("request_id", "response", "error_code", "error_message")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    response: QuoteResponse
    error_code: int
    error_message: str
    def __init__(self, request_id: _Optional[str] = ..., response: _Optional[_Union[QuoteResponse, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...
