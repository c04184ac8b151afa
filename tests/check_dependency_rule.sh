#!/usr/bin/env bash
# The dependency rule (../shared/STYLE.md, README "Layout"): nothing outside
# trainer/ depends on trainer/.
#   1. server/ and clients/: no path at all to //trainer/... (code or data);
#   2. tests/: no library (deps) path to //trainer/...; end-to-end tests may
#      run the trainer's commands, and only those the trainer makes visible to
#      them (its public interface), as data.
# Bazel visibility enforces most of this at build time; this check also
# catches a visibility that was widened. Runs `bazel query` in the workspace,
# so tests/run_all.sh runs it (a test inside Bazel's sandbox cannot), and
# counts it as one test case. --self_test proves each query finds a
# dependency where one exists (trainer/training on trainer/data), so an
# empty answer means "none", not "the query is broken".
set -uo pipefail
cd "$(dirname "$0")/.."

q() { bazel query --noshow_progress --noshow_loading_progress "$1" 2>/dev/null; }
# The trainer's commands that end-to-end tests may run.
ALLOWED_DATA='//trainer:make_demo_data //trainer:make_standin_text_cache //trainer:train //trainer/service:trainer_server'

if [ "${1:-}" = "--self_test" ]; then
  found=$(q 'rdeps(//trainer/training/..., //trainer/data/...) except //trainer/data/...')
  [ -n "$found" ] || { echo "dependency rule self-test: the rdeps query found nothing"; exit 1; }
  found=$(q 'deps(labels(deps, //trainer/training:trainer)) intersect //trainer/data/...')
  [ -n "$found" ] || { echo "dependency rule self-test: the deps query found nothing"; exit 1; }
  echo "dependency rule self-test: ok"
  exit 0
fi

status=0
bad=$(q 'rdeps(//server/... + //clients/..., //trainer/...) except //trainer/...')
if [ -n "$bad" ]; then
  echo "dependency rule: these targets in server/ or clients/ depend on //trainer/...:"
  echo "$bad" | sed 's/^/  /'
  status=1
fi
bad=$(q 'deps(labels(deps, //tests/...)) intersect //trainer/...')
if [ -n "$bad" ]; then
  echo "dependency rule: libraries used by tests/ reach into //trainer/...:"
  echo "$bad" | sed 's/^/  /'
  status=1
fi
for t in $(q 'labels(data, //tests/...) intersect //trainer/...'); do
  case " $ALLOWED_DATA " in
    *" $t "*) ;;
    *) echo "dependency rule: tests/ use $t, which is not one of the trainer's commands ($ALLOWED_DATA)"; status=1 ;;
  esac
done
[ $status -eq 0 ] && echo "dependency rule: ok (server/, clients/ and tests/ do not depend on trainer/ internals)"
exit $status
