#!/usr/bin/env bash
# Build (or fetch from cache) the test kernel for the kernel suite.
#
#   tests/kernel/build-kernel.sh [--version V]            -> prints the path of bzImage on stdout
#   tests/kernel/build-kernel.sh [--version V] --check    -> exit 0 when the kernel is cached, 1
#     when a build is due
#   tests/kernel/build-kernel.sh [--version V] --cached   -> prints bzImage's path if it is
#     cached, exits 3 (printing nothing) if not; never builds, installs or downloads (budget checks)
#   tests/kernel/build-kernel.sh [--version V] --headers  -> prints the uAPI header dir of that
#     kernel (`make headers_install` output plus drivers/iommu/iommufd/iommufd_test.h, the
#     selftest mock-device ABI), for guest programs: cc -I"$(build-kernel.sh --headers)" ...
#
# V is the kernel series, 6.12 (the default) or 7.2:
#   6.12  Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz, bookworm-backports):
#         the oldest kernel the broker supports;
#   7.2   Debian sid's linux-source-7.2, fetched through a private apt configuration
#         (sid-source.sh, the same tarball the arm64 kernel is built from): the vIOMMU,
#         vDEVICE and vEVENTQ of the selftest mock (6.13+).
# Config = `allnoconfig` + tests/kernel/config.fragment (KCONFIG_ALLCONFIG), the same for both,
# followed by tests/kernel/config-V.fragment when there is one (7.2: symbols 6.12 lacks).
# Every CONFIG_*=y of the fragment is checked in the final .config; a symbol that did not stick
# fails the build by name.
#
# Cache (outside the clone):
#   ${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}/<key>/{bzImage,config,build.log,info,
#                                                               headers/include/}
#   key = first 16 hex of sha256(config.fragment [+ config-V.fragment] + "linux-source-V=" package
#         version + recipe rev)   (6.12's key is what it was before 7.2 was added)
# A second run with the same key returns at once. Builds of one series are serialised with
# flock on <cache>/.build.lock (6.12; the name it always had) or <cache>/.build-V.lock (7.2),
# so a 7.2 build never waits for a 6.12 one; waiters re-check the cache once the lock is theirs.
#
# Env: IFB_KERNEL_CACHE, IFB_KERNEL_JOBS (default: 2), IFB_PROGRESS_SECS (default: 30),
#      IFB_KERNEL_FRAGMENT (default: tests/kernel/config.fragment; for trying a fragment out).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RECIPE_REV=1   # bump when this script changes how the kernel is built
CACHE=${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}
JOBS=${IFB_KERNEL_JOBS:-2}
EVERY=${IFB_PROGRESS_SECS:-30}
FRAGMENTS=("${IFB_KERNEL_FRAGMENT:-$KDIR/config.fragment}")

usage() { echo "usage: $0 [--version 6.12|7.2] [--headers|--check|--cached]" >&2; exit 2; }
want=bzImage; VERSION=6.12
while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || usage; VERSION=$2; shift 2 ;;
        --headers) want=headers; shift ;;
        --check) want=check; shift ;;
        --cached) want=cached; shift ;;
        *) usage ;;
    esac
done
SRCPKG=linux-source-$VERSION
LOCKNAME=.build-$VERSION.lock
IFB_TAG=build-kernel-$VERSION
probe=0   # 1: --check or --cached, which never install, download or build
case "$want" in check|cached) probe=1 ;; esac

# The tarball and its package version: 6.12 from the machine's own package; 7.2 from the
# newest sid download (sid-source.sh; a cached run needs no network).
case "$VERSION" in
    6.12)
        TARBALL=/usr/src/$SRCPKG.tar.xz
        LOCKNAME=.build.lock
        if [ $probe = 1 ]; then
            command -v dpkg-query >/dev/null && [ -f "$TARBALL" ] || exit $([ "$want" = cached ] && echo 3 || echo 1)
        fi
        [ $probe = 1 ] || ensure_deps
        [ -f "$TARBALL" ] || die "$TARBALL missing after installing $SRCPKG"
        srcver=$(dpkg-query -W -f='${Version}' "$SRCPKG") ;;
    7.2)
        sid_newest() {
            ls -d "${IFB_SID_CACHE:-/var/cache/iommufd-broker/sid}/${SRCPKG}_"*/ 2>/dev/null |
                grep -v '\.new/$' | sort -V | tail -n 1 || true
        }
        srcdir=$(sid_newest)
        if [ -z "$srcdir" ]; then
            [ $probe = 0 ] || exit $([ "$want" = cached ] && echo 3 || echo 1)
            "$KDIR/sid-source.sh" "$SRCPKG" >/dev/null || die "fetching $SRCPKG from sid failed"
            srcdir=$(sid_newest)
        fi
        [ $probe = 1 ] || ensure_deps
        TARBALL=${srcdir}usr/src/$SRCPKG.tar.xz
        [ -f "$TARBALL" ] || die "$TARBALL missing"
        srcver=${srcdir%/}; srcver=${srcver##*_} ;;
    *) die "--version must be 6.12 or 7.2, not '$VERSION'" ;;
esac
# The series' own additions (config-V.fragment: symbols older series lack), appended.
EXTRA=$KDIR/config-$VERSION.fragment
[ -n "${IFB_KERNEL_FRAGMENT:-}" ] || [ ! -f "$EXTRA" ] || FRAGMENTS+=("$EXTRA")
key=$( { cat "${FRAGMENTS[@]}"; echo "$SRCPKG=$srcver"; echo "recipe=$RECIPE_REV"; } |
       sha256sum | cut -c1-16)
out=$CACHE/$key
if [ $probe = 1 ]; then
    if [ -s "$out/bzImage" ] && [ -f "$out/headers/include/iommufd_test.h" ]; then
        [ "$want" = check ] || echo "$out/bzImage"
        exit 0
    fi
    exit $([ "$want" = cached ] && echo 3 || echo 1)
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
    say "cached: $out/bzImage ($SRCPKG $srcver)"
    result
    exit 0
fi

mkdir -p "$CACHE"
build_lock "$CACHE" "$VERSION kernel" "$LOCKNAME"
if [ -s "$out/bzImage" ]; then       # built meanwhile, or built before headers were kept
    say "cached: $out/bzImage"
    backfill_headers
    result
    exit 0
fi

build_start "$key"
mkdir -p "$work/src"
say "building kernel $key ($SRCPKG $srcver, make -j$JOBS); full log: $log"

fail() { build_fail "$@"; }

say "[$(elapsed)] extracting $TARBALL"
tar -xJf "$TARBALL" -C "$work/src" --strip-components=1 >>"$log" 2>&1 || fail "extracting sources"
cd "$work/src"

say "[$(elapsed)] configuring: allnoconfig + config.fragment"
cat "${FRAGMENTS[@]}" > "$work/config.fragment"
make ARCH=x86_64 KCONFIG_ALLCONFIG="$work/config.fragment" allnoconfig >>"$log" 2>&1 || fail "allnoconfig"

# Every symbol the fragment sets =y must be =y in the final .config.
missing=()
while IFS= read -r line; do
    sym=${line%%=*}
    grep -qx "$sym=y" .config || missing+=("$sym")
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=y$' "$work/config.fragment")
if [ ${#missing[@]} -gt 0 ]; then
    for s in "${missing[@]}"; do
        say "config symbol did not stick: $s ($(grep -E "^$s=|^# $s is not set" .config || echo 'absent from .config'))"
        # where it is defined and what it depends on (the usual reason: a dependency is off)
        grep -rn --include='Kconfig*' -A12 -E "^(menu)?config ${s#CONFIG_}\$" . 2>/dev/null |
            grep -E "(menu)?config ${s#CONFIG_}\$|^[^ ]*-[0-9]+-\s+(depends on|select) " | head -n 8 | sed 's/^/      /' >&2 || true
    done
    fail "${#missing[@]} fragment symbol(s) missing from .config: ${missing[*]}"
fi
say "[$(elapsed)] config ok: all $(grep -cE '^CONFIG_[A-Za-z0-9_]+=y$' "$work/config.fragment") fragment symbols are =y"

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
