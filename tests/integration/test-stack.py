#!/usr/bin/env python3
"""What the whole stack (systemd, libvirt, an unprivileged QEMU) needs of the broker, each
tested as that stack meets it: the daemon without CAP_KILL (its unit has none) serving a VMM of
another uid in its guest's cgroup; every refusal's real reason in the journal with IFB_VM=
while the peer hears only the public text; the VMM socket that libvirt's QEMU user may reach
without being in any group, serving nothing but vm.fds; and the VMM's RLIMIT_MEMLOCK raised by
the broker to the guest's memory plus libvirt's VFIO margin."""
import ctypes
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import (BUILD, NOBODY, SMMU, Broker, Cgroup, Client, in_cgroup, in_child, as_user,  # noqa: E402
                     peer, run)

NO_PEERPIDFD = os.path.join(BUILD, "tests", "helpers", "no-peerpidfd")
CAP_KILL = 5
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

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                entries = journal.read()
                fds = [e for e in entries if e.get("IFB_VM") == "jg" and "vm.fds" in e.get("MESSAGE", "")]
                create = [e for e in entries if e.get("IFB_VM") == "other"]
                if fds and create:
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("no refusal with IFB_VM= in the journal: %r\nlog: %s" % (entries, b.read_log()))
            assert fds[0]["IFB_VM_UUID"] == g["uuid"], fds
            # the real reason: the guest's cgroup and where the peer is
            assert cg.path in fds[0]["MESSAGE"], fds
            assert "vm.create" in create[0]["MESSAGE"], create
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_vmm_of_another_uid_served_without_cap_kill, test_vmm_of_another_uid_served_without_cap_kill_or_peerpidfd,
         test_refusals_logged_with_their_reason_and_guest])
