from orderengine.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteRequest(_message.Message):
    __slots__ = ("order_id", "attempt", "input_mint", "output_mint", "amount_in", "route")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MINT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    attempt: int
    input_mint: str
    output_mint: str
    amount_in: int
    route: _types_pb2.Route
    def __init__(self, order_id: _Optional[str] = ..., attempt: _Optional[int] = ..., input_mint: _Optional[str] = ..., output_mint: _Optional[str] = ..., amount_in: _Optional[int] = ..., route: _Optional[_Union[_types_pb2.Route, _Mapping]] = ...) -> None: ...

class ExecutionUpdate(_message.Message):
    __slots__ = ("stage", "signature", "last_valid_block_height", "amount_in", "amount_out", "slot", "reason", "retryable", "dex", "resumed")
    class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STAGE_UNSPECIFIED: _ClassVar[ExecutionUpdate.Stage]
        STAGE_BUILDING: _ClassVar[ExecutionUpdate.Stage]
        STAGE_SUBMITTED: _ClassVar[ExecutionUpdate.Stage]
        STAGE_CONFIRMED: _ClassVar[ExecutionUpdate.Stage]
        STAGE_FAILED: _ClassVar[ExecutionUpdate.Stage]
    STAGE_UNSPECIFIED: ExecutionUpdate.Stage
    STAGE_BUILDING: ExecutionUpdate.Stage
    STAGE_SUBMITTED: ExecutionUpdate.Stage
    STAGE_CONFIRMED: ExecutionUpdate.Stage
    STAGE_FAILED: ExecutionUpdate.Stage
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    LAST_VALID_BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    DEX_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    stage: ExecutionUpdate.Stage
    signature: str
    last_valid_block_height: int
    amount_in: int
    amount_out: int
    slot: int
    reason: str
    retryable: bool
    dex: str
    resumed: bool
    def __init__(self, stage: _Optional[_Union[ExecutionUpdate.Stage, str]] = ..., signature: _Optional[str] = ..., last_valid_block_height: _Optional[int] = ..., amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., slot: _Optional[int] = ..., reason: _Optional[str] = ..., retryable: _Optional[bool] = ..., dex: _Optional[str] = ..., resumed: _Optional[bool] = ...) -> None: ...
