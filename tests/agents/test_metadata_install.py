"""The metadata every agent prints: valid for pcs (its own OCF 1.1 schema), equal to the golden
copy, and what `pcs resource describe` shows once `make install` has put the agents in place."""

from __future__ import annotations

import os
import subprocess

import pytest
from lxml import etree

from tests.support.agent import AGENT_DIR, ROOT, ocf_env, run_agent

AGENTS = ["VirtualMachine", "GuestService", "HypervisorHealth"]
PCS_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
GOLDEN = os.path.join(ROOT, "tests", "data", "metadata")
INSTALLED = "/usr/lib/ocf/resource.d/vmha"


@pytest.mark.parametrize("agent", AGENTS)
def test_metadata_valid_against_pcs_schema(agent):
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=agent)
    assert run.rc == 0 and run.stderr == ""
    schema = etree.RelaxNG(etree.parse(PCS_RNG))
    doc = etree.fromstring(run.stdout.encode())
    assert schema.validate(doc), schema.error_log
    assert doc.findtext("version") == "1.1"


@pytest.mark.parametrize("agent", AGENTS)
def test_metadata_matches_golden(agent):
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=agent)
    with open(os.path.join(GOLDEN, f"{agent}.xml")) as fh:
        golden = fh.read()
    assert run.stdout == golden, f"metadata changed: regenerate {GOLDEN}/{agent}.xml if intended"


def test_every_virtualdomain_parameter_is_declared():
    """A VirtualDomain user switching the agent name keeps every parameter name."""
    vd = "/usr/lib/ocf/resource.d/heartbeat/VirtualDomain"
    out = subprocess.run(
        [vd, "meta-data"], capture_output=True, text=True, env={"OCF_ROOT": "/usr/lib/ocf", "PATH": "/usr/bin:/bin"}
    ).stdout
    theirs = {p.get("name") for p in etree.fromstring(out.encode()).iter("parameter")}
    ours = {p.get("name") for p in etree.parse(os.path.join(GOLDEN, "VirtualMachine.xml")).iter("parameter")}
    assert theirs, "VirtualDomain metadata not readable"
    assert theirs <= ours, f"missing: {sorted(theirs - ours)}"


needs_install = pytest.mark.skipif(
    not os.path.exists(os.path.join(INSTALLED, "VirtualMachine")),
    reason="`make install` has not run (make test runs it first)",
)


@needs_install
def test_installed_agent_described_by_pcs():
    done = subprocess.run(
        ["pcs", "resource", "describe", "ocf:vmha:VirtualMachine"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "ocf:vmha:VirtualMachine" in text
    for name in ("config (required)", "hypervisor", "shutdown_mode", "migration_transport", "peer_check_uri"):
        assert name in text, name
    assert "migrate_to" in text and "reload-agent" in text


@needs_install
def test_installed_agent_runs_from_its_package_location(tmp_path):
    """The installed copy finds the installed library, not this source tree."""
    env = ocf_env("inst1", {"config": str(tmp_path / "none.xml")}, rsctmp=str(tmp_path), interval_ms=0)
    run = run_agent("monitor", env, executable=os.path.join(INSTALLED, "VirtualMachine"))
    assert run.rc == 7
    done = subprocess.run([os.path.join(INSTALLED, "VirtualMachine"), "meta-data"], capture_output=True, text=True)
    with open(os.path.join(GOLDEN, "VirtualMachine.xml")) as fh:
        assert done.stdout == fh.read(), "installed agent differs from the tree: run make install"
    assert AGENT_DIR not in done.stderr


@needs_install
def test_installed_guest_service_described_by_pcs():
    done = subprocess.run(
        ["pcs", "resource", "describe", "ocf:vmha:GuestService"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for name in ("domain (required)", "service", "manager", "tcp_check", "http_check", "reload-agent"):
        assert name in done.stdout, name
