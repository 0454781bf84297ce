#!/usr/bin/env bash
# Cross-build the broker for arm64 (the kernel suite's smmuv3 boots).
#
#   tests/kernel/build-broker-arm64.sh BUILD_DIR     -> prints two lines: the arm64 build dir
#                                                       (BUILD_DIR/arm64-cross) and the sysroot
#   tests/kernel/build-broker-arm64.sh --sysroot     -> makes (or finds) the sysroot only, prints it
#
# 1. The sysroot: bookworm's arm64 build dependencies of the broker (and busybox-static, for the
#    guest's /bin) unpacked by `mmdebstrap --variant=extract --arch=arm64` from the machine's own
#    bookworm mirror: no dpkg database, no foreign architecture added to the host.
#    Cache: ${IFB_ARM64_SYSROOT_CACHE:-/var/cache/iommufd-broker/arm64-sysroot}/<key>/root,
#    key = first 16 hex of sha256(package list + suite + mirror + recipe rev); lib.sh's
#    cached-build helpers (lock, progress lines, one rename).
# 2. meson setup BUILD_DIR/arm64-cross with a generated cross file naming the sysroot (the
#    constant `sysroot`) followed by tests/kernel/arm64-cross.ini; ninja builds only what the
#    guest runs: the daemon, its worker, iommufdctl, ifb-uapi-scenarios and vmm-peer. ninja is
#    incremental, so a rerun with unchanged sources costs a second.
#
# Env: IFB_ARM64_SYSROOT_CACHE, IFB_PROGRESS_SECS (default 30).
set -euo pipefail
IFB_TAG=build-broker-arm64
. "$(dirname "$0")/lib.sh"

RECIPE_REV=1   # bump when the sysroot is made differently
SUITE=bookworm
PACKAGES=(libc6-dev libglib2.0-dev libjson-c-dev libsystemd-dev libvirt-dev libvirt-glib-1.0-dev
          libxml2-dev busybox-static)
TARGETS=(daemon/iommufd-brokerd daemon/iommufd-broker-worker client/iommufdctl
         tests/uapi/ifb-uapi-scenarios tests/helpers/vmm-peer)
CACHE=${IFB_ARM64_SYSROOT_CACHE:-/var/cache/iommufd-broker/arm64-sysroot}
EVERY=${IFB_PROGRESS_SECS:-30}
JOBS=1   # mmdebstrap downloads and unpacks; recorded in info like the other builds

case "${1:-}" in
    --sysroot) mode=sysroot ;;
    ""|-*) echo "usage: $0 BUILD_DIR | --sysroot" >&2; exit 2 ;;
    *) mode=broker; build=$(cd "$1" && pwd) || die "BUILD_DIR $1 does not exist" ;;
esac

command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run 'sudo tools/install-deps arm64'"
command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc missing: run 'sudo tools/install-deps arm64'"

mirror=$(bookworm_mirror_uri)
key=$( { printf '%s\n' "${PACKAGES[@]}"; echo "suite=$SUITE"; echo "mirror=$mirror"; echo "recipe=$RECIPE_REV"; } |
       sha256sum | cut -c1-16)
out=$CACHE/$key
sysroot=$out/root

if [ ! -f "$out/info" ]; then
    mkdir -p "$CACHE"
    build_lock "$CACHE" "arm64 sysroot"
    if [ ! -f "$out/info" ]; then
        build_start "$key"
        say "making the arm64 sysroot $key (mmdebstrap --variant=extract, $SUITE on $mirror): ${PACKAGES[*]}; log: $log"
        sysroot_progress() { echo "$(tail -n 1 "$log" | cut -c1-120)"; }
        rc=0
        build_run sysroot_progress mmdebstrap --variant=extract --arch=arm64 \
            --include="$(IFS=,; echo "${PACKAGES[*]}")" "$SUITE" "$new/root" "$mirror" || rc=$?
        [ $rc = 0 ] || build_fail "mmdebstrap exited $rc"
        [ -f "$new/root/usr/lib/aarch64-linux-gnu/pkgconfig/glib-2.0.pc" ] || build_fail "no glib-2.0.pc in the sysroot"
        [ -f "$new/root/bin/busybox" ] || build_fail "no bin/busybox in the sysroot"
        build_finish "$key" "$out" "suite=$SUITE" "packages=${PACKAGES[*]}" "recipe_rev=$RECIPE_REV"
        say "[$(elapsed)] sysroot ready: $sysroot ($(du -sh "$sysroot" | cut -f1))"
    fi
    exec 9>&-
else
    say "cached sysroot: $sysroot"
fi
if [ "$mode" = sysroot ]; then echo "$sysroot"; exit 0; fi

# -- the cross build
xdir=$build/arm64-cross
mkdir -p "$xdir.ini"
printf "[constants]\nsysroot = '%s'\n" "$sysroot" > "$xdir.ini/sysroot.ini"
t=$(date +%s)
if [ ! -f "$xdir/build.ninja" ] || ! cmp -s "$xdir.ini/sysroot.ini" "$xdir.ini/sysroot.ini.used"; then
    rm -rf "$xdir"
    say "meson setup $xdir (cross: arm64, sysroot $sysroot)"
    meson setup "$xdir" "$REPO" --cross-file "$xdir.ini/sysroot.ini" --cross-file "$KDIR/arm64-cross.ini" \
        -Dman=disabled -Dfuzzing=false -Dheavy_tests=false >"$xdir.ini/setup.log" 2>&1 ||
        { tail -n 30 "$xdir.ini/setup.log" >&2; die "meson setup of the arm64 cross build failed (log: $xdir.ini/setup.log)"; }
    cp "$xdir.ini/sysroot.ini" "$xdir.ini/sysroot.ini.used"
fi
ninja -C "$xdir" "${TARGETS[@]}" >"$xdir.ini/ninja.log" 2>&1 ||
    { tail -n 40 "$xdir.ini/ninja.log" >&2; die "ninja (arm64 cross build) failed (log: $xdir.ini/ninja.log)"; }
for tgt in "${TARGETS[@]}"; do
    file -b "$xdir/$tgt" | grep -q 'ARM aarch64' || die "$xdir/$tgt is not an arm64 executable: $(file -b "$xdir/$tgt")"
done
say "arm64 broker built in $xdir ($(fmt_secs $(( $(date +%s) - t ))); $(grep -c '^\[' "$xdir.ini/ninja.log" || true) ninja steps)"
echo "$xdir"
echo "$sysroot"
