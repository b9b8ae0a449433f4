"""A start that times out under Pacemaker ends with the VM running on exactly one host, never
two (issue: libvirt completing a create after the agent gave up, behind the cluster's back).

Fault injection: the VM's emulator is a wrapper that, on a host whose private /run holds the
flag file, is slow (longer than the start's timeout) when libvirt probes its capabilities
(``-machine none``) or when it launches the guest.  The VM runs on one host; it is then
started afresh on the slow host: that start gives up, Pacemaker stops it there (the agent
settles what the start left) and starts it on the other host.  The checker watches all of
it, and for a while after nothing of the VM may run on the slow host.
"""

from __future__ import annotations

import os
import time

import pytest
from vmha.lab import guest, image, scenarios
from vmha.lab.guest import domain_uuid
from vmha.lab.lab import Lab, wait_until

from tests.lab.conftest import AGENT
from tests.lab.test_lab import other, started_on

pytestmark = pytest.mark.lab

FLAG = guest.SLOW_FLAG
SLOW_S = 25
START_TIMEOUT_S = 10


@pytest.mark.skipif(AGENT != "vmha", reason="VirtualDomain's create completes behind the cluster's back")
@pytest.mark.parametrize("where", ["probe", "launch"])
def test_a_start_that_times_out_ends_on_exactly_one_host(watched: Lab, where: str) -> None:
    lab = watched
    vm = f"vmlate{where}"
    good = lab.hosts[0]
    slow = other(lab, good)
    wrapper = os.path.join(lab.paths.vm_dir, f"{vm}-qemu")
    guest.write_slow_emulator(wrapper, SLOW_S)
    img = image.ensure(lab.paths.image_dir, lab.runner)
    lab.create_vm(vm, img, prefer=good, emulator=wrapper, ops=["start", f"timeout={START_TIMEOUT_S}s"])
    try:
        assert started_on(lab, vm, good, 90), f"{vm} did not start on {good}"
        # slow on the other host only; a changed emulator makes libvirt probe it again
        done = lab.exec(slow, ["sh", "-c", f"echo {where} > {FLAG}"])
        assert done.ok, done.stderr
        os.utime(wrapper)
        # a fresh start on the slow host: stop here, then start there (no live migration)
        lab.pcs("resource", "disable", vm, "--wait=60")
        lab.pcs("constraint", "location", vm, "prefers", f"{slow}=200")
        t_start = time.monotonic()
        lab.pcs("resource", "enable", vm)
        failed = wait_until(
            lambda: (s := lab.crm()) and [f for f in s.failures if f.resource == vm and f.task == "start"],
            START_TIMEOUT_S + 60,
            0.2,
        )
        assert failed, f"the start on {slow} did not fail"
        assert failed[0].node == slow, failed
        assert started_on(lab, vm, good, 120), f"{vm} did not come back on {good}: {lab.crm_mon_text()}"
        # the slow part ends SLOW_S after the start began: watch well past it
        t_end = t_start + SLOW_S + 15
        while time.monotonic() < t_end:
            assert scenarios.qemu_pid(lab, slow, vm) is None or not _runs(lab, slow, vm), (
                f"{vm} runs on {slow} after its start there gave up"
            )
            s = lab.crm()
            assert s is not None and s.started_on(vm) == good, lab.crm_mon_text()
            time.sleep(0.5)
        assert scenarios.qemu_pid(lab, slow, vm) is None, f"a QEMU of {vm} is left on {slow}"
    finally:
        lab.exec(slow, ["rm", "-f", FLAG])
        lab.delete_vm(vm)
        lab.pcs("resource", "cleanup")
        if os.path.exists(wrapper):
            os.unlink(wrapper)
    print(f"{where}: start on {slow} failed ({failed[0].status}, {failed[0].exec_time_ms} ms), runs on {good}")


def _runs(lab: Lab, host: str, vm: str) -> bool:
    done = lab.exec(host, ["virsh", "-c", "qemu:///system", "domstate", domain_uuid(vm)], timeout=30)
    return done.ok and done.stdout.strip() == "running"
