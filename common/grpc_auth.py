"""Who may call which gRPC method: a bearer token per service identity, checked by every server.

Each process presents the token of its identity (`gateway`, `worker`, `router`, `executor`,
`persistence`, or `admin` for operators, tests and tools) in the `authorization` metadata of every
call (`Bearer <token>`). Every server holds the map of identities to tokens (`GRPC_TOKENS`,
`identity=token,...`; a value may also be `sha256:<hex>` of the token, so a server can verify a
caller without holding what that caller presents), finds the identity a token belongs to by
comparing SHA-256 digests in constant time, and lets it call only the methods `ALLOWED` gives it:
only the worker appends events, only the executor records executions, only the gateway (besides
`admin`) creates orders. No token, or an unknown one, is UNAUTHENTICATED; a known identity calling a
method that is not its own is PERMISSION_DENIED. `grpc.health.v1` stays open (probes hold no
token, and it tells only SERVING or not); reflection, when GRPC_REFLECTION=1, needs a token.

On CHAIN=sim, an empty GRPC_TOKENS means the well-known development tokens `sim-dev-<identity>`,
so `make run` and the tests need no set-up; on every other chain GRPC_TOKENS is required, and an
identity left out of it has no token at all (leave `admin` out in production).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from common import grpc_handlers
from common.grpc_handlers import Req, Resp

if TYPE_CHECKING:
    from common.grpc_handlers import Continuation
    from common.settings import Settings

IDENTITIES = ("gateway", "worker", "router", "executor", "persistence", "admin")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
METADATA_KEY = "authorization"

_ORDERS = "/orderengine.v1.Orders/"
# method → the identities allowed to call it ("admin" may call everything).
ALLOWED: Mapping[str, frozenset[str]] = {
    _ORDERS + "CreateOrder": frozenset({"gateway"}),
    _ORDERS + "CreateOrders": frozenset({"gateway"}),
    _ORDERS + "CreateOrderStream": frozenset({"gateway"}),
    _ORDERS + "GetOrder": frozenset({"gateway", "worker", "executor"}),
    _ORDERS + "GetOrders": frozenset({"worker", "executor"}),
    _ORDERS + "ListOrders": frozenset({"gateway", "worker"}),
    _ORDERS + "ListEvents": frozenset({"gateway", "worker"}),
    _ORDERS + "AppendEvent": frozenset({"worker"}),
    _ORDERS + "AppendEvents": frozenset({"worker"}),
    _ORDERS + "AppendEventStream": frozenset({"worker"}),
    _ORDERS + "GetOrderStream": frozenset({"executor"}),
    _ORDERS + "RecordExecutionStream": frozenset({"executor"}),
    _ORDERS + "RecordExecution": frozenset({"executor"}),
    _ORDERS + "RecordExecutions": frozenset({"executor"}),
    _ORDERS + "ListExecutions": frozenset({"executor", "worker"}),
    _ORDERS + "ListUnfinishedOrders": frozenset({"worker"}),
    _ORDERS + "CancelOrder": frozenset({"gateway"}),
    "/orderengine.v1.Router/Quote": frozenset({"worker", "gateway"}),
    "/orderengine.v1.Router/QuoteStream": frozenset({"worker", "gateway"}),
    "/orderengine.v1.Router/QuoteBatches": frozenset({"worker"}),
    "/orderengine.v1.Router/WatchPools": frozenset({"worker"}),
    "/orderengine.v1.Executor/Execute": frozenset({"worker"}),
    "/orderengine.v1.Executor/ExecuteBatches": frozenset({"worker"}),
}
# A method of our own services missing from ALLOWED is for `admin` only (deny by default: a new
# method must be given its callers here); other services' methods (server reflection) are open to
# every identity the server knows, never to an unauthenticated caller.
OWN_SERVICES = "/orderengine."


def dev_tokens() -> dict[str, str]:
    """The development tokens of CHAIN=sim (public knowledge: they protect nothing but mistakes)."""
    return {identity: f"sim-dev-{identity}" for identity in IDENTITIES}


def parse_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """GRPC_TOKENS: `identity=token` pairs, comma-separated (ValueError names what is wrong)."""
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        identity, sep, token = part.partition("=")
        identity, token = identity.strip(), token.strip()
        if not sep or identity not in IDENTITIES:
            raise ValueError(f"expected identity=token with identity one of {', '.join(IDENTITIES)}")
        if identity in pairs:
            raise ValueError(f"{identity} is given twice")
        if token.startswith("sha256:"):
            digest = token.removeprefix("sha256:")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"the sha256 of {identity}'s token must be 64 lowercase hex digits")
        elif len(token) < 16:
            raise ValueError(f"{identity}'s token must be at least 16 characters")
        pairs[identity] = token
    return tuple(sorted(pairs.items()))


def tokens_of(settings: Settings) -> dict[str, str]:
    """The identity → token (or `sha256:<hex>`) map of these settings: GRPC_TOKENS, or the
    development tokens on CHAIN=sim. Raises ConfigError when a real chain has none."""
    from common.settings import ConfigError

    if settings.grpc_tokens:
        return dict(settings.grpc_tokens)
    if settings.chain == "sim":
        return dev_tokens()
    raise ConfigError("GRPC_TOKENS", f"required when CHAIN={settings.chain} (identity=token,...)")


def _digest(token: str) -> bytes:
    if token.startswith("sha256:"):
        return bytes.fromhex(token.removeprefix("sha256:"))
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Finds the identity a presented token belongs to, in time independent of the token."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._digests = [(identity, _digest(token)) for identity, token in sorted(tokens.items())]

    def identify(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for identity, expected in self._digests:  # every entry compared: no early exit
            if hmac.compare_digest(digest, expected):
                found = identity
        return found

    def identify_metadata(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
        for key, value in metadata or ():
            if key == METADATA_KEY and isinstance(value, str) and value[:7].lower() == "bearer ":
                return self.identify(value[7:].strip())
        return None


def allowed(identity: str, method: str) -> bool:
    """May `identity` (already authenticated) call `method` (`/package.Service/Method`)?"""
    if identity == "admin":
        return True
    callers = ALLOWED.get(method)
    if callers is None:
        return not method.startswith(OWN_SERVICES)
    return identity in callers


def _refusal(
    handler: grpc.RpcMethodHandler[Req, Resp], code: grpc.StatusCode, details: str
) -> grpc.RpcMethodHandler[Req, Resp]:
    """A handler of the same shape as `handler` that only aborts with `code`."""

    async def abort(request: Any, context: grpc.aio.ServicerContext[Req, Resp]) -> Any:
        await context.abort(code, details)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext[Req, Resp]) -> Any:
        await context.abort(code, details)
        yield  # pragma: no cover - makes this an async generator

    deserialize, serialize = handler.request_deserializer, handler.response_serializer
    if grpc_handlers.unary_unary(handler) is not None:
        return grpc.unary_unary_rpc_method_handler(abort, deserialize, serialize)
    if grpc_handlers.unary_stream(handler) is not None:
        return grpc.unary_stream_rpc_method_handler(abort_stream, deserialize, serialize)
    if grpc_handlers.stream_unary(handler) is not None:
        return grpc.stream_unary_rpc_method_handler(abort, deserialize, serialize)
    return grpc.stream_stream_rpc_method_handler(abort_stream, deserialize, serialize)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED without a known token, PERMISSION_DENIED for another identity's method;
    grpc.health.v1 open to all."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    async def intercept_service(
        self,
        continuation: Continuation[Req, Resp],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        identity = self._auth.identify_metadata(handler_call_details.invocation_metadata)
        if identity is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, "a valid service token is required")
        if not allowed(identity, method):
            return _refusal(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{identity} may not call {method.rsplit('/', 1)[-1]}",
            )
        return handler


# ------------------------------------------------------------------------------------------------
# the client side


def client_token(settings: Settings | None, identity: str) -> str:
    """The token `identity` presents (ConfigError when these settings give it none)."""
    from common.settings import ConfigError, Settings

    tokens = tokens_of(settings if settings is not None else Settings())
    token = tokens.get(identity)
    if token is None or token.startswith("sha256:"):
        raise ConfigError("GRPC_TOKENS", f"no token for {identity}, which this process calls as")
    return token


def call_metadata(token: str) -> tuple[tuple[str, str]]:
    """The metadata that authenticates a call (for stubs on channels not opened by open_channel)."""
    return ((METADATA_KEY, f"Bearer {token}"),)


Meta = tuple[tuple[str, str | bytes], ...]


def _merged(metadata: Any, token_metadata: Meta) -> Meta:
    return token_metadata if not metadata else (*tuple(metadata), *token_metadata)


class _UnaryUnary:
    def __init__(self, inner: Any, token_metadata: Meta) -> None:
        self._inner, self._md = inner, token_metadata

    def __call__(self, request: Any, *, metadata: Any = None, **options: Any) -> Any:
        return self._inner(request, metadata=_merged(metadata, self._md), **options)


class _UnaryStream:
    def __init__(self, inner: Any, token_metadata: Meta) -> None:
        self._inner, self._md = inner, token_metadata

    def __call__(self, request: Any, *, metadata: Any = None, **options: Any) -> Any:
        return self._inner(request, metadata=_merged(metadata, self._md), **options)


class _StreamUnary:
    def __init__(self, inner: Any, token_metadata: Meta) -> None:
        self._inner, self._md = inner, token_metadata

    def __call__(self, request_iterator: Any = None, metadata: Any = None, **options: Any) -> Any:
        return self._inner(request_iterator, metadata=_merged(metadata, self._md), **options)


class _StreamStream:
    def __init__(self, inner: Any, token_metadata: Meta) -> None:
        self._inner, self._md = inner, token_metadata

    def __call__(self, request_iterator: Any = None, metadata: Any = None, **options: Any) -> Any:
        return self._inner(request_iterator, metadata=_merged(metadata, self._md), **options)


class TokenChannel(grpc.aio.Channel):
    """A channel whose every call carries `authorization: Bearer <token>`.

    Not a client interceptor: grpc.aio runs each intercepted call through extra tasks and wrapper
    calls (about 0.1-0.3 ms of CPU per unary call measured here), while this adds one Python call
    that appends the token to the call's metadata. Everything else is the wrapped channel's."""

    def __init__(self, inner: grpc.aio.Channel, token: str) -> None:
        self._inner = inner
        self._md: Meta = call_metadata(token)

    async def __aenter__(self) -> TokenChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.close()

    async def close(self, grace: float | None = None) -> None:
        await self._inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._inner.channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _UnaryUnary(self._inner.unary_unary(method, *args, **kwargs), self._md)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _UnaryStream(self._inner.unary_stream(method, *args, **kwargs), self._md)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _StreamUnary(self._inner.stream_unary(method, *args, **kwargs), self._md)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _StreamStream(self._inner.stream_stream(method, *args, **kwargs), self._md)
