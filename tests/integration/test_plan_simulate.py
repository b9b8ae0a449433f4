"""vmha plan against Pacemaker's real scheduler (/usr/sbin/crm_simulate), on CIBs of a
running cluster built by bench/plan_scale.py: the verdicts, the shortfall figures, the
standby question, and that the host failure vmha plan writes into its copy is the one
``crm_simulate --node-fail`` applies (same fencing, same transition)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vmha.ops import plan

ROOT = Path(__file__).resolve().parents[2]
CRM_SIMULATE = "/usr/sbin/crm_simulate"

pytestmark = pytest.mark.skipif(not os.access(CRM_SIMULATE, os.X_OK), reason="needs crm_simulate (make deps)")


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("plan_scale", ROOT / "bench" / "plan_scale.py")
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(ROOT / "bench"))  # its own "import reports"
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules["plan_scale"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


ps = _bench()


def run_plan(cib: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    rc = plan.main(["--cib", str(cib), "--json", *args], stdout=out, stderr=err)
    text = out.getvalue().strip()
    return rc, (json.loads(text) if text else {}), err.getvalue()


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in report["scenarios"] if s["name"] == name]
    assert len(found) == 1, [s["name"] for s in report["scenarios"]]
    return found[0]


def write(tmp_path: Path, hosts: list[Any], vms: list[Any], **kw: Any) -> Path:
    path = tmp_path / "cib.xml"
    path.write_bytes(ps.build_cib(hosts, vms, **kw))
    return path


def two_hosts(ha2_memory: int) -> tuple[list[Any], list[Any]]:
    hosts = [ps.HostSpec("ha1", 8, 8192), ps.HostSpec("ha2", 8, ha2_memory)]
    vms = [
        ps.VmSpec("vm1", 1, 2048, "ha1", prefers=(("ha1", 50),)),
        ps.VmSpec("vm2", 1, 2048, "ha1", prefers=(("ha1", 50),)),
        ps.VmSpec("vm3", 1, 1024, "ha2", prefers=(("ha2", 50),)),
    ]
    return hosts, vms


def test_every_vm_has_a_place_when_each_host_can_take_the_others(tmp_path: Path) -> None:
    rc, report, err = run_plan(write(tmp_path, *two_hosts(8192)))
    assert (rc, report["verdict"], err) == (0, "met", "")
    ha1 = scenario(report, "ha1 fails")
    moved = {v["vm"]: (v["from"], v["to"], v["outcome"]) for v in ha1["vms"]}
    assert moved["vm1"] == ("ha1", "ha2", "moves") and moved["vm2"] == ("ha1", "ha2", "moves")
    assert moved["vm3"] == ("ha2", "ha2", "stays")
    assert scenario(report, "ha2 fails")["verdict"] == "met"


def test_a_host_too_small_leaves_a_vm_stopped_and_says_by_how_much(tmp_path: Path) -> None:
    # ha2 has 3072 MiB: vm3 (1024) and one of vm1/vm2 (2048 each) fit, the other does not
    rc, report, _ = run_plan(write(tmp_path, *two_hosts(3072)))
    assert (rc, report["verdict"], report["exit_code"]) == (1, "not met", 1)
    ha1 = scenario(report, "ha1 fails")
    assert ha1["verdict"] == "not met"
    stopped = [v for v in ha1["vms"] if v["outcome"] == "stopped"]
    assert len(stopped) == 1 and stopped[0]["vm"] in ("vm1", "vm2") and stopped[0]["from"] == "ha1"
    assert "hv_memory" in stopped[0]["reason"] and "short by 2048 MiB" in stopped[0]["reason"]
    short = {s["attribute"]: s for s in ha1["shortfalls"]}
    assert short["hv_memory"]["needed"] == 2048 and short["hv_memory"]["free_total"] == 0
    assert short["hv_memory"]["short_by"] == 2048 and short["hv_memory"]["largest_free_on"] == "ha2"
    assert any("add at least 2048 MiB of hv_memory" in tip for tip in ha1["advice"])
    # the other way round fits: ha1 takes vm3 beside its own two
    assert scenario(report, "ha2 fails")["verdict"] == "met"


def test_standby_before_maintenance_asks_about_that_host_only(tmp_path: Path) -> None:
    cib = write(tmp_path, *two_hosts(3072))
    rc, report, _ = run_plan(cib, "--standby", "ha2")
    assert rc == 0 and [s["name"] for s in report["scenarios"]] == ["ha2 in standby"]
    rc, report, _ = run_plan(cib, "--standby", "ha1")
    standby = scenario(report, "ha1 in standby")
    assert rc == 1 and standby["kind"] == "standby" and standby["verdict"] == "not met"
    assert any("do not put ha1 in standby" in tip for tip in standby["advice"])


def test_two_failures_of_three_hosts(tmp_path: Path) -> None:
    hosts = [ps.HostSpec(f"ha{i}", 8, 8192) for i in (1, 2, 3)]
    vms = [ps.VmSpec(f"vm{i}", 1, 3072, f"ha{i}", prefers=((f"ha{i}", 50),)) for i in (1, 2, 3)]
    cib = write(tmp_path, hosts, vms)
    rc, report, _ = run_plan(cib)
    assert rc == 0 and len(report["scenarios"]) == 3
    # any two hosts lost: the third has 8192 MiB for three VMs of 3072: one stays stopped
    rc, report, _ = run_plan(cib, "--failures", "2")
    assert rc == 1 and len(report["scenarios"]) == 3
    for s in report["scenarios"]:
        assert len(s["failed"]) == 2 and [v["outcome"] for v in s["vms"]].count("stopped") == 1, s


def test_placement_strategy_default_ignores_capacity_as_pacemaker_does(tmp_path: Path) -> None:
    rc, report, _ = run_plan(write(tmp_path, *two_hosts(1024), placement_strategy="default"))
    assert rc == 0 and report["placement_strategy"] == "default"


def test_a_ban_is_explained_as_not_capacity(tmp_path: Path) -> None:
    hosts, vms = two_hosts(8192)
    vms[0] = ps.VmSpec("vm1", 1, 2048, "ha1", prefers=(("ha1", 50), ("ha2", "-INFINITY")))
    rc, report, _ = run_plan(write(tmp_path, hosts, vms))
    stopped = [v for v in scenario(report, "ha1 fails")["vms"] if v["outcome"] == "stopped"]
    assert rc == 1 and [v["vm"] for v in stopped] == ["vm1"]
    assert stopped[0]["reason"].endswith("it would fit, but is banned from ha2 by loc-vm1-ha2"), stopped[0]["reason"]


def _transition(saved: Path) -> set[str]:
    """The actions crm_simulate plans for a CIB (its --run answer), as comparable strings."""
    done = subprocess.run(  # noqa: S603 - a fixed argument list
        [CRM_SIMULATE, f"--xml-file={saved}", "--run", "--output-as=xml", f"--save-output={saved}.out"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    sim = plan.parse_simulation(done.stdout)
    return {f"{a.action} {a.resource} {a.node} {a.source} {a.dest}" for a in sim.actions} | {
        f"fence {n}" for n in sim.fenced
    }


def test_the_failure_written_into_the_copy_is_crm_simulates_node_fail(tmp_path: Path) -> None:
    cib = write(tmp_path, *two_hosts(8192))
    # crm_simulate's own: --node-fail applied and saved, then the transition of what it saved
    theirs = tmp_path / "theirs.xml"
    subprocess.run(  # noqa: S603 - a fixed argument list
        [CRM_SIMULATE, f"--xml-file={cib}", "--node-fail=ha1", f"--save-output={theirs}", "--output-as=xml"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    # ours: the same CIB with fail_host's edit
    root = plan.parse_xml(cib.read_bytes(), "cib")
    ours = tmp_path / "ours.xml"
    ours.write_bytes(plan.scenario_cib(root, plan.Scenario(failed=("ha1",))))
    expected = _transition(theirs)
    assert "fence ha1" in expected and any(a.startswith(("move vm1", "recover vm1", "start vm1")) for a in expected)
    assert _transition(ours) == expected


def test_the_prepared_copy_changes_no_placement(tmp_path: Path) -> None:
    hosts = [ps.HostSpec(f"ha{i}", 16, 32768) for i in (1, 2, 3, 4)]
    vms = [
        ps.VmSpec(f"vm{i}", 1 + i % 3, 1024 * (1 + i % 4), f"ha{1 + i % 4}", prefers=((f"ha{1 + i % 4}", 50),))
        for i in range(24)
    ]
    cib = write(tmp_path, hosts, vms)
    for host in ("ha1", "ha3"):
        as_read = plan.parse_xml(cib.read_bytes(), "cib")
        raw = tmp_path / f"raw-{host}.xml"
        raw.write_bytes(plan.scenario_cib(as_read, plan.Scenario(failed=(host,))))
        prepared = plan.parse_xml(cib.read_bytes(), "cib")
        done = plan.prepare_copy(prepared, plan.read_cluster(prepared))
        assert done["history_dropped"] > 0
        cooked = tmp_path / f"cooked-{host}.xml"
        cooked.write_bytes(plan.scenario_cib(prepared, plan.Scenario(failed=(host,))))
        assert _transition(cooked) == _transition(raw)


def test_the_vmha_command_runs_it(tmp_path: Path) -> None:
    cib = write(tmp_path, *two_hosts(3072))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT / "lib"), "LC_ALL": "C"}
    done = subprocess.run(  # noqa: S603 - our own command
        ["/usr/bin/python3", "-m", "vmha.cli", "plan", "--cib", str(cib)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "ha1 fails: N+1 NOT MET" in done.stdout and "ha2 fails: N+1 met" in done.stdout
    assert done.stdout.rstrip().endswith("(exit 1)")
