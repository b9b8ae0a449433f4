"""A network partition: the hosts lose each other, both up, both still reaching the storage.

In a two-host cluster (corosync ``two_node``) both halves keep quorum and each asks to fence
the other: whoever fences first survives.  The lab settles that race on purpose, with the
settings the README recommends (``nodefiles.seed_cib``, values in ``config``):

- ``priority-fencing-delay``: fencing a lost node whose resources' ``priority`` adds up to
  more than the other side's is delayed by this much, so the host running more (or more
  important) VMs wins; every lab VM has ``priority`` 10 (``Lab.create_vm``).
- a per-host ``pcmk_delay_base`` on the fence device for the tie (as many VMs each side):
  fencing ha1 waits ``TIE_DELAY``, so ha1 survives an even split.

With three or more hosts the majority keeps quorum and fences the minority; the minority
stops its resources itself (``no-quorum-policy=stop``) and the majority starts them.

``partition`` cuts one host's link to the lab LAN (its veth in the LAN namespace goes
down), times until every VM runs on the surviving side, and reconnects the fenced host so it
rejoins.  Both sides keep their storage paths: only the fencing decides who writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import events, scenarios
from vmha.lab.config import LAN_NETNS
from vmha.lab.lab import Lab, LabError, wait_until
from vmha.lab.scenarios import POLL_S, locations


def set_link(lab: Lab, host: str, up: bool) -> None:
    done = lab.runner.run(["ip", "-n", LAN_NETNS, "link", "set", f"v-{host}", "up" if up else "down"], timeout=10)
    if not done.ok:
        raise LabError(f"cannot set {host}'s LAN link {'up' if up else 'down'}: {done.stderr.strip()}")


@dataclass
class Partition:
    isolated: str  # the host whose link was cut
    expected_survivors: list[str]
    survivors: list[str] = field(default_factory=list)
    fenced: list[str] = field(default_factory=list)  # whom a successful fencing targeted
    vms_elsewhere: dict[str, str] = field(default_factory=dict)
    recovered_s: float | None = None  # link cut -> every VM Started on the surviving side
    fenced_s: float | None = None
    rejoin_s: float | None = None
    writes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        r: dict[str, Any] = dict(self.__dict__)
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 2)
        return r


def expected_survivors(lab: Lab, isolated: str) -> list[str]:
    """Who must survive cutting ``isolated`` off: the majority; with two hosts, the one whose
    VMs' priority adds up to more, and ha1 on a tie."""
    others = [h for h in lab.hosts if h != isolated]
    if len(lab.hosts) > 2:
        return others
    where = locations(lab)
    count = {h: sum(1 for v in where.values() if v == h) for h in lab.hosts}
    if count[isolated] > count[others[0]]:
        return [isolated]
    if count[isolated] < count[others[0]]:
        return others
    return [lab.hosts[0]]


def partition(lab: Lab, isolated: str, *, timeout: float = 180.0) -> Partition:
    """Cut ``isolated``'s link; raises LabError when no side recovers every VM in time."""
    result = Partition(isolated, expected_survivors(lab, isolated))
    scenarios.writers_ready(lab)
    before = locations(lab)
    booted = {vm: scenarios.writer_boots(lab, vm) for vm in lab.state.vms}
    t0 = time.time()
    set_link(lab, isolated, False)
    try:

        def settled() -> bool:
            found = lab.events(t0)
            done = {e.node for e in found if e.kind == "fencing" and e.rc == 0}
            if not done:
                return False
            alive = [h for h in lab.hosts if h not in done]
            s = lab.crm(alive[0]) if alive else None
            if not s:
                return False
            where = {vm: s.started_on(vm) for vm in lab.state.vms}
            if all(h in alive for h in where.values()):
                result.fenced, result.survivors = sorted(done), alive
                result.vms_elsewhere = {vm: h for vm, h in where.items() if h}
                return True
            return False

        if not wait_until(settled, timeout, POLL_S):
            raise LabError(f"the partition did not settle in {timeout:.0f}s: {locations(lab)}")
        seen = time.time()
        found = lab.events(t0)
        fencing = [e for e in found if e.kind == "fencing" and e.rc == 0]
        result.fenced_s = fencing[0].at - t0 if fencing else None
        last = [ops[-1].at for vm in lab.state.vms if (ops := events.operations(found, vm, t0, seen))]
        result.recovered_s = (max(last) if last else seen) - t0
    finally:
        set_link(lab, isolated, True)
    for vm, host in result.vms_elsewhere.items():
        # a VM that ran on a fenced host booted again from the shared disk on the survivor
        again = before.get(vm) in result.fenced
        if not scenarios.wait_writing(lab, vm, booted[vm] if again else booted[vm] - 1, 60.0):
            raise LabError(f"the disk writer of {vm} did not write after the partition ({host})")
    result.writes = scenarios.written(lab)
    t1 = time.time()
    want = sorted(lab.hosts)
    if wait_until(lambda: (s := lab.crm(result.survivors[0])) and s.online() == want, 120.0, 0.5):
        result.rejoin_s = time.time() - t1
    return result
