"""vmha plan without Pacemaker: reading crm_simulate's XML answer, the placement it implies,
the verdict and the operator's explanations, the copy of the CIB, and the exit codes when a
tool is missing or too slow (a scripted runner stands in for every program)."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from vmha.ocf.runner import CommandNotFound, CommandTimedOut
from vmha.ops import plan
from vmha.ops.plan import Action, Cluster, Host, NodeStatus, Scenario, Simulated, Vm

from tests.fakes.runner import FakeRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import plan_scale  # noqa: E402 - bench/ is not a package: its dir goes on sys.path first

UTIL = ("cpu", "hv_memory", "host_memory")


# -- helpers --------------------------------------------------------------------------------


def answer(nodes: dict[str, str], resources: list[tuple[str, str, list[str], dict[str, str]]], actions: str) -> str:
    """crm_simulate --run --output-as=xml as Pacemaker 2.1.5 prints it: ``nodes`` name ->
    "online"/"standby"/"offline"; resources (id, agent, nodes running it, extra attributes)."""
    node_xml = "".join(
        f'<node name="{n}" id="{i}" online="{"false" if s == "offline" else "true"}" '
        f'standby="{"true" if s == "standby" else "false"}" maintenance="false" unclean="false" health="green"/>'
        for i, (n, s) in enumerate(nodes.items(), 1)
    )
    res_xml = ""
    for rid, agent, on, extra in resources:
        more = "".join(f' {k}="{v}"' for k, v in extra.items())
        inner = "".join(f'<node name="{n}" id="0" cached="true"/>' for n in on)
        active = "true" if on else "false"
        res_xml += f'<resource id="{rid}" resource_agent="{agent}" active="{active}"{more}>{inner}</resource>'
    return (
        '<pacemaker-result api-version="2.25" request="crm_simulate">'
        f"<cluster_status><nodes>{node_xml}</nodes><resources>{res_xml}</resources></cluster_status>"
        f"<actions>{actions}</actions>"
        '<status code="0" message="OK"/></pacemaker-result>'
    )


def cluster(
    hosts: dict[str, dict[str, int]],
    vms: dict[str, dict[str, int]],
    *,
    strategy: str = "balanced",
    others: dict[str, dict[str, int]] | None = None,
    virtual_domain: tuple[str, ...] = (),
) -> Cluster:
    found = {}
    for name, needs in vms.items():
        if name in virtual_domain:
            found[name] = Vm(name, "ocf:heartbeat:VirtualDomain", False, needs)
        else:
            found[name] = Vm(name, "ocf:vmha:VirtualMachine", True, needs)
    return Cluster(
        hosts={h: Host(h, cap, True) for h, cap in hosts.items()},
        vms=found,
        needs={**{n: dict(v) for n, v in vms.items()}, **(others or {})},
        placement_strategy=strategy,
        bans={},
        fail_counts=False,
    )


def sim(
    placed: dict[str, list[str]], actions: list[Action], nodes: tuple[str, ...] = ("ha1", "ha2", "ha3")
) -> Simulated:
    return Simulated(
        nodes={n: NodeStatus(n, True, False, False, False, "green") for n in nodes},
        placed=placed,
        target_stopped=set(),
        unmanaged=set(),
        actions=actions,
        fenced=[],
    )


def mem(n: int, cpu: int = 1) -> dict[str, int]:
    return {"cpu": cpu, "hv_memory": n}


# -- reading crm_simulate's answer ----------------------------------------------------------


def test_parse_simulation_reads_placement_actions_and_flags() -> None:
    text = answer(
        {"ha1": "online", "ha2": "standby"},
        [
            ("vm1", "ocf:vmha:VirtualMachine", ["ha1"], {}),
            ("vm2", "ocf:vmha:VirtualMachine", [], {"target_role": "Stopped"}),
            ("vm3", "ocf:heartbeat:VirtualDomain", ["ha2"], {"managed": "false"}),
            ("hh", "ocf:vmha:HypervisorHealth", ["ha1"], {}),
            ("hh", "ocf:vmha:HypervisorHealth", ["ha2"], {}),
        ],
        '<rsc_action action="move" resource="vm1" source="ha1" dest="ha2"/>'
        '<rsc_action action="stop" resource="hh:1" node="ha2" reason="node availability" blocked="true"/>',
    )
    got = plan.parse_simulation(text)
    assert got.placed == {"vm1": ["ha1"], "vm2": [], "vm3": ["ha2"], "hh": ["ha1", "ha2"]}
    assert got.target_stopped == {"vm2"} and got.unmanaged == {"vm3"}
    assert got.nodes["ha2"].standby and not got.nodes["ha1"].standby
    assert got.actions[0] == Action("move", "vm1", None, "ha1", "ha2", None, False)
    assert got.actions[1].primitive == "hh" and got.actions[1].blocked


def test_parse_simulation_refuses_what_is_not_an_answer() -> None:
    with pytest.raises(ValueError, match="not XML"):
        plan.parse_simulation("Transition Summary:\n")
    with pytest.raises(ValueError, match="no cluster_status"):
        plan.parse_simulation('<pacemaker-result><status code="0"/></pacemaker-result>')
    with pytest.raises(ValueError, match="code 65"):
        plan.parse_simulation('<pacemaker-result><status code="65" message="Invalid data"/></pacemaker-result>')


def test_placements_after_applies_the_transition_and_drops_the_failed_host() -> None:
    s = sim(
        {"vm1": ["ha1"], "vm2": ["ha1"], "vm3": ["ha2"], "vm4": ["ha1"], "hh": ["ha1", "ha2", "ha3"]},
        [
            Action("move", "vm1", source="ha1", dest="ha3"),
            Action("migrate", "vm3", source="ha2", dest="ha3"),
            Action("stop", "vm2", node="ha1", reason="node availability"),
            Action("move", "vm4", source="ha1", dest="ha2", blocked=True),  # will not happen
            Action("start", "hh:2", node="ha3"),
        ],
    )
    after = plan.placements_after(s, ["ha1"])
    assert after["vm1"] == Counter({"ha3": 1})
    assert after["vm2"] == Counter()
    assert after["vm3"] == Counter({"ha3": 1})
    assert after["vm4"] == Counter()  # its move is blocked and ha1 is gone
    assert after["hh"] == Counter({"ha2": 1, "ha3": 2})


# -- the verdict and the explanations -------------------------------------------------------


def test_a_vm_short_of_memory_is_explained_with_the_resource_the_host_and_the_shortfall() -> None:
    c = cluster(
        {"ha1": mem(16384, 16), "ha2": mem(6144, 16)},
        {"vm5": mem(2048), "vm7": mem(4096), "vm8": mem(2048)},
    )
    s = sim(
        {"vm5": ["ha1"], "vm7": ["ha1"], "vm8": ["ha2"]},
        [Action("move", "vm5", source="ha1", dest="ha2"), Action("stop", "vm7", node="ha1")],
        nodes=("ha1", "ha2"),
    )
    r = plan.judge(c, Scenario(failed=("ha1",)), s)
    by = {o.vm: o for o in r.outcomes}
    assert (by["vm5"].outcome, by["vm5"].source, by["vm5"].target) == ("moves", "ha1", "ha2")
    assert (by["vm8"].outcome, by["vm8"].target) == ("stays", "ha2")
    assert by["vm7"].outcome == "stopped" and by["vm7"].target is None
    # ha2: 6144 - 2048 (vm8) - 2048 (vm5, placed there) = 2048 free
    assert by["vm7"].reason == (
        "vm7 (cpu 1, hv_memory 4096 MiB) would stay stopped: the largest free hv_memory after the failure "
        "is 2048 MiB on ha2, short by 2048 MiB"
    )
    assert r.verdict == "not met"
    assert r.shortfalls == [
        {
            "attribute": "hv_memory",
            "unit": "MiB",
            "needed": 4096,
            "free_total": 2048,
            "largest_free": 2048,
            "largest_free_on": "ha2",
            "short_by": 2048,
            "vms": ["vm7"],
        }
    ]
    assert any("add at least 2048 MiB of hv_memory" in tip for tip in r.advice)


def test_free_capacity_counts_every_resource_with_utilization_not_only_vms() -> None:
    c = cluster({"ha1": {"cpu": 8}, "ha2": {"cpu": 8}}, {"vm1": {"cpu": 4}}, others={"db": {"cpu": 6}})
    s = sim({"vm1": ["ha1"], "db": ["ha2"]}, [Action("stop", "vm1", node="ha1")], nodes=("ha1", "ha2"))
    r = plan.judge(c, Scenario(failed=("ha1",)), s)
    assert r.outcomes[0].reason == (
        "vm1 (cpu 4) would stay stopped: the largest free cpu after the failure is 2 on ha2, short by 2"
    )


def test_a_host_that_declares_no_such_utilization_is_named() -> None:
    c = cluster({"ha1": mem(8192), "ha2": {"cpu": 4}}, {"vm1": {"host_memory": 1024}})
    s = sim({"vm1": ["ha1"]}, [Action("stop", "vm1", node="ha1")], nodes=("ha1", "ha2"))
    reason = plan.judge(c, Scenario(failed=("ha1",)), s).outcomes[0].reason or ""
    assert "is 0 MiB on ha2 (ha2 declares no host_memory utilization), short by 1024 MiB" in reason


def test_enough_of_each_but_not_on_one_host() -> None:
    c = cluster(
        {"ha1": mem(8192, 8), "ha2": mem(1024, 8), "ha3": mem(8192, 1)},
        {"vm1": mem(4096, 4)},
    )
    s = sim({"vm1": ["ha1"]}, [Action("stop", "vm1", node="ha1")])
    o = plan.judge(c, Scenario(failed=("ha1",)), s).outcomes[0]
    assert o.outcome == "stopped"
    assert "no host has all it needs at once" in (o.reason or "")
    assert "ha2 has hv_memory 1024 MiB free of 4096 MiB" in (o.reason or "")
    assert "ha3 has cpu 1 free of 4" in (o.reason or "")


def test_when_capacity_is_not_the_reason_it_says_so() -> None:
    roomy = {"ha1": mem(8192, 8), "ha2": mem(8192, 8)}
    s = sim({"vm1": ["ha1"]}, [Action("stop", "vm1", node="ha1")], nodes=("ha1", "ha2"))
    default = plan.judge(cluster(roomy, {"vm1": mem(1024)}, strategy="default"), Scenario(failed=("ha1",)), s)
    assert "not for capacity (placement-strategy is default)" in (default.outcomes[0].reason or "")
    assert default.shortfalls == []
    banned = cluster(roomy, {"vm1": mem(1024)})
    banned.bans["vm1"] = [("ha2", "ban-vm1-ha2")]
    r = plan.judge(banned, Scenario(failed=("ha1",)), s)
    assert "banned from ha2 by ban-vm1-ha2" in (r.outcomes[0].reason or "")
    assert r.verdict == "not met"


def test_blocked_recovery_and_no_host_left() -> None:
    c = cluster({"ha1": mem(8192), "ha2": mem(8192)}, {"vm1": mem(1024)})
    blocked = sim({"vm1": ["ha1"]}, [Action("stop", "vm1", node="ha1", reason="node is unclean", blocked=True)])
    o = plan.judge(c, Scenario(failed=("ha1",)), blocked).outcomes[0]
    assert o.outcome == "stopped" and "stop is blocked (node is unclean)" in (o.reason or "")
    gone = sim({"vm1": ["ha1"]}, [Action("stop", "vm1", node="ha1")], nodes=("ha1", "ha2"))
    gone.nodes["ha2"] = NodeStatus("ha2", True, True, False, False, "green")  # in standby already
    o = plan.judge(c, Scenario(failed=("ha1",)), gone).outcomes[0]
    assert o.reason == "vm1 would stay stopped: no host is left to run it (ha1 failed, ha2 in standby)"


def test_disabled_vms_do_not_count_and_virtualdomain_is_flagged() -> None:
    c = cluster({"ha1": mem(8192), "ha2": mem(8192)}, {"vm1": mem(1024), "vm2": mem(1024)}, virtual_domain=("vm2",))
    s = sim({"vm1": ["ha1"], "vm2": ["ha1"]}, [Action("move", "vm2", source="ha1", dest="ha2")], nodes=("ha1", "ha2"))
    s.target_stopped.add("vm1")
    r = plan.judge(c, Scenario(failed=("ha1",)), s)
    assert r.disabled == ["vm1"] and [o.vm for o in r.outcomes] == ["vm2"]
    assert r.verdict == "met"
    assert r.outcomes[0].to_json() == {
        "vm": "vm2",
        "from": "ha1",
        "to": "ha2",
        "outcome": "moves",
        "reason": "restarted after ha1 fails",
        "agent": "ocf:heartbeat:VirtualDomain",
        "managed_by_vmha": False,
    }
    assert "not managed by vmha" in plan.render_text(plan.Report(c, [r], r.disabled, []))


def test_live_migration_on_standby_and_natural_order() -> None:
    c = cluster({"ha1": mem(8192), "ha2": mem(8192)}, {"vm10": mem(1024), "vm9": mem(1024)})
    s = sim(
        {"vm10": ["ha1"], "vm9": ["ha2"]},
        [Action("migrate", "vm10", source="ha1", dest="ha2")],
        nodes=("ha1", "ha2"),
    )
    r = plan.judge(c, Scenario(standby=("ha1",)), s)
    assert [o.vm for o in r.outcomes] == ["vm9", "vm10"]
    assert (r.outcomes[1].outcome, r.outcomes[1].reason) == ("moves", "live migration")
    assert r.scenario.name == "ha1 in standby" and r.scenario.kind == "standby"


def test_report_exit_code_not_met_outranks_cannot_tell() -> None:
    c = cluster({"ha1": mem(1), "ha2": mem(1)}, {})
    met = plan.ScenarioResult(Scenario(failed=("ha1",)))
    unknown = plan.ScenarioResult(Scenario(failed=("ha2",)), error="crm_simulate did not finish within 1.0s")
    stopped = plan.ScenarioResult(
        Scenario(failed=("ha2",)), outcomes=[plan.VmOutcome("vm1", "ha2", None, "stopped", "x", "a", True)]
    )
    assert plan.Report(c, [met], [], []).exit_code == plan.MET
    assert plan.Report(c, [met, unknown], [], []).exit_code == plan.UNKNOWN
    assert plan.Report(c, [unknown, stopped], [], []).exit_code == plan.NOT_MET
    assert plan.Report(c, [], [], []).exit_code == plan.UNKNOWN


# -- scenarios and the copy -----------------------------------------------------------------


def small_cib(**kwargs: Any) -> bytes:
    hosts = [
        plan_scale.HostSpec("ha1", 8, 8192),
        plan_scale.HostSpec("ha2", 8, 8192),
        plan_scale.HostSpec("ha3", 8, 8192),
    ]
    vms = [plan_scale.VmSpec("vm1", 1, 1024, "ha1"), plan_scale.VmSpec("vm2", 1, 1024, "ha2")]
    return plan_scale.build_cib(hosts, vms, **kwargs)


def test_scenarios_asked_and_bad_input() -> None:
    c = plan.read_cluster(plan.parse_xml(small_cib(), "cib"))
    names = [s.name for s in plan.scenarios_for(c, None, [])[0]]
    assert names == ["ha1 fails", "ha2 fails", "ha3 fails"]
    assert [s.failed for s in plan.scenarios_for(c, 2, [])[0]] == [("ha1", "ha2"), ("ha1", "ha3"), ("ha2", "ha3")]
    only_standby = plan.scenarios_for(c, None, ["ha2"])[0]
    assert [(s.standby, s.failed) for s in only_standby] == [(("ha2",), ())]
    assert len(plan.scenarios_for(c, 1, ["ha2"])[0]) == 4
    for k in (0, 3):
        with pytest.raises(plan.BadInput, match=f"--failures {k}"):
            plan.scenarios_for(c, k, [])
    with pytest.raises(plan.BadInput, match="--standby ha9: no such host"):
        plan.scenarios_for(c, None, ["ha9"])


def test_an_offline_host_is_not_failed_again() -> None:
    hosts = [plan_scale.HostSpec("ha1", 8, 8192), plan_scale.HostSpec("ha2", 8, 8192, online=False)]
    hosts.append(plan_scale.HostSpec("ha3", 8, 8192))
    c = plan.read_cluster(plan.parse_xml(plan_scale.build_cib(hosts, []), "cib"))
    scenarios, notes = plan.scenarios_for(c, None, [])
    assert [s.failed for s in scenarios] == [("ha1",), ("ha3",)]
    assert notes == ["offline now, not failed again: ha2"]


def test_read_cluster_finds_vms_their_needs_and_host_capacity() -> None:
    vms = [
        plan_scale.VmSpec("vm1", 2, 2048, "ha1"),
        plan_scale.VmSpec("vd1", 1, 1024, "ha2", agent="VirtualDomain"),
    ]
    root = plan.parse_xml(
        plan_scale.build_cib([plan_scale.HostSpec("ha1", 8, 4096), plan_scale.HostSpec("ha2", 4, 2048)], vms), "x"
    )
    c = plan.read_cluster(root)
    assert set(c.vms) == {"vm1", "vd1"}  # not the fence device, not the HypervisorHealth clone
    assert c.vms["vm1"].ours and not c.vms["vd1"].ours
    assert c.vms["vm1"].needs == {"cpu": 2, "hv_memory": 2048, "host_memory": 2048}
    assert c.hosts["ha2"].capacity == {"cpu": 4, "hv_memory": 2048, "host_memory": 2048}
    assert c.placement_strategy == "balanced" and not c.fail_counts
    with pytest.raises(plan.BadInput, match="not a CIB"):
        plan.read_cluster(plan.parse_xml(b"<configuration/>", "x"))


def test_prepare_copy_drops_only_history_that_says_not_running() -> None:
    root = plan.parse_xml(small_cib(), "cib")
    ha1 = root.find("status/node_state[@uname='ha1']/lrm/lrm_resources")
    failed = ha1.find("lrm_resource[@id='vm2']")
    failed.find("lrm_rsc_op").set("rc-code", "1")  # a failed probe: kept
    done = plan.prepare_copy(root, plan.read_cluster(root))
    kept = {
        (ns.get("uname"), r.get("id"))
        for ns in root.iterfind("status/node_state")
        for r in ns.iterfind("lrm/lrm_resources/lrm_resource")
    }
    # started where they run (fence, the clone, the VMs), the failed probe; every "not running" probe gone
    assert kept == {
        ("ha1", "fence"),
        ("ha1", "hh"),
        ("ha2", "hh"),
        ("ha3", "hh"),
        ("ha1", "vm1"),
        ("ha2", "vm2"),
        ("ha1", "vm2"),
    }
    assert done == {"history_dropped": 5, "threshold_off": 1}
    props = {nv.get("name"): nv.get("value") for nv in root.iterfind("configuration/crm_config//nvpair")}
    assert props["enable-startup-probes"] == "false" and props["placement-strategy"] == "balanced"
    defaults = {nv.get("name"): nv.get("value") for nv in root.iterfind("configuration/rsc_defaults//nvpair")}
    assert defaults == {"resource-stickiness": "100", "migration-threshold": "0"}


def test_with_a_fail_count_the_migration_threshold_is_left_alone() -> None:
    from lxml import etree

    root = plan.parse_xml(small_cib(), "cib")
    ns = root.find("status/node_state[@uname='ha2']")
    attrs = etree.SubElement(etree.SubElement(ns, "transient_attributes", id="2"), "instance_attributes", id="st-2")
    etree.SubElement(attrs, "nvpair", id="fc", name="fail-count-vm2#monitor_10000", value="1")
    c = plan.read_cluster(root)
    assert c.fail_counts
    assert plan.prepare_copy(root, c)["threshold_off"] == 0
    assert root.find("configuration/rsc_defaults//nvpair[@name='migration-threshold']") is None


def test_scenario_cib_applies_the_scenario_and_leaves_the_tree_as_it_was() -> None:
    from lxml import etree

    root = plan.parse_xml(small_cib(), "cib")
    before = etree.tostring(root)
    failed = plan.parse_xml(plan.scenario_cib(root, Scenario(failed=("ha2",))), "copy")
    ns = failed.find("status/node_state[@uname='ha2']")
    assert (ns.get("in_ccm"), ns.get("crmd"), ns.get("join"), ns.get("expected")) == (
        "false",
        "online",
        "member",
        "member",
    )
    assert failed.find("status/node_state[@uname='ha2']/lrm") is not None  # history kept: it will be fenced
    assert failed.find("status/node_state[@uname='ha1']").get("in_ccm") == "true"
    standby = plan.parse_xml(plan.scenario_cib(root, Scenario(standby=("ha3",))), "copy")
    nv = standby.find("configuration/nodes/node[@uname='ha3']/instance_attributes/nvpair[@name='standby']")
    assert nv is not None and nv.get("value") == "on"
    assert etree.tostring(root) == before


# -- main: inputs, missing or slow tools ----------------------------------------------------


def run_main(argv: list[str], runner: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = plan.main(argv, runner=runner or FakeRunner.permissive(), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def cib_file(tmp_path: Path) -> Path:
    path = tmp_path / "cib.xml"
    path.write_bytes(small_cib())
    return path


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--failures", "0"], "--failures 0: must be at least 1 and below the number of hosts (3)"),
        (["--failures", "3"], "--failures 3: must be at least 1"),
        (["--standby", "nosuch"], "--standby nosuch: no such host (hosts: ha1, ha2, ha3)"),
        (["--timeout", "0"], "--timeout must be above 0"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--failures", "two"], "argument --failures: invalid int value: 'two'"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(cib_file: Path, args: list[str], complaint: str) -> None:
    runner = FakeRunner.permissive()
    rc, out, err = run_main(["--cib", str(cib_file), *args], runner)
    assert rc == plan.BAD_INPUT and out == ""
    assert len(err.splitlines()) == 1 and complaint in err, err
    assert runner.argvs("crm_simulate") == []  # nothing was simulated


def test_an_unreadable_or_broken_cib_file_is_bad_input(tmp_path: Path) -> None:
    rc, _, err = run_main(["--cib", str(tmp_path / "missing.xml")])
    assert (
        rc == plan.BAD_INPUT
        and err == f"vmha plan: cannot read {tmp_path / 'missing.xml'}: No such file or directory\n"
    )
    broken = tmp_path / "broken.xml"
    broken.write_text("<cib><configuration>")
    rc, _, err = run_main(["--cib", str(broken)])
    assert rc == plan.BAD_INPUT and "is not XML" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "raises",
    [
        CommandNotFound("crm_simulate is not installed (looked in /usr/sbin, /usr/bin, /sbin, /bin)"),
        CommandTimedOut("crm_simulate did not finish within 30.0s"),
    ],
)
def test_crm_simulate_missing_or_too_slow_is_exit_3(cib_file: Path, raises: Exception) -> None:
    runner = FakeRunner.permissive().answer(["crm_simulate"], raises=raises)
    rc, out, _ = run_main(["--cib", str(cib_file), "--json"], runner)
    assert rc == plan.UNKNOWN
    report = json.loads(out)
    assert report["verdict"] == "unknown" and report["exit_code"] == 3
    assert {s["error"] for s in report["scenarios"]} == {str(raises)}
    assert len(runner.argvs("crm_simulate")) == 3


def test_crm_simulate_that_fails_is_exit_3_with_its_complaint(cib_file: Path) -> None:
    runner = FakeRunner.permissive().answer(["crm_simulate"], rc=134, stderr="error: Triggered fatal assertion\n")
    rc, out, _ = run_main(["--cib", str(cib_file), "--jobs", "1"], runner)
    assert rc == plan.UNKNOWN
    assert "crm_simulate failed (rc 134): error: Triggered fatal assertion" in out
    assert "verdict: cannot tell: 3 of 3 scenarios got no answer (exit 3)" in out


def test_every_call_shares_one_deadline(cib_file: Path) -> None:
    runner = FakeRunner.permissive().answer(["crm_simulate"], raises=CommandTimedOut("slow"))
    run_main(["--cib", str(cib_file), "--timeout", "7", "--jobs", "1"], runner)
    timeouts = [c.timeout for c in runner.calls]
    assert timeouts and all(0 < t <= 7 for t in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)  # what is left, not 7 s each
    argv = runner.calls[0].argv
    assert argv[0] == "crm_simulate" and "--run" in argv and "--output-as=xml" in argv
    assert any(a.startswith("--xml-file=") for a in argv) and any(a.startswith("--save-output=") for a in argv)


def test_the_live_cib_comes_from_cibadmin_and_its_failure_is_exit_3() -> None:
    runner = FakeRunner()
    runner.expect(
        ["cibadmin", "--query"], rc=102, stderr="Could not connect to the CIB: Transport endpoint is not connected\n"
    )
    rc, out, err = run_main([], runner)
    assert rc == plan.UNKNOWN and out == ""
    assert err == (
        "vmha plan: cannot tell: cannot read the CIB: cibadmin failed (rc 102): "
        "Could not connect to the CIB: Transport endpoint is not connected\n"
    )
    runner.assert_done()


def test_main_end_to_end_on_a_scripted_answer(cib_file: Path) -> None:
    """The live path (cibadmin), one scenario answered, one timed out: the report says both."""
    moved = answer(
        {"ha1": "online", "ha2": "online", "ha3": "online"},
        [("vm1", "ocf:vmha:VirtualMachine", ["ha1"], {}), ("vm2", "ocf:vmha:VirtualMachine", ["ha2"], {})],
        '<rsc_action action="move" resource="vm1" source="ha1" dest="ha3"/>',
    )
    runner = FakeRunner()
    runner.expect(["cibadmin", "--query"], stdout=cib_file.read_text())
    runner.expect(["crm_simulate"], stdout=moved)
    runner.expect(["crm_simulate"], raises=CommandTimedOut("crm_simulate did not finish within 2.0s"))
    runner.expect(["crm_simulate"], stdout=moved.replace('"ha1" dest="ha3"', '"ha1" dest="ha1"'))
    rc, out, _ = run_main(["--jobs", "1", "--json"], runner)
    runner.assert_done()
    report = json.loads(out)
    assert rc == plan.UNKNOWN
    first = report["scenarios"][0]
    assert (first["name"], first["verdict"], first["failed"]) == ("ha1 fails", "met", ["ha1"])
    assert {v["vm"]: (v["outcome"], v["to"]) for v in first["vms"]} == {
        "vm1": ("moves", "ha3"),
        "vm2": ("stays", "ha2"),
    }
    assert report["scenarios"][1]["verdict"] == "unknown"
    assert report["hosts"] == ["ha1", "ha2", "ha3"] and report["vms"] == 2


def test_help_documents_the_exit_codes() -> None:
    rc, out, _ = run_main(["--help"])
    assert rc == 0 and out.startswith("usage: vmha plan")
    for line in ("0  N+1 met", "1  N+1 not met", "2  bad input", "3  cannot tell"):
        assert line in out
