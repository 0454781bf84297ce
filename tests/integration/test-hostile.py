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
from ifbtest import (NEST_VTD, NOBODY, SMMU, Broker, Cgroup, Client, as_user, in_cgroup, read_state,  # noqa: E402
                     reclaimed, run)


def wait_for(what, pred, timeout=20):
    """Poll pred() until it is true; the deadline only catches a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


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
        b.open_fds()   # settled: nothing else opens fds while the limit is low
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


if __name__ == "__main__":
    run([
        test_fd_exhaustion_is_reported_as_such,
    ])
