"""A guest's vIOMMU (vm.create option viommu, bound hand-off) against the real daemon: the
worker makes it in the guest's cgroup on the first device's NEST_PARENT and a vDEVICE per
device with the caller's virtual id; the VMM gets their ids; detach, VMM exit and destroy take
them down in the kernel's order; refusals say why."""
import os
import re
import shutil
import signal

from ifbtest import NEST_VTD, NO_NEST_VTD, NOBODY, SMMU, Broker, Cgroup, peer_holding, reclaimed, run


SMMU2 = "0000:0b:00.0"


def add_second_smmu(b):
    """A second device behind the SMMUv3, made in the daemon's copy of the emulated tree
    (sysfs entry, IOMMU group, vfio cdev with vfio3's profile): the fixture has one."""
    root = os.path.join(b.runtime_dir, "emulated")
    src = os.path.join(root, "sys", "bus", "pci", "devices", SMMU)
    dst = os.path.join(root, "sys", "bus", "pci", "devices", SMMU2)
    os.makedirs(os.path.join(dst, "vfio-dev", "vfio9"))
    for f in ("vendor", "device"):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    os.symlink(os.readlink(os.path.join(src, "driver")), os.path.join(dst, "driver"))
    os.makedirs(os.path.join(root, "sys", "kernel", "iommu_groups", "21"))
    shutil.copyfile(os.path.join(root, "sys", "kernel", "iommu_groups", "20", "type"),
                    os.path.join(root, "sys", "kernel", "iommu_groups", "21", "type"))
    os.symlink("../../../../kernel/iommu_groups/21", os.path.join(dst, "iommu_group"))
    with open(os.path.join(dst, "vfio-dev", "vfio9", "dev"), "w") as f:
        f.write("511:9\n")
    devs = os.path.join(root, "dev", "vfio", "devices")
    text = open(os.path.join(devs, "vfio3")).read().replace("rdev=511:3", "rdev=511:9").replace(SMMU, SMMU2)
    with open(os.path.join(devs, "vfio9"), "w") as f:
        f.write(text)


def objects(b, vm):
    return b.call("vm.show", {"vm": vm}).get("context_objects", [])


def kinds(b, vm):
    return sorted(o["type"] for o in objects(b, vm))


def create(b, cg, name="g", **opts):
    o = {"handoff": "bound", "viommu": "arm-smmuv3"}
    o.update(opts)
    return b.call("vm.create", {"name": name, "cgroup": cg.path, "options": o})


def test_viommu_and_vdevice_made_in_guest_cgroup():
    # The worker, in the guest's cgroup, makes the vIOMMU on the device's NEST_PARENT and the
    # device's vDEVICE with the given virtual id; vm.show reports both with that cgroup, the
    # context records them there too, and the HWPT under the vIOMMU is its parent.
    with Cgroup("vigrp") as cg, Broker() as b:
        create(b, cg)
        vm = b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 0x10})
        d = vm["devices"][0]
        vi = vm["viommu"]
        assert vi["type"] == "arm-smmuv3" and vi["id"] > 0 and vi["hwpt_id"] == d["hwpt_id"], vm
        assert vi["cgroup"] == cg.path and d["cgroup"] == cg.path, vm
        assert d["virt_id"] == 0x10 and d["vdev_id"] > 0 and d["nest_parent"], d
        objs = {o["id"]: o for o in objects(b, "g")}
        assert objs[vi["id"]]["type"] == "viommu" and objs[vi["id"]]["parent_id"] == d["hwpt_id"], objs
        vdev = objs[d["vdev_id"]]
        assert vdev["type"] == "vdevice" and vdev["parent_id"] == vi["id"] and vdev["virt_id"] == 0x10, vdev
        assert vdev["dev_id"] == d["dev_id"], vdev
        assert all(o["cgroup"] == cg.path for o in objs.values() if o["type"] != "device"), objs
        r = b.ctl("vm", "show", "g", check=0)
        assert re.search(r"vIOMMU: +arm-smmuv3, id %d on HWPT %d \(allocated in %s\)" % (vi["id"], d["hwpt_id"], re.escape(cg.path)),
                         r.stdout), r.stdout
        assert "vDEVICE:   %s: id %d, virtual id 16" % (SMMU, d["vdev_id"]) in r.stdout, r.stdout


def test_vmm_gets_ids_and_its_exit_remakes_them():
    # vm.fds carries viommu_id and the device's vdev_id/virt_id; iommufdctl exec puts them in
    # %{viommu} and %{vdev:BDF}. When the VMM exits, the context is replaced and the broker's
    # worker makes the vIOMMU and vDEVICE again: one of each, no leftovers.
    with Cgroup("vivmm") as root:
        guest = root.child("guest")
        with Broker() as b:
            create(b, guest)
            b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 7})
            shown = b.call("vm.show", {"vm": "g"})
            proc, out = peer_holding(b, "g", guest, NOBODY)
            assert out["ok"], out
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            v = reclaimed(b, "g", 1)
            assert v["viommu"]["id"] > 0 and v["devices"][0]["vdev_id"] > 0 and v["devices"][0]["virt_id"] == 7, v
            assert kinds(b, "g") == ["device", "hwpt-paging", "ioas", "vdevice", "viommu"], objects(b, "g")
            assert v["viommu"]["cgroup"] == guest.path, v
            r = b.ctl("exec", "--vm", "g", "--", "/bin/echo", "%{viommu}", "%{vdev:" + SMMU + "}", "%{hwpt:" + SMMU + "}",
                      check=0)
            v = reclaimed(b, "g", 2)
            got = r.stdout.split()
            assert len(got) == 3 and int(got[2]) > 0, r.stdout
            assert shown["viommu"]["id"] > 0 and int(got[0]) > 0 and int(got[1]) > 0, (shown, r.stdout)
            b.call("vm.destroy", {"vm": "g"})
            assert b.call("vm.list")["vms"] == []


def test_vmm_nests_through_the_viommu_and_goes_without_a_trace():
    # What a VMM does when its guest programs the vIOMMU: vmm-peer, in the guest's cgroup with the
    # bound fds, allocates a nested HWPT per device through the vIOMMU (pt_id = viommu_id, the
    # SMMUv3's STE data) and attaches the device to it. The nested HWPT is recorded in the guest's
    # cgroup under the vIOMMU. kill -9 of the VMM: the broker replaces the context and remakes
    # only its own objects (the VMM's nested HWPT is gone); vm.destroy leaves no object, no fd
    # in the daemon, and the device free.
    with Cgroup("vinest") as root:
        guest = root.child("guest")
        with Broker() as b:
            fds = b.open_fds()
            create(b, guest, veventq_depth=4)
            vm = b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 0x30})
            vi = vm["viommu"]
            proc, out = peer_holding(b, "g", guest, NOBODY, "--viommu-nested")
            assert out["ok"], out
            n = out["viommu_nested"]
            assert len(n) == 1 and n[0]["device"] == SMMU and n[0]["result"] == "ok", out
            assert n[0]["viommu_id"] == vi["id"] and n[0]["nested_id"] > 0, out
            objs = {o["id"]: o for o in objects(b, "g")}
            child = objs[n[0]["nested_id"]]
            assert child["type"] == "hwpt-nested" and child["parent_id"] == vi["id"], objs
            assert child["cgroup"] == guest.path and child["creator_pid"] == out["pid"], child
            assert kinds(b, "g") == ["device", "hwpt-nested", "hwpt-paging", "ioas", "vdevice", "veventq", "viommu"], objs
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            v = reclaimed(b, "g", 1)
            assert kinds(b, "g") == ["device", "hwpt-paging", "ioas", "vdevice", "veventq", "viommu"], objects(b, "g")
            assert v["viommu"]["id"] > 0 and v["viommu"]["veventq_id"] > 0 and v["devices"][0]["virt_id"] == 0x30, v
            b.call("vm.destroy", {"vm": "g"})
            assert b.call("vm.list")["vms"] == []
            assert b.open_fds() == fds, (b.open_fds(), fds)
            owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
            assert owners[SMMU] is None, owners
            # a guest without a vIOMMU gives the VMM nothing to nest through: it says so
            b.call("vm.create", {"name": "plain", "cgroup": guest.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "plain", "device": SMMU})
            proc, out = peer_holding(b, "plain", guest, NOBODY, "--viommu-nested")
            proc.kill()
            proc.wait()
            assert not out["ok"] and out["failed"] == "viommu-nested" and out["error"] == "ENOENT", out


def test_detach_and_destroy_in_dependency_order():
    # Detaching the last device takes its vDEVICE, the vIOMMU and the HWPT along (in that order:
    # any other would be EBUSY and leave objects); the device can be attached again.
    with Cgroup("videt") as cg, Broker() as b:
        create(b, cg)
        b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 3})
        vm = b.call("vm.detach", {"vm": "g", "device": SMMU})
        assert vm["devices"] == [] and vm["viommu"]["id"] == 0, vm
        assert kinds(b, "g") == ["ioas"], objects(b, "g")
        vm = b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 3})
        assert vm["viommu"]["id"] > 0 and vm["devices"][0]["vdev_id"] > 0, vm
        b.call("vm.destroy", {"vm": "g"})
        # the device is free again: another guest takes it
        create(b, cg, "h")
        assert b.call("vm.attach", {"vm": "h", "device": SMMU, "virt_id": 3})["devices"][0]["vdev_id"] > 0


def test_two_devices_share_the_vIOMMU():
    # The second device gets its vDEVICE in the vIOMMU the first one's worker made (no second
    # vIOMMU); the first device, whose HWPT carries the vIOMMU, is refused detaching while the
    # other still has a vDEVICE, and takes the vIOMMU along once it is the last.
    with Cgroup("vitwo") as cg, Broker() as b:
        add_second_smmu(b)
        create(b, cg)
        first = b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 0x18})
        vm = b.call("vm.attach", {"vm": "g", "device": SMMU2, "virt_id": 0x20})
        assert vm["viommu"] == first["viommu"], (first, vm)
        d1, d2 = vm["devices"]
        assert vm["viommu"]["hwpt_id"] == d1["hwpt_id"] != d2["hwpt_id"], vm
        assert kinds(b, "g").count("viommu") == 1 and kinds(b, "g").count("vdevice") == 2, objects(b, "g")
        assert {o["virt_id"] for o in objects(b, "g") if o["type"] == "vdevice"} == {0x18, 0x20}
        e = b.client().error("vm.detach", {"vm": "g", "device": SMMU})
        assert e["data"]["name"] == "device-busy" and SMMU2 in e["message"] and "vIOMMU" in e["message"], e
        assert len(b.call("vm.show", {"vm": "g"})["devices"]) == 2
        vm = b.call("vm.detach", {"vm": "g", "device": SMMU2})
        assert kinds(b, "g") == ["device", "hwpt-paging", "ioas", "vdevice", "viommu"], objects(b, "g")
        vm = b.call("vm.detach", {"vm": "g", "device": SMMU})
        assert vm["viommu"]["id"] == 0 and kinds(b, "g") == ["ioas"], objects(b, "g")


def test_veventq_fd_reaches_the_vmm():
    # With veventq_depth the worker also makes the vIOMMU's vEVENTQ (in the guest's cgroup); its
    # fd travels to the VMM with vm.fds and %{veventq} and reads as an empty queue (0 bytes).
    # The VMM's exit remakes it with the vIOMMU; detaching the last device takes it first.
    with Cgroup("vieq") as cg, Broker() as b:
        create(b, cg, veventq_depth=16)
        vm = b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 2})
        vi = vm["viommu"]
        assert vi["veventq_id"] > 0 and vm["options"]["veventq_depth"] == 16, vm
        objs = {o["id"]: o for o in objects(b, "g")}
        q = objs[vi["veventq_id"]]
        assert q["type"] == "veventq" and q["parent_id"] == vi["id"] and q["cgroup"] == cg.path, objs
        c = b.client()
        reply, fds = c.call_full("vm.fds", {"vm": "g"})
        c.close()
        r = reply["result"]
        assert r["veventq_id"] == vi["veventq_id"] and r["viommu_id"] == vi["id"], r
        qfd = fds[r["veventq"]]
        assert os.read(qfd, 64) == b"", "an empty vEVENTQ reads 0 bytes"
        for fd in fds:
            os.close(fd)
        r = b.ctl("exec", "--vm", "g", "--", "/bin/sh", "-c", "readlink /proc/self/fd/$0", "%{veventq}", check=0)
        assert r.stdout.startswith("pipe:"), r.stdout
        r = b.ctl("vm", "show", "g", check=0)
        assert "vEVENTQ:" in r.stdout and "depth 16" in r.stdout, r.stdout
        b.call("vm.detach", {"vm": "g", "device": SMMU})
        assert kinds(b, "g") == ["ioas"], objects(b, "g")
        e = b.client().error("vm.create", {"name": "x", "cgroup": cg.path,
                                           "options": {"handoff": "bound", "veventq_depth": 8}})
        assert e["code"] == -32602 and "'veventq_depth'" in e["message"] and "'viommu'" in e["message"], e
        e = b.client().error("vm.create", {"name": "x", "cgroup": cg.path,
                                           "options": {"handoff": "bound", "viommu": "arm-smmuv3", "veventq_depth": 1 << 20}})
        assert e["code"] == -32602 and "65536" in e["message"], e
        r = b.ctl("exec", "--vm", "g", "--", "true", "%{veventq}", check=2)
        assert "no vEVENTQ" in r.stderr or "no vIOMMU" in r.stderr or "veventq" in r.stderr, r.stderr


def test_failure_at_each_vIOMMU_step_leaves_nothing():
    # A failure at the vIOMMU, vEVENTQ or vDEVICE step (the worker's own, after the HWPT is
    # attached) undoes everything in the kernel's order: nothing stays in the context, no fd in
    # the daemon, the device is free, and a clean daemon makes the guest with it afterwards.
    with Cgroup("vifault") as cg:
        for step, what in (("viommu-alloc", "IOMMU_VIOMMU_ALLOC"), ("veventq-alloc", "IOMMU_VEVENTQ_ALLOC"),
                           ("vdevice-alloc", "IOMMU_VDEVICE_ALLOC")):
            with Broker(env={"IFB_FAULT": step}) as b:
                create(b, cg, veventq_depth=4)
                fds = b.open_fds()
                e = b.client().error("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 1})
                assert e["data"].get("errno") == "EIO" and what in e["message"], (step, e)
                vm = b.call("vm.show", {"vm": "g"})
                assert vm["devices"] == [] and vm["viommu"]["id"] == 0, (step, vm)
                assert kinds(b, "g") == ["ioas"], (step, objects(b, "g"))
                assert b.open_fds() == fds, (step, b.open_fds(), fds)
                owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
                assert owners[SMMU] is None, (step, owners)
            with Broker() as b:
                create(b, cg, veventq_depth=4)
                assert b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 1})["viommu"]["veventq_id"] > 0


def test_device_list_names_viommu_type():
    # device.list says which vIOMMU type each device's IOMMU can offer: Arm SMMUv3's for the
    # SMMUv3, none for VT-d (it has no vIOMMU object) or an IOMMU that cannot nest.
    with Broker() as b:
        devs = {d["device"]: d for d in b.call("device.list")["devices"]}
        assert devs[SMMU]["viommu_type"] == "arm-smmuv3", devs[SMMU]
        assert devs[NEST_VTD[0]]["viommu_type"] is None and devs[NO_NEST_VTD]["viommu_type"] is None, devs


def test_refusals_name_why():
    # (each guest in a cgroup of its own: guests' cgroups may not overlap)
    with Cgroup("viref") as root, Broker() as b:
        cg, other = root.child("g"), root.child("plain")
        # the option, checked before anything is made
        e = b.client().error("vm.create", {"name": "x", "cgroup": cg.path, "options": {"handoff": "bound", "viommu": "intel-vtd"}})
        assert e["code"] == -32602 and "'viommu'" in e["message"] and "intel-vtd" in e["message"], e
        e = b.client().error("vm.create", {"name": "x", "cgroup": cg.path, "options": {"viommu": "arm-smmuv3"}})
        assert e["code"] == -32602 and "bound hand-off" in e["message"], e
        b.call("vm.create", {"name": "plain", "cgroup": other.path, "options": {"handoff": "bound"}})
        e = b.client().error("vm.attach", {"vm": "plain", "device": SMMU, "virt_id": 1})
        assert e["code"] == -32602 and "no vIOMMU" in e["message"], e
        create(b, cg)
        e = b.client().error("vm.attach", {"vm": "g", "device": SMMU})
        assert e["code"] == -32602 and "virt_id" in e["message"], e
        # an IOMMU without any vIOMMU (VT-d), one that cannot nest at all
        e = b.client().error("vm.attach", {"vm": "g", "device": NEST_VTD[0], "virt_id": 1})
        assert e["data"]["name"] == "nest-unsupported" and "intel-vtd" in e["message"] and "no vIOMMU" in e["message"], e
        assert e["data"]["errno"] == "EOPNOTSUPP", e
        e = b.client().error("vm.attach", {"vm": "g", "device": NO_NEST_VTD, "virt_id": 1})
        assert e["data"]["name"] == "nest-unsupported", e
        assert kinds(b, "g") == ["ioas"] and b.call("vm.show", {"vm": "g"})["devices"] == [], objects(b, "g")
        # a virtual id is the guest's once
        b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 5})
        e = b.client().error("vm.attach", {"vm": "g", "device": NEST_VTD[0], "virt_id": 5})
        assert e["data"]["name"] == "invalid-argument" and "already used" in e["message"] and SMMU in e["message"], e
        r = b.ctl("vm", "attach", "g", NEST_VTD[1], "--virt-id", "5", check=1)
        assert "already used" in r.stderr, r.stderr
        # each refusal was said once (GLib warns when an error is set over another)
        assert "overwriting" not in b.read_log().lower(), b.read_log()[-2000:]


def test_smmu_without_coherent_root_complex_refused():
    # An SMMUv3 that nests but sits behind a root complex that is not coherent (no CANWBS) and
    # has no S2FWB: the kernel's driver offers no vIOMMU, and the broker says why. Nothing stays.
    with Cgroup("vicoh") as root, Broker() as b:
        cg, other = root.child("g"), root.child("plain")
        prof = os.path.join(b.runtime_dir, "emulated", "dev", "vfio", "devices", "vfio3")
        text = open(prof).read()
        open(prof, "w").write(text.replace("canwbs=1", "canwbs=0"))
        create(b, cg)
        e = b.client().error("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 1})
        assert e["data"]["name"] == "nest-unsupported" and "coherent" in e["message"] and "S2FWB" in e["message"], e
        assert kinds(b, "g") == ["ioas"], objects(b, "g")
        # the same device without a vIOMMU is fine: a NEST_PARENT alone needs no coherency
        b.call("vm.create", {"name": "plain", "cgroup": other.path, "options": {"handoff": "bound"}})
        assert b.call("vm.attach", {"vm": "plain", "device": SMMU})["devices"][0]["nest_parent"]


if __name__ == "__main__":
    run([test_viommu_and_vdevice_made_in_guest_cgroup, test_vmm_gets_ids_and_its_exit_remakes_them,
         test_vmm_nests_through_the_viommu_and_goes_without_a_trace,
         test_detach_and_destroy_in_dependency_order, test_two_devices_share_the_vIOMMU, test_veventq_fd_reaches_the_vmm,
         test_failure_at_each_vIOMMU_step_leaves_nothing, test_device_list_names_viommu_type,
         test_refusals_name_why,
         test_smmu_without_coherent_root_complex_refused])
