"""iommufdctl against the real daemon: status, devices (exactly the devices of the emulated sysfs
tree it was started on, compared with the directory listing), --json, exit codes 0/1/2, error
messages that name what was wrong, IOMMUFD_BROKER_SOCKET, and a refused connection; the global
options anywhere on the line, --version, `help CMD`, errors before usage; and the build-tree
daemon starting on its built-in emulated devices with nothing but where to listen."""
import json
import os
import shutil
import socket
import subprocess
import tempfile

from ifbtest import (CTL, DAEMON, NEST_VTD, NO_NEST_VTD, NOT_VFIO, SMMU, TEMPLATE, Broker, Cgroup, Skip, as_user, run,
                     wait_until)

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
        # the configuration key does the same as the option, over the built-in set
        conf = os.path.join(tmp, "broker.conf")
        with open(conf, "w") as f:
            f.write("[broker]\nemulated-template=%s\n" % copy)
        sock = os.path.join(tmp, "conf.sock")
        proc = subprocess.Popen([DAEMON, "--socket", sock, "--runtime-dir", os.path.join(tmp, "run"), "--config", conf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: os.path.exists(sock) or proc.poll() is not None, "the daemon to listen", every=0.01)
            r = ctl_raw("--socket", sock, "--json", "devices")
            assert r.returncode == 0, r.stderr
            got = sorted(d["device"] for d in json.loads(r.stdout)["devices"])
            assert got == want, (got, want)
        finally:
            proc.terminate()
            proc.wait(10)
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


def test_global_options_anywhere():
    # --json and --socket work before, between and after the command's own arguments, as in
    # systemctl and virsh; "--" and exec's VMM command line are left alone.
    cg = Cgroup("cliglobal")
    try:
        with Broker() as b:
            want = json.loads(ctl_raw("--socket", b.socket, "--json", "devices").stdout)
            for args in (["devices", "--json", "--socket", b.socket], ["devices", "--socket=" + b.socket, "--json"],
                         ["--json", "devices", "--socket", b.socket]):
                r = ctl_raw(*args)
                assert r.returncode == 0, (args, r.stderr)
                assert json.loads(r.stdout) == want, args
            r = ctl_raw("vm", "create", "g1", "--json", "--cgroup", cg.path, "--socket", b.socket)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["name"] == "g1", r.stdout
            r = ctl_raw("vm", "list", "--socket", b.socket, "--json")
            assert [v["name"] for v in json.loads(r.stdout)["vms"]] == ["g1"], r.stdout
            r = ctl_raw("vm", "show", "g1", "--json", "--socket", b.socket)
            assert json.loads(r.stdout)["name"] == "g1", r.stdout
            # exec: --json after the VMM's first word is the VMM's, and so is anything after "--"
            r = ctl_raw("--socket", b.socket, "exec", "--vm", "g1", "--", "/bin/echo", "--json", "--socket", "x")
            assert r.returncode == 0, r.stderr
            assert r.stdout == "--json --socket x\n", r.stdout
            r = ctl_raw("exec", "--socket", b.socket, "--vm", "g1", "/bin/echo", "--version", "%{iommufd}")
            assert r.returncode == 0, r.stderr
            words = r.stdout.split()
            assert words[0] == "--version" and words[1].isdigit(), r.stdout
            b.ctl("vm", "destroy", "g1", check=0)
    finally:
        cg.remove()


def test_version_and_help():
    with Broker() as b:
        version = b.call("broker.info")["version"]
        for args in (["--version"], ["status", "--version"], ["vm", "list", "--version"]):
            r = ctl_raw(*args)
            assert r.returncode == 0 and r.stdout == "iommufdctl %s\n" % version, (args, r.stdout, r.stderr)
        top = ctl_raw("--help")
        assert top.returncode == 0 and ctl_raw("help").stdout == top.stdout and "Commands:" in top.stdout
        for cmd in ("status", "devices", "vm", "events", "metrics", "exec", "help"):
            assert "\n  %s " % cmd in top.stdout, (cmd, top.stdout)
            r = ctl_raw("help", cmd)
            assert r.returncode == 0 and r.stdout.startswith("Usage: iommufdctl " + cmd), (cmd, r.stdout)
            assert r.stderr == "", r.stderr
            # CMD --help prints the same text
            assert ctl_raw(cmd, "--help").stdout == r.stdout, cmd
        assert "vm create NAME" in ctl_raw("help", "vm").stdout
        assert "--vm-from-argv" in ctl_raw("help", "exec").stdout


def test_errors_before_usage():
    # A usage error: the reason first on stderr, then the usage of what was wrong; nothing on stdout.
    with Broker() as b:
        for args, first, usage in [(["vm", "frob"], "iommufdctl: vm: unknown subcommand 'frob'", "Usage: iommufdctl vm list"),
                                   (["vm", "create"], "iommufdctl: vm create: missing NAME", "Usage: iommufdctl vm list"),
                                   (["devices", "x"], "iommufdctl: devices takes no arguments", "Usage: iommufdctl devices"),
                                   (["exec", "--vm", "g"], "iommufdctl: exec: missing CMD", "Usage: iommufdctl exec"),
                                   (["help", "frob"], "iommufdctl: help: unknown command 'frob'", "Usage: iommufdctl help"),
                                   (["frob"], "iommufdctl: unknown command 'frob'", "Usage: iommufdctl [--socket PATH]"),
                                   (["--frob"], "iommufdctl: unknown option '--frob'", "Usage: iommufdctl [--socket PATH]")]:
            r = b.ctl(*args, check=2)
            lines = r.stderr.splitlines()
            assert lines[0] == first, (args, r.stderr)
            assert usage in r.stderr and r.stderr.index(usage) > len(first), (args, r.stderr)
            assert r.stdout == "", (args, r.stdout)


def test_build_tree_daemon_needs_no_flags():
    # The daemon from the build tree, told nothing but where to listen: it finds no /dev/iommu,
    # picks the emulated backend and serves the device set built into it, which is the fixture
    # tree. Its default runtime dir, /run/iommufd-broker, is a fresh tmpfs in a mount namespace of
    # its own (unshare -m: same pid, exec'd in place), so this test leaves the host's alone; we
    # look at it through /proc/PID/root.
    if os.path.exists("/dev/iommu"):
        raise Skip("/dev/iommu exists here, so the daemon would rightly pick the kernel backend")
    help_text = subprocess.run([DAEMON, "--help"], capture_output=True, text=True).stdout
    config_default = help_text.split("Configuration file (default ")[1].split(")")[0]
    assert config_default.startswith("/"), help_text
    if os.path.exists(config_default):
        raise Skip("%s exists here and would configure the daemon" % config_default)
    tmp = tempfile.mkdtemp(prefix="ifbcli-")
    sock = os.path.join(tmp, "rpc.sock")
    if not shutil.which("unshare"):
        raise Skip("unshare (util-linux) is missing: tools/install-deps test")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                             'mount -t tmpfs ifbtest /run && exec "$0" --socket "$1"', DAEMON, sock],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: os.path.exists(sock) or proc.poll() is not None, "the daemon to listen", every=0.01)
        assert proc.poll() is None, proc.stdout.read().decode()
        # its emulated root is the fixture tree, byte for byte, before any call probes a device
        # (the emulator keeps its live state in the device files)
        root = "/proc/%d/root/run/iommufd-broker/emulated" % proc.pid
        for dirpath, _, files in os.walk(TEMPLATE):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), TEMPLATE)
                if os.path.islink(os.path.join(TEMPLATE, rel)):
                    assert os.readlink(os.path.join(TEMPLATE, rel)) == os.readlink(os.path.join(root, rel)), rel
                    continue
                with open(os.path.join(TEMPLATE, rel), "rb") as a, open(os.path.join(root, rel), "rb") as c:
                    assert a.read() == c.read(), rel
        r = ctl_raw("--socket", sock, "--json", "status")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["backend"] == "emulated" and "absent" in info["backend_reason"], info
        r = ctl_raw("--socket", sock, "--json", "devices")
        got = sorted(d["device"] for d in json.loads(r.stdout)["devices"])
        assert got == fixture_bdfs(), got
        assert info["emulated_root"] == "/run/iommufd-broker/emulated", info
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    run([test_status, test_devices_are_the_fixture_tree, test_devices_follow_the_tree_not_a_list,
         test_owner_shows_in_devices, test_exit_codes_and_messages, test_permission_denied_names_uid,
         test_socket_from_environment, test_connection_refused_and_missing_socket, test_daemon_gone_mid_session,
         test_global_options_anywhere, test_version_and_help, test_errors_before_usage,
         test_build_tree_daemon_needs_no_flags])
