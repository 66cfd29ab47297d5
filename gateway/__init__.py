"""The edge: the Starlette HTTP + WebSocket API (the worker that drives orders is `worker/`)."""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
