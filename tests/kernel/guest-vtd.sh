#!/bin/sh
# Runs inside the "vtd" boot (emulated Intel VT-d + one e1000e); see tests/kernel/run.sh.
# Proves the platform, then runs the broker's scenarios on the real kernel backend.
# Add steps with `step NAME CMD...` (`need` for prerequisites; tests/kernel/guest-lib.sh).
. /ifb/guest-lib.sh
note "vtd boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
need dev-iommu        need_char_dev /dev/iommu
need dev-iommu-open   open_rw /dev/iommu
need vtd-present      sh -c 'ls /sys/class/iommu/ | grep -q dmar && ls -l /sys/class/iommu/ && dmesg | grep -iE "DMAR|IOMMU|x2apic|remapping" | head -n 12'
need find-e1000e      find_pci 0x8086 0x10d3
BDF=$PCI_BDF
need iommu-group      sh -c "ls -l /sys/bus/pci/devices/$BDF/iommu_group && ls /sys/bus/pci/devices/$BDF/iommu_group/devices"
need bind-vfio-pci    bind_vfio "$BDF"
need vfio-cdev        wait_for /dev/vfio/devices/vfio0 5
need vfio-cdev-sysfs  sh -c "ls /sys/bus/pci/devices/$BDF/vfio-dev/ | grep -qx vfio0 && echo $BDF/vfio-dev/vfio0 && cat /sys/bus/pci/devices/$BDF/vfio-dev/vfio0/dev"
need vfio-cdev-open   open_rw /dev/vfio/devices/vfio0
need cgroup-memory    cg_setup

# ---- broker runtime and scenarios ---------------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
if have iommufd-probe; then step uapi-probe iommufd-probe --device /dev/vfio/devices/vfio0 --cgroup /sys/fs/cgroup/guest --daemon-cgroup /sys/fs/cgroup/daemon; fi
if have ifb-uapi-scenarios; then
    step uapi-scenarios ifb-uapi-scenarios --backend kernel --dev-root /dev --device vfio0
else
    note "ifb-uapi-scenarios not in the initramfs (not built yet)"
fi

# ---- the broker on the kernel backend (scenario steps go between start and stop) ----------
if have iommufd-brokerd; then
    need daemon-start daemon_start
    if have iommufdctl; then
        step cli-status   iommufdctl status
        step cli-devices  sh -c "iommufdctl devices && iommufdctl devices | grep -q '$BDF' || { echo 'the e1000e $BDF is not listed'; exit 1; }"
    fi
    step daemon-stop  daemon_stop
else
    note "iommufd-brokerd not in the initramfs (not built yet)"
fi

finish
