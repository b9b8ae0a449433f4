"""VirtualMachine's decisions, driven through the dispatcher against a stateful fake libvirt.

What the real test:/// driver cannot show: guests that ignore shutdown, a QEMU that will not
die, migrations that outlive their timeout, a libvirtd that is down or hangs, a second host
running the same VM.  Each test runs one OCF action with ``vmha.ocf.dispatch.run`` and an OCF
environment, then asserts the exit code and what happened to the fake domains; the command
runner is a scripted fake, so every crm_resource/crm_node call is checked too.

Every action here must finish before the dispatcher's watchdog would end the process: the
watchdog's ``os._exit`` is replaced by a recorder, and a test fails if it fired.  What is
about time (hung hypervisors, deadlines, aborted migrations) is in ``test_vm_deadlines.py``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for tests.fakes when pytest is not started from the checkout
    sys.path.insert(0, str(REPO))

from vmha.ocf import statefile  # noqa: E402
from vmha.ocf.codes import OcfRc  # noqa: E402
from vmha.ocf.runner import CommandTimedOut  # noqa: E402
from vmha.virtual_machine import resource as vm_resource  # noqa: E402
from vmha.virtual_machine import stopping as vm_stopping  # noqa: E402

from tests.fakes import harness  # noqa: E402
from tests.fakes import libvirt as fl  # noqa: E402
from tests.fakes.harness import (  # noqa: E402
    NODES,
    OTHER_UUID,
    PEER_TCP_URI,
    PEER_URI,
    UUID,
    Cluster,
    cib_read_argv,
    domain_xml,
    migrating,
    peer_check,
    running_here,
    utilization_argv,
)

# The harness's fixtures, bound here for pytest to find.
lv = harness.lv
vm = harness.vm
qemu_scan = harness.qemu_scan
qemu_process = harness.qemu_process
stubborn_qemu = harness.stubborn_qemu

# -- stop --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "flags"),
    [("", 0), ("acpi", 1), ("agent", 2), ("acpi,agent", 3)],
)
def test_stop_asks_the_guest_with_the_shutdown_mode_flags(vm: Cluster, mode: str, flags: int) -> None:
    dom = running_here(vm)

    out = vm.run("stop", shutdown_mode=mode)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("shutdownFlags") == [(flags,)]
    assert vm.local.called("destroyFlags") == []
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_SHUTOFF, fl.VIR_DOMAIN_SHUTOFF_SHUTDOWN)


def _identity(record: dict) -> dict:
    """The started record without its start time (which the boot grace period uses)."""
    return {k: v for k, v in record.items() if k != "at"}


def test_stop_waits_for_a_guest_that_takes_a_while(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.shutdown_delay_s = 0.4

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("destroyFlags") == []
    assert dom.reason == fl.VIR_DOMAIN_SHUTOFF_SHUTDOWN
    assert out.seconds >= 0.4


def test_stop_forces_off_a_guest_that_ignores_shutdown(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.ignore_shutdown = True

    out = vm.run("stop", shutdown_timeout=1)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert len(vm.local.called("shutdownFlags")) == 1
    assert vm.local.called("destroyFlags") == [(0,)]
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_SHUTOFF, fl.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert 1.0 <= out.seconds < 3.0


@pytest.mark.parametrize(("failures", "error"), [(2, fl.BUSY), (1, fl.BUSY_OPERATION_FAILED)])
def test_stop_retries_a_destroy_that_fails_busy(vm: Cluster, failures: int, error: tuple[int, int, str]) -> None:
    dom = running_here(vm)
    dom.destroy_failures = failures
    dom.destroy_error = error

    out = vm.run("stop", force_stop=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert len(vm.local.called("destroyFlags")) == failures + 1
    assert not dom.active


def test_stop_of_an_absent_domain_succeeds(vm: Cluster) -> None:
    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("shutdownFlags") == vm.local.called("destroyFlags") == []


def test_stop_of_a_shut_off_domain_succeeds(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml(), persistent=True)

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("shutdownFlags") == vm.local.called("destroyFlags") == []


def test_stop_with_save_config_writes_the_definition_back_first(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.xml = domain_xml(vcpus=4)

    out = vm.run("stop", save_config_on_stop=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.config.read_text() == dom.xml
    assert not dom.active


def test_stop_asks_again_a_guest_that_missed_the_first_request(vm: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_stopping, "SHUTDOWN_RESEND_S", 0.3)
    dom = running_here(vm)
    dom.shutdown_ignored = 1  # still booting: the first ACPI event is lost

    out = vm.run("stop", shutdown_mode="acpi")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("shutdownFlags") == [(1,), (1,)]
    assert vm.local.called("destroyFlags") == []


@pytest.mark.parametrize(
    ("state", "reason"),
    [(fl.VIR_DOMAIN_PAUSED, fl.VIR_DOMAIN_PAUSED_IOERROR), (fl.VIR_DOMAIN_PMSUSPENDED, 0)],
)
def test_stop_forces_off_a_guest_that_cannot_be_asked(vm: Cluster, state: int, reason: int) -> None:
    dom = running_here(vm, state=state, reason=reason)

    out = vm.run("stop", timeout_ms=10000)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("destroyFlags") == [(0,)]
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_SHUTOFF, fl.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert out.seconds < 2.0  # no graceful wait for a guest that cannot act on it


def test_stop_shuts_down_when_the_snapshot_cannot_be_saved(vm: Cluster) -> None:
    dom = running_here(vm)

    out = vm.run("stop", snapshot=str(vm.tmp / "no-such-dir"))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert len(vm.local.called("save")) == 1
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_SHUTOFF, fl.VIR_DOMAIN_SHUTOFF_SHUTDOWN)


# libvirt keeps names unique per host, so a domain with our name but another UUID is another
# domain (start refuses it as a conflict, rc 2).  Connection.lookup falls back to the name
# when the UUID is not found, so monitor and stop take that other domain for ours.


def test_probe_ignores_a_domain_with_our_name_and_another_uuid(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml("vm1", OTHER_UUID), persistent=False, running=True)

    out = vm.run("monitor", interval_ms=0)

    assert out.rc == OcfRc.NOT_RUNNING


def test_stop_leaves_a_domain_with_our_name_and_another_uuid_alone(vm: Cluster) -> None:
    other = vm.local.add_domain(domain_xml("vm1", OTHER_UUID), persistent=True, running=True)

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert other.active
    assert vm.local.called("shutdownFlags") == vm.local.called("destroyFlags") == []


def test_monitor_without_config_checks_the_domain_it_started(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    vm.config.unlink()

    assert vm.run("monitor").rc == OcfRc.SUCCESS
    vm.local.domain("vm1").state = fl.VIR_DOMAIN_SHUTOFF  # type: ignore[union-attr]
    assert vm.run("monitor").rc == OcfRc.NOT_RUNNING


def test_stop_finds_the_domain_it_started_when_config_is_gone(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    assert {k: v for k, v in vm.state()["started"].items() if k != "at"} == {"name": "vm1", "uuid": UUID}
    vm.config.unlink()

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert not vm.local.running("vm1")
    assert "started" not in vm.state()


def test_stop_finds_the_domain_it_started_when_config_names_another(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    vm.config.write_text(domain_xml("vm2", OTHER_UUID))

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert not vm.local.running("vm1")


def test_stop_without_config_and_without_a_record_does_nothing(vm: Cluster) -> None:
    running_here(vm)
    vm.config.unlink()

    out = vm.run("stop")

    # Nothing names a domain: the stop cannot know what to stop (and must not fail).
    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.running("vm1")


def test_stop_with_snapshot_saves_the_domain_and_start_restores_it(vm: Cluster) -> None:
    snapdir = vm.tmp / "snap"
    snapdir.mkdir()
    dom = running_here(vm)

    out = vm.run("stop", snapshot=str(snapdir))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("save") == [(str(snapdir / "vm1.state"),)]
    assert vm.local.called("shutdownFlags") == []
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_SHUTOFF, fl.VIR_DOMAIN_SHUTOFF_SAVED)
    assert (snapdir / "vm1.state").exists()

    out = vm.run("start", snapshot=str(snapdir))

    assert out.rc == OcfRc.SUCCESS, out.log
    # claimed before libvirt is asked, so one image is never restored twice
    assert vm.local.called("restore") == [(str(snapdir / "vm1.state.restoring"),)]
    assert vm.local.called("createXML") == []
    assert (dom.state, dom.reason) == (fl.VIR_DOMAIN_RUNNING, fl.VIR_DOMAIN_RUNNING_RESTORED)
    assert os.listdir(snapdir) == []


def test_stop_with_libvirt_down_terminates_the_qemu_process(vm: Cluster, qemu_process: Any) -> None:
    vm.local.down = True

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert qemu_process.wait(1) == -15  # SIGTERM was enough
    assert set(qemu_process.asked) == {("vm1", UUID)}


def test_stop_with_a_remote_hypervisor_down_fails_if_it_started_the_domain(vm: Cluster) -> None:
    assert vm.run("start", hypervisor=PEER_TCP_URI).rc == OcfRc.SUCCESS
    vm.peer.down = True

    out = vm.run("stop", hypervisor=PEER_TCP_URI)

    # Not local: no /proc to look at, and "stopped" would be a guess that risks a second copy.
    assert out.rc == OcfRc.ERR_GENERIC
    assert "unreachable" in out.log
    assert {k: v for k, v in vm.state()["started"].items() if k != "at"} == {"name": "vm1", "uuid": UUID}


def test_stop_with_a_remote_hypervisor_down_succeeds_if_nothing_was_started(vm: Cluster) -> None:
    vm.peer.down = True

    out = vm.run("stop", hypervisor=PEER_TCP_URI)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert "nothing was started here" in out.log


# A transient domain (start's default) is gone from libvirt as soon as it stops: its handle
# then answers VIR_ERR_NO_DOMAIN, as with the real QEMU and test drivers (checked on
# test:///default with libvirt-python 9.0).  Every stop path must take that as "off".


def test_graceful_stop_of_a_transient_domain(vm: Cluster) -> None:
    assert vm.run("start").rc == OcfRc.SUCCESS

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.domain("vm1") is None
    assert vm.local.called("destroyFlags") == []
    assert "started" not in vm.state()


def test_force_stop_of_a_transient_domain_skips_the_graceful_shutdown(vm: Cluster) -> None:
    assert vm.run("start").rc == OcfRc.SUCCESS

    out = vm.run("stop", force_stop=True, timeout_ms=2500)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("shutdownFlags") == []
    assert vm.local.called("destroyFlags") == [(0,)]
    assert vm.local.domain("vm1") is None


def test_snapshot_stop_of_a_transient_domain(vm: Cluster) -> None:
    snapdir = vm.tmp / "snap"
    snapdir.mkdir()
    assert vm.run("start", snapshot=str(snapdir)).rc == OcfRc.SUCCESS

    out = vm.run("stop", snapshot=str(snapdir))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert (snapdir / "vm1.state").exists()
    assert vm.local.domain("vm1") is None
    assert vm.local.called("shutdownFlags") == vm.local.called("destroyFlags") == []

    assert vm.run("start", snapshot=str(snapdir)).rc == OcfRc.SUCCESS
    assert vm.local.running("vm1")
    assert not (snapdir / "vm1.state").exists()


# -- start -------------------------------------------------------------------------------


def test_start_runs_a_transient_domain_defined_started_and_undefined(vm: Cluster) -> None:
    """Never createXML: abandoned at the deadline it can complete unseen (starting.py)."""
    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("createXML") == []
    methods = [c.method for c in vm.local.calls if c.method in ("defineXML", "create", "undefine")]
    assert methods == ["defineXML", "create", "undefine"]
    assert "start_pending" not in vm.state()
    dom = vm.local.domain("vm1")
    assert dom is not None and dom.active and not dom.persistent
    assert {k: v for k, v in vm.state()["started"].items() if k != "at"} == {"name": "vm1", "uuid": UUID}


def test_start_persistent_defines_turns_autostart_off_and_starts(vm: Cluster) -> None:
    out = vm.run("start", persistent=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    lifecycle = [c.method for c in vm.local.calls if c.method in ("defineXML", "setAutostart", "create", "createXML")]
    assert lifecycle == ["defineXML", "setAutostart", "create"]
    assert vm.local.called("setAutostart") == [(0,)]
    dom = vm.local.domain("vm1")
    assert dom is not None and dom.active and dom.persistent and not dom.autostart


def test_start_runs_a_persistent_definition_transient(vm: Cluster) -> None:
    dom = vm.local.add_domain(domain_xml(), persistent=True)
    dom.autostart = True

    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log
    methods = [c.method for c in vm.local.calls if c.method in ("undefine", "defineXML", "create")]
    assert methods == ["undefine", "defineXML", "create", "undefine"]
    now = vm.local.domain("vm1")
    assert now is not None and now.active and not now.persistent


def test_start_puts_back_a_config_that_undefine_removed(vm: Cluster, tmp_path: Path) -> None:
    etc = tmp_path / "etc-libvirt-qemu"
    etc.mkdir()
    vm.local.config_dir = str(etc)
    vm.local.add_domain(domain_xml(), persistent=True)  # writes etc/vm1.xml, as libvirtd does
    vm.config = etc / "vm1.xml"
    before = vm.config.read_bytes()

    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("undefine")
    assert vm.config.read_bytes() == before
    assert vm.config.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "uuid", "words"),
    [
        ("vm1", OTHER_UUID, f"with UUID {OTHER_UUID}"),  # same name, another UUID
        ("other", UUID, "as domain 'other'"),  # same UUID, another name
    ],
)
def test_start_refuses_a_name_or_uuid_held_by_another_domain(vm: Cluster, name: str, uuid: str, words: str) -> None:
    vm.local.add_domain(domain_xml(name, uuid), persistent=True)

    out = vm.run("start")

    assert out.rc == OcfRc.ERR_ARGS
    assert words in out.log and "undefine or rename" in out.log
    assert vm.local.called("createXML") == vm.local.called("create") == []
    assert "started" not in vm.state()


def test_start_without_a_uuid_in_config_takes_the_domain_of_that_name(vm: Cluster) -> None:
    vm.config.write_text(domain_xml(uuid=None))
    vm.local.add_domain(domain_xml("vm1", OTHER_UUID), persistent=False, running=True)

    out = vm.run("start")

    # The running vm1 is found by name and taken as ours: there is nothing in config to tell
    # them apart, so this is "already running", not a conflict.
    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("createXML") == []


def test_start_of_a_running_domain_does_not_create_it_again(vm: Cluster) -> None:
    running_here(vm)

    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("createXML") == vm.local.called("create") == vm.local.called("undefine") == []
    assert {k: v for k, v in vm.state()["started"].items() if k != "at"} == {"name": "vm1", "uuid": UUID}


def test_start_refuses_while_the_previously_started_domain_still_runs(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    vm.config.write_text(domain_xml("vm2", OTHER_UUID))

    out = vm.run("start")

    assert out.rc == OcfRc.ERR_GENERIC
    assert "stop the resource before changing config" in out.log
    assert vm.local.domain("vm2") is None


@pytest.mark.parametrize("persistent", [False, True])
def test_start_reports_what_libvirt_says_when_qemu_does_not_start(vm: Cluster, persistent: bool) -> None:
    vm.local.start_error = (
        fl.VIR_ERR_INTERNAL_ERROR,
        fl.VIR_FROM_QEMU,
        "internal error: qemu unexpectedly closed the monitor: could not open disk image",
    )

    out = vm.run("start", persistent=persistent)

    assert out.rc == OcfRc.ERR_GENERIC
    assert "could not open disk image" in out.log
    assert not vm.local.running("vm1")
    assert "started" not in vm.state()
    assert vm.run("stop").rc == OcfRc.SUCCESS


def test_start_with_the_hypervisor_down_fails(vm: Cluster) -> None:
    vm.local.down = True

    out = vm.run("start")

    assert out.rc == OcfRc.ERR_GENERIC
    assert "libvirt-sock" in out.log


def test_start_with_a_missing_config_is_not_installed(vm: Cluster) -> None:
    vm.config.unlink()

    out = vm.run("start")

    assert out.rc == OcfRc.ERR_INSTALLED
    assert vm.lv.opens == []


def test_start_refuses_when_a_peer_runs_the_domain(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)

    out = vm.run("start", **peer_check(vm))

    assert out.rc == OcfRc.ERR_GENERIC
    assert "already runs on node2" in out.log
    assert (PEER_TCP_URI, True) in vm.lv.opens  # asked read-only, at the %n-expanded URI
    assert all(uri != "qemu+tcp://node1/system" for uri, _ in vm.lv.opens)  # not itself
    assert vm.local.domain("vm1") is None
    assert vm.local.called("createXML") == []
    assert vm.runner.argvs("crm_resource") == []


def test_start_peer_check_finds_the_domain_by_uuid_under_another_name(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml("renamed", UUID), persistent=False, running=True)

    out = vm.run("start", **peer_check(vm))

    assert out.rc == OcfRc.ERR_GENERIC
    assert vm.local.domain("vm1") is None


def test_start_peer_check_ignores_a_shut_off_copy(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml(), persistent=True)

    out = vm.run("start", **peer_check(vm))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.running("vm1")


def test_start_skips_the_peer_check_when_the_node_list_fails(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)
    vm.runner.answer(["crm_node", "--name"], raises=CommandTimedOut("crm_node did not finish within 5.0s"))

    out = vm.run("start", peer_check_uri="qemu+tcp://%n/system")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert "peer check skipped" in out.log


def test_start_resources_starts_the_pools_and_networks_the_domain_uses(vm: Cluster) -> None:
    xml = domain_xml().replace(
        "<devices/>",
        "<devices><disk type='volume' device='disk'><source pool='images' volume='vm1.qcow2'/>"
        "<target dev='vda'/></disk><interface type='network'><source network='default'/></interface></devices>",
    )
    vm.config.write_text(xml)
    vm.local.pools["images"] = False
    vm.local.networks["default"] = True

    out = vm.run("start", start_resources=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.pools["images"] is True
    assert vm.local.called("pool.create") == [("images",)] and vm.local.called("pool.refresh") == [("images",)]
    assert vm.local.called("network.create") == []
    order = [c.method for c in vm.local.calls if c.method in ("pool.create", "defineXML", "create")]
    assert order == ["pool.create", "defineXML", "create"]


def test_start_fails_on_a_pool_libvirt_does_not_know(vm: Cluster) -> None:
    xml = domain_xml().replace(
        "<devices/>", "<devices><disk type='volume'><source pool='gone' volume='v'/></disk></devices>"
    )
    vm.config.write_text(xml)

    out = vm.run("start", start_resources=True)

    assert out.rc == OcfRc.ERR_GENERIC
    assert vm.local.domain("vm1") is None


@pytest.mark.parametrize(
    "how",
    [{"remoteuri": "qemu+tcp://%n/system"}, {"migration_transport": "tcp"}],
    ids=["remoteuri", "migration_transport"],
)
def test_the_peer_check_is_on_wherever_live_migration_knows_the_peers(vm: Cluster, how: dict[str, str]) -> None:
    """No peer_check_uri: the URI live migration would use to reach node2 is asked."""
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)
    peer_check(vm)

    out = vm.run("start", **how)

    assert out.rc == OcfRc.ERR_GENERIC, out.log
    assert "already runs on node2" in out.log
    assert (PEER_TCP_URI, True) in vm.lv.opens
    assert vm.local.called("createXML") == []


def test_peer_check_false_turns_the_derived_check_off(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)
    peer_check(vm)

    out = vm.run("start", remoteuri="qemu+tcp://%n/system", peer_check=False)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.runner.argvs("crm_node") == []
    assert all("node2" not in uri for uri, _ in vm.lv.opens)


def test_no_peer_check_when_nothing_says_how_to_reach_the_peers(vm: Cluster) -> None:
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)
    peer_check(vm)

    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.runner.argvs("crm_node") == []


def test_the_peer_check_asks_only_cluster_members(vm: Cluster) -> None:
    """node2 was lost (fenced or being fenced): asking it would only delay the failover."""
    vm.peer.hang()
    vm.runner.answer(["crm_node", "--name"], stdout="node1\n")
    vm.runner.answer(["crm_node", "--list"], stdout="1 node1 member\n2 node2 lost\n")

    out = vm.run("start", remoteuri="qemu+tcp://%n/system", peer_check_timeout=2)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert all("node2" not in uri for uri, _ in vm.lv.opens)
    assert out.seconds < 1.5


def test_peer_check_uses_the_node_name_pacemaker_gives(vm: Cluster) -> None:
    runner = vm.strict()
    runner.expect(["crm_node", "--list"], stdout=NODES)
    runner.expect(cib_read_argv(), rc=105)
    for key, value in (("cpu", "2"), ("host_memory", "1024"), ("hv_memory", "1024")):
        runner.expect(utilization_argv(key, value))

    out = vm.run("start", peer_check_uri="qemu+tcp://%n/system", meta_on_node="node1")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert [uri for uri, _ in vm.lv.opens if "node" in uri] == [PEER_TCP_URI]


def test_start_waits_for_the_monitor_scripts_to_pass(vm: Cluster) -> None:
    script = vm.tmp / "check-vm1"
    script.write_text("#!/bin/sh\nexit 0\n")  # validate wants an executable; the fake runner answers
    script.chmod(0o755)
    runner = vm.strict()
    runner.expect(cib_read_argv(), rc=105)
    for key, value in (("cpu", "2"), ("host_memory", "1024"), ("hv_memory", "1024")):
        runner.expect(utilization_argv(key, value))
    runner.expect([str(script)], rc=1, stderr="service not up yet")
    runner.expect([str(script)])

    out = vm.run("start", monitor_scripts=str(script))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert "waiting for monitor scripts" in out.log


def test_start_publishes_utilization_from_the_running_domain(vm: Cluster) -> None:
    vm.config.write_text(domain_xml(vcpus=3, memory_mib=2048))
    runner = vm.strict()
    runner.expect(cib_read_argv(), rc=105)
    runner.expect(utilization_argv("cpu", "3"))
    runner.expect(utilization_argv("host_memory", "2048"))
    runner.expect(utilization_argv("hv_memory", "2048"))

    out = vm.run("start")

    assert out.rc == OcfRc.SUCCESS, out.log


# -- monitor -----------------------------------------------------------------------------


@pytest.mark.parametrize("interval_ms", [0, 10000])
def test_monitor_of_a_running_domain(vm: Cluster, interval_ms: int) -> None:
    running_here(vm)

    out = vm.run("monitor", interval_ms=interval_ms)

    assert out.rc == OcfRc.SUCCESS, out.log


def test_monitor_of_a_shut_off_domain_is_not_running(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml(), persistent=True)

    out = vm.run("monitor")

    assert out.rc == OcfRc.NOT_RUNNING
    assert "shutoff" in out.log


def test_probe_of_an_absent_domain_is_not_running_without_a_reason(vm: Cluster) -> None:
    out = vm.run("monitor", interval_ms=0)

    assert out.rc == OcfRc.NOT_RUNNING
    assert out.reason == ""


def test_probe_without_a_config_is_not_running(vm: Cluster) -> None:
    vm.config.unlink()

    out = vm.run("monitor", interval_ms=0)

    assert out.rc == OcfRc.NOT_RUNNING
    assert vm.lv.opens == []


@pytest.mark.parametrize(
    ("reason", "policy", "rc"),
    [
        (fl.VIR_DOMAIN_PAUSED_IOERROR, "fail", OcfRc.ERR_GENERIC),
        (fl.VIR_DOMAIN_PAUSED_IOERROR, "degraded", OcfRc.DEGRADED),
        (fl.VIR_DOMAIN_PAUSED_USER, "fail", OcfRc.SUCCESS),
        (fl.VIR_DOMAIN_PAUSED_MIGRATION, "fail", OcfRc.SUCCESS),
    ],
)
def test_monitor_of_a_paused_domain(vm: Cluster, reason: int, policy: str, rc: OcfRc) -> None:
    running_here(vm, state=fl.VIR_DOMAIN_PAUSED, reason=reason)

    out = vm.run("monitor", on_io_error=policy)

    assert out.rc == rc, out.log
    if reason == fl.VIR_DOMAIN_PAUSED_IOERROR:
        assert "I/O error" in out.log


@pytest.mark.parametrize(
    ("state", "reason", "rc"),
    [
        (fl.VIR_DOMAIN_BLOCKED, 0, OcfRc.SUCCESS),
        (fl.VIR_DOMAIN_SHUTDOWN, 1, OcfRc.SUCCESS),  # shutting down, still there
        (fl.VIR_DOMAIN_PMSUSPENDED, 0, OcfRc.DEGRADED),
        (fl.VIR_DOMAIN_CRASHED, 0, OcfRc.NOT_RUNNING),
        (fl.VIR_DOMAIN_NOSTATE, 0, OcfRc.ERR_GENERIC),
    ],
)
def test_monitor_maps_the_other_states(vm: Cluster, state: int, reason: int, rc: OcfRc) -> None:
    running_here(vm, state=state, reason=reason)

    assert vm.run("monitor").rc == rc


def test_monitor_io_error_default_is_fail(vm: Cluster) -> None:
    running_here(vm, state=fl.VIR_DOMAIN_PAUSED, reason=fl.VIR_DOMAIN_PAUSED_IOERROR)

    assert vm.run("monitor").rc == OcfRc.ERR_GENERIC


@pytest.mark.parametrize(("pid", "rc"), [(4242, OcfRc.DEGRADED), (None, OcfRc.NOT_RUNNING)])
def test_probe_with_libvirt_down_answers_from_the_qemu_processes(
    vm: Cluster, qemu_scan: dict[str, Any], pid: int | None, rc: OcfRc
) -> None:
    vm.local.down = True
    qemu_scan["pid"] = pid

    out = vm.run("monitor", interval_ms=0)

    assert out.rc == rc, out.log
    assert qemu_scan["asked"] == [("vm1", UUID)]
    if pid:
        assert "PID 4242" in out.log


def test_monitor_of_a_remote_hypervisor_that_is_down_fails(vm: Cluster, qemu_scan: dict[str, Any]) -> None:
    vm.peer.down = True

    out = vm.run("monitor", hypervisor=PEER_TCP_URI)

    assert out.rc == OcfRc.ERR_GENERIC
    assert qemu_scan["asked"] == []  # another host's /proc is not ours to read


def test_monitor_publishes_utilization_only_when_it_changes(vm: Cluster) -> None:
    dom = running_here(vm)
    runner = vm.strict()
    runner.expect(cib_read_argv(), rc=105)
    runner.expect(utilization_argv("cpu", "2"))
    runner.expect(utilization_argv("host_memory", "1024"))
    runner.expect(utilization_argv("hv_memory", "1024"))

    assert vm.run("monitor").rc == OcfRc.SUCCESS
    runner.assert_done()

    assert vm.run("monitor").rc == OcfRc.SUCCESS  # nothing changed: no command at all
    assert len(runner.calls) == 4

    dom.vcpus = 4
    runner.expect(utilization_argv("cpu", "4"))
    assert vm.run("monitor").rc == OcfRc.SUCCESS
    runner.assert_done()
    assert len(runner.calls) == 5


def test_utilization_the_cib_already_holds_is_not_rewritten(vm: Cluster) -> None:
    """A failover or migration target: the CIB has the values already; a write would abort the
    transition the start is part of."""
    running_here(vm)
    runner = vm.strict()
    held = (
        "<utilization id='vm1-utilization'><nvpair id='a' name='cpu' value='2'/>"
        "<nvpair id='b' name='host_memory' value='1024'/><nvpair id='c' name='hv_memory' value='512'/></utilization>"
    )
    runner.expect(cib_read_argv(), stdout=held)
    runner.expect(utilization_argv("hv_memory", "1024"))  # only the one that differs

    assert vm.run("monitor").rc == OcfRc.SUCCESS
    runner.assert_done()


def test_monitor_retries_a_failed_utilization_update_only_after_the_backoff(
    vm: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vm_resource, "UTILIZATION_RETRY_S", 0.5)
    running_here(vm)
    runner = vm.strict()
    runner.expect(cib_read_argv(), rc=105)
    runner.expect(["crm_resource", "--resource", "vm1", "--utilization"], rc=1, stderr="Could not connect to the CIB")

    out = vm.run("monitor")
    assert out.rc == OcfRc.SUCCESS, out.log  # the VM is fine; only the CIB did not answer
    assert "retrying" in out.log

    assert vm.run("monitor").rc == OcfRc.SUCCESS  # within the backoff: no command
    runner.assert_done()

    time.sleep(0.55)  # what was read before is remembered: no second read
    runner.expect(utilization_argv("cpu", "2"))
    runner.expect(utilization_argv("host_memory", "1024"))
    runner.expect(utilization_argv("hv_memory", "1024"))
    assert vm.run("monitor").rc == OcfRc.SUCCESS


def test_monitor_unsets_utilization_once(vm: Cluster) -> None:
    running_here(vm)
    runner = vm.strict()
    runner.expect(["crm_resource", "--resource", "vm1", "--utilization", "--delete-parameter", "cpu"], rc=105)
    off = {
        "autoset_utilization_cpu": False,
        "autoset_utilization_host_memory": False,
        "autoset_utilization_hv_memory": False,
        "unset_utilization_cpu": True,
    }

    assert vm.run("monitor", **off).rc == OcfRc.SUCCESS
    assert vm.run("monitor", **off).rc == OcfRc.SUCCESS


def test_monitor_with_utilization_off_runs_no_command(vm: Cluster) -> None:
    running_here(vm)
    vm.strict()
    off = {f"autoset_utilization_{k}": False for k in ("cpu", "host_memory", "hv_memory")}

    assert vm.run("monitor", **off).rc == OcfRc.SUCCESS
    assert vm.local.called("info") == []


def test_monitor_reports_the_started_domain_when_config_names_another(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    vm.config.write_text(domain_xml("vm2", OTHER_UUID))

    out = vm.run("monitor")

    assert out.rc == OcfRc.ERR_GENERIC
    assert "still runs here" in out.log


def test_monitor_runs_the_monitor_scripts_with_the_domains_identity(vm: Cluster) -> None:
    running_here(vm)
    runner = vm.strict()
    off = {f"autoset_utilization_{k}": False for k in ("cpu", "host_memory", "hv_memory")}
    runner.expect(["/usr/local/libexec/check-vm1"])
    runner.expect(["/usr/local/libexec/check-vm1"], rc=3, stderr="connect: refused\nport 443 closed\n")

    assert vm.run("monitor", monitor_scripts="/usr/local/libexec/check-vm1", **off).rc == OcfRc.SUCCESS
    out = vm.run("monitor", monitor_scripts="/usr/local/libexec/check-vm1", **off)

    assert out.rc == OcfRc.ERR_GENERIC
    assert "port 443 closed" in out.log
    assert runner.calls[0].env_extend == {"VMHA_DOMAIN_NAME": "vm1", "VMHA_DOMAIN_UUID": UUID}


def test_monitor_with_save_config_writes_back_the_changed_definition(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.xml = domain_xml(memory_mib=4096)  # e.g. changed with virsh edit

    assert vm.run("monitor", save_config_on_stop=True).rc == OcfRc.SUCCESS

    assert vm.config.read_text() == dom.xml
    assert vm.local.called("XMLDesc") == [(fl.VIR_DOMAIN_XML_INACTIVE | fl.VIR_DOMAIN_XML_SECURE,)]


def test_monitor_with_sync_config_runs_csync2_after_saving(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.xml = domain_xml(memory_mib=4096)
    runner = vm.strict()
    off = {f"autoset_utilization_{k}": False for k in ("cpu", "host_memory", "hv_memory")}
    runner.expect(["csync2", "-x", str(vm.config)])

    assert vm.run("monitor", sync_config_on_stop=True, **off).rc == OcfRc.SUCCESS
    assert vm.config.read_text() == dom.xml
    assert vm.run("monitor", sync_config_on_stop=True, **off).rc == OcfRc.SUCCESS  # unchanged: no csync2


def test_reload_agent_makes_the_next_monitor_publish_utilization_again(vm: Cluster) -> None:
    running_here(vm)
    runner = vm.strict()
    for _ in range(2):
        runner.expect(cib_read_argv(), rc=105)
        runner.expect(utilization_argv("cpu", "2"))
        runner.expect(utilization_argv("host_memory", "1024"))
        runner.expect(utilization_argv("hv_memory", "1024"))

    assert vm.run("monitor").rc == OcfRc.SUCCESS
    assert vm.run("reload-agent").rc == OcfRc.SUCCESS
    assert vm.run("monitor").rc == OcfRc.SUCCESS


def test_probe_of_a_remote_hypervisor_that_is_down_with_nothing_started_is_not_running(
    vm: Cluster, qemu_scan: dict[str, Any]
) -> None:
    vm.peer.down = True

    out = vm.run("monitor", interval_ms=0, hypervisor=PEER_TCP_URI)

    assert out.rc == OcfRc.NOT_RUNNING
    assert qemu_scan["asked"] == []


# -- migration ---------------------------------------------------------------------------


def test_migrate_to_moves_the_domain_and_forgets_it(vm: Cluster) -> None:
    assert vm.run("start").rc == OcfRc.SUCCESS

    out = migrating(vm)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.domain("vm1") is None
    assert vm.peer.running("vm1")
    ((dest, params, flags),) = vm.local.called("migrate3")
    assert dest == PEER_URI
    assert flags == fl.VIR_MIGRATE_LIVE  # transient: nothing to persist or undefine
    assert "started" not in vm.state()
    assert "utilization" not in vm.state()


def test_migrate_to_of_a_persistent_domain_moves_the_definition(vm: Cluster) -> None:
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS

    out = migrating(vm, persistent=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    ((_, _, flags),) = vm.local.called("migrate3")
    assert flags == fl.VIR_MIGRATE_LIVE | fl.VIR_MIGRATE_PERSIST_DEST | fl.VIR_MIGRATE_UNDEFINE_SOURCE
    assert vm.local.domain("vm1") is None
    dom = vm.peer.domain("vm1")
    assert dom is not None and dom.persistent and dom.active


def test_migrate_to_of_a_domain_not_running_here_fails(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml(), persistent=True)

    out = migrating(vm)

    assert out.rc == OcfRc.ERR_GENERIC
    assert "not running here" in out.log
    assert vm.local.called("migrate3") == []


def test_migrate_to_without_a_target_fails(vm: Cluster) -> None:
    running_here(vm)

    out = vm.run("migrate_to")

    assert out.rc == OcfRc.ERR_GENERIC
    assert vm.local.called("migrate3") == []


def test_migrate_to_an_unreachable_target_keeps_the_domain_here(vm: Cluster) -> None:
    dom = running_here(vm)
    vm.peer.down = True

    out = migrating(vm)

    assert out.rc == OcfRc.ERR_GENERIC
    assert dom.active


def test_migrate_to_sets_the_maximum_downtime_while_the_job_runs(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.migration_s = 0.4

    out = migrating(vm, migration_downtime=250)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("migrateSetMaxDowntime") == [(250, 0)]


def test_migrate_to_switches_to_postcopy_after_the_configured_time(vm: Cluster) -> None:
    dom = running_here(vm)
    dom.migration_s = 1.3

    out = migrating(vm, migration_postcopy=True, migration_postcopy_after=1)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("migrateStartPostCopy") == [(0,)]
    ((_, _, flags),) = vm.local.called("migrate3")
    assert flags & (1 << 15)  # VIR_MIGRATE_POSTCOPY


def test_migrate_to_uses_remoteuri_with_the_target_node_name(vm: Cluster) -> None:
    running_here(vm)

    out = migrating(vm, remoteuri="qemu+tcp://%n/system", migrateuri="tcp://%n-mig:49152")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert (PEER_TCP_URI, False) in vm.lv.opens
    ((dest, params, _),) = vm.local.called("migrate3")
    assert dest == PEER_TCP_URI
    assert params == {"migrate_uri": "tcp://node2-mig:49152"}


def test_migrate_to_peer_to_peer_leaves_the_connection_to_libvirtd(vm: Cluster) -> None:
    running_here(vm)

    out = migrating(vm, migrate_options="--p2p", remoteuri="qemu+tcp://%n/system")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("migrate3") == []
    ((uri, _params, flags),) = vm.local.called("migrateToURI3")
    assert uri == PEER_TCP_URI
    assert flags & fl.VIR_MIGRATE_PEER2PEER and flags & fl.VIR_MIGRATE_LIVE
    assert vm.peer.running("vm1")


def test_migrate_to_refuses_an_unknown_migrate_option(vm: Cluster) -> None:
    running_here(vm)

    out = migrating(vm, migrate_options="--live --rdma-pin-all")

    assert out.rc == OcfRc.ERR_CONFIGURED
    assert vm.local.called("migrate3") == []


def test_migrate_to_starts_the_pools_on_the_target_first(vm: Cluster) -> None:
    vm.config.write_text(
        domain_xml().replace(
            "<devices/>", "<devices><disk type='volume'><source pool='images' volume='v'/></disk></devices>"
        )
    )
    running_here(vm)
    vm.peer.pools["images"] = False

    out = migrating(vm, start_resources=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.peer.pools["images"] is True
    assert vm.peer.called("pool.create") == [("images",)]
    assert vm.peer.running("vm1")


def test_migrate_from_waits_while_the_incoming_domain_is_paused(vm: Cluster) -> None:
    def arrive() -> None:
        dom = vm.peer.add_domain(
            domain_xml(), persistent=False, state=fl.VIR_DOMAIN_PAUSED, reason=fl.VIR_DOMAIN_PAUSED_MIGRATION
        )
        time.sleep(0.4)
        dom.state, dom.reason = fl.VIR_DOMAIN_RUNNING, fl.VIR_DOMAIN_RUNNING_MIGRATED

    incoming = threading.Thread(target=arrive)
    incoming.start()
    try:
        out = vm.run("migrate_from", node="node2", meta_migrate_source="node1")
    finally:
        incoming.join()

    assert out.rc == OcfRc.SUCCESS, out.log
    assert out.seconds >= 0.4


def test_migrate_from_waits_for_the_domain_to_arrive(vm: Cluster) -> None:
    arrive = threading.Timer(0.3, lambda: vm.peer.add_domain(domain_xml(), persistent=False, running=True))
    arrive.start()
    try:
        out = vm.run("migrate_from", node="node2", meta_migrate_source="node1", meta_migrate_target="node2")
    finally:
        arrive.cancel()

    assert out.rc == OcfRc.SUCCESS, out.log
    assert out.seconds >= 0.3
    assert _identity(vm.state("node2")["started"]) == {"name": "vm1", "uuid": UUID}


def test_migrate_then_migrate_from_then_monitor_on_the_target(vm: Cluster) -> None:
    assert vm.run("start").rc == OcfRc.SUCCESS
    assert migrating(vm).rc == OcfRc.SUCCESS
    assert vm.run("migrate_from", node="node2", meta_migrate_source="node1").rc == OcfRc.SUCCESS

    assert vm.run("monitor", node="node2").rc == OcfRc.SUCCESS
    assert vm.run("monitor", node="node1", interval_ms=0).rc == OcfRc.NOT_RUNNING


def _abandoned_start(vm: Cluster) -> None:
    path = statefile.state_path(str(vm.rsctmp("node1")), "VirtualMachine", "vm1")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    statefile.write(path, {"start_pending": {"name": "vm1", "uuid": UUID, "at": 0}})


def test_stop_after_an_abandoned_start_removes_the_definition_it_left(vm: Cluster) -> None:
    """The start gave up after its define answered: nothing may start that definition later."""
    vm.local.add_domain(domain_xml(), persistent=True)
    _abandoned_start(vm)

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.domain("vm1") is None
    assert vm.config.exists()  # the config stays
    assert "start_pending" not in vm.state()


def test_stop_after_an_abandoned_start_forces_off_what_came_up(vm: Cluster) -> None:
    running_here(vm)
    _abandoned_start(vm)

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.domain("vm1") is None or not vm.local.running("vm1")


def test_stop_without_an_abandoned_start_keeps_a_definition_it_did_not_make(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml(), persistent=True)

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.domain("vm1") is not None


def test_stop_after_an_abandoned_start_waits_for_libvirt_jobs_first(vm: Cluster) -> None:
    """The barrier comes before the look that decides: a start inside libvirtd has ended."""
    vm.local.add_domain(domain_xml(), persistent=True)
    _abandoned_start(vm)

    assert vm.run("stop").rc == OcfRc.SUCCESS
    order = [c.method for c in vm.local.calls if c.method in ("setMetadata", "undefine", "undefineFlags")]
    assert order[:1] == ["setMetadata"] and len(order) >= 2, order


def test_persistent_stop_after_an_abandoned_start_forces_off_and_keeps_the_definition(vm: Cluster) -> None:
    running_here(vm)
    _abandoned_start(vm)

    out = vm.run("stop", persistent="true")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert not vm.local.running("vm1")
    assert vm.local.domain("vm1") is not None  # persistent: its definition is the user's
    assert "start_pending" not in vm.state()


def test_probe_after_an_abandoned_start_reports_the_domain_it_brought_up(vm: Cluster) -> None:
    """A cleanup re-probes before any stop: the start did complete, the domain runs, and it is ours."""
    running_here(vm)
    _abandoned_start(vm)

    out = vm.run("monitor", interval_ms=0)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.running("vm1")  # a probe reports, it does not stop
    assert vm.local.called("setMetadata")
    state = vm.state()
    assert "start_pending" not in state and state["started"]["name"] == "vm1"


def test_probe_after_an_abandoned_start_that_left_a_definition(vm: Cluster) -> None:
    vm.local.add_domain(domain_xml(), persistent=True)
    _abandoned_start(vm)

    out = vm.run("monitor", interval_ms=0)

    assert out.rc == OcfRc.NOT_RUNNING, out.log
    assert vm.local.domain("vm1") is None  # nothing left that a late start could run
    assert "start_pending" not in vm.state()


def test_stop_with_a_hung_libvirtd_after_an_abandoned_start_fails(vm: Cluster) -> None:
    """libvirtd there but not answering may still hold the start: only fencing is sure."""
    _abandoned_start(vm)
    vm.local.hang()

    out = vm.run("stop", timeout_ms=4000)

    assert out.rc == OcfRc.ERR_GENERIC, out.log
    assert "a start that gave up may still be inside it" in out.log
    assert out.reason.startswith("cannot stop: hypervisor")
    assert "start_pending" in vm.state()


def test_stop_with_libvirtd_down_after_an_abandoned_start_is_stopped(vm: Cluster) -> None:
    """A libvirtd that is not there holds nothing: no QEMU by PID means stopped."""
    _abandoned_start(vm)
    vm.local.down = True

    out = vm.run("stop")

    assert out.rc == OcfRc.SUCCESS, out.log


def test_a_restore_libvirt_refused_gives_the_image_back(vm: Cluster) -> None:
    snapdir = vm.tmp / "snap"
    snapdir.mkdir()
    (snapdir / "vm1.state").write_text("not a save image\n")

    out = vm.run("start", snapshot=str(snapdir))

    assert out.rc != OcfRc.SUCCESS
    assert sorted(os.listdir(snapdir)) == ["vm1.state"]  # libvirt answered: nothing was restored


def test_an_image_whose_restore_gave_up_is_never_restored_again(vm: Cluster) -> None:
    snapdir = vm.tmp / "snap"
    snapdir.mkdir()
    (snapdir / "vm1.state.restoring").write_text("claimed by a start that gave up\n")

    out = vm.run("start", snapshot=str(snapdir))

    assert out.rc == OcfRc.SUCCESS, out.log
    assert vm.local.called("restore") == []
    assert "starting vm1 cold" in out.log
    assert (snapdir / "vm1.state.restoring").exists()  # kept for the operator


def test_a_restore_that_gave_up_and_completed_has_its_image_removed(vm: Cluster) -> None:
    snapdir = vm.tmp / "snap"
    snapdir.mkdir()
    claimed = snapdir / "vm1.state.restoring"
    claimed.write_text("restored after the start gave up\n")
    running_here(vm)
    path = statefile.state_path(str(vm.rsctmp("node1")), "VirtualMachine", "vm1")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    statefile.write(path, {"start_pending": {"name": "vm1", "uuid": UUID, "at": 0, "restoring": str(claimed)}})

    out = vm.run("stop", snapshot=str(snapdir), force_stop="true")

    assert out.rc == OcfRc.SUCCESS, out.log
    assert not claimed.exists()


# -- disk leases -----------------------------------------------------------------------------

DISK = "/shared/images/vm1.img"


def with_disk(vm: Cluster, extra: str = "") -> None:
    disk = f"<disk type='file' device='disk'><source file='{DISK}'/><target dev='vda'/></disk>{extra}"
    vm.config.write_text(domain_xml().replace("<devices/>", f"<devices>{disk}</devices>"))


@pytest.fixture()
def lock_setup(monkeypatch: pytest.MonkeyPatch):
    """This host's lock manager as the agent will read it (not the machine's /etc/libvirt)."""
    from vmha.virt import leases

    setups = {"now": leases.LockSetup("lockd", True, "/shared/leases")}
    monkeypatch.setattr(leases, "lock_setup", lambda *a, **k: setups["now"])
    return setups


def lease_refused(vm: Cluster) -> None:
    from vmha.virt.leases import lease_resource

    vm.local.start_error = (
        fl.VIR_ERR_RESOURCE_BUSY,
        fl.VIR_FROM_LOCKING,
        f"resource busy: Lockspace resource '{lease_resource(DISK)}' is locked",
    )


def test_a_start_the_lock_manager_refuses_fails_naming_the_disk(vm: Cluster, lock_setup) -> None:
    with_disk(vm)
    lease_refused(vm)

    out = vm.run("start")

    assert out.rc == OcfRc.ERR_GENERIC  # Pacemaker tries another node; no fencing
    assert out.reason == f"disk {DISK} is leased elsewhere (holder unknown); not started here"
    assert not vm.local.running("vm1")
    assert vm.local.domain("vm1") is None  # the definition of the refused start is gone
    assert vm.run("stop").rc == OcfRc.SUCCESS


def test_a_refused_lease_names_the_peer_that_runs_the_domain(vm: Cluster, lock_setup) -> None:
    with_disk(vm)
    lease_refused(vm)
    vm.peer.add_domain(domain_xml(), persistent=False, running=True)

    out = vm.run("start", peer_check=False, **peer_check(vm))

    assert out.rc == OcfRc.ERR_GENERIC
    assert out.reason == f"disk {DISK} is leased elsewhere (domain runs on node2); not started here"


def test_validate_warns_of_a_disk_without_a_lease(vm: Cluster, lock_setup) -> None:
    from vmha.virt.leases import LockSetup

    lock_setup["now"] = LockSetup(None)
    with_disk(vm)

    out = vm.run("validate-all")

    assert out.rc == OcfRc.SUCCESS
    assert f"disk {DISK} of vm1 has no lease (no lock manager" in out.log


def test_require_disk_leases_refuses_a_disk_without_one(vm: Cluster, lock_setup) -> None:
    net = "<disk type='network' device='disk'><source protocol='rbd' name='pool/vm1-data'/><target dev='vdb'/></disk>"
    with_disk(vm, net)

    out = vm.run("start", require_disk_leases=True)

    assert out.rc == OcfRc.ERR_INSTALLED
    assert out.reason.startswith("disk rbd:pool/vm1-data of vm1 has no lease (lock manager lockd")
    assert vm.local.called("defineXML") == [] and not vm.local.running("vm1")


def test_require_disk_leases_passes_when_every_disk_is_leased(vm: Cluster, lock_setup) -> None:
    with_disk(vm)

    out = vm.run("start", require_disk_leases=True)

    assert out.rc == OcfRc.SUCCESS, out.log
    assert "has no lease" not in out.log
