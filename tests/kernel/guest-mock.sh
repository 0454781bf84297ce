#!/bin/sh
# Runs inside the "mock" boot (no vIOMMU; the kernel's IOMMUFD selftest mock device, which on
# x86 only works without an Intel/AMD IOMMU); see tests/kernel/run.sh.
# Add steps with `step NAME CMD...` (`need` for prerequisites; tests/kernel/guest-lib.sh).
. /ifb/guest-lib.sh
note "mock boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
need dev-iommu        need_char_dev /dev/iommu
need dev-iommu-open   open_rw /dev/iommu
need no-hw-iommu      sh -c 'ls /sys/class/iommu/; ! ls /sys/class/iommu/ | grep -qvE "^iommufd_selftest_iommu" || { echo "unexpected IOMMU (the mock device needs none)"; exit 1; }'
need iommufd-test     sh -c 'ls -d /sys/bus/iommufd_mock /sys/class/iommu/iommufd_selftest_iommu.*'
need cgroup-memory    cg_setup

# ---- broker runtime and scenarios ---------------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
if have iommufd-probe; then step uapi-probe iommufd-probe --mock --cgroup /sys/fs/cgroup/guest --daemon-cgroup /sys/fs/cgroup/daemon; fi
if have ifb-uapi-scenarios; then
    step uapi-scenarios ifb-uapi-scenarios --backend kernel --dev-root /dev --mock
else
    note "ifb-uapi-scenarios not in the initramfs (not built yet)"
fi

# ---- the broker on the kernel backend (scenario steps go between start and stop) ----------
if have iommufd-brokerd; then
    need daemon-start daemon_start
    if have iommufdctl; then
        step cli-status   iommufdctl status
        step cli-devices  iommufdctl devices
    fi
    step daemon-stop  daemon_stop
else
    note "iommufd-brokerd not in the initramfs (not built yet)"
fi

finish
