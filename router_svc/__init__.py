"""Router: reads pools from the chain, quotes every venue, chooses the route."""

import common  # noqa: F401 - gRPC's I/O is chosen before anything loads grpc (common/__init__.py)
