#!/usr/bin/env bash
# The systemd units pass check_units.py (systemd-analyze verify with no
# output, plus the hardening/restart lint), and broken copies do not.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
D="${TEST_SRCDIR:-.}/recsys/deploy/systemd"
[ -d "$D" ] || D="deploy/systemd"
TMP="${TEST_TMPDIR:-$(mktemp -d)}/units"
rm -rf "$TMP"; mkdir -p "$TMP"
CHECK=(/usr/bin/python3 "$D/check_units.py")
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
echo "systemd units: ok"
