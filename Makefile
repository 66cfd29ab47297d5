# The order engine's commands. `make run` and `make test` work on a fresh machine.
PY_BOOT ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: run market test install protos check-protos bench bench-ws bench-quotes lint clean

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

## Submit N orders at a chosen rate through the whole stack and print throughput and latency.
## make bench N=2000 RATE=200
N    ?= 1000
RATE ?= 200
bench: $(STAMP)
	$(PY) -m bench.bench_e2e --orders $(N) --rate $(RATE)

## N WebSockets on one gateway follow a late-joined order (catch-up) and a live one; prints missing
## events, fan-out spread per status, gateway RSS and CPU. make bench-ws N=5000
bench-ws: $(STAMP)
	$(PY) -m bench.bench_ws --subscribers $(N)

bench-quotes: $(STAMP)
	$(PY) -m bench.bench_quotes

clean:
	rm -rf $(VENV) .pytest_cache
