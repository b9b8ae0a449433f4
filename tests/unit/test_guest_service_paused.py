"""GuestService's start on a VM that its storage paused or that died (fake libvirt): it fails
at once or after a short grace, not at its timeout, because a start in flight holds back the
cluster's recovery of the VM (both found by the lab's soak)."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vmha.guest_service import agent as guest_service  # noqa: E402
from vmha.ocf import dispatch  # noqa: E402
from vmha.ocf.codes import OcfRc  # noqa: E402

from tests.fakes import harness  # noqa: E402
from tests.fakes import libvirt as fl  # noqa: E402

lv = harness.lv


def _start(tmp_path: Path, domain: str) -> tuple[int, str, float]:
    env = {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": "web1",
        "OCF_RESOURCE_TYPE": "GuestService",
        "HA_RSCTMP": str(tmp_path / "rsctmp"),
        "HA_LOGFACILITY": "none",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "OCF_RESKEY_hypervisor": harness.LOCAL_URI,
        "OCF_RESKEY_domain": domain,
        "OCF_RESKEY_service": "nginx",
    }
    err = io.StringIO()
    t0 = time.monotonic()
    rc = dispatch.run(guest_service.SPEC, ["GuestService", "start"], env, io.StringIO(), err)
    return rc, err.getvalue(), time.monotonic() - t0


def test_start_fails_at_once_on_a_vm_paused_by_an_io_error(tmp_path: Path, lv: fl.FakeLibvirt) -> None:
    local = lv.hypervisor(harness.LOCAL_URI, hostname="node1")
    local.add_domain(harness.domain_xml(agent=True), state=fl.VIR_DOMAIN_PAUSED, reason=fl.VIR_DOMAIN_PAUSED_IOERROR)
    rc, log, seconds = _start(tmp_path, "vm1")
    assert rc == OcfRc.ERR_GENERIC, log
    assert "ocf-exit-reason:start: VM vm1 is paused by a disk I/O error on this host" in log
    assert seconds < 2, seconds


@pytest.mark.parametrize("reason", ["VIR_DOMAIN_PAUSED_USER", "VIR_DOMAIN_PAUSED_MIGRATION"])
def test_other_pauses_are_waited_for_as_before(tmp_path: Path, lv: fl.FakeLibvirt, reason: str) -> None:
    local = lv.hypervisor(harness.LOCAL_URI, hostname="node1")
    local.add_domain(harness.domain_xml(agent=True), state=fl.VIR_DOMAIN_PAUSED, reason=getattr(fl, reason))
    rc, log, _seconds = _start(tmp_path, "vm1")
    assert "paused by a disk I/O error" not in log


def test_start_on_a_vm_that_is_down_fails_after_a_short_grace(tmp_path: Path, lv: fl.FakeLibvirt) -> None:
    # ordered after its VM, such a start finds a VM that died: waiting out the 30 s timeout
    # would hold back the VM's own recovery
    lv.hypervisor(harness.LOCAL_URI, hostname="node1")
    rc, log, seconds = _start(tmp_path, "vm1")
    assert rc == OcfRc.ERR_GENERIC, log
    assert "ocf-exit-reason:start: VM down: domain vm1" in log
    assert guest_service.VM_DOWN_START_S <= seconds < guest_service.VM_DOWN_START_S + 3, seconds
