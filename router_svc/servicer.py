"""The Router gRPC servicer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
from prometheus_client import Counter, Histogram
from solders.pubkey import Pubkey

from common.chain import ChainError
from common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from common.log import order_id_var
from common.metrics import LATENCY_BUCKETS
from common.streams import multiplex, singles
from orderengine.v1 import router_pb2, router_pb2_grpc, types_pb2
from router_svc.pools import PoolBook
from router_svc.quotes import NoRoute, RouteChoice, choose_route, choose_route_exact_out
from router_svc.watch import PairLearner, watch_pools

log = logging.getLogger(__name__)

QUOTE_SECONDS = Histogram(
    "orderengine_router_quote_seconds",
    "Time to answer one quote request (pool state wait included).",
    buckets=LATENCY_BUCKETS,
)
QUOTES = Counter(
    "orderengine_router_quotes_total",
    "Quote requests by outcome (ok, invalid, not_found, no_route, unavailable, error).",
    ["outcome"],
)
_OUTCOMES: dict[type[Exception], str] = {
    InvalidArgument: "invalid",
    NotFound: "not_found",
    FailedPrecondition: "no_route",
    Unavailable: "unavailable",
}
_QUOTES = {name: QUOTES.labels(name) for name in ("ok", "error", *_OUTCOMES.values())}


def _check_mint(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument("is required", field)
    try:
        Pubkey.from_string(value)
    except ValueError:
        raise InvalidArgument("is not a valid base58 address", field) from None


def validate(request: router_pb2.QuoteRequest) -> None:
    _check_mint(request.input_mint, "input_mint")
    _check_mint(request.output_mint, "output_mint")
    if request.input_mint == request.output_mint:
        raise InvalidArgument("must differ from input_mint", "output_mint")
    if request.amount_in and request.amount_out:
        raise InvalidArgument("give amount_in (exact in) or amount_out (exact out), not both", "amount_out")
    if request.amount_in == 0 and request.amount_out == 0:
        raise InvalidArgument("must be greater than zero (or give amount_out)", "amount_in")
    if not 1 <= request.slippage_bps <= 5000:
        raise InvalidArgument("must be between 1 and 5000", "slippage_bps")


def to_response(request_id: str, choice: RouteChoice, slot: int) -> router_pb2.QuoteResponse:
    return router_pb2.QuoteResponse(
        request_id=request_id,
        slot=slot,
        quotes=[
            types_pb2.VenueQuote(
                venue=q.venue,
                pool=q.pool,
                amount_in=q.amount_in,
                amount_out=q.amount_out,
                fee=q.fee,
                price_impact_bps=q.price_impact_bps,
                error=q.error,
            )
            for q in choice.quotes
        ],
        route=types_pb2.Route(
            legs=[
                types_pb2.RouteLeg(
                    venue=leg.venue,
                    pool=leg.pool,
                    amount_in=leg.amount_in,
                    amount_out=leg.amount_out,
                    min_amount_out=leg.min_amount_out,
                    price_impact_bps=leg.price_impact_bps,
                    fee=leg.fee,
                    exact_out=leg.exact_out,
                    max_amount_in=leg.max_amount_in,
                )
                for leg in choice.legs
            ],
            amount_out=choice.amount_out,
            min_amount_out=choice.min_amount_out,
            price_impact_bps=choice.price_impact_bps,
            fee=sum(leg.fee for leg in choice.legs),
            exact_out=choice.exact_out,
            max_amount_in=choice.max_amount_in,
        ),
    )


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, book: PoolBook, split_min_impact_bps: int = 10, split_min_gain_bps: int = 1) -> None:
        self.book = book
        self.learner = PairLearner(book)  # a pair with no known pool: look it up on chain
        self.split_min_impact_bps = split_min_impact_bps
        self.split_min_gain_bps = split_min_gain_bps
        self.latencies_ms: list[float] = []

    async def quote(self, request: router_pb2.QuoteRequest) -> router_pb2.QuoteResponse:
        """One quote, timed and counted; every log line under it carries the order id."""
        token = order_id_var.set(request.order_id or None)
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._quote(request)
            outcome = "ok"
            return response
        except (InvalidArgument, NotFound, FailedPrecondition, Unavailable) as exc:
            outcome = _OUTCOMES[type(exc)]
            raise
        finally:
            QUOTE_SECONDS.observe(time.perf_counter() - started)
            _QUOTES[outcome].inc()
            order_id_var.reset(token)

    async def _quote(self, request: router_pb2.QuoteRequest) -> router_pb2.QuoteResponse:
        validate(request)
        try:
            snap = await self.book.snapshot()
        except ChainError as exc:
            raise Unavailable(f"pool state unavailable: {exc}") from None
        if not snap.pools_for(request.input_mint, request.output_mint) and await self.learner.learn(
            request.input_mint, request.output_mint
        ):
            try:
                snap = await self.book.snapshot()  # pools created since start, now in the book
            except ChainError as exc:
                raise Unavailable(f"pool state unavailable: {exc}") from None
        started = time.perf_counter()
        try:
            choice = (choose_route_exact_out if request.amount_out else choose_route)(
                snap,
                request.input_mint,
                request.output_mint,
                request.amount_out or request.amount_in,
                request.slippage_bps,
                self.split_min_impact_bps,
                self.split_min_gain_bps,
            )
        except NoRoute as exc:
            if exc.not_found:
                raise NotFound(str(exc)) from None
            if exc.too_small:  # not transient: the same amount buys nothing on the next attempt too
                raise InvalidArgument(str(exc), field="amount_in") from None
            raise FailedPrecondition(str(exc)) from None
        elapsed = (time.perf_counter() - started) * 1000
        if len(self.latencies_ms) < 100_000:
            self.latencies_ms.append(elapsed)
        if log.isEnabledFor(logging.DEBUG):  # a per-order line: built only when it is shown
            log.debug(
                "route chosen",
                extra={
                    "slot": snap.slot,
                    "amount_in": request.amount_in,
                    "quotes": [
                        {"venue": q.venue, "pool": q.pool, "out": q.amount_out, "error": q.error or None}
                        for q in choice.quotes
                    ],
                    "legs": [
                        {"venue": leg.venue, "in": leg.amount_in, "out": leg.amount_out}
                        for leg in choice.legs
                    ],
                    "quote_ms": round(elapsed, 3),
                },
            )
        return to_response(request.request_id, choice, snap.slot)

    async def Quote(
        self,
        request: router_pb2.QuoteRequest,
        context: grpc.aio.ServicerContext[router_pb2.QuoteRequest, router_pb2.QuoteResponse],
    ) -> router_pb2.QuoteResponse:
        return await self.quote(request)

    async def WatchPools(
        self,
        request: router_pb2.WatchPoolsRequest,
        context: grpc.aio.ServicerContext[router_pb2.WatchPoolsRequest, router_pb2.WatchPoolsResponse],
    ) -> router_pb2.WatchPoolsResponse:
        return await watch_pools(self.book, request)

    async def QuoteStream(
        self,
        request_iterator: AsyncIterator[router_pb2.QuoteRequest],
        context: grpc.aio.ServicerContext[router_pb2.QuoteRequest, router_pb2.QuoteStreamResponse],
    ) -> AsyncIterator[router_pb2.QuoteStreamResponse]:
        async for ready in multiplex(singles(request_iterator), self._quote_one):
            for response in ready:
                yield response

    async def QuoteBatches(
        self,
        request_iterator: AsyncIterator[router_pb2.QuoteBatch],
        context: grpc.aio.ServicerContext[router_pb2.QuoteBatch, router_pb2.QuoteResponseBatch],
    ) -> AsyncIterator[router_pb2.QuoteResponseBatch]:
        """QuoteStream with many requests and responses per message: the ones ready together leave
        together."""

        async def groups() -> AsyncIterator[list[router_pb2.QuoteRequest]]:
            async for batch in request_iterator:
                yield list(batch.requests)

        async for ready in multiplex(groups(), self._quote_one):
            yield router_pb2.QuoteResponseBatch(responses=ready)

    async def _quote_one(
        self, req: router_pb2.QuoteRequest, emit: Callable[[router_pb2.QuoteStreamResponse], None]
    ) -> None:
        try:
            resp = await self.quote(req)
            emit(router_pb2.QuoteStreamResponse(request_id=req.request_id, response=resp))
        except (InvalidArgument, NotFound, FailedPrecondition, Unavailable) as exc:
            emit(
                router_pb2.QuoteStreamResponse(
                    request_id=req.request_id,
                    error_code=exc.code.value[0],
                    error_message=exc.client_message(),
                )
            )
        except Exception:  # noqa: BLE001 - one request's crash is that request's alone
            log.exception("quote failed")
            emit(
                router_pb2.QuoteStreamResponse(
                    request_id=req.request_id,
                    error_code=grpc.StatusCode.INTERNAL.value[0],
                    error_message="internal error",
                )
            )
