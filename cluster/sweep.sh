#!/usr/bin/env bash
# sweep.sh [CONFIG] [--servers LIST] [--clients LIST] [--batch LIST]
#          [--pipeline LIST] [--logs DIR] [--line-rate-gbps G] [-- LOADGEN ARGS]
#
# A grid of experiments, one run.sh per point, then the scaling report and
# plots (`percore report --sweep`). LISTs are comma-separated:
#   --servers 1,2,4    server nodes: the first N of the file; for each N the
#                      cluster is brought down and up again with N servers
#                      (down.sh CONFIG, up.sh on the cut file)
#   --clients 1,2,4    client nodes: the first N of the file
#   --batch 64,1024    loadgen --batch
#   --pipeline 1,4     loadgen --pipeline
# A dimension not given is not varied (all servers / all clients / the
# loadgen's defaults or what LOADGEN ARGS say; do not give --batch or
# --pipeline both here and there). Without --servers the cluster must be up.
# Results: LOGS/sweep-<UTC timestamp>/ (LOGS: --logs, default ./logs) holds
# the cut cluster files, runs.txt (one run directory per point), sweep.txt,
# sweep.tsv and throughput-vs-*.png. With --servers, the last point's
# servers are left running: cluster/down.sh CONFIG stops them.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(dirname "${BASH_SOURCE[0]}")
cfg="" logs="$PWD/logs" servers="" clients="" batches="" pipelines="" rate=${LINE_RATE_GBPS:-} args=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --servers) servers=${2:?--servers needs a list}; shift 2 ;;
    --clients) clients=${2:?--clients needs a list}; shift 2 ;;
    --batch) batches=${2:?--batch needs a list}; shift 2 ;;
    --pipeline) pipelines=${2:?--pipeline needs a list}; shift 2 ;;
    --logs) logs=${2:?--logs needs a directory}; shift 2 ;;
    --line-rate-gbps) rate=${2:?--line-rate-gbps needs a number}; shift 2 ;;
    --) shift; args=("$@"); break ;;
    -*) die "unknown option $1 (loadgen options go after --)" ;;
    *) [ -z "$cfg" ] || die "one cluster file only"; cfg=$1; shift ;;
    esac
done
pick_config "$cfg"
need_percore
list() { # list "1,2,4" → 1 2 4 (numbers only)
    local v
    IFS=, read -ra v <<<"$1"
    for x in "${v[@]}"; do
        [[ "$x" =~ ^[0-9]+$ ]] || die "not a number in a list: $x"
        printf '%s\n' "$x"
    done
}
mapfile -t S < <([ -z "$servers" ] || list "$servers")
mapfile -t C < <([ -z "$clients" ] || list "$clients")
mapfile -t B < <([ -z "$batches" ] || list "$batches")
mapfile -t P < <([ -z "$pipelines" ] || list "$pipelines")
[ ${#S[@]} -gt 0 ] || S=(all)
[ ${#C[@]} -gt 0 ] || C=(all)
[ ${#B[@]} -gt 0 ] || B=(default)
[ ${#P[@]} -gt 0 ] || P=(default)
points=$((${#S[@]} * ${#C[@]} * ${#B[@]} * ${#P[@]}))
[ "$points" -le 500 ] || die "$points points: more than 500 is surely a mistake"

mkdir -p "$logs"
sweep="$logs/sweep-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir "$sweep"
say "$points point(s); results in $sweep"
run_opts=(--logs "$logs")
[ -z "$rate" ] || run_opts+=(--line-rate-gbps "$rate")

cut() { # cut SERVERS CLIENTS → path of the cut cluster file
    local f="$sweep/cluster-s$1-c$2.toml" sa=() ca=()
    [ "$1" = all ] || sa=(--servers "$1")
    [ "$2" = all ] || ca=(--clients "$2")
    "$PERCORE" cluster subset --config "$CONFIG" "${sa[@]}" "${ca[@]}" >"$f" || die "cannot cut $CONFIG to $1 server(s), $2 client(s)"
    printf '%s\n' "$f"
}

runs=() failed=0 n=0
for s in "${S[@]}"; do
    if [ "$s" != all ]; then
        up_cfg=$(cut "$s" all)
        say "== $s server node(s): restarting the cluster"
        "$here/down.sh" "$CONFIG" >&2 || die "down.sh failed"
        "$here/up.sh" "$up_cfg" || die "up.sh failed for $s server(s)"
    fi
    for c in "${C[@]}"; do
        run_cfg=$(cut "$s" "$c")
        for b in "${B[@]}"; do
            for p in "${P[@]}"; do
                n=$((n + 1))
                extra=()
                [ "$b" = default ] || extra+=(--batch "$b")
                [ "$p" = default ] || extra+=(--pipeline "$p")
                say "== point $n/$points: servers $s, clients $c, batch $b, pipeline $p"
                if "$here/run.sh" "$run_cfg" "${run_opts[@]}" -- "${args[@]}" "${extra[@]}" >"$sweep/point-$n.txt"; then
                    :
                else
                    say "point $n failed (see $sweep/point-$n.txt)"
                    failed=$((failed + 1))
                fi
                dir=$(readlink -f "$logs/latest")
                if [ -n "$dir" ] && [ -f "$dir/cluster.toml" ] && ! printf '%s\n' "${runs[@]}" | grep -qxF "$dir"; then
                    runs+=("$dir")
                    printf '%s\n' "$dir" >>"$sweep/runs.txt"
                fi
            done
        done
    done
done
[ ${#runs[@]} -gt 0 ] || die "no run produced results"
report_args=(--sweep "$sweep")
[ -z "$rate" ] || report_args+=(--line-rate-gbps "$rate")
"$PERCORE" report "${report_args[@]}" "${runs[@]}" || die "the sweep report failed"
[ "$failed" = 0 ] || die "$failed point(s) failed"
