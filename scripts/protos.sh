#!/usr/bin/env bash
# Regenerates the Python code for protos/ (the only way generated files change).
# Pinned by grpcio-tools in pyproject.toml; tests/test_protos.py fails when the output is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${1:-.}"
rm -f "$OUT"/orderengine/v1/*_pb2.py "$OUT"/orderengine/v1/*_pb2.pyi "$OUT"/orderengine/v1/*_pb2_grpc.py
mkdir -p "$OUT/orderengine/v1"
"$PY" -m grpc_tools.protoc -Iprotos \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  protos/orderengine/v1/*.proto
