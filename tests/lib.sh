# Shared by the end-to-end shell tests (source it after `set -euo pipefail`):
#   R     the runfiles root of this workspace
#   T     a fresh scratch directory for the test (its name: $1 of test_init)
#   fail  prints FAIL: ... and exits 1
#   start NAME BINARY ARGS...   starts a service with --port_file, its
#         output appended to $T/NAME.log (a restart keeps the first run's
#         log), waits up to 60 s for its ports, and sets NAME_PID,
#         NAME_PORT, NAME_METRICS and NAME_ADDR=127.0.0.1:NAME_PORT; every
#         started process is killed (-9) when the test exits.
fail() { echo "FAIL: $*" >&2; exit 1; }
R="${TEST_SRCDIR:-.}/recsys"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT

test_init() {  # scratch directory name
  T="${TEST_TMPDIR:-$(mktemp -d)}/$1"
  rm -rf "$T"; mkdir -p "$T"
}

start() {  # name, binary, args...
  local name=$1 bin=$2; shift 2
  rm -f "$T/$name.ports"
  "$bin" --port_file="$T/$name.ports" "$@" >>"$T/$name.log" 2>&1 &
  PIDS+=($!)
  eval "${name}_PID=$!"
  local deadline=$((SECONDS + 60))
  until [ -s "$T/$name.ports" ]; do
    [ $SECONDS -lt $deadline ] || { cat "$T/$name.log"; fail "$name did not start"; }
    sleep 0.05
  done
  eval "${name}_PORT=$(sed -n 's/^grpc_port=//p' "$T/$name.ports")"
  eval "${name}_METRICS=$(sed -n 's/^metrics_port=//p' "$T/$name.ports")"
  eval "${name}_ADDR=127.0.0.1:\$${name}_PORT"
}
