#!/usr/bin/python3
"""Failover and live-migration time, ocf:heartbeat:VirtualDomain vs ocf:vmha:VirtualMachine.

Both agents run in the same lab (same hosts, same guest image, same corosync token), one
after the other: two VMs preferring different hosts, then per round a ``pcs resource move``
of a booted guest (migration_s: move issued -> Started on the target) and a pulled plug on
the host it moved to (failover_s: power-off -> every VM of that host Started on the
survivor).  Times are the cluster controllers' own (Pacemaker alerts, vmha.lab.events), so
the poll that notices them costs little CPU and adds no resolution error.

Each figure comes with its parts, so the agents are compared where they differ:
  migration: lead_in (pcs, its CIB write, the scheduler: the same for both agents),
             migrate_to, migrate_from, stop (the agent's operations, as they ran)
  failover:  detection_s (corosync), fenced_s (detection + scheduler + fencing: the cluster's
             share), agent_s = failover_s - fenced_s (the start of the VMs, the agent's share)
and whether the host that died was the DC.  Pacemaker 2.1's controller sleeps 1 s when a
surviving DC finds its own CIB updates still pending as it asks the scheduler
(do_pe_invoke_callback; a timer that does not wait since Pacemaker 3.0.2, commit 676b547):
a second between detection and fencing that lands on whichever agent the round happens to
be.  Rounds are split by it (``scheduler_stall``: fencing done >= 0.8 s after detection).

Prints one JSON object last: per agent the medians, and the ratios vmha / heartbeat (below
1 = vmha faster), overall and for the agent's share.  bench/reports.py builds it: a figure
not measured is null (and counted in ``rounds_measured``), a ratio with an unknown side is
null, and ``ok`` needs every round of every requested agent to have measured failover_s,
fenced_s and a confirmed fencing, each migration's liveness seen, and the double-run
checker to have sampled and seen none.  The same keys when it stops on an error.

Usage (root):  PYTHONPATH=lib /usr/bin/python3 bench/failover.py [--rounds N] [--agents heartbeat,vmha]
Reference with token 1000 ms (VirtualDomain): failover 4.9 s, migration 6.1 s (measured
there until ``pcs resource move`` returned, which includes pcs clearing its constraint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import reports  # bench/reports.py: the figures, unknown kept null
from labrun import run_in_lab  # bench/labrun.py: up, checker, body, down
from vmha.lab import image, scenarios
from vmha.lab.config import LabConfig
from vmha.lab.lab import OCF_ROOT, Lab, LabError


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def one_round(lab: Lab, agent: str, vm: str, r: int, boots: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``boots``: how many times ``vm`` has been started so far (its serial log counts the
    boots that got through): a guest still booting dirties memory and eats a core, which
    no user would migrate on purpose and which would time the boot, not the agent."""
    src = scenarios.locations(lab)[vm] or lab.hosts[0]
    dst = next(h for h in lab.hosts if h != src)
    if not scenarios.wait_boots(lab, vm, boots, 90):
        raise LabError(f"{vm} did not boot")
    time.sleep(1)  # the guest agent and the monitors settle after the boot mark
    m = reports.migration_round(scenarios.migrate(lab, vm, dst).to_json())
    say(f"{agent} round {r}: migration {m['migration_s']}s ({m['timing']}) steps {m['steps_s']}")
    # let the moved guest's monitor run once on its new host before pulling a plug
    time.sleep(2)
    status = lab.crm()
    was_dc = None if status is None or not status.dc else status.dc == dst  # unknown without crm_mon
    # fencing itself takes ~0.1 s here; a second more between losing the node and fencing it
    # is the surviving DC's controller waiting out Pacemaker 2.1's sleep(1) (see the top):
    # reports.failover_round derives agent_s and scheduler_stall, None when a side is unknown
    fo = reports.failover_round(scenarios.power_off(lab, dst).to_json(), was_dc)
    say(
        f"{agent} round {r}: failover {fo['failover_s']}s (detected {fo['detection_s']}, fenced "
        f"{fo['fenced_s']}, agent {fo['agent_s']}, starts {fo['start_exec_s']}, DC died: {was_dc})"
    )
    if not scenarios.settle(lab, 180):
        raise LabError(f"{agent}: the cluster did not settle after round {r}")
    return m, fo


def bench_agent(lab: Lab, agent: str, rounds: int, into: dict[str, Any]) -> None:
    """Puts ``into[agent]`` (reports.agent_summary) even when a round fails: the rounds
    done so far are kept, ``rounds_done`` says how many, and ``ok`` is then false."""
    img = image.ensure(lab.paths.image_dir, lab.runner)
    names = [f"{agent[:2]}{i}" for i in (1, 2)]
    migs: list[dict[str, Any]] = []
    fos: list[dict[str, Any]] = []
    try:
        for name, host in zip(names, lab.hosts, strict=False):
            lab.create_vm(name, img, prefer=host, agent=agent)
        if not scenarios.settle(lab, 120):
            raise LabError(f"{agent}: VMs did not start")
        boots = 1
        for r in range(1, rounds + 1):
            m, fo = one_round(lab, agent, names[0], r, boots)
            migs.append(m)
            fos.append(fo)
            boots += 1  # the moved VM was on the host that lost power: it booted again
    finally:
        into[agent] = reports.agent_summary(migs, fos, rounds)
        for name in names:
            try:
                lab.delete_vm(name)
            except LabError as exc:
                say(f"cannot delete {name}: {exc}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--agents", default="heartbeat,vmha")
    args = p.parse_args(argv)
    agents = args.agents.split(",")
    # every key is there from the start (null = not reached), so an error changes no key
    report: dict[str, Any] = {"rounds": args.rounds, "token_ms": 1000, "error": None, "up": None}
    report["down_problems"] = report["vmha_missing"] = None
    requested = list(agents)
    if "vmha" in agents and not os.path.exists(os.path.join(OCF_ROOT, "vmha", "VirtualMachine")):
        report["vmha_missing"] = "ocf:vmha:VirtualMachine is not installed (make install)"
        agents.remove("vmha")
    for agent in requested:
        report[agent] = None  # not measured until bench_agent says otherwise

    def check() -> None:
        if not agents:
            raise LabError(f"no agent to bench (--agents {args.agents})")

    def body(lab: Lab) -> None:
        for agent in agents:
            bench_agent(lab, agent, args.rounds, report)

    # the agents' speed: without the partition fencing delays (they add
    # priority-fencing-delay to a failover of the busier host, for either agent)
    cfg = LabConfig(nodes=2, agent=agents[0] if agents else "vmha", vms=0, fencing_delays=False)
    run = run_in_lab(report, cfg, body, log=say, check=check)
    # ok: completed, every requested agent measured and ok, the checker watched and saw none
    report = reports.failover_report(
        report,
        requested,
        completed=run.completed,
        double_runs=run.double_runs,
        double_run_samples=run.double_run_samples,
    )
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
