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
