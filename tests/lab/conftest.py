"""One real lab (2 hosts, 2 VMs) shared by every lab test, watched by the double-run checker.

Needs root and the Debian packages (see vmha.lab.image.DEBIAN_PACKAGES); skipped, with the
reason, when not root.  The agent under test comes from ``VMHA_LAB_AGENT`` (vmha, the
default, or heartbeat for ocf:heartbeat:VirtualDomain).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from vmha.lab import scenarios
from vmha.lab.checker import DoubleRunChecker
from vmha.lab.config import LabConfig
from vmha.lab.lab import Lab

AGENT = os.environ.get("VMHA_LAB_AGENT", "vmha")


@pytest.fixture(scope="package")  # down before tests/packaging, which replaces the agents
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (namespaces, mounts, cluster daemons)")
    the_lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    try:
        the_lab.up(LabConfig(nodes=2, agent=AGENT, vms=2))
        yield the_lab
    finally:
        problems = the_lab.down()
        assert not problems, f"lab did not come down cleanly: {problems}"


@pytest.fixture(scope="package")  # down before tests/packaging, which replaces the agents
def checker(lab: Lab) -> Iterator[DoubleRunChecker]:
    with DoubleRunChecker(lab.hosts, lab.host_pid) as chk:
        yield chk


@pytest.fixture()
def watched(lab: Lab, checker: DoubleRunChecker) -> Iterator[Lab]:
    """The lab, settled and clean before the test; no double run allowed during it."""
    for vm in lab.state.vms:  # whatever an earlier (failed) test left disabled
        lab.pcs("resource", "enable", vm)
    lab.pcs("resource", "cleanup")
    # the cleanup's re-probes may start a transition (a VM whose live-migration history the
    # cleanup left half is restarted: "it can no longer migrate"): let it run to its end
    # before the test looks, or the test sees it happen under its own fault
    host = lab.online_host()
    if host:
        lab.exec(host, ["crm_resource", "--wait", "--timeout=120s"], timeout=130)
    assert scenarios.settle(lab, 180.0), "lab did not settle before the test"
    mark = checker.mark()
    yield lab
    seen = checker.since(mark)
    assert not seen, f"a domain ran on two hosts at once: {[d.to_json() for d in seen]}"
