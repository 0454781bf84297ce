#!/usr/bin/env bash
# The heavy tiers on a machine with empty caches and no time left (what CI's first run on a new
# machine can meet): each must say SKIPPED with the reason and exit 77 — not fail, not pass.
#   tests/kernel/test-cold-skip.sh
# Empty cache directories stand in for the new machine (nothing real is touched); the deadline is
# now. Exits 77 itself where a tier cannot get as far as its budget check here: not root, or the
# tier's tools missing (their entry points would install them, which a unit test must not).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: the heavy tiers' entry points run as root only"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/build"
export IFB_HEAVY_TESTS=1 IFB_CHECK_DEADLINE=$(date +%s) IFB_FULLSTACK_DEADLINE=$(date +%s)
export IFB_KERNEL_CACHE=$tmp/kernel IFB_KERNEL_ARM64_CACHE=$tmp/kernel-arm64
export IFB_ARM64_SYSROOT_CACHE=$tmp/arm64-sysroot IFB_FULLSTACK_CACHE=$tmp/fullstack IFB_QEMU_CACHE=$tmp/qemu
fail=0 ran=0

# expect NAME CMD...: exit 77 with a SKIPPED line
expect() {
    local name=$1 rc=0
    shift
    "$@" > "$tmp/$name.out" 2>&1 || rc=$?
    if [ $rc = 77 ] && grep -q '^SKIPPED: ' "$tmp/$name.out"; then
        echo "ok   $name: $(grep -m1 '^SKIPPED: ' "$tmp/$name.out" | cut -c1-160)"
    else
        echo "FAIL $name: exit $rc, expected 77 and a SKIPPED line; its output:"
        tail -n 15 "$tmp/$name.out" | sed 's/^/    | /'
        fail=1
    fi
    ran=$((ran + 1))
}

if command -v aarch64-linux-gnu-gcc >/dev/null && command -v mmdebstrap >/dev/null &&
   qemu-system-aarch64 --version 2>/dev/null | grep -q 'version 10\.' && [ -f /usr/share/qemu-efi-aarch64/QEMU_EFI.fd ]; then
    expect kernel-arm64 "$src/tests/kernel/run-arm64.sh" "$tmp/build"
else
    echo "skip kernel-arm64: its tools are not installed (tools/install-deps arm64)"
fi
# the x86 Linux 7.2 boots (run.sh --kernel-version 7.2): their budget check comes before any
# install or download, so they need nothing installed here
expect kernel-7.2 "$src/tests/kernel/run.sh" "$tmp/build" --kernel-version 7.2 --boots mock
expect kernel-7.2-vtd "$src/tests/kernel/run.sh" "$tmp/build" --kernel-version 7.2 --boots vtd
if command -v mmdebstrap >/dev/null && command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null &&
   command -v qemu-system-x86_64 >/dev/null && command -v dpkg-buildpackage >/dev/null; then
    expect fullstack "$src/tests/fullstack/run.sh" "$tmp/build"
else
    echo "skip fullstack: its tools are not installed (tools/install-deps fullstack)"
fi
[ $ran -gt 0 ] || { echo "SKIP: no heavy tier's tools are installed here"; exit 77; }
exit $fail
