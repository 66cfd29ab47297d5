"""Code every process shares.

Importing any of it first chooses gRPC's I/O, which gRPC reads once, when it loads: every package
that is a gRPC process of its own (gateway, worker, router_svc, executor_svc, persistence_svc)
imports `common` in its `__init__`, before anything can import grpc.

gRPC runs on its older I/O manager (epoll, the default until the EventEngine replaced it) and not
on the EventEngine, whose client, listener and callback completion queue each add a hop between
threads to every message. Measured on a 2-core machine, one `grpc.aio` stream round trip between
two processes: 150-175 µs of CPU on the client and 120-126 µs on the server, 250-280 µs of wall
time, with the EventEngine; 86 and 75 µs, 144 µs with this (`make bench`: 4-6 % less CPU per order
at 20 orders/s). A GRPC_EXPERIMENTS of the environment is left as it is.
"""

import os

GRPC_IO = "-event_engine_client,-event_engine_listener,-event_engine_callback_cq"
os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_IO)
