"""StreamLink against a real gRPC server (port 0): a stream its peer breaks is LinkBroken, and a peer
that went away reads as UNAVAILABLE whichever way gRPC reports it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import grpc
import pytest

from common.stream_link import LinkBroken, StreamLink


async def _serve(code: grpc.StatusCode) -> tuple[grpc.aio.Server, int]:
    async def handler(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        async for _ in requests:
            await context.abort(code, "the peer's end")

    method = grpc.stream_stream_rpc_method_handler(handler)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Link", {"Go": method}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _link(channel: grpc.aio.Channel) -> StreamLink[bytes, bytes, bytes, bytes]:
    def unpack(message: bytes) -> Iterable[bytes]:
        return [message]

    return StreamLink(
        "test",
        lambda: channel.stream_stream("/t.Link/Go")(),
        lambda batch: b"".join(batch),
        unpack,
        lambda response: response.decode(),
    )


@pytest.mark.parametrize(
    ("ended_with", "seen"),
    [
        # a peer killed mid-stream: gRPC may say INTERNAL (connection reset) or UNKNOWN
        (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        # a refusal is not an outage: kept as it is
        (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_a_broken_stream_reads_as_the_peer_gone(
    ended_with: grpc.StatusCode, seen: grpc.StatusCode
) -> None:
    server, port = await _serve(ended_with)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            link = _link(channel)
            with pytest.raises(LinkBroken) as broken:
                await link.first("k", b"k")
            assert broken.value.code == seen
            await link.close()
    finally:
        await server.stop(None)
