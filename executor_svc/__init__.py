"""executor_svc: holds the wallet key; builds, signs, sends and confirms swaps.

Served as gRPC `orderengine.v1.Executor`.
"""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
