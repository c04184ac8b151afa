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
[[ $fail == 0 ]] && echo PASS
exit $fail
