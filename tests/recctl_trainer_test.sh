#!/usr/bin/env bash
# recctl's trainer group against real retrieval and trainer processes on
# loopback: submit from flags with --publish --watch (progress and
# per-epoch lines, exit 0 when PUBLISHED), jobs, get, versions, the
# published collection searched through recctl, a JSON JobSpec that the
# server refuses, and an unknown job: exit 1 with the server's status.
set -euo pipefail
source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init recctl_trainer
"$R/trainer/make_demo_data" --out_dir="$T/data" --num_items=60 --num_users=120 \
  --num_categories=3 --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 \
  --image_hidden=8 >"$T/demo.log" 2>&1
start retrieval "$R/retrieval/retrieval_server" --data_dir="$T/retrieval"
start trainer "$R/trainer/service/trainer_server" --data_dir="$T/trainer" \
  --retrieval="$retrieval_ADDR"
C() { "$R/clients/recctl/recctl" --retrieval="$retrieval_ADDR" --trainer="$trainer_ADDR" "$@"; }

C trainer submit --interactions="$T/data/users.tsv" --text_cache="$T/data/text_states.safetensors" \
  --image_cache="$T/data/image_states.safetensors" --items="$T/data/items.tsv" --epochs=2 \
  --embedding_dim=16 --bottleneck=8 --ffn_dim=32 --publish --watch >"$T/watch.txt" ||
  { cat "$T/watch.txt"; tail -20 "$T/trainer.log"; fail "submit --watch"; }
grep -q "^submitted job 1" "$T/watch.txt" || fail "no job id: $(head -3 "$T/watch.txt")"
grep -q "^epoch 2: loss" "$T/watch.txt" || fail "no per-epoch line: $(cat "$T/watch.txt")"
grep -q "PUBLISHED, model version 1" "$T/watch.txt" || fail "not published: $(tail -5 "$T/watch.txt")"
C trainer jobs | grep -Eq "^1 +train +PUBLISHED" || fail "jobs: $(C trainer jobs)"
C trainer get --job=1 --json | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["state"] == "JOB_PUBLISHED" and j["version"] == "1", j
assert len(j["epochs"]) == 2, j["epochs"]'
C trainer versions | grep -Eq "^1 +train .* yes +yes" || fail "versions: $(C trainer versions)"
KEY=$(head -1 "$T/data/items.tsv" | cut -f1)
C collections search --collection=items --key="$KEY" --k=3 | grep -q "^version 1" || fail "search the published items"

# A spec the server refuses: exit 1 with its status and message.
printf '{"train": {"interactions": "%s/nope.tsv", "text_cache": "%s"}}\n' "$T" \
  "$T/data/text_states.safetensors" >"$T/bad.json"
set +e
C trainer submit --spec="$T/bad.json" 2>"$T/err"; rc=$?
C trainer get --job=999 2>"$T/err2"; rc2=$?
set -e
[ $rc -eq 1 ] && grep -q "NOT_FOUND: submit: spec.train.interactions: no such file" "$T/err" ||
  fail "bad spec: rc=$rc $(cat "$T/err")"
[ $rc2 -eq 1 ] && grep -q "^recctl trainer get: NOT_FOUND" "$T/err2" || fail "unknown job: rc=$rc2 $(cat "$T/err2")"
echo "recctl trainer: ok"
