"""The engine's command-line client (`python -m cli`): a client of the public HTTP + WebSocket contract,
like the page and any bot, so it lives beside the other clients and not inside the gateway."""
