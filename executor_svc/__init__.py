"""executor_svc: holds the wallet key; builds, signs, sends and confirms swaps.

Served as gRPC `orderengine.v1.Executor`.
"""
