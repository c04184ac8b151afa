#!/usr/bin/env bash
# train_bench on a tiny demo catalog (80 users: an epoch of 2 steps at batch
# 64): a measurement that fits the epoch gives a positive step time and,
# with --torch_profile, a Chrome trace; one that does not, or a zero warm-up,
# is refused with the flags named (it used to report negative times); the
# core-balance probe reports two CPUs' work (or why it was skipped), and a
# negative or too short duration is refused; each measurement carries the
# host's CPU steal, and a negative quiet-steal threshold is refused; a data
# path given but absent is refused with its flag named (it used to fall back
# to the synthetic set with a warning).
set -euo pipefail
MAKE_DEMO="$1"
BENCH="$2"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/bench"
"$MAKE_DEMO" --out_dir="$DIR/data" --num_items=64 --num_users=80 --num_categories=2 \
  --num_styles=2 --text_states=5 --text_hidden=16 --image_states=5 --image_hidden=8 > /dev/null
common=(--interactions="$DIR/data/users.tsv" --text_cache="$DIR/data/text_states.safetensors"
        --epoch_threads= --reference_script= --threads=1,2s)

"$BENCH" "${common[@]}" --warmup_steps=1 --steps=1 --torch_profile="$DIR/prof_" \
  --core_balance_seconds=0.3 --out="$DIR/report.json" > /dev/null 2> "$DIR/ok.log"
python3 - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
r = json.load(open(f"{d}/report.json"))
assert [s["spec"] for s in r["steps"]] == ["1", "2s"], r["steps"]
for s in r["steps"]:
    assert s["ms_per_step"] > 0, s
    assert s["timed_steps"] == 1, s
    h = s["host_cpu"]  # one step may pass in under a tick: -1, unknown
    assert set(h) == {"steal_percent", "idle_percent"}, h
    for v in h.values():
        assert v == -1 or 0 <= v <= 100, h
for spec, e in r["threads_summary"].items():
    assert len(e["host_steal_percent_all"]) == 1, e
    assert e["quiet_rounds"] in (0, 1), e
    assert (e["quiet_rounds"] == 1) == ("speedup_median_quiet_rounds_vs_1" in e), e
assert [b["round"] for b in r["core_balance"]] == [1], r["core_balance"]
b = r["core_balance"][0]
if "skipped" in b:  # a one-CPU machine
    assert "needs 2" in b["skipped"], b
else:
    assert b["windows"] >= 1 and len(b["cpus"]) == 2, b
    assert 0 < b["barrier_split_ceiling"] <= b["parallel_ceiling"] * (1 + 1e-9), b
    assert 1.0 <= b["faster_over_slower"]["median"] <= b["faster_over_slower"]["max"], b
for spec in ("1", "2s"):
    trace = json.load(open(f"{d}/prof_{spec}_r1.json"))
    names = {e.get("name") for e in trace if e.get("ph") == "X"}
    assert "aten::addmm" in names or "aten::mm" in names, sorted(names)[:20]
PY

expect_refused() {
  local want="$1"; shift
  if "$BENCH" "$@" > /dev/null 2> "$DIR/err.log"; then
    echo "accepted: $*"; exit 1
  fi
  grep -q -- "$want" "$DIR/err.log" || { echo "no '$want' in:"; cat "$DIR/err.log"; exit 1; }
}
expect_refused "this set's epoch has 2" "${common[@]}" --warmup_steps=1 --steps=5
expect_refused "must be at least 1; got 0" "${common[@]}" --warmup_steps=0 --steps=1
expect_refused "core_balance_seconds must be >= 0 (0: skip); got -1" "${common[@]}" \
  --warmup_steps=1 --steps=1 --core_balance_seconds=-1
expect_refused "--core_balance_seconds: core balance: seconds and window_ms" "${common[@]}" \
  --warmup_steps=1 --steps=1 --core_balance_seconds=0.1
expect_refused "quiet_steal_percent must be >= 0; got -1" "${common[@]}" \
  --warmup_steps=1 --steps=1 --quiet_steal_percent=-1
expect_refused "--text_cache: no such file \"$DIR/absent.safetensors\"" \
  --interactions="$DIR/data/users.tsv" --text_cache="$DIR/absent.safetensors" --threads=1
expect_refused "got only --interactions" --interactions="$DIR/data/users.tsv" --threads=1
expect_refused "--torch_profile: cannot write" "${common[@]}" --warmup_steps=1 --steps=1 \
  --torch_profile="$DIR/no/such/dir/p_"
echo "ok"
