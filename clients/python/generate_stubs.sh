#!/usr/bin/env bash
# Generates the Python gRPC stubs of proto/*.proto into OUT_DIR (default
# clients/python/gen) with Debian's protoc and grpc_python_plugin, for
# python3-grpcio and python3-protobuf. The stubs import each other as
# `proto.<name>_pb2`, so OUT_DIR goes on PYTHONPATH (RecsysClient finds
# clients/python/gen by itself).
#   clients/python/generate_stubs.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-clients/python/gen}"
mkdir -p "$out"
protoc -I. --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/*.proto
touch "$out/proto/__init__.py"
echo "python stubs in $out/proto"
