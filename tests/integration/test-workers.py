"""Asynchronous workers against the real daemon, with the emulated device reset a real host has
([emulated] device-reset-ms: every bind and every last close of a bound device takes that long in
the process doing it): the main loop never waits for a worker, guests proceed in parallel, one
guest's requests run in arrival order, the bound on running workers queues, the daemon's deadline
kills a worker and nothing of its request stays, a client that hangs up does not cancel its
request, and signals sent into guests' cgroups end workers, never the daemon."""
import os
import signal
import threading
import time

from ifbtest import NEST_VTD, SMMU, Broker, Cgroup, Client, read_state, run

RESET_MS = 400


def conf(reset_ms=RESET_MS, extra=""):
    return "[emulated]\ndevice-reset-ms=%d\n%s" % (reset_ms, extra)


def timed_call(b, method, params, out, key):
    c = Client(b.socket, timeout=30)
    t0 = time.monotonic()
    reply, fds = c.call_full(method, params)
    out[key] = (t0, time.monotonic(), reply)
    for fd in fds:
        os.close(fd)
    c.close()


def in_parallel(calls):
    out = {}
    threads = [threading.Thread(target=timed_call, args=c + (out, i)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[i] for i in range(len(calls))]


def test_guests_attach_in_parallel_and_the_loop_answers():
    # Two guests' attaches (each one bind = one reset) overlap in time, and broker.info is
    # answered at once meanwhile: the main loop waits for neither worker.
    with Cgroup("wpar") as cg, Broker(config=conf()) as b:
        for name in ("a", "b"):   # one cgroup each: guests never share one
            b.call("vm.create", {"name": name, "cgroup": cg.child(name).path, "options": {"handoff": "bound"}})
        info = {}
        probe = threading.Thread(target=lambda: (time.sleep(RESET_MS / 4000), timed_call(b, "broker.info", None, info, 0)))
        probe.start()
        t0 = time.monotonic()
        ra, rb = in_parallel([(b, "vm.attach", {"vm": "a", "device": NEST_VTD[0]}),
                              (b, "vm.attach", {"vm": "b", "device": NEST_VTD[1]})])
        probe.join()
        wall = time.monotonic() - t0
        for start, end, reply in (ra, rb):
            assert "result" in reply, reply
            assert end - start >= RESET_MS / 1000, (end - start)
        # serial would be 2 resets; overlapping, the two windows share most of their time
        assert wall < 1.6 * RESET_MS / 1000, "attaches of two guests took %.3f s (serial would be %.3f s)" % (
            wall, 2 * RESET_MS / 1000)
        assert max(ra[0], rb[0]) < min(ra[1], rb[1]), (ra[:2], rb[:2])
        istart, iend, ireply = info[0]
        assert "result" in ireply and iend - istart < 0.1, (iend - istart, ireply)
        assert ireply["result"]["workers"]["running"] >= 1, ireply["result"]["workers"]
        print("two guests' attaches: %.3f s together, each %.3f/%.3f s; broker.info meanwhile %.1f ms"
              % (wall, ra[1] - ra[0], rb[1] - rb[0], (iend - istart) * 1000))


def test_device_probe_runs_in_a_worker():
    # device.list on a fresh daemon probes what the IOMMU behind each unowned vfio device can do:
    # a bind and a close, each a reset. A worker pays them; broker.info is answered meanwhile.
    with Broker(config=conf(reset_ms=150)) as b:
        out = {}
        t = threading.Thread(target=timed_call, args=(b, "device.list", None, out, "list"))
        t.start()
        time.sleep(0.1)
        timed_call(b, "broker.info", None, out, "info")
        t.join()
        l_start, l_end, listing = out["list"]
        i_start, i_end, info = out["info"]
        vfio = [d for d in listing["result"]["devices"] if d["vfio"]]
        assert vfio and all(d["iommu"] and "hw_info_error" not in d for d in vfio), listing
        assert l_end - l_start >= len(vfio) * 2 * 0.150 * 0.95, (l_end - l_start, len(vfio))
        assert i_end < l_end and i_end - i_start < 0.1, (i_end - i_start, l_end - l_start)
        assert info["result"]["workers"]["running"] == 1, info["result"]["workers"]
        # cached: the second listing binds nothing
        t0 = time.monotonic()
        again = b.call("device.list")
        assert time.monotonic() - t0 < 0.15 and again == listing["result"], again
        print("device.list probing %d devices: %.3f s; broker.info meanwhile %.1f ms"
              % (len(vfio), l_end - l_start, (i_end - i_start) * 1000))


def test_attach_waits_for_the_probe_of_its_device():
    # A device device.list is probing is bound to the probe's scratch context: a guest's attach
    # of it meanwhile waits for the probe to end instead of failing as "in use".
    with Cgroup("wprobe") as cg, Broker(config=conf(reset_ms=150)) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        out = {}
        t = threading.Thread(target=timed_call, args=(b, "device.list", None, out, "list"))
        t.start()
        time.sleep(0.1)
        timed_call(b, "vm.attach", {"vm": "g", "device": NEST_VTD[0]}, out, "attach")
        t.join()
        l_start, l_end, listing = out["list"]
        a_start, a_end, attach = out["attach"]
        assert "result" in listing, listing
        assert "result" in attach and [d["state"] for d in attach["result"]["devices"]] == ["ready"], attach
        assert a_start < l_end <= a_end, (out["list"][:2], out["attach"][:2])


def test_one_guests_requests_run_in_order():
    # From two connections: an attach (a reset long), then a destroy of the same guest sent while
    # it runs. The destroy waits for the attach, which completes; nothing is torn.
    with Cgroup("word") as cg, Broker(config=conf()) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        out = {}
        t = threading.Thread(target=timed_call, args=(b, "vm.attach", {"vm": "g", "devices": NEST_VTD}, out, "attach"))
        t.start()
        time.sleep(RESET_MS / 4000)
        timed_call(b, "vm.destroy", {"vm": "g"}, out, "destroy")
        t.join()
        a_start, a_end, a = out["attach"]
        d_start, d_end, d = out["destroy"]
        assert "result" in a and [x["state"] for x in a["result"]["devices"]] == ["ready", "ready"], a
        assert "result" in d and d["result"]["devices_freed"] == 2, d
        assert d_start < a_end <= d_end, (out["attach"][:2], out["destroy"][:2])
        owners = {x["device"]: x["owner"] for x in b.call("device.list")["devices"]}
        assert owners[NEST_VTD[0]] is None and owners[NEST_VTD[1]] is None, owners
        assert b.call("vm.list")["vms"] == []


def test_worker_bound_queues_in_order():
    # [broker] max-workers=1: the second guest's worker waits for the first one's end.
    with Cgroup("wmax") as cg, Broker(config=conf(extra="[broker]\nmax-workers=1\n")) as b:
        for name in ("a", "b"):   # one cgroup each: guests never share one
            b.call("vm.create", {"name": name, "cgroup": cg.child(name).path, "options": {"handoff": "bound"}})
        seen = {}

        def watch():
            time.sleep(RESET_MS / 2000)
            seen["info"] = Client(b.socket).call("broker.info")["workers"]
        w = threading.Thread(target=watch)
        w.start()
        ra, rb = in_parallel([(b, "vm.attach", {"vm": "a", "device": NEST_VTD[0]}),
                              (b, "vm.attach", {"vm": "b", "device": NEST_VTD[1]})])
        w.join()
        assert "result" in ra[2] and "result" in rb[2], (ra, rb)
        first, second = sorted((ra, rb), key=lambda r: r[1])
        assert second[1] - min(ra[0], rb[0]) >= 2 * RESET_MS / 1000 * 0.95, (ra[:2], rb[:2])
        assert seen["info"]["running"] == 1 and seen["info"]["waiting"] == 1 and seen["info"]["max_running"] == 1, seen


def test_deadline_kills_the_worker_and_nothing_stays():
    # A worker over [broker] worker-timeout-ms is killed by the daemon; the request fails naming
    # the deadline, and the guest, its context and the device are as before the request.
    with Cgroup("wdead") as cg, Broker(config=conf(reset_ms=1500, extra="[broker]\nworker-timeout-ms=200\n")) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        before = b.call("vm.show", {"vm": "g"})["context_objects"]
        t0 = time.monotonic()
        e = b.client().error("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
        took = time.monotonic() - t0
        assert e["data"]["name"] == "worker-killed" and "within 200 ms" in e["message"], e
        assert took < 1.4, took
        v = b.call("vm.show", {"vm": "g"})
        assert v["devices"] == [] and v["context_objects"] == before and not v["busy"], (v, before)
        owners = {x["device"]: x["owner"] for x in b.call("device.list")["devices"]}
        assert owners[NEST_VTD[0]] is None, owners
        assert b.call("broker.info")["workers"]["running"] == 0


def test_frozen_guest_cgroup_holds_nothing_up():
    # A guest whose cgroup is frozen (cgroup.freeze=1: a paused scope) gets a worker that cannot
    # run: the daemon answers everyone meanwhile, kills the worker at its deadline (SIGKILL ends a
    # frozen task) and the request fails saying so; thawed, the guest works again. (A worker born
    # into the frozen cgroup with clone3(CLONE_VFORK|CLONE_INTO_CGROUP) would hang the daemon
    # here: its parent waits for an exec that never comes.)
    with Cgroup("wfrz") as cg, Broker(config="[broker]\nworker-timeout-ms=1000\n") as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        with open(cg.full + "/cgroup.freeze", "w") as f:
            f.write("1")
        try:
            c = Client(b.socket)
            c.request("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
            time.sleep(0.2)
            t = time.monotonic()
            b.call("broker.info")
            assert time.monotonic() - t < 0.1, time.monotonic() - t
            reply, _ = c.recv()
            assert reply["error"]["data"]["name"] == "worker-killed" and "within 1000 ms" in reply["error"]["message"], reply
        finally:
            with open(cg.full + "/cgroup.freeze", "w") as f:
                f.write("0")
        v = b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
        assert [d["state"] for d in v["devices"]] == ["ready"], v


def test_client_hanging_up_does_not_cancel():
    # A client that hangs up while its attach's worker runs: the worker runs on, the result is
    # committed (device ready, state written), and the connection's slot is gone. (A peer that
    # hangs up before its line was read has its lines dropped, unrun: test-security.)
    with Cgroup("whang") as cg, Broker(config=conf()) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        c = Client(b.socket)
        c.request("vm.attach", {"vm": "g", "device": SMMU})
        deadline = time.monotonic() + 10
        while not b.call("vm.show", {"vm": "g"})["busy"] and time.monotonic() < deadline:
            time.sleep(0.01)
        c.close()
        while time.monotonic() < deadline:
            v = b.call("vm.show", {"vm": "g"})
            if v["devices"] and not v["busy"]:
                break
            time.sleep(0.05)
        assert [d["state"] for d in v["devices"]] == ["ready"] and v["devices"][0]["hwpt_id"] > 0, v
        saved = read_state(b.runtime_dir)["vms"]
        assert [[d["state"] for d in s["devices"]] for s in saved] == [["ready"]], saved
        assert b.call("broker.info")["counts"]["connections"] <= 1   # only the one asking


def test_signals_into_guest_cgroups_never_reach_the_daemon():
    # While guests are created, attached and destroyed, SIGTERM, SIGINT and SIGHUP go to every
    # process in their cgroups in a tight loop (what stopping a guest's scope does). The daemon
    # stays up, every request is answered — done, or failed saying why — and no guest is torn.
    cgs = [Cgroup("wsig%d" % i) for i in range(3)]
    stop = threading.Event()
    sent = [0]

    def storm():
        sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
        while not stop.is_set():
            for cg in cgs:
                try:
                    pids = open(cg.full + "/cgroup.procs").read().split()
                except OSError:
                    pids = []
                for p in pids:
                    try:
                        os.kill(int(p), sigs[sent[0] % 3])
                        sent[0] += 1
                    except (ProcessLookupError, ValueError):
                        pass
    try:
        with Broker(config=conf(reset_ms=30)) as b:
            t = threading.Thread(target=storm)
            t.start()
            failures = {}
            done = 0
            try:
                for rnd in range(12):
                    for i, cg in enumerate(cgs):
                        name = "s%d" % i
                        for method, params in (("vm.create", {"name": name, "cgroup": cg.path, "options": {"handoff": "bound"}}),
                                               ("vm.attach", {"vm": name, "device": [NEST_VTD[0], NEST_VTD[1], SMMU][i]}),
                                               ("vm.destroy", {"vm": name})):
                            reply, fds = b.client().call_full(method, params)
                            for fd in fds:
                                os.close(fd)
                            done += 1
                            if "error" in reply:
                                err = reply["error"]
                                assert err["data"]["name"] in ("worker-killed", "no-such-vm", "vm-exists"), err
                                if err["data"]["name"] == "worker-killed":
                                    assert "killed by signal SIG" in err["message"], err
                                failures[err["data"]["name"]] = failures.get(err["data"]["name"], 0) + 1
                        # every round ends with the guest gone, whatever failed
                        if b.client().call_full("vm.show", {"vm": name})[0].get("result"):
                            b.call("vm.destroy", {"vm": name})
            finally:
                stop.set()
                t.join()
            assert b.proc.poll() is None, "the daemon exited: %s" % b.read_log()[-2000:]
            assert "Shutting down" not in b.read_log(), b.read_log()[-2000:]
            assert b.call("vm.list")["vms"] == []
            owners = [d["owner"] for d in b.call("device.list")["devices"]]
            assert not any(owners), owners
            assert sent[0] > 0, "no signal reached a guest's cgroup"
            print("%d requests, %d signals into the guests' cgroups, failures %r" % (done, sent[0], failures))
    finally:
        for cg in cgs:
            cg.remove()


if __name__ == "__main__":
    run([test_guests_attach_in_parallel_and_the_loop_answers, test_device_probe_runs_in_a_worker,
         test_attach_waits_for_the_probe_of_its_device,
         test_one_guests_requests_run_in_order,
         test_worker_bound_queues_in_order, test_deadline_kills_the_worker_and_nothing_stays,
         test_frozen_guest_cgroup_holds_nothing_up,
         test_client_hanging_up_does_not_cancel, test_signals_into_guest_cgroups_never_reach_the_daemon])
