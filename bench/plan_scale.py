#!/usr/bin/python3
"""How long ``vmha plan`` takes as a cluster grows: synthetic CIBs of 2 to 32 hosts and 40 to
1000 VMs, every single-host failure planned, wall time of the whole command.

The CIBs look like a running cluster's, because the scheduler's work depends on it:
placement-strategy=balanced, node utilization (cpu, hv_memory, host_memory, as
HypervisorHealth publishes it) sized so that N+1 is met, VM utilization (cpu, hv_memory,
host_memory, as VirtualMachine publishes it), a location preference per VM for its home host,
resource-stickiness, a fence device and a HypervisorHealth clone, and a status section as
the controller writes it: every node a member, every VM started on its home host (start and
recurring monitor, with transition keys, call ids and the parameter digests Pacemaker
computes, so nothing looks changed) and probed "not running" on every other node.  A CIB with
every VM stopped would make the scheduler place everything from scratch, which no live
cluster asks of it.

``build_cib`` is also what tests/integration/test_plan_simulate.py builds its small CIBs
with.

Run: ``cd /work/main && .venv/bin/python bench/plan_scale.py [--runs N] [--sizes 2x40,32x1000]
[--study] [--json]``.  ``--study`` also times single crm_simulate runs at the largest size
(the CIB as read vs the copy vmha plan gives the scheduler; --run vs --simulate; with
--show-scores --show-utilization).  With ``--json`` one object is the last line
(bench/reports.py: a figure not measured is null).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reports  # bench/reports.py: the figures, unknown kept null

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
CRM_SIMULATE = "/usr/sbin/crm_simulate"
FEATURE_SET = "3.16.1"
DC_VERSION = "2.1.5-a3f44794f94"
UUID = "5f0c3a52-8d1e-4b8a-9c61-2f9e0c7d4b11"
GOAL_S = 10.0
DEFAULT_SIZES = ((2, 40), (4, 100), (8, 250), (16, 500), (32, 1000))
CPUS = os.cpu_count() or 1
PLAN = "import sys; from vmha.ops.plan import main; sys.exit(main(sys.argv[1:]))"


# -- synthetic CIBs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSpec:
    name: str
    cpu: int
    memory_mib: int
    online: bool = True
    standby: bool = False
    attrs: Sequence[str] = ("cpu", "hv_memory", "host_memory")  # the utilization it declares


@dataclass(frozen=True)
class VmSpec:
    name: str
    cpu: int
    memory_mib: int
    host: str | None  # where it runs now; None: stopped
    prefers: Sequence[tuple[str, int]] = ()  # location scores
    agent: str = "vmha"  # or "VirtualDomain"
    allow_migrate: bool = False
    meta: dict[str, str] = field(default_factory=dict)


def digest(params: dict[str, str]) -> str:
    """Pacemaker's op-digest: MD5 of the sorted parameters as it serializes them."""
    body = "".join(f' {k}="{v}"' for k, v in sorted(params.items()))
    return hashlib.md5(f" <parameters{body}/>\n".encode()).hexdigest()  # noqa: S324 - Pacemaker's digest


def _nv(parent: ET.Element, prefix: str, name: str, value: object) -> None:
    ET.SubElement(parent, "nvpair", id=f"{prefix}-{name}", name=name, value=str(value))


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    # "class" is a Python keyword: pass it as class_
    return ET.SubElement(parent, tag, {k.rstrip("_").replace("__", "-"): v for k, v in attrs.items()})


class _History:
    def __init__(self) -> None:
        self.call = 0

    def op(
        self, lrm: ET.Element, rsc: str, node: str, task: str, *, interval_ms: int, rc: int, params: dict[str, str]
    ) -> None:
        self.call += 1
        key = f"{self.call}:1:{7 if rc == 7 else 0}:{UUID}"
        op_id = f"{rsc}_last_0" if interval_ms == 0 else f"{rsc}_monitor_{interval_ms}"
        attrs = {
            "id": op_id,
            "operation_key": f"{rsc}_{task}_{interval_ms}",
            "operation": task,
            "crm-debug-origin": "do_update_resource",
            "crm_feature_set": FEATURE_SET,
            "transition-key": key,
            "transition-magic": f"0:{rc};{key}",
            "exit-reason": "",
            "on_node": node,
            "call-id": str(self.call),
            "rc-code": str(rc),
            "op-status": "0",
            "interval": str(interval_ms),
            "last-rc-change": "1700000000",
            "exec-time": "120",
            "queue-time": "0",
            "op-digest": digest(params),
        }
        ET.SubElement(lrm, "lrm_rsc_op", attrs)


def build_cib(
    hosts: Sequence[HostSpec],
    vms: Sequence[VmSpec],
    *,
    placement_strategy: str = "balanced",
    stickiness: int = 100,
    stonith: bool = True,
    health_clone: bool = True,
    probes: bool = True,
) -> bytes:
    """A CIB of a running cluster (see the top); ``probes``: record on every node the probe
    that found each resource not running there, as a live cluster does."""
    cib = ET.Element(
        "cib",
        {
            "crm_feature_set": FEATURE_SET,
            "validate-with": "pacemaker-3.9",
            "epoch": "42",
            "num_updates": "0",
            "admin_epoch": "0",
            "have-quorum": "1",
            "dc-uuid": "1",
        },
    )
    conf = ET.SubElement(cib, "configuration")
    props = _el(ET.SubElement(conf, "crm_config"), "cluster_property_set", id="cib-bootstrap-options")
    for name, value in (
        ("have-watchdog", "false"),
        ("dc-version", DC_VERSION),
        ("cluster-infrastructure", "corosync"),
        ("cluster-name", "bench"),
        ("stonith-enabled", "true" if stonith else "false"),
        ("placement-strategy", placement_strategy),
    ):
        _nv(props, "cib-bootstrap-options", name, value)
    nodes = ET.SubElement(conf, "nodes")
    ids = {}
    for i, h in enumerate(hosts, 1):
        ids[h.name] = str(i)
        node = _el(nodes, "node", id=str(i), uname=h.name)
        if h.standby:
            _nv(_el(node, "instance_attributes", id=f"nodes-{i}"), f"nodes-{i}", "standby", "on")
        util = _el(node, "utilization", id=f"nodes-{i}-utilization")
        for attr in h.attrs:
            _nv(util, f"nodes-{i}-utilization", attr, h.cpu if attr == "cpu" else h.memory_mib)

    resources = ET.SubElement(conf, "resources")
    if stonith:
        fence = _el(resources, "primitive", id="fence", class_="stonith", type="fence_dummy")
        _el(_el(fence, "operations"), "op", id="fence-monitor-60s", name="monitor", interval="60s", timeout="20s")
    if health_clone:
        clone = _el(resources, "clone", id="hh-clone")
        hh = _el(clone, "primitive", id="hh", class_="ocf", provider="vmha", type="HypervisorHealth")
        _el(_el(hh, "operations"), "op", id="hh-monitor-10s", name="monitor", interval="10s", timeout="20s")
    for vm in vms:
        provider, kind = ("vmha", "VirtualMachine") if vm.agent == "vmha" else ("heartbeat", "VirtualDomain")
        prim = _el(resources, "primitive", id=vm.name, class_="ocf", provider=provider, type=kind)
        _nv(_el(prim, "instance_attributes", id=f"{vm.name}-instance_attributes"), vm.name, "config", _config(vm))
        meta = dict(vm.meta)
        if vm.allow_migrate:
            meta["allow-migrate"] = "true"
        if meta:
            ma = _el(prim, "meta_attributes", id=f"{vm.name}-meta_attributes")
            for k, v in meta.items():
                _nv(ma, f"{vm.name}-meta_attributes", k, v)
        util = _el(prim, "utilization", id=f"{vm.name}-utilization")
        _nv(util, f"{vm.name}-utilization", "cpu", vm.cpu)
        _nv(util, f"{vm.name}-utilization", "hv_memory", vm.memory_mib)
        _nv(util, f"{vm.name}-utilization", "host_memory", vm.memory_mib)
        ops = _el(prim, "operations")
        _el(ops, "op", id=f"{vm.name}-monitor-10s", name="monitor", interval="10s", timeout="30s")
    constraints = ET.SubElement(conf, "constraints")
    for vm in vms:
        for node, score in vm.prefers:
            _el(constraints, "rsc_location", id=f"loc-{vm.name}-{node}", rsc=vm.name, node=node, score=str(score))
    defaults = _el(ET.SubElement(conf, "rsc_defaults"), "meta_attributes", id="rsc_defaults-options")
    _nv(defaults, "rsc_defaults-options", "resource-stickiness", stickiness)

    status = ET.SubElement(cib, "status")
    history = _History()
    first = next((h.name for h in hosts if h.online), None)
    for h in hosts:
        nid = ids[h.name]
        if not h.online:
            _el(
                status, "node_state", id=nid, uname=h.name, in_ccm="false", crmd="offline", join="down", expected="down"
            )
            continue
        state = _el(status, "node_state", id=nid, uname=h.name, in_ccm="true", crmd="online", join="member")
        state.set("expected", "member")
        state.set("crm-debug-origin", "do_update_resource")
        lrms = ET.SubElement(_el(state, "lrm", id=nid), "lrm_resources")
        if stonith:
            lr = _el(lrms, "lrm_resource", id="fence", type="fence_dummy", class_="stonith")
            if h.name == first:
                history.op(lr, "fence", h.name, "start", interval_ms=0, rc=0, params={})
                history.op(
                    lr, "fence", h.name, "monitor", interval_ms=60000, rc=0, params={"CRM_meta_timeout": "20000"}
                )
            else:
                history.op(lr, "fence", h.name, "monitor", interval_ms=0, rc=7, params={})
        if health_clone:
            lr = _el(lrms, "lrm_resource", id="hh", type="HypervisorHealth", class_="ocf", provider="vmha")
            history.op(lr, "hh", h.name, "start", interval_ms=0, rc=0, params={})
            history.op(lr, "hh", h.name, "monitor", interval_ms=10000, rc=0, params={"CRM_meta_timeout": "20000"})
        for vm in vms:
            if vm.host != h.name and not probes:
                continue
            provider, kind = ("vmha", "VirtualMachine") if vm.agent == "vmha" else ("heartbeat", "VirtualDomain")
            lr = _el(lrms, "lrm_resource", id=vm.name, type=kind, class_="ocf", provider=provider)
            params = {"config": _config(vm)}
            if vm.host == h.name:
                history.op(lr, vm.name, h.name, "start", interval_ms=0, rc=0, params=params)
                history.op(
                    lr,
                    vm.name,
                    h.name,
                    "monitor",
                    interval_ms=10000,
                    rc=0,
                    params={**params, "CRM_meta_timeout": "30000"},
                )
            else:
                history.op(lr, vm.name, h.name, "monitor", interval_ms=0, rc=7, params=params)
    return ET.tostring(cib)


def _config(vm: VmSpec) -> str:
    return f"/etc/vmha/{vm.name}.xml"


SIZES_CPU = (1, 2, 4, 2)
SIZES_MEM = (2048, 4096, 8192, 4096)


def scale_cib(n_hosts: int, n_vms: int, *, probes: bool = True) -> bytes:
    """``n_vms`` VMs of mixed sizes spread round-robin over ``n_hosts`` hosts, each host sized
    so that the busiest one's VMs fit on the others with 15 % to spare (N+1 met)."""
    hosts = [f"ha{i}" for i in range(1, n_hosts + 1)]
    vms = []
    load_cpu = dict.fromkeys(hosts, 0)
    load_mem = dict.fromkeys(hosts, 0)
    for j in range(n_vms):
        home = hosts[j % n_hosts]
        cpu, mem = SIZES_CPU[j % len(SIZES_CPU)], SIZES_MEM[(j // n_hosts) % len(SIZES_MEM)]
        load_cpu[home] += cpu
        load_mem[home] += mem
        vms.append(VmSpec(f"vm{j + 1}", cpu, mem, home, prefers=((home, 50),)))
    spread = n_hosts / (n_hosts - 1) * 1.15
    cpu = math.ceil(max(load_cpu.values()) * spread)
    mem = math.ceil(max(load_mem.values()) * spread)
    return build_cib([HostSpec(h, cpu, mem) for h in hosts], vms, probes=probes)


# -- timing ---------------------------------------------------------------------------------


def timed(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, int, str, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return time.perf_counter() - start, done.returncode, done.stdout, done.stderr


def plan_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(LIB), "LC_ALL": "C"}


def run_plan(cib: Path, timeout: float) -> tuple[float, int, dict[str, Any] | None, str]:
    argv = [sys.executable, "-c", PLAN, "--cib", str(cib), "--json", "--timeout", str(timeout)]
    wall, rc, out, err = timed(argv, plan_env(), timeout + 30)
    lines = out.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else None
    except ValueError:
        found = None
    return wall, rc, found, err.strip()


def prepared_copy(cib: Path, dest: Path) -> None:
    """The copy vmha plan hands the scheduler (its prepare_copy), for the --study figures."""
    sys.path.insert(0, str(LIB))
    from vmha.ops import plan

    root = plan.parse_xml(cib.read_bytes(), str(cib))
    plan.prepare_copy(root, plan.read_cluster(root))
    from lxml import etree

    dest.write_bytes(etree.tostring(root))


def one_simulate(cib: Path, tmp: Path, *extra: str) -> float | None:
    argv = [CRM_SIMULATE, f"--xml-file={cib}", "--output-as=xml", f"--save-output={tmp / 'saved.xml'}", *extra]
    wall, rc, _, _ = timed(argv, {"PATH": "/usr/sbin:/usr/bin", "LC_ALL": "C"})
    return round(wall, 3) if rc == 0 else None


@dataclass
class SizeResult:
    hosts: int
    vms: int
    cib_bytes: int
    walls: list[float | None] = field(default_factory=list)
    rcs: list[int] = field(default_factory=list)
    scenarios: int | None = None
    verdict: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": self.hosts,
            "vms": self.vms,
            "cib_bytes": self.cib_bytes,
            "scenarios": self.scenarios,
            "runs_s": self.walls,
            "median_s": reports.median(self.walls),
            "rc": self.rcs,
            "verdict": self.verdict,
            "error": self.error,
        }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    found = []
    for part in text.split(","):
        h, _, v = part.strip().partition("x")
        found.append((int(h), int(v)))
    return found


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="plan_scale.py", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed runs per size (default 3)")
    p.add_argument("--sizes", default=",".join(f"{h}x{v}" for h, v in DEFAULT_SIZES), help="HOSTSxVMS,...")
    p.add_argument("--timeout", type=float, default=300.0, help="vmha plan --timeout (default 300)")
    p.add_argument("--study", action="store_true", help="time single crm_simulate runs at the largest size")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    args = p.parse_args(argv)
    results: list[SizeResult] = []
    study: dict[str, float | None] | None = None
    error = None
    load_before = os.getloadavg()[0]
    print(f"vmha plan over every single-host failure; {CPUS} CPUs, load {load_before:.2f}; goal < {GOAL_S:g} s")
    try:
        with tempfile.TemporaryDirectory(prefix="vmha-plan-bench-") as tmpdir:
            tmp = Path(tmpdir)
            sizes = parse_sizes(args.sizes)
            for n_hosts, n_vms in sizes:
                cib = tmp / f"cib-{n_hosts}x{n_vms}.xml"
                cib.write_bytes(scale_cib(n_hosts, n_vms))
                res = SizeResult(n_hosts, n_vms, cib.stat().st_size)
                results.append(res)
                run_plan(cib, args.timeout)  # warm-up: page cache, Python's bytecode
                for _ in range(args.runs):
                    wall, rc, found, err = run_plan(cib, args.timeout)
                    res.rcs.append(rc)
                    res.walls.append(round(wall, 3) if rc in (0, 1) else None)
                    if found is not None:
                        res.scenarios, res.verdict = len(found["scenarios"]), found["verdict"]
                    if rc not in (0, 1) and res.error is None:
                        res.error = err.splitlines()[-1] if err else f"rc {rc}"
                med = reports.median(res.walls)
                print(
                    f"{n_hosts:>3} hosts {n_vms:>5} VMs  CIB {res.cib_bytes / 1e6:6.1f} MB  "
                    f"{res.scenarios or 0:>3} scenarios  median {med if med is not None else 'n/a':>7} s  "
                    f"runs {res.walls}  verdict {res.verdict}" + (f"  error: {res.error}" if res.error else "")
                )
            if args.study and sizes:
                n_hosts, n_vms = max(sizes)
                study = run_study(tmp, tmp / f"cib-{n_hosts}x{n_vms}.xml")
    except KeyboardInterrupt:
        error = "interrupted"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    largest = max(results, key=lambda r: (r.hosts, r.vms)) if results else None
    largest_s = reports.median(largest.walls) if largest else None
    goal_met = None if largest_s is None or largest is None or largest.hosts < 32 else largest_s < GOAL_S
    report = {
        "error": error,
        "runs": args.runs,
        "cpus": CPUS,
        "load": [load_before, os.getloadavg()[0]],
        "goal_s": GOAL_S,
        "goal_met": goal_met,
        "sizes": [r.to_json() for r in results],
        "study": study,
    }
    print(f"goal (32 hosts, 1000 VMs under {GOAL_S:g} s): {goal_met}")
    if args.json:
        print(json.dumps(report))
    return 0 if error is None else 1


def run_study(tmp: Path, cib: Path) -> dict[str, float | None]:
    """Single crm_simulate runs, first host failing, at the largest size."""
    copy = tmp / "copy.xml"
    prepared_copy(cib, copy)
    fail = "--node-fail=ha1"
    cases = {
        "as_read_run": (cib, ("--run", fail)),
        "as_read_simulate": (cib, ("--simulate", fail)),
        "copy_run": (copy, ("--run", fail)),
        "copy_simulate": (copy, ("--simulate", fail)),
        "copy_run_scores_utilization": (copy, ("--run", "--show-scores", "--show-utilization", fail)),
        "copy_status_only": (copy, ()),
    }
    found: dict[str, float | None] = {}
    sizes = f"{cib.stat().st_size / 1e6:.1f} MB; copy {copy.stat().st_size / 1e6:.1f} MB"
    print(f"single crm_simulate runs on {cib.name} ({sizes}):")
    for name, (path, extra) in cases.items():
        found[name] = one_simulate(path, tmp, *extra)
        print(f"  {name:<30} {found[name]} s")
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
