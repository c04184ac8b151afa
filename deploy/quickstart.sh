#!/usr/bin/env bash
# The main job, end to end on loopback:
#   install -> build -> item hidden-state caches -> retrieval sidecar + trainer
#   service -> train job (IISAN, watched) -> published as model v1
#   -> recommendation server -> recommend (a cold-start user and "more like
#   this" too) -> similarity endpoint: an image query and a few-shot
#   translation-example query. Every call goes through recctl.
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
  //server/similarity:similarity_server //server/similarity:similarity_eval //clients/recctl
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

recctl() { "$BIN/clients/recctl/recctl" --retrieval="127.0.0.1:$(port retrieval)" \
  --trainer="$TRAINER" ${RECOMMENDER:+--recommender="$RECOMMENDER"} \
  ${SIMILARITY:+--similarity="$SIMILARITY"} "$@"; }

step "training IISAN through the trainer ($EPOCHS epochs at most), then publishing"
recctl trainer submit "${TRAIN_DATA[@]}" --items="$ITEMS" --model=iisan --epochs="$EPOCHS" \
  --publish --watch | tee "$RUN/train_watch.txt" ||
  { tail "$RUN"/trainer/jobs/*/worker.log; echo "the training job did not publish"; exit 1; }
JOB=$(sed -n 's/^submitted job //p' "$RUN/train_watch.txt")
recctl trainer get --job="$JOB" --json >"$RUN/train_job.json"
VERSION=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$RUN/train_job.json")
echo "model version $VERSION is live in the sidecar"

step "starting the recommendation server"
start recommender "$BIN/server/recommendation_server" --models_dir="$RUN/models" \
  --retrieval="127.0.0.1:$(port retrieval)" --poll_interval=500ms
RECOMMENDER="127.0.0.1:$(port recommender)"
deadline=$((SECONDS + 60))
live_version() {
  recctl recommend models --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(([m["model"]["version"] for m in json.load(sys.stdin).get("models", []) if m["live"]] or [0])[0])' ||
    echo 0
}
until [ "$(live_version)" = "$VERSION" ]; do
  [ $SECONDS -lt $deadline ] || { tail "$RUN/recommender.log"; echo "model $VERSION never went live"; exit 1; }
  sleep 0.2
done

step "recommending for three users (their history minus the last item)"
head -3 "$USERS" | while IFS=$'\t' read -r user items; do
  read -r -a seq <<<"$items"
  history=$(IFS=,; echo "${seq[*]:0:${#seq[@]}-1}")
  echo "user $user: $((${#seq[@]} - 1)) items of history; the held-out next item is ${seq[-1]}"
  recctl recommend items --history="$history" --k=5
done
echo "a new user with no history (cold start):"
recctl recommend items --k=5
FIRST=$(head -1 "$USERS" | cut -f2 | awk '{print $1}')
echo "more like $FIRST:"
recctl recommend similar --item="$FIRST" --k=5

step "starting the similarity endpoint"
start similarity "$BIN/server/similarity/similarity_server" --state_dir="$RUN/similarity" \
  --retrieval="127.0.0.1:$(port retrieval)"
SIMILARITY="127.0.0.1:$(port similarity)"
SIM_EVAL=("$BIN/server/similarity/similarity_eval" --server="$SIMILARITY" --state_dir="$RUN/similarity")
if [ -d /usr/share/datasets/fashion-mnist ]; then
  echo "image cases: 2,000 Fashion-MNIST images indexed with the weight-free pixel-PCA embedder"
  "${SIM_EVAL[@]}" --task=images --collection=quickstart_images --index_limit=2000 \
    --query_limit=200 >"$RUN/similarity_images.txt" 2>&1 ||
    { tail "$RUN/similarity_images.txt"; echo "indexing images failed"; exit 1; }
  echo "P@N of 200 test images against them (micro, macro):"
  grep '^| [0-9]' "$RUN/similarity_images.txt" | awk -F'|' '$2+0 <= 5 {printf "  P@%d %s %s\n", $2, $3, $4}'
  echo "the five cases most like the stored image train-0 (an ankle boot):"
  recctl similarity search-image --collection=quickstart_images --key=train-0 --k=5
else
  echo "image cases: skipped (Debian's dataset-fashion-mnist is not installed)"
fi
if command -v diatheke >/dev/null 2>&1; then
  echo "translation examples: the Book of Ruth, English-Spanish verse pairs"
  "${SIM_EVAL[@]}" --task=translation --collection=quickstart_examples \
    --range="Ruth 1:1-4:22" --queries=5 >"$RUN/similarity_examples.txt" 2>&1 ||
    { tail "$RUN/similarity_examples.txt"; echo "indexing examples failed"; exit 1; }
  recctl similarity select-examples --collection=quickstart_examples --pair=en-es --k=3 \
    --source="And Ruth said, Intreat me not to leave thee" \
    --source_language=English --target_language=Spanish
else
  echo "translation examples: skipped (Debian's diatheke and SWORD Bibles are not installed)"
fi

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
  recommendation       grpc $RECOMMENDER  metrics: $(sed -n 's/^metrics_port=/http:\/\/127.0.0.1:/p' "$RUN/recommender.ports")/metrics
  similarity           grpc $SIMILARITY  metrics: $(sed -n 's/^metrics_port=/http:\/\/127.0.0.1:/p' "$RUN/similarity.ports")/metrics
Logs:  $RUN/*.log (job workers: $RUN/trainer/jobs/N/worker.log)
recctl, with these addresses in a config file:
  printf 'retrieval: 127.0.0.1:$(port retrieval)\\ntrainer: $TRAINER\\nrecommender: $RECOMMENDER\\nsimilarity: $SIMILARITY\\n' >~/.config/recctl.yaml
  bazel-bin/clients/recctl/recctl recommend items --history=KEY1,KEY2 --k=10
  bazel-bin/clients/recctl/recctl trainer submit ${TRAIN_DATA[*]} --items=$ITEMS --publish --watch
  bazel-bin/clients/recctl/recctl --help
Stop:  kill \$(cat $RUN/*.pid)
MSG
fi
echo "quickstart: ok"
