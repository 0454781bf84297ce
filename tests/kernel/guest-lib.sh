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

# wait_for PATH [SECONDS]
wait_for() {
    _i=0
    while [ ! -e "$1" ]; do
        _i=$((_i + 1))
        [ $_i -gt $((${2:-5} * 10)) ] && { fail "$1 did not appear within ${2:-5}s"; return 1; }
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
        [ $_i -gt 100 ] && { fail "no socket $IFB_SOCKET after 10s; log:"; cat "$IFB_DAEMON_LOG" >&2; return 1; }
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
