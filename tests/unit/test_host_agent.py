"""HypervisorHealth's actions with a scripted runner (every attrd_updater / crm_attribute /
crm_node call is checked), libvirt's in-process test:///default driver, and a fake /proc and
/sys tree.  The success path of attrd lives here: the contract tests have no attrd to talk to.

test:///default has a 16-CPU, 3072 MiB host, one running domain "test" (8 GiB max, 2 GiB
current, on network "default" = bridge virbr0) and one active pool with everything free.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for tests.fakes when pytest is not started from the checkout
    sys.path.insert(0, str(REPO))

from vmha.hypervisor_health.agent import SPEC, HypervisorHealth  # noqa: E402
from vmha.hypervisor_health.params import PARAMS  # noqa: E402
from vmha.ocf import statefile  # noqa: E402
from vmha.ocf.cluster import ClusterTools, parse_attrd_query  # noqa: E402
from vmha.ocf.codes import GenericError, NotConfigured, NotInstalled, NotRunning, OcfRc  # noqa: E402
from vmha.ocf.context import OcfContext  # noqa: E402
from vmha.ocf.log import Log  # noqa: E402
from vmha.ocf.runner import CommandNotFound, CommandTimedOut  # noqa: E402

from tests.fakes.runner import FakeRunner  # noqa: E402

ATTR = "#health-vmha"
SET = ["attrd_updater", "--name", ATTR, "--update"]
QUERY = ["attrd_updater", "--query", "--all", "--name", ATTR]
DELETE = ["attrd_updater", "--name", ATTR, "--delete"]
NODES = ["crm_node", "--list"]
NOT_CONNECTED = "attrd_updater: Could not connect to attrd: Connection refused"
CLAIM = "vmha-red-claim-vmha"
REASON_SET = ["attrd_updater", "--name", "health-vmha-reason", "--update"]
WALL = 1796000000.0
STAMP = f"{WALL:.3f}"
CLAIM_SET = ["attrd_updater", "--name", CLAIM, "--update", STAMP, "--private"]
CLAIM_QUERY = ["attrd_updater", "--query", "--all", "--name", CLAIM]
CLAIM_DELETE = ["attrd_updater", "--name", CLAIM, "--delete"]
TWO = "1 ha1 member\n2 ha2 member\n"
META = ["cibadmin", "--query", "--xpath", "//primitive[@id='hh']/ancestor-or-self::*[parent::resources]"]


def clone_xml(meta=""):
    return (
        f'<clone id="hh-clone"><meta_attributes id="m">{meta}</meta_attributes>'
        '<primitive id="hh" class="ocf" provider="vmha" type="HypervisorHealth"/></clone>'
    )


META_TRUE = {"stdout": clone_xml('<nvpair id="a" name="allow-unhealthy-nodes" value="true"/>')}


def util(name, value, node="ha1"):
    return ["crm_attribute", "--node", node, "--utilization", "--name", name, "--update", str(value)]


def query(name, node="ha1"):
    return ["crm_attribute", "--node", node, "--utilization", "--name", name, "--query", "--quiet"]


NO_SUCH = {"rc": 105, "stderr": "crm_attribute: Error performing operation: No such device or address"}


def attrs(**values):
    return "".join(f'name="{ATTR}" host="{node}" value="{v}"\n' for node, v in values.items())


def claims(**values):
    return "".join(f'name="{CLAIM}" host="{node}" value="{v}"\n' for node, v in values.items())


def expect_red(runner):
    """This node turning red beside a green ha2: read the peers, claim, publish red, release."""
    runner.expect(NODES, stdout=TWO)
    runner.expect(QUERY, stdout=attrs(ha2="green"))
    expect_claim(runner, health=attrs(ha2="green"))
    runner.expect([*SET, "red"])
    runner.expect(CLAIM_DELETE)


def expect_claim(runner, *, seen=None, members=TWO, health):
    """The red claim: set it, see it come back (with whatever other claims ``seen`` adds),
    read the members and their health again."""
    runner.expect(CLAIM_SET)
    runner.expect(CLAIM_QUERY, stdout=claims(**(seen or {"ha1": STAMP})))
    runner.expect(NODES, stdout=members)
    runner.expect(QUERY, stdout=health)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(tmp_path):
    """A healthy host: plenty of memory, virbr0 up, nothing else to report."""
    r = tmp_path / "host"
    (r / "proc").mkdir(parents=True)
    (r / "proc/meminfo").write_text("MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n")
    net = r / "sys/class/net/virbr0"
    net.mkdir(parents=True)
    (net / "operstate").write_text("up\n")
    (net / "carrier").write_text("1\n")
    return r


class Env:
    def __init__(self, tmp_path: Path, root: Path) -> None:
        self.rsctmp = tmp_path / "rsctmp"
        self.root = root
        self.clock = Clock()
        self.runner = FakeRunner().ignore(REASON_SET)  # the reason's own tests look at it
        self.log = io.StringIO()

    def agent(self, action="monitor", *, interval=30000, timeout=20000, on_node="ha1", **params):
        env = {
            "OCF_RESOURCE_INSTANCE": "hh:0",
            "OCF_RESKEY_CRM_meta_interval": str(interval),
            "OCF_RESKEY_CRM_meta_timeout": str(timeout),
            "HA_RSCTMP": str(self.rsctmp),
            "OCF_RESKEY_hypervisor": "test:///default",
            "OCF_RESKEY_host_root": str(self.root),
        }
        if on_node:
            env["OCF_RESKEY_CRM_meta_on_node"] = on_node
        env.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items()})
        ctx = OcfContext.from_env(action, env, PARAMS)
        assert not ctx.param_errors, ctx.param_errors
        return HypervisorHealth(ctx, Log("test", stderr=self.log), self.runner, clock=self.clock, wall=lambda: WALL)

    def state(self):
        return statefile.read(statefile.state_path(str(self.rsctmp), "HypervisorHealth", "hh:0"))

    def started(self, **params):
        self.runner.expect(META, **META_TRUE)
        self.runner.expect([*SET, "green"])
        self.runner.expect(query("cpu"), **NO_SUCH)  # the CIB read once, then written
        self.runner.expect(query("hv_memory"), **NO_SUCH)
        self.runner.expect(query("host_memory"), **NO_SUCH)
        self.runner.expect(util("cpu", 16))
        self.runner.expect(util("hv_memory", 2048))
        self.runner.expect(util("host_memory", 2048))
        self.agent("start", **params).start()
        self.runner.assert_done()

    def break_bridge(self):
        (self.root / "sys/class/net/virbr0/operstate").write_text("down\n")
        (self.root / "sys/class/net/virbr0/carrier").write_text("0\n")


@pytest.fixture
def h(tmp_path, root):
    env = Env(tmp_path, root)
    yield env
    env.runner.assert_done()


# -- start / probe / stop --------------------------------------------------------------------


def test_start_publishes_health_and_utilization_and_marks_running(h):
    h.started()
    st = h.state()
    assert st["published"] == "green" and st["utilization"] == {"cpu": "16", "hv_memory": "2048", "host_memory": "2048"}
    assert "running" in st


def test_probe_answers_from_local_state_without_the_cluster(h):
    with pytest.raises(NotRunning):
        h.agent(interval=0).monitor()
    h.started()
    h.agent(interval=0).monitor()  # no command runs: the strict runner would fail


def test_recurring_monitor_of_a_stopped_instance_is_not_running(h):
    with pytest.raises(NotRunning) as info:
        h.agent().monitor()
    assert info.value.rc == OcfRc.NOT_RUNNING


def test_monitor_unchanged_runs_no_command(h):
    h.started()
    for _ in range(3):
        h.clock.now += 100
        h.agent().monitor()


def test_unchanged_value_is_reasserted_now_and_then(h):
    """attrd forgets a node's values when Pacemaker restarts there."""
    h.started()
    h.clock.now += 601
    h.runner.expect([*SET, "green"])
    h.agent().monitor()
    h.agent().monitor()


def test_probe_of_a_running_instance_makes_the_next_monitor_rewrite(h):
    h.started()
    h.agent(interval=0).monitor()  # Pacemaker restarted here: attrd may have lost our value
    h.runner.expect([*SET, "green"])
    h.agent().monitor()
    h.agent().monitor()


def test_stop_deletes_the_attribute_and_the_marker(h):
    h.started()
    h.runner.expect(DELETE)
    h.agent("stop").stop()
    assert h.state() == {}
    with pytest.raises(NotRunning):
        h.agent().monitor()


def test_stop_without_attrd_succeeds(h):
    h.started()
    h.runner.expect(DELETE, rc=102, stderr=NOT_CONNECTED)
    h.agent("stop").stop()
    assert h.state() == {}


def test_stop_tolerates_a_failed_delete_of_green(h):
    h.started()
    h.runner.expect(DELETE, raises=CommandTimedOut("attrd_updater did not finish within 5.0s"))
    h.agent("stop").stop()
    assert "not removed" in h.log.getvalue()


def test_stop_retries_then_fails_rather_than_leave_a_red_behind(h):
    h.started()
    st = h.state()
    st["published"] = "red"
    statefile.write(statefile.state_path(str(h.rsctmp), "HypervisorHealth", "hh:0"), st)
    h.runner = FakeRunner.permissive().answer(DELETE, rc=1, stderr="error: timed out")
    with pytest.raises(GenericError) as info:
        h.agent("stop", timeout=3000).stop()
    assert "keep VMs off" in info.value.reason
    assert len(h.runner.argvs("attrd_updater")) >= 2


def test_stop_of_a_red_succeeds_once_a_retry_works(h):
    h.started()
    st = h.state()
    st["published"] = "red"
    statefile.write(statefile.state_path(str(h.rsctmp), "HypervisorHealth", "hh:0"), st)
    h.runner.expect(DELETE, rc=1, stderr="error: busy")
    h.runner.expect(DELETE)
    h.agent("stop").stop()


def test_start_fails_when_attrd_is_not_running(h):
    h.runner.expect(META, **META_TRUE)
    h.runner.expect([*SET, "green"], rc=102, stderr=NOT_CONNECTED)
    with pytest.raises(GenericError) as info:
        h.agent("start").start()
    assert "attrd is not running" in info.value.reason
    with pytest.raises(NotRunning):
        h.agent(interval=0).monitor()


def test_attrd_updater_missing_is_not_installed(h):
    h.runner.expect(META, **META_TRUE)
    h.runner.expect(SET, raises=CommandNotFound("attrd_updater is not installed"))
    with pytest.raises(NotInstalled):
        h.agent("start").start()


# -- monitor: colours and the cluster-wide rule ----------------------------------------------


def test_red_published_when_a_peer_is_green(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    expect_claim(h.runner, health=attrs(ha1="green", ha2="green"))
    h.runner.expect([*SET, "red"])
    h.runner.expect(CLAIM_DELETE)  # only once the red is out
    h.agent().monitor()
    assert h.state()["published"] == "red" and "claim" not in h.state()
    assert "virbr0 is down" in h.log.getvalue()
    # Still red at the next monitor: the peers are read again (they may have gone red too),
    # the attribute is not rewritten.
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="red", ha2="green"))
    h.agent().monitor()


def test_red_stays_red_when_the_peer_turns_yellow_and_steps_back_when_it_turns_red(h):
    test_red_published_when_a_peer_is_green(h)
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="red", ha2="yellow"))  # the refuge is sick too
    h.agent().monitor()  # nothing written: still red, the VMs keep moving to ha2
    assert h.state()["published"] == "red"
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="red", ha2="red"))
    h.runner.expect([*SET, "yellow"])
    note = h.agent().monitor()
    assert note is not None and "every other node is red or unknown (ha2 red)" in note


def test_red_capped_to_yellow_when_no_peer_is_green(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="red"))
    h.runner.expect([*SET, "yellow"])
    note = h.agent().monitor()  # the dispatcher writes it as the one exit reason of a success
    assert h.state()["published"] == "yellow"
    assert h.state()["health"]["capped"] is True
    assert note is not None and "red capped to yellow" in note and "ha2 red" in note
    assert "red capped to yellow" in h.log.getvalue()


def test_both_red_step_back_to_yellow(h):
    """Two hosts red at once (the claims make it unlikely; an older peer without them could):
    the next monitor caps this one."""
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    expect_claim(h.runner, health=attrs(ha1="green", ha2="green"))
    h.runner.expect([*SET, "red"])
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="red", ha2="red"))
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()


def test_three_nodes_one_offline(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 lost\n3 ha3 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green", ha3="yellow"))
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()
    three = "1 ha1 member\n2 ha2 member\n3 ha3 member\n"
    h.runner.expect(NODES, stdout=three)
    h.runner.expect(QUERY, stdout=attrs(ha1="yellow", ha2="green", ha3="yellow"))
    expect_claim(h.runner, members=three, health=attrs(ha1="yellow", ha2="green", ha3="yellow"))
    h.runner.expect([*SET, "red"])
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()


def test_a_rival_claim_makes_both_step_back_then_one_goes_red(h):
    """ha2 claimed red in the same moment: this node sees its claim and stays yellow; at the
    next monitor the rival's claim is gone (it turned red or stepped back too) and, ha2 green
    again, this node claims and turns red."""
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    expect_claim(h.runner, seen={"ha1": STAMP, "ha2": f"{WALL - 0.2:.3f}"}, health=attrs(ha1="green", ha2="green"))
    h.runner.expect(CLAIM_DELETE)
    h.runner.expect([*SET, "yellow"])
    note = h.agent().monitor()
    assert note is not None and "ha2 turning red at the same time" in note
    assert h.state()["published"] == "yellow" and "claim" not in h.state()
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="yellow", ha2="green"))
    expect_claim(h.runner, seen={"ha1": STAMP, "ha2": ""}, health=attrs(ha1="yellow", ha2="green"))
    h.runner.expect([*SET, "red"])
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()
    assert h.state()["published"] == "red"


def test_the_peer_turned_red_while_this_node_claimed(h):
    """The rival won: its red arrived before our claim came back; no green peer is left."""
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    expect_claim(h.runner, health=attrs(ha1="green", ha2="red"))
    h.runner.expect(CLAIM_DELETE)
    h.runner.expect([*SET, "yellow"])
    note = h.agent().monitor()
    assert note is not None and "no other node is green (ha2 red)" in note


def test_a_stale_claim_of_an_offline_or_old_monitor_is_ignored(h):
    h.started()
    h.break_bridge()
    three = "1 ha1 member\n2 ha2 member\n3 ha3 lost\n"
    h.runner.expect(NODES, stdout=three)
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    expect_claim(
        h.runner,
        members=three,
        seen={"ha1": STAMP, "ha2": f"{WALL - 600:.3f}", "ha3": STAMP},
        health=attrs(ha1="green", ha2="green"),
    )
    h.runner.expect([*SET, "red"])
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()
    assert h.state()["published"] == "red"


def test_claim_not_confirmed_by_attrd_stays_yellow(h, monkeypatch):
    import vmha.hypervisor_health.publish as publish_module

    monkeypatch.setattr(publish_module, "CLAIM_WAIT_S", 0.0)
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="green"))
    h.runner.expect(CLAIM_SET)
    h.runner.expect(CLAIM_QUERY, rc=105, stderr="attribute does not exist")
    h.runner.expect(CLAIM_DELETE)
    h.runner.expect([*SET, "yellow"])
    note = h.agent().monitor()
    assert note is not None and "did not confirm the red claim" in note


def test_a_claim_left_by_a_killed_monitor_is_withdrawn_first(h):
    h.started()
    st = h.state()
    st["claim"] = STAMP
    statefile.write(statefile.state_path(str(h.rsctmp), "HypervisorHealth", "hh:0"), st)
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()
    assert "claim" not in h.state()


def test_peers_unreadable_caps(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, rc=102, stderr="error: Could not connect to controller: Connection refused")
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()


def test_no_node_has_the_attribute_caps(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, rc=105, stderr="Could not query value of #health-vmha: attribute does not exist")
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()


def test_node_name_from_crm_node_when_pacemaker_does_not_pass_it(h):
    h.runner.expect(META, **META_TRUE)
    h.runner.expect([*SET, "green"])
    h.runner.expect(["crm_node", "--name"], stdout="ha7\n")
    h.runner.expect(query("cpu", "ha7"), **NO_SUCH)
    h.runner.expect(query("hv_memory", "ha7"), **NO_SUCH)
    h.runner.expect(query("host_memory", "ha7"), stdout="2048\n")
    h.runner.expect(util("cpu", 16, "ha7"))
    h.runner.expect(util("hv_memory", 2048, "ha7"))
    h.agent("start", on_node="").start()


def test_recovery_back_to_green_is_published(h):
    test_red_published_when_a_peer_is_green(h)
    (h.root / "sys/class/net/virbr0/operstate").write_text("up\n")
    h.runner.expect([*SET, "green"])
    h.agent().monitor()


# -- monitor: attrd failures -----------------------------------------------------------------


def test_monitor_fails_only_after_repeated_attrd_failures(h):
    h.started()
    h.break_bridge()
    for attempt in (1, 2, 3):
        h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
        h.runner.expect(QUERY, stdout=attrs(ha2="green"))
        expect_claim(h.runner, health=attrs(ha2="green"))
        h.runner.expect([*SET, "red"], rc=1, stderr="error: Timer expired")
        h.runner.expect(CLAIM_DELETE)
        if attempt < 3:
            h.agent().monitor()
            assert h.state()["attrd_failures"] == attempt
        else:
            with pytest.raises(GenericError) as info:
                h.agent().monitor()
            assert "3 times in a row" in info.value.reason


def test_a_success_resets_the_failure_count(h):
    h.started()
    h.break_bridge()
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha2="green"))
    expect_claim(h.runner, health=attrs(ha2="green"))
    h.runner.expect([*SET, "red"], rc=102, stderr=NOT_CONNECTED)
    h.runner.expect(CLAIM_DELETE)
    h.agent().monitor()
    expect_red(h.runner)
    h.agent().monitor()
    assert h.state()["attrd_failures"] == 0


def test_attrd_updater_removed_under_a_running_monitor(h):
    h.started()
    (h.root / "proc/meminfo").write_text("MemAvailable: 1024 kB\n")  # yellow: no peers read
    h.runner.expect(SET, raises=CommandNotFound("attrd_updater is not installed"))
    with pytest.raises(NotInstalled):
        h.agent().monitor()


# -- the checks through the agent ------------------------------------------------------------


def test_memory_headroom_yellow(h):
    # 16 GiB available, "test" may grow by 6 GiB: 10 GiB left.
    h.started(memory_headroom_mib=10 * 1024)
    h.runner.expect([*SET, "yellow"])
    h.agent(memory_headroom_mib=10 * 1024 + 1).monitor()
    assert "grow by 6144 MiB" in h.state()["health"]["findings"]


def test_named_pool_missing_is_red(h):
    h.started()
    expect_red(h.runner)
    h.agent(storage_pools="default-pool lab-pool").monitor()
    assert "lab-pool does not exist" in h.state()["health"]["findings"]


def test_a_filesystem_pool_is_measured_now_not_from_libvirts_last_refresh(h, monkeypatch):
    """test:///default's pool (type dir, /default-pool) is all free for libvirt; its
    filesystem says 1% free: red."""
    from vmha.hypervisor_health import host_facts

    seen = []

    def space(path, root, *, timeout):
        seen.append((path, root, timeout > 0))
        return 1000, 10

    h.started()
    monkeypatch.setattr(host_facts, "filesystem_space", space)
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha2="yellow"))
    h.runner.expect([*SET, "yellow"])  # red, capped: no green peer
    h.agent().monitor()
    assert seen[-1] == ("/default-pool", str(h.root), True)
    assert "storage pool default-pool has 1.0% free, below" in h.state()["health"]["findings"]


def test_a_filesystem_pool_that_hangs_is_red(h, monkeypatch):
    from vmha.hypervisor_health import host_facts

    def hung(path, root, *, timeout):
        raise TimeoutError(f"{path} did not answer")

    h.started()
    monkeypatch.setattr(host_facts, "filesystem_space", hung)
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha2="yellow"))
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()
    assert "default-pool: its filesystem /default-pool does not answer" in h.state()["health"]["findings"]


def test_explicit_interfaces_replace_the_derived_ones(h):
    h.break_bridge()
    (h.root / "sys/class/net/bond0").mkdir()
    (h.root / "sys/class/net/bond0/operstate").write_text("up\n")
    h.started(interfaces="bond0")


def test_checks_switched_off(h):
    h.break_bridge()
    h.started(check_interfaces="false")


def test_libvirt_down_is_red_and_skips_its_checks(h, tmp_path):
    h.started()
    down = f"qemu+unix:///system?socket={tmp_path}/no-such-socket"
    expect_red(h.runner)
    h.agent(hypervisor=down, hypervisor_grace="0").monitor()
    findings = h.state()["health"]["findings"]
    assert findings.startswith("red: libvirt at qemu+unix") and "storage" not in findings
    assert h.state()["utilization"] == {"cpu": "16", "hv_memory": "2048", "host_memory": "2048"}  # kept


def test_libvirt_down_is_yellow_through_its_grace_then_red_and_green_again(h, tmp_path):
    h.started()
    down = f"qemu+unix:///system?socket={tmp_path}/no-such-socket"
    h.runner.expect([*SET, "yellow"])
    h.agent(hypervisor=down, hypervisor_grace="30").monitor()
    assert "not answering for 0s of a 30s grace" in h.state()["health"]["findings"]
    h.clock.now += 29  # still within: yellow, nothing published again
    h.agent(hypervisor=down, hypervisor_grace="30").monitor()
    assert h.state()["health"]["level"] == "yellow"
    h.clock.now += 2  # 31 s down: red
    expect_red(h.runner)
    h.agent(hypervisor=down, hypervisor_grace="30").monitor()
    assert h.state()["health"]["findings"].startswith("red: libvirt at qemu+unix")
    assert isinstance(h.state()["hypervisor_down_since"], float)
    h.runner.expect([*SET, "green"])
    h.agent(hypervisor_grace="30").monitor()  # libvirt (the test driver) answers again
    assert h.state()["health"]["level"] == "green" and h.state()["hypervisor_down_since"] is None


def test_a_stuck_domain_list_is_no_finding_until_its_own_grace(h, monkeypatch):
    # libvirtd answers (its version, the node's size) but the domain list hangs on one
    # domain's lock (a frozen QEMU being destroyed): the host stays green, the memory check
    # waits, and only a list stuck past DOMAIN_LIST_GRACE_S counts as libvirtd not answering
    from vmha.hypervisor_health import assess
    from vmha.virt import host
    from vmha.virt.errors import HypervisorTimeout

    h.started()

    def stuck(conn, *, with_xml=False):
        raise HypervisorTimeout("list running domains: the hypervisor did not answer within 10.0s")

    monkeypatch.setattr(host, "running_domains", stuck)
    h.agent(hypervisor_grace="0").monitor()  # nothing published: still green
    assert h.state()["health"]["level"] == "green" and isinstance(h.state()["hypervisor_down_since"], float)
    assert "domain list is stuck for 0s" in h.log.getvalue()
    h.clock.now += assess.DOMAIN_LIST_GRACE_S + 1
    expect_red(h.runner)
    h.agent(hypervisor_grace="0").monitor()
    assert h.state()["health"]["findings"].startswith("red: libvirt at test:///default is not answering (list")
    monkeypatch.undo()
    h.runner.expect([*SET, "green"])
    h.agent(hypervisor_grace="0").monitor()  # the list answers again
    assert h.state()["health"]["level"] == "green" and h.state()["hypervisor_down_since"] is None


def test_libvirt_down_yellow_when_asked(h, tmp_path):
    h.started()
    h.runner.expect([*SET, "yellow"])
    h.agent(hypervisor=f"qemu+unix:///system?socket={tmp_path}/none", hypervisor_failure="yellow").monitor()


def test_edac_uncorrected_error_is_red_and_held(h):
    mc = h.root / "sys/devices/system/edac/mc/mc0"
    mc.mkdir(parents=True)
    (mc / "ue_count").write_text("4\n")  # errors from before the start: a baseline, not red
    (mc / "ce_count").write_text("0\n")
    h.started()
    (mc / "ue_count").write_text("5\n")
    expect_red(h.runner)
    h.agent().monitor()
    h.clock.now += 300  # no new error, still held
    h.runner.expect(NODES, stdout="1 ha1 member\n2 ha2 member\n")
    h.runner.expect(QUERY, stdout=attrs(ha2="green"))
    h.agent().monitor()
    assert "held for 3300s more" in h.state()["health"]["findings"]
    h.clock.now += 3301
    h.runner.expect([*SET, "green"])
    h.agent().monitor()


def test_disk_errors_yellow(h):
    dev = h.root / "sys/block/sda/device"
    dev.mkdir(parents=True)
    (dev / "ioerr_cnt").write_text("0x2\n")
    h.started()
    (dev / "ioerr_cnt").write_text("0x3\n")
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()


# -- utilization -----------------------------------------------------------------------------


def test_utilization_rewritten_only_for_the_changed_value(h):
    h.started()
    h.runner.expect(util("cpu", 14))
    h.agent(reserved_cpus=2).monitor()
    h.agent(reserved_cpus=2).monitor()


def test_start_reads_utilization_and_writes_only_what_differs(h):
    """Every CIB write aborts the transition in progress: a restart of the clone whose values
    are already in the CIB writes nothing."""
    h.runner.expect(META, **META_TRUE)
    h.runner.expect([*SET, "green"])
    h.runner.expect(query("cpu"), stdout="16\n")
    h.runner.expect(query("hv_memory"), stdout="4096\n")
    h.runner.expect(query("host_memory"), stdout="2048\n")
    h.runner.expect(util("hv_memory", 2048))
    h.agent("start").start()
    assert h.state()["utilization"] == {"cpu": "16", "hv_memory": "2048", "host_memory": "2048"}


def test_utilization_failure_is_retried_later_not_fatal(h):
    h.started()
    h.runner.expect(util("hv_memory", 1024), rc=105, stderr="Could not map name=ha1 to a UUID")
    h.agent(reserved_memory_mib=2048).monitor()
    h.agent(reserved_memory_mib=2048).monitor()  # within the retry pause: nothing runs
    h.clock.now += 61
    h.runner.expect(util("hv_memory", 1024))
    h.runner.expect(util("host_memory", 1024))
    h.agent(reserved_memory_mib=2048).monitor()


def test_start_warns_without_allow_unhealthy_nodes(h):
    """Pacemaker does not pass allow-unhealthy-nodes to the agent, and the scheduler reads it
    on the clone only (pcs 0.11's ``clone meta x=y`` puts it on the primitive): start reads
    the clone's own meta attributes from the CIB."""
    h.started()
    assert "allow-unhealthy-nodes" not in h.log.getvalue()
    on_primitive = (
        '<clone id="hh-clone"><primitive id="hh" class="ocf" provider="vmha" type="HypervisorHealth">'
        '<meta_attributes id="p"><nvpair id="b" name="allow-unhealthy-nodes" value="true"/>'
        "</meta_attributes></primitive></clone>"
    )
    for answer in ({"stdout": on_primitive}, {"rc": 105, "stderr": "Call cib_query failed: No such device or address"}):
        h.log.seek(0)
        h.log.truncate(0)
        h.runner.expect(META, **answer)
        h.runner.expect([*SET, "green"])
        h.runner.expect(query("cpu"), stdout="16\n")
        h.runner.expect(query("hv_memory"), stdout="2048\n")
        h.runner.expect(query("host_memory"), stdout="2048\n")
        h.agent("start").start()
        assert "set meta allow-unhealthy-nodes=true on this clone" in h.log.getvalue()
    h.log.seek(0)
    h.log.truncate(0)
    h.runner.expect(META, rc=102, stderr="Could not connect to the CIB")  # no cluster: no warning
    h.runner.expect([*SET, "green"])
    h.runner.expect(query("cpu"), stdout="16\n")
    h.runner.expect(query("hv_memory"), stdout="2048\n")
    h.runner.expect(query("host_memory"), stdout="2048\n")
    h.agent("start").start()
    assert "allow-unhealthy-nodes" not in h.log.getvalue()


def test_utilization_off(h):
    h.runner.expect(META, **META_TRUE)
    h.runner.expect([*SET, "green"])
    h.agent("start", set_utilization="false").start()


# -- validate, reload, metadata --------------------------------------------------------------


def test_validate_refuses_red_above_yellow(h):
    with pytest.raises(NotConfigured):
        h.agent("validate-all", pool_free_red_percent=20, pool_free_yellow_percent=10).validate_all()


def test_reload_agent_keeps_running(h):
    h.started()
    h.agent("reload-agent", reserved_cpus=4).reload_agent()
    assert "running" in h.state()


def test_spec_actions():
    names = [a.name for a in SPEC.actions if a.advertise]
    assert names == ["start", "stop", "monitor", "validate-all", "reload-agent"]
    assert {p.name for p in SPEC.params} >= {"hypervisor", "storage_pools", "interfaces", "reserved_cpus"}
    assert next(p for p in SPEC.params if p.name == "hypervisor").default == "qemu:///system"


@pytest.mark.parametrize("value", ["health-vmha", "#health vmha", "#health-\x07"])
def test_health_attribute_must_be_a_health_attribute(value):
    from vmha.ocf.params import ParamError

    param = next(p for p in PARAMS if p.name == "health_attribute")
    with pytest.raises(ParamError, match="health_attribute"):
        param.parse(value)
    assert param.parse("#health-lab") == "#health-lab"
    assert param.parse("") == "#health-vmha"


# -- parsing the cluster tools ---------------------------------------------------------------


def test_parse_attrd_query_pacemaker_2_1():
    text = 'name="#health-vmha" host="ha1" value="green"\nname="#health-vmha" host="ha2" value=""\n'
    assert parse_attrd_query(text) == {"ha1": "green", "ha2": ""}


def test_parse_attrd_query_unquoted_and_noise():
    text = "name=#health-vmha host=ha1 value=red\n\nsome warning without a host\n"
    assert parse_attrd_query(text) == {"ha1": "red"}
    assert parse_attrd_query("") == {}


def test_node_tools_query_and_members(scripted_runner):
    scripted_runner.expect(QUERY, stdout=attrs(ha1="green", ha2="yellow"))
    scripted_runner.expect(NODES, stdout="1 ha1 member\n2 ha2 lost\n")
    tools = ClusterTools(scripted_runner)
    assert tools.query_node_attribute(ATTR, timeout=5) == {"ha1": "green", "ha2": "yellow"}
    # attrd_updater 2.1 answers --all for the agent's own node only while it sees on_node
    assert "OCF_RESKEY_CRM_meta_on_node" in scripted_runner.calls[0].env_unset
    assert tools.members(timeout=5) == [("ha1", True), ("ha2", False)]


def reasons(h) -> list[tuple[str, ...]]:
    return [a[4:] for a in h.runner.argvs("attrd_updater") if a[: len(REASON_SET)] == tuple(REASON_SET)]


def test_the_reason_for_the_colour_is_published_privately_when_it_changes(h):
    """vmha status shows why a host is not green: a private attrd attribute (never in the
    CIB, so no transition), written at start, on a change, and not at every monitor."""
    h.started()
    assert reasons(h) == [("", "--private")]
    h.agent().monitor()
    assert len(reasons(h)) == 1  # unchanged: not rewritten
    h.break_bridge()
    h.runner.expect(NODES, stdout=TWO)
    h.runner.expect(QUERY, stdout=attrs(ha1="green", ha2="red"))
    h.runner.expect([*SET, "yellow"])
    h.agent().monitor()
    text, private = reasons(h)[-1]
    assert private == "--private" and "virbr0 is down" in text and "red capped to yellow" in text, text
    assert h.state()["reason_published"] == text


def test_a_reason_that_cannot_be_published_is_tried_again(h):
    h.started()
    h.runner = FakeRunner.permissive().answer(REASON_SET, rc=1, stderr="error: timed out")
    h.agent().monitor()
    h.break_bridge()
    h.agent().monitor()
    tried = [a for a in h.runner.argvs("attrd_updater") if a[: len(REASON_SET)] == tuple(REASON_SET)]
    assert len(tried) == 1 and h.state()["reason_published"] == ""  # the last one that was written
    h.agent().monitor()
    assert len([a for a in h.runner.argvs("attrd_updater") if a[: len(REASON_SET)] == tuple(REASON_SET)]) == 2
