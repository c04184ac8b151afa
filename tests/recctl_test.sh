#!/usr/bin/env bash
# recctl against a real retrieval sidecar on loopback: the collections flow
# (create, upsert from TSV and JSONL, publish, search, get, versions,
# rollback), --json output that scripts can parse, a config file for the
# address, --help for every command, and failing calls: a non-zero exit with
# the server's status code and message (1), usage errors (2).
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
R="${TEST_SRCDIR:-.}/recsys"
RETRIEVAL="$R/retrieval/retrieval_server"
RECCTL="$R/clients/recctl/recctl"
T="${TEST_TMPDIR:-$(mktemp -d)}/recctl"
rm -rf "$T"; mkdir -p "$T"
"$RETRIEVAL" --data_dir="$T/data" --port_file="$T/ports" --metrics_port=-1 >"$T/log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null || true' EXIT
deadline=$((SECONDS + 60))
until [ -s "$T/ports" ]; do
  [ $SECONDS -lt $deadline ] || { cat "$T/log"; fail "retrieval_server did not start"; }
  sleep 0.05
done
PORT=$(sed -n 's/^grpc_port=//p' "$T/ports")
# The address comes from a config file (as ~/.config/recctl.yaml would hold it).
printf '# recctl config\nretrieval: "127.0.0.1:%s"\n' "$PORT" >"$T/recctl.yaml"
export RECCTL_CONFIG="$T/recctl.yaml"
C() { "$RECCTL" "$@"; }

C collections create --collection=items --dim=3 --metric=cosine >"$T/create.txt"
grep -q "collection items: dimension 3, metric cosine" "$T/create.txt" || fail "create: $(cat "$T/create.txt")"
printf 'a\t1,0,0\ttitle=Alpha\nb\t0,1,0\ttitle=Beta\n' >"$T/e.tsv"
printf '{"key":"c","vector":[0.9,0.1,0],"payload":{"title":"Gamma"}}\n' >"$T/e.jsonl"
C collections upsert --collection=items --file="$T/e.tsv" | grep -q "upserted 2 entries" || fail "upsert tsv"
C collections upsert --collection=items --file="$T/e.jsonl" --batch=1 | grep -q "upserted 1 entries" || fail "upsert jsonl"
C collections publish --collection=items --version=5 | grep -q "items version 5: LIVE, 3 entries" || fail "publish"
C collections search --collection=items --vector=1,0,0 --k=2 --json >"$T/search.json"
/usr/bin/python3 - "$T/search.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
hits = r["results"][0]["hits"]
assert [h["key"] for h in hits] == ["a", "c"], hits
assert hits[0]["payload"]["title"] == "Alpha", hits
assert r["version"] == "5", r
PY
C collections search --collection=items --key=a --k=1 | grep -Eq "^1 +c " || fail "search by key"
C collections get --collection=items --keys=b,zz | grep -q "missing: zz" || fail "get missing"
C collections delete --collection=items --keys=b | grep -q "deleted 1" || fail "delete"
C collections publish --collection=items | grep -q "version 6: LIVE, 2 entries" || fail "publish 6"
C collections rollback --collection=items --version=5 | grep -q "version 5 is live" || fail "rollback"
C collections versions --collection=items | grep -q "live version 5" || fail "versions"
C collections list --json | /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin)["collections"]; assert c[0]["live_version"]=="5", c'

# A failing call: exit 1, the server's code and message.
if C collections search --collection=nope --vector=1,0,0 2>"$T/err"; then fail "unknown collection accepted"; fi
grep -q "^recctl collections search: NOT_FOUND: search: .*nope" "$T/err" || fail "error message: $(cat "$T/err")"
set +e
C collections search --collection=items --vector=1,0 2>"$T/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "bad dimension exit code $rc"
grep -q "INVALID_ARGUMENT" "$T/err" || fail "dimension message: $(cat "$T/err")"
# Usage errors: exit 2, naming the problem.
set +e
C collections serch 2>"$T/err" >/dev/null; rc1=$?
C collections search --colection=items 2>"$T/err2"; rc2=$?
C collections search --collection=items --k=ten --vector=1,0,0 2>"$T/err3"; rc3=$?
set -e
[ $rc1 -eq 2 ] && grep -q "unknown command 'collections serch'" "$T/err" || fail "unknown command: $rc1 $(cat "$T/err")"
[ $rc2 -eq 2 ] && grep -q "unknown flag '--colection'" "$T/err2" || fail "unknown flag: $rc2 $(cat "$T/err2")"
[ $rc3 -eq 1 ] && grep -qF -- "--k: expected an integer in [-2147483648, 2147483647], got 'ten'" "$T/err3" || fail "bad int: $rc3 $(cat "$T/err3")"
# A --match that is neither word was taken for "source" (refused before any call).
set +e
C --similarity=127.0.0.1:1 similarity select-examples --collection=x --pair=en-es --source=hi \
  --match=bogus 2>"$T/err4"; rc4=$?
set -e
[ $rc4 -eq 1 ] && grep -qF -- "--match: expected source or target, got 'bogus'" "$T/err4" ||
  fail "bad --match: $rc4 $(cat "$T/err4")"
# A file flag naming a directory or a device: refused, not read (/dev/zero
# was read until recctl ran out of memory).
set +e
C --similarity=127.0.0.1:1 similarity search-image --collection=x --image=/dev/zero 2>"$T/err5"; rc5=$?
C --similarity=127.0.0.1:1 similarity search-image --collection=x --image="$T" 2>"$T/err6"; rc6=$?
C --similarity=127.0.0.1:1 similarity search-image --collection=x --image="$T/err5" --key=k \
  2>"$T/err7"; rc7=$?
set -e
[ $rc5 -eq 1 ] && grep -qF -- "--image: expected a regular file, got the special file '/dev/zero'" "$T/err5" ||
  fail "--image=/dev/zero: $rc5 $(cat "$T/err5")"
[ $rc6 -eq 1 ] && grep -qF -- "--image: expected a regular file, got the directory '" "$T/err6" ||
  fail "--image=DIR: $rc6 $(cat "$T/err6")"
[ $rc7 -eq 1 ] && grep -qF -- "--image and --key: give one of them, not both" "$T/err7" ||
  fail "--image with --key: $rc7 $(cat "$T/err7")"

# --help for every command.
C --help >"$T/help.txt"
n=0
while read -r group command _; do
  [ "$group" = "GROUP" ] && continue
  C "$group" "$command" --help >"$T/h.txt" || fail "$group $command --help failed"
  grep -q "^flags:" "$T/h.txt" || fail "$group $command --help lists no flags"
  n=$((n + 1))
done < <(sed -n '/^commands:/,/^$/p' "$T/help.txt" | sed '1d;/^$/d')
[ $n -ge 10 ] || fail "only $n commands in --help"
echo "recctl: ok ($n commands)"
