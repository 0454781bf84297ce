#!/usr/bin/env bash
# Boot the test kernel + initramfs in QEMU/TCG and return the guest script's exit status.
#
#   tests/kernel/boot.sh --kernel bzImage --initrd initramfs.cpio.gz
#                        [--viommu vtd|none|smmuv3] [--bios FIRMWARE] [--timeout SECONDS]
#                        [--log FILE] [--append "KERNEL ARGS"] [--qemu-arg ARG]... [--name NAME]
#
# The QEMU command line (no KVM on the hosts this runs on, so TCG):
#
#   qemu-system-x86_64 -nodefaults -machine q35,accel=tcg -cpu max -smp 2 -m 1024 \
#       [vtd:  -device intel-iommu,intremap=on,x-scalable-mode=on -device e1000e -device e1000e] \
#       -kernel bzImage -initrd initramfs.cpio.gz \
#       -append "console=ttyS0 loglevel=4 panic=-1 ifb.viommu=<vtd|none> [--append args]" \
#       -serial stdio -display none -no-reboot
#
#   --viommu vtd   emulated Intel VT-d (scalable mode, interrupt remapping) and two e1000e NICs
#                  behind it (each in its own IOMMU group), which the guest binds to vfio-pci
#                  (the default). Two, so a guest can get a second device while memory is mapped.
#   --viommu none  no vIOMMU and no NIC: the kernel's IOMMUFD selftest mock device only works
#                  on x86 when no Intel/AMD IOMMU is present.
#   --viommu smmuv3  an arm64 guest (--kernel is an arm64 Image):
#                  qemu-system-aarch64 -machine virt,iommu=smmuv3,gic-version=3 -cpu max with two
#                  e1000e behind the SMMUv3, console=ttyAMA0. virt >= 9.2 gives the SMMUv3 both
#                  stages (what NEST_PARENT needs); GICv3 gives its ITS, i.e. isolated MSIs, without
#                  which VFIO_DEVICE_BIND_IOMMUFD fails with EPERM.
#   --bios FW      boot through this UEFI firmware (-bios; smmuv3 only: QEMU_EFI.fd of
#                  qemu-efi-aarch64). The kernel then boots as an EFI application and gets QEMU's
#                  ACPI tables (a direct boot gets a device tree only); acpi=force is appended.
#   loglevel=4 keeps the kernel's boot chatter off the console (it stays in the guest's dmesg);
#   --append loglevel=8 brings it back.
#   q35's kernel-irqchip=split is not needed (and means nothing) under TCG: QEMU 10 accepts
#   intremap=on with accel=tcg as is.
#
# The serial console goes to --log (default: ./boot-<name>.log) and to stdout, each line
# prefixed with "[guest-<name>] " (--name defaults to the --viommu value). The guest /init
# prints IFB-GUEST-EXIT=<n> when its script ends and powers off; boot.sh exits with <n>. A panic
# (panic=-1 + -no-reboot ends QEMU), a missing marker or the timeout (default 300 s) exit 124
# ("no verdict") with a message saying which: run.sh boots once more then (TCG under a loaded
# host has been seen to stall a vCPU for good: RCU stall reports, then nothing).
set -euo pipefail
IFB_TAG=boot
. "$(dirname "$0")/lib.sh"

usage() {
    echo "usage: $0 --kernel bzImage --initrd X [--viommu vtd|none] [--timeout S] [--log FILE] [--append ARGS] [--qemu-arg ARG]... [--name NAME]" >&2
    exit 2
}
kernel=""; initrd=""; viommu=vtd; timeout=300; log=""; append=""; extra=(); name=""; bios=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel)   [ $# -ge 2 ] || usage; kernel=$2; shift 2 ;;
        --initrd)   [ $# -ge 2 ] || usage; initrd=$2; shift 2 ;;
        --viommu)   [ $# -ge 2 ] || usage; viommu=$2; shift 2 ;;
        --bios)     [ $# -ge 2 ] || usage; bios=$2; shift 2 ;;
        --timeout)  [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
        --log)      [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
        --append)   [ $# -ge 2 ] || usage; append=$2; shift 2 ;;
        --qemu-arg) [ $# -ge 2 ] || usage; extra+=("$2"); shift 2 ;;
        --name)     [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
        -h|--help)  usage ;;
        *) usage ;;
    esac
done
[ -n "$kernel" ] && [ -n "$initrd" ] || usage
[ -f "$kernel" ] || die "--kernel $kernel: no such file"
[ -f "$initrd" ] || die "--initrd $initrd: no such file"
case "$viommu" in vtd|none|smmuv3) ;; *) die "--viommu must be vtd, none or smmuv3, not '$viommu'" ;; esac
[ -z "$bios" ] || [ "$viommu" = smmuv3 ] || die "--bios is for --viommu smmuv3 only"
[ -z "$bios" ] || [ -f "$bios" ] || die "--bios $bios: no such file (tools/install-deps arm64)"
if [ "$viommu" = smmuv3 ]; then
    command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 missing (tools/install-deps arm64)"
else
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (tools/install-deps kernel)"
fi
[ -n "$name" ] || name=$viommu
[ -n "$log" ] || log=$PWD/boot-$name.log
mkdir -p "$(dirname "$log")"

console=ttyS0
if [ "$viommu" = smmuv3 ]; then
    qemu=(qemu-system-aarch64 -nodefaults -machine virt,accel=tcg,iommu=smmuv3,gic-version=3
          -cpu max -smp 2 -m 1024 -device e1000e -device e1000e)
    console=ttyAMA0
    if [ -n "$bios" ]; then
        qemu+=(-bios "$bios")
        append="acpi=force${append:+ $append}"
    fi
else
    qemu=(qemu-system-x86_64 -nodefaults -machine q35,accel=tcg -cpu max -smp 2 -m 1024)
fi
if [ "$viommu" = vtd ]; then
    qemu+=(-device intel-iommu,intremap=on,x-scalable-mode=on -device e1000e -device e1000e)
fi
qemu+=(-kernel "$kernel" -initrd "$initrd"
       -append "console=$console loglevel=4 panic=-1 ifb.viommu=$viommu${append:+ $append}"
       -serial stdio -display none -no-reboot)
qemu+=("${extra[@]}")

tag="guest-$name"
say "$tag: ${qemu[*]}"
say "$tag: console log: $log (timeout ${timeout}s)"
t0=$(date +%s%N)
set +e
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null 2>&1 |
    tr -d '\r' | tee "$log" | sed -u "s/^/[$tag] /"
st=("${PIPESTATUS[@]}")
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wall=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
qrc=${st[0]}

start_up=$(grep -ao 'IFB-GUEST-START uptime=[0-9.]*' "$log" | head -n1 | cut -d= -f2 || true)
end_up=$(grep -ao 'IFB-GUEST-END uptime=[0-9.]*' "$log" | tail -n1 | cut -d= -f2 || true)
marker=$(grep -aoE 'IFB-GUEST-EXIT=[0-9]+' "$log" | tail -n1 | cut -d= -f2 || true)
timing="wall ${wall}s; guest uptime at /init ${start_up:-?}s, at script end ${end_up:-?}s"

if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    say "$tag: FAILED: timed out after ${timeout}s (QEMU killed; ${marker:+marker $marker seen, }see $log)"
    grep -aq 'rcu_sched detected stalls' "$log" && say "$tag: the guest reported RCU stalls (a stuck vCPU)"
    exit 124
fi
if [ -z "$marker" ]; then
    if grep -aq 'Kernel panic' "$log"; then
        say "$tag: FAILED: guest kernel panicked before the script finished ($timing):"
        grep -a -A3 'Kernel panic' "$log" | sed 's/^/    /' >&2
    else
        say "$tag: FAILED: QEMU exited $qrc without an IFB-GUEST-EXIT marker ($timing); see $log"
    fi
    exit 124
fi
[ "$qrc" = 0 ] || say "$tag: note: QEMU itself exited $qrc"
if [ "$marker" = 0 ]; then
    say "$tag: guest script passed (IFB-GUEST-EXIT=0); $timing"
else
    say "$tag: FAILED: guest script exited $marker; $timing"
fi
exit "$marker"
