"""The installed units: `meson install` into a DESTDIR puts the service, socket, sysusers.d and
tmpfiles.d files where systemd's pkg-config file says; `systemd-analyze verify` accepts them
(with the ExecStart= binary found inside that root) without a single warning; and
`systemd-analyze security --offline=true` scores the service at most 1.2."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from ifbtest import BUILD, Skip, run  # noqa: E402

MAX_EXPOSURE = 1.2
_dest = None


def destdir():
    """Install once into a temporary DESTDIR; returns (root, unit directory inside it)."""
    global _dest
    if _dest:
        return _dest
    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze is not installed")
    root = tempfile.mkdtemp(prefix="ifb-destdir-")
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", root],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "meson install failed:\n%s%s" % (r.stdout, r.stderr)
    found = [dp for dp, _, files in os.walk(root) if "iommufd-broker.service" in files]
    assert len(found) == 1, found
    _dest = (root, found[0])
    return _dest


def installed_unit_dirs():
    """What pkg-config reports (for the /usr prefix this build may not use: check the layout)."""
    def var(v):
        r = subprocess.run(["pkg-config", "--variable=" + v, "systemd"], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    return var("systemdsystemunitdir"), var("sysusersdir"), var("tmpfilesdir")


def test_install_layout():
    root, unitdir = destdir()
    for f in ("iommufd-broker.service", "iommufd-broker.socket", "iommufd-broker-vmm.socket"):
        assert os.path.isfile(os.path.join(unitdir, f)), f
    rel = "/" + os.path.relpath(unitdir, root)
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True,
                                     text=True).stdout)
    prefix = [o["value"] for o in opts if o["name"] == "prefix"][0]
    pc_unitdir, pc_sysusers, pc_tmpfiles = installed_unit_dirs()
    if pc_unitdir and prefix == "/usr":
        assert rel == pc_unitdir, (rel, pc_unitdir)   # exactly where pkg-config says
    elif pc_unitdir:
        assert rel.startswith(prefix + "/"), (rel, prefix)   # re-rooted under another prefix
    sysusers = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if dp.endswith("sysusers.d")]
    tmpfiles = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if dp.endswith("tmpfiles.d")]
    assert [os.path.basename(p) for p in sysusers] == ["iommufd-broker.conf"], sysusers
    assert [os.path.basename(p) for p in tmpfiles] == ["iommufd-broker.conf"], tmpfiles
    with open(sysusers[0]) as f:
        assert re.search(r"^g\s+iommufd-broker\s", f.read(), re.M)
    with open(os.path.join(unitdir, "iommufd-broker.socket")) as f:
        sock = f.read()
    assert "SocketGroup=iommufd-broker" in sock and "SocketMode=0660" in sock
    assert "ListenStream=/run/iommufd-broker/rpc.sock" in sock
    # the VMM socket: anyone may connect (libvirt's QEMU user is in no group of ours), the daemon
    # knows it by its name and serves it vm.fds only; the service gets both sockets
    with open(os.path.join(unitdir, "iommufd-broker-vmm.socket")) as f:
        vmm = f.read()
    for key in ("ListenStream=/run/iommufd-broker/vmm.sock", "FileDescriptorName=vmm", "SocketMode=0666",
                "Service=iommufd-broker.service"):
        assert re.search("^" + re.escape(key) + "$", vmm, re.M), key
    with open(os.path.join(unitdir, "iommufd-broker.service")) as f:
        svc = f.read()
    m = re.search(r"^ExecStart=(\S+)", svc, re.M)
    assert m and os.access(root + m.group(1), os.X_OK), "ExecStart=%s not installed under %s" % (m and m.group(1), root)
    for key in ("Type=notify", "NotifyAccess=main", "Restart=on-failure", "RuntimeDirectory=iommufd-broker",
                "RuntimeDirectoryPreserve=yes", "RestrictNamespaces=yes", "DevicePolicy=closed",
                "DeviceAllow=/dev/iommu rw", "DeviceAllow=char-vfio-dev rw", "CapabilityBoundingSet=CAP_SYS_RESOURCE",
                "Sockets=iommufd-broker.socket iommufd-broker-vmm.socket"):
        assert re.search("^" + re.escape(key) + "$", svc, re.M), key
    assert not re.search(r"^ProtectControlGroups=(yes|true|1)", svc, re.M)
    store = int(re.search(r"^FileDescriptorStoreMax=(\d+)", svc, re.M).group(1))
    # the daemon's default limits fit in the store: max-vms * (1 + max-devices-per-vm)
    cfg = open(os.path.join(HERE, "..", "..", "daemon", "base", "config.c")).read()
    vms = int(re.search(r"c->max_vms = (\d+);", cfg).group(1))
    devs = int(re.search(r"c->max_devices_per_vm = (\d+);", cfg).group(1))
    assert vms * (1 + devs) <= store, (vms, devs, store)
    nofile = int(re.search(r"^LimitNOFILE=(\d+)", svc, re.M).group(1))
    assert nofile > store, (nofile, store)


def test_managed_devices_writable_in_the_sandbox():
    # What the rebind worker writes for a managed device (daemon/workers/rebind.c: driver_override,
    # a driver's unbind, drivers_probe; /sys/bus/pci/devices/BDF links into /sys/devices) stays
    # writable under the unit: ProtectKernelTunables= makes /sys read-only, so ReadWritePaths= must
    # give those subtrees back (a tunables-protected /sys refused every managed start with EROFS).
    root, unitdir = destdir()
    with open(os.path.join(unitdir, "iommufd-broker.service")) as f:
        svc = f.read()
    with open(os.path.join(HERE, "..", "..", "daemon", "workers", "rebind.c")) as f:
        rebind = f.read()
    written = re.findall(r'"(bus/pci/[^"]*)"', rebind)
    assert {"bus/pci/devices/%s/driver_override", "bus/pci/devices/%s/driver/unbind",
            "bus/pci/drivers_probe"} <= set(written), written
    if not re.search(r"^ProtectKernelTunables=(yes|true|1)$", svc, re.M):
        return
    rw = [p.lstrip("-") for line in re.findall(r"^ReadWritePaths=(.*)$", svc, re.M) for p in line.split()]
    real = {"bus/pci/devices/%s/driver_override": "/sys/devices/pci0000:00/0000:00:03.0/driver_override",
            "bus/pci/devices/%s/driver/unbind": "/sys/bus/pci/drivers/e1000e/unbind",
            "bus/pci/drivers_probe": "/sys/bus/pci/drivers_probe"}
    for attr, path in real.items():
        assert any(path.startswith(p.rstrip("/") + "/") for p in rw), \
            "%s (%s) is read-only under ProtectKernelTunables=; ReadWritePaths=%s" % (attr, path, " ".join(rw))


def test_bound_dev_directories_exist_before_the_service():
    # A directory the unit binds into its private /dev (BindPaths=-/dev/vfio) must exist when the
    # service starts, or it is skipped and a cdev made later (a managed device bound to vfio-pci
    # after the broker started) never appears to the broker: tmpfiles.d makes it. Without, the
    # full-stack tier's managed start timed out waiting for the cdev.
    root, unitdir = destdir()
    with open(os.path.join(unitdir, "iommufd-broker.service")) as f:
        svc = f.read()
    tmpfiles = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if dp.endswith("tmpfiles.d")]
    with open(tmpfiles[0]) as f:
        made = re.findall(r"^d\s+(\S+)\s", f.read(), re.M)
    bound = [p.lstrip("-").split(":")[0] for line in re.findall(r"^BindPaths=(.*)$", svc, re.M) for p in line.split()]
    dirs = [p for p in bound if p.startswith("/dev/") and p != "/dev/iommu"]
    assert "/dev/vfio" in dirs, bound
    for d in dirs:
        assert d in made, "%s is bound into the unit's /dev but no tmpfiles.d line makes it: %s" % (d, made)


def verify_root():
    """systemd-analyze verify --root= needs the targets and slices the units refer to, and finds
    ExecStart= inside the root: the DESTDIR plus copies of the host's targets and slices."""
    root, unitdir = destdir()
    host = "/lib/systemd/system" if os.path.isdir("/lib/systemd/system") else "/usr/lib/systemd/system"
    for f in os.listdir(host):
        if f.endswith((".target", ".slice")) and not os.path.exists(os.path.join(unitdir, f)):
            shutil.copy2(os.path.join(host, f), unitdir, follow_symlinks=False)
    return root


def test_verify():
    root = verify_root()
    r = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "iommufd-broker.service",
                        "iommufd-broker.socket", "iommufd-broker-vmm.socket"], capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, "systemd-analyze verify (rc %d):\n%s" % (r.returncode, out)


def test_verify_catches_a_broken_unit():
    # The check above is worth something only if verify really reads those files.
    root = verify_root()
    _, unitdir = destdir()
    bad = os.path.join(unitdir, "iommufd-broker-broken.service")
    with open(os.path.join(unitdir, "iommufd-broker.service")) as f:
        text = f.read().replace("WatchdogSec=", "WatchdogSecc=")
    with open(bad, "w") as f:
        f.write(text.replace("ExecStart=", "ExecStart=/nonexistent"))
    try:
        r = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "iommufd-broker-broken.service"],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        assert "WatchdogSecc" in out and "nonexistent" in out, out
    finally:
        os.unlink(bad)


def test_security_exposure():
    root, unitdir = destdir()
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--root=" + root, "--no-pager",
                        "iommufd-broker.service"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SYSTEMD_COLORS="0"))
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for iommufd-broker\.service:\s*([0-9]+\.[0-9])", out)
    assert m, "no exposure level in:\n%s" % out
    score = float(m.group(1))
    bad = [line.strip() for line in out.splitlines() if line.startswith(("✗", "x "))]
    print("exposure %.1f; remaining:\n  %s" % (score, "\n  ".join(bad)))
    assert score <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (score, MAX_EXPOSURE, out)


if __name__ == "__main__":
    run([test_install_layout, test_managed_devices_writable_in_the_sandbox,
         test_bound_dev_directories_exist_before_the_service, test_verify, test_verify_catches_a_broken_unit, test_security_exposure])
