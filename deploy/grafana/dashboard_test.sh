#!/usr/bin/env bash
# deploy/grafana/recsys.json passes check_dashboard.py (structure, coverage,
# every PromQL expression parsed by promtool), and broken copies do not.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
D="${TEST_SRCDIR:-.}/recsys/deploy/grafana"
[ -d "$D" ] || D="deploy/grafana"
TMP="${TEST_TMPDIR:-$(mktemp -d)}/dashboard"
rm -rf "$TMP"; mkdir -p "$TMP"
PY=/usr/bin/python3
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus)"

"$PY" "$D/check_dashboard.py" "$D/recsys.json"

broken() {  # name, expected message, python statement on `d` (the dashboard)
  "$PY" - "$D/recsys.json" "$TMP/broken.json" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
graphs = [p for p in d["panels"] if p["type"] != "row"]
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
  if out=$("$PY" "$D/check_dashboard.py" "$TMP/broken.json" 2>&1); then fail "$1: accepted"; fi
  grep -q -- "$2" <<<"$out" || fail "$1: wrong reason: $out"
  echo "rejected as expected: $1"
}
broken "expression that does not parse" "parse error" \
  'graphs[0]["targets"][0]["expr"] = "sum by (job (rate(up[5m]))"'
broken "duplicate panel id" "not unique" 'graphs[1]["id"] = graphs[0]["id"]'
broken "no p99 panel" "no panel shows p99 latency" \
  'd["panels"] = [p for p in d["panels"] if "0.99, sum by (job, method" not in json.dumps(p)]'
broken "unknown variable" "unknown variables" \
  'graphs[0]["targets"][0]["expr"] = "rate(up[$__nope])"'
broken "panel off the grid" "outside the 24-column grid" 'graphs[0]["gridPos"]["x"] = 20'
printf '{"title": "recsys", "panels": [' >"$TMP/broken.json"
if "$PY" "$D/check_dashboard.py" "$TMP/broken.json" >/dev/null 2>&1; then fail "truncated JSON accepted"; fi
echo "rejected as expected: truncated JSON"
echo "dashboard: ok"
