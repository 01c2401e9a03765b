#!/usr/bin/env bash
# shellcheck disable=SC2016 # remote scripts are single-quoted: they expand on the node
# down.sh [CONFIG]: stop what up.sh and run.sh started on every node of the
# cluster file, by the pids they recorded in each node's work directory
# (never by name): the server (SIGTERM, so it prints its `final node …`
# line; SIGKILL after 15 s), and any load generator or sampler left by an
# interrupted run. A pid whose process is gone or is not a percore process
# is not signalled; its pid file is removed. Says what it did per node;
# "nothing to stop" is a success. Exits 1 if a node cannot be reached (the
# others are still stopped).
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
-h | --help) usage; exit 0 ;;
esac
pick_config "${1:-}"
need_percore
load_cluster

status=0
for i in "${!NAME[@]}"; do
    if ! remote "$i" "$REMOTE_LIB"'
did=0
for what in "load generator:loadgen" "sampler:sample" "server:server"; do
    file="$ND/${what#*:}.pid"
    if stop_pidfile "$file" "${what%%:*}"; then
        did=1
        if [ "${what#*:}" = server ] && [ -f "$ND/server.out" ]; then
            grep "^final node " "$ND/server.out" | tail -n 1 || true
        fi
    fi
done
[ "$did" = 1 ] || echo "$NODE: nothing to stop"
' 60; then
        say "cannot reach ${NAME[$i]} (${HOST[$i]}); nothing stopped there"
        status=1
    fi
done
exit "$status"
