#!/usr/bin/env bash
# End-to-end test of the build_cache command on the first 400 real items
# with a tiny stand-in BERT: an interrupted (--stop_after_chunks) and then
# resumed build must produce the same bytes as an uninterrupted one, and
# failed items must be reported, not fatal.
set -euo pipefail

BIN="$1"
DATA="${RECSYS_DATA_DIR:-}"
if [[ -z "$DATA" || ! -f "$DATA/amazon-scientific/items.tsv" || ! -f "$DATA/bert-base-uncased/vocab.txt" ]]; then
  echo "SKIPPED: RECSYS_DATA_DIR unset or lacks amazon-scientific/items.tsv and bert-base-uncased/vocab.txt"
  exit 0
fi
T="$TEST_TMPDIR"
head -n 400 "$DATA/amazon-scientific/items.tsv" > "$T/items.tsv"
printf 'EMPTYTITLE\t &nbsp; \n' >> "$T/items.tsv"

run() {
  "$BIN" --items="$T/items.tsv" --vocab="$DATA/bert-base-uncased/vocab.txt" \
    --bert_layers=2 --bert_hidden=32 --bert_heads=2 --chunk_size=100 \
    --threads=1 --progress_interval=0 "$@"
}

run --text_out="$T/whole.safetensors" 2> "$T/whole.log"
grep -q "STAND-IN" "$T/whole.log" || { echo "no stand-in log line"; exit 1; }

set +e
run --text_out="$T/resumed.safetensors" --stop_after_chunks=2 2> "$T/stopped.log"
rc=$?
set -e
[[ $rc -eq 3 ]] || { echo "interrupted build exited $rc, want 3"; cat "$T/stopped.log"; exit 1; }
[[ ! -e "$T/resumed.safetensors" ]] || { echo "output exists after an interrupted build"; exit 1; }
chunks=$(find "$T/resumed.safetensors.work" -name 'chunk-*.safetensors' | wc -l)
[[ $chunks -eq 2 ]] || { echo "want 2 chunk files, found $chunks"; exit 1; }

run --text_out="$T/resumed.safetensors" 2> "$T/resumed.log"
grep -q "3 chunks computed, 2 reused" "$T/resumed.log" || { echo "resume did not reuse chunks"; cat "$T/resumed.log"; exit 1; }
cmp "$T/whole.safetensors" "$T/resumed.safetensors" || { echo "resumed output differs"; exit 1; }
[[ ! -e "$T/resumed.safetensors.work" ]] || { echo "work dir left behind"; exit 1; }
grep -q "^EMPTYTITLE	empty title$" "$T/resumed.safetensors.failed.tsv" || { echo "failure not reported"; exit 1; }

# Bad flags fail with a message, not a crash.
set +e
run --text_out="$T/x.safetensors" --dtype=f8 2> "$T/bad.log"
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "dtype" "$T/bad.log" || { echo "bad --dtype not rejected"; exit 1; }
echo "PASS"
