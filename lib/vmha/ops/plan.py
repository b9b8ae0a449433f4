"""``vmha plan``: N+1 admission control, answered by Pacemaker's own scheduler.

For every scenario asked (each host failing alone; with ``--failures K`` every set of K
hosts failing together; each ``--standby HOST``) the scheduler runs on a copy of the CIB
with that scenario applied, so the answer carries the cluster's own placement-strategy,
utilization, constraints and stickiness.  This module reads the transition the scheduler
prints and says, per VM, whether it stays, moves (to which host) or stays stopped, and why
a stopped one found no place, in operator terms (which utilization is short, by how much,
and where the most of it is free).

How a scenario is applied (``crm_simulate --xml-file=COPY --run --output-as=xml --save-output=FILE``):

- A host failure is the host's ``node_state`` exactly as ``crm_simulate --node-fail=HOST``
  writes it (in_ccm=false, the controller still an expected member, the resource history
  kept), so the scheduler fences the host and recovers what ran there.  It is written into
  the copy rather than asked of crm_simulate, which then skips a pass over the whole CIB
  (modify, query back, unpack again): a quarter of its time on a large one.  The transition
  is the same (tests/integration/test_plan_simulate.py compares the two).
  (``--node-down`` would be a clean shutdown: history dropped, no fencing.)
- A standby is ``standby=on`` among the host's node attributes in the copy; crm_simulate
  has no option for it.
- ``--run`` computes the transition without executing it.  ``--simulate`` would also
  execute it in the copy and print the resulting status, at three times the cost on a large
  CIB; the placement it shows is the one the transition's summary already gives.

The copy differs from the CIB read only in ways that change the scheduler's work, never a
placement:

- Resource history that only says "not running here" (a probe that found the resource
  stopped, a clean stop) is dropped, and ``enable-startup-probes=false`` makes the scheduler
  assume, where it now finds no history, exactly that: not running.  On a large cluster this
  history (every resource on every node) is most of the CIB and most of the scheduler's time.
- When no node has a fail count, ``migration-threshold=0`` ("never force away") is set as a
  resource default: with no failures the threshold cannot be reached, and the scheduler then
  skips a fail-count lookup (a regular expression compiled) per resource and node.

Free capacity, for the explanations, is each host's utilization minus the utilization of
every resource the transition leaves or places there.

Exit codes: 0 every VM has a place in every scenario (N+1 met), 1 some scenario leaves a VM
stopped (not met), 2 bad input, 3 cannot tell (CIB unreadable, crm_simulate failed or ran
out of time).  A scenario that is not met outranks one that could not be told.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

from vmha.deadline import Deadline
from vmha.ocf.runner import CommandError, CommandRunner
from vmha.ops import cluster_env

MET, NOT_MET, BAD_INPUT, UNKNOWN = 0, 1, 2, 3
DEFAULT_TIMEOUT_S = 30.0
CRM_SIMULATE = "crm_simulate"
CIBADMIN = "cibadmin"

# (class, provider, type) of a VM resource -> whether vmha manages it
VM_AGENTS = {("ocf", "vmha", "VirtualMachine"): True, ("ocf", "heartbeat", "VirtualDomain"): False}
# utilization attributes counted in MiB (VirtualMachine and HypervisorHealth publish these)
MIB_ATTRIBUTES = frozenset({"hv_memory", "host_memory"})


class BadInput(Exception):
    """Exit 2: the operator asked for something this CIB cannot answer."""


class CannotTell(Exception):
    """Exit 3: the CIB or the scheduler did not answer."""


# -- facts read from the CIB ----------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    name: str
    capacity: Mapping[str, int]
    online: bool


@dataclass(frozen=True)
class Vm:
    name: str
    agent: str  # "ocf:vmha:VirtualMachine"
    ours: bool  # managed by vmha (VirtualMachine), not VirtualDomain
    needs: Mapping[str, int]


@dataclass
class Cluster:
    hosts: dict[str, Host]  # configured cluster nodes, in CIB order
    vms: dict[str, Vm]
    needs: dict[str, dict[str, int]]  # utilization of every primitive (VMs and others)
    placement_strategy: str
    bans: dict[str, list[tuple[str, str]]]  # resource -> (node, constraint id) of -INFINITY locations
    fail_counts: bool  # some node has a fail count in the status section

    @property
    def online(self) -> list[str]:
        return [h.name for h in self.hosts.values() if h.online]


def parse_xml(data: bytes, what: str) -> Any:
    """An XML document parsed without entities, DTDs or network (as vmha.ocf.cluster reads
    cibadmin's answers).  Raises ValueError naming ``what``.

    ``huge_tree``: a large cluster's CIB saved on one line (cibadmin --query answers so with
    some options, and so does lxml) passes libxml2's 10 MB limit per line; with no entities
    and no DTD the limit protects nothing here."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{what} is not XML: {exc.msg}") from None


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _utilization(el: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for nv in el.iterfind("utilization/nvpair"):
        number = _int(nv.get("value"))
        if nv.get("name") and number is not None:
            found.setdefault(str(nv.get("name")), number)
    return found


def _truthy(value: str | None) -> bool:
    """A node_state flag: "true"/"online"/"member", or (Pacemaker 2.1.7+) a timestamp."""
    return value not in (None, "", "false", "no", "0", "offline", "down")


def _props(root: Any, section: str, set_tag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for nv in root.iterfind(f"configuration/{section}/{set_tag}/nvpair"):
        found.setdefault(str(nv.get("name")), str(nv.get("value", "")))
    return found


def read_cluster(root: Any) -> Cluster:
    """What the plan needs to know from a CIB document.  Raises BadInput."""
    if root.tag != "cib" or root.find("configuration") is None:
        raise BadInput("not a CIB: no <cib><configuration>")
    online = set()
    for ns in root.iterfind("status/node_state"):
        if _truthy(ns.get("in_ccm")) and _truthy(ns.get("crmd")) and ns.get("join") != "down":
            online.add(ns.get("uname"))
    hosts: dict[str, Host] = {}
    for node in root.iterfind("configuration/nodes/node"):
        if node.get("type") not in (None, "member", "normal") or not node.get("uname"):
            continue  # remote and ping nodes host no VM of ours
        name = str(node.get("uname"))
        hosts[name] = Host(name, _utilization(node), name in online)
    if not hosts:
        raise BadInput("the CIB names no cluster node")

    templates = {t.get("id"): t for t in root.iterfind("configuration/resources/template")}
    vms: dict[str, Vm] = {}
    needs: dict[str, dict[str, int]] = {}
    for prim in root.iterfind("configuration/resources//primitive"):
        rid = str(prim.get("id"))
        tmpl = templates.get(prim.get("template"))
        own = _utilization(prim)
        needs[rid] = {**(_utilization(tmpl) if tmpl is not None else {}), **own}

        def attr(name: str, prim: Any = prim, tmpl: Any = tmpl) -> str:
            return str(prim.get(name) or (tmpl.get(name) if tmpl is not None else "") or "")

        key = (attr("class"), attr("provider"), attr("type"))
        in_clone = any(a.tag in ("clone", "master", "bundle") for a in prim.iterancestors())
        if key in VM_AGENTS and not in_clone:
            vms[rid] = Vm(rid, ":".join(key), VM_AGENTS[key], needs[rid])

    bans: dict[str, list[tuple[str, str]]] = {}
    for loc in root.iterfind("configuration/constraints/rsc_location"):
        if loc.get("node") and str(loc.get("score", "")).lower() in ("-infinity", "-inf"):
            bans.setdefault(str(loc.get("rsc")), []).append((str(loc.get("node")), str(loc.get("id"))))

    strategy = _props(root, "crm_config", "cluster_property_set").get("placement-strategy", "default")
    fail_counts = any(
        str(nv.get("name", "")).startswith("fail-count-")
        for nv in root.iterfind("status/node_state/transient_attributes/instance_attributes/nvpair")
    )
    return Cluster(hosts, vms, needs, strategy, bans, fail_counts)


# -- the copy the scheduler reads -----------------------------------------------------------


def _inert(op: Any) -> bool:
    """History that only says "not running here": a completed probe that found it stopped, or
    a completed clean stop."""
    if op.get("op-status") != "0" or op.get("interval", "0") != "0":
        return False
    task, rc = op.get("operation"), op.get("rc-code")
    return bool((task == "monitor" and rc == "7") or (task == "stop" and rc == "0"))


class Edits:
    """Changes made to a tree, undone in reverse order: one parsed copy serves every scenario."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str | None, str | None]] = []  # (element, attribute or None, old value)

    def set(self, el: Any, name: str, value: str) -> None:
        self._undo.append((el, name, el.get(name)))
        el.set(name, value)

    def add(self, parent: Any, tag: str, **attrs: str) -> Any:
        from lxml import etree

        child = etree.SubElement(parent, tag, attrs)
        self._undo.append((child, None, None))
        return child

    def nvpair(self, parent: Any, set_tag: str, set_id: str, name: str, value: str) -> None:
        """``name=value`` in every ``set_tag`` under ``parent`` that has it, else in the first."""
        sets = parent.findall(set_tag)
        hits = [nv for s in sets for nv in s.iterfind("nvpair") if nv.get("name") == name]
        for nv in hits:
            self.set(nv, "value", value)
        if not hits:
            target = sets[0] if sets else self.add(parent, set_tag, id=set_id)
            self.add(target, "nvpair", id=f"{set_id}-{name}", name=name, value=value)

    def undo(self) -> None:
        while self._undo:
            el, name, old = self._undo.pop()
            if name is None:
                el.getparent().remove(el)
            elif old is None:
                del el.attrib[name]
            else:
                el.set(name, old)


def _section(edits: Edits, root: Any, path: str) -> Any:
    el = root
    for part in path.split("/"):
        child = el.find(part)
        el = child if child is not None else edits.add(el, part)
    return el


def prepare_copy(root: Any, cluster: Cluster) -> dict[str, int]:
    """Change ``root`` (a parsed CIB) into the copy the scheduler reads (see the top).
    Returns what was done: ``{"history_dropped": N, "threshold_off": 0|1}``."""
    dropped = 0
    for lrm_resources in root.iterfind("status/node_state/lrm/lrm_resources"):
        for rsc in list(lrm_resources):
            ops = rsc.findall("lrm_rsc_op")
            if ops and all(_inert(op) for op in ops):
                lrm_resources.remove(rsc)
                dropped += 1
    edits = Edits()  # kept: the copy is made once
    crm_config = _section(edits, root, "configuration/crm_config")
    edits.nvpair(crm_config, "cluster_property_set", "vmha-plan-options", "enable-startup-probes", "false")
    threshold_off = 0
    if not cluster.fail_counts:
        defaults = _section(edits, root, "configuration/rsc_defaults")
        edits.nvpair(defaults, "meta_attributes", "vmha-plan-rsc-defaults", "migration-threshold", "0")
        threshold_off = 1
    return {"history_dropped": dropped, "threshold_off": threshold_off}


def fail_host(edits: Edits, root: Any, host: str) -> None:
    """``host`` lost, as ``crm_simulate --node-fail`` writes it (its --save-output shows it):
    out of the membership (in_ccm=false) while its controller entry still says an expected
    member, its resource history kept.  The scheduler fences it and recovers what ran there.
    (A clean shutdown would be expected=down with the history gone: no fencing, no recovery
    question.)"""
    for ns in root.iterfind("status/node_state"):
        if ns.get("uname") == host:
            for name, value in (("in_ccm", "false"), ("crmd", "online"), ("join", "member"), ("expected", "member")):
                edits.set(ns, name, value)


def set_standby(edits: Edits, root: Any, host: str) -> None:
    """Put ``host`` in standby: its permanent node attribute, and a transient one if it has
    one (that would win)."""
    for node in root.iterfind("configuration/nodes/node"):
        if node.get("uname") == host:
            edits.nvpair(node, "instance_attributes", f"vmha-plan-{node.get('id')}-attrs", "standby", "on")
    for ns in root.iterfind("status/node_state"):
        if ns.get("uname") == host:
            for nv in ns.iterfind("transient_attributes/instance_attributes/nvpair"):
                if nv.get("name") == "standby":
                    edits.set(nv, "value", "on")


def scenario_cib(root: Any, scenario: Scenario) -> bytes:
    """The prepared copy with ``scenario`` applied, serialized; ``root`` is left as it was."""
    from lxml import etree

    edits = Edits()
    try:
        for host in scenario.failed:
            fail_host(edits, root, host)
        for host in scenario.standby:
            set_standby(edits, root, host)
        return bytes(etree.tostring(root))
    finally:
        edits.undo()


# -- what the scheduler answered ------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    action: str  # start stop move migrate recover restart reload promote demote ...
    resource: str  # as the scheduler names it: "vm1", a clone instance "hh:0"
    node: str | None = None  # start / stop
    source: str | None = None  # move / migrate / recover / restart
    dest: str | None = None  # move / migrate
    reason: str | None = None
    blocked: bool = False

    @property
    def primitive(self) -> str:
        return self.resource.split(":", 1)[0]  # ":" cannot be part of an XML ID


@dataclass(frozen=True)
class NodeStatus:
    name: str
    online: bool
    standby: bool
    maintenance: bool
    unclean: bool
    health: str


@dataclass
class Simulated:
    nodes: dict[str, NodeStatus]
    placed: dict[str, list[str]]  # primitive -> nodes running it (once per instance) before
    target_stopped: set[str]  # target-role=Stopped: not expected to run
    unmanaged: set[str]
    actions: list[Action]
    fenced: list[str]


def parse_simulation(text: str) -> Simulated:
    """crm_simulate's ``--output-as=xml`` answer.  Raises ValueError."""
    root = parse_xml(text.encode(), "crm_simulate's answer")
    status = root.find("status")
    if status is not None and status.get("code") not in (None, "0"):
        raise ValueError(f"crm_simulate: {status.get('message') or 'error'} (code {status.get('code')})")
    current = root.find("cluster_status")
    if current is None:
        raise ValueError("crm_simulate's answer has no cluster_status")
    nodes = {}
    for n in current.iterfind("nodes/node"):
        name = str(n.get("name"))
        nodes[name] = NodeStatus(
            name,
            n.get("online") == "true",
            n.get("standby") == "true",
            n.get("maintenance") == "true",
            n.get("unclean") == "true",
            str(n.get("health", "green")),
        )
    placed: dict[str, list[str]] = {}
    target_stopped, unmanaged = set(), set()
    for r in current.iterfind("resources//resource"):
        rid = str(r.get("id")).split(":", 1)[0]
        if r.get("active") == "true":
            placed.setdefault(rid, []).extend(str(n.get("name")) for n in r.iterfind("node"))
        else:
            placed.setdefault(rid, [])
        if str(r.get("target_role", "")).lower() == "stopped":
            target_stopped.add(rid)
        if r.get("managed") == "false":
            unmanaged.add(rid)
    actions = [
        Action(
            str(a.get("action", "")).lower(),
            str(a.get("resource")),
            a.get("node"),
            a.get("source"),
            a.get("dest"),
            a.get("reason"),
            a.get("blocked") == "true",
        )
        for a in root.iterfind("actions/rsc_action")
    ]
    fenced = [str(a.get("node")) for a in root.iterfind("actions/node_action") if a.get("node")]
    return Simulated(nodes, placed, target_stopped, unmanaged, actions, fenced)


def placements_after(sim: Simulated, failed: Iterable[str]) -> dict[str, Counter[str]]:
    """Per primitive, the nodes it runs on (a count per node, for clone instances) once the
    transition is done.  Whatever ran on a failed host is gone; a blocked action does not
    happen."""
    lost = set(failed)
    after = {rid: Counter(n for n in nodes if n not in lost) for rid, nodes in sim.placed.items()}
    for a in sim.actions:
        if a.blocked:
            continue
        where = after.setdefault(a.primitive, Counter())
        if a.action == "start" and a.node:
            where[a.node] += 1
        elif a.action == "stop" and a.node:
            _take(where, a.node)
        elif a.action in ("move", "migrate") and a.dest:
            if a.source:
                _take(where, a.source)
            where[a.dest] += 1
    return after


def _take(where: Counter[str], node: str) -> None:
    if where[node] > 0:
        where[node] -= 1
    if where[node] <= 0:
        del where[node]


# -- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    failed: tuple[str, ...] = ()
    standby: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "standby" if self.standby else "failure"

    @property
    def name(self) -> str:
        if self.standby:
            return f"{'+'.join(self.standby)} in standby"
        return f"{'+'.join(self.failed)} fail{'s' if len(self.failed) == 1 else ''}"

    @property
    def after(self) -> str:
        """How a sentence names the moment after the scenario."""
        if self.standby:
            return f"with {'+'.join(self.standby)} in standby"
        return "after the failure" if len(self.failed) == 1 else "after the failures"


@dataclass(frozen=True)
class VmOutcome:
    vm: str
    source: str | None
    target: str | None
    outcome: str  # stays | moves | stopped
    reason: str | None
    agent: str
    ours: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "from": self.source,
            "to": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "agent": self.agent,
            "managed_by_vmha": self.ours,
        }


@dataclass
class ScenarioResult:
    scenario: Scenario
    outcomes: list[VmOutcome] = field(default_factory=list)
    shortfalls: list[dict[str, Any]] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: list[str] = field(default_factory=list)  # VMs with target-role=Stopped

    @property
    def stopped(self) -> list[VmOutcome]:
        return [o for o in self.outcomes if o.outcome == "stopped"]

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "unknown"
        return "not met" if self.stopped else "met"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "kind": self.scenario.kind,
            "failed": list(self.scenario.failed),
            "standby": list(self.scenario.standby),
            "verdict": self.verdict,
            "error": self.error,
            "vms": [o.to_json() for o in self.outcomes],
            "shortfalls": self.shortfalls,
            "advice": self.advice,
        }


def amount(attr: str, value: int) -> str:
    return f"{value} MiB" if attr in MIB_ATTRIBUTES else str(value)


def natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def free_capacity(
    cluster: Cluster, hosts: Iterable[str], after: Mapping[str, Counter[str]]
) -> dict[str, dict[str, int]]:
    """Per host, its utilization minus that of everything placed there after the scenario."""
    free = {h: dict(cluster.hosts[h].capacity) for h in hosts if h in cluster.hosts}
    for rid, where in after.items():
        for host, count in where.items():
            if host not in free:
                continue
            for attr, need in cluster.needs.get(rid, {}).items():
                free[host][attr] = free[host].get(attr, 0) - need * count
    return free


def eligible_hosts(cluster: Cluster, sim: Simulated, scenario: Scenario) -> tuple[list[str], list[str]]:
    """(hosts that may run a VM after the scenario, why each other one may not)."""
    ok, why = [], []
    for name in cluster.hosts:
        st = sim.nodes.get(name)
        if name in scenario.failed:
            why.append(f"{name} failed")
        elif name in scenario.standby or (st is not None and st.standby):
            why.append(f"{name} in standby")
        elif st is None or not st.online or st.unclean:
            why.append(f"{name} offline")
        elif st.maintenance:
            why.append(f"{name} in maintenance")
        elif st.health == "red":
            why.append(f"{name} health red")
        else:
            ok.append(name)
    return ok, why


def explain_stopped(
    vm: Vm,
    cluster: Cluster,
    *,
    scenario: Scenario,
    eligible: Sequence[str],
    ineligible: Sequence[str],
    free: Mapping[str, Mapping[str, int]],
    sim: Simulated,
) -> tuple[str, dict[str, int]]:
    """Why ``vm`` would stay stopped, and per utilization attribute by how much it is short on
    the best host ({} when capacity is not the reason)."""
    blocked = [a for a in sim.actions if a.primitive == vm.name and a.blocked]
    if blocked:
        b = blocked[0]
        return f"{vm.name} would stay stopped: its {b.action} is blocked ({b.reason or 'no reason given'})", {}
    if vm.name in sim.unmanaged:
        return f"{vm.name} would stay stopped: it is not managed by Pacemaker (is-managed=false or maintenance)", {}
    if not eligible:
        return f"{vm.name} would stay stopped: no host is left to run it ({', '.join(ineligible)})", {}
    needs = {a: n for a, n in sorted(vm.needs.items()) if n > 0}
    if cluster.placement_strategy == "default" or not needs:
        what = "placement-strategy is default" if needs else "it has no utilization"
        return (
            f"{vm.name} would stay stopped, and not for capacity ({what}): a constraint or a fail count "
            f"keeps it off every host left; see crm_simulate --show-scores",
            {},
        )
    short: dict[str, int] = {}
    parts = []
    for attr, need in needs.items():
        best = _most_free(eligible, free, attr)
        largest = max(0, free[best].get(attr, 0))
        if need > largest:
            short[attr] = need - largest
            missing = "" if attr in cluster.hosts[best].capacity else f" ({best} declares no {attr} utilization)"
            parts.append(
                f"the largest free {attr} {scenario.after} is {amount(attr, largest)} on {best}{missing}, "
                f"short by {amount(attr, need - largest)}"
            )
    label = ", ".join(f"{a} {amount(a, n)}" for a, n in needs.items())
    if parts:
        return f"{vm.name} ({label}) would stay stopped: {'; '.join(parts)}", short
    fits = [h for h in eligible if all(free[h].get(a, 0) >= n for a, n in needs.items())]
    if not fits:
        nearest = sorted(eligible, key=lambda h: sum(max(0, n - free[h].get(a, 0)) for a, n in needs.items()))[:3]
        lacks = []
        for h in nearest:
            gaps = [
                f"{a} {amount(a, max(0, free[h].get(a, 0)))} free of {amount(a, n)}"
                for a, n in needs.items()
                if free[h].get(a, 0) < n
            ]
            lacks.append(f"{h} has {', '.join(gaps)}")
        return f"{vm.name} ({label}) would stay stopped: no host has all it needs at once ({'; '.join(lacks)})", {}
    banned = [f"{node} by {cid}" for node, cid in cluster.bans.get(vm.name, []) if node in fits]
    if banned:
        return f"{vm.name} ({label}) would stay stopped: it would fit, but is banned from {', '.join(banned)}", {}
    return (
        f"{vm.name} ({label}) would stay stopped although {fits[0]} has room: a constraint, a fail count or "
        f"an ordering keeps it off; see crm_simulate --show-scores",
        {},
    )


def _most_free(hosts: Sequence[str], free: Mapping[str, Mapping[str, int]], attr: str) -> str:
    """The host with the most of ``attr`` free (the first in CIB order on a tie)."""
    return max(hosts, key=lambda h: free[h].get(attr, 0))


def judge(cluster: Cluster, scenario: Scenario, sim: Simulated) -> ScenarioResult:
    """Per VM: stays, moves or stopped, and what to change.  Pure."""
    result = ScenarioResult(scenario)
    after = placements_after(sim, scenario.failed)
    eligible, ineligible = eligible_hosts(cluster, sim, scenario)
    free = free_capacity(cluster, eligible, after)
    by_vm: dict[str, list[Action]] = {}
    for a in sim.actions:
        by_vm.setdefault(a.primitive, []).append(a)
    short_by_vm: dict[str, dict[str, int]] = {}
    for name in sorted(cluster.vms, key=natural):
        vm = cluster.vms[name]
        if name in sim.target_stopped:
            result.disabled.append(name)  # not expected to run: no outcome
            continue
        before = sim.placed.get(name, [])
        source = before[0] if before else None
        where = after.get(name, Counter())
        lost = set(scenario.failed) | set(scenario.standby)
        target = next((h for h in where if h not in lost or name in sim.unmanaged), None)
        if name in sim.unmanaged and source in scenario.failed:
            target = None  # nobody recovers it
        did = [a for a in by_vm.get(name, []) if not a.blocked]
        if target is None:
            reason, short = explain_stopped(
                vm, cluster, scenario=scenario, eligible=eligible, ineligible=ineligible, free=free, sim=sim
            )
            short_by_vm[name] = short
            result.outcomes.append(VmOutcome(name, source, None, "stopped", reason, vm.agent, vm.ours))
        elif target == source:
            restart = next((a for a in did if a.action in ("restart", "recover", "reload")), None)
            why = f"{restart.action}s in place ({restart.reason})" if restart and restart.reason else None
            result.outcomes.append(VmOutcome(name, source, target, "stays", why, vm.agent, vm.ours))
        else:
            how = next((a for a in did if a.action in ("move", "migrate", "start")), None)
            if source is None:
                why = "not running now; would start"
            elif how is not None and how.action == "migrate":
                why = "live migration"
            elif source in scenario.failed:
                why = (
                    f"restarted after {source} is fenced" if source in sim.fenced else f"restarted after {source} fails"
                )
            else:
                why = how.reason if how is not None and how.reason else "moved by the scheduler"
            result.outcomes.append(VmOutcome(name, source, target, "moves", why, vm.agent, vm.ours))
    result.shortfalls = shortfalls(cluster, result.stopped, short_by_vm, eligible, free)
    result.advice = advise(scenario, result, short_by_vm)
    return result


def shortfalls(
    cluster: Cluster,
    stopped: Sequence[VmOutcome],
    short_by_vm: Mapping[str, Mapping[str, int]],
    eligible: Sequence[str],
    free: Mapping[str, Mapping[str, int]],
) -> list[dict[str, Any]]:
    """Per utilization attribute that leaves a VM stopped: what the stopped VMs need in all,
    what the hosts left have free in all and at most on one, and the least to add."""
    attrs = sorted({a for o in stopped for a in short_by_vm.get(o.vm, {})})
    found = []
    for attr in attrs:
        needed = sum(cluster.vms[o.vm].needs.get(attr, 0) for o in stopped)
        frees = {h: max(0, free[h].get(attr, 0)) for h in eligible}
        best = max(frees, key=lambda h: frees[h]) if frees else None
        total = sum(frees.values())
        found.append(
            {
                "attribute": attr,
                "unit": "MiB" if attr in MIB_ATTRIBUTES else None,
                "needed": needed,
                "free_total": total,
                "largest_free": frees[best] if best else 0,
                "largest_free_on": best,
                "short_by": max(0, needed - total),
                "vms": [o.vm for o in stopped if attr in short_by_vm.get(o.vm, {})],
            }
        )
    return found


def advise(scenario: Scenario, result: ScenarioResult, short_by_vm: Mapping[str, Mapping[str, int]]) -> list[str]:
    tips = []
    for s in result.shortfalls:
        attr = s["attribute"]
        if s["short_by"] > 0:
            tips.append(
                f"add at least {amount(attr, s['short_by'])} of {attr} to the hosts left (the stopped VMs need "
                f"{amount(attr, s['needed'])}, {amount(attr, s['free_total'])} is free), or lower the VMs' {attr}"
            )
        else:
            biggest = max(short_by_vm[v].get(attr, 0) for v in s["vms"])
            tips.append(
                f"{attr}: {amount(attr, s['free_total'])} is free in all but at most "
                f"{amount(attr, s['largest_free'])} on one host ({s['largest_free_on']}): make "
                f"{amount(attr, biggest)} more room on one host, or add capacity"
            )
    other = [o.vm for o in result.stopped if not short_by_vm.get(o.vm)]
    if other:
        tips.append(f"not capacity for {', '.join(other)}: see the reason given for each")
    if scenario.standby and result.stopped:
        tips.append(f"do not put {'+'.join(scenario.standby)} in standby before this is fixed")
    return tips


# -- running it -----------------------------------------------------------------------------


@dataclass
class Report:
    cluster: Cluster
    results: list[ScenarioResult]
    disabled: list[str]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        if any(r.verdict == "not met" for r in self.results):
            return NOT_MET
        if not self.results or any(r.verdict == "unknown" for r in self.results):
            return UNKNOWN
        return MET

    @property
    def verdict(self) -> str:
        return {MET: "met", NOT_MET: "not met"}.get(self.exit_code, "unknown")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "hosts": list(self.cluster.hosts),
            "online": self.cluster.online,
            "vms": len(self.cluster.vms),
            "placement_strategy": self.cluster.placement_strategy,
            "disabled": self.disabled,
            "notes": self.notes,
            "scenarios": [r.to_json() for r in self.results],
        }


def scenarios_for(cluster: Cluster, failures: int | None, standby: Sequence[str]) -> tuple[list[Scenario], list[str]]:
    """The scenarios asked, and notes about the hosts left out.  Raises BadInput."""
    hosts = list(cluster.hosts)
    for name in standby:
        if name not in cluster.hosts:
            raise BadInput(f"--standby {name}: no such host (hosts: {', '.join(hosts)})")
    k = 1 if failures is None and not standby else failures
    found = [Scenario(standby=(name,)) for name in dict.fromkeys(standby)]
    notes = []
    if k is not None:
        if k < 1 or k >= len(hosts):
            raise BadInput(f"--failures {k}: must be at least 1 and below the number of hosts ({len(hosts)})")
        online = cluster.online
        offline = [h for h in hosts if h not in online]
        if offline:
            notes.append(f"offline now, not failed again: {', '.join(offline)}")
        if not online:
            raise CannotTell("no host is online in this CIB: nothing to fail")
        found += [Scenario(failed=combo) for combo in itertools.combinations(online, min(k, len(online)))]
    return found, notes


def simulate(runner: CommandRunner, cib_path: str, out_path: str, deadline: Deadline) -> Simulated:
    """The scheduler's answer for the scenario in ``cib_path``.  Raises CannotTell.

    ``--save-output``: crm_simulate writes its working copy of the input somewhere, by
    default Pacemaker's own CIB directory when run as root; this keeps it in ours."""
    argv = [CRM_SIMULATE, f"--xml-file={cib_path}", "--run", "--output-as=xml", f"--save-output={out_path}"]
    try:
        done = runner.run(argv, timeout=deadline.remaining())
    except CommandError as exc:
        raise CannotTell(str(exc)) from None
    if not done.ok:
        raise CannotTell(done.complaint())
    try:
        return parse_simulation(done.stdout)
    except ValueError as exc:
        raise CannotTell(str(exc)) from None


def plan(
    root: Any,
    cluster: Cluster,
    scenarios: Sequence[Scenario],
    runner: CommandRunner,
    deadline: Deadline,
    *,
    jobs: int,
    workdir: str,
) -> list[ScenarioResult]:
    """Every scenario asked of the scheduler, ``jobs`` at a time, all within ``deadline``:
    each crm_simulate gets the time left, so one that starts late gets less, and none once
    the deadline has passed (its scenario is then "cannot tell")."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    prepare_copy(root, cluster)
    tree_lock = threading.Lock()  # scenario_cib changes the tree for a moment

    def one(numbered: tuple[int, Scenario]) -> ScenarioResult:
        i, scenario = numbered
        cib_path = os.path.join(workdir, f"cib-{i}.xml")
        out_path = os.path.join(workdir, f"out-{i}.xml")
        try:
            if deadline.expired:
                raise CannotTell(f"no time left (--timeout) for {scenario.name}")
            with tree_lock:
                data = scenario_cib(root, scenario)
            with open(cib_path, "wb") as f:
                f.write(data)
            return judge(cluster, scenario, simulate(runner, cib_path, out_path, deadline))
        except CannotTell as exc:
            return ScenarioResult(scenario, error=str(exc))
        finally:
            for path in (cib_path, out_path):  # many scenarios of a large CIB would fill the disk
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    numbered = list(enumerate(scenarios))
    if jobs <= 1 or len(numbered) <= 1:
        return [one(item) for item in numbered]
    with ThreadPoolExecutor(max_workers=min(jobs, len(numbered)), thread_name_prefix="vmha-plan") as pool:
        return list(pool.map(one, numbered))


def read_cib(path: str | None, runner: CommandRunner, deadline: Deadline) -> Any:
    """The CIB document: ``path``, or the live one through cibadmin.
    Raises BadInput (a file), CannotTell (the live CIB)."""
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror}") from None
        try:
            return parse_xml(data, path)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    try:
        done = runner.run([CIBADMIN, "--query"], timeout=deadline.remaining())
    except CommandError as exc:
        raise CannotTell(f"cannot read the CIB: {exc}") from None
    if not done.ok:
        raise CannotTell(f"cannot read the CIB: {done.complaint()}")
    try:
        return parse_xml(done.stdout.encode(), "cibadmin's answer")
    except ValueError as exc:
        raise CannotTell(str(exc)) from None


# -- output ---------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_text(report: Report) -> str:
    c = report.cluster
    lines = [
        f"vmha plan: {len(c.hosts)} hosts ({len(c.online)} online), {len(c.vms)} VMs, "
        f"placement-strategy={c.placement_strategy}; {_count(len(report.results), 'scenario')} "
        "asked of Pacemaker's scheduler"
    ]
    lines += [f"note: {n}" for n in report.notes]
    if report.disabled:
        lines.append(f"not expected to run (target-role=Stopped): {', '.join(report.disabled)}")
    for r in report.results:
        head = {"met": "N+1 met", "not met": "N+1 NOT MET", "unknown": "cannot tell"}[r.verdict]
        lines.append(f"{r.scenario.name}: {head}")
        if r.error is not None:
            lines.append(f"  {r.error}")
            continue
        width = max((len(o.vm) for o in r.outcomes), default=0)
        quiet = 0
        for o in r.outcomes:
            flag = "" if o.ours else f"  [{o.agent}, not managed by vmha]"
            if o.outcome == "stopped":
                lines.append(f"  {o.vm:<{width}}  {o.source or '-'} -> STOPPED{flag}")
                lines.append(f"      {o.reason}")
            elif o.outcome == "moves":
                lines.append(f"  {o.vm:<{width}}  {o.source} -> {o.target}  ({o.reason}){flag}")
            elif o.reason:
                lines.append(f"  {o.vm:<{width}}  stays on {o.target}, {o.reason}{flag}")
            else:
                quiet += 1
        if quiet:
            lines.append(
                f"  {_count(quiet, 'other VM')} " + ("stays where it is" if quiet == 1 else "stay where they are")
            )
        for s in r.shortfalls:
            a = s["attribute"]
            lines.append(
                f"  shortfall {a}: the stopped VMs need {amount(a, s['needed'])}, "
                f"{amount(a, s['free_total'])} free on the hosts left "
                f"(at most {amount(a, s['largest_free'])} on {s['largest_free_on']}), "
                f"short by {amount(a, s['short_by'])} in all"
            )
        lines += [f"  to change: {tip}" for tip in r.advice]
    n_not = sum(r.verdict == "not met" for r in report.results)
    n_unknown = sum(r.verdict == "unknown" for r in report.results)
    summary = {
        MET: f"N+1 met: every VM has a place in all {len(report.results)} scenarios",
        NOT_MET: f"N+1 NOT met: {n_not} of {len(report.results)} scenarios leave a VM stopped",
        UNKNOWN: f"cannot tell: {n_unknown} of {len(report.results)} scenarios got no answer",
    }[report.exit_code]
    lines.append(f"verdict: {summary} (exit {report.exit_code})")
    return "\n".join(lines) + "\n"


EPILOG = """\
scenarios: by default every single host failure; --failures K every set of K hosts failing
together; --standby HOST that host put in standby (repeatable, one scenario each; given
alone, only the standby scenarios run). Each is answered by Pacemaker's scheduler
(crm_simulate --run) on a copy of the CIB, so placement-strategy, utilization, constraints
and stickiness all count.

exit codes:
  0  N+1 met: every VM has a place in every scenario asked
  1  N+1 not met: some scenario leaves a VM stopped
  2  bad input: unknown host in --standby, K < 1 or K >= number of hosts, unreadable CIB file
  3  cannot tell: the CIB could not be read, crm_simulate failed or ran out of time
"""


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vmha plan",
        description="N+1 admission control: where every VM would go if hosts failed or went to standby.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # the help goes to our stdout, not sys.stdout
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    p.add_argument("--failures", type=int, metavar="K", help="fail every combination of K hosts (default 1)")
    p.add_argument("--standby", action="append", default=[], metavar="HOST", help="plan HOST's standby")
    p.add_argument("--cib", metavar="FILE", help="plan on a saved CIB instead of the live one (cibadmin --query)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds for the whole plan, every scenario included (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="scenarios run at once (default: CPU count)")
    return p


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def main(
    argv: list[str],
    *,
    runner: CommandRunner | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``vmha plan``; ``env``: the variables the cluster tools may see (CIB_*, PCMK_*)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        opts = parser.parse_args(argv)
    except _Usage as exc:
        err.write(f"vmha plan: {exc}\n")
        return BAD_INPUT
    if opts.help:
        out.write(parser.format_help())
        return MET
    jobs = opts.jobs if opts.jobs is not None else default_jobs()
    if not 0 < opts.timeout <= 3600:
        err.write("vmha plan: --timeout must be above 0 and at most 3600 seconds\n")
        return BAD_INPUT
    if jobs < 1:
        err.write("vmha plan: --jobs must be at least 1\n")
        return BAD_INPUT
    deadline = Deadline.after(opts.timeout)
    run = runner if runner is not None else CommandRunner(cluster_env({} if env is None else env))
    workdir = tempfile.mkdtemp(prefix="vmha-plan-")
    try:
        root = read_cib(opts.cib, run, deadline)
        cluster = read_cluster(root)
        scenarios, notes = scenarios_for(cluster, opts.failures, opts.standby)
        results = plan(root, cluster, scenarios, run, deadline, jobs=jobs, workdir=workdir)
    except BadInput as exc:
        err.write(f"vmha plan: {exc}\n")
        return BAD_INPUT
    except CannotTell as exc:
        err.write(f"vmha plan: cannot tell: {exc}\n")
        return UNKNOWN
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    disabled = sorted({v for r in results for v in r.disabled}, key=natural)
    report = Report(cluster, results, disabled, notes)
    if opts.json:
        out.write(json.dumps(report.to_json()) + "\n")
    else:
        out.write(render_text(report))
    return report.exit_code
