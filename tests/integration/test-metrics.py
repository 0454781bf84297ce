"""The `metrics` method and `iommufdctl metrics` against the real daemon: the text parses with
Prometheus' own OpenMetrics parser (prometheus_client, Debian's python3-prometheus-client), has
the guest's series labelled with its name and UUID once `vm create` returned (its hand-off mode,
holders and VMM exits too), counts calls, errors and workers as they happen, and [metrics] textfile= writes the Prometheus text format atomically
for node_exporter's textfile collector."""
import json
import os
import sys
import time

from ifbtest import HANG, NEST_VTD, SMMU, Broker, Cgroup, Skip, peer_holding, reclaimed, run, wait_until

try:
    import prometheus_client  # noqa: F401
except ImportError:
    # meson may run us with a python3 that is not Debian's (pyenv): the parser is pure Python
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_prometheus_text
except ImportError:
    parse_openmetrics = parse_prometheus_text = None


def need_parser():
    if parse_openmetrics is None:
        raise Skip("no prometheus_client: install python3-prometheus-client (tools/install-deps test)")


def families(text, parser=None):
    """{family name: family} from the text, through Prometheus' parser."""
    return {f.name: f for f in (parser or parse_openmetrics)(text)}


def series(fams, family, **labels):
    """Samples of a family whose labels include labels."""
    return [s for s in fams[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]


def value(fams, family, sample_name=None, **labels):
    got = [s for s in series(fams, family, **labels) if sample_name is None or s.name == sample_name]
    assert len(got) == 1, (family, labels, got)
    return got[0].value


def test_guest_series_after_create():
    need_parser()
    with Cgroup("metrics") as cg, Broker() as b:
        # bound: the broker's workers allocate the IOAS and HWPTs, so they show in the metrics
        b.ctl("vm", "create", "web1", "--handoff", "bound", "--cgroup", cg.path, check=0)
        r = b.ctl("metrics", check=0)
        assert r.stderr == "", r.stderr
        assert r.stdout.endswith("# EOF\n"), r.stdout[-200:]
        fams = families(r.stdout)
        uuid = b.call("vm.show", {"vm": "web1"})["uuid"]
        # a series labelled with the guest's name, and its UUID
        assert value(fams, "ifb_vm_state", vm="web1", uuid=uuid, state="ready") == 1
        assert value(fams, "ifb_vm_state", vm="web1", state="pending") == 0
        assert value(fams, "ifb_vm_devices", vm="web1") == 0
        assert value(fams, "ifb_vm_handoff", vm="web1", uuid=uuid, handoff="bound") == 1
        assert value(fams, "ifb_vm_handoff", vm="web1", handoff="unbound") == 0
        assert value(fams, "ifb_vm_holders", vm="web1") == 0
        assert value(fams, "ifb_vm_vmm_exits", vm="web1") == 0
        assert value(fams, "ifb_vms") == 1
        assert value(fams, "ifb_rpc_calls", method="vm.create") == 1
        assert value(fams, "ifb_rpc_duration_seconds", "ifb_rpc_duration_seconds_count", method="vm.create") == 1
        spawned = sum(s.value for s in fams["ifb_worker_spawns"].samples)
        assert spawned >= 1 and spawned == b.call("broker.info")["workers"]["spawned"], fams["ifb_worker_spawns"]
        durations = sum(s.value for s in fams["ifb_worker_duration_seconds"].samples
                        if s.name == "ifb_worker_duration_seconds_count")
        assert durations == spawned, (durations, spawned)

        # attach: the device's owner and state, the guest's HWPT by kind
        b.ctl("vm", "attach", "web1", NEST_VTD[0], check=0)
        b.ctl("vm", "show", "nosuchguest", check=1)
        fams = families(b.ctl("metrics", check=0).stdout)
        assert value(fams, "ifb_vm_devices", vm="web1") == 1
        assert value(fams, "ifb_vm_hwpts", vm="web1", kind="nest-parent") == 1
        assert value(fams, "ifb_vm_hwpts", vm="web1", kind="plain") == 0
        assert value(fams, "ifb_device_owner", vm="web1", device=NEST_VTD[0]) == 1
        assert value(fams, "ifb_device_state", device=NEST_VTD[0], state="ready") == 1
        assert value(fams, "ifb_device_state", device=NEST_VTD[1], state="free") == 1
        assert not series(fams, "ifb_device_owner", device=NEST_VTD[1])
        assert value(fams, "ifb_rpc_errors", method="vm.show", error="no-such-vm") == 1
        assert value(fams, "ifb_rpc_calls", method="vm.attach") == 1
        # the guest cgroup's memory.stat, only where the memory controller is on cgroup2
        if b.call("broker.info")["accounting"]["memory_controller_on_cgroup2"]:
            assert value(fams, "ifb_vm_cgroup_sec_pagetables_bytes", vm="web1", uuid=uuid) >= 0
            assert value(fams, "ifb_vm_cgroup_kernel_bytes", vm="web1", uuid=uuid) > 0
        else:
            assert "ifb_vm_cgroup_kernel_bytes" not in fams, "memory.stat read from a cgroup without the controller"
            print("note: memory controller not on cgroup2 here: no memory.stat series (as designed)")

        # destroy: the guest's series go, the device is free again
        b.ctl("vm", "destroy", "web1", check=0)
        fams = families(b.ctl("metrics", check=0).stdout)
        assert not series(fams, "ifb_vm_state", vm="web1")
        assert value(fams, "ifb_device_state", device=NEST_VTD[0], state="free") == 1


def test_unbound_guest_and_its_vmm():
    # The default hand-off: no worker, no HWPT of the broker's; a VMM taking the fds is a holder,
    # and its exit is counted once the broker has replaced the context.
    need_parser()
    with Cgroup("metricsvmm") as cg, Broker() as b:
        b.ctl("vm", "create", "app1", "--cgroup", cg.path, check=0)
        b.ctl("vm", "attach", "app1", NEST_VTD[1], check=0)
        fams = families(b.ctl("metrics", check=0).stdout)
        assert value(fams, "ifb_vm_handoff", vm="app1", handoff="unbound") == 1
        assert value(fams, "ifb_vm_handoff", vm="app1", handoff="bound") == 0
        assert value(fams, "ifb_vm_hwpts", vm="app1", kind="nest-parent") == 0
        assert value(fams, "ifb_vm_devices", vm="app1") == 1
        assert value(fams, "ifb_device_owner", vm="app1", device=NEST_VTD[1]) == 1
        assert sum(s.value for s in fams["ifb_worker_spawns"].samples) == b.call("broker.info")["workers"]["spawned"]
        p, report = peer_holding(b, "app1", cg)
        try:
            assert report.get("ok"), report
            fams = families(b.ctl("metrics", check=0).stdout)
            assert value(fams, "ifb_vm_holders", vm="app1") == 1
        finally:
            p.kill()
            p.wait()
        reclaimed(b, "app1", 1)
        fams = families(b.ctl("metrics", check=0).stdout)
        assert value(fams, "ifb_vm_vmm_exits", vm="app1") == 1
        assert value(fams, "ifb_vm_holders", vm="app1") == 0
        b.ctl("vm", "destroy", "app1", check=0)


def test_viommu_objects():
    # A guest with a vIOMMU: the vIOMMU, its vEVENTQ and the device's vDEVICE, each counted by
    # kind while they exist, and gone from the counts when the device leaves (which takes them).
    need_parser()
    with Cgroup("metricsvi") as cg, Cgroup("metricsplain") as cg2, Broker() as b:
        b.call("vm.create", {"name": "vi1", "cgroup": cg.path,
                             "options": {"handoff": "bound", "viommu": "arm-smmuv3", "veventq_depth": 8}})
        b.ctl("vm", "create", "plain1", "--handoff", "bound", "--cgroup", cg2.path, check=0)
        fams = families(b.ctl("metrics", check=0).stdout)
        for kind in ("viommu", "veventq", "vdevice"):
            assert value(fams, "ifb_vm_viommu_objects", vm="vi1", kind=kind) == 0, kind
        b.call("vm.attach", {"vm": "vi1", "device": SMMU, "virt_id": 5})
        fams = families(b.ctl("metrics", check=0).stdout)
        assert value(fams, "ifb_vm_viommu_objects", vm="vi1", kind="viommu") == 1
        assert value(fams, "ifb_vm_viommu_objects", vm="vi1", kind="veventq") == 1
        assert value(fams, "ifb_vm_viommu_objects", vm="vi1", kind="vdevice") == 1
        assert value(fams, "ifb_vm_hwpts", vm="vi1", kind="nest-parent") == 1
        assert value(fams, "ifb_vm_viommu_objects", vm="plain1", kind="viommu") == 0
        b.call("vm.detach", {"vm": "vi1", "device": SMMU})
        fams = families(b.ctl("metrics", check=0).stdout)
        for kind in ("viommu", "veventq", "vdevice"):
            assert value(fams, "ifb_vm_viommu_objects", vm="vi1", kind=kind) == 0, kind


def test_latency_includes_the_worker():
    # The daemon answers vm.attach when its worker is done, from the main loop: the latency
    # counted for the call covers the worker's run. Each emulated bind takes 300 ms here.
    need_parser()
    with Cgroup("metricsslow") as cg, Broker(config="[emulated]\ndevice-reset-ms=300\n") as b:
        b.ctl("vm", "create", "slow1", "--handoff", "bound", "--cgroup", cg.path, check=0)
        b.ctl("vm", "attach", "slow1", NEST_VTD[0], check=0)
        fams = families(b.ctl("metrics", check=0).stdout)
        attach = value(fams, "ifb_rpc_duration_seconds", "ifb_rpc_duration_seconds_sum", method="vm.attach")
        workers = sum(s.value for s in fams["ifb_worker_duration_seconds"].samples
                      if s.name == "ifb_worker_duration_seconds_sum")
        assert attach >= 0.3, attach
        assert workers >= 0.3, workers
        assert value(fams, "ifb_rpc_duration_seconds", "ifb_rpc_duration_seconds_bucket", method="vm.attach", le="0.25") == 0
        assert value(fams, "ifb_workers_running") == 0 and value(fams, "ifb_workers_waiting") == 0
        print("vm.attach answered after %.3f s, its workers ran %.3f s in all" % (attach, workers))
        # Two attaches to one guest sent together: the second waits (parked) until the first's
        # worker is done, then runs its own. Its latency counts from its arrival: both together
        # take at least 0.3 + 0.6 s, not 0.3 + 0.3.
        b.ctl("vm", "detach", "slow1", NEST_VTD[0], check=0)
        c = b.client()
        c.request("vm.attach", {"vm": "slow1", "device": NEST_VTD[0]})
        c.request("vm.attach", {"vm": "slow1", "device": NEST_VTD[1]})
        replies = [c.recv()[0], c.recv()[0]]
        c.close()
        assert all("result" in r for r in replies), replies
        fams = families(b.ctl("metrics", check=0).stdout)
        total = value(fams, "ifb_rpc_duration_seconds", "ifb_rpc_duration_seconds_sum", method="vm.attach")
        assert value(fams, "ifb_rpc_duration_seconds", "ifb_rpc_duration_seconds_count", method="vm.attach") == 3
        assert total - attach >= 0.9, (total, attach)
        print("the two queued attaches: %.3f s counted" % (total - attach))
        b.ctl("vm", "destroy", "slow1", check=0)


def test_json_and_params():
    need_parser()
    with Broker() as b:
        doc = json.loads(b.ctl("--json", "metrics", check=0).stdout)
        assert doc["content_type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8", doc
        assert "ifb_build_info" in families(doc["text"])
        c = b.client()
        err = c.error("metrics", {"vm": "x"})
        assert err["data"]["name"] == "invalid-params" and "vm" in err["message"], err
        c.close()
        r = b.ctl("metrics", "extra", check=2)
        assert r.stderr.startswith("iommufdctl: metrics takes no arguments"), r.stderr


NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def scrape_with_node_exporter(directory):
    """What Debian's unmodified node_exporter serves with its textfile collector reading directory
    (every other collector off): the consumer [metrics] textfile= is written for."""
    import socket
    import subprocess
    import urllib.request
    if not os.access(NODE_EXPORTER, os.X_OK):
        raise Skip("no node_exporter: install prometheus-node-exporter (tools/install-deps test)")
    with socket.socket() as s:   # a free port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % port, "--collector.disable-defaults",
                             "--collector.textfile", "--collector.textfile.directory=" + directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    return r.read().decode()
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("node_exporter did not serve: %s" % proc.stderr.read().decode()[-2000:])
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()


def test_textfile():
    need_parser()
    with Cgroup("metricsfile") as cg:
        b = Broker(config="[metrics]\ninterval-sec=1\n")
        path = os.path.join(b.tmp, "textfile", "iommufd-broker.prom")
        os.mkdir(os.path.dirname(path))
        with open(b.config, "a") as f:
            f.write("textfile=%s\n" % path)
        with b:
            # written at start-up (right after the daemon starts listening), before any call
            wait_until(lambda: os.path.exists(path), "the textfile written at start-up")
            fams = families(open(path).read(), parse_prometheus_text)
            assert fams["ifb_vms"].samples[0].value == 0
            assert fams["ifb_rpc_calls"].type == "counter", fams["ifb_rpc_calls"]
            b.ctl("vm", "create", "db1", "--cgroup", cg.path, check=0)
            fams = wait_until(lambda: (lambda f: f if series(f, "ifb_vm_state", vm="db1") else None)(
                families(open(path).read(), parse_prometheus_text)), "db1 in the textfile", every=0.1)
            assert value(fams, "ifb_vm_state", vm="db1", state="ready") == 1
            scraped = scrape_with_node_exporter(os.path.dirname(path))
            assert "node_textfile_scrape_error 0" in scraped, scraped[-2000:]
            assert any(line.startswith("ifb_vm_state{") and 'vm="db1"' in line and 'state="ready"' in line
                       and line.endswith(" 1") for line in scraped.splitlines()), scraped[-2000:]
            # only the file itself: the temporary one was renamed over it
            assert os.listdir(os.path.dirname(path)) == ["iommufd-broker.prom"], os.listdir(os.path.dirname(path))
            assert "# EOF" not in open(path).read()
            b.ctl("vm", "destroy", "db1", check=0)


if __name__ == "__main__":
    run([test_guest_series_after_create, test_unbound_guest_and_its_vmm, test_viommu_objects, test_latency_includes_the_worker,
         test_json_and_params, test_textfile])
