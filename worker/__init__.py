"""The worker: drives orders from the Redis job stream through their lifecycle (`python -m worker`)."""
