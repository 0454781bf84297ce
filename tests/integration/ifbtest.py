"""Shared harness for the integration tests: the real daemon binary on a private socket, raw
JSON-RPC clients with fd passing, the real CLI, temporary cgroup2 directories, and a tiny test
runner whose closing line is 'N passed, N failed, N skipped'.

Paths come from the environment meson sets: IFB_BUILD_DIR, IFB_SOURCE_DIR."""
import array
import glob
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("IFB_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("IFB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DAEMON = os.path.join(BUILD, "daemon", "iommufd-brokerd")
CTL = os.path.join(BUILD, "client", "iommufdctl")
TEMPLATE = os.path.join(SOURCE, "tests", "fixtures", "emulated")

# Valgrind makes start-up and shutdown (leak check) slow.
STOP_TIMEOUT = 120 if os.environ.get("IFB_DAEMON_WRAPPER") else 10

# No test depends on how fast the machine is (issue 27): a test waits for an event or a state
# and asserts what the daemon did, never how long it took. HANG is the deadline of such a wait:
# it only catches a daemon (or test) that hangs, so it is far beyond anything a slow machine,
# ASan or valgrind (IFB_DAEMON_WRAPPER: ~50x slower) can cost; a passing test never waits it out.
# (IFB_TEST_HANG overrides it: to see a test fail quickly on a deliberately broken daemon.)
HANG = float(os.environ.get("IFB_TEST_HANG") or (600 if os.environ.get("IFB_DAEMON_WRAPPER") else 90))


def wait_until(pred, what, timeout=HANG, every=0.02):
    """pred()'s first true value, polled until it comes; an AssertionError naming what was awaited
    (and pred's last value) once timeout seconds have passed: a hang, not a slow machine."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("waited %g s for %s (a hang): last %r" % (timeout, what, got))
        time.sleep(every)


def children(pid):
    """The pids of pid's children (the daemon's: its workers)."""
    out = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def workers(pid):
    """The pids of pid's children that run the worker program (the daemon's workers once they have
    exec'd). Only these may be stopped: the daemon vfork()s a worker and is suspended until the
    child execs, so stopping a child before its exec would stop the daemon with it."""
    out = []
    for c in children(pid):
        try:
            if os.readlink("/proc/%d/exe" % c).endswith("/iommufd-broker-worker"):
                out.append(c)
        except OSError:   # gone meanwhile
            pass
    return out


def freeze(cg, frozen=True):
    """cgroup.freeze: a guest's worker moves itself into the guest's cgroup first thing, so in a
    frozen one it cannot end until thawed (or killed): a worker held as long as a test needs,
    whatever the machine's speed."""
    with open(cg.full + "/cgroup.freeze", "w") as f:
        f.write("1" if frozen else "0")


def proc_fd_targets(pid):
    """What each of pid's fds points to, {fd: target}. An fd closed between the listing of
    /proc/PID/fd and the reading of its link is simply not there (the daemon closes fds as it
    goes: a test reading them races it, and must not fail for that)."""
    d = "/proc/%d/fd" % pid
    out = {}
    for fd in os.listdir(d):
        try:
            out[int(fd)] = os.readlink(os.path.join(d, fd))
        except FileNotFoundError:
            continue
    return out

NEST_VTD = ["0000:65:00.0", "0000:66:00.0"]   # VT-d that can nest
NO_NEST_VTD = "0000:67:00.0"
SMMU = "0000:0a:00.0"
NOT_VFIO = "0000:00:19.0"


class Skip(Exception):
    pass


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                return parts[1]
    raise Skip("no cgroup2 hierarchy mounted")


class Cgroup:
    """A temporary cgroup2 directory; path is relative to the cgroup2 mount."""

    def __init__(self, name=None):
        self.mount = cgroup2_mount()
        self.path = "/ifbtest-%d-%s" % (os.getpid(), name or "%x" % int(time.monotonic_ns()))
        self.full = self.mount + self.path
        if os.path.isdir(self.full):
            # left by an earlier run whose pid this one reuses (a killed test): nothing can be
            # running in it under our pid's name, so it goes
            self.remove()
        os.mkdir(self.full)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def child(self, name):
        c = Cgroup.__new__(Cgroup)
        c.mount, c.path, c.full = self.mount, self.path + "/" + name, self.full + "/" + name
        os.mkdir(c.full)
        return c

    def procs(self):
        with open(self.full + "/cgroup.procs") as f:
            return [int(x) for x in f.read().split()]

    def remove(self):
        for root, dirs, _ in os.walk(self.full, topdown=False):
            for d in dirs:
                _rmcg(os.path.join(root, d))
        _rmcg(self.full)


def _rmcg(path):
    try:
        with open(path + "/cgroup.procs") as f:
            for pid in f.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    except FileNotFoundError:
        return
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.02)


class Client:
    """A raw JSON-RPC client on the broker's socket."""

    def __init__(self, path, timeout=HANG):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.fds = []
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send_raw(self, data, fds=()):
        if fds:
            socket.send_fds(self.sock, [data[:1]], list(fds))
            data = data[1:]
        if data:
            self.sock.sendall(data)

    def recv_line(self):
        """One reply line: (text, [fds]). fds belong to the line their chunk's first byte is in."""
        while b"\n" not in self.buf:
            data, fds, flags, _ = socket.recv_fds(self.sock, 65536, 64)
            if not data:
                raise EOFError("broker closed the connection")
            if fds:
                self.fds.append((len(self.buf), fds))
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        mine = [f for off, fl in self.fds if off <= len(line) for f in fl]
        self.fds = [(off - len(line) - 1, fl) for off, fl in self.fds if off > len(line)]
        return line.decode(), mine

    def recv(self):
        line, fds = self.recv_line()
        return json.loads(line), fds

    def request(self, method, params=None, id=None, fds=()):
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            msg["params"] = params
        self.send_raw((json.dumps(msg) + "\n").encode(), fds)
        return id

    def call_full(self, method, params=None, fds=()):
        self.request(method, params, fds=fds)
        return self.recv()

    def call(self, method, params=None, fds=()):
        """The result; raises RpcError on an error reply. Received fds are closed."""
        reply, rfds = self.call_full(method, params, fds)
        for fd in rfds:
            os.close(fd)
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]

    def error(self, method, params=None, fds=()):
        """The error object of a call expected to fail."""
        reply, rfds = self.call_full(method, params, fds)
        for fd in rfds:
            os.close(fd)
        assert "error" in reply, "%s unexpectedly succeeded: %r" % (method, reply)
        return reply["error"]


class RpcError(Exception):
    def __init__(self, err):
        super().__init__("%s (%s)" % (err.get("message"), err.get("data", {}).get("name")))
        self.err = err
        self.name = err.get("data", {}).get("name")
        self.errno = err.get("data", {}).get("errno")


class Broker:
    """The real daemon on a private socket and runtime dir."""

    def __init__(self, backend="emulated", config="", env=None, args=(), runtime_dir=None, preexec=None,
                 template=TEMPLATE):
        self.tmp = tempfile.mkdtemp(prefix="ifbtest-")
        os.chmod(self.tmp, 0o755)   # peers run as other uids too; the socket's mode decides
        self.socket = os.path.join(self.tmp, "rpc.sock")
        self.runtime_dir = runtime_dir or os.path.join(self.tmp, "run")
        self.config = os.path.join(self.tmp, "broker.conf")
        with open(self.config, "w") as f:
            if "socket-mode" not in config:
                f.write("[broker]\nsocket-mode=0666\n")
            f.write(config)
        self.log = os.path.join(self.tmp, "daemon.log")
        self.backend = backend
        self.env = dict(os.environ, **(env or {}))
        self.args = list(args)
        self.preexec = preexec
        self.template = template
        self.proc = None
        self.exit_checked = False

    def command(self):
        # IFB_DAEMON_WRAPPER (tools/check's valgrind pass) prefixes the daemon, e.g. "valgrind
        # --error-exitcode=99 ..."; stop() then fails the test on a non-zero exit (see check_exit).
        wrapper = shlex.split(os.environ.get("IFB_DAEMON_WRAPPER", ""))
        if wrapper and os.path.basename(wrapper[0]) == "valgrind":
            # One log per process: workers fork and _exit() with our heap, so only the daemon's
            # own log may report leaks (tools/valgrind-check.py, run by check_exit()).
            wrapper.append("--log-file=%s/valgrind.%%p" % self.tmp)
        return wrapper + [DAEMON, "--socket", self.socket, "--runtime-dir", self.runtime_dir, "--backend", self.backend,
                "--emulated-template", self.template, "--config", self.config] + self.args

    def start(self, wait=True, pass_fds=()):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=subprocess.STDOUT, env=self.env,
                                     pass_fds=pass_fds, preexec_fn=self.preexec)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=HANG):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                c = Client(self.socket)
                c.close()
                return
            except OSError:
                time.sleep(0.01)
        raise AssertionError("daemon did not listen within %ss:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def client(self):
        return Client(self.socket)

    def call(self, method, params=None):
        c = self.client()
        try:
            return c.call(method, params)
        finally:
            c.close()

    def ctl(self, *args, check=None, user=None, env=None):
        """Run the real CLI; check=N asserts the exit status."""
        cmd = [CTL, "--socket", self.socket] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env,
                           preexec_fn=(lambda: as_user(user)) if user else None)
        if check is not None and r.returncode != check:
            raise AssertionError("%s exited %d (wanted %d)\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, check, r.stdout, r.stderr))
        return r

    def open_fds(self, client=None, connections=1):
        """The daemon's open fds once it is quiet: it counts exactly `connections` connections
        (client's, or one of our own made for the asking, included) and no worker runs or waits.
        Connections that clients closed are reaped when the daemon reads their EOF, at its own
        pace: this waits for that state instead of for a while, so a slow daemon is counted
        late, never wrong (the daemon closes a connection's fds as it drops it from the count)."""
        c = client or self.client()
        try:
            def quiet():
                info = c.call("broker.info")
                return (info["counts"]["connections"] == connections and info["workers"]["running"] == 0
                        and info["workers"]["waiting"] == 0)
            wait_until(quiet, "the daemon to hold %d connection(s) and run no worker" % connections)
            return len(os.listdir("/proc/%d/fd" % self.proc.pid))
        finally:
            if client is None:
                c.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if sig == signal.SIGTERM:
                self.check_exit()
        return self.proc.returncode if self.proc else None

    def check_exit(self):
        """Under IFB_CHECK_DAEMON_EXIT (tools/check's ASan and valgrind passes) a daemon we stopped
        with SIGTERM must exit 0: a sanitizer's leak report or valgrind's --error-exitcode
        otherwise fails the test that ran it, with the report from the daemon's log."""
        if not os.environ.get("IFB_CHECK_DAEMON_EXIT") or self.exit_checked:
            return
        self.exit_checked = True
        if self.proc.returncode != 0:
            raise AssertionError("daemon exited with %s after SIGTERM (sanitizer/valgrind report?):\n%s"
                                 % (self.proc.returncode, self.read_log()[-6000:]))
        if glob.glob(os.path.join(self.tmp, "valgrind.*")):
            r = subprocess.run([sys.executable, os.path.join(SOURCE, "tools", "valgrind-check.py"), self.tmp,
                                str(self.proc.pid)], capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError("valgrind reports:\n" + r.stderr[-8000:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL if exc[0] else signal.SIGTERM)
        if exc[0]:
            sys.stderr.write("---- daemon log ----\n%s\n" % self.read_log()[-4000:])


def read_state(runtime_dir):
    """The daemon's saved registry: {"version": N, "vms": [...]} from guests/<uuid>.json, by name;
    also checks that no temp file of an atomic write is left behind."""
    d = os.path.join(runtime_dir, "guests")
    vms, versions = [], set()
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        assert not name.endswith(".tmp"), "a state write left %s behind" % name
        with open(os.path.join(d, name)) as f:
            doc = json.load(f)
        assert name == doc["vm"]["uuid"] + ".json", name
        versions.add(doc["version"])
        vms.append(doc["vm"])
    return {"version": versions.pop() if len(versions) == 1 else (1 if not versions else versions),
            "vms": sorted(vms, key=lambda v: v["name"])}


def as_user(uid, gid=None):
    os.setgroups([])
    os.setgid(gid if gid is not None else uid)
    os.setuid(uid)


def in_child(fn):
    """fn() run in a forked child; what it returned (a JSON-able value), or {"exception": repr}
    when it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except BaseException as e:   # noqa: B902 - reported to the parent
            out = {"exception": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    return read_child_json(pid, r)


def read_child_json(pid, r):
    """What a forked child wrote to the pipe r as JSON, once it has exited (r is closed)."""
    data = b""
    while True:
        d = os.read(r, 65536)
        if not d:
            break
        data += d
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data or b'{"error": "no result"}')


# ---- a VMM stand-in (tests/helpers/vmm-peer) run inside a guest's cgroup ----------------

VMM_PEER = os.path.join(BUILD, "tests", "helpers", "vmm-peer")
NOBODY = 65534


def in_cgroup(cg):
    """preexec: move the child into cg before it execs."""
    def f():
        with open(cg.full + "/cgroup.procs", "w") as p:
            p.write(str(os.getpid()))
    return f


def _peer_preexec(cg, uid):
    def pre():
        if cg:
            in_cgroup(cg)()
        if uid is not None:
            as_user(uid)
    return pre


def peer(broker, vm, cg=None, uid=None, *args):
    r = subprocess.run([VMM_PEER, broker.socket, vm] + list(args), capture_output=True, text=True, timeout=30,
                       preexec_fn=_peer_preexec(cg, uid))
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {"ok": False, "stderr": r.stderr}
    return r.returncode, out


def peer_holding(broker, vm, cg=None, uid=None, *args):
    # vmm-peer that keeps the fds (sleeps) after its report: returns (process, report).
    p = subprocess.Popen([VMM_PEER, broker.socket, vm] + list(args) + ["--hold", "60"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=_peer_preexec(cg, uid))
    return p, json.loads(p.stdout.readline())


def reclaimed(broker, vm, exits, timeout=HANG):
    # Wait until the broker has replaced vm's context `exits` times (its holders exited) and made
    # it again (the guest is not busy).
    def done():
        v = broker.call("vm.show", {"vm": vm})
        return v if v["vmm_exits"] >= exits and not v["busy"] else None
    return wait_until(done, "guest %s reclaimed %d times" % (vm, exits), timeout)


def require_root():
    """These tests make cgroup2 directories, run peers as other uids and read other processes'
    /proc: as anyone but root, the whole file is skipped (exit 77, meson's SKIP) saying so."""
    if os.geteuid() != 0:
        print("SKIP: needs root (cgroup2 directories, peers as other uids, other processes' /proc): "
              "run meson test as root", flush=True)
        sys.exit(77)


def run(tests):
    """Run test functions; print one line each and the closing tally. Exit non-zero on failure."""
    require_root()
    only = sys.argv[1:]
    unknown = set(only) - {t.__name__ for t in tests}
    if unknown:
        # a typo (or a build directory passed on) must not turn into "0 passed"
        print("no test named %s" % ", ".join(sorted(unknown)))
        sys.exit(1)
    passed = failed = skipped = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        start = time.monotonic()
        try:
            t()
            passed += 1
            print("ok      %s (%.2fs)" % (t.__name__, time.monotonic() - start), flush=True)
        except Skip as e:
            skipped += 1
            print("SKIP    %s: %s" % (t.__name__, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL    %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    # any skip makes the whole file SKIP for meson: a suite with a skipped test is not a pass
    sys.exit(1 if failed else (77 if skipped else 0))
