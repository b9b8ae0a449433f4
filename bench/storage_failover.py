#!/usr/bin/python3
"""Storage failover time, ocf:heartbeat:VirtualDomain vs ocf:vmha:VirtualMachine.

One host loses its path to the shared storage, cut (every I/O fails at once) or hung (no
I/O ever returns), and ``storage_failover_s`` is the time from the loss to every VM of that
host Started again (vmha.lab.vmcp.storage_loss: elsewhere, or on the same host once it was
fenced and came back with a fresh path).  HypervisorHealth (ours: ocf:vmha:HypervisorHealth
with ``shared_storage``) runs as a clone for both agents and node-health-strategy is
migrate-on-red, so the same thing turns the host red for either agent and Pacemaker moves
whatever runs there, VirtualDomain's VMs included: what differs is what each agent does with
a guest whose disk no longer answers.  On a hung path VirtualDomain's migrate_to is expected
to wait out its 120 s timeout before anything else happens.

Both agents run in the same lab (same hosts, same guest image, same health clone), one
after the other: two VMs preferring different hosts, then per round one storage loss per
mode (``--modes``, default cut then hang) on the host running the most VMs.  Times are the
cluster controllers' own (Pacemaker alerts, vmha.lab.events).  Each round also records the
host's red time (``red_s``), whether the cluster fenced it for a failed stop
(``fenced_by_cluster_s``, ``stop_failed``), each VM's own time, how long the host took to
rejoin, and what the guests' disk writers lost (``writes_lost``: records the guest was told
were written and that are not on the disk).

A round whose VMs are not back within ``--timeout`` (or that fails otherwise in the lab) is
kept with ``storage_failover_s`` null and its error, the host is reset, and the bench goes
on.  For VirtualDomain that is a finding about the agent, reported, not a failure of the
bench.  ``ok`` is the verdict on ours: the bench completed, every round of every mode of
ocf:vmha:VirtualMachine measured ``storage_failover_s`` with ``writes_lost`` 0, and the
double-run checker sampled and saw no double run (of either agent's VMs).

Prints one JSON object last (sort_keys), the same keys when it stops on an error; a figure
not measured is null (bench/reports.py's rule), a ratio with an unknown side is null.

Usage (root):  PYTHONPATH=lib /usr/bin/python3 bench/storage_failover.py [--rounds N]
               [--agents heartbeat,vmha] [--modes cut,hang] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import reports  # bench/reports.py: median, ratio, the double-run verdict
from labrun import run_in_lab  # bench/labrun.py: up, checker, body, down
from vmha.lab import health, image, scenarios, vmcp
from vmha.lab.config import AGENTS, LabConfig
from vmha.lab.lab import OCF_ROOT, Lab, LabError, wait_until
from vmha.ocf.runner import CommandError

MODES = ("cut", "hang")
RATIO_KEY = "storage_failover_s_ratio_vmha_over_heartbeat"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the figures: pure, no lab (tests/unit/test_bench_storage.py) -----------------------------


def round_result(
    r: int, mode: str, host: str | None, loss: Mapping[str, Any] | None, error: str | None = None
) -> dict[str, Any]:
    """One round as the JSON keeps it, from ``StorageLoss.to_json()`` (``loss``), or from
    nothing when the round raised (``loss`` None, ``error`` its text): every key is there
    either way, and what was not measured is None, never {} (which would read "none")."""
    got = dict(loss or {})
    # stop_failed and the host's operations come from the alerts only: polled, {} says
    # nothing about whether a stop failed
    by_alerts = got.get("timing") == "alerts"
    writes = got.get("writes") or {}
    by_vm = writes.get("writes_by_vm")
    return {
        "round": r,
        "mode": mode,
        "host": host,
        "error": error,
        "vms": got.get("vms"),
        "storage_failover_s": got.get("storage_failover_s"),
        "red_s": got.get("red_s"),
        "per_vm_s": got.get("per_vm_s"),
        "moved_to": got.get("moved_to"),
        "guest_states": got.get("guest_states"),
        "fenced_by_cluster_s": got.get("fenced_by_cluster_s"),
        "stop_failed": got.get("stop_failed") if by_alerts else None,
        "ops_on_host": got.get("stops") if by_alerts else None,
        "fenced": got.get("fenced"),
        "rejoin_s": got.get("rejoin_s"),
        "timing": got.get("timing"),
        # over each VM's whole life so far (its serial log holds every boot): a loss in one
        # round shows again in every later round of the same VM; summary() counts it once
        "writes_lost": writes.get("writes_lost"),
        "writes_acknowledged": writes.get("writes_acknowledged"),
        "writes_lost_by_vm": None if by_vm is None else {vm: (w or {}).get("writes_lost") for vm, w in by_vm.items()},
    }


def new_losses(rounds: Sequence[Mapping[str, Any]]) -> list[int | None]:
    """Per round (in the order they ran, every mode), the lost records not already counted
    by an earlier round of the same VMs; None when a VM's count is unknown in that round."""
    seen: dict[str, int] = {}
    out: list[int | None] = []
    for rd in rounds:
        by_vm: Mapping[str, int | None] = rd.get("writes_lost_by_vm") or {}
        known = rd.get("writes_lost") is not None and bool(by_vm) and all(n is not None for n in by_vm.values())
        new = 0
        for vm, n in by_vm.items():
            if n is None:
                continue
            new += max(0, n - seen.get(vm, 0))
            # never lower: a record lost on the disk leaves the writer's window of slots later
            seen[vm] = max(seen.get(vm, 0), n)
        out.append(new if known else None)
    return out


def summary(rounds: Sequence[Mapping[str, Any]], modes: Sequence[str], error: str | None = None) -> dict[str, Any]:
    """One agent: ``rounds`` (``round_result``s in the order they ran) split by mode, each
    mode with the medians over the rounds that measured them, how many did, and the records
    lost in its rounds (None when a round's count is unknown, or there was no round).
    ``error``: why the agent's bench stopped before its last round (None: it did not)."""
    out: dict[str, Any] = {"error": error, "rounds_done": len(rounds)}
    fresh = new_losses(rounds)
    for mode in modes:
        mine = [dict(rd, writes_lost_new=n) for rd, n in zip(rounds, fresh) if rd.get("mode") == mode]
        times = [rd.get("storage_failover_s") for rd in mine]
        new = [rd["writes_lost_new"] for rd in mine]
        out[mode] = {
            "storage_failover_s": reports.median(times),
            "red_s": reports.median([rd.get("red_s") for rd in mine]),
            "rounds_done": len(mine),
            "rounds_measured": len(reports.known(times)),
            "writes_lost": sum(new) if new and all(n is not None for n in new) else None,
            "rounds": mine,
        }
    return out


def vmha_ok(agent: Mapping[str, Any] | None, modes: Sequence[str], rounds: int) -> bool:
    """Every round asked, of every mode, ran, measured ``storage_failover_s`` and lost no
    record (``writes_lost`` 0: unknown is not 0), and the agent's bench did not stop."""
    if not agent or agent.get("error") is not None or rounds < 1 or not modes:
        return False
    for mode in modes:
        done = (agent.get(mode) or {}).get("rounds") or []
        if len(done) != rounds:
            return False
        if any(rd.get("storage_failover_s") is None or rd.get("writes_lost") != 0 for rd in done):
            return False
    return True


def report(
    base: Mapping[str, Any],
    agents: Sequence[str],
    modes: Sequence[str],
    *,
    completed: bool,
    double_runs: list[dict[str, Any]] | None,
    double_run_samples: int | None,
) -> dict[str, Any]:
    """The final object: ``base`` (rounds, up, the agents' summaries, error ...) with every
    key there even when never reached (null), the ratios vmha / heartbeat per mode (null
    when a side is unknown), the double-run verdict and ``ok`` (see the top)."""
    out = dict(base)
    for key in ("rounds", "timeout_s", "error", "up", "down_problems", *agents):
        out.setdefault(key, None)
    out["agents"] = list(agents)
    out["modes"] = list(modes)
    out["double_runs"] = double_runs
    out["double_run_samples"] = double_run_samples
    out["double_run_seen"] = reports.double_run_verdict(double_runs, double_run_samples)
    hb, vm = out.get("heartbeat") or {}, out.get("vmha") or {}
    out[RATIO_KEY] = {
        mode: reports.ratio(
            (vm.get(mode) or {}).get("storage_failover_s"), (hb.get(mode) or {}).get("storage_failover_s")
        )
        for mode in modes
    }
    # heartbeat's rounds are not judged: a VirtualDomain that does not recover is a finding
    out["ok"] = bool(
        completed
        and "vmha" in agents
        and vmha_ok(out.get("vmha"), modes, out.get("rounds") or 0)
        and out["double_run_seen"] is False
    )
    return out


# -- the lab ----------------------------------------------------------------------------------


def ready(lab: Lab, timeout: float) -> str | None:
    """None when every host is online and green and every VM Started; else what is not."""
    if not scenarios.settle(lab, timeout):
        return f"the cluster did not settle within {timeout:.0f}s: {scenarios.locations(lab)}"
    # a host still red takes no VM: the next loss would then have nowhere to send them
    want = {h: "green" for h in lab.hosts}
    if not wait_until(lambda: health.colours(lab) == want, 120, scenarios.POLL_S):
        return f"hosts not all green: {health.colours(lab)}"
    return None


def reset_after_failure(lab: Lab, host: str) -> None:
    """After a round that raised: the host may still have no path to the storage (the
    fencing storage_loss ends with did not happen), and a hung path may hold writes that
    would land under a VM now running elsewhere.  So it is reset as an operator would
    (fenced: it comes back with a fresh path, nothing queued survives), then the failed
    operations are cleared so the scheduler places the VMs again."""
    survivor = next((h for h in lab.hosts if h != host), None)
    try:
        lab.pcs("stonith", "fence", host, host=survivor, timeout=120)
    except (LabError, CommandError) as exc:
        say(f"cannot fence {host}: {exc}")  # the cluster may be fencing it already
    try:
        lab.pcs("resource", "cleanup")
    except (LabError, CommandError) as exc:
        say(f"pcs resource cleanup: {exc}")


def bench_agent(lab: Lab, agent: str, args: argparse.Namespace, modes: list[str], into: dict[str, Any]) -> None:
    """Puts ``into[agent]`` (``summary``) even when it stops: the rounds done so far are
    kept.  A round that fails is kept too (null figures, its error); a cluster that does
    not settle again stops this agent's rounds (``error``).  Anything else raises."""
    img = image.ensure(lab.paths.image_dir, lab.runner)
    names = [f"{agent[:2]}{i}" for i in (1, 2)]
    done: list[dict[str, Any]] = []
    error: str | None = None
    health_on = False
    try:
        for name, host in zip(names, lab.hosts, strict=False):
            lab.create_vm(name, img, prefer=host, agent=agent)
        if not scenarios.settle(lab, 120):
            raise LabError(f"{agent}: VMs did not start")
        health_on = True  # from here on it is removed again, even when enable fails half-way
        health.enable(lab)
        for r in range(1, args.rounds + 1):
            for mode in modes:
                problem = ready(lab, 180)
                if problem:
                    error = f"{agent}: before round {r} ({mode}): {problem}"
                    return
                host = scenarios.busiest(lab)
                try:
                    loss = vmcp.storage_loss(lab, host, mode, timeout=args.timeout)
                except (LabError, CommandError) as exc:
                    done.append(round_result(r, mode, host, None, str(exc)))
                    say(f"{agent} round {r} ({mode}, {host}): not measured: {exc}")
                    reset_after_failure(lab, host)
                    problem = ready(lab, 240)
                    if problem:
                        error = f"{agent}: after round {r} ({mode}) failed: {problem}"
                        return
                    continue
                rd = round_result(r, mode, host, loss.to_json())
                done.append(rd)
                say(
                    f"{agent} round {r} ({mode}, {host}): storage failover {rd['storage_failover_s']}s "
                    f"(red {rd['red_s']}, fenced by the cluster {rd['fenced_by_cluster_s']}, per VM "
                    f"{rd['per_vm_s']}, failed stops {rd['stop_failed']}), writes lost {rd['writes_lost']}, "
                    f"rejoined after {rd['rejoin_s']}s"
                )
    finally:
        into[agent] = summary(done, modes, error)
        if error:
            say(error)
        if health_on:
            try:
                health.disable(lab)
            except (LabError, CommandError) as exc:
                say(f"cannot remove the health clone: {exc}")
        for name in names:
            try:
                lab.delete_vm(name)
            except (LabError, CommandError) as exc:
                say(f"cannot delete {name}: {exc}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--agents", default="heartbeat,vmha")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for the VMs to be back, per round")
    args = p.parse_args(argv)
    agents = args.agents.split(",")
    modes = args.modes.split(",")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not agents or any(a not in AGENTS for a in agents):
        p.error(f"--agents: a comma-separated list of {', '.join(AGENTS)}")
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: a comma-separated list of {', '.join(MODES)}")
    # every key is there from the start (null = not reached), so an error changes no key
    base: dict[str, Any] = {"rounds": args.rounds, "timeout_s": args.timeout, "error": None, "up": None}
    base["down_problems"] = None
    for agent in agents:
        base[agent] = None  # not measured until bench_agent says otherwise

    def check() -> None:
        # HypervisorHealth turns the host red for either agent: without it nothing moves
        needed = ["HypervisorHealth"] + (["VirtualMachine"] if "vmha" in agents else [])
        missing = [n for n in needed if not os.path.exists(os.path.join(OCF_ROOT, "vmha", n))]
        if missing:
            raise LabError(f"{', '.join(f'ocf:vmha:{n}' for n in missing)} not installed (make install)")

    def body(lab: Lab) -> None:
        for agent in agents:
            bench_agent(lab, agent, args, modes, base)

    # the fencing delays stay as a user has them: a storage loss is no partition
    # (priority-fencing-delay weighs only the fencing of a lost node), but the
    # tie-breaker's pcmk_delay_base also delays a fencing of ha1 for a failed stop
    # (hang), which each round's "host" tells
    run = run_in_lab(base, LabConfig(nodes=2, agent=agents[0], vms=0), body, log=say, check=check)
    out = report(
        base,
        agents,
        modes,
        completed=run.completed,
        double_runs=run.double_runs,
        double_run_samples=run.double_run_samples,
    )
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
