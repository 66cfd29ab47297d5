"""The grpc.aio shapes of a method handler's behaviours, for server interceptors.

grpc.aio hands a server interceptor the same `grpc.RpcMethodHandler` as sync grpc, but there each
behaviour is a coroutine function (one response) or an async generator (streamed responses) taking a
`grpc.aio.ServicerContext`, and a streamed request arrives as an async iterator. types-grpcio declares
only the sync shapes, so the accessors here give each behaviour its grpc.aio type, in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias, TypeVar, cast

import grpc

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# Quoted: grpc's classes take no type arguments at run time (these names are for annotations).
UnaryUnary: TypeAlias = "Callable[[Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]"
UnaryStream: TypeAlias = "Callable[[Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]"
StreamUnary: TypeAlias = (
    "Callable[[AsyncIterator[Req], grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]"
)
StreamStream: TypeAlias = (
    "Callable[[AsyncIterator[Req], grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]"
)
# what grpc.aio.ServerInterceptor.intercept_service is given to get the next handler
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]]"
)


def unary_unary(handler: grpc.RpcMethodHandler[Req, Resp]) -> UnaryUnary[Req, Resp] | None:
    return cast("UnaryUnary[Req, Resp] | None", handler.unary_unary)


def unary_stream(handler: grpc.RpcMethodHandler[Req, Resp]) -> UnaryStream[Req, Resp] | None:
    return cast("UnaryStream[Req, Resp] | None", handler.unary_stream)


def stream_unary(handler: grpc.RpcMethodHandler[Req, Resp]) -> StreamUnary[Req, Resp] | None:
    return cast("StreamUnary[Req, Resp] | None", handler.stream_unary)


def stream_stream(handler: grpc.RpcMethodHandler[Req, Resp]) -> StreamStream[Req, Resp] | None:
    return cast("StreamStream[Req, Resp] | None", handler.stream_stream)
