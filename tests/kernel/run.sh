#!/usr/bin/env bash
# Entry point of `meson test --suite kernel`:
#   tests/kernel/run.sh BUILD_DIR
#
# 1. build-kernel.sh: the test kernel (installs prerequisites; cached outside the clone, so only
#    the first run on a machine takes ~10 min).
# 2. Builds the guest probe libprobe.c (the broker's library set) and the QMP client qmp-call.c
#    into BUILD_DIR/tests/kernel/.
# 3. mkinitramfs.sh: one initramfs per boot with busybox, the broker's binaries from BUILD_DIR
#    (daemon/iommufd-brokerd and the worker it runs from next to itself,
#    daemon/iommufd-broker-worker, client/iommufdctl, tests/uapi/ifb-uapi-scenarios and the VMM
#    stand-in tests/helpers/vmm-peer; all required) with their shared libraries, every
#    tests/kernel/guest-*.sh in /ifb/ and the boot's guest script as /ifb/guest.sh. The vtd
#    boot's also holds Debian's unmodified qemu-system-x86_64 (its libraries, the two firmware
#    files a paused q35 opens), qmp-call, and the adopting QEMU of contrib/qemu/
#    (qemu-system-x86_64-adopt, built and cached by build-qemu.sh, step 1b). The broker's own
#    IOMMUFD calls all go through its uAPI layer (daemon/uapi/): the daemon, the scenarios and
#    vmm-peer; the QEMUs make their own.
# 4. boot.sh twice: "vtd" (emulated VT-d + two e1000e, runs guest-vtd.sh) and "mock" (no
#    vIOMMU, the kernel's IOMMUFD selftest mock device, runs guest-mock.sh). Both always run.
# 5. The ifb-uapi-scenarios lines of each boot compared with the emulated backend's
#    (compare-scenarios.sh); any difference fails the suite.
# 6. Summary: each boot's result, the comparison, and the boots' headline lines (IFB-RESULT:
#    the NEST_PARENT outcomes and the two cgroups' memory deltas).
#
# Output: BUILD_DIR/tests/kernel/{initramfs-*.cpio,boot-*.log} (uncompressed cpio: boots faster). Exit 0 only if both pass.
# Env: IFB_KERNEL_CACHE (see build-kernel.sh), IFB_BOOT_TIMEOUT (seconds per boot, default 300;
# a boot that gives no verdict, e.g. a stalled TCG vCPU, is retried once).
set -euo pipefail
. "$(dirname "$0")/../heavy-gate.sh"
heavy_gate kernel "builds a Linux kernel (about 10 minutes the first time) and boots it in QEMU" root
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

# -- 1b. the adopting QEMU of contrib/qemu/ for guest-adopt.sh (build-qemu.sh; cached like the kernel)
t=$(date +%s)
adopt_qemu=$("$KDIR/build-qemu.sh" | tail -n 1) || die "building the adopting QEMU failed (see above)"
say "adopting QEMU: $adopt_qemu ($(fmt_secs $(( $(date +%s) - t ))))"

# -- 2. libprobe
pkgs="glib-2.0 json-c libsystemd libvirt libvirt-glib-1.0 libxml-2.0"
flags=$(pkg-config --cflags --libs $pkgs) ||
    die "pkg-config cannot find the broker's libraries ($pkgs): run 'tools/install-deps build'"
gcc -O1 -Wall -Werror -o "$out/libprobe" "$KDIR/libprobe.c" $flags || die "building libprobe failed"
gcc -O1 -Wall -Wextra -Werror -o "$out/qmp-call" "$KDIR/qmp-call.c" || die "building qmp-call failed"

# -- 3. initramfs
bins=("$out/libprobe")
for b in daemon/iommufd-brokerd daemon/iommufd-broker-worker client/iommufdctl tests/uapi/ifb-uapi-scenarios \
         tests/helpers/vmm-peer; do
    [ -x "$build/$b" ] || die "$build/$b is not built: run 'ninja -C $build' first"
    bins+=("$build/$b")
done
binargs=()
for b in "${bins[@]}"; do binargs+=(--bin "$b"); done
# every guest-*.sh goes to /ifb/ (guest-lib.sh, guest-qemu.sh, step files a boot's script sources)
for f in "$KDIR"/guest-*.sh; do binargs+=(--file "$f:/ifb/$(basename "$f")"); done
# the vtd boot also runs Debian's unmodified QEMU (nested TCG) on a vfio-pci device, with the
# only two firmware files a paused q35 -nodefaults machine opens (found with strace)
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing (tools/install-deps kernel)"
vtdargs=(--bin "$qemu" --bin "$out/qmp-call"
         --file /usr/share/seabios/bios-256k.bin:/usr/share/seabios/bios-256k.bin
         --file /usr/share/qemu/kvmvapic.bin:/usr/share/qemu/kvmvapic.bin)
vtdargs+=(--bin "$adopt_qemu")   # qemu-system-x86_64-adopt: Debian's firmware paths, the same files

declare -A result=() timing=()
for boot in vtd mock; do
    viommu=$boot; [ $boot = mock ] && viommu=none
    t=$(date +%s%N)
    bootargs=()
    [ $boot = vtd ] && bootargs=("${vtdargs[@]}")
    "$KDIR/mkinitramfs.sh" "$out/initramfs-$boot.cpio" "${binargs[@]}" "${bootargs[@]}" \
        --init "$KDIR/guest-$boot.sh" ||
        die "mkinitramfs for the $boot boot failed"
    t_init=$(( ($(date +%s%N) - t) / 1000000 ))

    # -- 4. boot (once more when it gave no verdict: timeout, panic, no marker)
    t=$(date +%s%N)
    for attempt in 1 2; do
        rc=0
        "$KDIR/boot.sh" --kernel "$kernel" --initrd "$out/initramfs-$boot.cpio" --viommu "$viommu" --name "$boot" \
            --timeout "${IFB_BOOT_TIMEOUT:-300}" --log "$out/boot-$boot.log" || rc=$?
        [ $rc = 124 ] && [ $attempt = 1 ] || break
        cp "$out/boot-$boot.log" "$out/boot-$boot.attempt1.log"
        say "$boot boot gave no verdict (log kept as boot-$boot.attempt1.log): booting once more"
    done
    t_boot=$(( ($(date +%s%N) - t) / 1000000 ))
    result[$boot]=$rc
    timing[$boot]="initramfs $((t_init / 1000)).$(printf %03d $((t_init % 1000)))s, boot+run $((t_boot / 1000)).$(printf %03d $((t_boot % 1000)))s"
done

# -- 5. the kernel's scenario lines against the emulated backend's, line by line
declare -A compared=()
scen=$build/tests/uapi/ifb-uapi-scenarios
"$scen" --backend emulated --template "$REPO/tests/fixtures/emulated" > "$out/scenarios-emulated.txt" 2>&1 || true
for boot in vtd mock; do
    sed -n 's/^\[guest\]   | \(scenario .*\)$/\1/p' "$out/boot-$boot.log" > "$out/scenarios-$boot.txt" 2>/dev/null || true
    rc=0
    "$KDIR/compare-scenarios.sh" "$boot" "$out/scenarios-$boot.txt" "$out/scenarios-emulated.txt" >&2 || rc=$?
    compared[$boot]=$rc
done

say "---- summary (total $(fmt_secs $(( $(date +%s) - tstart ))), kernel step $(fmt_secs $t_kernel))"
fail=0
for boot in vtd mock; do
    if [ "${result[$boot]}" = 0 ]; then
        say "$boot boot: PASS (${timing[$boot]}; log $out/boot-$boot.log)"
    else
        say "$boot boot: FAIL, exit ${result[$boot]} (${timing[$boot]}; log $out/boot-$boot.log)"
        fail=1
    fi
    if [ "${compared[$boot]}" = 0 ]; then
        say "$boot scenarios vs emulated: same ($out/scenarios-$boot.txt)"
    else
        say "$boot scenarios vs emulated: DIFFERENT (see [compare $boot] above; $out/scenarios-$boot.txt)"
        fail=1
    fi
    # the boot's headlines: NEST_PARENT outcomes, the accounting deltas
    n=0
    while IFS= read -r line; do
        say "  $boot: $line"
        n=$((n + 1))
    done < <(grep -ao 'IFB-RESULT .*' "$out/boot-$boot.log" | sed 's/^IFB-RESULT //')
    [ $n -gt 0 ] || { say "  $boot: no IFB-RESULT lines (the guest script stopped early?)"; fail=1; }
done
exit $fail
