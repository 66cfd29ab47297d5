"""The server side of a many-orders stream: requests run concurrently, results leave together.

`multiplex` takes the requests of a bidirectional stream (one or many per message), runs each with
`handle` as its own task, and yields the results in lists: whatever is ready when the stream is
written leaves in one go, so a batched stream (ExecuteBatches, QuoteBatches) sends one message per
write however many orders it carries. When the caller closes its side, the requests already taken
are finished; when the caller goes away, they are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, TypeVar

Req = TypeVar("Req")
Resp = TypeVar("Resp")

Emit = Callable[[Resp], None]


async def multiplex(
    request_groups: AsyncIterator[Iterable[Req]],
    handle: Callable[[Req, Callable[[Resp], None]], Coroutine[Any, Any, None]],
) -> AsyncIterator[list[Resp]]:
    out: asyncio.Queue[Resp | None] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()

    async def read() -> None:
        async for group in request_groups:
            for request in group:
                task = asyncio.create_task(handle(request, out.put_nowait))
                running.add(task)
                task.add_done_callback(running.discard)
        while running:  # the caller closed its side: finish what it asked for
            await asyncio.gather(*running, return_exceptions=True)
        out.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        done = False
        while not done:
            first = await out.get()
            if first is None:
                break
            ready = [first]
            while not out.empty():
                item = out.get_nowait()
                if item is None:
                    done = True
                    break
                ready.append(item)
            yield ready
    finally:
        reader.cancel()
        for task in list(running):
            task.cancel()


async def singles(requests: AsyncIterator[Req]) -> AsyncIterator[list[Req]]:
    """A stream of one request per message, as groups for `multiplex`."""
    async for request in requests:
        yield [request]
