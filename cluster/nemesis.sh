#!/usr/bin/env bash
# shellcheck disable=SC2016 # remote scripts are single-quoted: they expand on the node
# nemesis.sh CONFIG [--duration 60s] [--faults kill,partition,pause] [--seed N]
#                   [--victim any|leader|follower] [--records N] [--logs DIR] [--keep]
#
# Faults against a replicated cluster under load, and the verdict over the
# whole run. CONFIG names at least three server nodes and `replicas` of at
# least 3, with a `data_dir` (`{node}` in it keeps nodes that share a
# filesystem apart). Run it from a machine that reaches the servers'
# addresses: the load is generated here.
#   1. up.sh CONFIG, then loads --records (default 2000) records through
#      the RESP door;
#   2. runs `percore loadgen run` here for --duration (YCSB-A, one thread,
#      --history, a 100 ms timeline; it follows each shard's leader, and an
#      operation whose connection is lost is recorded with an unknown
#      outcome, never as a success), and beside it one reader pinned to
#      each server node (YCSB-C, 200 reads/s at nice 10, through `redis-node://` to
#      the node's first endpoint, --history; a follower must refuse it,
#      MOVED, and a reader whose node dies starts again), while, every 1 to
#      3 s, one fault strikes
#      for 1 to 3 s: the kinds of --faults take turns in a random order,
#      each on the shard's leader (as the nodes name it) half of the time,
#      else on another server node (--victim leader or follower: always
#      that one):
#        kill       kill -9 the server, then start it again over its log
#                   (as up.sh does, without waiting for it);
#        partition  the node and the other server nodes drop each other's
#                   packets (blackhole routes to each other's addresses,
#                   on both sides; clients still reach it, as in Jepsen's
#                   partitions: a cut-off leader must refuse them); jobs
#                   detached on the nodes heal it by themselves;
#        isolate    (not by default) the node's interface for its address
#                   goes down: cut off from everyone, clients included; a
#                   job detached on the node brings it back up (with ssh
#                   over that interface, ssh waits for it too);
#        pause      SIGSTOP, then SIGCONT;
#   3. heals everything (SIGCONT, up.sh), reads every record back
#      (`percore loadgen verify --history`);
#   4. prints the checker's verdict over the run and the reads
#      (`percore check RUN --then READS`), the acknowledged writes lost
#      (`percore lost`, must be 0), the longest time each shard completed
#      nothing, and the ops/s in the 2 s before, during and in the 2 s
#      after each fault.
# Exits 0 only when the history is linearizable and nothing acknowledged
# was lost; 1 otherwise. PERCORE_SERVER_ARGS (see up.sh) reaches every
# server start, the nemesis's restarts included: a test build's
# "--fault follower-reads" must make the run fail with a VIOLATION. Stops the servers at the end (down.sh) unless
# --keep. Every file (histories, reports, fault log) stays in --logs DIR
# (default ./logs/nemesis-<UTC time>).
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

cfg="" duration=60s faults=kill,partition,pause seed="" records=2000 logs="" keep=no victim=any
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --duration) duration=${2:?--duration needs a time (e.g. 60s)}; shift 2 ;;
    --faults) faults=${2:?--faults needs a list (kill,partition,pause)}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --victim) victim=${2:?--victim needs any, leader or follower}; shift 2 ;;
    --records) records=${2:?--records needs a number}; shift 2 ;;
    --logs) logs=${2:?--logs needs a directory}; shift 2 ;;
    --keep) keep=yes; shift ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$cfg" ] || die "one cluster file only"; cfg=$1; shift ;;
    esac
done
pick_config "$cfg"
need_percore
case "$duration" in
*ms) die "--duration $duration: give whole seconds (e.g. 20s, 1m)" ;;
*s) secs=${duration%s} ;;
*m) secs=$((${duration%m} * 60)) ;;
*) secs=$duration ;;
esac
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 5 ]; then die "--duration $duration: at least 5s"; fi
if ! [[ "$records" =~ ^[0-9]+$ ]] || [ "$records" -lt 1 ]; then die "--records $records: a positive number"; fi
IFS=, read -ra kinds <<<"$faults"
for k in "${kinds[@]}"; do
    case "$k" in kill | partition | pause | isolate) ;; *) die "--faults: unknown fault $k (kill, partition, pause, isolate)" ;; esac
done
[ "${#kinds[@]}" -gt 0 ] || die "--faults: none given"
case "$victim" in any | leader | follower) ;; *) die "--victim $victim: any, leader or follower" ;; esac
seed=${seed:-$(date +%s)}
RANDOM=$seed

load_cluster
replicas=$("$PERCORE" cluster replicas --config "$CONFIG") || die "cannot read $CONFIG"
[ "$replicas" -ge 3 ] || die "$CONFIG has replicas = $replicas: the nemesis needs replicated shards (replicas = 3)"
[ "${#SERVERS[@]}" -ge 3 ] || die "$CONFIG has ${#SERVERS[@]} server nodes: the nemesis needs at least 3"
mapfile -t endpoints < <("$PERCORE" cluster endpoints --config "$CONFIG")
target=${endpoints[0]#* }

logs=${logs:-$PWD/logs/nemesis-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
say "seed $seed, $duration, faults ${kinds[*]}, logs in $logs"

cleanup() {
    local i
    for i in "${SERVERS[@]}"; do
        remote "$i" '[ -f "$ND/server.pid" ] && kill -CONT "$(cat "$ND/server.pid")" 2>/dev/null || true' 20 || true
    done
    if [ "$keep" = no ]; then
        "$HERE/down.sh" "$CONFIG" >>"$logs/cluster.log" 2>&1 || say "down.sh failed (see $logs/cluster.log)"
    fi
    close_ssh
}
trap cleanup EXIT

up() { PERCORE_TUNE=no "$HERE/up.sh" "$CONFIG" >>"$logs/cluster.log" 2>&1; }
up || { tail -n 5 "$logs/cluster.log" >&2; die "up.sh failed"; }

# 1. The records, once a leader serves them (an election may still run).
for n in $(seq 1 100); do
    if "$PERCORE" loadgen load --target "redis://$target" --records "$records" -q >"$logs/load.out" 2>"$logs/load.err"; then
        break
    fi
    [ "$n" -lt 100 ] || { cat "$logs/load.err" >&2; die "the load never succeeded"; }
    sleep 0.3
done
say "loaded $records records through $target"

# 2. The run, the pinned readers, and the faults.
run_start=$(date +%s.%N)
run_end=$(awk -v s="$run_start" -v d="$secs" 'BEGIN { printf "%.3f", s + d }')
pinned() { # pinned NODE HOST:PORT: reads until the run's end, again after each loss
    local n=0 left
    while left=$(awk -v e="$run_end" -v now="$(date +%s.%N)" 'BEGIN { l = int(e - now); if (l < 1) exit 1; print l }'); do
        n=$((n + 1))
        nice -n 10 "$PERCORE" loadgen run --target "redis-node://$2" --workload c --records "$records" \
            --duration "${left}s" --warmup 0s --rate 200 --batch 1 --pipeline 1 --timeout 1s --seed "$((seed + n))" \
            --history "$logs/pinned-$1-$n.hist" -q >>"$logs/pinned-$1.out" 2>&1 || sleep 0.3
    done
}
readers=()
for e in "${endpoints[@]}"; do
    case " ${seen:-} " in *" ${e%% *} "*) continue ;; esac
    seen="${seen:-} ${e%% *}"
    pinned "${e%% *}" "${e#* }" &
    readers+=($!)
done
"$PERCORE" loadgen run --target "redis://$target" --workload a --records "$records" \
    --duration "${secs}s" --warmup 0s --interval 100ms --timeout 1s --batch 16 --pipeline 2 \
    --seed "$seed" --history "$logs/run.hist" --json "$logs/run.json" -q \
    >"$logs/run.out" 2>"$logs/run.err" &
loadgen=$!
since() { awk -v a="$run_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
pid_of() { remote "$1" 'cat "$ND/server.pid"' 20; }
# The node shard 0's leader is on, as the first node that answers CLUSTER
# SLOTS names it (empty if none answers within 0.5 s each).
leader_node() {
    python3 - "${endpoints[@]}" <<'EOF'
import re, socket, sys
nodes = [a.split(" ", 1) for a in sys.argv[1:]]
for _, addr in nodes:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5) as s:
            s.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
            data = b""
            while not re.search(rb"\$\d+\r\n[^\r]*\r\n:\d+\r\n", data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        continue
    m = re.search(rb"\*\d+\r\n:\d+\r\n:\d+\r\n\*\d+\r\n\$\d+\r\n([^\r]*)\r\n:(\d+)\r\n", data)
    if m:
        master = f"{m.group(1).decode() or host}:{m.group(2).decode()}"
        print(next((n for n, a in nodes if a == master), ""))
        break
EOF
}
# The fault kinds in a random order, taking turns.
for ((k = ${#kinds[@]} - 1; k > 0; k--)); do
    j=$((RANDOM % (k + 1)))
    t=${kinds[$k]} kinds[k]=${kinds[$j]} kinds[j]=$t
done
turn=0
: >"$logs/faults"
while :; do
    sleep "$((1 + RANDOM % 3))"
    hold=$((1 + RANDOM % 3))
    # A fault must end (and be seen to end, 2 s) before the run does: near
    # the end it is shorter, and with under 1 s left there is none.
    room=$(awk -v t="$(since)" -v s="$secs" 'BEGIN { r = int(s - t - 2); print (r < 0 ? 0 : r) }')
    [ "$room" -ge 1 ] || break
    [ "$hold" -le "$room" ] || hold=$room
    kill -0 "$loadgen" 2>/dev/null || break
    kind=${kinds[$((turn % ${#kinds[@]}))]}
    turn=$((turn + 1))
    want=$victim
    [ "$want" != any ] || { [ $((RANDOM % 2)) = 0 ] && want=leader || want=follower; }
    leader=$(leader_node) || leader=""
    others=()
    for j in "${SERVERS[@]}"; do [ "${NAME[$j]}" = "$leader" ] || others+=("$j"); done
    i=${others[$((RANDOM % ${#others[@]}))]} role=""
    if [ "$want" = leader ] && [ -n "$leader" ]; then
        for j in "${SERVERS[@]}"; do [ "${NAME[$j]}" != "$leader" ] || i=$j; done
        role=" (the leader)"
    fi
    node=${NAME[$i]}
    case "$kind" in
    kill)
        t0=$(since)
        remote "$i" 'kill -9 "$(cat "$ND/server.pid")"' 20 || say "kill on $node failed"
        sleep "$hold"
        t1=$(since)
        remote "$i" "$(printf 'EXTRA=%q\n' "${PERCORE_SERVER_ARGS:-}")"'
read -ra extra <<<"$EXTRA"
setsid "$BIN" server --config "$ND/cluster.toml" --node "$NODE" "${extra[@]}" >>"$ND/server.out" 2>>"$ND/server.err" </dev/null &
echo $! >"$ND/server.pid"' 20 || say "restarting $node failed"
        ;;
    pause)
        pid=$(pid_of "$i")
        t0=$(since)
        remote "$i" "kill -STOP $pid" 20 || say "SIGSTOP on $node failed"
        sleep "$hold"
        remote "$i" "kill -CONT $pid" 20 || say "SIGCONT on $node failed"
        t1=$(since)
        ;;
    partition)
        # Both sides drop: the node drops the others, each other drops it.
        # The nodes are told at once; each drops 0.3 s later.
        t0=$(since)
        told=()
        for j in "${SERVERS[@]}"; do
            if [ "$j" = "$i" ]; then
                drop=$(for e in "${endpoints[@]}"; do [ "${e%% *}" = "$node" ] || echo "${e#* }"; done)
            else
                drop=$(for e in "${endpoints[@]}"; do [ "${e%% *}" != "$node" ] || echo "${e#* }"; done)
            fi
            drop=$(awk '{ sub(/:[0-9]+$/, ""); print }' <<<"$drop" | sort -u | tr '\n' ' ')
            remote "$j" "$(printf 'DROP=%q\nHOLD=%q\n' "$drop" "$hold")"'
ips=()
for a in $DROP; do
    ip=$(getent ahostsv4 "$a" | awk "{ print \$1; exit }")
    ips+=("${ip:-$a}")
done
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
SUDO=$SUDO HOLD=$HOLD setsid bash -c '"'"'
sleep 0.3
echo "$(date +%T.%N) dropping $* for $HOLD s"
for ip in "$@"; do $SUDO ip route replace blackhole "$ip/32"; done
sleep "$HOLD"
for ip in "$@"; do $SUDO ip route del blackhole "$ip/32"; done
echo "$(date +%T.%N) healed"'"'"' _ "${ips[@]}" >>"$ND/partitions.log" 2>&1 </dev/null &' 20 &
            told+=($!)
        done
        for p in "${told[@]}"; do wait "$p" || say "partition of $node: a node could not be told"; done
        sleep "$hold"
        t1=$(since)
        sleep 0.3
        ;;
    isolate)
        host=$(awk -v n="$node" '$1 == n { sub(/:[0-9]+$/, "", $2); print $2; exit }' <<<"$(printf '%s\n' "${endpoints[@]}")")
        t0=$(since)
        remote "$i" "$(printf 'ADDR=%q\nHOLD=%q\n' "$host" "$hold")"'
ip=$(getent ahostsv4 "$ADDR" | awk "{ print \$1; exit }")
dev=$(ip -o -4 addr show to "${ip:-$ADDR}" | awk "{ print \$2; exit }")
[ -n "$dev" ] || { echo "no interface of $NODE has $ADDR" >&2; exit 1; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
setsid bash -c "sleep 0.3; $SUDO ip link set dev $dev down; sleep $HOLD; $SUDO ip link set dev $dev up" \
    >/dev/null 2>&1 </dev/null &' 20 || say "isolation of $node failed"
        sleep "$(awk -v h="$hold" 'BEGIN { print h + 0.3 }')"
        t1=$(since)
        sleep 0.5
        ;;
    esac
    echo "$kind $node $t0 $t1" >>"$logs/faults"
    say "$(printf '%6.2f s' "$t0") $kind $node$role for ${hold} s"
done
rc=0
wait "$loadgen" || rc=$?
[ "$rc" = 0 ] || { tail -n 20 "$logs/run.err" >&2; die "the load generator failed (exit $rc)"; }
wait "${readers[@]}" || true

# 3. Heal, and read every record back.
for i in "${SERVERS[@]}"; do
    remote "$i" '[ -f "$ND/server.pid" ] && kill -CONT "$(cat "$ND/server.pid")" 2>/dev/null || true' 20 || true
done
up || { tail -n 5 "$logs/cluster.log" >&2; die "up.sh could not bring every server back"; }
for n in $(seq 1 100); do
    if "$PERCORE" loadgen verify --target "redis://$target" --records "$records" -q \
        --history "$logs/reads.hist" >"$logs/verify.out" 2>"$logs/verify.err"; then
        break
    fi
    [ "$n" -lt 100 ] || { cat "$logs/verify.err" >&2; die "the reads after the run never succeeded"; }
    sleep 0.3
done

# 4. The verdict.
check_rc=0
"$PERCORE" check -q "$logs/run.hist" "$logs"/pinned-*.hist --then "$logs/reads.hist" \
    >"$logs/check.out" 2>"$logs/check.err" || check_rc=$?
[ "$check_rc" != 2 ] || { cat "$logs/check.err" >&2; die "percore check could not run"; }
lost_rc=0
"$PERCORE" lost "$logs/run.hist" "$logs/reads.hist" >"$logs/lost.out" 2>"$logs/lost.err" || lost_rc=$?
[ "$lost_rc" != 2 ] || { cat "$logs/lost.err" >&2; die "percore lost could not read the histories"; }
lost=$(awk 'NR == 1 { print $2 }' "$logs/lost.out")
acked=$(awk 'NR == 1 { print $4 }' "$logs/lost.out")
python3 - "$logs/run.json" "$logs/faults" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
step = 0.1
line = report["timeline"]
shards = max((len(s.get("shard_ops_s", [])) for s in line), default=0)
# Intervals with no completion at all are absent from the timeline: zero.
by_t = {round(s["t_s"] / step): s for s in line}
last = max(by_t, default=0)
def ops(k, shard=None):
    s = by_t.get(k)
    if s is None:
        return 0.0
    return s["ops_s"] if shard is None else s["shard_ops_s"][shard]
def mean(a, b):
    ks = [k for k in range(max(1, round(a / step) + 1), round(b / step) + 1) if k <= last]
    return sum(ops(k) for k in ks) / len(ks) if ks else float("nan")
print(f"ops/s over the run: {report['throughput_ops_s']:.0f}; "
      f"{report['errors']} refused (no leader {report['error_detail']['no_leader']}, "
      f"wrong shard {report['error_detail']['wrong_shard']})", end="")
f = report.get("failover")
print(f"; {f['reconnects']} reconnects, {f['lost_in_flight']} operations lost in flight (outcome unknown)" if f else "")
import glob, os, re
served = refused = 0
for out in glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "pinned-*.out")):
    text = open(out).read()
    served += sum(int(h) + int(m) for h, m in re.findall(r"reads +(\d+) hits, (\d+) misses", text))
    refused += sum(int(n) for n in re.findall(r"wrong shard (\d+)", text))
print(f"pinned readers: {served} reads served, {refused} refused as not served there (MOVED)")
for shard in range(shards):
    run = best = 0
    for k in range(1, last + 1):
        run = run + 1 if ops(k, shard) == 0 else 0
        best = max(best, run)
    print(f"shard {shard}: longest time serving nothing {best * step:.1f} s")
print("fault      node          at s    for s   ops/s before   during    after")
for row in open(sys.argv[2]):
    kind, node, t0, t1 = row.split()
    t0, t1 = float(t0), float(t1)
    print(f"{kind:<10} {node:<10} {t0:7.2f} {t1 - t0:7.2f} {mean(t0 - 2, t0):14.0f} {mean(t0, t1):8.0f} {mean(t1, t1 + 2):8.0f}")
EOF
case $check_rc in 0) verdict=linearizable ;; 1) verdict=VIOLATION ;; *) verdict="unknown (exit $check_rc)" ;; esac
say "checker: $verdict ($(head -n 1 "$logs/check.out"))"
say "acknowledged writes lost: ${lost:-?} of ${acked:-?}"
if [ "$check_rc" = 0 ] && [ "$lost_rc" = 0 ] && [ "${lost:-1}" = 0 ]; then
    say "PASS"
else
    [ "$check_rc" = 0 ] || head -n 20 "$logs/check.out" >&2
    say "FAIL (files in $logs)"
    exit 1
fi
