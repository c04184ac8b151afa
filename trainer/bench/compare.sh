#!/usr/bin/env bash
# Old vs new train_bench, interleaved in one window (old, new, old, new ...),
# so both see the same machine load; prints one JSON object: every run's
# report, and per thread count the median steps/s of each side and the
# median of the per-round ratios new/old.
#
# Usage: trainer/bench/compare.sh OLD_BIN NEW_BIN ROUNDS [train_bench flags...]
#   OLD_BIN: train_bench built at the baseline commit (e.g. in a second
#   worktree: git worktree add --detach ../base <commit>; bazel build
#   //trainer/bench:train_bench there and copy bazel-bin/trainer/bench/train_bench).
set -euo pipefail
old="$1"; new="$2"; rounds="$3"; shift 3
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
for r in $(seq 1 "${rounds}"); do
  "${old}" "$@" --label=old --out="${tmp}/old_${r}.json" >/dev/null 2>"${tmp}/old_${r}.log" ||
    { cat "${tmp}/old_${r}.log" >&2; exit 1; }
  "${new}" "$@" --label=new --out="${tmp}/new_${r}.json" >/dev/null 2>"${tmp}/new_${r}.log" ||
    { cat "${tmp}/new_${r}.log" >&2; exit 1; }
done
/usr/bin/env python3 - "${tmp}" "${rounds}" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
runs = {s: [json.load(open(f"{d}/{s}_{r}.json")) for r in range(1, rounds + 1)] for s in ("old", "new")}
summary = {}
for i, step in enumerate(runs["new"][0]["steps"]):
    t = step["threads"]
    o = [run["steps"][i]["steps_per_second"] for run in runs["old"]]
    n = [run["steps"][i]["steps_per_second"] for run in runs["new"]]
    summary[f"threads_{t}"] = {
        "old_steps_per_second": o, "new_steps_per_second": n,
        "old_median": statistics.median(o), "new_median": statistics.median(n),
        "ratio_per_round": [b / a for a, b in zip(o, n)],
        "ratio_median": statistics.median(b / a for a, b in zip(o, n)),
        "load_average_1m": [run["steps"][i]["load_average_1m"] for run in runs["old"] + runs["new"]],
    }
for side in ("old", "new"):
    ep = [run["epoch"] for run in runs[side] if run["epoch"]]
    if ep:
        summary[f"{side}_epoch"] = [e[0] for e in ep]
    summary[f"{side}_peak_rss_mb"] = [run["peak_rss_mb"] for run in runs[side]]
print(json.dumps({"rounds": rounds, "summary": summary, "runs": runs}))
PY
