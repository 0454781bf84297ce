"""A stand-in for the parts of systemd's service manager the broker relies on, so tests can run
without systemd as PID 1:

- a NOTIFY_SOCKET (AF_UNIX SOCK_DGRAM, SO_PASSCRED) that takes READY=1, STATUS=, WATCHDOG=1,
  STOPPING=1, and FDSTORE=1 / FDNAME= / FDPOLL=0 with their fds, and FDSTOREREMOVE=1;
- the fd store as systemd keeps it (src/core/service.c): a list in arrival order, an fd that is
  the same open file as a stored one is not stored twice, FDSTOREREMOVE closes every entry of
  that name, FDNAME must be a valid fd name (else the message's fds are closed and nothing is
  stored), and at most FileDescriptorStoreMax= entries;
- NotifyAccess=main: messages from any other pid are ignored (and counted, so a test can see that
  the workers never notify);
- (re)starting the service with the listening socket (as a .socket unit would pass it) followed
  by the stored fds as LISTEN_FDS from fd 3, LISTEN_FDNAMES colon-separated, LISTEN_PID = the
  service's pid (tests/systemd/listen-exec.py does the exec side).
"""
import array
import ctypes
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import ifbtest  # noqa: E402

LISTEN_EXEC = os.path.join(HERE, "listen-exec.py")
FD_STORE_MAX = 17408            # units/iommufd-broker.service.in

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_kcmp = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)


def same_file(fd1, fd2):
    """kcmp(KCMP_FILE): the same open file description, as systemd's same_fd() checks."""
    if _SYS_kcmp is None:
        return False
    pid = os.getpid()
    return _libc.syscall(_SYS_kcmp, pid, pid, 0, fd1, fd2) == 0


def fdname_valid(name):
    return 0 < len(name) <= 255 and all(0x20 < ord(c) < 0x7f and c != ":" for c in name)


class ServiceManager:
    def __init__(self, broker=None, socket_activated=True, fd_store_max=FD_STORE_MAX, watchdog_usec=None, env=None):
        self.broker = broker or ifbtest.Broker(env=env)
        self.tmp = tempfile.mkdtemp(prefix="ifbsd-")
        self.notify_path = os.path.join(self.tmp, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.notify.bind(self.notify_path)
        self.store = []                 # [(name, fd)] in arrival order, as systemd keeps it
        self.fd_store_max = fd_store_max
        self.watchdog_usec = watchdog_usec
        self.messages = []              # [(pid, {key: value})] accepted from the main pid
        self.foreign = []               # messages from other pids (ignored, NotifyAccess=main)
        self.rejected = []              # FDSTORE messages systemd would refuse
        self.ready = False
        self.listener = None
        if socket_activated:
            # What iommufd-broker.socket does: the socket exists (and queues clients) before and
            # between runs of the service.
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            if os.path.exists(self.broker.socket):
                os.unlink(self.broker.socket)
            self.listener.bind(self.broker.socket)
            os.chmod(self.broker.socket, 0o660)
            self.listener.listen(128)
        self.proc = None
        self.starts = 0
        self.lock = threading.RLock()
        self.stopping = False
        self.thread = threading.Thread(target=self._receiver, daemon=True)
        self.thread.start()

    # ---- the notify socket ---------------------------------------------------------------
    # Like PID 1, a receiver thread processes notifications as they come (the daemon waits on
    # barriers); pump() additionally drains the queue from the caller, under the same lock.
    def _receiver(self):
        while not self.stopping:
            r, _, _ = select.select([self.notify], [], [], 0.1)
            if r:
                with self.lock:
                    self._drain()

    def _drain(self):
        while select.select([self.notify], [], [], 0)[0]:
            self._receive_one()

    def pump(self, timeout=0.0):
        """Process every queued notification; wait up to timeout for one to arrive."""
        if timeout:
            select.select([self.notify], [], [], timeout)
        with self.lock:
            self._drain()

    def _receive_one(self):
        fds = array.array("i")
        msg, anc, flags, _ = self.notify.recvmsg(65536, socket.CMSG_SPACE(253 * fds.itemsize) +
                                                 socket.CMSG_SPACE(12), socket.MSG_CMSG_CLOEXEC)
        assert not flags & socket.MSG_CTRUNC, "notification with truncated control data"
        pid = None
        for level, type_, data in anc:
            if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
            elif level == socket.SOL_SOCKET and type_ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", data[:12])[0]
        fields = {}
        for line in msg.decode(errors="replace").split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        if self.proc is None or pid != self.proc.pid:
            self.foreign.append((pid, fields))
            for fd in fds:
                os.close(fd)
            return
        self.messages.append((pid, fields))
        if fields.get("READY") == "1":
            self.ready = True
        if fields.get("BARRIER") == "1":
            # sd_notify_barrier(): closing its fd tells the sender all before it was processed.
            for fd in fds:
                os.close(fd)
            return
        if fields.get("FDSTOREREMOVE") == "1":
            name = fields.get("FDNAME", "")
            keep = []
            for n, fd in self.store:
                if n == name:
                    os.close(fd)
                else:
                    keep.append((n, fd))
            self.store = keep
        if fields.get("FDSTORE") == "1":
            name = fields.get("FDNAME", "stored")
            if not fdname_valid(name):
                self.rejected.append(fields)
                for fd in fds:
                    os.close(fd)
                return
            if fields.get("FDPOLL") != "0":
                # systemd would poll the fd and drop it on EPOLLHUP/EPOLLERR: our fds must not be.
                self.rejected.append(fields)
            for fd in fds:
                if any(same_file(fd, s) for _, s in self.store) or len(self.store) >= self.fd_store_max:
                    os.close(fd)
                    continue
                self.store.append((name, fd))
        else:
            for fd in fds:
                os.close(fd)

    def names(self):
        with self.lock:
            return [n for n, _ in self.store]

    # ---- the service ---------------------------------------------------------------------
    def start(self, wait_ready=True, timeout=ifbtest.HANG):
        """Start the daemon as systemd would (after a crash or restart: with the stored fds)."""
        b = self.broker
        fds, names = [], []
        if self.listener:
            fds.append(self.listener.fileno())
            names.append("rpc")
        self.pump()
        with self.lock:
            for n, fd in self.store:
                fds.append(fd)
                names.append(n)
        # systemd hands the service copies and keeps its store as it is: entries leave it only by
        # FDSTOREREMOVE=1 (or when the service is fully stopped, which a restart is not).
        env = dict(b.env, NOTIFY_SOCKET=self.notify_path)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_FDNAMES", None)
        env.pop("LISTEN_PID", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        cmd = [sys.executable, LISTEN_EXEC, ",".join(map(str, fds)), ":".join(names), "--"] + b.command()
        if not self.listener and os.path.exists(b.socket):
            os.unlink(b.socket)
        b.logf = open(b.log, "ab")
        self.ready = False
        self.messages_before = len(self.messages)
        with self.lock:     # no notification is looked at before we know the new main pid
            self.proc = subprocess.Popen(cmd, stdout=b.logf, stderr=subprocess.STDOUT, env=env, pass_fds=fds,
                                         preexec_fn=b.preexec)
        b.proc = self.proc
        self.starts += 1
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=ifbtest.HANG):
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.proc.poll() is not None:
                self.pump()
                if self.ready:
                    break
                raise AssertionError("daemon exited with %s before READY=1:\n%s"
                                     % (self.proc.returncode, self.broker.read_log()[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError("no READY=1 within %ss:\n%s" % (timeout, self.broker.read_log()[-4000:]))
            self.pump(0.05)

    def kill(self, sig=signal.SIGKILL):
        """Stop the main process with sig and take every notification it sent before dying."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(ifbtest.HANG)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pump()
        return self.proc.returncode

    def restart(self, sig=signal.SIGTERM):
        self.kill(sig)
        return self.start()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill(signal.SIGKILL)
        self.stopping = True
        self.thread.join()
        for _, fd in self.store:
            os.close(fd)
        self.store = []
        if self.listener:
            self.listener.close()
        self.notify.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0]:
            sys.stderr.write("---- daemon log ----\n%s\n" % self.broker.read_log()[-6000:])
        self.close()
