"""`python -m router_svc`: the Router gRPC service."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.chain import ChainClient, ChainError
from common.grpc_server import GrpcService, run_service, start_grpc_service
from common.markets import Markets, MarketsError, load_markets
from common.settings import Settings
from orderengine.v1 import router_pb2, router_pb2_grpc
from router_svc.pools import PoolBook
from router_svc.servicer import RouterServicer

log = logging.getLogger(__name__)
SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name


@dataclass
class Running:
    service: GrpcService
    chain: ChainClient
    servicer: RouterServicer
    settings: Settings

    @property
    def port(self) -> int:
        return self.service.port

    async def stop(self) -> None:
        await self.service.stop(self.settings.grpc_grace_s)
        await self.chain.close()


async def serve(settings: Settings, markets: Markets | None = None) -> Running:
    markets = markets or load_markets(settings.markets_path)
    chain = ChainClient.from_settings(settings)
    refresh_s = settings.pool_refresh_ms / 1000
    servicer = RouterServicer(
        PoolBook(chain, markets, refresh_s, settings.cache_renew_ahead),
        settings.split_min_impact_bps,
        settings.split_min_gain_bps,
    )
    service = await start_grpc_service(
        settings.router_addr,
        lambda server: router_pb2_grpc.add_RouterServicer_to_server(servicer, server),
        [SERVICE_NAME],
        settings,
    )
    log.info(
        "router listening",
        extra={"port": service.port, "pools": len(markets.pools), "cluster": markets.cluster},
    )
    return Running(service, chain, servicer, settings)


def main() -> None:
    run_service("router", serve, {MarketsError: "markets file", ChainError: "chain unavailable"})


if __name__ == "__main__":
    main()
