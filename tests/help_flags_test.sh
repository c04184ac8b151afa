#!/usr/bin/env bash
# Every binary's --help lists its own flags (Abseil's default lists only flags
# from a file named after the binary, so retrieval_server --help and
# recommendation_server --help printed "No flags matched").
set -uo pipefail
fail=0
check() {  # binary, a flag it defines
  local bin=$1 flag=$2 out
  out=$($bin --help 2>&1)
  if [[ "$out" != *"--$flag"* || "$out" == *"No flags matched"* ]]; then
    echo "FAIL: $(basename "$bin") --help lacks --$flag:"
    echo "$out" | head -5
    fail=1
  fi
}
check "$1" data_dir          # retrieval_server
check "$2" models_dir        # recommendation_server
check "$3 recommend items" history         # recctl
check "$3 model publish" version_dir       # recctl
check "$3 collections search" collection   # recctl
check "$4" interactions      # train
check "$5" out_dir           # make_demo_data
check "$6" port_file         # demo_server
check "$7" data_dir          # retrieval_repair
check "$8" state_dir         # similarity_server
check "$9" max_queued_jobs   # trainer_server
# A numeric flag out of range: refused at start naming it (it had ended in
# std::terminate, or started a server that could not answer).
refused() {  # binary args..., then the text wanted on stderr is $WANT
  local out rc
  out=$(timeout 20 "$@" 2>&1); rc=$?
  if [[ $rc == 0 || $rc == 124 || $rc -ge 128 || "$out" != *"$WANT"* ]]; then
    echo "FAIL: $* (rc $rc) did not refuse with '$WANT':"
    echo "$out" | tail -3
    fail=1
  fi
}
R=(--models_dir=/nonexistent --retrieval=127.0.0.1:1 --port_file=/dev/null)
WANT="--encode_threads: expected 1..256, got 100000" refused "$2" "${R[@]}" --encode_threads=100000
WANT="--torch_threads: expected 1..256, got 0" refused "$2" "${R[@]}" --torch_threads=0
WANT="--max_batch_size: expected 1..4096, got 0" refused "$2" "${R[@]}" --max_batch_size=0
WANT="--poll_interval: expected 10ms..1h, got 0" refused "$2" "${R[@]}" --poll_interval=0s
WANT="build_threads: expected 0..256" refused "$1" --data_dir="$(mktemp -d)" --port_file=/dev/null \
  --build_threads=100000
S=(--state_dir="$(mktemp -d)" --retrieval=127.0.0.1:1 --port_file=/dev/null)  # similarity_server
WANT="--max_message_mb: expected 1..2047, got 100000" refused "$8" "${S[@]}" --max_message_mb=100000
WANT="--max_sentence_kb: expected 1..65536, got -5" refused "$8" "${S[@]}" --max_sentence_kb=-5
WANT="--max_message_mb: expected 1..2047, got 100000" refused "$1" --data_dir="$(mktemp -d)" \
  --port_file=/dev/null --max_message_mb=100000
WANT="--metrics_port: expected -1 (off), 0 (any free port) or 1..65535, got 70000" refused "$1" \
  --data_dir="$(mktemp -d)" --port_file=/dev/null --metrics_port=70000
WANT="max_queued_jobs: must be in [1, 1000000], got 0" refused "$9" --data_dir="$(mktemp -d)" \
  --worker=/bin/true --port_file=/dev/null --max_queued_jobs=0
WANT="cancel_grace: 0s..10m, got -1s" refused "$9" --data_dir="$(mktemp -d)" \
  --worker=/bin/true --port_file=/dev/null --cancel_grace=-1s
[[ $fail == 0 ]] && echo PASS
exit $fail
