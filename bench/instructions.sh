#!/usr/bin/env bash
# User-space instructions per operation of a server, counted by valgrind's
# callgrind (deterministic: this VM has no hardware counters, and callgrind's
# count does not depend on what else the machine is doing).
#
#   bench/instructions.sh [percore|redis|memcached|loadgen] [OPS]
#
# `loadgen` counts the load generator's own instructions per operation
# instead (against a plain percore server), in its load threads only (one
# callgrind file per thread; the main thread's one-time set-up — connecting,
# the zipfian's tables — is left out).
#
# The server runs under callgrind with instrumentation off while RECORDS
# records are loaded (default 1,000,000), then instrumentation is switched on
# for exactly OPS operations of the workload (default 2,000,000 YCSB-B ops,
# batch BATCH=1024, pipeline PIPELINE=4), dumped, and the total is divided by
# the operations. All threads of the server are counted. Extra loadgen
# options can go in LOADGEN_ARGS (e.g. "--workload c"). PERCORE=BINARY
# counts another build instead of building this tree's (e.g. two commits'
# release binaries, side by side); KEEP=DIR keeps the callgrind files there.
set -euo pipefail
target=${1:-percore}
ops=${2:-2000000}
records=${RECORDS:-1000000}
batch=${BATCH:-1024}
pipeline=${PIPELINE:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

command -v valgrind >/dev/null || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
    else
        echo "instructions.sh: valgrind is missing; install with: sudo apt-get install valgrind" >&2
        exit 2
    fi
}
if [ -z "${PERCORE:-}" ]; then
    echo "instructions.sh: building (profile 'profiling': release + debug info)" >&2
    cargo build --profile profiling -p percore-tools --quiet
fi
percore=${PERCORE:-target/profiling/percore}
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cg=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$work/cg.out.%p")
case "$target" in
    loadgen)
        "$percore" server --cores 0 --port "$port" --stats-interval-ms 0 \
            --capacity $((records * 11 / 10)) >"$work/server.out" 2>"$work/server.err" &
        url="percore://127.0.0.1:$port" ;;
    percore)
        "${cg[@]}" "$percore" server --cores 0 --port "$port" --stats-interval-ms 0 \
            --capacity $((records * 11 / 10)) >"$work/server.out" 2>"$work/server.err" &
        url="percore://127.0.0.1:$port" ;;
    redis)
        "${cg[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no >"$work/server.out" 2>"$work/server.err" &
        url="redis://127.0.0.1:$port" ;;
    memcached)
        # memcached sets its descriptor limits (soft and hard) to -c; valgrind
        # only lets a program keep valgrind's own hard limit, so ask for that.
        vlimit=$(valgrind --tool=none sh -c 'ulimit -Hn' 2>/dev/null)
        "${cg[@]}" memcached -p "$port" -l 127.0.0.1 -t 1 -U 0 -m 4096 -c "$vlimit" -u root \
            >"$work/server.out" 2>"$work/server.err" &
        url="memcached://127.0.0.1:$port" ;;
    *) echo "instructions.sh: unknown target $target (percore, redis, memcached)" >&2; exit 2 ;;
esac
server_pid=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
done
common=(--target "$url" --cores 1 --records "$records" --batch "$batch" --pipeline "$pipeline" --timeout 60s -q)
"$percore" loadgen load "${common[@]}" >/dev/null
if [ "$target" = loadgen ]; then
    # shellcheck disable=SC2086  # LOADGEN_ARGS is a list of options
    valgrind --tool=callgrind --separate-threads=yes \
        "--callgrind-out-file=$work/client.out" "$percore" loadgen run "${common[@]}" --ops "$ops" \
        --warmup 0s ${LOADGEN_ARGS:-} --json "$work/run.json" >/dev/null 2>"$work/client.err"
    # Thread 1 is the main thread; the others are the load threads.
    for f in "$work"/client.out-*; do
        case "$f" in *-01) ;; *) cp "$f" "$work/cg.out.client.${f##*-}" ;; esac
    done
else
    callgrind_control -i on "$server_pid" >/dev/null 2>&1
    # shellcheck disable=SC2086  # LOADGEN_ARGS is a list of options
    "$percore" loadgen run "${common[@]}" --ops "$ops" --warmup 0s ${LOADGEN_ARGS:-} --json "$work/run.json" >/dev/null
    callgrind_control -d "$server_pid" >/dev/null 2>&1
    callgrind_control -i off "$server_pid" >/dev/null 2>&1
fi
issued=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issued"])' "$work/run.json")
total=0
for f in "$work"/cg.out.*.*; do
    # (awk reads to the end: an early exit would SIGPIPE callgrind_annotate under pipefail)
    ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
    total=$((total + ${ir:-0}))
done
printf '%s: %d instructions for %d operations = %.1f user-space instructions/op (records %d, batch %d, pipeline %d)\n' \
    "$target" "$total" "$issued" "$(echo "$total / $issued" | bc -l)" "$records" "$batch" "$pipeline"
if [ -n "${KEEP:-}" ]; then cp "$work"/cg.out.*.* "$KEEP"/ && echo "profiles kept in $KEEP" >&2; fi
