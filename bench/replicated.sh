#!/usr/bin/env bash
# Replication's benchmark (BENCHMARKS.md, "Replication"), one script, the
# same load generator and door (RESP, the load generator's redis:// target,
# which follows CLUSTER SLOTS to each shard's leader) for every target:
#
#   replicas = 1 in memory | replicas = 1 --fsync always |
#   replicas = 3 --fsync always (three server processes on this machine)
#
# for YCSB-B and YCSB-A: ops/s, GET/PUT p50/p99.
#
#   bench/replicated.sh [PERCORE] [ROUNDS]     # default target/release/percore, 3 rounds
#
# Every server process is pinned to CPU $SERVER_CPU (0) — the three
# replicas share it, as the single node has it alone — and the load runs on
# $CLIENT_CPU (1). DURATION (5s) and RECORDS (200000) override; data goes
# under $DATA_DIR (default /var/tmp). TARGETS picks and orders the targets
# (default "memory always replicated"); "replicated-no" is replicas = 3
# with --fsync no, which takes the disk's flushes out of the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/percore}
rounds=${2:-3}
dur=${DURATION:-5s}
records=${RECORDS:-200000}
scpu=${SERVER_CPU:-0}
ccpu=${CLIENT_CPU:-1}
port=${PORT:-7940}
for tool in python3 redis-cli; do
    command -v "$tool" >/dev/null || { echo "bench/replicated.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench/replicated.sh: no $bin (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
data=$(mktemp -d "${DATA_DIR:-/var/tmp}/percore-replicated-bench.XXXXXX")
pids=()
stop_all() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_all; rm -rf "$work" "$data"' EXIT

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$work"/server*.log >&2
    exit 1
}

# start TARGET: fresh servers; the port clients start from.
start() {
    local n
    rm -rf "${data:?}"/*
    case $1 in
        memory) "$bin" server --cores "$scpu" --port "$port" --stats-interval-ms 0 --capacity "$records" \
            >"$work/server.log" 2>&1 &
            pids+=($!) ;;
        always) "$bin" server --cores "$scpu" --port "$port" --stats-interval-ms 0 --capacity "$records" \
            --data-dir "$data" --fsync always >"$work/server.log" 2>&1 &
            pids+=($!) ;;
        replicated | replicated-no)
            local fsync=always
            [ "$1" = replicated-no ] && fsync=no
            printf 'replicas = 3\n' >"$work/cluster.toml"
            for n in 0 1 2; do
                printf '[[server]]\nname = "r%s"\naddr = "127.0.0.1"\nport = %s\npeer_port = %s\ncores = [%s]\n' \
                    "$n" $((port + 10 * n)) $((port + 10 * n + 5)) "$scpu" >>"$work/cluster.toml"
            done
            for n in 0 1 2; do
                "$bin" server --config "$work/cluster.toml" --node "r$n" --stats-interval-ms 0 \
                    --capacity "$records" --data-dir "$data/r$n" --fsync "$fsync" >"$work/server$n.log" 2>&1 &
                pids+=($!)
            done ;;
    esac
    wait_port "$port"
    # A replicated shard takes writes once its group has elected a leader.
    for _ in $(seq 1 100); do
        [ "$(redis-cli -c -p "$port" SET bench:ready 1 2>/dev/null)" = OK ] && return 0
        sleep 0.1
    done
    cat "$work"/server*.log >&2
    exit 1
}

read -r -a targets <<<"${TARGETS:-memory always replicated}"
for t in "${targets[@]}"; do
    case $t in
        memory | always | replicated | replicated-no) ;;
        *) echo "bench/replicated.sh: unknown target $t (memory, always, replicated, replicated-no)" >&2; exit 2 ;;
    esac
done
echo "== $rounds rounds × $dur, $records records, YCSB-B and YCSB-A over RESP; data on $(df --output=source "$data" | tail -1)" >&2
for i in $(seq 1 "$rounds"); do
    for t in "${targets[@]}"; do
        start "$t"
        target=(--target "redis://127.0.0.1:$port")
        "$bin" loadgen load "${target[@]}" --records "$records" --cores "$ccpu" -q >/dev/null
        for w in b a; do
            "$bin" loadgen run "${target[@]}" --records "$records" --cores "$ccpu" -w "$w" --duration "$dur" \
                --warmup 0s -q --json "$work/$t-$w-$i.json" >/dev/null
        done
        stop_all
    done
done

labels=()
for t in "${targets[@]}"; do
    case $t in
        memory) labels+=("memory=replicas = 1, in memory") ;;
        always) labels+=("always=replicas = 1, --fsync always") ;;
        replicated) labels+=("replicated=replicas = 3, --fsync always") ;;
        replicated-no) labels+=("replicated-no=replicas = 3, --fsync no") ;;
    esac
done
python3 bench/ycsb_table.py "$work" "$rounds" "over RESP" "${labels[@]}"
