from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteLeg(_message.Message):
    __slots__ = ("venue", "pool", "amount_in", "amount_out", "min_amount_out")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    venue: str
    pool: str
    amount_in: int
    amount_out: int
    min_amount_out: int
    def __init__(self, venue: _Optional[str] = ..., pool: _Optional[str] = ..., amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., min_amount_out: _Optional[int] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("legs", "amount_out", "min_amount_out")
    LEGS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    legs: _containers.RepeatedCompositeFieldContainer[RouteLeg]
    amount_out: int
    min_amount_out: int
    def __init__(self, legs: _Optional[_Iterable[_Union[RouteLeg, _Mapping]]] = ..., amount_out: _Optional[int] = ..., min_amount_out: _Optional[int] = ...) -> None: ...

class VenueQuote(_message.Message):
    __slots__ = ("venue", "pool", "amount_in", "amount_out", "fee", "price_impact_bps", "error")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    PRICE_IMPACT_BPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    venue: str
    pool: str
    amount_in: int
    amount_out: int
    fee: int
    price_impact_bps: int
    error: str
    def __init__(self, venue: _Optional[str] = ..., pool: _Optional[str] = ..., amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., fee: _Optional[int] = ..., price_impact_bps: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
