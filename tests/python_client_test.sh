#!/usr/bin/env bash
# The Python client (clients/python) against real services on loopback: a
# retrieval sidecar and a recommendation server serving a small trained
# model; runs client_test.py and each example script.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
R="${TEST_SRCDIR:-.}/recsys"
T="${TEST_TMPDIR:-$(mktemp -d)}/pyclient"
rm -rf "$T"; mkdir -p "$T"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
start() {  # name binary args...
  local name=$1 bin=$2; shift 2
  "$bin" --port_file="$T/$name.ports" --metrics_port=-1 "$@" >"$T/$name.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 60))
  until [ -s "$T/$name.ports" ]; do
    [ $SECONDS -lt $deadline ] || { cat "$T/$name.log"; fail "$name did not start"; }
    sleep 0.05
  done
  eval "${name}_ADDR=127.0.0.1:$(sed -n 's/^grpc_port=//p' "$T/$name.ports")"
}
"$R/trainer/make_demo_data" --out_dir="$T/data" --num_items=80 --num_users=150 \
  --num_categories=4 --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 \
  --image_hidden=8 >"$T/demo.log" 2>&1
"$R/trainer/train" --interactions="$T/data/users.tsv" --text_cache="$T/data/text_states.safetensors" \
  --image_cache="$T/data/image_states.safetensors" --epochs=1 --embedding_dim=16 --bottleneck=8 \
  --ffn_dim=32 --out_dir="$T/models" >"$T/train.log" 2>&1 || { tail "$T/train.log"; fail "train"; }
start retrieval "$R/retrieval/retrieval_server" --data_dir="$T/retrieval"
"$R/clients/publish_model" --retrieval="$retrieval_ADDR" --version_dir="$T/models/1" \
  --items="$T/data/items.tsv" >"$T/publish.log" || fail "publish"
start recommender "$R/server/recommendation_server" --models_dir="$T/models" \
  --retrieval="$retrieval_ADDR" --poll_interval=100ms
read -r -a ITEMS <<<"$(head -1 "$T/data/users.tsv" | cut -f2)"
HISTORY=$(IFS=,; echo "${ITEMS[*]:0:3}")
PY="$R/clients/python"
export PYTHONPATH="$PY:$PY/gen"
# The server turns SERVING once the sidecar has version 1 live.
deadline=$((SECONDS + 60))
until /usr/bin/python3 -c "
import sys; from recsys_client import RecsysClient
sys.exit(RecsysClient(recommender='$recommender_ADDR').health('recommender') != 'SERVING')" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "recommender never SERVING"
  sleep 0.1
done
/usr/bin/python3 "$PY/client_test.py" "$retrieval_ADDR" "$recommender_ADDR" "$HISTORY"
/usr/bin/python3 "$PY/examples/recommend.py" --recommender="$recommender_ADDR" ${ITEMS[@]:0:3} >"$T/ex1.txt"
grep -q "^model version 1" "$T/ex1.txt" || fail "examples/recommend.py: $(cat "$T/ex1.txt")"
/usr/bin/python3 "$PY/examples/search.py" --retrieval="$retrieval_ADDR" >"$T/ex2.txt"
grep -q "^p030\|^p029\|^p031" "$T/ex2.txt" && grep -q "is LIVE with 60 entries" "$T/ex2.txt" ||
  fail "examples/search.py: $(cat "$T/ex2.txt")"
echo "python client e2e: ok"
