"""A private libvirtd + virtlogd for the libvirt suite.

Everything runs inside a private mount namespace (the caller re-executes itself under
`unshare -m --propagation private`, see run.sh): fresh tmpfs directories are mounted over
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and
/run/iommufd-broker, so the host's libvirt configuration and state are never touched and
nothing is left behind. libvirtd and virtlogd are started by this script (no systemd)."""
import os
import shutil
import subprocess
import tempfile
import time

DIRS = ["/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt",
        "/run/iommufd-broker"]

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
namespaces = []
stdio_handler = "logd"
"""

LIBVIRTD_CONF = """\
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
"""


def in_private_namespace():
    return os.environ.get("IFB_LIBVIRT_NS") == "1"


def mount_private_dirs():
    """Mount tmpfs over the libvirt directories (only inside the private namespace). libvirt 9.0's
    QEMU driver resolves its built-in default user 'libvirt-qemu' before it reads qemu.conf, and
    that user comes with libvirt-daemon-system (which we do not install: it wants systemd), so
    /etc/passwd and /etc/group get private copies that add it."""
    assert in_private_namespace(), "refusing to mount over /etc/libvirt outside a private mount namespace"
    for d in DIRS:
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "ifb-libvirt-test", d], check=True)
    tmp = tempfile.mkdtemp(prefix="ifb-libvirt-etc-")
    for name, line in (("passwd", "libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n"),
                       ("group", "libvirt-qemu:x:64055:\n")):
        with open("/etc/" + name) as f:
            text = f.read()
        if not any(l.startswith("libvirt-qemu:") for l in text.splitlines()):
            text += line
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
        subprocess.run(["mount", "--bind", os.path.join(tmp, name), "/etc/" + name], check=True)


class Libvirtd:
    def __init__(self, hooks=()):
        """hooks: [(name, source path, extra files {name: text})] copied into qemu.d before start."""
        self.hooks = hooks
        self.procs = []
        self.logdir = tempfile.mkdtemp(prefix="ifb-libvirtd-")

    def write_config(self):
        with open("/etc/libvirt/qemu.conf", "w") as f:
            f.write(QEMU_CONF)
        with open("/etc/libvirt/libvirtd.conf", "w") as f:
            f.write(LIBVIRTD_CONF)
        with open("/etc/libvirt/virtlogd.conf", "w") as f:
            f.write("")
        os.makedirs("/etc/libvirt/hooks/qemu.d", exist_ok=True)

    def install_hook(self, name, src, mode=0o755):
        dst = os.path.join("/etc/libvirt/hooks/qemu.d", name)
        if os.path.basename(src) == "iommufd-broker-hook":
            # a link, so the hook finds its XML half next to it in the build tree (as installed,
            # it finds it in libexecdir)
            os.symlink(os.path.abspath(src), dst)
            return dst
        shutil.copy(src, dst)
        os.chmod(dst, mode)
        return dst

    def start(self):
        self.write_config()
        for h in self.hooks:
            self.install_hook(*h)
        self.vlog = open(os.path.join(self.logdir, "virtlogd.out"), "wb")
        self.procs.append(subprocess.Popen(["virtlogd", "-f", "/etc/libvirt/virtlogd.conf",
                                            "--pid-file", "/run/libvirt/virtlogd.pid"],
                                           stdout=self.vlog, stderr=subprocess.STDOUT))
        try:
            self.start_libvirtd()
        except BaseException:
            self.stop()
            raise
        return self

    def start_libvirtd(self):
        deadline = time.monotonic() + 90   # only catches a hang
        while not os.path.exists("/run/libvirt/virtlogd-sock") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.dlog = open(os.path.join(self.logdir, "libvirtd.out"), "ab")
        self.libvirtd = subprocess.Popen(["libvirtd", "-f", "/etc/libvirt/libvirtd.conf"],
                                         stdout=self.dlog, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120   # only catches a hang
        while time.monotonic() < deadline:
            if self.libvirtd.poll() is not None:
                raise AssertionError("libvirtd exited %s:\n%s" % (self.libvirtd.returncode, self.log()))
            if os.path.exists("/run/libvirt/libvirt-sock"):
                r = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, text=True)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("libvirtd did not come up:\n%s" % self.log())

    def stop_libvirtd(self):
        if self.libvirtd.poll() is None:
            self.libvirtd.terminate()
            try:
                self.libvirtd.wait(20)
            except subprocess.TimeoutExpired:
                self.libvirtd.kill()
                self.libvirtd.wait()
        for p in ("/run/libvirt/libvirt-sock", "/run/libvirt/libvirt-sock-ro", "/run/libvirt/libvirt-admin-sock"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def stop(self):
        # Destroy whatever still runs so no QEMU outlives the suite.
        if getattr(self, "libvirtd", None) and self.libvirtd.poll() is None:
            r = virsh("list", "--name", check=False)
            for name in r.stdout.split():
                virsh("destroy", name, check=False)
            self.stop_libvirtd()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def log(self):
        out = []
        for f in (os.path.join(self.logdir, "libvirtd.out"), "/var/log/libvirt/libvirtd.log"):
            try:
                with open(f, errors="replace") as fh:
                    out.append(fh.read()[-6000:])
            except FileNotFoundError:
                pass
        return "\n".join(out)


def virsh(*args, check=True, timeout=60):
    r = subprocess.run(["virsh", "-c", "qemu:///system"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("virsh %s exited %d:\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r
