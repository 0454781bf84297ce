#!/bin/sh
# Runs inside the "vtd" boot (emulated Intel VT-d + one e1000e); see tests/kernel/run.sh.
# Proves the platform, then runs the broker's scenarios on the real kernel backend.
# Add steps with `step NAME CMD...` (tests/kernel/guest-lib.sh).
. /ifb/guest-lib.sh
note "vtd boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
step dev-iommu        need_char_dev /dev/iommu
step dev-iommu-open   open_rw /dev/iommu
step vtd-present      sh -c 'ls /sys/class/iommu/ | grep -q dmar && ls -l /sys/class/iommu/ && dmesg | grep -iE "DMAR|IOMMU|x2apic|remapping" | head -n 12'
step find-e1000e      find_pci 0x8086 0x10d3
BDF=$PCI_BDF
step iommu-group      sh -c "ls -l /sys/bus/pci/devices/$BDF/iommu_group && ls /sys/bus/pci/devices/$BDF/iommu_group/devices"
step bind-vfio-pci    bind_vfio "$BDF"
step vfio-cdev        wait_for /dev/vfio/devices/vfio0 5
step vfio-cdev-sysfs  sh -c "ls /sys/bus/pci/devices/$BDF/vfio-dev/ | grep -qx vfio0 && echo $BDF/vfio-dev/vfio0 && cat /sys/bus/pci/devices/$BDF/vfio-dev/vfio0/dev"
step vfio-cdev-open   open_rw /dev/vfio/devices/vfio0
step cgroup-memory    cg_setup

# ---- broker runtime and scenarios ---------------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
if have iommufd-probe; then step uapi-probe iommufd-probe --device /dev/vfio/devices/vfio0 --cgroup /sys/fs/cgroup/guest; fi
if have ifb-uapi-scenarios; then
    step uapi-scenarios ifb-uapi-scenarios --backend kernel --dev-root /dev --device vfio0
else
    note "ifb-uapi-scenarios not in the initramfs (not built yet)"
fi

finish
