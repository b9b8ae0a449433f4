"""A three-host lab (three VMs), after tests/lab's two-host lab is down: what only a
majority can show.  Same checker and rules as tests/lab."""

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


@pytest.fixture(scope="package")
def lab3() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (namespaces, mounts, cluster daemons)")
    the_lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    try:
        the_lab.up(LabConfig(nodes=3, agent=AGENT, vms=3))
        yield the_lab
    finally:
        problems = the_lab.down()
        assert not problems, f"lab did not come down cleanly: {problems}"


@pytest.fixture()
def watched3(lab3: Lab) -> Iterator[Lab]:
    assert scenarios.settle(lab3, 180.0), "lab did not settle before the test"
    with DoubleRunChecker(lab3.hosts, lab3.host_pid) as chk:
        yield lab3
        seen = list(chk.incidents)
    assert not seen, f"a domain ran on two hosts at once: {[d.to_json() for d in seen]}"
