"""The engine's services started in-process on port 0 (real servers, real channels) for tests."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from common.settings import Settings


@dataclass
class Engine:
    settings: Settings
    sim: Any = None
    persistence: Any = None
    router: Any = None
    executor: Any = None
    started: list[Any] = field(default_factory=list)


@asynccontextmanager
async def engine(
    settings: Settings,
    *,
    persistence: bool = True,
    router: bool = True,
    executor: bool = True,
    sim_seed: int = 7,
) -> AsyncIterator[Engine]:
    """Starts simchain, then persistence, router and executor, each on a free port, wired together."""
    from simchain.server import start as start_sim

    settings = dataclasses.replace(settings, sim_port=0, sim_host="127.0.0.1", solana_rpc_url="")
    eng = Engine(settings)
    try:
        eng.sim = await start_sim(settings, seed=sim_seed)
        eng.started.append(eng.sim)
        settings = dataclasses.replace(settings, solana_rpc_url=eng.sim.url, sim_port=eng.sim.port)
        if persistence:
            from persistence_svc.server import serve as serve_persistence

            eng.persistence = await serve_persistence(
                dataclasses.replace(settings, persistence_addr="127.0.0.1:0")
            )
            eng.started.append(eng.persistence)
            settings = dataclasses.replace(settings, persistence_addr=f"127.0.0.1:{eng.persistence.port}")
        if router:
            from router_svc.server import serve as serve_router

            eng.router = await serve_router(dataclasses.replace(settings, router_addr="127.0.0.1:0"))
            eng.started.append(eng.router)
            settings = dataclasses.replace(settings, router_addr=f"127.0.0.1:{eng.router.port}")
        if executor:
            from executor_svc.server import serve as serve_executor

            eng.executor = await serve_executor(dataclasses.replace(settings, executor_addr="127.0.0.1:0"))
            eng.started.append(eng.executor)
            settings = dataclasses.replace(settings, executor_addr=f"127.0.0.1:{eng.executor.port}")
        eng.settings = settings
        yield eng
    finally:
        for svc in reversed(eng.started):
            await svc.stop()
