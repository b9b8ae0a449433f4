#!/usr/bin/python3
"""How long the operator's tools take on a healthy 2-host lab, beside Pacemaker's own.

The lab: two hosts, two VMs under ocf:vmha:VirtualMachine, a GuestService with a TCP and an
HTTP check in one of them, HypervisorHealth on both hosts.  On one host, in rounds, each
command runs once, in turn (so a load spike costs each the same): ``crm_mon -1`` and ``pcs
status`` (what an operator types today: the reference), ``vmha status --json`` (which also
asks crm_mon, the CIB, attrd, the fencer, both hosts' libvirt, the client checks and, for its
N+1 line, the scheduler twice) and ``vmha plan --json`` (the scheduler once per host
failure).  Wall time of each whole command, as a person waits for it; the medians over the
rounds.  Goal (issue 13): each vmha tool under 2 s.

``ok``: every round of every command answered (exit code of a healthy cluster: status 0 or 1,
plan 0) and both vmha medians are under the goal.  One JSON object last (sort_keys), the
same keys when it stops on an error; what was not measured is null.

Usage (root):  PYTHONPATH=lib /usr/bin/python3 bench/operator_tools.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import reports  # bench/reports.py: the figures, unknown kept null
from labrun import run_in_lab  # bench/labrun.py: up, checker, body, down
from vmha.lab import health, scenarios
from vmha.lab.config import LabConfig
from vmha.lab.lab import Lab, LabError, wait_until

GOAL_S = 2.0
LIB = str(Path(__file__).resolve().parent.parent / "lib")
COMMANDS = {
    "crm_mon": (["crm_mon", "-1"], (0,)),
    "pcs_status": (["pcs", "status"], (0,)),
    "vmha_status": ([sys.executable, "-m", "vmha.cli", "status", "--json"], (0, 1)),
    "vmha_plan": ([sys.executable, "-m", "vmha.cli", "plan", "--json"], (0,)),
}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="operator_tools.py", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="rounds of every command (default 7)")
    args = p.parse_args(argv)
    walls: dict[str, list[float | None]] = {k: [] for k in COMMANDS}
    rcs: dict[str, list[int]] = {k: [] for k in COMMANDS}
    base: dict[str, Any] = {"error": None, "rounds": args.rounds, "goal_s": GOAL_S}

    def body(lab: Lab) -> None:
        health.enable(lab)
        scenarios.create_guest_service(lab, "web1", "vm1")
        if not wait_until(lambda: (s := lab.crm()) is not None and s.started_on("web1") is not None, 120, 0.5):
            raise LabError("web1 did not start")
        host = lab.hosts[0]
        for cmd, _ in COMMANDS.values():  # warm-up: page cache, bytecode
            lab.exec(host, cmd, timeout=60, env={"PYTHONPATH": LIB})
        for r in range(args.rounds):
            for name, (cmd, good) in COMMANDS.items():
                t0 = time.monotonic()
                done = lab.exec(host, cmd, timeout=60, env={"PYTHONPATH": LIB})
                wall = time.monotonic() - t0
                rcs[name].append(done.rc)
                walls[name].append(round(wall, 3) if done.rc in good else None)
            say(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]}" for k, v in walls.items()))

    cfg = LabConfig(nodes=2, vms=2)
    run = run_in_lab(base, cfg, body, log=say)
    medians = {k: reports.median(v) for k, v in walls.items()}
    answered = all(len(v) == args.rounds and None not in v for v in walls.values())
    under = [medians[k] is not None and medians[k] < GOAL_S for k in ("vmha_status", "vmha_plan")]
    out = {
        **base,
        "completed": run.completed,
        "median_s": medians,
        "runs_s": walls,
        "rc": rcs,
        "goal_met": None if not run.completed else all(under),
        "ok": bool(run.completed and answered and all(under) and base.get("error") is None),
    }
    say(", ".join(f"{k} median {v} s" for k, v in medians.items()))
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
