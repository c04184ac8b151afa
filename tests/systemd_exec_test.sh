#!/usr/bin/env bash
# The systemd units' command lines work with the real binaries: for the
# retrieval and recommendation units, ExecStart's flags (state directories
# moved to a temp dir, ports made free, $EXTRA_FLAGS empty) start the server,
# /metrics answers, and SIGTERM ends it with exit 0 well within the unit's
# TimeoutStopSec. A flag a binary does not know fails here.
# (The trainer and similarity units join once their binaries land.)
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
R="${TEST_SRCDIR:-.}/recsys"
[ -d "$R/deploy" ] || R="."
BIN_DIR="$R"
[ -x "$BIN_DIR/retrieval/retrieval_server" ] || BIN_DIR=bazel-bin
UNITS="$R/deploy/systemd"
PY=/usr/bin/python3
T="${TEST_TMPDIR:-$(mktemp -d)}/systemd_exec"
rm -rf "$T"; mkdir -p "$T"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ExecStart of a unit as one argument per line, made runnable here.
exec_start() {  # unit, retrieval grpc port (for the recommender)
  "$PY" - "$UNITS/$1" "$T" "${2:-0}" "$BIN_DIR" <<'PY'
import re, sys
unit, tmp, retrieval_port, bin_dir = sys.argv[1:]
text = open(unit).read().replace("\\\n", " ")
line = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
binaries = {"retrieval_server": "retrieval", "recommendation_server": "server"}
for arg in line.split():
    if arg == "$EXTRA_FLAGS":
        continue
    if arg.startswith("/usr/local/bin/"):
        name = arg.rsplit("/", 1)[1]
        arg = f"{bin_dir}/{binaries[name]}/{name}"
    elif arg.startswith("--address="):
        arg = "--address=127.0.0.1:0"
    elif arg.startswith("--metrics_port="):
        arg = "--metrics_port=0"
    elif arg.startswith("--retrieval="):
        arg = f"--retrieval=127.0.0.1:{retrieval_port}"
    arg = arg.replace("/var/lib/", tmp + "/var/lib/")
    print(arg)
PY
}

timeout_stop() { sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$UNITS/$1"; }

start() {  # name, unit, retrieval port
  local name=$1 unit=$2
  mapfile -t CMD < <(exec_start "$unit" "${3:-0}")
  [ "${#CMD[@]}" -gt 2 ] || fail "$unit: no ExecStart"
  # systemd creates StateDirectory=; do the same here.
  for d in $(sed -n 's/^StateDirectory=//p' "$UNITS/$unit"); do mkdir -p "$T/var/lib/$d"; done
  echo "$unit: ${CMD[*]}"
  "${CMD[@]}" --port_file="$T/$name.ports" >"$T/$name.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 60))
  PIDS+=($pid)
  eval "${name}_PID=$pid"
  until [ -s "$T/$name.ports" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$T/$name.log"; fail "$unit: the binary exited"; }
    [ $SECONDS -lt $deadline ] || { cat "$T/$name.log"; fail "$unit: did not start"; }
    sleep 0.05
  done
  eval "${name}_GRPC=$(sed -n 's/^grpc_port=//p' "$T/$name.ports")"
  local metrics; metrics=$(sed -n 's/^metrics_port=//p' "$T/$name.ports")
  # Into a variable first: `curl | grep -q` under pipefail fails when grep
  # exits before curl has written everything (SIGPIPE).
  local page; page=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics/metrics") ||
    fail "$unit: /metrics does not answer"
  grep -q '^process_start_time_seconds ' <<<"$page" || fail "$unit: /metrics has no process metrics"
}

stop() {  # name, unit: SIGTERM, exit 0 within TimeoutStopSec
  local pid_var="${1}_PID" limit; limit=$(timeout_stop "$2")
  [ -n "$limit" ] || fail "$2: TimeoutStopSec not in seconds"
  local pid=${!pid_var} deadline=$((SECONDS + limit))
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$2: still running after TimeoutStopSec=${limit}s"
    sleep 0.05
  done
  wait "$pid" && rc=0 || rc=$?
  [ "$rc" -eq 0 ] || { tail "$T/$1.log"; fail "$2: exit $rc after SIGTERM"; }
  echo "$2: started from its ExecStart, stopped cleanly within ${limit}s"
}

start retrieval recsys-retrieval.service
start recommender recsys-recommender.service "$retrieval_GRPC"
stop recommender recsys-recommender.service
stop retrieval recsys-retrieval.service
echo "systemd exec: ok"
