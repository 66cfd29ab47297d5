#!/usr/bin/env bash
# Regenerates the Python code for protos/ (the only way generated files change).
# Pinned by grpcio-tools and mypy-protobuf in pyproject.toml; tests/test_protos.py fails when the output
# is stale. Per .proto: _pb2.py + _pb2_grpc.py (grpcio-tools) and the typed stubs _pb2.pyi +
# _pb2_grpc.pyi (mypy-protobuf), which is what `mypy --strict` checks our servicers and clients against.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
BIN="$(dirname "$PY")"
OUT="${1:-.}"
for plugin in protoc-gen-mypy protoc-gen-mypy_grpc; do
  test -x "$BIN/$plugin" || { echo "$BIN/$plugin missing: make install" >&2; exit 1; }
done
rm -f "$OUT"/orderengine/v1/*_pb2.py "$OUT"/orderengine/v1/*_pb2.pyi \
  "$OUT"/orderengine/v1/*_pb2_grpc.py "$OUT"/orderengine/v1/*_pb2_grpc.pyi
mkdir -p "$OUT/orderengine/v1"
"$PY" -m grpc_tools.protoc -Iprotos \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out="$OUT" --grpc_python_out="$OUT" \
  --mypy_out=quiet:"$OUT" --mypy_grpc_out=quiet:"$OUT" \
  protos/orderengine/v1/*.proto
