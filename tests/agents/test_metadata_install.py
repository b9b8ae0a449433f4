"""The metadata every agent prints: valid for pcs (its own OCF 1.1 schema) and for resource-agents'
ra-api-1.dtd (what ocf-tester checks), equal to the golden copy, and what `pcs resource describe`
shows once `make install` has put the agents in place.  A missing schema file fails the test:
make's deps install both (pcs, resource-agents)."""

from __future__ import annotations

import os
import subprocess

import pytest
from lxml import etree

from tests.support.agent import AGENT_DIR, ROOT, ocf_env, run_agent

AGENTS = ["VirtualMachine", "GuestService", "HypervisorHealth"]
PCS_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
RA_DTD = "/usr/share/resource-agents/ra-api-1.dtd"
DOCTYPE = '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">'
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
def test_metadata_valid_against_resource_agents_dtd(agent):
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=agent)
    assert run.rc == 0 and run.stderr == ""
    assert run.stdout.splitlines()[1] == DOCTYPE
    doc = etree.fromstring(run.stdout.encode())
    assert doc.getroottree().docinfo.system_url == "ra-api-1.dtd"
    dtd = etree.DTD(RA_DTD)
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()


@pytest.mark.parametrize("agent", AGENTS)
def test_metadata_valid_for_xmllint_both_ways(agent):
    """xmllint as ocf-tester runs it (--valid: the DOCTYPE's DTD, found from the DTD's directory),
    and with both schema files given explicitly."""
    with open(os.path.join(GOLDEN, f"{agent}.xml"), "rb") as fh:
        body = fh.read()
    assert os.path.exists(RA_DTD) and os.path.exists(PCS_RNG)
    as_ocf_tester = subprocess.run(
        ["xmllint", "--noout", "--valid", "-"], input=body, capture_output=True, cwd=os.path.dirname(RA_DTD)
    )
    assert as_ocf_tester.returncode == 0, as_ocf_tester.stderr.decode()
    explicit = subprocess.run(
        ["xmllint", "--noout", "--nonet", "--dtdvalid", RA_DTD, "--relaxng", PCS_RNG, "-"],
        input=body,
        capture_output=True,
        cwd=os.path.dirname(RA_DTD),
    )
    assert explicit.returncode == 0, explicit.stderr.decode()


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
    assert "migrate_to" in text
    assert "reload-agent" not in text  # not an action of ra-api-1.dtd: not advertised


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
    for name in ("domain (required)", "service", "manager", "tcp_check", "http_check"):
        assert name in done.stdout, name
    assert "reload-agent" not in done.stdout  # not an action of ra-api-1.dtd: not advertised
