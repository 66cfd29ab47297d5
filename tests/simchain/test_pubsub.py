"""signatureSubscribe over the node's WebSocket: one notification when the transaction reaches the
commitment, then the subscription is gone; logsSubscribe for every transaction naming an address,
for as long as it lasts; malformed requests are answered with errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair

from simchain.server import Running
from tests.simchain.conftest import rpc
from tests.simchain.helpers import blockhash, memo, send, sign


def ws_url(chain: Running) -> str:
    return chain.url.replace("http://", "ws://")


async def call(ws: Any, id_: int, method: str, params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]


async def nothing_within(ws: Any, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def no_subscriptions_left(chain: Running) -> None:
    """The node forgets a closed socket's subscriptions (within a second)."""
    for _ in range(50):
        if len(chain.node.pubsub) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(chain.node.pubsub) == 0


async def test_notified_once_when_confirmed_then_gone(
    chain: Running, client: AsyncClient, wallet: Keypair
) -> None:
    tx = sign(wallet, [memo(wallet.pubkey(), "pubsub")], await blockhash(client))
    signature = str(tx.signatures[0])
    async with websockets.connect(ws_url(chain)) as ws:
        ack = await call(ws, 1, "signatureSubscribe", [signature, {"commitment": "confirmed"}])
        sub = ack["result"]
        assert isinstance(sub, int)
        assert await nothing_within(ws, 0.2)  # nothing before it lands
        await send(client, tx)
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert note["method"] == "signatureNotification"
        assert note["params"]["subscription"] == sub
        assert note["params"]["result"]["value"] == {"err": None}
        assert note["params"]["result"]["context"]["slot"] >= 0
        # one notification, then the subscription ended by itself
        assert (await call(ws, 2, "signatureUnsubscribe", [sub]))["result"] is False
        assert len(chain.node.pubsub) == 0


async def test_already_landed_is_answered_at_once_and_finalized_waits_for_depth(
    chain: Running, client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    tx = sign(wallet, [memo(wallet.pubkey(), "landed first")], await blockhash(client))
    signature = str(await send(client, tx))
    async with websockets.connect(ws_url(chain)) as ws:
        confirmed = await call(ws, 1, "signatureSubscribe", [signature, {"commitment": "confirmed"}])
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))  # after its own response
        assert note["params"]["subscription"] == confirmed["result"]
        finalized = await call(ws, 2, "signatureSubscribe", [signature, {"commitment": "finalized"}])
        assert await nothing_within(ws, 0.2)
        await rpc(http, "simWarpSlots", [{"n": 31}])
        assert await nothing_within(ws, 0.2)  # 31 deep: confirmed, not finalized
        await rpc(http, "simWarpSlots", [{"n": 1}])
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert note["params"]["subscription"] == finalized["result"]


async def test_status_lag_delays_the_notification(
    chain: Running, client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    await rpc(http, "simWarpSlots", [{"n": 5}])  # a lag is measured back from the tip
    await rpc(http, "simSetFaults", [{"statusLagSlots": 2}])
    tx = sign(wallet, [memo(wallet.pubkey(), "lagging")], await blockhash(client))
    signature = str(tx.signatures[0])
    async with websockets.connect(ws_url(chain)) as ws:
        await call(ws, 1, "signatureSubscribe", [signature, {"commitment": "confirmed"}])
        await send(client, tx, skip_preflight=True)
        assert await nothing_within(ws, 0.2)
        await rpc(http, "simWarpSlots", [{"n": 2}])
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert note["method"] == "signatureNotification"


async def test_unsubscribe_and_closing_the_socket_forget_subscriptions(
    chain: Running, wallet: Keypair
) -> None:
    signature = str(Keypair().sign_message(b"never sent"))
    async with websockets.connect(ws_url(chain)) as ws:
        first = (await call(ws, 1, "signatureSubscribe", [signature]))["result"]
        await call(ws, 2, "signatureSubscribe", [signature, {"commitment": "processed"}])
        assert len(chain.node.pubsub) == 2
        assert (await call(ws, 3, "signatureUnsubscribe", [first]))["result"] is True
        assert (await call(ws, 4, "signatureUnsubscribe", [first]))["result"] is False
    await no_subscriptions_left(chain)


async def test_malformed_requests_get_errors_naming_the_problem(chain: Running) -> None:
    async with websockets.connect(ws_url(chain)) as ws:
        await ws.send("{not json")
        assert json.loads(await ws.recv())["error"]["code"] == -32700
        await ws.send(json.dumps({"id": 1, "method": "signatureSubscribe"}))
        assert json.loads(await ws.recv())["error"]["code"] == -32600
        cases: list[tuple[str, Any, str]] = [
            ("signatureSubscribe", [], "expected"),
            ("signatureSubscribe", ["not-a-signature"], "signature"),
            ("signatureSubscribe", [str(Keypair().sign_message(b"x")), {"commitment": "soon"}], "commitment"),
            ("signatureSubscribe", [str(Keypair().sign_message(b"x")), "confirmed"], "config"),
            ("signatureUnsubscribe", ["one"], "subscription id"),
        ]
        for i, (method, params, word) in enumerate(cases):
            reply = await call(ws, i + 10, method, params)
            assert reply["error"]["code"] == -32602, (method, params)
            assert word in reply["error"]["message"], reply
            assert reply["id"] == i + 10
        reply = await call(ws, 99, "accountSubscribe", [])
        assert reply["error"]["code"] == -32601
        address = str(Keypair().pubkey())
        cases = [
            ("logsSubscribe", [], "expected"),
            ("logsSubscribe", ["all"], "mentions"),
            ("logsSubscribe", [{"mentions": []}], "mentions"),
            ("logsSubscribe", [{"mentions": [address, address]}], "mentions"),
            ("logsSubscribe", [{"mentions": ["not-an-address"]}], "address"),
            ("logsSubscribe", [{"mentions": [address]}, {"commitment": "soon"}], "commitment"),
            ("logsUnsubscribe", [-1], "subscription id"),
        ]
        for i, (method, params, word) in enumerate(cases):
            reply = await call(ws, i + 100, method, params)
            assert reply["error"]["code"] == -32602, (method, params)
            assert word in reply["error"]["message"], reply


async def test_logs_of_every_transaction_naming_the_address_until_unsubscribed(
    chain: Running, client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(chain)) as ws:
        mentions = {"mentions": [str(wallet.pubkey())]}
        ack = await call(ws, 1, "logsSubscribe", [mentions, {"commitment": "confirmed"}])
        sub = ack["result"]
        assert isinstance(sub, int)
        other = Keypair()  # a transaction that does not name the wallet is not pushed
        await rpc(http, "requestAirdrop", [str(other.pubkey()), 10**9])
        assert await nothing_within(ws, 0.2)
        signatures = []
        for text in ("first", "second"):
            tx = sign(wallet, [memo(wallet.pubkey(), text)], await blockhash(client))
            signatures.append(str(await send(client, tx)))
            note = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert note["method"] == "logsNotification"
            assert note["params"]["subscription"] == sub
            value = note["params"]["result"]["value"]
            assert value["signature"] == signatures[-1] and value["err"] is None
            assert any(text in line for line in value["logs"]), value["logs"]
            assert note["params"]["result"]["context"]["slot"] >= 0
        assert len(chain.node.pubsub) == 1  # still subscribed after its notifications
        assert (await call(ws, 2, "logsUnsubscribe", [sub]))["result"] is True
        assert len(chain.node.pubsub) == 0
        tx = sign(wallet, [memo(wallet.pubkey(), "after")], await blockhash(client))
        await send(client, tx)
        assert await nothing_within(ws, 0.2)


async def test_logs_wait_for_their_commitment_and_a_status_lag(
    chain: Running, client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    await rpc(http, "simWarpSlots", [{"n": 5}])  # a lag is measured back from the tip
    async with websockets.connect(ws_url(chain)) as ws:
        mentions = {"mentions": [str(wallet.pubkey())]}
        finalized = (await call(ws, 1, "logsSubscribe", [mentions]))["result"]  # default: finalized
        await rpc(http, "simSetFaults", [{"statusLagSlots": 2}])
        confirmed = (await call(ws, 2, "logsSubscribe", [mentions, {"commitment": "confirmed"}]))["result"]
        tx = sign(wallet, [memo(wallet.pubkey(), "lagging")], await blockhash(client))
        await send(client, tx, skip_preflight=True)
        assert await nothing_within(ws, 0.2)
        await rpc(http, "simWarpSlots", [{"n": 2}])
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert note["params"]["subscription"] == confirmed
        await rpc(http, "simSetFaults", [{"statusLagSlots": 0}])
        await rpc(http, "simWarpSlots", [{"n": 29}])
        assert await nothing_within(ws, 0.2)  # 31 deep: not finalized yet
        await rpc(http, "simWarpSlots", [{"n": 1}])
        note = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert note["params"]["subscription"] == finalized
    await no_subscriptions_left(chain)  # the socket closed: its subscriptions are gone
