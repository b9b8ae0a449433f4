"""Node health in the lab: ocf:vmha:HypervisorHealth as a clone, migrate-on-red, and a host
whose storage fills up.

Each lab host has a storage pool on its own 16 MiB tmpfs (``config.LAB_POOL``).  Filling it
with one preallocated file leaves under 2 % free, HypervisorHealth's default red threshold,
without touching anything else on the host: the VMs can still be live-migrated, which is
the point of moving them while the host is sick rather than after it died.  The clone and
the cluster property are set with pcs exactly as the README tells a user.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import events
from vmha.lab.config import HEALTH_ATTRIBUTE, LAB_POOL, LAB_POOL_DIR, LAB_POOL_MIB
from vmha.lab.lab import OCF_ROOT, Lab, LabError, wait_until
from vmha.lab.scenarios import POLL_S, locations
from vmha.ocf.runner import CommandTimedOut

HEALTH_RSC = "hv-health"
FILLER = f"{LAB_POOL_DIR}/vmha-lab-filler"
# leaves 128 KiB of 16 MiB free (0.8 %): red, below the default 2 %
FILL_BYTES = LAB_POOL_MIB * 1024 * 1024 - 128 * 1024


def enable(lab: Lab, *, interval: str = "2s", timeout: float = 90.0) -> list[list[str]]:
    """The health clone on every host and node-health-strategy=migrate-on-red; returns the
    pcs commands run.  Raises LabError unless every host reports green in time."""
    # allow-unhealthy-nodes on the clone itself (the scheduler reads it there only), set the
    # same way with pcs 0.11 and 0.12 (whose "clone meta ..." syntaxes differ)
    steps = [
        [
            "resource",
            "create",
            HEALTH_RSC,
            "ocf:vmha:HypervisorHealth",
            f"storage_pools={LAB_POOL}",
            # the storage the VMs' disks are on, as this host reaches it (vmha.lab.storage)
            f"shared_storage={lab.paths.shared_dir}",
            "op",
            "monitor",
            f"interval={interval}",
            "timeout=20s",
            "clone",
            "--disabled",
        ],
        ["resource", "meta", f"{HEALTH_RSC}-clone", "allow-unhealthy-nodes=true"],
        ["resource", "enable", f"{HEALTH_RSC}-clone"],
        ["property", "set", "node-health-strategy=migrate-on-red"],
    ]
    for args in steps:
        lab.log("# pcs " + " ".join(args))
        lab.pcs(*args)
    want = {h: "green" for h in lab.hosts}
    if not wait_until(lambda: colours(lab) == want, timeout, POLL_S):
        raise LabError(f"hosts not all green {timeout:.0f}s after {HEALTH_RSC} started: {colours(lab)}")
    return steps


def disable(lab: Lab) -> None:
    """Back to no node health: the property first (a leftover red must not move VMs)."""
    lab.pcs("property", "unset", "node-health-strategy")
    lab.pcs("resource", "delete", HEALTH_RSC)


_HOST_VALUE = re.compile(r'host="([^"]*)"\s+value="([^"]*)"')


def colours(lab: Lab, host: str | None = None) -> dict[str, str]:
    """node -> its #health-vmha value, as attrd has it (crm_mon does not show "#" attributes);
    a deleted value ("") is left out; {} when attrd could not be asked."""
    return _colours(lab, host) or {}


def _colours(lab: Lab, host: str | None = None) -> dict[str, str] | None:
    """The same; None when attrd could not be asked (not measured)."""
    h = host or lab.online_host()
    if not h:
        return None
    try:
        done = lab.exec(h, ["attrd_updater", "--query", "--all", "--name", HEALTH_ATTRIBUTE], timeout=15)
    except (LabError, CommandTimedOut):
        return None
    if not done.ok:
        return None
    return {node: value for node, value in _HOST_VALUE.findall(done.stdout) if value}


def fill_pool(lab: Lab, host: str) -> None:
    """Raises LabError when the file cannot be written."""
    done = lab.exec(host, ["fallocate", "-l", str(FILL_BYTES), FILLER], timeout=30)
    if not done.ok:
        raise LabError(f"cannot fill {LAB_POOL} on {host}: {done.stderr.strip()}")


def heal_pool(lab: Lab, host: str) -> None:
    lab.exec(host, ["rm", "-f", FILLER], timeout=30)


def red_timeline(found: list[events.Event]) -> list[tuple[float, frozenset[str]]]:
    """(time, the nodes red from then on) at every change of the health attribute."""
    red: set[str] = set()
    timeline = []
    for e in found:
        if e.kind == "attribute" and e.attribute == HEALTH_ATTRIBUTE:
            (red.add if e.value == "red" else red.discard)(e.node)
            timeline.append((e.at, frozenset(red)))
    return timeline


@dataclass
class Evacuation:
    host: str
    vms: list[str]
    red_s: float | None = None  # pool filled -> the host's #health-vmha turned red
    evacuation_s: float | None = None  # -> every VM of the host Started elsewhere
    per_vm_s: dict[str, float] = field(default_factory=dict)
    moved_to: dict[str, str] = field(default_factory=dict)
    live: dict[str, bool | None] = field(default_factory=dict)  # moved by a live migration (None: no events)
    green_again_s: float | None = None  # pool emptied -> green again
    timing: str = "polling"

    def to_json(self) -> dict[str, Any]:
        r: dict[str, Any] = dict(self.__dict__)
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 2)
        r["per_vm_s"] = {vm: round(v, 2) for vm, v in self.per_vm_s.items()}
        return r


def evacuate(lab: Lab, host: str, *, timeout: float = 120.0, heal: bool = True) -> Evacuation:
    """Fill ``host``'s pool; time until its VMs run elsewhere; then (``heal``) empty the pool
    and wait for green.  Raises LabError if the VMs do not leave in time."""
    vms = [vm for vm, h in locations(lab).items() if h == host]
    result = Evacuation(host, vms)
    t0 = time.time()
    fill_pool(lab, host)
    try:
        left = vms_leave(lab, host, vms, t0, timeout=timeout, after="its pool filled")
        seen, found = left.seen, left.found
        result.moved_to = left.moved
        if left.red_at is not None:
            result.red_s, result.timing = left.red_at - t0, "alerts"
        for vm in vms:
            ops = events.operations(found, vm, t0, seen)
            result.per_vm_s[vm] = (ops[-1].at if ops else seen) - t0
            result.live[vm] = any(op.task == "migrate_to" and op.ok for op in ops) if ops else None
        result.evacuation_s = max(result.per_vm_s.values()) if vms else None
    finally:
        if heal:
            result.green_again_s = recover(lab, host)
    return result


@dataclass
class Left:
    moved: dict[str, str]  # vm -> the host it is Started on now
    seen: float  # when the poll saw them all elsewhere
    found: list[events.Event]  # the cluster's events since the fault
    red_at: float | None  # when ``host`` turned red, by the alerts


def vms_leave(
    lab: Lab, host: str, vms: list[str], t0: float, *, timeout: float, after: str, once_reset: bool = False
) -> Left:
    """Wait until every VM of ``vms`` is Started on a host other than ``host`` (the fault
    was at ``t0``, ``after`` says what it was). Raises LabError when they are not in time.

    ``once_reset``: the fault makes the cluster fence ``host`` first, and a lab host is back
    within a second or two, often before the scheduler has placed its VMs: a VM then also
    counts when it is Started on ``host`` again by a start after the fencing."""

    def gone() -> dict[str, str] | None:
        where = locations(lab)
        moved = {vm: h for vm in vms if (h := where.get(vm)) and h != host}
        if once_reset and len(moved) < len(vms):
            found = lab.events(t0)
            fenced = [e.at for e in found if e.kind == "fencing" and e.node == host and e.rc == 0]
            for vm in vms:
                if fenced and where.get(vm) == host:
                    starts = [op for op in events.operations(found, vm, fenced[0]) if op.task == "start" and op.ok]
                    if starts:
                        moved[vm] = host
        return moved if len(moved) == len(vms) else None

    moved = wait_until(gone, timeout, POLL_S)
    seen = time.time()
    if not moved:
        raise LabError(
            f"the VMs of {host} did not leave {timeout:.0f}s after {after}: {locations(lab)}, health {colours(lab)}"
        )
    found = lab.events(t0)
    red = events.first(found, t0, kind="attribute", node=host, attribute=HEALTH_ATTRIBUTE, value="red")
    return Left(moved, seen, found, red.at if red else None)


def recover(lab: Lab, host: str, timeout: float = 60.0) -> float | None:
    """Empty ``host``'s pool; seconds until it is green again, None if not in time."""
    t0 = time.time()
    heal_pool(lab, host)
    if wait_until(lambda: colours(lab).get(host) == "green", timeout, POLL_S):
        return time.time() - t0
    return None


@dataclass
class BothBroken:
    most_red_at_once: int | None  # None: neither an event nor a poll told
    timeline: list[tuple[float, list[str]]]  # (seconds after the break, nodes red)
    colours: dict[str, str]  # at the end
    locations: dict[str, str | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "most_red_at_once": self.most_red_at_once,
            "colours": self.colours,
            "locations": self.locations,
            "timeline": self.timeline,
        }


def break_all(lab: Lab, *, watch_s: float = 15.0, heal: bool = True) -> BothBroken:
    """Fill every host's pool at once, watch for ``watch_s``, then empty them again."""
    t0 = time.time()
    for host in lab.hosts:
        fill_pool(lab, host)
    polled: list[int] = []
    try:
        end = t0 + watch_s
        while time.time() < end:
            seen = _colours(lab)
            if seen is not None:
                polled.append(sum(1 for c in seen.values() if c == "red"))
            time.sleep(POLL_S)
        timeline = red_timeline(lab.events(t0))
        counts = [len(red) for _, red in timeline] + polled
        most = max(counts) if counts else None
        return BothBroken(
            most_red_at_once=most,
            timeline=[(round(at - t0, 2), sorted(red)) for at, red in timeline],
            colours=colours(lab),
            locations=locations(lab),
        )
    finally:
        if heal:
            for host in lab.hosts:
                heal_pool(lab, host)


def monitor_now(lab: Lab, host: str, *, interval_ms: int = 2000, timeout_ms: int = 20000) -> int:
    """Run the health clone's monitor on ``host`` now, as pacemaker-execd runs it (same
    parameters, environment and state directory); returns its exit code.  ``crm_resource
    --force-check`` will not do: it runs a probe, which answers from local state."""
    env = {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": HEALTH_RSC,
        "OCF_RESOURCE_TYPE": "HypervisorHealth",
        "OCF_RESOURCE_PROVIDER": "vmha",
        "OCF_RESKEY_storage_pools": LAB_POOL,
        "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
        "OCF_RESKEY_CRM_meta_on_node": host,
        "HA_RSCTMP": "/run/resource-agents",
    }
    done = lab.exec(
        host, [os.path.join(OCF_ROOT, "vmha", "HypervisorHealth"), "monitor"], timeout=timeout_ms / 1000 + 5, env=env
    )
    return done.rc
