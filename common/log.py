"""One logging set-up for every service: JSON lines on stdout, `order_id` from a contextvar."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

order_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("order_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        order_id = getattr(record, "order_id", None) or order_id_var.get()
        if order_id:
            entry["order_id"] = order_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "order_id" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup_logging(service: str, level: str = "info") -> None:
    """Routes every logger to one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "asyncio", "uvicorn.access", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
