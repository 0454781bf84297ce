"""iommufdctl against the real daemon: status, devices (exactly the devices of the emulated sysfs
tree it was started on, compared with the directory listing), --json, exit codes 0/1/2, error
messages that name what was wrong, IOMMUFD_BROKER_SOCKET, and a refused connection."""
import json
import os
import shutil
import socket
import subprocess
import tempfile

from ifbtest import CTL, NEST_VTD, NO_NEST_VTD, NOT_VFIO, SMMU, TEMPLATE, Broker, Cgroup, as_user, run

NOBODY = 65534


def fixture_bdfs(template=TEMPLATE):
    return sorted(os.listdir(os.path.join(template, "sys", "bus", "pci", "devices")))


def ctl_raw(*args, env=None, user=None):
    e = dict(os.environ)
    e.pop("IOMMUFD_BROKER_SOCKET", None)
    e.update(env or {})
    return subprocess.run([CTL] + list(args), capture_output=True, text=True, timeout=30, env=e,
                          preexec_fn=(lambda: as_user(user)) if user else None)


def table(stdout):
    """Rows of an aligned table as lists of cells, header first."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    return [l.split() for l in lines]


def test_status():
    with Broker(config="[limits]\nmax-frame=65536\nmax-connections=77\n") as b:
        info = b.call("broker.info")
        r = b.ctl("status", check=0)
        assert r.stderr == "", r.stderr
        fields = dict(l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        assert fields["Version"] == info["version"], fields
        assert fields["Backend"].startswith("emulated"), fields
        assert "frame 65536 bytes" in fields["Limits"] and "77 connections" in fields["Limits"], fields
        assert fields["Guests"].startswith("0 "), fields
        j = b.ctl("--json", "status", check=0)
        doc = json.loads(j.stdout)
        assert doc["version"] == info["version"] and doc["backend"] == "emulated", doc
        assert doc["limits"]["max_frame"] == 65536 and doc["limits"]["max_connections"] == 77, doc["limits"]


def test_devices_are_the_fixture_tree():
    # The table and --json list exactly the devices of the fixture's sys/bus/pci/devices.
    want = fixture_bdfs()
    assert len(want) >= 5 and NOT_VFIO in want
    with Broker() as b:
        r = b.ctl("devices", check=0)
        rows = table(r.stdout)
        header = rows[0]
        assert header[:2] == ["DEVICE", "DRIVER"] and "NEST" in header, header
        got = sorted(row[0] for row in rows[1:])
        assert got == want, (got, want)
        nest = header.index("NEST")
        by_bdf = {row[0]: row for row in rows[1:]}
        assert by_bdf[NO_NEST_VTD][nest] == "no" and by_bdf[NEST_VTD[0]][nest] == "yes", by_bdf
        assert by_bdf[SMMU][nest] == "yes", by_bdf
        j = json.loads(b.ctl("--json", "devices", check=0).stdout)
        devs = {d["device"]: d for d in j["devices"]}
        assert sorted(devs) == want, sorted(devs)
        assert devs[NOT_VFIO]["driver"] != "vfio-pci" and not devs[NOT_VFIO].get("cdev"), devs[NOT_VFIO]
        assert devs[NEST_VTD[0]]["driver"] == "vfio-pci" and devs[NEST_VTD[0]]["cdev"], devs[NEST_VTD[0]]
        assert by_bdf[NEST_VTD[0]][header.index("DRIVER")] == "vfio-pci"


def test_devices_follow_the_tree_not_a_list():
    # Remove a device from a copy of the fixture tree: the daemon started on that copy no longer
    # lists it, so the list comes from the tree.
    tmp = tempfile.mkdtemp(prefix="ifbcli-")
    try:
        copy = os.path.join(tmp, "emulated")
        shutil.copytree(TEMPLATE, copy, symlinks=True)
        shutil.rmtree(os.path.join(copy, "sys", "bus", "pci", "devices", NOT_VFIO))
        want = fixture_bdfs(copy)
        assert NOT_VFIO not in want and len(want) == len(fixture_bdfs()) - 1
        with Broker(args=["--emulated-template", copy]) as b:
            got = sorted(row[0] for row in table(b.ctl("devices", check=0).stdout)[1:])
            assert got == want, (got, want)
            got = sorted(d["device"] for d in json.loads(b.ctl("--json", "devices", check=0).stdout)["devices"])
            assert got == want, (got, want)
    finally:
        shutil.rmtree(tmp)


def test_owner_shows_in_devices():
    cg = Cgroup("cliowner")
    try:
        with Broker() as b:
            b.ctl("vm", "create", "g1", "--cgroup", cg.path, check=0)
            b.ctl("vm", "attach", "g1", SMMU, check=0)
            rows = table(b.ctl("devices", check=0).stdout)
            owner = rows[0].index("OWNER")
            by_bdf = {row[0]: row for row in rows[1:]}
            assert by_bdf[SMMU][owner] == "g1", by_bdf[SMMU]
            assert by_bdf[NEST_VTD[0]][owner] == "-", by_bdf[NEST_VTD[0]]
            vms = json.loads(b.ctl("--json", "vm", "list", check=0).stdout)
            assert [v["name"] for v in vms["vms"]] == ["g1"], vms
            b.ctl("vm", "destroy", "g1", check=0)
    finally:
        cg.remove()


def test_exit_codes_and_messages():
    cg = Cgroup("cliexit")
    try:
        with Broker() as b:
            # 2: usage, and the message names what was wrong
            for args, what in [(["bogus"], "unknown command 'bogus'"), (["--bogus", "status"], "unknown option '--bogus'"),
                               (["devices", "extra"], "devices takes no arguments"),
                               (["status", "now"], "status takes no arguments"), ([], "Usage:"),
                               (["vm", "attach"], "vm attach")]:
                r = b.ctl(*args, check=2)
                assert what in r.stderr, (args, r.stderr)
                assert r.stdout == "", (args, r.stdout)
            # 1: the call failed; the message names the method, the object and the error name
            r = b.ctl("vm", "show", "nosuchguest", check=1)
            assert "nosuchguest" in r.stderr and "no-such-vm" in r.stderr, r.stderr
            b.ctl("vm", "create", "g", "--cgroup", cg.path, "--handoff", "bound", check=0)
            r = b.ctl("vm", "attach", "g", NO_NEST_VTD, check=1)
            assert NO_NEST_VTD in r.stderr and "nest-unsupported" in r.stderr and "EOPNOTSUPP" in r.stderr, r.stderr
            r = b.ctl("vm", "create", "g", "--cgroup", cg.path, check=1)
            assert "vm-exists" in r.stderr, r.stderr
            b.ctl("vm", "destroy", "g", check=0)
            # 0 with --help, which goes to stdout
            r = b.ctl("--help", check=0)
            assert "Exit status: 0 ok, 1 the call failed, 2 usage error." in r.stdout, r.stdout
    finally:
        cg.remove()


def test_permission_denied_names_uid():
    with Broker() as b:
        os.chmod(b.tmp, 0o711)
        os.chmod(b.socket, 0o666)
        r = b.ctl("status", user=NOBODY, check=1)
        assert "Permission denied" in r.stderr and "permission-denied" in r.stderr and str(NOBODY) in r.stderr, r.stderr


def test_socket_from_environment():
    with Broker() as b:
        r = ctl_raw("--json", "status", env={"IOMMUFD_BROKER_SOCKET": b.socket})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["backend"] == "emulated"
        # --socket wins over the environment
        r = ctl_raw("--socket", b.socket, "status", env={"IOMMUFD_BROKER_SOCKET": "/nonexistent/env.sock"})
        assert r.returncode == 0, r.stderr
        r = ctl_raw("--socket=" + b.socket, "devices")
        assert r.returncode == 0, r.stderr
        # the environment is really used: pointing it elsewhere fails naming that path
        r = ctl_raw("status", env={"IOMMUFD_BROKER_SOCKET": "/nonexistent/env.sock"})
        assert r.returncode == 1 and "/nonexistent/env.sock" in r.stderr, r.stderr


def test_connection_refused_and_missing_socket():
    tmp = tempfile.mkdtemp(prefix="ifbcli-")
    try:
        path = os.path.join(tmp, "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)   # bound, never listening: connect() is refused
        r = ctl_raw("--socket", path, "status")
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert path in r.stderr and "Connection refused" in r.stderr, r.stderr
        assert r.stderr.startswith("iommufdctl: "), r.stderr
        s.close()
        missing = os.path.join(tmp, "missing.sock")
        r = ctl_raw("--socket", missing, "devices")
        assert r.returncode == 1 and missing in r.stderr and "No such file or directory" in r.stderr, r.stderr
        r = ctl_raw("--json", "--socket", missing, "status")
        assert r.returncode == 1 and r.stdout == "", r.stdout
    finally:
        shutil.rmtree(tmp)


def test_daemon_gone_mid_session():
    # The broker stops between two commands: the second fails with exit 1, naming the socket.
    b = Broker().start()
    try:
        b.ctl("status", check=0)
    finally:
        b.stop()
    r = b.ctl("status", check=1)
    assert b.socket in r.stderr, r.stderr


if __name__ == "__main__":
    run([test_status, test_devices_are_the_fixture_tree, test_devices_follow_the_tree_not_a_list,
         test_owner_shows_in_devices, test_exit_codes_and_messages, test_permission_denied_names_uid,
         test_socket_from_environment, test_connection_refused_and_missing_socket, test_daemon_gone_mid_session])
