#!/usr/bin/env bash
# Build (or fetch from cache) the arm64 test kernel for the kernel suite's "smmuv3" boots.
#
#   tests/kernel/build-kernel-arm64.sh            -> prints the path of the arm64 Image
#   tests/kernel/build-kernel-arm64.sh --headers  -> prints its uAPI header dir (arm64
#     `make headers_install`), for cross-built guest programs
#   tests/kernel/build-kernel-arm64.sh --cached   -> prints the Image's path if it is cached,
#     exits 3 (printing nothing) if not; never builds (run.sh's budget check)
#
# Source: Debian sid's linux-source-7.2, fetched through a private apt configuration
# (sid-source.sh); config = arm64 `allnoconfig` + tests/kernel/config-arm64.fragment; cross gcc
# (`gcc-aarch64-linux-gnu`). Every CONFIG_*=y of the fragment is checked in the final .config.
#
# Cache: ${IFB_KERNEL_ARM64_CACHE:-/var/cache/iommufd-broker/kernel-arm64}/<key>/{Image,config,
#        build.log,info,headers/include/}
#   key = first 16 hex of sha256(fragment + linux-source-7.2 version + cross gcc version +
#         recipe rev); built with lib.sh's cached-build helpers (lock, progress, one rename).
#
# Env: IFB_KERNEL_ARM64_CACHE (its own directory: its lock never waits for an x86 build), IFB_KERNEL_JOBS (default 2), IFB_PROGRESS_SECS (default 30),
#      IFB_KERNEL_ARM64_FRAGMENT (default tests/kernel/config-arm64.fragment).
set -euo pipefail
IFB_TAG=build-kernel-arm64
. "$(dirname "$0")/lib.sh"

RECIPE_REV=1   # bump when this script changes how the kernel is built
CACHE=${IFB_KERNEL_ARM64_CACHE:-/var/cache/iommufd-broker/kernel-arm64}
JOBS=${IFB_KERNEL_JOBS:-2}
EVERY=${IFB_PROGRESS_SECS:-30}
FRAGMENT=${IFB_KERNEL_ARM64_FRAGMENT:-$KDIR/config-arm64.fragment}
SRCPKG=linux-source-7.2
CROSS=aarch64-linux-gnu-
MAKE_ARGS=(ARCH=arm64 CROSS_COMPILE=$CROSS)

want=Image
case "${1:-}" in
    "") ;;
    --headers) want=headers ;;
    --cached) want=cached ;;
    *) echo "usage: $0 [--headers|--cached]" >&2; exit 2 ;;
esac

# The key names the source by its sid version as last unpacked (no network for a cached run).
srcdir=$(ls -d "${IFB_SID_CACHE:-/var/cache/iommufd-broker/sid}/${SRCPKG}_"*/ 2>/dev/null |
         grep -v '\.new/$' | sort -V | tail -n 1 || true)
if [ -z "$srcdir" ]; then
    [ "$want" = cached ] && exit 3
    command -v "${CROSS}gcc" >/dev/null || die "${CROSS}gcc missing: run 'sudo tools/install-deps arm64'"
    "$KDIR/sid-source.sh" "$SRCPKG" >/dev/null
    srcdir=$(ls -d "${IFB_SID_CACHE:-/var/cache/iommufd-broker/sid}/${SRCPKG}_"*/ | grep -v '\.new/$' | sort -V | tail -n 1)
fi
tarball=$(ls "$srcdir"usr/src/"$SRCPKG".tar.xz)
srcver=${srcdir%/}; srcver=${srcver##*_}
gccver=$("${CROSS}gcc" -dumpfullversion 2>/dev/null || echo none)
key=$( { cat "$FRAGMENT"; echo "$SRCPKG=$srcver"; echo "gcc=$gccver"; echo "recipe=$RECIPE_REV"; } |
       sha256sum | cut -c1-16)
out=$CACHE/$key

result() {
    case "$want" in
        headers) echo "$out/headers/include" ;;
        *) echo "$out/Image" ;;
    esac
}

if [ -s "$out/Image" ] && [ -d "$out/headers/include" ]; then
    say "cached: $out/Image ($SRCPKG $srcver)"
    result
    exit 0
fi
[ "$want" = cached ] && exit 3
command -v "${CROSS}gcc" >/dev/null || die "${CROSS}gcc missing: run 'sudo tools/install-deps arm64'"

mkdir -p "$CACHE"
build_lock "$CACHE" kernel
if [ -s "$out/Image" ]; then
    say "cached: $out/Image (built meanwhile)"
    result
    exit 0
fi

build_start "$key"
mkdir -p "$work/src"
say "building arm64 kernel $key ($SRCPKG $srcver, ${CROSS}gcc $gccver, make -j$JOBS); full log: $log"
fail() { build_fail "$@"; }

say "[$(elapsed)] extracting $tarball"
tar -xJf "$tarball" -C "$work/src" --strip-components=1 >>"$log" 2>&1 || fail "extracting sources"
cd "$work/src"

say "[$(elapsed)] configuring: allnoconfig + $(basename "$FRAGMENT")"
cp "$FRAGMENT" "$work/config.fragment"
make "${MAKE_ARGS[@]}" KCONFIG_ALLCONFIG="$work/config.fragment" allnoconfig >>"$log" 2>&1 || fail "allnoconfig"
missing=()
while IFS= read -r line; do
    sym=${line%%=*}
    grep -qx "$sym=y" .config || missing+=("$sym")
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=y$' "$FRAGMENT")
[ ${#missing[@]} -eq 0 ] || fail "${#missing[@]} fragment symbol(s) missing from .config: ${missing[*]}"
say "[$(elapsed)] config ok: all $(grep -cE '^CONFIG_[A-Za-z0-9_]+=y$' "$FRAGMENT") fragment symbols are =y"

say "[$(elapsed)] make -j$JOBS Image (progress every ${EVERY}s)"
make_progress() {
    echo "$(grep -cE '^  (CC|AS|LD|AR)' "$log" || true) objects done; now: $(grep -E '^  [A-Z]' "$log" | tail -n 1 | sed 's/^ *//;s/  */ /g')"
}
rc=0; build_run make_progress make "${MAKE_ARGS[@]}" -j"$JOBS" Image || rc=$?
[ $rc = 0 ] || fail "make Image exited $rc"
[ -s arch/arm64/boot/Image ] || fail "make succeeded but arch/arm64/boot/Image is missing"

kver=$(cat include/config/kernel.release 2>/dev/null || echo unknown)
say "[$(elapsed)] make headers_install"
make "${MAKE_ARGS[@]}" INSTALL_HDR_PATH="$new/headers" headers_install >>"$log" 2>&1 || fail "make headers_install"
cp arch/arm64/boot/Image "$new/Image"
cp .config "$new/config"
cp "$work/config.fragment" "$new/config.fragment"
build_finish "$key" "$out" "kernel_release=$kver" "linux_source_version=$srcver" \
    "cross_gcc=$gccver" "recipe_rev=$RECIPE_REV"
say "[$(elapsed)] done: $out/Image (kernel $kver, $(stat -c %s "$out/Image") bytes)"
result
