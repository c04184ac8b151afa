#!/usr/bin/env bash
# The main job, end to end on loopback:
#   install -> build -> item hidden-state caches -> retrieval sidecar + trainer
#   service -> train job (IISAN, watched) -> published as model v1
#   -> recommendation server -> recommend.
#
# Data: the real Amazon "Scientific" set when ../shared/data is there (text
# states from a seeded stand-in BERT, since no weights ship here), otherwise
# the project's synthetic two-modality demo catalog. Force one with
# RECSYS_QUICKSTART_DATA=scientific|demo.
#
# Services stay up at the end (their ports are printed) unless
# RECSYS_QUICKSTART_STOP=1; stop them with: kill $(cat run/*.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="${RECSYS_RUN_DIR:-$ROOT/run}"
SHARED="${RECSYS_DATA_DIR:-$(cd "$ROOT/.." && pwd)/shared/data}"
EPOCHS="${RECSYS_QUICKSTART_EPOCHS:-5}"
step() { printf '\n== %s\n' "$*"; }

step "installing dependencies"
bash deploy/install_deps.sh

step "building"
bazel build //retrieval:retrieval_server //server:recommendation_server \
  //trainer/service:trainer_server //trainer:make_demo_data //trainer/backbone:build_cache \
  //clients:trainer_cli //clients:recommend_cli //clients:retrieval_cli
BIN="$ROOT/bazel-bin"

mkdir -p "$RUN"
# Services of an earlier run: stop them and wait until they are gone (the
# retrieval server holds its data directory's lock until it exits).
for f in "$RUN"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  rm -f "$f"
done

DATA="${RECSYS_QUICKSTART_DATA:-}"
if [ -z "$DATA" ]; then
  if [ -f "$SHARED/amazon-scientific/users.tsv" ]; then DATA=scientific; else DATA=demo; fi
fi

if [ "$DATA" = scientific ]; then
  step "data: Amazon Scientific from $SHARED"
  ITEMS="$SHARED/amazon-scientific/items.tsv"
  USERS="$SHARED/amazon-scientific/users.tsv"
  TEXT_CACHE="$RUN/cache/scientific_text_bert6x256.safetensors"
  if [ ! -f "$TEXT_CACHE" ]; then
    step "text hidden-state cache (stand-in BERT 6x256; resumable)"
    "$BIN/trainer/backbone/build_cache" --items="$ITEMS" \
      --vocab="$SHARED/bert-base-uncased/vocab.txt" \
      --text_out="$TEXT_CACHE" --work_dir="$RUN/cache/work" --threads=1
  fi
  TRAIN_DATA=(--interactions="$USERS" --text_cache="$TEXT_CACHE")
else
  step "data: synthetic demo catalog (text + image states with planted structure)"
  if [ ! -f "$RUN/demo/users.tsv" ]; then
    "$BIN/trainer/make_demo_data" --out_dir="$RUN/demo" --text_hidden=128 --image_hidden=96
  fi
  ITEMS="$RUN/demo/items.tsv"
  USERS="$RUN/demo/users.tsv"
  TRAIN_DATA=(--interactions="$USERS" --text_cache="$RUN/demo/text_states.safetensors"
              --image_cache="$RUN/demo/image_states.safetensors")
fi

start() {  # name, binary, args...
  local name=$1 bin=$2; shift 2
  rm -f "$RUN/$name.ports"
  "$bin" --port_file="$RUN/$name.ports" "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  local deadline=$((SECONDS + 120))
  until [ -s "$RUN/$name.ports" ]; do
    [ $SECONDS -lt $deadline ] || { cat "$RUN/$name.log"; echo "$name did not start"; exit 1; }
    sleep 0.1
  done
  echo "$name: $(tr '\n' ' ' <"$RUN/$name.ports")log $RUN/$name.log"
}
port() { sed -n 's/^grpc_port=//p' "$RUN/$1.ports"; }

step "starting the retrieval sidecar"
start retrieval "$BIN/retrieval/retrieval_server" --data_dir="$RUN/retrieval"

step "starting the trainer service"
start trainer "$BIN/trainer/service/trainer_server" --data_dir="$RUN/trainer" \
  --models_dir="$RUN/models" --retrieval="127.0.0.1:$(port retrieval)"
TRAINER="127.0.0.1:$(port trainer)"

step "training IISAN through the trainer ($EPOCHS epochs at most), then publishing"
JOB=$("$BIN/clients/trainer_cli" --trainer="$TRAINER" train "${TRAIN_DATA[@]}" --items="$ITEMS" \
  --model=iisan --epochs="$EPOCHS" --publish | sed -n 's/^job_id=//p')
echo "job $JOB submitted"
"$BIN/clients/trainer_cli" --trainer="$TRAINER" watch --job="$JOB" ||
  { tail "$RUN/trainer/jobs/$JOB/worker.log"; echo "training job $JOB did not publish"; exit 1; }
"$BIN/clients/trainer_cli" --trainer="$TRAINER" get --job="$JOB" >"$RUN/train_job.json"
VERSION=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$RUN/train_job.json")
echo "model version $VERSION is live in the sidecar"

step "starting the recommendation server"
start recommender "$BIN/server/recommendation_server" --models_dir="$RUN/models" \
  --retrieval="127.0.0.1:$(port retrieval)" --poll_interval=500ms
deadline=$((SECONDS + 60))
live_version() {
  "$BIN/clients/recommend_cli" --server="127.0.0.1:$(port recommender)" --list_models 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(([m["version"] for m in json.load(sys.stdin)["models"] if m["live"]] or [0])[0])' ||
    echo 0
}
until [ "$(live_version)" = "$VERSION" ]; do
  [ $SECONDS -lt $deadline ] || { tail "$RUN/recommender.log"; echo "model $VERSION never went live"; exit 1; }
  sleep 0.2
done

step "recommending for three users (their history minus the last item)"
SHOW_PY='
import json, sys
r = json.load(sys.stdin)
for i in r["items"]:
    print("  %7.3f  %-12s %s" % (i["score"], i["key"], i.get("title", "")[:70]))
'
head -3 "$USERS" | while IFS=$'\t' read -r user items; do
  read -r -a seq <<<"$items"
  history=$(IFS=,; echo "${seq[*]:0:${#seq[@]}-1}")
  echo "user $user: $((${#seq[@]} - 1)) items of history; the held-out next item is ${seq[-1]}"
  "$BIN/clients/recommend_cli" --server="127.0.0.1:$(port recommender)" \
    --history="$history" --k=5 | /usr/bin/python3 -c "$SHOW_PY"
done

step "metrics (test set) of model version $VERSION"
/usr/bin/python3 -c '
import json, sys
m = json.loads(json.load(open(sys.argv[1]))["metrics_json"])
t = m.get("test", {})
print(json.dumps({k: t[k] for k in sorted(t) if k.startswith(("hr", "ndcg"))}))' "$RUN/train_job.json"

if [ "${RECSYS_QUICKSTART_STOP:-0}" = 1 ]; then
  for f in "$RUN"/*.pid; do kill -TERM "$(cat "$f")"; rm -f "$f"; done
  echo "services stopped"
else
  cat <<MSG

Services are running:
  retrieval sidecar    grpc 127.0.0.1:$(port retrieval)    metrics: $(sed -n 's/^metrics_port=/http:\/\/127.0.0.1:/p' "$RUN/retrieval.ports")/metrics
  trainer              grpc $TRAINER  metrics: $(sed -n 's/^metrics_port=/http:\/\/127.0.0.1:/p' "$RUN/trainer.ports")/metrics
  recommendation       grpc 127.0.0.1:$(port recommender)  metrics: $(sed -n 's/^metrics_port=/http:\/\/127.0.0.1:/p' "$RUN/recommender.ports")/metrics
Train: bazel-bin/clients/trainer_cli --trainer=$TRAINER train ${TRAIN_DATA[*]} --items=$ITEMS --publish --watch
Try:   bazel-bin/clients/recommend_cli --server=127.0.0.1:$(port recommender) --history=KEY1,KEY2 --k=10
Stop:  kill \$(cat $RUN/*.pid)
MSG
fi
echo "quickstart: ok"
