#!/usr/bin/env bash
# Soak under attack: a local percore server (CPU 0) serves a verified,
# recorded YCSB-A workload (`percore loadgen run --history`) while
# `percore attack` hits the same port with garbage, half frames, slow
# trickles, connection churn, jumbo values and deletes of hot keys (which
# it records too). At the end `percore check` must find both histories
# linearizable, the load generator must report 0 bad reads and 0 errors,
# the attacker's own model must agree with every reply, and the server
# must still be up, then stop cleanly. Prints the server's RSS over time
# and its final counters.
#
#   tools/soak.sh [SECONDS] [RATE]     (default 20 s at 100000 ops/s)
#   PERCORE_BIN=path tools/soak.sh     (use that binary instead of building)
#
# Everything it writes goes to logs/soak-<UTC time>/ (kept on failure and
# success; history files are removed on success unless KEEP=1).
set -euo pipefail
secs=${1:-20}
rate=${2:-100000}
records=${RECORDS:-100000}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# PERCORE_BIN: a percore binary already built (tools/test.sh passes its
# own); otherwise the release build.
bin=${PERCORE_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin percore
    bin=$top/target/release/percore
fi
dir=logs/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dir"
say() { printf 'soak: %s\n' "$*" >&2; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bin" server --cores 0 --port 0 --stats-interval-ms 0 --handshake-timeout 2s --frame-timeout 2s \
    --maxmemory 2gb >"$dir/server.out" 2>"$dir/server.err" &
server=$!
pids+=("$server")
addr=
for _ in $(seq 1 300); do
    addr=$(sed -n 's/.* ready: .*shard 0 cpu [0-9]* \([0-9.]*:[0-9]*\).*/\1/p' "$dir/server.err" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/server.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { say "server did not start"; cat "$dir/server.err" >&2; exit 1; }
say "server pid $server on $addr; results in $dir"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server/status" 2>/dev/null || echo 0; }
(
    start=$(date +%s)
    while kill -0 "$server" 2>/dev/null; do
        printf '%s %s\n' "$(( $(date +%s) - start ))" "$(rss_kb)"
        sleep 1
    done
) >"$dir/rss.txt" &
pids+=("$!")

"$bin" loadgen load --server "$addr" --cores 1 --records "$records" -q >"$dir/load.out"
say "loaded $records records; soaking ${secs}s at $rate ops/s under attack"
"$bin" attack --server "$addr" --duration "${secs}s" --records "$records" --hot-deletes 50 \
    --history "$dir/attack.hist" >"$dir/attack.out" 2>"$dir/attack.err" &
attacker=$!
pids+=("$attacker")
loadgen_rc=0
"$bin" loadgen run --server "$addr" --cores 1 --records "$records" --workload a --rate "$rate" \
    --batch 128 --pipeline 4 --timeout 10s --duration "${secs}s" --warmup 0s -q --history "$dir/run.hist" \
    --json "$dir/run.json" >"$dir/run.out" 2>"$dir/run.err" || loadgen_rc=$?
attack_rc=0
wait "$attacker" || attack_rc=$?

failed=0
fail() { say "FAIL: $*"; failed=1; }
cat "$dir/run.out"
cat "$dir/attack.out"
[ "$loadgen_rc" = 0 ] || { fail "load generator exited $loadgen_rc"; cat "$dir/run.err" >&2; }
[ "$attack_rc" = 0 ] || { fail "attacker exited $attack_rc"; tail -n 20 "$dir/attack.err" >&2; }
kill -0 "$server" 2>/dev/null || fail "the server died"
grep -qE '^verified +0 bad reads' "$dir/run.out" || fail "the load generator saw bad reads"
grep -qE '^errors +0 ' "$dir/run.out" || fail "the load generator saw errors"

say "checking $dir/run.hist and $dir/attack.hist"
if "$bin" check "$dir/run.hist" "$dir/attack.hist" >"$dir/check.out" 2>&1; then
    cat "$dir/check.out"
else
    cat "$dir/check.out"
    fail "percore check did not say linearizable"
fi

say "server counters at the end:"
"$bin" stats --server "$addr" || fail "the server does not answer stats"
kill -TERM "$server"
server_rc=0
wait "$server" || server_rc=$?
[ "$server_rc" = 0 ] || fail "the server exited $server_rc after SIGTERM"
grep '^final' "$dir/server.out" || true

say "server RSS (MB) over the run:"
awk '{ mb = $2 / 1024; if (NR == 1 || mb > max) max = mb; if (NR == 1 || mb < min) min = mb; rows[NR] = sprintf("%5ss %8.1f", $1, mb) }
     END { step = int(NR / 10); if (step < 1) step = 1
           for (i = 1; i <= NR; i += step) print "  " rows[i]
           if ((NR - 1) % step) print "  " rows[NR]
           printf "  min %.1f MB, max %.1f MB over %d samples\n", min, max, NR }' "$dir/rss.txt"

if [ "$failed" = 0 ]; then
    [ "${KEEP:-0}" = 1 ] || rm -f "$dir/run.hist" "$dir/attack.hist"
    say "passed"
else
    say "failed; everything is in $dir"
    exit 1
fi
