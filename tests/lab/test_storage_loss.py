"""One host loses its path to the shared storage, cut or hung: HypervisorHealth turns it red,
its VMs are forced off there and started on the host that still reaches the storage, the
leases keep the old QEMU from writing again, and nothing acknowledged is lost."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from vmha.lab import health, scenarios, vmcp
from vmha.lab.lab import Lab

from tests.lab.conftest import AGENT

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(AGENT != "vmha", reason="HypervisorHealth is ours; VirtualDomain runs the same VMs"),
]


@pytest.fixture()
def healthy(watched: Lab) -> Iterator[Lab]:
    health.enable(watched)
    try:
        yield watched
    finally:
        health.disable(watched)


# "hang" is not here yet: with its path hung, the host's libvirtd hangs too (it opens and
# stats the disk files), so a stop or start there runs into its timeout (issue note)
@pytest.mark.parametrize("mode", ["cut"])
def test_storage_path_lost_on_one_host(healthy: Lab, mode: str) -> None:
    lab = healthy
    host = scenarios.busiest(lab)
    loss = vmcp.storage_loss(lab, host, mode)
    print(json.dumps(loss.to_json(), sort_keys=True), file=sys.stderr)
    assert loss.vms and set(loss.moved_to.values()) == set(lab.hosts) - {host}
    assert loss.red_s is not None, "the host never turned red"
    if mode == "cut":
        # the guests paused on the error (error_policy=stop), never handed a failed write
        assert all("I/O error" in st for st in loss.guest_states.values()), loss.guest_states
    assert loss.writes["writes_lost"] == 0, loss.writes
    assert loss.fenced and loss.rejoin_s is not None, loss.to_json()
