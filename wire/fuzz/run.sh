#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each), seeded with
# the pinned wire fixtures. Needs the nightly toolchain and cargo-fuzz
# (installed here if missing). Usage: wire/fuzz/run.sh [SECONDS_PER_TARGET]
set -euo pipefail
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo +nightly install cargo-fuzz --locked >&2
fi
for target in decode archive; do
    mkdir -p "corpus/$target"
    for f in ../tests/fixtures/*.bin; do
        if [ "$target" = decode ]; then
            # first byte: read size; then the frame as it travels
            { printf '\x3f'; cat "$f"; } > "corpus/$target/$(basename "$f")"
        fi
    done
    echo "fuzz: $target for ${secs}s" >&2
    cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 \
        | grep -E '^#[0-9]+ *(DONE|INITED)|^Done|ERROR|panicked|SUMMARY' || true
    if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz: $target found crashes in wire/fuzz/artifacts/$target" >&2
        exit 1
    fi
done
echo "fuzz: no crashes" >&2
