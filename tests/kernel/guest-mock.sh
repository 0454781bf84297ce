#!/bin/sh
# Runs inside the "mock" boot (no vIOMMU; the kernel's IOMMUFD selftest mock device, which on
# x86 only works without an Intel/AMD IOMMU); see tests/kernel/run.sh.
# Proves the platform, runs the uAPI scenarios on the mock, then the broker's selftest device
# kind: refused while the config forbids it; with [kernel] allow-selftest=true the broker's
# worker makes the mock and a NEST_PARENT HWPT in the guest's context, and a VMM stand-in
# holding the guest's fds allocates a nested child on it; then a guest with a vIOMMU (type
# selftest): on Linux 6.13+ the worker makes the vIOMMU on the mock's NEST_PARENT and its
# vDEVICE in /guest, and guest-viommu.sh measures what it, its vEVENTQ and its vDEVICEs add to
# the guest's cgroup and has a VMM nest through it; before 6.13 the broker refuses by name.
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

# ---- broker runtime and the uAPI scenarios ------------------------------------------------
if have libprobe; then step libprobe libprobe; fi
# a step, not a need: a scenario line that fails is reported (and compared by run.sh) and the
# broker's steps below, which do not depend on it, still run
step uapi-scenarios   ifb-uapi-scenarios --backend kernel --dev-root /dev --mock

# ---- the broker: selftest devices refused without the config's consent -------------------
need daemon-start     daemon_start
step no-selftest-listed sh -c '! iommufdctl devices | grep selftest: && echo "no selftest devices listed"'
step vm-create-m0     ctl vm create m0 --cgroup /guest --handoff bound
step selftest-refused refused unavailable ctl vm attach m0 selftest:0
step selftest-refused-why sh -c 'grep -q "config forbids it" /tmp/ifb-refused.out && echo "IFB-RESULT mock selftest device without allow-selftest: refused: $(cat /tmp/ifb-refused.out)"'
step vm-destroy-m0    ctl vm destroy m0
step daemon-stop      daemon_stop

# ---- ... and offered with [kernel] allow-selftest=true ------------------------------------
printf '[kernel]\nallow-selftest=true\n' > /tmp/broker-selftest.conf
need daemon-start-selftest daemon_start --config /tmp/broker-selftest.conf
step cli-status       ctl status
step selftest-listed  sh -c 'iommufdctl devices && iommufdctl devices | grep -q "^selftest:3 .*selftest .*yes"'
step vm-create-mock   ctl vm create mock --cgroup /guest --handoff bound
step attach-selftest  ctl vm attach mock selftest:0
nest_parent_hwpt() {
    ctl vm show mock
    ctl --json vm show mock > /tmp/mock.json || return 1
    grep -q '"hwpt_kind": *"nest-parent"' /tmp/mock.json || { fail "no NEST_PARENT HWPT in vm show"; return 1; }
    MOCK_HWPT=$(json_int hwpt_id < /tmp/mock.json)
    result "mock NEST_PARENT: the broker's worker allocated NEST_PARENT HWPT $MOCK_HWPT for selftest:0 (dev_id $(json_int dev_id < /tmp/mock.json)) in cgroup /guest"
}
step nest-parent      nest_parent_hwpt

# The VMM stand-in, inside the guest's cgroup, allocates a nested child on the broker's parent.
step vmm-nested       vmm_start mock --nested
nested_child() {
    echo "$VMM_JSON" | grep -q '"result": *"ok"' || { fail "no nested child"; return 1; }
    result "mock nested child: vmm-peer (pid $VMM_PID, fds from vm.fds) allocated nested HWPT $(echo "$VMM_JSON" | json_int nested_id) on parent $(echo "$VMM_JSON" | json_int parent)"
}
step nested-child     nested_child
step vmm-stop         vmm_stop
step attach-selftest-2 ctl vm attach mock selftest:1
step vm-show-mock     ctl vm show mock
step detach-selftest-2 ctl vm detach mock selftest:1
step vm-destroy-mock  ctl vm destroy mock

# A guest with a vIOMMU: the worker makes it on the mock's NEST_PARENT and a vDEVICE with the
# virtual id given, in /guest. The mock's vIOMMU arrived in Linux 6.13: before, the attach is
# refused by name ([unavailable, ENOTTY]) and leaves nothing. run.sh says which it expects
# (ifb.viommu_expected=yes on the 7.2 boot, no on 6.12): the other outcome fails the step.
step vm-create-vi     ctl vm create vi --cgroup /guest --handoff bound --viommu selftest
HAVE_VIOMMU=0
viommu_on_mock() {
    if ctl vm attach vi selftest:2 --virt-id 1 >/tmp/ifb-vi.out 2>&1; then
        cat /tmp/ifb-vi.out
        ctl vm show vi > /tmp/ifb-vi.show || return 1
        cat /tmp/ifb-vi.show
        _vi=$(sed -n 's/^vIOMMU: *//p' /tmp/ifb-vi.show)
        _vd=$(sed -n 's/^vDEVICE: *//p' /tmp/ifb-vi.show)
        [ -n "$_vi" ] && [ -n "$_vd" ] || { fail "no vIOMMU or vDEVICE in vm show"; return 1; }
        echo "$_vi" | grep -q "(allocated in /guest)" || { fail "the vIOMMU was not made in /guest"; return 1; }
        HAVE_VIOMMU=1
        [ "${IFB_VIOMMU_EXPECTED:-}" != no ] || { fail "a vIOMMU on Linux $(uname -r), which run.sh said has none"; return 1; }
    else
        cat /tmp/ifb-vi.out
        grep -q '\[unavailable, ENOTTY\]' /tmp/ifb-vi.out ||
            { fail "refused, but not as a kernel without vIOMMU [unavailable, ENOTTY]"; return 1; }
        ctl vm show vi | grep -q '^vIOMMU: .*id 0 ' || { fail "a refused attach left a vIOMMU"; return 1; }
        result "mock vIOMMU: refused on Linux $(uname -r) (the mock's vIOMMU needs 6.13+; the kernel-7.2 suite proves it): $(cat /tmp/ifb-vi.out)"
        [ "${IFB_VIOMMU_EXPECTED:-}" != yes ] || { fail "no vIOMMU on Linux $(uname -r), which run.sh said has one"; return 1; }
    fi
}
step viommu-on-mock   viommu_on_mock
step vm-destroy-vi    ctl vm destroy vi
# 6.13+: the vIOMMU, its vEVENTQ and vDEVICEs measured, a VMM nesting through it, the teardown
if [ $HAVE_VIOMMU = 1 ]; then
    . /ifb/guest-qemu.sh   # vm_reclaimed
    . /ifb/guest-viommu.sh
fi
step daemon-stop-selftest daemon_stop

finish
