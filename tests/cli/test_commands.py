"""`python -m cli` against the whole engine (subprocesses, simulated chain), and its resume
logic against a WebSocket server that drops the connection."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import websockets

from cli import commands as cli
from common.stack import Stack, free_port
from tests.stackutil import running_stack

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("cli-logs")) as s:
        yield s


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def order_count(stack: Stack) -> int:
    return len(httpx.get(f"{stack.url}/api/orders", params={"limit": 200}).json()["orders"])


def test_execute_shows_each_status_with_timings_then_the_result(stack: Stack) -> None:
    code, out, err = run_cli("execute", "SOL", "USDC", "1.5", "--slippage-bps", "100", "--url", stack.url)
    assert code == 0, (out, err)
    lines = out.splitlines()
    order_id = lines[0].split()[1].rstrip(":")
    assert lines[0] == f"Order {order_id}: 1.5 SOL → USDC, max slippage 100 bps"
    steps = [line.split() for line in lines if line.startswith("  ✓ ")]
    assert [s[1] for s in steps] == LIFECYCLE
    assert steps[0][3] == "start" and all(s[3].startswith("+") and s[4] in ("ms", "s") for s in steps[1:])
    assert "raydium_cpmm" in lines[2] and "meteora_dlmm" in lines[2]  # both venues' quotes when routing
    assert lines[6].startswith("Confirmed in ")
    result = {line[2:13].strip(): line[14:] for line in lines[7:]}  # "  <name, 11 wide> <value>"
    order = httpx.get(f"{stack.url}/api/orders/{order_id}").json()
    assert order["status"] == "confirmed"
    assert result["venue"] == order["dex"]
    assert result["amount out"] == f"{order['amountOut']} USDC"
    assert result["price"] == f"{order['executedPrice']} USDC per SOL"
    assert result["signature"] == order["txHash"]
    costs = order["costs"]
    assert result["fees"] == f"{costs['networkFee']} SOL network + {costs['priorityFee']} SOL priority"
    assert result["rent"] == f"{costs['rent']} SOL"
    sol, usdc = (c["change"] for c in costs["balanceChanges"])
    assert sol.startswith("-") and result["wallet"] == f"{sol} SOL, +{usdc} USDC"


def test_json_prints_one_line_per_event(stack: Stack) -> None:
    code, out, err = run_cli("execute", "USDC", "SOL", "25", "--json", "--url", stack.url)
    assert code == 0, (out, err)
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs[0]["type"] == "accepted" and docs[0]["status"] == "pending"
    events = docs[1:]
    assert [d["type"] for d in events] == ["status"] * 5
    assert [d["status"] for d in events] == LIFECYCLE
    assert [d["seq"] for d in events] == [1, 2, 3, 4, 5]
    assert {d["orderId"] for d in events} == {docs[0]["orderId"]}
    assert events[-1]["data"]["txHash"] == events[3]["data"]["signature"]
    assert err == ""


def test_a_failed_order_exits_1_with_its_reason(stack: Stack) -> None:
    # more SOL than the wallet has (and than the pools can take: the price-impact guard may stop it first)
    code, out, _ = run_cli("execute", "SOL", "USDC", "100000000", "--url", stack.url)
    assert code == 1, out
    assert "  ✗ failed" in out and "Failed in" in out
    order_id = out.split()[1].rstrip(":")
    reason = httpx.get(f"{stack.url}/api/orders/{order_id}", timeout=10).json()["failureReason"]
    assert reason and f"  reason      {reason}\n" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["SOL", "USDC", "-1"], "amount"),
        (["SOL", "USDC", "abc"], "amount"),
        (["XYZ", "USDC", "1"], "tokenIn"),
        (["SOL", "SOL", "1"], "tokenOut"),
        (["SOL", "USDC", "1", "--slippage-bps", "9000"], "slippageBps"),
    ],
)
def test_bad_input_exits_2_names_the_field_and_submits_nothing(
    stack: Stack, args: list[str], field: str
) -> None:
    before = order_count(stack)
    code, out, err = run_cli("execute", *args, "--url", stack.url)
    assert code == 2
    assert err.startswith(f"error: {field}: ") and out == ""
    code, out, _ = run_cli("execute", *args, "--url", stack.url, "--json")
    assert code == 2
    assert json.loads(out)["error"]["field"] == field
    assert order_count(stack) == before


def test_orders_list_and_show(stack: Stack) -> None:
    code, out, _ = run_cli("execute", "SOL", "USDT", "0.5", "--json", "--url", stack.url)
    assert code == 0
    order_id = json.loads(out.splitlines()[0])["orderId"]

    code, out, _ = run_cli("orders", "list", "--status", "confirmed", "--limit", "5", "--url", stack.url)
    assert code == 0
    rows = out.splitlines()[1:]
    assert order_id in rows[0] and rows[0].endswith("confirmed")  # newest first
    assert all(r.endswith("confirmed") for r in rows if not r.startswith("more:"))

    code, out, _ = run_cli("orders", "list", "--limit", "2", "--json", "--url", stack.url)
    page = json.loads(out)
    assert code == 0 and len(page["orders"]) == 2 and page["nextCursor"]

    code, out, _ = run_cli("orders", "show", order_id, "--url", stack.url)
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  ✓ ")] == LIFECYCLE
    assert "signature" in out and "venue" in out
    assert "  fees " in out and "  rent " in out and "  wallet " in out  # what the swap cost

    code, out, _ = run_cli("orders", "show", order_id, "--json", "--url", stack.url)
    assert code == 0 and json.loads(out)["orderId"] == order_id

    code, _, err = run_cli("orders", "show", "00000000-0000-4000-8000-000000000000", "--url", stack.url)
    assert code == 2 and err == "error: orderId: no such order\n"


def test_quote_then_execute_exactly_that_quote(stack: Stack) -> None:
    code, out, err = run_cli("quote", "SOL", "USDC", "1.5", "--slippage-bps", "80", "--url", stack.url)
    assert code == 0, (out, err)
    lines = out.splitlines()
    quote_id = lines[0].split()[1].rstrip(":")
    assert lines[0].startswith(f"Quote {quote_id}: 1.5 SOL → USDC, max slippage 80 bps (valid until ")
    assert {line.split()[0] for line in lines[1:3]} == {"raydium_cpmm", "meteora_dlmm"}
    assert lines[3].split()[0] == "route" and "price impact" in lines[3] and "fees" in lines[3]
    assert lines[4] == f"Execute it: python -m cli execute --quote-id {quote_id}"

    code, out, err = run_cli("execute", "--quote-id", quote_id, "--url", stack.url)
    assert code == 0, (out, err)
    order_id = out.splitlines()[0].split()[1].rstrip(":")
    assert out.splitlines()[0] == f"Order {order_id}: 1.5 SOL → USDC, max slippage 80 bps"
    order = httpx.get(f"{stack.url}/api/orders/{order_id}").json()
    assert order["status"] == "confirmed" and order["quoteId"] == quote_id

    code, out, _ = run_cli("quote", "SOL", "USDC", "2", "--json", "--url", stack.url)
    assert code == 0 and json.loads(out)["amountInRaw"] == "2000000000"
    code, out, err = run_cli(
        "execute", "--quote-id", "00000000-0000-4000-8000-000000000000", "--url", stack.url
    )
    assert code == 2 and err.startswith("error: quoteId: ") and out == ""
    code, _, err = run_cli("quote", "SOL", "USDC", "1", "--max-price-impact-bps", "0", "--url", stack.url)
    assert code == 2 and err.startswith("error: maxPriceImpactBps: ")


def test_a_limit_order_rests_and_is_cancelled_and_one_within_reach_lands(stack: Stack) -> None:
    code, out, err = run_cli(
        "execute", "SOL", "USDC", "1", "--limit-price", "100000", "--expires-in", "600", "--url", stack.url
    )
    assert code == 0, (out, err)
    lines = out.splitlines()
    order_id = lines[0].split()[1].rstrip(":")
    assert [line.split()[1] for line in lines if line.startswith("  ✓ ")] == ["pending", "open"]
    assert "limit at 100000 USDC, until " in out and "Open: it waits for its trigger until " in out
    code, out, _ = run_cli("orders", "cancel", order_id, "--url", stack.url)
    assert code == 0 and out == f"Cancelled {order_id}\n"
    code, _, err = run_cli("orders", "cancel", order_id, "--url", stack.url)
    assert code == 2 and err.startswith("error: orderId: the order is cancelled")

    code, out, err = run_cli(
        "execute", "SOL", "USDC", "0.5", "--limit-price", "1", "--wait", "--url", stack.url
    )
    assert code == 0, (out, err)
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("  ✓ ")]
    assert steps == ["pending", "open", "routing", *LIFECYCLE[1:]], out
    assert "triggered: market at" in out and "Confirmed in " in out


def test_a_sniper_order_rests_open_and_is_cancelled(stack: Stack) -> None:
    code, out, err = run_cli(
        "execute", "SOL", "NEW", "1", "--sniper", "--min-liquidity", "100000", "--max-price", "0.01",
        "--url", stack.url,
    )  # fmt: skip
    assert code == 0, (out, err)
    order_id = out.splitlines()[0].split()[1].rstrip(":")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  ✓ ")] == ["pending", "open"]
    assert "sniper: a pool with 100000 of the input, at most 0.01 per token, until " in out
    code, out, _ = run_cli("orders", "cancel", order_id, "--url", stack.url)
    assert code == 0 and out == f"Cancelled {order_id}\n"
    code, _, err = run_cli("execute", "SOL", "NEW", "1", "--sniper", "--url", stack.url)
    assert code == 2 and err.startswith("error: minLiquidity: "), err


def test_argument_errors_exit_2() -> None:
    for argv in (
        ["execute", "--quote-id", "q", "SOL", "USDC", "1"],  # a quote executes as quoted
        ["execute", "SOL", "USDC", "1", "--limit-price", "1", "--stop-price", "1"],
        ["execute", "SOL", "NEW", "1", "--sniper", "--limit-price", "1"],
        ["execute", "SOL", "NEW", "1", "--min-liquidity", "5"],  # only with --sniper
        ["execute", "--quote-id", "q", "--sniper"],
        ["execute", "SOL"],
        ["quote", "SOL", "USDC"],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2, argv
    with pytest.raises(SystemExit) as exited:
        cli.main(["orders", "list", "--status", "bogus"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["execute", "SOL", "USDC"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["orders", "list", "--limit", "0"])
    assert exited.value.code == 2
    assert run_cli("orders", "list", "--url", "ftp://x")[0] == 2


def test_the_spinner_names_the_next_step_of_a_market_order() -> None:
    assert [cli.next_step(s) for s in ["", *LIFECYCLE[:-1]]] == LIFECYCLE
    assert cli.next_step("confirmed") == cli.next_step("failed") == "the next step"


def test_an_unreachable_engine_exits_3() -> None:
    code, _, err = run_cli("orders", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "cannot reach the engine" in err


def test_the_module_runs_as_a_script(stack: Stack) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "execute", "SOL", "USDC", "0.1", "--json", "--url", stack.url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["status"] == "confirmed"


async def test_follow_resumes_after_a_dropped_socket_without_repeats() -> None:
    """The first socket dies after two events; the CLI reconnects with afterSeq=2 and shows each
    event once even though the server repeats one."""
    order_id = "3b8a4c9e-2f1d-4e6a-9b7c-0d5e8f1a2b3c"
    asked_after: list[int] = []

    def event(seq: int, status: str) -> str:
        return json.dumps(
            {
                "type": "status",
                "orderId": order_id,
                "seq": seq,
                "status": status,
                "at": f"2026-01-01T00:00:0{seq}.000Z",
                "data": {},
            }
        )

    async def handler(ws: websockets.ServerConnection) -> None:
        after = int(parse_qs(urlparse(ws.request.path).query)["afterSeq"][0])
        asked_after.append(after)
        if len(asked_after) == 1:
            await ws.send(event(1, "pending"))
            await ws.send(event(2, "routing"))
            await ws.close(1011, "going away")
            return
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"action": "pong"}
        for seq, status in enumerate(LIFECYCLE, 1):
            if seq >= after:  # one repeat on purpose
                await ws.send(event(seq, status))
        await asyncio.sleep(1)

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = cli.Client(f"http://127.0.0.1:{port}", None)
        out = io.StringIO()
        display = cli.Display(out, io.StringIO(), as_json=True)
        try:
            final = await cli.follow(client, order_id, display, "USDC", timeout_s=10)
        finally:
            await client.aclose()
    assert asked_after == [0, 2]
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5]
    assert final["status"] == "confirmed"


async def test_follow_resumes_by_seq_after_a_limit_close_and_an_ended_subscription() -> None:
    """The gateway first refuses the socket (4429: too many for this client), then ends the
    subscription after one event (catchup_failed); the CLI reconnects each time, after a backoff,
    from the last seq it showed, and ends with every event shown once."""
    order_id = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    asked_after: list[int] = []

    def event(seq: int, status: str) -> str:
        doc = {"type": "status", "orderId": order_id, "seq": seq, "status": status, "data": {}}
        return json.dumps({**doc, "at": f"2026-01-01T00:00:0{seq}.000Z"})

    async def handler(ws: websockets.ServerConnection) -> None:
        after = int(parse_qs(urlparse(ws.request.path).query)["afterSeq"][0])
        asked_after.append(after)
        if len(asked_after) == 1:
            await ws.close(4429, "too many sockets for this client: reconnect later")
            return
        if len(asked_after) == 2:
            await ws.send(event(1, "pending"))
            error = {"type": "error", "code": "catchup_failed", "orderId": order_id, "afterSeq": 1}
            await ws.send(json.dumps({**error, "message": "could not read; resubscribe with afterSeq"}))
            await asyncio.sleep(5)  # the socket stays open: the CLI must act on the error itself
            return
        for seq, status in enumerate(LIFECYCLE, 1):
            if seq > after:
                await ws.send(event(seq, status))
        await asyncio.sleep(1)

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = cli.Client(f"http://127.0.0.1:{port}", None)
        out = io.StringIO()
        display = cli.Display(out, io.StringIO(), as_json=True)
        try:
            final = await cli.follow(client, order_id, display, "USDC", timeout_s=4)
        finally:
            await client.aclose()
    assert asked_after == [0, 0, 1]
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5]
    assert final["status"] == "confirmed"


def test_exact_out_receives_exactly_the_amount_out(stack: Stack) -> None:
    code, out, err = run_cli("execute", "SOL", "USDC", "--amount-out", "12.5", "--url", stack.url)
    assert code == 0, (out, err)
    lines = out.splitlines()
    order_id = lines[0].split()[1].rstrip(":")
    assert lines[0] == f"Order {order_id}: SOL → exactly 12.5 USDC"
    order = httpx.get(f"{stack.url}/api/orders/{order_id}").json()
    assert order["status"] == "confirmed" and order["exactOut"] is True
    assert order["amountOutRaw"] == order["targetAmountOutRaw"] == "12500000"
    assert int(order["amountInSpentRaw"]) > 0

    code, out, err = run_cli("quote", "USDC", "SOL", "--amount-out", "0.1", "--url", stack.url)
    assert code == 0, (out, err)
    first = out.splitlines()[0]
    assert " USDC (at most " in first and "→ exactly 0.1 SOL, max slippage" in first
    assert "at most" in out.splitlines()[3]
    for argv in (
        ["execute", "SOL", "USDC", "1", "--amount-out", "2"],  # both
        ["quote", "SOL", "USDC", "1", "--amount-out", "2"],
        ["execute", "SOL", "USDC", "--amount-out", "1", "--limit-price", "1"],  # market orders only
        ["execute", "--quote-id", "q", "--amount-out", "1"],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2, argv
    code, out, err = run_cli("execute", "SOL", "USDC", "--amount-out", "0.0000001", "--url", stack.url)
    assert code == 2 and err.startswith("error: amountOut: ") and out == ""
