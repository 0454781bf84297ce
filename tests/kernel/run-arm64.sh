#!/usr/bin/env bash
# Entry point of `meson test --suite kernel-arm64`: the arm64 boots of the kernel tier.
#   tests/kernel/run-arm64.sh BUILD_DIR
#
# A suite of its own beside `kernel` (x86: vtd, mock on Linux 6.12): its cold builds (an arm64
# kernel, a sysroot, the cross-built broker) take about half an hour on a loaded 2-CPU machine,
# so it has its own meson timeout and its own budget check instead of lengthening the x86
# suite's; it needs a different toolchain (tools/install-deps arm64).
#
# 0. Budget: when a cache is missing, the cold cost (the slowest kernel build measured on this
#    machine, x86 ones included, else 45 min; the sysroot, the cross build, the boots) is
#    compared with the time left: IFB_ARM64_BUDGET_SECS (default 3300, inside the suite's
#    3600 s meson timeout; 0: no limit, to fill the caches) and, when set, IFB_CHECK_DEADLINE
#    (epoch seconds by which the whole check must end, e.g. a CI job's start + 90 min). Over
#    budget: "SKIPPED: ..." with the reason and how to fill the caches, exit 77 (meson's SKIP).
# 1. build-kernel-arm64.sh: Linux 7.2 (sid's linux-source-7.2) for arm64, cached by content.
# 2. build-broker-arm64.sh: the arm64 sysroot (cached by content) and the broker cross-built in
#    BUILD_DIR/arm64-cross (daemon, worker, iommufdctl, ifb-uapi-scenarios, vmm-peer).
# 3. mkinitramfs.sh --sysroot: arm64 busybox-static, those binaries and their arm64 libraries,
#    every guest-*.sh; /ifb/guest.sh = guest-smmuv3.sh.
# 4. boot.sh --viommu smmuv3 --bios QEMU_EFI.fd twice:
#    "smmuv3"       QEMU's own IORT (ifb.firmware=acpi): NEST_PARENT through arm-smmu-v3, the
#                   accounting, the vIOMMU refused by name (no coherent root complex); the guest
#                   dumps the IORT;
#    "smmuv3-iort"  iort-override.py makes QEMU's IORT coherent (CANWBS) and it goes first in
#                   the initrd, as an uncompressed cpio of kernel/firmware/acpi/IORT.aml
#                   (ifb.firmware=acpi-iort): the same, with the broker's vIOMMU and vDEVICEs.
# 5. Each boot's ifb-uapi-scenarios lines (keyed by IOMMU: `@arm-smmuv3+nest`) against the
#    emulated backend's SMMUv3 device (tests/fixtures/emulated's vfio3, behind a coherent root
#    complex): the smmuv3-iort boot must match line by line; in the smmuv3 boot the vIOMMU lines,
#    and only they, differ (no CANWBS there).
# 6. Summary with each boot's IFB-RESULT lines.
#
# Output: BUILD_DIR/tests/kernel/{initramfs-smmuv3*.cpio,boot-smmuv3*.log,iort/}.
# Env: IFB_BOOT_TIMEOUT (per boot, default 300), IFB_ARM64_BUDGET_SECS, IFB_CHECK_DEADLINE,
#      the build scripts' variables.
set -euo pipefail
. "$(dirname "$0")/../heavy-gate.sh"
heavy_gate kernel-arm64 "cross-builds an arm64 Linux 7.2 and the broker (about 30 minutes the first time) and boots it in QEMU" root
IFB_TAG=kernel-arm64
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd) || die "BUILD_DIR $1 does not exist"
out=$build/tests/kernel
mkdir -p "$out"
tstart=$(date +%s)
FIRMWARE=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd

# -- prerequisites (tools/install-deps arm64 is idempotent and quick when all is there)
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v mmdebstrap >/dev/null ||
   ! qemu-system-aarch64 --version 2>/dev/null | grep -q 'version 10\.' || [ ! -f "$FIRMWARE" ]; then
    say "installing prerequisites: tools/install-deps arm64"
    "$REPO/tools/install-deps" arm64 || die "tools/install-deps arm64 failed"
fi

# -- 0. budget: what is missing, what it costs cold, how much time is left
# slowest_build DIR...: the longest build_seconds of DIR/*/info (this machine's kernel builds, x86
# ones included: about as many objects as the arm64 one), empty when there is none
slowest_build() {
    local d
    for d in "$@"; do cat "$d"/*/info 2>/dev/null || true; done | sed -n 's/^build_seconds=//p' | sort -n | tail -n 1
}
cost=0; missing=()
if ! "$KDIR/build-kernel-arm64.sh" --cached >/dev/null 2>&1; then
    c=$(slowest_build "${IFB_KERNEL_ARM64_CACHE:-/var/cache/iommufd-broker/kernel-arm64}" \
                      "${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}")
    c=${c:-2700}   # none measured here: the slowest seen on the busy 2-core build host (45 min)
    cost=$((cost + c + 90)); missing+=("the arm64 kernel (~$(fmt_secs $((c + 90))) with the sid source)")
fi
if ! ls "${IFB_ARM64_SYSROOT_CACHE:-/var/cache/iommufd-broker/arm64-sysroot}"/*/info >/dev/null 2>&1; then
    cost=$((cost + 120)); missing+=("the arm64 sysroot (~2m)")
fi
if [ ! -f "$build/arm64-cross/build.ninja" ]; then
    cost=$((cost + 240)); missing+=("the broker's arm64 cross build (~4m)")
fi
budget=${IFB_ARM64_BUDGET_SECS:-3300}
if [ ${#missing[@]} -gt 0 ] && [ "$budget" != 0 ]; then
    why="the suite's budget (IFB_ARM64_BUDGET_SECS=$budget, inside its 3600 s meson timeout)"
    if [ -n "${IFB_CHECK_DEADLINE:-}" ]; then
        left=$(( IFB_CHECK_DEADLINE - $(date +%s) ))
        [ "$left" -ge "$budget" ] || { budget=$left; why="the time left before IFB_CHECK_DEADLINE ($(fmt_secs $((left > 0 ? left : 0))))"; }
    fi
    boots=600   # two boots, with room for one retry
    need=$((cost + boots))
    say "cold: ${missing[*]}; about $(fmt_secs $need) with the boots; $why"
    if [ $need -gt "$budget" ]; then
        echo "SKIPPED: the arm64 boots need ${missing[*]}: about $(fmt_secs $need) in all, more than $why." \
             "Fill the caches first, as root: IFB_HEAVY_TESTS=1 IFB_ARM64_BUDGET_SECS=0 tests/kernel/run-arm64.sh $build"
        exit 77
    fi
fi

# -- 1. kernel
t=$(date +%s)
kernel=$("$KDIR/build-kernel-arm64.sh") || die "arm64 kernel build failed (see above)"
t_kernel=$(( $(date +%s) - t ))
say "arm64 kernel: $kernel ($(fmt_secs $t_kernel))"

# -- 2. the broker for arm64
t=$(date +%s)
lines=$("$KDIR/build-broker-arm64.sh" "$build") || die "the arm64 cross build failed (see above)"
xdir=$(sed -n 1p <<<"$lines"); sysroot=$(sed -n 2p <<<"$lines")
t_cross=$(( $(date +%s) - t ))

# -- 3. initramfs (one for both boots: the guest script reads ifb.firmware)
binargs=(--sysroot "$sysroot")
for b in daemon/iommufd-brokerd daemon/iommufd-broker-worker client/iommufdctl tests/uapi/ifb-uapi-scenarios \
         tests/helpers/vmm-peer; do
    binargs+=(--bin "$xdir/$b")
done
for f in "$KDIR"/guest-*.sh; do binargs+=(--file "$f:/ifb/$(basename "$f")"); done
t=$(date +%s%N)
"$KDIR/mkinitramfs.sh" "$out/initramfs-smmuv3.cpio" "${binargs[@]}" --init "$KDIR/guest-smmuv3.sh" ||
    die "mkinitramfs for the smmuv3 boots failed"
t_init=$(( ($(date +%s%N) - t) / 1000000 ))

# boot NAME INITRD FIRMWARE-MODE: boot.sh (once more when it gave no verdict)
declare -A result=() timing=()
boot() {
    local name=$1 initrd=$2 fw=$3 rc attempt t
    t=$(date +%s%N)
    for attempt in 1 2; do
        rc=0
        "$KDIR/boot.sh" --kernel "$kernel" --initrd "$initrd" --viommu smmuv3 --bios "$FIRMWARE" --name "$name" \
            --append "ifb.firmware=$fw" --timeout "${IFB_BOOT_TIMEOUT:-300}" --log "$out/boot-$name.log" || rc=$?
        [ $rc = 124 ] && [ $attempt = 1 ] || break
        cp "$out/boot-$name.log" "$out/boot-$name.attempt1.log"
        say "$name boot gave no verdict (log kept as boot-$name.attempt1.log): booting once more"
    done
    result[$name]=$rc
    t=$(( ($(date +%s%N) - t) / 1000000 ))
    timing[$name]="boot+run $((t / 1000)).$(printf %03d $((t % 1000)))s"
}

# -- 4a. QEMU's own IORT
boot smmuv3 "$out/initramfs-smmuv3.cpio" acpi

# -- 4b. the IORT override, made from the IORT the first boot dumped, first in the initrd
rm -rf "$out/iort"
if python3 "$KDIR/iort-override.py" "$out/boot-smmuv3.log" "$out/iort" >&2; then
    (cd "$out/iort" && find kernel | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out/iort.cpio"
    cat "$out/iort.cpio" "$out/initramfs-smmuv3.cpio" > "$out/initramfs-smmuv3-iort.cpio"
    boot smmuv3-iort "$out/initramfs-smmuv3-iort.cpio" acpi-iort
else
    say "no IORT override could be made from boot-smmuv3.log: the smmuv3-iort boot cannot run"
    result[smmuv3-iort]=1; timing[smmuv3-iort]="not booted"
fi

# -- 5. scenarios against the emulated SMMUv3 device (coherent)
# The scenario keys that depend on the vIOMMU: allowed to differ in the boot without CANWBS.
VIOMMU_KEYS='alloc_hwpt_nested|viommu|vdevice|veventq|hw_queue'
# Differences found by these boots in the emulator (daemon/uapi/emul-*.c), reported, listed here
# verbatim until they are fixed so that any other difference still fails the suite; none now.
# (The last, fixed from 7.2's source: a nested HWPT asked of an SMMUv3 vIOMMU with an unknown
# data type is EINVAL, arm-smmu-v3 leaving the type test to iommu_copy_struct_from_user().)
KNOWN_DIFFS=()
# unexplained BOOT: the DIFF / NO COUNTERPART lines of compare-BOOT.txt that are neither known nor
# (in the boot without CANWBS) a vIOMMU line
unexplained() {
    local line k ok
    grep -E '^\[compare [a-z0-9-]+\] (DIFF|NO COUNTERPART)' "$out/compare-$1.txt" 2>/dev/null | while IFS= read -r line; do
        ok=0
        for k in "${KNOWN_DIFFS[@]}"; do [[ "$line" == *"$k"* ]] && ok=1; done
        [ $1 = smmuv3 ] && [[ "$line" =~ \]\ (DIFF|NO\ COUNTERPART)\ ($VIOMMU_KEYS) ]] && ok=1
        [ $ok = 1 ] || echo "$line"
    done
}
declare -A compared=()
scen=$build/tests/uapi/ifb-uapi-scenarios
if [ -x "$scen" ]; then
    "$scen" --backend emulated --template "$REPO/tests/fixtures/emulated" > "$out/scenarios-emulated.txt" 2>&1 || true
fi
for b in smmuv3 smmuv3-iort; do
    sed -n 's/^\[guest\]   | \(scenario .*\)$/\1/p' "$out/boot-$b.log" > "$out/scenarios-$b.txt" 2>/dev/null || true
    rc=0
    if [ -x "$scen" ]; then
        "$KDIR/compare-scenarios.sh" "$b" "$out/scenarios-$b.txt" "$out/scenarios-emulated.txt" > "$out/compare-$b.txt" || rc=$?
        cat "$out/compare-$b.txt" >&2
    else
        say "$scen not built (native build): no comparison"; rc=1
    fi
    compared[$b]=$rc
done

say "---- summary (total $(fmt_secs $(( $(date +%s) - tstart ))); kernel step $(fmt_secs $t_kernel)," \
    "cross build step $(fmt_secs $t_cross), initramfs $((t_init / 1000)).$(printf %03d $((t_init % 1000)))s)"
fail=0
for b in smmuv3 smmuv3-iort; do
    if [ "${result[$b]}" = 0 ]; then
        say "$b boot: PASS (${timing[$b]}; log $out/boot-$b.log)"
    else
        say "$b boot: FAIL, exit ${result[$b]} (${timing[$b]}; log $out/boot-$b.log)"
        fail=1
    fi
    if [ "${compared[$b]}" = 0 ]; then
        say "$b scenarios vs emulated SMMUv3: same ($out/scenarios-$b.txt)"
    elif [ -s "$out/compare-$b.txt" ] && [ -z "$(unexplained $b)" ]; then
        nk=0
        for k in "${KNOWN_DIFFS[@]}"; do grep -qF "$k" "$out/compare-$b.txt" && nk=$((nk + 1)); done
        nv=$(( $(grep -cE '^\[compare [a-z0-9-]+\] (DIFF|NO COUNTERPART)' "$out/compare-$b.txt") - nk ))
        say "$b scenarios vs emulated SMMUv3: no unexplained difference ($nv vIOMMU line(s) without CANWBS," \
            "$nk known emulator divergence(s) listed in run-arm64.sh; see [compare $b] above)"
    else
        say "$b scenarios vs emulated SMMUv3: DIFFERENT (see [compare $b] above; $out/scenarios-$b.txt):"
        unexplained $b | sed 's/^/    /' >&2
        fail=1
    fi
    n=0
    while IFS= read -r line; do
        say "  $b: $line"
        n=$((n + 1))
    done < <(grep -ao 'IFB-RESULT .*' "$out/boot-$b.log" 2>/dev/null | sed 's/^IFB-RESULT //')
    [ $n -gt 0 ] || { say "  $b: no IFB-RESULT lines (the guest script stopped early?)"; fail=1; }
done
exit $fail
