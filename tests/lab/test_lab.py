"""Scenarios on a real lab cluster: every test runs under the double-run checker."""

from __future__ import annotations

import os
import signal
import time

import pytest
from vmha.lab import guest, image, proc, scenarios
from vmha.lab.checker import DoubleRunChecker
from vmha.lab.config import FENCE_AGENT_PATH
from vmha.lab.guest import domain_uuid
from vmha.lab.lab import Lab, wait_until

from tests.lab.conftest import AGENT

pytestmark = pytest.mark.lab

# behaviour ocf:vmha:VirtualMachine fixes; VirtualDomain is known to fail these
xfail_hung_monitor = pytest.mark.xfail(
    AGENT == "heartbeat",
    strict=False,
    reason="VirtualDomain's monitor does not answer 190 without libvirtd (it waits on a hung one)",
)
only_vmha = pytest.mark.skipif(AGENT != "vmha", reason="VirtualDomain has no peer check")
xfail_no_abort = pytest.mark.xfail(
    AGENT == "heartbeat",
    strict=False,
    reason="VirtualDomain leaves an unfinishable migration to Pacemaker's migrate_to timeout",
)


def where(lab: Lab, vm: str) -> str:
    s = lab.crm()
    assert s is not None
    host = s.started_on(vm)
    assert host, f"{vm} is not Started"
    return host


def other(lab: Lab, host: str) -> str:
    return next(h for h in lab.hosts if h != host)


def started_on(lab: Lab, vm: str, host: str, timeout: float) -> bool:
    return bool(wait_until(lambda: (s := lab.crm()) and s.started_on(vm) == host, timeout, 0.2))


def test_fence_agent_metadata_as_hacluster(watched: Lab) -> None:
    # pacemaker-controld asks for fence agent metadata as hacluster; failing costs ~1 s per
    # retry in every failover
    lab = watched
    done = lab.exec(lab.hosts[0], ["runuser", "-u", "hacluster", "--", FENCE_AGENT_PATH, "-o", "metadata"], timeout=30)
    assert done.ok and "fence_vmhalab" in done.stdout, done.stderr
    status = lab.exec(lab.hosts[0], [FENCE_AGENT_PATH, "-o", "status", "-n", lab.hosts[1]])
    assert status.ok and "ON" in status.stdout


def test_stop_start_monitor(watched: Lab) -> None:
    lab = watched
    vm = lab.state.vms[1]
    host = where(lab, vm)
    lab.pcs("resource", "disable", vm)
    try:
        # the guest powers off on the ACPI button / guest-shutdown: no stop timeout needed
        assert wait_until(lambda: (s := lab.crm()) and not s.resources[vm].active, 60, 0.2)
        assert scenarios.qemu_pid(lab, host, vm) is None, "stopped VM still has a QEMU process"
    finally:
        lab.pcs("resource", "enable", vm)
    assert wait_until(lambda: (s := lab.crm()) and s.started_on(vm), 60, 0.2)
    host = where(lab, vm)
    # the monitor, run on demand exactly as the cluster runs it
    check = lab.exec(host, ["crm_resource", "--resource", vm, "--force-check"], timeout=60)
    assert check.ok, check.stdout + check.stderr
    assert not [f for f in lab.crm().failures if f.resource == vm]  # type: ignore[union-attr]


@only_vmha
def test_start_on_a_peer_is_refused_while_the_vm_runs(watched: Lab) -> None:
    """The peer check on by default (the lab's resources set remoteuri for live migration):
    the agent's start on the other host, run exactly as Pacemaker would run it there, asks
    the real peer libvirtd over qemu+tcp and refuses; nothing starts, the VM keeps its QEMU."""
    lab = watched
    vm = lab.state.vms[0]
    host = where(lab, vm)
    pid = scenarios.qemu_pid(lab, host, vm)
    assert pid
    lab.pcs("resource", "unmanage", vm)  # the cluster does not react to what we do by hand
    try:
        t0 = time.monotonic()
        done = scenarios.vm_action_now(lab, other(lab, host), vm, "start")
        took = time.monotonic() - t0
    finally:
        lab.pcs("resource", "manage", vm)
    assert done.rc == 1, (done.rc, done.stderr)
    assert f"already runs on {host}" in done.stderr, done.stderr
    assert scenarios.qemu_pid(lab, other(lab, host), vm) is None, "a second copy started"
    assert scenarios.qemu_pid(lab, host, vm) == pid
    assert took < 10, f"the refused start took {took:.1f}s"


def test_live_migration_both_ways(watched: Lab) -> None:
    lab = watched
    vm = lab.state.vms[0]
    assert scenarios.wait_boots(lab, vm, 1)
    booted = scenarios.boots(lab, vm)
    start = where(lab, vm)
    for target in (other(lab, start), start):
        m = scenarios.migrate(lab, vm, target)
        assert m.started_s < 60
    assert where(lab, vm) == start
    time.sleep(1)
    assert scenarios.boots(lab, vm) == booted, "the guest rebooted: that was no live migration"
    # its disk writer went on across both migrations, and lost nothing it was told written
    assert scenarios.wait_writing(lab, vm, scenarios.writer_boots(lab, vm) - 1, 10)
    w = scenarios.written(lab, [vm])
    assert w["writes_lost"] == 0, w


def test_qemu_killed_restarts_in_place(watched: Lab) -> None:
    lab = watched
    vm = lab.state.vms[1]
    host = where(lab, vm)
    assert scenarios.wait_boots(lab, vm, 1)
    booted = scenarios.boots(lab, vm)
    pid = scenarios.qemu_pid(lab, host, vm)
    assert pid
    os.kill(pid, signal.SIGKILL)
    # one monitor interval (10 s) to notice, then stop + start where it was (stickiness)
    assert scenarios.wait_boots(lab, vm, booted + 1, 60), "the VM was not restarted"
    assert started_on(lab, vm, host, 30)
    new = scenarios.qemu_pid(lab, host, vm)
    assert new and new != pid


# a lab guest's QEMU this old has booted to its ready mark (or came in by live migration)
READY_AGE_S = 20.0


def _libvirtd_outage(lab: Lab, sig: int, outage_s: float) -> None:
    """libvirtd gone (or hung) for ``outage_s`` on the host of vm1: the VM stays where it is
    (same QEMU, no guest restart), and the monitor, run as pacemaker-execd runs it while the
    daemon is gone, answers 190 (degraded: QEMU still runs) instead of failing the VM."""
    vm = lab.state.vms[0]
    host = where(lab, vm)
    # the boot that runs now, ready: the fixture's cleanup may just have restarted the VM
    # (Pacemaker forces the recovery of a VM whose live-migration history the cleanup left
    # half: "it can no longer migrate"), and its ready mark must not land during the outage.
    # A QEMU older than READY_AGE_S has printed it (a TCG boot reaches it in about 6 s; the
    # guest's httpd is no sign: an earlier test's GuestService stop may have killed it)
    pid = scenarios.qemu_pid(lab, host, vm)
    assert pid, f"no QEMU for {vm} on {host}"
    age = proc.age_s(pid)
    assert age is not None, f"{vm}'s QEMU {pid} is gone"
    time.sleep(max(0.0, READY_AGE_S - age))
    assert scenarios.qemu_pid(lab, host, vm) == pid, f"{vm}'s QEMU {pid} was replaced before the outage"
    booted = scenarios.boots(lab, vm)
    scenarios.signal_daemon(lab, host, "libvirtd", sig)
    t0 = time.monotonic()
    try:
        rc = scenarios.vm_monitor_now(lab, host, vm)
        time.sleep(max(0.0, outage_s - (time.monotonic() - t0)))
    finally:
        scenarios.restart_libvirtd(lab, host)
    assert rc == 190, f"monitor answered {rc} with libvirtd gone and QEMU {pid} alive"
    assert scenarios.settle(lab, 180), "the cluster did not recover"
    status = lab.crm()
    assert status is not None
    assert not scenarios.monitor_timeouts(status), status.failures
    assert status.started_on(vm) == host, f"{vm} moved during the outage"
    assert scenarios.qemu_pid(lab, host, vm) == pid, f"{vm}'s QEMU changed during the outage"
    assert scenarios.boots(lab, vm) == booted, f"{vm}'s guest restarted during the outage"


@xfail_hung_monitor
def test_libvirtd_killed(watched: Lab) -> None:
    # two monitor intervals without libvirtd on the host, then it comes back
    _libvirtd_outage(watched, signal.SIGKILL, 22)


@xfail_hung_monitor
def test_libvirtd_hung(watched: Lab) -> None:
    # longer than a monitor interval plus its timeout: a monitor that waits on the hung
    # daemon instead of answering would time out
    _libvirtd_outage(watched, signal.SIGSTOP, 45)


@xfail_no_abort
def test_migration_abort_keeps_vm_on_source(watched: Lab, checker: DoubleRunChecker) -> None:
    """At 1 MiB/s a 128 MiB guest cannot move inside a 15 s migrate_to: the agent must abort
    the migration itself, before Pacemaker's timeout, with the guest still running on the
    source (Pacemaker then recovers the failed resource as it always does)."""
    lab = watched
    vm, timeout_s = "vmslow", 15
    host = lab.hosts[0]
    img = image.ensure(lab.paths.image_dir, lab.runner)
    lab.create_vm(vm, img, prefer=host, params=["migration_speed=1"], ops=["migrate_to", f"timeout={timeout_s}s"])
    try:
        assert started_on(lab, vm, host, 60)
        assert scenarios.wait_boots(lab, vm, 1)
        time.sleep(1)  # a few checker samples of the guest running on the source
        t_move = time.monotonic()
        lab.pcs("resource", "move-with-constraint", vm, other(lab, host))
        failed = wait_until(
            lambda: (s := lab.crm()) and [f for f in s.failures if f.resource == vm and f.task == "migrate_to"],
            timeout_s + 30,
            0.1,
        )
        t_failed = time.monotonic()
        assert failed, "migrate_to did not fail"
        assert failed[0].status.lower() != "timed out", "the agent let Pacemaker time it out"
        assert failed[0].exec_time_ms < timeout_s * 1000
        runs = checker.tracker.runs(domain_uuid(vm))
        assert any(a <= t_move and b >= t_failed - 1.0 for a, b in runs.get(host, [])), (
            f"the guest did not run on {host} throughout the aborted migration: {runs}"
        )
        assert not [iv for iv in runs.get(other(lab, host), []) if iv[1] >= t_move and iv[0] <= t_failed], (
            "the guest ran on the target during the aborted migration"
        )
    finally:
        lab.pcs("resource", "clear", vm)
        lab.delete_vm(vm)


def test_checker_sees_a_double_run(lab: Lab) -> None:
    """The checker itself: one domain started by hand on two hosts must be caught, through
    libvirt, and through /proc when a host's libvirtd is hung."""
    name = "dblrun"
    img = image.ensure(lab.paths.image_dir, lab.runner)
    xml = os.path.join(lab.paths.vm_dir, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(guest.domain_xml(name, img, lab.paths.vm_dir))
    a, b = lab.hosts[0], lab.hosts[1]
    try:
        for host in (a, b):
            done = lab.exec(host, ["virsh", "-c", "qemu:///system", "create", xml])
            assert done.ok, done.stderr
        with DoubleRunChecker(lab.hosts, lab.host_pid) as chk:
            assert wait_until(lambda: [i for i in chk.incidents if i.name == name], 10, 0.2)
        scenarios.signal_daemon(lab, b, "libvirtd", signal.SIGSTOP)
        try:
            with DoubleRunChecker(lab.hosts, lab.host_pid) as chk:
                assert wait_until(lambda: [i for i in chk.incidents if i.uuid == domain_uuid(name)], 10, 0.2), (
                    "not seen through /proc with libvirtd hung"
                )
                assert chk.fallback_samples > 0
        finally:
            scenarios.restart_libvirtd(lab, b)
    finally:
        for host in (a, b):
            lab.exec(host, ["virsh", "-c", "qemu:///system", "destroy", name])
