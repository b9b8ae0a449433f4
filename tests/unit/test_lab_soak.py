"""The soak's plan, its layer and recovery judgements and its report (vmha.lab.soak); the
soak itself runs against the real lab in tests/lab_soak."""

from __future__ import annotations

import pytest
from vmha.lab import soak
from vmha.lab.soak import Fault


def test_every_kind_once_per_round_before_any_repeats() -> None:
    planned = soak.plan(11, 25)
    n = len(soak.KINDS)
    assert len(planned) == 25
    for r in range(2):
        assert sorted(p.kind for p in planned[r * n : (r + 1) * n]) == sorted(soak.KINDS)
    assert len({p.kind for p in planned[2 * n :]}) == 25 - 2 * n  # the partial round repeats nothing
    assert [p.kind for p in planned[:n]] != [p.kind for p in planned[n : 2 * n]]  # rounds are shuffled anew


def test_a_seed_replays_the_same_faults_and_another_does_not() -> None:
    assert soak.plan(42, 10) == soak.plan(42, 10)
    assert soak.plan(42, 10) != soak.plan(43, 10)


def test_only_restricts_and_unknown_kinds_are_refused() -> None:
    planned = soak.plan(3, 6, ["qemu-killed", "storage-cut"])
    assert [p.kind for p in planned].count("qemu-killed") == 3
    assert {p.kind for p in planned} == {"qemu-killed", "storage-cut"}
    with pytest.raises(ValueError, match="unknown fault kind bogus"):
        soak.plan(3, 6, ["bogus"])


def test_moments_and_delays() -> None:
    planned = soak.plan(5, 200)
    assert {p.moment for p in planned} == set(soak.MOMENTS)
    assert all(p.kind in soak.MID_MIGRATION for p in planned if p.moment == "migrating")
    assert all(0.0 <= p.delay_s <= 3.0 for p in planned)


def test_layer_of() -> None:
    before = {"vm1": "ha1", "vm2": "ha2"}
    assert soak.layer_of(before, {}, ["vm1", "vm2"]) == "none"  # nothing started afresh (a live move)
    assert soak.layer_of(before, {"vm1": ["ha1"]}, ["vm1"]) == "vm"
    assert soak.layer_of(before, {"vm2": ["ha1"]}, ["vm1"]) == "none"  # not a VM that is judged
    # the highest of the VMs judged, and of each VM's starts
    assert soak.layer_of(before, {"vm1": ["ha1"], "vm2": ["ha1"]}, ["vm1", "vm2"]) == "host"
    assert soak.layer_of(before, {"vm1": ["ha1", "ha2"]}, ["vm1"]) == "host"
    # a host fenced for the recovery is the host layer, even if its VM came back on it
    assert soak.layer_of(before, {"vm1": ["ha1"]}, ["vm1"], fenced=True) == "host"


def test_judge_recovery_bound_and_lowest_layer() -> None:
    good = Fault("qemu-killed", "settled", "vm1", recovered_s=4.0, layer="vm", expected_layer="vm")
    soak.judge(good)
    assert good.ok
    too_high = Fault("qemu-killed", "settled", "vm1", recovered_s=4.0, layer="host", expected_layer="vm")
    soak.judge(too_high)
    assert too_high.problems == ["recovered at layer host, vm works"]
    slow = Fault("power-off", "settled", "vm1", recovered_s=500.0, layer="host", expected_layer="host")
    soak.judge(slow)
    assert slow.problems and "bound" in slow.problems[0]
    never = Fault("power-off", "settled", "vm1", layer="host", expected_layer="host")
    soak.judge(never)
    assert never.problems == ["not recovered"]


def _report(faults: list[Fault], **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "planned": len(faults),
        "writes": {"writes_lost": 0, "writes_acknowledged": 10},
        "double_runs": [],
        "sampled": True,
        "error": None,
    }
    args.update(kw)
    return soak.report(9, faults, **args)  # type: ignore[arg-type]


def test_report_ok_only_when_every_invariant_was_measured_and_held() -> None:
    f = Fault("qemu-killed", "settled", "vm1", at_s=1.0, recovered_s=4.0, layer="vm", expected_layer="vm")
    r = _report([f])
    assert r["ok"] is True and r["seed"] == 9 and r["double_run_seen"] is False
    assert r["faults"] == [f.to_json()] and r["faults"][0]["kind"] == "qemu-killed"  # type: ignore[index]
    assert _report([f], writes=None)["ok"] is False  # writes not judged
    assert _report([f], writes={"writes_lost": None})["ok"] is False
    assert _report([f], writes={"writes_lost": 1})["ok"] is False
    assert _report([f], sampled=False)["double_run_seen"] is None
    assert _report([f], sampled=False)["ok"] is False
    assert _report([f], double_runs=[{"vm": "vm1"}])["ok"] is False
    assert _report([f], planned=2)["ok"] is False  # a fault not reached
    assert _report([f], error="lab broke")["ok"] is False
    bad = Fault("power-off", "settled", "vm1", problems=["not recovered"])
    assert _report([f, bad])["ok"] is False
