"""What the demo, the lab tests and the benchmark do to a lab, and how long it takes.

Every time is measured from the user's action (``pcs resource move`` issued, plug pulled)
to the moment the cluster recorded the outcome (Started on the other host): ``crm_mon`` is
polled a few times a second to know that it happened, and the controllers' own event times
(Pacemaker alerts, ``vmha.lab.events``) say when.  Polling faster only stole CPU from the
cluster it measured.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import events, proc
from vmha.lab.cluster import ClusterStatus, OpFailure
from vmha.lab.config import AGENTS, guest_address, node_netns
from vmha.lab.image import HTTP_PORT
from vmha.lab.lab import OCF_ROOT, Lab, LabError, wait_until
from vmha.ocf.runner import CommandTimedOut, Completed
from vmha.qemu_processes import qemu_processes

POLL_S = 0.25


def locations(lab: Lab, host: str | None = None) -> dict[str, str | None]:
    """vm -> host it is Started on (None while not cleanly Started anywhere)."""
    s = lab.crm(host)
    return {vm: (s.started_on(vm) if s else None) for vm in lab.state.vms}


def busiest(lab: Lab, where: dict[str, str | None] | None = None) -> str:
    """The host running the most VMs (the first of them on a tie)."""
    at = locations(lab) if where is None else where
    return max(lab.hosts, key=lambda h: sum(1 for v in at.values() if v == h))


def all_started(lab: Lab, timeout: float) -> dict[str, str] | None:
    def check() -> dict[str, str] | None:
        s = lab.crm()
        if not s:
            return None
        where = {vm: s.started_on(vm) for vm in lab.state.vms}
        return where if all(where.values()) else None  # type: ignore[return-value]

    return wait_until(check, timeout, 0.2)


@dataclass
class Migration:
    vm: str
    source: str | None
    target: str
    started_s: float  # pcs resource move issued -> Started on target (the cluster's own time)
    command_s: float  # how long ``pcs resource move`` itself took (it waits, then clears)
    observed_s: float = 0.0  # when a crm_mon poll first showed it (an upper bound)
    timing: str = "polling"  # "alerts": started_s is the controller's time of the last step
    live: bool | None = None  # a successful migrate_to took it there; None: no op events to tell
    steps: dict[str, float | None] | None = None  # op -> its run time, and the lead-in

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "source": self.source,
            "target": self.target,
            "migration_s": round(self.started_s, 2),
            "pcs_move_s": round(self.command_s, 2),
            "observed_s": round(self.observed_s, 2),
            "timing": self.timing,
            "live": self.live,
            "steps_s": None if self.steps is None else {k: _round(v, 3) for k, v in self.steps.items()},
        }


def _round(v: float | None, n: int = 2) -> float | None:
    return None if v is None else round(v, n)


def op_steps(ops: list[events.Event], t0: float) -> dict[str, float | None]:
    """What each operation took (its own run time), and ``lead_in``: from ``t0`` to the start
    of the first (for a migration: pcs, the CIB write and the scheduler)."""
    steps: dict[str, float | None] = {}
    if ops:
        steps["lead_in"] = max(0.0, ops[0].began - t0)
    for op in ops:
        key = op.task if op.task not in steps else f"{op.task}@{op.node}"
        steps[key] = None if op.exec_ms is None else op.exec_ms / 1000.0
    return steps


def migrate(lab: Lab, vm: str, target: str, timeout: float = 120.0) -> Migration:
    """``pcs resource move VM TARGET`` as a user types it; timed until the cluster has it
    Started on TARGET (pcs keeps waiting a few seconds more to clear its constraint).

    Raises LabError when it does not get there in time or pcs fails.
    """
    source = locations(lab).get(vm)
    outcome: list[BaseException | float] = []
    t0 = time.time()

    def move() -> None:
        try:
            lab.pcs("resource", "move", vm, target, timeout=timeout)
            outcome.append(time.time() - t0)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(exc)

    worker = threading.Thread(target=move, name=f"pcs-move-{vm}", daemon=True)
    worker.start()
    started = wait_until(
        lambda: outcome and isinstance(outcome[0], BaseException) or ((s := lab.crm()) and s.started_on(vm) == target),
        timeout,
        POLL_S,
    )
    seen = time.time()
    worker.join(timeout)
    if outcome and isinstance(outcome[0], BaseException):
        raise LabError(f"pcs resource move {vm} {target}: {outcome[0]}")
    if not started or not outcome:
        raise LabError(f"{vm} not Started on {target} {timeout:.0f}s after pcs resource move")
    result = Migration(
        vm,
        source,
        target,
        seen - t0,
        float(outcome[0]),  # type: ignore[arg-type]
        observed_s=seen - t0,
    )
    ops = events.operations(lab.events(t0), vm, t0, seen)
    if ops:
        result.started_s, result.timing = ops[-1].at - t0, "alerts"
        result.live = any(op.task == "migrate_to" and op.ok for op in ops)
        result.steps = op_steps(ops, t0)
    return result


def settle(lab: Lab, timeout: float = 120.0) -> dict[str, str] | None:
    """Wait until every host is online and every VM Started, as seen from every host."""
    want = sorted(lab.hosts)

    def check() -> dict[str, str] | None:
        views = [lab.crm(h) for h in lab.hosts]
        if not all(v and v.online() == want and v.dc for v in views):
            return None
        where = {vm: views[0].started_on(vm) for vm in lab.state.vms}  # type: ignore[union-attr]
        return where if all(where.values()) else None  # type: ignore[return-value]

    return wait_until(check, timeout, 0.2)


@dataclass
class Failover:
    victim: str
    vms: list[str]
    failover_s: float | None = None  # plug pulled -> every VM of the victim Started elsewhere
    detection_s: float | None = None  # -> a survivor's controller saw the victim lost
    fenced_s: float | None = None  # -> the fencing of the victim succeeded
    per_vm_s: dict[str, float] = field(default_factory=dict)
    started_on: dict[str, str] = field(default_factory=dict)
    start_exec_s: dict[str, float | None] = field(default_factory=dict)  # each VM's start, as it ran
    fenced: bool | None = None  # None: the fence history could not be read
    fence_history: str = ""
    rejoin_s: float | None = None
    timing: str = "polling"
    pulled_at: float | None = None  # epoch seconds of the plug pull (vmha.lab.timeline's mark)

    def to_json(self) -> dict[str, Any]:
        r = {k: v for k, v in self.__dict__.items() if k != "fence_history"}
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 2)
        for k in ("per_vm_s", "start_exec_s"):
            r[k] = {vm: _round(v) for vm, v in getattr(self, k).items()}
        return r


def fence_events(lab: Lab, host: str) -> list[dict[str, str]] | None:
    """The fence history as ``host`` has it; None when it could not be read."""
    try:
        done = lab.exec(host, ["stonith_admin", "--history", "*", "--output-as=xml"], timeout=15)
        root = ET.fromstring(done.stdout)  # noqa: S314 - our own stonith_admin
    except (ET.ParseError, LabError, CommandTimedOut):
        return None
    return [dict(ev.attrib) for ev in root.iter("fence_event")]


def power_off(lab: Lab, victim: str, timeout: float = 180.0, rejoin: bool = True) -> Failover:
    """Pull ``victim``'s plug; measure detection, fencing and recovery of its VMs.

    Polled slowly (crm_mon on a survivor) to know when every VM is Started elsewhere; the
    times are the controllers' own (vmha.lab.events), the poll's when an event is missing.
    """
    before = locations(lab)
    vms = [vm for vm, h in before.items() if h == victim]
    survivors = [h for h in lab.hosts if h != victim]
    result = Failover(victim, vms)
    t0 = result.pulled_at = time.time()
    reply = lab.power.request(f"off {victim}", 30.0)
    if not reply.startswith("OFF"):
        raise LabError(f"power off {victim}: {reply}")
    end = t0 + timeout
    while time.time() < end and len(result.per_vm_s) < len(vms):
        s: ClusterStatus | None = lab.crm(survivors[0])
        now = time.time() - t0
        if s:
            node = s.nodes.get(victim)
            if result.detection_s is None and node is not None and not node.online:
                result.detection_s = now
            for vm in vms:
                where = s.started_on(vm)
                if vm not in result.per_vm_s and where and where != victim:
                    result.per_vm_s[vm] = now
                    result.started_on[vm] = where
        time.sleep(POLL_S)
    seen = time.time()
    found = lab.events(t0)
    lost = events.first(found, t0, kind="node", node=victim, desc="lost")
    fencing = [e for e in found if e.kind == "fencing" and e.node == victim and e.rc == 0]
    if lost:
        result.detection_s, result.timing = lost.at - t0, "alerts"
    if fencing:
        result.fenced_s = fencing[0].at - t0
    for vm in list(result.per_vm_s):
        ops = events.operations(found, vm, t0, seen)
        if ops:
            result.per_vm_s[vm] = ops[-1].at - t0
            ms = ops[-1].exec_ms
            result.start_exec_s[vm] = None if ms is None else ms / 1000.0
    if vms and len(result.per_vm_s) == len(vms):
        result.failover_s = max(result.per_vm_s.values())
    history = fence_events(lab, survivors[0])
    result.fenced = (
        None
        if history is None
        else any(
            e.get("target") == victim and e.get("action") in ("reboot", "off") and e.get("status") == "success"
            for e in history
        )
    )
    result.fence_history = lab.exec(survivors[0], ["stonith_admin", "--history", "*"], timeout=15).stdout
    if rejoin:
        # the fence device's "reboot" powers the host back on: wait for it to rejoin
        want = sorted(lab.hosts)
        if wait_until(lambda: (st := lab.crm(survivors[0])) and st.online() == want, max(5.0, end - time.time()), 0.2):
            result.rejoin_s = time.time() - t0
    return result


def qemu_pid(lab: Lab, host: str, vm: str) -> int | None:
    """Machine PID of ``vm``'s QEMU on ``host`` (found in /proc, not asked of libvirt)."""
    ino = proc.netns_inode(node_netns(host))
    for q in qemu_processes(pids=proc.pids_in_netns(ino)) if ino else []:
        if q.name == vm:
            return q.pid
    return None


def daemon_pid(lab: Lab, host: str, name: str) -> int | None:
    """PID (machine view) of daemon ``name`` (e.g. libvirtd) inside ``host``."""
    ino = proc.netns_inode(node_netns(host))
    for pid in proc.pids_in_netns(ino) if ino else []:
        if proc.comm(pid) == name:
            return pid
    return None


def signal_daemon(lab: Lab, host: str, name: str, sig: int) -> int:
    """Raises LabError when ``name`` does not run in ``host``."""
    pid = daemon_pid(lab, host, name)
    if pid is None:
        raise LabError(f"{name} is not running on {host}")
    os.kill(pid, sig)
    return pid


def restart_libvirtd(lab: Lab, host: str) -> None:
    pid = daemon_pid(lab, host, "libvirtd")
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
        return
    done = lab.exec(host, ["libvirtd", "-d", "--listen"], timeout=30)
    if not done.ok:
        raise LabError(f"libvirtd did not restart on {host}: {done.stderr.strip()}")


def vm_monitor_now(lab: Lab, host: str, vm: str, *, interval_ms: int = 10000, timeout_ms: int = 30000) -> int:
    """Run ``vm``'s recurring monitor on ``host`` now, as pacemaker-execd runs it (the
    parameters ``Lab.create_vm`` gives it, the same environment and state directory);
    returns its exit code."""
    return vm_action_now(lab, host, vm, "monitor", interval_ms=interval_ms, timeout_ms=timeout_ms).rc


def vm_action_now(
    lab: Lab,
    host: str,
    vm: str,
    action: str,
    *,
    interval_ms: int = 0,
    timeout_ms: int = 30000,
    params: dict[str, str] | None = None,
    instance: str | None = None,
) -> Completed:
    """Run ``vm``'s agent with ``action`` on ``host`` now, as pacemaker-execd would (the
    parameters ``Lab.create_vm`` gives it, the same environment and state directory).
    ``params``: parameters to add or replace; ``instance``: another resource name (its own
    state file), for an agent run the cluster knows nothing of."""
    agent = AGENTS[lab.state.agent].split(":")
    env = {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": instance or vm,
        "OCF_RESOURCE_TYPE": agent[2],
        "OCF_RESOURCE_PROVIDER": agent[1],
        "OCF_RESKEY_config": os.path.join(lab.paths.vm_dir, f"{vm}.xml"),
        "OCF_RESKEY_hypervisor": "qemu:///system",
        "OCF_RESKEY_migration_transport": "tcp",
        "OCF_RESKEY_remoteuri": "qemu+tcp://%n/system",
        "OCF_RESKEY_migrateuri": "tcp://%n",
        "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
        "OCF_RESKEY_CRM_meta_on_node": host,
        "OCF_RESKEY_CRM_meta_allow_migrate": "true",
        "HA_RSCTMP": "/run/resource-agents",
    }
    env.update({f"OCF_RESKEY_{k}": v for k, v in (params or {}).items()})
    return lab.exec(host, [os.path.join(OCF_ROOT, agent[1], agent[2]), action], timeout=timeout_ms / 1000 + 5, env=env)


def monitor_timeouts(status: ClusterStatus) -> list[str]:
    return [
        f"{f.resource} {f.task} on {f.node}"
        for f in status.failures
        if f.task == "monitor" and "time" in f.status.lower()
    ]


def boots(lab: Lab, vm: str) -> int | None:
    """How many times ``vm``'s guest reached its init's ready mark (its serial log is shared
    by every host, so a live migration does not add one; a restart does); None without a log."""
    from vmha.lab.guest import serial_log
    from vmha.lab.image import READY_MARK

    try:
        with open(serial_log(lab.paths.vm_dir, vm), errors="replace") as f:
            return f.read().count(READY_MARK)
    except FileNotFoundError:
        return None


def wait_boots(lab: Lab, vm: str, at_least: int, timeout: float = 60.0) -> bool:
    return bool(wait_until(lambda: (boots(lab, vm) or 0) >= at_least, timeout, 0.2))


def written(lab: Lab, vms: list[str] | None = None) -> dict[str, Any]:
    """What the guests' disk writers were told was written, and what of it is not on the
    disks (vmha.lab.writes); each total is null unless every VM's writer was measured."""
    from vmha.lab import writes
    from vmha.lab.guest import serial_log

    names = lab.state.vms if vms is None else vms
    per = {vm: writes.read(serial_log(lab.paths.vm_dir, vm), lab.paths.disk_image(vm)) for vm in names}
    done = [r for r in per.values() if r is not None]
    measured = bool(per) and len(done) == len(per)
    return {
        "writes_acknowledged": sum(r.acknowledged for r in done) if measured else None,
        "writes_lost": sum(r.lost for r in done) if measured else None,
        "writes_by_vm": {vm: r.to_json() if r else None for vm, r in per.items()},
    }


def wait_writing(lab: Lab, vm: str, boots_before: int, timeout: float = 60.0) -> bool:
    """Wait until ``vm``'s writer, booted after ``boots_before`` boots, acknowledged a record."""
    from vmha.lab import writes
    from vmha.lab.guest import serial_log

    return writes.wait_writing(serial_log(lab.paths.vm_dir, vm), boots_before, timeout)


def writers_ready(lab: Lab, vms: list[str] | None = None, timeout: float = 60.0) -> None:
    """Wait until every VM's disk writer (its current boot) acknowledged a record, so a fault
    injected next has something to lose. Raises LabError."""
    for vm in lab.state.vms if vms is None else vms:
        if not wait_writing(lab, vm, writer_boots(lab, vm) - 1, timeout):
            raise LabError(f"the disk writer of {vm} is not writing")


def writer_boots(lab: Lab, vm: str) -> int:
    from vmha.lab import writes
    from vmha.lab.guest import serial_log

    return writes.boots(serial_log(lab.paths.vm_dir, vm))


# -- the guest layer: a service inside a guest, its client path, the guest's liveness -------

GUEST_HTTPD_START = f"/bin/httpd -p {HTTP_PORT} -h /www"


def guest_ip(vm: str) -> str:
    """Lab guest ``vm``'s fixed address on the guest network. Raises LabError."""
    address = guest_address(vm)
    if address is None:
        raise LabError(f"{vm} has no fixed guest address (only vmN guests have one)")
    return address


def guest_url(vm: str) -> str:
    """The URL the busybox httpd in lab guest ``vm`` serves (from its host)."""
    return f"http://{guest_ip(vm)}:{HTTP_PORT}/"


def guest_exec(lab: Lab, host: str, vm: str, argv: list[str], timeout: float = 30.0) -> int | None:
    """Exit code of ``argv`` run inside ``vm``'s guest (on ``host``) through its guest agent,
    as an operator would with ``virsh qemu-agent-command``; None when it gave no answer in
    time.  Output is not captured: a program that leaves a daemon behind still finishes."""

    def agent(cmd: dict[str, Any]) -> dict[str, Any] | None:
        try:
            done = lab.exec(
                host,
                ["virsh", "-c", "qemu:///system", "qemu-agent-command", "--timeout", "5", vm, json.dumps(cmd)],
                timeout=15,
            )
        except CommandTimedOut:
            return None
        if not done.ok:
            return None
        try:
            reply = json.loads(done.stdout)
        except ValueError:
            return None
        ret = reply.get("return") if isinstance(reply, dict) else None
        return ret if isinstance(ret, dict) else None

    end = time.monotonic() + timeout
    started = agent({"execute": "guest-exec", "arguments": {"path": argv[0], "arg": argv[1:], "capture-output": False}})
    if not started or not isinstance(started.get("pid"), int):
        return None
    while time.monotonic() < end:
        status = agent({"execute": "guest-exec-status", "arguments": {"pid": started["pid"]}})
        if status and status.get("exited"):
            code = status.get("exitcode")
            return code if isinstance(code, int) else None
        time.sleep(0.2)
    return None


def guest_agent_answers(lab: Lab, host: str, vm: str) -> bool:
    try:
        done = lab.exec(
            host,
            ["virsh", "-c", "qemu:///system", "qemu-agent-command", "--timeout", "3", vm, '{"execute":"guest-ping"}'],
            timeout=10,
        )
    except (CommandTimedOut, LabError):
        return False
    return done.ok


def http_answers(lab: Lab, host: str, url: str, timeout: int = 2) -> bool:
    """A GET of ``url`` from inside ``host`` answered 2xx (curl; busybox-static's wget
    crashes on Debian 12)."""
    try:
        done = lab.exec(host, ["curl", "-sf", "-o", "/dev/null", "-m", str(timeout), url], timeout=timeout + 10)
    except (CommandTimedOut, LabError):
        return False
    return done.ok


def create_guest_service(lab: Lab, name: str, vm: str, interval: str = "3s") -> str:
    """GuestService ``name`` for the busybox httpd inside ``vm``; returns the URL its client
    checks use."""
    url = guest_url(vm)
    params = [
        "manager=commands",
        f"start_command={GUEST_HTTPD_START}",
        "status_command=/bin/pidof httpd",
        "stop_command=/bin/killall httpd",
        f"tcp_check={guest_ip(vm)}:{HTTP_PORT}",
        f"http_check={url}",
        "tcp_timeout=2",
        "http_timeout=2",
        "agent_timeout=5",
    ]
    ops = ["monitor", f"interval={interval}", "timeout=20s", "start", "timeout=60s", "stop", "timeout=30s"]
    add_guest_service(lab, name, vm, params, ops)
    return url


def add_guest_service(lab: Lab, name: str, vm: str, params: list[str], ops: list[str]) -> None:
    """GuestService ``name`` in ``vm`` with ``params`` (``meta`` and its attributes may end
    them) and ``ops`` (``monitor interval=3s ...``: each operation's name, then its
    attributes), colocated with its VM and ordered after it, created with pcs as a user
    would: disabled until the constraints exist."""
    op_args: list[str] = []
    for word in ops:
        op_args += [word] if "=" in word else ["op", word]
    steps = [
        ["resource", "create", name, "ocf:vmha:GuestService", f"domain={vm}", *params, *op_args, "--disabled"],
        ["constraint", "colocation", "add", name, "with", vm, "INFINITY"],
        ["constraint", "order", vm, "then", name],
        ["resource", "enable", name],
    ]
    for args in steps:
        lab.log("# pcs " + shlex.join(args))
        lab.pcs(*args)


def failed_since(lab: Lab, rsc: str, since: float, task: str = "monitor") -> bool:
    """A failed ``task`` of ``rsc`` reported by a controller at or after ``since`` (epoch)."""
    return any(
        e.kind == "resource" and e.rsc == rsc and e.task == task and e.rc is not None and not e.ok
        for e in lab.events(since)
    )


def failures_of(lab: Lab, rsc: str, task: str = "monitor") -> list[OpFailure]:
    s = lab.crm()
    return [f for f in s.failures if f.resource == rsc and f.task == task] if s else []


@dataclass
class ServiceRecovery:
    service: str
    vm: str
    host: str
    recovery_s: float | None = None  # service killed in the guest -> it answers HTTP again
    detected_s: float | None = None  # -> crm_mon shows the service's failed monitor
    exit_reason: str | None = None
    qemu_pid_before: int | None = None
    qemu_pid_after: int | None = None
    boots_before: int | None = None
    boots_after: int | None = None
    broken_at: float | None = None  # epoch seconds of the fault in the guest

    @property
    def vm_untouched(self) -> bool:
        return (
            self.qemu_pid_before is not None
            and self.qemu_pid_before == self.qemu_pid_after
            and self.boots_before is not None
            and self.boots_before == self.boots_after
        )

    def to_json(self) -> dict[str, Any]:
        r: dict[str, Any] = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        r["vm_untouched"] = self.vm_untouched
        return r


def kill_guest_service(lab: Lab, service: str, vm: str, timeout: float = 120.0) -> ServiceRecovery:
    """SIGKILL the httpd inside ``vm``'s guest; measure until the cluster noticed (the
    service's monitor failed) and the service answers HTTP again. Raises LabError when the
    kill cannot be delivered."""
    url = guest_url(vm)
    return break_guest_service(
        lab, service, vm, ["/bin/killall", "-9", "httpd"], lambda host: http_answers(lab, host, url), timeout=timeout
    )


def break_guest_service(
    lab: Lab, service: str, vm: str, fault: list[str], answers: Callable[[str], bool], *, timeout: float = 120.0
) -> ServiceRecovery:
    """Run ``fault`` inside ``vm``'s guest (through its guest agent); measure until the cluster
    noticed (the service's monitor failed) and ``answers(host)`` holds again, the host being
    where the service runs then.  Raises LabError when the fault cannot be delivered."""
    s = lab.crm()
    host = s.started_on(vm) if s else None
    if not host or s is None or s.started_on(service) != host:
        raise LabError(f"{vm} and {service} are not both Started on one host")
    result = ServiceRecovery(service, vm, host, qemu_pid_before=qemu_pid(lab, host, vm), boots_before=boots(lab, vm))
    wall0 = result.broken_at = time.time()
    t0 = time.monotonic()
    if guest_exec(lab, host, vm, fault) != 0:
        raise LabError(f"{shlex.join(fault)} in {vm} failed")
    end = t0 + timeout
    while time.monotonic() < end:
        # an earlier failure may still be listed (its failure-timeout not up): only a failed
        # monitor the controller reported after the fault counts
        if result.detected_s is None and failed_since(lab, service, wall0):
            failed = failures_of(lab, service)
            if failed:
                result.detected_s = time.monotonic() - t0
                result.exit_reason = failed[0].exit_reason
        if result.detected_s is not None:
            now = lab.crm()
            where = now.started_on(service) if now else None
            if where and answers(where):
                result.recovery_s = time.monotonic() - t0
                result.host = where
                break
        time.sleep(POLL_S)
    result.qemu_pid_after = qemu_pid(lab, result.host, vm)
    result.boots_after = boots(lab, vm)
    return result
