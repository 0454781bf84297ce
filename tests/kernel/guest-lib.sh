# Helpers for the guest scripts (busybox sh). Installed in the initramfs as /ifb/guest-lib.sh;
# a guest script starts with `. /ifb/guest-lib.sh` and ends with `finish`.
#
#   step NAME CMD [ARG]...   run CMD (a program or a function of this file/the script) in the
#                            current shell, its output indented under
#                            "[guest] step NAME: ok|FAIL (exit N)". A failed step is recorded
#                            (the script then exits 1 in `finish`) and the script goes on.
#                            Variables a function sets stay set.
#   need NAME CMD [ARG]...   the same, but a failure ends the script at once: for
#                            prerequisites later steps depend on (/dev/iommu, the vfio cdev).
#   note TEXT                print "[guest] TEXT".
#   finish                   print the summary and exit 0 if every step passed.
#
# Adding a scenario step is one line: `step device-list iommufdctl ... device list`.
# IFB_KEEP_GOING=1 (kernel command line ifb.keep_going=1) makes `need` go on as well.

IFB_STEPS_OK=0
IFB_STEPS_FAILED=""
IFB_OUT=/tmp/ifb-step.out

note() { echo "[guest] $*"; }

step() { _run_step continue "$@"; }
need() { _run_step stop "$@"; }

_run_step() {
    _mode=$1; _name=$2; shift 2
    _t0=$(cut -d' ' -f1 /proc/uptime)
    "$@" >"$IFB_OUT" 2>&1
    _rc=$?
    _t1=$(cut -d' ' -f1 /proc/uptime)
    _dt=$(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.2f", b - a }')
    if [ $_rc = 0 ]; then
        echo "[guest] step $_name: ok (${_dt}s)"
        IFB_STEPS_OK=$((IFB_STEPS_OK + 1))
    else
        echo "[guest] step $_name: FAIL (exit $_rc, ${_dt}s): $*"
        IFB_STEPS_FAILED="$IFB_STEPS_FAILED $_name"
    fi
    sed 's/^/[guest]   | /' "$IFB_OUT"
    if [ $_rc != 0 ] && [ $_mode = stop ] && [ "${IFB_KEEP_GOING:-0}" != 1 ]; then
        note "prerequisite '$_name' failed: stopping here"
        finish
    fi
    return 0
}

finish() {
    if [ -z "$IFB_STEPS_FAILED" ]; then
        echo "[guest] RESULT: PASS ($IFB_STEPS_OK steps ok)"
        exit 0
    fi
    echo "[guest] RESULT: FAIL (failed:$IFB_STEPS_FAILED; $IFB_STEPS_OK steps ok)"
    exit 1
}

# ---- small checks usable as step commands (they print what they found) -------------------

# fail with a message
fail() { echo "$*" >&2; return 1; }

need_char_dev() { [ -c "$1" ] || fail "$1: missing or not a character device"; ls -l "$1"; }

# open a device node read-write and close it again (proves the driver behind it answers open)
open_rw() { exec 3<>"$1" || fail "cannot open $1 read-write"; exec 3>&-; echo "opened $1 rw"; }

# wait_for PATH [SECONDS]: the deadline (default 60 s) only catches a hang; TCG on a busy host is slow
wait_for() {
    _i=0
    while [ ! -e "$1" ]; do
        _i=$((_i + 1))
        [ $_i -gt $((${2:-60} * 10)) ] && { fail "$1 did not appear within ${2:-60}s"; return 1; }
        sleep 0.1
    done
    ls -l "$1"
}

# find_pci VENDOR DEVICE -> sets PCI_BDF to the first matching device (ids like 0x8086 0x10d3)
find_pci() {
    PCI_BDF=""
    for _d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$_d/vendor")" = "$1" ] && [ "$(cat "$_d/device")" = "$2" ]; then
            PCI_BDF=${_d##*/}
            break
        fi
    done
    [ -n "$PCI_BDF" ] || { fail "no PCI device $1:$2; devices:"; ls /sys/bus/pci/devices >&2; return 1; }
    echo "PCI $1:$2 at $PCI_BDF"
}

# bind_vfio BDF: bind a PCI device to vfio-pci through driver_override
bind_vfio() {
    _dev=/sys/bus/pci/devices/$1
    [ -d "$_dev" ] || { fail "$_dev: no such device"; return 1; }
    if [ -e "$_dev/driver" ]; then
        echo "$1 bound to $(basename "$(readlink "$_dev/driver")"), unbinding"
        echo "$1" > "$_dev/driver/unbind" || return 1
    fi
    echo vfio-pci > "$_dev/driver_override" || return 1
    echo "$1" > /sys/bus/pci/drivers_probe || return 1
    _drv=$(basename "$(readlink "$_dev/driver" 2>/dev/null)" 2>/dev/null)
    [ "$_drv" = vfio-pci ] || { fail "$1: driver is '${_drv:-none}' after drivers_probe, not vfio-pci"; return 1; }
    echo "$1 bound to vfio-pci"
}

# cgroup2 with the memory controller; create the guest's and the daemon's cgroups
cg_setup() {
    _cg=/sys/fs/cgroup
    grep -q "^cgroup2 $_cg cgroup2" /proc/mounts || { fail "cgroup2 not mounted at $_cg"; return 1; }
    grep -qw memory "$_cg/cgroup.controllers" || { fail "memory controller unavailable: $(cat $_cg/cgroup.controllers)"; return 1; }
    echo +memory > "$_cg/cgroup.subtree_control" || return 1
    for _g in guest daemon; do
        mkdir -p "$_cg/$_g" || return 1
        [ -f "$_cg/$_g/memory.current" ] || { fail "$_cg/$_g/memory.current missing"; return 1; }
        echo "$_cg/$_g: memory.current=$(cat "$_cg/$_g/memory.current")"
    done
    echo "subtree_control: $(cat "$_cg/cgroup.subtree_control")"
}

# ---- the broker daemon --------------------------------------------------------------------
IFB_SOCKET=/run/iommufd-broker/rpc.sock
IFB_DAEMON_LOG=/tmp/iommufd-brokerd.log
IFB_DAEMON_PID=""

# daemon_start [EXTRA ARGS]: start iommufd-brokerd on the kernel backend inside the daemon's
# cgroup (/sys/fs/cgroup/daemon, made by cg_setup) and wait for its socket.
daemon_start() {
    mkdir -p /run/iommufd-broker
    sh -c 'echo $$ > /sys/fs/cgroup/daemon/cgroup.procs && exec "$@"' sh \
        iommufd-brokerd --backend kernel --socket "$IFB_SOCKET" --runtime-dir /run/iommufd-broker "$@" \
        >"$IFB_DAEMON_LOG" 2>&1 &
    IFB_DAEMON_PID=$!
    _i=0
    while [ ! -S "$IFB_SOCKET" ]; do
        if ! kill -0 "$IFB_DAEMON_PID" 2>/dev/null; then
            wait "$IFB_DAEMON_PID"; _rc=$?
            IFB_DAEMON_PID=""
            fail "iommufd-brokerd exited $_rc before listening; its log:"; cat "$IFB_DAEMON_LOG" >&2
            return 1
        fi
        _i=$((_i + 1))
        [ $_i -gt 1200 ] && { fail "no socket $IFB_SOCKET after 120s; log:"; cat "$IFB_DAEMON_LOG" >&2; return 1; }
        sleep 0.1
    done
    echo "iommufd-brokerd pid $IFB_DAEMON_PID listening on $IFB_SOCKET, cgroup $(cat /proc/$IFB_DAEMON_PID/cgroup)"
}

# daemon_stop: SIGTERM, wait, show the log; fails if the daemon was gone or exited non-zero
daemon_stop() {
    [ -n "$IFB_DAEMON_PID" ] || { fail "daemon not running"; return 1; }
    kill -0 "$IFB_DAEMON_PID" 2>/dev/null || { fail "daemon died earlier; log:"; cat "$IFB_DAEMON_LOG" >&2; return 1; }
    kill -TERM "$IFB_DAEMON_PID"
    wait "$IFB_DAEMON_PID"; _rc=$?
    IFB_DAEMON_PID=""
    echo "iommufd-brokerd exited $_rc after SIGTERM; log:"
    sed 's/^/  /' "$IFB_DAEMON_LOG"
    [ $_rc = 0 ]
}

# have PROGRAM: is it in the initramfs?
have() { command -v "$1" >/dev/null 2>&1; }

# ---- results, the broker's CLI and the VMM stand-in ----------------------------------------

# result TEXT: a headline of this boot; run.sh repeats every "IFB-RESULT" line in its summary
result() { echo "IFB-RESULT $*"; }

export IOMMUFD_BROKER_SOCKET=$IFB_SOCKET
ctl() { iommufdctl --socket "$IFB_SOCKET" "$@"; }

# json_int KEY: the first integer value of "KEY" in the JSON on stdin
json_int() { sed -n "s/.*\"$1\": *\([0-9-]*\).*/\1/p" | head -n1; }

# find_pci_all VENDOR DEVICE COUNT -> PCI_BDFS: every matching device; at least COUNT of them
find_pci_all() {
    PCI_BDFS=""
    for _d in /sys/bus/pci/devices/*; do
        [ "$(cat "$_d/vendor")" = "$1" ] && [ "$(cat "$_d/device")" = "$2" ] && PCI_BDFS="$PCI_BDFS ${_d##*/}"
    done
    PCI_BDFS=${PCI_BDFS# }
    _n=$(echo $PCI_BDFS | wc -w)
    [ "$_n" -ge "$3" ] || { fail "want $3 PCI devices $1:$2, found $_n; devices:"; ls /sys/bus/pci/devices >&2; return 1; }
    echo "PCI $1:$2 at: $PCI_BDFS"
}

# refused ERROR-NAME CMD...: CMD must fail and say [ERROR-NAME] (the broker's stable error name)
refused() {
    _want=$1; shift
    if "$@" >/tmp/ifb-refused.out 2>&1; then
        cat /tmp/ifb-refused.out; fail "expected a refusal [$_want], but it succeeded"; return 1
    fi
    cat /tmp/ifb-refused.out
    grep -q "\[$_want[],]" /tmp/ifb-refused.out || { fail "refused, but not with [$_want]"; return 1; }
}

# vmm_start VM ARGS...: vmm-peer (the VMM stand-in: vm.fds, then uAPI calls on the fds) started
# inside the guest's cgroup; waits for its JSON line (it then sleeps if given --hold).
# Sets VMM_PID and VMM_JSON.
IFB_VMM_OUT=/tmp/vmm-peer.out
vmm_start() {
    : >"$IFB_VMM_OUT"
    sh -c 'echo $$ > /sys/fs/cgroup/guest/cgroup.procs && exec vmm-peer "$@"' sh "$IFB_SOCKET" "$@" >"$IFB_VMM_OUT" 2>&1 &
    VMM_PID=$!
    _i=0
    while ! grep -q '^{' "$IFB_VMM_OUT"; do
        if ! kill -0 "$VMM_PID" 2>/dev/null; then break; fi
        _i=$((_i + 1))
        [ $_i -gt 1200 ] && { fail "vmm-peer printed nothing within 120s"; break; }
        sleep 0.1
    done
    VMM_JSON=$(grep '^{' "$IFB_VMM_OUT" | head -n1)
    echo "vmm-peer pid $VMM_PID ($(cat /proc/$VMM_PID/cgroup 2>/dev/null || echo exited)):"
    cat "$IFB_VMM_OUT"
    echo "$VMM_JSON" | grep -q '"ok": *true'
}

# vmm_stop: end the vmm-peer this script started (its fds close; the broker keeps its own)
vmm_stop() {
    [ -n "${VMM_PID:-}" ] || return 0
    kill "$VMM_PID" 2>/dev/null
    wait "$VMM_PID" 2>/dev/null
    echo "vmm-peer $VMM_PID stopped"
    VMM_PID=""
}

# ---- memory accounting -------------------------------------------------------------------

# cg_mem CGROUP: "memory.current sec_pagetables kernel" in bytes
cg_mem() {
    echo "$(cat "$1/memory.current") $(awk '$1 == "sec_pagetables" { print $2 }' "$1/memory.stat")" \
         "$(awk '$1 == "kernel" { print $2 }' "$1/memory.stat")"
}

# charged_attach VM BDF MIN_GUEST_KIB [ARGS]: `vm attach VM BDF [ARGS]` while reading the guest's and the
# daemon's cgroups before and after. Asserts the new HWPT's page tables were charged to the
# guest (memory.current and sec_pagetables deltas >= MIN_GUEST_KIB) and not to the daemon: its
# sec_pagetables delta < 64 KiB, and its kernel delta under half of MIN_GUEST_KIB (the daemon's
# own kernel objects - sockets, pidfds, the state file on tmpfs - move it by a few pages: +80 KiB
# was seen on arm64; a HWPT's tables charged there would move it by MIN_GUEST_KIB or more). The daemon's memory.current may move by up to
# one charge batch per CPU (MEMCG_CHARGE_BATCH = 64 pages, 256 KiB: a cgroup's per-CPU stock is
# refilled 64 pages at a time, here for its own small allocations such as the state file on
# tmpfs; the daemon and its worker may each refill on another CPU), so it is only held to one
# batch per CPU plus 64 KiB of slack (576 KiB on the 2-CPU guests; +404 KiB was seen on arm64).
charged_attach() {
    _vm=$1 _bdf=$2 _min=$3
    shift 3
    _g=/sys/fs/cgroup/guest _d=/sys/fs/cgroup/daemon
    cp $_g/memory.stat /tmp/guest.stat0; cp $_d/memory.stat /tmp/daemon.stat0
    _g0=$(cg_mem $_g) _d0=$(cg_mem $_d)
    ctl vm attach "$_vm" "$_bdf" "$@" || { fail "vm attach $_vm $_bdf $* failed"; return 1; }
    _g1=$(cg_mem $_g) _d1=$(cg_mem $_d)
    _lim=$(( $(grep -c '^processor' /proc/cpuinfo) * 256 + 64 ))
    echo "guest  $_g  before: $_g0  after: $_g1  (memory.current sec_pagetables kernel)"
    echo "daemon $_d before: $_d0  after: $_d1"
    # which memory.stat counters moved (bytes; event counters left out): what a delta was made of
    for _c in guest daemon; do
        echo "$_c memory.stat moved:$(awk 'NR == FNR { a[$1] = $2; next }
            $1 !~ /^(pg|workingset_|thp_|numa_)/ && $2 != a[$1] { printf " %s %+d", $1, $2 - a[$1] }' \
            /tmp/$_c.stat0 /sys/fs/cgroup/$_c/memory.stat)"
    done
    awk -v g0="$_g0" -v g1="$_g1" -v d0="$_d0" -v d1="$_d1" -v min="$_min" -v lim="$_lim" '
    function kib(a, b, i,   x, y) { split(a, x); split(b, y); return (y[i] - x[i]) / 1024 }
    BEGIN {
        gc = kib(g0, g1, 1); gp = kib(g0, g1, 2); gk = kib(g0, g1, 3)
        dc = kib(d0, d1, 1); dp = kib(d0, d1, 2); dk = kib(d0, d1, 3)
        printf "IFB-RESULT accounting: guest cgroup delta %+d KiB (sec_pagetables %+d KiB, kernel %+d KiB); daemon cgroup delta %+d KiB (sec_pagetables %+d KiB, kernel %+d KiB)\n", gc, gp, gk, dc, dp, dk
        ok = gc >= min && gp >= min && dp < 64 && dk < min / 2 && dc <= lim
        printf "accounting %s: want guest memory.current and sec_pagetables >= %d KiB; daemon sec_pagetables < 64 KiB, kernel < %d KiB, memory.current <= %d KiB (one charge batch per CPU)\n", ok ? "ok" : "FAILED", min, min / 2, lim
        exit !ok
    }'
}

# cg_settle: let the memory controller's statistics catch up before memory.stat is read. Its
# per-CPU counters are folded into memory.stat by a periodic flush (every 2 s: FLUSH_TIME in
# mm/memcontrol.c) or once enough updates are pending; a few KiB of kernel objects stay below
# that threshold, so a reading right after them can miss them. 3 s covers one periodic flush;
# it is no deadline and asserts nothing about speed. Slab bytes are exact only to a page per
# CPU either way: each CPU's object stock holds up to a page of a cgroup's slab counter and
# of its charge before folding them in (__account_obj_stock(), refill_obj_stock()).
cg_settle() { sleep 3; }

# cg_measure LABEL CMD...: CMD with the guest's (/guest) and the daemon's (/daemon) memory.stat
# read before and after (cg_settle each time); prints every counter that moved (bytes; event
# counters left out) and the headline "IFB-RESULT memory LABEL: ..." with the kernel,
# slab_unreclaimable, sec_pagetables and memory.current deltas of both. Sets CG_GK/CG_DK (the
# guest's and the daemon's `kernel` delta, bytes), CG_GS (the guest's slab_unreclaimable delta)
# and CG_GC (the guest's memory.current delta).
# Fails when CMD fails or the daemon's `kernel` grew by 64 KiB or more (what the daemon's own
# sockets, pidfds and state file move it by stays under that: +0 to +80 KiB seen).
cg_measure() {
    _label=$1; shift
    cg_settle
    cp /sys/fs/cgroup/guest/memory.stat /tmp/cgm.guest0; cp /sys/fs/cgroup/daemon/memory.stat /tmp/cgm.daemon0
    _gc0=$(cat /sys/fs/cgroup/guest/memory.current) _dc0=$(cat /sys/fs/cgroup/daemon/memory.current)
    "$@" || { fail "$_label: $* failed"; return 1; }
    cg_settle
    _gc1=$(cat /sys/fs/cgroup/guest/memory.current) _dc1=$(cat /sys/fs/cgroup/daemon/memory.current)
    for _c in guest daemon; do
        echo "$_c memory.stat moved:$(awk 'NR == FNR { a[$1] = $2; next }
            $1 !~ /^(pg|workingset_|thp_|numa_)/ && $2 != a[$1] { printf " %s %+d", $1, $2 - a[$1] }' \
            /tmp/cgm.${_c}0 /sys/fs/cgroup/$_c/memory.stat)"
    done
    _stat() { awk -v k="$2" 'NR == FNR { if ($1 == k) a = $2; next } $1 == k { print $2 - a }' "/tmp/cgm.${1}0" "/sys/fs/cgroup/$1/memory.stat"; }
    CG_GK=$(_stat guest kernel) CG_DK=$(_stat daemon kernel) CG_GC=$((_gc1 - _gc0))
    CG_GS=$(_stat guest slab_unreclaimable)
    echo "IFB-RESULT memory $_label: guest kernel $(kib_s "$CG_GK") (slab_unreclaimable $(kib_s "$(_stat guest slab_unreclaimable)"), sec_pagetables $(kib_s "$(_stat guest sec_pagetables)"), memory.current $(kib_s "$CG_GC")); daemon kernel $(kib_s "$CG_DK") (memory.current $(kib_s $((_dc1 - _dc0))))"
    [ "$CG_DK" -lt 65536 ] || { fail "$_label: the daemon's kernel memory grew by $CG_DK bytes (>= 64 KiB)"; return 1; }
}

# kib_s BYTES: "+1.5 KiB" (signed, one decimal)
kib_s() { awk -v b="$1" 'BEGIN { printf "%+.1f KiB", b / 1024 }'; }
