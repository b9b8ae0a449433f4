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


@pytest.mark.parametrize("mode", ["cut", "hang"])
def test_storage_path_lost_on_one_host(healthy: Lab, mode: str) -> None:
    lab = healthy
    host = scenarios.busiest(lab)
    loss = vmcp.storage_loss(lab, host, mode)
    print(json.dumps(loss.to_json(), sort_keys=True), file=sys.stderr)
    assert loss.vms and set(loss.moved_to) == set(loss.vms)
    assert loss.red_s is not None, "the host never turned red"
    if mode == "cut":
        # the guests paused on the error (error_policy=stop), never handed a failed write;
        # a path that fails holds no writes back: the stops succeed, nobody is fenced for them
        assert all("I/O error" in st for st in loss.guest_states.values()), loss.guest_states
        assert not loss.stop_failed and loss.fenced_by_cluster_s is None, loss.to_json()
        assert set(loss.moved_to.values()) == set(lab.hosts) - {host}
    else:
        # writes may wait in a hung path: the stop fails ("fence this host") and the cluster
        # resets the host before the VMs start again (elsewhere, or on the host once it is
        # back with a fresh path), within seconds rather than the operations' timeouts
        # every VM's stop failed, or never ran: the first failed stop has the host fenced,
        # and a stop still queued behind it dies with the host; none may have "succeeded"
        assert loss.stop_failed and set(loss.stop_failed) <= set(loss.vms), loss.to_json()
        for vm in set(loss.vms) - set(loss.stop_failed):
            assert not [op for op in loss.stops.get(vm, []) if op["task"] == "stop" and op["ok"]], loss.to_json()
        assert loss.fenced_by_cluster_s is not None, loss.to_json()
        assert loss.fenced_by_cluster_s < min(loss.per_vm_s.values()), loss.to_json()
        assert loss.storage_failover_s is not None and loss.storage_failover_s < 60, loss.to_json()
    assert loss.writes["writes_lost"] == 0, loss.writes
    assert loss.fenced and loss.rejoin_s is not None, loss.to_json()
