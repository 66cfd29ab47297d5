"""`python -m gateway`: the HTTP + WebSocket edge under uvicorn."""

from __future__ import annotations

from types import FrameType

import uvicorn
from starlette.applications import Starlette

from common.log import setup_logging
from common.markets import load_markets
from common.metrics import start_exporter
from common.parent import die_with_parent
from common.settings import load_settings
from gateway import wsproto
from gateway.app import create_app


def main() -> None:
    die_with_parent()
    settings = load_settings()
    setup_logging("gateway", settings.log_level)
    start_exporter(settings, "gateway")
    markets = load_markets(settings.markets_path)
    app = create_app(settings, markets)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools" if _has_httptools() else "h11",
        ws=wsproto.PROTOCOL,  # websockets-sansio, plus the fan-out's frame writer
        log_config=None,
        access_log=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws_max_size=64 * 1024,
        # No permessage-deflate: each status is serialized once and the same bytes go to every
        # socket that follows the order (gateway/fanout.py); compressing them per socket would cost
        # CPU per socket per event, for messages of a few hundred bytes.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    GracefulServer(config, app).run()


class GracefulServer(uvicorn.Server):
    """uvicorn that marks the app as stopping the moment SIGTERM/SIGINT arrives: /healthz answers
    503 from then on (load balancers stop sending), new connections are refused, in-flight
    requests get timeout_graceful_shutdown to finish, open WebSockets are closed with 1012."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.stopping = True
        super().handle_exit(sig, frame)


def _has_httptools() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
