"""Contract tests: the HypervisorHealth executable run as pacemaker-execd runs it, a fresh process
per action, against a private libvirtd (test driver), an offline CIB (CIB_file) for the node
utilization crm_attribute writes, and a fake /proc + /sys tree (host_root).

There is no attrd here (it needs a running cluster), so these tests show the honest failure
path: probes answer from local state, start fails with a clear reason, monitor logs and
retries before it fails, stop still succeeds.  The success path of attrd is covered in
tests/unit/test_host_agent.py with a scripted runner.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from lxml import etree

from tests.support.agent import ROOT, ocf_env, run_agent

AGENT = "HypervisorHealth"
INSTANCE = "hh:0"
PCS_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
GOLDEN = os.path.join(ROOT, "tests", "data", "metadata", f"{AGENT}.xml")
TOOLS_ENV = {"PATH": "/usr/sbin:/usr/bin"}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a private libvirtd needs root (CI runs as root)")


# -- fixtures --------------------------------------------------------------------------------


def _healthy_tree(root):
    """/proc and /sys of a healthy host: memory to spare, the test domain's bridge up."""
    (root / "proc").mkdir(parents=True)
    (root / "proc/meminfo").write_text("MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n")
    net = root / "sys/class/net/virbr0"
    net.mkdir(parents=True)
    (net / "operstate").write_text("up\n")
    (net / "carrier").write_text("1\n")


class Host:
    """One host's OCF environment: libvirt URI, offline CIB, RSCTMP and /proc + /sys tree."""

    def __init__(self, tmp_path, uri):
        self.uri = uri
        self.root = tmp_path / "host"
        _healthy_tree(self.root)
        self.rsctmp = tmp_path / "rsctmp"
        self.cib = tmp_path / "cib.xml"
        with open(self.cib, "w") as fh:
            subprocess.run(["cibadmin", "--empty"], stdout=fh, check=True)
        for node_id, name in (("1", "ha1"), ("2", "ha2")):
            self._cib("cibadmin", "--create", "-o", "nodes", "--xml-text", f"<node id='{node_id}' uname='{name}'/>")

    def _cib(self, *argv):
        return subprocess.run(
            argv, env={**TOOLS_ENV, "CIB_file": str(self.cib)}, capture_output=True, text=True, check=False
        )

    def env(self, interval=30000, timeout=20000, **params):
        base = {"hypervisor": self.uri, "host_root": str(self.root)}
        base.update({k: str(v) for k, v in params.items()})
        env = ocf_env(
            INSTANCE,
            base,
            rsctmp=str(self.rsctmp),
            interval_ms=interval,
            timeout_ms=timeout,
            extra={"CIB_file": str(self.cib), "OCF_RESKEY_CRM_meta_on_node": "ha1"},
        )
        env["OCF_RESOURCE_TYPE"] = AGENT
        return env

    def run(self, action, **kw):
        return run_agent(action, self.env(**kw), agent=AGENT, wait=60)

    def utilization(self, name, node="ha1"):
        done = self._cib("crm_attribute", "--node", node, "--utilization", "--name", name, "--query", "--quiet")
        return done.stdout.strip() if done.returncode == 0 else None

    def set_utilization(self, name, value, node="ha1"):
        done = self._cib("crm_attribute", "--node", node, "--utilization", "--name", name, "--update", value)
        assert done.returncode == 0, done.stderr

    @property
    def state_file(self):
        return self.rsctmp / f"vmha-{AGENT}-{INSTANCE}.json"

    def state(self):
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def seed_running(self):
        """The marker a successful start leaves: as after a Pacemaker restart while attrd is down."""
        self.rsctmp.mkdir(exist_ok=True)
        self.state_file.write_text(json.dumps({"running": {"since": 0}}))


@pytest.fixture
def host(daemon, tmp_path):
    return Host(tmp_path, daemon[0])


def _clean(run):
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.reasons) <= 1, run.reasons


# -- metadata --------------------------------------------------------------------------------


def test_metadata_valid_against_pcs_schema_and_golden():
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=AGENT)
    assert run.rc == 0 and run.stderr == ""
    schema = etree.RelaxNG(etree.parse(PCS_RNG))
    doc = etree.fromstring(run.stdout.encode())
    assert schema.validate(doc), schema.error_log
    with open(GOLDEN) as fh:
        assert run.stdout == fh.read(), f"metadata changed: regenerate {GOLDEN} if intended"
    names = {p.get("name") for p in doc.iter("parameter")}
    assert {"hypervisor", "storage_pools", "interfaces", "reserved_cpus", "reserved_memory_mib"} <= names
    actions = {a.get("name") for a in doc.iter("action")}
    assert actions == {"start", "stop", "monitor", "validate-all", "meta-data"}


# -- without a cluster -----------------------------------------------------------------------


@needs_root
def test_probe_and_monitor_of_a_stopped_instance(host):
    probe = host.run("monitor", interval=0)
    assert probe.rc == 7 and probe.reasons == []
    assert host.run("monitor").rc == 7
    assert host.run("validate-all").rc == 0


@needs_root
def test_start_without_attrd_fails_clearly(host):
    run = host.run("start")
    _clean(run)
    assert run.rc == 1 and "attrd is not running" in run.reason
    assert run.seconds < 10
    assert host.run("monitor", interval=0).rc == 7  # no marker: the failed start left nothing running
    assert host.run("stop").rc == 0  # Pacemaker's recovery: stop must succeed


@needs_root
def test_probe_answers_from_local_state(host):
    host.seed_running()
    probe = host.run("monitor", interval=0)
    _clean(probe)
    assert probe.rc == 0 and probe.reasons == [] and probe.seconds < 5


@needs_root
def test_monitor_retries_attrd_then_fails_and_publishes_utilization(host):
    host.seed_running()
    for attempt in (1, 2):
        run = host.run("monitor")
        _clean(run)
        assert run.rc == 0, run.stderr
        assert f"({attempt} of 3)" in run.stderr and "attrd is not running" in run.stderr
    # The node's capacity went to the CIB regardless: 16 CPUs, 3072 MiB minus 1024 reserved.
    assert [host.utilization(k) for k in ("cpu", "hv_memory", "host_memory")] == ["16", "2048", "2048"]
    third = host.run("monitor")
    assert third.rc == 1 and "3 times in a row" in third.reason


@needs_root
def test_utilization_written_only_on_change(host):
    host.seed_running()
    assert host.run("monitor").rc == 0
    host.set_utilization("cpu", "99")  # changed behind our back: not rewritten by a monitor
    assert host.run("monitor").rc == 0
    assert host.utilization("cpu") == "99"
    assert host.run("monitor", reserved_cpus=4, attrd_failures=10).rc == 0
    assert (host.utilization("cpu"), host.utilization("hv_memory")) == ("12", "2048")


@needs_root
def test_values_already_in_the_cib_are_not_written_again(host):
    """A CIB write aborts the transition in progress: equal values must not cause one."""
    host.set_utilization("cpu", "16")
    host.set_utilization("hv_memory", "2048")
    host.set_utilization("host_memory", "2048")
    epoch = etree.parse(str(host.cib)).getroot().get("epoch")
    host.seed_running()
    run = host.run("monitor")
    assert run.rc == 0
    assert "node utilization" not in run.stderr  # the agent logs every value it writes
    assert etree.parse(str(host.cib)).getroot().get("epoch") == epoch
    host.set_utilization("hv_memory", "1")
    host.seed_running()  # forget what was written: the next monitor reads again
    run = host.run("monitor")
    assert "node utilization hv_memory=2048" in run.stderr and "cpu=" not in run.stderr


@needs_root
def test_red_without_a_cluster_is_capped_to_yellow(host):
    host.seed_running()
    (host.root / "sys/class/net/virbr0/operstate").write_text("down\n")
    run = host.run("monitor")
    _clean(run)
    assert run.rc == 0
    assert "virbr0 is down" in run.stderr
    assert run.reason.startswith("red capped to yellow: the other nodes' health cannot be read")
    health = host.state()["health"]
    assert health["level"] == "yellow" and health["capped"] is True


@needs_root
def test_named_lab_pool(host, daemon, tmp_path):
    """The lab points storage_pools at its pool; a pool that stops makes the host red."""
    _uri, holder = daemon
    target = tmp_path / "pool"
    target.mkdir()
    pool = holder.storagePoolDefineXML(
        f"<pool type='dir'><name>lab-pool</name><target><path>{target}</path></target></pool>", 0
    )
    try:
        pool.create(0)
        host.seed_running()
        ok = host.run("monitor", storage_pools="default-pool lab-pool")
        assert ok.rc == 0 and ok.reasons == []
        assert host.state()["health"]["level"] == "green"
        pool.destroy()
        bad = host.run("monitor", storage_pools="default-pool lab-pool")
        assert bad.rc == 0 and "lab-pool is not active" in bad.stderr
        assert host.state()["health"]["level"] == "yellow"  # red, capped: no other node is green
    finally:
        if pool.isActive():
            pool.destroy()
        pool.undefine()


@needs_root
def test_checks_on_this_real_host(host):
    """/ as host_root: whatever this machine's sysfs has (or lacks) must read cleanly."""
    host.seed_running()
    run = host.run("monitor", host_root="/", interfaces="lo", memory_headroom_mib=0)
    _clean(run)
    assert run.rc == 0
    # What it published: the verdict of this machine's checks, and the node's capacity (the
    # test driver's 16 CPUs and 3072 MiB less 1024 reserved); attrd is absent here, so the
    # colour is recorded as not written yet (one failure of three allowed).
    state = host.state()
    assert state["health"]["level"] in ("green", "yellow", "red")
    assert "published" not in state and state["attrd_failures"] == 1
    assert [host.utilization(k) for k in ("cpu", "hv_memory", "host_memory")] == ["16", "2048", "2048"]


@needs_root
def test_stop_removes_the_marker(host):
    host.seed_running()
    stop = host.run("stop")
    _clean(stop)
    assert stop.rc == 0 and "attrd is not running" in stop.stderr
    assert not host.state_file.exists()
    assert host.run("monitor").rc == 7
    assert host.run("stop").rc == 0


@needs_root
def test_bad_parameters_and_unknown_action(host):
    bad = host.run("validate-all", health_attribute="vmha")
    assert bad.rc == 6 and "health_attribute" in bad.reason
    assert host.run("validate-all", reserved_cpus="many").rc == 6
    assert host.run("validate-all", interfaces="br0 ../etc").rc == 6
    assert host.run("start", hypervisor_failure="purple").rc == 6
    unknown = host.run("migrate_to")
    assert unknown.rc == 3
    # A bad value is refused by validate-all but a probe still answers with the default.
    assert host.run("monitor", interval=0, reserved_cpus="many").rc == 7


# -- a libvirtd that accepts and never answers -----------------------------------------------

HUNG_TIMEOUT_MS = 5000


@pytest.fixture
def hung(tmp_path, silent_socket):
    h = Host.__new__(Host)
    h.uri = f"qemu+unix:///system?socket={silent_socket}"
    h.root = tmp_path / "host"
    _healthy_tree(h.root)
    h.rsctmp = tmp_path / "rsctmp"
    h.cib = tmp_path / "cib.xml"
    with open(h.cib, "w") as fh:
        subprocess.run(["cibadmin", "--empty"], stdout=fh, check=True)
    return h


def test_hung_libvirtd_monitor_answers_in_time_and_reports_the_host(hung):
    hung.seed_running()
    run = hung.run("monitor", timeout=HUNG_TIMEOUT_MS, hypervisor_grace=0)
    _clean(run)
    assert run.seconds < HUNG_TIMEOUT_MS / 1000, f"took {run.seconds:.1f}s"
    assert run.rc == 0
    assert "is not answering" in run.stderr
    assert run.reason.startswith("red capped to yellow")
    assert hung.state()["health"]["level"] == "yellow"


def test_hung_libvirtd_yellow_policy(hung):
    hung.seed_running()
    run = hung.run("monitor", timeout=HUNG_TIMEOUT_MS, hypervisor_failure="yellow", libvirt_timeout=1)
    _clean(run)
    assert run.seconds < HUNG_TIMEOUT_MS / 1000 and run.rc == 0 and run.reasons == []
    health = hung.state()["health"]
    assert health["level"] == "yellow" and health["capped"] is False
    assert health["findings"].startswith("yellow: libvirt at qemu+unix") and "is not answering" in health["findings"]


def test_hung_libvirtd_probe_start_stop_in_time(hung):
    probe = hung.run("monitor", interval=0, timeout=HUNG_TIMEOUT_MS)
    assert probe.rc == 7 and probe.seconds < 2
    start = hung.run("start", timeout=HUNG_TIMEOUT_MS, libvirt_timeout=1)
    _clean(start)
    assert start.seconds < HUNG_TIMEOUT_MS / 1000 and start.rc == 1
    stop = hung.run("stop", timeout=HUNG_TIMEOUT_MS)
    assert stop.rc == 0 and stop.seconds < HUNG_TIMEOUT_MS / 1000
