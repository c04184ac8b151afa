#!/usr/bin/env bash
# Image hidden-state caches built through the Trainer service and the
# image-side embedding refresh end to end, every component a real process on
# loopback (retrieval sidecar, trainer, its job workers, recctl), on real PNG
# files written at test time:
#   1. bad image build submissions: precise statuses, nothing recorded;
#   2. the text and the image caches built by build_cache jobs (tiny BERT and
#      ViT stand-ins); a second image build into the same output is refused
#      while the first is queued behind a running job; a running image build
#      cancelled stops by itself and writes no cache;
#   3. a text+image IISAN version trained through the service, published;
#   4. refresh after rewriting 5% of the image files and adding 10% new items
#      (titles and images), watched to PUBLISHED: only the changed and new
#      items were encoded (per side, in the job record), unchanged items'
#      embeddings are bit-identical to the parent's, changed ones are not,
#      and the sidecar has the new version live with the right count.
# Waits are blocking watches or polling loops with deadlines, never sleeps.
set -euo pipefail

source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init trainer_image_refresh
py() { PYTHONPATH="$R/tests" /usr/bin/python3 -c "$@"; }
C() { "$R/clients/recctl/recctl" --retrieval="$retrieval_ADDR" --trainer="$trainer_ADDR" "$@"; }
job() {  # job id, python expression over the job dict j
  C trainer get --job="$1" --json | py "import json,sys; j=json.load(sys.stdin); print($2)"
}
wait_job() {  # job id, expression, expected value, seconds
  local deadline=$((SECONDS + $4)) got=""
  while true; do
    got=$(job "$1" "$2" 2>/dev/null || echo "?")
    [ "$got" = "$3" ] && return 0
    [ $SECONDS -lt $deadline ] || { tail -30 "$T/trainer.log"; fail "job $1: $2 is '$got', wanted '$3'"; }
    sleep 0.05
  done
}
njobs() { C trainer jobs --json | py 'import json,sys; print(len(json.load(sys.stdin).get("jobs", [])))'; }
refused() {  # status name, text, submit flags...
  local code=$1 text=$2; shift 2
  if C trainer submit "$@" >"$T/out" 2>"$T/err"; then fail "accepted: $*"; fi
  grep -q "$code: submit: " "$T/err" || fail "wanted $code for $*: $(cat "$T/err")"
  grep -qF -- "$text" "$T/err" || fail "wanted '$text' for $*: $(cat "$T/err")"
}
D="$T/data"
IMG="$T/img"  # images.tsv / updated_images.tsv, paths relative to it
TEXT_BB=4x32
IMAGE_BB=4x64@32/8
"$R/trainer/make_demo_data" --out_dir="$D" --num_items=150 --num_users=500 --num_categories=4 \
  --num_styles=4 --text_states=3 --text_hidden=8 --image_states=3 --image_hidden=8 >"$T/demo.log" 2>&1
# Every word of the titles ("red microscope #12") is in the vocabulary, the
# numbers too: the titles' states differ.
{ echo "[PAD]"; echo "[UNK]"; echo "[CLS]"; echo "[SEP]"; echo "[MASK]"; echo "#";
  cut -f2 "$D/items.tsv" | tr ' #' '\n\n' | sort -u | grep .; } >"$T/vocab.txt"

# Real PNG files (zlib + the PNG chunk layout): a 32x32 RGB pattern per
# item, drawn from its key and a variant (a changed image is another variant).
cat >"$T/png.py" <<'EOF'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(key, variant, size=32):
    h = zlib.crc32((key + "/" + str(variant)).encode())
    r, g, b, step = h & 255, (h >> 8) & 255, (h >> 16) & 255, 2 + (h >> 24) % 7
    rows = b"".join(b"\0" + bytes(
        v for x in range(size) for v in ((r + x * step) % 256, (g + y * step) % 256,
                                          (b + (x ^ y)) % 256)) for y in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
def write(img_dir, key, variant):
    with open(img_dir + "/a/" + key + ".png", "wb") as f:
        f.write(png(key, variant))
EOF
mkdir -p "$IMG/a"
py '
import sys; sys.path.insert(0, sys.argv[1]); import png
items, img = sys.argv[2], sys.argv[3]
with open(img + "/images.tsv", "w") as t:
    for line in open(items):
        key = line.split("\t", 1)[0]
        png.write(img, key, 0)
        t.write(key + "\ta/" + key + ".png\n")
' "$T" "$D/items.tsv" "$IMG"
N_OLD=$(wc -l <"$D/items.tsv")
start retrieval "$R/retrieval/retrieval_server" --data_dir="$T/retrieval"
start trainer "$R/trainer/service/trainer_server" --data_dir="$T/trainer" --retrieval="$retrieval_ADDR" \
  --cancel_grace=60s
M="$T/trainer/models"

# --- 1. Bad image builds: refused at submit, nothing recorded.
B=(--kind=build_cache --modality=image --output="$T/image.st")
printf 'X1\ta/%s.png\nX2\ta/nope.png\n' "$(head -1 "$D/items.tsv" | cut -f1)" >"$IMG/broken.tsv"
refused NOT_FOUND "spec.build_cache.items_table: 1 of 2 image files do not exist" "${B[@]}" \
  --items="$IMG/broken.tsv"
grep -qF "the image of 'X2', 'a/nope.png'" "$T/err" || fail "the missing image is not named: $(cat "$T/err")"
refused INVALID_ARGUMENT "spec.build_cache.backbone: expected LAYERSxHIDDEN[@IMAGE/PATCH]" "${B[@]}" \
  --items="$IMG/images.tsv" --backbone=4x64@30/8
refused INVALID_ARGUMENT "spec.build_cache.vocab: empty for an image cache" "${B[@]}" \
  --items="$IMG/images.tsv" --vocab="$T/vocab.txt"
refused NOT_FOUND "spec.build_cache.weights: no such file" "${B[@]}" --items="$IMG/images.tsv" \
  --weights="$T/nope.safetensors"
refused INVALID_ARGUMENT "spec.build_cache.modality: text or image, got 'audio'" --kind=build_cache \
  --modality=audio --items="$IMG/images.tsv" --output="$T/image.st"
refused INVALID_ARGUMENT "spec.build_cache.backbone: expected LAYERSxHIDDEN" --kind=build_cache \
  --items="$D/items.tsv" --vocab="$T/vocab.txt" --backbone=2x30 --output="$T/text.st"
[ "$(njobs)" = 0 ] || fail "refused builds were recorded"

# --- 2. The caches, built by the service. The text one first, watched.
C trainer submit --kind=build_cache --items="$D/items.tsv" --vocab="$T/vocab.txt" \
  --backbone="$TEXT_BB" --output="$T/text.st" --watch >"$T/build_text.txt" ||
  { cat "$T/build_text.txt"; tail -20 "$T/trainer.log"; fail "text build job"; }
[ "$(job 1 'json.loads(j["metrics_json"])["items_written"]')" = "$N_OLD" ] ||
  fail "text build: $(job 1 'j["metrics_json"]')"
# A long train job holds the device, so the image build waits QUEUED and a
# second build into its output is refused; then the train job is cancelled.
C trainer submit --interactions="$D/users.tsv" --text_cache="$T/text.st" --epochs=500 \
  --patience=500 --embedding_dim=16 --bottleneck=8 --ffn_dim=32 >/dev/null
wait_job 2 'j["state"]' JOB_RUNNING 60
C trainer submit "${B[@]}" --items="$IMG/images.tsv" --backbone="$IMAGE_BB" >/dev/null
[ "$(job 3 'j["state"]')" = JOB_QUEUED ] || fail "image build is $(job 3 'j["state"]')"
[ "$(job 3 'j["spec"]["build_cache"]["modality"]')" = image ] || fail "image build's spec"
refused ALREADY_EXISTS "spec.build_cache.output: another job is already building" "${B[@]}" \
  --items="$IMG/images.tsv" --backbone="$IMAGE_BB"
C trainer cancel --job=2 >/dev/null
C trainer watch --job=3 >"$T/build_image.txt" ||
  { cat "$T/build_image.txt"; tail -20 "$T/trainer.log"; fail "image build job"; }
grep -q "build_cache image" "$T/build_image.txt" || fail "no build progress: $(cat "$T/build_image.txt")"
py "import json
c = json.loads('''$(job 3 'j["metrics_json"]')''')
assert c['modality'] == 'image' and c['items_written'] == $N_OLD and c['items_failed'] == 0, c" ||
  fail "image build metrics: $(job 3 'j["metrics_json"]')"
[ ! -e "$T/image.st.work" ] || fail "the image build left its chunk directory"
[ "$(job 3 'j["state"]')" = JOB_SUCCEEDED ] || fail "image build is $(job 3 'j["state"]')"
# Cancel during an image build (the default 4x192@224/16 stand-in, slow
# enough): the worker stops itself at its next image batch (the trainer's
# SIGKILL grace is 60 s), and no cache is written.
C trainer submit "${B[@]}" --items="$IMG/images.tsv" --output="$T/slow_image.st" >/dev/null
wait_job 4 'int(j.get("progress", {}).get("step", 0)) > 0' True 120
C trainer cancel --job=4 >/dev/null
wait_job 4 'j["state"]' JOB_CANCELLED 20
grep -q "the job was cancelled" "$T/trainer/jobs/4/worker.log" ||
  fail "the image build did not stop by itself: $(tail -3 "$T/trainer/jobs/4/worker.log")"
[ ! -e "$T/slow_image.st" ] || fail "a cancelled build wrote its cache"

# --- 3. A text+image IISAN version, trained and published through the service.
C trainer submit --interactions="$D/users.tsv" --text_cache="$T/text.st" --image_cache="$T/image.st" \
  --items="$D/items.tsv" --epochs=2 --patience=5 --embedding_dim=16 --bottleneck=8 --ffn_dim=32 \
  --publish --watch >"$T/train.txt" || { cat "$T/train.txt"; tail -20 "$T/trainer.log"; fail "train job"; }
J=$(sed -n 's/^submitted job //p' "$T/train.txt")
V1=$(job "$J" 'j["version"]')
[ "$V1" -ge 1 ] || fail "train job wrote version '$V1'"
py '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
mods = [x["modality"] for x in m["config"]["modalities"]]
assert mods == ["text", "image"] and all(x["backbone_fingerprint"] for x in m["config"]["modalities"]), m["config"]
' "$M/$V1" || fail "version $V1 is not a text+image IISAN version"

# --- 4. The updated catalog: 5% of the images rewritten, 10% new items.
py '
import sys; sys.path.insert(0, sys.argv[1]); import png
items, img, out, changed_f = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rows = [l.rstrip("\n").split("\t", 1) for l in open(items)]
changed = [k for i, (k, _) in enumerate(rows) if i % 20 == 7]
for k in changed: png.write(img, k, 1)
new = [("NEW%04d" % i, "refurbished %s" % rows[(7 * i) % len(rows)][1]) for i in range(len(rows) // 10)]
with open(out, "w") as f, open(img + "/updated_images.tsv", "w") as t:
    for k, title in rows + new:
        f.write(k + "\t" + title + "\n")
        t.write(k + "\ta/" + k + ".png\n")
for k, _ in new: png.write(img, k, 0)
open(changed_f, "w").write("\n".join(changed) + "\n")
' "$T" "$D/items.tsv" "$IMG" "$T/updated.tsv" "$T/changed.keys"
N_NEW=$(wc -l <"$T/updated.tsv")
N_ADDED=$((N_NEW - N_OLD))
N_CHANGED=$(grep -c . "$T/changed.keys")
echo "catalog: $N_OLD -> $N_NEW items ($N_ADDED new, $N_CHANGED images rewritten)"

C trainer submit --kind=refresh --version="$V1" --items="$T/updated.tsv" --text_cache="$T/text.st" \
  --vocab="$T/vocab.txt" --backbone="$TEXT_BB" --image_cache="$T/image.st" \
  --images="$IMG/updated_images.tsv" --publish --watch >"$T/refresh.txt" ||
  { cat "$T/refresh.txt"; tail -20 "$T/trainer.log"; fail "refresh job"; }
grep -q "PUBLISHED, model version" "$T/refresh.txt" || fail "refresh did not end PUBLISHED: $(tail -3 "$T/refresh.txt")"
JR=$(sed -n 's/^submitted job //p' "$T/refresh.txt")
V2=$(job "$JR" 'j["version"]')
counts=$(job "$JR" 'json.loads(j["metrics_json"])')
py "c = $counts
assert c['items'] == $N_NEW and c['removed'] == 0, c
assert c['added'] == $N_ADDED and c['changed'] == $N_CHANGED, c
assert c['recomputed'] == $N_ADDED + $N_CHANGED and c['reused'] == $N_OLD - $N_CHANGED, c
assert c['text_encoded'] == $N_ADDED and c['image_encoded'] == $N_ADDED + $N_CHANGED, c
assert c['reembedded'] == 0 and c['verified'] > 0, c" || fail "refresh job counts: $counts"
py '
import sys
from version_rows import load
m, v1, v2, changed_f, upd = sys.argv[1:6]
p, pm = load(m + "/" + v1)
c, cm = load(m + "/" + v2)
changed = set(open(changed_f).read().split())
assert list(c) == [l.split("\t")[0] for l in open(upd)], "the new version is not the updated catalog"
same = [k for k in p if k not in changed]
assert same and all(c[k] == p[k] for k in same), "unchanged embeddings differ"
assert all(c[k] != p[k] for k in changed), "an item with a rewritten image kept its embedding"
assert cm["kind"] == "refresh" and cm["parent_version"] == int(v1), cm
assert cm["files"]["user_encoder.safetensors"] == pm["files"]["user_encoder.safetensors"]
print("embeddings: %d unchanged bit-identical, %d with rewritten images re-embedded, %d new" %
      (len(same), len(changed), len(c) - len(p)))
' "$M" "$V1" "$V2" "$T/changed.keys" "$T/updated.tsv" || fail "version $V2 contents"
versions=$(C collections versions --json --collection=items)
py "import json
v = json.loads('''$versions''')
assert str(v['live_version']) == '$V2', v
assert [int(x['entry_count']) for x in v['versions'] if str(x['version']) == '$V2'] == [$N_NEW], v" ||
  fail "sidecar: $versions"
C collections search --collection=items --key=NEW0001 --k=3 | grep -q "^version $V2" ||
  fail "search for a new item"
EPOCH_S=$(job "$J" 'min(float(e["seconds"]) for e in j["epochs"])')
BUILD_S=$(job 3 'json.loads(j["metrics_json"])["seconds"]')
py "c = $counts
print('image build: %d images in %.2f s (%.0f images/s, ViT $IMAGE_BB); refresh: %.2f s in the worker '
      '(encode %.2f s, embed %.2f s); one training epoch: %.2f s; refresh / epoch = %.2f' %
      ($N_OLD, $BUILD_S, $N_OLD / max($BUILD_S, 1e-9), c['seconds'], c['encode_seconds'],
       c['embed_seconds'], $EPOCH_S, c['seconds'] / $EPOCH_S))"
echo PASS
