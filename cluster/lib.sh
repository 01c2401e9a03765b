# shellcheck shell=bash
# shellcheck disable=SC2016 # remote scripts are single-quoted: they expand on the node
# Shared by up.sh, run.sh, down.sh and sweep.sh (sourced, not run): how the
# scripts find the percore binary, read the cluster file (through
# `percore cluster …`: bash never parses TOML) and run commands on nodes.
#
# Remote commands are bash scripts sent on ssh's standard input to
# `bash -s`, so they work whatever the remote login shell is; values go in
# as `printf %q`-quoted assignments at the top of each script.
#
# Environment (all optional):
#   PERCORE_BIN       the percore binary to use and ship (default: build
#                     target/release/percore with cargo)
#   PERCORE_SSH_OPTS  extra ssh words, before the file's (they win), e.g.
#                     "-o User=alice -o IdentityFile=~/.ssh/cl"
#   PERCORE_TRACE=1   trace every command with its time (bash -x)

# PERCORE_TRACE=1: trace every command, with times, on stderr.
if [ -n "${PERCORE_TRACE:-}" ]; then
    PS4='+ ${EPOCHREALTIME} ${BASH_SOURCE[0]##*/}:${LINENO}: '
    set -x
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=$(basename "$0" .sh)

# Prints the script's header comment (its usage).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 && !/shellcheck/ { sub(/^# ?/, ""); print }' "$0"; }

say() { printf '%s: %s\n' "$SCRIPT.sh" "$*" >&2; }
die() { say "$*"; exit 1; }

# The local percore binary, or empty if there is none yet.
local_percore() {
    if [ -n "${PERCORE_BIN:-}" ]; then
        [ -x "$PERCORE_BIN" ] || die "PERCORE_BIN=$PERCORE_BIN is not an executable file"
        printf '%s\n' "$(cd "$(dirname "$PERCORE_BIN")" && pwd)/$(basename "$PERCORE_BIN")"
    elif [ -x "$REPO/target/release/percore" ]; then
        printf '%s\n' "$REPO/target/release/percore"
    fi
}

# Sets PERCORE to a usable local binary or dies telling how to get one.
need_percore() {
    PERCORE=$(local_percore)
    [ -n "$PERCORE" ] || die "no percore binary: run cluster/up.sh first (it builds one) or set PERCORE_BIN"
}

# The cluster file: the first argument that is not an option, else
# $PERCORE_CONFIG, else cluster/m510.toml. Sets CONFIG (absolute path).
pick_config() {
    local c=${1:-${PERCORE_CONFIG:-$REPO/cluster/m510.toml}}
    [ -f "$c" ] || die "no cluster file $c"
    CONFIG="$(cd "$(dirname "$c")" && pwd)/$(basename "$c")"
}

# Reads the cluster file. Sets ROLE[i] NAME[i] HOST[i] CORES[i] for every
# node (servers first), SERVERS / CLIENTS (indices), SSH (the ssh/scp
# option words), DIR (work dir on the nodes, relative to the remote home
# unless absolute) and CTL (the ssh connection-sharing directory, closed
# and removed on exit).
load_cluster() {
    local lines role name host cores i=0 words extra=()
    lines=$("$PERCORE" cluster nodes --config "$CONFIG") || die "cannot read $CONFIG"
    ROLE=(); NAME=(); HOST=(); CORES=(); SERVERS=(); CLIENTS=()
    while read -r role name host cores; do
        ROLE+=("$role"); NAME+=("$name"); HOST+=("$host"); CORES+=("$cores")
        if [ "$role" = server ]; then SERVERS+=("$i"); else CLIENTS+=("$i"); fi
        i=$((i + 1))
    done <<<"$lines"
    words=$("$PERCORE" cluster ssh-args --config "$CONFIG") || die "cannot read [ssh] of $CONFIG"
    mapfile -t SSH <<<"$words"
    if [ -n "${PERCORE_SSH_OPTS:-}" ]; then
        read -ra extra <<<"$PERCORE_SSH_OPTS"
        SSH=("${extra[@]}" "${SSH[@]}")
    fi
    DIR=$("$PERCORE" cluster dir --config "$CONFIG") || die "cannot read [ssh] dir of $CONFIG"
    DIR=${DIR#\~/}
    # One ssh connection per node, shared by every command of this script.
    CTL=$(mktemp -d "${TMPDIR:-/tmp}/percore-ssh.XXXXXX")
    trap close_ssh EXIT # scripts that set their own EXIT trap call close_ssh in it
    SSH+=(-o ControlMaster=auto -o "ControlPath=$CTL/%C" -o ControlPersist=120)
}

# Closes the shared ssh connections this script opened and removes CTL.
close_ssh() {
    local h
    [ -n "${CTL:-}" ] && [ -d "$CTL" ] || return 0
    for h in "${HOST[@]}"; do
        ssh "${SSH[@]}" -O exit "$h" >/dev/null 2>&1 || true
    done
    rm -rf "$CTL"
}

# remote I SCRIPT [TIMEOUT_S]: runs the bash SCRIPT on node I (with D, ND,
# BIN and NODE set), bounded by TIMEOUT_S seconds (default 60).
remote() {
    local i=$1 body=$2 limit=${3:-60} prologue
    # shellcheck disable=SC2016 # expanded on the node
    prologue=$(printf 'set -euo pipefail\nD=%q\nNODE=%q\n' "$DIR" "${NAME[$i]}"
        printf '%s\n' 'case $D in /*) ;; *) D=$HOME/$D ;; esac' 'ND=$D/nodes/$NODE' 'BIN=$D/bin/percore')
    timeout --kill-after=5 "$limit" ssh "${SSH[@]}" "${HOST[$i]}" 'bash -s' <<<"$prologue
$body"
}

# qarray NAME VALUES…: prints a bash assignment of the array NAME, quoted
# for the remote bash.
qarray() {
    local n=$1
    shift
    printf '%s=(' "$n"
    [ $# -eq 0 ] || printf '%q ' "$@"
    printf ')\n'
}

# Checks every node answers ssh, all at once, each within a bounded time.
# Prints one line per node that does not and returns 1 if any does not.
check_reachable() {
    local i pids=() out failed=0 tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/percore-reach.XXXXXX")
    for i in "${!NAME[@]}"; do
        timeout --kill-after=2 20 ssh "${SSH[@]}" "${HOST[$i]}" true </dev/null >"$tmp/$i" 2>&1 &
        pids+=($!)
    done
    for i in "${!NAME[@]}"; do
        if ! wait "${pids[$i]}"; then
            out=$(grep -v '^Warning: Permanently added' "$tmp/$i" | tail -n 1)
            say "cannot reach ${NAME[$i]} (${HOST[$i]}): ${out:-ssh timed out}"
            failed=1
        fi
    done
    rm -rf "$tmp"
    return "$failed"
}

# Remote helpers, prepended to the scripts that need them (down.sh, up.sh,
# run.sh's clean-up):
#   alive PID: the process exists and is not a zombie (an orphan's pid stays
#     valid for `kill -0` until init reaps it);
#   stop_pidfile FILE WHAT: stops the process of a pid file and removes the
#     file. Only a live process whose executable is a percore binary
#     (/proc/PID/exe) is signalled, so a pid reused by another program never
#     is: SIGTERM, then SIGKILL after 15 s. Prints what it did; returns 1 if
#     there is no pid file.
# shellcheck disable=SC2034 # used by the scripts that source this
REMOTE_LIB='
alive() {
    local st
    st=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}
is_percore() { readlink "/proc/$1/exe" 2>/dev/null | grep -q "/percore[^/]*$"; }
stop_pidfile() {
    local file=$1 what=$2 pid n
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    if [ -z "$pid" ] || ! alive "$pid"; then
        echo "$NODE: $what not running (stale pid file ${pid:-empty} removed)"
        rm -f "$file"; return 0
    fi
    if ! is_percore "$pid"; then
        echo "$NODE: pid $pid in $file is not a percore process; left alone, pid file removed"
        rm -f "$file"; return 0
    fi
    kill -TERM "$pid"
    for n in $(seq 1 300); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then
        kill -KILL "$pid"; echo "$NODE: $what (pid $pid) did not stop in 15 s: killed"
    else
        echo "$NODE: stopped $what (pid $pid)"
    fi
    rm -f "$file"
}
'
