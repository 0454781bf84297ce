#!/bin/sh
# Runs inside the "vtd" boot (emulated Intel VT-d + two e1000e); see tests/kernel/run.sh.
# Proves the platform, runs the uAPI scenarios on the real kernel, then the broker (daemon + CLI
# on the kernel backend): real hw info; with the bound hand-off the NEST_PARENT refusal (QEMU's
# VT-d cannot nest), a plain HWPT with allow_plain, a VMM stand-in mapping 512 MiB through the
# fds it received, and the accounting proof (the second device's HWPT page tables charged to the
# guest's cgroup, not to the daemon's); then Debian's unmodified QEMU realizing vfio-pci, alone
# and through the broker's unbound hand-off (twice for one guest, nothing left pinned;
# guest-qemu.sh); and a managed device: the second NIC, booted on e1000e, taken onto vfio-pci by
# the broker, realized by QEMU, and back on e1000e with its netdev after vm destroy
# (guest-managed.sh). Add steps with `step NAME CMD...` (`need` for prerequisites; guest-lib.sh).
. /ifb/guest-lib.sh
note "vtd boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
need dev-iommu        need_char_dev /dev/iommu
need dev-iommu-open   open_rw /dev/iommu
need vtd-present      sh -c 'ls /sys/class/iommu/ | grep -q dmar && ls -l /sys/class/iommu/ && dmesg | grep -iE "DMAR|IOMMU|x2apic|remapping" | head -n 12'
need find-e1000e      find_pci_all 0x8086 0x10d3 2
set -- $PCI_BDFS
BDF1=$1 BDF2=$2
need iommu-groups     sh -c "for b in $BDF1 $BDF2; do echo \$b: group \$(basename \$(readlink /sys/bus/pci/devices/\$b/iommu_group)); done"
# The first NIC goes to vfio-pci by hand; the second stays on e1000e, where it booted, for the
# broker to take managed (guest-managed.sh) before the steps that need it on vfio-pci.
need bind-vfio-pci-1  bind_vfio "$BDF1"
need vfio-cdevs       sh -c 'for n in 0; do i=0; while [ ! -c /dev/vfio/devices/vfio$n ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done; ls -l /dev/vfio/devices/vfio$n || exit 1; done'
need vfio-cdev-sysfs  sh -c "ls /sys/bus/pci/devices/$BDF1/vfio-dev/"
need vfio-cdev-open   open_rw /dev/vfio/devices/vfio0
need cgroup-memory    cg_setup

# ---- broker runtime and the uAPI scenarios ------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
need uapi-scenarios   ifb-uapi-scenarios --backend kernel --dev-root /dev --device vfio0

# ---- the broker on the kernel backend -----------------------------------------------------
# Workers get a generous timeout: under TCG filling a HWPT over 512 MiB takes a while.
# The second NIC is offered for managed use; under TCG a driver's probe takes a while.
printf '[broker]\nworker-timeout-ms=120000\n[devices]\nallow=%s\nbind-timeout-ms=60000\n' "$BDF2" > /tmp/broker.conf
need daemon-start     daemon_start --config /tmp/broker.conf
. /ifb/guest-qemu.sh
. /ifb/guest-managed.sh   # e1000e -> vfio-pci (the broker) -> QEMU -> e1000e, on the second NIC
need bind-vfio-pci-2  bind_vfio "$BDF2"
need vfio-cdev-sysfs-2 sh -c "ls /sys/bus/pci/devices/$BDF2/vfio-dev/"
step cli-status       ctl status
step cli-devices      sh -c "iommufdctl devices && for b in $BDF1 $BDF2; do iommufdctl devices | grep \"^\$b .*vfio-pci .*intel-vtd\" || { echo \"\$b not listed with its VT-d hw info\"; exit 1; }; done"
step device-list-hw   sh -c "iommufdctl --json devices | tr -d '\n ' | grep -o '\"device\":\"$BDF1\"[^]]*}' | head -c 600; echo"

# NEST_PARENT: QEMU's VT-d has no nesting (ecap NEST=0), so the broker must refuse clearly.
step vm-create-nest   ctl vm create nest --cgroup /guest --handoff bound
step nest-refused     refused nest-unsupported ctl vm attach nest "$BDF1"
step nest-refused-eopnotsupp sh -c "grep -q 'Operation not supported' /tmp/ifb-refused.out && echo \"IFB-RESULT vtd NEST_PARENT: refused: \$(cat /tmp/ifb-refused.out)\""
# The selftest device kind: this kernel has IOMMUFD_TEST, but the config does not allow it.
step selftest-refused refused unavailable ctl vm attach nest selftest:0
step vm-destroy-nest  ctl vm destroy nest

# allow_plain: the same device gets a plain HWPT instead.
step vm-create-plain  ctl vm create plain --cgroup /guest --handoff bound --allow-plain
step attach-plain     ctl vm attach plain "$BDF1"
plain_hwpt() {
    ctl vm show plain
    ctl --json vm show plain > /tmp/plain.json || return 1
    grep -q '"hwpt_kind": *"plain"' /tmp/plain.json || { fail "no plain HWPT in vm show"; return 1; }
    result "vtd allow_plain: $BDF1 attached with plain HWPT $(json_int hwpt_id < /tmp/plain.json) (NEST_PARENT refused, allow_plain given)"
}
step vm-show-plain    plain_hwpt

# The VMM stand-in, inside the guest's cgroup: receives the fds (vm.fds) and maps 512 MiB into
# the guest's IOAS through them; it holds the mapping while the broker works. 512 MiB rather
# than 256: the new HWPT's tables (~1 MiB) then dwarf memcg's 256 KiB charge batches.
step vmm-map-512MiB   vmm_start plain --map 536870912 --hold 600
step vmm-mapped       sh -c "echo '$VMM_JSON' | grep -q '\"mapped_bytes\": *536870912' && echo \"IFB-RESULT vtd VMM: vm.fds -> IOMMU_IOAS_MAP of 512 MiB through the received iommufd: ok\""

# Accounting: attaching the second device makes the broker's worker (in /guest) allocate a HWPT
# over the 512 MiB already mapped; its page tables must be charged to /guest, not /daemon.
step accounting       charged_attach plain "$BDF2" 512
step vm-show-after    ctl vm show plain
step vmm-stop         vmm_stop
step vm-destroy-plain ctl vm destroy plain

# ---- Debian's unmodified QEMU on a vfio-pci device (nested TCG, paused L2 machine) ---------
# The control, without the broker: the shell hands QEMU /dev/iommu and the first NIC's cdev as
# fds 3 and 4 with the -object/-device lines the broker's hand-off produces. QEMU binds the
# device, allocates its IOAS and HWPT and maps (pins) the L2 guest's 256 MiB; all of it goes when
# QEMU exits and closes the fds.
. /ifb/guest-qemu.sh
need qemu-version     qemu-system-x86_64 --version
step qemu-direct-mem0 mem_avail MD0
step qemu-direct      qemu_direct "$BDF1"
step qemu-direct-pci  qemu_realized hostnic "vtd QEMU alone (fds from the shell)"
step qemu-direct-mem1 mem_avail MD1
step qemu-direct-quit qemu_quit
step qemu-direct-mem2 mem_avail MD2
step qemu-direct-memory mem_compare "vtd QEMU alone" MD0 MD1 MD2

# The broker's unbound hand-off (the default) to the same QEMU, as the README's quickstart:
# `iommufdctl exec --vm q1` started inside the guest's cgroup. Twice for one guest: when QEMU
# exits the broker replaces the guest's context, so nothing QEMU allocated stays pinned and the
# next launch gets the device again without `vm destroy`.
step vm-create-q1     ctl vm create q1 --cgroup /guest
step q1-unbound       sh -c 'iommufdctl --json vm show q1 | grep "\"handoff\"" | grep -q "\"unbound\"" && echo "q1: handoff unbound (the default)"'
step attach-q1        ctl vm attach q1 "$BDF1"
step broker-mem0      mem_avail MB0
step broker-qemu-1    qemu_broker q1 "$BDF1" qemu-broker-1
step broker-qemu-1-pci qemu_realized hostnic "vtd broker unbound, QEMU run 1 (iommufdctl exec, fds from vm.fds)"
step broker-mem1      mem_avail MB1
one_vmm() {
    if iommufdctl exec --vm q1 -- true >/tmp/busy.out 2>&1; then
        cat /tmp/busy.out; fail "a second launcher got q1's fds while QEMU $QEMU_PID holds them"; return 1
    fi
    cat /tmp/busy.out
    grep -q "held by process $QEMU_PID" /tmp/busy.out || { fail "refused, but not naming QEMU's pid $QEMU_PID"; return 1; }
}
step broker-one-vmm   one_vmm
step broker-qemu-1-quit qemu_quit
step broker-reclaim-1 vm_reclaimed q1 1
step broker-mem2      mem_avail MB2
step broker-memory    mem_compare "vtd broker unbound, QEMU run 1" MB0 MB1 MB2
step broker-qemu-2    qemu_broker q1 "$BDF1" qemu-broker-2
step broker-qemu-2-pci qemu_realized hostnic "vtd broker unbound, QEMU run 2 (same guest, no vm destroy)"
step broker-qemu-2-quit qemu_quit
step broker-reclaim-2 vm_reclaimed q1 2
# No broker ids exist for an unbound guest: %{devid:...} is refused, naming --handoff bound.
devid_refused() {
    if iommufdctl exec --vm q1 -- true "%{devid:$BDF1}" >/tmp/devid.out 2>&1; then
        cat /tmp/devid.out; fail "%{devid:$BDF1} was accepted for an unbound guest"; return 1
    fi
    cat /tmp/devid.out
    grep -q 'unbound hand-off' /tmp/devid.out && grep -q -- '--handoff bound' /tmp/devid.out ||
        { fail "refused, but without naming the hand-off"; return 1; }
    result "vtd unbound %{devid:BDF} refused: $(cat /tmp/devid.out)"
}
step devid-refused    devid_refused
step vm-destroy-q1    ctl vm destroy q1
. /ifb/guest-adopt.sh   # the bound hand-off to the adopting QEMU of contrib/qemu/
step daemon-stop      daemon_stop

finish
