"""Domain errors shared by every service, and their gRPC status codes.

Services raise these; `common.grpc_server.ErrorInterceptor` turns them into status codes in one
place. Anything else becomes INTERNAL with a generic message: an internal error's text never reaches
a client.
"""

from __future__ import annotations

import grpc


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # asking again may succeed although the code alone says otherwise (see RETRYABLE_CODES)
    retryable: bool = False

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def client_message(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a numeric code carried in a message (a batch member's result);
    UNKNOWN for a value that is none."""
    return _BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


# Codes a caller may retry for an idempotent call (compare opentelemetry's _RETRYABLE_ERROR_CODES).
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)

# Trailing metadata of a RecordExecution refused with FAILED_PRECONDITION: the serialized
# orderengine.v1.Execution that is live for the order (signed, sent or landed), to resume instead.
LIVE_EXECUTION_KEY = "live-execution-bin"
# The start of persistence's refusal to write `failed` for an order whose swap landed or may still
# land (an execution signed, sent or landed): the worker then settles the order instead.
LIVE_EXECUTION_REFUSAL = "the order has a live execution"
