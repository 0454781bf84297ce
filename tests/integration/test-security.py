#!/usr/bin/env python3
"""The security checks and limits, each tested as the attack it stops: guests in cgroups every
process shares, pid reuse on kernels without SO_PEERPIDFD, fds parked on lines that never end,
untrusted state files, name/UUID confusion, subscribers that never read, slots taken by
unprivileged uids, idle connections, refused calls flooding the log, roles from any number of
supplementary groups, and the smaller items (ids, UUID case, zombies, pid 0)."""
import json
import os
import select
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from ifbtest import (BUILD, CTL, NEST_VTD, NOBODY, SMMU, Broker, Cgroup, Client, RpcError, Skip, as_user,  # noqa: E402
                     in_child, in_cgroup, proc_fd_targets, run, wait_until)

NO_PEERPIDFD = os.path.join(BUILD, "tests", "helpers", "no-peerpidfd")


def call_from(broker, cg=None, uid=None, method="broker.info", params=None):
    """Make one call from a child process placed in cg (and running as uid); returns the reply."""
    def call():
        if cg:
            in_cgroup(cg)()
        if uid is not None:
            as_user(uid)
        out, fds = Client(broker.socket).call_full(method, params)
        for fd in fds:
            os.close(fd)
        out["n_fds"] = len(fds)
        return out
    return in_child(call)


def err_name(reply):
    return reply.get("error", {}).get("data", {}).get("name")


# ---- 4: guest cgroups every process (or the caller) shares ----------------------------------

def test_guest_cgroup_shared_with_everyone_is_refused():
    # '/', the daemon's own cgroup and its ancestors, and a pid or pidfd of a process in '/',
    # can never be a guest's: every local process (or the broker) would pass vm.fds' check.
    outer = Cgroup("sh")
    inner = outer.child("daemon")
    try:
        with Broker(preexec=in_cgroup(inner)) as b:
            c = b.client()
            for cg in ("/", outer.path, inner.path):
                e = c.error("vm.create", {"name": "g", "cgroup": cg})
                assert e["data"]["name"] == "cgroup-invalid", (cg, e)
            sleeper = subprocess.Popen(["sleep", "60"])   # in '/' like this test
            try:
                with open("/proc/%d/cgroup" % sleeper.pid) as f:
                    assert "0::/\n" in f.read()
                e = c.error("vm.create", {"name": "g", "pid": sleeper.pid})
                assert e["data"]["name"] == "cgroup-invalid" and "'/'" in e["message"], e
                pidfd = os.pidfd_open(sleeper.pid)
                e = c.error("vm.create", {"name": "g", "pidfd": 0}, fds=[pidfd])
                os.close(pidfd)
                assert e["data"]["name"] == "cgroup-invalid", e
            finally:
                sleeper.kill()
                sleeper.wait()
            assert c.call("vm.list") == {"vms": []}
    finally:
        outer.remove()


def test_guest_cgroup_containing_the_caller():
    # A cgroup the caller itself runs in is refused, even to root, unless root says so with
    # options.allow_caller_cgroup; an admin that is not root may not say so.
    root = Cgroup("caller")
    mine = root.child("mine")
    try:
        with Broker(config="[access]\nadmin-group=nogroup\n") as b:
            r = call_from(b, mine, None, "vm.create", {"name": "g", "cgroup": mine.path})
            assert err_name(r) == "cgroup-invalid" and "allow_caller_cgroup" in r["error"]["message"], r
            r = call_from(b, mine, None, "vm.create", {"name": "g", "cgroup": root.path})   # an ancestor too
            assert err_name(r) == "cgroup-invalid", r
            r = call_from(b, mine, NOBODY, "vm.create",
                          {"name": "g", "cgroup": mine.path, "options": {"allow_caller_cgroup": True}})
            assert err_name(r) == "permission-denied", r
            r = call_from(b, mine, None, "vm.create",
                          {"name": "g", "cgroup": mine.path, "options": {"allow_caller_cgroup": True}})
            assert r.get("result", {}).get("cgroup") == mine.path, r
            # a process of the caller's cgroup given by pid: the same rule
            r = call_from(b, mine, None, "vm.create", {"name": "h", "pid": os.getpid()})
            assert err_name(r) == "cgroup-invalid", r
    finally:
        root.remove()


def test_pid_zero_zombie_pidfd():
    # pid 0 next to a cgroup is not "no pid"; a zombie's pidfd defines no guest.
    cg = Cgroup("zombie")
    try:
        with Broker() as b:
            c = b.client()
            e = c.error("vm.create", {"name": "g", "cgroup": cg.path, "pid": 0})
            assert e["data"]["name"] == "invalid-params", e
            z = subprocess.Popen(["sh", "-c", "exit 0"], preexec_fn=in_cgroup(cg))
            pidfd = os.pidfd_open(z.pid)

            def zombie():
                with open("/proc/%d/stat" % z.pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            wait_until(zombie, "the child to be a zombie", every=0.01)
            e = c.error("vm.create", {"name": "g", "pidfd": 0}, fds=[pidfd])
            assert e["data"]["name"] == "cgroup-invalid" and "exited" in e["message"], e
            e = c.error("vm.create", {"name": "g", "pid": z.pid})
            assert e["data"]["name"] == "cgroup-invalid", e
            os.close(pidfd)
            z.wait()
    finally:
        cg.remove()


# ---- 5: a recycled pid without SO_PEERPIDFD ------------------------------------------------

def set_next_pid(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))


def test_recycled_pid_without_peerpidfd():
    # The kernel has no SO_PEERPIDFD (no-peerpidfd, as on Debian 12's 6.1). A peer of uid
    # nobody connects and exits before the daemon accepts; its pid is reused by a root process in
    # the guest's cgroup. The connection must not be authorized by that process's cgroup. A live
    # peer of the right uid in the guest's cgroup still is.
    if not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        raise Skip("cannot choose the next pid (/proc/sys/kernel/ns_last_pid not writable)")
    guest = Cgroup("reuse")
    try:
        b = Broker()
        cmd = b.command
        b.command = lambda: [NO_PEERPIDFD] + cmd()
        with b:
            b.call("vm.create", {"name": "g", "cgroup": guest.path})
            b.call("vm.attach", {"vm": "g", "device": SMMU})
            r = call_from(b, guest, NOBODY, "vm.fds", {"vm": "g"})
            assert "result" in r and r["n_fds"] == 2, r   # the fallback still authorizes a real peer

            for attempt in range(20):
                b.proc.send_signal(signal.SIGSTOP)   # the connection waits in the backlog
                try:
                    a, pa = socket.socketpair()
                    pid = os.fork()
                    if pid == 0:
                        as_user(NOBODY)
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.connect(b.socket)
                        socket.send_fds(pa, [b"x"], [s.fileno()])
                        os._exit(0)
                    _, fds, _, _ = socket.recv_fds(a, 1, 1)
                    os.waitpid(pid, 0)
                    set_next_pid(pid)
                    impostor = subprocess.Popen(["sleep", "60"], preexec_fn=in_cgroup(guest))
                finally:
                    b.proc.send_signal(signal.SIGCONT)
                if impostor.pid == pid:
                    break
                impostor.kill()
                impostor.wait()
                os.close(fds[0])
            else:
                raise Skip("the pid was taken by someone else 20 times")
            try:
                c = Client.__new__(Client)
                c.sock, c.buf, c.fds, c.next_id = socket.socket(fileno=fds[0]), b"", [], 1
                c.sock.settimeout(10)
                reply, got = c.call_full("vm.fds", {"vm": "g"})
                for fd in got:
                    os.close(fd)
                assert "error" in reply and not got, reply
                assert reply["error"]["data"]["name"] == "permission-denied", reply
                c.close()
            finally:
                impostor.kill()
                impostor.wait()
    finally:
        guest.remove()


# ---- 1: fds parked on lines that never end --------------------------------------------------

def pipe_probe(n):
    rs, ws = [], []
    for _ in range(n):
        r, w = os.pipe()
        rs.append(r)
        ws.append(w)
    return rs, ws


def assert_closed_by_daemon(sock, rs, timeout=10):
    """The daemon closed sock without a reply and closed every fd it was sent (pipe read ends
    see EOF once the last write end is gone)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass
    assert b"result" not in got, got[:200]
    for r in rs:
        os.set_blocking(r, True)
        import select
        ready, _, _ = select.select([r], [], [], timeout)
        assert ready and os.read(r, 1) == b"", "the daemon still holds an fd it was sent"
        os.close(r)


def park_fds(sock, n_msgs, n_fds):
    """n_msgs messages of one space each carrying n_fds pipe write ends, and never a newline."""
    rs_all = []
    for _ in range(n_msgs):
        rs, ws = pipe_probe(n_fds)
        socket.send_fds(sock, [b" "], ws)
        for w in ws:
            os.close(w)
        rs_all += rs
    return rs_all


def test_unclaimed_fds_per_connection():
    # 3 x 32 fds on a line that never ends: over the 64 a connection may park, it is closed.
    with Broker() as b:
        c = b.client()
        rs = park_fds(c.sock, 3, 32)
        assert_closed_by_daemon(c.sock, rs)
        assert "fds sent on a line that has not ended" in b.read_log()
        c2 = b.client()
        rs = park_fds(c2.sock, 2, 32)   # 64 is still fine, and the line may then claim them
        c2.send_raw(b'{"jsonrpc":"2.0","method":"vm.list","id":1}\n')
        r, fds = c2.recv()
        assert r["result"] == {"vms": []} and not fds, r
        for r_ in rs:
            os.close(r_)


def limit_nofile(n):
    def f():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return f


def test_fds_in_transit_daemon_budget():
    # With RLIMIT_NOFILE 256 the daemon lets peers park at most 32 fds (an eighth) in all: a
    # second connection that would go over is closed, the first one and root's calls go on.
    with Broker(preexec=limit_nofile(256)) as b:
        assert b.call("broker.info")
        c1 = b.client()
        held = len(proc_fd_targets(b.proc.pid))
        rs1 = park_fds(c1.sock, 1, 30)
        # the daemon has taken c1's 30 (a state, not a sleep: c2's must come after them)
        wait_until(lambda: len(proc_fd_targets(b.proc.pid)) >= held + 30, "the daemon to receive c1's 30 fds")
        c2 = b.client()
        rs2 = park_fds(c2.sock, 1, 30)
        assert_closed_by_daemon(c2.sock, rs2)
        assert "budget for fds in transit" in b.read_log()
        c1.send_raw(b'{"jsonrpc":"2.0","method":"vm.list","id":1}\n')
        r, _ = c1.recv()
        assert r["result"] == {"vms": []}, r
        c1.close()
        for r_ in rs1:
            os.close(r_)
        assert b.call("broker.info")["counts"]["connections"] >= 1


# ---- 3: reserved connection slots, idle connections ---------------------------------------

def connect_as(uid, path, n):
    """n connections made by a process of uid (SO_PEERCRED is the connector's), handed back."""
    a, pa = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            as_user(uid)
            for _ in range(n):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                socket.send_fds(pa, [b"x"], [s.fileno()])
                s.close()
        finally:
            os._exit(0)
    socks = []
    for _ in range(n):
        _, fds, _, _ = socket.recv_fds(a, 1, 1)
        socks.append(socket.socket(fileno=fds[0]))
    os.waitpid(pid, 0)
    a.close()
    pa.close()
    return socks


def served(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        sock.sendall(b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}\n')
        return b'"result"' in sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return False


def test_reserved_slots_for_root():
    # Two unprivileged uids at their per-uid limit cannot take the last slots: root gets in.
    cfg = "[limits]\nmax-connections=11\nmax-connections-per-uid=8\nreserved-connections=2\nidle-timeout=0\n"
    with Broker(config=cfg) as b:
        root0 = b.client()
        # start-up's probe connection, until the daemon has seen it go
        wait_until(lambda: root0.call("broker.info")["counts"]["connections"] == 1, "the probe connection gone")
        first = connect_as(NOBODY, b.socket, 8)   # 9 with root0: 2 slots left, both reserved
        assert all(served(s) for s in first)
        second = connect_as(NOBODY - 1, b.socket, 2)
        assert not any(served(s) for s in second), "an unprivileged uid took a slot kept for root"
        assert "reserved-connections" in b.read_log()
        root = [b.client() for _ in range(2)]
        for c in root:
            assert c.call("vm.list") == {"vms": []}
        for s in first + second:
            s.close()


def test_idle_connections_time_out():
    # idle-timeout=1: a connection that says nothing is closed; one that keeps calling and a
    # subscriber are not. The test waits for the idle one's close (an event) while the busy one
    # calls, instead of calling for 3 s and then expecting the close to have happened.
    with Broker(config="[limits]\nidle-timeout=1\n") as b:
        idle = b.client()
        busy = b.client()
        sub = b.client()
        sub.call("events.subscribe")
        calls = [0]

        def closed():
            busy.call("vm.list")
            calls[0] += 1
            return select.select([idle.sock], [], [], 0.05)[0]
        wait_until(closed, "the idle connection to be closed", every=0)
        assert idle.sock.recv(1) == b"", "the idle connection got data instead of its close"
        assert calls[0] > 1, calls
        b.call("vm.create", {"name": "g", "cgroup": "/ifb-idle-none", "options": {"defer": True}})
        ev, _ = sub.recv()
        assert ev["params"]["event"] == "vm.created", ev
        assert "idle for 1 s" in b.read_log()


# ---- 7: a subscriber that never reads ------------------------------------------------------

def test_subscriber_that_never_reads_is_dropped():
    # max-queued-bytes=65536: a subscriber with a tiny receive buffer that never reads is closed
    # once its queue would pass the limit, although it never reads or writes again.
    with Broker(config="[limits]\nmax-queued-bytes=65536\nmax-vms=4096\n") as b:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(b.socket)
        s.sendall(b'{"jsonrpc":"2.0","method":"events.subscribe","id":1}\n')
        # subscribed once answered (the answer sits unread in s)
        wait_until(lambda: select.select([s], [], [], 0.05)[0], "the answer to events.subscribe")
        c = b.client()
        for round_ in range(40):
            names = ["g%d-%d" % (round_, i) for i in range(64)]
            batch = [{"jsonrpc": "2.0", "id": i, "method": "vm.create",
                      "params": {"name": n, "cgroup": "/ifb-none/" + n, "options": {"defer": True}}}
                     for i, n in enumerate(names)]
            c.send_raw((json.dumps(batch) + "\n").encode())
            c.recv()
            batch = [{"jsonrpc": "2.0", "id": i, "method": "vm.destroy", "params": {"vm": n}}
                     for i, n in enumerate(names)]
            c.send_raw((json.dumps(batch) + "\n").encode())
            c.recv()
            if "max-queued-bytes" in b.read_log():
                break
        assert "max-queued-bytes" in b.read_log(), "the subscriber was never dropped"
        s.settimeout(10)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        assert b.call("broker.info")["counts"]["connections"] == 2   # c and the one asking


# ---- 9: restore trusts nothing in its runtime directory -------------------------------------

def test_restore_quarantines_untrusted_state():
    # Bad state files (wrong version, '../x' as a name, an upper-case UUID, cgroup '/', a
    # directory named *.json, a 2 MB file, a second owner of a device, a slot collision) are
    # moved to guests/rejected/ with the reason logged; the good guests are restored.
    import shutil
    import tempfile
    import uuid as uuidlib
    run_dir = tempfile.mkdtemp(prefix="ifbtest-run-")
    try:
        with Broker(runtime_dir=run_dir) as b:
            for name, dev in (("a", NEST_VTD[0]), ("b", SMMU)):
                b.call("vm.create", {"name": name, "cgroup": "/ifb-none-" + name, "options": {"defer": True}})
                b.call("vm.attach", {"vm": name, "device": dev})
        gdir = os.path.join(run_dir, "guests")
        docs = {}
        for f in os.listdir(gdir):
            with open(os.path.join(gdir, f)) as fh:
                d = json.load(fh)
            docs[d["vm"]["name"]] = d

        def plant(name, mutate, raw=None):
            d = json.loads(json.dumps(docs["a"]))
            u = str(uuidlib.uuid4())
            d["vm"].update(name=name, uuid=u, slot=100 + len(os.listdir(gdir)),
                           created_usec=max(x["vm"]["created_usec"] for x in docs.values()) + 10)
            mutate(d)
            with open(os.path.join(gdir, d["vm"]["uuid"] + ".json"), "w") as fh:
                fh.write(raw if raw is not None else json.dumps(d))
            return d["vm"]["uuid"] + ".json"

        bad = [
            plant("c", lambda d: None),   # a's device, younger than a
            plant("d", lambda d: d["vm"].update(slot=docs["b"]["vm"]["slot"], devices=[])),
            plant("e", lambda d: d.update(version=2)),
            plant("../x", lambda d: d["vm"].update(devices=[])),
            plant("f", lambda d: d["vm"].update(uuid=d["vm"]["uuid"].upper(), devices=[])),
            plant("h", lambda d: d["vm"].update(cgroup="/", devices=[])),
            plant("i", lambda d: d["vm"]["devices"][0].update(index=99)),
            plant("j", lambda d: d["vm"].update(devices=[]), raw="x" * (2 << 20)),
        ]
        os.mkdir(os.path.join(gdir, "dir.json"))
        bad.append("dir.json")
        with Broker(runtime_dir=run_dir) as b:
            names = [v["name"] for v in b.call("vm.list")["vms"]]
            assert names == ["a", "b"], names
            owners = {d["device"]: d["owner"] for d in b.call("device.list")["devices"]}
            assert owners[NEST_VTD[0]] == "a" and owners[SMMU] == "b", owners
            rejected = sorted(os.listdir(os.path.join(gdir, "rejected")))
            log = b.read_log()
        assert rejected == sorted(os.path.basename(x) for x in bad), (rejected, bad, log[-3000:])
        for why in ("belongs to another guest", "fd-store slot", "unsupported version", "invalid guest name",
                    "invalid UUID", "cgroup '/'", "not a regular file", "larger than"):
            assert why in log, (why, log[-3000:])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_restore_never_follows_a_symlinked_state_dir():
    # guests/ is a symlink to a directory with a *.tmp file: it is not followed (the file stays),
    # it is moved aside, and the daemon starts with no guest.
    import shutil
    import tempfile
    run_dir = tempfile.mkdtemp(prefix="ifbtest-run-")
    target = tempfile.mkdtemp(prefix="ifbtest-target-")
    try:
        with open(os.path.join(target, "precious.json.tmp"), "w") as f:
            f.write("keep me")
        os.symlink(target, os.path.join(run_dir, "guests"))
        with Broker(runtime_dir=run_dir) as b:
            assert b.call("vm.list") == {"vms": []}
            b.call("vm.create", {"name": "g", "cgroup": "/ifb-none", "options": {"defer": True}})
        assert os.path.exists(os.path.join(target, "precious.json.tmp"))
        assert os.listdir(target) == ["precious.json.tmp"], os.listdir(target)
        assert os.path.isdir(os.path.join(run_dir, "guests")) and not os.path.islink(os.path.join(run_dir, "guests"))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)


# ---- 10, 12, 13: names and UUIDs, the hook's XML limit, the smaller items -------------------

HOOK = os.path.join(BUILD, "client", "iommufd-broker-hook")
XMLNS = "https://iommufd-broker.example/xmlns/1"


def domain_xml(name, uuid):
    return ("<domain type='kvm'><name>%s</name><uuid>%s</uuid><metadata><ifb:broker xmlns:ifb='%s'>"
            "</ifb:broker></metadata></domain>" % (name, uuid, XMLNS)).encode()


def run_hook(b, name, op, xml):
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "IOMMUFD_BROKER_SOCKET": b.socket}
    return subprocess.run([HOOK, name, op, "end", "-"], input=xml, capture_output=True, env=env, timeout=30)


def test_a_name_is_never_a_uuid():
    # 'vm' is a name only, 'uuid' a UUID only (any case), both must match together; the hook's
    # release for a domain named like another guest's UUID destroys nothing.
    with Broker() as b:
        c = b.client()
        victim = c.call("vm.create", {"name": "victim", "cgroup": "/ifb-none-v", "options": {"defer": True}})
        u = victim["uuid"]
        other = c.call("vm.create", {"name": "other", "cgroup": "/ifb-none-o", "options": {"defer": True}})
        e = c.error("vm.destroy", {"vm": u})
        assert e["data"]["name"] == "no-such-vm", e
        assert c.call("vm.show", {"uuid": u.upper()})["name"] == "victim"
        e = c.error("vm.show", {"vm": "victim", "uuid": other["uuid"]})
        assert e["data"]["name"] == "no-such-vm", e
        assert c.call("vm.show", {"vm": "victim", "uuid": u})["name"] == "victim"
        e = c.error("vm.show", {"uuid": "not-a-uuid"})
        assert e["data"]["name"] == "invalid-params", e
        r = run_hook(b, u, "release", domain_xml(u, "6f1c0a52-0b7e-4c3e-9f3e-3b1d2c6a7e99"))
        assert r.returncode == 0, r
        # the same name with another UUID is not this domain either
        r = run_hook(b, "victim", "release", domain_xml("victim", other["uuid"]))
        assert r.returncode == 0, r
        assert sorted(v["name"] for v in c.call("vm.list")["vms"]) == ["other", "victim"]
        r = b.ctl("vm", "show", "uuid:" + u, check=0)
        assert "victim" in r.stdout, r.stdout
        r = run_hook(b, "victim", "release", domain_xml("victim", u))   # the real domain's release
        assert r.returncode == 0, r
        assert [v["name"] for v in c.call("vm.list")["vms"]] == ["other"]


def test_hook_refuses_oversized_xml():
    # migrate/restore over the hook's 16 MiB: an error, never a truncated XML with exit 0.
    with Broker() as b:
        xml = domain_xml("big", "6f1c0a52-0b7e-4c3e-9f3e-3b1d2c6a7e01")
        xml = xml.replace(b"</domain>", b"<description>" + b"x" * (17 << 20) + b"</description></domain>")
        r = run_hook(b, "big", "migrate", xml)
        assert r.returncode != 0 and r.stdout == b"", (r.returncode, len(r.stdout))
        assert b"larger than 16 MiB" in r.stderr, r.stderr


def test_malformed_ids_and_upper_case_uuid():
    # ids 00 and 1. are not JSON numbers: parse errors, never echoed; an upper-case UUID given
    # at create finds its guest in every case.
    with Broker() as b:
        c = b.client()
        for bad in (b"00", b"1.", b"01", b"1e"):
            c.send_raw(b'{"jsonrpc":"2.0","method":"vm.list","id":' + bad + b"}\n")
            text, _ = c.recv_line()
            r = json.loads(text)
            assert r["error"]["code"] == -32700 and r["id"] is None, (bad, text)
        U = "6F1C0A52-0B7E-4C3E-9F3E-3B1D2C6A7E01"
        vm = c.call("vm.create", {"name": "up", "uuid": U, "cgroup": "/ifb-none", "options": {"defer": True}})
        assert vm["uuid"] == U.lower(), vm
        for q in (U, U.lower()):
            assert c.call("vm.show", {"uuid": q})["name"] == "up"


def test_vm_fds_tells_a_roleless_peer_nothing():
    # A peer without a role hears the same refusal whether the guest exists or not, and never
    # the guest's cgroup.
    cg = Cgroup("leak")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            there = call_from(b, None, NOBODY, "vm.fds", {"vm": "g"})
            absent = call_from(b, None, NOBODY, "vm.fds", {"vm": "nope"})
            assert err_name(there) == err_name(absent) == "permission-denied", (there, absent)
            import re
            same = lambda m: re.sub(r"pid \d+", "pid N", m)  # noqa: E731
            assert same(there["error"]["message"]) == same(absent["error"]["message"]), (there, absent)
            assert cg.path not in there["error"]["message"], there
    finally:
        cg.remove()


def call_with_groups(broker, groups, method="vm.list"):
    """One call from a child running as nobody, primary gid 12345, with these supplementary groups."""
    def call():
        os.setgroups(groups)
        os.setgid(12345)
        os.setuid(NOBODY)
        return Client(broker.socket).call_full(method)[0]
    return in_child(call)


def test_every_supplementary_group_counts():
    # The read group counts wherever it is among a peer's supplementary groups: after 299 others
    # (more than a 256-entry buffer holds) and as the last of 65536, the kernel's NGROUPS_MAX.
    # Without it the same peer is refused, so the role comes from that group and nothing else.
    with Broker(config="[access]\nread-group=nogroup\n") as b:
        nogroup = 65534
        for n in (299, 65535):
            others = list(range(100000, 100000 + n))
            r = call_with_groups(b, others + [nogroup])
            assert "result" in r and "vms" in r["result"], (n, r)
            r = call_with_groups(b, others)
            assert err_name(r) == "permission-denied", (n, r)
        assert "result" in call_with_groups(b, [nogroup])


def test_vm_from_argv_guest_key_anywhere():
    # -name debug-threads=on,guest=NAME names the guest as well as guest=NAME,... does.
    cg = Cgroup("argv")
    try:
        with Broker() as b:
            b.call("vm.create", {"name": "g", "cgroup": cg.path})
            prog = "import sys; print(sys.argv[1])"
            for value in ("debug-threads=on,guest=g", "guest=g,debug-threads=on", "g,debug-threads=on"):
                r = subprocess.run([CTL, "--socket", b.socket, "exec", "--vm-from-argv", "--", sys.executable, "-c",
                                    prog, "fd=%{iommufd}", "-name", value], capture_output=True, text=True, timeout=20)
                assert r.returncode == 0 and r.stdout.strip().startswith("fd=") and "%" not in r.stdout, (value, r)
    finally:
        cg.remove()


# ---- 2, 8, 11: amplification, work for peers that are gone, reply memory, log floods --------

def batch_from(b, uid, calls):
    """Send one batch as uid and return its replies."""
    [s] = connect_as(uid, b.socket, 1)
    c = Client.__new__(Client)
    c.sock, c.buf, c.fds, c.next_id = s, b"", [], 1
    c.sock.settimeout(10)
    c.send_raw((json.dumps([{"jsonrpc": "2.0", "id": i, "method": m} for i, m in enumerate(calls)]) + "\n").encode())
    replies, _ = c.recv()
    c.close()
    return replies


def test_expensive_calls_budgeted_per_uid():
    # An unprivileged uid gets expensive-calls-per-second rpc.discover answers, then limit errors;
    # root is not counted.
    with Broker(config="[limits]\nexpensive-calls-per-second=10\n") as b:
        replies = batch_from(b, NOBODY, ["rpc.discover"] * 64)
        ok = [r for r in replies if "result" in r]
        limited = [r for r in replies if r.get("error", {}).get("data", {}).get("name") == "limit-exceeded"]
        assert len(ok) <= 11 and len(ok) + len(limited) == 64, (len(ok), len(limited))
        replies = batch_from(b, 0, ["rpc.discover"] * 64)
        assert all("result" in r for r in replies)


def test_batch_replies_bounded_before_queuing():
    # A batch of 64 vm.list over 40 guests: its replies may take a quarter of max-queued-bytes;
    # the requests after that are answered with limit errors, not run.
    with Broker(config="[limits]\nmax-queued-bytes=65536\n") as b:
        c = b.client()
        for i in range(40):
            c.call("vm.create", {"name": "g%02d" % i, "cgroup": "/ifb-none/g%02d" % i, "options": {"defer": True}})
        one = len(json.dumps(c.call("vm.list"), separators=(",", ":")))   # as the daemon writes it
        assert one > 8000, one
        c.send_raw((json.dumps([{"jsonrpc": "2.0", "id": i, "method": "vm.list"} for i in range(64)]) + "\n").encode())
        text, _ = c.recv_line()
        replies = json.loads(text)
        ok = [r for r in replies if "result" in r]
        assert len(replies) == 64 and 1 <= len(ok) <= 65536 // 4 // one + 1, (len(ok), one)
        assert len(text) < 65536 // 4 + one + 64 * 300, len(text)
        assert all(r["error"]["data"]["name"] == "limit-exceeded" for r in replies if "error" in r)
        assert c.call("broker.info")   # the connection goes on


def test_one_slice_of_work_per_connection_per_turn():
    # A pipelines 1000 vm.create notifications and B one vm.list, both queued in the daemon's
    # sockets at once (the daemon is stopped while they are sent): B is answered after at most a
    # few slices of A's work, not after all of it. B's answer itself counts A's work done before
    # it: the guests it lists. (Was: B's wait under an eighth of A's total, in wall time.)
    n = 1000
    with Broker(config="[limits]\nexpensive-calls-per-second=0\nmax-pending=4096\nmax-vms=4096\n") as b:
        a, c = b.client(), b.client()
        for x in (a, c):
            x.call("broker.info")   # accepted and served: both are the daemon's connections
        payload = b"".join((json.dumps({"jsonrpc": "2.0", "method": "vm.create", "params": {
            "name": "s%04d" % i, "cgroup": "/ifb-none/s%04d" % i, "options": {"defer": True}}}) + "\n").encode() for i in range(n))
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * len(payload))
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            a.sock.sendall(payload)   # fits in the socket: the stopped daemon reads nothing
            c.request("vm.list")
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        before = len(c.recv()[0]["result"]["vms"])
        wait_until(lambda: len(b.call("vm.list")["vms"]) == n, "A's %d guests" % n)
        print("B answered after %d of A's %d requests" % (before, n))
        assert before <= n // 8, "B was answered after %d of A's %d requests" % (before, n)
        a.close()
        c.close()


def test_work_of_a_peer_that_hung_up_is_dropped():
    # 1000 vm.create notifications, then the peer closes its socket: what the daemon had not
    # read yet is dropped, not run for nobody (the slices of work and the G_IO_HUP check stop it).
    # All of it is in the socket, and closed, before the daemon (stopped meanwhile) reads any:
    # what it does then does not depend on who was faster. Once the daemon has dropped the
    # connection, the count of guests stays put.
    n = 1000
    with Broker(config="[limits]\nmax-vms=4096\n") as b:
        c = b.client()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b.socket)
        wait_until(lambda: c.call("broker.info")["counts"]["connections"] == 2, "s accepted")
        payload = b"".join(
            (json.dumps({"jsonrpc": "2.0", "method": "vm.create",
                         "params": {"name": "n%04d" % i, "cgroup": "/ifb-none/n%04d" % i, "options": {"defer": True}}}) + "\n").encode()
            for i in range(n))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * len(payload))
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            s.sendall(payload)
            s.close()
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        wait_until(lambda: c.call("broker.info")["counts"]["connections"] == 1, "the hung-up peer dropped")
        made = len(c.call("vm.list")["vms"])
        for _ in range(20):   # main-loop turns after the drop create nothing more
            assert len(c.call("vm.list")["vms"]) == made, "still creating guests for a peer that is gone"
        print("created %d of %d before the hang-up was seen" % (made, n))
        assert made < n, made
        c.close()


def test_refusals_logged_at_a_bounded_rate():
    # 300 refused calls of one uid: max-refusals-logged=5 lines, not 300.
    with Broker(config="[limits]\nmax-refusals-logged=5\n") as b:
        replies = batch_from(b, NOBODY, ["vm.list"] * 64)
        assert all(r["error"]["data"]["name"] == "permission-denied" for r in replies)
        for _ in range(4):
            batch_from(b, NOBODY, ["vm.list"] * 64)
        # every refusal is answered, and logged (or not) before its answer: nothing to wait for
        lines = [l for l in b.read_log().splitlines() if "from uid %d" % NOBODY in l]
        assert 1 <= len(lines) <= 5, len(lines)


if __name__ == "__main__":
    run([test_guest_cgroup_shared_with_everyone_is_refused, test_guest_cgroup_containing_the_caller,
         test_pid_zero_zombie_pidfd, test_recycled_pid_without_peerpidfd, test_unclaimed_fds_per_connection,
         test_fds_in_transit_daemon_budget, test_reserved_slots_for_root, test_idle_connections_time_out,
         test_subscriber_that_never_reads_is_dropped, test_restore_quarantines_untrusted_state,
         test_restore_never_follows_a_symlinked_state_dir, test_a_name_is_never_a_uuid, test_hook_refuses_oversized_xml,
         test_malformed_ids_and_upper_case_uuid, test_vm_fds_tells_a_roleless_peer_nothing,
         test_every_supplementary_group_counts, test_vm_from_argv_guest_key_anywhere, test_expensive_calls_budgeted_per_uid,
         test_batch_replies_bounded_before_queuing, test_one_slice_of_work_per_connection_per_turn,
         test_work_of_a_peer_that_hung_up_is_dropped,
         test_refusals_logged_at_a_bounded_rate])
