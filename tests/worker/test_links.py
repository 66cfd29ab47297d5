"""The worker's long-lived streams under concurrency: many orders at once share one stream."""

from __future__ import annotations

import asyncio

from common.grpc_client import open_stream_channel
from common.markets import load_markets
from orderengine.v1 import router_pb2, router_pb2_grpc
from tests.engine import Engine
from tests.worker.test_driver import eng  # noqa: F401 - the fixture
from worker.links import RouterLink


async def test_concurrent_requests_share_one_stream_and_never_break_it(eng: Engine) -> None:  # noqa: F811
    markets = load_markets(eng.settings.markets_path)
    sol, usdc = markets.token("SOL"), markets.token("USDC")
    assert sol and usdc
    channel, auth = open_stream_channel(eng.settings.router_addr, eng.settings, "worker")
    link = RouterLink(router_pb2_grpc.RouterStub(channel), auth)
    try:
        requests = [
            router_pb2.QuoteRequest(
                request_id=f"r{i}",
                input_mint=sol.mint,
                output_mint=usdc.mint,
                amount_in=10**7 * (i + 1),
                slippage_bps=50,
            )
            for i in range(200)
        ]
        quotes = await asyncio.gather(*(link.quote(r) for r in requests))
        assert [q.request_id for q in quotes] == [r.request_id for r in requests]
        assert all(q.route.amount_out > 0 for q in quotes)
        assert link.streams_opened == 1  # 200 concurrent writers, one stream, never torn down
        # requests made together leave together: a few messages, not one per request
        assert link.requests_written == 200 and link.messages_written <= 10, link.messages_written
    finally:
        await link.close()
        await channel.close()
