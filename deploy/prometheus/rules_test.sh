#!/usr/bin/env bash
# Prometheus files pass promtool: alerts.yml (check rules), its unit tests
# (test rules), both scrape configs (check config); and the unit tests bite:
# a rule with a broken expression or a changed threshold fails them.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
D="${TEST_SRCDIR:-.}/recsys/deploy/prometheus"
[ -d "$D" ] || D="deploy/prometheus"
TMP="${TEST_TMPDIR:-$(mktemp -d)}/rules"
rm -rf "$TMP"; mkdir -p "$TMP"
PY=/usr/bin/python3
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus)"

promtool check rules "$D/alerts.yml"
(cd "$D" && promtool test rules alerts_test.yml)
cp "$D/alerts.yml" "$D/prometheus.yml" "$TMP/"
promtool check config "$TMP/prometheus.yml"

# Debian's Prometheus is built without Kubernetes service discovery, so
# promtool rejects kubernetes_sd_configs; every other part of the
# Kubernetes config (relabelling, TLS, rule files) is checked with the
# discovery swapped for an empty static list and the pod's service-account
# files for stand-ins.
"$PY" - "$D/prometheus-k8s.yml" "$TMP/prometheus-k8s.yml" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
n = 0
for job in cfg["scrape_configs"]:
    sd = job.pop("kubernetes_sd_configs", None)
    assert sd and all(s.get("role") in ("pod", "node", "endpoints", "service") for s in sd), job["job_name"]
    job["static_configs"] = [{"targets": []}]
    # The service-account files exist only in a pod: point at stand-ins.
    for section, key in (("tls_config", "ca_file"), ("authorization", "credentials_file")):
        if key in job.get(section, {}):
            stand_in = sys.argv[2] + "." + key
            open(stand_in, "w").write("x\n")
            job[section][key] = stand_in
    n += 1
assert n == len(cfg["scrape_configs"]), "every k8s job discovers through the API"
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
PY
promtool check config "$TMP/prometheus-k8s.yml"

# The checks bite.
sed 's/expr: up{job=~"recsys-.\*"} == 0/expr: up{job=~"recsys-.*"} ==/' "$D/alerts.yml" >"$TMP/broken.yml"
! cmp -s "$D/alerts.yml" "$TMP/broken.yml" || fail "broken copy unchanged"
if promtool check rules "$TMP/broken.yml" >"$TMP/out" 2>&1; then fail "broken expression accepted"; fi
echo "rejected as expected: broken expression"
cp "$D/alerts_test.yml" "$TMP/"
sed 's/) > 0.05$/) > 0.5/' "$D/alerts.yml" >"$TMP/alerts.yml"
! cmp -s "$D/alerts.yml" "$TMP/alerts.yml" || fail "threshold copy unchanged"
if (cd "$TMP" && promtool test rules alerts_test.yml) >"$TMP/out" 2>&1; then
  fail "unit tests pass with the error-ratio threshold at 50%"
fi
grep -q RecsysHighErrorRatio "$TMP/out" || fail "wrong failure: $(cat "$TMP/out")"
echo "rejected as expected: error-ratio threshold changed"
echo "prometheus rules: ok"
