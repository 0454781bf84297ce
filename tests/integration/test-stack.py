#!/usr/bin/env python3
"""What the whole stack (systemd, libvirt, an unprivileged QEMU) needs of the broker, each
tested as that stack meets it: the daemon without CAP_KILL (its unit has none) serving a VMM of
another uid in its guest's cgroup; every refusal's real reason in the journal with IFB_VM=
while the peer hears only the public text; the VMM socket that libvirt's QEMU user may reach
without being in any group, serving nothing but vm.fds; and the VMM's RLIMIT_MEMLOCK raised by
the broker to the guest's memory plus libvirt's VFIO margin."""
import ctypes
import json
import os
import resource
import socket
import subprocess
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import (BUILD, NOBODY, SMMU, VMM_PEER, Broker, Cgroup, Client, RpcError, as_user,  # noqa: E402
                     in_cgroup, in_child, peer, run, wait_until)

NO_PEERPIDFD = os.path.join(BUILD, "tests", "helpers", "no-peerpidfd")
CAP_KILL = 5
CAP_SYS_RESOURCE = 24
PR_CAPBSET_DROP = 24
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18

libc = ctypes.CDLL(None, use_errno=True)


def drop_cap_kill():
    """preexec: the daemon is exec'd without CAP_KILL, as its unit's bounding set leaves it."""
    if libc.prctl(PR_CAPBSET_DROP, CAP_KILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def effective_caps(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise AssertionError("no CapEff")


def err_name(reply):
    return reply.get("error", {}).get("data", {}).get("name")


# ---- peer cgroup and liveness without signals -------------------------------------------------

def check_vmm_of_another_uid(wrap=None):
    cg = Cgroup("nokill")
    try:
        b = Broker(preexec=drop_cap_kill)
        if wrap:
            cmd = b.command
            b.command = lambda: [wrap] + cmd()
        with b:
            assert not effective_caps(b.proc.pid) & (1 << CAP_KILL), "the daemon still has CAP_KILL"
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "g", "device": SMMU})
            rc, out = peer(b, "g", cg, NOBODY)
            assert rc == 0 and out.get("ok"), (rc, out, b.read_log()[-2000:])
    finally:
        cg.remove()


def test_vmm_of_another_uid_served_without_cap_kill():
    # An unprivileged VMM (uid nobody) in its guest's cgroup gets vm.fds from a daemon that has no
    # CAP_KILL: finding its cgroup and that it is alive sends it no signal.
    check_vmm_of_another_uid()


def test_vmm_of_another_uid_served_without_cap_kill_or_peerpidfd():
    # The same through the fallback for kernels without SO_PEERPIDFD (Debian 12's 6.1): the pidfd
    # opened on the peer's pid is checked alive without a signal too.
    check_vmm_of_another_uid(NO_PEERPIDFD)


# ---- refusals in the journal ------------------------------------------------------------------

class FakeJournal:
    """The journal's native socket, seen by a daemon in a private mount namespace whose /run is a
    directory of ours: what it logs natively arrives here as datagrams, every field kept."""

    def __init__(self, tmp):
        self.run = os.path.join(tmp, "fake-run")
        os.makedirs(os.path.join(self.run, "systemd", "journal"))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.run, "systemd", "journal", "socket"))
        self.sock.setblocking(False)
        self.entries = []

    def preexec(self, then=None):
        run_dir = self.run.encode()

        def pre():
            if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0 or \
               libc.mount(run_dir, b"/run", None, MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), "mount namespace for the fake journal")
            if then:
                then()
        return pre

    def stream_env(self, log_path):
        open(log_path, "ab").close()
        st = os.stat(log_path)
        return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}

    def read(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 4)
            except BlockingIOError:
                return self.entries
            if fds:   # a large entry comes as a sealed memfd
                with os.fdopen(fds[0], "rb") as f:
                    data = f.read()
            self.entries.append(parse_native(data))


def parse_native(data):
    """The journal's native protocol: KEY=VALUE lines, or KEY, newline, 64-bit length, value."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            n = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode(errors="replace")
    return fields


def test_refusals_logged_with_their_reason_and_guest():
    # A roleless peer outside the guest's cgroup asks for its fds: it hears only the public text
    # (not the cgroup), the journal gets the real reason with IFB_VM= and IFB_VM_UUID=. A refused
    # vm.create logs IFB_VM= with the name it asked for.
    cg = Cgroup("journal")
    try:
        b = Broker()
        journal = FakeJournal(b.tmp)
        b.env.update(journal.stream_env(b.log))
        b.preexec = journal.preexec()
        with b:
            g = b.call("vm.create", {"name": "jg", "cgroup": cg.path})

            def fds_as_nobody():
                as_user(NOBODY)
                return Client(b.socket).call_full("vm.fds", {"vm": "jg"})[0]
            r = in_child(fds_as_nobody)
            assert err_name(r) == "permission-denied", r
            assert cg.path not in r["error"]["message"], r

            def create_as_nobody():
                as_user(NOBODY)
                return Client(b.socket).call_full("vm.create", {"name": "other", "cgroup": cg.path})[0]
            assert err_name(in_child(create_as_nobody)) == "permission-denied"

            def refusals():
                entries = journal.read()
                fds = [e for e in entries if e.get("IFB_VM") == "jg" and "vm.fds" in e.get("MESSAGE", "")]
                create = [e for e in entries if e.get("IFB_VM") == "other"]
                return (fds, create) if fds and create else None
            fds, create = wait_until(refusals, "refusals with IFB_VM= in the journal")
            assert fds[0]["IFB_VM_UUID"] == g["uuid"], fds
            # the real reason: the guest's cgroup and where the peer is
            assert cg.path in fds[0]["MESSAGE"], fds
            assert "vm.create" in create[0]["MESSAGE"], create
    finally:
        cg.remove()


# ---- the VMM socket -------------------------------------------------------------------------

def connect_as(path, cg, uid):
    """In a child placed in cg (if any) running as uid with no groups: connect to path; 'EACCES'
    and the like on failure, else the result of one call of each of vm.fds, vm.create,
    rpc.discover (name of the error or 'ok' and the number of fds)."""
    def child():
        if cg:
            in_cgroup(cg)()
        as_user(uid)
        try:
            c = Client(path)
        except OSError as e:
            return {"connect": os.strerror(e.errno)}
        out = {}
        try:
            for method, params in (("vm.fds", {"vm": "v"}), ("vm.create", {"name": "x", "cgroup": "/x"}),
                                   ("rpc.discover", None)):
                reply, fds = c.call_full(method, params)
                for fd in fds:
                    os.close(fd)
                out[method] = ("ok %d" % len(fds)) if "result" in reply else reply["error"]["data"]["name"]
        except (EOFError, OSError) as e:
            out["closed"] = repr(e)
        return out
    return in_child(child)


def test_vmm_socket_serves_an_unprivileged_vmm_vm_fds_only():
    # libvirt's QEMU user is in none of the broker's groups and cannot reach rpc.sock (0660). The
    # VMM socket (0666) serves it vm.fds in its guest's cgroup, and nothing else. A process in no
    # guest's cgroup is refused every call with an answer that says why (a launcher started
    # outside the guest's cgroup must show the VM's start a reason, not "connection reset"), and
    # the journal has the real reason.
    cg = Cgroup("vmmsock")
    try:
        b = Broker(config="[broker]\nsocket-mode=0660\n")
        vmm_sock = os.path.join(b.tmp, "vmm.sock")
        b.args += ["--vmm-socket", vmm_sock]
        with b:
            assert os.stat(vmm_sock).st_mode & 0o777 == 0o666, oct(os.stat(vmm_sock).st_mode)
            b.call("vm.create", {"name": "v", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "v", "device": SMMU})
            assert connect_as(b.socket, cg, NOBODY) == {"connect": os.strerror(13)}   # EACCES
            r = connect_as(vmm_sock, cg, NOBODY)
            assert r == {"vm.fds": "ok 2", "vm.create": "permission-denied", "rpc.discover": "permission-denied"}, r
            r = connect_as(vmm_sock, None, NOBODY)
            assert r == {"vm.fds": "permission-denied", "vm.create": "permission-denied",
                         "rpc.discover": "permission-denied"}, r
            # the launcher started outside the guest's cgroup: its error names the cgroup rule
            r = subprocess.run([os.path.join(BUILD, "client", "iommufdctl"), "--socket", vmm_sock, "exec", "--vm", "v",
                                "--", "true", "%{iommufd}"],
                               capture_output=True, text=True, timeout=30, preexec_fn=lambda: as_user(NOBODY))
            assert r.returncode != 0 and "cgroup" in r.stderr and "reset" not in r.stderr, (r.returncode, r.stderr)
            # the launcher as libvirt runs it: uid nobody, in the guest's cgroup, through the VMM socket
            r = subprocess.run([os.path.join(BUILD, "client", "iommufdctl"), "--socket", vmm_sock, "exec", "--vm", "v",
                                "--", "sh", "-c", "test -e /proc/self/fd/$0 && echo got $0", "%{iommufd}"],
                               capture_output=True, text=True, timeout=30,
                               preexec_fn=lambda: (in_cgroup(cg)(), as_user(NOBODY)))
            assert r.returncode == 0 and r.stdout.startswith("got "), (r.returncode, r.stdout, r.stderr)
            # root is let in (the launcher of a VMM that runs as root), for vm.fds only as well
            assert Client(vmm_sock).error("vm.list")["data"]["name"] == "permission-denied"
    finally:
        cg.remove()


# ---- RLIMIT_MEMLOCK of the VMM --------------------------------------------------------------

def memlock_of(pid):
    """(soft, hard) RLIMIT_MEMLOCK of a process as /proc/PID/limits shows it, in bytes."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max locked memory"):
                return tuple(resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in line.split()[3:5])
    raise AssertionError("no 'Max locked memory' in /proc/%d/limits" % pid)


def test_vmm_memlock_raised_to_guest_memory():
    # A guest of 2048 MiB. Its VMM starts with the 8 MiB a QEMU gets from libvirt and takes the
    # fds from inside the guest's cgroup: the broker raises its RLIMIT_MEMLOCK to 2048 + 1024 MiB
    # (libvirt's VFIO margin), soft and hard, as it holds CAP_SYS_RESOURCE under its unit. Where
    # the broker has no CAP_SYS_RESOURCE (a container whose bounding set lacks it) it cannot
    # raise a hard limit: it says so, with the figure, and still hands the fds.
    cg = Cgroup("memlock")
    eight = 8 << 20
    want = (2048 + 1024) << 20
    can_raise = effective_caps(os.getpid()) & (1 << CAP_SYS_RESOURCE)
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "m", "cgroup": cg.path, "options": {"memory_mib": 2048}})
            b.call("vm.attach", {"vm": "m", "device": SMMU})
            assert b.call("vm.show", {"vm": "m"})["options"]["memory_mib"] == 2048

            def like_qemu():
                in_cgroup(cg)()
                resource.setrlimit(resource.RLIMIT_MEMLOCK, (eight, eight))
            p = subprocess.Popen([VMM_PEER, b.socket, "m", "--hold", "60"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=like_qemu)
            try:
                out = json.loads(p.stdout.readline())
                assert out.get("ok"), out
                if can_raise:
                    assert memlock_of(p.pid) == (want, want), memlock_of(p.pid)
                else:
                    assert memlock_of(p.pid) == (eight, eight), memlock_of(p.pid)
                    assert "RLIMIT_MEMLOCK of the VMM (pid %d) to 3072 MiB (the broker needs CAP_SYS_RESOURCE" % p.pid \
                        in b.read_log(), b.read_log()[-3000:]
            finally:
                p.kill()
                p.wait()

            # an admin outside the guest's cgroup is no VMM: its limit stays
            def admin_fds():
                resource.setrlimit(resource.RLIMIT_MEMLOCK, (eight, eight))
                Client(b.socket).call("vm.fds", {"vm": "m"})
                return memlock_of(os.getpid())
            assert in_child(admin_fds) == [eight, eight]
    finally:
        cg.remove()


def test_guest_memory_over_the_ceiling_is_refused():
    # [limits] max-guest-memory-mib bounds what a VMM is let lock: a guest over it is refused with
    # one clear error and nothing is made (no guest, no state); at the ceiling it is made.
    cg = Cgroup("ceiling")
    try:
        with Broker(config="[limits]\nmax-guest-memory-mib=1024\n") as b:
            try:
                b.call("vm.create", {"name": "big", "cgroup": cg.path, "options": {"memory_mib": 1025}})
                raise AssertionError("a guest over the ceiling was made")
            except RpcError as e:
                assert e.name == "limit-exceeded", e.err
                assert "max-guest-memory-mib=1024" in e.err["message"] and "1025 MiB" in e.err["message"], e.err
            assert b.call("vm.list")["vms"] == []
            guests = os.path.join(b.runtime_dir, "guests")
            assert not os.path.isdir(guests) or not os.listdir(guests), os.listdir(guests)
            for bad in (0, -1):
                try:
                    b.call("vm.create", {"name": "bad", "cgroup": cg.path, "options": {"memory_mib": bad}})
                    raise AssertionError("memory_mib %d accepted" % bad)
                except RpcError as e:
                    assert e.name == "invalid-params", e.err
            b.call("vm.create", {"name": "fits", "cgroup": cg.path, "options": {"memory_mib": 1024}})
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_vmm_of_another_uid_served_without_cap_kill, test_vmm_of_another_uid_served_without_cap_kill_or_peerpidfd,
         test_refusals_logged_with_their_reason_and_guest, test_vmm_socket_serves_an_unprivileged_vmm_vm_fds_only,
         test_vmm_memlock_raised_to_guest_memory,
         test_guest_memory_over_the_ceiling_is_refused])
