#!/usr/bin/env bash
# End to end through the binaries: make_demo_data writes a tiny two-modality
# catalog, train fits IISAN on it for one epoch, prints the JSON metrics line
# and exports a complete model version directory.
set -euo pipefail
MAKE_DEMO="$1"
TRAIN="$2"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/cli"
"$MAKE_DEMO" --out_dir="$DIR/data" --num_items=64 --num_users=80 --num_categories=2 \
  --num_styles=2 --text_states=5 --text_hidden=16 --image_states=5 --image_hidden=8
"$TRAIN" --interactions="$DIR/data/users.tsv" \
  --text_cache="$DIR/data/text_states.safetensors" \
  --image_cache="$DIR/data/image_states.safetensors" \
  --model=iisan --epochs=1 --embedding_dim=16 --bottleneck=8 --ffn_dim=32 \
  --out_dir="$DIR/models" --version=7 --metrics_out="$DIR/metrics.json" > "$DIR/stdout"
line=$(tail -n 1 "$DIR/stdout")
for key in '"model":"iisan"' '"test":{"count":80' '"peak_rss_mb":' '"mean_epoch_seconds":' '"version_dir":"'; do
  if [[ "$line" != *"$key"* ]]; then
    echo "metrics line lacks $key: $line"
    exit 1
  fi
done
cmp <(echo "$line") "$DIR/metrics.json"
for f in manifest.json model.safetensors user_encoder.safetensors item_keys.txt \
         item_embeddings.safetensors; do
  [[ -s "$DIR/models/7/$f" ]] || { echo "missing $f"; exit 1; }
done
[[ $(wc -l < "$DIR/models/7/item_keys.txt") -gt 0 ]]
grep -q '"format": "recsys.model_version.v1"' "$DIR/models/7/manifest.json"
grep -q '"standardize_states":true' "$DIR/models/7/manifest.json" ||
  grep -q '"standardize_states": true' "$DIR/models/7/manifest.json" ||
  { echo "manifest does not record standardize_states"; exit 1; }
# The standardization statistics travel with the version, in their own file
# (not as fake weights).
grep -aq 'text.mean' "$DIR/models/7/state_standardization.safetensors" ||
  { echo "state_standardization.safetensors lacks the statistics"; exit 1; }
if grep -aq 'state_standardization' "$DIR/models/7/model.safetensors"; then
  echo "model.safetensors holds standardization statistics as weights"; exit 1
fi
grep -q '"version":7,' "$DIR/stdout" || { echo "metrics line lacks the version"; exit 1; }
# Bad flags fail with a message naming the flag.
if "$TRAIN" --interactions="$DIR/data/users.tsv" --model=iisan --layer_mode=bogus \
     --text_cache="$DIR/data/text_states.safetensors" 2> "$DIR/err"; then
  echo "bad layer_mode accepted"
  exit 1
fi
grep -q "layer_mode" "$DIR/err"
echo PASS
