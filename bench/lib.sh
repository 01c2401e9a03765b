# shellcheck shell=bash
# Shared by the bench/ scripts (sourced, not run): stopping the one server
# a script has started.
#
# A script sets `spid` to its server's PID when it starts one; `stop` ends
# that server (SIGTERM, then waits for it) and clears `spid`. Only that PID
# is signalled.

spid=

stop() {
    if [ -n "$spid" ]; then
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        spid=
    fi
}
