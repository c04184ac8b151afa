#!/usr/bin/env bash
# Observability end to end, every piece real and on loopback:
#  - retrieval_server and recommendation_server start from the Kubernetes
#    flag files (deploy/k8s/base/flags, so a flag there that a binary does
#    not know fails here), with loopback addresses and free ports on top;
#  - a collection is published to the sidecar;
#  - a real Prometheus scrapes both with deploy/prometheus/prometheus.yml's
#    job names and loads deploy/prometheus/alerts.yml;
#  - via its HTTP API: every target up == 1; a known metric from each
#    service has its expected value; the rules loaded, and on these real
#    metrics RecsysRecommenderNoLiveModel is pending (no model published),
#    while RecsysRetrievalNoLiveVersion and RecsysTargetDown are not.
#  - the trainer and the similarity endpoint likewise, each asked once
#    through recctl so that their per-call metrics exist.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
R="${TEST_SRCDIR:-.}/recsys"
[ -d "$R/deploy" ] || R="."
RETRIEVAL="$R/retrieval/retrieval_server"
RECOMMENDER="$R/server/recommendation_server"
TRAINER="$R/trainer/service/trainer_server"
SIMILARITY="$R/server/similarity/similarity_server"
RECCTL="$R/clients/recctl/recctl"
FLAGS="$R/deploy/k8s/base/flags"
PROMDIR="$R/deploy/prometheus"
PY=/usr/bin/python3
T="${TEST_TMPDIR:-$(mktemp -d)}/prom_e2e"
rm -rf "$T"; mkdir -p "$T/models"
command -v prometheus >/dev/null || fail "prometheus missing (Debian package prometheus)"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() {  # name, binary, args...: starts, waits for the port file
  local name=$1 bin=$2; shift 2
  "$bin" "$@" --port_file="$T/$name.ports" >"$T/$name.log" 2>&1 &
  PIDS+=($!)
  local pid=$! deadline=$((SECONDS + 60))
  until [ -s "$T/$name.ports" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$T/$name.log"; fail "$name exited"; }
    [ $SECONDS -lt $deadline ] || { cat "$T/$name.log"; fail "$name did not start"; }
    sleep 0.05
  done
  eval "${name}_GRPC=$(sed -n 's/^grpc_port=//p' "$T/$name.ports")"
  eval "${name}_METRICS=$(sed -n 's/^metrics_port=//p' "$T/$name.ports")"
}

# The flag files' addresses and paths are the pod's; later flags win.
# (--metrics_host is tolerated by the flag files' --undefok until the
# binaries define it; then it keeps this test on loopback.)
LOOPBACK=(--address=127.0.0.1:0 --metrics_port=0 --metrics_host=127.0.0.1)
start retrieval "$RETRIEVAL" --flagfile="$FLAGS/retrieval.flags" "${LOOPBACK[@]}" \
  --data_dir="$T/retrieval"
start recommender "$RECOMMENDER" --flagfile="$FLAGS/recommender.flags" "${LOOPBACK[@]}" \
  --models_dir="$T/models" --retrieval="127.0.0.1:$retrieval_GRPC" --poll_interval=200ms
start trainer "$TRAINER" --flagfile="$FLAGS/trainer.flags" "${LOOPBACK[@]}" \
  --data_dir="$T/trainer" --models_dir="$T/models" --retrieval="127.0.0.1:$retrieval_GRPC"
start similarity "$SIMILARITY" --flagfile="$FLAGS/similarity.flags" "${LOOPBACK[@]}" \
  --state_dir="$T/similarity" --retrieval="127.0.0.1:$retrieval_GRPC"
echo "metrics ports: retrieval $retrieval_METRICS, recommender $recommender_METRICS," \
  "trainer $trainer_METRICS, similarity $similarity_METRICS"
"$RECCTL" --trainer="127.0.0.1:$trainer_GRPC" trainer jobs >/dev/null
"$RECCTL" --similarity="127.0.0.1:$similarity_GRPC" similarity list >/dev/null

# A published collection of 100 entries.
"$PY" -c '
import random; random.seed(1)
for i in range(100):
    print(f"item{i}\t" + ",".join("%.5f" % random.gauss(0, 1) for _ in range(8)))' >"$T/items.tsv"
cli() { "$RECCTL" --retrieval="127.0.0.1:$retrieval_GRPC" collections "$@"; }
deadline=$((SECONDS + 30))
until cli list >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || fail "sidecar never answered"
  sleep 0.05
done
cli create --collection=items --dim=8 --metric=cosine --factory=Flat >/dev/null
cli upsert --collection=items --file="$T/items.tsv" >/dev/null
cli publish --collection=items >/dev/null

# Prometheus with the real job names and rules, scraping every second.
PROM_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp "$PROMDIR/alerts.yml" "$T/"
"$PY" - "$PROMDIR/prometheus.yml" "$T/prometheus.yml" "$retrieval_METRICS" "$recommender_METRICS" \
  "$trainer_METRICS" "$similarity_METRICS" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
ports = {"recsys-retrieval": sys.argv[3], "recsys-recommender": sys.argv[4],
         "recsys-trainer": sys.argv[5], "recsys-similarity": sys.argv[6]}
jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
assert set(ports) <= set(jobs), f"prometheus.yml lacks jobs {set(ports) - set(jobs)}"
cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
cfg["scrape_configs"] = []
for name, port in ports.items():
    job = dict(jobs[name])
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    cfg["scrape_configs"].append(job)
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
PY
promtool check config "$T/prometheus.yml" >/dev/null || fail "generated config rejected"
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PIDS+=($!)

# Polls Prometheus until a Python predicate on the JSON answer holds.
wait_for() {  # description, API path with query, python expression on `d`
  local deadline=$((SECONDS + 45)) body
  while true; do
    body=$(curl -sf --max-time 2 "http://127.0.0.1:$PROM_PORT$2" || true)
    if [ -n "$body" ] && "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($3) else 1)" "$body" 2>/dev/null; then
      echo "ok: $1"
      return 0
    fi
    [ $SECONDS -lt $deadline ] || { tail -5 "$T/prometheus.log"; fail "$1; last answer: ${body:0:600}"; }
    sleep 0.2
  done
}
values='{(r["metric"].get("job"), r["value"][1]) for r in d["data"]["result"]}'
wait_for "every target up == 1" "/api/v1/query?query=up" \
  "$values == {('recsys-retrieval', '1'), ('recsys-recommender', '1'), ('recsys-trainer', '1'), ('recsys-similarity', '1')}"
wait_for "recsys_retrieval_live_entries{collection=items} == 100" \
  "/api/v1/query?query=recsys_retrieval_live_entries" \
  "$values == {('recsys-retrieval', '100')}"
wait_for "recsys_retrieval_requests_total{method=Publish,code=OK} == 1" \
  "/api/v1/query?query=recsys_retrieval_requests_total%7Bmethod%3D%22Publish%22%7D" \
  "$values == {('recsys-retrieval', '1')} and d['data']['result'][0]['metric']['code'] == 'OK'"
wait_for "recsys_recommender_live_model_version == 0 (no model yet)" \
  "/api/v1/query?query=recsys_recommender_live_model_version" \
  "$values == {('recsys-recommender', '0')}"
wait_for "recsys_trainer_requests_total{method=ListJobs,code=OK} == 1" \
  "/api/v1/query?query=recsys_trainer_requests_total%7Bmethod%3D%22ListJobs%22%2Ccode%3D%22OK%22%7D" \
  "$values == {('recsys-trainer', '1')}"
wait_for "recsys_similarity_requests_total{method=ListCollections,code=OK} == 1" \
  "/api/v1/query?query=recsys_similarity_requests_total%7Bmethod%3D%22ListCollections%22%2Ccode%3D%22OK%22%7D" \
  "$values == {('recsys-similarity', '1')}"
wait_for "recsys_similarity_collections{state=failed} == 0 (no collections)" \
  "/api/v1/query?query=recsys_similarity_collections%7Bstate%3D%22failed%22%7D" \
  "$values == {('recsys-similarity', '0')}"
wait_for "process_* metrics from all four" "/api/v1/query?query=process_start_time_seconds" \
  "{j for j, _ in $values} == {'recsys-retrieval', 'recsys-recommender', 'recsys-trainer', 'recsys-similarity'}"
rules='{r["name"]: r.get("state") for g in d["data"]["groups"] for r in g["rules"]}'
wait_for "alerts.yml loaded (14 rules)" "/api/v1/rules" "len($rules) == 14"
wait_for "RecsysRecommenderNoLiveModel pending on the real metrics" "/api/v1/rules" \
  "$rules['RecsysRecommenderNoLiveModel'] == 'pending' and $rules['RecsysRetrievalNoLiveVersion'] == 'inactive' and $rules['RecsysTargetDown'] == 'inactive' and $rules['RecsysSimilarityCollectionNotOk'] == 'inactive'"
echo "prometheus e2e: ok"
