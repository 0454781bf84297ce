#!/usr/bin/env bash
# Build (or fetch from cache) the test kernel for the kernel suite.
#
#   tests/kernel/build-kernel.sh            -> prints the path of bzImage on stdout
#   tests/kernel/build-kernel.sh --check    -> exit 0 when the kernel is cached, 1 when a build is due
#   tests/kernel/build-kernel.sh --headers  -> prints the uAPI header dir of that kernel
#     (`make headers_install` output plus drivers/iommu/iommufd/iommufd_test.h, the selftest
#     mock-device ABI), for guest programs: cc -I"$(build-kernel.sh --headers)" ...
#
# Source: Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz), config =
# `allnoconfig` + tests/kernel/config.fragment (KCONFIG_ALLCONFIG). Every CONFIG_*=y of the
# fragment is checked in the final .config; a symbol that did not stick fails the build by name.
#
# Cache (outside the clone):
#   ${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}/<key>/{bzImage,config,build.log,info,
#                                                               headers/include/}
#   key = first 16 hex of sha256(config.fragment + linux-source-6.12 package version + recipe rev)
# A second run with the same key returns at once. Builds are serialised with flock on
# <cache>/.build.lock (waiters re-check the cache after the lock is theirs).
#
# Env: IFB_KERNEL_CACHE, IFB_KERNEL_JOBS (default: 2), IFB_PROGRESS_SECS (default: 30),
#      IFB_KERNEL_FRAGMENT (default: tests/kernel/config.fragment; for trying a fragment out).
set -euo pipefail
IFB_TAG=build-kernel
. "$(dirname "$0")/lib.sh"

RECIPE_REV=1   # bump when this script changes how the kernel is built
CACHE=${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}
JOBS=${IFB_KERNEL_JOBS:-2}
EVERY=${IFB_PROGRESS_SECS:-30}
FRAGMENT=${IFB_KERNEL_FRAGMENT:-$KDIR/config.fragment}
TARBALL=/usr/src/linux-source-6.12.tar.xz

want=bzImage
case "${1:-}" in
    "") ;;
    --headers) want=headers ;;
    --check) want=check ;;
    *) echo "usage: $0 [--headers|--check]" >&2; exit 2 ;;
esac

if [ "$want" = check ]; then    # no installing, no building: is it there?
    command -v dpkg-query >/dev/null && [ -f "$TARBALL" ] || exit 1
fi
[ "$want" = check ] || ensure_deps
[ -f "$TARBALL" ] || die "$TARBALL missing after installing linux-source-6.12"
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( { cat "$FRAGMENT"; echo "linux-source-6.12=$srcver"; echo "recipe=$RECIPE_REV"; } |
       sha256sum | cut -c1-16)
out=$CACHE/$key
if [ "$want" = check ]; then
    [ -s "$out/bzImage" ] && [ -f "$out/headers/include/iommufd_test.h" ]
    exit
fi

# install_headers SRCDIR DEST: sanitized uAPI headers + the iommufd selftest ABI header
install_headers() {
    make -C "$1" ARCH=x86_64 INSTALL_HDR_PATH="$2" headers_install >>"$3" 2>&1 || return 1
    cp "$1/drivers/iommu/iommufd/iommufd_test.h" "$2/include/iommufd_test.h"
}

result() {
    if [ "$want" = headers ]; then echo "$out/headers/include"; else echo "$out/bzImage"; fi
}

# Entries built before the headers were saved get them from the source tarball (~40 s, once).
backfill_headers() {
    [ -f "$out/headers/include/iommufd_test.h" ] && return 0
    local tmp
    tmp=$(mktemp -d "$CACHE/headers.XXXXXX")
    say "saving the kernel uAPI headers to $out/headers"
    tar -xJf "$TARBALL" -C "$tmp" --strip-components=1 ||
        { rm -rf "$tmp"; die "extracting headers from $TARBALL failed"; }
    if ! install_headers "$tmp" "$out/headers.new" "$out/headers.log"; then
        tail -n 20 "$out/headers.log" >&2
        rm -rf "$tmp" "$out/headers.new"
        die "make headers_install failed (log: $out/headers.log)"
    fi
    rm -rf "$out/headers"
    mv "$out/headers.new" "$out/headers"
    rm -rf "$tmp"
}

if [ -s "$out/bzImage" ] && [ -f "$out/headers/include/iommufd_test.h" ]; then
    say "cached: $out/bzImage (linux-source-6.12 $srcver)"
    result
    exit 0
fi

mkdir -p "$CACHE"
build_lock "$CACHE" kernel
if [ -s "$out/bzImage" ]; then       # built meanwhile, or built before headers were kept
    say "cached: $out/bzImage"
    backfill_headers
    result
    exit 0
fi

build_start "$key"
mkdir -p "$work/src"
say "building kernel $key (linux-source-6.12 $srcver, make -j$JOBS); full log: $log"

fail() { build_fail "$@"; }

say "[$(elapsed)] extracting $TARBALL"
tar -xJf "$TARBALL" -C "$work/src" --strip-components=1 >>"$log" 2>&1 || fail "extracting sources"
cd "$work/src"

say "[$(elapsed)] configuring: allnoconfig + config.fragment"
cp "$FRAGMENT" "$work/config.fragment"
make ARCH=x86_64 KCONFIG_ALLCONFIG="$work/config.fragment" allnoconfig >>"$log" 2>&1 || fail "allnoconfig"

# Every symbol the fragment sets =y must be =y in the final .config.
missing=()
while IFS= read -r line; do
    sym=${line%%=*}
    grep -qx "$sym=y" .config || missing+=("$sym")
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=y$' "$FRAGMENT")
if [ ${#missing[@]} -gt 0 ]; then
    for s in "${missing[@]}"; do
        say "config symbol did not stick: $s ($(grep -E "^$s=|^# $s is not set" .config || echo 'absent from .config'))"
        # where it is defined and what it depends on (the usual reason: a dependency is off)
        grep -rn --include='Kconfig*' -A12 -E "^(menu)?config ${s#CONFIG_}\$" . 2>/dev/null |
            grep -E "(menu)?config ${s#CONFIG_}\$|^[^ ]*-[0-9]+-\s+(depends on|select) " | head -n 8 | sed 's/^/      /' >&2 || true
    done
    fail "${#missing[@]} fragment symbol(s) missing from .config: ${missing[*]}"
fi
say "[$(elapsed)] config ok: all $(grep -cE '^CONFIG_[A-Za-z0-9_]+=y$' "$FRAGMENT") fragment symbols are =y"

say "[$(elapsed)] make -j$JOBS bzImage (progress every ${EVERY}s)"
make_progress() {
    echo "$(grep -cE '^  (CC|AS|LD|AR)' "$log" || true) objects done; now: $(grep -E '^  [A-Z]' "$log" | tail -n 1 | sed 's/^ *//;s/  */ /g')"
}
rc=0; build_run make_progress make ARCH=x86_64 -j"$JOBS" bzImage || rc=$?
[ $rc = 0 ] || fail "make bzImage exited $rc"
[ -s arch/x86/boot/bzImage ] || fail "make succeeded but arch/x86/boot/bzImage is missing"

kver=$(cat include/config/kernel.release 2>/dev/null || echo unknown)
say "[$(elapsed)] make headers_install"
install_headers "$work/src" "$new/headers" "$log" || fail "make headers_install"
cp arch/x86/boot/bzImage "$new/bzImage"
cp .config "$new/config"
cp "$work/config.fragment" "$new/config.fragment"
build_finish "$key" "$out" "kernel_release=$kver" "linux_source_version=$srcver" "recipe_rev=$RECIPE_REV"
say "[$(elapsed)] done: $out/bzImage (kernel $kver, $(stat -c %s "$out/bzImage") bytes)"
result
