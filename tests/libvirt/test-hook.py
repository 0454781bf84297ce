"""The libvirt hook and `iommufdctl exec` against the real daemon (emulated backend), fed with
domain XML that libvirtd 9.0 really produced (tests/libvirt/fixtures, captured by the hook
stand-in of the real-libvirtd suite). No libvirtd needed here."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ifbtest import BUILD, NEST_VTD, NOT_VFIO, SMMU, Broker, Cgroup, cgroup2_mount, reclaimed, run  # noqa: E402

HOOK = os.path.join(BUILD, "client", "iommufd-broker-hook")
CTL = os.path.join(BUILD, "client", "iommufdctl")
FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NAME = "ifb-capture"
UUID = "6f1c0a52-0b7e-4c3e-9f3e-3b1d2c6a7e01"
CGROUP = "/machine/qemu-1-ifb-capture.libvirt-qemu"


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def hook(broker, op, xml, subop="begin", env=None, name=NAME):
    e = {"PATH": os.environ["PATH"], "LC_ALL": "C"}   # what libvirtd passes
    if broker:
        e["IOMMUFD_BROKER_SOCKET"] = broker.socket
    else:
        e["IOMMUFD_BROKER_SOCKET"] = "/nonexistent/ifb.sock"
    e.update(env or {})
    return subprocess.run([HOOK, name, op, subop, "-"], input=xml, capture_output=True, env=e, timeout=10)


def with_devices(xml, devices):
    """The captured XML with other devices in the broker block."""
    s = xml.decode()
    start, end = s.index("<ifb:device"), s.rindex("</ifb:broker>")
    devs = "".join('<ifb:device address="%s"/>\n      ' % d for d in devices)
    return (s[:start] + devs + s[end:]).encode()


def with_options(xml, attrs):
    """The captured XML with another <ifb:options> element (attrs: its attributes, as text)."""
    s = xml.decode()
    start = s.index("<ifb:options")
    end = s.index("/>", start) + 2
    return (s[:start] + "<ifb:options %s/>" % attrs + s[end:]).encode()


def test_no_metadata_untouched():
    """A domain without broker metadata: exit 0, nothing printed, the broker is never contacted."""
    for op in ("prepare", "started", "release", "reconnect"):
        r = hook(None, op, fixture("prepare-no-metadata.xml"))
        assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", (op, r)


def test_migrate_restore_pass_through():
    """migrate and restore print the XML unchanged (byte for byte), with or without metadata."""
    for f in ("started-begin.xml", "prepare-no-metadata.xml"):
        for op in ("migrate", "restore"):
            r = hook(None, op, fixture(f))
            assert r.returncode == 0 and r.stdout == fixture(f), (op, f, r.stderr)


def test_prepare_creates_pending_guest_with_libvirt_cgroup():
    """prepare creates the guest with the cgroup libvirt 9.0 will create (id from the XML) and
    reserves the devices; release destroys it, and a second release is fine."""
    with Broker() as b:
        r = hook(b, "prepare", fixture("prepare-begin.xml"))
        assert r.returncode == 0, r.stderr
        vm = b.call("vm.show", {"vm": NAME})
        assert vm["uuid"] == UUID and vm["cgroup"] == CGROUP, vm
        assert vm["options"]["defer"] is True and vm["options"]["nest_parent"] is True, vm
        assert vm["options"]["handoff"] == "unbound", vm   # the hook's default, whatever the broker's
        assert sorted(d["device"] for d in vm["devices"]) == NEST_VTD, vm
        assert all(d["state"] == "reserved" for d in vm["devices"]), vm
        for xml in ("release-end.xml", "release-end.xml"):
            r = hook(b, "release", fixture(xml), subop="end")
            assert r.returncode == 0 and r.stderr == b"", r.stderr
        assert b.call("vm.list")["vms"] == []


def test_prepare_refused_bad_handoff():
    """A handoff other than unbound or bound aborts prepare with a message that quotes it and
    names both choices; the broker is not asked, so no guest exists."""
    with Broker() as b:
        for v in ("Bound", "sideways", ""):
            r = hook(b, "prepare", with_options(fixture("prepare-begin.xml"), 'handoff="%s"' % v))
            err = r.stderr.decode()
            assert r.returncode == 1, r
            assert err.startswith("iommufd-broker: ") and "<options handoff='%s'> must be 'unbound'" % v in err, err
            assert "or 'bound'" in err, err
            assert b.call("vm.list")["vms"] == []


def test_prepare_refused_non_vfio_device():
    """Metadata naming a device not bound to vfio-pci: exit 1, the broker's reason on stderr, and
    no guest left behind."""
    with Broker() as b:
        r = hook(b, "prepare", with_devices(fixture("prepare-begin.xml"), [NEST_VTD[0], NOT_VFIO]))
        assert r.returncode == 1, r
        err = r.stderr.decode()
        assert err.startswith("iommufd-broker: ifb-capture: ") and NOT_VFIO in err and "vfio-pci" in err, err
        assert b.call("vm.list")["vms"] == []


def test_prepare_takes_managed_devices():
    """<ifb:device managed="yes"/> devices are taken from their host driver at prepare (vfio-pci
    in the emulated sysfs) and go back when release destroys the guest; the others are attached
    as before."""
    with Broker(config="[devices]\nallow=%s\n" % NOT_VFIO) as b:
        xml = with_devices(fixture("prepare-begin.xml"), [NEST_VTD[0]]).decode()
        xml = xml.replace('<ifb:device address="%s"/>' % NEST_VTD[0],
                          '<ifb:device address="%s"/><ifb:device address="%s" managed="yes"/>' % (NEST_VTD[0], NOT_VFIO))
        driver = os.path.join(b.runtime_dir, "emulated", "sys", "bus", "pci", "devices", NOT_VFIO, "driver")
        r = hook(b, "prepare", xml.encode())
        assert r.returncode == 0, r
        devs = {d["device"]: d for d in b.call("vm.show", {"vm": NAME})["devices"]}
        assert devs[NOT_VFIO]["managed"] is True and devs[NOT_VFIO]["host_driver"] == "e1000e", devs
        assert devs[NEST_VTD[0]]["managed"] is False, devs
        assert os.readlink(driver).endswith("/vfio-pci")
        r = hook(b, "release", xml.encode(), subop="end")
        assert r.returncode == 0, r
        deadline = time.monotonic() + 10
        while not os.readlink(driver).endswith("/e1000e"):
            assert time.monotonic() < deadline, "the device never went back to e1000e"
            time.sleep(0.02)


NATIVE_XML = """<domain type='kvm' id='1'>
  <name>%s</name>
  <uuid>%s</uuid>
  <iommufd enabled='yes' fdgroup='iommufd-broker'/>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <driver iommufd='yes'/>
      <source><address domain='0x0000' bus='0x65' slot='0x00' function='0x0'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <driver iommufd='yes'/>
      <source><address domain='0x0000' bus='0x00' slot='0x19' function='0x0'/></source>
    </hostdev>
  </devices>
</domain>
""" % (NAME, UUID)


def test_native_iommufd_domain_without_client_refused():
    """A domain on libvirt's own iommufd from the broker's fd group, started without
    `iommufdctl libvirt-start` (autostart, a plain virsh start): prepare refuses it, saying how
    to start it, and no guest is made."""
    with Broker() as b:
        r = hook(b, "prepare", NATIVE_XML.encode())
        assert r.returncode == 1, r
        assert b"iommufdctl libvirt-start ifb-capture" in r.stderr and b"fd group 'iommufd-broker'" in r.stderr, r
        assert b.call("vm.list")["vms"] == []


def test_native_iommufd_domain_placed_and_hostdevs_reserved():
    """The guest `iommufdctl libvirt-start` made (provisional cgroup, its iommufd fetched) is
    placed at prepare in the cgroup libvirt gives the domain; its hostdevs are reserved — the
    libvirt-managed one taken from its host driver by the broker — and release destroys it,
    giving that device back."""
    with Broker(config="[devices]\nallow=%s\n" % NOT_VFIO) as b:
        c = b.client()
        c.call("vm.create", {"name": NAME, "uuid": UUID, "cgroup": "/machine.slice/iommufd-broker-pending-x.scope",
                             "options": {"defer": True}})
        reply, fds = c.call_full("vm.fds", {"vm": NAME, "uuid": UUID})
        assert "iommufd" in reply["result"] and len(fds) == 1, reply
        r = hook(b, "prepare", NATIVE_XML.encode())
        assert r.returncode == 0, r
        vm = b.call("vm.show", {"vm": NAME})
        assert vm["cgroup"] == CGROUP, vm
        devs = {d["device"]: d for d in vm["devices"]}
        assert sorted(devs) == [NOT_VFIO, NEST_VTD[0]], devs
        assert devs[NOT_VFIO]["managed"] and devs[NOT_VFIO]["host_driver"] == "e1000e", devs
        assert not devs[NEST_VTD[0]]["managed"], devs
        for fd in fds:
            os.close(fd)
        r = hook(b, "release", NATIVE_XML.encode(), subop="end")
        assert r.returncode == 0, r
        assert b.call("vm.list")["vms"] == []
        driver = os.path.join(b.runtime_dir, "emulated", "sys", "bus", "pci", "devices", NOT_VFIO, "driver")
        deadline = time.monotonic() + 10
        while not os.readlink(driver).endswith("/e1000e"):
            assert time.monotonic() < deadline, "the device never went back to e1000e"
            time.sleep(0.02)


def test_vm_place_rules():
    """vm.place moves an unbound guest (the broker allocated nothing for it) after vm.create's
    cgroup checks; a bound guest with objects stays where they were allocated."""
    with Broker() as b, Cgroup("place") as cg:
        c = b.client()
        u = cg.child("u")
        c.call("vm.create", {"name": "u", "cgroup": "/ifb-nonexistent", "options": {"defer": True}})
        assert c.call("vm.place", {"vm": "u", "cgroup": u.path})["cgroup"] == u.path
        assert b.call("vm.show", {"vm": "u"})["cgroup"] == u.path
        err = c.error("vm.place", {"vm": "u", "cgroup": "/"})
        assert err["data"]["name"] in ("cgroup-invalid", "invalid-params", "invalid-argument"), err
        c.call("vm.create", {"name": "b", "cgroup": cg.child("b").path, "options": {"handoff": "bound"}})
        err = c.error("vm.place", {"vm": "b", "cgroup": cg.child("b2").path})
        assert err["data"]["name"] == "invalid-argument" and "cannot move" in err["message"], err
        # one guest's cgroup never overlaps another's
        err = c.error("vm.place", {"vm": "u", "cgroup": cg.path})
        assert err["data"]["name"] == "cgroup-invalid" and "overlaps" in err["message"], err
        assert b.call("vm.show", {"vm": "u"})["cgroup"] == u.path


def test_libvirt_start_refuses_domain_without_fdgroup():
    """iommufdctl libvirt-start on a domain whose XML does not name the broker's fd group: exit 1
    saying what the XML needs, and no guest is made."""
    with Broker() as b, tempfile.TemporaryDirectory() as tmp:
        node = os.path.join(tmp, "node.xml")
        with open(node, "w") as f:
            # libvirt's test driver: a defined domain, shut off (runstate 5)
            f.write("<node><domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                    "<name>plain</name><memory>65536</memory><os><type>hvm</type></os>"
                    "<test:runstate>5</test:runstate></domain></node>")
        r = subprocess.run([CTL, "--socket", b.socket, "libvirt-start", "plain", "--connect", "test://" + node],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        assert "fdgroup='iommufd-broker'" in r.stderr and "libvirt >= 12.2" in r.stderr, r.stderr
        assert b.call("vm.list")["vms"] == []


def test_prepare_refused_device_of_another_guest():
    """A device owned by another guest refuses the start and names the owner."""
    with Broker() as b:
        b.call("vm.create", {"name": "other", "cgroup": "/ifb-nonexistent", "options": {"defer": True}})
        b.call("vm.attach", {"vm": "other", "device": NEST_VTD[1]})
        r = hook(b, "prepare", fixture("prepare-begin.xml"))
        assert r.returncode == 1 and b"belongs to guest 'other'" in r.stderr, r
        assert [v["name"] for v in b.call("vm.list")["vms"]] == ["other"]


def test_prepare_replaces_stale_guest_same_uuid():
    """A guest left from a run whose release was missed (same UUID) is replaced; another guest of
    the same name but a different UUID refuses the start."""
    with Broker() as b:
        b.call("vm.create", {"name": NAME, "uuid": UUID, "cgroup": "/machine/qemu-7-ifb-capture.libvirt-qemu",
                             "options": {"defer": True}})
        r = hook(b, "prepare", fixture("prepare-begin.xml"))
        assert r.returncode == 0 and b"stale" in r.stderr, r
        assert b.call("vm.show", {"vm": NAME})["cgroup"] == CGROUP
        b.call("vm.destroy", {"vm": NAME})
        b.call("vm.create", {"name": NAME, "cgroup": "/x", "options": {"defer": True}})
        r = hook(b, "prepare", fixture("prepare-begin.xml"))
        assert r.returncode == 1 and b"already has a guest of that name" in r.stderr, r


def test_socket_from_config_file():
    """Without $IOMMUFD_BROKER_SOCKET (libvirtd does not pass it) the socket comes from the broker's
    config file, [broker] socket."""
    with Broker() as b:
        conf = os.path.join(b.tmp, "hook.conf")
        with open(conf, "w") as f:
            f.write("[broker]\nsocket=%s\n" % b.socket)
        e = {"PATH": os.environ["PATH"], "IOMMUFD_BROKER_CONFIG": conf}
        r = subprocess.run([HOOK, NAME, "prepare", "begin", "-"], input=fixture("prepare-begin.xml"),
                           capture_output=True, env=e, timeout=10)
        assert r.returncode == 0, r.stderr
        assert b.call("vm.show", {"vm": NAME})["cgroup"] == CGROUP


def test_broker_down_refuses_prepare_only():
    """With the broker unreachable, prepare and started refuse (the guest would start without its
    devices); release and reconnect never fail."""
    for op, want in (("prepare", 1), ("started", 1), ("release", 0), ("reconnect", 0)):
        r = hook(None, op, fixture("started-begin.xml"))
        assert r.returncode == want and b"Cannot connect to the broker" in r.stderr, (op, r)


def make_libvirt_cgroup():
    """The cgroup libvirt would create for the captured domain, with a process in it."""
    full = cgroup2_mount() + CGROUP
    os.makedirs(full, exist_ok=True)
    p = subprocess.Popen(["sleep", "60"])
    with open(full + "/cgroup.procs", "w") as f:
        f.write(str(p.pid))
    return full, p


def remove_cgroup(full, p):
    """Kill p, remove full and then each parent the test made, up to the mount (a parent still in
    use is not empty and stays)."""
    p.kill()
    p.wait()
    for _ in range(100):
        try:
            os.rmdir(full)
            break
        except OSError:
            import time
            time.sleep(0.02)
    parent, mount = os.path.dirname(full), cgroup2_mount()
    while parent.startswith(mount + "/"):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


def test_started_records_pid_and_realizes():
    """started reads QEMU's pid from NAME.pid, the broker checks it is inside the guest's cgroup
    and allocates the pending context and devices there."""
    full, p = make_libvirt_cgroup()
    try:
        with Broker() as b:
            run_dir = tempfile.mkdtemp(dir=b.tmp)
            with open(os.path.join(run_dir, NAME + ".pid"), "w") as f:
                f.write("%d" % p.pid)
            assert hook(b, "prepare", fixture("prepare-begin.xml")).returncode == 0
            r = hook(b, "started", fixture("started-begin.xml"), env={"IFB_HOOK_LIBVIRT_QEMU_RUN_DIR": run_dir})
            assert r.returncode == 0, r.stderr
            vm = b.call("vm.show", {"vm": NAME})
            # the hook's guests take the unbound hand-off: ready means checked; QEMU's pid is watched
            assert vm["state"] != "pending" and vm["vmm_pid"] == p.pid, vm
            assert vm["options"]["handoff"] == "unbound" and [h["pid"] for h in vm["holders"]] == [p.pid], vm
            assert all(d["state"] == "ready" for d in vm["devices"]), vm
            # reconnect after a broker that lost the guest: re-created, pid recorded again
            b.call("vm.destroy", {"vm": NAME})
            r = hook(b, "reconnect", fixture("started-begin.xml"), env={"IFB_HOOK_LIBVIRT_QEMU_RUN_DIR": run_dir})
            assert r.returncode == 0 and b"re-creating" in r.stderr, r
            vm = b.call("vm.show", {"vm": NAME})
            assert vm["cgroup"] == CGROUP and len(vm["devices"]) == 2, vm
            assert vm["options"]["handoff"] == "unbound" and vm["vmm_pid"] == p.pid, vm
            # reconnect with the guest present: quiet
            r = hook(b, "reconnect", fixture("started-begin.xml"), env={"IFB_HOOK_LIBVIRT_QEMU_RUN_DIR": run_dir})
            assert r.returncode == 0 and r.stderr == b"", r
    finally:
        remove_cgroup(full, p)


def test_bound_handoff_from_metadata():
    """<options handoff="bound"/>: prepare creates a bound guest; at started the broker binds and
    allocates in libvirt's cgroup and the devices carry ids (for a VMM that takes them)."""
    full, p = make_libvirt_cgroup()
    try:
        with Broker() as b:
            run_dir = tempfile.mkdtemp(dir=b.tmp)
            with open(os.path.join(run_dir, NAME + ".pid"), "w") as f:
                f.write("%d" % p.pid)
            xml = with_options(fixture("prepare-begin.xml"), 'handoff="bound" nest-parent="yes"')
            r = hook(b, "prepare", xml)
            assert r.returncode == 0, r.stderr
            assert b.call("vm.show", {"vm": NAME})["options"]["handoff"] == "bound"
            r = hook(b, "started", fixture("started-begin.xml"), env={"IFB_HOOK_LIBVIRT_QEMU_RUN_DIR": run_dir})
            assert r.returncode == 0, r.stderr
            vm = b.call("vm.show", {"vm": NAME})
            assert vm["options"]["handoff"] == "bound" and vm["ioas_id"] > 0 and vm["vmm_pid"] == p.pid, vm
            assert all(d["state"] == "ready" and d["cgroup"] == CGROUP and d["dev_id"] > 0 and d["hwpt_id"] > 0
                       and d["nest_parent"] for d in vm["devices"]), vm
    finally:
        remove_cgroup(full, p)


def test_viommu_from_metadata():
    """<options viommu=… veventq-depth=…/> and a device's guest-address: prepare creates the guest
    with a vIOMMU and reserves the device with its virtual id (the guest-side PCI address's
    requester id); at started the broker's worker makes the vIOMMU, the vDEVICE and the vEVENTQ
    in libvirt's cgroup. A device without a virtual id refuses the start, naming why."""
    full, p = make_libvirt_cgroup()
    try:
        with Broker() as b:
            run_dir = tempfile.mkdtemp(dir=b.tmp)
            with open(os.path.join(run_dir, NAME + ".pid"), "w") as f:
                f.write("%d" % p.pid)
            base = with_options(fixture("prepare-begin.xml"), 'handoff="bound" viommu="arm-smmuv3" veventq-depth="8"')
            r = hook(b, "prepare", with_devices(base, [SMMU]))
            assert r.returncode == 1 and b"virt_id" in r.stderr, r
            assert b.call("vm.list")["vms"] == []
            s = with_devices(base, [SMMU]).decode().replace('address="%s"' % SMMU,
                                                           'address="%s" guest-address="0000:00:03.0"' % SMMU)
            r = hook(b, "prepare", s.encode())
            assert r.returncode == 0, r.stderr
            vm = b.call("vm.show", {"vm": NAME})
            assert vm["options"]["viommu"] == "arm-smmuv3" and vm["options"]["veventq_depth"] == 8, vm
            assert [(d["device"], d["virt_id"]) for d in vm["devices"]] == [(SMMU, 3 << 3)], vm
            r = hook(b, "started", fixture("started-begin.xml"), env={"IFB_HOOK_LIBVIRT_QEMU_RUN_DIR": run_dir})
            assert r.returncode == 0, r.stderr
            vm = b.call("vm.show", {"vm": NAME})
            vi, d = vm["viommu"], vm["devices"][0]
            assert vi["id"] > 0 and vi["cgroup"] == CGROUP and vi["veventq_id"] > 0, vm
            assert d["vdev_id"] > 0 and d["cgroup"] == CGROUP and d["virt_id"] == 0x18, vm
    finally:
        remove_cgroup(full, p)


SCOPE = "/machine.slice/machine-qemu\\x2d1\\x2difb\\x2dcapture.scope"


def layout_env(b, layout):
    """The hook's environment with the broker's config file saying [libvirt] cgroup-layout."""
    conf = os.path.join(b.tmp, "hook-%s.conf" % layout)
    with open(conf, "w") as f:
        f.write("[broker]\nsocket=%s\n[libvirt]\ncgroup-layout=%s\n" % (b.socket, layout))
    return {"IOMMUFD_BROKER_CONFIG": conf}


def test_machined_layout():
    """On a systemd host libvirt's domains live in machined's scopes: with cgroup-layout=systemd
    prepare registers the scope machined will make (unit-escaped machine name, in machine.slice);
    started accepts QEMU in the scope's "libvirt" child, where libvirt puts it, and allocates in
    the scope. An unknown layout refuses the start and names the key."""
    scope = cgroup2_mount() + SCOPE
    os.makedirs(scope + "/libvirt", exist_ok=True)
    p = subprocess.Popen(["sleep", "60"])
    with open(scope + "/libvirt/cgroup.procs", "w") as f:
        f.write(str(p.pid))
    try:
        with Broker() as b:
            r = hook(b, "prepare", fixture("prepare-begin.xml"), env=layout_env(b, "systemd"))
            assert r.returncode == 0, r.stderr
            assert b.call("vm.show", {"vm": NAME})["cgroup"] == SCOPE
            run_dir = tempfile.mkdtemp(dir=b.tmp)
            with open(os.path.join(run_dir, NAME + ".pid"), "w") as f:
                f.write("%d" % p.pid)
            env = dict(layout_env(b, "systemd"), IFB_HOOK_LIBVIRT_QEMU_RUN_DIR=run_dir)
            r = hook(b, "started", fixture("started-begin.xml"), env=env)
            assert r.returncode == 0, r.stderr
            vm = b.call("vm.show", {"vm": NAME})
            assert all(d["state"] == "ready" for d in vm["devices"]) and vm["options"]["handoff"] == "unbound", vm
            hook(b, "release", fixture("release-end.xml"), subop="end")
            assert b.call("vm.list")["vms"] == []

            r = hook(b, "prepare", fixture("prepare-begin.xml"), env=layout_env(b, "machined"))
            assert r.returncode == 1, r
            assert b"[libvirt] cgroup-layout 'machined' is not one of auto, systemd, manual" in r.stderr, r.stderr
            assert b.call("vm.list")["vms"] == []
            # manual, explicitly: libvirt's own cgroup, as without the key on this (non-systemd) host
            r = hook(b, "prepare", fixture("prepare-begin.xml"), env=layout_env(b, "manual"))
            assert r.returncode == 0, r.stderr
            assert b.call("vm.show", {"vm": NAME})["cgroup"] == CGROUP
            b.call("vm.destroy", {"vm": NAME})
            # a partition of its own is a slice inside machine.slice; '-' in it is escaped
            xml = fixture("prepare-begin.xml").replace(
                b"</metadata>", b"</metadata>\n  <resource><partition>/machine/my-tenant</partition></resource>", 1)
            r = hook(b, "prepare", xml, env=layout_env(b, "systemd"))
            assert r.returncode == 0, r.stderr
            want = "/machine.slice/machine-my\\x2dtenant.slice/machine-qemu\\x2d1\\x2difb\\x2dcapture.scope"
            assert b.call("vm.show", {"vm": NAME})["cgroup"] == want
    finally:
        remove_cgroup(scope + "/libvirt", p)


SHOW_FDS = ("import os,sys,json; fds={}\n"
            "for f in os.listdir('/proc/self/fd'):\n"
            "  try: fds[f]=os.readlink('/proc/self/fd/'+f)\n"
            "  except OSError: pass\n"
            "print(json.dumps({'argv':sys.argv[1:],'fds':fds}))")


def ctl_exec(b, *args, env=None, pass_fds=()):
    r = subprocess.run([CTL, "--socket", b.socket, "exec"] + list(args), capture_output=True, text=True,
                       timeout=20, env=env, pass_fds=pass_fds)
    return r


def test_exec_substitutes_and_keeps_exactly_the_guest_fds():
    """exec --vm: placeholders become numbers, the guest's fds are open in the new program, the
    RPC socket is not, and an inherited fd stays as it was."""
    with Cgroup("g1") as cg, Broker() as b:
        b.call("vm.create", {"name": "g1", "cgroup": cg.path, "options": {"handoff": "bound"}})
        b.call("vm.attach", {"vm": "g1", "devices": [NEST_VTD[0], SMMU]})
        rfd, wfd = os.pipe()
        r = ctl_exec(b, "--vm", "g1", "--", sys.executable, "-c", SHOW_FDS, "fd=%{iommufd}", "%{ioas}",
                     "%{dev:" + NEST_VTD[0] + "}", "%{devid:" + SMMU + "},%{hwpt:" + SMMU + "}", "100%%{x}",
                     pass_fds=(wfd,))
        os.close(rfd)
        os.close(wfd)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        # the program holding the fds exited: the broker made the guest's context again, which a
        # fresh context numbers the same way
        fds = reclaimed(b, "g1", 1)
        a = out["argv"]
        assert a[0].startswith("fd=") and out["fds"][a[0][3:]].startswith("/memfd:ifb-emulated-iommufd"), out
        assert a[1] == str(fds["ioas_id"]), (a, fds)
        assert "vfio" in out["fds"][a[2]], out
        smmu = [d for d in fds["devices"] if d["device"] == SMMU][0]
        assert a[3] == "%d,%d" % (smmu["dev_id"], smmu["hwpt_id"]), (a, smmu)
        assert a[4] == "100%{x}", a
        assert str(wfd) in out["fds"], out                       # inherited fd untouched
        assert not any(t.startswith("socket:") for t in out["fds"].values()), out   # no RPC socket
        n_vfio = sum(1 for t in out["fds"].values() if "vfio" in t)
        assert n_vfio == 2, out                                   # both devices, nothing else


def test_exec_from_argv_probe_and_unmanaged():
    """--vm-from-argv: libvirt's capability probe (no -name) and a domain the broker does not know
    exec the VMM unchanged; a known guest gets its fds; placeholders without a guest refuse."""
    with Cgroup("g2") as cg, Broker() as b:
        r = ctl_exec(b, "--vm-from-argv", "--", sys.executable, "-c", SHOW_FDS, "-S", "-no-user-config")
        assert r.returncode == 0 and json.loads(r.stdout)["argv"] == ["-S", "-no-user-config"], r.stderr
        r = ctl_exec(b, "--vm-from-argv", "--", sys.executable, "-c", SHOW_FDS, "-name", "guest=nobody,debug-threads=on")
        assert r.returncode == 0, r.stderr
        r = ctl_exec(b, "--vm-from-argv", "--", sys.executable, "-c", SHOW_FDS, "x=%{iommufd}")
        assert r.returncode == 2 and "no guest" in r.stderr, r
        b.call("vm.create", {"name": "g2", "cgroup": cg.path})
        r = ctl_exec(b, "--vm-from-argv", "--", sys.executable, "-c", SHOW_FDS, "-name", "guest=g2,debug-threads=on",
                     "-object", "iommufd,id=ifb0,fd=%{iommufd}")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        fd = out["argv"][-1].split("fd=")[1]
        assert out["fds"][fd].startswith("/memfd:ifb-emulated-iommufd"), out
        r = ctl_exec(b, "--vm", "g2", "--", "true", "%{dev:0000:65:00.0}")
        assert r.returncode == 2 and "not attached" in r.stderr, r
        r = ctl_exec(b, "--vm", "g2", "--", "true", "%{bogus}")
        assert r.returncode == 2 and "unknown placeholder" in r.stderr, r
        # an unbound guest (the default) has no broker ids to give
        for ph in ("%{ioas}", "%{devid:" + SMMU + "}", "%{hwpt:" + SMMU + "}"):
            r = ctl_exec(b, "--vm", "g2", "--", "true", ph)
            assert r.returncode == 2 and "unbound hand-off" in r.stderr and "--handoff bound" in r.stderr, r
        r = ctl_exec(b, "--vm", "nosuch", "--", "true")
        assert r.returncode == 1 and "nosuch" in r.stderr, r


def test_exec_pending_guest_realized_in_its_cgroup():
    """A pending guest (as after prepare) is allocated when its VMM, running inside the guest's
    cgroup, asks for the fds — by a worker in that cgroup."""
    cg = Cgroup("pend")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "p1", "cgroup": cg.path + "/qemu", "options": {"handoff": "bound", "defer": True}})
            b.call("vm.attach", {"vm": "p1", "device": NEST_VTD[0]})
            child = cg.child("qemu")

            def enter():
                with open(child.full + "/cgroup.procs", "w") as f:
                    f.write("0")
                os.setgid(65534)
                os.setuid(65534)   # not admin: authorized by cgroup only
            r = subprocess.run([CTL, "--socket", b.socket, "exec", "--vm", "p1", "--", "/bin/sh", "-c",
                                'readlink /proc/self/fd/$0', "%{dev:" + NEST_VTD[0] + "}"], capture_output=True,
                               text=True, timeout=20, preexec_fn=enter)
            assert r.returncode == 0 and "vfio" in r.stdout, (r.stdout, r.stderr)
            vm = reclaimed(b, "p1", 1)
            assert vm["devices"][0]["state"] == "ready" and vm["devices"][0]["cgroup"] == child.path, vm
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_no_metadata_untouched, test_migrate_restore_pass_through,
         test_prepare_creates_pending_guest_with_libvirt_cgroup, test_prepare_refused_bad_handoff,
         test_prepare_refused_non_vfio_device, test_prepare_takes_managed_devices,
         test_native_iommufd_domain_without_client_refused, test_native_iommufd_domain_placed_and_hostdevs_reserved,
         test_vm_place_rules, test_libvirt_start_refuses_domain_without_fdgroup,
         test_prepare_refused_device_of_another_guest, test_prepare_replaces_stale_guest_same_uuid,
         test_socket_from_config_file, test_broker_down_refuses_prepare_only, test_started_records_pid_and_realizes,
         test_bound_handoff_from_metadata, test_viommu_from_metadata, test_machined_layout,
         test_exec_substitutes_and_keeps_exactly_the_guest_fds, test_exec_from_argv_probe_and_unmanaged,
         test_exec_pending_guest_realized_in_its_cgroup])
