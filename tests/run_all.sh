#!/usr/bin/env bash
# The test command: installs what is missing, builds everything, runs every
# test, and ends with one line "N passed, N failed, N skipped" counted per
# test case (GoogleTest cases; one case per shell test).
#
# Real data: tests that use ../shared/data (next to the checkout) get its
# path through RECSYS_DATA_DIR; where it is absent they skip and say so.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! bash deploy/install_deps.sh; then
  echo "install_deps failed"
  echo "0 passed, 1 failed"
  exit 1
fi

DATA_DIR="${RECSYS_DATA_DIR:-$(cd "$ROOT/.." && pwd)/shared/data}"
ENV_ARGS=()
if [ -d "$DATA_DIR" ]; then
  ENV_ARGS+=("--test_env=RECSYS_DATA_DIR=$DATA_DIR")
  echo "real data: $DATA_DIR"
else
  echo "real data: $DATA_DIR is absent; tests that need it will skip"
fi

LOG=$(mktemp)
bazel test //... --keep_going --test_summary=short --test_output=errors \
  "${ENV_ARGS[@]}" "$@" 2>&1 | tee "$LOG"
BAZEL_RC=${PIPESTATUS[0]}

# Checks that need the workspace (bazel query), outside Bazel's sandbox; each
# counts as one test case.
CHECKS=$(mktemp)
for check in "tests/check_dependency_rule.sh --self_test" tests/check_dependency_rule.sh; do
  if bash $check; then echo "PASSED $check" >>"$CHECKS"; else echo "FAILED $check" >>"$CHECKS"; fi
done

TESTLOGS=$(bazel info bazel-testlogs 2>/dev/null)
/usr/bin/python3 - "$LOG" "$TESTLOGS" "$BAZEL_RC" "$CHECKS" <<'PYEOF'
import os, re, sys
import xml.etree.ElementTree as ET

log, testlogs, bazel_rc, checks = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
status_re = re.compile(
    r"^(//\S+)\s+(?:\(cached\) )?(PASSED|FAILED TO BUILD|FAILED|FLAKY|TIMEOUT|NO STATUS|INCOMPLETE|SKIPPED)")
targets = {}
for line in open(log, errors="replace"):
    m = status_re.match(line.strip())
    if m:
        targets[m.group(1)] = m.group(2)

passed = failed = skipped = 0
for target, status in sorted(targets.items()):
    pkg, name = target[2:].split(":")
    xml = os.path.join(testlogs, pkg, name, "test.xml")
    cases = []
    if status in ("PASSED", "FLAKY", "FAILED", "TIMEOUT") and os.path.exists(xml):
        try:
            for tc in ET.parse(xml).iter("testcase"):
                if tc.find("failure") is not None or tc.find("error") is not None:
                    cases.append("failed")
                elif tc.find("skipped") is not None or tc.get("result") == "skipped":
                    cases.append("skipped")
                else:
                    cases.append("passed")
        except ET.ParseError:
            cases = []
    if status in ("PASSED", "FLAKY"):
        if not cases:
            cases = ["passed"]
        # A target that passed cannot hold failed cases (e.g. a crash report
        # left by an earlier attempt of a flaky test).
        cases = ["passed" if c == "failed" else c for c in cases]
    elif status == "SKIPPED":
        cases = ["skipped"]
    else:
        if "failed" not in cases:
            cases.append("failed")
        if status != "FAILED":
            print(f"{target}: {status}")
    passed += cases.count("passed")
    failed += cases.count("failed")
    skipped += cases.count("skipped")

for line in open(checks):
    result, name = line.split(" ", 1)
    if result == "PASSED":
        passed += 1
    else:
        failed += 1
        print(f"check failed: {name.strip()}")

if not targets or (bazel_rc != 0 and failed == 0):
    print(f"bazel test exited {bazel_rc}")
    failed += 1
print(f"{len(targets)} test targets")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(0 if failed == 0 else 1)
PYEOF
