"""The unbound hand-off (the default; what QEMU, libvirt and cloud-hypervisor consume) against the
real daemon: the broker checks and reserves, the VMM stand-in binds and allocates itself from the
guest's cgroup, one holder at a time, and the VMM's exit leaves nothing in the context; the
cdev node is checked against sysfs; bound guests stay as they were."""
import os
import shutil
import signal

from ifbtest import (NEST_VTD, NOBODY, SMMU, Broker, Cgroup, peer, peer_holding, proc_fd_targets, reclaimed, run)


def objects(b, vm):
    return b.call("vm.show", {"vm": vm}).get("context_objects", [])


def test_unbound_is_default_and_keeps_no_device_fd():
    # Created without options a guest is unbound: a context with no object at all, devices
    # checked and reserved but never bound, and no device fd held by the broker.
    with Cgroup("hodef") as cg, Broker() as b:
        assert b.call("broker.info")["defaults"]["handoff"] == "unbound"
        vm = b.call("vm.create", {"name": "g", "cgroup": cg.path})
        assert vm["options"]["handoff"] == "unbound" and vm["state"] == "ready" and vm["ioas_id"] == 0, vm
        vm = b.call("vm.attach", {"vm": "g", "devices": [NEST_VTD[0], SMMU]})
        assert [d["state"] for d in vm["devices"]] == ["ready", "ready"], vm
        assert all("dev_id" not in d and "hwpt_id" not in d for d in vm["devices"]), vm
        assert objects(b, "g") == [], objects(b, "g")
        # (an fd the daemon closes between the listing and the readlink is just not there)
        targets = list(proc_fd_targets(b.proc.pid).values())
        assert not [t for t in targets if "/dev/vfio/devices/" in t], targets
        owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
        assert owners[NEST_VTD[0]] == "g" and owners[SMMU] == "g", owners


def test_vmm_binds_allocates_exits_and_comes_back():
    # The VMM (inside the guest's cgroup, unprivileged) binds the fresh unbound fds itself and
    # allocates its IOAS and HWPTs, recorded in its own cgroup. A second process is refused while
    # it holds them. When it exits, the broker replaces the context: nothing it allocated stays,
    # and the next VMM binds again (so the devices really were released).
    with Cgroup("hovmm") as root:
        guest = root.child("guest")
        vmm = guest.child("emulator")
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": guest.path})
            b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            proc, out = peer_holding(b, "g", vmm, NOBODY, "--nested", "--map", str(1 << 20))
            assert out["ok"] and out["handoff"] == "unbound" and out["n_fds"] == 3, out
            assert all(d["nest_parent"] for d in out["devices"]), out
            assert [n["result"] for n in out["nested"]] == ["ok", "ok"], out
            objs = objects(b, "g")
            kinds = sorted(o["type"] for o in objs)
            assert kinds == sorted(["ioas", "device", "device", "hwpt-paging", "hwpt-paging",
                                    "hwpt-nested", "hwpt-nested"]), objs
            assert all(o["cgroup"] == vmm.path and o["creator_pid"] == proc.pid for o in objs), objs
            shown = b.call("vm.show", {"vm": "g"})
            assert shown["vmm_pid"] == proc.pid and [h["pid"] for h in shown["holders"]] == [proc.pid], shown
            # one holder at a time: another process in the guest's cgroup, and an admin, are refused
            rc, second = peer(b, "g", vmm, NOBODY)
            assert rc == 1 and second["error"] == "device-busy" and str(proc.pid) in second["message"], second
            e = b.client().error("vm.fds", {"vm": "g"})
            assert e["data"]["name"] == "device-busy", e
            # the VMM exits (killed, as a crash would): its objects go with the old context
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            v = reclaimed(b, "g", 1)
            assert v["holders"] == [] and objects(b, "g") == [], (v, objects(b, "g"))
            assert v["state"] == "ready" and [d["state"] for d in v["devices"]] == ["ready", "ready"], v
            # a restarted VMM gets the devices again and can bind them: they were released
            rc, out = peer(b, "g", vmm, NOBODY, "--nested")
            assert rc == 0 and out["ok"], out
            reclaimed(b, "g", 2)
            assert objects(b, "g") == []
            b.call("vm.destroy", {"vm": "g"})


def test_exec_gives_unbound_fds_and_refuses_ids():
    # iommufdctl exec for an unbound guest: %{iommufd} and %{dev:BDF} are fds (the device fd a
    # fresh open of its cdev), the ids QEMU cannot take are refused by name.
    with Cgroup("hoexec") as cg, Broker() as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.call("vm.attach", {"vm": "g", "device": SMMU})
        r = b.ctl("exec", "--vm", "g", "--", "/bin/sh", "-c", 'readlink /proc/self/fd/$0 /proc/self/fd/$1',
                  "%{iommufd}", "%{dev:" + SMMU + "}", check=0)
        iommufd, dev = r.stdout.splitlines()
        assert iommufd.startswith("/memfd:ifb-emulated-iommufd") and dev.endswith("/dev/vfio/devices/vfio3"), r.stdout
        # the launcher (now sh) was the holder; it exited, so the context was replaced
        reclaimed(b, "g", 1)
        for ph in ("%{ioas}", "%{devid:" + SMMU + "}", "%{hwpt:" + SMMU + "}"):
            r = b.ctl("exec", "--vm", "g", "--", "true", ph, check=2)
            assert "unbound hand-off" in r.stderr and "--handoff bound" in r.stderr, r.stderr
        r = b.ctl("vm", "show", "g", check=0)
        assert "Hand-off:  unbound" in r.stdout, r.stdout


def test_cdev_node_checked_against_sysfs():
    # A node under /dev that is not the device sysfs names (here: vfio0 replaced by vfio1's
    # node) is refused at attach, naming both device numbers; bound guests are checked too.
    with Cgroup("hordev") as cg, Broker() as b:
        devdir = os.path.join(b.runtime_dir, "emulated", "dev", "vfio", "devices")
        shutil.copyfile(os.path.join(devdir, "vfio1"), os.path.join(devdir, "vfio0"))
        for handoff in ("unbound", "bound"):
            b.call("vm.create", {"name": handoff, "cgroup": cg.child(handoff).path, "options": {"handoff": handoff}})
            e = b.client().error("vm.attach", {"vm": handoff, "device": NEST_VTD[0]})
            assert e["data"]["name"] == "device-not-vfio", e
            assert "vfio0 is device 511:1" in e["message"] and "its cdev is 511:0" in e["message"], e
            assert b.call("vm.show", {"vm": handoff})["devices"] == []


def test_bad_handoff_refused():
    with Cgroup("hobad") as cg, Broker() as b:
        e = b.client().error("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "half"}})
        assert e["code"] == -32602 and "'handoff'" in e["message"] and "half" in e["message"], e
        r = b.ctl("vm", "create", "g", "--cgroup", cg.path, "--handoff", "half", check=1)
        assert "handoff" in r.stderr, r.stderr
        assert b.call("vm.list")["vms"] == []


def test_selftest_device_needs_bound():
    with Cgroup("hoself") as cg, Broker() as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        e = b.client().error("vm.attach", {"vm": "g", "device": "selftest:0"})
        assert e["code"] == -32602 and "bound hand-off" in e["message"], e


if __name__ == "__main__":
    run([test_unbound_is_default_and_keeps_no_device_fd, test_vmm_binds_allocates_exits_and_comes_back,
         test_exec_gives_unbound_fds_and_refuses_ids, test_cdev_node_checked_against_sysfs,
         test_bad_handoff_refused, test_selftest_device_needs_bound])
