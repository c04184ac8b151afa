#!/usr/bin/env bash
# The product end to end, every component a real process on loopback:
#   make_demo_data -> train (v1) -> retrieval_server <- recctl model publish
#   -> recommendation_server <- recctl recommend
# then a rollout (train v2, publish: the server switches, v1 still answers
# when pinned), a rollback in the sidecar (the server follows), bad input
# answered with precise statuses, and SIGTERM draining both servers.
set -euo pipefail

source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init e2e
MAKE_DEMO="$R/trainer/make_demo_data"
TRAIN="$R/trainer/train"
RETRIEVAL="$R/retrieval/retrieval_server"
RECOMMENDER="$R/server/recommendation_server"
RECCTL="$R/clients/recctl/recctl"
rc() { "$RECCTL" --retrieval="127.0.0.1:${retrieval_PORT:-0}" --recommender="127.0.0.1:${recommender_PORT:-0}" "$@"; }
publish() { rc model publish "$@"; }
recommend() { rc recommend items --json "$@"; }

live_version() {
  rc recommend models --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; m=json.load(sys.stdin).get("models", []); print(([x["model"]["version"] for x in m if x["live"]] or [0])[0])' ||
    echo 0
}

wait_live() {  # version
  local deadline=$((SECONDS + 60))
  until [ "$(live_version)" = "$1" ]; do
    [ $SECONDS -lt $deadline ] || { tail -20 "$T/recommender.log"; fail "live version never became $1"; }
    sleep 0.1
  done
}

train() {  # seed
  "$TRAIN" --interactions="$T/data/users.tsv" \
    --text_cache="$T/data/text_states.safetensors" \
    --image_cache="$T/data/image_states.safetensors" \
    --model=iisan --epochs=2 --embedding_dim=16 --bottleneck=8 --ffn_dim=32 \
    --seed="$1" --out_dir="$T/models" >"$T/train.$1.log" 2>&1 ||
    { tail -20 "$T/train.$1.log"; fail "training failed"; }
}

"$MAKE_DEMO" --out_dir="$T/data" --num_items=120 --num_users=200 --num_categories=4 \
  --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 --image_hidden=8 \
  >"$T/demo.log" 2>&1
# Catalog titles carry HTML entities, as the real data does.
sed -i 's/$/ \&amp; co/' "$T/data/items.tsv"
train 1
[ -f "$T/models/1/manifest.json" ] || fail "no model version 1"

# The sidecar also listens on a Unix socket (--unix_socket; the path must
# fit sockaddr_un, so not under the long TEST_TMPDIR).
SOCK_DIR=$(mktemp -d /tmp/recommend_e2e.XXXXXX)
SOCK="$SOCK_DIR/retrieval.sock"
start retrieval "$RETRIEVAL" --data_dir="$T/retrieval" --unix_socket="$SOCK"
publish --version_dir="$T/models/1" --items="$T/data/items.tsv" | tee "$T/publish1.log"
grep -q "published items version 1" "$T/publish1.log" || fail "publish v1"

# recctl model verify: the version checks out; a copy with one flipped byte
# in its embeddings does not (DATA_LOSS naming the file, exit 1).
rc model verify --version_dir="$T/models/1" | grep -q "sizes and CRC-32C verified" ||
  fail "verify v1: $(rc model verify --version_dir="$T/models/1" 2>&1)"
mkdir -p "$T/damaged" && cp -r "$T/models/1" "$T/damaged/1"
/usr/bin/python3 - "$T/damaged/1/item_embeddings.safetensors" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0x40; open(sys.argv[1], "wb").write(bytes(b))
PY
if rc model verify --version_dir="$T/damaged/1" 2>"$T/err"; then fail "damaged version verified"; fi
grep -q "DATA_LOSS: .*item_embeddings.safetensors" "$T/err" || fail "verify message: $(cat "$T/err")"

start recommender "$RECOMMENDER" --models_dir="$T/models" \
  --retrieval="127.0.0.1:$retrieval_PORT" --poll_interval=100ms
wait_live 1

# A user's history: all but the last item of the first user.
read -r -a ITEMS <<<"$(head -1 "$T/data/users.tsv" | cut -f2)"
HISTORY=$(IFS=,; echo "${ITEMS[*]:0:${#ITEMS[@]}-1}")
recommend --history="$HISTORY" --k=10 >"$T/rec1.json"
/usr/bin/python3 - "$T/rec1.json" "$HISTORY" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); history = set(sys.argv[2].split(","))
assert r["model"]["version"] == "1", r
items = r["items"]
assert len(items) == 10, r
assert not history & {i["key"] for i in items}, "history item recommended"
assert all(i["payload"].get("title", "").endswith(" & co") for i in items), "titles missing or not unescaped"
scores = [i["score"] for i in items]
assert scores == sorted(scores, reverse=True), scores
print("v1 recommends", [i["key"] for i in items[:3]], "...")
PY

# A second recommendation server reaching the sidecar over its Unix socket
# (--retrieval=unix:PATH) answers the same items, scores and titles.
start recommender_unix "$RECOMMENDER" --models_dir="$T/models" \
  --retrieval="unix:$SOCK" --poll_interval=100ms
deadline=$((SECONDS + 60))
until "$RECCTL" --recommender="127.0.0.1:$recommender_unix_PORT" recommend items --json \
    --history="$HISTORY" --k=10 >"$T/rec1_unix.json" 2>"$T/err"; do
  [ $SECONDS -lt $deadline ] || { tail -20 "$T/recommender_unix.log"; fail "no answer over unix: $(cat "$T/err")"; }
  sleep 0.1
done
/usr/bin/python3 - "$T/rec1.json" "$T/rec1_unix.json" <<'PY'
import json, sys
tcp, unix = (json.load(open(f)) for f in sys.argv[1:3])
assert unix["model"]["version"] == "1", unix
assert unix["items"] == tcp["items"], (unix["items"], tcp["items"])
print("over the unix socket: the same", len(unix["items"]), "items")
PY
kill -TERM "$recommender_unix_PID"
wait "$recommender_unix_PID" || fail "recommender_unix exited $?"

# Bad input: precise statuses, nothing served.
if recommend --history="$HISTORY" --k=0 2>"$T/err"; then
  fail "k=0 accepted"
fi
grep -q "k: must be in \[1, 1000\]" "$T/err" || fail "k=0 message: $(cat "$T/err")"
if recommend --history="$HISTORY" --k=5 --version=-1 2>"$T/err"; then
  fail "negative version accepted"
fi
grep -q "model.version: must be >= 0" "$T/err" || fail "version message: $(cat "$T/err")"

# Cold start: an all-unknown history gets the version's most popular items
# (popularity counted by the trainer and stored with the version).
recommend --history=no-such-item --k=5 >"$T/cold.json" ||
  fail "cold start failed"
/usr/bin/python3 - "$T/cold.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["fallback"] == "POPULAR", r
assert r["unknown_history_items"] == 1, r
assert len(r["items"]) == 5, r
scores = [i["score"] for i in r["items"]]
assert scores == sorted(scores, reverse=True) and scores[0] >= 1, scores
print("cold start: popular", [i["key"] for i in r["items"][:3]], "...")
PY

# Item to item: more like the first history item, itself excluded.
rc recommend similar --json --item="${ITEMS[0]}" --k=5 >"$T/similar.json" ||
  fail "SimilarItems failed"
/usr/bin/python3 - "$T/similar.json" "${ITEMS[0]}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keys = [i["key"] for i in r["items"]]
assert len(keys) == 5 and sys.argv[2] not in keys, r
print("similar items:", keys[:3], "...")
PY
if recommend --history="$HISTORY" --version=9 2>"$T/err"; then
  fail "unknown version accepted"
fi
grep -q "^recctl recommend items: NOT_FOUND: .*model.version: 9 is not loaded" "$T/err" ||
  fail "version message: $(cat "$T/err")"

# A bounded load: 8 closed-loop clients, 1,500 requests over every user's
# history: all answered by v1, and the server counted each one as OK.
ok_count() {
  curl -fsS "http://127.0.0.1:$recommender_METRICS/metrics" |
    sed -n 's/^recsys_recommender_requests_total{method="Recommend",code="OK"} //p' | head -1
}
before=$(ok_count); before=${before:-0}
rc recommend load --json --file="$T/data/users.tsv" --clients=8 --requests=1500 --k=10 \
  >"$T/load1.json" || fail "load run failed: $(cat "$T/load1.json")"
after=$(ok_count)
/usr/bin/python3 - "$T/load1.json" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] == 1500 and r["failed"] == 0 and r["codes"] == {"OK": 1500}, r
assert r["versions"] == {"1": 1500}, r
assert int(float(sys.argv[3])) - int(float(sys.argv[2])) == 1500, ("server counted", sys.argv[2:])
print(f"load: 1500 requests, 8 clients, {r['requests_per_second']:.0f} req/s, p99 {r['p99_ms']:.1f} ms")
PY

# A load run where every request fails (a version that is not loaded)
# exits 1 and says how many failed with which code.
if rc recommend load --file="$T/data/users.tsv" --clients=2 --requests=20 --version=9 \
    >/dev/null 2>"$T/err"; then
  fail "a failing load run exited 0"
fi
grep -q "20 of 20 requests failed (NOT_FOUND 20)" "$T/err" || fail "load failure: $(cat "$T/err")"

# Rollout under load: v2 is trained and published while 8 clients keep
# asking; no request fails during the switch. The server then answers with
# v2, and v1 still answers when pinned.
train 2
rc recommend load --json --file="$T/data/users.tsv" --clients=8 --requests=4000 \
  >"$T/load2.json" 2>&1 &
LOAD_PID=$!
publish --version_dir="$T/models/2" --previous_version_dir="$T/models/1" \
  --items="$T/data/items.tsv" >"$T/publish2.log"
wait_live 2
wait "$LOAD_PID" || fail "requests failed during the switch: $(cat "$T/load2.json")"
/usr/bin/python3 - "$T/load2.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0 and r["ok"] == 4000, r
assert set(r["versions"]) <= {"1", "2"}, r
print("load during the switch: 4000 ok, answers by version", r["versions"])
PY
recommend --history="$HISTORY" --k=5 >"$T/rec2.json"
grep -q '"model":{"model":"items","version":"2"}' "$T/rec2.json" || fail "live is not v2: $(cat "$T/rec2.json")"
recommend --history="$HISTORY" --k=5 --version=1 >"$T/rec1p.json"
grep -q '"model":{"model":"items","version":"1"}' "$T/rec1p.json" || fail "pinned v1: $(cat "$T/rec1p.json")"
echo "rollout: live v2, pinned v1 answers"

# Rollback in the sidecar: the recommendation server follows.
rc collections rollback --collection=items --version=1 >/dev/null
wait_live 1
echo "rollback: live v1 again"

# SIGTERM drains and exits 0.
for name in recommender retrieval; do
  pid_var="${name}_PID"; pid=${!pid_var}
  kill -TERM "$pid"
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$name ignored SIGTERM"
    sleep 0.05
  done
  wait "$pid" && rc=0 || rc=$?
  [ "$rc" -eq 0 ] || { tail "$T/$name.log"; fail "$name exited $rc"; }
done
rm -rf "$SOCK_DIR"
echo "recommend e2e: ok"
