#!/usr/bin/env bash
# Every binary's --help lists its own flags (Abseil's default lists only flags
# from a file named after the binary, so retrieval_server --help and
# recommendation_server --help printed "No flags matched").
set -uo pipefail
fail=0
check() {  # binary, a flag it defines
  local bin=$1 flag=$2 out
  out=$("$bin" --help 2>&1)
  if [[ "$out" != *"--$flag"* || "$out" == *"No flags matched"* ]]; then
    echo "FAIL: $(basename "$bin") --help lacks --$flag:"
    echo "$out" | head -5
    fail=1
  fi
}
check "$1" data_dir          # retrieval_server
check "$2" models_dir        # recommendation_server
check "$3" server            # recommend_cli
check "$4" version_dir       # publish_model
check "$5" target            # retrieval_cli
check "$6" interactions      # train
check "$7" out_dir           # make_demo_data
check "$8" port_file         # demo_server
check "$9" data_dir          # retrieval_repair
[[ $fail == 0 ]] && echo PASS
exit $fail
