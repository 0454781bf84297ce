"""Managed devices on the emulated backend, whose fixture sysfs answers driver_override, unbind and
drivers_probe as the kernel does: the broker takes a device from its host driver for a guest
(vfio-pci, its VFIO cdev appearing), gives it back when it leaves the guest, refuses what must
not be taken, and keeps its word across failures and restarts."""
import json
import os
import shutil
import signal
import tempfile
import time

from ifbtest import NEST_VTD, NOT_VFIO, TEMPLATE, Broker, Cgroup, read_state, run

E1000E = NOT_VFIO                    # 0000:00:19.0, on e1000e in the fixture tree
IGB = ["0000:03:00.0", "0000:03:00.1"]   # two functions in IOMMU group 7, on igb
UPLINK = "0000:04:00.0"              # e1000e carrying eno1, up with a route: the host's way out
BRIDGE = "0000:00:1c.0"
NO_GROUP = "0000:05:00.0"

VTD_PROFILE = ("ifb-emulated-device 1\nbdf=%s\nrdev=511:%d\niommu=intel-vtd\ncap=0x00d2008c40660462\n"
               "ecap=0x1e800040f5e5e\n")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def managed_tree():
    """The fixture tree plus what the refusals need: two igb functions sharing an IOMMU group, an
    e1000e that is the host's way out, a bridge, and a device without an IOMMU group."""
    root = os.path.join(tempfile.mkdtemp(prefix="ifbtest-tree-"), "emulated")
    shutil.copytree(TEMPLATE, root, symlinks=True)
    sysd = os.path.join(root, "sys")

    def dev(bdf, ids, cls, driver, group, minor=None, netdev=None):
        d = os.path.join(sysd, "bus/pci/devices", bdf)
        vendor, device = ids.split(":")
        _write(d + "/vendor", "0x%s\n" % vendor)
        _write(d + "/device", "0x%s\n" % device)
        _write(d + "/class", "0x%06x\n" % cls)
        _write(d + "/driver_override", "(null)\n")
        if driver:
            os.makedirs(os.path.join(sysd, "bus/pci/drivers", driver), exist_ok=True)
            os.symlink("../../../../bus/pci/drivers/" + driver, d + "/driver")
        if group is not None:
            os.symlink("../../../../kernel/iommu_groups/%d" % group, d + "/iommu_group")
            g = os.path.join(sysd, "kernel/iommu_groups/%d" % group)
            _write(g + "/type", "DMA\n")
            os.makedirs(g + "/devices", exist_ok=True)
            os.symlink("../../../../bus/pci/devices/" + bdf, g + "/devices/" + bdf)
        if minor is not None:
            _write(d + "/ifb-emulated-cdev", "vfio%d\n" % minor)
            _write(os.path.join(root, "dev/vfio/ifb-unbound/vfio%d" % minor), VTD_PROFILE % (bdf, minor))
        if netdev:
            _write(d + "/net/%s/operstate" % netdev[0], netdev[1] + "\n")

    dev(IGB[0], "8086:1521", 0x020000, "igb", 7, minor=5)
    dev(IGB[1], "8086:1521", 0x020000, "igb", 7, minor=6)
    dev(UPLINK, "8086:10d3", 0x020000, "e1000e", 8, minor=7, netdev=("eno1", "up"))
    dev(BRIDGE, "8086:a110", 0x060400, "pcieport", 9)
    dev(NO_GROUP, "8086:a102", 0x010601, "ahci", None)
    _write(os.path.join(sysd, "bus/pci/drivers/igb/ifb-emulated-ids"), "8086:1521\n")
    _write(os.path.join(root, "proc/net/route"),
           "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
           "eno1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    _write(os.path.join(root, "proc/net/if_inet6"), "")
    return root


def conf(allow, extra=""):
    return "[devices]\nallow=%s\n%s" % (";".join(allow), extra)


def sysfs(b, bdf):
    """(driver, driver_override, VFIO cdevs in sysfs, those with a node under dev/) as the
    emulated host shows the device."""
    d = os.path.join(b.runtime_dir, "emulated", "sys", "bus", "pci", "devices", bdf)
    driver = os.path.basename(os.readlink(d + "/driver")) if os.path.islink(d + "/driver") else None
    with open(d + "/driver_override") as f:
        override = f.read().strip()
    cdevs = sorted(os.listdir(d + "/vfio-dev")) if os.path.isdir(d + "/vfio-dev") else []
    nodes = [c for c in cdevs if os.path.exists(os.path.join(b.runtime_dir, "emulated", "dev", "vfio", "devices", c))]
    return driver, override, cdevs, nodes


def on_host_driver(b, bdf, driver):
    got = sysfs(b, bdf)
    assert got[0] == driver and got[1] == "(null)" and got[2] == [] and got[3] == [], got


def on_vfio(b, bdf):
    got = sysfs(b, bdf)
    assert got[0] == "vfio-pci" and len(got[2]) == 1 and got[3] == got[2], got
    return got


def ledger(b):
    try:
        with open(os.path.join(b.runtime_dir, "managed-devices.json")) as f:
            return json.load(f)["devices"]
    except FileNotFoundError:
        return {}


def subscribe(b):
    ev = b.client()
    ev.call("events.subscribe")
    return ev


def wait_until(what, fn, timeout=10):
    """Wait for fn() to hold (the deadline only catches a hang)."""
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "never: " + what
        time.sleep(0.02)


def wait_event(ev, name, device):
    """The next event name about device (the socket's timeout only catches a hang)."""
    while True:
        msg, _ = ev.recv()
        p = msg.get("params", {})
        if p.get("event") == name and p.get("device") == device:
            return p


def test_managed_attach_takes_and_detach_gives_back():
    # A managed device goes from its host driver to vfio-pci with its cdev (in sysfs and under
    # /dev), the guest and its state record where it came from, and detach gives it back: its
    # driver again, the override cleared, the cdev gone, nothing left in the ledger.
    with Cgroup("managed") as cg, Broker(config=conf([E1000E])) as b:
        on_host_driver(b, E1000E, "e1000e")
        ev = subscribe(b)
        b.call("vm.create", {"name": "g", "cgroup": cg.child("g").path})
        vm = b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
        d = vm["devices"][0]
        assert d["managed"] is True and d["host_driver"] == "e1000e" and d["state"] == "ready", d
        assert d["cdev"] == on_vfio(b, E1000E)[2][0] == "vfio4", d
        assert sysfs(b, E1000E)[1] == "vfio-pci"
        saved = read_state(b.runtime_dir)["vms"][0]["devices"][0]
        assert saved["managed"] is True and saved["host_driver"] == "e1000e", saved
        assert ledger(b) == {E1000E: "e1000e"}
        b.call("vm.detach", {"vm": "g", "device": E1000E})
        assert wait_event(ev, "device.returned", E1000E)["driver"] == "e1000e"
        on_host_driver(b, E1000E, "e1000e")
        assert ledger(b) == {}
        # taken again, by a bound guest this time, and given back by its destroy
        b.call("vm.create", {"name": "h", "cgroup": cg.child("h").path,
                             "options": {"handoff": "bound", "allow_plain": True}})   # QEMU's VT-d: no nesting
        r = b.ctl("vm", "attach", "h", E1000E, "--managed", check=0)
        assert "yes (e1000e)" in r.stdout, r.stdout
        d = b.call("vm.show", {"vm": "h"})["devices"][0]
        assert d["state"] == "ready" and d["hwpt_id"] > 0, d
        b.call("vm.destroy", {"vm": "h"})
        wait_event(ev, "device.returned", E1000E)
        on_host_driver(b, E1000E, "e1000e")


def test_allow_list_decides():
    # Without an entry in [devices] allow nothing is taken (the device stays where it is); an id
    # entry (vendor:device) offers every such device.
    with Cgroup("allow") as cg:
        with Broker(config=conf([])) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            err = b.client().error("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
            assert err["data"]["name"] == "permission-denied" and E1000E in err["message"], err
            assert "[devices] allow" in err["message"], err
            on_host_driver(b, E1000E, "e1000e")
            assert b.call("vm.show", {"vm": "g"})["devices"] == []
        with Broker(config=conf(["8086:15b8"])) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
            on_vfio(b, E1000E)


def test_device_on_vfio_before_stays_there():
    # A device that was on vfio-pci before it was attached managed is never moved, and stays on
    # vfio-pci (with its cdev) after the guest is gone.
    with Cgroup("stays") as cg, Broker(config=conf([NEST_VTD[0]])) as b:
        before = on_vfio(b, NEST_VTD[0])
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        d = b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0], "managed": True})["devices"][0]
        assert d["managed"] is True and d["host_driver"] == "vfio-pci", d
        assert ledger(b) == {}
        b.call("vm.destroy", {"vm": "g"})
        assert on_vfio(b, NEST_VTD[0]) == before
        assert ledger(b) == {}


def test_iommu_group_with_host_driver_endpoint():
    # A device whose IOMMU group holds another endpoint on a host driver is refused, naming that
    # endpoint and its driver, and nothing moves; managed together for the same guest, both are
    # taken, and both go back.
    with Cgroup("group") as cg, Broker(config=conf(IGB), template=managed_tree()) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        err = b.client().error("vm.attach", {"vm": "g", "device": IGB[0], "managed": True})
        assert err["data"]["name"] == "device-busy", err
        assert IGB[0] in err["message"] and IGB[1] in err["message"] and "'igb'" in err["message"], err
        for bdf in IGB:
            on_host_driver(b, bdf, "igb")
        ev = subscribe(b)
        vm = b.call("vm.attach", {"vm": "g", "devices": IGB, "managed": True})
        assert [d["host_driver"] for d in vm["devices"]] == ["igb", "igb"], vm
        for bdf in IGB:
            on_vfio(b, bdf)
        b.call("vm.destroy", {"vm": "g"})
        returned = set()
        while returned != set(IGB):
            msg, _ = ev.recv()
            if msg.get("params", {}).get("event") == "device.returned":
                returned.add(msg["params"]["device"])
        for bdf in IGB:
            on_host_driver(b, bdf, "igb")


def test_bad_devices_get_one_clear_error():
    # A device that does not exist, a bridge, a device without an IOMMU group: one error each,
    # naming the device, and the guest unchanged.
    with Cgroup("bad") as cg, Broker(config=conf(["0000:99:00.0", BRIDGE, NO_GROUP]), template=managed_tree()) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        c = b.client()
        for bdf, name, words in [("0000:99:00.0", "no-such-device", "No PCI device"),
                                 (BRIDGE, "invalid-argument", "bridge"),
                                 (NO_GROUP, "invalid-argument", "no IOMMU group")]:
            err = c.error("vm.attach", {"vm": "g", "device": bdf, "managed": True})
            assert err["data"]["name"] == name and bdf in err["message"] and words in err["message"], err
        assert b.call("vm.show", {"vm": "g"})["devices"] == []
        assert sysfs(b, BRIDGE)[0] == "pcieport" and sysfs(b, NO_GROUP)[0] == "ahci"


def test_host_route_out_refused_unless_named():
    # The host's way out (a netdev up with an address) is not taken on an id entry; an entry
    # naming its address takes it.
    with Cgroup("uplink") as cg:
        with Broker(config=conf(["8086:10d3"]), template=managed_tree()) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            err = b.client().error("vm.attach", {"vm": "g", "device": UPLINK, "managed": True})
            assert err["data"]["name"] == "permission-denied", err
            assert UPLINK in err["message"] and "'eno1'" in err["message"], err
            on_host_driver(b, UPLINK, "e1000e")
        with Broker(config=conf([UPLINK]), template=managed_tree()) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": UPLINK, "managed": True})
            on_vfio(b, UPLINK)


def test_host_way_out_seen_from_a_network_namespace_of_its_own():
    # Under its unit (PrivateNetwork=, ProcSubset=pid) the broker's own /proc/net shows only its
    # loopback and systemd mounts it a fresh sysfs where the host's interfaces are not listed: the
    # way out is still refused. Routes are the host's (PID 1's /proc/1/net); a device whose net/
    # lists nothing has its interfaces in another namespace, which is not taken on an id entry.
    header = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
    with Cgroup("netns") as cg:
        tree = managed_tree()
        with open(os.path.join(tree, "proc/net/route")) as f:
            _write(os.path.join(tree, "proc/1/net/route"), f.read())
        _write(os.path.join(tree, "proc/1/net/if_inet6"), "")
        _write(os.path.join(tree, "proc/net/route"), header)
        with Broker(config=conf(["8086:10d3"]), template=tree) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            err = b.client().error("vm.attach", {"vm": "g", "device": UPLINK, "managed": True})
            assert err["data"]["name"] == "permission-denied" and "'eno1'" in err["message"], err
            on_host_driver(b, UPLINK, "e1000e")
        tree = managed_tree()
        shutil.rmtree(os.path.join(tree, "sys/bus/pci/devices", UPLINK, "net/eno1"))
        _write(os.path.join(tree, "proc/net/route"), header)
        with Broker(config=conf(["8086:10d3"]), template=tree) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            err = b.client().error("vm.attach", {"vm": "g", "device": UPLINK, "managed": True})
            assert err["data"]["name"] == "permission-denied", err
            assert UPLINK in err["message"] and "another network namespace" in err["message"], err
            on_host_driver(b, UPLINK, "e1000e")
        with Broker(config=conf([UPLINK]), template=tree) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": UPLINK, "managed": True})
            on_vfio(b, UPLINK)


def test_rebind_timeout_leaves_device_and_guest():
    # A device whose probe never brings up vfio-pci is refused when [devices] bind-timeout-ms runs
    # out, back on its driver by the time the error arrives, and the guest is as before.
    with Cgroup("timeout") as cg, Broker(config=conf([E1000E], "bind-timeout-ms=300\n"),
                                         env={"IFB_FAULT": "vfio-probe-stall"}) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        before = b.call("vm.show", {"vm": "g"})
        err = b.client().error("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
        assert err["data"] == {"name": "kernel-error", "errno": "ETIMEDOUT"}, err
        assert E1000E in err["message"] and "bind-timeout-ms" in err["message"], err
        on_host_driver(b, E1000E, "e1000e")
        assert ledger(b) == {}
        after = b.call("vm.show", {"vm": "g"})
        assert after["devices"] == before["devices"] == [] and not after["busy"], after
        assert read_state(b.runtime_dir)["vms"][0]["devices"] == []


def test_failed_give_back_retried_with_journal_line():
    # Giving a device back fails once: a log line says so and when it is tried again, an unmanaged
    # attach is refused meanwhile, and the retry brings it back.
    with Cgroup("retry") as cg, Broker(config=conf([E1000E], "return-retry-ms=200\n"),
                                       env={"IFB_FAULT": "give-back@1"}) as b:
        ev = subscribe(b)
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
        b.call("vm.detach", {"vm": "g", "device": E1000E})
        wait_event(ev, "device.returned", E1000E)
        log = b.read_log()
        assert "Giving device %s back to its driver 'e1000e' failed" % E1000E in log, log
        assert "trying again in 200 ms" in log, log
        on_host_driver(b, E1000E, "e1000e")
        assert ledger(b) == {}


def test_waiting_device_is_nobody_elses():
    # While a device waits to be given back, an unmanaged attach is refused saying so; attached
    # managed again it is taken as it is, remembering the driver it came from.
    with Cgroup("waiting") as cg, Broker(config=conf([E1000E], "return-retry-ms=600000\n"),
                                         env={"IFB_FAULT": "give-back@1"}) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
        b.call("vm.detach", {"vm": "g", "device": E1000E})
        assert ledger(b) == {E1000E: "e1000e"}
        err = b.client().error("vm.attach", {"vm": "g", "device": E1000E})
        assert err["data"]["name"] == "device-busy" and "waits to be given back" in err["message"], err
        d = b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})["devices"][0]
        assert d["host_driver"] == "e1000e", d
        ev = subscribe(b)
        b.call("vm.destroy", {"vm": "g"})
        wait_event(ev, "device.returned", E1000E)
        on_host_driver(b, E1000E, "e1000e")


def test_crash_then_restart_keeps_or_gives_back():
    # The daemon dies (SIGKILL) while a guest holds a managed device: after the restart the guest
    # still holds it on vfio-pci, and its destroy gives it back. Dying again in the window where a
    # destroy has forgotten the guest's state but not yet given its device back (played by
    # removing the state file while the daemon is down), the restart gives it back from the
    # ledger.
    with Cgroup("crash") as cg:
        b = Broker(config=conf([E1000E])).start()
        try:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
            b.stop(signal.SIGKILL)
            b.start()
            d = b.call("vm.show", {"vm": "g"})["devices"][0]
            assert d["host_driver"] == "e1000e", d
            on_vfio(b, E1000E)
            assert ledger(b) == {E1000E: "e1000e"}
            ev = subscribe(b)
            b.call("vm.destroy", {"vm": "g"})
            wait_event(ev, "device.returned", E1000E)
            on_host_driver(b, E1000E, "e1000e")

            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
            b.stop(signal.SIGKILL)
            guests = os.path.join(b.runtime_dir, "guests")
            for name in os.listdir(guests):
                if name.endswith(".json"):
                    os.unlink(os.path.join(guests, name))
            b.start()
            wait_until("the ledger is empty", lambda: ledger(b) == {})
            on_host_driver(b, E1000E, "e1000e")
            assert b.call("vm.list")["vms"] == []
            assert ledger(b) == {}
            assert "belongs to no guest after the restart" in b.read_log()
        finally:
            b.stop()


def test_restart_reconciles_state_with_sysfs():
    # A guest that survives a restart (pending: its cgroup does not exist yet) holds a managed
    # device someone put back on its driver while the broker was down: the restored guest does
    # not claim it (sysfs is read), its state file says so, and the override is cleared.
    with Cgroup("reconcile") as parent:
        b = Broker(config=conf([E1000E])).start()
        try:
            b.call("vm.create", {"name": "g", "cgroup": parent.path + "/later", "options": {"defer": True}})
            d = b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})["devices"][0]
            assert d["state"] == "reserved" and d["host_driver"] == "e1000e", d
            on_vfio(b, E1000E)
            b.stop(signal.SIGKILL)
            # what an operator's script would do: back to e1000e behind the broker's back
            dev = os.path.join(b.runtime_dir, "emulated", "sys", "bus", "pci", "devices", E1000E)
            os.unlink(dev + "/driver")
            shutil.rmtree(dev + "/vfio-dev")
            os.rename(os.path.join(b.runtime_dir, "emulated", "dev", "vfio", "devices", "vfio4"),
                      os.path.join(b.runtime_dir, "emulated", "dev", "vfio", "ifb-unbound", "vfio4"))
            os.symlink("../../../../bus/pci/drivers/e1000e", dev + "/driver")
            b.start()
            vm = b.call("vm.show", {"vm": "g"})
            assert vm["devices"] == [], vm
            assert read_state(b.runtime_dir)["vms"][0]["devices"] == []
            wait_until("the ledger is empty", lambda: ledger(b) == {})
            on_host_driver(b, E1000E, "e1000e")
            assert "not vfio-pci, after the restart" in b.read_log()
        finally:
            b.stop()


def listed(b, bdf):
    """device.list's entry for bdf."""
    return next(d for d in b.call("device.list")["devices"] if d["device"] == bdf)


def test_device_list_shows_the_ledger():
    # device.list (and `iommufdctl devices`) says of a device taken from its host driver which
    # driver it goes back to and where it is on its way: held while a guest has it, waiting when
    # giving it back failed, and nothing once it is back. A device on vfio-pci before is not listed
    # as managed at all.
    with Cgroup("listed") as cg, Broker(config=conf([E1000E, NEST_VTD[0]], "return-retry-ms=600000\n"),
                                        env={"IFB_FAULT": "give-back@1"}) as b:
        assert listed(b, E1000E)["managed"] is None
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.call("vm.attach", {"vm": "g", "devices": [E1000E, NEST_VTD[0]], "managed": True})
        assert listed(b, E1000E)["managed"] == {"state": "held", "driver": "e1000e"}
        assert listed(b, NEST_VTD[0])["managed"] is None
        row = next(l for l in b.ctl("devices").stdout.splitlines() if l.startswith(E1000E))
        assert row.split()[-3:] == ["g", "e1000e", "(held)"], row
        b.call("vm.detach", {"vm": "g", "device": E1000E})   # the first give-back fails
        assert listed(b, E1000E)["managed"] == {"state": "waiting", "driver": "e1000e"}
        assert listed(b, E1000E)["owner"] is None
        row = next(l for l in b.ctl("devices").stdout.splitlines() if l.startswith(E1000E))
        assert row.split()[-2:] == ["e1000e", "(waiting)"], row
        ev = subscribe(b)
        b.call("vm.attach", {"vm": "g", "device": E1000E, "managed": True})
        b.call("vm.destroy", {"vm": "g"})
        wait_event(ev, "device.returned", E1000E)
        assert listed(b, E1000E)["managed"] is None
        row = next(l for l in b.ctl("devices").stdout.splitlines() if l.startswith(E1000E))
        assert row.split()[-1] == "-", row


def test_cli_and_unmanaged_unchanged():
    # Without managed a device on a host driver is refused as before (nothing moves); the CLI's
    # --managed is vm.attach's managed; a non-PCI device cannot be managed.
    with Cgroup("cli") as cg, Broker(config=conf([E1000E])) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        r = b.ctl("vm", "attach", "g", E1000E, check=1)
        assert "not to vfio-pci" in r.stderr, r.stderr
        on_host_driver(b, E1000E, "e1000e")
        r = b.ctl("vm", "attach", "g", "--managed", check=2)
        assert "missing BDF" in r.stderr, r.stderr
        err = b.client().error("vm.attach", {"vm": "g", "device": "selftest:1", "managed": True})
        assert err["data"]["name"] == "invalid-params" and "cannot be managed" in err["message"], err
        b.ctl("vm", "attach", "g", E1000E, "--managed", check=0)
        on_vfio(b, E1000E)


if __name__ == "__main__":
    run([test_managed_attach_takes_and_detach_gives_back, test_allow_list_decides, test_device_on_vfio_before_stays_there,
         test_iommu_group_with_host_driver_endpoint, test_bad_devices_get_one_clear_error,
         test_host_route_out_refused_unless_named, test_host_way_out_seen_from_a_network_namespace_of_its_own,
         test_rebind_timeout_leaves_device_and_guest,
         test_failed_give_back_retried_with_journal_line, test_waiting_device_is_nobody_elses,
         test_device_list_shows_the_ledger, test_crash_then_restart_keeps_or_gives_back, test_restart_reconciles_state_with_sysfs, test_cli_and_unmanaged_unchanged])
