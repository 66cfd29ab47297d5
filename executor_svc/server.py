"""The executor process: wallet, chain client, persistence channel and the Executor gRPC service.

`serve(settings)` starts everything and returns a `Running` (tests call it on port 0);
`main()` runs it until SIGTERM/SIGINT and shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc

from common.chain import ChainClient, ChainError
from common.chain_pubsub import SignatureFeed
from common.grpc_client import open_channel, open_stream_channel
from common.grpc_server import GrpcService, run_service, start_grpc_service
from common.markets import MarketsError, load_markets
from common.settings import Settings
from executor_svc.builder import TxBuilder
from executor_svc.sender import Sender
from executor_svc.servicer import SERVICE_NAME, ExecutorServicer
from executor_svc.wallet import SIM_AIRDROP_LAMPORTS, KeySettings, Wallet, load_key_settings, load_wallet
from orderengine.v1 import executor_pb2_grpc, orders_pb2_grpc

log = logging.getLogger(__name__)

FUNDING_TIMEOUT_S = 30.0


@dataclass
class Running:
    """A started executor. `stop()` is graceful and idempotent."""

    settings: Settings
    service: GrpcService
    chain: ChainClient
    channel: grpc.aio.Channel
    stream_channel: grpc.aio.Channel
    servicer: ExecutorServicer
    wallet: Wallet
    feed: SignatureFeed | None = None
    _stopped: bool = False

    @property
    def port(self) -> int:
        return self.service.port

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, let in-flight calls finish for `grace` s (default GRPC_GRACE_S),
        then close the persistence channel and the chain client. A transaction still in flight stays
        stored and is resumed by the next attempt."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.service.stop(self.settings.grpc_grace_s if grace is None else grace)
        finally:
            await self.servicer.close()
            await self.channel.close()
            await self.stream_channel.close()
            await self.chain.close()
            if self.feed is not None:
                await self.feed.close()


async def fund_sim_wallet(chain: ChainClient, wallet: Wallet, timeout_s: float = FUNDING_TIMEOUT_S) -> None:
    """Airdrops SOL to the ephemeral wallet (the simulated chain also funds its token accounts) and
    waits until the airdrop is confirmed. Retries while the chain is not reachable yet."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            signature = await chain.request_airdrop(wallet.pubkey, SIM_AIRDROP_LAMPORTS)
            break
        except ChainError as exc:
            if not exc.retryable or time.monotonic() + delay > deadline:
                raise
            log.info("simulated chain not ready; retrying the airdrop", extra={"error": exc.message})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    while time.monotonic() < deadline:
        status = await chain.signature_status(signature)
        if status is not None and status.err is None and status.reached(chain.commitment):
            log.info("wallet funded", extra={"wallet": str(wallet.pubkey), "lamports": SIM_AIRDROP_LAMPORTS})
            return
        if status is not None and status.err is not None:
            raise ChainError(f"requestAirdrop failed on chain: {status.err}", retryable=False)
        await asyncio.sleep(0.02)
    raise ChainError("requestAirdrop was not confirmed in time", retryable=True)


async def serve(settings: Settings, keys: KeySettings | None = None) -> Running:
    """Loads the markets file and the wallet, opens the chain client and the persistence channel,
    funds the wallet on CHAIN=sim, and starts the gRPC server on settings.executor_addr (port 0
    picks a free port). `keys`: where the key comes from (None: no key, an ephemeral wallet on
    CHAIN=sim)."""
    markets = load_markets(settings.markets_path)
    wallet = load_wallet(settings, KeySettings() if keys is None else keys)
    chain = ChainClient.from_settings(settings)
    channel = open_channel(settings.persistence_addr, settings, "executor")
    stream_channel, stream_metadata = open_stream_channel(settings.persistence_addr, settings, "executor")
    try:
        if settings.chain == "sim":
            await fund_sim_wallet(chain, wallet)
        builder = TxBuilder(chain, markets, wallet, settings)
        feed = (
            SignatureFeed(settings.ws_url, settings.commitment, str(wallet.pubkey))
            if settings.confirm_push
            else None
        )
        servicer = ExecutorServicer(
            builder,
            Sender(chain, settings, feed),
            orders_pb2_grpc.OrdersStub(channel),
            markets,
            wallet,
            settings,
            (orders_pb2_grpc.OrdersStub(stream_channel), stream_metadata),
        )

        def register(server: grpc.aio.Server) -> None:
            executor_pb2_grpc.add_ExecutorServicer_to_server(servicer, server)

        service = await start_grpc_service(settings.executor_addr, register, [SERVICE_NAME], settings)
    except BaseException:
        await channel.close()
        await stream_channel.close()
        await chain.close()
        raise
    log.info(
        "executor serving",
        extra={
            "port": service.port,
            "wallet": str(wallet.pubkey),
            "cluster": markets.cluster,
            "chain": settings.chain,
        },
    )
    return Running(settings, service, chain, channel, stream_channel, servicer, wallet, feed)


def main() -> None:
    """`python -m executor_svc`: the only process that reads the wallet key (PRIVATE_KEY or
    KEYPAIR_PATH, from its environment and `.env`)."""

    async def serve_with_key(settings: Settings) -> Running:
        return await serve(settings, load_key_settings())

    run_service("executor", serve_with_key, {MarketsError: "markets file", ChainError: "chain unavailable"})
