#!/usr/bin/env python3
"""Attacks of a local user who may connect to the socket, and of a guest's VMM authorized for its
own guest, each tested as the attack it stops: files planted at the metrics textfile's path,
guest cgroups that overlap, fds queued for a peer that never reads, a vm.fds flood, a launcher
that forks the VMM and exits, fd exhaustion while a device is opened, and ids that json-c would
echo changed."""
import json
import os
import resource
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import (HANG, NEST_VTD, NOBODY, SMMU, Broker, Cgroup, Client, as_user, in_cgroup, read_state,  # noqa: E402
                     reclaimed, run, wait_until)


def wait_for(what, pred, timeout=HANG):
    """pred()'s first true value; the deadline only catches a hang (ifbtest.HANG)."""
    return wait_until(pred, what, timeout)


# ---- fd exhaustion while a device is opened -----------------------------------------------

def nofile_leaving_free(pid, free):
    """The RLIMIT_NOFILE under which process pid has exactly `free` fd numbers left."""
    used = {int(x) for x in os.listdir("/proc/%d/fd" % pid)}
    n = avail = 0
    while True:
        if n not in used:
            if avail == free:
                return n
            avail += 1
        n += 1


def test_fd_exhaustion_is_reported_as_such():
    # The daemon runs out of fds part-way through opening a device (each step of the sysfs walk
    # and the cdev open in turn): the caller is told resource-exhausted, never that the device has
    # no VFIO cdev or is not vfio-pci, and the journal says why. With fds again, the attach works.
    with Cgroup("emfile") as cg, Broker() as b:
        c = b.client()
        c.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.open_fds(c)   # settled: nothing else opens fds while the limit is low
        soft, hard = resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)
        names = []
        try:
            for free in range(0, 12):
                resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (nofile_leaving_free(b.proc.pid, free), hard))
                reply, fds = c.call_full("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
                resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
                for fd in fds:
                    os.close(fd)
                if "result" in reply:
                    break
                names.append((free, reply["error"]["data"]["name"], reply["error"]["message"]))
        finally:
            resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert names, "the attach never ran out of fds"
        wrong = [n for n in names if n[1] != "resource-exhausted"]
        assert not wrong, wrong
        assert all("Too many open files" in n[2] for n in names), names
        assert "Too many open files" in b.read_log()
        v = c.call("vm.show", {"vm": "g"})
        assert [d["device"] for d in v["devices"]] == [NEST_VTD[0]], v

# ---- guest cgroups that overlap --------------------------------------------------------------

def call_as(broker, uid, method, params):
    def call():
        as_user(uid)
        out, fds = Client(broker.socket).call_full(method, params)
        for fd in fds:
            os.close(fd)
        return out
    from ifbtest import in_child
    return in_child(call)


def test_overlapping_guest_cgroups_are_refused():
    # A VMM is authorized by its cgroup: a guest whose cgroup equals, lies inside or contains
    # another guest's would let one guest's process take the other's fds. vm.create refuses each
    # (by path and by pid), naming the other guest to root only; a sibling whose name merely
    # starts the same is no overlap.
    with Cgroup("ovl") as root, Broker(config="[access]\nadmin-group=nogroup\n") as b:
        g = root.child("g")
        inner = g.child("in")
        sib = root.child("gx")
        c = b.client()
        c.call("vm.create", {"name": "g", "cgroup": g.path})
        for cg in (g.path, inner.path, root.path):
            e = c.error("vm.create", {"name": "h", "cgroup": cg})
            assert e["data"]["name"] == "cgroup-invalid" and "'g'" in e["message"] and g.path in e["message"], (cg, e)
        sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=in_cgroup(inner))
        try:
            e = c.error("vm.create", {"name": "h", "pid": sleeper.pid})
            assert e["data"]["name"] == "cgroup-invalid" and "'g'" in e["message"], e
        finally:
            sleeper.kill()
            sleeper.wait()
        # an admin that is not root learns only that there is an overlap
        for cg in (g.path, root.path):
            r = call_as(b, NOBODY, "vm.create", {"name": "h", "cgroup": cg})
            assert r.get("error", {}).get("data", {}).get("name") == "cgroup-invalid", r
            assert "'g'" not in r["error"]["message"] and (cg == g.path or g.path not in r["error"]["message"]), r
        c.call("vm.create", {"name": "s", "cgroup": sib.path})
        assert [v["name"] for v in c.call("vm.list")["vms"]] == ["g", "s"]
        # once g is gone its cgroup and those around it are free again
        c.call("vm.destroy", {"vm": "g"})
        c.call("vm.create", {"name": "h", "cgroup": inner.path})


def test_restore_sets_aside_overlapping_state():
    # State files whose cgroups overlap a guest restored before them (equal, inside, containing)
    # are moved to guests/rejected/ with a journal line naming the guest they overlap; the
    # others, a sibling with the same prefix among them, are restored.
    import shutil
    import tempfile
    import uuid as uuidlib
    run_dir = tempfile.mkdtemp(prefix="ifbtest-run-")
    try:
        with Broker(runtime_dir=run_dir) as b:
            for name in ("a", "b"):
                b.call("vm.create", {"name": name, "cgroup": "/ifb-ovl/" + name, "options": {"defer": True}})
        gdir = os.path.join(run_dir, "guests")
        docs = []
        for f in os.listdir(gdir):
            with open(os.path.join(gdir, f)) as fh:
                docs.append(json.load(fh))
        newest = max(d["vm"]["created_usec"] for d in docs)

        def plant(name, cgroup, age):
            d = json.loads(json.dumps(docs[0]))
            d["vm"].update(name=name, uuid=str(uuidlib.uuid4()), slot=100 + age, cgroup=cgroup,
                           created_usec=newest + 10 * age)
            with open(os.path.join(gdir, d["vm"]["uuid"] + ".json"), "w") as fh:
                fh.write(json.dumps(d))
            return d["vm"]["uuid"] + ".json"

        bad = [plant("c", "/ifb-ovl/a", 1), plant("d", "/ifb-ovl/a/in", 2), plant("e", "/ifb-ovl", 3)]
        plant("f", "/ifb-ovl/ab", 4)
        with Broker(runtime_dir=run_dir) as b:
            names = [v["name"] for v in b.call("vm.list")["vms"]]
            log = b.read_log()
        assert names == ["a", "b", "f"], (names, log[-3000:])
        rejected = sorted(os.listdir(os.path.join(gdir, "rejected")))
        assert rejected == sorted(bad), (rejected, bad)
        for why in ("/ifb-ovl/a is guest 'a''s too", "/ifb-ovl/a/in lies inside guest 'a''s cgroup",
                    "/ifb-ovl contains guest "):
            assert why in log, (why, log[-3000:])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# ---- files planted at the metrics textfile's path -----------------------------------------

def rewrites(path, n, timeout=HANG):
    """Wait until path has been replaced n times (each write renames a new file over it)."""
    seen = set()

    def one():
        try:
            st = os.stat(path, follow_symlinks=False)
            with open(path) as f:
                text = f.read()
        except OSError:
            return False
        if stat.S_ISREG(st.st_mode) and "ifb_uptime_seconds" in text:
            seen.add((st.st_ino, st.st_mtime_ns, text))
        return len(seen) > n
    wait_for("%d rewrites of %s" % (n, path), one, timeout)


def test_metrics_textfile_planted_files():
    # In a directory everybody may write (sticky, as the collector's often is), whatever another
    # user plants at the temporary name the daemon used to pick (.NAME.PID.tmp) or at the target
    # is never opened: a FIFO does not block the main loop, a symlink is not followed, someone
    # else's file is not written into. The metrics keep being written; clients keep being served.
    b = Broker(config="[metrics]\ninterval-sec=1\n")
    d = os.path.join(b.tmp, "collector")
    os.mkdir(d)
    os.chmod(d, 0o1777)
    path = os.path.join(d, "ifb.prom")
    victim = os.path.join(b.tmp, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    with open(b.config, "a") as f:
        f.write("textfile=%s\n" % path)
    with b:
        rewrites(path, 1)
        tmp = os.path.join(d, ".ifb.prom.%d.tmp" % b.proc.pid)

        def planted(make):
            if os.path.lexists(tmp):
                os.unlink(tmp)
            make()
            rewrites(path, 2)
            assert b.call("broker.info")["version"]
        planted(lambda: os.mkfifo(tmp))
        assert stat.S_ISFIFO(os.stat(tmp).st_mode)
        planted(lambda: os.symlink(victim, tmp))
        planted(lambda: (open(tmp, "w").write("theirs\n"), os.chown(tmp, NOBODY, NOBODY)))
        assert open(tmp).read() == "theirs\n"
        os.unlink(path)
        os.symlink(victim, path)   # at the target: replaced, never followed
        rewrites(path, 1)
        assert open(victim).read() == "precious\n"
        assert not os.path.islink(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o644
        left = [f for f in os.listdir(d) if f not in ("ifb.prom", os.path.basename(tmp))]
        assert not left, left


def test_metrics_textfile_dir_others_may_write():
    # A directory others may write without the sticky bit is refused with a journal line naming
    # it; nothing is written there and the daemon serves on.
    b = Broker(config="[metrics]\ninterval-sec=1\n")
    d = os.path.join(b.tmp, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    with open(b.config, "a") as f:
        f.write("textfile=%s\n" % os.path.join(d, "ifb.prom"))
    with b:
        wait_for("the refusal in the log", lambda: "no sticky bit" in b.read_log())
        assert d in b.read_log()
        assert b.call("broker.info")["version"]
        assert os.listdir(d) == [], os.listdir(d)


# ---- a launcher that forks the VMM and exits ----------------------------------------------

def test_launcher_that_forks_the_vmm_and_exits():
    # A launcher in the guest's cgroup takes the fds, forks the VMM, hands them to it and exits
    # (a daemonizing wrapper). Its exit is not the VMM's: the guest is not reclaimed under the
    # running VMM, which holds the fds now. When the VMM exits, the guest is reclaimed.
    import signal
    with Cgroup("fork") as cg, Broker() as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path})
        b.call("vm.attach", {"vm": "g", "device": SMMU})
        r, w = os.pipe()
        launcher = os.fork()
        if launcher == 0:
            try:
                os.close(r)
                in_cgroup(cg)()
                as_user(NOBODY)
                c = Client(b.socket)
                reply, fds = c.call_full("vm.fds", {"vm": "g"})
                c.close()
                if "result" not in reply or len(fds) != 2:
                    os.write(w, b"0 %r\n" % reply)
                    os._exit(1)
                if os.fork() == 0:   # the VMM: keeps the fds it inherited
                    os.write(w, b"%d\n" % os.getpid())
                    os.close(w)
                    time.sleep(600)
                    os._exit(0)
            finally:
                os._exit(0)   # the launcher exits at once
        os.close(w)
        os.waitpid(launcher, 0)
        line = os.read(r, 256).decode()
        os.close(r)
        vmm = int(line.split()[0])
        assert vmm > 0, line
        try:
            def adopted():
                v = b.call("vm.show", {"vm": "g"})
                assert v["vmm_exits"] == 0, "the launcher's exit reclaimed the guest: %r" % v
                return [h["pid"] for h in v["holders"]] == [vmm] and v
            v = wait_for("the VMM as the holder", adopted)
            assert v["vmm_pid"] == vmm and v["state"] == "ready", v
            # the VMM's fds still work: the devices were not reset or unbound under it
            assert b.call("vm.show", {"vm": "g"})["vmm_exits"] == 0
        finally:
            os.kill(vmm, signal.SIGKILL)
        v = reclaimed(b, "g", 1)
        assert v["holders"] == [], v


# ---- what a vm.fds flood costs --------------------------------------------------------------

def test_vm_fds_again_writes_no_state():
    # vm.fds from the process that holds the fds already changes nothing: the guest's state file
    # is not rewritten (no write, no fsync per call). A new holder is written.
    with Cgroup("fdsw") as cg, Broker() as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        b.call("vm.attach", {"vm": "g", "device": SMMU})
        uuid = b.call("vm.show", {"vm": "g"})["uuid"]
        state = os.path.join(b.runtime_dir, "guests", uuid + ".json")
        c = b.client()

        def written():
            st = os.stat(state)
            return (st.st_ino, st.st_mtime_ns)
        reply, fds = c.call_full("vm.fds", {"vm": "g"})
        assert "result" in reply and len(fds) == 2, reply
        for fd in fds:
            os.close(fd)
        first = written()
        assert json.load(open(state))["vm"]["holders"][0]["pid"] == os.getpid()
        for _ in range(20):
            reply, fds = c.call_full("vm.fds", {"vm": "g"})
            assert "result" in reply, reply
            for fd in fds:
                os.close(fd)
        assert written() == first, "vm.fds rewrote the state file without a change"


def connect_as(path, uid):
    """A client whose socket was connected as uid (SO_PEERCRED is taken at connect())."""
    os.setegid(uid)
    os.seteuid(uid)
    try:
        return Client(path)
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_one_uid_many_connections_one_share():
    # 20 connections of one uid each have 100 requests waiting, and root's one line comes after
    # them all (the daemon is stopped while they arrive): root's line is served after one share
    # of that uid's work, not after a slice of each of its connections. Counted, not timed: the
    # metrics root asks for say how many of the flood's calls ran before it.
    import re
    import signal
    with Broker(config="[access]\nadmin-group=nogroup\n[limits]\nexpensive-calls-per-second=0\nmax-pending=4096\n") as b:
        flood = [connect_as(b.socket, NOBODY) for _ in range(20)]
        root = b.client()
        b.open_fds(root, connections=len(flood) + 1)   # every connection accepted
        b.proc.send_signal(signal.SIGSTOP)
        try:
            for c in flood:
                c.sock.sendall(b"".join(b'{"jsonrpc":"2.0","method":"vm.list","id":%d}\n' % i for i in range(100)))
            root.request("metrics")
        finally:
            b.proc.send_signal(signal.SIGCONT)
        reply, _ = root.recv()
        text = reply["result"]["text"] if isinstance(reply["result"], dict) else reply["result"]
        m = re.search(r'^ifb_rpc_calls_total\{method="vm.list"\} (\d+)', text, re.M)
        ran = int(m.group(1)) if m else 0
        print("%d of the flood's 2000 calls ran before root's" % ran)
        assert ran <= 32, ran
        for c in flood:   # and the flood is served in full
            for _ in range(100):
                c.recv_line()
            c.close()


# ---- fds queued for a peer that never reads -----------------------------------------------

def test_fds_queued_for_peers_that_never_read():
    # Two connections of a VMM (in its guest's cgroup) each pipeline 400 vm.fds and never read.
    # The fds in replies they have not received (queued in the daemon, or sent and unread) are
    # counted per connection and per uid: at [limits] max-queued-fds (64), or the uid's
    # max-queued-fds-per-uid (40), the daemon stops reading from them, and after
    # queued-fds-timeout it closes them. What they can ever receive is bounded by the limits, not
    # by what they asked for: the first one closed stopped at the uid's 40 (with the other's),
    # the other at most at its own 64; the daemon's own fds stay bounded; others are served.
    conf = "[limits]\nmax-queued-fds=64\nmax-queued-fds-per-uid=40\nqueued-fds-timeout=1\n"
    with Cgroup("noread") as cg, Broker(config=conf) as b:
        b.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
        b.call("vm.attach", {"vm": "g", "device": SMMU})
        base = b.open_fds()
        line = b'{"jsonrpc":"2.0","method":"vm.fds","params":{"vm":"g"},"id":1}\n'
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            counts = []
            try:
                in_cgroup(cg)()
                as_user(NOBODY)
                socks = []
                for _ in range(2):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(b.socket)
                    s.sendall(line * 400)
                    socks.append(s)
                os.write(ready_w, b"x")
                os.read(go_r, 1)
                for s in socks:   # now read all there is, until the daemon's EOF
                    s.settimeout(20)
                    n = 0
                    while True:
                        try:
                            data, fds, _, _ = socket.recv_fds(s, 65536, 64)
                        except ConnectionResetError:   # closed with our requests unread: the end
                            break
                        for fd in fds:
                            os.close(fd)
                        n += len(fds)
                        if not data:
                            break
                    counts.append(n)
            except BaseException as e:   # noqa: B902 - reported to the parent
                counts = [repr(e)]
            os.write(out_w, json.dumps(counts).encode())
            os._exit(0)
        os.read(ready_r, 1)
        assert b.call("broker.info")["version"]   # served meanwhile
        held = b.open_fds(connections=3)   # the two that never read, and the one asking
        assert held <= base + 2 + 2 * 64, (base, held)
        wait_for("the two connections closed", lambda: b.read_log().count("in replies it has not read") >= 2)
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        counts = json.loads(os.read(out_r, 4096))
        assert all(isinstance(n, int) for n in counts), counts
        print("fds received by the two peers that never read: %r (they asked for 1600)" % counts)
        assert all(n <= 66 for n in counts) and min(counts) <= 42, counts
        assert b.open_fds() <= base, (base, b.open_fds())
        for fd in (ready_r, ready_w, go_r, go_w, out_r, out_w):
            os.close(fd)


if __name__ == "__main__":
    run([
        test_fds_queued_for_peers_that_never_read,
        test_one_uid_many_connections_one_share,
        test_vm_fds_again_writes_no_state,
        test_launcher_that_forks_the_vmm_and_exits,
        test_metrics_textfile_planted_files,
        test_metrics_textfile_dir_others_may_write,
        test_fd_exhaustion_is_reported_as_such,
        test_overlapping_guest_cgroups_are_refused,
        test_restore_sets_aside_overlapping_state,
    ])
