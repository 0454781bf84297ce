"""Guests on the emulated backend, with workers really running in cgroup2 directories this test
creates: where objects are allocated, refusals, ownership, fd hand-off to a VMM-like peer,
authorization by uid and by cgroup, failure injection, the fallback worker path, events."""
import os
import subprocess

from ifbtest import (BUILD, NEST_VTD, NO_NEST_VTD, NOBODY, NOT_VFIO, SMMU, Broker, Cgroup, RpcError, Skip, as_user,
                     cgroup2_mount, in_cgroup, peer, peer_holding, read_state, reclaimed, run)

NO_CLONE3 = os.path.join(BUILD, "tests", "helpers", "no-clone3")


def objects(broker, vm):
    return broker.call("vm.show", {"vm": vm}).get("context_objects", [])


def test_hwpts_allocated_in_guest_cgroup_not_daemons():
    # Every object the broker allocates for a guest is allocated by a process in the guest's
    # cgroup — as recorded by the context itself — and never in the daemon's.
    root = Cgroup("alloc")
    daemon_cg = root.child("daemon")
    guest_cg = root.child("guest")
    try:
        with Broker(preexec=in_cgroup(daemon_cg)) as b:
            info = b.call("broker.info")
            assert info["accounting"]["daemon_cgroup"] == daemon_cg.path, info["accounting"]
            b.call("vm.create", {"name": "g1", "cgroup": guest_cg.path, "options": {"handoff": "bound"}})
            vm = b.call("vm.attach", {"vm": "g1", "devices": NEST_VTD + [SMMU]})
            assert len(vm["devices"]) == 3
            for d in vm["devices"]:
                assert d["state"] == "ready" and d["nest_parent"] is True, d
                assert d["cgroup"] == guest_cg.path, d
            objs = objects(b, "g1")
            kinds = sorted(o["type"] for o in objs)
            assert kinds == ["device"] * 3 + ["hwpt-paging"] * 3 + ["ioas"], kinds
            for o in objs:
                assert o["cgroup"] == guest_cg.path, o
                assert o["cgroup"] != daemon_cg.path
                assert o["creator_pid"] != b.proc.pid, o
            assert not guest_cg.procs(), "a worker outlived its batch"
            # one worker for the whole attach batch: all device objects share the creator pid
            assert len({o["creator_pid"] for o in objs if o["type"] != "ioas"}) == 1
    finally:
        root.remove()


def test_nest_parent_refused_names_device_and_iommu():
    # A device whose IOMMU cannot nest is refused with EOPNOTSUPP naming the device and the IOMMU,
    # leaving nothing behind; allow_plain gives a plain HWPT reported as such.
    cg = Cgroup("nest")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            c = b.client()
            err = c.error("vm.attach", {"vm": "g", "device": NO_NEST_VTD})
            assert err["data"] == {"name": "nest-unsupported", "errno": "EOPNOTSUPP"}, err
            assert NO_NEST_VTD in err["message"] and "intel-vtd" in err["message"], err
            assert [o["type"] for o in objects(b, "g")] == ["ioas"]
            assert b.call("vm.show", {"vm": "g"})["devices"] == []
            r = b.ctl("vm", "attach", "g", NO_NEST_VTD, check=1)
            assert "cannot be a nesting parent" in r.stderr and "EOPNOTSUPP" in r.stderr, r.stderr
            b.call("vm.destroy", {"vm": "g"})   # guests never share a cgroup
            b.call("vm.create", {"name": "p", "cgroup": cg.path, "options": {"handoff": "bound", "allow_plain": True}})
            vm = b.call("vm.attach", {"vm": "p", "device": NO_NEST_VTD})
            d = vm["devices"][0]
            assert d["hwpt_kind"] == "plain" and d["nest_parent"] is False, d
    finally:
        cg.remove()


def test_device_refusals_and_ownership():
    # Each refusal names the device and why: unknown, not vfio-pci, owned by another guest.
    cg = Cgroup("own")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "a", "cgroup": cg.child("a").path, "options": {"handoff": "bound"}})
            b.call("vm.create", {"name": "b", "cgroup": cg.child("b").path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "a", "device": NEST_VTD[0]})
            c = b.client()
            e = c.error("vm.attach", {"vm": "b", "device": NEST_VTD[0]})
            assert e["data"]["name"] == "device-busy" and "'a'" in e["message"] and NEST_VTD[0] in e["message"], e
            e = c.error("vm.attach", {"vm": "b", "device": NOT_VFIO})
            assert e["data"]["name"] == "device-not-vfio" and "e1000e" in e["message"], e
            e = c.error("vm.attach", {"vm": "b", "device": "0000:99:00.0"})
            assert e["data"]["name"] == "no-such-device", e
            e = c.error("vm.attach", {"vm": "b", "device": "../../etc"})
            assert e["data"]["name"] in ("invalid-argument", "invalid-params"), e
            e = c.error("vm.attach", {"vm": "b", "devices": [NEST_VTD[1], NEST_VTD[1]]})
            assert e["data"]["name"] == "invalid-params", e
            owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
            assert owners[NEST_VTD[0]] == "a" and owners[NEST_VTD[1]] is None, owners
            b.call("vm.detach", {"vm": "a", "device": NEST_VTD[0]})
            b.call("vm.attach", {"vm": "b", "device": NEST_VTD[0]})
            b.call("vm.destroy", {"vm": "b"})
            owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
            assert all(o is None for o in owners.values()), owners
    finally:
        cg.remove()


def test_cgroup_validation():
    # The guest cgroup must exist in the cgroup2 hierarchy; no '..' escape, no symlinks.
    cg = Cgroup("val")
    try:
        os.symlink(cg.full, cg.full + "-link")
    except OSError:
        pass
    try:
        with Broker() as b:
            c = b.client()
            for bad in ("relative", "/a/../b", cg.path + "/..", "//x", "/nonexistent-ifb"):
                e = c.error("vm.create", {"name": "v", "cgroup": bad, "options": {"handoff": "bound"}})
                assert e["data"]["name"] == "cgroup-invalid", (bad, e)
            e = c.error("vm.create", {"name": "v", "cgroup": cg.path + "-link", "options": {"handoff": "bound"}})
            assert e["data"]["name"] == "cgroup-invalid", e
            e = c.error("vm.create", {"name": "v", "options": {"handoff": "bound"}})
            assert e["data"]["name"] == "invalid-params", e
            sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=in_cgroup(cg))
            try:
                vm = b.call("vm.create", {"name": "bypid", "pid": sleeper.pid, "options": {"handoff": "bound"}})
            finally:
                sleeper.kill()
                sleeper.wait()
            assert vm["cgroup"] == cg.path, vm
    finally:
        try:
            os.unlink(cg.full + "-link")
        except OSError:
            pass
        cg.remove()


def test_vmm_peer_in_guest_cgroup_gets_fds_and_nests():
    # A VMM-like peer inside the guest's cgroup (and not root) receives the fds and allocates a
    # nested child on the NEST_PARENT HWPT through them; a peer outside is refused.
    root = Cgroup("vmm")
    guest = root.child("guest")
    vmm = guest.child("emulator")
    other = root.child("other")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": guest.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            before = objects(b, "g")
            proc, out = peer_holding(b, "g", vmm, NOBODY, "--nested", "--map", str(1 << 20))
            assert out["ok"], out
            assert out["backend"] == "emulated" and out["n_fds"] == 3, out
            assert [n["result"] for n in out["nested"]] == ["ok", "ok"], out
            objs = objects(b, "g")
            nested = [o for o in objs if o["type"] == "hwpt-nested"]
            assert len(objs) == len(before) + 2 and len(nested) == 2, objs
            shown = b.call("vm.show", {"vm": "g"})
            assert [h["pid"] for h in shown["holders"]] == [proc.pid] and shown["vmm_pid"] == proc.pid, shown
            parents = {d["hwpt_id"] for d in shown["devices"]}
            assert {o["parent_id"] for o in nested} == parents, (nested, parents)
            assert all(o["cgroup"] == vmm.path for o in nested), nested
            # the VMM exits: its nested children go with the old context; the broker's IOAS and
            # NEST_PARENT HWPTs are made again, in the guest's cgroup, for the next VMM
            proc.kill()
            proc.wait()
            v = reclaimed(b, "g", 1)
            objs = objects(b, "g")
            assert not [o for o in objs if o["type"] == "hwpt-nested"], objs
            assert sorted(o["type"] for o in objs) == sorted(o["type"] for o in before), (objs, before)
            assert all(o["cgroup"] == guest.path for o in objs), objs
            assert v["holders"] == [] and all(d["state"] == "ready" and d["nest_parent"] for d in v["devices"]), v
            rc, out = peer(b, "g", vmm, NOBODY, "--nested")
            assert rc == 0 and [n["result"] for n in out["nested"]] == ["ok", "ok"], out
            reclaimed(b, "g", 2)
            rc, out = peer(b, "g", other, NOBODY)
            assert rc == 1 and out["error"] == "permission-denied", out
            assert guest.path not in out["message"], out   # a peer without a role learns nothing of the guest
            # the same peer may not fetch another guest's fds
            b.call("vm.create", {"name": "h", "cgroup": other.path, "options": {"handoff": "bound"}})
            rc, out = peer(b, "h", vmm, NOBODY)
            assert rc == 1 and out["error"] == "permission-denied", out
            # destroying while the VMM's nested children exist: the guest still goes away cleanly
            b.call("vm.destroy", {"vm": "g"})
            owners = [d["owner"] for d in b.call("device.list")["devices"]]
            assert "g" not in owners
    finally:
        root.remove()


def test_unprivileged_uid_changes_nothing():
    # A peer that is neither root nor in a configured group can change nothing and read nothing;
    # the read group may read but not change.
    cg = Cgroup("uid")
    try:
        with Broker(config="[access]\nread-group=nogroup\n") as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
            for args in (["vm", "create", "x", "--cgroup", cg.path], ["vm", "attach", "g", NEST_VTD[1]],
                         ["vm", "detach", "g", NEST_VTD[0]], ["vm", "destroy", "g"], ["vm", "fds", "g"]):
                r = b.ctl(*args, user=NOBODY, check=1)
                assert "permission-denied" in r.stderr and "uid 65534" in r.stderr, (args, r.stderr)
            # nobody's primary group is nogroup (the read group): listing works, changing does not
            def nobody_in_nogroup():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(NOBODY)
            r = subprocess.run([os.path.join(BUILD, "client", "iommufdctl"), "--socket", b.socket, "vm", "list"],
                               capture_output=True, text=True, preexec_fn=nobody_in_nogroup)
            assert r.returncode == 0 and "g " in r.stdout, r
            vm = b.call("vm.show", {"vm": "g"})
            assert [d["device"] for d in vm["devices"]] == [NEST_VTD[0]]
            assert [v["name"] for v in b.call("vm.list")["vms"]] == ["g"]
        with Broker() as b:   # no read group configured: nobody reads nothing either
            r = b.ctl("vm", "list", user=NOBODY, check=1)
            assert "permission-denied" in r.stderr, r.stderr
            r = b.ctl("devices", user=NOBODY, check=1)
    finally:
        cg.remove()


CREATE_STEPS = ["open-iommufd", "ioas-alloc", "worker-spawn", "state-write"]
# "@2": the second device of the batch fails, so the worker must undo the first one
ATTACH_STEPS = ["open-device", "open-device@2", "bind", "bind@2", "hw-info", "hw-info@2", "hwpt-alloc",
                "hwpt-alloc@2", "attach", "attach@2", "worker-spawn", "state-write"]


def test_failure_injection_leaves_nothing():
    # A failure at any step of create or attach leaves no guest, object, fd or ownership behind.
    cg = Cgroup("fault")
    try:
        with Broker() as ref:
            baseline = ref.open_fds()
        for step in CREATE_STEPS:
            with Broker(env={"IFB_FAULT": step}) as b:
                c = b.client()
                fds = b.open_fds(c)
                e = c.error("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
                assert "EIO" == e["data"].get("errno"), (step, e)
                assert b.call("vm.list")["vms"] == [], step
                assert b.open_fds(c) == fds, (step, b.open_fds(c), fds)
                state = read_state(b.runtime_dir)
                assert state["vms"] == [], (step, state)
        for step in ATTACH_STEPS:
            # steps create also goes through fail only on the attach's turn: the 2nd worker, the
            # 2nd state write (create, attach)
            armed = {"worker-spawn": "worker-spawn@2", "state-write": "state-write@2"}.get(step, step)
            with Broker(env={"IFB_FAULT": armed}) as b:
                c = b.client()
                c.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
                fds = b.open_fds(c)
                objs = objects(b, "g")
                e = c.error("vm.attach", {"vm": "g", "devices": NEST_VTD})
                assert e["data"].get("errno") == "EIO", (step, e)
                vm = b.call("vm.show", {"vm": "g"})
                assert vm["devices"] == [], (step, vm["devices"])
                assert objects(b, "g") == objs, (step, objects(b, "g"), objs)
                assert b.open_fds(c) == fds, (step, b.open_fds(c), fds)
                owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
                assert owners[NEST_VTD[0]] is None and owners[NEST_VTD[1]] is None, (step, owners)
                state = read_state(b.runtime_dir)
                assert [v["devices"] for v in state["vms"]] == [[]], (step, state)
            # the devices are really free again: a clean daemon binds them
            with Broker() as b:
                b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
                b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
        assert baseline > 0
    finally:
        cg.remove()


def test_fallback_worker_under_seccomp():
    # Where clone3 answers ENOSYS (systemd's RestrictNamespaces=), workers are started the same
    # way (vfork, then moved into the guest's cgroup before they allocate): the recorded cgroups
    # are the guest's.
    root = Cgroup("seccomp")
    guest = root.child("guest")
    try:
        b = Broker()
        cmd = b.command
        b.command = lambda: [NO_CLONE3] + cmd()
        with b:
            info = b.call("broker.info")
            assert info["workers"]["placement"] == "vfork+cgroup.procs", info["workers"]
            b.call("vm.create", {"name": "g", "cgroup": guest.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            for o in objects(b, "g"):
                assert o["cgroup"] == guest.path, o
            assert b.call("broker.info")["workers"]["spawned"] == 2
    finally:
        root.remove()


def test_deferred_guest_allocates_when_vmm_asks():
    # A guest created before its cgroup exists only reserves devices; the first vm.fds from a peer
    # inside the (now existing) cgroup allocates everything there, in one worker.
    root = Cgroup("defer")
    try:
        with Broker() as b:
            path = root.path + "/later"
            vm = b.call("vm.create", {"name": "g", "cgroup": path, "options": {"handoff": "bound", "defer": True}})
            assert vm["state"] == "pending", vm
            e = b.client().error("vm.create", {"name": "h", "cgroup": path, "options": {"handoff": "bound"}})
            assert e["data"]["name"] == "cgroup-invalid", e
            vm = b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            assert [d["state"] for d in vm["devices"]] == ["reserved", "reserved"], vm
            later = root.child("later")
            rc, out = peer(b, "g", later, NOBODY, "--nested")
            assert rc == 0 and out["ok"] and len(out["nested"]) == 2, out
            vm = reclaimed(b, "g", 1)   # the peer exited: the context is made again, in the same cgroup
            assert vm["state"] == "ready" and all(d["state"] == "ready" for d in vm["devices"]), vm
            assert all(o["cgroup"] == later.path for o in vm["context_objects"]), vm["context_objects"]
    finally:
        root.remove()


def test_delegating_guest_cgroup_gets_a_worker_leaf():
    # cgroup2 keeps processes out of a cgroup that delegates controllers (libvirt's machine
    # cgroups on pure cgroup2 hosts): the worker runs in a leaf inside the guest's cgroup, and the
    # leaf is gone after each batch so the guest's manager can still remove its cgroup.
    mount_ctl = open(cgroup2_mount() + "/cgroup.controllers").read().split()
    if not mount_ctl:
        raise Skip("no controller is available on cgroup2 to delegate")
    ctl = mount_ctl[0]
    top = cgroup2_mount() + "/cgroup.subtree_control"
    enabled_here = ctl not in open(top).read().split()
    if enabled_here:
        open(top, "w").write("+" + ctl)
    root = Cgroup("leaf")
    try:
        open(root.full + "/cgroup.subtree_control", "w").write("+" + ctl)
        guest = root.child("guest")
        open(guest.full + "/cgroup.subtree_control", "w").write("+" + ctl)
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": guest.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            leaf = guest.path + "/iommufd-broker-worker"
            for o in objects(b, "g"):
                assert o["cgroup"] == leaf, o
            assert not os.path.exists(guest.full + "/iommufd-broker-worker")
            b.call("vm.destroy", {"vm": "g"})
    finally:
        root.remove()
        if enabled_here:
            open(top, "w").write("-" + ctl)


def test_long_guest_cgroup_recorded_whole():
    # A guest cgroup of 300+ bytes: the worker records where it ran whole (vm.show, the state
    # file), the emulator's 255-byte object field holds "" rather than a prefix of the path, and
    # a restart accepts the state file (a cut or empty path would have it moved to rejected/;
    # without an fd store the guest is then dropped for its missing context, as any would be).
    import shutil
    import tempfile
    root = Cgroup("long")
    cg = root.child("a" * 150).child("b" * 150)
    run_dir = tempfile.mkdtemp(prefix="ifbtest-run-")
    try:
        assert len(cg.path) > 300, cg.path
        with Broker(runtime_dir=run_dir) as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            vm = b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
            assert [d["cgroup"] for d in vm["devices"]] == [cg.path], vm["devices"]
            assert b.call("vm.show", {"vm": "g"})["ioas_cgroup"] == cg.path
            objs = objects(b, "g")
            assert objs and all(o["cgroup"] == "" for o in objs), objs
            state = read_state(run_dir)
            assert [d["cgroup"] for d in state["vms"][0]["devices"]] == [cg.path], state
        with Broker(runtime_dir=run_dir) as b:
            log = b.read_log()
            assert not os.path.exists(os.path.join(run_dir, "guests", "rejected")), log[-2000:]
            assert "Guest 'g': its IOMMUFD context is not in the fd store" in log, log[-2000:]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        root.remove()


def test_fds_cross_the_socket_and_events():
    # vm.fds delivers real fds (the context memfd and the device files); subscribers get events.
    cg = Cgroup("fds")
    try:
        with Broker() as b:
            ev = b.client()
            ev.call("events.subscribe")
            c = b.client()
            c.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            c.call("vm.attach", {"vm": "g", "device": SMMU})
            reply, fds = c.call_full("vm.fds", {"vm": "g"})
            res = reply["result"]
            assert len(fds) == 2, fds
            targets = [os.readlink("/proc/self/fd/%d" % fd) for fd in fds]
            assert targets[res["iommufd"]].startswith("/memfd:ifb-emulated-iommufd"), targets
            assert targets[res["devices"][0]["fd"]].endswith("/dev/vfio/devices/vfio3"), targets
            for fd in fds:
                os.close(fd)
            c.call("vm.destroy", {"vm": "g"})
            seen = [ev.recv()[0]["params"]["event"] for _ in range(3)]
            assert seen == ["vm.created", "device.attached", "vm.destroyed"], seen
            state = read_state(b.runtime_dir)
            assert state["version"] == 1 and state["vms"] == []
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_hwpts_allocated_in_guest_cgroup_not_daemons, test_nest_parent_refused_names_device_and_iommu,
         test_device_refusals_and_ownership, test_cgroup_validation, test_vmm_peer_in_guest_cgroup_gets_fds_and_nests,
         test_unprivileged_uid_changes_nothing, test_failure_injection_leaves_nothing,
         test_fallback_worker_under_seccomp, test_deferred_guest_allocates_when_vmm_asks,
         test_delegating_guest_cgroup_gets_a_worker_leaf,
         test_long_guest_cgroup_recorded_whole,
         test_fds_cross_the_socket_and_events])
