"""VirtualMachine never outlives the timeout Pacemaker gave it, whatever libvirt does.

Hung and unreachable hypervisors, a QEMU that will not die, migrations slower than their
timeout, peers that do not answer: each test runs the action with a small
``OCF_RESKEY_CRM_meta_timeout`` and checks the outcome came in time (and that the
dispatcher's watchdog did not have to fire).  Sleep-bound by nature; kept to a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for tests.fakes when pytest is not started from the checkout
    sys.path.insert(0, str(REPO))

from vmha.ocf.codes import OcfRc  # noqa: E402

from tests.fakes import harness  # noqa: E402
from tests.fakes import libvirt as fl  # noqa: E402
from tests.fakes.harness import (  # noqa: E402
    NODES,
    UUID,
    Cluster,
    domain_xml,
    migrating,
    peer_check,
    running_here,
)

# The harness's fixtures, bound here for pytest to find.
lv = harness.lv
vm = harness.vm
qemu_scan = harness.qemu_scan
qemu_process = harness.qemu_process
stubborn_qemu = harness.stubborn_qemu


def test_stop_gives_up_before_the_timeout_when_destroy_never_succeeds(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.ignore_shutdown = True
    dom.destroy_failures = fl.FOREVER

    out = vm.run("stop", timeout_ms=2500)

    assert out.rc == OcfRc.ERR_GENERIC
    assert "could not be stopped" in out.log and "Device or resource busy" in out.log
    assert out.seconds < 2.5 * 0.95
    assert vm.local.called("destroyFlags")
    assert dom.active


def test_stop_with_a_short_timeout_still_asks_libvirt(vm: Cluster, qemu_scan: dict[str, Any]) -> None:
    dom = running_here(vm)

    out = vm.run("stop", force_stop=True, timeout_ms=2000)

    assert qemu_scan["asked"] == []
    assert vm.local.called("destroyFlags") == [(0,)]
    assert out.rc == OcfRc.SUCCESS and not dom.active


def test_stop_with_libvirt_hung_terminates_the_qemu_process_in_time(vm: Cluster, qemu_process: Any) -> None:
    running_here(vm)
    vm.local.hang()

    out = vm.run("stop", timeout_ms=3000)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert qemu_process.wait(1) == -15
    assert out.seconds < 3.0 * 0.9


def test_stop_with_libvirt_hanging_after_connect_terminates_qemu_in_time(vm: Cluster, qemu_process: Any) -> None:
    running_here(vm)
    vm.local.hang_calls = True  # the handshake and keepalive answer, every domain call hangs
    vm.local.hang_exempt = {"setKeepAlive"}

    out = vm.run("stop", timeout_ms=2500)

    fired, vm.watchdog[:] = list(vm.watchdog), []  # asserted here, not again at teardown
    assert out.rc == OcfRc.SUCCESS, out.log
    assert not fired, "the watchdog fired"
    assert qemu_process.wait(1) == -15


def test_stop_with_libvirt_down_kills_a_qemu_that_ignores_sigterm(vm: Cluster, stubborn_qemu: Any) -> None:
    vm.local.down = True

    out = vm.run("stop", timeout_ms=4000)

    fired, vm.watchdog[:] = list(vm.watchdog), []  # asserted here, not again at teardown
    assert stubborn_qemu.wait(1) == -9
    assert out.rc == OcfRc.SUCCESS, out.log
    assert not fired, "the watchdog fired"


@pytest.mark.parametrize("trouble", ["down", "hang"])
def test_start_goes_ahead_when_a_peer_is_unreachable(vm: Cluster, trouble: str) -> None:
    if trouble == "down":
        vm.peer.down = True
    else:
        vm.peer.hang()

    out = vm.run("start", peer_check_timeout=1, **peer_check(vm))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.running("vm1")
    assert "not reachable" in out.log
    assert out.seconds < 3.0


def test_peer_check_timeout_bounds_the_whole_check(vm: Cluster) -> None:
    vm.peer.hang()
    vm.lv.hypervisor("qemu+tcp://node3/system", hostname="node3").hang()
    vm.runner.answer(["crm_node", "--name"], stdout="node1\n")
    vm.runner.answer(["crm_node", "--list"], stdout=NODES + "3 node3 member\n")

    out = vm.run("start", peer_check_uri="qemu+tcp://%n/system", peer_check_timeout=1)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert out.seconds < 1.6


def test_start_of_a_domain_paused_by_the_user_does_not_wait_out_the_timeout(vm: Cluster) -> None:
    running_here(vm, state=fl.VIR_DOMAIN_PAUSED, reason=fl.VIR_DOMAIN_PAUSED_USER)

    out = vm.run("start", timeout_ms=1500)

    assert out.seconds < 0.5, out.log


@pytest.mark.parametrize(
    ("where", "timeout_ms", "pid", "rc"),
    [("open", 2500, 4242, OcfRc.DEGRADED), ("calls", 2500, None, OcfRc.NOT_RUNNING)],
)
def test_monitor_answers_in_time_when_libvirt_hangs(
    vm: Cluster, qemu_scan: dict[str, Any], where: str, timeout_ms: int, *, pid: int | None, rc: OcfRc
) -> None:
    """Open hanging: libvirtd accepts and never answers. Calls hanging: open() and keepalive
    answer, the domain calls never do."""
    running_here(vm)
    if where == "open":
        vm.local.hang_open = True
    else:
        vm.local.hang_calls = True
    qemu_scan["pid"] = pid

    out = vm.run("monitor", timeout_ms=timeout_ms)

    assert out.rc == rc, out.log
    assert out.seconds < timeout_ms / 1000 * 0.9
    assert qemu_scan["asked"] == [("vm1", UUID)]


def test_migrate_to_aborts_a_migration_that_would_outlive_its_timeout(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.migration_s = 60.0

    out = migrating(vm, timeout_ms=4000)

    assert out.rc == OcfRc.ERR_GENERIC
    assert "keeps running on this host" in out.log
    assert len(vm.local.called("abortJob")) == 1
    assert out.seconds < 4.0 * 0.9
    assert (dom.state, dom.job) == (fl.VIR_DOMAIN_RUNNING, fl.VIR_DOMAIN_JOB_NONE)
    assert vm.peer.domain("vm1") is None


def test_migrate_to_closes_the_target_connection_after_an_abort(vm: Cluster) -> None:
    running_here(vm).migration_s = 60.0

    out = migrating(vm, timeout_ms=4000)

    assert out.rc == OcfRc.ERR_GENERIC
    assert vm.peer.open_connections == 0
    assert vm.local.open_connections == 0


def test_the_abort_verdict_survives_the_exit_reason_limit(vm: Cluster) -> None:
    vm.lv.hypervisor("qemu://hv02.example.com/system", hostname="hv02.example.com")
    vm.config.write_text(domain_xml("web-frontend-01"))
    vm.local.add_domain(domain_xml("web-frontend-01"), persistent=True, running=True).migration_s = 60.0

    out = vm.run("migrate_to", timeout_ms=4000, meta_migrate_target="hv02.example.com")

    assert out.rc == OcfRc.ERR_GENERIC
    assert "keeps running on this host" in out.log  # the full message is logged...
    assert "keeps running" in out.reason  # ...but Pacemaker keeps only 128 bytes of it


def test_a_migration_that_completes_despite_the_abort_is_a_success(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.migration_s = 1.0  # past the abort point (~0.6 s), and too far along to be cancelled
    dom.migration_ignores_abort = True

    out = migrating(vm, timeout_ms=4000)

    assert vm.local.called("abortJob")
    assert vm.peer.running("vm1") and not dom.active
    assert out.rc == OcfRc.SUCCESS, out.log
    assert "started" not in vm.state()


def test_migrate_to_a_target_that_hangs_keeps_the_domain_here(vm: Cluster) -> None:
    dom = running_here(vm)
    vm.peer.hang()

    out = migrating(vm, timeout_ms=4000)

    assert out.rc == OcfRc.ERR_GENERIC
    assert out.seconds < 4.0 * 0.9
    assert dom.active and vm.local.called("migrate3") == []


def test_migrate_to_says_so_when_the_abort_is_not_confirmed(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.migration_s = 60.0
    dom.migration_ignores_abort = True
    # The whole deadline goes into waiting for the abort: nothing is left to close with, and
    # the reason races the watchdog, which fires at that same instant (reported).
    vm.connections_may_stay_open = True
    vm.watchdog_may_fire = True

    out = migrating(vm, timeout_ms=5000)  # the abort keeps a reserve of at least 3 s

    assert out.rc == OcfRc.ERR_GENERIC
    assert "could not be confirmed aborted" in out.log
    assert out.seconds < 5.0 * 0.95


def test_migrate_from_fails_when_the_domain_never_arrives(vm: Cluster) -> None:
    # migrate_from polls until the handlers' deadline, which is the very instant the watchdog
    # fires: under load the watchdog can win the race (same rc 1, its own reason).  Reported.
    vm.watchdog_may_fire = True

    out = vm.run("migrate_from", node="node2", timeout_ms=1000, meta_migrate_source="node1")

    assert out.rc == OcfRc.ERR_GENERIC
    assert "did not arrive from node1" in out.log or "giving up before Pacemaker does" in out.log
    assert out.seconds < 1.0


def test_stop_of_a_frozen_guest_forces_it_off_through_libvirt(vm: Cluster, qemu_scan: dict[str, Any]) -> None:
    """A SIGSTOPped QEMU never answers the shutdown request: after shutdown_timeout the domain
    is destroyed on the same connection (not marked wedged), not killed by PID."""
    dom = running_here(vm)
    dom.frozen = True
    vm.connections_may_stay_open = True  # the abandoned shutdown call keeps its connection busy

    out = vm.run("stop", shutdown_timeout=2, timeout_ms=30000)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert out.seconds < 8.0
    assert not dom.active
    assert vm.local.called("destroyFlags")
    assert qemu_scan["asked"] == []  # libvirt did the killing


def _disks_silent(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every disk of the config 'does not answer' (vmha.virt.disk_io.probe); returns the
    bounds the agent gave the probe.  The real probe on a hung FUSE path is tested in
    tests/unit/test_disk_io.py and tests/agents/test_vm_hung_hypervisor.py."""
    from vmha.virt import disk_io

    bounds: list[float] = []

    def probe(disks: Any, within: float) -> dict[str, str]:
        bounds.append(within)
        return {"/shared/vm1.img": f"{disk_io.SILENT} within {within:.1f}s"}

    monkeypatch.setattr(disk_io, "probe", probe)
    return bounds


def test_stop_with_hung_disk_storage_kills_qemu_and_fails_at_once(
    vm: Cluster, stubborn_qemu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dom = running_here(vm)
    bounds = _disks_silent(monkeypatch)

    out = vm.run("stop", timeout_ms=20000)

    assert out.rc == OcfRc.ERR_GENERIC
    assert out.reason.startswith("fence this host: disk /shared/vm1.img of vm1 does not answer"), out.reason
    assert stubborn_qemu.wait(2) == -9  # SIGKILL, not a graceful shutdown through libvirt
    assert vm.local.called("destroyFlags") == [] and vm.local.called("shutdownFlags") == []
    assert bounds == [pytest.approx(3.0, abs=0.05)] and out.seconds < 5, (bounds, out.seconds)
    assert dom.active  # the fake libvirt was never told: only fencing settles it


def test_migrate_to_refused_when_a_disk_does_not_answer(vm: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    running_here(vm)
    _disks_silent(monkeypatch)

    out = migrating(vm)

    assert out.rc == OcfRc.ERR_GENERIC
    assert out.reason.startswith("not migrating vm1: disk /shared/vm1.img does not answer"), out.reason
    assert vm.local.called("migrateToURI3") == [] and vm.local.called("migrate3") == []
