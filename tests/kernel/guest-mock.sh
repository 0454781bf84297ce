#!/bin/sh
# Runs inside the "mock" boot (no vIOMMU; the kernel's IOMMUFD selftest mock device, which on
# x86 only works without an Intel/AMD IOMMU); see tests/kernel/run.sh.
# Add steps with `step NAME CMD...` (tests/kernel/guest-lib.sh).
. /ifb/guest-lib.sh
note "mock boot: kernel $(uname -r), $(nproc) cpus, IFB_VIOMMU=${IFB_VIOMMU:-?}"

# ---- platform -----------------------------------------------------------------------------
step uname            uname -a
step dev-iommu        need_char_dev /dev/iommu
step dev-iommu-open   open_rw /dev/iommu
step no-hw-iommu      sh -c 'ls /sys/class/iommu/; ! ls /sys/class/iommu/ | grep -qvE "^iommufd_selftest_iommu" || { echo "unexpected IOMMU (the mock device needs none)"; exit 1; }'
step iommufd-test     sh -c 'ls -d /sys/bus/iommufd_mock /sys/class/iommu/iommufd_selftest_iommu.*'
step cgroup-memory    cg_setup

# ---- broker runtime and scenarios ---------------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
if have iommufd-probe; then step uapi-probe iommufd-probe --mock --cgroup /sys/fs/cgroup/guest; fi
if have ifb-uapi-scenarios; then
    step uapi-scenarios ifb-uapi-scenarios --backend kernel --dev-root /dev --mock
else
    note "ifb-uapi-scenarios not in the initramfs (not built yet)"
fi

finish
