"""The short soak (issue: about 8 faults in make test): its own two-host lab, after tests/lab's
is down, vmha.lab.soak's faults at their random moments, every invariant held.  The seed is
fixed so a red CI replays (``vmha lab soak --faults 8 --seed N``); VMHA_SOAK_SEED picks
another, and ``make bench-soak`` runs the long one with a new seed.  Asserted for every fault:
no double run, no acknowledged write lost, every VM back within the bound, and recovery at
the lowest layer that works (vmha.lab.soak.EXPECTED_LAYER)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest
from vmha.lab import soak
from vmha.lab.config import LabConfig
from vmha.lab.lab import Lab

AGENT = os.environ.get("VMHA_LAB_AGENT", "vmha")
SEED = int(os.environ.get("VMHA_SOAK_SEED", "20261203"))
FAULTS = 8

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(AGENT != "vmha", reason="the soak's layers are ocf:vmha's (GuestService, health)"),
]


def keep_logs(lab: Lab) -> str:
    """The events, the power switch's log and every host's Pacemaker and libvirt logs, copied
    to ``<lab root>/kept/soak-<seed>-<time>``; the directory's path."""
    dest = os.path.join(lab.paths.root, "kept", f"soak-{SEED}-{time.strftime('%Y%m%dT%H%M%S')}")
    shutil.copytree(lab.paths.log_dir, os.path.join(dest, "log"), dirs_exist_ok=True)
    nodes = os.path.join(lab.paths.run_dir, "nodes")
    for host in sorted(os.listdir(nodes)) if os.path.isdir(nodes) else []:
        for sub in ("var-log-pacemaker", "var-log-libvirt"):
            src = os.path.join(nodes, host, sub)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dest, host, sub), dirs_exist_ok=True)
    return dest


def test_short_soak() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (namespaces, mounts, cluster daemons)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    lab = Lab(log=log)
    try:
        lab.up(LabConfig(nodes=2, vms=0))
        soak.setup(lab, log)
        result = soak.run(lab, SEED, FAULTS, (), log)
    finally:
        problems = lab.down()
    print(json.dumps(result, sort_keys=True), file=sys.stderr)
    if not result.get("ok"):
        # the next lab reuses the run directory: what a person needs to explain a red soak is kept
        print(f"soak logs kept in {keep_logs(lab)}", file=sys.stderr)
    assert result["error"] is None, result["error"]
    assert len(result["faults"]) == FAULTS and {f["kind"] for f in result["faults"]} <= set(soak.KINDS)
    # safety and recovery, every fault: never two, nothing lost, every VM back within the bound
    assert result["writes_lost"] == 0 and result["double_run_seen"] is False, result
    unrecovered = [f for f in result["faults"] if any("layer" not in p for p in f["problems"])]
    assert not unrecovered, f"seed {SEED}: {json.dumps(unrecovered)}"
    # the lowest layer that works, every fault (a service ban that moved its VM is the one
    # known limit, README "The soak": marked in the fault's detail and expected as such)
    layers = [f"{f['kind']}: {p}" for f in result["faults"] for p in f["problems"] if "layer" in p]
    assert not layers, f"seed {SEED}: {layers}: {json.dumps(result['faults'])}"
    assert not problems, f"lab did not come down cleanly: {problems}"
