#!/usr/bin/env bash
# The systemd units pass check_units.py (systemd-analyze verify with no
# output, plus the hardening/restart lint), and broken copies do not.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
D="${TEST_SRCDIR:-.}/recsys/deploy/systemd"
[ -d "$D" ] || D="deploy/systemd"
TMP="${TEST_TMPDIR:-$(mktemp -d)}/units"
rm -rf "$TMP"; mkdir -p "$TMP"
PY=/usr/bin/python3
CHECK=("$PY" "$D/check_units.py")
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (Debian package systemd)"

"${CHECK[@]}" "$D"/*.service

# Each broken copy must be rejected, for the reason given.
broken() {  # name, expected message, sed expression
  cp "$D/recsys-recommender.service" "$TMP/recsys-recommender.service"
  sed -i "$3" "$TMP/recsys-recommender.service"
  if out=$("${CHECK[@]}" "$TMP/recsys-recommender.service" 2>&1); then
    fail "$1: accepted"
  fi
  grep -q -- "$2" <<<"$out" || fail "$1: wrong reason: $out"
  echo "rejected as expected: $1"
}
broken "unknown key" "Unknown key" 's/^Restart=on-failure/Restart=on-failure\nRestartSecs=2/'
broken "bad value" "systemd-analyze verify" 's/^ProtectSystem=strict/ProtectSystem=sometimes/'
broken "no DynamicUser" "DynamicUser= missing" '/^DynamicUser=/d'
broken "stop timeout under grace" "not above the grace period" 's/^TimeoutStopSec=.*/TimeoutStopSec=5/'
broken "public address" "not a loopback" 's/--address=127.0.0.1:50052/--address=0.0.0.0:50052/'
broken "models_dir outside state" "StateDirectory" 's#--models_dir=/var/lib/recsys-models#--models_dir=/srv/models#'
# The loopback Prometheus config scrapes each unit's --metrics_port.
"$PY" - "$D" "$D/../prometheus/prometheus.yml" <<'PYEOF'
import glob, os, re, sys, yaml
units = {}
for path in glob.glob(os.path.join(sys.argv[1], "recsys-*.service")):
    port = re.search(r"--metrics_port=(\d+)", open(path).read()).group(1)
    units["recsys-" + os.path.basename(path)[len("recsys-"):-len(".service")]] = f"127.0.0.1:{port}"
jobs = {j["job_name"]: j["static_configs"][0]["targets"]
        for j in yaml.safe_load(open(sys.argv[2]))["scrape_configs"]}
for job, target in sorted(units.items()):
    assert jobs.get(job) == [target], f"prometheus.yml job {job}: {jobs.get(job)}, unit says {target}"
print(f"prometheus.yml scrapes all {len(units)} units' metrics ports")
PYEOF
echo "systemd units: ok"
