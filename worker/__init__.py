"""The worker: drives orders from the Redis job stream through their lifecycle (`python -m worker`)."""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
