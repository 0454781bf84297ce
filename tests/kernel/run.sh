#!/usr/bin/env bash
# Entry point of `meson test --suite kernel` (Linux 6.12) and `--suite kernel-7.2` (Linux 7.2):
#   tests/kernel/run.sh BUILD_DIR [--kernel-version 6.12|7.2] [--boots "vtd mock"]
#
# Two kernels, one x86 tier: 6.12 (the default), the oldest kernel the broker supports, boots
# "vtd" and "mock"; 7.2 (sid's linux-source-7.2, the source of the arm64 suite's kernel) boots
# "mock-7.2", where the selftest mock has what nests on a NEST_PARENT (vIOMMU, vDEVICE, vEVENTQ:
# 6.13+), and "vtd-7.2" (the VFIO cdev, managed devices and both QEMUs on the newest kernel; ~2
# min once the kernel and the adopting QEMU are cached). --boots (or IFB_KERNEL_BOOTS, which
# wins) picks a run's boots: meson runs the 7.2 ones as two tests of the suite kernel-7.2
# (kernel-7.2: mock, kernel-7.2-vtd: vtd), so that a cold build that cannot fit is a SKIP of its
# test alone (step 0) and the 6.12 boots and the other 7.2 boot still count.
#
# 0. (7.2 only) Budget: when its kernel (or, for a vtd boot, the adopting QEMU) is not cached,
#    the cold cost (the slowest x86 kernel build measured on this machine, else 45 min; 30 min
#    for QEMU; 5 min per boot) is compared with the time left: IFB_KERNEL72_BUDGET_SECS
#    (default 5100, inside the tests' 5400 s meson timeout, CI's whole budget as the kernel
#    suite's; 0: no limit, to fill the cache)
#    and, when set, IFB_CHECK_DEADLINE (epoch seconds by which the whole check must end;
#    tools/check exports it). Over budget: "SKIPPED: ..." with the
#    reason and the command that fills the cache, exit 77 (meson's SKIP).
# 1. build-kernel.sh --version V: the test kernel (installs prerequisites; cached outside the
#    clone, so only the first run on a machine builds it: 6-18 min on 2 cores).
#    1b. (with a vtd boot) the adopting QEMU of contrib/qemu/ (build-qemu.sh, cached likewise).
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
# 4. boot.sh per boot: "vtd" (emulated VT-d + two e1000e, runs guest-vtd.sh) and "mock" (no
#    vIOMMU, the kernel's IOMMUFD selftest mock device, runs guest-mock.sh; told by
#    ifb.viommu_expected whether its kernel has the mock's vIOMMU). All of them always run.
# 5. The ifb-uapi-scenarios lines of each boot compared with the emulated backend's
#    (compare-scenarios.sh); any difference fails the suite. A line the kernel skipped (an
#    ioctl it lacks: the vIOMMU ones before 6.13) is not applicable there, no difference; on
#    7.2 no line may be skipped.
# 6. Summary: each boot's result, the comparison, and the boots' headline lines (IFB-RESULT:
#    the NEST_PARENT outcomes, the cgroups' memory deltas).
#
# Output: BUILD_DIR/tests/kernel/{initramfs-BOOT.cpio,boot-BOOT.log} (uncompressed cpio: boots
# faster), and run[-7.2]-BOOTS/ (this run's libprobe, qmp-call, emulated scenario lines: runs
# may go on side by side). Exit 0 only if every boot passes.
# Env: IFB_KERNEL_CACHE (see build-kernel.sh), IFB_BOOT_TIMEOUT (seconds per boot, default 300;
# a boot that gives no verdict, e.g. a stalled TCG vCPU, is retried once), IFB_KERNEL_BOOTS,
# IFB_KERNEL72_BUDGET_SECS, IFB_CHECK_DEADLINE.
set -euo pipefail
. "$(dirname "$0")/../heavy-gate.sh"
usage() { echo "usage: $0 BUILD_DIR [--kernel-version 6.12|7.2] [--boots 'vtd mock']" >&2; exit 2; }
version=6.12 boots_arg="" builddir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel-version) [ $# -ge 2 ] || usage; version=$2; shift 2 ;;
        --boots) [ $# -ge 2 ] || usage; boots_arg=$2; shift 2 ;;
        -*) usage ;;
        *) [ -z "$builddir" ] || usage; builddir=$1; shift ;;
    esac
done
[ -n "$builddir" ] || usage
case "$version" in
    6.12) suite=kernel; boots=${IFB_KERNEL_BOOTS:-${boots_arg:-vtd mock}}; sfx="" ;;
    7.2)  suite=kernel-7.2; boots=${IFB_KERNEL_BOOTS:-${boots_arg:-mock vtd}}; sfx=-7.2 ;;
    *) echo "--kernel-version must be 6.12 or 7.2, not '$version'" >&2; exit 2 ;;
esac
heavy_gate "$suite" "builds a Linux $version kernel (about 10 minutes the first time) and boots it in QEMU" root
IFB_TAG="$suite ${boots// /+}"
. "$(dirname "$0")/lib.sh"
set -- "$builddir"

build=$(cd "$1" && pwd) || die "BUILD_DIR $1 does not exist"
out=$build/tests/kernel
# what this run builds for itself (the probe, the QMP client, the emulated scenario lines): runs of
# run.sh for other kernels or boots may go on in parallel (meson runs suites side by side)
own=$out/run$sfx-${boots// /-}
mkdir -p "$out" "$own"
tstart=$(date +%s)

# -- 0. budget (7.2): cold builds that cannot end in time are a SKIP saying so
if [ "$version" = 7.2 ]; then
    cost=0; missing=()
    if ! "$KDIR/build-kernel.sh" --version 7.2 --cached >/dev/null 2>&1; then
        # the slowest x86 kernel build measured here (6.12 and 7.2 build about as many objects)
        c=$(cat "${IFB_KERNEL_CACHE:-/var/cache/iommufd-broker/kernel}"/*/info 2>/dev/null |
            sed -n 's/^build_seconds=//p' | sort -n | tail -n 1 || true)
        cwhat="the slowest x86 kernel build measured here"
        [ -n "$c" ] || { c=2700; cwhat="none measured here yet: the slowest seen on a busy 2-core host"; }
        cost=$((cost + c + 60)); missing+=("the Linux 7.2 kernel (~$(fmt_secs $((c + 60))), $cwhat, with the sid download)")
    fi
    # the vtd boot's adopting QEMU (shared with the kernel suite, which builds it as well)
    if [[ " $boots " == *" vtd "* ]] && ! ls "${IFB_QEMU_CACHE:-/var/cache/iommufd-broker/qemu}"/*/qemu-system-x86_64-adopt >/dev/null 2>&1; then
        cost=$((cost + 1800)); missing+=("the adopting QEMU (~30m)")
    fi
    budget=${IFB_KERNEL72_BUDGET_SECS:-5100}
    if [ ${#missing[@]} -gt 0 ] && [ "$budget" != 0 ]; then
        why="the suite's budget (IFB_KERNEL72_BUDGET_SECS=$budget, inside its 5400 s meson timeout)"
        if [ -n "${IFB_CHECK_DEADLINE:-}" ]; then
            left=$(( IFB_CHECK_DEADLINE - $(date +%s) ))
            [ "$left" -ge "$budget" ] || { budget=$((left > 0 ? left : 1)); why="the time left before IFB_CHECK_DEADLINE ($(fmt_secs $((left > 0 ? left : 0))))"; }
        fi
        need=$((cost + 300 * $(wc -w <<<"$boots")))   # the boots, with room for a retry each
        what=${missing[0]}; [ ${#missing[@]} = 1 ] || what="$what and ${missing[1]}"
        say "cold: $what; about $(fmt_secs $need) with the boots; $why"
        if [ $need -gt "$budget" ]; then
            echo "SKIPPED: the Linux 7.2 boots need $what built first, and the boots: about" \
                 "$(fmt_secs $need) in all, more than $why. Fill the cache first, as root:" \
                 "tests/kernel/build-kernel.sh --version 7.2 (or IFB_HEAVY_TESTS=1 IFB_KERNEL72_BUDGET_SECS=0" \
                 "tests/kernel/run.sh $build --kernel-version 7.2)"
            exit 77
        fi
    fi
fi

# -- 1. kernel
t=$(date +%s)
kernel=$("$KDIR/build-kernel.sh" --version "$version") || die "kernel build failed (see above)"
t_kernel=$(( $(date +%s) - t ))
say "kernel: $kernel ($(fmt_secs $t_kernel))"

# -- 1b. the adopting QEMU of contrib/qemu/ for guest-adopt.sh (build-qemu.sh; cached like the kernel)
adopt_qemu=""
if [[ " $boots " == *" vtd "* ]]; then
    t=$(date +%s)
    adopt_qemu=$("$KDIR/build-qemu.sh" | tail -n 1) || die "building the adopting QEMU failed (see above)"
    say "adopting QEMU: $adopt_qemu ($(fmt_secs $(( $(date +%s) - t ))))"
fi

# -- 2. libprobe
pkgs="glib-2.0 json-c libsystemd libvirt libvirt-glib-1.0 libxml-2.0"
flags=$(pkg-config --cflags --libs $pkgs) ||
    die "pkg-config cannot find the broker's libraries ($pkgs): run 'tools/install-deps build'"
gcc -O1 -Wall -Werror -o "$own/libprobe" "$KDIR/libprobe.c" $flags || die "building libprobe failed"
gcc -O1 -Wall -Wextra -Werror -o "$own/qmp-call" "$KDIR/qmp-call.c" || die "building qmp-call failed"

# -- 3. initramfs
bins=("$own/libprobe")
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
vtdargs=(--bin "$qemu" --bin "$own/qmp-call"
         --file /usr/share/seabios/bios-256k.bin:/usr/share/seabios/bios-256k.bin
         --file /usr/share/qemu/kvmvapic.bin:/usr/share/qemu/kvmvapic.bin)
[ -z "$adopt_qemu" ] || vtdargs+=(--bin "$adopt_qemu")   # qemu-system-x86_64-adopt: Debian's firmware paths, the same files

declare -A result=() timing=()
names=()
for boot in $boots; do
    case $boot in vtd|mock) ;; *) die "IFB_KERNEL_BOOTS: '$boot' is no boot (vtd, mock)" ;; esac
    name=$boot$sfx; names+=("$name")
    viommu=$boot; [ $boot = mock ] && viommu=none
    t=$(date +%s%N)
    bootargs=(); append=""
    [ $boot = vtd ] && bootargs=("${vtdargs[@]}")
    # the mock's vIOMMU arrived in 6.13: the guest script fails the outcome it was not told of
    if [ $boot = mock ]; then
        if [ "$version" = 6.12 ]; then append="ifb.viommu_expected=no"; else append="ifb.viommu_expected=yes"; fi
    fi
    "$KDIR/mkinitramfs.sh" "$out/initramfs-$name.cpio" "${binargs[@]}" "${bootargs[@]}" \
        --init "$KDIR/guest-$boot.sh" ||
        die "mkinitramfs for the $name boot failed"
    t_init=$(( ($(date +%s%N) - t) / 1000000 ))

    # -- 4. boot (once more when it gave no verdict: timeout, panic, no marker)
    t=$(date +%s%N)
    for attempt in 1 2; do
        rc=0
        "$KDIR/boot.sh" --kernel "$kernel" --initrd "$out/initramfs-$name.cpio" --viommu "$viommu" --name "$name" \
            ${append:+--append "$append"} --timeout "${IFB_BOOT_TIMEOUT:-300}" --log "$out/boot-$name.log" || rc=$?
        [ $rc = 124 ] && [ $attempt = 1 ] || break
        cp "$out/boot-$name.log" "$out/boot-$name.attempt1.log"
        say "$name boot gave no verdict (log kept as boot-$name.attempt1.log): booting once more"
    done
    t_boot=$(( ($(date +%s%N) - t) / 1000000 ))
    result[$name]=$rc
    timing[$name]="initramfs $((t_init / 1000)).$(printf %03d $((t_init % 1000)))s, boot+run $((t_boot / 1000)).$(printf %03d $((t_boot % 1000)))s"
done

# -- 5. the kernel's scenario lines against the emulated backend's, line by line (on 7.2 the
# kernel has every ioctl the list uses: a skipped line is a difference there)
declare -A compared=()
scen=$build/tests/uapi/ifb-uapi-scenarios
"$scen" --backend emulated --template "$REPO/tests/fixtures/emulated" > "$own/scenarios-emulated.txt" 2>&1 || true
for name in "${names[@]}"; do
    sed -n 's/^\[guest\]   | \(scenario .*\)$/\1/p' "$out/boot-$name.log" > "$out/scenarios-$name.txt" 2>/dev/null || true
    rc=0
    "$KDIR/compare-scenarios.sh" "$name" "$out/scenarios-$name.txt" "$own/scenarios-emulated.txt" \
        $([ "$version" = 6.12 ] || echo --no-skips) >&2 || rc=$?
    compared[$name]=$rc
done

say "---- summary, Linux $version (total $(fmt_secs $(( $(date +%s) - tstart ))), kernel step $(fmt_secs $t_kernel))"
fail=0
for boot in "${names[@]}"; do
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
