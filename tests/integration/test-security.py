#!/usr/bin/env python3
"""The security findings of issue 17, each as the attack that worked, now refused: guests in
cgroups every process shares, pid reuse on kernels without SO_PEERPIDFD, fds parked on lines
that never end, untrusted state files, name/UUID confusion, subscribers that never read, slots
taken by unprivileged uids, idle connections, refused calls flooding the log, and the smaller
items (ids, UUID case, zombies, pid 0)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import (BUILD, CTL, NEST_VTD, SMMU, Broker, Cgroup, Client, RpcError, Skip, as_user,  # noqa: E402
                     run)

NOBODY = 65534
NO_PEERPIDFD = os.path.join(BUILD, "tests", "helpers", "no-peerpidfd")


def in_cgroup(cg):
    def f():
        with open(cg.full + "/cgroup.procs", "w") as p:
            p.write(str(os.getpid()))
    return f


def call_from(broker, cg=None, uid=None, method="broker.info", params=None):
    """Make one call from a child process placed in cg (and running as uid); returns the reply."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = {}
        try:
            if cg:
                in_cgroup(cg)()
            if uid is not None:
                as_user(uid)
            c = Client(broker.socket)
            out, fds = c.call_full(method, params)
            for fd in fds:
                os.close(fd)
            out["n_fds"] = len(fds)
        except BaseException as e:   # noqa: B902 - reported to the parent
            out = {"exception": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        d = os.read(r, 65536)
        if not d:
            break
        data += d
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def err_name(reply):
    return reply.get("error", {}).get("data", {}).get("name")


# ---- 4: guest cgroups every process (or the caller) shares ----------------------------------

def test_guest_cgroup_shared_with_everyone_is_refused():
    # '/', the daemon's own cgroup and its ancestors, and a pid or pidfd of a process in '/',
    # can never be a guest's: every local process (or the broker) would pass vm.fds' check.
    outer = Cgroup("sh")
    inner = outer.child("daemon")
    try:
        with Broker(preexec=in_cgroup(inner)) as b:
            c = b.client()
            for cg in ("/", outer.path, inner.path):
                e = c.error("vm.create", {"name": "g", "cgroup": cg})
                assert e["data"]["name"] == "cgroup-invalid", (cg, e)
            sleeper = subprocess.Popen(["sleep", "60"])   # in '/' like this test
            try:
                with open("/proc/%d/cgroup" % sleeper.pid) as f:
                    assert "0::/\n" in f.read()
                e = c.error("vm.create", {"name": "g", "pid": sleeper.pid})
                assert e["data"]["name"] == "cgroup-invalid" and "'/'" in e["message"], e
                pidfd = os.pidfd_open(sleeper.pid)
                e = c.error("vm.create", {"name": "g", "pidfd": 0}, fds=[pidfd])
                os.close(pidfd)
                assert e["data"]["name"] == "cgroup-invalid", e
            finally:
                sleeper.kill()
                sleeper.wait()
            assert c.call("vm.list") == {"vms": []}
    finally:
        outer.remove()


def test_guest_cgroup_containing_the_caller():
    # A cgroup the caller itself runs in is refused, even to root, unless root says so with
    # options.allow_caller_cgroup; an admin that is not root may not say so.
    root = Cgroup("caller")
    mine = root.child("mine")
    try:
        with Broker(config="[access]\nadmin-group=nogroup\n") as b:
            r = call_from(b, mine, None, "vm.create", {"name": "g", "cgroup": mine.path})
            assert err_name(r) == "cgroup-invalid" and "allow_caller_cgroup" in r["error"]["message"], r
            r = call_from(b, mine, None, "vm.create", {"name": "g", "cgroup": root.path})   # an ancestor too
            assert err_name(r) == "cgroup-invalid", r
            r = call_from(b, mine, NOBODY, "vm.create",
                          {"name": "g", "cgroup": mine.path, "options": {"allow_caller_cgroup": True}})
            assert err_name(r) == "permission-denied", r
            r = call_from(b, mine, None, "vm.create",
                          {"name": "g", "cgroup": mine.path, "options": {"allow_caller_cgroup": True}})
            assert r.get("result", {}).get("cgroup") == mine.path, r
            # a process of the caller's cgroup given by pid: the same rule
            r = call_from(b, mine, None, "vm.create", {"name": "h", "pid": os.getpid()})
            assert err_name(r) == "cgroup-invalid", r
    finally:
        root.remove()


def test_pid_zero_zombie_pidfd():
    # pid 0 next to a cgroup is not "no pid"; a zombie's pidfd defines no guest.
    cg = Cgroup("zombie")
    try:
        with Broker() as b:
            c = b.client()
            e = c.error("vm.create", {"name": "g", "cgroup": cg.path, "pid": 0})
            assert e["data"]["name"] == "invalid-params", e
            z = subprocess.Popen(["sh", "-c", "exit 0"], preexec_fn=in_cgroup(cg))
            pidfd = os.pidfd_open(z.pid)
            for _ in range(200):
                with open("/proc/%d/stat" % z.pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
                time.sleep(0.01)
            e = c.error("vm.create", {"name": "g", "pidfd": 0}, fds=[pidfd])
            assert e["data"]["name"] == "cgroup-invalid" and "exited" in e["message"], e
            e = c.error("vm.create", {"name": "g", "pid": z.pid})
            assert e["data"]["name"] == "cgroup-invalid", e
            os.close(pidfd)
            z.wait()
    finally:
        cg.remove()


# ---- 5: a recycled pid without SO_PEERPIDFD ------------------------------------------------

def set_next_pid(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))


def test_recycled_pid_without_peerpidfd():
    # The kernel has no SO_PEERPIDFD (no-peerpidfd, as on Debian 12's 6.1). A peer of uid
    # nobody connects and exits before the daemon accepts; its pid is reused by a root process in
    # the guest's cgroup. The connection must not be authorized by that process's cgroup. A live
    # peer of the right uid in the guest's cgroup still is.
    if not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        raise Skip("cannot choose the next pid (/proc/sys/kernel/ns_last_pid not writable)")
    guest = Cgroup("reuse")
    try:
        b = Broker()
        cmd = b.command
        b.command = lambda: [NO_PEERPIDFD] + cmd()
        with b:
            b.call("vm.create", {"name": "g", "cgroup": guest.path})
            b.call("vm.attach", {"vm": "g", "device": SMMU})
            r = call_from(b, guest, NOBODY, "vm.fds", {"vm": "g"})
            assert "result" in r and r["n_fds"] == 2, r   # the fallback still authorizes a real peer

            for attempt in range(20):
                b.proc.send_signal(signal.SIGSTOP)   # the connection waits in the backlog
                try:
                    a, pa = socket.socketpair()
                    pid = os.fork()
                    if pid == 0:
                        as_user(NOBODY)
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.connect(b.socket)
                        socket.send_fds(pa, [b"x"], [s.fileno()])
                        os._exit(0)
                    _, fds, _, _ = socket.recv_fds(a, 1, 1)
                    os.waitpid(pid, 0)
                    set_next_pid(pid)
                    impostor = subprocess.Popen(["sleep", "60"], preexec_fn=in_cgroup(guest))
                finally:
                    b.proc.send_signal(signal.SIGCONT)
                if impostor.pid == pid:
                    break
                impostor.kill()
                impostor.wait()
                os.close(fds[0])
            else:
                raise Skip("the pid was taken by someone else 20 times")
            try:
                c = Client.__new__(Client)
                c.sock, c.buf, c.fds, c.next_id = socket.socket(fileno=fds[0]), b"", [], 1
                c.sock.settimeout(10)
                reply, got = c.call_full("vm.fds", {"vm": "g"})
                for fd in got:
                    os.close(fd)
                assert "error" in reply and not got, reply
                assert reply["error"]["data"]["name"] == "permission-denied", reply
                c.close()
            finally:
                impostor.kill()
                impostor.wait()
    finally:
        guest.remove()


if __name__ == "__main__":
    run([test_guest_cgroup_shared_with_everyone_is_refused, test_guest_cgroup_containing_the_caller,
         test_pid_zero_zombie_pidfd, test_recycled_pid_without_peerpidfd])
