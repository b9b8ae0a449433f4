#!/usr/bin/python3
"""What the depth-10 guest check (a guest-agent ping) adds to a VirtualMachine monitor.

Runs the installed ``ocf:vmha:VirtualMachine monitor`` inside a lab host (``nsenter`` into
its namespaces, as the lab does), against a running lab guest, alternately with
``OCF_CHECK_LEVEL=10`` and ``0``, N times each; wall time per run, as pacemaker-execd would
see it (interpreter start included).  Its own resource instance name, so the cluster's
monitor state of that VM is not touched.  Prints one JSON object last, with the same keys
when it stops on an error (bench/reports.py: figures not measured are null, ``ok`` false).

Usage (root, a lab up):  PYTHONPATH=lib /usr/bin/python3 bench/guest_monitor.py [--runs N] [--vm vm1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import reports  # bench/reports.py: the figures, unknown kept null
from vmha.lab.lab import OCF_ROOT, Lab, LabError
from vmha.lab.signals import interrupts_as_exceptions
from vmha.ocf.runner import CommandError

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


Times = dict[int, list[float]]  # OCF_CHECK_LEVEL -> the wall time of each timed run
Codes = dict[int, list[int]]  # OCF_CHECK_LEVEL -> the exit code of each timed run


def measure(lab: Lab, host: str, vm: str, *, runs: int, times: Times, rcs: Codes) -> None:
    """Fills ``times``/``rcs`` run by run, so what was measured before an error is kept."""
    try:
        run_once(lab, host, vm, 10)  # warm the page cache and the agent's state file
        for _ in range(runs):
            for level in (0, 10):
                elapsed, rc = run_once(lab, host, vm, level)
                times[level].append(elapsed)
                rcs[level].append(rc)
    finally:
        # the bench instance's state file (the agent keeps one per resource instance)
        try:
            lab.exec(host, ["rm", "-f", f"/run/resource-agents/vmha-VirtualMachine-bench-{vm}.json"])
        except (LabError, CommandError, OSError) as exc:
            print(f"cannot remove the bench state file on {host}: {exc}", file=sys.stderr)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--vm", default="")
    args = ap.parse_args(argv)
    times: Times = {0: [], 10: []}
    rcs: Codes = {0: [], 10: []}
    vm: str | None = args.vm or None
    host: str | None = None
    error: str | None = None
    try:
        with interrupts_as_exceptions():
            lab = Lab(log=lambda _m: None)
            status = lab.crm()
            if status is None:
                raise LabError("no lab is up (vmha lab up)")
            vm = args.vm or next((v for v in lab.state.vms if status.started_on(v)), None)
            host = status.started_on(vm) if vm else None
            if not vm or not host:
                raise LabError(f"no Started lab VM {args.vm}".rstrip())
            measure(lab, host, vm, runs=args.runs, times=times, rcs=rcs)
    except KeyboardInterrupt:
        error = "interrupted"
    except (LabError, CommandError, OSError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug: its traceback on stderr, the JSON still last
        traceback.print_exc(file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}"
    report = reports.guest_monitor_report(vm, host, args.runs, times, rcs, error=error)
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
