"""Three hosts, one cut off: the minority is fenced and its VMs come up on the majority."""

from __future__ import annotations

import json
import sys

import pytest
from vmha.lab import partition, scenarios
from vmha.lab.lab import Lab

pytestmark = pytest.mark.lab


def test_the_minority_is_fenced_and_its_vms_run_on_the_majority(watched3: Lab) -> None:
    lab = watched3
    where = scenarios.locations(lab)
    isolated = lab.hosts[-1]
    moved = [vm for vm, h in where.items() if h == isolated]
    assert moved, f"no VM on {isolated} to move: {where}"
    result = partition.partition(lab, isolated)
    print(json.dumps(result.to_json(), sort_keys=True), file=sys.stderr)
    assert result.fenced == [isolated], result.to_json()
    assert result.survivors == lab.hosts[:-1]
    assert set(result.vms_elsewhere) == set(lab.state.vms)
    assert all(result.vms_elsewhere[vm] != isolated for vm in moved)
    assert result.writes["writes_lost"] == 0, result.writes
    assert result.rejoin_s is not None
