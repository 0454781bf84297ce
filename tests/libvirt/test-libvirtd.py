"""The broker under a real libvirtd 9.0 and QEMU 10 (TCG): the hook installed before libvirtd
starts, `iommufdctl exec` as the domain's <emulator> (through a two-line wrapper script), the
broker daemon on its default socket with the emulated backend and [libvirt] uri=qemu:///system.
Run through run.sh (a private mount namespace); every domain is tiny: no disk, 64 MiB.

This host has no VFIO: the emulated backend's device fds are regular files, so QEMU's vfio-pci
cannot realize a device on them. A domain with the README's real device line
(-device vfio-pci,iommufd=ifb0,fd=%{dev:BDF}) is run as far as that allows — QEMU gets the fds
and issues its bind ioctl on them, which fails, and the start fails cleanly; a domain that puts
the device fds into -add-fd sets instead starts. The kernel suite realizes the device."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import libvirtenv as L  # noqa: E402
from ifbtest import (HANG, BUILD, NEST_VTD, NOT_VFIO, SMMU, Broker, RpcError, cgroup2_mount, proc_fd_targets,  # noqa: E402
                     run)

HOOK = os.path.join(BUILD, "client", "iommufd-broker-hook")
CTL = os.path.join(BUILD, "client", "iommufdctl")
WRAPPER = "/var/lib/libvirt/ifb-qemu-system-x86_64"
RECORD = "/run/libvirt/ifb-hook-calls"
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"

RECORDER = """#!/bin/sh
# Records each hook call (and the XML libvirt passed) for the tests; runs before the broker's hook.
mkdir -p %(d)s
cat > "%(d)s/$1-$2-$3.xml"
echo "$1 $2 $3" >> %(d)s/calls
""" % {"d": RECORD}

EXECS = "/run/libvirt/ifb-qemu-execs"
SHIM = "/var/lib/libvirt/ifb-record-exec"

# Between the launcher and QEMU: records the argv, the open fds and the cgroup QEMU gets, then
# becomes QEMU (execv keeps the pid, the fds and the cgroup), so a QEMU that exits at once can
# still be checked.
SHIM_SCRIPT = """#!/usr/bin/python3
import json, os, sys
fds = {}
for f in os.listdir("/proc/self/fd"):
    try:
        fds[f] = os.readlink("/proc/self/fd/" + f)
    except OSError:
        pass
with open("/proc/self/cgroup") as f:
    cgroup = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")][0]
os.makedirs(%(d)r, exist_ok=True)
with open("%(d)s/%%d.json" %% os.getpid(), "w") as f:
    json.dump({"argv": sys.argv[1:], "fds": fds, "cgroup": cgroup}, f)
os.execv(sys.argv[1], sys.argv[1:])
""" % {"d": EXECS}

WRAPPER_SCRIPT = """#!/bin/sh
# The domain's <emulator>: QEMU with the guest's fds from iommufd-broker (through the recording
# shim, which then execs QEMU unchanged).
exec %s exec --vm-from-argv -- %s %s "$@"
""" % (CTL, SHIM, QEMU)

DOMAIN = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%(name)s</name>
  <metadata>
    <ifb:broker xmlns:ifb="https://iommufd-broker.example/xmlns/1">
%(options)s%(devices)s    </ifb:broker>
  </metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>%(emulator)s</emulator>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-object'/>
    <qemu:arg value='iommufd,id=ifb0,fd=%%{iommufd}'/>
%(fdargs)s  </qemu:commandline>
</domain>
"""


def domain_xml(name, devices, emulator=WRAPPER, metadata=True, vfio=False, handoff=None):
    """vfio: each device as the README writes it, a real vfio-pci device on its fd (what a host
    with VFIO runs); otherwise its fd goes into a QEMU fd set (-add-fd), which QEMU only holds.
    handoff: the <options handoff=…> value, None for no <options> (the default, unbound)."""
    devs = "".join('      <ifb:device address="%s"/>\n' % d for d in devices)
    options = '      <ifb:options handoff="%s"/>\n' % handoff if handoff else ""
    if vfio:
        fdargs = "".join("    <qemu:arg value='-device'/>\n    <qemu:arg value='vfio-pci,iommufd=ifb0,fd=%%{dev:%s}'/>\n"
                         % d for d in devices)
    else:
        fdargs = "".join("    <qemu:arg value='-add-fd'/>\n    <qemu:arg value='fd=%%{dev:%s},set=%d,opaque=%s'/>\n"
                         % (d, 10 + i, d) for i, d in enumerate(devices))
    x = DOMAIN % {"name": name, "devices": devs, "options": options, "emulator": emulator, "fdargs": fdargs}
    if not metadata:
        x = x[:x.index("  <metadata>")] + x[x.index("</metadata>\n") + len("</metadata>\n"):]
        x = x[:x.index("  <qemu:commandline>")] + x[x.index("</qemu:commandline>\n") + len("</qemu:commandline>\n"):]
    return x


def define(name, xml):
    path = "/run/libvirt/%s.xml" % name
    with open(path, "w") as f:
        f.write(xml)
    L.virsh("define", path)


def calls():
    try:
        with open(RECORD + "/calls") as f:
            return [tuple(l.split()) for l in f]
    except FileNotFoundError:
        return []


def wait_for(cond, timeout=HANG, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def guest_names():
    return [v["name"] for v in broker.call("vm.list")["vms"]]


def qemu_execs(name):
    """What the shim recorded for each QEMU libvirt ran for domain `name`: {pid: record}."""
    out = {}
    for f in os.listdir(EXECS) if os.path.isdir(EXECS) else []:
        with open(os.path.join(EXECS, f)) as fh:
            rec = json.load(fh)
        a = rec["argv"]
        if "-name" in a and a[a.index("-name") + 1].split(",")[0] == "guest=" + name:
            out[int(f.split(".")[0])] = rec
    return out


def arg_after(argv, opt, prefix):
    """The values of `opt` in argv that start with prefix, in order."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == opt and argv[i + 1].startswith(prefix)]


def cdevs():
    """{BDF: the basename of its vfio cdev} from the broker."""
    return {d["device"]: os.path.basename(d["cdev"] or "") for d in broker.call("device.list")["devices"]}


def test_vfio_pci_line_reaches_bind_and_fails_cleanly():
    """The README's device line, -device vfio-pci,iommufd=ifb0,fd=%{dev:BDF}, under libvirtd:
    the launcher, in the cgroup libvirt gave QEMU, hands QEMU the iommufd and one device fd per
    device with the placeholders replaced by their numbers; QEMU's vfio-pci takes them and issues
    its bind ioctl (VFIO_DEVICE_BIND_IOMMUFD) on the first device's fd, which this host cannot
    honour (emulated cdevs are regular files). The start then fails with QEMU's error in virsh's,
    naming the same fds; the hook's release frees the guest and its devices and the broker holds
    no fd more than before."""
    name = "ifb-lv-vfio"
    devices = [NEST_VTD[0], SMMU]
    define(name, domain_xml(name, devices, vfio=True, handoff="unbound"))
    fds_before = broker.open_fds()
    t = time.monotonic()
    r = L.virsh("start", name, check=False)
    failed = time.monotonic() - t
    assert r.returncode != 0, r
    m = re.search(r"vfio VFIO_FD(\d+): error bind device fd=(\d+) to iommufd=(\d+): (.*)", r.stderr)
    assert m and m.group(1) == m.group(2), r.stderr
    sys.stdout.write("# the start failed after %.2fs; virsh: %s\n" % (failed, m.group(0)))
    runs = qemu_execs(name)
    assert len(runs) == 1, runs
    (pid, rec), = runs.items()
    a = rec["argv"]
    # the argv libvirt built from the domain, placeholders replaced by fd numbers
    assert arg_after(a, "-object", "iommufd,") == ["iommufd,id=ifb0,fd=%s" % m.group(3)], a
    dev_args = arg_after(a, "-device", "vfio-pci,")
    assert len(dev_args) == 2 and all(re.fullmatch(r"vfio-pci,iommufd=ifb0,fd=\d+", d) for d in dev_args), a
    assert dev_args[0] == "vfio-pci,iommufd=ifb0,fd=%s" % m.group(2), (dev_args, m.group(0))
    # those numbers are the broker's fds: the iommufd, and each device's own cdev
    fds = rec["fds"]
    assert fds[m.group(3)].startswith("/memfd:ifb-emulated-iommufd"), fds
    names = cdevs()
    for bdf, arg in zip(devices, dev_args):
        target = fds[arg.rsplit(",fd=", 1)[1]]
        assert "/vfio/devices/" in target and os.path.basename(target) == names[bdf], (bdf, target, names)
    domid_cg = re.fullmatch(r"/machine/qemu-(\d+)-%s\.libvirt-qemu(/.*)?" % name, rec["cgroup"])
    assert domid_cg, rec["cgroup"]
    # a clean failure: the domain is off, its QEMU gone, the guest released, nothing held
    assert L.virsh("domstate", name).stdout.strip() == "shut off"
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), what="QEMU %d to be gone" % pid)
    wait_for(lambda: name not in guest_names(), what="release to destroy the guest")
    assert [c[1] for c in calls() if c[0] == name][-2:] == ["stopped", "release"], calls()
    owners = {d["device"]: d.get("owner") for d in broker.call("device.list")["devices"]}
    assert all(owners[d] is None for d in devices), owners
    assert broker.open_fds() == fds_before, (fds_before, broker.open_fds())
    L.virsh("undefine", name)


def test_start_gives_qemu_its_fds_and_destroy_frees_them():
    """A domain with broker metadata whose device fds go into QEMU fd sets (no vfio-pci device)
    starts: prepare created the guest with the cgroup libvirt really gave QEMU, the launcher
    handed QEMU the iommufd and the device fds (in its /proc/PID/fd), started recorded QEMU's
    pid; destroy (release hook) frees everything."""
    name = "ifb-lv1"
    define(name, domain_xml(name, [NEST_VTD[0], SMMU]))
    fds_before = broker.open_fds()
    t = time.monotonic()
    L.virsh("start", name)
    started = time.monotonic() - t
    try:
        domid = L.virsh("domid", name).stdout.strip()
        with open("/run/libvirt/qemu/%s.pid" % name) as f:
            pid = int(f.read())
        want = "/machine/qemu-%s-%s.libvirt-qemu" % (domid, name)
        with open("/proc/%d/cgroup" % pid) as f:
            qemu_cg = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")][0]
        assert qemu_cg.startswith(want + "/") or qemu_cg == want, (qemu_cg, want)
        vm = broker.call("vm.show", {"vm": name})
        # no <options>: the hook asked for the unbound hand-off; QEMU (the launcher's pid, and
        # the pid started recorded) is the one holder the broker watches
        assert vm["cgroup"] == want and vm["state"] == "ready" and vm["vmm_pid"] == pid, vm
        assert vm["options"]["handoff"] == "unbound" and [h["pid"] for h in vm["holders"]] == [pid], vm
        assert all(d["state"] == "ready" for d in vm["devices"]), vm
        fds = {}
        for f in os.listdir("/proc/%d/fd" % pid):
            try:
                fds[f] = os.readlink("/proc/%d/fd/%s" % (pid, f))
            except OSError:
                pass
        assert any(t.startswith("/memfd:ifb-emulated-iommufd") for t in fds.values()), fds
        vfio = [t for t in fds.values() if "/vfio/devices/vfio" in t]
        assert len(vfio) == 2, fds
        # fresh opens: the broker keeps no copy of a device fd it handed out
        # (an fd the daemon closes between the listing and the readlink is just not there)
        mine = list(proc_fd_targets(broker.proc.pid).values())
        assert not [t for t in mine if "/vfio/devices/vfio" in t], mine
        assert ("%s prepare begin" % name).split() in [list(c) for c in calls()]
        assert [c[1] for c in calls() if c[0] == name][-3:] == ["prepare", "start", "started"], calls()
        sys.stdout.write("# start took %.2fs; QEMU %d in %s; fds %s\n" % (started, pid, qemu_cg, sorted(fds.values())))
    finally:
        t = time.monotonic()
        L.virsh("destroy", name)
        sys.stdout.write("# destroy took %.2fs\n" % (time.monotonic() - t))
    wait_for(lambda: name not in guest_names(), what="release to destroy the guest")
    owners = {d["device"]: d.get("owner") for d in broker.call("device.list")["devices"]}
    assert owners[NEST_VTD[0]] is None and owners[SMMU] is None, owners
    assert broker.open_fds() == fds_before, (fds_before, broker.open_fds())   # every fd closed
    assert [c[1] for c in calls() if c[0] == name][-2:] == ["stopped", "release"], calls()
    L.virsh("undefine", name)


def test_machine_name_rules_match_libvirt():
    """The hook's cgroup for a name libvirt reduces (a '_' it drops between two '.', which then
    count as one run) is the cgroup libvirtd really puts QEMU in: the start goes through (started
    checks QEMU is inside the guest's cgroup) and vm.show's cgroup is libvirt's."""
    name = "ifb-lv._.x"
    define(name, domain_xml(name, [NEST_VTD[0]]))
    L.virsh("start", name)
    try:
        domid = L.virsh("domid", name).stdout.strip()
        with open("/run/libvirt/qemu/%s.pid" % name) as f:
            pid = int(f.read())
        want = "/machine/qemu-%s-ifb-lv.x.libvirt-qemu" % domid
        with open("/proc/%d/cgroup" % pid) as f:
            qemu_cg = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")][0]
        assert qemu_cg.startswith(want + "/"), (qemu_cg, want)
        vm = broker.call("vm.show", {"vm": name})
        assert vm["cgroup"] == want and vm["state"] == "ready" and vm["vmm_pid"] == pid, vm
    finally:
        L.virsh("destroy", name)
    wait_for(lambda: name not in guest_names(), what="release to destroy the guest")
    L.virsh("undefine", name)


def test_refused_prepare_aborts_start_with_broker_message():
    """Metadata naming a device that is not bound to vfio-pci: the start fails and virsh shows the
    broker's reason; nothing is left in the broker and the domain is shut off."""
    name = "ifb-lv-refused"
    define(name, domain_xml(name, [NEST_VTD[1], NOT_VFIO]))
    r = L.virsh("start", name, check=False)
    assert r.returncode != 0, r
    assert "iommufd-broker: %s:" % name in r.stderr and NOT_VFIO in r.stderr and "vfio-pci" in r.stderr, r.stderr
    assert name not in guest_names()
    assert L.virsh("domstate", name).stdout.strip() == "shut off"
    sys.stdout.write("# virsh: %s\n" % r.stderr.strip().replace("\n", " | "))
    L.virsh("undefine", name)


def test_device_of_another_guest_refused():
    """A device another guest holds refuses the start, naming that guest."""
    name = "ifb-lv-busy"
    broker.call("vm.create", {"name": "holder", "cgroup": "/ifb-holder", "options": {"defer": True}})
    broker.call("vm.attach", {"vm": "holder", "device": NEST_VTD[1]})
    try:
        define(name, domain_xml(name, [NEST_VTD[1]]))
        r = L.virsh("start", name, check=False)
        assert r.returncode != 0 and "belongs to guest 'holder'" in r.stderr, r
        assert name not in guest_names()
        L.virsh("undefine", name)
    finally:
        broker.call("vm.destroy", {"vm": "holder"})


def test_domain_without_metadata_untouched():
    """A domain without broker metadata, even with the launcher as its emulator, starts and stops
    without the broker knowing about it."""
    name = "ifb-lv-plain"
    define(name, domain_xml(name, [], metadata=False))
    L.virsh("start", name)
    try:
        assert guest_names() == []
    finally:
        L.virsh("destroy", name)
    L.virsh("undefine", name)


def test_watcher_reconnects_and_reaps_after_libvirtd_restart():
    """The daemon follows libvirtd across a restart: the connection comes back (with backoff) and
    the reconcile after it destroys a libvirt guest whose domain does not exist (a missed
    release), while a guest that is not libvirt's is left alone."""
    assert broker.call("broker.info")["libvirt_connected"] is True
    broker.call("vm.create", {"name": "ifb-lv-gone", "cgroup": "/machine/qemu-99-ifb-lv-gone.libvirt-qemu",
                              "options": {"defer": True}})
    broker.call("vm.create", {"name": "not-libvirt", "cgroup": "/ifb-other", "options": {"defer": True}})
    libvirtd.stop_libvirtd()
    wait_for(lambda: not broker.call("broker.info")["libvirt_connected"], what="the broker to notice")
    libvirtd.start_libvirtd()
    wait_for(lambda: broker.call("broker.info")["libvirt_connected"], what="the broker to reconnect")
    wait_for(lambda: "ifb-lv-gone" not in guest_names(), what="the reconcile")
    assert "not-libvirt" in guest_names()
    broker.call("vm.destroy", {"vm": "not-libvirt"})
    assert "destroying it" in broker.read_log()


libvirtd = None
broker = None


def main():
    global libvirtd, broker
    L.mount_private_dirs()
    with open("/run/libvirt-ifb-recorder", "w") as f:
        f.write(RECORDER)
    libvirtd = L.Libvirtd(hooks=[("00-ifb-record", "/run/libvirt-ifb-recorder"), ("iommufd-broker-hook", HOOK)])
    broker = Broker(config="[libvirt]\nuri=qemu:///system\n")
    broker.socket = "/run/iommufd-broker/rpc.sock"   # the default, which hook and launcher use
    try:
        libvirtd.start()
        os.makedirs("/var/lib/libvirt", exist_ok=True)
        for path, text in ((WRAPPER, WRAPPER_SCRIPT), (SHIM, SHIM_SCRIPT)):
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        broker.start()
        wait_for(lambda: broker.call("broker.info")["libvirt_connected"], what="the broker's libvirt watch")
        run([test_vfio_pci_line_reaches_bind_and_fails_cleanly,
             test_start_gives_qemu_its_fds_and_destroy_frees_them,
             test_machine_name_rules_match_libvirt,
             test_refused_prepare_aborts_start_with_broker_message,
             test_device_of_another_guest_refused,
             test_domain_without_metadata_untouched,
             test_watcher_reconnects_and_reaps_after_libvirtd_restart])
    except SystemExit:
        raise
    except BaseException:
        sys.stderr.write("---- libvirtd log ----\n%s\n---- broker log ----\n%s\n" % (libvirtd.log(), broker.read_log()[-4000:]))
        raise
    finally:
        libvirtd.stop()
        broker.stop()


if __name__ == "__main__":
    main()
