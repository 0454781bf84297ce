"""Restart without losing a guest: the daemon under a stand-in for systemd's service manager
(fdstore.py: NOTIFY_SOCKET, the fd store, LISTEN_FDS on restart), on the emulated backend, with
workers in real cgroup2 directories. Restarts by SIGTERM, by SIGKILL between operations, and by
SIGKILL at random moments while a client keeps operating."""
import json
import os
import re
import random
import signal
import threading
import time

from fdstore import ServiceManager
import ifbtest   # after fdstore, which puts tests/integration on the path
from ifbtest import NEST_VTD, NO_NEST_VTD, SMMU, Cgroup, Client, RpcError, peer_holding, read_state, reclaimed, run

VFIO = NEST_VTD + [NO_NEST_VTD, SMMU]


def fdname(vm, bdf=None):
    """The fd store name the daemon reports for the guest's context or one of its devices."""
    if bdf is None:
        return vm["fdname"]
    return [d for d in vm["devices"] if d["device"] == bdf][0]["fdname"]


def where_stuck(pid):
    """What a daemon that stopped answering is doing, and its children (workers): for the log of
    a failure that does not reproduce at will."""
    import subprocess
    out = []
    for f in ("wchan", "syscall", "stack"):
        try:
            with open("/proc/%d/%s" % (pid, f)) as fh:
                out.append("%s: %s" % (f, fh.read().strip()))
        except OSError as e:
            out.append("%s: %s" % (f, e))
    out.append(subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:32,cmd"], capture_output=True, text=True).stdout)
    gdb = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"], capture_output=True,
                         text=True, timeout=60) if os.path.exists("/usr/bin/gdb") else None
    if gdb:
        out.append(gdb.stdout[-6000:])
    return "\n".join(out)


def workers_idle(b, timeout=ifbtest.HANG):
    """Wait until no worker runs or waits: after a restart, release workers may still be closing
    fds of no guest, and the restored contexts are tidied once they are done."""
    def idle():
        w = b.call("broker.info")["workers"]
        return w["running"] == 0 and w["waiting"] == 0
    ifbtest.wait_until(idle, "the workers to end", timeout, every=0.05)


def snapshot(sm):
    """Everything a client can see about the guests, by name (device.list may probe devices in
    a worker first, each bind and close a modelled reset: hence the long timeout)."""
    workers_idle(sm.broker)
    c = Client(sm.broker.socket)
    try:
        vms = {v["name"]: c.call("vm.show", {"vm": v["name"]}) for v in c.call("vm.list")["vms"]}
        owners = {d["device"]: d["owner"] for d in c.call("device.list")["devices"] if d["vfio"]}
    except TimeoutError:
        print("The daemon (pid %d) did not answer; where it is:\n%s" % (sm.proc.pid, where_stuck(sm.proc.pid)))
        raise
    finally:
        c.close()
    return vms, owners


def daemon_held_fds(sm):
    """The guest fds the daemon process holds: emulated contexts (memfds) and device cdevs."""
    n = 0
    for target in ifbtest.proc_fd_targets(sm.proc.pid).values():
        if "ifb-emulated-iommufd" in target or "/dev/vfio/devices/" in target:
            n += 1
    return n


def check_invariants(sm):
    """Nothing half-made: ownership both ways, no unreferenced paging HWPT, the fd store holds
    exactly one fd per ready guest and per ready device (and the daemon exactly those), the
    registry file says what the daemon says; an unbound guest's context holds only what a live
    holder (its VMM) made, and the broker no fd of its devices. Returns the snapshot."""
    vms, owners = snapshot(sm)
    expected_store = set()
    for name, vm in vms.items():
        bdfs = [d["device"] for d in vm["devices"]]
        for bdf in bdfs:
            assert owners.get(bdf) == name, "device %s listed by %s but owned by %s" % (bdf, name, owners.get(bdf))
        if vm["state"] == "ready" and vm["options"]["handoff"] == "unbound":
            expected_store.add(fdname(vm))
            assert vm["holders"] or vm.get("context_objects", []) == [], vm
            assert all(d["state"] == "ready" for d in vm["devices"]), vm
        elif vm["state"] == "ready":
            expected_store.add(fdname(vm))
            hwpts = {d["hwpt_id"] for d in vm["devices"] if d["state"] == "ready"}
            for o in vm.get("context_objects", []):
                if o["type"] == "hwpt-paging":
                    assert o["id"] in hwpts, "guest %s: HWPT %d referenced by no device: %r" % (name, o["id"], vm)
            # a vIOMMU and vDEVICEs only as the guest records them, on the HWPT it records
            vis = [o for o in vm.get("context_objects", []) if o["type"] == "viommu"]
            vi = vm.get("viommu", {})
            assert [(o["id"], o["parent_id"]) for o in vis] == ([(vi["id"], vi["hwpt_id"])] if vi.get("id") else []), vm
            if vi.get("veventq_id"):
                expected_store.add(vi["veventq_fdname"])
            qs = [o["id"] for o in vm.get("context_objects", []) if o["type"] == "veventq"]
            assert qs == ([vi["veventq_id"]] if vi.get("veventq_id") else []), vm
            vdevs = {o["id"] for o in vm.get("context_objects", []) if o["type"] == "vdevice"}
            assert vdevs == {d["vdev_id"] for d in vm["devices"] if d.get("vdev_id")}, vm
            devs = [o for o in vm.get("context_objects", []) if o["type"] == "device"]
            assert len(devs) == len([d for d in vm["devices"] if d["state"] == "ready"]), vm
            for d in vm["devices"]:
                if d["state"] == "ready":
                    expected_store.add(fdname(vm, d["device"]))
        else:
            assert all(d["state"] == "reserved" for d in vm["devices"]), vm
    for bdf, owner in owners.items():
        if owner is not None:
            assert owner in vms and bdf in [d["device"] for d in vms[owner]["devices"]], \
                "device %s owned by %s, which does not list it" % (bdf, owner)
    sm.pump()
    names = sm.names()
    assert len(names) == len(set(names)), "duplicate fd store entries: %r" % names
    # systemd passes every name back in LISTEN_FDNAMES, one env string capped at 128 KiB
    assert all(len(n) <= 5 for n in names), "fd store names longer than 5 bytes: %r" % names
    assert set(names) == expected_store, "fd store %r != expected %r" % (sorted(names), sorted(expected_store))
    assert not sm.rejected, "notifications systemd would refuse: %r" % sm.rejected
    # (vEVENTQ fds, "e<slot>", are anonymous files, not counted by daemon_held_fds())
    held = len([n for n in expected_store if not n.startswith("e")])
    assert daemon_held_fds(sm) == held, "daemon holds %d guest fds, registry says %d" % (daemon_held_fds(sm), held)
    saved = {v["name"]: v for v in read_state(sm.broker.runtime_dir)["vms"]}
    assert set(saved) == set(vms), (sorted(saved), sorted(vms))
    for name, vm in vms.items():
        assert saved[name]["uuid"] == vm["uuid"]
        assert [(d["device"], d["state"]) for d in saved[name]["devices"]] == \
               [(d["device"], d["state"]) for d in vm["devices"]], (saved[name], vm)
    return vms, owners


def metrics_fdstore_fds(b):
    """The metrics' count of guest fds in the fd store."""
    m = re.search(r"^ifb_fdstore_fds (\d+)$", b.call("metrics")["text"], re.M)
    assert m, "no ifb_fdstore_fds in the metrics"
    return int(m.group(1))


def fresh_request_after_ready(sm):
    """READY=1 means state loaded and socket listening: the very first request is answered."""
    assert sm.ready
    c = Client(sm.broker.socket)
    try:
        return c.call("vm.list")
    finally:
        c.close()


def test_ready_only_when_listening():
    # Not socket-activated: the daemon binds the socket itself. Right after READY=1 a connect must
    # succeed at the first try, and STATUS= carries the counts; SIGTERM sends STOPPING=1.
    sm = ServiceManager(socket_activated=False, watchdog_usec=400000)
    try:
        sm.start()
        c = Client(sm.broker.socket)
        c.call("broker.info")
        c.close()
        ready = [f for _, f in sm.messages if f.get("READY") == "1"]
        assert len(ready) == 1 and "guests" in ready[0].get("STATUS", ""), ready
        # the first keep-alive is an event to wait for, not a time to sleep through
        ifbtest.wait_until(lambda: sm.pump(0.1) or any(f.get("WATCHDOG") == "1" for _, f in sm.messages),
                           "WATCHDOG=1 with WATCHDOG_USEC set", every=0)
        sm.kill(signal.SIGTERM)
        assert sm.proc.returncode == 0, sm.proc.returncode
        assert any(f.get("STOPPING") == "1" for _, f in sm.messages), "no STOPPING=1"
    finally:
        sm.close()


def test_restart_keeps_every_guest_and_object():
    root = Cgroup("fdstore")
    g1, g2 = root.child("g1"), root.child("g2")
    try:
        with ServiceManager() as sm:
            b = sm.broker
            b.call("vm.create", {"name": "g1", "cgroup": g1.path, "options": {"handoff": "bound"}})
            b.call("vm.attach", {"vm": "g1", "devices": NEST_VTD})
            b.call("vm.create", {"name": "g2", "cgroup": g2.path, "options": {"handoff": "bound", "allow_plain": True}})
            b.call("vm.attach", {"vm": "g2", "device": SMMU})
            # pending: its cgroup does not exist yet; the device is only reserved
            b.call("vm.create", {"name": "g3", "cgroup": root.path + "/g3", "options": {"handoff": "bound", "defer": True, "allow_plain": True}})
            b.call("vm.attach", {"vm": "g3", "device": NO_NEST_VTD})
            before, owners_before = check_invariants(sm)
            assert len(sm.store) == 5, sm.names()
            assert metrics_fdstore_fds(b) == 5
            assert not [p for p, _ in sm.foreign], "workers or others notified: %r" % sm.foreign

            sm.restart(signal.SIGTERM)
            assert sm.proc.pid != b.proc.pid or True
            assert len(fresh_request_after_ready(sm)["vms"]) == 3
            after, owners_after = check_invariants(sm)
            assert after == before, "guests changed across the restart:\n%r\n%r" % (before, after)
            assert owners_after == owners_before
            assert metrics_fdstore_fds(b) == len(sm.store) == 5
            assert "3 restored" in b.read_log() or "restored" in b.read_log()

            # the handed-back fds work: a fresh vm.fds gives the same objects
            c = b.client()
            reply, fds = c.call_full("vm.fds", {"vm": "g1"})
            c.close()
            assert "result" in reply, reply
            assert len(fds) == 3, fds
            for fd in fds:
                os.close(fd)
            assert [d["hwpt_id"] for d in reply["result"]["devices"]] == [d["hwpt_id"] for d in before["g1"]["devices"]]

            # the pending guest becomes ready after the restart, with its reservation
            g3 = root.child("g3")
            b.call("vm.detach", {"vm": "g2", "device": SMMU})
            vm = b.call("vm.attach", {"vm": "g3", "device": SMMU})
            assert vm["state"] == "ready" and all(d["state"] == "ready" for d in vm["devices"]), vm
            assert all(d["cgroup"] == g3.path for d in vm["devices"]), vm
            mid, _ = check_invariants(sm)

            sm.restart(signal.SIGKILL)
            after, _ = check_invariants(sm)
            assert after == mid
    finally:
        root.remove()


def test_vmm_holders_survive_restart():
    # The VMM holding an unbound guest's fds (and what it allocated in the context) is still
    # watched after a restart, so its exit frees the context; one that exited while the broker
    # was down (same pid and start time, or gone) is noticed at start-up.
    root = Cgroup("fdhold")
    g, h = root.child("g"), root.child("h")
    try:
        with ServiceManager() as sm:
            b = sm.broker
            for name, cg, bdf in (("g", g, NEST_VTD[0]), ("h", h, NEST_VTD[1])):
                b.call("vm.create", {"name": name, "cgroup": cg.path})
                b.call("vm.attach", {"vm": name, "device": bdf})
            pg, out = peer_holding(b, "g", g)
            assert out["ok"], out
            ph, out = peer_holding(b, "h", h)
            assert out["ok"], out
            objs = b.call("vm.show", {"vm": "g"})["context_objects"]
            assert len(objs) == 3, objs   # the VMM's IOAS, device, HWPT
            sm.kill(signal.SIGTERM)
            ph.kill()
            ph.wait()
            sm.start()
            v = reclaimed(b, "h", 1)
            assert v["holders"] == [] and v["context_objects"] == [], v
            v = b.call("vm.show", {"vm": "g"})
            assert [x["pid"] for x in v["holders"]] == [pg.pid] and v["vmm_exits"] == 0, v
            assert v["context_objects"] == objs, (v["context_objects"], objs)
            pg.kill()
            pg.wait()
            v = reclaimed(b, "g", 1)
            assert v["holders"] == [] and v["context_objects"] == [], v
            check_invariants(sm)
    finally:
        root.remove()


def test_kill9_between_operations():
    # After every acknowledged operation the daemon is killed with SIGKILL and started again
    # with the fd store: the state is exactly what was acknowledged.
    root = Cgroup("between")
    cgs = {n: root.child(n) for n in ("a", "b")}
    steps = [
        ("vm.create", {"name": "a", "cgroup": cgs["a"].path, "options": {"handoff": "bound"}}),
        ("vm.attach", {"vm": "a", "devices": NEST_VTD}),
        ("vm.create", {"name": "b", "cgroup": cgs["b"].path, "options": {"handoff": "bound", "allow_plain": True}}),
        ("vm.attach", {"vm": "b", "device": NO_NEST_VTD}),
        ("vm.detach", {"vm": "a", "device": NEST_VTD[0]}),
        ("vm.attach", {"vm": "b", "device": NEST_VTD[0]}),
        ("vm.destroy", {"vm": "a"}),
        ("vm.attach", {"vm": "b", "device": SMMU}),
        ("vm.create", {"name": "a", "cgroup": cgs["a"].path, "options": {"handoff": "bound"}}),
        ("vm.attach", {"vm": "a", "device": NEST_VTD[1]}),
    ]
    try:
        with ServiceManager() as sm:
            for method, params in steps:
                sm.broker.call(method, params)
                want, owners = check_invariants(sm)
                sm.restart(signal.SIGKILL)
                got, owners_got = check_invariants(sm)
                assert got == want, "after %s %r:\nwanted %r\ngot %r" % (method, params, want, got)
                assert owners_got == owners
            assert sorted(got) == ["a", "b"] and len(got["b"]["devices"]) == 3
    finally:
        root.remove()


class Killer(threading.Thread):
    """SIGKILLs the daemon once `after` operations have been acknowledged (acknowledged() counts
    them): from then on a thread kills it at once while the main thread goes on operating, so the
    kill lands between two operations or inside the next one, wherever the daemon is. The round
    is a count of acknowledged operations, never a time: a slow daemon does the same work per
    round, only later."""

    def __init__(self, pid, after):
        super().__init__(daemon=True)
        self.pid, self.after, self.acked = pid, after, 0
        self.armed, self.done = threading.Event(), threading.Event()
        self.start()

    def acknowledged(self):
        self.acked += 1
        if self.acked >= self.after:
            self.armed.set()

    def run(self):
        self.armed.wait()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.done.set()

    def reap(self, sm, in_doubt):
        """After the call that failed: it failed because of our kill, and the daemon died of it
        (not of a crash of its own, nor did a call fail before the kill was due)."""
        assert self.armed.is_set(), "%s %r failed after %d of %d operations, before the kill:\n%s" % (
            in_doubt[0], in_doubt[1], self.acked, self.after, sm.broker.read_log()[-3000:])
        self.join()
        sm.proc.wait()
        assert sm.proc.returncode == -signal.SIGKILL, "the daemon died of %s, not of our SIGKILL:\n%s" % (
            sm.proc.returncode, sm.broker.read_log()[-3000:])


def call_and_model(sm, op, model, timeout=ifbtest.HANG):
    """Make one call; on success apply it to model (name -> set of devices) and return None. A
    refusal fails the test; a connection cut by a kill returns op, now in doubt. The harness keeps
    the listening socket (socket activation), so a call made after the kill connects and waits
    for an answer that never comes: the daemon's death ends that wait, not a time; a daemon alive
    that does not answer within timeout hangs."""
    try:
        c = Client(sm.broker.socket, timeout=0.1)
        try:
            c.request(*op)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    reply, fds = c.recv()
                    break
                except TimeoutError:
                    if sm.proc.poll() is not None:
                        return op
                    assert time.monotonic() < deadline, "%s %r: no answer within %g s (a hang):\n%s" % (
                        op[0], op[1], timeout, where_stuck(sm.proc.pid))
            for fd in fds:
                os.close(fd)
        finally:
            c.close()
    except (OSError, EOFError, ValueError):
        return op
    if "error" in reply:
        raise AssertionError("%s %r refused: %s" % (op[0], op[1], reply["error"]))
    method, p = op
    if method == "vm.create":
        model[p["name"]] = set()
    elif method == "vm.attach":
        model[p["vm"]] |= set(p["devices"])
    elif method == "vm.detach":
        model[p["vm"]].discard(p["device"])
    elif method == "vm.destroy":
        del model[p["vm"]]
    return None


def assert_matches_model(rnd, model, got, in_doubt):
    """Everything acknowledged is there; the operation in doubt is whole or absent."""
    doubt_vm = in_doubt and (in_doubt[1].get("name") or in_doubt[1].get("vm"))
    for n in set(model) | set(got):
        if n != doubt_vm:
            assert got.get(n) == model.get(n), "round %d: guest %s: acknowledged %r, found %r (in doubt: %r)" \
                % (rnd, n, model.get(n), got.get(n), in_doubt)
    if doubt_vm:
        method, p = in_doubt
        old = model.get(doubt_vm)
        new = {"vm.create": set(), "vm.attach": (old or set()) | set(p.get("devices", [])),
               "vm.detach": (old or set()) - {p.get("device")}, "vm.destroy": None, "vm.show": old}[method]
        assert got.get(doubt_vm) in (old, new), "round %d: %s %r half done: %r" % (rnd, method, p, got.get(doubt_vm))


def test_kill9_during_operations():
    # A client creates, attaches, detaches and destroys guests as fast as it can while the daemon
    # is SIGKILLed at random moments and restarted. Every acknowledged guest and device is there
    # after each restart; the one operation in flight is either whole or absent; nothing orphaned.
    seed = int(os.environ.get("IFB_SEED", "0")) or int(time.time())
    print("IFB_SEED=%d" % seed)
    rng = random.Random(seed)
    rounds = int(os.environ.get("IFB_KILL_ROUNDS", "12"))
    root = Cgroup("during")
    names = ["v%d" % i for i in range(4)]
    cgs = {n: root.child(n) for n in names}
    model = {}          # acknowledged: name -> set of devices
    ops_done = 0
    try:
        with ServiceManager() as sm:
            for rnd in range(rounds):
                # killed after 1-40 acknowledged operations (the old 0.02-0.4 s at full speed)
                killer = Killer(sm.proc.pid, rng.randint(1, 40))
                while True:
                    free = [d for d in VFIO if all(d not in devs for devs in model.values())]
                    choice = rng.random()
                    name = rng.choice(names)
                    if name not in model:
                        op = ("vm.create", {"name": name, "cgroup": cgs[name].path, "options": {"handoff": "bound", "allow_plain": True}})
                    elif choice < 0.45 and free:
                        picked = rng.sample(free, rng.randint(1, min(2, len(free))))
                        op = ("vm.attach", {"vm": name, "devices": picked})
                    elif choice < 0.7 and model[name]:
                        op = ("vm.detach", {"vm": name, "device": rng.choice(sorted(model[name]))})
                    else:
                        op = ("vm.destroy", {"vm": name})
                    in_doubt = call_and_model(sm, op, model)
                    if in_doubt:
                        break
                    ops_done += 1
                    killer.acknowledged()
                killer.reap(sm, in_doubt)
                sm.pump()
                sm.start()
                vms, _ = check_invariants(sm)
                got = {n: {d["device"] for d in v["devices"]} for n, v in vms.items()}
                assert_matches_model(rnd, model, got, in_doubt)
                model = got
            print("%d operations, %d kills, %d guests at the end" % (ops_done, rounds, len(model)))
    finally:
        root.remove()


def test_crash_after_fdstore_released_by_a_worker():
    # The daemon dies right after storing an attached device's fd, before the guest's state says
    # so: the restart finds a device fd of no guest and an HWPT nobody references. The fd goes
    # to a release worker (on hardware its last close resets the device: here 1 s, paid by the
    # worker), so READY=1 does not wait for it and the device is still bound right after; then
    # the HWPT is destroyed and the device can be attached again. An ordering, not a time: the
    # release worker is stopped (SIGSTOP) as soon as it appears, and READY=1 must come while it
    # is stopped; the device is then still in the context whatever the machine's speed.
    reset_ms = 1000
    root = Cgroup("orphan")
    g = root.child("g")
    b = ifbtest.Broker(config="[emulated]\ndevice-reset-ms=%d\n[broker]\nworker-timeout-ms=600000\n" % reset_ms,
                       env={"IFB_FAULT": "crash-after-fdstore@2"})   # 1: g's context, 2: the device
    try:
        with ServiceManager(broker=b) as sm:
            b.call("vm.create", {"name": "g", "cgroup": g.path, "options": {"handoff": "bound"}})
            try:
                b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
                raise AssertionError("the daemon answered the attach it should have died in")
            except (ConnectionError, EOFError, OSError):
                pass
            sm.kill()
            assert sm.proc.returncode == -signal.SIGKILL, sm.proc.returncode
            assert len(sm.names()) == 2, sm.names()   # the context and the device fd
            b.env.pop("IFB_FAULT")
            sm.start(wait_ready=False)
            # the release worker (the daemon's one child; its close of the device takes reset_ms),
            # started before or after READY=1 (spawns wait for a main-loop turn)
            worker = ifbtest.wait_until(lambda: ifbtest.workers(sm.proc.pid), "the release worker", every=0.001)
            os.kill(worker[0], signal.SIGSTOP)
            try:
                sm.wait_ready()   # while the worker cannot end: READY=1 does not wait for it
                vm = b.call("vm.show", {"vm": "g"})
                assert [o["type"] for o in vm["context_objects"] if o["type"] == "device"] == ["device"], \
                    "the orphaned device is not being released by a worker after READY=1: %r" % vm
                assert b.call("broker.info")["workers"]["running"] == 1
            finally:
                os.kill(worker[0], signal.SIGCONT)

            def released():
                vm = b.call("vm.show", {"vm": "g"})
                left = [o for o in vm.get("context_objects", []) if o["type"] in ("device", "hwpt-paging")]
                return vm if not left else None
            vm = ifbtest.wait_until(released, "the release worker to empty the context", every=0.1)
            assert vm["devices"] == [], vm
            assert "1 device fds of no guest are closed by release workers" in b.read_log(), b.read_log()[-2000:]
            check_invariants(sm)
            vm = b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
            assert [d["state"] for d in vm["devices"]] == ["ready"], vm
            check_invariants(sm)
    finally:
        root.remove()


def test_viommu_survives_restart_and_kill9():
    # A guest's vIOMMU and vDEVICE come back with its context from the fd store, by SIGTERM and by
    # SIGKILL; a crash right after the worker made them, before the state was written, leaves
    # objects the restart tidies in the kernel's order (vDEVICE, vIOMMU, HWPT), and the device
    # can be attached again with the same virtual id.
    root = Cgroup("fdviommu")
    g = root.child("g")
    opts = {"handoff": "bound", "viommu": "arm-smmuv3", "veventq_depth": 32}
    try:
        with ServiceManager() as sm:
            b = sm.broker
            b.call("vm.create", {"name": "g", "cgroup": g.path, "options": opts})
            b.call("vm.attach", {"vm": "g", "device": SMMU, "virt_id": 9})
            before, _ = check_invariants(sm)
            assert before["g"]["viommu"]["id"] and before["g"]["devices"][0]["vdev_id"], before
            for sig in (signal.SIGTERM, signal.SIGKILL):
                sm.restart(sig)
                after, _ = check_invariants(sm)
                assert after == before, "guest changed across the restart:\n%r\n%r" % (before, after)
                # the vEVENTQ fd came back from the store: the VMM still gets it
                c = b.client()
                reply, fds = c.call_full("vm.fds", {"vm": "g"})
                c.close()
                assert reply["result"]["veventq_id"] == before["g"]["viommu"]["veventq_id"], reply
                assert os.read(fds[reply["result"]["veventq"]], 8) == b""
                for fd in fds:
                    os.close(fd)
                before, _ = check_invariants(sm)   # this process holds the guest's fds now
            b.call("vm.detach", {"vm": "g", "device": SMMU})
            assert [o["type"] for o in b.call("vm.show", {"vm": "g"})["context_objects"]] == ["ioas"]
            check_invariants(sm)
        b = ifbtest.Broker(env={"IFB_FAULT": "crash-after-fdstore@2"})   # 1: h's context, 2: the device
        with ServiceManager(broker=b) as sm:
            b.call("vm.create", {"name": "h", "cgroup": g.path, "options": opts})
            try:
                b.call("vm.attach", {"vm": "h", "device": SMMU, "virt_id": 9})
                raise AssertionError("the daemon answered the attach it should have died in")
            except (ConnectionError, EOFError, OSError):
                pass
            sm.kill()
            b.env.pop("IFB_FAULT")
            sm.start()
            def tidied():
                workers_idle(b)
                vm = b.call("vm.show", {"vm": "h"})
                return vm if all(o["type"] == "ioas" for o in vm.get("context_objects", [])) else None
            vm = ifbtest.wait_until(tidied, "the crashed attach's objects tidied (vEVENTQ, vIOMMU, HWPT)")
            assert vm["devices"] == [] and vm["viommu"]["id"] == 0, vm
            assert "Destroyed orphaned vIOMMU" in b.read_log(), b.read_log()[-2000:]
            vm = b.call("vm.attach", {"vm": "h", "device": SMMU, "virt_id": 9})
            assert vm["viommu"]["id"] and vm["devices"][0]["vdev_id"], vm
            check_invariants(sm)
    finally:
        root.remove()


if __name__ == "__main__":
    run([test_ready_only_when_listening, test_restart_keeps_every_guest_and_object, test_vmm_holders_survive_restart,
         test_kill9_between_operations,
         test_kill9_during_operations, test_crash_after_fdstore_released_by_a_worker,
         test_viommu_survives_restart_and_kill9])
