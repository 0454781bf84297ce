#!/bin/sh
# Runs inside the arm64 boots (QEMU virt with an SMMUv3 and two e1000e, Linux 7.2, booted through
# UEFI so the kernel gets ACPI tables); see tests/kernel/run-arm64.sh. The kernel command line's
# ifb.firmware says which:
#   acpi       QEMU's own IORT: its root complex is not coherent (memory flags 0x3, no CANWBS).
#              The IORT is dumped (IFB-IORT lines) for run-arm64.sh to make the override from.
#   acpi-iort  the same with the IORT override from the initramfs (CANWBS set, OEM revision + 1).
# Both: the platform (SMMUv3 with both stages, e1000e on vfio-pci, cgroup2 memory), the uAPI
# scenarios on the real arm-smmu-v3 driver, then the broker on the kernel backend in /daemon:
# a bound guest in /guest whose NEST_PARENT HWPT the broker's worker allocates through the
# unmodified driver (vm show says so), a VMM stand-in mapping 512 MiB through the fds it got,
# and the second device's HWPT charged to /guest, not /daemon. A guest asking for a vIOMMU
# (--viommu arm-smmuv3): without the override the broker refuses, naming why; with it the
# worker allocates the vIOMMU and a vDEVICE per device in /guest.
. /ifb/guest-lib.sh
FW=${IFB_FIRMWARE:-acpi}
B=smmuv3; [ "$FW" = acpi-iort ] && B=smmuv3-iort
note "$B boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}, firmware $FW"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
need dev-iommu        need_char_dev /dev/iommu
need dev-iommu-open   open_rw /dev/iommu
need smmuv3-present   sh -c 'ls /sys/class/iommu/ | grep -q smmu3 && ls -l /sys/class/iommu/ && dmesg | grep -iE "smmu|iort" | head -n 12'
need acpi-iort        sh -c 'ls -l /sys/firmware/acpi/tables/IORT && echo "IORT OEM revision $(hexdump -s 24 -n 4 -e "1/4 \"%u\"" /sys/firmware/acpi/tables/IORT)"'
# run-arm64.sh makes the override from this dump (only the first boot needs it; cheap anyway)
step iort-dump        sh -c 'hexdump -v -e "32/1 \"%02x\" \"\n\"" /sys/firmware/acpi/tables/IORT | sed "s/^/IFB-IORT /"'
iort_override() {
    dmesg | grep -i 'table upgrade' || true
    if [ "$FW" = acpi-iort ]; then
        dmesg | grep -qi 'Table Upgrade: override \[IORT' || { fail "the initramfs IORT was not taken"; return 1; }
    else
        ! dmesg | grep -qi 'Table Upgrade: override \[IORT' || { fail "an IORT override in a boot without one"; return 1; }
        echo "QEMU's own IORT"
    fi
}
need iort-override    iort_override
need find-e1000e      find_pci_all 0x8086 0x10d3 2
set -- $PCI_BDFS
BDF1=$1 BDF2=$2
need iommu-groups     sh -c "for b in $BDF1 $BDF2; do echo \$b: group \$(basename \$(readlink /sys/bus/pci/devices/\$b/iommu_group)); done"
need bind-vfio-pci-1  bind_vfio "$BDF1"
need bind-vfio-pci-2  bind_vfio "$BDF2"
need vfio-cdevs       sh -c 'for n in 0 1; do i=0; while [ ! -c /dev/vfio/devices/vfio$n ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done; ls -l /dev/vfio/devices/vfio$n || exit 1; done'
need vfio-cdev-open   open_rw /dev/vfio/devices/vfio0
need cgroup-memory    cg_setup

# ---- the uAPI scenarios on the real driver ------------------------------------------------
# The lines are judged on the host (run-arm64.sh compares them with the emulator's, knowing
# which differ by design without CANWBS); here the step only needs the list to have run.
scenarios() {
    ifb-uapi-scenarios --backend kernel --dev-root /dev --device vfio0 > /tmp/scenarios.out 2>&1
    _rc=$?
    cat /tmp/scenarios.out
    echo "(ifb-uapi-scenarios exited $_rc; run-arm64.sh compares these lines with the emulated backend's)"
    grep -q '^scenario get_hw_info@arm-smmuv3' /tmp/scenarios.out
}
step uapi-scenarios   scenarios

# ---- the broker on the kernel backend -----------------------------------------------------
printf '[broker]\nworker-timeout-ms=120000\n' > /tmp/broker.conf
need daemon-start     daemon_start --config /tmp/broker.conf
step cli-status       ctl status
step cli-devices      sh -c "iommufdctl devices && for b in $BDF1 $BDF2; do iommufdctl devices | grep \"^\$b .*vfio-pci .*arm-smmuv3\" || { echo \"\$b not listed with its SMMUv3 hw info\"; exit 1; }; done"
step device-hw-info   sh -c "iommufdctl --json devices | tr -d '\n ' | grep -o '\"device\":\"$BDF1\"[^]]*}' | head -c 700; echo"

# A guest asking for a vIOMMU: refused by name without a coherent root complex (QEMU's IORT);
# made by the worker with the override.
if [ "$FW" = acpi-iort ]; then
    VIOMMU_ARGS="--viommu arm-smmuv3 --veventq-depth 16"
    VID1="--virt-id 1" VID2="--virt-id 2"
else
    VIOMMU_ARGS="" VID1="" VID2=""
    step vm-create-vi   ctl vm create vi --cgroup /guest --handoff bound --viommu arm-smmuv3
    viommu_refused() {
        refused nest-unsupported ctl vm attach vi "$BDF1" --virt-id 1 || return 1
        grep -q 'not coherent' /tmp/ifb-refused.out || { fail "refused, but not naming the root complex's coherency"; return 1; }
        ctl vm show vi
        ctl vm show vi | grep -q '^vIOMMU: .*id 0 on HWPT 0 ' || { fail "a refused attach left a vIOMMU"; return 1; }
        result "$B vIOMMU without a coherent root complex: refused: $(cat /tmp/ifb-refused.out)"
    }
    step viommu-refused viommu_refused
    step vm-destroy-vi  ctl vm destroy vi
fi

step vm-create-nest   ctl vm create nest --cgroup /guest --handoff bound $VIOMMU_ARGS
step attach-nest      ctl vm attach nest "$BDF1" $VID1
nest_parent_hwpt() {
    ctl vm show nest
    ctl --json vm show nest > /tmp/nest.json || return 1
    grep -q '"hwpt_kind": *"nest-parent"' /tmp/nest.json || { fail "no NEST_PARENT HWPT in vm show"; return 1; }
    ctl vm show nest | grep -E "^$BDF1 .*nest-parent.*/guest" || { fail "vm show does not say $BDF1's NEST_PARENT was allocated in /guest"; return 1; }
    result "$B NEST_PARENT: the broker's worker allocated NEST_PARENT HWPT $(json_int hwpt_id < /tmp/nest.json) for $BDF1 (dev_id $(json_int dev_id < /tmp/nest.json)) through arm-smmu-v3 in cgroup /guest"
}
step nest-parent      nest_parent_hwpt
if [ "$FW" = acpi-iort ]; then
    viommu_made() {
        ctl vm show nest > /tmp/nest.show || return 1
        _vi=$(sed -n 's/^vIOMMU: *//p' /tmp/nest.show)
        _vd=$(sed -n 's/^vDEVICE: *//p' /tmp/nest.show | head -n 1)
        [ -n "$_vi" ] && [ -n "$_vd" ] || { cat /tmp/nest.show; fail "no vIOMMU or vDEVICE in vm show"; return 1; }
        echo "$_vi" | grep -q "^arm-smmuv3, .*(allocated in /guest)" || { fail "the vIOMMU was not made in /guest: $_vi"; return 1; }
        _vq=$(sed -n 's/^vEVENTQ: *//p' /tmp/nest.show)
        [ -n "$_vq" ] || { cat /tmp/nest.show; fail "no vEVENTQ in vm show"; return 1; }
        result "$B vIOMMU: the broker's worker allocated vIOMMU $_vi, vEVENTQ $_vq and vDEVICE $_vd through arm-smmu-v3"
    }
    step viommu       viommu_made
fi

# The VMM stand-in, inside the guest's cgroup: the fds through vm.fds, 512 MiB mapped into the
# guest's IOAS; it holds the mapping while the broker attaches the second device.
step vmm-map-512MiB   vmm_start nest --map 536870912 --hold 600
step vmm-mapped       sh -c "echo '$VMM_JSON' | grep -q '\"mapped_bytes\": *536870912' && echo \"IFB-RESULT $B VMM: vm.fds -> IOMMU_IOAS_MAP of 512 MiB through the received iommufd: ok\""
step accounting       charged_attach nest "$BDF2" 512 $VID2
step vm-show-after    ctl vm show nest
if [ "$FW" = acpi-iort ]; then
    vdevice_2() {
        ctl vm show nest > /tmp/nest.show || return 1
        grep -E "^vDEVICE: +$BDF2: id [1-9]" /tmp/nest.show || { cat /tmp/nest.show; fail "no vDEVICE for $BDF2"; return 1; }
        result "$B vDEVICEs: $(sed -n 's/^vDEVICE: *//p' /tmp/nest.show | tr '\n' ';' | sed 's/;$//; s/;/; /g') (both on vIOMMU $(sed -n 's/^vIOMMU: *arm-smmuv3, id \([0-9]*\).*/\1/p' /tmp/nest.show))"
    }
    step vdevice-2    vdevice_2
fi
step vmm-stop         vmm_stop
step vm-destroy-nest  ctl vm destroy nest
step daemon-stop      daemon_stop

finish
