#!/usr/bin/env bash
# The RESP door's benchmarks (BENCHMARKS.md, "The RESP door"), both tables
# from one run, one server core each:
#
#  1. the same load generator (YCSB-B, zipfian, 128 B values, batch 1024 ×
#     pipeline 4) drives percore frames, percore's RESP door and Redis:
#     ops/s, GET p50/p99, server and client CPU per operation;
#  2. redis-benchmark (a client nobody here wrote), same flags against the
#     RESP door and Redis: -t get,set -d 128 -r 1000000 at -P 16 and -P 64.
#
#   bench/resp.sh [PERCORE] [ROUNDS]     # default target/release/percore, 3 rounds
#
# Server on CPU $SERVER_CPU (0), load on $CLIENT_CPU (1); rounds alternate
# the targets so a noisy moment hits all of them. DURATION (10s), RECORDS
# (1000000) and BENCH_N (2000000 requests per redis-benchmark test) override.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/percore}
rounds=${2:-3}
dur=${DURATION:-10s}
records=${RECORDS:-1000000}
bench_n=${BENCH_N:-2000000}
scpu=${SERVER_CPU:-0}
ccpu=${CLIENT_CPU:-1}
port=${PORT:-7950}
for tool in redis-server redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "bench/resp.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench/resp.sh: no $bin (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop; rm -rf "$work"' EXIT

# start_server percore|redis: one server pinned to $scpu on $port.
start_server() {
    if [ "$1" = redis ]; then
        taskset -c "$scpu" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            >"$work/server.log" 2>&1 &
    else
        "$bin" server --cores "$scpu" --port "$port" --stats-interval-ms 0 --capacity "$records" \
            >"$work/server.log" 2>&1 &
    fi
    spid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$work/server.log" >&2
    exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$spid/stat"; }

echo "== 1. one load generator, three targets ($rounds rounds × $dur, $records records)" >&2
for i in $(seq 1 "$rounds"); do
    for t in frames resp redis; do
        case $t in
            frames) target=(--server "127.0.0.1:$port"); kind=percore ;;
            resp) target=(--target "redis://127.0.0.1:$port"); kind=percore ;;
            redis) target=(--target "redis://127.0.0.1:$port"); kind=redis ;;
        esac
        start_server "$kind"
        "$bin" loadgen load "${target[@]}" --records "$records" --cores "$ccpu" -q >/dev/null
        t0=$(ticks)
        "$bin" loadgen run "${target[@]}" --records "$records" --cores "$ccpu" -w b --duration "$dur" \
            --warmup 0s -q --json "$work/$t-$i.json" >/dev/null
        echo "$(($(ticks) - t0))" >"$work/$t-$i.ticks"
        stop
    done
done

echo "== 2. redis-benchmark -t get,set -d 128 -r 1000000 -n $bench_n (client on CPU $ccpu)" >&2
for i in $(seq 1 "$rounds"); do
    for kind in percore redis; do
        start_server "$kind"
        for p in 16 64; do
            for test in set get; do
                # The client's CPU (user + system seconds) for this test alone.
                TIMEFORMAT='%U %S'
                { time taskset -c "$ccpu" redis-benchmark -p "$port" -t "$test" -P "$p" -d 128 -r 1000000 \
                    -n "$bench_n" --csv -q >"$work/rb-$kind-$p-$test-$i.csv"; } 2>"$work/rb-$kind-$p-$test-$i.cpu"
            done
        done
        stop
    done
done

python3 - "$work" "$rounds" "$(getconf CLK_TCK)" "$bench_n" <<'PY'
import csv, json, statistics, sys
work, rounds, hz, n_req = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
med = statistics.median
print("### 1. The same load generator against three targets (one server core)\n")
print("| target | ops/s (median) | rounds | GET p50 µs | GET p99 µs | server CPU ns/op | client CPU ns/op | bad reads / errors |")
print("|---|---:|---|---:|---:|---:|---:|---|")
base = None
for t, name in (("frames", "percore frames"), ("resp", "percore RESP door"), ("redis", "Redis")):
    rows = []
    for i in range(1, rounds + 1):
        r = json.load(open(f"{work}/{t}-{i}.json"))
        ticks = int(open(f"{work}/{t}-{i}.ticks").read())
        ops = r["ops"] if "ops" in r else r["throughput_ops_s"] * r["duration_s"]
        get = r["latency_us"]["get"]
        rows.append((r["throughput_ops_s"], get["p50"], get["p99"], ticks / hz * 1e9 / max(ops, 1),
                     r["client_cpu_ns_per_op"], r["bad_reads"], r["errors"]))
    cols = list(zip(*rows))
    ops = med(cols[0])
    base = base or ops
    print(f"| {name} | {ops:,.0f} ({ops / base:.2f}×) | {' / '.join(f'{x / 1e6:.2f} M' for x in cols[0])} | "
          f"{med(cols[1]):,.0f} | {med(cols[2]):,.0f} | {med(cols[3]):,.1f} | {med(cols[4]):,.1f} | "
          f"{sum(cols[5])} / {sum(cols[6])} |")
print("\n### 2. redis-benchmark against the RESP door and Redis (one server core)\n")
print(f"| test | percore RESP door req/s | Redis req/s | percore / Redis | redis-benchmark CPU ns/req (percore / Redis) |")
print("|---|---:|---:|---:|---:|")
for p in (16, 64):
    for test in ("SET", "GET"):
        vals, cpu = {}, {}
        for kind in ("percore", "redis"):
            rps, ns = [], []
            for i in range(1, rounds + 1):
                base_name = f"{work}/rb-{kind}-{p}-{test.lower()}-{i}"
                for row in csv.reader(open(base_name + ".csv")):
                    if row and row[0] == test:
                        rps.append(float(row[1]))
                user, system = map(float, open(base_name + ".cpu").read().split())
                ns.append((user + system) * 1e9 / n_req)
            vals[kind], cpu[kind] = med(rps), med(ns)
        print(f"| {test} -P {p} | {vals['percore']:,.0f} | {vals['redis']:,.0f} | "
              f"{vals['percore'] / vals['redis']:.1f}× | {cpu['percore']:,.0f} / {cpu['redis']:,.0f} |")
PY
