# The adopting QEMU (contrib/qemu/, built by tests/kernel/build-qemu.sh and packed into the vtd
# initramfs as qemu-system-x86_64-adopt) in the broker's `bound` hand-off. Sourced by
# guest-vtd.sh while the broker runs, after guest-qemu.sh (qemu_launch, qemu_realized,
# qemu_quit, vm_reclaimed, mem_avail, mem_compare, IFB_L2_ARGS) and with the first e1000e in
# $BDF1 free again.
#
#  1. A bound guest `adopt` (--allow-plain: QEMU's VT-d cannot nest, so the broker's HWPT is
#     plain here) with $BDF1: the broker's worker binds it, allocates the IOAS and the HWPT in
#     /guest.
#  2. The patched QEMU given x-devid alone is refused before it touches the iommufd (the three
#     ids go together); its exit is reclaimed like any VMM's.
#  3. An IOAS with a mapping left in it: vmm-peer, a second holder of the bound guest's fds, maps
#     1 MiB into the broker's IOAS and holds it; the patched QEMU empties the IOAS before mapping
#     its RAM (its trace: unmapped=0x100000) and realizes the device.
#  4. Twice: `iommufdctl exec` (inside /guest) launches it with
#       -object iommufd,fd=%{iommufd}
#       -device vfio-pci,fd=%{dev:BDF},x-devid=%{devid:BDF},x-ioas-id=%{ioas},x-hwpt-id=%{hwpt:BDF}
#     QMP query-pci lists the device; QEMU's trace says it adopted the broker's dev_id, IOAS and
#     HWPT and allocated neither an IOAS nor a HWPT; `vm show` reports the same ioas_id, dev_id
#     and hwpt_id while QEMU runs as before it started; MemAvailable and the guest cgroup drop by
#     QEMU's RAM while it runs and are back once it quit and the broker reclaimed the context.

ADOPT_QEMU=qemu-system-x86_64-adopt
# QEMU's log trace backend (stderr, so QEMU_LOG): the adoption, and any allocation it would make
ADOPT_TRACE="-trace iommufd_cdev_adopt_devid -trace iommufd_cdev_adopt_ioas -trace iommufd_cdev_adopt_hwpt
             -trace iommufd_backend_unmap_all -trace iommufd_backend_alloc_ioas -trace iommufd_backend_alloc_hwpt"

# adopt_show VAR: "ioas=I dev=D hwpt=H" of guest `adopt` from `vm show`, into VAR
adopt_show() {
    ctl --json vm show adopt > /tmp/adopt-show.json || { fail "vm show adopt failed"; return 1; }
    _ioas=$(json_int ioas_id < /tmp/adopt-show.json)
    _dev=$(json_int dev_id < /tmp/adopt-show.json)
    _hwpt=$(json_int hwpt_id < /tmp/adopt-show.json)
    _ids="ioas=$_ioas dev=$_dev hwpt=$_hwpt"
    eval "$1=\$_ids"
    echo "vm show adopt: $_ids, hwpt_kind $(sed -n 's/.*"hwpt_kind": *"\([^"]*\)".*/\1/p' /tmp/adopt-show.json | head -n1)," \
         "vmm_pid $(json_int vmm_pid < /tmp/adopt-show.json), vmm_exits $(json_int vmm_exits < /tmp/adopt-show.json)"
    [ "${_ioas:-0}" -gt 0 ] && [ "${_dev:-0}" -gt 0 ] && [ "${_hwpt:-0}" -gt 0 ] ||
        { fail "an id is missing or 0"; return 1; }
}

# adopt_same LABEL BEFORE NOW: the broker's ids did not move
adopt_same() {
    echo "before QEMU: $2; while QEMU ran: $3"
    [ -n "$2" ] && [ "$2" = "$3" ] || { fail "$1: the broker's objects changed (or were not read)"; return 1; }
}

# adopt_launch N: the patched QEMU through iommufdctl exec, every id from the broker
adopt_launch() {
    # shellcheck disable=SC2086 # IFB_L2_ARGS and ADOPT_TRACE are word lists
    qemu_launch adopt$1 /tmp/adopt$1.sock iommufdctl exec --vm adopt -- \
        "$ADOPT_QEMU" $IFB_L2_ARGS $ADOPT_TRACE \
        -object "iommufd,id=ifb0,fd=%{iommufd}" \
        -device "vfio-pci,id=hostnic,iommufd=ifb0,fd=%{dev:$BDF1},x-devid=%{devid:$BDF1},x-ioas-id=%{ioas},x-hwpt-id=%{hwpt:$BDF1}" \
        -qmp "unix:/tmp/adopt$1.sock,server=on,wait=off"
}

# adopt_traced IDS: QEMU's trace shows the broker's dev_id, its IOAS emptied and built upon, the
# device on the broker's HWPT, and no IOAS or HWPT allocated by QEMU
adopt_traced() {
    _ioas=${1#ioas=}; _ioas=${_ioas%% *}
    _dev=${1#*dev=}; _dev=${_dev%% *}
    _hwpt=${1##*hwpt=}
    grep -E 'iommufd_(cdev_adopt|backend_unmap_all|backend_alloc)' "$QEMU_LOG"
    grep -q "bound as devid=$_dev\$" "$QEMU_LOG" || { fail "no trace of dev_id $_dev adopted"; return 1; }
    grep -q "iommufd_backend_unmap_all .* ioas=$_ioas .*(0)\$" "$QEMU_LOG" || { fail "no trace of IOAS $_ioas emptied"; return 1; }
    grep -q "on adopted ioasid=$_ioas\$" "$QEMU_LOG" || { fail "no trace of IOAS $_ioas adopted"; return 1; }
    grep -q "on adopted hwpt=$_hwpt\$" "$QEMU_LOG" || { fail "no trace of HWPT $_hwpt adopted"; return 1; }
    ! grep -q 'iommufd_backend_alloc' "$QEMU_LOG" || { fail "QEMU allocated objects of its own"; return 1; }
    echo "QEMU adopted dev_id $_dev, IOAS $_ioas (emptied first) and HWPT $_hwpt, and allocated nothing"
}

# adopt_emptied BYTES: QEMU's unmap of the whole adopted IOAS removed BYTES left by another user
adopt_emptied() {
    grep 'iommufd_backend_unmap_all' "$QEMU_LOG"
    grep -q "iommufd_backend_unmap_all .* unmapped=$1 (0)\$" "$QEMU_LOG" ||
        { fail "QEMU did not empty the $1 bytes left in the IOAS"; return 1; }
    echo "QEMU emptied the adopted IOAS of the $1 bytes vmm-peer had mapped before mapping its RAM"
}

# adopt_partial: x-devid alone is refused, naming the rule
adopt_partial() {
    # shellcheck disable=SC2086
    sh -c 'echo $$ > /sys/fs/cgroup/guest/cgroup.procs && exec "$@"' sh \
        iommufdctl exec --vm adopt -- "$ADOPT_QEMU" $IFB_L2_ARGS \
        -object "iommufd,id=ifb0,fd=%{iommufd}" \
        -device "vfio-pci,id=hostnic,iommufd=ifb0,fd=%{dev:$BDF1},x-devid=%{devid:$BDF1}" \
        >/tmp/adopt-partial.log 2>&1
    _rc=$?
    echo "exit status $_rc:"; cat /tmp/adopt-partial.log
    [ $_rc != 0 ] || { fail "QEMU started with x-devid alone"; return 1; }
    grep -q 'x-devid, x-ioas-id and x-hwpt-id go together' /tmp/adopt-partial.log ||
        { fail "refused, but not for the missing ids"; return 1; }
}

# adopt_failed: did any adopt step fail so far?
adopt_failed() { case "$IFB_STEPS_FAILED" in *adopt-*) return 0 ;; esac; return 1; }

adopt_result() {
    adopt_failed && { fail "failed:$IFB_STEPS_FAILED"; return 1; }
    result "vtd adopting QEMU (contrib/qemu, bound hand-off): realized twice through iommufdctl exec on the broker's device, IOAS and plain HWPT ($ADOPT_IDS1), unchanged by it, none of its own allocated; nothing pinned after each run; an IOAS left with 1 MiB mapped emptied first"
}

if ! have "$ADOPT_QEMU"; then
    step adopt-qemu         fail "$ADOPT_QEMU is not in the initramfs (run.sh packs what tests/kernel/build-qemu.sh built)"
else
    step adopt-version      "$ADOPT_QEMU" --version
    step adopt-vm-create    ctl vm create adopt --cgroup /guest --handoff bound --allow-plain
    step adopt-attach       ctl vm attach adopt "$BDF1"
    if adopt_failed; then
        note "adopt: no bound guest, no QEMU runs"
    else
        step adopt-partial      adopt_partial
        step adopt-partial-reclaimed vm_reclaimed adopt 1
        step adopt-leftover-map vmm_start adopt --map 1048576 --hold 600
        step adopt-qemu0        adopt_launch 0
        step adopt-pci0         qemu_realized hostnic "vtd adopting QEMU on an IOAS another holder had mapped 1 MiB into"
        step adopt-emptied0     adopt_emptied 0x100000
        step adopt-quit0        qemu_quit
        step adopt-leftover-stop vmm_stop
        step adopt-reclaimed0   vm_reclaimed adopt 2
        for _run in 1 2; do
            adopt_failed && break
            step adopt-ids$_run-before adopt_show ADOPT_IDS0
            step adopt-mem$_run-before mem_avail adopt$_run-before
            step adopt-qemu$_run    adopt_launch $_run
            if adopt_failed; then
                note "adopt: QEMU run $_run did not start"
                break
            fi
            step adopt-pci$_run     qemu_realized hostnic "vtd adopting QEMU, run $_run (broker's dev_id, IOAS, HWPT)"
            step adopt-traced$_run  adopt_traced "$ADOPT_IDS0"
            step adopt-ids$_run-running adopt_show ADOPT_IDS1
            step adopt-same$_run    adopt_same "run $_run" "$ADOPT_IDS0" "$ADOPT_IDS1"
            step adopt-mem$_run-running mem_avail adopt$_run-running
            step adopt-quit$_run    qemu_quit
            step adopt-reclaimed$_run vm_reclaimed adopt $((_run + 2))
            step adopt-mem$_run-after mem_avail adopt$_run-after
            step adopt-memory$_run  mem_compare "vtd adopting QEMU, run $_run" adopt$_run-before adopt$_run-running adopt$_run-after
        done
        step adopt-result       adopt_result
    fi
    step adopt-vm-destroy   ctl vm destroy adopt
fi
