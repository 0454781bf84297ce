#!/usr/bin/env bash
# Compare the scenario lines of a kernel boot with the emulated backend's, line by line.
#
#   tests/kernel/compare-scenarios.sh NAME KERNEL_LINES EMULATED_LINES [--no-skips]
#
# Both files hold `scenario NAME[@DEVICE]: RESULT` lines (ifb-uapi-scenarios output). Each
# kernel line is paired with the emulated line of the same key (name@device); a device the
# emulated tree does not have (e.g. the kernel's selftest mock, `@selftest+nest`) is paired
# with the first emulated device of the same nesting capability (`+nest` or not), shown as
# "(vs @device)". Printed: every difference, then a count. A kernel line "skipped (...)" (the
# booted kernel lacks that ioctl, e.g. IOMMU_VIOMMU_ALLOC before 6.13) is not applicable to
# that kernel: listed, but no difference; with --no-skips (a kernel that has every ioctl the
# list uses, 7.2) it is one. Exit 1 if any pair differs or a kernel line has no emulated
# counterpart.
set -euo pipefail
[ $# -eq 3 ] || { [ $# -eq 4 ] && [ "$4" = --no-skips ]; } ||
    { echo "usage: $0 NAME KERNEL_LINES EMULATED_LINES [--no-skips]" >&2; exit 2; }
name=$1 klines=$2 elines=$3 noskips=$([ "${4:-}" = --no-skips ] && echo 1 || echo 0)

awk -v name="$name" -v noskips="$noskips" '
function key(line) { sub(/^scenario /, "", line); sub(/: .*/, "", line); return line }
function res(line) { sub(/^scenario [^:]*: /, "", line); return line }
function base(k)   { sub(/@.*/, "", k); return k }
function nest(k)   { return k ~ /\+nest$/ ? "nest" : "flat" }
FNR == NR {
    if ($0 !~ /^scenario /) next
    k = key($0)
    if (!(k in emu)) emu[k] = res($0)
    if (k ~ /@/ && !((base(k) SUBSEP nest(k)) in byclass)) {
        byclass[base(k), nest(k)] = res($0)
        classdev[base(k), nest(k)] = k
    }
    next
}
/^scenario / {
    k = key($0); r = res($0); total++
    if (k in emu) { e = emu[k]; vs = "" }
    else if ((base(k) SUBSEP nest(k)) in byclass) {
        e = byclass[base(k), nest(k)]; vs = classdev[base(k), nest(k)]; sub(/^[^@]*/, "", vs)
        vs = " (vs " vs ")"
    } else {
        printf "[compare %s] NO COUNTERPART %s: kernel \"%s\"\n", name, k, r
        missing++; next
    }
    if (r ~ /^skipped/ && noskips) {
        printf "[compare %s] DIFF %s%s: kernel \"%s\" (this kernel should have it), emulated \"%s\"\n", name, k, vs, r, e
        differ++
    } else if (r ~ /^skipped/) {
        printf "[compare %s] not applicable to this kernel: %s%s: kernel \"%s\", emulated \"%s\"\n", name, k, vs, r, e
        skipped++
    } else if (r != e) {
        printf "[compare %s] DIFF %s%s: kernel \"%s\", emulated \"%s\"\n", name, k, vs, r, e
        differ++
    } else same++
}
END {
    printf "[compare %s] %d kernel lines: %d same, %d differ, %d not applicable (skipped by the kernel), %d without counterpart\n",
        name, total, same, differ, skipped, missing
    if (total == 0) { printf "[compare %s] no scenario lines from the kernel boot\n", name; exit 1 }
    exit (differ + missing) > 0
}' "$elines" "$klines"
