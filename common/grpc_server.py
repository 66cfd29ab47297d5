"""Running a grpc.aio service: health, reflection, error mapping and graceful shutdown, once."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common import grpc_handlers
from common.errors import DomainError
from common.grpc_handlers import Continuation, Req, Resp
from common.metrics import MetricsInterceptor
from common.parent import die_with_parent

if TYPE_CHECKING:
    from common.settings import Settings

log = logging.getLogger(__name__)


def _abort_code(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(exc, DomainError):
        return exc.code, exc.client_message()
    return None


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps DomainError to its status code; any other exception to INTERNAL without its text."""

    async def intercept_service(
        self,
        continuation: Continuation[Req, Resp],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method

        async def fail(exc: BaseException, context: grpc.aio.ServicerContext[Req, Resp]) -> NoReturn:
            mapped = _abort_code(exc)
            if mapped is not None:
                await context.abort(mapped[0], mapped[1])
            log.exception("unhandled error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        inner_uu = grpc_handlers.unary_unary(handler)
        if inner_uu is not None:

            async def unary_unary(request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
                try:
                    return await inner_uu(request, context)
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped in one place
                    await fail(exc, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        inner_us = grpc_handlers.unary_stream(handler)
        if inner_us is not None:

            async def unary_stream(
                request: Req, context: grpc.aio.ServicerContext[Req, Resp]
            ) -> AsyncIterator[Resp]:
                try:
                    async for item in inner_us(request, context):
                        yield item
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    await fail(exc, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        inner_ss = grpc_handlers.stream_stream(handler)
        if inner_ss is not None:

            async def stream_stream(
                request_iter: AsyncIterator[Req], context: grpc.aio.ServicerContext[Req, Resp]
            ) -> AsyncIterator[Resp]:
                try:
                    async for item in inner_ss(request_iter, context):
                        yield item
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    await fail(exc, context)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


# Every connection is closed (GOAWAY, in-flight calls finish) after about this long, so clients
# resolve the service's name again and spread onto replicas started since (common.grpc_client).
MAX_CONNECTION_AGE_MS = 30_000

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.so_reuseport", 0),
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
]


class GrpcService:
    """A started grpc.aio server with its health servicer. Use `start_grpc_service` to make one."""

    def __init__(
        self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, port: int
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.port = port

    async def stop(self, grace: float) -> None:
        """Health → NOT_SERVING, then stop accepting and let in-flight calls finish for `grace` s."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_service(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    settings: Settings | None = None,
) -> GrpcService:
    """Starts a server on `address` ("host:port"; port 0 picks a free one) with the servicers that
    `register` adds, plus grpc.health.v1, and server reflection for `service_names` when
    GRPC_REFLECTION is on. Every method but health needs a service token (common.grpc_auth) of
    `settings` (None: the defaults, i.e. the development tokens of CHAIN=sim)."""
    from common import settings as config
    from common.grpc_auth import Authenticator, AuthInterceptor, tokens_of

    settings = settings if settings is not None else config.Settings()
    auth = AuthInterceptor(Authenticator(tokens_of(settings)))
    # MetricsInterceptor is the outer one: it sees the status code ErrorInterceptor (or a refusal
    # of AuthInterceptor) chose.
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), auth, ErrorInterceptor()], options=SERVER_OPTIONS
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.grpc_reflection:
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection([*service_names, health_name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcService(server, health_servicer, port)


async def wait_for_shutdown_signal() -> None:
    """Returns when the process receives SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


class Stoppable(Protocol):
    async def stop(self) -> None: ...


def run_service(
    name: str,
    serve: Callable[[Settings], Awaitable[Stoppable]],
    fatal: Mapping[type[BaseException], str] | None = None,
) -> None:
    """The `main()` of a gRPC service process: settings read once, JSON logs, the metrics exporter,
    `serve(settings)` on uvloop until SIGTERM/SIGINT, then a graceful stop. An exception of a type in
    `fatal` (type → what failed) ends the process with exit code 1 and one log line."""
    import uvloop

    from common.log import setup_logging
    from common.metrics import start_exporter
    from common.settings import ConfigError, load_settings

    die_with_parent()
    settings = load_settings()
    setup_logging(name, settings.log_level)
    start_exporter(settings, name)
    known: dict[type[BaseException], str] = {ConfigError: "", **(fatal or {})}

    async def run() -> None:
        running = await serve(settings)
        try:
            await wait_for_shutdown_signal()
            log.info("shutting down", extra={"grace_s": settings.grpc_grace_s})
        finally:
            await running.stop()
        log.info("stopped")

    try:
        uvloop.run(run())
    except tuple(known) as exc:
        what = next(label for kind, label in known.items() if isinstance(exc, kind))
        text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip().splitlines()[0]
        log.error("%s: %s", what, text) if what else log.error("%s", text)
        raise SystemExit(1) from None
