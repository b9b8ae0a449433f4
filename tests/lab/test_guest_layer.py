"""The guest layer in a real lab (issue 4): a service inside a guest restarted in place by
ocf:vmha:GuestService, and its client path failing with a reason that names it.  (A frozen
guest caught by VirtualMachine's depth-10 guest-agent ping and restarted: the third rung of
tests/lab/test_database.py's ladder, and the soak.)  Every test runs under the double-run
checker (the ``watched`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vmha.lab import scenarios
from vmha.lab.lab import Lab, wait_until

from tests.lab.conftest import AGENT

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(AGENT != "vmha", reason="the guest layer is ocf:vmha's (GuestService, depth 10)"),
]

VM = "vm1"
SERVICE = "web1"


def service_ready(lab: Lab, timeout: float = 120.0) -> str:
    """The host where VM and SERVICE are Started and the service answers HTTP."""
    url = scenarios.guest_url(VM)

    def check() -> str | None:
        s = lab.crm()
        host = s.started_on(VM) if s else None
        if not host or s is None or s.started_on(SERVICE) != host:
            return None
        if (r := s.resources.get(SERVICE)) is None or r.failed:
            return None
        return host if scenarios.http_answers(lab, host, url) else None

    host = wait_until(check, timeout, 0.5)
    assert host, f"{SERVICE} not Started and answering on the host of {VM}:\n{lab.crm_mon_text()}"
    return host


@pytest.fixture(scope="module")
def web(lab: Lab) -> Iterator[str]:
    """GuestService for the httpd inside VM, created with pcs, removed after the module."""
    scenarios.create_guest_service(lab, SERVICE, VM)
    try:
        yield SERVICE
    finally:
        lab.pcs("resource", "delete", SERVICE)


def test_service_killed_restarts_in_place(watched: Lab, web: str) -> None:
    lab = watched
    host = service_ready(lab)
    r = scenarios.kill_guest_service(lab, web, VM)
    assert r.recovery_s is not None, f"the service did not answer again: {r.to_json()}"
    # the status check sees the killed httpd gone, or (a monitor landing in the instant the
    # guest's init has not reaped it yet) the client-path check finds its port closed
    assert r.exit_reason.startswith(("service ", "port closed")), r.exit_reason
    assert r.qemu_pid_before and r.qemu_pid_after == r.qemu_pid_before, f"the VM's QEMU changed: {r.to_json()}"
    assert r.boots_after == r.boots_before, "the guest rebooted"
    assert service_ready(lab) == host


def test_client_port_blocked_names_client_path(watched: Lab, web: str) -> None:
    lab = watched
    host = service_ready(lab)
    pid = scenarios.qemu_pid(lab, host, VM)
    # the service keeps running (its status says so); only the client path is cut
    assert scenarios.guest_exec(lab, host, VM, ["/bin/ip", "link", "set", "eth0", "down"]) == 0
    try:
        failed = wait_until(lambda: scenarios.failures_of(lab, web), 60, 0.2)
        text = lab.crm_mon_text()
    finally:
        restored = wait_until(
            lambda: scenarios.guest_exec(lab, host, VM, ["/bin/ip", "link", "set", "eth0", "up"]) == 0, 60, 1.0
        )
    assert restored, "could not bring the guest's eth0 back up"
    assert failed, f"the monitor did not fail with the port cut:\n{text}"
    reason = failed[0].exit_reason
    assert reason.startswith(("port ", "HTTP ")), reason
    assert reason in text, text
    assert service_ready(lab) == host
    assert scenarios.qemu_pid(lab, host, VM) == pid, "the VM was restarted for a client-path failure"
