"""persistence_svc: the only owner of PostgreSQL, served as gRPC `orderengine.v1.Orders`."""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
