"""One host loses its path to the shared storage (what vSphere calls VM Component Protection).

``storage_loss`` cuts (errors come back) or hangs (I/O never returns) one host's own path to
the storage (vmha.lab.storage) while HypervisorHealth runs with ``shared_storage`` and
migrate-on-red, and times the way back: the host's probe turns it red, its guests pause on
the I/O error (cut) or block (hung), Pacemaker stops them there (forced off: a paused guest
cannot shut down) and starts them on a host that reaches the storage, where they boot from
the same disk and find every record they had acknowledged.

Hung, the host cannot be left as it is: a QEMU killed there may have writes waiting in the
path, which would land once it answers again, under the VM on the other host.  So there
VirtualMachine refuses the live migration (it could only run into its timeout), kills QEMU
and fails the stop ("fence this host: ..."), and Pacemaker fences the host before it starts
the VM elsewhere (``stop_failed``, ``fenced_by_cluster_s``).  A cut path holds nothing back:
its stops succeed and no fencing is needed for the VMs; the lab then fences the host (the
way an operator resets a host that lost its storage) and it rejoins with a fresh path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import events, health, scenarios, storage
from vmha.lab.lab import Lab, LabError, wait_until
from vmha.lab.scenarios import locations


@dataclass
class StorageLoss:
    host: str
    mode: str  # "cut" or "hang"
    vms: list[str]
    storage_failover_s: float | None = None  # path lost -> every VM of the host Started elsewhere
    red_s: float | None = None  # path lost -> the host's health red
    per_vm_s: dict[str, float] = field(default_factory=dict)
    moved_to: dict[str, str] = field(default_factory=dict)
    guest_states: dict[str, str] = field(default_factory=dict)  # as libvirt on the host said, after the loss
    stops: dict[str, Any] = field(default_factory=dict)  # each VM's stop on the host: rc, exit reason
    fenced: bool | None = None
    fenced_by_cluster_s: float | None = None  # path lost -> the cluster fenced the host (a failed stop)
    stop_failed: dict[str, str] = field(default_factory=dict)  # vm -> the failed stop's rc, as the alert had it
    rejoin_s: float | None = None
    writes: dict[str, Any] = field(default_factory=dict)
    timing: str = "polling"

    def to_json(self) -> dict[str, Any]:
        r: dict[str, Any] = dict(self.__dict__)
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 2)
        r["per_vm_s"] = {vm: round(v, 2) for vm, v in self.per_vm_s.items()}
        return r


def _states(lab: Lab, host: str, vms: list[str]) -> dict[str, str]:
    out = {}
    for vm in vms:
        try:
            done = lab.exec(host, ["virsh", "domstate", "--reason", vm], timeout=5)
            out[vm] = done.stdout.strip() or done.stderr.strip()
        except (LabError, OSError) as exc:
            out[vm] = f"unknown ({exc})"
        except Exception as exc:  # noqa: BLE001 - a hung libvirtd: what it did is the finding
            out[vm] = f"unknown ({type(exc).__name__})"
    return out


def storage_loss(lab: Lab, host: str, mode: str = "cut", *, timeout: float = 180.0) -> StorageLoss:
    """Lose ``host``'s storage path (``mode`` cut or hang) with the health clone enabled;
    raises LabError when its VMs are not running elsewhere within ``timeout``."""
    scenarios.writers_ready(lab)
    vms = [vm for vm, h in locations(lab).items() if h == host]
    result = StorageLoss(host, mode, vms)
    booted = {vm: scenarios.writer_boots(lab, vm) for vm in vms}
    init = lab.host_pid(host)
    t0 = time.time()
    (storage.cut if mode == "cut" else storage.hang)(init)
    # what libvirt on the host says of each guest, first answer other than running (it is
    # stopped within seconds, so look often)
    end = time.time() + 5.0
    while time.time() < end and len(result.guest_states) < len(vms):
        for vm, st in _states(lab, host, [v for v in vms if v not in result.guest_states]).items():
            if not st.startswith("running"):
                result.guest_states[vm] = st
        time.sleep(0.1)

    left = health.vms_leave(
        lab, host, vms, t0, timeout=timeout, after=f"its storage path was {mode}", once_reset=mode == "hang"
    )
    seen, found = left.seen, left.found
    result.moved_to = left.moved
    if left.red_at is not None:
        result.red_s, result.timing = left.red_at - t0, "alerts"
    for vm in vms:
        ops = events.operations(found, vm, t0, seen)
        result.per_vm_s[vm] = (ops[-1].at if ops else seen) - t0
        result.stops[vm] = [
            {"task": op.task, "rc": op.rc, "ok": op.ok, "desc": op.desc} for op in ops if op.node == host
        ]
        failed = [op for op in ops if op.node == host and op.task == "stop" and not op.ok]
        if failed:
            result.stop_failed[vm] = f"rc {failed[0].rc} ({failed[0].desc})"
    result.storage_failover_s = max(result.per_vm_s.values()) if vms else None
    fencing = [e for e in found if e.kind == "fencing" and e.node == host and e.rc == 0]
    if fencing:
        result.fenced_by_cluster_s = fencing[0].at - t0
    for vm in vms:
        if not scenarios.wait_writing(lab, vm, booted[vm], 60.0):
            raise LabError(f"the disk writer of {vm} did not write after its storage failover")
    result.writes = scenarios.written(lab, vms)
    # the host that lost its storage is reset, as an operator would: fenced, it comes back
    # with a fresh path (and nothing it had queued for the storage survives the reset)
    t1 = time.time()
    survivor = next(h for h in lab.hosts if h != host)
    if result.fenced_by_cluster_s is None:
        result.fenced = lab.pcs("stonith", "fence", host, host=survivor, timeout=120).ok
    else:
        result.fenced, t1 = True, t0 + result.fenced_by_cluster_s
    if wait_until(
        lambda: (s := lab.crm(survivor)) and host in s.online() and health.colours(lab, survivor).get(host) == "green",
        120,
    ):
        result.rejoin_s = time.time() - t1
    return result
