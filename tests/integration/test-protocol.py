"""The JSON-RPC 2.0 protocol of the real daemon over its real socket, driven by raw clients:
request validation, ids echoed exactly, notifications (alone and in batches) answered with
nothing, batches, error shapes, every [limits] key (frame size checked before buffering, depth,
batch, connections in total and per uid, pending replies), fd passing both ways, fd hygiene
(unused fds closed, 40 fds close the connection without leaking), and clients that vanish."""
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

from ifbtest import (HANG, NEST_VTD, NO_NEST_VTD, SMMU, SOURCE, TEMPLATE, Broker, Cgroup, Client, proc_fd_targets, run,
                     wait_until)

NOBODY = 65534


def req(method, id=None, params=None, notification=False):
    m = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        m["params"] = params
    if not notification:
        m["id"] = id
    return m


def line(obj):
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def raw_reply(c, text):
    """Send one raw line; return (reply text, parsed reply)."""
    c.send_raw(text if isinstance(text, bytes) else text.encode())
    t, fds = c.recv_line()
    assert fds == [], fds
    return t, json.loads(t)


def assert_error(reply, code, id=None, name=None):
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert "result" not in reply, reply
    assert "id" in reply and reply["id"] == id, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"], reply
    if name:
        assert reply["error"]["data"]["name"] == name, reply
    return reply["error"]


def assert_eof(c, timeout=HANG):
    """The broker closed the connection (no further line)."""
    c.sock.settimeout(timeout)
    try:
        while True:
            data = c.sock.recv(65536)
            if not data:
                return
            c.buf += data
            assert b"\n" not in c.buf, "unexpected reply before close: %r" % c.buf[:200]
    except (ConnectionResetError, BrokenPipeError):
        return


def daemon_files(b):
    """The daemon's open fds other than connections (their sockets and peer pidfds come and go
    asynchronously and are counted by broker.info instead): where a leaked pipe, memfd or
    device fd would show up."""
    out = []
    for t in proc_fd_targets(b.proc.pid).values():
        if not t.startswith("socket:") and t != "anon_inode:[pidfd]":   # a connection's peer pidfd
            out.append(t)
    return sorted(out)


def wait_fds(b, want, timeout=HANG):
    wait_until(lambda: daemon_files(b) == want, "the daemon's files back to the baseline %s (has %s)"
               % (want, daemon_files(b)), timeout)


def wait_connections(b, want, timeout=HANG):
    """Poll broker.info until the daemon counts want connections besides the asking one."""
    wait_until(lambda: b.call("broker.info")["counts"]["connections"] - 1 == want,
               "the daemon to count %d other connections" % want, timeout)


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])   # kB
    raise KeyError(key)


def pipe_probe(n):
    """n pipes; returns (read ends, write ends). Give away the write ends: when the last copy is
    closed, the read end sees EOF — proof that whoever received them closed them."""
    rs, ws = [], []
    for _ in range(n):
        r, w = os.pipe()
        rs.append(r)
        ws.append(w)
    return rs, ws


def assert_all_closed(rs, timeout=HANG):
    for r in rs:
        os.set_blocking(r, True)
        ready, _, _ = select.select([r], [], [], timeout)
        assert ready, "the daemon still holds the write end of a pipe it was sent"
        assert os.read(r, 1) == b"", "unexpected data"
        os.close(r)


# ---- request validation, ids, notifications ---------------------------------------------------

def test_jsonrpc_member_required():
    # "jsonrpc" must be exactly "2.0": missing, "1.0" or a number are -32600 with the id echoed.
    with Broker() as b:
        c = b.client()
        for text, id in [('{"method":"vm.list","id":1}', 1),
                         ('{"jsonrpc":"1.0","method":"vm.list","id":"x"}', "x"),
                         ('{"jsonrpc":2.0,"method":"vm.list","id":3}', 3),
                         ('{"jsonrpc":"2.0","id":4}', 4),
                         ('{"jsonrpc":"2.0","method":"vm.list","params":7,"id":5}', 5)]:
            _, r = raw_reply(c, text + "\n")
            assert_error(r, -32600, id=id, name="invalid-request")
        _, r = raw_reply(c, '{"jsonrpc":"2.0","method":"vm.list","id":6}\n')
        assert r == {"jsonrpc": "2.0", "id": 6, "result": {"vms": []}}, r


def test_ids_echoed_exactly():
    # ids are echoed byte for byte: strings, big integers, floats in their spelling, null.
    with Broker() as b:
        c = b.client()
        for id_text in ['"abc"', '"\\u00e9\\"x"', '0', '-17', '9223372036854775807', '-9223372036854775808',
                        '1.50', '1e3', '-2.5E-7', 'null']:
            t, r = raw_reply(c, '{"jsonrpc":"2.0","method":"vm.list","id":%s}\n' % id_text)
            assert "result" in r, r
            if id_text.startswith('"'):
                assert r["id"] == json.loads(id_text), (id_text, t)
            else:
                assert ('"id":%s,' % id_text) in t, (id_text, t)
            # and in error replies
            t, r = raw_reply(c, '{"jsonrpc":"2.0","method":"no.such","id":%s}\n' % id_text)
            assert r["error"]["code"] == -32601
            if not id_text.startswith('"'):
                assert ('"id":%s,' % id_text) in t, (id_text, t)
        # an id that is not a string, number or null cannot be echoed: -32600 with id null
        for bad in ['{}', '[1]', 'true']:
            _, r = raw_reply(c, '{"jsonrpc":"2.0","method":"vm.list","id":%s}\n' % bad)
            assert_error(r, -32600, id=None)


def test_notifications_get_nothing():
    # A request without id gets no reply — whether it succeeds, fails, names no method or sits in
    # a batch — and a batch of only notifications yields no line at all. "Nothing" is proven by
    # the following request's reply being the very next line.
    with Broker() as b:
        c = b.client()
        c.send_raw(line(req("vm.list", notification=True)))
        c.send_raw(line(req("no.such.method", notification=True)))
        c.send_raw(line(req("vm.show", params={"vm": "ghost"}, notification=True)))
        c.send_raw(line(req("vm.show", params={"bogus": 1}, notification=True)))
        c.send_raw(line([req("vm.list", notification=True), req("nope", notification=True)]))
        c.send_raw(line(req("vm.list", id="after")))
        _, r = raw_reply(c, b"")
        assert r == {"jsonrpc": "2.0", "id": "after", "result": {"vms": []}}, r
        # in a mixed batch only the requests with ids are answered, in order
        c.send_raw(line([req("vm.list", id=1), req("vm.list", notification=True), req("nope", id=2),
                         req("nope", notification=True), req("vm.list", id=3)]))
        _, r = raw_reply(c, b"")
        assert isinstance(r, list) and [x["id"] for x in r] == [1, 2, 3], r
        assert "result" in r[0] and r[1]["error"]["code"] == -32601 and "result" in r[2], r
        # a notification that changes state still runs
        cg = Cgroup("notify")
        try:
            c.send_raw(line(req("vm.create", params={"name": "n1", "cgroup": cg.path, "options": {"handoff": "bound"}}, notification=True)))
            _, r = raw_reply(c, line(req("vm.list", id="x")))
            assert [v["name"] for v in r["result"]["vms"]] == ["n1"], r
            c.call("vm.destroy", {"vm": "n1"})
        finally:
            cg.remove()


def test_parse_error_id_null_and_connection_survives():
    with Broker() as b:
        c = b.client()
        for text in ['{"jsonrpc":"2.0","method":"vm.list","id":1', "{'jsonrpc':'2.0'}", 'NaN',
                     '{"jsonrpc":"2.0","method":"vm.list","id":1}}', '{"jsonrpc":"2.0","id":1,"id":2,"method":"vm.list"}',
                     '{"jsonrpc":"2.0","method":"vm.list","id":99999999999999999999}']:
            _, r = raw_reply(c, text + "\n")
            assert_error(r, -32700, id=None, name="parse-error")
        c.send_raw(b'{"jsonrpc":"2.0","method":"\xc0\xafx","id":1}\n')
        assert_error(json.loads(c.recv_line()[0]), -32700, id=None)
        _, r = raw_reply(c, line(req("vm.list", id=2)))
        assert r["id"] == 2 and "result" in r


def test_empty_batch_and_batch_of_numbers():
    with Broker() as b:
        c = b.client()
        _, r = raw_reply(c, "[]\n")
        assert isinstance(r, dict), r
        assert_error(r, -32600, id=None, name="invalid-request")
        _, r = raw_reply(c, "[1,2,3]\n")
        assert isinstance(r, list) and len(r) == 3, r
        for e in r:
            assert_error(e, -32600, id=None, name="invalid-request")
        # well-formed JSON that is not a request
        for text in ["1", '"vm.list"', "null", "true"]:
            _, r = raw_reply(c, text + "\n")
            assert_error(r, -32600, id=None)


def test_method_not_found_and_invalid_params():
    with Broker() as b:
        c = b.client()
        e = c.error("vm.teleport", {"vm": "a"})
        assert e["code"] == -32601 and "vm.teleport" in e["message"], e
        e = c.error("vm.show", {"vm": "a", "colour": "red"})
        assert e["code"] == -32602 and "'colour'" in e["message"], e
        e = c.error("vm.show", {})
        assert e["code"] == -32602 and "'vm'" in e["message"], e
        e = c.error("vm.show", {"vm": 5})
        assert e["code"] == -32602 and "'vm'" in e["message"] and "string" in e["message"], e
        e = c.error("vm.show", ["a"])
        assert e["code"] == -32602 and "params" in e["message"], e
        e = c.error("broker.info", {"verbose": True})
        assert e["code"] == -32602 and "'verbose'" in e["message"], e
        e = c.error("vm.create", {"name": "x", "options": {"nest_parent": True, "turbo": 1}})
        assert e["code"] == -32602 and "'turbo'" in e["message"], e


def test_server_errors_carry_name_and_errno():
    # Server errors are -32000..-32099 with data.name from the one table and data.errno.
    cg = Cgroup("srverr")
    try:
        with Broker() as b:
            c = b.client()
            c.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            e = c.error("vm.attach", {"vm": "g", "device": NO_NEST_VTD})
            assert -32099 <= e["code"] <= -32000, e
            assert e["data"]["name"] == "nest-unsupported" and e["data"]["errno"] == "EOPNOTSUPP", e
            assert NO_NEST_VTD in e["message"], e
            e = c.error("vm.show", {"vm": "ghost"})
            assert -32099 <= e["code"] <= -32000 and e["data"]["name"] == "no-such-vm", e
            e = c.error("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            assert -32099 <= e["code"] <= -32000 and e["data"]["name"] == "vm-exists", e
            codes = {}
            for name, err in [("nest-unsupported", c.error("vm.attach", {"vm": "g", "device": NO_NEST_VTD})),
                              ("no-such-vm", c.error("vm.show", {"vm": "ghost"}))]:
                codes[name] = err["code"]
            assert codes["nest-unsupported"] != codes["no-such-vm"], codes
            c.call("vm.destroy", {"vm": "g"})
    finally:
        cg.remove()


def test_discover_matches_dispatch():
    # rpc.discover serves proto/openrpc.json; every method it lists is dispatched (a probe with an
    # unknown member is -32602, not -32601), and a method it does not list is -32601.
    with open(os.path.join(SOURCE, "proto", "openrpc.json")) as f:
        doc = json.load(f)
    with Broker() as b:
        c = b.client()
        served = c.call("rpc.discover")
        assert served == doc
        names = [m["name"] for m in served["methods"]]
        assert len(names) == len(set(names)) and "rpc.discover" in names, names
        for n in names:
            e = c.error(n, {"__probe__": 1})
            assert e["code"] == -32602 and "'__probe__'" in e["message"], (n, e)
        for n in ["vm.reboot", "rpc.discoverx", "device.lists", ""]:
            assert c.error(n)["code"] == -32601, n


# ---- limits ----------------------------------------------------------------------------------

def test_frame_limit_exact_then_error_and_close():
    # [limits] max-frame=4096: a line of exactly 4096 bytes is served; 4097 gets a limit error
    # (id null) and the connection is closed.
    with Broker(config="[limits]\nmax-frame=4096\n") as b:
        assert b.call("broker.info")["limits"]["max_frame"] == 4096
        c = b.client()
        base = line(req("vm.list", id=1))[:-2]        # without the closing '}' and '\n'
        exact = base + b" " * (4096 - len(base) - 1) + b"}"
        assert len(exact) == 4096
        _, r = raw_reply(c, exact + b"\n")
        assert r["id"] == 1 and "result" in r, r
        c.send_raw(exact + b" \n")
        t, _ = c.recv_line()
        e = assert_error(json.loads(t), -32002, id=None, name="limit-exceeded")
        assert "max-frame" in e["message"] and "4096" in e["message"], e
        assert_eof(c)
        # the daemon still serves others
        assert b.call("vm.list") == {"vms": []}


def test_frame_limit_checked_before_buffering():
    # 64 MiB without a newline at a 64 KiB limit: the daemon answers with the limit error and
    # closes, and its peak memory does not grow by anything like the frame.
    with Broker(config="[limits]\nmax-frame=65536\n") as b:
        c = b.client()
        c.call("vm.list")
        hwm_before = proc_status(b.proc.pid, "VmHWM")
        chunk = b"x" * (1 << 20)
        sent = 0
        try:
            for _ in range(64):
                c.sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        # whatever the daemon read before closing, it answered with the limit error
        t, _ = c.recv_line()
        assert_error(json.loads(t), -32002, id=None, name="limit-exceeded")
        assert_eof(c)
        grew = proc_status(b.proc.pid, "VmHWM") - hwm_before
        assert grew < 8 * 1024, "daemon peak RSS grew by %d kB while a peer sent %d bytes" % (grew, sent)
        assert sent < 64 << 20, "the daemon kept reading a frame far past its limit"


def test_depth_limit():
    with Broker(config="[limits]\nmax-depth=8\n") as b:
        c = b.client()

        def nested(n):
            # request (1) > params (2) > "a": n-2 arrays
            return ('{"jsonrpc":"2.0","method":"vm.show","params":{"vm":"x","a":%s1%s},"id":1}\n'
                    % ("[" * (n - 2), "]" * (n - 2)))
        _, r = raw_reply(c, nested(8))
        assert r["error"]["code"] == -32602 and "'a'" in r["error"]["message"], r   # parsed fine
        _, r = raw_reply(c, nested(9))
        e = assert_error(r, -32700, id=None, name="parse-error")
        assert "deep" in e["message"], e
        _, r = raw_reply(c, "[" * 100000 + "]" * 100000 + "\n")
        assert_error(r, -32700, id=None)
        _, r = raw_reply(c, line(req("vm.list", id=2)))
        assert r["id"] == 2 and "result" in r


def test_batch_limit():
    with Broker(config="[limits]\nmax-batch=3\n") as b:
        c = b.client()
        _, r = raw_reply(c, line([req("vm.list", id=i) for i in range(4)]))
        assert isinstance(r, dict), r
        e = assert_error(r, -32002, id=None, name="limit-exceeded")
        assert "max-batch" in e["message"], e
        _, r = raw_reply(c, line([req("vm.list", id=i) for i in range(3)]))
        assert [x["id"] for x in r] == [0, 1, 2] and all("result" in x for x in r), r


def connect_and_call(path):
    """A fresh connection: 'ok' if a call is answered, 'closed' if the broker hung up."""
    c = Client(path)
    try:
        c.request("rpc.discover")
        c.recv()
        return c, "ok"
    except (EOFError, ConnectionResetError, BrokenPipeError):
        c.close()
        return None, "closed"


def test_max_connections():
    with Broker(config="[limits]\nmax-connections=3\n") as b:
        held = []
        for _ in range(3):
            c, st = connect_and_call(b.socket)
            assert st == "ok"
            held.append(c)
        _, st = connect_and_call(b.socket)
        assert st == "closed", "a 4th connection was served with max-connections=3"
        assert "max-connections" in b.read_log()
        held.pop().close()
        # the slot is free once the daemon has seen the close: a state to wait for
        c = wait_until(lambda: (lambda c, st: c)(*connect_and_call(b.socket)),
                       "a slot freed by a closed connection to be reused", every=0.05)
        held.append(c)
        for c in held:
            c.close()


NOBODY_PROBE = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(90); s.connect(sys.argv[1])
s.sendall(b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}\n')
data = b""
while b"\n" not in data:
    d = s.recv(65536)
    if not d:
        print("closed"); sys.exit(0)
    data += d
print("ok" if "result" in json.loads(data.split(b"\n")[0]) else "error")
"""


def test_max_connections_per_uid():
    # Two connections per uid: root's third is refused while another uid is still served.
    with Broker(config="[limits]\nmax-connections=10\nmax-connections-per-uid=2\n") as b:
        os.chmod(b.tmp, 0o711)
        os.chmod(b.socket, 0o666)
        held = [connect_and_call(b.socket) for _ in range(2)]
        assert [st for _, st in held] == ["ok", "ok"]
        _, st = connect_and_call(b.socket)
        assert st == "closed", "root's 3rd connection was served with max-connections-per-uid=2"
        r = subprocess.run(["/usr/bin/python3", "-c", NOBODY_PROBE, b.socket], capture_output=True, text=True,
                           timeout=30, preexec_fn=lambda: (os.setgroups([]), os.setgid(NOBODY), os.setuid(NOBODY)))
        assert r.stdout.strip() == "ok", (r.stdout, r.stderr)
        assert "max-connections-per-uid" in b.read_log()
        for c, _ in held:
            c.close()


def test_max_pending_backpressure():
    # Thousands of requests pipelined without reading: with [limits] max-pending the daemon stops
    # reading once that many replies wait, instead of queueing megabytes (it drops a connection
    # past 16 MiB of unsent replies); every reply then arrives, in order.
    n = 4000      # ~7 kB per rpc.discover reply: ~28 MB if they were all queued at once
    with Broker(config="[limits]\nmax-pending=4\n") as b:
        c = b.client()
        c.sock.settimeout(60)
        hwm_before = proc_status(b.proc.pid, "VmHWM")
        # ~1 kB per request (JSON whitespace): 4 MB, far more than the socket buffers hold
        payload = b"".join(line(req("rpc.discover", id=i))[:-2] + b" " * 1000 + b"}\n" for i in range(n))
        errors = []

        def sender():
            try:
                c.sock.sendall(payload)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=sender)
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the daemon read every request while none of its replies were read"
        grew = proc_status(b.proc.pid, "VmHWM") - hwm_before
        assert grew < 8 * 1024, "daemon peak RSS grew by %d kB with replies unread" % grew
        for i in range(n):
            r, _ = c.recv()
            assert r["id"] == i and r["result"]["openrpc"], (i, r.get("error"))
        t.join(30)
        assert not t.is_alive() and not errors, errors
        assert b.call("broker.info")["limits"]["max_pending"] == 4


# ---- fd passing ------------------------------------------------------------------------------

def test_vm_fds_deliver_real_files():
    # vm.fds sends the guest's iommufd and device cdevs with SCM_RIGHTS on the reply's first
    # byte; the JSON refers to them by index and each points at the emulated file it names.
    cg = Cgroup("fds")
    try:
        with Broker() as b:
            c = b.client()
            devices = {d["device"]: d for d in c.call("device.list")["devices"]}
            c.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            c.call("vm.attach", {"vm": "g", "devices": [SMMU, NEST_VTD[0]]})
            c.request("vm.fds", {"vm": "g"})
            # read the first byte alone: the fds must ride on it
            data, fds, _, _ = socket.recv_fds(c.sock, 1, 64)
            assert data == b"{" and len(fds) == 3, (data, fds)
            c.buf = data
            rest, more = c.recv_line()
            assert more == []
            res = json.loads(rest)["result"]
            idx = [res["iommufd"]] + [d["fd"] for d in res["devices"]]
            assert sorted(idx) == [0, 1, 2], res
            targets = [os.readlink("/proc/self/fd/%d" % fd) for fd in fds]
            assert targets[res["iommufd"]].startswith("/memfd:ifb-emulated-iommufd"), targets
            for d in res["devices"]:
                cdev = devices[d["device"]]["cdev"]
                assert cdev and targets[d["fd"]].endswith(cdev), (d, cdev, targets)
                assert os.path.samefile(targets[d["fd"]], "/proc/self/fd/%d" % fds[d["fd"]])
            for fd in fds:
                os.close(fd)
            c.call("vm.destroy", {"vm": "g"})
    finally:
        cg.remove()


def test_fds_to_fdless_methods_are_closed():
    # fds sent with a request whose method takes none — or with a notification, a batch, a parse
    # error, a failing call — are closed: each write end we gave away reaches EOF, and the
    # daemon's fd count is back to its baseline.
    with Broker() as b:
        c = b.client()
        c.call("vm.list")
        base = daemon_files(b)
        for text, answered in [(line(req("vm.list", id=1)), True), (line(req("vm.list", notification=True)), False),
                               (line([req("vm.list", id=2)]), True), (b'{"jsonrpc":"2.0",\n', True),
                               (line(req("vm.show", id=3, params={"vm": "x"})), True),
                               (line(req("vm.create", id=4, params={"name": "x", "bogus": 1})), True)]:
            rs, ws = pipe_probe(5)
            c.send_raw(text, ws)
            for w in ws:
                os.close(w)
            if answered:
                t, fds = c.recv_line()
                assert fds == [] and '"id"' in t, (t, fds)
            assert_all_closed(rs)
        c.call("vm.list")
        wait_fds(b, base)


def test_fds_reach_the_request_they_came_with():
    # fds belong to the line whose first byte carried them, even when the kernel hands the daemon
    # an earlier fd-less request and the fd-carrying one in the same read (the daemon is stopped
    # while both are sent, so they are queued together).
    cg = Cgroup("pidfd")
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: open(cg.full + "/cgroup.procs", "w").write(str(os.getpid())))
    try:
        with Broker() as b:
            c = b.client()
            c.call("vm.list")
            pidfd = os.pidfd_open(sleeper.pid)
            b.proc.send_signal(signal.SIGSTOP)
            try:
                c.send_raw(line(req("vm.list", id="first")))
                c.send_raw(line(req("vm.create", id="second", params={"name": "byfd", "pidfd": 0, "options": {"handoff": "bound"}})), [pidfd])
            finally:
                b.proc.send_signal(signal.SIGCONT)
            os.close(pidfd)
            r1, _ = c.recv()
            r2, _ = c.recv()
            assert r1["id"] == "first" and "result" in r1, r1
            assert r2["id"] == "second" and "result" in r2, r2
            assert r2["result"]["cgroup"] == cg.path, r2
            c.call("vm.destroy", {"vm": "byfd"})
    finally:
        sleeper.kill()
        sleeper.wait()
        cg.remove()


def test_too_many_fds_close_the_connection():
    # 40 fds in one message overflow the daemon's 32-fd control buffer (MSG_CTRUNC): the
    # connection is closed without a reply, the kernel-truncated fds and the delivered ones are all
    # closed, and the daemon serves others.
    with Broker() as b:
        c = b.client()
        c.call("vm.list")
        base = daemon_files(b)
        rs, ws = pipe_probe(40)
        socket.send_fds(c.sock, [line(req("vm.list", id=1))], ws)
        for w in ws:
            os.close(w)
        assert_eof(c)
        assert_all_closed(rs)
        c.close()
        wait_fds(b, base)
        wait_connections(b, 0)
        assert b.call("vm.list") == {"vms": []}
        assert b.proc.poll() is None


# ---- clients that vanish ---------------------------------------------------------------------

def test_clients_vanishing_mid_request():
    # Peers that hang up half-way through a line, with fds pending, right after a request, or
    # with thousands of replies unread, cost the daemon nothing: it keeps serving and its fd count
    # returns to the baseline.
    cg = Cgroup("vanish")
    try:
        with Broker() as b:
            c0 = b.client()
            c0.call("vm.create", {"name": "g", "cgroup": cg.path, "options": {"handoff": "bound"}})
            c0.call("vm.attach", {"vm": "g", "device": SMMU})
            c0.call("vm.list")
            base = daemon_files(b)
            # half a line
            c = b.client()
            c.send_raw(b'{"jsonrpc":"2.0","method":"vm.li')
            c.close()
            # half a line carrying fds
            c = b.client()
            rs, ws = pipe_probe(3)
            c.send_raw(b'{"jsonrpc":"2.0"', ws)
            for w in ws:
                os.close(w)
            c.close()
            assert_all_closed(rs)
            # a request whose reply carries fds, then gone before the reply
            for _ in range(20):
                c = b.client()
                c.send_raw(line(req("vm.fds", id=1, params={"vm": "g"})) + line(req("rpc.discover", id=2)))
                c.close()
            # many requests, no reading, then gone
            c = b.client()
            c.send_raw(b"".join(line(req("rpc.discover", id=i)) for i in range(500)))
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
            # shut down writing only: the pending reply is still delivered
            c = b.client()
            c.send_raw(line(req("vm.list", id="last")))
            c.sock.shutdown(socket.SHUT_WR)
            r, _ = c.recv()
            assert r["id"] == "last" and len(r["result"]["vms"]) == 1, r
            c.close()
            wait_fds(b, base)
            wait_connections(b, 1)     # c0 only
            assert b.proc.poll() is None
            assert c0.call("vm.show", {"vm": "g"})["name"] == "g"
            c0.call("vm.destroy", {"vm": "g"})
    finally:
        cg.remove()


if __name__ == "__main__":
    run([test_jsonrpc_member_required, test_ids_echoed_exactly, test_notifications_get_nothing,
         test_parse_error_id_null_and_connection_survives, test_empty_batch_and_batch_of_numbers,
         test_method_not_found_and_invalid_params, test_server_errors_carry_name_and_errno,
         test_discover_matches_dispatch, test_frame_limit_exact_then_error_and_close,
         test_frame_limit_checked_before_buffering, test_depth_limit, test_batch_limit, test_max_connections,
         test_max_connections_per_uid, test_max_pending_backpressure, test_vm_fds_deliver_real_files,
         test_fds_to_fdless_methods_are_closed, test_fds_reach_the_request_they_came_with,
         test_too_many_fds_close_the_connection, test_clients_vanishing_mid_request])
