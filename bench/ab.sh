#!/usr/bin/env bash
# Paired A/B runs of `percore bench`: two builds, alternating, so a noisy
# moment on a shared machine hits both rather than one.
#
#   bench/ab.sh OLD_PERCORE NEW_PERCORE [RUNS] [-- BENCH_OPTIONS...]
#
# Runs `OLD bench --duration 10s -q --json …` (DURATION overrides 10s), then `NEW …`, RUNS times
# (default 5), and prints one line per run (ops/s, GET p50/p99 µs, server
# and client CPU ns/op, errors, bad reads) and the medians.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
old=$1 new=$2; shift 2
runs=5
if [ $# -gt 0 ] && [ "$1" != -- ]; then runs=$1; shift; fi
[ "${1:-}" = -- ] && shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$runs"); do
    for v in old new; do
        bin=$old; [ $v = new ] && bin=$new
        "$bin" bench --duration "${DURATION:-10s}" -q --json "$work/$v-$i.json" "$@" >"$work/$v-$i.out" 2>&1 ||
            { cat "$work/$v-$i.out" >&2; exit 1; }
    done
done
python3 - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
rows = {"old": [], "new": []}
for i in range(1, runs + 1):
    for v in ("old", "new"):
        r = json.load(open(f"{work}/{v}-{i}.json"))
        get = r["latency_us"]["get"]
        row = (r["throughput_ops_s"], get["p50"], get["p99"],
               (r.get("server") or {}).get("cpu_ns_per_op") or float("nan"), r["client_cpu_ns_per_op"])
        rows[v].append(row)
        print(f"{v} {i}: {row[0]:>12,.0f} ops/s  GET p50 {row[1]:8.1f} p99 {row[2]:8.1f} µs  "
              f"server {row[3]:6.1f} client {row[4]:6.1f} ns/op  errors {r['errors']} bad {r['bad_reads']}")
for v in ("old", "new"):
    cols = list(zip(*rows[v]))
    print(f"{v} median: {statistics.median(cols[0]):>12,.0f} ops/s  GET p99 {statistics.median(cols[2]):8.1f} µs  "
          f"server {statistics.median(cols[3]):6.1f} client {statistics.median(cols[4]):6.1f} ns/op")
PY
