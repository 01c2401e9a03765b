#!/usr/bin/env bash
# Runs every cargo-fuzz target of percore for a bounded time (default 60 s
# each) and prints, per target, the inputs it ran and the time it took:
#   wire/fuzz    decode, archive     the frame decoder and rkyv validation,
#                                    seeded with the pinned wire fixtures
#                resp                the RESP command parser, seeded with a
#                                    few commands, with a dictionary
#   engine/fuzz  executor, store     the grouped executor and the store,
#                                    checked against a model
#                resp                the RESP door of a real shard, every
#                                    reply checked against a model of
#                                    Redis's and the store against it,
#                                    seeded, with a dictionary
# Needs the nightly toolchain and cargo-fuzz (installed here if missing).
# Usage: tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: all)
set -euo pipefail
secs=${1:-60}
shift || true
top=$(cd "$(dirname "$0")/.." && pwd)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo +nightly install cargo-fuzz --locked >&2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire:decode wire:archive wire:resp engine:executor engine:store engine:resp)
failed=0
for entry in "${targets[@]}"; do
    crate=${entry%%:*}
    target=${entry#*:}
    dir="$top/$crate/fuzz"
    mkdir -p "$dir/corpus/$target"
    if [ "$target" = decode ]; then
        for f in "$top"/wire/tests/fixtures/*.bin; do
            # first byte: read size; then the frame as it travels
            { printf '\x3f'; cat "$f"; } > "$dir/corpus/$target/$(basename "$f")"
        done
    fi
    extra=()
    if [ "$entry" = wire:resp ]; then
        # (The `$` in these seeds are RESP's bulk markers, not expansions.)
        # shellcheck disable=SC2016
        printf '*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n' > "$dir/corpus/$target/seed-multibulk"
        printf 'SET k "a\\x41 b" \x27c\\\x27d\x27\r\nGET k\n\r\n' > "$dir/corpus/$target/seed-inline"
        # shellcheck disable=SC2016
        printf '*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*0\r\n' > "$dir/corpus/$target/seed-mixed"
        extra=(-dict="$dir/resp.dict")
    fi
    if [ "$entry" = engine:resp ]; then
        # First byte: even = structured commands, odd = raw bytes; second:
        # settings (requirepass, tiny memory, inline, …); raw inputs then
        # carry a read plan (a count, its codes) before the bytes.
        printf '\x00\x00\x04\x61\x2b\xc8\x01\x02\x00\xe6\x08\x00\xf0\x03' > "$dir/corpus/$target/seed-structured"
        printf '\x00\x03\x05\xa1\x00\x10\x06\xc8\x00\x00' > "$dir/corpus/$target/seed-structured-auth"
        # shellcheck disable=SC2016
        printf '\x01\x00\x02\x02\x0b*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n1\r\nGET b\r\nSET c x PX 5\r\n' \
            > "$dir/corpus/$target/seed-raw"
        printf '\x01\x01\x00AUTH hunter2\r\nHELLO 3\r\nINCR b\r\nSCAN 0 MATCH * COUNT 5\r\n' > "$dir/corpus/$target/seed-raw-auth"
        # Longer inputs from the start: each byte is a step of a command
        # sequence, and libFuzzer's slowly growing length limit would keep
        # the sequences short for most of a run.
        extra=(-dict="$dir/resp.dict" -max_len=2048 -len_control=0)
    fi
    echo "fuzz: $crate/$target for ${secs}s" >&2
    log=$(mktemp)
    (cd "$dir" && cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=4096 \
        -print_final_stats=1 "${extra[@]}") >"$log" 2>&1 || true
    grep -E '^Done|ERROR|panicked|SUMMARY|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" \
        | sed "s|^|fuzz: $crate/$target: |" || true
    if grep -qE '^==[0-9]+== ERROR|panicked|deadly signal' "$log"; then
        echo "fuzz: $crate/$target FAILED; input in $crate/fuzz/artifacts/$target; log:" >&2
        tail -n 60 "$log" >&2
        failed=1
    elif ! grep -q '^Done' "$log"; then
        echo "fuzz: $crate/$target did not run; log:" >&2
        tail -n 60 "$log" >&2
        failed=1
    fi
    rm -f "$log"
done
[ "$failed" = 0 ] || exit 1
echo "fuzz: no crashes" >&2
