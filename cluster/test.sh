#!/usr/bin/env bash
# cluster/test.sh: the cluster scripts end to end, exactly as a user runs
# them over ssh, against hosts made on this machine (needs root):
#
#   - three network namespaces (pct-n0, pct-n1, pct-n2), each with a veth on
#     a bridge this test creates (pctbr0, 10.77.0.254/24) and one address
#     that exists only there (10.77.0.1-3): no traffic leaves the machine;
#   - an OpenSSH server in each, on its namespace's address, with host keys
#     and a root login key generated for the test (nothing in ~/.ssh or
#     /etc/ssh is used or changed);
#   - a cluster file naming them: node0 and node1 serve one shard each
#     (CPU 0 and CPU 1), node2 generates load (CPU 1); the nodes have a
#     secret (`requirepass`), so every step also proves the scripts pass it
#     (each percore command they run reads it from the file), and a client
#     without it is refused.
#
# Then: up.sh (twice: idempotent; then with a changed file: restarts) →
# run.sh (3 s; prints the report; then one whose load generator fails) →
# sweep.sh (servers 1,2 × batch 64,512, 1 s each) → down.sh (twice: the
# second has nothing to stop) → up.sh with an unreachable node (must fail,
# name it, start nothing) → up.sh with a server that cannot start (must
# stop what it started) → from-manifest.sh on the fixture. Afterwards no
# percore process is left in the namespaces, and the namespaces, bridge and
# sshd daemons are removed — also when a step fails, and leftovers of an
# earlier killed run are removed first. Bounded: gives up after 170 s.
#
#   cluster/test.sh                       # PERCORE_BIN defaults to target/release/percore (built if missing)
#   cluster/test.sh --nemesis 20s         # instead: the three hosts serve one replicated shard
#                                         # (replicas = 3) and cluster/nemesis.sh runs against
#                                         # them; passes if the nemesis passes
#   cluster/test.sh --nemesis 15s --expect-violation
#                                         # the same with a mutation (PERCORE_SERVER_ARGS, e.g.
#                                         # "--fault follower-reads" on a test build): passes
#                                         # only if the checker finds a VIOLATION
#   KEEP_LOGS=1 cluster/test.sh           # keep the temporary directory (logs, plots)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=$(date +%s)
nemesis="" expect=pass
case "${1:-}" in
--nemesis) nemesis=${2:?--nemesis needs a duration (e.g. 20s)} ;;
"") ;;
*) echo "test.sh: unknown argument $1 (only --nemesis DURATION [--expect-violation])" >&2; exit 1 ;;
esac
case "${3:-}" in
--expect-violation) expect=violation ;;
"") ;;
*) echo "test.sh: unknown argument $3 (only --expect-violation)" >&2; exit 1 ;;
esac
limit=170
if [ -n "$nemesis" ]; then
    n=${nemesis%s}
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "test.sh: --nemesis $nemesis: whole seconds, e.g. 20s" >&2; exit 1; }
    limit=$((150 + n))
fi
log() { printf 'test.sh: [%3d s] %s\n' "$(($(date +%s) - started))" "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (network namespaces, sshd)"; exit 1; }
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v flock >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

export PERCORE_BIN=${PERCORE_BIN:-$REPO/target/release/percore}
if [ ! -x "$PERCORE_BIN" ]; then
    log "building $PERCORE_BIN"
    (cd "$REPO" && cargo build --release --bin percore >&2)
fi

NS=(pct-n0 pct-n1 pct-n2)
ADDR=(10.77.0.1 10.77.0.2 10.77.0.3)
BR=pctbr0
DEAD=10.77.0.9

# One run at a time on this machine (the names are fixed).
exec 9>/run/percore-cluster-test.lock
flock -w 200 9 || { log "another cluster/test.sh holds /run/percore-cluster-test.lock"; exit 1; }

# Removes the namespaces (after stopping, by pid, every process in them —
# only this test puts processes there) and the bridge.
teardown() {
    local ns pids n
    for ns in "${NS[@]}"; do
        ip netns list | grep -qw "^$ns" || continue
        mapfile -t pids < <(ip netns pids "$ns")
        [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
        for n in $(seq 1 50); do
            [ -n "$(ip netns pids "$ns")" ] || break
            sleep 0.1
        done
        mapfile -t pids < <(ip netns pids "$ns")
        [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
        ip netns del "$ns"
    done
    ip link del "$BR" 2>/dev/null || true
}

T=$(mktemp -d /tmp/pct.XXXXXX)
watchdog=""
passed=0 failed=0
finish() {
    local rc=$?
    [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
    teardown
    local left
    left=$(ip netns list | grep -c '^pct-' || true)
    if [ "$left" != 0 ]; then log "namespaces left: $(ip netns list | grep '^pct-' | tr '\n' ' ')"; rc=1; fi
    if [ -n "${KEEP_LOGS:-}" ]; then log "kept $T"; else rm -rf "$T"; fi
    log "took $(($(date +%s) - started)) s"
    exit "$rc"
}
trap finish EXIT
trap 'log "interrupted"; exit 130' INT TERM
# The watchdog: closes the lock, checks once a second that the test still
# runs (so it ends with it), and stops it at 170 s (a nemesis run: 150 s
# more than its duration).
(
    exec 9>&-
    for _ in $(seq 1 "$limit"); do
        sleep 1
        kill -0 $$ 2>/dev/null || exit 0
    done
    log "over $limit s: giving up"
    kill -TERM $$
) 2>/dev/null &
watchdog=$!

ok() { passed=$((passed + 1)); log "ok   $*"; }
bad() { failed=$((failed + 1)); log "FAIL $*"; }
check() { # check DESCRIPTION COMMAND…
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

teardown # leftovers of a killed run

# The hosts.
ip link add "$BR" type bridge
ip addr add 10.77.0.254/24 dev "$BR"
ip link set "$BR" up
mkdir -p /run/sshd "$T/work" "$T/logs"
ssh-keygen -q -t ed25519 -N '' -C percore-test -f "$T/id_ed25519"
cp "$T/id_ed25519.pub" "$T/authorized_keys"
: >"$T/known_hosts"
for i in "${!NS[@]}"; do
    ns=${NS[$i]}
    ip netns add "$ns"
    ip link add "pct-h$i" type veth peer name "pct-p$i"
    ip link set "pct-p$i" netns "$ns"
    ip link set "pct-h$i" master "$BR" up
    ip -n "$ns" link set "pct-p$i" name eth0
    ip -n "$ns" addr add "${ADDR[$i]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ssh-keygen -q -t ed25519 -N '' -C "pct-host$i" -f "$T/host$i"
    printf '%s %s\n' "${ADDR[$i]}" "$(cut -d' ' -f1,2 "$T/host$i.pub")" >>"$T/known_hosts"
    cat >"$T/sshd$i.conf" <<EOF
ListenAddress ${ADDR[$i]}
Port 22
HostKey $T/host$i
PidFile $T/sshd$i.pid
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
    ip netns exec "$ns" /usr/sbin/sshd -f "$T/sshd$i.conf" -E "$T/sshd$i.log"
done
for i in "${!NS[@]}"; do
    for n in $(seq 1 50); do
        ip netns exec "${NS[$i]}" bash -c "exec 3<>/dev/tcp/${ADDR[$i]}/22" 2>/dev/null && break
        [ "$n" -lt 50 ] || { log "sshd in ${NS[$i]} did not start: $(cat "$T/sshd$i.log")"; exit 1; }
        sleep 0.1
    done
done
log "3 hosts up: ${ADDR[*]} (sshd in ${NS[*]})"

ssh_toml() { # the [ssh] table of the test's cluster files
    cat <<EOF
[ssh]
user = "root"
identity = "$T/id_ed25519"
options = ["UserKnownHostsFile=$T/known_hosts", "GlobalKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes"]
dir = "$T/work"
EOF
}

if [ -n "$nemesis" ]; then
    # One replicated shard on the three hosts; the load runs here, on the
    # bridge's side. Every node's log is under its own name in one tree.
    cat >"$T/nemesis.toml" <<EOF
# The namespace nemesis cluster (made by cluster/test.sh --nemesis).
base_port = 7000
replicas = 3
data_dir = "$T/data/{node}"
fsync = "always"

$(ssh_toml)
$(for i in 0 1 2; do printf '\n[[server]]\nname = "node%s"\naddr = "%s"\ncores = [%s]\n' "$i" "${ADDR[$i]}" "$((i % 2))"; done)
EOF
    export PERCORE_SSH_OPTS="-F none"
    # A mutation run partitions followers only: a follower cut off from the
    # leader while the majority writes is where a local read goes stale.
    faults=()
    [ "$expect" = pass ] || faults=(--faults partition --victim follower)
    nemesis_rc=0
    "$REPO/cluster/nemesis.sh" "$T/nemesis.toml" --duration "$nemesis" --logs "$T/nemesis" "${faults[@]}" \
        ${NEMESIS_SEED:+--seed "$NEMESIS_SEED"} 2>&1 | tee "$T/nemesis.out" >&2 || nemesis_rc=$?
    if [ "$expect" = pass ]; then
        check "nemesis.sh --duration $nemesis passes" test "$nemesis_rc" = 0
    else
        check "nemesis.sh with ${PERCORE_SERVER_ARGS:-no mutation} fails" test "$nemesis_rc" = 1
        check "with a VIOLATION from the checker" grep -q "checker: VIOLATION" "$T/nemesis.out"
    fi
    log "cluster nemesis test: $passed passed, $failed failed"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
fi

cluster_file() { # cluster_file EXTRA_TOML → the test's cluster file text
    cat <<EOF
# The namespace test cluster (made by cluster/test.sh).
base_port = 7000
metrics_port = 9100
requirepass = "pct-test-secret"

$(ssh_toml)

[[server]]
name = "node0"
addr = "${ADDR[0]}"
cores = [0]

[[server]]
name = "node1"
addr = "${ADDR[1]}"
cores = [1]
$1
[[client]]
name = "node2"
addr = "${ADDR[2]}"
cores = [1]
EOF
}
cluster_file "" >"$T/cluster.toml"
export PERCORE_SSH_OPTS="-F none" PERCORE_TUNE=report
C="$T/cluster.toml"
pidof_node() { cat "$T/work/nodes/$1/server.pid" 2>/dev/null || true; }
percore_in_namespaces() { # prints "ns pid cmdline" for every percore process in the namespaces
    local ns pid
    for ns in "${NS[@]}"; do
        for pid in $(ip netns pids "$ns"); do
            if readlink "/proc/$pid/exe" 2>/dev/null | grep -q '/percore[^/]*$'; then
                printf '%s %s %s\n' "$ns" "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline")"
            fi
        done
    done
}

# 1. up, twice.
check "up.sh brings the cluster up" "$REPO/cluster/up.sh" "$C"
p0=$(pidof_node node0) p1=$(pidof_node node1)
check "node0's server runs in namespace pct-n0" test "$(ip netns identify "$p0" 2>/dev/null)" = pct-n0
check "node1's server runs in namespace pct-n1" test "$(ip netns identify "$p1" 2>/dev/null)" = pct-n1
if again=$("$REPO/cluster/up.sh" "$C" 2>&1); then ok "up.sh a second time succeeds"; else bad "up.sh a second time"; fi
printf '%s\n' "$again" | sed 's/^/    | /' >&2
check "the second up.sh leaves the servers alone" grep -q "already running" <<<"$again"
check "same server pids after the second up.sh ($p0 $p1)" test -n "$p0" -a "$(pidof_node node0) $(pidof_node node1)" = "$p0 $p1"

# The servers hold the file's secret: up.sh's ping passed it; a client
# without the file (and without PERCORE_PASSWORD) is refused.
if out=$(ip netns exec pct-n2 env -u PERCORE_PASSWORD "$PERCORE_BIN" get k --server "${ADDR[0]}:7000" 2>&1); then
    bad "a client without the secret was served"
else
    ok "a client without the secret is refused"
fi
check "with AuthFailed: $out" grep -q "AuthFailed" <<<"$out"

# A changed cluster file restarts the servers (here: one more comment line).
{ cat "$C"; echo "# changed"; } >"$T/changed.toml"
if again=$("$REPO/cluster/up.sh" "$T/changed.toml" 2>&1); then ok "up.sh with a changed file succeeds"; else bad "up.sh with a changed file"; fi
check "it restarts the servers" grep -q "changed since the server started: restarting" <<<"$again"
check "with new pids" test "$(pidof_node node0)" != "$p0" -a -n "$(pidof_node node0)"

# 2. One experiment.
if report=$("$REPO/cluster/run.sh" "$C" --logs "$T/logs" --line-rate-gbps 10 -- --duration 3s --records 100000); then
    ok "run.sh (3 s) succeeds"
else
    bad "run.sh failed"
fi
printf '\n%s\n\n' "$report"
for want in '^node0 median [1-9][0-9]* op/s$' '^node1 median [1-9][0-9]* op/s$' '^total [1-9][0-9]* op/s$' \
    '^  GET ' '^-- utilisation' '^  node0 .* server ' '^  node2 .* client ' 'achieved [0-9.]* % of it'; do
    check "the report has /$want/" grep -q -- "$want" <<<"$report"
done
latest="$T/logs/latest"
for png in latency.png throughput.png; do
    check "run.sh wrote $png" bash -c "[ \"\$(head -c 8 '$latest/$png' | od -An -c | tr -d ' ')\" = '211PNG\r\n032\n' ]"
done
check "the run's stats snapshot (percore stats, with the secret) has the load's PUTs" grep -q '"puts": [1-9]' "$latest/stats-after.json"
check "the run kept every node's samples" test -s "$latest/node0.sample.jsonl" -a -s "$latest/node1.sample.jsonl" -a -s "$latest/node2.sample.jsonl"
for f in node0.metrics-before.prom node0.metrics-after.prom node1.metrics-after.prom; do
    check "the run kept the servers' metrics scrape $f" grep -q '^percore_operations_total{shard=' "$latest/$f"
done

# A load generator that fails (here: on a CPU that does not exist) fails
# run.sh, naming the node; the report of what there is still comes.
if out=$("$REPO/cluster/run.sh" "$C" --logs "$T/logs" -- --duration 1s --records 1000 --cores 4000 2>&1); then
    bad "run.sh with a failing load generator succeeded"
else
    ok "run.sh with a failing load generator fails"
fi
printf '%s\n' "$out" | grep -v '^  ' | sed 's/^/    | /' >&2
check "it names the node and says why" grep -q "loadgen failed on node2 (exit 2): .*CPU 4000" <<<"$out"

# 3. A small sweep: 2 server counts × 2 batch sizes.
if sweep_out=$("$REPO/cluster/sweep.sh" "$C" --logs "$T/logs" --servers 1,2 --batch 64,512 -- --duration 1s --records 20000); then
    ok "sweep.sh (4 points) succeeds"
else
    bad "sweep.sh failed"
fi
printf '\n%s\n\n' "$sweep_out"
sweep_dir=$(find "$T/logs" -maxdepth 1 -name 'sweep-*' | head -n 1)
for png in throughput-vs-servers.png throughput-vs-batch.png; do
    check "sweep.sh wrote $png" test -s "$sweep_dir/$png"
done
check "the sweep table has 4 points" test "$(grep -c . "$sweep_dir/runs.txt")" = 4

# 4. down, twice.
p0=$(pidof_node node0) p1=$(pidof_node node1)
if down=$("$REPO/cluster/down.sh" "$C" 2>&1); then ok "down.sh succeeds"; else bad "down.sh failed"; fi
printf '%s\n' "$down" | sed 's/^/    | /' >&2
check "down.sh stopped node0's server and shows its final line" grep -q "^final node node0: " <<<"$down"
gone() { # gone PID…: no such process, or only a zombie
    local p st
    for p in "$@"; do
        st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        [ "${st%% *}" = Z ] || return 1
    done
}
check "the servers' pids are gone" gone "$p0" "$p1"
nothing_left() { # nothing_left WHEN: no percore process in the namespaces, else name them
    local left
    left=$(percore_in_namespaces)
    [ -z "$left" ] || printf '    | left: %s\n' "$left" >&2
    [ -z "$left" ]
}
check "no percore process left in the namespaces" nothing_left
if again=$("$REPO/cluster/down.sh" "$C" 2>&1); then ok "down.sh with nothing running succeeds"; else bad "down.sh again failed"; fi
printf '%s\n' "$again" | sed 's/^/    | /' >&2
check "it says there is nothing to stop" grep -q "node0: nothing to stop" <<<"$again"

# 5. An unreachable node: named, within a bounded time, nothing started.
cluster_file "
[[server]]
name = \"node3\"
addr = \"$DEAD\"
cores = [0]
" >"$T/unreachable.toml"
t0=$(date +%s)
if out=$("$REPO/cluster/up.sh" "$T/unreachable.toml" 2>&1); then
    bad "up.sh with an unreachable node succeeded"
else
    ok "up.sh with an unreachable node fails"
fi
took=$(($(date +%s) - t0))
printf '%s\n' "$out" | sed 's/^/    | /' >&2
check "it names the node: 'cannot reach node3 ($DEAD)'" grep -qF "cannot reach node3 ($DEAD)" <<<"$out"
check "it gave up in bounded time ($took s ≤ 30 s)" test "$took" -le 30
check "it started nothing" nothing_left

# 6. A server that cannot start: what up.sh started before it is stopped.
sed "0,/^cores = \\[1\\]$/s//cores = [4000]/" "$T/cluster.toml" >"$T/badcpu.toml"
if out=$("$REPO/cluster/up.sh" "$T/badcpu.toml" 2>&1); then
    bad "up.sh with a bad CPU succeeded"
else
    ok "up.sh with a server that cannot start fails"
fi
printf '%s\n' "$out" | sed 's/^/    | /' >&2
check "it names the node that failed" grep -q "node1: the server did not start" <<<"$out"
check "it stopped node0's server, which it had started" grep -q "node0: stopped server" <<<"$out"
check "no percore process left after the failed up.sh" nothing_left

# 7. The CloudLab manifest split, on the fixture.
if m=$("$REPO/cluster/from-manifest.sh" "$REPO/cluster/testdata/manifest-m510.xml"); then
    ok "from-manifest.sh reads the fixture"
else
    bad "from-manifest.sh failed"
fi
check "from-manifest.sh: 4 servers, 5 clients" test "$(grep -c '^\[\[server\]\]' <<<"$m") $(grep -c '^\[\[client\]\]' <<<"$m")" = "4 5"

if command -v shellcheck >/dev/null; then
    check "shellcheck cluster/*.sh" shellcheck "$REPO"/cluster/*.sh "$REPO"/cluster/lib.sh
fi

log "cluster test: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
