#!/usr/bin/env bash
# The durable log's benchmarks (BENCHMARKS.md, "Durability"), one script,
# one server core, the same load generator for every target:
#
#   percore in memory | --fsync no | everysec | always, and Redis with
#   appendfsync everysec | always (through the load generator's redis://
#   target), for YCSB-B and YCSB-A: ops/s, GET/PUT p50/p99.
#
#   bench/durable.sh [PERCORE] [ROUNDS]     # default target/release/percore, 3 rounds
#
# Server on CPU $SERVER_CPU (0), load on $CLIENT_CPU (1); rounds alternate
# the targets so a noisy moment hits all of them. The data directories go
# under $DATA_DIR (default: a temporary directory on the disk that holds
# /var/tmp): say which disk a figure came from. DURATION (10s) and RECORDS
# (1000000) override.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/percore}
rounds=${2:-3}
dur=${DURATION:-10s}
records=${RECORDS:-1000000}
scpu=${SERVER_CPU:-0}
ccpu=${CLIENT_CPU:-1}
port=${PORT:-7960}
for tool in redis-server taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench/durable.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench/durable.sh: no $bin (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
data=$(mktemp -d "${DATA_DIR:-/var/tmp}/percore-durable-bench.XXXXXX")
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop; rm -rf "$work" "$data"' EXIT

# start_server TARGET: one fresh server pinned to $scpu on $port.
start_server() {
    rm -rf "${data:?}"/*
    case $1 in
        memory) "$bin" server --cores "$scpu" --port "$port" --stats-interval-ms 0 --capacity "$records" \
            >"$work/server.log" 2>&1 & ;;
        no | everysec | always) "$bin" server --cores "$scpu" --port "$port" --stats-interval-ms 0 \
            --capacity "$records" --data-dir "$data" --fsync "$1" >"$work/server.log" 2>&1 & ;;
        redis-*) (cd "$data" && exec taskset -c "$scpu" redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly yes --appendfsync "${1#redis-}" --dir "$data") >"$work/server.log" 2>&1 & ;;
    esac
    spid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$work/server.log" >&2
    exit 1
}

targets=(memory no everysec always redis-everysec redis-always)
echo "== $rounds rounds × $dur, $records records, YCSB-B and YCSB-A; data on $(df --output=source "$data" | tail -1)" >&2
for i in $(seq 1 "$rounds"); do
    for t in "${targets[@]}"; do
        case $t in
            redis-*) target=(--target "redis://127.0.0.1:$port") ;;
            *) target=(--server "127.0.0.1:$port") ;;
        esac
        start_server "$t"
        "$bin" loadgen load "${target[@]}" --records "$records" --cores "$ccpu" -q >/dev/null
        for w in b a; do
            "$bin" loadgen run "${target[@]}" --records "$records" --cores "$ccpu" -w "$w" --duration "$dur" \
                --warmup 0s -q --json "$work/$t-$w-$i.json" >/dev/null
        done
        stop
    done
done

python3 bench/ycsb_table.py "$work" "$rounds" "one server core" memory="percore, in memory" \
    no="percore --fsync no" everysec="percore --fsync everysec" always="percore --fsync always" \
    redis-everysec="Redis appendfsync everysec" redis-always="Redis appendfsync always"
