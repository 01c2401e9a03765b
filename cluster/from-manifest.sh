#!/usr/bin/env bash
# from-manifest.sh [MANIFEST.xml] [percore cluster from-manifest options] > cluster/cloudlab.toml
#
# Writes a cluster file for this CloudLab experiment. Without a file it
# asks the node itself (`geni-get manifest`, on any node of the
# experiment). The split (see cluster/README.md): nodes in name order, the
# first half (rounded down, at least one) are servers on CPUs 1-7, the rest
# clients on CPUs 0-7; every addr is the node's experiment-LAN address.
# Options: --servers N, --server-cores LIST, --client-cores LIST, --base-port P.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
-h | --help) usage; exit 0 ;;
esac
need_percore
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    manifest=$1
    shift
    exec "$PERCORE" cluster from-manifest "$manifest" "$@"
fi
command -v geni-get >/dev/null || die "no geni-get here (not a CloudLab node?): give the manifest file"
geni-get manifest | "$PERCORE" cluster from-manifest - "$@"
