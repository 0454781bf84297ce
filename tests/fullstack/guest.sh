#!/bin/bash
# Runs inside the full-stack guest as ifb-fullstack.service (systemd is PID 1), from the test
# disk mounted on /ifb; its output is the serial console. It follows README "Install and run as
# a service" and "libvirt" as a user would, one step per line:
#
#   IFB-FULLSTACK step=NAME ok|FAIL (N s) DETAIL
#
# A failed step prints its log (also kept in /ifb/out/NAME.log); a step whose prerequisite
# failed says so and counts as failed ("not run: ..."). The last line is IFB-GUEST-EXIT=<n>,
# n = number of failed steps (0: every step held). Then the unit powers the machine off.
#
# A step that does not apply to this platform prints `IFB-FULLSTACK step=NAME skipped (0 s) WHY`:
# neither ok nor failed, and counted apart in the summary.
#
# The test disk holds:
#   debs/iommufd-broker_*.deb, debs/newer/*.deb   the package and its version-bumped rebuild
#   readme/web1.xml, readme/qemu-system-x86_64,    the README's domain XML, wrapper and broker
#   readme/broker.conf, readme/web2-native.xml     config, and its libvirt >= 12.2 domain XML
#                                                  (run.sh extracts them from README.md)
#   env                                            platform=..., set by run.sh
# The only changes made to the README's files: the device address (0000:65:00.0 in the README)
# becomes the guest's first e1000e, and type='kvm' becomes type='qemu' where /dev/kvm is absent
# (TCG inside TCG here). The device starts on its host driver (e1000e, with its netdev): the
# README's domains take it managed, and it must be back there after each guest.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= SYSTEMD_COLORS=0
cd /ifb
. /ifb/env
mkdir -p /ifb/out
T_START=$(date +%s)
echo "IFB-GUEST-START uptime=$(cut -d' ' -f1 /proc/uptime)"
failed=0
skipped=0
declare -A status=()
DETAIL=""

# step NAME [needs=STEP,...] FUNCTION: runs FUNCTION (which may set DETAIL), logs its output.
step() {
    local name=$1 fn t0 t rc=0 need n
    shift
    need=""
    case "$1" in needs=*) need=${1#needs=}; shift ;; esac
    fn=$1
    for n in ${need//,/ }; do
        if [ "${status[$n]:-}" != ok ]; then
            echo "IFB-FULLSTACK step=$name FAIL (0 s) not run: needs step=$n, which did not hold"
            status[$name]=FAIL; failed=$((failed + 1)); return 1
        fi
    done
    DETAIL=""
    t0=$(date +%s)
    "$fn" > "/ifb/out/$name.log" 2>&1 || rc=$?
    t=$(( $(date +%s) - t0 ))
    DETAIL=$(printf '%s' "$DETAIL" | tr '\n' ' ')
    if [ $rc = 0 ]; then
        status[$name]=ok
        echo "IFB-FULLSTACK step=$name ok ($t s) $DETAIL"
    else
        status[$name]=FAIL; failed=$((failed + 1))
        [ -n "$DETAIL" ] || DETAIL=$(grep -v '^ *$' "/ifb/out/$name.log" | tail -n 1)
        echo "IFB-FULLSTACK step=$name FAIL ($t s) $DETAIL"
        tail -n 25 "/ifb/out/$name.log" | sed 's/^/    | /'
    fi
    return $rc
}
# skip NAME WHY: a step that does not apply here; reported as skipped, never as ok
skip() {
    status[$1]=skipped; skipped=$((skipped + 1))
    echo "IFB-FULLSTACK step=$1 skipped (0 s) $2"
}
# say: a line into the step's log; fail MSG: sets DETAIL and returns 1
say() { echo "+ $*"; }
fail() { DETAIL=$*; echo "FAIL: $*"; return 1; }
run() { echo "+ $*"; "$@"; }
wait_for() {   # wait_for SECONDS CMD...: until CMD succeeds
    local end=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 1; done
}

DOM=web1
NDOM=web2     # the README's libvirt >= 12.2 domain
SOCK=/run/iommufd-broker/rpc.sock
WRAPPER=/usr/local/libexec/iommufd-broker/qemu-system-x86_64
CONF=/etc/iommufd-broker/broker.conf

# virsh_err OUTPUT: virsh's error on one line, without QEMU's TCG-only "KVM VFIO device isn't
# created yet" warning
virsh_err() { echo "$1" | grep -v -e '^$' -e "KVM VFIO device isn't created yet" | tr '\n' ' ' | cut -c1-400; }

# ---- the checks a step makes ----------------------------------------------------------------
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
broker_pid() { systemctl show -P MainPID iommufd-broker.service; }
pci_has_device() {    # QEMU realized vfio-pci from the broker's fds: query-pci lists 8086:10d3
    virsh qemu-monitor-command "$1" --pretty '{"execute":"query-pci"}' > "/ifb/out/query-pci-$1.json" || return 1
    grep -q '"device": 4307' "/ifb/out/query-pci-$1.json" && grep -q '"vendor": 32902' "/ifb/out/query-pci-$1.json"
}
broker_has() {        # the broker holds guest $1 with device $BDF
    iommufdctl vm list | awk -v n="$1" '$1 == n' | grep -q . &&
    iommufdctl devices | awk -v d="$BDF" '$1 == d' | grep -qw "$1"
}
# whole: the domain runs with the same QEMU as before, the device is still realized in it, the
# broker still has the guest and its device.
whole() {
    local st pid
    st=$(virsh domstate "$DOM" 2>&1)
    [ "$st" = running ] || { fail "domain $DOM is '$st', not running"; return 1; }
    pid=$(qemu_pid "$DOM")
    [ "$pid" = "$QEMU_PID" ] || { fail "QEMU pid changed: $QEMU_PID -> ${pid:-none}"; return 1; }
    kill -0 "$pid" || { fail "QEMU $pid is gone"; return 1; }
    pci_has_device "$DOM" || { fail "query-pci no longer lists the vfio-pci device"; return 1; }
    on_vfio || { fail "$BDF left vfio-pci while $DOM runs ($(where))"; return 1; }
    wait_for 20 broker_has "$DOM" || { fail "the broker no longer lists $DOM with $BDF: $(iommufdctl vm list 2>&1 | tr '\n' ' ')"; return 1; }
}
holders_of() {        # processes with an fd on a VFIO cdev or on /dev/iommu (pid:comm:target); the
    local f t p       # guest's second e1000e stays on its host driver, so a cdev here is $BDF's
    for f in /proc/[0-9]*/fd/*; do
        t=$(readlink "$f" 2>/dev/null) || continue
        case "$t" in /dev/vfio/devices/*|/dev/iommu) p=${f#/proc/}; p=${p%%/*}; echo "$p:$(cat /proc/$p/comm 2>/dev/null):$t" ;; esac
    done | sort -u
}
cdev_holders() { holders_of | grep ':/dev/vfio/devices/' | tr '\n' ' '; }
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$BDF/driver" 2>/dev/null)" 2>/dev/null; }
netdev_of() { ls "/sys/bus/pci/devices/$BDF/net/" 2>/dev/null | head -n1; }
# on_host: $BDF is on its host driver (e1000e) with its netdev, as before any guest took it
on_host() { [ "$(driver_of)" = "$HOST_DRIVER" ] && [ -n "$(netdev_of)" ]; }
on_vfio() { [ "$(driver_of)" = vfio-pci ] && [ -n "$(ls "/sys/bus/pci/devices/$BDF/vfio-dev/" 2>/dev/null)" ]; }
where() { echo "driver '$(driver_of)', netdev '$(netdev_of)', override '$(cat "/sys/bus/pci/devices/$BDF/driver_override" 2>/dev/null)'"; }
# back_home WHAT: wait until $BDF is back on its host driver with its netdev
back_home() {
    wait_for 60 on_host || { fail "$1: $BDF is not back on $HOST_DRIVER with its netdev ($(where))"; return 1; }
}
# the README's broker.conf with this guest's device, plus any extra lines
write_conf() {
    mkdir -p /etc/iommufd-broker
    { sed "s/0000:65:00\.0/$BDF/g" /ifb/readme/broker.conf; [ $# = 0 ] || printf '%s\n' "$@"; } > "$CONF"
}
# the domain XML of the README, with this guest's device and accelerator
domain_xml() {        # domain_xml NAME MACHINE [EXTRA_DEVICE_XML]
    local type=kvm
    [ -e /dev/kvm ] || type=qemu
    sed -e "s/0000:65:00\.0/$BDF/g" -e "s/<domain type='kvm'/<domain type='$type'/" \
        -e "s|<name>web1</name>|<name>$1</name>|" -e "s/machine='q35'/machine='$2'/" /ifb/readme/web1.xml |
    if [ -n "${3:-}" ]; then sed "s|</devices>|</devices>\n  $3|"; else cat; fi
}

# ---- steps ----------------------------------------------------------------------------------
s_system() {
    run systemctl --failed --no-legend
    wait_for 60 systemctl is-active -q libvirtd.service || wait_for 5 systemctl is-active -q libvirtd.socket ||
        { fail "libvirtd is not running: $(systemctl is-active libvirtd.service libvirtd.socket | tr '\n' ' ')"; return 1; }
    run systemctl is-active virtlogd.socket || { fail "virtlogd.socket is not active"; return 1; }
    run virsh -c qemu:///system version || { fail "virsh version failed"; return 1; }
    run busctl status org.freedesktop.machine1 >/dev/null || { fail "systemd-machined cannot be reached on the bus"; return 1; }
    DETAIL="systemd $(systemctl --version | awk 'NR==1 {print $2}'), libvirt $(virsh -c qemu:///system version | awk '/library: libvirt/ {print $NF; exit}'), $(qemu-system-x86_64 --version | head -n1 | awk '{print "QEMU " $4}'), kernel $(uname -r), machined active=$(systemctl is-active systemd-machined), pid1=$(cat /proc/1/comm), failed units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
}

s_device() {
    # README "Managed devices": the device stays on its host driver until a guest takes it. The
    # e1000e carry no network configuration here (nothing brings them up); the broker's "host's way
    # out" refusal is for an interface that is up with an address, and the README's allow-list
    # names the address itself, which is the operator's word that it may be taken.
    local d n=0
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10d3 ] || continue
        n=$((n + 1))
        [ -n "${BDF:-}" ] || BDF=${d##*/}
    done
    [ $n -gt 0 ] || { fail "no e1000e (8086:10d3) in the guest"; return 1; }
    HOST_DRIVER=$(driver_of)
    run ls -l "/sys/bus/pci/devices/$BDF/" | grep -E 'driver|net|iommu_group'
    [ "$HOST_DRIVER" = e1000e ] || { fail "$BDF is on '$HOST_DRIVER', not e1000e"; return 1; }
    wait_for 30 sh -c "ls /sys/bus/pci/devices/$BDF/net/ | grep -q ." || { fail "$BDF on e1000e has no netdev"; return 1; }
    local nd=$(netdev_of)
    run cat /proc/net/route; run cat /proc/net/if_inet6
    run cat "/sys/class/net/$nd/operstate"
    DETAIL="$n e1000e on their host driver; the domain gets $BDF (driver $HOST_DRIVER, netdev $nd, operstate $(cat "/sys/class/net/$nd/operstate"), routes through it: $(awk -v n="$nd" '$1 == n' /proc/net/route | wc -l)); /dev/iommu $( [ -c /dev/iommu ] && echo present || echo MISSING)"
}

s_install() {
    local deb
    deb=$(ls debs/iommufd-broker_*.deb)
    run apt install -y ./"$deb" || { fail "apt install ./$deb failed"; return 1; }
    run getent group iommufd-broker || { fail "installing did not create the group iommufd-broker"; return 1; }
    [ "$(systemctl is-enabled iommufd-broker.socket)" = enabled ] || { fail "iommufd-broker.socket is not enabled"; return 1; }
    run systemctl is-active iommufd-broker.socket || { fail "iommufd-broker.socket is not active"; return 1; }
    run ls -l "$SOCK"; run id libvirt-qemu
    DETAIL="$(dpkg-query -W -f='${Version}' iommufd-broker); group iommufd-broker made, iommufd-broker.socket enabled and active"
}

s_access() {
    # README "libvirt": the launcher runs as libvirt's QEMU user; it must be able to connect to a
    # socket of the broker's (rpc.sock, or a VMM socket where the package has one).
    local s ok=""
    for s in /run/iommufd-broker/*.sock; do
        run ls -l "$s"
        runuser -u libvirt-qemu -- test -w "$s" && ok="$ok ${s##*/}"
    done
    if [ -z "$ok" ]; then
        fail "libvirt's QEMU user (libvirt-qemu, groups $(id -Gn libvirt-qemu | tr ' ' ,)) may connect to none of the broker's sockets ($(stat -c '%n %A %U:%G' /run/iommufd-broker/*.sock | tr '\n' ' ')): the package gives it no access"
        return 1
    fi
    DETAIL="libvirt-qemu may connect to$ok"
}

s_configure() {
    # README "libvirt": the wrapper, the lifecycle watcher, and libvirtd restarted once so it
    # finds the hook the package installed while it ran.
    run install -D -m 0755 /ifb/readme/qemu-system-x86_64 "$WRAPPER"
    run cat "$WRAPPER"
    write_conf
    run cat "$CONF"
    # the broker reads its configuration when it starts (socket-activated: maybe not yet)
    run systemctl try-restart iommufd-broker
    run systemctl restart libvirtd || { fail "systemctl restart libvirtd failed"; return 1; }
    run ls -l /etc/libvirt/hooks/qemu.d/
    DETAIL="wrapper $WRAPPER, broker.conf: $(grep -v '^ *$' "$CONF" | tr '\n' ' '), libvirtd restarted for the hook"
}

# start_failed DOMAIN MESSAGE: DETAIL says MESSAGE; the log gets the journal's and QEMU's last lines
start_failed() {
    fail "$2"
    journalctl -b --no-pager -n 40 -u iommufd-broker -u libvirtd | sed 's/^/journal: /'
    tail -n 15 "/var/log/libvirt/qemu/$1.log" 2>/dev/null | sed 's/^/qemu log: /'
}

# try_start XMLFILE: define and start $DOM; on failure DETAIL has virsh's error
try_start() {
    virsh domstate "$DOM" >/dev/null 2>&1 && run virsh undefine "$DOM"
    run virsh define "$1" || { fail "virsh define failed"; return 1; }
    local out rc=0
    out=$(virsh start "$DOM" 2>&1) || rc=$?
    echo "$out"
    [ $rc = 0 ] || { start_failed "$DOM" "virsh start: $(virsh_err "$out")"; return 1; }
    QEMU_PID=$(qemu_pid "$DOM")
    on_vfio || { fail "$DOM runs, but $BDF is not on vfio-pci ($(where))"; return 1; }
    DETAIL="$DOM running, QEMU pid $QEMU_PID as $(ps -o user= -p "$QEMU_PID") in $(cut -d: -f3 /proc/$QEMU_PID/cgroup); $BDF taken from $HOST_DRIVER to vfio-pci"
}

s_start() {
    domain_xml "$DOM" q35 > /ifb/out/web1.xml
    try_start /ifb/out/web1.xml
}

# When the README's flow does not start the domain, the workarounds of issue 26 are applied one
# after the other, each reported on its own line, to show the next defect behind the first: a
# group membership given by hand, CAP_KILL given to the unit, <memoryBacking><locked/>. When the
# domain then starts, the later steps run on it, so they are tested on today's code too; "start"
# has failed all the same.
s_wa_group() {
    run usermod -aG iommufd-broker libvirt-qemu
    run systemctl restart libvirtd
    try_start /ifb/out/web1.xml
}
s_wa_capkill() {
    mkdir -p /etc/systemd/system/iommufd-broker.service.d
    printf '[Service]\nCapabilityBoundingSet=CAP_KILL\n' > /etc/systemd/system/iommufd-broker.service.d/workaround.conf
    run systemctl daemon-reload
    run systemctl restart iommufd-broker
    try_start /ifb/out/web1.xml
}
s_wa_locked() {
    sed "s|</vcpu>|</vcpu>\n  <memoryBacking><locked/></memoryBacking>|" /ifb/out/web1.xml > /ifb/out/web1-locked.xml
    try_start /ifb/out/web1-locked.xml
}
workarounds() {
    [ "${status[start]}" = FAIL ] && [ "${status[configure]:-}" = ok ] || return 0
    local w
    for w in group capkill locked; do
        wstep "start+wa-$w" "s_wa_$w" && { status[start]=ok; WORKAROUNDS="$WORKAROUNDS $w"; return 0; }
        WORKAROUNDS="$WORKAROUNDS $w"
    done
}
# wstep: like step, but a diagnostic: not counted as a step of its own
wstep() {
    local name=$1 fn=$2 t0 rc=0
    DETAIL=""; t0=$(date +%s)
    "$fn" > "/ifb/out/$name.log" 2>&1 || rc=$?
    DETAIL=$(printf '%s' "$DETAIL" | tr '\n' ' ')
    if [ $rc = 0 ]; then
        echo "IFB-FULLSTACK workaround step=$name ok ($(( $(date +%s) - t0 )) s) $DETAIL"
    else
        echo "IFB-FULLSTACK workaround step=$name FAIL ($(( $(date +%s) - t0 )) s) $DETAIL"
        tail -n 12 "/ifb/out/$name.log" | sed 's/^/    | /'
    fi
    return $rc
}
WORKAROUNDS=""

s_realized() {
    pci_has_device "$DOM" || { cat "/ifb/out/query-pci-$DOM.json"; fail "query-pci does not list the vfio-pci device (8086:10d3)"; return 1; }
    local holders
    holders=$(holders_of | tr '\n' ' ')
    DETAIL="query-pci lists 8086:10d3 (the e1000e on vfio-pci); open on /dev/iommu and the cdev (pid:command:node): $holders"
}

s_vmlist() {
    run iommufdctl vm list
    run machinectl list --no-legend
    local cg
    cg=$(iommufdctl vm list | awk -v n="$DOM" '$1 == n {print $4}')
    [ -n "$cg" ] || { fail "iommufdctl vm list has no $DOM"; return 1; }
    case "$cg" in
        /machine.slice/machine-qemu*"$DOM".scope*) ;;
        *) fail "$DOM's cgroup is $cg, not machined's scope (/machine.slice/machine-qemu...-$DOM.scope)"; return 1 ;;
    esac
    grep -q "^0::$cg" "/proc/$QEMU_PID/cgroup" || echo "note: QEMU runs in $(cut -d: -f3 /proc/$QEMU_PID/cgroup)"
    DETAIL="$DOM in $cg; machinectl: $(machinectl list --no-legend | awk '{print $1}' | tr '\n' ' ')"
}

s_restart() {
    local p0=$(broker_pid)
    run systemctl restart iommufd-broker || { fail "systemctl restart iommufd-broker failed"; return 1; }
    whole || return 1
    DETAIL="broker pid $p0 -> $(broker_pid); $DOM running, QEMU $QEMU_PID, device realized"
}

s_kill() {
    local p0=$(broker_pid) p1
    run systemctl kill -s KILL iommufd-broker
    wait_for 30 sh -c "p=\$(systemctl show -P MainPID iommufd-broker); [ \"\$p\" != 0 ] && [ \"\$p\" != $p0 ] && systemctl is-active -q iommufd-broker" ||
        { fail "the broker did not come back after SIGKILL ($(systemctl is-active iommufd-broker))"; return 1; }
    whole || return 1
    DETAIL="broker pid $p0 killed, restarted as $(broker_pid); $DOM whole"
}

s_hang() {
    local p0=$(broker_pid) t0=$(date +%s) wd
    wd=$(systemctl show -P WatchdogUSec iommufd-broker)
    run systemctl kill -s STOP --kill-whom=main iommufd-broker
    wait_for 150 sh -c "p=\$(systemctl show -P MainPID iommufd-broker); [ \"\$p\" != 0 ] && [ \"\$p\" != $p0 ] && systemctl is-active -q iommufd-broker" ||
        { fail "the stopped broker was not restarted within 150 s (WatchdogSec $wd)"; return 1; }
    local t=$(( $(date +%s) - t0 ))
    journalctl -b --no-pager -u iommufd-broker | grep -i watchdog | tail -n 3
    whole || return 1
    DETAIL="SIGSTOP; the watchdog ($wd) restarted it after $t s as $(broker_pid); $DOM whole"
}

s_upgrade() {
    local deb v0=$(dpkg-query -W -f='${Version}' iommufd-broker)
    deb=$(ls debs/newer/iommufd-broker_*.deb)
    run apt install -y ./"$deb" || { fail "apt install ./$deb failed"; return 1; }
    systemctl is-active -q iommufd-broker.socket || { fail "the socket is not active after the upgrade"; return 1; }
    whole || return 1
    DETAIL="$v0 -> $(dpkg-query -W -f='${Version}' iommufd-broker) while $DOM ran; broker $(systemctl is-active iommufd-broker) (pid $(broker_pid)); $DOM whole"
}

s_libvirtd() {
    run systemctl restart libvirtd || { fail "systemctl restart libvirtd failed"; return 1; }
    wait_for 30 virsh domstate "$DOM"
    whole || return 1
    DETAIL="libvirtd restarted; $DOM whole"
}

s_journal() {
    local n
    n=$(journalctl -b --no-pager IFB_VM="$DOM" -o cat | wc -l)
    journalctl -b --no-pager IFB_VM="$DOM" -o cat | tail -n 20
    [ "$n" -gt 0 ] || { fail "journalctl IFB_VM=$DOM shows nothing"; return 1; }
    DETAIL="journalctl IFB_VM=$DOM: $n lines, e.g. '$(journalctl -b --no-pager IFB_VM="$DOM" -o cat | head -n1 | cut -c1-120)'"
}

s_security() {
    local line v
    run systemd-analyze security --no-pager iommufd-broker.service | tail -n 5
    line=$(systemd-analyze security --no-pager iommufd-broker.service | grep 'Overall exposure level')
    v=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -n1)
    [ -n "$v" ] || { fail "no exposure level in systemd-analyze's output"; return 1; }
    DETAIL="exposure $v (${line##*: })"
    awk -v v="$v" 'BEGIN {exit !(v <= 1.2)}' || { fail "exposure $v > 1.2"; return 1; }
}

s_destroy() {
    run virsh destroy "$DOM" || { fail "virsh destroy failed"; return 1; }
    wait_for 20 sh -c "! iommufdctl vm list | awk '\$1 == \"$DOM\"' | grep -q ." ||
        { fail "the broker still lists $DOM after virsh destroy: $(iommufdctl vm list | tr '\n' ' ')"; return 1; }
    run iommufdctl devices
    local owner holders
    owner=$(iommufdctl devices | awk -v d="$BDF" '$1 == d {print $NF}')
    iommufdctl devices | awk -v d="$BDF" '$1 == d' | grep -qw "$DOM" && { fail "$BDF still owned by $DOM"; return 1; }
    holders=$(holders_of | grep -v ':iommufd-broker' | tr '\n' ' ')
    back_home "after virsh destroy" || return 1
    [ -z "$(cdev_holders)" ] || { fail "something still holds a VFIO cdev: $(cdev_holders)"; return 1; }
    DETAIL="$DOM gone from the broker, $BDF back on $(driver_of) with netdev $(netdev_of) (owner column '$owner'), nobody holds a VFIO cdev${holders:+; /dev/iommu held by: $holders}; Mlocked $(awk '/^Mlocked/ {print $2 $3}' /proc/meminfo)"
}

s_pc() {
    domain_xml web1pc pc > /ifb/out/web1pc.xml
    case "$WORKAROUNDS" in *locked*)   # as the q35 domain started: with <locked/>
        sed -i "s|</vcpu>|</vcpu>\n  <memoryBacking><locked/></memoryBacking>|" /ifb/out/web1pc.xml ;; esac
    run virsh define /ifb/out/web1pc.xml || { fail "virsh define (pc) failed"; return 1; }
    local out rc=0
    out=$(virsh start web1pc 2>&1) || rc=$?
    echo "$out"
    [ $rc = 0 ] || { fail "virsh start (machine pc): $(virsh_err "$out")"; virsh undefine web1pc; return 1; }
    pci_has_device web1pc || { fail "pc: query-pci does not list the device"; virsh destroy web1pc; virsh undefine web1pc; return 1; }
    run virsh destroy web1pc
    wait_for 20 sh -c "! iommufdctl vm list | awk '\$1 == \"web1pc\"' | grep -q ."
    run virsh undefine web1pc
    back_home "pc: after virsh destroy" || return 1
    DETAIL="the README's XML with machine='pc' starts${WORKAROUNDS:+ (workarounds:$WORKAROUNDS)}, query-pci lists the device, destroyed, $BDF back on $(driver_of)"
}

# bad_start NAME WHAT PATTERN XML: virsh start must fail with one clear error matching PATTERN
# (grep -Ei) in its output and in the journal, and leave nothing: no guest in the broker, the
# device free, no QEMU.
bad_start() {
    local name=$1 what=$2 pat=$3 xml=$4 out rc=0 since
    echo "$xml" > "/ifb/out/$name.xml"
    run virsh define "/ifb/out/$name.xml" || { fail "virsh define $name failed"; return 1; }
    since=$(date '+%Y-%m-%d %H:%M:%S')
    out=$(virsh start "$name" 2>&1) || rc=$?
    echo "$out"
    run virsh undefine "$name" >/dev/null 2>&1
    [ $rc != 0 ] || { virsh destroy "$name"; fail "$what: virsh start succeeded"; return 1; }
    local err
    err=$(virsh_err "$out")
    echo "$out" | grep -qEi "$pat" || { fail "$what: virsh start failed, but not with a clear reason (/$pat/): $err"; return 1; }
    journalctl --no-pager --since "$since" | grep -Ei "$pat" | tail -n 5 | sed 's/^/journal: /'
    journalctl --no-pager --since "$since" | grep -qEi "$pat" || { fail "$what: the journal does not say why (/$pat/); virsh said: $err"; return 1; }
    sleep 2
    iommufdctl vm list | awk -v n="$name" '$1 == n' | grep -q . && { fail "$what: the broker still has a guest $name (half-made)"; return 1; }
    iommufdctl devices | awk -v d="$BDF" '$1 == d' | grep -qw "$name" && { fail "$what: $BDF is still reserved for $name"; return 1; }
    [ -z "$(cdev_holders)" ] || { fail "$what: a VFIO cdev is still held: $(cdev_holders)"; return 1; }
    back_home "$what" || return 1
    DETAIL="refused: $err; $BDF on $(driver_of)"
}

s_bad_socket() {
    # A domain whose QEMU user (libvirt-qemu) cannot reach the broker: rpc.sock is 0660
    # root:iommufd-broker as installed, and the VMM socket is made root-only for the step, as on a
    # host whose admin keeps it so. (A domain run as another user through <seclabel> fails on
    # libvirt's own master-key.aes before the broker matters.) The error must name the broker.
    local sock=/run/iommufd-broker/vmm.sock mode="" rc=0
    if [ -S "$sock" ]; then
        mode=$(stat -c %a "$sock")
        run chmod 0600 "$sock"
    fi
    bad_start web1nobody "socket unreachable" "broker.*(permission|denied|refused|No such file)" \
        "$(domain_xml web1nobody q35)" || rc=$?
    [ -z "$mode" ] || run chmod "$mode" "$sock"
    return $rc
}

s_bad_cgroup() {
    # The hook registers the guest with libvirt's own layout (/machine/qemu-N-NAME.libvirt-qemu)
    # while libvirt puts QEMU in machined's scope: the launcher is outside the guest's cgroup.
    write_conf
    sed -i '/^uri=/a cgroup-layout=manual' "$CONF"
    run cat "$CONF"
    run systemctl restart iommufd-broker || { fail "the broker did not restart with cgroup-layout=manual"; return 1; }
    local rc=0
    bad_start web1cg "VMM outside the guest's cgroup" 'cgroup' "$(domain_xml web1cg q35)" || rc=$?
    write_conf
    systemctl restart iommufd-broker
    return $rc
}

s_bad_memory() {
    # A ceiling on guest memory in the broker's configuration ([limits] max-guest-memory-mib, as
    # the installed example names it), a guest asking for more.
    if ! grep -q '^#max-guest-memory-mib=' /usr/share/doc/iommufd-broker/broker.conf.example; then
        fail "the broker has no configured ceiling for a guest's memory (no max-guest-memory-mib in the example configuration); nothing to refuse a guest over"
        return 1
    fi
    write_conf '[limits]' 'max-guest-memory-mib=512'
    run systemctl restart iommufd-broker || { fail "the broker did not start with max-guest-memory-mib=512"; return 1; }
    local rc=0
    bad_start web1big "guest memory over the ceiling" 'memory|limit' \
        "$(domain_xml web1big q35 | sed "s|<memory unit='MiB'>[0-9]*</memory>|<memory unit='MiB'>1024</memory>|")" || rc=$?
    write_conf
    systemctl restart iommufd-broker
    return $rc
}

# note_sandbox: evidence, not a step. What the running broker sees of $BDF (on its host driver
# now) from inside its unit — its mount and network namespaces — and what the same sandbox without
# the unit's ReadWritePaths= lets a process write, for README "Managed devices" (the rebind's sysfs
# writes; the host's way out).
view_cmd='d=/sys/bus/pci/devices/$1
w() { test -w "$1" && echo writable || echo read-only; }
echo "/dev/vfio: [$(ls -A /dev/vfio 2>&1 | tr "\n" " ")]; net/: [$(ls -A "$d/net/" 2>&1 | tr "\n" " ")]; /proc/net/route: $(cat /proc/net/route 2>/dev/null | wc -l) lines; /proc/1/net/route: $(cat /proc/1/net/route 2>/dev/null | wc -l) lines; drivers_probe: $(w /sys/bus/pci/drivers_probe); driver_override: $(w "$d/driver_override")"'
note_sandbox() {
    local p v
    p=$(broker_pid)
    if [ -n "$p" ] && [ "$p" != 0 ]; then
        v=$(nsenter -t "$p" -m -n sh -c "$view_cmd" sh "$BDF" 2>&1 | tr '\n' ' ')
        echo "IFB-FULLSTACK note=broker-view (pid $p): $v"
    fi
    v=$(systemd-run --wait --pipe -q -p ProtectKernelTunables=yes -p PrivateNetwork=yes -p ProcSubset=pid \
        -p ProtectSystem=strict sh -c "$view_cmd" sh "$BDF" 2>&1 | tr '\n' ' ')
    echo "IFB-FULLSTACK note=sandbox-without-ReadWritePaths: $v"
}

# ---- libvirt >= 12.2: libvirt's own iommufd, fed by the broker (README) -----------------------
# The README's native XML with this guest's device (its <source><address> parts) and accelerator.
native_xml() {
    local type=kvm dom bus slot fn
    [ -e /dev/kvm ] || type=qemu
    IFS=':.' read -r dom bus slot fn <<< "$BDF"
    sed -e "s/domain='0x0000' bus='0x65' slot='0x00' function='0x0'/domain='0x$dom' bus='0x$bus' slot='0x$slot' function='0x$fn'/" \
        -e "s/<domain type='kvm'/<domain type='$type'/" /ifb/readme/web2-native.xml
}
libvirt_version() { virsh -c qemu:///system version | awk '/library: libvirt/ {print $NF; exit}'; }
# native_applies: libvirt >= 12.2 (the fd group of <iommufd fdgroup=>)
native_applies() { [ "$(printf '%s\n12.2.0\n' "$(libvirt_version)" | sort -V | head -n1)" = 12.2.0 ]; }
hostdev_xml() { sed -n '/<hostdev/,/<\/hostdev>/p' "/run/libvirt/qemu/$NDOM.xml" 2>/dev/null; }

s_native_start() {
    # README: the domain defined, then `iommufdctl libvirt-start NAME` (it creates the guest,
    # associates the broker's iommufd under the fd group and starts the domain on that connection)
    native_xml > /ifb/out/web2.xml
    run cat /ifb/out/web2.xml
    run virsh define /ifb/out/web2.xml || { fail "virsh define of the README's native XML failed"; return 1; }
    on_host || { fail "$BDF is not on $HOST_DRIVER before the start ($(where))"; return 1; }
    local out rc=0
    out=$(iommufdctl libvirt-start "$NDOM" 2>&1) || rc=$?
    echo "$out"
    [ $rc = 0 ] || { start_failed "$NDOM" "iommufdctl libvirt-start $NDOM: $(virsh_err "$out")"; return 1; }
    NQEMU_PID=$(qemu_pid "$NDOM")
    [ -n "$NQEMU_PID" ] && kill -0 "$NQEMU_PID" || { fail "libvirt-start said ok, but no QEMU runs for $NDOM"; return 1; }
    on_vfio || { fail "$NDOM runs, but $BDF is not on vfio-pci ($(where))"; return 1; }
    DETAIL="$(echo "$out" | tail -n1); QEMU pid $NQEMU_PID as $(ps -o user= -p "$NQEMU_PID"); $BDF taken from $HOST_DRIVER to vfio-pci"
}

s_native_realized() {
    # QEMU realized the device libvirt opened, on the iommufd the broker gave; what libvirt did
    # itself is recorded as evidence for README's claims (its memlock sizing, the cdev's owner, the
    # hostdev's original states in its status XML: nothing to undo means it leaves the device to
    # the broker)
    # libvirt puts its hostdev behind a pcie-root-port; query-pci lists what is behind a bridge only
    # once the guest's firmware has numbered its bus (seconds to minutes under TCG in TCG)
    local t0=$(date +%s)
    wait_for 300 pci_has_device "$NDOM" || { cat "/ifb/out/query-pci-$NDOM.json"; fail "query-pci does not list the device (8086:10d3) after $(( $(date +%s) - t0 )) s"; return 1; }
    echo "query-pci listed it after $(( $(date +%s) - t0 )) s"
    local cmd lim cdev own orig iommufd
    cmd=$(tr '\0' ' ' < "/proc/$NQEMU_PID/cmdline")
    echo "QEMU: $cmd"
    iommufd=$(echo "$cmd" | grep -oE -- '"qom-type":"iommufd"[^}]*|iommufd,[^ ]*' | head -n1)
    lim=$(awk '/^Max locked memory/ {print $4}' "/proc/$NQEMU_PID/limits")
    cdev=$(ls "/sys/bus/pci/devices/$BDF/vfio-dev/" 2>/dev/null | head -n1)
    own=$(stat -c '%U:%G %a' "/dev/vfio/devices/$cdev" 2>/dev/null)
    hostdev_xml
    orig=$(hostdev_xml | grep -oE '<(unbind|removeslot|reprobe)/>' | tr -d '<>/' | tr '\n' ' ')
    holders_of
    DETAIL="query-pci lists 8086:10d3; QEMU's iommufd: ${iommufd:-?}; QEMU's RLIMIT_MEMLOCK $lim; $cdev $own; libvirt's origstates: ${orig:-none}; open (pid:command:node): $(holders_of | tr '\n' ' ')"
}

s_native_vmlist() {
    run iommufdctl vm list
    run iommufdctl devices
    local cg
    cg=$(iommufdctl vm list | awk -v n="$NDOM" '$1 == n {print $4}')
    [ -n "$cg" ] || { fail "iommufdctl vm list has no $NDOM"; return 1; }
    case "$cg" in
        /machine.slice/machine-qemu*"$NDOM".scope*) ;;
        *) fail "$NDOM's cgroup is $cg, not machined's scope (vm.place at prepare)"; return 1 ;;
    esac
    iommufdctl devices | awk -v d="$BDF" '$1 == d' | grep -qw "$NDOM" || { fail "the broker does not list $BDF as $NDOM's"; return 1; }
    DETAIL="$NDOM in $cg, $BDF reserved for it: $(iommufdctl devices | awk -v d="$BDF" '$1 == d' | tr -s ' ')"
}

s_native_destroy() {
    local since
    since=$(date '+%Y-%m-%d %H:%M:%S')
    run virsh destroy "$NDOM" || { fail "virsh destroy $NDOM failed"; return 1; }
    wait_for 30 sh -c "! iommufdctl vm list | awk '\$1 == \"$NDOM\"' | grep -q ." ||
        { fail "the broker still lists $NDOM after virsh destroy: $(iommufdctl vm list | tr '\n' ' ')"; return 1; }
    back_home "after virsh destroy $NDOM" || return 1
    [ -z "$(cdev_holders)" ] || { fail "something still holds a VFIO cdev: $(cdev_holders)"; return 1; }
    journalctl --no-pager --since "$since" | grep -iE "$BDF|$NDOM" | tail -n 20
    DETAIL="$NDOM gone from the broker, $BDF back on $(driver_of) with netdev $(netdev_of), nobody holds a VFIO cdev"
}

s_native_refused() {
    # README: autostart and a plain `virsh start` have no client to associate the fd: the hook
    # refuses at prepare naming `iommufdctl libvirt-start`, and nothing is left half-made
    local out rc=0 since
    since=$(date '+%Y-%m-%d %H:%M:%S')
    out=$(virsh start "$NDOM" 2>&1) || rc=$?
    echo "$out"
    [ $rc != 0 ] || { virsh destroy "$NDOM"; fail "a plain virsh start of $NDOM succeeded"; return 1; }
    echo "$out" | grep -q 'iommufdctl libvirt-start' || { fail "virsh start failed, but not naming iommufdctl libvirt-start: $(virsh_err "$out")"; return 1; }
    [ "$(virsh domstate "$NDOM" 2>&1)" = "shut off" ] || { fail "$NDOM is '$(virsh domstate "$NDOM" 2>&1)' after the refusal"; return 1; }
    iommufdctl vm list | awk -v n="$NDOM" '$1 == n' | grep -q . && { fail "the broker has a guest $NDOM (half-made)"; return 1; }
    [ -z "$(cdev_holders)" ] || { fail "a VFIO cdev is held: $(cdev_holders)"; return 1; }
    on_host || { fail "$BDF left $HOST_DRIVER ($(where))"; return 1; }
    journalctl --no-pager --since "$since" | grep -i 'libvirt-start' | tail -n 3 | sed 's/^/journal: /'
    run virsh undefine "$NDOM"
    DETAIL="refused: $(virsh_err "$out"); no guest, $BDF on $(driver_of)"
}

native_steps() {
    local s v
    v=$(libvirt_version)
    if [ -n "$v" ] && ! native_applies; then
        for s in native-start native-realized native-vm-list native-destroy native-refused; do
            skip "$s" "not applicable on libvirt $v: its own iommufd from a client's fd group needs libvirt >= 12.2 (README \"libvirt >= 12.2\")"
        done
        return 0
    fi
    step native-start    needs=configure s_native_start
    step native-realized needs=native-start s_native_realized
    step native-vm-list  needs=native-start s_native_vmlist
    step native-destroy  needs=native-start s_native_destroy
    step native-refused  needs=configure s_native_refused
}

step system   s_system
step device   s_device
step install  needs=device s_install
step access   needs=install s_access
step configure needs=install s_configure
note_sandbox
step start    needs=configure s_start
workarounds
step realized needs=start s_realized
step vm-list  needs=start s_vmlist
step broker-restart needs=start s_restart
step broker-kill    needs=start s_kill
step broker-hang    needs=start s_hang
step upgrade        needs=start s_upgrade
step libvirtd-restart needs=start s_libvirtd
step journal  needs=start s_journal
step security needs=install s_security
step destroy  needs=start s_destroy
step start-pc needs=configure s_pc
note_sandbox
native_steps
step bad-socket needs=configure s_bad_socket
step bad-cgroup needs=configure s_bad_cgroup
step bad-memory needs=configure s_bad_memory

# what the run leaves for the host: the journal, libvirt's QEMU logs
journalctl -b --no-pager -o short-monotonic > /ifb/out/journal.txt 2>&1
cp /var/log/libvirt/qemu/*.log /ifb/out/ 2>/dev/null
echo "IFB-FULLSTACK summary: $failed step(s) failed, $skipped skipped (not applicable here), $(( $(date +%s) - T_START )) s in the guest${WORKAROUNDS:+; the steps after start ran with the workarounds:$WORKAROUNDS}"
sync
echo "IFB-GUEST-END uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "IFB-GUEST-EXIT=$failed"
# The unit's SuccessAction= did not end the machine here every time: power off at once, as
# `poweroff -f` does (the disks are synced above; the root image is a throw-away overlay).
sleep 1
systemctl poweroff --force --force
exit 0
