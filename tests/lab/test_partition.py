"""A network partition between the two hosts, both up and both still reaching the storage:
exactly one survives, the one the fencing delays choose (vmha.lab.partition), and it runs
every VM; nothing ran twice and nothing acknowledged was lost."""

from __future__ import annotations

import json
import sys

import pytest
from vmha.lab import partition, scenarios
from vmha.lab.lab import Lab

pytestmark = pytest.mark.lab


def test_a_partition_leaves_exactly_the_chosen_host(watched: Lab) -> None:
    lab = watched
    where = scenarios.locations(lab)
    # the host running fewer VMs (the second on a tie) loses its link
    isolated = min(reversed(lab.hosts), key=lambda h: sum(1 for v in where.values() if v == h))
    expected = partition.expected_survivors(lab, isolated)
    result = partition.partition(lab, isolated)
    print(json.dumps(result.to_json(), sort_keys=True), file=sys.stderr)
    assert result.survivors == expected, result.to_json()
    assert result.fenced == sorted(set(lab.hosts) - set(expected)), result.to_json()
    assert set(result.vms_elsewhere) == set(lab.state.vms)
    assert set(result.vms_elsewhere.values()) <= set(expected)
    assert result.writes["writes_lost"] == 0, result.writes
    assert result.rejoin_s is not None, "the fenced host did not rejoin once reconnected"


def test_the_priority_keeps_the_busier_host_even_when_it_is_the_one_cut_off(watched: Lab) -> None:
    # Every VM on ha2, then ha2 loses its link: the tie delay would let ha1 win, so ha2
    # surviving is priority-fencing-delay's doing (fencing a node with more priority waits).
    lab = watched
    busy = lab.hosts[1]
    for vm, host in scenarios.locations(lab).items():
        if host != busy:
            scenarios.migrate(lab, vm, busy)
    assert set(scenarios.locations(lab).values()) == {busy}
    assert partition.expected_survivors(lab, busy) == [busy]
    result = partition.partition(lab, busy)
    print(json.dumps(result.to_json(), sort_keys=True), file=sys.stderr)
    assert result.survivors == [busy], result.to_json()
    assert result.fenced == [lab.hosts[0]], result.to_json()
    assert set(result.vms_elsewhere) == set(lab.state.vms)
    assert set(result.vms_elsewhere.values()) == {busy}
    assert result.writes["writes_lost"] == 0, result.writes
    assert result.rejoin_s is not None, "the fenced host did not rejoin once reconnected"
