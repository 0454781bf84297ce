"""Socket activation through systemd-socket-activate: it creates the listening socket, waits for
the first client, then execs the daemon with LISTEN_FDS=1, LISTEN_FDNAMES=rpc and LISTEN_PID.
The real CLI and a raw client then talk to the daemon over that socket, which the daemon neither
created nor removes. Also under a clone3-refusing seccomp filter (what RestrictNamespaces=yes in
the unit does), where workers are forked and moved into the guest's cgroup."""
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from ifbtest import BUILD, NEST_VTD, NOBODY, SMMU, Broker, Cgroup, Client, Skip, as_user, in_cgroup, in_child, run  # noqa: E402

NO_CLONE3 = os.path.join(BUILD, "tests", "helpers", "no-clone3")


class Activated:
    def __init__(self, wrapper=(), vmm=False):
        if not shutil.which("systemd-socket-activate"):
            raise Skip("systemd-socket-activate is not installed")
        self.b = Broker()
        self.b.vmm_socket = os.path.join(self.b.tmp, "vmm.sock") if vmm else None
        listen = ["-l", self.b.socket] + (["-l", self.b.vmm_socket, "--fdname=rpc:vmm"] if vmm else ["--fdname=rpc"])
        self.cmd = ["systemd-socket-activate"] + listen + list(wrapper) + self.b.command()

    def __enter__(self):
        b = self.b
        b.logf = open(b.log, "ab")
        b.proc = subprocess.Popen(self.cmd, stdout=b.logf, stderr=subprocess.STDOUT, env=b.env)
        deadline = time.monotonic() + 10
        while not os.path.exists(b.socket):
            assert b.proc.poll() is None, b.read_log()
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.01)
        return b

    def __exit__(self, *exc):
        if exc[0]:
            sys.stderr.write("---- log ----\n%s\n" % self.b.read_log()[-4000:])
        self.b.stop()


def test_cli_status_through_socket_activate():
    with Activated() as b:
        # Nothing runs but systemd-socket-activate until a client comes.
        assert "Ready on" not in b.read_log()
        r = b.ctl("status", check=0)
        assert "emulated" in r.stdout, r.stdout
        log = b.read_log()
        assert "Ready on socket-activated fd" in log, log
        # the same process (exec, same pid) now serves every client
        info = b.call("broker.info")
        assert info, info
        r = b.ctl("--json", "status", check=0)
        pid_before = b.proc.pid
        assert b.proc.poll() is None and b.proc.pid == pid_before


def test_raw_client_and_guest_under_socket_activation():
    root = Cgroup("sa")
    g = root.child("g")
    try:
        with Activated() as b:
            c = Client(b.socket, timeout=10)
            vm = c.call("vm.create", {"name": "g", "cgroup": g.path, "options": {"handoff": "bound"}})
            assert vm["state"] == "ready", vm
            vm = c.call("vm.attach", {"vm": "g", "devices": NEST_VTD})
            assert all(d["cgroup"] == g.path for d in vm["devices"]), vm
            c.close()
            b.ctl("vm", "destroy", "g", check=0)
            # SIGTERM: the daemon exits cleanly and leaves the socket it did not create
            b.stop()
            assert b.proc.returncode == 0, (b.proc.returncode, b.read_log())
    finally:
        root.remove()


def test_seccomp_fallback_under_socket_activation():
    # RestrictNamespaces=yes answers clone3 with ENOSYS: workers (vforked) are written into
    # the guest's cgroup.procs; every object is still recorded in the guest's cgroup.
    if not os.access(NO_CLONE3, os.X_OK):
        raise Skip("tests/helpers/no-clone3 is not built")
    root = Cgroup("sa-seccomp")
    g = root.child("g")
    try:
        with Activated(wrapper=[NO_CLONE3]) as b:
            info = b.call("broker.info")
            assert info["workers"]["placement"] == "vfork+cgroup.procs", info["workers"]
            b.call("vm.create", {"name": "g", "cgroup": g.path, "options": {"handoff": "bound"}})
            vm = b.call("vm.attach", {"vm": "g", "device": NEST_VTD[0]})
            assert vm["devices"][0]["cgroup"] == g.path, vm
            objs = b.call("vm.show", {"vm": "g"})["context_objects"]
            assert objs and all(o["cgroup"] == g.path for o in objs), objs
    finally:
        root.remove()


def test_vmm_socket_as_the_units_pass_it():
    # The units pass two listening sockets, named rpc and vmm (iommufd-broker-vmm.socket, mode
    # 0666). A VMM of uid nobody in its guest's cgroup, in no group of the broker's, gets its fds
    # through the one named vmm, which the daemon takes for the VMM socket: vm.fds only.
    cg = Cgroup("sa-vmm")
    try:
        with Activated(vmm=True) as b:
            b.call("vm.create", {"name": "q", "cgroup": cg.path})
            b.call("vm.attach", {"vm": "q", "device": SMMU})
            os.chmod(b.vmm_socket, 0o666)   # SocketMode=0666

            def vmm():
                in_cgroup(cg)()
                as_user(NOBODY)
                c = Client(b.vmm_socket)
                reply, fds = c.call_full("vm.fds", {"vm": "q"})
                for fd in fds:
                    os.close(fd)
                return [len(fds), c.error("vm.destroy", {"vm": "q"})["data"]["name"]]
            assert in_child(vmm) == [2, "permission-denied"]
            assert [v["name"] for v in b.call("vm.list")["vms"]] == ["q"]
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_cli_status_through_socket_activate, test_raw_client_and_guest_under_socket_activation,
         test_seccomp_fallback_under_socket_activation, test_vmm_socket_as_the_units_pass_it])
