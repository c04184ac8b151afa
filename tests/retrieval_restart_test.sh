#!/usr/bin/env bash
# End to end: the real retrieval_server binary and recctl (--json replies).
#  1. create, upsert, publish v1; delete + upsert, publish v2; then upsert
#     more without publishing (acknowledged: must survive in the staging log);
#  2. kill -9, restart: same answers from v2 (live) and pinned v1, the staged
#     writes are still there and publish as v3;
#  3. kill -9, flip one byte in v3's index, restart: v3 is refused with a
#     checksum error and v2 is served again;
#  4. kill -9 while a publish builds: the previous version is served and
#     the staged writes survive;
#  5. kill -9, flip a byte in the first record of a staging log that has
#     valid records after it: the collection is DEGRADED (visible in
#     describe, writes refused), nothing is dropped; retrieval_repair
#     salvages the valid records and the collection is OK again;
#  6. SIGTERM drains and exits 0.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
RUN="${TEST_SRCDIR:-.}/recsys"
SERVER="$RUN/retrieval/retrieval_server"
CLI="$RUN/clients/recctl/recctl"
REPAIR="$RUN/retrieval/retrieval_repair"
[ -x "$SERVER" ] || { SERVER=retrieval/retrieval_server; CLI=clients/recctl/recctl; REPAIR=retrieval/retrieval_repair; }
DATA="$TMP/data"
PID=""
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true; }
trap cleanup EXIT

start() {
  rm -f "$TMP/ports"
  "$SERVER" --data_dir="$DATA" --port_file="$TMP/ports" --metrics_port=-1 \
    >>"$TMP/server.log" 2>&1 &
  PID=$!
  local deadline=$((SECONDS + 60))
  while [ ! -s "$TMP/ports" ]; do
    [ $SECONDS -lt $deadline ] || { cat "$TMP/server.log"; fail "server did not start"; }
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/server.log"; fail "server exited"; }
    sleep 0.05
  done
  # shellcheck disable=SC1090
  . "$TMP/ports"
  TARGET="127.0.0.1:$grpc_port"
  # Restoring: calls answer UNAVAILABLE until the state is loaded.
  deadline=$((SECONDS + 60))
  until cli list >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "server never became ready"
    sleep 0.05
  done
}
cli() { "$CLI" --retrieval="$TARGET" --json collections "$@"; }
hits() { /usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["results"][0]["hits"]))' "$1"; }

# 2000 random 16-d entries with a payload, plus 50 more for later.
/usr/bin/python3 - "$TMP" <<'PYEOF'
import random, sys
random.seed(7)
def write(path, first, n):
    with open(path, "w") as f:
        for i in range(first, first + n):
            v = ",".join("%.6f" % random.gauss(0, 1) for _ in range(16))
            f.write(f"item{i}\t{v}\tparity={'even' if i % 2 == 0 else 'odd'};title=t{i}\n")
write(sys.argv[1] + "/a.tsv", 0, 2000)
write(sys.argv[1] + "/b.tsv", 2000, 50)
write(sys.argv[1] + "/c.tsv", 3000, 50)
write(sys.argv[1] + "/big.tsv", 10000, 20000)
PYEOF
Q="0.3,-0.1,0.7,0.2,-0.5,0.1,0.9,-0.3,0.4,0.0,-0.2,0.6,0.1,-0.8,0.5,0.2"

start
cli create --collection=items --dim=16 --metric=cosine --factory=Flat >/dev/null
cli upsert --collection=items --file="$TMP/a.tsv" --batch=500 | grep -q '"upserted":"2000"' \
  || fail "upsert a"
cli publish --collection=items >/dev/null
cli delete --collection=items --keys=item1,item2 >/dev/null
cli upsert --collection=items --file="$TMP/b.tsv" >/dev/null
cli publish --collection=items | grep -q '"entry_count":"2048"' || fail "v2 count"
cli upsert --collection=items --file="$TMP/c.tsv" >/dev/null   # acked, unpublished
cli search --collection=items --vector="$Q" --k=10 >"$TMP/live.before"
cli search --collection=items --vector="$Q" --k=10 --version=1 >"$TMP/v1.before"
cli search --collection=items --key=item2010 --k=5 --filter=parity=odd >"$TMP/mlt.before"
grep -q '"version":"2"}$' "$TMP/live.before" || fail "live is not v2"
[ "$(hits "$TMP/live.before")" -eq 10 ] || fail "expected 10 hits"

kill -9 "$PID"; wait "$PID" 2>/dev/null || true
start
cli search --collection=items --vector="$Q" --k=10 >"$TMP/live.after"
cli search --collection=items --vector="$Q" --k=10 --version=1 >"$TMP/v1.after"
cli search --collection=items --key=item2010 --k=5 --filter=parity=odd >"$TMP/mlt.after"
diff "$TMP/live.before" "$TMP/live.after" || fail "live answers changed after kill -9"
diff "$TMP/v1.before" "$TMP/v1.after" || fail "v1 answers changed after kill -9"
diff "$TMP/mlt.before" "$TMP/mlt.after" || fail "filtered answers changed"
cli describe --collection=items | grep -q '"staging_entry_count":"2098"' \
  || { cli describe --collection=items; fail "staged writes lost"; }
# The acknowledged, unpublished entry reads back staged (with its payload),
# not from the live version; the deleted item1 stays gone.
cli get --collection=items --keys=item3001,item1 --staged >"$TMP/staged"
grep -q '"title":"t3001"' "$TMP/staged" || { cat "$TMP/staged"; fail "staged get"; }
grep -q '"missing_keys":\["item1"\]' "$TMP/staged" || fail "deleted key came back"
cli get --collection=items --keys=item3001 | grep -q '"missing_keys":\["item3001"\]' \
  || fail "unpublished entry visible in the live version"
cli publish --collection=items | grep -q '"entry_count":"2098"' || fail "v3 count"
cli search --collection=items --key=item3001 --k=3 | grep -q '"version":"3"}$' \
  || fail "v3 not live"

kill -9 "$PID"; wait "$PID" 2>/dev/null || true
IDX="$DATA/items/versions/v00000000000000000003/index.faiss"
[ -f "$IDX" ] || fail "no $IDX"
/usr/bin/python3 - "$IDX" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x10
open(p, "wb").write(bytes(b))
PYEOF
start
cli search --collection=items --vector="$Q" --k=10 >"$TMP/live.corrupt"
diff "$TMP/live.before" "$TMP/live.corrupt" || fail "v2 not served after v3 corruption"
cli versions --collection=items >"$TMP/versions"
grep -q "VERSION_FAILED" "$TMP/versions" || fail "corrupt version not reported"
grep -q "fails its checksum" "$TMP/versions" || fail "no checksum error"
grep -q "index.faiss fails its checksum" "$TMP/server.log" || fail "not logged"

# 4. kill -9 in the middle of a publish: the half-built version never
#    appears, the previous live one is served, the staged writes survive.
cli create --collection=slow --dim=16 --factory=HNSW32 >/dev/null
cli upsert --collection=slow --file="$TMP/a.tsv" >/dev/null
cli publish --collection=slow | grep -q '"entry_count":"2000"' || fail "slow v1"
cli upsert --collection=slow --file="$TMP/big.tsv" --batch=5000 >/dev/null
cli publish --collection=slow --nowait | grep -q "VERSION_BUILDING" || fail "not building"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
start
cli describe --collection=slow >"$TMP/slow"
grep -q '"live_version":"1"' "$TMP/slow" || { cat "$TMP/slow"; fail "slow: live is not v1"; }
grep -q '"staging_entry_count":"22000"' "$TMP/slow" || { cat "$TMP/slow"; fail "slow: staged writes lost"; }
ls "$DATA/slow/versions" | grep -qv "^v00000000000000000001$" && fail "half-built version left on disk"
cli publish --collection=slow | grep -q '"entry_count":"22000"' || fail "slow v2"

# 5. Damage that is not a torn tail: DEGRADED, then the operator salvages.
cli upsert --collection=items --file="$TMP/c.tsv" --batch=25 | grep -q '"upserted":"50"' \
  || fail "upsert c again"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
LOG=""
for f in "$DATA"/items/staging-*.log; do [ -s "$f" ] && LOG="$f"; done
[ -n "$LOG" ] || fail "no staging log with records"
/usr/bin/python3 - "$LOG" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[40] ^= 0x01   # inside the first of two records
open(p, "wb").write(bytes(b))
PYEOF
cp "$LOG" "$TMP/damaged.log"
start
cli describe --collection=items >"$TMP/degraded"
grep -q "COLLECTION_DEGRADED" "$TMP/degraded" || { cat "$TMP/degraded"; fail "not DEGRADED"; }
grep -q "fails its checksum" "$TMP/degraded" || fail "DEGRADED without the reason"
grep -q '"staging_entry_count":"2073"' "$TMP/degraded" || { cat "$TMP/degraded"; fail "valid record not replayed"; }
cli list | grep -q "COLLECTION_DEGRADED" || fail "list hides the state"
cli search --collection=items --vector="$Q" --k=10 >"$TMP/live.degraded"
diff "$TMP/live.before" "$TMP/live.degraded" || fail "DEGRADED collection stopped serving"
if cli upsert --collection=items --file="$TMP/b.tsv" >"$TMP/refused" 2>&1; then
  fail "DEGRADED collection accepted a write"
fi
grep -q "FAILED_PRECONDITION: .*is DEGRADED" "$TMP/refused" || { cat "$TMP/refused"; fail "write refusal code"; }
cmp -s "$LOG" "$TMP/damaged.log" || fail "the damaged log was changed without an operator"
"$REPAIR" --data_dir="$DATA" --collection=items --salvage_staging_log >"$TMP/repair" 2>&1 \
  && fail "repair ran while the server holds the data dir"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
"$REPAIR" --data_dir="$DATA" --collection=items --salvage_staging_log >"$TMP/repair" \
  || { cat "$TMP/repair"; fail "repair failed"; }
grep -q "kept 1 valid records, dropped 1 corrupt" "$TMP/repair" || { cat "$TMP/repair"; fail "repair report"; }
start
cli describe --collection=items >"$TMP/repaired"
grep -q "COLLECTION_OK" "$TMP/repaired" || { cat "$TMP/repaired"; fail "not OK after salvage"; }
grep -q '"staging_entry_count":"2073"' "$TMP/repaired" || fail "salvage lost the valid record"
cli publish --collection=items | grep -q '"entry_count":"2073"' || fail "publish after salvage"

kill -TERM "$PID"
wait "$PID" || fail "SIGTERM exit code $?"
PID=""
echo "PASS"
