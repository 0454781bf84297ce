"""exec wrapper doing what systemd does between fork and exec of a socket-activated service:
listen-exec.py FD[,FD...] NAME[:NAME...] -- COMMAND...
moves the given inherited fds, in order, to 3, 4, ..., sets LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID (= this pid, which exec keeps), and execs COMMAND. FD may be empty (no fds)."""
import fcntl
import os
import resource
import sys

fds = [int(x) for x in sys.argv[1].split(",") if x]
names = sys.argv[2]
cmd = sys.argv[sys.argv.index("--") + 1:]

# fd numbers go up to about twice the count while moving: allow that (root may raise the hard limit).
need = 2 * len(fds) + 64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < need:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

# First out of the way (above every target), then down to 3..: no source is clobbered.
high = []
for fd in fds:
    high.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(fds) + 16))
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
env = dict(os.environ)
if fds:
    env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
os.execve(cmd[0], cmd, env)
