# QEMU inside the VT-d guest: Debian's unmodified qemu-system-x86_64 (nested TCG) realizing a
# vfio-pci device on the guest's real /dev/iommu, checked over QMP. Sourced by guest scripts
# after guest-lib.sh; the initramfs of the vtd boot carries the binary, its libraries, the two
# firmware files q35 loads at start-up (/usr/share/seabios/bios-256k.bin,
# /usr/share/qemu/kvmvapic.bin) and qmp-call (tests/kernel/qmp-call.c), see run.sh.
#
#   qemu_launch NAME SOCKET CMD...   start CMD (QEMU, or a launcher that execs it, such as
#                                    `iommufdctl exec`) in the background inside the guest's
#                                    cgroup, its output in /tmp/NAME.log; waits until QMP on
#                                    SOCKET answers. Sets QEMU_PID, QEMU_SOCK, QEMU_LOG.
#   qemu_realized QDEV_ID LABEL      query-pci must list the device with that id, with the
#                                    e1000e's PCI ids read through VFIO, and qom-get says
#                                    realized=true; prints "IFB-RESULT LABEL: ..."
#   qemu_quit                        QMP quit; waits for the process, which must exit 0
#   qemu_direct BDF                  the control without the broker: QEMU given /dev/iommu and
#                                    the device's cdev as fds 3 and 4 by the shell, with the
#                                    same -object/-device lines the broker's hand-off produces
#   qemu_broker VM BDF NAME          the same through the broker: `iommufdctl exec --vm VM`
#   vm_reclaimed VM N                waits until the broker reclaimed VM's context N times
#   mem_avail NAME                   prints MemAvailable and the guest cgroup's memory.current;
#                                    both kept in /tmp/meminfo.NAME
#   mem_compare LABEL B D A          the RAM QEMU pinned is available again after it quit
#
# The L2 machine is paused (-S): realizing vfio-pci binds the device, attaches it and maps all
# guest RAM through IOMMUFD (pinning it) before any guest code would run, so nothing of the L2
# guest needs to execute under doubly emulated TCG.

IFB_L2_ARGS="-machine q35,accel=tcg -S -m 256 -nodefaults -display none"
IFB_L2_MIB=256
QEMU_PID="" QEMU_SOCK="" QEMU_LOG=""

qemu_launch() {
    _qn=$1 QEMU_SOCK=$2; shift 2
    QEMU_LOG=/tmp/$_qn.log
    rm -f "$QEMU_SOCK"
    sh -c 'echo $$ > /sys/fs/cgroup/guest/cgroup.procs && exec "$@"' sh "$@" >"$QEMU_LOG" 2>&1 &
    QEMU_PID=$!
    echo "pid $QEMU_PID: $*"
    # qmp-call retries the connection until QEMU listens; under nested TCG start-up takes seconds
    if ! qmp-call --timeout 120 "$QEMU_SOCK" query-status; then
        kill -0 "$QEMU_PID" 2>/dev/null && { kill -KILL "$QEMU_PID"; echo "(QEMU killed)"; }
        wait "$QEMU_PID"; echo "exit status $?; its output:"
        sed 's/^/  /' "$QEMU_LOG"
        QEMU_PID=""
        return 1
    fi
    echo "QMP answers on $QEMU_SOCK; QEMU runs in cgroup $(cat /proc/$QEMU_PID/cgroup)"
}

# the e1000e (8086:10d3) as query-pci reports it: vendor 32902, device 4307
qemu_realized() {
    [ -n "$QEMU_PID" ] || { fail "no QEMU running"; return 1; }
    qmp-call "$QEMU_SOCK" query-pci \
        "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/$1\",\"property\":\"realized\"}}" \
        >/tmp/qmp.out || { cat /tmp/qmp.out; fail "QMP query failed"; return 1; }
    _rec=$(head -n1 /tmp/qmp.out | grep -o "\"qdev_id\": \"$1\"[^]]*]")
    [ -n "$_rec" ] || { cat /tmp/qmp.out; fail "query-pci lists no device with id $1"; return 1; }
    echo "query-pci: {$_rec}"
    echo "$_rec" | grep -q '"vendor": 32902' && echo "$_rec" | grep -q '"device": 4307' ||
        { fail "device $1 does not carry the e1000e's ids (8086:10d3)"; return 1; }
    echo "qom-get $1 realized: $(sed -n 2p /tmp/qmp.out)"
    sed -n 2p /tmp/qmp.out | grep -q '"return": true' || { fail "$1 is not realized"; return 1; }
    result "$2: query-pci lists $1, 8086:10d3 $(echo "$_rec" | sed -n 's/.*"desc": "\([^"]*\)".*/\1/p') on vfio-pci, realized (QEMU pid $QEMU_PID)"
}

qemu_quit() {
    [ -n "$QEMU_PID" ] || { fail "no QEMU running"; return 1; }
    qmp-call "$QEMU_SOCK" quit
    _i=0
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        _i=$((_i + 1))
        [ $_i -gt 300 ] && { echo "still running 30 s after quit: killed"; kill -KILL "$QEMU_PID"; break; }
        sleep 0.1
    done
    wait "$QEMU_PID"; _rc=$?
    echo "QEMU pid $QEMU_PID exited $_rc; its output:"
    sed 's/^/  /' "$QEMU_LOG"
    QEMU_PID=""
    [ $_rc = 0 ]
}

qemu_direct() {
    _cdev=/dev/vfio/devices/$(ls "/sys/bus/pci/devices/$1/vfio-dev/")
    qemu_launch qemu-direct /tmp/qemu-direct.sock \
        sh -c 'c=$1; shift; exec "$@" 3<>/dev/iommu 4<>"$c"' sh "$_cdev" \
        qemu-system-x86_64 $IFB_L2_ARGS -object iommufd,id=ifb0,fd=3 \
        -device vfio-pci,iommufd=ifb0,fd=4,id=hostnic -qmp unix:/tmp/qemu-direct.sock,server=on,wait=off
}

# qemu_broker VM BDF NAME: the README's flow: `iommufdctl exec --vm VM` launches QEMU from inside
# the guest's cgroup with the guest's fds (unbound hand-off: the iommufd and a fresh, unbound
# open of the device's cdev); QEMU binds and allocates itself. QMP on /tmp/NAME.sock.
qemu_broker() {
    qemu_launch "$3" "/tmp/$3.sock" iommufdctl exec --vm "$1" -- \
        qemu-system-x86_64 $IFB_L2_ARGS -object "iommufd,id=ifb0,fd=%{iommufd}" \
        -device "vfio-pci,iommufd=ifb0,fd=%{dev:$2},id=hostnic" -qmp "unix:/tmp/$3.sock,server=on,wait=off"
}

# vm_reclaimed VM N: wait (60 s at most) until the broker has replaced VM's context after its
# VMM's exit N times in all (vm.show vmm_exits), with no holder left and the guest not busy
vm_reclaimed() {
    _i=0
    while :; do
        ctl --json vm show "$1" > /tmp/vm-show.json || return 1
        _n=$(json_int vmm_exits < /tmp/vm-show.json)
        tr -d ' \n' < /tmp/vm-show.json > /tmp/vm-show.flat
        [ "${_n:-0}" -ge "$2" ] && grep -q '"holders":\[\]' /tmp/vm-show.flat && grep -q '"busy":false' /tmp/vm-show.flat &&
            break
        _i=$((_i + 1))
        [ $_i -gt 600 ] && { cat /tmp/vm-show.json; fail "vmm_exits of $1 is ${_n:-?} after 60 s, want $2"; return 1; }
        sleep 0.1
    done
    echo "$1: vmm_exits $_n, vmm_pid $(json_int vmm_pid < /tmp/vm-show.json), no holders, not busy (after $((_i / 10)).$((_i % 10)) s)"
}

mem_avail() {
    # Pages freed to a CPU's free list (pcp) do not count in MemFree/MemAvailable until drained:
    # after hundreds of MiB were freed up to 45 MiB sat there, and readings moved by -16..+16 MiB
    # from run to run. Shrink the lists' high marks (percpu_pagelist_high_fraction: the larger,
    # the smaller) and make each CPU drain down to them (every stat_refresh write lowers a list's
    # high mark by 1/8 and frees what is above it); drop the page cache and reclaimable slab too.
    sync; echo 3 > /proc/sys/vm/drop_caches
    _raw=$(awk '$1 == "MemFree:" { print $2 }' /proc/meminfo)
    echo 100000 > /proc/sys/vm/percpu_pagelist_high_fraction
    for _i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do echo 1 > /proc/sys/vm/stat_refresh; done
    cp /proc/meminfo "/tmp/meminfo.$1"
    echo "MemFree before draining the per-CPU free lists: $_raw kB"
    echo "guest_cgroup: $(($(cat /sys/fs/cgroup/guest/memory.current) / 1024)) kB" >> "/tmp/meminfo.$1"
    awk '$1 == "MemAvailable:" || $1 == "guest_cgroup:"' "/tmp/meminfo.$1"
}

# mem_compare LABEL BEFORE DURING AFTER (names given to mem_avail): the L2 guest's RAM was pinned
# while QEMU ran and is free again after it quit. Both in MemAvailable (the host's view) and in
# the guest cgroup's memory.current (where QEMU's pages are charged; exact to memcg's charge
# batches). DURING must be at least 3/4 of the RAM below BEFORE, in both, so the checks after
# quit can fail; AFTER within 8 MiB of BEFORE in MemAvailable (seen: -0.2..+1.2 MiB once the
# per-CPU lists are drained) and within 2 MiB in the cgroup. A leak keeps the whole 256 MiB.
# Prints the /proc/meminfo lines that moved by 1 MiB or more between BEFORE and AFTER.
mem_compare() {
    awk -v l="$1" -v ram="$IFB_L2_MIB" '
    FNR == 1 { f++ }
    $1 == "MemAvailable:" { m[f] = $2 / 1024 }
    $1 == "guest_cgroup:" { g[f] = $2 / 1024 }
    f == 1 { a[$1] = $2 }
    f == 3 && ($1 in a) && ($2 - a[$1] >= 1024 || a[$1] - $2 >= 1024) {
        moved = moved sprintf("  %-16s %8d -> %8d kB (%+d)\n", $1, a[$1], $2, $2 - a[$1]) }
    END {
        printf "IFB-RESULT %s: MemAvailable %d MiB before QEMU, %d MiB while it ran (%+d MiB: its %d MiB of RAM pinned), %d MiB after it quit (%+.1f MiB); guest cgroup %.1f -> %.1f -> %.1f MiB\n", l, m[1], m[2], m[2] - m[1], ram, m[3], m[3] - m[1], g[1], g[2], g[3]
        printf "/proc/meminfo lines that moved by >= 1 MiB from before to after:\n%s", moved ? moved : "  none\n"
        ok = m[1] - m[2] >= ram * 3 / 4 && g[2] - g[1] >= ram * 3 / 4 && m[1] - m[3] <= 8 && g[3] - g[1] <= 2
        printf "%s: want while running both >= %d MiB lower/higher; after quit MemAvailable at most 8 MiB lower, the guest cgroup at most 2 MiB higher than before\n", ok ? "ok" : "FAILED", ram * 3 / 4
        exit !ok
    }' "/tmp/meminfo.$2" "/tmp/meminfo.$3" "/tmp/meminfo.$4"
}
