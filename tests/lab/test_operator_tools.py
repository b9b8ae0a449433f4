"""The operator's tools on the real lab: what a person types on a cluster node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from vmha.lab import scenarios
from vmha.lab.lab import Lab, wait_until

pytestmark = pytest.mark.lab

LIB = str(Path(__file__).resolve().parents[2] / "lib")


def vmha(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``vmha ARGS`` from this checkout, as the machine's root runs it."""
    env = {**os.environ, "PYTHONPATH": LIB}
    return subprocess.run(  # noqa: S603 - our own command, an argument list
        [sys.executable, "-m", "vmha.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_lab_exec_runs_inside_the_host(watched: Lab) -> None:
    lab = watched
    host = lab.hosts[1]
    # its own UTS namespace (the host's name) and its own cluster (crm_mon answers there)
    done = vmha("lab", "exec", host, "--", "hostname")
    assert done.returncode == 0 and done.stdout.strip() == host, done
    mon = vmha("lab", "exec", host, "--", "crm_mon", "-1", "--output-as=xml")
    assert mon.returncode == 0 and f'<node name="{host}"' in mon.stdout, mon.stderr
    # the command's exit code is passed on; the lab's own failure is 125 with one line
    assert vmha("lab", "exec", host, "--", "sh", "-c", "exit 7").returncode == 7
    bad = vmha("lab", "exec", "no-such-host", "--", "true")
    assert bad.returncode == 125 and bad.stderr.startswith("vmha lab exec: no lab host 'no-such-host'"), bad
    empty = vmha("lab", "exec", host)
    assert empty.returncode == 125 and "no command given" in empty.stderr


def _utilization(lab: Lab, rsc: str, name: str) -> str:
    done = lab.exec(lab.hosts[0], ["crm_resource", "--resource", rsc, "--utilization", "--get-parameter", name])
    return done.stdout.strip()


def _plan(host: str, *args: str) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    done = vmha("lab", "exec", host, "--", sys.executable, "-m", "vmha.cli", "plan", "--json", *args)
    wall = time.monotonic() - start
    assert done.returncode in (0, 1), done
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]), wall


def test_plan_with_a_host_too_small(watched: Lab) -> None:
    """vmha plan on the live lab: node capacity as an operator (or HypervisorHealth) sets it,
    VM utilization as VirtualMachine publishes it, Pacemaker's scheduler on a copy of the
    live CIB.  A host too small for its peer's VMs is N+1 not met, by the figure; the cluster
    itself is not touched."""
    lab = watched
    status = lab.crm()
    assert status is not None
    # L: where vm1 runs; S: the other host, given room for its own VMs only
    large = status.started_on("vm1")
    assert large in lab.hosts, status.resources
    small = next(h for h in lab.hosts if h != large)
    needs = [_utilization(lab, vm, "hv_memory") for vm in ("vm1", "vm2")]
    assert needs == ["128", "128"], f"VirtualMachine publishes each lab VM's 128 MiB as hv_memory: {needs}"
    before = {vm: status.started_on(vm) for vm in ("vm1", "vm2")}
    try:
        lab.pcs("node", "utilization", large, "cpu=8", "hv_memory=1024", "host_memory=4096")
        lab.pcs("node", "utilization", small, "cpu=8", "hv_memory=200", "host_memory=4096")
        lab.pcs("property", "set", "placement-strategy=utilization")
        rc, report, wall = _plan(small)
        print(f"vmha plan on the lab (2 hosts, {report['vms']} VMs): {wall:.2f} s", file=sys.stderr)
        scenarios = {s["name"]: s for s in report["scenarios"]}
        lost = scenarios[f"{large} fails"]
        assert rc == 1 and report["verdict"] == "not met" and lost["verdict"] == "not met", report
        stopped = [v for v in lost["vms"] if v["outcome"] == "stopped"]
        assert len(stopped) == 1 and stopped[0]["from"] == large, lost
        assert "hv_memory" in stopped[0]["reason"] and f"on {small}" in stopped[0]["reason"], stopped[0]
        short = {s["attribute"]: s for s in lost["shortfalls"]}
        assert short["hv_memory"]["needed"] == 128 and short["hv_memory"]["largest_free_on"] == small, short
        assert scenarios[f"{small} fails"]["verdict"] == "met", scenarios
        # a standby of the large host before its maintenance: the same answer
        rc, report, _ = _plan(small, "--standby", large)
        assert rc == 1 and report["scenarios"][0]["verdict"] == "not met", report
        # the fix the report names: room on the small host
        lab.pcs("node", "utilization", small, "hv_memory=1024")
        rc, report, _ = _plan(large)
        assert rc == 0 and report["verdict"] == "met", report
        # asking changed nothing: the VMs are where they were, none stopped or moved
        after = lab.crm()
        assert after is not None and {vm: after.started_on(vm) for vm in before} == before
    finally:
        lab.pcs("property", "unset", "placement-strategy")
        for host in (large, small):
            lab.pcs("node", "utilization", host, "cpu=", "hv_memory=", "host_memory=")


def _status(host: str, *args: str, timeout: float = 60) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    done = vmha("lab", "exec", host, "--", sys.executable, "-m", "vmha.cli", "status", "--json", *args, timeout=timeout)
    wall = time.monotonic() - start
    assert done.returncode in (0, 1, 2, 3), done
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]), wall


def test_status_healthy_then_during_a_power_off_and_after(watched: Lab) -> None:
    """vmha status on the live lab: every layer of a healthy VM (its host, libvirt, guest
    agent, the service in it and its client path, fencing, N+1); then a host powered off:
    the status answers within its timeout (the dead host is shown, not waited for), says
    down, and once the cluster has recovered shows the VM on the survivor and the host fenced."""
    lab = watched
    scenarios.create_guest_service(lab, "web9", "vm1")
    try:
        assert wait_until(lambda: (s := lab.crm()) is not None and s.started_on("web9") is not None, 90, 0.5)
        status = lab.crm()
        assert status is not None
        victim = status.started_on("vm1")
        assert victim in lab.hosts
        survivor = next(h for h in lab.hosts if h != victim)
        # from the peer: the service's checks are its host's to run (the guest network stays there)
        rc, snap, _ = _status(survivor)
        assert snap["problems"] == [] and rc in (0, 1), snap
        web = next(s for v in snap["vms"] if v["id"] == "vm1" for s in v["services"] if s["id"] == "web9")
        assert web["checks"] and all(c["ok"] is None for c in web["checks"]), web
        rc, snap, wall = _status(victim)
        print(
            f"vmha status on the lab (2 hosts, healthy): {wall:.2f} s, its own {snap['elapsed_s']} s", file=sys.stderr
        )
        assert snap["problems"] == [] and rc in (0, 1), snap
        hosts = {h["name"]: h for h in snap["hosts"]}
        assert all(h["state"] == "online" and h["libvirt"] == "answers" for h in hosts.values()), hosts
        assert all(h["fence_devices"] == ["fence-lab"] for h in hosts.values()), hosts
        vms = {v["id"]: v for v in snap["vms"]}
        assert vms["vm1"]["hosts"] == [victim] and vms["vm1"]["guest_agent"] == "connected", vms["vm1"]
        web = next(s for s in vms["vm1"]["services"] if s["id"] == "web9")
        assert [c["ok"] for c in web["checks"]] == [True, True], web
        assert snap["cluster"]["n_plus_1"] == "met" and snap["cluster"]["stonith_enabled"] is True

        # the plug pulled: asked at once from the survivor
        reply = lab.power.request(f"off {victim}", 30.0)
        assert reply.startswith("OFF"), reply
        t0 = time.monotonic()
        rc, snap, wall = _status(survivor, "--timeout", "5")
        print(f"vmha status right after {victim} lost power: rc {rc} in {wall:.2f} s", file=sys.stderr)
        assert wall < 5 + 3, f"status took {wall:.1f}s with a host gone"
        hosts = {h["name"]: h for h in snap["hosts"]}
        if hosts[victim]["state"] == "online":  # corosync has not noticed yet (its token timeout)
            assert hosts[victim]["libvirt"] != "answers", hosts[victim]
            assert rc in (1, 2)
        else:
            assert rc == 2 and hosts[victim]["state"] in ("offline", "unclean"), hosts[victim]
            assert any(p.startswith(f"host {victim} is") for p in snap["problems"]), snap["problems"]

        # recovered: vm1 on the survivor, the victim fenced (the lab's fence device powers it back on)
        assert wait_until(lambda: (s := lab.crm(survivor)) is not None and s.started_on("vm1") == survivor, 120, 0.5)
        assert wait_until(lambda: (s := lab.crm(survivor)) is not None and s.started_on("web9") == survivor, 120, 0.5)
        print(f"vm1 and web9 on {survivor} {time.monotonic() - t0:.1f} s after the power-off", file=sys.stderr)
        rc, snap, _ = _status(survivor)
        vms = {v["id"]: v for v in snap["vms"]}
        hosts = {h["name"]: h for h in snap["hosts"]}
        assert vms["vm1"]["hosts"] == [survivor] and hosts[victim]["fenced_at"] is not None, snap
        web = next(s for s in vms["vm1"]["services"] if s["id"] == "web9")
        assert web["hosts"] == [survivor] and all(c["ok"] for c in web["checks"]), web
    finally:
        want = sorted(lab.hosts)
        wait_until(lambda: (st := lab.crm()) is not None and st.online() == want, 120, 0.5)
        lab.pcs("resource", "delete", "web9", timeout=120)
