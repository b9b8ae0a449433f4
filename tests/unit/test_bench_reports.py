"""bench/reports.py: a figure not measured is null, and ``ok``/the verdict is then not good.

No lab: the functions are fed the dicts the lab's Migration/Failover.to_json() and the
benches' own loops produce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import reports  # noqa: E402 - bench/ is not a package: its dir goes on sys.path first


def mig(migration_s: float | None = 2.7, *, live: bool | None = True, timing: str = "alerts") -> dict[str, Any]:
    """What scenarios.Migration.to_json() gives for a migration seen through the alerts."""
    steps = {"lead_in": 0.9, "migrate_to": 1.5, "migrate_from": 0.1, "stop": 0.05} if timing == "alerts" else None
    return {
        "vm": "vm1",
        "source": "ha1",
        "target": "ha2",
        "migration_s": migration_s,
        "timing": timing,
        "live": live,
        "steps_s": steps,
    }


def fo(
    failover_s: float | None = 4.0,
    *,
    fenced_s: float | None = 3.0,
    detection_s: float | None = 2.5,
    fenced: bool | None = True,
    vms: list[str] | None = None,
    was_dc: bool | None = False,
) -> dict[str, Any]:
    raw = {
        "victim": "ha2",
        "vms": ["vm1"] if vms is None else vms,
        "failover_s": failover_s,
        "detection_s": detection_s,
        "fenced_s": fenced_s,
        "fenced": fenced,
        "start_exec_s": {"vm1": 0.8},
        "timing": "alerts",
    }
    return reports.failover_round(raw, was_dc)


def summary(fos: list[dict[str, Any]], migs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    migs = [mig() for _ in fos] if migs is None else migs
    return reports.agent_summary(migs, fos, len(fos))


# -- general -----------------------------------------------------------------------------------


def test_importing_reports_needs_only_the_standard_library() -> None:
    # what reports.py pulled in that is not a built-in module or a file of the standard
    # library's directory (sys.stdlib_module_names is 3.10+; this runs on 3.9 too)
    code = (
        "import sys, sysconfig; before = set(sys.modules); sys.path.insert(0, sys.argv[1]); import reports\n"
        "std = sysconfig.get_paths()['stdlib']\n"
        "def outside(m):\n"
        "    f = getattr(sys.modules[m], '__file__', None)\n"
        "    return bool(f) and (not f.startswith(std) or 'packages' in f)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before if outside(m)})))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(BENCH)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert done.stdout.split() == ["reports"]


def test_median_skips_the_unmeasured_and_is_none_when_nothing_was() -> None:
    assert reports.median([3.0, None, 1.0, 2.0]) == 2.0
    assert reports.median([None, None]) is None
    assert reports.median([]) is None
    assert reports.median([1.0, 2.0], None) == 1.5


@pytest.mark.parametrize(("num", "den"), [(None, 2.0), (2.0, None), (None, None), (1.0, 0.0)])
def test_ratio_with_an_unknown_side_is_none(num: float | None, den: float | None) -> None:
    assert reports.ratio(num, den) is None


def test_ratio_and_difference_when_known() -> None:
    assert reports.ratio(1.0, 4.0) == 0.25
    assert reports.difference(4.0, 3.25) == 0.75
    assert reports.difference(4.0, None) is None


def test_all_true_tells_false_from_unknown() -> None:
    assert reports.all_true([True, True]) is True
    assert reports.all_true([True, None]) is None
    assert reports.all_true([None, False]) is False
    assert reports.all_true([]) is None


def test_count_true_is_none_when_nothing_was_observed() -> None:
    assert reports.count_true([None, None]) is None
    assert reports.count_true([False, None]) == 0
    assert reports.count_true([True, False, True]) == 2


def test_range_of_nothing_is_none_not_an_empty_list() -> None:
    assert reports.range_of([]) is None
    assert reports.range_of([0.5, 0.2, 0.9]) == [0.2, 0.9]


# -- failover.py -------------------------------------------------------------------------------


def test_migration_round_nulls_live_and_steps_without_the_alerts() -> None:
    polled = dict(mig(timing="polling"), live=False, steps_s={})  # what an older Migration gave
    out = reports.migration_round(polled)
    assert out["live"] is None
    assert out["steps_s"] is None
    assert out["migration_s"] == 2.7  # the poll still timed it
    assert reports.migration_agent_s(out) is None


def test_migration_round_keeps_what_the_alerts_showed() -> None:
    out = reports.migration_round(mig(live=False))
    assert out["live"] is False
    assert out["steps_s"]["migrate_to"] == 1.5
    assert reports.migration_agent_s(out) == 1.65  # every step but the lead-in


def test_migration_agent_s_is_none_when_a_step_has_no_run_time() -> None:
    m = mig()
    m["steps_s"]["stop"] = None
    assert reports.migration_agent_s(m) is None


def test_failover_round_with_no_vm_on_the_victim_measured_no_failover() -> None:
    out = fo(0.0, vms=[])  # Failover reported 0.0: nothing failed over
    assert out["failover_s"] is None
    assert out["agent_s"] is None
    assert reports.failover_round_ok(out) is False


def test_failover_round_derives_agent_share_and_stall() -> None:
    out = fo(4.0, fenced_s=3.1, detection_s=2.1)
    assert out["agent_s"] == 0.9
    assert out["scheduler_stall"] is True  # fenced 1.0 s after detection
    assert fo(4.0, fenced_s=2.2, detection_s=2.1)["scheduler_stall"] is False


def test_failover_round_stall_unknown_without_detection() -> None:
    out = fo(detection_s=None)
    assert out["scheduler_stall"] is None
    assert out["agent_s"] == 1.0  # failover_s and fenced_s are known


def test_a_round_without_failover_s_keeps_the_median_of_the_others_and_is_counted() -> None:
    s = summary([fo(4.0), fo(None), fo(6.0)])
    assert s["failover_s"] == 5.0
    assert s["rounds_measured"]["failover_s"] == 2
    assert s["rounds_measured"]["fenced_s"] == 3
    assert s["rounds_done"] == 3
    assert s["ok"] is False  # a round did not measure a safety figure


def test_agent_summary_ok_when_every_round_measured_everything() -> None:
    s = summary([fo(4.0), fo(4.2)])
    assert s["ok"] is True
    assert s["fenced"] is True
    assert s["migrations_live"] is True
    assert s["migration_agent_s"] == 1.65
    assert s["scheduler_stalls"] == 0


def test_agent_summary_ok_false_when_fenced_unknown() -> None:
    s = summary([fo(4.0), fo(4.0, fenced=None)])
    assert s["fenced"] is None  # not "False": the fence history could not be read
    assert s["rounds_measured"]["fenced"] == 1
    assert s["ok"] is False


def test_agent_summary_ok_false_when_fenced_false() -> None:
    s = summary([fo(4.0, fenced=False)])
    assert s["fenced"] is False
    assert s["ok"] is False


def test_agent_summary_ok_false_when_fenced_s_unknown() -> None:
    assert summary([fo(4.0, fenced_s=None)])["ok"] is False


def test_agent_summary_ok_false_when_no_migration_showed_whether_it_was_live() -> None:
    polled = [reports.migration_round(mig(timing="polling"))]
    s = summary([fo()], polled)
    assert s["migrations_live"] is None
    assert s["migration_migrate_to_s"] is None
    assert s["rounds_measured"]["migration_migrate_to_s"] == 0
    assert s["migration_s"] == 2.7
    assert s["ok"] is False


def test_agent_summary_ok_false_when_fewer_rounds_than_asked() -> None:
    s = reports.agent_summary([mig(), mig()], [fo()], 2)  # the second round's failover raised
    assert s["rounds_done"] == 1
    assert s["ok"] is False
    assert reports.agent_summary([], [], 3)["ok"] is False


def test_agent_summary_of_no_round_has_null_figures_not_zero() -> None:
    s = reports.agent_summary([], [], 5)
    for key in ("migration_s", "failover_s", "fenced", "migrations_live", "scheduler_stalls", "agent_s"):
        assert s[key] is None, key
    assert s["rounds_measured"]["failover_s"] == 0


def test_agent_summary_splits_by_dc_only_where_it_was_observed() -> None:
    s = summary([fo(3.0, was_dc=False), fo(5.0, was_dc=True), fo(9.0, was_dc=None)])
    assert s["failover_s_dc_survived"] == 3.0
    assert s["failover_s_dc_died"] == 5.0
    assert s["rounds_measured"]["victim_was_dc"] == 2


def test_double_run_verdict() -> None:
    assert reports.double_run_verdict(None, None) is None  # the checker never ran
    assert reports.double_run_verdict([], 0) is None  # it ran but never sampled
    assert reports.double_run_verdict([], None) is None
    assert reports.double_run_verdict([], 120) is False
    assert reports.double_run_verdict([{"uuid": "x"}], 0) is True


def good_agents() -> dict[str, Any]:
    return {"heartbeat": summary([fo(4.0)]), "vmha": summary([fo(3.0)])}


def test_failover_report_ok_false_when_the_checker_never_sampled() -> None:
    report = {"rounds": 1, **good_agents()}
    out = reports.failover_report(report, ["heartbeat", "vmha"], completed=True, double_runs=[], double_run_samples=0)
    assert out["double_run_seen"] is None
    assert out["ok"] is False
    sampled = reports.failover_report(
        report, ["heartbeat", "vmha"], completed=True, double_runs=[], double_run_samples=50
    )
    assert sampled["double_run_seen"] is False
    assert sampled["ok"] is True
    assert sampled["failover_s_ratio_vmha_over_heartbeat"] == 0.75


def test_failover_report_ok_false_on_a_double_run() -> None:
    out = reports.failover_report(
        {"rounds": 1, **good_agents()},
        ["heartbeat", "vmha"],
        completed=True,
        double_runs=[{"uuid": "x"}],
        double_run_samples=50,
    )
    assert out["double_run_seen"] is True
    assert out["ok"] is False


def test_failover_report_ok_false_when_a_requested_agent_was_not_measured() -> None:
    report = {"rounds": 1, "heartbeat": summary([fo(4.0)]), "vmha_missing": "not installed"}
    out = reports.failover_report(report, ["heartbeat", "vmha"], completed=True, double_runs=[], double_run_samples=50)
    assert out["vmha"] is None
    assert out["failover_s_ratio_vmha_over_heartbeat"] is None
    assert out["ok"] is False


def test_failover_report_has_the_same_keys_with_an_error() -> None:
    good = reports.failover_report(
        {"rounds": 1, "up": {"online_s": 9.0}, "down_problems": [], **good_agents()},
        ["heartbeat", "vmha"],
        completed=True,
        double_runs=[],
        double_run_samples=50,
    )
    failed = reports.failover_report(
        {"rounds": 1, "error": "lab did not come up"},
        ["heartbeat", "vmha"],
        completed=False,
        double_runs=None,
        double_run_samples=None,
    )
    assert set(failed) == set(good)
    assert failed["up"] is None
    assert failed["heartbeat"] is None
    assert failed["double_runs"] is None
    assert failed["ok"] is False
    assert good["error"] is None
    assert good["ok"] is True


def test_failover_report_not_completed_is_not_ok() -> None:
    out = reports.failover_report(
        {"rounds": 1, **good_agents()},
        ["heartbeat", "vmha"],
        completed=False,
        double_runs=[],
        double_run_samples=50,
    )
    assert out["ok"] is False


# -- guest_monitor.py --------------------------------------------------------------------------


def test_guest_monitor_report_ok() -> None:
    out = reports.guest_monitor_report("vm1", "ha1", 2, {0: [0.2, 0.3], 10: [0.4, 0.5]}, {0: [0, 0], 10: [0, 0]})
    assert out["ok"] is True
    assert out["guest_ping_added_s"] == 0.2
    assert out["exit_codes"] == {"0": [0], "10": [0]}
    assert out["depth10_range_s"] == [0.4, 0.5]


def test_guest_monitor_report_ok_false_on_a_nonzero_rc() -> None:
    out = reports.guest_monitor_report("vm1", "ha1", 2, {0: [0.2, 0.3], 10: [0.4, 0.5]}, {0: [0, 0], 10: [0, 1]})
    assert out["ok"] is False
    assert out["exit_codes"]["10"] == [0, 1]


def test_guest_monitor_report_on_an_error_has_null_figures_and_the_same_keys() -> None:
    good = reports.guest_monitor_report("vm1", "ha1", 2, {0: [0.2], 10: [0.4]}, {0: [0], 10: [0]})
    failed = reports.guest_monitor_report(None, None, 2, {0: [], 10: []}, {0: [], 10: []}, error="no lab is up")
    assert set(failed) == set(good)
    assert failed["ok"] is False
    for key in ("monitor_depth0_median_s", "guest_ping_added_s", "depth0_range_s", "depth10_range_s"):
        assert failed[key] is None, key
    assert failed["exit_codes"] == {"0": None, "10": None}
    assert failed["runs_measured"] == {"0": 0, "10": 0}


def test_guest_monitor_report_keeps_the_runs_done_before_an_error() -> None:
    out = reports.guest_monitor_report(
        "vm1", "ha1", 5, {0: [0.2, 0.3], 10: [0.4]}, {0: [0, 0], 10: [0]}, error="host ha1 is off"
    )
    assert out["ok"] is False
    assert out["runs_measured"] == {"0": 2, "10": 1}
    assert out["monitor_depth10_median_s"] == 0.4
    assert out["exit_codes"] == {"0": [0], "10": [0]}


# -- monitor.py --------------------------------------------------------------------------------


def test_sample_summary_with_one_run() -> None:
    s = reports.sample_summary([12.34], [10.0], [0])
    assert s == {"runs": 1, "median_ms": 12.3, "p10_ms": 12.3, "p90_ms": 12.3, "cpu_median_ms": 10.0, "rc": [0]}


def test_sample_summary_with_no_run_is_null() -> None:
    s = reports.sample_summary([], [], [])
    assert s["runs"] == 0
    assert all(s[k] is None for k in ("median_ms", "p10_ms", "p90_ms", "cpu_median_ms", "rc"))


def test_sample_summary_deciles_and_unknown_cpu() -> None:
    s = reports.sample_summary([float(x) for x in range(1, 11)], [None, 2.0, 4.0], [0, 1, 0])
    assert s["median_ms"] == 5.5
    assert s["p10_ms"] < s["median_ms"] < s["p90_ms"]
    assert s["cpu_median_ms"] == 3.0
    assert s["rc"] == [0, 1]


def test_median_ratio_uses_unrounded_medians_and_none_on_an_empty_side() -> None:
    assert reports.median_ratio([1.0, 2.0], [4.0, 4.0]) == 0.375
    assert reports.median_ratio([], [4.0]) is None
    assert reports.median_ratio([1.0], []) is None


def test_monitor_verdict() -> None:
    assert reports.monitor_verdict(False, None, 0.35) == "INVALID"
    assert reports.monitor_verdict(True, 0.1, 0.35) == "INVALID"
    assert reports.monitor_verdict(False, 0.35, 0.35) == "PASS"
    assert reports.monitor_verdict(False, 0.36, 0.35) == "MISS"


def test_monitor_scenario_pass_is_null_when_not_judged() -> None:
    agents = {"VirtualDomain": reports.sample_summary([200.0], [190.0], [0])}
    invalid = reports.monitor_scenario("s", "test:///x", agents, None, None, failed=False, goal=0.35)
    assert invalid["verdict"] == "INVALID"
    assert invalid["pass"] is None
    miss = reports.monitor_scenario("s", "test:///x", agents, 0.9, 0.8, failed=False, goal=0.35)
    assert (miss["verdict"], miss["pass"]) == ("MISS", False)
    ok = reports.monitor_scenario("s", "test:///x", agents, 0.3, 0.3, failed=False, goal=0.35)
    assert (ok["verdict"], ok["pass"]) == ("PASS", True)
    failed = reports.monitor_scenario("s", "test:///x", agents, 0.3, 0.3, failed=True, goal=0.35)
    assert (failed["verdict"], failed["pass"]) == ("INVALID", None)


def test_monitor_report_same_keys_with_an_error_and_nulls_for_the_unmeasured() -> None:
    common: dict[str, Any] = {
        "runs": 30,
        "warmup": 3,
        "goal": 0.35,
        "agents": {"VirtualDomain": "/vd", "VirtualMachine": "/vm"},
        "cpus": 2,
        "skipped": [],
    }
    good = reports.monitor_report(
        **common,
        revision="v1-3-gabc",
        load=[0.5, 0.61],
        baseline={"python -c pass": reports.sample_summary([15.0, 16.0], [14.0, 15.0], [0, 0])},
        scenarios=[{"name": "test driver, defaults", "verdict": "PASS"}],
        imports=[{"module": "libvirt", "cumulative_ms": 20.0, "self_ms": 5.0}],
        error=None,
    )
    failed = reports.monitor_report(
        **common, revision="", load=[0.5, None], baseline=None, scenarios=[], imports=[], error="cibadmin not found"
    )
    assert set(failed) == set(good)
    assert failed["revision"] is None  # "" (installed agent) is not a revision
    assert failed["load"] == [0.5, None]
    assert failed["baseline"] is None
    assert failed["imports"] is None  # asked but nothing listed: not "no imports"
    assert failed["error"] == "cibadmin not found"
    assert good["error"] is None
    assert good["load"] == [0.5, 0.61]


def test_agent_summary_ok_false_when_a_migration_was_not_live() -> None:
    """The guest rebooted: the move worked, but it was no live migration."""
    s = reports.agent_summary([mig(), mig(live=False)], [fo(), fo()], 2)
    assert s["migrations_live"] is False
    assert s["ok"] is False
