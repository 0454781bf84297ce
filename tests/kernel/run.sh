#!/usr/bin/env bash
# Entry point of `meson test --suite kernel`:
#   tests/kernel/run.sh BUILD_DIR
#
# 1. build-kernel.sh: the test kernel (installs prerequisites; cached outside the clone, so only
#    the first run on a machine takes ~10 min).
# 2. Builds two guest probes into BUILD_DIR/tests/kernel/: libprobe.c (the broker's library
#    set + kernel features) and iommufd-probe.c (raw IOMMUFD uAPI: VT-d hw info, NEST_PARENT,
#    mock device + nested child, the page-table charge to the caller's cgroup).
# 3. mkinitramfs.sh: one initramfs per boot with busybox, the broker binaries found in BUILD_DIR
#    (daemon/iommufd-brokerd, client/iommufdctl, tests/uapi/ifb-uapi-scenarios; each only if
#    built) with their shared libraries, guest-lib.sh and the boot's guest script.
# 4. boot.sh twice: "vtd" (emulated VT-d + e1000e, runs guest-vtd.sh) and "mock" (no vIOMMU,
#    the kernel's IOMMUFD selftest mock device, runs guest-mock.sh). Both boots always run.
#
# 5. When ifb-uapi-scenarios is built: its lines from each boot compared with the emulated
#    backend's (compare-scenarios.sh); any difference fails the suite.
#
# Output: BUILD_DIR/tests/kernel/{initramfs-*.cpio,boot-*.log} (uncompressed cpio: boots faster). Exit 0 only if both pass.
# Env: IFB_KERNEL_CACHE (see build-kernel.sh), IFB_BOOT_TIMEOUT (seconds per boot, default 600).
set -euo pipefail
IFB_TAG=kernel-suite
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd) || die "BUILD_DIR $1 does not exist"
out=$build/tests/kernel
mkdir -p "$out"
tstart=$(date +%s)

# -- 1. kernel
t=$(date +%s)
kernel=$("$KDIR/build-kernel.sh") || die "kernel build failed (see above)"
t_kernel=$(( $(date +%s) - t ))
say "kernel: $kernel ($(fmt_secs $t_kernel))"

# -- 2. libprobe
pkgs="glib-2.0 json-c libsystemd libvirt libvirt-glib-1.0 libxml-2.0"
flags=$(pkg-config --cflags --libs $pkgs) ||
    die "pkg-config cannot find the broker's libraries ($pkgs): run 'tools/install-deps build'"
gcc -O1 -Wall -Werror -o "$out/libprobe" "$KDIR/libprobe.c" $flags || die "building libprobe failed"
# iommufd-probe: against the uAPI headers of the booted kernel (saved next to bzImage)
uapi=$(dirname "$kernel")/headers/include
[ -f "$uapi/linux/iommufd.h" ] && [ -f "$uapi/iommufd_test.h" ] || die "$uapi: kernel uAPI headers missing"
gcc -O1 -Wall -Werror -I"$uapi" -o "$out/iommufd-probe" "$KDIR/iommufd-probe.c" ||
    die "building iommufd-probe failed"

# -- 3. initramfs
bins=("$out/libprobe" "$out/iommufd-probe")
for b in daemon/iommufd-brokerd client/iommufdctl tests/uapi/ifb-uapi-scenarios; do
    if [ -x "$build/$b" ]; then
        bins+=("$build/$b")
        say "including $b"
    else
        say "note: $build/$b not built; not included"
    fi
done
binargs=()
for b in "${bins[@]}"; do binargs+=(--bin "$b"); done

declare -A result=() timing=()
for boot in vtd mock; do
    viommu=$boot; [ $boot = mock ] && viommu=none
    t=$(date +%s%N)
    "$KDIR/mkinitramfs.sh" "$out/initramfs-$boot.cpio" "${binargs[@]}" \
        --file "$KDIR/guest-lib.sh:/ifb/guest-lib.sh" --init "$KDIR/guest-$boot.sh" ||
        die "mkinitramfs for the $boot boot failed"
    t_init=$(( ($(date +%s%N) - t) / 1000000 ))

    # -- 4. boot
    t=$(date +%s%N)
    rc=0
    "$KDIR/boot.sh" --kernel "$kernel" --initrd "$out/initramfs-$boot.cpio" --viommu "$viommu" --name "$boot" \
        --timeout "${IFB_BOOT_TIMEOUT:-600}" --log "$out/boot-$boot.log" || rc=$?
    t_boot=$(( ($(date +%s%N) - t) / 1000000 ))
    result[$boot]=$rc
    timing[$boot]="initramfs $((t_init / 1000)).$(printf %03d $((t_init % 1000)))s, boot+run $((t_boot / 1000)).$(printf %03d $((t_boot % 1000)))s"
done

# -- 5. the kernel's scenario lines against the emulated backend's, line by line
declare -A compared=()
scen=$build/tests/uapi/ifb-uapi-scenarios
if [ -x "$scen" ]; then
    "$scen" --backend emulated --template "$REPO/tests/fixtures/emulated" > "$out/scenarios-emulated.txt" 2>&1 || true
    for boot in vtd mock; do
        sed -n 's/^\[guest\]   | \(scenario .*\)$/\1/p' "$out/boot-$boot.log" > "$out/scenarios-$boot.txt" 2>/dev/null || true
        rc=0
        "$KDIR/compare-scenarios.sh" "$boot" "$out/scenarios-$boot.txt" "$out/scenarios-emulated.txt" >&2 || rc=$?
        compared[$boot]=$rc
    done
fi

say "---- summary (total $(fmt_secs $(( $(date +%s) - tstart ))), kernel step $(fmt_secs $t_kernel))"
fail=0
for boot in vtd mock; do
    if [ "${result[$boot]}" = 0 ]; then
        say "$boot boot: PASS (${timing[$boot]}; log $out/boot-$boot.log)"
    else
        say "$boot boot: FAIL, exit ${result[$boot]} (${timing[$boot]}; log $out/boot-$boot.log)"
        fail=1
    fi
    if [ -n "${compared[$boot]:-}" ]; then
        if [ "${compared[$boot]}" = 0 ]; then
            say "$boot scenarios vs emulated: same ($out/scenarios-$boot.txt)"
        else
            say "$boot scenarios vs emulated: DIFFERENT (see [compare $boot] above; $out/scenarios-$boot.txt)"
            fail=1
        fi
    fi
done
exit $fail
