#!/usr/bin/env bash
# The incremental embedding refresh end to end, every component a real
# process on loopback (retrieval sidecar, trainer, its job workers, recctl):
#   1. train a text-only IISAN version on the synthetic demo catalog with the
#      hashed bag-of-words stand-in cache, published;
#   2. refused refresh submissions: precise statuses, nothing recorded;
#   3. refresh after adding 10% new items, changing 5% of the titles and
#      removing 3%, watched to PUBLISHED: the new version holds exactly the
#      updated catalog, unchanged items' embeddings are bit-identical to the
#      parent's, only new and changed items were encoded (the job record's
#      counts), the user encoder file is the parent's (bytes and CRC), the
#      sidecar has the new version live with the right count, the metrics
#      carry the counts; the refresh's time is printed beside one training
#      epoch's;
#   4. the job's updated cache feeds a second refresh that encodes nothing;
#      a version without a recorded backbone fingerprint is refused.
# Waits are polling loops or blocking watches, never sleeps.
set -euo pipefail

source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init trainer_refresh
py() { PYTHONPATH="$R/tests" /usr/bin/python3 -c "$@"; }
C() { "$R/clients/recctl/recctl" --retrieval="$retrieval_ADDR" --trainer="$trainer_ADDR" "$@"; }
job() {  # job id, python expression over the job dict j
  C trainer get --job="$1" --json | py "import json,sys; j=json.load(sys.stdin); print($2)"
}
sidecar() {  # python expression over the item collection's versions v (JSON)
  C collections versions --json --collection=items |
    py "import json,sys; v=json.load(sys.stdin); print($1)"
}
D="$T/data"
"$R/trainer/make_demo_data" --out_dir="$D" --num_items=600 --num_users=1500 --num_categories=4 \
  --num_styles=4 --text_states=3 --text_hidden=8 --image_states=3 --image_hidden=8 >"$T/demo.log" 2>&1
"$R/trainer/make_standin_text_cache" --items="$D/items.tsv" --out="$D/text.st" --num_states=5 \
  --hidden_size=64 >>"$T/demo.log" 2>&1
start retrieval "$R/retrieval/retrieval_server" --data_dir="$T/retrieval"
start trainer "$R/trainer/service/trainer_server" --data_dir="$T/trainer" --retrieval="$retrieval_ADDR"
M="$T/trainer/models"

# --- 1. Train and publish version 1.
C trainer submit --interactions="$D/users.tsv" --text_cache="$D/text.st" --items="$D/items.tsv" \
  --epochs=2 --patience=5 --embedding_dim=16 --bottleneck=8 --ffn_dim=32 --publish --watch \
  >"$T/train.txt" || { cat "$T/train.txt"; tail -20 "$T/trainer.log"; fail "train job"; }
V1=$(job 1 'j["version"]')
[ "$V1" = 1 ] || fail "train job wrote version '$V1'"
EPOCH_S=$(job 1 'min(float(e["seconds"]) for e in j["epochs"])')

# --- The updated catalog: 3% removed, 5% retitled, 10% new.
py '
import sys
rows = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1])]
n = len(rows)
removed = {k for i, (k, _) in enumerate(rows) if i % 33 == 5}
changed = {k for i, (k, _) in enumerate(rows) if i % 20 == 7} - removed
out = []
for k, t in rows:
    if k in removed: continue
    out.append((k, t + " (2027 edition)" if k in changed else t))
for i in range(n // 10):
    out.append(("NEW%04d" % i, "refurbished %s mk%d" % (rows[(7 * i) % n][1], i)))
with open(sys.argv[2], "w") as f:
    for k, t in out: f.write(k + "\t" + t + "\n")
for name, keys in (("removed", removed), ("changed", changed)):
    open(sys.argv[3] + "." + name, "w").write("\n".join(sorted(keys)) + "\n")
' "$D/items.tsv" "$T/updated.tsv" "$T/keys"
N_NEW=$(wc -l <"$T/updated.tsv")
N_REMOVED=$(grep -c . "$T/keys.removed")
N_CHANGED=$(grep -c . "$T/keys.changed")
N_ADDED=$((N_NEW - $(wc -l <"$D/items.tsv") + N_REMOVED))
echo "catalog: $(wc -l <"$D/items.tsv") -> $N_NEW items ($N_ADDED new, $N_CHANGED retitled, $N_REMOVED removed)"

# --- 2. Refused at submit, nothing recorded.
refused() {  # status name, text, flags...
  local code=$1 text=$2; shift 2
  if C trainer submit --kind=refresh "$@" >"$T/out" 2>"$T/err"; then fail "accepted: $*"; fi
  grep -q "$code: submit: " "$T/err" || fail "wanted $code for $*: $(cat "$T/err")"
  grep -qF -- "$text" "$T/err" || fail "wanted '$text' for $*: $(cat "$T/err")"
}
refused NOT_FOUND "spec.refresh.version: no model version 99" --version=99 \
  --items="$T/updated.tsv" --text_cache="$D/text.st"
refused NOT_FOUND "spec.refresh.items_table: no such file" --version="$V1" \
  --items="$T/nope.tsv" --text_cache="$D/text.st"
refused INVALID_ARGUMENT "spec.refresh.items_table: a file path is required" --version="$V1" \
  --text_cache="$D/text.st"
refused INVALID_ARGUMENT "spec.refresh.text_cache" --version="$V1" --items="$T/updated.tsv" \
  --text_cache="$D/users.tsv"
"$R/trainer/make_standin_text_cache" --items="$T/updated.tsv" --out="$T/other_seed.st" \
  --num_states=5 --hidden_size=64 --seed=99 >/dev/null
refused FAILED_PRECONDITION "backbone fingerprint" --version="$V1" --items="$T/updated.tsv" \
  --text_cache="$T/other_seed.st"
refused FAILED_PRECONDITION "backbone fingerprint" --version="$V1" --items="$T/updated.tsv" \
  --text_cache="$D/text_states.safetensors"
refused INVALID_ARGUMENT "spec.refresh.image_cache" --version="$V1" --items="$T/updated.tsv" \
  --text_cache="$D/text.st" --image_cache="$D/image_states.safetensors"
[ "$(C trainer jobs --json | py 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" = 1 ] ||
  fail "refused refreshes were recorded"

# --- 3. The refresh, watched to PUBLISHED.
t0=$(date +%s.%N)
C trainer submit --kind=refresh --version="$V1" --items="$T/updated.tsv" --text_cache="$D/text.st" \
  --publish --watch >"$T/refresh.txt" || { cat "$T/refresh.txt"; tail -20 "$T/trainer.log"; fail "refresh job"; }
t1=$(date +%s.%N)
J=$(sed -n 's/^submitted job //p' "$T/refresh.txt")
grep -q "PUBLISHED, model version" "$T/refresh.txt" || fail "watch did not end PUBLISHED: $(tail -3 "$T/refresh.txt")"
V2=$(job "$J" 'j["version"]')
[ "$V2" = 2 ] || fail "refresh wrote version '$V2'"
[ "$(job "$J" 'j["kind"]')" = JOB_REFRESH ] || fail "job kind $(job "$J" 'j["kind"]')"
counts=$(job "$J" 'json.loads(j["metrics_json"])')
want_reused=$((N_NEW - N_ADDED - N_CHANGED))
py "c = $counts
assert c['recomputed'] == $N_ADDED + $N_CHANGED, c
assert c['added'] == $N_ADDED and c['changed'] == $N_CHANGED, c
assert c['reused'] == $want_reused, c
assert c['removed'] == $N_REMOVED and c['items'] == $N_NEW and c['reembedded'] == 0, c
assert c['verified'] > 0, c" || fail "job record counts: $counts"

# The versions' files: keys, embeddings bit for bit, the user encoder.
py '
import sys
from version_rows import load
m, removed_f, changed_f, upd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
p, pm = load(m + "/1")
c, cm = load(m + "/2")
removed = set(open(removed_f).read().split())
changed = set(open(changed_f).read().split())
want = [l.split("\t")[0] for l in open(upd)]
assert list(c) == want, "version 2 keys are not the updated catalog"
assert not removed & set(c), "removed items are still in version 2"
same = [k for k in c if k in p and k not in changed]
assert same and all(c[k] == p[k] for k in same), "unchanged embeddings differ"
assert all(c[k] != p[k] for k in changed), "a retitled item kept its old embedding"
assert cm["kind"] == "refresh" and cm["parent_version"] == 1, cm["kind"]
assert cm["files"]["user_encoder.safetensors"] == pm["files"]["user_encoder.safetensors"]
bb = [x["backbone_fingerprint"] for x in cm["config"]["modalities"]]
assert bb == [x["backbone_fingerprint"] for x in pm["config"]["modalities"]] and bb[0], bb
print("embeddings: %d unchanged bit-identical, %d retitled re-embedded, %d new" %
      (len(same), len(changed), sum(1 for k in c if k not in p)))
' "$M" "$T/keys.removed" "$T/keys.changed" "$T/updated.tsv" || fail "version 2 contents"
cmp "$M/1/user_encoder.safetensors" "$M/2/user_encoder.safetensors" || fail "user encoder differs"

# The sidecar: version 2 live with the updated catalog's count; a new item searchable.
[ "$(sidecar 'v["live_version"]')" = "$V2" ] || fail "sidecar live is not $V2"
count=$(sidecar "[x['entry_count'] for x in v['versions'] if x['version'] == '$V2'][0]")
[ "$count" = "$N_NEW" ] || fail "sidecar version $V2 holds $count entries, not $N_NEW"
C collections search --collection=items --key=NEW0001 --k=3 | grep -q "^version $V2" ||
  fail "search for a new item"
C trainer versions | grep -Eq "^2 +refresh .* yes +yes" || fail "versions: $(C trainer versions)"
metrics=$(curl -sf "http://127.0.0.1:$trainer_METRICS/metrics")
for o in "reused $want_reused" "recomputed $((N_ADDED + N_CHANGED))" "removed $N_REMOVED"; do
  set -- $o
  grep -q "recsys_trainer_refresh_items{outcome=\"$1\"} $2\$" <<<"$metrics" ||
    fail "metric $1: $(echo "$metrics" | grep recsys_trainer_refresh_items)"
done
grep -q 'recsys_trainer_jobs{kind="refresh",state="PUBLISHED"} 1' <<<"$metrics" || fail "jobs gauge"
py "c = $counts
print('refresh: %.2f s in the worker (encode %.2f s, embed %.2f s), %.2f s submit-to-PUBLISHED; '
      'one training epoch: %.2f s; worker / epoch = %.2f' %
      (c['seconds'], c['encode_seconds'], c['embed_seconds'], $t1 - $t0, $EPOCH_S, c['seconds'] / $EPOCH_S))"

# --- The nightly chain: the job's updated cache feeds the next refresh, which
# then encodes nothing and copies every embedding.
NEXT_CACHE=$(job "$J" 'json.loads(j["metrics_json"])["text_cache"]')
[ -s "$NEXT_CACHE" ] || fail "the refresh left no updated cache at '$NEXT_CACHE'"
C trainer submit --kind=refresh --version="$V2" --items="$T/updated.tsv" --text_cache="$NEXT_CACHE" \
  --watch >"$T/chain.txt" || { cat "$T/chain.txt"; fail "chained refresh"; }
J3=$(sed -n 's/^submitted job //p' "$T/chain.txt")
chain=$(job "$J3" 'json.loads(j["metrics_json"])')
py "c = $chain
assert c['reused'] == $N_NEW and c['recomputed'] == 0 and c['removed'] == 0, c" ||
  fail "chained refresh counts: $chain"
[ "$(job "$J3" 'j["state"]')" = JOB_SUCCEEDED ] || fail "chained refresh is $(job "$J3" 'j["state"]')"
[ "$(sidecar 'v["live_version"]')" = "$V2" ] ||
  fail "an unpublished refresh changed the sidecar's live version"

# --- 4. A version written before backbones were recorded: refused, naming the field.
cp -r "$M/1" "$M/40"
py '
import json, sys
p = sys.argv[1] + "/manifest.json"
m = json.load(open(p))
m["version"] = 40
for x in m["config"]["modalities"]: x.pop("backbone_fingerprint")
json.dump(m, open(p, "w"))' "$M/40"
refused FAILED_PRECONDITION "no config.modalities[0].backbone_fingerprint" --version=40 \
  --items="$T/updated.tsv" --text_cache="$D/text.st"
echo PASS
