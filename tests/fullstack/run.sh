#!/usr/bin/env bash
# Entry point of `meson test --suite fullstack` (tests/fullstack/README.md):
#   tests/fullstack/run.sh BUILD_DIR [deb12|deb13]...      (default: both)
#
# For each platform: the project's kernel (tests/kernel/build-kernel.sh, shared with the kernel
# tier), the package (build-deb.sh), the root file system (mkrootfs.sh), a test disk with the
# package, the README's domain XML and wrapper and guest.sh, then one boot under QEMU/TCG:
# q35 with an emulated VT-d and two e1000e, systemd as PID 1. The guest prints one
# "IFB-FULLSTACK step=..." line per step; they are repeated in the summary.
#
# Cold caches take long (kernel ~10-20 min, each root file system and the Debian 13 chroot a few
# minutes, see README.md). IFB_FULLSTACK_DEADLINE (seconds since the epoch, tools/check sets it
# from CI's 90 minutes) is when the tier must be done: when what is missing from the caches
# cannot be built by then, it prints SKIPPED with what is missing and exits 77.
# Env: IFB_FULLSTACK_CACHE, IFB_FULLSTACK_TIMEOUT (seconds per boot, default 1500),
#      IFB_FULLSTACK_PLATFORMS (default "deb12 deb13").
set -euo pipefail
. "$(dirname "$0")/../heavy-gate.sh"
heavy_gate fullstack "builds a kernel, two Debian root file systems and the package, and boots them in QEMU (cold: about 45 minutes; warm: about 10)" root
IFB_TAG=fullstack
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [deb12|deb13]..." >&2; exit 2; }
build=$(cd "$1" && pwd) || die "BUILD_DIR $1 does not exist"
shift
platforms=${*:-${IFB_FULLSTACK_PLATFORMS:-$PLATFORMS}}
out=$build/tests/fullstack
mkdir -p "$out"
tstart=$(date +%s)

for t in mmdebstrap mkfs.ext4 debugfs qemu-system-x86_64 dpkg-buildpackage unshare; do
    command -v "$t" >/dev/null || {
        [ "$(id -u)" = 0 ] && "$REPO/tools/install-deps" fullstack package >&2 && command -v "$t" >/dev/null ||
            die "$t missing: tools/install-deps fullstack"
    }
done

# ---- what a cold run would build, against the deadline -----------------------------------------
# Measured on the 2-core CI host (README.md): seconds per missing cache.
cost_kernel=2800 cost_deb12=200 cost_deb13=620 cost_rootfs=240 cost_boot=540
missing=()
cost=0
"$KDIR/build-kernel.sh" --check 2>/dev/null || { missing+=("kernel"); cost=$((cost + cost_kernel)); }
for p in $platforms; do
    "$FDIR/build-deb.sh" --check "$p" 2>/dev/null || { missing+=("$p package"); c=cost_$p; cost=$((cost + ${!c})); }
    ls -d "$FS_CACHE"/rootfs/"$p"-* >/dev/null 2>&1 || { missing+=("$p root file system"); cost=$((cost + cost_rootfs)); }
    cost=$((cost + cost_boot))
done
if [ -n "${IFB_FULLSTACK_DEADLINE:-}" ]; then
    left=$(( IFB_FULLSTACK_DEADLINE - $(date +%s) ))
    if [ ${#missing[@]} -gt 0 ] && [ $cost -gt $left ]; then
        echo "SKIPPED: the fullstack tier needs $(fmt_secs $cost) here (to build: ${missing[*]}; then the boots) but CI has $(fmt_secs $(( left > 0 ? left : 0 ))) left."
        echo "SKIPPED: run it alone to fill the caches: meson test -C $build --suite fullstack -v"
        exit 77
    fi
fi
[ ${#missing[@]} -eq 0 ] || say "cold caches: ${missing[*]} (about $(fmt_secs $cost) with the boots)"

# ---- the kernel, shared with the kernel tier ----------------------------------------------------
t=$(date +%s)
kernel=$("$KDIR/build-kernel.sh") || die "kernel build failed (see above)"
t_kernel=$(( $(date +%s) - t ))
say "kernel: $kernel ($(fmt_secs $t_kernel))"

# ---- the README's domain XML and wrapper, as the README has them --------------------------------
readme=$out/readme
mkdir -p "$readme"
"$FDIR/readme-example.sh" extract "$REPO/README.md" "$readme" || die "cannot extract the libvirt example from README.md"

declare -A result=() times=()
for p in $platforms; do
    say "==== $p"
    t=$(date +%s)
    debdir=$("$FDIR/build-deb.sh" "$p") || die "$p: building the package failed (see above)"
    t_deb=$(( $(date +%s) - t ))
    deb=$(ls "$debdir"/iommufd-broker_*.deb)
    t=$(date +%s)
    rootfs=$("$FDIR/mkrootfs.sh" "$p" "$deb") || die "$p: making the root file system failed (see above)"
    t_rootfs=$(( $(date +%s) - t ))

    # the test disk: the package, its upgrade, the README's example, the guest script
    t=$(date +%s)
    stage=$out/$p/disk
    rm -rf "$out/$p"
    mkdir -p "$stage/debs/newer" "$stage/readme"
    cp "$deb" "$stage/debs/"
    cp "$debdir"/newer/*.deb "$stage/debs/newer/"
    cp "$readme"/* "$stage/readme/"
    cp "$FDIR/guest.sh" "$stage/guest.sh"
    echo "platform=$p" > "$stage/env"
    mkfs.ext4 -q -F -L ifbtest -d "$stage" "$out/$p/test.ext4" 256M
    log=$out/$p/console.log
    qemu=(qemu-system-x86_64 -nodefaults -machine q35,accel=tcg,kernel-irqchip=split -cpu max -smp 2 -m 2048
          -device intel-iommu,intremap=on,x-scalable-mode=on
          -device e1000e,addr=0x3 -device e1000e,addr=0x4
          -drive "file=$rootfs,format=raw,if=none,id=root,snapshot=on,cache=unsafe" -device virtio-blk-pci,drive=root,addr=0x5
          -drive "file=$out/$p/test.ext4,format=raw,if=none,id=test,cache=unsafe" -device virtio-blk-pci,drive=test,addr=0x6
          -kernel "$kernel"
          -append "root=/dev/vda rw console=ttyS0 loglevel=4 panic=-1 systemd.show_status=error"
          -serial stdio -display none -no-reboot
          -qmp "unix:$out/$p/qmp.sock,server=on,wait=off")
    say "$p: ${qemu[*]}"
    say "$p: booting (console: $log)"
    set +e
    timeout -k 10 "${IFB_FULLSTACK_TIMEOUT:-1500}" nice -n 5 "${qemu[@]}" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$log" |
        grep --line-buffered -aE 'IFB-|^    \||Kernel panic|Freezing|emergency' | sed -u "s/^/[$p] /"
    qrc=${PIPESTATUS[0]}
    set -e
    t_boot=$(( $(date +%s) - t ))
    # the guest's logs, its journal and QEMU's logs from the test disk
    debugfs -R "rdump /out $out/$p" "$out/$p/test.ext4" >/dev/null 2>&1 || true
    marker=$(grep -aoE 'IFB-GUEST-EXIT=[0-9]+' "$log" | tail -n1 | cut -d= -f2 || true)
    check=$(cat "$debdir/check")
    [ "$check" = ok ] || say "$p: the package's own build check failed: $check"
    if [ -z "$marker" ]; then
        result[$p]="FAIL: no verdict from the guest (QEMU exit $qrc; see $log)"
    elif [ "$marker" = 0 ] && [ "$check" = ok ]; then
        result[$p]=PASS
    else
        result[$p]="FAIL: $marker step(s) failed${check:+$( [ "$check" = ok ] || echo "; package build: $check")}"
    fi
    times[$p]="package $(fmt_secs $t_deb), root file system $(fmt_secs $t_rootfs), boot+steps $(fmt_secs $t_boot)"
done

say "---- summary (total $(fmt_secs $(( $(date +%s) - tstart ))), kernel $(fmt_secs $t_kernel))"
fail=0
for p in $platforms; do
    say "$p: ${result[$p]} (${times[$p]})"
    say "  $p versions: $(tr '\n' ' ' < "$(dirname "$(ls "$FS_CACHE"/rootfs/$p-*/rootfs.ext4 | head -n1)")/versions")"
    grep -aoE 'IFB-FULLSTACK (step=|note=|summary).*' "$out/$p/console.log" | sed "s/^/  $p: /" >&2 || true
    [ "${result[$p]}" = PASS ] || fail=1
done
exit $fail
