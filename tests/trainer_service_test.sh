#!/usr/bin/env bash
# The Trainer service end to end, every component a real process on
# loopback with a real SQLite job store:
#   1. bad submissions get precise statuses and record nothing;
#   2. a short train job, watched to PUBLISHED: the version directory, the
#      sidecar's live collection version with the right count, a search;
#   3. cancel during an epoch: CANCELLED within 5 s, no version;
#   4. kill -9 of the trainer mid-job: on restart the job is FAILED with the
#      reason, no version directory, the sidecar's live version unchanged,
#      and every earlier job still listed;
#   5. re-publish through PublishModelVersion; metrics; SIGTERM drains.
# Waits are polling loops with deadlines, never sleeps as synchronisation.
set -euo pipefail

source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init trainer_service
MAKE_DEMO="$R/trainer/make_demo_data"
TRAINER="$R/trainer/service/trainer_server"
WORKER="$R/trainer/service/job_worker"
RETRIEVAL="$R/retrieval/retrieval_server"
RECCTL="$R/clients/recctl/recctl"
py() { /usr/bin/python3 -c "$@"; }
start_trainer() {
  start trainer "$TRAINER" --data_dir="$T/trainer" --worker="$WORKER" \
    --retrieval="127.0.0.1:$retrieval_PORT" --cancel_grace=2s --max_queued_jobs=1
}
rc() { "$RECCTL" --trainer="127.0.0.1:$trainer_PORT" --retrieval="127.0.0.1:$retrieval_PORT" "$@"; }
tcli() { rc trainer "$@"; }
field() {  # job id, python expression over the job dict j
  tcli get --json --job="$1" | py "import json,sys; j=json.load(sys.stdin); print($2)"
}
job_id() { py 'import json,sys; print(json.load(sys.stdin)["job_id"])'; }
wait_field() {  # job id, expression, expected value, seconds
  local deadline=$((SECONDS + $4)) got=""
  while true; do
    got=$(field "$1" "$2" 2>/dev/null || echo "?")
    [ "$got" = "$3" ] && return 0
    [ $SECONDS -lt $deadline ] || { tail -30 "$T/trainer.log"; fail "job $1: $2 is '$got', wanted '$3'"; }
    sleep 0.05
  done
}
sidecar_live() {
  rc collections versions --json --collection=items 2>/dev/null |
    py 'import json,sys; print(json.load(sys.stdin)["live_version"])'
}
DATA="$T/data"
submit() {  # extra flags... ; prints the job id (data: $DATA)
  tcli submit --json --interactions="$DATA/users.tsv" \
    --text_cache="$DATA/text_states.safetensors" \
    --image_cache="$DATA/image_states.safetensors" --items="$DATA/items.tsv" \
    --embedding_dim=16 --bottleneck=8 --ffn_dim=32 "$@" | job_id
}

"$MAKE_DEMO" --out_dir="$T/data" --num_items=120 --num_users=200 --num_categories=4 \
  --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 --image_hidden=8 \
  >"$T/demo.log" 2>&1
# Larger, so that an epoch lasts long enough to kill the trainer inside a run.
"$MAKE_DEMO" --out_dir="$T/big" --num_items=300 --num_users=1000 --num_categories=4 \
  --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 --image_hidden=8 \
  >>"$T/demo.log" 2>&1
NUM_ITEMS=$(wc -l <"$T/data/items.tsv")
start retrieval "$RETRIEVAL" --data_dir="$T/retrieval"
start_trainer

# --- 1. Bad input: a precise status naming the field; nothing recorded.
expect_refused() {  # code, text, recctl trainer args...
  local code=$1 text=$2; shift 2
  if tcli "$@" >"$T/out" 2>"$T/err"; then fail "accepted: $*"; fi
  grep -q "^recctl trainer [a-z]*: $code: " "$T/err" || fail "wanted code $code for $*: $(cat "$T/err")"
  grep -qF -- "$text" "$T/err" || fail "wanted '$text' for $*: $(cat "$T/err")"
}
expect_refused NOT_FOUND "spec.train.interactions: no such file" submit --interactions="$T/nope.tsv" \
  --text_cache="$T/data/text_states.safetensors"
expect_refused INVALID_ARGUMENT "spec.train.interactions: a regular file, got the directory '" \
  submit --interactions="$T" --text_cache="$T/data/text_states.safetensors"
expect_refused INVALID_ARGUMENT "spec.train.text_cache: a regular file, got the special file '/dev/zero'" \
  submit --interactions="$T/data/users.tsv" --text_cache=/dev/zero
# A file name that is not UTF-8 (Latin-1 bytes: Linux allows them; a proto3
# string does not): refused naming the field, not a bare UNIMPLEMENTED.
expect_refused INVALID_ARGUMENT "spec.train.interactions: expected valid UTF-8, got '" \
  submit --interactions="$T/caf"$'\xe9'".tsv" --text_cache="$T/data/text_states.safetensors"
# ListJobs is read raw as well: a page token that is not UTF-8 names the
# field (it was UNIMPLEMENTED with no message), a foreign one says what it wants.
expect_refused INVALID_ARGUMENT "page_token: expected valid UTF-8, got 'x\xe9'" \
  jobs --page_token="x"$'\xe9'
expect_refused INVALID_ARGUMENT "page_token" jobs --page_token=nonsense
expect_refused INVALID_ARGUMENT "spec.device" submit --interactions="$T/data/users.tsv" \
  --text_cache="$T/data/text_states.safetensors" --device=cuda:0
expect_refused INVALID_ARGUMENT "spec.train.text_cache" submit --interactions="$T/data/users.tsv" \
  --text_cache="$T/data/users.tsv"
printf 'u1\t%s\n' "$(head -1 "$T/data/items.tsv" | cut -f1)" >"$T/short_users.tsv"
expect_refused INVALID_ARGUMENT "none usable" submit --interactions="$T/short_users.tsv" \
  --text_cache="$T/data/text_states.safetensors"
expect_refused INVALID_ARGUMENT "spec.train.layer_mode" submit --interactions="$T/data/users.tsv" \
  --text_cache="$T/data/text_states.safetensors" --layer_mode=bogus
# Refused at submit, not queued: NaN and negative learning rates were taken
# for the default and trained; an infinite one ran until the divergence
# check; patience -3 "succeeded" with no epoch trained; an odd
# embedding_dim failed only in the worker.
for bad in "learning_rate=nan:spec.train.learning_rate: 0 (the default, 1e-3) or in [1e-9, 1], got nan" \
           "learning_rate=-1:spec.train.learning_rate" "learning_rate=inf:spec.train.learning_rate" \
           "learning_rate=5e-324:spec.train.learning_rate" \
           "patience=-3:spec.train.patience: must be in [0, 1000], got -3" \
           "max_steps_per_epoch=-7:spec.train.max_steps_per_epoch" \
           "embedding_dim=3:spec.train.embedding_dim: a multiple of the user encoder's 2 attention heads, got 3" \
           "max_len=4096:spec.train.batch_size: 64 windows of max_len 4096 (262144 positions a step) make the attention scores"; do
  expect_refused INVALID_ARGUMENT "${bad#*:}" submit --interactions="$T/data/users.tsv" \
    --text_cache="$T/data/text_states.safetensors" --"${bad%%:*}"
done
# A stand-in backbone too large to build: its worker allocated until the
# machine ran out of memory.
printf '[PAD]\n[UNK]\n' >"$T/tiny_vocab.txt"
expect_refused INVALID_ARGUMENT "spec.build_cache.backbone: a stand-in of at most 48 layers" \
  submit --kind=build_cache --items="$T/data/items.tsv" --vocab="$T/tiny_vocab.txt" \
  --output="$T/huge.safetensors" --backbone=1000x100000
# A build replaces its output: never a file that is not a cache.
echo "precious" >"$T/precious.txt"
expect_refused FAILED_PRECONDITION "exists and is not a hidden-state cache" \
  submit --kind=build_cache --items="$T/data/items.tsv" --vocab="$T/tiny_vocab.txt" \
  --output="$T/precious.txt"
[ "$(cat "$T/precious.txt")" = precious ] || fail "the refused build touched its output"
# recctl itself: a value an int32 field cannot hold is not wrapped.
if tcli submit --interactions="$T/data/users.tsv" --text_cache="$T/data/text_states.safetensors" \
  --batch_size=4294967360 >"$T/out" 2>"$T/err"; then fail "--batch_size=2^32+64 was accepted"; fi
grep -qF -- "--batch_size: expected an integer in [-2147483648, 2147483647], got '4294967360'" "$T/err" ||
  fail "--batch_size=2^32+64: $(cat "$T/err")"
expect_refused NOT_FOUND "job_id: no job 999" get --job=999
expect_refused NOT_FOUND "no job 999" submit --interactions="$T/data/users.tsv" \
  --text_cache="$T/data/text_states.safetensors" --resume_from=999
jobs=$(tcli jobs --json | py 'import json,sys; print(len(json.load(sys.stdin).get("jobs", [])))')
[ "$jobs" = 0 ] || fail "refused submissions were recorded: $jobs jobs"

# --- 2. A short job, watched to PUBLISHED.
J1=$(submit --epochs=2 --patience=5 --publish)
[ "$J1" = 1 ] || fail "first job id is '$J1'"
tcli watch --job="$J1" | tee "$T/watch1.log" || fail "job $J1 did not end PUBLISHED"
grep -q "epoch 1: loss" "$T/watch1.log" || fail "watch showed no epoch metrics"
grep -q "PUBLISHED" "$T/watch1.log" || fail "watch did not show PUBLISHED"
V1=$(field "$J1" 'j["version"]')
[ -f "$T/trainer/models/$V1/manifest.json" ] || fail "no version directory $V1"
[ "$(sidecar_live)" = "$V1" ] || fail "sidecar live version is '$(sidecar_live)', not $V1"
count=$(rc collections versions --json --collection=items |
  py "import json,sys; print([v['entry_count'] for v in json.load(sys.stdin)['versions'] if v['version'] == '$V1'][0])")
[ "$count" = "$NUM_ITEMS" ] || fail "collection version $V1 holds $count entries, not $NUM_ITEMS"
KEY=$(head -1 "$T/data/items.tsv" | cut -f1)
hits=$(rc collections search --json --collection=items --key="$KEY" --k=5 |
  py 'import json,sys; print(len(json.load(sys.stdin)["results"][0]["hits"]))')
[ "$hits" -ge 5 ] || fail "search returned $hits hits"
epochs=$(field "$J1" 'len(j["epochs"])')
[ "$epochs" = 2 ] || fail "job record has $epochs epochs"
field "$J1" '[t["state"] for t in j["transitions"]]' | grep -q "JOB_QUEUED.*JOB_RUNNING.*JOB_PUBLISHING.*JOB_PUBLISHED" ||
  fail "transitions: $(field "$J1" 'j["transitions"]')"
tcli versions --json | py "import json,sys; v=json.load(sys.stdin); x=v['versions'][-1]; assert v['live_version']=='$V1' and x['live'] and x['job_id']=='$J1' and x['item_count']=='$NUM_ITEMS', v" ||
  fail "ListModelVersions: $(tcli versions --json)"

# --- 3. Cancel during an epoch: CANCELLED within 5 s, no version.
J2=$(submit --epochs=500 --patience=500)
wait_field "$J2" 'j["state"]' JOB_RUNNING 30
wait_field "$J2" 'int(j.get("progress", {}).get("step", 0)) > 0' True 60
V2=$(field "$J2" 'j["version"]')
# A cache build queues behind it on the same device; a second build into the
# same output is refused while the first is pending.
{ echo "[PAD]"; echo "[UNK]"; echo "[CLS]"; echo "[SEP]"; echo "[MASK]";
  cut -f2 "$T/data/items.tsv" | tr ' ' '\n' | tr -d '#0-9' | sort -u | grep .; } >"$T/vocab.txt"
build() {
  tcli submit --json --kind=build_cache --items="$T/data/items.tsv" --vocab="$T/vocab.txt" \
    --output="$T/built_text.safetensors" --backbone=2x32 "$@"
}
B=$(build | job_id)
[ "$(field "$B" 'j["state"], j.get("queue_position", 0)')" = "JOB_QUEUED 0" ] ||
  fail "build job $B: $(field "$B" 'j["state"], j.get("queue_position", 0)')"
expect_refused ALREADY_EXISTS "already building" submit --kind=build_cache --items="$T/data/items.tsv" \
  --vocab="$T/vocab.txt" --output="$T/built_text.safetensors"
# The queue is full (--max_queued_jobs=1: B waits, J2 runs): refused, not recorded.
expect_refused RESOURCE_EXHAUSTED "the queue of cpu holds 1 jobs, its limit (--max_queued_jobs)" \
  submit --interactions="$DATA/users.tsv" --text_cache="$DATA/text_states.safetensors"
t0=$(date +%s.%N)
tcli cancel --job="$J2" >/dev/null
wait_field "$J2" 'j["state"]' JOB_CANCELLED 5
t1=$(date +%s.%N)
echo "cancel latency: $(py "print(round($t1 - $t0, 2))") s"
[ ! -e "$T/trainer/models/$V2" ] || fail "cancelled job left version $V2"
! ls -a "$T/trainer/models" | grep -q '^\.tmp-' || fail "cancelled job left a temporary version"
expect_refused FAILED_PRECONDITION "cannot be cancelled" cancel --job="$J2"
tcli watch --job="$B" >"$T/watch_build.log" || { cat "$T/watch_build.log"; fail "build job $B"; }
[ "$(field "$B" 'json.loads(j["metrics_json"])["items_written"]')" = "$NUM_ITEMS" ] ||
  fail "build job wrote $(field "$B" 'j["metrics_json"]')"
[ -s "$T/built_text.safetensors" ] || fail "no cache file from the build job"

# --- 4. kill -9 of the trainer mid-job, then resume.
DATA="$T/big"
# Enough epochs that the job is still running when the test, having seen
# epoch 1 end, checks and kills it (with 3, a faster trainer sometimes
# finished first): at least 6 run (patience 5).
RUN=(--epochs=8 --patience=5 --seed=7)
J3=$(submit "${RUN[@]}" --publish)
wait_field "$J3" 'len(j.get("epochs", [])) >= 1' True 60
[ "$(field "$J3" 'j["state"]')" = JOB_RUNNING ] || fail "job $J3 ended before the kill"
V3=$(field "$J3" 'j["version"]')
kill -9 "$trainer_PID"
wait "$trainer_PID" 2>/dev/null || true
# The worker dies with its parent (PR_SET_PDEATHSIG).
deadline=$((SECONDS + 10))
while pgrep -f "$T/trainer/jobs/$J3/spec.pb" >/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "job $J3's worker outlived the trainer"
  sleep 0.05
done
start_trainer
[ "$(field "$J3" 'j["state"]')" = JOB_FAILED ] || fail "job $J3 is $(field "$J3" 'j["state"]') after restart"
field "$J3" 'j["error"]' | grep -q "trainer restarted during the job" || fail "no restart reason"
[ "$(field "$J3" 'len(j["epochs"]) >= 1')" = True ] || fail "epoch metrics lost in the crash"
[ ! -e "$T/trainer/models/$V3" ] || fail "crashed job left version $V3"
! ls -a "$T/trainer/models" | grep -q '^\.tmp-' || fail "crashed job left a temporary version"
[ "$(sidecar_live)" = "$V1" ] || fail "sidecar live version changed to $(sidecar_live)"
all=$(tcli jobs --json | py 'import json,sys; print(" ".join(j["id"] for j in json.load(sys.stdin)["jobs"]))')
[ "$all" = "$J3 $B $J2 $J1" ] || fail "restarted trainer lists '$all'"
page=$(tcli jobs --json --page_size=3 | py 'import json,sys; r=json.load(sys.stdin); print(len(r["jobs"]), r["next_page_token"])')
[ "$page" = "3 $J2" ] || fail "first page of 3: '$page'"
rest=$(tcli jobs --json --page_size=3 --page_token="$J2" | py 'import json,sys; r=json.load(sys.stdin); print([j["id"] for j in r["jobs"]], r.get("next_page_token", ""))')
[ "$rest" = "['$J1'] " ] || fail "second page: '$rest'"
n=$(tcli jobs --json --kind=build_cache | py 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
[ "$n" = 1 ] || fail "kind filter found $n build jobs"
n=$(tcli jobs --json --state=CANCELLED | py 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
[ "$n" = 1 ] || fail "state filter found $n cancelled jobs"
expect_refused FAILED_PRECONDITION "is PUBLISHED" submit --resume_from="$J1"
# Resume J3 from its last completed epoch, and run the same job uninterrupted.
J4=$(tcli submit --json --resume_from="$J3" --publish | job_id)
tcli watch --job="$J4" >"$T/watch4.log" || { cat "$T/watch4.log"; fail "resumed job $J4"; }
first=$(field "$J4" 'j["epochs"][0]["epoch"]')
[ "$first" -ge 2 ] || fail "resumed job retrained from epoch $first"
J5=$(submit "${RUN[@]}")
tcli watch --job="$J5" >"$T/watch5.log" || fail "reference job $J5"
m4=$(field "$J4" 'json.loads(j["metrics_json"])["test"]')
m5=$(field "$J5" 'json.loads(j["metrics_json"])["test"]')
echo "resumed: $m4"
echo "uninterrupted: $m5"
[ "$m4" = "$m5" ] || fail "resumed run's test metrics differ from the uninterrupted run's"
V4=$(field "$J4" 'j["version"]')
[ "$(sidecar_live)" = "$V4" ] || fail "resumed version $V4 is not live"
DATA="$T/data"

# --- 5. Re-publish, metrics, SIGTERM.
tcli publish --json --version="$V1" | grep -q '"upserted"' || fail "re-publish of $V1"
[ "$(sidecar_live)" = "$V1" ] || fail "re-published $V1 is not live: $(sidecar_live)"
expect_refused NOT_FOUND "no model version 77" publish --version=77
metrics=$(curl -sf "http://127.0.0.1:$trainer_METRICS/metrics")
grep -q 'recsys_trainer_jobs{kind="train",state="PUBLISHED"} 2' <<<"$metrics" ||
  fail "jobs gauge: $(echo "$metrics" | grep recsys_trainer_jobs)"
grep -q 'recsys_trainer_queue_length{device="cpu"} 0' <<<"$metrics" || fail "queue gauge"
grep -q 'recsys_trainer_published_version{model="items"} '"$V1" <<<"$metrics" || fail "published gauge"
grep -q 'recsys_trainer_epoch_seconds_count{device="cpu"}' <<<"$metrics" || fail "epoch histogram"
kill -TERM "$trainer_PID"
wait "$trainer_PID" || fail "trainer did not exit 0 on SIGTERM"
echo PASS
