# What nests on the mock's NEST_PARENT through a vIOMMU, on a kernel that has one (6.13+; the
# tier boots 7.2): sourced by guest-mock.sh after guest-lib.sh and guest-qemu.sh (vm_reclaimed),
# with the daemon running on the kernel backend with [kernel] allow-selftest=true and no guest
# in /guest.
#
# 1. base: a bound guest without a vIOMMU, `vm attach base selftest:0`: what a mock and its
#    NEST_PARENT HWPT (and the worker that makes them) add to /guest: the baseline the next
#    deltas are read against. Destroyed again.
# 2. vi: `--viommu selftest --veventq-depth 16`; `vm attach vi selftest:2 --virt-id 1` makes the
#    mock, its NEST_PARENT HWPT, the vIOMMU, its vEVENTQ and the device's vDEVICE, all by the
#    broker's worker in /guest (`vm show` says so); `vm attach vi selftest:3 --virt-id 2` a
#    second mock, HWPT and vDEVICE in the same vIOMMU. Each attach measured (cg_measure):
#    less the baseline, what the vIOMMU + vEVENTQ + vDEVICE and a vDEVICE add.
# 3. vmm-peer --viommu-nested in /guest with the fds: a nested HWPT per device through the
#    vIOMMU (IOMMU_HWPT_ALLOC, pt_id = the vIOMMU, IOMMU_HWPT_DATA_SELFTEST) and the mock moved
#    onto it (MOCK_DOMAIN_REPLACE); measured too.
# 4. kill -9 of that VMM: the broker replaces the context (vm_reclaimed) and remakes its own
#    objects: two mocks again; then `vm destroy vi`: no mock left on the iommufd_mock bus and
#    the guest's kernel memory back (a kept vIOMMU, vDEVICE, vEVENTQ or HWPT would hold it).

MOCK_BUS=/sys/bus/iommufd_mock/devices

# mocks N: exactly N mock devices exist (each context's selftest devices are on this bus)
mocks() {
    _n=$(ls "$MOCK_BUS" 2>/dev/null | wc -l)
    echo "$MOCK_BUS: $_n mock device(s): $(ls "$MOCK_BUS" 2>/dev/null | tr '\n' ' ')"
    [ "$_n" = "$1" ] || { fail "want $1 mock device(s), found $_n"; return 1; }
}

step vi-no-mocks      mocks 0

# -- 1. the baseline: a mock and its NEST_PARENT, no vIOMMU
step vm-create-base   ctl vm create base --cgroup /guest --handoff bound
base_attach() {
    cg_measure "mock + NEST_PARENT HWPT (no vIOMMU; baseline)" ctl vm attach base selftest:0 || return 1
    BASE_GK=$CG_GK BASE_GS=$CG_GS
}
step base-attach      base_attach
step vm-destroy-base  ctl vm destroy base

# -- 2. the guest with a vIOMMU, a vEVENTQ and a vDEVICE per device
step vm-create-vi     ctl vm create vi --cgroup /guest --handoff bound --viommu selftest --veventq-depth 16
cg_settle
VI_GK0=$(awk '$1 == "kernel" { print $2 }' /sys/fs/cgroup/guest/memory.stat)
vi_attach_first() {
    cg_measure "mock + NEST_PARENT HWPT + vIOMMU + vEVENTQ + vDEVICE" ctl vm attach vi selftest:2 --virt-id 1 || return 1
    VI_GK1=$CG_GK VI_GS1=$CG_GS
    ctl vm show vi > /tmp/ifb-vi.show || return 1
    cat /tmp/ifb-vi.show
    _vi=$(sed -n 's/^vIOMMU: *//p' /tmp/ifb-vi.show)
    _vq=$(sed -n 's/^vEVENTQ: *//p' /tmp/ifb-vi.show)
    _vd=$(sed -n 's/^vDEVICE: *//p' /tmp/ifb-vi.show)
    [ -n "$_vi" ] && [ -n "$_vq" ] && [ -n "$_vd" ] || { fail "no vIOMMU, vEVENTQ or vDEVICE in vm show"; return 1; }
    echo "$_vi" | grep -q "^selftest, .*(allocated in /guest)" || { fail "the vIOMMU was not made in /guest"; return 1; }
    echo "$_vd" | grep -q "^selftest:2: id [1-9][0-9]*, virtual id 1$" || { fail "no vDEVICE with virtual id 1 for selftest:2"; return 1; }
    result "mock vIOMMU: the broker's worker allocated vIOMMU $_vi, vEVENTQ $_vq and vDEVICE $_vd on Linux $(uname -r)"
}
step vi-attach-first  vi_attach_first
vi_attach_second() {
    cg_measure "mock + NEST_PARENT HWPT + vDEVICE (a second device in the vIOMMU)" ctl vm attach vi selftest:3 --virt-id 2 || return 1
    VI_GK2=$CG_GK VI_GS2=$CG_GS
    ctl vm show vi | tee /tmp/ifb-vi.show | grep -q "^vDEVICE: *selftest:3: id [1-9][0-9]*, virtual id 2$" ||
        { cat /tmp/ifb-vi.show; fail "no vDEVICE with virtual id 2 for selftest:3"; return 1; }
    [ "$(grep -c '^vIOMMU:' /tmp/ifb-vi.show)" = 1 ] || { fail "not one vIOMMU"; return 1; }
    ctl --json vm show vi > /tmp/ifb-vi.json
    grep -q '"cgroup": *"/guest"' /tmp/ifb-vi.json && ! grep -q '"cgroup": *"/daemon"' /tmp/ifb-vi.json ||
        { fail "an object of vi not recorded in /guest"; return 1; }
}
step vi-attach-second vi_attach_second
step vi-mocks-2       mocks 2
# What the vIOMMU's objects add, read against the baseline (each attach's own mock, HWPT and
# worker are in both): `kernel` counts whole charged pages, slab_unreclaimable bytes, each exact
# only to a page per CPU (cg_settle), and these objects are a few hundred bytes each, so the
# deltas are printed, not asserted; what is asserted is that each was made by the worker in
# /guest (vm show, vi-attach-second) and that the daemon's kernel memory did not grow by 64 KiB
# (every cg_measure).
vi_deltas() {
    [ -n "${BASE_GK:-}" ] && [ -n "${VI_GK1:-}" ] && [ -n "${VI_GK2:-}" ] || { fail "a measurement is missing"; return 1; }
    result "memory per object, less the baseline attach (guest cgroup; kernel in charged pages, slab_unreclaimable in bytes):" \
        "vIOMMU + vEVENTQ + vDEVICE: kernel $(kib_s $((VI_GK1 - BASE_GK))), slab $(kib_s $((VI_GS1 - BASE_GS)));" \
        "a further vDEVICE: kernel $(kib_s $((VI_GK2 - BASE_GK))), slab $(kib_s $((VI_GS2 - BASE_GS)))"
}
step vi-deltas        vi_deltas

# -- 3. the VMM nests through the vIOMMU and attaches the mocks to its nested HWPTs; first the
# same VMM without nesting, for the baseline (its process: stack, page tables, files)
vmm_baseline() {
    cg_measure "vmm-peer holding the fds, no nesting (baseline)" vmm_start vi --hold 600 || return 1
    VMM_GK0=$CG_GK VMM_GS0=$CG_GS
    vmm_stop
    vm_reclaimed vi 1
}
step vmm-baseline     vmm_baseline
vmm_viommu_nested() {
    cg_measure "nested HWPTs through the vIOMMU by vmm-peer (2 devices)" vmm_start vi --viommu-nested --hold 600 || return 1
    result "memory per object, less the VMM baseline: 2 nested HWPTs on the vIOMMU, both mocks attached:" \
        "kernel $(kib_s $((CG_GK - VMM_GK0))), slab $(kib_s $((CG_GS - VMM_GS0)))"
    echo "$VMM_JSON" | grep -q '"viommu_nested": *\[' || { fail "no viommu_nested in vmm-peer's report"; return 1; }
    [ "$(echo "$VMM_JSON" | grep -o '"result": *"ok"' | wc -l)" = 2 ] || { fail "not both devices nested and attached"; return 1; }
    result "mock nested through the vIOMMU: vmm-peer (pid $VMM_PID, in $(cut -d: -f3 /proc/$VMM_PID/cgroup)) allocated nested HWPTs $(echo "$VMM_JSON" | sed -n 's/.*"viommu_nested": *\[\(.*\)\].*/\1/p' | grep -o '"nested_id": *[0-9]*' | sed 's/.*: *//' | tr '\n' ' ')on vIOMMU $(echo "$VMM_JSON" | json_int viommu_id) and moved both mocks onto them"
}
step vmm-viommu-nested vmm_viommu_nested

# -- 4. kill -9 of the VMM, then vm destroy: nothing left
vmm_kill9() {
    [ -n "${VMM_PID:-}" ] || { fail "no vmm-peer running"; return 1; }
    kill -9 "$VMM_PID"; wait "$VMM_PID" 2>/dev/null
    echo "vmm-peer $VMM_PID killed (SIGKILL)"; VMM_PID=""
    vm_reclaimed vi 2
}
step vmm-kill9        vmm_kill9
step vi-remade        sh -c 'iommufdctl vm show vi | grep -E "^(vIOMMU|vEVENTQ|vDEVICE):" && [ "$(iommufdctl vm show vi | grep -c "^vDEVICE:")" = 2 ]'
step vi-mocks-after-kill mocks 2
vi_destroy() {
    cg_measure "vm destroy vi (everything of the guest released)" ctl vm destroy vi || return 1
    _gk=$(awk '$1 == "kernel" { print $2 }' /sys/fs/cgroup/guest/memory.stat)
    echo "guest kernel before vi was created $VI_GK0, after its destroy $_gk"
    result "teardown: after kill -9 of the VMM and vm destroy no mock on $MOCK_BUS; the guest cgroup's kernel memory $(kib_s $((_gk - VI_GK0))) against before vi was created"
    # everything vi's attaches and its VMM added (tens of KiB: the deltas above) must be gone;
    # 16 KiB of slack for per-CPU caches of the memory controller
    [ $((_gk - VI_GK0)) -lt 16384 ] || { fail "the guest cgroup kept $((_gk - VI_GK0)) bytes of kernel memory"; return 1; }
}
step vi-destroy       vi_destroy
step vi-mocks-0       mocks 0
step vi-list-empty    sh -c 'iommufdctl vm list; ! iommufdctl vm list | grep -qw vi'
