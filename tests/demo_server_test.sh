#!/usr/bin/env bash
# End-to-end check of the service plumbing with the real tools:
#  - common/demo_server starts on loopback and writes its ports;
#  - gRPC health says SERVING and reflection lists the services (python3-grpcio);
#  - /metrics passes `promtool check metrics`;
#  - a real Prometheus scrapes it (up == 1 and the demo's counter arrive);
#  - SIGTERM drains and exits 0.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
BIN="${TEST_SRCDIR:-.}/recsys/common/demo_server"
[ -x "$BIN" ] || BIN="common/demo_server"
PY=/usr/bin/python3

wait_for_file() {  # path, seconds
  local deadline=$((SECONDS + $2))
  while [ ! -s "$1" ]; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $1"
    sleep 0.05
  done
}

"$BIN" --port_file="$TMP/ports" >"$TMP/demo.log" 2>&1 &
DEMO=$!
PROM=""
cleanup() {
  kill "$DEMO" 2>/dev/null || true
  [ -n "$PROM" ] && kill "$PROM" 2>/dev/null || true
}
trap cleanup EXIT
wait_for_file "$TMP/ports" 30
# shellcheck disable=SC1090
. "$TMP/ports"
echo "demo_server: grpc $grpc_port, metrics $metrics_port"

# gRPC health and reflection, spoken with raw protobuf bytes so the check
# does not depend on our own generated code.
"$PY" - "$grpc_port" <<'PYEOF'
import sys, grpc
port = sys.argv[1]
ch = grpc.insecure_channel(f"127.0.0.1:{port}")
grpc.channel_ready_future(ch).result(timeout=10)
ident = lambda b: b
check = ch.unary_unary("/grpc.health.v1.Health/Check",
                       request_serializer=ident, response_deserializer=ident)
resp = check(b"", timeout=5)
assert resp == b"\x08\x01", f"health: expected SERVING (08 01), got {resp!r}"
try:
    check(b"\x0a\x03foo", timeout=5)
    raise AssertionError("unknown service should be NOT_FOUND")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
refl = ch.stream_stream(
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    request_serializer=ident, response_deserializer=ident)
# ServerReflectionRequest{list_services: "*"}
out = b"".join(refl(iter([b"\x3a\x01*"]), timeout=5))
for name in (b"grpc.health.v1.Health", b"grpc.reflection.v1alpha.ServerReflection"):
    assert name in out, f"reflection does not list {name!r}: {out!r}"
print("health SERVING; reflection lists", out.count(b"grpc."), "services")
PYEOF

curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$TMP/metrics.txt"
grep -q '^recsys_demo_starts_total 1$' "$TMP/metrics.txt" || fail "counter missing"
promtool check metrics <"$TMP/metrics.txt" || fail "promtool rejected /metrics"
echo "promtool check metrics: ok"

# A real Prometheus scraping the endpoint.
PROM_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
promtool check config "$TMP/prometheus.yml" >/dev/null
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PROM=$!
deadline=$((SECONDS + 60))
while true; do
  body=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=recsys_demo_starts_total" || true)
  case "$body" in *'"value":['*'"1"]'*) break ;; esac
  [ $SECONDS -lt $deadline ] || { tail -20 "$TMP/prometheus.log"; fail "Prometheus never scraped the demo"; }
  sleep 0.2
done
up=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up")
case "$up" in *'"value":['*'"1"]'*) ;; *) fail "up != 1: $up" ;; esac
echo "prometheus scraped: up == 1"

# Graceful shutdown: SIGTERM -> drain -> exit 0.
kill -TERM "$DEMO"
deadline=$((SECONDS + 30))
while kill -0 "$DEMO" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "demo_server ignored SIGTERM"
  sleep 0.05
done
wait "$DEMO" && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "demo_server exited $rc after SIGTERM"
grep -q "received SIGTERM" "$TMP/demo.log" || fail "no shutdown log line"
echo "SIGTERM: drained, exit 0"
