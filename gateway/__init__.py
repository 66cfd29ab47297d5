"""The edge (Starlette HTTP + WebSocket API) and the worker that drives orders."""
