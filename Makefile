# The order engine's commands. `make run` and `make test` work on a fresh machine.
PY_BOOT ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: run market test install protos check-protos bench bench-sweep bench-compare bench-ws bench-quotes bench-triggers lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start every process on the simulated chain (CHAIN=sim by default); Ctrl-C stops them all.
run: $(STAMP)
	$(PY) -m common.stack

## A market on a real cluster from a wallet holding only SOL: a test token, a Raydium CPMM pool and a
## Meteora DLMM pair with liquidity, written to MARKETS_FILE. Needs SOLANA_RPC_URL and KEYPAIR_PATH.
## make market CHAIN=devnet SOLANA_RPC_URL=https://api.devnet.solana.com KEYPAIR_PATH=… MARKETS_FILE=…
market: $(STAMP)
	$(PY) -m executor_svc.market

## Run the whole test suite against the local Redis and Postgres.
test: $(STAMP)
	$(PY) -m pytest -q

## ruff (lint + format check) and mypy --strict on every package of ours (CI runs it before the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Regenerate orderengine/v1 from protos/ (pinned grpcio-tools).
protos: $(STAMP)
	PYTHON=$(PY) bash scripts/protos.sh

## Submit N orders at a chosen rate through the whole stack (its own); print offered/achieved rates,
## latency percentiles, orders without a final status, and CPU ms per order for every process.
## make bench N=2000 RATE=100 [ARGS="--env CONFIRM_POLL_MS=10"]   (ARGS: any bench_e2e option)
N    ?= 1000
RATE ?= 200
ARGS ?=
bench: $(STAMP)
	$(PY) -m bench.bench_e2e --orders $(N) --rate $(RATE) $(ARGS)

## Step the offered rate up on one stack until latency stops being bounded; a table per step and
## the saturation point. make bench-sweep [ARGS="--rates 50,100,200 --step-seconds 10"]
bench-sweep: $(STAMP)
	$(PY) -m bench.bench_e2e --sweep $(ARGS)

## N WebSockets on one gateway follow a late-joined order (catch-up) and a live one; prints missing
## events, fan-out spread per status, gateway RSS and CPU. make bench-ws N=5000
bench-ws: $(STAMP)
	$(PY) -m bench.bench_ws --subscribers $(N)

bench-quotes: $(STAMP)
	$(PY) -m bench.bench_quotes

## 10,000 open limit orders on one pair: CPU of one trigger pass (target <= 50 ms), and, once the
## market moves across about 100 of them, trigger -> submitted p50/p99 (target <= 400 ms, one slot).
## Two commits measured in turns (this checkout and REF, in a temporary worktree), read as ranges:
## make bench-compare REF=44b484c [PAIRS=3] ARGS="--sweep --rates 100,200,300,400 --step-seconds 10"
bench-compare: $(STAMP)
	$(PY) -m bench.compare $(REF) --pairs $(or $(PAIRS),3) -- $(ARGS)

## make bench-triggers [ARGS="--orders 10000 --triggered 100"]
bench-triggers: $(STAMP)
	$(PY) -m bench.bench_triggers $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
