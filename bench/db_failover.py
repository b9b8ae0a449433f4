#!/usr/bin/python3
"""Database failover: power off -> PostgreSQL answering on the survivor, and what it lost.

A VM runs Debian's PostgreSQL 15 from its database disk on the shared storage, managed by
ocf:vmha:GuestService (started and stopped through the guest agent, checked with db_check)
and colocated with the VM and ordered after it (vmha.lab.database).  Per round, a client on
the VM's host commits numbered rows, one transaction each (``synchronous_commit`` on), and
then that host's plug is pulled.  ``db_serving_again_s`` is the time from the power-off to
the first query the database answers on the survivor: fencing, the VM's start, the guest's
boot, PostgreSQL's crash recovery and start, and its GuestService's start.  Afterwards every
acknowledged row is read back: ``committed_rows_lost`` (must be 0).

The VM resource is ocf:heartbeat:VirtualDomain, then ocf:vmha:VirtualMachine (``--agents``),
in one lab; the GuestService is the same for both (VirtualDomain has no service layer).  The
fencing delays that settle a partition are off, as in bench/failover.py: they add the same
3 s to either agent.  Per agent: the median over the rounds that measured it, the spread
(min, max), how many did, the rows acknowledged and lost in all; the ratio of the medians.

``ok``: the bench completed, every vmha round measured ``db_serving_again_s`` and lost no
acknowledged row (unknown is not 0), and the double-run checker sampled and saw no double run.
One JSON object last (sort_keys), the same keys when it stops on an error; what was not
measured is null.

Usage (root):  PYTHONPATH=lib /usr/bin/python3 bench/db_failover.py [--rounds N]
               [--agents heartbeat,vmha] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import reports  # bench/reports.py: median, ratio, range, the double-run verdict
from labrun import run_in_lab  # bench/labrun.py: up, checker, body, down
from vmha.lab import database, scenarios
from vmha.lab.config import AGENTS, LabConfig
from vmha.lab.lab import OCF_ROOT, Lab, LabError, wait_until
from vmha.ocf.runner import CommandError

RATIO_KEY = "db_serving_again_s_ratio_vmha_over_heartbeat"
MIN_ROWS = 100


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the figures: pure, no lab (tests/unit/test_bench_db.py) ---------------------------------


def round_result(r: int, got: Mapping[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """One round from ``DbFailover.to_json()`` (``got``), or from nothing when it raised."""
    d = dict(got or {})
    fo = d.get("failover") or {}
    return {
        "round": r,
        "error": error,
        "victim": d.get("victim"),
        "served_from": d.get("served_from"),
        "db_serving_again_s": d.get("db_serving_again_s"),
        "vm_failover_s": fo.get("failover_s"),
        "detection_s": fo.get("detection_s"),
        "fenced_s": fo.get("fenced_s"),
        "committed_rows_acknowledged": d.get("committed_rows_acknowledged"),
        "committed_rows_lost": d.get("committed_rows_lost"),
        "lost_numbers": d.get("lost_numbers"),
    }


def summary(rounds: Sequence[Mapping[str, Any]], error: str | None = None) -> dict[str, Any]:
    times = [rd.get("db_serving_again_s") for rd in rounds]
    lost = [rd.get("committed_rows_lost") for rd in rounds]
    acked = [rd.get("committed_rows_acknowledged") for rd in rounds]
    return {
        "error": error,
        "rounds_done": len(rounds),
        "rounds_measured": len(reports.known(times)),
        "db_serving_again_s": reports.median(times),
        "db_serving_again_s_spread": reports.range_of(reports.known(times)),
        "vm_failover_s": reports.median([rd.get("vm_failover_s") for rd in rounds]),
        # sums only when every round counted them: a round that raised leaves them unknown
        "committed_rows_acknowledged": sum(acked) if acked and all(n is not None for n in acked) else None,
        "committed_rows_lost": sum(lost) if lost and all(n is not None for n in lost) else None,
        "rounds": list(rounds),
    }


def vmha_ok(agent: Mapping[str, Any] | None, rounds: int) -> bool:
    if not agent or agent.get("error") is not None or rounds < 1:
        return False
    done = agent.get("rounds") or []
    return len(done) == rounds and all(
        rd.get("db_serving_again_s") is not None
        and rd.get("committed_rows_lost") == 0
        and (rd.get("committed_rows_acknowledged") or 0) > 0
        for rd in done
    )


def report(
    base: Mapping[str, Any],
    agents: Sequence[str],
    *,
    completed: bool,
    double_runs: list[dict[str, Any]] | None,
    double_run_samples: int | None,
) -> dict[str, Any]:
    out = dict(base)
    for key in ("rounds", "timeout_s", "error", "up", "down_problems", *agents):
        out.setdefault(key, None)
    out["agents"] = list(agents)
    out["double_runs"] = double_runs
    out["double_run_samples"] = double_run_samples
    out["double_run_seen"] = reports.double_run_verdict(double_runs, double_run_samples)
    hb, vm = out.get("heartbeat") or {}, out.get("vmha") or {}
    out[RATIO_KEY] = reports.ratio(vm.get("db_serving_again_s"), hb.get("db_serving_again_s"))
    out["ok"] = bool(
        completed
        and "vmha" in agents
        and vmha_ok(out.get("vmha"), out.get("rounds") or 0)
        and out["double_run_seen"] is False
    )
    return out


# -- the lab ----------------------------------------------------------------------------------


def bench_agent(lab: Lab, agent: str, index: int, args: argparse.Namespace, into: dict[str, Any]) -> None:
    """Puts ``into[agent]`` (``summary``) even when it stops; a round that raises is kept
    with null figures and its error, and a database that does not serve again stops the
    agent's rounds."""
    vm, service = f"vm{3 + index}", f"pg{3 + index}"
    done: list[dict[str, Any]] = []
    error: str | None = None
    try:
        database.create_vm(lab, vm, prefer=lab.hosts[0], agent=agent)
        database.create_service(lab, service, vm)
        for r in range(1, args.rounds + 1):
            if not scenarios.settle(lab, 180) or not wait_until(lambda: database.serving(lab, vm, service), 180, 0.5):
                error = f"{agent}: before round {r}: the database did not serve:\n{lab.crm_mon_text()}"
                return
            try:
                got = database.power_off(lab, vm, service, min_rows=MIN_ROWS, timeout=args.timeout)
            except (LabError, CommandError) as exc:
                done.append(round_result(r, None, str(exc)))
                say(f"{agent} round {r}: not measured: {exc}")
                continue
            rd = round_result(r, got.to_json())
            done.append(rd)
            say(
                f"{agent} round {r} ({rd['victim']} off): serving on {rd['served_from']} after "
                f"{rd['db_serving_again_s']}s (VM {rd['vm_failover_s']}s), {rd['committed_rows_acknowledged']} "
                f"commits acknowledged, {rd['committed_rows_lost']} lost"
            )
            lab.pcs("resource", "cleanup")
    finally:
        into[agent] = summary(done, error)
        if error:
            say(error)
        for rsc in (service, vm):
            try:
                if rsc == vm:
                    lab.delete_vm(vm)
                else:
                    lab.pcs("resource", "delete", rsc)
            except (LabError, CommandError) as exc:
                say(f"cannot delete {rsc}: {exc}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--agents", default="heartbeat,vmha")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for the database to serve, per round")
    args = p.parse_args(argv)
    agents = args.agents.split(",")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not agents or any(a not in AGENTS for a in agents):
        p.error(f"--agents: a comma-separated list of {', '.join(AGENTS)}")
    base: dict[str, Any] = {"rounds": args.rounds, "timeout_s": args.timeout, "error": None, "up": None}
    base["down_problems"] = None
    for agent in agents:
        base[agent] = None

    def check() -> None:
        needed = ["GuestService"] + (["VirtualMachine"] if "vmha" in agents else [])
        missing = [n for n in needed if not os.path.exists(os.path.join(OCF_ROOT, "vmha", n))]
        if missing:
            raise LabError(f"{', '.join(f'ocf:vmha:{n}' for n in missing)} not installed (make install)")

    def body(lab: Lab) -> None:
        for i, agent in enumerate(agents):
            bench_agent(lab, agent, i, args, base)

    cfg = LabConfig(nodes=2, agent=agents[0], vms=0, fencing_delays=False)
    run = run_in_lab(base, cfg, body, log=say, check=check)
    out = report(
        base, agents, completed=run.completed, double_runs=run.double_runs, double_run_samples=run.double_run_samples
    )
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
