#!/usr/bin/env bash
# Multi-core scaling (BENCHMARKS.md, "Scaling"): one node with 1, 2, 4, …
# server cores against a fixed set of load cores, YCSB-B and YCSB-A, the
# same load generator every time.
#
#   bench/scaling.sh [PERCORE] [SIZES]   # default target/release/percore, "1 2 4 7"
#
# The node's shards run on CPUs $FIRST_CPU (1) onward, one per core; the
# load generator on $CLIENT_CPUS (8-15), one pinned thread each. Needs a
# machine with at least FIRST_CPU + max(SIZES) CPUs plus the load CPUs.
# DURATION (5s), RECORDS (1000000) and PORT (7980) override. Prints one
# table: ops/s per workload and size, the speedup over one core, GET/PUT
# p50/p99 (µs), bad reads and errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/percore}
read -ra sizes <<<"${2:-1 2 4 7}"
dur=${DURATION:-5s}
records=${RECORDS:-1000000}
first=${FIRST_CPU:-1}
ccpus=${CLIENT_CPUS:-8-15}
port=${PORT:-7980}
[ -x "$bin" ] || { echo "bench/scaling.sh: no $bin (cargo build --release)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench/scaling.sh: python3 is missing" >&2; exit 1; }
cpus=$(nproc)
for n in "${sizes[@]}"; do
    if [ $((first + n)) -gt "$cpus" ]; then
        echo "bench/scaling.sh: $n server cores from CPU $first need $((first + n)) CPUs; this machine has $cpus" >&2
        exit 1
    fi
done
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop; rm -rf "$work"' EXIT

echo "== sizes: ${sizes[*]} server cores from CPU $first; load on CPUs $ccpus; $dur per run; $records records" >&2
for n in "${sizes[@]}"; do
    last=$((first + n - 1))
    "$bin" server --cores "$first-$last" --port "$port" --stats-interval-ms 0 --capacity "$records" \
        >"$work/server-$n.log" 2>&1 &
    spid=$!
    up=
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ -n "$up" ] || { cat "$work/server-$n.log" >&2; exit 1; }
    "$bin" loadgen load --server "127.0.0.1:$port" --records "$records" --cores "$ccpus" -q >/dev/null
    for w in b a; do
        "$bin" loadgen run --server "127.0.0.1:$port" --records "$records" --cores "$ccpus" -w "$w" \
            --duration "$dur" --warmup 1s -q --json "$work/$n-$w.json" >/dev/null
    done
    stop
done

python3 - "$work" "${sizes[@]}" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
def pct(r, op, p):
    return f'{(r["latency_us"].get(op) or {}).get(p, 0):,.0f}'
for w, name in (("b", "YCSB-B"), ("a", "YCSB-A")):
    print(f"\n{name}\n")
    print("| server cores | ops/s | vs 1 core | per core | GET p50 µs | GET p99 µs | PUT p50 µs | PUT p99 µs | bad reads / errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base = None
    for n in sizes:
        r = json.load(open(f"{work}/{n}-{w}.json"))
        ops = r["throughput_ops_s"]
        base = base or ops
        print(f"| {n} | {ops:,.0f} | {ops / base:.2f}× | {ops / int(n):,.0f} | {pct(r, 'get', 'p50')} | "
              f"{pct(r, 'get', 'p99')} | {pct(r, 'put', 'p50')} | {pct(r, 'put', 'p99')} | "
              f"{r['bad_reads']} / {r['errors']} |")
PY
