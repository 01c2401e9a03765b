#!/usr/bin/env bash
# Crash test: nothing acknowledged is lost on restart. Each iteration
#   1. starts a durable node: `percore server --cores 0 --data-dir DIR`
#      on loopback (free ports), DIR fresh;
#   2. loads the records and runs a recorded YCSB-A on them
#      (`percore loadgen run --workload a --history A.hist`; few records, so
#      keys are hot and overwritten);
#   3. kills the server with SIGKILL at a random moment, 0.3-2 s into the
#      run (the load generator then fails and keeps its history: PUTs in
#      flight are recorded with an unknown outcome);
#   4. restarts it on the same data directory (it replays its log);
#   5. reads every key once (`percore loadgen verify --history B.hist`);
#   6. checks: `percore check A.hist --then B.hist` (the reads after the
#      restart began after the run ended: a write acknowledged before the
#      crash must be seen after it) and `percore lost A.hist B.hist` (the
#      acknowledged writes the reads did not see, and how long before the
#      crash they had been acknowledged).
#
# --fsync always (the default): any violation, lost write or error fails
# the test (exit 1): the checker's witness is printed and the files are
# kept. --fsync everysec: losing the last moments' writes is that mode's
# contract, so the loss is measured, not failed: how many acknowledged
# writes were lost and how long before the crash (BEFORE's last reply)
# the oldest had been acknowledged; a violation that lost writes do not
# explain, or a value nobody wrote, still fails.
#
#   tools/crash-test.sh [N] [--fsync always|everysec] [--percore BIN]
#                       [--records R] [--seed S] [--dir DIR] [--keep] [--forget]
#                       [-- SERVER OPTIONS]
#
#   N           iterations (default 5)
#   --percore   the binary (default: $PERCORE_BIN, else the release build,
#               built if needed)
#   --records   keys 0..R-1 (default 2000)
#   --seed      seeds the kill times (bash's RANDOM), to repeat a run
#   --dir       where the temporary directory goes (default $TMPDIR or
#               /tmp; it must support O_DIRECT: not tmpfs)
#   --keep      keep every iteration's files (histories, logs, data dir)
#   --forget    self-test: delete the data directory between the kill and
#               the restart (a node that forgot); the test must fail
#   -- …        more options for both server starts, e.g.
#               `-- --snapshot-after 1mb` to crash among snapshots
#
# Prints one line per iteration and a summary on stdout; exit 0 passed,
# 1 failed (files kept, their place printed), 2 could not run.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
iterations=5
fsync=always
bin=${PERCORE_BIN:-}
records=2000
seed=
base=${TMPDIR:-/tmp}
keep=0
forget=0
server_args=()
while [ $# -gt 0 ]; do
    case $1 in
        --fsync) fsync=${2:?--fsync needs always or everysec}; shift 2 ;;
        --percore) bin=${2:?--percore needs a binary}; shift 2 ;;
        --records) records=${2:?--records needs a number}; shift 2 ;;
        --seed) seed=${2:?--seed needs a number}; shift 2 ;;
        --dir) base=${2:?--dir needs a directory}; shift 2 ;;
        --keep) keep=1; shift ;;
        --forget) forget=1; shift ;;
        -h|--help) usage ;;
        --) shift; server_args=("$@"); break ;;
        [0-9]*) iterations=$1; shift ;;
        *) echo "crash-test: unknown argument $1" >&2; usage ;;
    esac
done
case $fsync in always|everysec) ;; *) echo "crash-test: --fsync always or everysec, not $fsync" >&2; exit 2 ;; esac
[[ $iterations =~ ^[1-9][0-9]*$ ]] || { echo "crash-test: N must be a positive number" >&2; exit 2; }
[[ $records =~ ^[1-9][0-9]*$ ]] || { echo "crash-test: --records must be a positive number" >&2; exit 2; }
if [ -n "$seed" ]; then
    [[ $seed =~ ^[0-9]+$ ]] || { echo "crash-test: --seed must be a number" >&2; exit 2; }
    RANDOM=$seed
fi
if [ -z "$bin" ]; then
    top=$(cd "$(dirname "$0")/.." && pwd)
    (cd "$top" && cargo build --release --quiet -p percore-tools --bin percore)
    bin=$top/target/release/percore
fi
[ -x "$bin" ] || { echo "crash-test: $bin is not an executable" >&2; exit 2; }
# Absolute paths: the server is given its data directory as one.
mkdir -p "$base"
work=$(mktemp -d "$(cd "$base" && pwd)/percore-crash.XXXXXX")

say() { printf 'crash-test: %s\n' "$*" >&2; }
# The processes this script started and has not reaped yet (so a PID is
# never signalled after the system may have given it to another process).
server=
loadgen=
cleanup() {
    for p in $server $loadgen; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
# Ends the test: exit code $1, the files kept.
finish_kept() {
    say "everything is in $work"
    exit "$1"
}
error() {
    say "ERROR: $*"
    finish_kept 2
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# Starts the server on $data, its output to $it/$1.out and $it/$1.err;
# sets server and addr.
start_server() {
    local err=$it/$1.err
    "$bin" server --cores 0 --port 0 --stats-interval-ms 0 --data-dir "$data" --fsync "$fsync" \
        ${server_args[@]+"${server_args[@]}"} >"$it/$1.out" 2>"$err" &
    server=$!
    addr=
    for _ in $(seq 1 300); do
        addr=$(sed -n 's/.* ready: .*shard 0 cpu [0-9]* \([0-9.]*:[0-9]*\).*/\1/p' "$err" | head -n 1)
        [ -n "$addr" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    cat "$err" >&2
    error "the server did not start (its stderr is above)"
}

started=$(date +%s%N)
passed=0
ops_total=0
lost_total=0
missing_total=0
window_max=
lost_iterations=0
for i in $(seq 1 "$iterations"); do
    t0=$(date +%s%N)
    it=$work/$i
    data=$it/data
    mkdir -p "$it"

    start_server server1
    "$bin" loadgen load --server "$addr" --records "$records" -q >"$it/load.out" 2>&1 ||
        { cat "$it/load.out" >&2; error "loading failed"; }
    delay=$((300 + RANDOM % 1701))
    "$bin" loadgen run --server "$addr" --records "$records" --workload a --duration 600s --warmup 0s -q \
        --history "$it/A.hist" >"$it/run.out" 2>"$it/run.err" &
    loadgen=$!
    sleep "$(secs "$delay")"
    kill -0 "$loadgen" 2>/dev/null || { cat "$it/run.err" >&2; error "the load generator ended before the kill"; }
    kill -9 "$server"
    wait "$server" 2>/dev/null || true
    server=
    rc=0
    wait "$loadgen" || rc=$?
    loadgen=
    # 1: the run failed on its connection, as it should; 2: it never started.
    [ "$rc" = 1 ] || { cat "$it/run.err" >&2; error "the load generator exited $rc after the kill (expected 1)"; }
    [ -s "$it/A.hist" ] || error "the load generator left no history after the kill"

    if [ "$forget" = 1 ]; then
        rm -rf "$data"
    fi
    start_server server2
    # What the restart replayed (for the summary line only): a snapshot
    # and the log records after it, or the log alone.
    recovered=$(sed -n -e 's/.*recovered .*a snapshot of \([0-9]*\) records.*then \([0-9]*\) log records.*/\1 snapshot + \2 log/p' \
        -e 's/.*recovered \([0-9]*\) records.*/\1/p' "$it/server2.err" | head -n 1)
    rc=0
    "$bin" loadgen verify --server "$addr" --records "$records" -q --history "$it/B.hist" \
        >"$it/verify.out" 2>"$it/verify.err" || rc=$?
    [ "$rc" != 2 ] || { cat "$it/verify.err" >&2; error "the reads after the restart could not start"; }
    verify_rc=$rc
    kill -TERM "$server"
    rc=0
    wait "$server" || rc=$?
    server=
    [ "$rc" = 0 ] || { cat "$it/server2.err" >&2; error "the restarted server exited $rc after SIGTERM"; }

    lost_rc=0
    "$bin" lost "$it/A.hist" "$it/B.hist" >"$it/lost.out" 2>"$it/lost.err" || lost_rc=$?
    [ "$lost_rc" != 2 ] || { cat "$it/lost.err" >&2; error "percore lost could not read the histories"; }
    check_rc=0
    "$bin" check -q "$it/A.hist" --then "$it/B.hist" >"$it/check.out" 2>"$it/check.err" || check_rc=$?
    if [ "$check_rc" = 2 ]; then
        cat "$it/check.err" >&2
        grep -q -- '--then' "$it/check.err" && say "this percore's check has no --then (eras across a restart)"
        error "percore check could not run"
    fi

    # The counts: A's operations and B's reads, lost writes and their window.
    read -r ops_a reads_b < <(sed -n 's/^before: \([0-9]*\) ops.*after: \([0-9]*\) reads.*/\1 \2/p' "$it/lost.out") ||
        { cat "$it/lost.out" >&2; error "unexpected output of percore lost"; }
    unanswered=$(sed -n 's/^before: .* \([0-9]*\) unanswered;.*/\1/p' "$it/lost.out")
    missing=$(sed -n 's/.*reads, \([0-9]*\) found nothing.*/\1/p' "$it/lost.out")
    lost=$(awk 'NR == 1 { print $2 }' "$it/lost.out")
    acked=$(awk 'NR == 1 { print $4 }' "$it/lost.out")
    window=$(sed -n '1s/.*acknowledged up to \([0-9.]*\) ms before.*/\1/p' "$it/lost.out")
    ops_total=$((ops_total + ops_a + reads_b))
    lost_total=$((lost_total + lost))
    case $check_rc in 0) verdict=linearizable ;; 1) verdict=VIOLATION ;; *) verdict="unknown (exit $check_rc)" ;; esac
    line="killed $(secs "$delay") s into the run; A $ops_a ops ($unanswered PUTs in flight), recovered ${recovered:-?} records; B $reads_b reads ($missing found nothing); $verdict; lost $lost of $acked acknowledged writes${window:+, up to $window ms before the crash}"

    # Every key was loaded (and acknowledged) before the run: a key found
    # missing after the restart lost its load, whether or not the run
    # touched it.
    missing_total=$((missing_total + missing))
    odd=0
    grep -qE '^(UNEXPLAINED|CORRUPT)' "$it/lost.out" && odd=1
    if [ "$check_rc" = 0 ] && [ "$lost_rc" = 0 ] && [ "$verify_rc" = 0 ] && [ "$missing" = 0 ]; then
        status=pass
    elif [ "$fsync" = everysec ] && [ "$odd" = 0 ] && [ "$verify_rc" = 0 ] && [ $((lost + missing)) -gt 0 ] &&
        { [ "$check_rc" = 0 ] || [ "$check_rc" = 1 ]; }; then
        # everysec: what was lost is the last moments' writes; a violation
        # nothing lost explains, or a value nobody wrote, still fails.
        status=lost
    else
        status=FAIL
    fi
    echo "crash-test: $i/$iterations $status: $line ($(secs "$(ms_since "$t0")") s)"
    case $status in
        pass) passed=$((passed + 1)) ;;
        lost)
            lost_iterations=$((lost_iterations + 1))
            if [ -n "$window" ] && { [ -z "$window_max" ] || awk "BEGIN { exit !($window > $window_max) }"; }; then
                window_max=$window
            fi
            ;;
        FAIL)
            say "iteration $i failed (--fsync $fsync):"
            cat "$it/check.out" "$it/lost.out" >&2
            [ "$verify_rc" = 0 ] || cat "$it/verify.out" >&2
            echo "crash-test: FAILED at iteration $i of $iterations: $passed passed before it; files kept in $it"
            finish_kept 1
            ;;
    esac
    [ "$keep" = 1 ] || rm -rf "$it"
done

summary="$iterations iterations, $passed passed, $ops_total ops checked, $lost_total acknowledged writes lost"
if [ "$fsync" = everysec ]; then
    summary="$summary in $lost_iterations iteration(s)${window_max:+ (acknowledged up to $window_max ms before the crash)}"
fi
summary="$summary, $missing_total loaded keys missing"
echo "crash-test: $summary, $(secs "$(ms_since "$started")") s (--fsync $fsync)"
if [ "$keep" = 1 ]; then
    say "files kept in $work"
else
    rm -rf "$work"
fi
