#!/usr/bin/env bash
# The cold path of the cached build in tests/kernel/lib.sh (what build-kernel.sh and
# build-qemu.sh run: build_lock, build_start, build_run, build_fail, build_finish/build_publish)
# with a tiny fake build in a temporary cache: no root, no network, a few seconds.
#
#   1. Two builders of one entry at once: the second waits for the lock, then finds the first
#      one's entry and builds nothing (one build in all).
#   2. build_run prints its progress line while the build runs (IFB_PROGRESS_SECS=1).
#   3. A finished build is published by one rename: the entry is the very directory the build
#      assembled (same inode), and neither it nor the work tree is left beside the entry.
#   4. A failing build reports the tail of its log and publishes nothing (no entry, no .new).
#
# Ordered by events, not by time: the fake build of the first builder runs until the second
# builder has said it waits and its own progress line has been printed (or a deadline that
# only catches a hang), so a slow machine changes nothing but the duration.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HANG=${IFB_TEST_HANG:-60}

# ---- a builder, as build-kernel.sh and build-qemu.sh are, with fake_build for make/ninja ------
# test-build-lib.sh --builder KEY ok|fail   (CACHE and the waits come from the environment)
if [ "${1:-}" = --builder ]; then
    key=$2 mode=$3
    IFB_TAG=fake-$key
    . "$HERE/lib.sh"
    CACHE=$IFB_FAKE_CACHE
    JOBS=1
    EVERY=${IFB_PROGRESS_SECS:-30}

    # wait_grep FILE PATTERN: until FILE has a line matching PATTERN (a hang fails).
    wait_grep() {
        local i=0
        until grep -q -- "$2" "$1" 2>/dev/null; do
            i=$((i + 1))
            [ $i -le $((HANG * 20)) ] || { echo "fake build: no '$2' in $1 after ${HANG}s"; return 9; }
            sleep 0.05
        done
    }
    # fake_build ok|fail: a few steps on $log, the waits of $IFB_FAKE_WAITS ("FILE|PATTERN"
    # lines), then an artifact in $work, or 50 lines of errors and exit 3.
    fake_build() {
        local w
        echo "step 1: starting"
        while IFS='|' read -r f p; do
            [ -n "$f" ] || continue
            wait_grep "$f" "$p" || return 9
            echo "step: saw '$p' in ${f##*/}"
        done <<<"${IFB_FAKE_WAITS:-}"
        if [ "$1" = fail ]; then
            for w in $(seq 50); do echo "error line $w"; done
            return 3
        fi
        echo "built by $$" > "$work/artifact"
        echo "step 2: done"
    }
    fake_progress() { echo "$(grep -c '^step' "$log" || true) steps"; }

    out=$CACHE/$key
    if [ -s "$out/artifact" ]; then
        say "cached: $out/artifact"
        echo "$out/artifact"
        exit 0
    fi
    mkdir -p "$CACHE"
    build_lock "$CACHE" fake
    if [ -s "$out/artifact" ]; then
        say "cached: $out/artifact (built meanwhile)"
        echo "$out/artifact"
        exit 0
    fi
    build_start "$key"
    say "building fake $key; full log: $log"
    echo "$$" >> "$CACHE/builds"
    fail() { build_fail "$@"; }
    rc=0; build_run fake_progress fake_build "$mode" || rc=$?
    [ $rc = 0 ] || fail "fake build exited $rc"
    cp "$work/artifact" "$new/artifact"
    stat -c %i "$new" > "$CACHE/$key.assembled-inode"
    build_finish "$key" "$out" "mode=$mode"
    say "[$(elapsed)] done: $out/artifact"
    echo "$out/artifact"
    exit 0
fi

# ---- the test --------------------------------------------------------------------------------
tmp=$(mktemp -d /tmp/ifb-build-lib-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
export IFB_FAKE_CACHE=$tmp/cache IFB_PROGRESS_SECS=1
CACHE=$IFB_FAKE_CACHE
failures=0
check() {   # check DESCRIPTION 'SHELL CONDITION': one line, ok or FAIL
    if eval "$2"; then echo "ok      $1"; else echo "FAIL    $1"; failures=$((failures + 1)); fi
}
show() { sed "s/^/    $1: /" "$tmp/$1" >&2; }

# until FILE has PATTERN (a hang fails the test)
await() {
    local i=0
    until grep -q -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le $((HANG * 20)) ] || { echo "FAIL    no '$2' in ${1##*/} after ${HANG}s"; show a.err; show b.err; exit 1; }
        sleep 0.05
    done
}

# 1-3: A builds; B comes while A holds the lock. A's build ends only once B waits and A's own
# progress line is out.
IFB_FAKE_WAITS="$tmp/b.err|waiting for it
$tmp/a.err|compiling: " "$0" --builder k1 ok >"$tmp/a.out" 2>"$tmp/a.err" &
pids+=($!)
await "$tmp/a.err" "building fake k1"           # A holds the lock
"$0" --builder k1 ok >"$tmp/b.out" 2>"$tmp/b.err" &
pids+=($!)
rc_a=0; wait "${pids[0]}" || rc_a=$?
rc_b=0; wait "${pids[1]}" || rc_b=$?
pids=()
check "both builders succeed (A $rc_a, B $rc_b)" '[ "$rc_a" = 0 ] && [ "$rc_b" = 0 ]'
check "one build in all (the lock serializes; B built nothing)" '[ "$(wc -l < "$CACHE/builds")" = 1 ]'
check "B waited for A's lock" 'grep -q "another fake build holds $CACHE/.build.lock; waiting for it" "$tmp/b.err"'
check "B found A's entry once the lock was its own" 'grep -q "cached: $CACHE/k1/artifact (built meanwhile)" "$tmp/b.err"'
check "both print the entry's artifact" '[ "$(cat "$tmp/a.out")" = "$CACHE/k1/artifact" ] && [ "$(cat "$tmp/b.out")" = "$CACHE/k1/artifact" ]'
check "the progress line appeared (IFB_PROGRESS_SECS=1)" 'grep -qE '\''^\[fake-k1\] \[[0-9]+m[0-9]{2}s\] compiling: [0-9]+ steps$'\'' "$tmp/a.err"'
check "the artifact is the build's" 'grep -q "^built by " "$CACHE/k1/artifact"'
check "published by one rename: the entry is the directory the build assembled" '[ "$(stat -c %i "$CACHE/k1")" = "$(cat "$CACHE/k1.assembled-inode")" ]'
check "nothing left beside the entry (.new, .partial)" '[ ! -e "$CACHE/k1.new" ] && [ ! -e "$CACHE/k1.partial" ]'
check "the entry has its log and info" 'grep -qx "key=k1" "$CACHE/k1/info" && grep -qx "mode=ok" "$CACHE/k1/info" &&
    grep -q "^step 2: done" "$CACHE/k1/build.log"'
rc_c=0; "$0" --builder k1 ok >"$tmp/c.out" 2>"$tmp/c.err" || rc_c=$?
check "a third run is served from the cache, building nothing" '[ "$rc_c" = 0 ] && grep -q "^\[fake-k1\] cached: " "$tmp/c.err" &&
    [ "$(wc -l < "$CACHE/builds")" = 1 ]'

# 4: a failing build
rc_f=0; "$0" --builder k2 fail >"$tmp/f.out" 2>"$tmp/f.err" || rc_f=$?
check "a failing build exits 1 ($rc_f)" '[ "$rc_f" = 1 ]'
check "it says what failed" 'grep -q "FAILED after [0-9]*m[0-9]*s: fake build exited 3" "$tmp/f.err"'
check "it shows the last 40 lines of its log" 'grep -q "last 40 lines of $CACHE/k2.partial/build.log:" "$tmp/f.err" &&
    grep -qx "    error line 50" "$tmp/f.err" && grep -qx "    error line 11" "$tmp/f.err" && ! grep -qx "    error line 10" "$tmp/f.err"'
check "it publishes nothing (no entry, no half-assembled .new)" '[ ! -e "$CACHE/k2" ] && [ ! -e "$CACHE/k2.new" ]'
check "its whole log stays in the work tree" '[ "$(grep -c '\''^error line'\'' "$CACHE/k2.partial/build.log")" = 50 ]'
check "it printed no artifact" '[ ! -s "$tmp/f.out" ]'

if [ $failures -ne 0 ]; then
    for f in a.err b.err f.err; do show $f; done
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
