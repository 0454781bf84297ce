# Helpers for the guest scripts (busybox sh). Installed in the initramfs as /ifb/guest-lib.sh;
# a guest script starts with `. /ifb/guest-lib.sh` and ends with `finish`.
#
#   step NAME CMD [ARG]...   run CMD (a program or a function of this file/the script) in the
#                            current shell, its output indented under
#                            "[guest] step NAME: ok|FAIL (exit N)". A failing step ends the
#                            script at once (later steps usually depend on it), unless
#                            IFB_KEEP_GOING=1. Variables a function sets stay set.
#   note TEXT                print "[guest] TEXT".
#   finish                   print the summary and exit 0 if every step passed.
#
# Adding a scenario step is one line: `step daemon-start start_daemon` etc.

IFB_STEPS_OK=0
IFB_STEPS_FAILED=""
IFB_OUT=/tmp/ifb-step.out

note() { echo "[guest] $*"; }

step() {
    _name=$1; shift
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
    if [ $_rc != 0 ] && [ "${IFB_KEEP_GOING:-0}" != 1 ]; then
        finish
    fi
    return 0
}

finish() {
    if [ -z "$IFB_STEPS_FAILED" ]; then
        echo "[guest] RESULT: PASS ($IFB_STEPS_OK steps ok)"
        exit 0
    fi
    echo "[guest] RESULT: FAIL (failed:$IFB_STEPS_FAILED; $IFB_STEPS_OK steps ok before)"
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

# have PROGRAM: is it in the initramfs?
have() { command -v "$1" >/dev/null 2>&1; }
