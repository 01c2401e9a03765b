#!/usr/bin/env bash
# shellcheck disable=SC2016 # remote scripts are single-quoted: they expand on the node
# run.sh [CONFIG] [--logs DIR] [--no-load] [--timeout S] [--line-rate-gbps G] [-- LOADGEN ARGS]
#
# One experiment on a cluster that up.sh brought up:
#   1. checks the loadgen arguments (`percore loadgen run` options, e.g.
#      -- --duration 30s --batch 256) and that every shard answers;
#   2. loads every record from the first client node (unless --no-load);
#   3. starts `percore sample` on every node and `percore loadgen run
#      --client NAME` on every client node (pinned by the file), waits for
#      the load generators (bounded: warm-up + duration + --timeout, default
#      120 s), stops the samplers;
#   4. collects every node's loadgen JSON and histograms, the servers' log
#      lines of the run, the samples, stats snapshots and metrics scrapes
#      (servers with a metrics_port, before and after the run; each node writes
#      them into DIR/nodes/NAME/runs/<UTC timestamp>/; one tar over ssh per
#      node brings them) into LOGS/<UTC timestamp>/ (LOGS: --logs, default
#      ./logs), points LOGS/latest at it, and prints `percore report` of it.
# Exits 1 if any load generator failed (naming the node), after collecting
# and reporting what there is.
#
# LINE_RATE_GBPS=G (or --line-rate-gbps G): the NICs' line rate for the
# report's line-rate figures, where the NICs do not report one.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cfg="" logs="$PWD/logs" load=yes slack=120 rate=${LINE_RATE_GBPS:-} args=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --logs) logs=${2:?--logs needs a directory}; shift 2 ;;
    --no-load) load=no; shift ;;
    --timeout) slack=${2:?--timeout needs seconds}; shift 2 ;;
    --line-rate-gbps) rate=${2:?--line-rate-gbps needs a number}; shift 2 ;;
    --) shift; args=("$@"); break ;;
    -*) die "unknown option $1 (loadgen options go after --)" ;;
    *) [ -z "$cfg" ] || die "one cluster file only (loadgen options go after --)"; cfg=$1; shift ;;
    esac
done
pick_config "$cfg"
need_percore

# 1. Arguments, nodes, servers.
checked=$("$PERCORE" cluster loadgen-args -- "${args[@]}" 2>&1) || die "$checked"
read -ra load_args <<<"$(sed -n 's/^load //p' <<<"$checked")"
seconds=$(sed -n 's/^seconds //p' <<<"$checked")
limit=$((seconds + slack))
load_cluster
[ "${#CLIENTS[@]}" -gt 0 ] || die "$CONFIG lists no [[client]] to generate load"
# Servers with a metrics endpoint: NAME -> "HOST PORT" (HOST as the node
# itself reaches it).
metrics_lines=$("$PERCORE" cluster metrics --config "$CONFIG") || die "cannot read the metrics ports of $CONFIG"
declare -A metrics_at
while read -r name host port; do
    [ -z "$name" ] || metrics_at[$name]="$host $port"
done <<<"$metrics_lines"
check_reachable || die "not running: fix the node(s) above"
first=${CLIENTS[0]}
first_server_addr=${HOST[${SERVERS[0]}]}

mkdir -p "$logs"
ts=$(date -u +%Y%m%dT%H%M%SZ)
for n in $(seq 2 100); do [ -e "$logs/$ts" ] || break; ts="$(date -u +%Y%m%dT%H%M%SZ)-$n"; done
out="$logs/$ts"
mkdir "$out"
cp "$CONFIG" "$out/cluster.toml"
{
    echo "started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "config=$CONFIG"
    echo "loadgen_args=${args[*]}"
    [ -z "$rate" ] || echo "line_rate_gbps=$rate"
} >"$out/run.txt"

# Every node gets a directory for this run, R=$ND/runs/<timestamp>, with the
# run's cluster file (a sweep runs subsets of the file up.sh used); what
# the run writes there is named as it will be in $out.
RUN='R=$ND/runs/'"$ts"$'\n'
for i in "${!NAME[@]}"; do
    remote "$i" "$RUN"'mkdir -p "$R"' || die "cannot prepare ${NAME[$i]}"
    scp -q "${SSH[@]}" "$CONFIG" "${HOST[$i]}:$DIR/nodes/${NAME[$i]}/runs/$ts/cluster.toml" </dev/null \
        || die "cannot copy the cluster file to ${NAME[$i]}"
done
pong=$(remote "$first" "$RUN"'"$BIN" ping --config "$R/cluster.toml" --wait 5 </dev/null 2>&1' 30) \
    || die "the servers do not answer from ${NAME[$first]} (run cluster/up.sh $CONFIG first): $(tail -n 1 <<<"$pong")"

# From here until they are stopped, leave no load generator or sampler
# running, whatever happens.
active=no
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local i
    if [ "$active" = yes ]; then
        for i in "${!NAME[@]}"; do
            remote "$i" "$REMOTE_LIB"'
stop_pidfile "$ND/loadgen.pid" "load generator" || true
stop_pidfile "$ND/sample.pid" sampler >/dev/null || true' 30 >&2 || true
        done
    fi
    close_ssh
}
trap cleanup EXIT

# 2. Load.
if [ "$load" = yes ]; then
    say "loading from ${NAME[$first]}: ${load_args[*]}"
    if ! remote "$first" "$RUN$(qarray ARGS "${load_args[@]}")"'
"$BIN" loadgen load --config "$R/cluster.toml" --client "$NODE" -q "${ARGS[@]}" >"$R/$NODE.load.txt" 2>&1 </dev/null ||
    { tail -n 2 "$R/$NODE.load.txt" >&2; exit 1; }' "$limit" >&2; then
        die "the load phase failed on ${NAME[$first]}"
    fi
fi

# 3. Measure: samplers everywhere (and where each server log stands), the
# load generators on the clients, then the samplers stopped.
stats() { remote "$first" "$RUN"'"$BIN" stats --config "$R/cluster.toml" --json </dev/null' 30; }
# scrape WHEN: every server with a metrics port fetches its own /metrics
# page into R/NODE.metrics-WHEN.prom (curl, else bash's /dev/tcp).
scrape() {
    local i host port
    for i in "${SERVERS[@]}"; do
        [ -n "${metrics_at[${NAME[$i]}]:-}" ] || continue
        read -r host port <<<"${metrics_at[${NAME[$i]}]}"
        remote "$i" "$RUN$(printf 'HOST=%q\nPORT=%q\nWHEN=%q\nCRLF=%q\n' "$host" "$port" "$1" $'\r\n')"'
case $HOST in *:*) AUTH="[$HOST]:$PORT" ;; *) AUTH="$HOST:$PORT" ;; esac
f="$R/$NODE.metrics-$WHEN.prom"
if command -v curl >/dev/null; then
    page=$(curl -sSf --max-time 10 "http://$AUTH/metrics" </dev/null)
else
    exec 3<>"/dev/tcp/$HOST/$PORT"
    printf "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$AUTH" >&3
    reply=$(timeout 10 cat <&3)
    exec 3<&-
    line=${reply%%"$CRLF"*}
    case $line in "HTTP/1."?" 200 "*) ;; *) echo "GET http://$AUTH/metrics: ${line:-no reply}" >&2; exit 1 ;; esac
    page=${reply#*"$CRLF$CRLF"}
fi
printf "%s\n" "$page" >"$f"' 30 || say "no metrics scrape $1 the run from ${NAME[$i]}"
    done
}
stats >"$out/stats-before.json" || say "no stats snapshot before the run"
scrape before
declare -A offset
active=yes
for i in "${!NAME[@]}"; do
    offset[$i]=$(remote "$i" "$RUN$(printf 'ADDR=%q\nLIMIT=%q\nROLE=%q\n' "$first_server_addr" "$((limit + 60))" "${ROLE[$i]}")"'
setsid "$BIN" sample --out "$R/$NODE.sample.jsonl" --addr "$ADDR" --duration "${LIMIT}s" >"$R/$NODE.sample.err" 2>&1 </dev/null &
echo $! >"$ND/sample.pid"
if [ "$ROLE" = server ]; then stat -c %s "$ND/server.out"; fi') || die "cannot start the sampler on ${NAME[$i]}"
done
say "running: ${#CLIENTS[@]} load generator(s) (${args[*]:-defaults}), up to ${limit} s"
declare -A job
for i in "${CLIENTS[@]}"; do
    remote "$i" "$RUN$(qarray ARGS "${args[@]}")"'
setsid "$BIN" loadgen run --config "$R/cluster.toml" --client "$NODE" -q --json "$R/$NODE.loadgen.json" \
    --hgrm "$R/$NODE" "${ARGS[@]}" >"$R/$NODE.loadgen.txt" 2>"$R/$NODE.loadgen.err" </dev/null &
pid=$!
echo "$pid" >"$ND/loadgen.pid"
rc=0; wait "$pid" || rc=$?
rm -f "$ND/loadgen.pid"
exit "$rc"' "$limit" &
    job[$i]=$!
done
failed=()
for i in "${CLIENTS[@]}"; do
    rc=0; wait "${job[$i]}" || rc=$?
    [ "$rc" = 0 ] || failed+=("$i:$rc")
done
# The servers print a line a second: wait for the one that holds the end of
# the load, then stop the samplers and cut each server's lines of the run.
sleep 1.2
for i in "${!NAME[@]}"; do
    remote "$i" "$RUN$REMOTE_LIB$(printf 'FROM=%q\n' "${offset[$i]:-}")"'
stop_pidfile "$ND/sample.pid" sampler >/dev/null || true
if [ -n "$FROM" ]; then
    to=$(stat -c %s "$ND/server.out")
    tail -c +"$((FROM + 1))" "$ND/server.out" | head -c "$((to - FROM))" >"$R/$NODE.server.log"
    cp "$ND/server.err" "$R/$NODE.server.err"
fi' 30 || say "cannot stop the sampler on ${NAME[$i]}"
done
active=no
stats >"$out/stats-after.json" || say "no stats snapshot after the run"
scrape after
echo "finished_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$out/run.txt"

# 4. Collect: each node's run directory, in one transfer per node.
for i in "${!NAME[@]}"; do
    remote "$i" "$RUN"'tar -C "$R" --exclude=cluster.toml -cf - .' 60 | tar -C "$out" -xf - \
        || say "cannot collect the files of ${NAME[$i]}"
done
for i in "${CLIENTS[@]}"; do
    [ -s "$out/${NAME[$i]}.loadgen.json" ] || say "no loadgen report from ${NAME[$i]}"
done
ln -sfn "$ts" "$logs/latest"
say "collected into $out (and $logs/latest)"

report_args=()
[ -z "$rate" ] || report_args+=(--line-rate-gbps "$rate")
"$PERCORE" report "${report_args[@]}" "$out" || say "the report failed"

status=0
for f in "${failed[@]}"; do
    i=${f%%:*}
    why=$(tail -n 1 "$out/${NAME[$i]}.loadgen.err" 2>/dev/null || true)
    say "loadgen failed on ${NAME[$i]} (exit ${f#*:}): ${why:-no message}"
    status=1
done
exit "$status"
