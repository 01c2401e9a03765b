#!/usr/bin/env bash
# How fast a replica that was down catches up (BENCHMARKS.md, "Replication"):
# three one-core server processes, `replicas = 3`, `--fsync always`; one
# follower is killed, RECORDS records of VALUE_SIZE bytes are loaded through
# the others, and the follower is restarted. Printed: the time from its
# restart until it has applied everything the leader committed and its
# store's DEBUG DIGEST equals the leader's, whether it installed the
# leader's snapshot or caught up from the log, and the snapshot's size.
#
#   bench/catchup.sh [PERCORE]        # default target/release/percore
#
# SNAPSHOT_AFTER (default 64mb: the load passes it, so the leader's log no
# longer holds what the follower lacks and it must take the snapshot; set
# it above the load's log bytes, e.g. 4gb, to catch up from the log
# instead), RECORDS (500000), VALUE_SIZE (128). Every server is pinned to
# CPU $SERVER_CPU (0), the load to $CLIENT_CPU (1); data under $DATA_DIR
# (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/percore}
records=${RECORDS:-500000}
value=${VALUE_SIZE:-128}
after=${SNAPSHOT_AFTER:-64mb}
scpu=${SERVER_CPU:-0}
ccpu=${CLIENT_CPU:-1}
port=${PORT:-7960}
command -v redis-cli >/dev/null || { echo "bench/catchup.sh: redis-cli is missing" >&2; exit 1; }
[ -x "$bin" ] || { echo "bench/catchup.sh: no $bin (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
data=$(mktemp -d "${DATA_DIR:-/var/tmp}/percore-catchup-bench.XXXXXX")
declare -A pid
stop_all() {
    for n in "${!pid[@]}"; do
        kill "${pid[$n]}" 2>/dev/null || true
        wait "${pid[$n]}" 2>/dev/null || true
    done
}
trap 'stop_all; rm -rf "$work" "$data"' EXIT

printf 'replicas = 3\n' >"$work/cluster.toml"
for n in 0 1 2; do
    printf '[[server]]\nname = "c%s"\naddr = "127.0.0.1"\nport = %s\npeer_port = %s\ncores = [%s]\n' \
        "$n" $((port + 10 * n)) $((port + 10 * n + 5)) "$scpu" >>"$work/cluster.toml"
done
start() {
    "$bin" server --config "$work/cluster.toml" --node "c$1" --stats-interval-ms 0 --data-dir "$data/c$1" \
        --fsync always --snapshot-after "$after" >>"$work/server$1.log" 2>&1 &
    pid[$1]=$!
}
info() { redis-cli -p "$1" INFO replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
for n in 0 1 2; do start "$n"; done
for _ in $(seq 1 200); do
    [ "$(redis-cli -c -p "$port" SET bench:ready 1 2>/dev/null)" = OK ] && break
    sleep 0.1
done
# Leadership settles on c0 (the cluster file's first leader); c2 goes down.
for _ in $(seq 1 200); do
    [ "$(info "$port" role)" = master ] && break
    sleep 0.1
done
kill -9 "${pid[2]}"
wait "${pid[2]}" 2>/dev/null || true
unset 'pid[2]'
echo "catchup: c2 killed; loading $records records of $value B through c0 (snapshot after $after)" >&2
"$bin" loadgen load --target "percore://127.0.0.1:$port" --records "$records" \
    --value-size "$value" --cores "$ccpu" -q >"$work/load.txt"
commit=$(info "$port" percore_raft_commit_index)
first=$(info "$port" percore_raft_log_first_index)
echo "catchup: leader c0 at commit $commit, its log from entry $first" >&2
start=$(date +%s.%N)
start 2
p2=$((port + 20))
while :; do
    applied=$(info "$p2" percore_raft_applied_index)
    if [ "$applied" = "$commit" ] &&
        [ "$(redis-cli -p "$p2" DEBUG DIGEST)" = "$(redis-cli -p "$port" DEBUG DIGEST)" ]; then
        break
    fi
    if awk -v s="$start" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - s > 600) }'; then
        echo "catchup: c2 did not catch up within 600 s (applied ${applied:-?} of $commit)" >&2
        exit 1
    fi
    sleep 0.05
done
echo "catchup: the leader's snapshots:" >&2
grep -h "snapshot" "$work/server0.log" | tail -3 >&2 || true
secs=$(awk -v s="$start" -v now="$(date +%s.%N)" 'BEGIN { printf "%.2f", now - s }')
installed=$(info "$p2" percore_snapshots_installed)
size=$(stat -c %s "$data/c2/shard-0/snapshot" 2>/dev/null || echo 0)
echo "records $records x $value B, snapshot-after $after: c2 agreed with the leader (entry $commit, equal digests) $secs s after its restart; snapshots installed $installed, its snapshot file $size bytes"
