"""MicroBatcher's linger (the gateway's CREATE_BATCH_MS, the worker's BATCH_LINGER_MS): under load
(another flush on the wire, or the last batch held more than one item) a batch waits for more items
up to the linger, and leaves at once when it is full; an idle batcher sends a lone item at once."""

from __future__ import annotations

import asyncio

from common.batching import MicroBatcher


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        return [i * 10 for i in items]


async def test_without_linger_an_idle_batcher_sends_at_once() -> None:
    rec = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("t", rec.flush, max_batch=100, flushers=1)
    first = asyncio.create_task(batcher.submit(1))
    for _ in range(5):
        await asyncio.sleep(0)
    assert list(await asyncio.gather(first, batcher.submit(2))) == [10, 20]
    assert rec.batches == [[1], [2]]
    await batcher.stop()


async def _loaded(batcher: MicroBatcher[int, int]) -> None:
    """Two items at once: a batch of two, as under load."""
    assert list(await asyncio.gather(batcher.submit(-1), batcher.submit(-2))) == [-10, -20]


async def test_an_idle_batcher_sends_a_lone_item_without_lingering() -> None:
    rec = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("t", rec.flush, max_batch=100, flushers=1, linger_s=0.05)
    for item in (1, 2):
        first = asyncio.create_task(batcher.submit(item))
        for _ in range(5):
            await asyncio.sleep(0)
        assert rec.batches[-1] == [item]  # sent at once, no linger
        assert await first == item * 10
        await asyncio.sleep(0.1)  # idle: longer than the linger since the last item
    await batcher.stop()


async def test_an_item_within_the_linger_of_the_last_one_lingers() -> None:
    rec = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("t", rec.flush, max_batch=100, flushers=1, linger_s=0.2)
    assert await batcher.submit(1) == 10  # idle: sent at once
    second = asyncio.create_task(batcher.submit(2))  # right after it: that rate is load
    for _ in range(5):
        await asyncio.sleep(0)
    assert rec.batches == [[1]]  # still lingering
    assert list(await asyncio.gather(second, batcher.submit(3))) == [20, 30]
    assert rec.batches == [[1], [2, 3]]
    await batcher.stop()


async def test_under_load_linger_lets_later_items_join_the_batch() -> None:
    rec = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("t", rec.flush, max_batch=100, flushers=1, linger_s=0.2)
    await _loaded(batcher)
    first = asyncio.create_task(batcher.submit(1))
    for _ in range(5):
        await asyncio.sleep(0)
    assert rec.batches == [[-1, -2]]  # still lingering
    assert list(await asyncio.gather(first, batcher.submit(2))) == [10, 20]
    assert rec.batches == [[-1, -2], [1, 2]]
    assert await batcher.submit(3) == 30  # lingered, alone: a batch of one
    await asyncio.sleep(0.3)  # and nothing for longer than the linger: the load is gone
    fourth = asyncio.create_task(batcher.submit(4))
    for _ in range(5):
        await asyncio.sleep(0)
    assert rec.batches[-1] == [4]  # sent at once
    assert await fourth == 40
    await batcher.stop()


async def test_a_full_batch_leaves_without_waiting_for_the_linger() -> None:
    rec = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("t", rec.flush, max_batch=4, flushers=1, linger_s=60)
    await _loaded(batcher)
    first = asyncio.create_task(batcher.submit(0))
    for _ in range(5):
        await asyncio.sleep(0)
    async with asyncio.timeout(10):  # far below the 60 s linger
        results = await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 8)))
        assert results == [i * 10 for i in range(8)]
        assert rec.batches == [[-1, -2], [0, 1, 2, 3], [4, 5, 6, 7]]
        await batcher.stop()


async def test_an_item_that_comes_while_a_batch_is_on_the_wire_lingers() -> None:
    gate = asyncio.Event()
    rec = Recorder()

    async def flush(items: list[int]) -> list[int]:
        if items == [1]:
            await gate.wait()  # the first batch stays on the wire
        return await rec.flush(items)

    batcher: MicroBatcher[int, int] = MicroBatcher("t", flush, max_batch=100, flushers=2, linger_s=0.2)
    first = asyncio.create_task(batcher.submit(1))  # idle: sent at once
    for _ in range(5):
        await asyncio.sleep(0)
    second = asyncio.create_task(batcher.submit(2))  # the other flusher takes it, and lingers
    for _ in range(5):
        await asyncio.sleep(0)
    assert list(await asyncio.gather(second, batcher.submit(3))) == [20, 30]
    assert rec.batches == [[2, 3]]
    gate.set()
    assert await first == 10
    await batcher.stop()
