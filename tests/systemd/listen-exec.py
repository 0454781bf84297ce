"""exec wrapper doing what systemd does between fork and exec of a socket-activated service:
listen-exec.py FD[,FD...] NAME[:NAME...] -- COMMAND...
moves the given inherited fds, in order, to 3, 4, ..., sets LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID (= this pid, which exec keeps), and execs COMMAND. FD may be empty (no fds)."""
import fcntl
import os
import sys

fds = [int(x) for x in sys.argv[1].split(",") if x]
names = sys.argv[2]
cmd = sys.argv[sys.argv.index("--") + 1:]

# In place, as systemd does: source i goes to 3+i; a source sitting on a target still needed is
# first moved to the lowest free number above it. Never more than one extra fd is open, so this
# works with thousands of fds under a tight RLIMIT_NOFILE (raising it needs CAP_SYS_RESOURCE).
cur = list(fds)                       # where source i is now
at = {fd: i for i, fd in enumerate(fds)}
for i in range(len(fds)):
    t = 3 + i
    if cur[i] != t:
        if t in at:                   # another source is in the way: move it up
            j = at.pop(t)
            cur[j] = fcntl.fcntl(t, fcntl.F_DUPFD_CLOEXEC, t + 1)
            at[cur[j]] = j
            os.close(t)
        os.dup2(cur[i], t, inheritable=True)
        os.close(cur[i])
        del at[cur[i]]
        cur[i] = t
        at[t] = i
    else:
        os.set_inheritable(t, True)
env = dict(os.environ)
if fds:
    env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
os.execve(cmd[0], cmd, env)
