#!/usr/bin/env bash
# The main job, end to end on loopback: install, build, start the services,
# check that they answer, stop them. Later stages (train -> publish ->
# recommend) are added as their components land.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="${RECSYS_RUN_DIR:-$ROOT/run}"
mkdir -p "$RUN"

bash deploy/install_deps.sh
bazel build //common:demo_server

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() {  # name, binary, args...
  local name=$1 bin=$2; shift 2
  rm -f "$RUN/$name.ports"
  "$bin" --port_file="$RUN/$name.ports" "$@" >"$RUN/$name.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 60))
  until [ -s "$RUN/$name.ports" ]; do
    [ $SECONDS -lt $deadline ] || { cat "$RUN/$name.log"; echo "$name did not start"; exit 1; }
    sleep 0.1
  done
  echo "$name: $(tr '\n' ' ' <"$RUN/$name.ports")(log: $RUN/$name.log)"
}

start demo bazel-bin/common/demo_server
. "$RUN/demo.ports"
echo "metrics sample:"
curl -sf "http://127.0.0.1:$metrics_port/metrics" | grep -E '^process_(resident|threads)'
echo "quickstart: ok"
