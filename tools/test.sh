#!/usr/bin/env bash
# Every test percore has, from a fresh machine with only the Rust toolchain:
# installs what the tests need (Debian packages, when run as root), then runs
# the workspace's tests (profile ci), the cluster scripts against ssh
# daemons in network namespaces, the nemesis (kill, partition, pause) on a
# replicated cluster in those namespaces and its follower-reads mutation,
# bounded fuzzing of the wire decoder, the executor and the store, and a
# soak under hostile traffic ending in a linearizability check.
#
#   tools/test.sh                   # everything
#   FUZZ_SECONDS=10 tools/test.sh   # shorter fuzzing (default 60 s per target)
#   SOAK_SECONDS=600 tools/test.sh  # longer soak (default 20 s)
#   NEMESIS_SECONDS=60 tools/test.sh # longer nemesis (default 20 s)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v memcached >/dev/null || need+=(memcached)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v valgrind >/dev/null || need+=(valgrind)
command -v taskset >/dev/null && command -v mount >/dev/null || need+=(util-linux)
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing ${need[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "test: missing ${need[*]}; install with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

# redis-py for the RESP door's tests, pinned, in a virtual environment of
# its own (tools/tests/redis_clients.rs looks for target/pyenv).
if ! target/pyenv/bin/python -c 'import redis' 2>/dev/null; then
    echo "test: installing redis-py into target/pyenv" >&2
    python3 -m venv target/pyenv
    target/pyenv/bin/pip install --quiet --disable-pip-version-check 'redis==8.1.0' >&2
fi

# The `ci` profile: release's optimizations and panic = "abort", without
# fat LTO (see Cargo.toml); the scripts below run the percore it builds.
echo "== cargo test --workspace --profile ci" >&2
cargo test --workspace --profile ci
export PERCORE_BIN=$PWD/target/ci/percore

echo "== cluster scripts over ssh against network-namespace hosts (cluster/test.sh)" >&2
cluster/test.sh

echo "== nemesis: kill, partition, pause on a replicated cluster under a recorded load (cluster/test.sh --nemesis ${NEMESIS_SECONDS:-20}s)" >&2
cluster/test.sh --nemesis "${NEMESIS_SECONDS:-20}s"

# The test build's fault switch: followers answer reads from their own
# stores; the nemesis must then fail with the checker's VIOLATION.
echo "== nemesis mutation: --fault follower-reads must be caught (cluster/test.sh --nemesis 15s --expect-violation)" >&2
PERCORE_SERVER_ARGS="--fault follower-reads" cluster/test.sh --nemesis 15s --expect-violation

echo "== fuzzing the wire decoder, the executor and the store (${FUZZ_SECONDS:-60} s per target)" >&2
tools/fuzz.sh "${FUZZ_SECONDS:-60}"

echo "== soak under attack: a recorded, verified load with hostile traffic, then percore check (tools/soak.sh ${SOAK_SECONDS:-20})" >&2
tools/soak.sh "${SOAK_SECONDS:-20}"
