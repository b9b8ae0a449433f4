"""``make demo`` / ``vmha lab demo``: the issue's walk-through, figures as JSON last.

Up (2 hosts, 2 VMs preferring different hosts), ``crm_mon -1``, a service inside a guest
killed and recovered in place by GuestService (``service_recovery_s``), a live migration with
``pcs resource move``, a pulled plug with fencing and recovery, ``crm_mon -1`` again, a host
whose storage fills up emptied by HypervisorHealth and migrate-on-red (``evacuation_s``), a
host that loses its path to the shared storage (``storage_failover_s``), down.  A third VM
runs PostgreSQL (vmha.lab.database) on the host whose plug is pulled, rows committing into it
as it goes: ``db_serving_again_s`` (power off -> the database answers a query on the
survivor) and ``committed_rows_lost`` (acknowledged commits missing there: must be 0).
The double-run checker watches throughout.  Whatever happens (a failed step, Ctrl-C,
SIGTERM) the lab is taken down and the last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from vmha.lab import database, health, scenarios, timeline
from vmha.lab.checker import DoubleRunChecker
from vmha.lab.config import LAB_POOL, LabConfig
from vmha.lab.lab import Lab, LabError, wait_until
from vmha.lab.signals import interrupts_as_exceptions
from vmha.lab.timeline import Mark
from vmha.ocf.runner import CommandError

FIGURES = (
    "up",
    "vm_start_s",
    "service_recovery",
    "service_recovery_s",
    "migration",
    "migration_s",
    "failover",
    "failover_s",
    "detection_s",
    "fenced",
    "per_vm_failover_s",
    "database",
    "db_serving_again_s",
    "committed_rows_acknowledged",
    "committed_rows_lost",
    "evacuation",
    "evacuation_s",
    "storage_loss",
    "storage_failover_s",
    "writes_acknowledged",
    "writes_lost",
    "double_runs",
    "double_run_seen",
    "double_run_samples",
    "down_clean",
)
# a safety figure must be measured and good for the demo to be ok; null (not measured) is not
SAFETY = {"double_run_seen": False, "fenced": True, "down_clean": True}
DB_VM = "vm3"
DB_SERVICE = "pg3"


def double_run_figures(checker: DoubleRunChecker | None) -> dict[str, Any]:
    """What the checker measured; ``double_run_seen`` is null unless every host was sampled
    through its own libvirtd at least once (a checker that saw nothing proved nothing)."""
    if checker is None:
        return {"double_runs": None, "double_run_seen": None, "double_run_samples": None}
    by_host = {h: checker.tracker.samples_by_host.get(h, 0) for h in checker.hosts}
    measured = all(by_host.values())
    return {
        "double_runs": [i.to_json() for i in checker.incidents],
        "double_run_seen": bool(checker.incidents) if measured or checker.incidents else None,
        "double_run_samples": by_host,
    }


def demo_ok(report: dict[str, Any]) -> bool:
    """The steps ran (``report["ok"]``) and every safety figure was measured and good:
    no double run, the fencing done, a clean down, and not one acknowledged write or
    committed row lost."""
    lost = [report.get("writes_lost"), report.get("committed_rows_lost")]
    return (
        report.get("ok") is True
        and all(report.get(k) is v for k, v in SAFETY.items())
        and all(type(n) is int and n == 0 for n in lost)
    )


def say(msg: str) -> None:
    print(msg, flush=True)


def service_recovery(lab: Lab, report: dict[str, Any], vm: str, marks: list[Mark]) -> None:
    """A GuestService for the httpd inside ``vm``; the httpd killed in the guest; recovered in
    place (same QEMU) by the cluster.  The service resource is removed again afterwards."""
    service = "web1"
    say(f"\n== a service inside a guest: GuestService {service} (busybox httpd in {vm})")
    url = scenarios.create_guest_service(lab, service, vm)
    try:
        if not wait_until(
            lambda: (
                (s := lab.crm())
                and (h := s.started_on(vm))
                and s.started_on(service) == h
                and scenarios.http_answers(lab, h, url)
            ),
            120.0,
            0.5,
        ):
            raise LabError(f"{service} not Started and answering at {url}")
        say(lab.crm_mon_text())
        say(f"== kill -9 httpd inside {vm} (through its guest agent)")
        r = scenarios.kill_guest_service(lab, service, vm)
        if r.broken_at is not None:
            marks.append(Mark(r.broken_at, f"httpd killed in {vm}"))
            if r.recovery_s is not None:
                marks.append(Mark(r.broken_at + r.recovery_s, f"{service} answering again"))
        report["service_recovery"] = r.to_json()
        report["service_recovery_s"] = report["service_recovery"]["recovery_s"]
        say(
            f"{service} answering again {report['service_recovery_s']}s after the kill "
            f"(monitor failed after {r.detected_s}s: {r.exit_reason}); same QEMU PID: "
            f"{r.vm_untouched}"
        )
        say(lab.crm_mon_text())
        if r.recovery_s is None or not r.vm_untouched:
            raise LabError(f"the service was not recovered in place: {r.to_json()}")
    finally:
        lab.pcs("resource", "delete", service)


def health_evacuation(lab: Lab, report: dict[str, Any], marks: list[Mark]) -> None:
    """HypervisorHealth on every host with migrate-on-red; the storage pool of the host
    running the most VMs fills up; its VMs leave by live migration (``evacuation_s``); the
    pool is emptied and the host turns green again.  The clone is removed afterwards."""
    say("\n== node health: ocf:vmha:HypervisorHealth on every host, node-health-strategy=migrate-on-red")
    health.enable(lab)
    try:
        where = scenarios.all_started(lab, 60.0) or {}
        sick = scenarios.busiest(lab, dict(where))
        say(f"health: {health.colours(lab)}")
        say(f"== {sick}'s storage pool {LAB_POOL} fills up (fallocate {health.FILLER})")
        marks.append(Mark(time.time(), f"{sick}'s pool fills"))
        ev = health.evacuate(lab, sick, heal=False)
        got = ev.to_json()
        say(
            f"{sick} red {got['red_s']}s after its pool filled; its VMs "
            f"({', '.join(f'{vm} -> {h}' for vm, h in ev.moved_to.items())}) left by live migration: "
            f"{ev.live}; all running elsewhere {got['evacuation_s']}s after the pool filled"
        )
        say(f"health: {health.colours(lab)}")
        say(lab.crm_mon_text())
        ev.green_again_s = health.recover(lab, sick)
        report["evacuation"] = ev.to_json()
        say(
            f"== pool emptied: {sick} green again after {report['evacuation']['green_again_s']}s; "
            f"health {health.colours(lab)}"
        )
        report["evacuation_s"] = report["evacuation"]["evacuation_s"]
        if ev.evacuation_s is None or not all(ev.live.values()):
            raise LabError(f"the VMs did not leave {sick} by live migration: {ev.to_json()}")
        marks.append(Mark(time.time(), f"{sick}'s pool emptied"))
        storage_loss(lab, report, marks)
    finally:
        health.disable(lab)


def storage_loss(lab: Lab, report: dict[str, Any], marks: list[Mark]) -> None:
    """The host running the VMs loses its path to the shared storage (cut): its guests pause
    on the I/O error, it turns red, they restart on the other host (``storage_failover_s``),
    and it is fenced and rejoins with a fresh path."""
    from vmha.lab import vmcp

    where = scenarios.all_started(lab, 60.0) or {}
    host = scenarios.busiest(lab, dict(where))
    say(f"\n== {host} loses its path to the shared storage (its bindfs killed)")
    cut_at = time.time()
    loss = vmcp.storage_loss(lab, host, "cut")
    marks.append(Mark(cut_at, f"{host}'s storage path cut"))
    if loss.storage_failover_s is not None:
        marks.append(Mark(cut_at + loss.storage_failover_s, "its VMs running elsewhere"))
    report["storage_loss"] = loss.to_json()
    report["storage_failover_s"] = report["storage_loss"]["storage_failover_s"]
    say(
        f"guests on {host}: {loss.guest_states}; red after {report['storage_loss']['red_s']}s; all running on "
        f"{sorted(set(loss.moved_to.values()))} {report['storage_failover_s']}s after the cut; writes lost "
        f"{loss.writes.get('writes_lost')}; {host} fenced, rejoined after {report['storage_loss']['rejoin_s']}s"
    )


def run_scenarios(lab: Lab, report: dict[str, Any], checker: DoubleRunChecker, marks: list[Mark]) -> None:
    """Migration then failover on an up lab; fills ``report``. Raises LabError."""
    where = scenarios.all_started(lab, 60.0)
    if not where:
        raise LabError("VMs are not all Started")
    vm = lab.state.vms[0]
    # on the host vm1 migrates to, which is then the busiest, whose plug is pulled; it boots
    # while the service and the migration steps run
    say(f"\n== a database VM: {DB_VM} on {lab.hosts[1]}, PostgreSQL in it managed by GuestService {DB_SERVICE}")
    database.create_vm(lab, DB_VM, prefer=lab.hosts[1])
    database.create_service(lab, DB_SERVICE, DB_VM)
    service_recovery(lab, report, vm, marks)
    where = scenarios.all_started(lab, 60.0) or where
    src = where[vm]
    dst = next(h for h in lab.hosts if h != src)
    say(f"\n== live migration: pcs resource move {vm} {dst}")
    marks.append(Mark(time.time(), f"pcs resource move {vm} {dst}"))
    mig = scenarios.migrate(lab, vm, dst)
    report["migration"] = mig.to_json()
    report["migration_s"] = report["migration"]["migration_s"]
    say(
        f"{vm} Started on {dst} {report['migration_s']}s after pcs resource move "
        f"(pcs itself returned after {mig.command_s:.1f}s); live: {mig.live}; steps: {mig.to_json()['steps_s']}"
    )
    say(lab.crm_mon_text())

    where = scenarios.all_started(lab, 60.0) or {}
    # pull the plug of the host running the database (and the most VMs), rows committing
    if not wait_until(lambda: database.serving(lab, DB_VM, DB_SERVICE), 120.0, 0.5):
        raise LabError(f"the database in {DB_VM} did not answer:\n{lab.crm_mon_text()}")
    victim = where[DB_VM]
    moved = [v for v, h in where.items() if h == victim]
    say(f"== power off {victim} (running {', '.join(moved)}) while rows commit into the database in {DB_VM}")
    boots_before = {v: scenarios.writer_boots(lab, v) for v in moved}
    dbf = database.power_off(lab, DB_VM, DB_SERVICE, min_rows=100)
    report["database"] = dbf.to_json()
    del report["database"]["failover"]  # the report's own "failover"
    report["db_serving_again_s"] = report["database"]["db_serving_again_s"]
    report["committed_rows_acknowledged"] = dbf.committed_rows_acknowledged
    report["committed_rows_lost"] = dbf.committed_rows_lost
    if dbf.failover is None:
        raise LabError(f"power off {victim} failed")
    fo = dbf.failover
    if fo.pulled_at is not None:
        marks.append(Mark(fo.pulled_at, f"power off {victim}"))
        if dbf.db_serving_again_s is not None:
            marks.append(Mark(fo.pulled_at + dbf.db_serving_again_s, "database answering again"))
    report["failover"] = fo.to_json()
    report["failover_s"] = round(fo.failover_s, 2) if fo.failover_s is not None else None
    report["detection_s"] = fo.to_json()["detection_s"]
    report["fenced"] = fo.fenced
    report["per_vm_failover_s"] = fo.to_json()["per_vm_s"]
    say(
        f"fenced={fo.fenced} failover_s={report['failover_s']} detection_s={fo.to_json()['detection_s']} "
        f"fenced_s={fo.to_json()['fenced_s']} start_exec_s={fo.to_json()['start_exec_s']}"
    )
    say(fo.fence_history)
    if fo.failover_s is None:
        raise LabError(f"VMs of {victim} did not start on a survivor")
    say(
        f"database: answering on {dbf.served_from} {report['db_serving_again_s']}s after the power-off; "
        f"{dbf.committed_rows_acknowledged} commits acknowledged, {dbf.committed_rows_lost} of them missing"
    )
    if dbf.db_serving_again_s is None:
        raise LabError(f"the database in {DB_VM} did not answer after the failover")
    # every acknowledged record on the disks: the failed-over guests' writers found them
    for v in moved:
        if not scenarios.wait_writing(lab, v, boots_before[v], 60.0):
            raise LabError(f"the disk writer of {v} did not write after its failover")
    report.update(scenarios.written(lab))
    say(
        f"writes: {report['writes_acknowledged']} acknowledged, {report['writes_lost']} lost "
        f"(by VM: {report['writes_by_vm']})"
    )
    survivor = next(h for h in lab.hosts if h != victim)
    say(lab.crm_mon_text(survivor))
    # the database's part is done: the later steps are the two first VMs'
    lab.pcs("resource", "delete", DB_SERVICE)
    lab.delete_vm(DB_VM)
    settled = scenarios.settle(lab)
    say(f"== {victim} rejoined; the cluster settled: {settled}")
    say(lab.crm_mon_text(survivor))
    health_evacuation(lab, report, marks)
    # the writes once more, over everything the guests lived through: the migration, the
    # failover and the evacuation
    report.update(scenarios.written(lab))
    say(f"writes at the end: {report['writes_acknowledged']} acknowledged, {report['writes_lost']} lost")


def write_timeline(lab: Lab, since: float, marks: list[Mark], report_dir: str | None) -> str | None:
    """The SVG timeline of the demo (vmha.lab.timeline) from the controllers' event stamps:
    into ``report_dir``, else beside the events in the lab's log directory.  Its path, None
    when it could not be written (the demo's figures do not depend on it)."""
    path = os.path.join(report_dir or lab.paths.log_dir, "timeline.svg")
    try:
        found = lab.events(since)
        svg = timeline.render(
            found, marks, hosts=lab.hosts, start=since, title=f"vmha lab demo ({lab.state.agent}): what the cluster did"
        )
        timeline.write(path, svg)
    except OSError as exc:
        say(f"timeline: not written ({exc})")
        return None
    return path


def run_demo(agent: str, *, replace: bool = False, report_dir: str | None = None) -> int:
    """``report_dir``: also write the JSON report (report.json) and the timeline there."""
    # every figure starts as null, "not measured": only a measurement replaces it
    report: dict[str, Any] = {"agent": agent, "ok": False, **dict.fromkeys(FIGURES)}
    t0 = time.monotonic()
    t_wall = time.time()
    marks: list[Mark] = []
    if report_dir is not None:
        try:
            os.makedirs(report_dir, mode=0o755, exist_ok=True)
        except OSError as exc:
            print(f"vmha lab demo: cannot write the report into {report_dir}: {exc}", file=sys.stderr)
            return 2
    lab = Lab(log=say)
    checker: DoubleRunChecker | None = None
    try:
        with interrupts_as_exceptions():
            try:
                cfg = LabConfig(nodes=2, agent=agent, vms=2)
                say(f"== vmha lab up (agent {cfg.agent_spec})")
                # watching from the start: the first VM starts are covered too
                checker = DoubleRunChecker(cfg.node_names, lab.host_pid).start()
                report["up"] = lab.up(cfg, replace=replace)
                say(lab.crm_mon_text())
                report["vm_start_s"] = report["up"].get("vms_started_s")
                run_scenarios(lab, report, checker, marks)
                report["ok"] = True  # the steps ran; the safety figures decide below
            finally:
                if checker:
                    checker.stop()
                    report.update(double_run_figures(checker))
                report["timeline"] = write_timeline(lab, t_wall, marks, report_dir)
                report["moments"] = [{"at": round(m.at, 3), "label": m.label} for m in marks]
                if report["timeline"]:
                    say(f"== timeline: {report['timeline']}")
                say("== vmha lab down")
                problems = lab.down()
                report["down_clean"] = not problems
                for p in problems:
                    say(f"down: {p}")
    except KeyboardInterrupt:
        report["ok"], report["error"] = False, "interrupted"
    except (LabError, CommandError, OSError, ValueError) as exc:
        report["ok"], report["error"] = False, str(exc)
    report["ok"] = demo_ok(report)
    report["total_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(report, sort_keys=True)
    if report_dir is not None:
        tmp = os.path.join(report_dir, f".report.json.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write(text + "\n")
            os.replace(tmp, os.path.join(report_dir, "report.json"))
        except OSError as exc:
            say(f"report: not written ({exc})")
    print(text, flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_demo(sys.argv[1] if len(sys.argv) > 1 else "vmha"))
