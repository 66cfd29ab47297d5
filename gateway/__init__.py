"""The edge (Starlette HTTP + WebSocket API) and the worker that drives orders."""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
