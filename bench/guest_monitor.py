#!/usr/bin/python3
"""What the depth-10 guest check (a guest-agent ping) adds to a VirtualMachine monitor.

Runs the installed ``ocf:vmha:VirtualMachine monitor`` inside a lab host (``nsenter`` into
its namespaces, as the lab does), against a running lab guest, alternately with
``OCF_CHECK_LEVEL=10`` and ``0``, N times each; wall time per run, as pacemaker-execd would
see it (interpreter start included).  Its own resource instance name, so the cluster's
monitor state of that VM is not touched.  Prints one JSON object last.

Usage (root, a lab up):  PYTHONPATH=lib /usr/bin/python3 bench/guest_monitor.py [--runs N] [--vm vm1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from vmha.lab.lab import OCF_ROOT, Lab

AGENT = os.path.join(OCF_ROOT, "vmha", "VirtualMachine")


def run_once(lab: Lab, host: str, vm: str, level: int) -> tuple[float, int]:
    env = {
        "OCF_ROOT": os.path.dirname(OCF_ROOT),
        "OCF_RESOURCE_INSTANCE": f"bench-{vm}",
        "OCF_RESOURCE_TYPE": "VirtualMachine",
        "OCF_RESKEY_config": os.path.join(lab.paths.vm_dir, f"{vm}.xml"),
        "OCF_RESKEY_hypervisor": "qemu:///system",
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "OCF_CHECK_LEVEL": str(level),
        "OCF_RESKEY_guest_agent_timeout": "5",
    }
    t0 = time.monotonic()
    done = lab.exec(host, [AGENT, "monitor"], timeout=60, env=env)
    return time.monotonic() - t0, done.rc


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--vm", default="")
    args = ap.parse_args(argv)
    lab = Lab(log=lambda _m: None)
    status = lab.crm()
    if status is None:
        print(json.dumps({"ok": False, "error": "no lab is up (vmha lab up)"}))
        return 1
    vm = args.vm or next((v for v in lab.state.vms if status.started_on(v)), "")
    host = status.started_on(vm) if vm else None
    if not host:
        print(json.dumps({"ok": False, "error": f"no Started lab VM {args.vm}"}))
        return 1
    times: dict[int, list[float]] = {0: [], 10: []}
    rcs: dict[int, set[int]] = {0: set(), 10: set()}
    run_once(lab, host, vm, 10)  # warm the page cache and the agent's state file
    for _ in range(args.runs):
        for level in (0, 10):
            elapsed, rc = run_once(lab, host, vm, level)
            times[level].append(elapsed)
            rcs[level].add(rc)
    # the bench instance's state file (the agent keeps one per resource instance)
    lab.exec(host, ["rm", "-f", f"/run/resource-agents/vmha-VirtualMachine-bench-{vm}.json"])
    med = {level: statistics.median(t) for level, t in times.items()}
    report: dict[str, Any] = {
        "ok": rcs == {0: {0}, 10: {0}},
        "vm": vm, "host": host, "runs": args.runs,
        "monitor_depth0_median_s": round(med[0], 3),
        "monitor_depth10_median_s": round(med[10], 3),
        "guest_ping_added_s": round(med[10] - med[0], 3),
        "depth0_range_s": [round(min(times[0]), 3), round(max(times[0]), 3)],
        "depth10_range_s": [round(min(times[10]), 3), round(max(times[10]), 3)],
        "exit_codes": {str(k): sorted(v) for k, v in rcs.items()},
    }
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
