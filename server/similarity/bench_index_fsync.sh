#!/usr/bin/env bash
# IndexExamples examples/s with and without the staging log's fdatasync, side
# by side: one retrieval_server, two similarity_servers (the second with
# --unsafe_skip_staging_fsync), similarity_bench --index_servers alternating
# between them. A benchmark, not a test. Run from the workspace root after
#   bazel build //retrieval:retrieval_server //server/similarity:similarity_server \
#     //server/similarity:similarity_bench
# Usage: server/similarity/bench_index_fsync.sh OUT_DIR  (JSON: OUT_DIR/index_b<batch>.json)
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
bin=bazel-bin
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -rf "$work"' EXIT
mkdir -p "$out"
wait_port() {  # a port file -> its grpc port, within 30 s
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if grep -q grpc_port= "$1" 2>/dev/null; then sed -n 's/^grpc_port=//p' "$1"; return; fi
    sleep 0.1  # polling a file, bounded by the deadline
  done
  echo "no port in $1" >&2
  exit 1
}
"$bin/retrieval/retrieval_server" --data_dir="$work/r" --metrics_port=-1 \
  --address=127.0.0.1:0 --port_file="$work/r.ports" >"$out/retrieval.log" 2>&1 &
pids+=($!)
r=$(wait_port "$work/r.ports")
start() {  # name, extra flags...
  local name=$1
  shift
  "$bin/server/similarity/similarity_server" --retrieval=127.0.0.1:"$r" \
    --state_dir="$work/$name" --metrics_port=-1 --address=127.0.0.1:0 \
    --port_file="$work/$name.ports" "$@" >"$out/$name.log" 2>&1 &
  pids+=($!)
}
start fsync
start nofsync --unsafe_skip_staging_fsync
a=$(wait_port "$work/fsync.ports")
b=$(wait_port "$work/nofsync.ports")
df -T "$work" | tail -1 >"$out/filesystem.txt"
for batch in 1 16 256; do
  calls=300
  ((batch < 256)) || calls=50
  "$bin/server/similarity/similarity_bench" --index_servers="127.0.0.1:$a,127.0.0.1:$b" \
    --index_batch="$batch" --index_calls="$calls" --index_rounds=3 \
    --json_out="$out/index_b$batch.json" >/dev/null
  cat "$out/index_b$batch.json"
done
