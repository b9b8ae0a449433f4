#!/usr/bin/python3
"""Failover and live-migration time, ocf:heartbeat:VirtualDomain vs ocf:vmha:VirtualMachine.

Both agents run in the same lab (same hosts, same guest image, same corosync token), one
after the other: two VMs preferring different hosts, then per round a ``pcs resource move``
(migration_s: move issued -> Started on the target) and a pulled plug on the host of the
first VM (failover_s: power-off -> every VM of that host Started on the survivor).  The
double-run checker watches all of it.  Prints one JSON object last, with the medians per
agent and the ratio vmha / heartbeat (below 1 = vmha faster).

Usage (root):  PYTHONPATH=lib /usr/bin/python3 bench/failover.py [--rounds N] [--agents heartbeat,vmha]
Reference with token 1000 ms (VirtualDomain): failover 4.9 s, migration 6.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from vmha.lab import image, scenarios
from vmha.lab.checker import DoubleRunChecker
from vmha.lab.config import LabConfig
from vmha.lab.lab import OCF_ROOT, Lab, LabError
from vmha.lab.signals import interrupts_as_exceptions


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def bench_agent(lab: Lab, agent: str, rounds: int) -> dict[str, Any]:
    img = image.ensure(lab.paths.image_dir, lab.runner)
    names = [f"{agent[:2]}{i}" for i in (1, 2)]
    for name, host in zip(names, lab.hosts, strict=False):
        lab.create_vm(name, img, prefer=host, agent=agent)
    out: dict[str, Any] = {"migrations": [], "failovers": []}
    try:
        if not scenarios.settle(lab, 120):
            raise LabError(f"{agent}: VMs did not start")
        for r in range(rounds):
            vm = names[0]
            src = scenarios.locations(lab)[vm] or lab.hosts[0]
            dst = next(h for h in lab.hosts if h != src)
            m = scenarios.migrate(lab, vm, dst)
            out["migrations"].append(m.to_json())
            say(f"{agent} round {r + 1}: migration {m.started_s:.2f}s")
            # let the moved guest's monitor run once on its new host before pulling a plug
            time.sleep(2)
            fo = scenarios.power_off(lab, dst)
            out["failovers"].append(fo.to_json())
            say(f"{agent} round {r + 1}: failover {fo.failover_s}s fenced={fo.fenced}")
            if not scenarios.settle(lab, 180):
                raise LabError(f"{agent}: the cluster did not settle after round {r + 1}")
    finally:
        for name in names:
            try:
                lab.delete_vm(name)
            except LabError as exc:
                say(f"cannot delete {name}: {exc}")
    out["migration_s"] = median([m["migration_s"] for m in out["migrations"]])
    out["failover_s"] = median([f["failover_s"] for f in out["failovers"] if f["failover_s"] is not None])
    out["detection_s"] = median([f["detection_s"] for f in out["failovers"] if f["detection_s"] is not None])
    out["fenced"] = all(f["fenced"] for f in out["failovers"])
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--agents", default="heartbeat,vmha")
    args = p.parse_args(argv)
    agents = args.agents.split(",")
    report: dict[str, Any] = {"rounds": args.rounds, "token_ms": 1000, "ok": False}
    if "vmha" in agents and not os.path.exists(os.path.join(OCF_ROOT, "vmha", "VirtualMachine")):
        report["vmha_missing"] = "ocf:vmha:VirtualMachine is not installed (make install)"
        agents.remove("vmha")
    lab = Lab(log=say)
    checker = None
    try:
        with interrupts_as_exceptions():
            try:
                report["up"] = lab.up(LabConfig(nodes=2, agent=agents[0], vms=0))
                checker = DoubleRunChecker(lab.hosts, lab.host_pid).start()
                for agent in agents:
                    report[agent] = bench_agent(lab, agent, args.rounds)
                report["ok"] = True
            finally:
                if checker:
                    checker.stop()
                    report["double_runs"] = [i.to_json() for i in checker.incidents]
                    report["double_run_seen"] = bool(checker.incidents)
                report["down_problems"] = lab.down()
    except KeyboardInterrupt:
        report["error"] = "interrupted"
    except (LabError, OSError) as exc:
        report["error"] = str(exc)
    hb, vm = report.get("heartbeat", {}), report.get("vmha", {})
    for key in ("failover_s", "migration_s"):
        if hb.get(key) and vm.get(key):
            report[f"{key}_ratio_vmha_over_heartbeat"] = round(vm[key] / hb[key], 2)
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report["ok"] and not report.get("double_run_seen") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
