# A managed device on the real kernel, sourced by guest-vtd.sh after the daemon started (with
# [devices] allow naming BDF2) and guest-qemu.sh: the second e1000e, which booted on the e1000e
# driver with its netdev, is attached --managed (the broker's worker writes driver_override,
# unbinds it and probes it onto vfio-pci, and waits for its cdev), Debian's QEMU realizes it
# through `iommufdctl exec`, and after `vm destroy` it is back on e1000e with its netdev.

# managed_on_e1000e BDF: on the e1000e driver, with a netdev (sets MANAGED_NETDEV)
managed_on_e1000e() {
    _mdev=/sys/bus/pci/devices/$1
    _mdrv=$(basename "$(readlink "$_mdev/driver" 2>/dev/null)" 2>/dev/null)
    [ "$_mdrv" = e1000e ] || { fail "$1: on driver '${_mdrv:-none}', not e1000e"; return 1; }
    MANAGED_NETDEV=$(ls "$_mdev/net" 2>/dev/null | head -n1)
    [ -n "$MANAGED_NETDEV" ] || { fail "$1: on e1000e but without a netdev"; return 1; }
    echo "$1: driver e1000e, netdev $MANAGED_NETDEV, driver_override $(cat "$_mdev/driver_override")"
}

managed_attach() {
    _before=$MANAGED_NETDEV
    ctl vm attach m1 "$1" --managed || return 1
    _mdev=/sys/bus/pci/devices/$1
    _mdrv=$(basename "$(readlink "$_mdev/driver" 2>/dev/null)" 2>/dev/null)
    [ "$_mdrv" = vfio-pci ] || { fail "$1: on '${_mdrv:-none}' after the managed attach, not vfio-pci"; return 1; }
    _mcdev=$(ls "$_mdev/vfio-dev/" 2>/dev/null)
    [ -c "/dev/vfio/devices/$_mcdev" ] || { fail "$1: no cdev node for '$_mcdev'"; return 1; }
    [ -e "$_mdev/net" ] && { fail "$1: still has a netdev on vfio-pci"; return 1; }
    ctl --json vm show m1 | tr -d ' \n' | grep -q '"managed":true,"host_driver":"e1000e"' ||
        { ctl --json vm show m1; fail "vm show does not record host_driver e1000e"; return 1; }
    result "vtd managed: $1 taken by the broker from e1000e (netdev $_before) onto vfio-pci ($_mcdev, driver_override $(cat "$_mdev/driver_override")), host_driver e1000e recorded"
}

# managed_destroyed BDF: vm destroy m1, then BDF back on e1000e with a netdev (60 s at most)
managed_destroyed() {
    ctl vm destroy m1 || return 1
    _i=0
    until managed_on_e1000e "$1" >/tmp/managed.out 2>&1; do
        _i=$((_i + 1))
        [ $_i -gt 600 ] && { cat /tmp/managed.out; fail "$1 not back on e1000e 60 s after vm destroy"; return 1; }
        sleep 0.1
    done
    cat /tmp/managed.out
    result "vtd managed: after vm destroy $1 is back on e1000e with netdev $MANAGED_NETDEV (driver_override $(cat "/sys/bus/pci/devices/$1/driver_override"), after $((_i / 10)).$((_i % 10)) s)"
}

need managed-boots-e1000e managed_on_e1000e "$BDF2"
step managed-vm-create  ctl vm create m1 --cgroup /guest
step managed-attach     managed_attach "$BDF2"
step managed-qemu       qemu_broker m1 "$BDF2" qemu-managed
step managed-qemu-pci   qemu_realized hostnic "vtd managed device (e1000e -> vfio-pci by the broker), QEMU through iommufdctl exec"
step managed-qemu-quit  qemu_quit
step managed-destroy    managed_destroyed "$BDF2"
