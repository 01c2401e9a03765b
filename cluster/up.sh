#!/usr/bin/env bash
# shellcheck disable=SC2016 # remote scripts are single-quoted: they expand on the node
# up.sh [CONFIG]: bring a percore cluster up, as the cluster file says.
#
#   1. builds the percore binary here, once (cargo build --release; installs
#      rustup first where there is no cargo — CloudLab has internet), unless
#      PERCORE_BIN names one;
#   2. checks that every node answers ssh (ConnectTimeout 5 s, BatchMode)
#      before it starts anything: one that does not is named and up.sh
#      exits 1 having started nothing;
#   3. on every node: makes the work directory ([ssh] dir), copies the
#      binary there unless an identical one is already there (one copy for
#      all on a shared NFS dir), copies the cluster file, and tunes what
#      needs root (CPU governor → performance, irqbalance stopped), saying
#      what it changed (PERCORE_TUNE=report: only say; =no: skip);
#   4. starts `percore server --config … --node NAME` on every server node
#      (pinned by the file), recording its pid; if one fails to start, stops
#      the ones this run started and exits 1. PERCORE_SERVER_ARGS adds
#      flags to every server (split at spaces; e.g. "--raft-tick 50ms");
#   5. waits until every shard answers its handshake (`percore ping`, run on
#      the first client node).
#
# Idempotent: a server already running with the same binary, cluster file
# and PERCORE_SERVER_ARGS is left alone; one started otherwise is restarted.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
-h | --help) usage; exit 0 ;;
esac
pick_config "${1:-}"
TUNE=${PERCORE_TUNE:-yes}
case "$TUNE" in yes | report | no) ;; *) die "PERCORE_TUNE must be yes, report or no" ;; esac

# 1. The binary.
PERCORE=$(local_percore)
if [ -z "${PERCORE_BIN:-}" ]; then
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        say "no cargo here: installing Rust with rustup (toolchain from rust-toolchain.toml)"
        command -v curl >/dev/null || die "no curl to fetch rustup with; install curl or set PERCORE_BIN"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none >&2
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cc >/dev/null; then
        say "no C compiler here: installing build-essential"
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
        if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq build-essential; } >&2; then
            die "cannot install build-essential; install a C compiler or set PERCORE_BIN"
        fi
    fi
    say "building target/release/percore (cargo build --release)"
    (cd "$REPO" && cargo build --release --bin percore >&2) || die "the build failed"
    PERCORE="$REPO/target/release/percore"
fi
[ -n "$PERCORE" ] || die "no percore binary"
load_cluster
BIN_SHA=$(sha256sum "$PERCORE" | cut -d' ' -f1)
CFG_SHA=$(sha256sum "$CONFIG" | cut -d' ' -f1)
say "cluster $CONFIG: ${#SERVERS[@]} server node(s), ${#CLIENTS[@]} client node(s); binary $PERCORE"

# 2. Every node reachable, before anything starts.
check_reachable || die "not starting anything: fix the node(s) above (ssh options come from [ssh] in $CONFIG and PERCORE_SSH_OPTS)"

# 3. Prepare every node.
for i in "${!NAME[@]}"; do
    have=$(remote "$i" "$(printf 'WANT=%q\n' "$BIN_SHA")"'
mkdir -p "$D/bin" "$ND"
echo "$(uname -sm)"
if [ -f "$BIN" ] && [ "$(sha256sum "$BIN" | cut -d" " -f1)" = "$WANT" ]; then echo same; else echo copy; fi
') || die "cannot prepare ${NAME[$i]} (${HOST[$i]})"
    [ "$(head -n 1 <<<"$have")" = "$(uname -sm)" ] \
        || die "${NAME[$i]} is $(head -n 1 <<<"$have"), this machine $(uname -sm): run up.sh on a node of the cluster (or set PERCORE_BIN to a binary for it)"
    if [ "$(tail -n 1 <<<"$have")" = copy ]; then
        tmp="$DIR/bin/.percore.${NAME[$i]}.$$"
        scp -q "${SSH[@]}" "$PERCORE" "${HOST[$i]}:$tmp" </dev/null || die "cannot copy the binary to ${NAME[$i]}"
        remote "$i" "$(printf 'TMP=%q\n' "$tmp")"'
                chmod 755 "$TMP" && mv -f "$TMP" "$BIN"' \
            || die "cannot install the binary on ${NAME[$i]}"
        say "${NAME[$i]}: binary copied to $DIR/bin/percore"
    else
        say "${NAME[$i]}: binary already there"
    fi
    scp -q "${SSH[@]}" "$CONFIG" "${HOST[$i]}:$DIR/nodes/${NAME[$i]}/cluster.toml" </dev/null \
        || die "cannot copy the cluster file to ${NAME[$i]}"
    if [ "$TUNE" != no ]; then
        remote "$i" "$(printf 'TUNE=%q\n' "$TUNE")"'
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
said=()
govs=(/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor)
if [ -e "${govs[0]}" ]; then
    other=$(grep -L "^performance$" "${govs[@]}" | wc -l)
    was=$(sort -u "${govs[@]}" | paste -sd, -)
    if [ "$other" -eq 0 ]; then said+=("governor already performance")
    elif [ "$TUNE" = report ]; then said+=("governor $was on $other CPU(s): would set performance")
    else
        fail=0
        for g in "${govs[@]}"; do
            grep -qx performance "$g" || echo performance | $SUDO tee "$g" >/dev/null || fail=1
        done
        if [ "$fail" = 0 ]; then said+=("governor $was -> performance on $other CPU(s)")
        else said+=("governor: could not set performance on every CPU (no root?)"); fi
    fi
else said+=("no cpufreq governor to set"); fi
if command -v systemctl >/dev/null && systemctl is-active --quiet irqbalance 2>/dev/null; then
    if [ "$TUNE" = report ]; then said+=("irqbalance running: would stop it")
    elif $SUDO systemctl stop irqbalance; then said+=("irqbalance stopped")
    else said+=("irqbalance: could not stop (no root?)"); fi
else said+=("irqbalance not running"); fi
msg=$(printf "%s; " "${said[@]}")
echo "up.sh: $NODE: tuning: ${msg%; }"
' >&2 || say "${NAME[$i]}: tuning failed (continuing)"
    fi
done

# 4. Start the servers. What this run started, to stop if a later one fails.
started=()
undo() {
    local j
    for j in "${started[@]}"; do
        remote "$j" "$REMOTE_LIB"'stop_pidfile "$ND/server.pid" server || true' 30 || true
    done
}
for i in "${SERVERS[@]}"; do
    out=$(remote "$i" "$(printf 'BIN_SHA=%q\nCFG_SHA=%q\nEXTRA=%q\n' "$BIN_SHA" "$CFG_SHA" "${PERCORE_SERVER_ARGS:-}")$REMOTE_LIB"'
if [ -f "$ND/server.pid" ] && pid=$(cat "$ND/server.pid") && alive "$pid" && is_percore "$pid"; then
    if [ "$(cat "$ND/server.started" 2>/dev/null)" = "$BIN_SHA $CFG_SHA $EXTRA" ]; then
        echo "running $pid"; exit 0
    fi
    echo "$NODE: binary, cluster file or PERCORE_SERVER_ARGS changed since the server started: restarting it" >&2
    stop_pidfile "$ND/server.pid" server >&2
fi
rm -f "$ND/server.pid" "$ND/server.out" "$ND/server.err"
read -ra extra <<<"$EXTRA"
setsid "$BIN" server --config "$ND/cluster.toml" --node "$NODE" "${extra[@]}" >"$ND/server.out" 2>"$ND/server.err" </dev/null &
pid=$!
echo "$pid" >"$ND/server.pid"
echo "$BIN_SHA $CFG_SHA $EXTRA" >"$ND/server.started"
for n in $(seq 1 300); do
    if grep -qs " ready: " "$ND/server.err"; then echo "started $pid"; exit 0; fi
    alive "$pid" || break
    sleep 0.1
done
if alive "$pid"; then
    kill -TERM "$pid"; sleep 1; kill -KILL "$pid" 2>/dev/null || true
    echo "failed: not ready within 30 s: $(tail -n 1 "$ND/server.err")"
else
    echo "failed: $(tail -n 1 "$ND/server.err")"
fi
rm -f "$ND/server.pid"
exit 1
' 60) || { say "${NAME[$i]}: the server did not start: ${out#failed: }"; undo; die "stopped what this run started"; }
    case "$out" in
    running*) say "${NAME[$i]}: server already running (pid ${out#running }), same binary and file: left alone" ;;
    started*) started+=("$i"); say "${NAME[$i]}: server started (pid ${out#started }) on cores ${CORES[$i]}" ;;
    esac
done

# 5. Every shard answers its handshake (asked from a client node: that is
# where the load comes from).
probe=${CLIENTS[0]:-${SERVERS[0]}}
if ! pong=$(remote "$probe" '"$BIN" ping --config "$ND/cluster.toml" --wait 30 </dev/null 2>&1' 60); then
    say "the cluster does not answer from ${NAME[$probe]}: $(tail -n 1 <<<"$pong")"
    undo
    die "stopped what this run started"
fi
say "every shard answers (from ${NAME[$probe]}):"
printf '%s\n' "$pong" >&2
say "up: ${#SERVERS[@]} server node(s) serving; next: cluster/run.sh $CONFIG"
