#!/usr/bin/env bash
# The open-loop latency curve (offered rate -> GET p50/p99/p99.9), for
# percore and for Redis, from one script: what BENCHMARKS.md's open-loop
# tables come from.
#
#   bench/openloop.sh [OUT_DIR]
#
# Two `percore bench --rates` runs, each with ROUNDS (default 3) rounds per
# point, DURATION (default 5s) measured after a 1 s warm-up:
#   1. percore and Redis side by side at Redis's rates (RATES_BOTH, default
#      100k,200k,400k,600k): the same client, the same cores, alternating;
#   2. percore alone up to past half its closed-loop peak (RATES_PERCORE,
#      default 500k,1M,2M,3M,4M).
# Each writes OUT_DIR/<name>.md (a Markdown table), .json and .png; the
# machine's steal time during each run is printed, since on a VM a stolen
# vCPU shows up as latency. Extra `percore bench` options go in BENCH_ARGS.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/target/openloop}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
mkdir -p "$out"
cd "$here"
cargo build --release -q -p percore-tools
percore=target/release/percore
command -v redis-server >/dev/null || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
    else
        echo "openloop.sh: redis-server is missing; install with: sudo apt-get install redis-server" >&2
        exit 2
    fi
}
steal() { awk '/^cpu / {print $9}' /proc/stat; }
curve() {
    local name=$1 rates=$2; shift 2
    local before after
    before=$(steal)
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    "$percore" bench --rates "$rates" --rounds "$rounds" --duration "$duration" \
        --json "$out/$name.json" "$@" ${BENCH_ARGS:-} | tee "$out/$name.md"
    after=$(steal)
    echo "openloop.sh: $name: steal time during the run $(( (after - before) * 10 )) ms (all CPUs, /proc/stat)" | tee -a "$out/$name.md" >&2
}
curve percore-vs-redis "${RATES_BOTH:-100k,200k,400k,600k}" --vs redis
curve percore "${RATES_PERCORE:-500k,1M,2M,3M,4M}"
echo "openloop.sh: tables, JSON and PNGs in $out" >&2
