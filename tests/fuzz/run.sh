#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) in build-fuzz and run each for N executions.
#   tests/fuzz/run.sh [-n RUNS] [TARGET...]     default: 5000000 runs of every target
# New coverage goes to build-fuzz/fuzz-corpus/<target>/ (the seeds in tests/fuzz/corpus/ are
# read only); crashers to build-fuzz/fuzz-artifacts/. One process per target, one at a time.
set -uo pipefail
cd "$(dirname "$0")/../.."

runs=5000000
if [ "${1:-}" = -n ]; then runs=$2; shift 2; fi
builddir=build-fuzz
if [ ! -f "$builddir/build.ninja" ]; then
    CC=clang meson setup "$builddir" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cd tests/fuzz && ls fuzz-*.c | grep -v fuzz-main.c | sed 's/\.c$//'))
ninja -C "$builddir" $(printf 'tests/fuzz/%s ' "${targets[@]}") >/dev/null

# Shallow allocation stacks and a smaller quarantine: ASan's allocator bookkeeping was the top of
# fuzz-dispatch's profile. Reproduce a crasher with the default options for full stacks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:malloc_context_size=4:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$builddir/fuzz-artifacts"
for t in "${targets[@]}"; do
    seeds=tests/fuzz/corpus/${t#fuzz-}
    work=$builddir/fuzz-corpus/${t#fuzz-}
    mkdir -p "$work"
    echo "==> $t: $runs runs"
    start=$(date +%s)
    # The whole log (progress lines included) in build-fuzz/fuzz-<target>.log; the summary here.
    "$builddir/tests/fuzz/$t" -runs="$runs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$builddir/fuzz-artifacts/$t-" "$work" "$seeds" > "$builddir/$t.log" 2>&1
    rc=$?
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::|==[0-9]+==ERROR|SUMMARY|artifact_prefix)' "$builddir/$t.log" || true
    echo "==> $t: exit $rc after $(( $(date +%s) - start ))s"
    [ "$rc" = 0 ] || exit "$rc"
done
