"""Crash test: kill -9 at random points during a mixed workload of 256 guests, each
restart going through the fd-store harness (fdstore.py, systemd's role). After every restart:
each acknowledged guest is there with exactly its acknowledged devices (the one operation in
flight is whole or absent), nothing half-made remains, and the daemon's fds match the registry.

The workload is counted, not timed (issue 27): each round kills the daemon after a random number
of acknowledged operations, and the rounds add up to at least 2 operations per guest, enough for
the mix below (creates while a guest is missing, 5% destroys) to hold well over half the guests.
A slow machine (ASan, a busy 2-core box) does the same work, later."""
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time

from fdstore import ServiceManager
from ifbtest import SOURCE, Broker, Cgroup, run

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("fdstore_tests", os.path.join(HERE, "test-fdstore.py"))
fdstore_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fdstore_tests)
check_invariants = fdstore_tests.check_invariants
call_and_model = fdstore_tests.call_and_model
assert_matches_model = fdstore_tests.assert_matches_model
Killer = fdstore_tests.Killer

GUESTS = int(os.environ.get("IFB_CRASH_GUESTS", "256"))
ROUNDS = int(os.environ.get("IFB_CRASH_ROUNDS", "8"))


def test_kill9_during_mixed_workload_of_256_guests():
    # See the module docstring; the model is what the daemon acknowledged.
    seed = int(os.environ.get("IFB_SEED", "0")) or int(time.time())
    print("IFB_SEED=%d" % seed)
    rng = random.Random(seed)
    per_round = max(1, 2 * GUESTS // ROUNDS)
    tmpl = tempfile.mkdtemp(prefix="ifbcrash-tmpl-")
    devices = subprocess.run([sys.executable, os.path.join(SOURCE, "tests", "bench", "gen-template.py"),
                              os.path.join(tmpl, "t"), str(GUESTS * 2)],
                             check=True, capture_output=True, text=True).stdout.split()
    root = Cgroup("crash")
    names = ["g%03d" % i for i in range(GUESTS)]
    cgs = {}
    model = {}
    ops = kills = 0
    broker = Broker(args=["--emulated-template", os.path.join(tmpl, "t")],
                    config="[limits]\nmax-vms=%d\n" % (GUESTS + 8))
    try:
        with ServiceManager(broker=broker) as sm:
            for rnd in range(ROUNDS):
                # killed after 2-4 operations per guest and round (>= 2 per guest in all)
                killer = Killer(sm.proc.pid, rng.randint(per_round, 2 * per_round))
                while True:
                    owned = set().union(*model.values()) if model else set()
                    free = [d for d in devices if d not in owned]
                    name = rng.choice(names)
                    r = rng.random()
                    if name not in model:
                        if name not in cgs:
                            cgs[name] = root.child(name)
                        op = ("vm.create", {"name": name, "cgroup": cgs[name].path, "options": {"handoff": "bound"}})
                    elif r < 0.5 and free and len(model[name]) < 4:
                        op = ("vm.attach", {"vm": name, "devices": rng.sample(free, rng.randint(1, min(2, len(free))))})
                    elif r < 0.75 and model[name]:
                        op = ("vm.detach", {"vm": name, "device": rng.choice(sorted(model[name]))})
                    elif r < 0.8:
                        op = ("vm.destroy", {"vm": name})
                    else:
                        op = ("vm.show", {"vm": name})
                    in_doubt = call_and_model(sm, op, model)
                    if in_doubt:
                        break
                    ops += 1
                    killer.acknowledged()
                killer.reap(sm, in_doubt)
                kills += 1
                sm.pump()
                sm.start()
                vms, _ = check_invariants(sm)
                got = {n: {d["device"] for d in v["devices"]} for n, v in vms.items()}
                assert_matches_model(rnd, model, got, in_doubt)
                model = got
            print("%d acknowledged operations, %d kills, %d guests with %d devices at the end"
                  % (ops, kills, len(model), sum(len(d) for d in model.values())))
            assert ops >= ROUNDS * per_round, (ops, ROUNDS * per_round)
            assert len(model) >= GUESTS // 2, "%d operations left %d guests of %d" % (ops, len(model), GUESTS)
    finally:
        root.remove()
        subprocess.run(["rm", "-rf", tmpl])


if __name__ == "__main__":
    run([test_kill9_during_mixed_workload_of_256_guests])
