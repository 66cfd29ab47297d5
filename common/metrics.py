"""Prometheus metrics: one exporter per process, and the series every service shares.

Each process calls `start_exporter(settings, "<service>")` once in main(); it serves `GET /metrics`
on `<SERVICE>_METRICS_PORT` (0 = off) from a daemon thread, so a scrape never runs on the event loop.
Service-specific series are defined beside the code that updates them (router_svc.servicer,
worker.driver, gateway.app, persistence_svc.servicer); the ones here are updated by shared code
(the gRPC server interceptor, the chain client).

Label values are always from small fixed sets (a status, a gRPC method, a JSON-RPC method); never
an order id, a signature or anything a client chooses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from common import grpc_handlers
from common.grpc_handlers import Continuation, Req, Resp
from common.settings import Settings

log = logging.getLogger(__name__)

In = TypeVar("In")  # what a streamed-response behaviour takes: one request or the request stream

# Latency buckets from 1 ms to 1 min: the engine's steps are milliseconds on the simulated chain and
# seconds on a real cluster.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

GRPC_HANDLED = Counter(
    "orderengine_grpc_server_handled_total",
    "gRPC calls completed by this server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_STARTED = Counter(
    "orderengine_grpc_server_started_total",
    "gRPC calls started on this server, by method: a long-lived stream counts here when it opens, and "
    "in handled_total only when it ends (started - handled = calls in progress).",
    ["grpc_service", "grpc_method"],
)
GRPC_MSG_SENT = Counter(
    "orderengine_grpc_server_msg_sent_total",
    "Messages sent on server-streamed responses, by method (the traffic of a long-lived stream).",
    ["grpc_service", "grpc_method"],
)
GRPC_SECONDS = Histogram(
    "orderengine_grpc_server_handling_seconds",
    "Time from a call's arrival to its last response, by method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
CHAIN_RPC_CALLS = Counter(
    "orderengine_chain_rpc_calls_total", "Solana JSON-RPC calls made (each attempt), by method.", ["method"]
)
CHAIN_RPC_ERRORS = Counter(
    "orderengine_chain_rpc_errors_total",
    "Solana JSON-RPC calls that failed, by method and kind "
    "(rate_limited: HTTP 429; rpc: a JSON-RPC error answer; transport: timeout, connection, 5xx, malformed).",
    ["method", "kind"],
)
CHAIN_CONFIRMATIONS = Counter(
    "orderengine_chain_confirmations_total",
    "Sent transactions whose outcome was learned, by how: push (signatureSubscribe on the node's "
    "WebSocket) or poll (getSignatureStatuses; the fallback, and the only way without a WebSocket).",
    ["via"],
)
CHAIN_RPC_SECONDS = Histogram(
    "orderengine_chain_rpc_seconds",
    "Time until a JSON-RPC call (with its retries) answered, by method.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)


class Exporter:
    """A running /metrics endpoint; `close()` stops it (tests; processes just exit)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_exporter(settings: Settings, service: str) -> Exporter | None:
    """Serves the default registry on settings.metrics_host:<SERVICE>_METRICS_PORT when that port is
    set. A port already taken (say a second worker on one host) is logged and skipped: metrics are
    never a reason for a process not to run."""
    port = settings.metrics_port(service)
    if port <= 0:
        return None
    try:
        server, thread = start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        log.warning("metrics exporter not started", extra={"port": port, "error": exc.strerror or str(exc)})
        return None
    log.info("metrics exporter listening", extra={"port": port, "host": settings.metrics_host})
    return Exporter(server, thread)


def chain_error_kind(rpc_code: int | None) -> str:
    if rpc_code == 429:
        return "rate_limited"
    if rpc_code is not None:
        return "rpc"
    return "transport"


# ------------------------------------------------------------------------------------------------
# gRPC server calls


def _split_method(full: str) -> tuple[str, str]:
    """ "/orderengine.v1.Router/Quote" → ("orderengine.v1.Router", "Quote")."""
    _, _, rest = full.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


_OK, _UNKNOWN, _CANCELLED = "OK", "UNKNOWN", "CANCELLED"


def _code_of(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> str:
    if isinstance(exc, BaseException) and not isinstance(exc, grpc.aio.AbortError):
        return _UNKNOWN if isinstance(exc, Exception) else _CANCELLED
    code = context.code()
    if code is None:
        return _OK
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for status in grpc.StatusCode:  # some versions keep the raw integer
        if status.value[0] == code:
            return str(status.name)
    return _UNKNOWN


class _CallMetrics:
    """The labelled children of one method, looked up once (not on every call)."""

    __slots__ = ("service", "method", "seconds", "handled", "started", "_sent")

    def __init__(self, full_method: str) -> None:
        self.service, self.method = _split_method(full_method)
        self.seconds = GRPC_SECONDS.labels(self.service, self.method)
        self.started = GRPC_STARTED.labels(self.service, self.method)
        self.handled: dict[str, Any] = {}
        self._sent: Any = None

    def sent(self) -> Any:
        """The streamed-messages counter, made only for methods that stream their responses."""
        if self._sent is None:
            self._sent = GRPC_MSG_SENT.labels(self.service, self.method)
        return self._sent

    def done(self, code: str, started: float) -> None:
        self.seconds.observe(time.perf_counter() - started)
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = GRPC_HANDLED.labels(self.service, self.method, code)
        counter.inc()


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and final status code and times it. Installed before the error
    interceptor, so it sees the code that interceptor chose."""

    def __init__(self) -> None:
        self._methods: dict[str, _CallMetrics] = {}

    def _for(self, method: str) -> _CallMetrics:
        found = self._methods.get(method)
        if found is None:
            found = self._methods[method] = _CallMetrics(method)
        return found

    async def intercept_service(
        self,
        continuation: Continuation[Req, Resp],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        metrics = self._for(handler_call_details.method)

        inner_uu = grpc_handlers.unary_unary(handler)
        if inner_uu is not None:

            async def unary_unary(request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
                started = time.perf_counter()
                metrics.started.inc()
                try:
                    response = await inner_uu(request, context)
                except BaseException as exc:
                    metrics.done(_code_of(context, exc), started)
                    raise
                metrics.done(_code_of(context, None), started)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )

        def streaming(
            inner: Callable[[In, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
        ) -> Callable[[In, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
            sent = metrics.sent()

            async def wrapped(
                request: In, context: grpc.aio.ServicerContext[Req, Resp]
            ) -> AsyncIterator[Resp]:
                started = time.perf_counter()
                metrics.started.inc()
                try:
                    async for item in inner(request, context):
                        sent.inc()
                        yield item
                except BaseException as exc:
                    metrics.done(_code_of(context, exc), started)
                    raise
                metrics.done(_code_of(context, None), started)

            return wrapped

        inner_us = grpc_handlers.unary_stream(handler)
        if inner_us is not None:
            return grpc.unary_stream_rpc_method_handler(
                streaming(inner_us), handler.request_deserializer, handler.response_serializer
            )
        inner_ss = grpc_handlers.stream_stream(handler)
        if inner_ss is not None:
            return grpc.stream_stream_rpc_method_handler(
                streaming(inner_ss), handler.request_deserializer, handler.response_serializer
            )
        inner_su = grpc_handlers.stream_unary(handler)
        if inner_su is not None:

            async def stream_unary(
                request_iter: AsyncIterator[Req], context: grpc.aio.ServicerContext[Req, Resp]
            ) -> Resp:
                started = time.perf_counter()
                metrics.started.inc()
                try:
                    response = await inner_su(request_iter, context)
                except BaseException as exc:
                    metrics.done(_code_of(context, exc), started)
                    raise
                metrics.done(_code_of(context, None), started)
                return response

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )
        return handler


# ------------------------------------------------------------------------------------------------
# chain client (labelled children cached: one dict lookup per call on the hot path)

_rpc_calls: dict[str, Any] = {}
_rpc_seconds: dict[str, Any] = {}


def chain_rpc_attempt(method: str) -> None:
    child = _rpc_calls.get(method)
    if child is None:
        child = _rpc_calls[method] = CHAIN_RPC_CALLS.labels(method)
    child.inc()


def chain_rpc_done(method: str, started: float) -> None:
    child = _rpc_seconds.get(method)
    if child is None:
        child = _rpc_seconds[method] = CHAIN_RPC_SECONDS.labels(method)
    child.observe(time.perf_counter() - started)


def chain_rpc_failed(method: str, rpc_code: int | None) -> None:
    CHAIN_RPC_ERRORS.labels(method, chain_error_kind(rpc_code)).inc()
