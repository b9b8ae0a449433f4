"""bench/storage_failover.py's figures: a round not measured is null, a ratio with an unknown
side is null, lost records are counted once, and ``ok`` needs every vmha round measured and
losing nothing.

No lab: the functions are fed what vmcp.StorageLoss.to_json() gives and what the bench's own
loop makes of a round that raised.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import storage_failover as sf  # noqa: E402 - bench/ is not a package: its dir goes on sys.path first

MODES = ["cut", "hang"]


def loss(
    failover_s: float | None = 20.0,
    *,
    red_s: float | None = 4.0,
    lost: dict[str, int | None] | None = None,
    timing: str = "alerts",
    stop_failed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What StorageLoss.to_json() gives; ``lost``: vm -> its writer's lost count (None: the
    writer was not measured, and then the total is None too, as scenarios.written has it)."""
    lost = {"he1": 0} if lost is None else lost
    by_vm = {vm: None if n is None else {"writes_acknowledged": 50, "writes_lost": n} for vm, n in lost.items()}
    total = None if any(n is None for n in lost.values()) else sum(lost.values())  # type: ignore[arg-type]
    return {
        "host": "ha1",
        "mode": "cut",
        "vms": list(lost),
        "storage_failover_s": failover_s,
        "red_s": red_s,
        "per_vm_s": {vm: failover_s for vm in lost},
        "moved_to": {vm: "ha2" for vm in lost},
        "guest_states": {vm: "paused (I/O error)" for vm in lost},
        "stops": {vm: [] for vm in lost},
        "fenced": True,
        "fenced_by_cluster_s": None,
        "stop_failed": stop_failed or {},
        "rejoin_s": 9.0,
        "writes": {
            "writes_acknowledged": None if total is None else 50 * len(lost),
            "writes_lost": total,
            "writes_by_vm": by_vm,
        },
        "timing": timing,
    }


def rd(r: int, mode: str, got: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    return sf.round_result(r, mode, "ha1", got, error)


def good(failover_s: float = 20.0) -> dict[str, Any]:
    """An agent whose one round per mode was measured and lost nothing."""
    return sf.summary([rd(1, "cut", loss(failover_s)), rd(1, "hang", loss(failover_s * 2))], MODES)


def final(
    agents: dict[str, Any], *, samples: int | None = 50, rounds: int = 1, up: Any = None, **kw: Any
) -> dict[str, Any]:
    base = {"rounds": rounds, "error": None, "up": up, "down_problems": [], **agents}
    kw.setdefault("completed", True)
    kw.setdefault("double_runs", [])
    return sf.report(base, ["heartbeat", "vmha"], MODES, double_run_samples=samples, **kw)


# -- one round -------------------------------------------------------------------------------


def test_a_round_that_raised_has_every_key_and_nothing_measured() -> None:
    measured = rd(1, "hang", loss())
    failed = rd(1, "hang", None, "the VMs of ha1 did not leave 180s after its storage path was hang")
    assert set(failed) == set(measured)
    assert failed["error"].startswith("the VMs of ha1")
    assert failed["host"] == "ha1"
    for key in ("storage_failover_s", "red_s", "writes_lost", "per_vm_s", "stop_failed", "vms", "writes_lost_by_vm"):
        assert failed[key] is None, key  # not {} / []: nothing was observed
    assert measured["error"] is None
    assert measured["storage_failover_s"] == 20.0
    assert measured["writes_lost"] == 0
    assert measured["writes_lost_by_vm"] == {"he1": 0}


def test_stop_failed_is_unknown_without_the_alerts() -> None:
    assert rd(1, "cut", loss())["stop_failed"] == {}  # seen through the alerts: none failed
    polled = rd(1, "cut", loss(timing="polling"))
    assert polled["stop_failed"] is None
    assert polled["ops_on_host"] is None
    assert polled["storage_failover_s"] == 20.0  # the poll still timed it


def test_a_writer_not_measured_leaves_the_round_s_writes_unknown() -> None:
    out = rd(1, "cut", loss(lost={"he1": 0, "he2": None}))
    assert out["writes_lost"] is None
    assert out["writes_lost_by_vm"] == {"he1": 0, "he2": None}


# -- one agent -------------------------------------------------------------------------------


def test_median_over_the_measured_rounds_and_how_many_did() -> None:
    rounds = [
        rd(1, "cut", loss(10.0, red_s=3.0)),
        rd(1, "hang", None, "not back"),
        rd(2, "cut", loss(30.0, red_s=5.0)),
        rd(2, "hang", loss(25.0, red_s=None)),
        rd(3, "cut", loss(14.0, red_s=4.0)),
        rd(3, "hang", None, "not back"),
    ]
    s = sf.summary(rounds, MODES)
    assert s["rounds_done"] == 6
    assert s["error"] is None
    assert s["cut"]["storage_failover_s"] == 14.0
    assert s["cut"]["red_s"] == 4.0
    assert s["cut"]["rounds_measured"] == 3
    assert s["hang"]["storage_failover_s"] == 25.0
    assert s["hang"]["red_s"] is None  # no round saw the host turn red
    assert s["hang"]["rounds_measured"] == 1
    assert s["hang"]["rounds_done"] == 3
    assert [r["round"] for r in s["hang"]["rounds"]] == [1, 2, 3]


def test_even_count_median_is_the_mean_of_the_middle_two() -> None:
    s = sf.summary([rd(1, "cut", loss(10.0)), rd(2, "cut", loss(13.0))], ["cut"])
    assert s["cut"]["storage_failover_s"] == 11.5


def test_a_mode_with_no_round_has_null_figures_not_zero() -> None:
    s = sf.summary([], MODES, "the cluster did not settle")
    assert s["error"] == "the cluster did not settle"
    for mode in MODES:
        assert s[mode]["storage_failover_s"] is None
        assert s[mode]["red_s"] is None
        assert s[mode]["writes_lost"] is None  # nothing was counted: not "0 lost"
        assert s[mode]["rounds_measured"] == 0
        assert s[mode]["rounds"] == []


def test_writes_lost_total_is_null_when_a_round_s_is_unknown() -> None:
    s = sf.summary([rd(1, "cut", loss()), rd(1, "hang", None, "not back"), rd(2, "cut", loss())], MODES)
    assert s["cut"]["writes_lost"] == 0
    assert s["hang"]["writes_lost"] is None


def test_a_lost_record_is_counted_once_in_the_mode_whose_round_first_showed_it() -> None:
    # the counts are over each VM's life: he1's 2 lost records in the hang round show again
    # in the next cut round, which lost nothing more for he1 but 1 for he2
    rounds = [
        rd(1, "cut", loss(lost={"he1": 0})),
        rd(1, "hang", loss(lost={"he1": 2, "he2": 0})),
        rd(2, "cut", loss(lost={"he1": 2, "he2": 1})),
    ]
    assert sf.new_losses(rounds) == [0, 2, 1]
    s = sf.summary(rounds, MODES)
    assert s["hang"]["writes_lost"] == 2
    assert s["cut"]["writes_lost"] == 1
    assert s["cut"]["rounds"][1]["writes_lost"] == 3  # the round itself keeps what the lab said


def test_new_losses_never_negative_and_unknown_stays_unknown() -> None:
    rounds = [
        rd(1, "cut", loss(lost={"he1": 3})),
        rd(2, "cut", loss(lost={"he1": 1})),  # a lost record left the writer's window of slots
        rd(3, "cut", loss(lost={"he1": 3, "he2": None})),
        rd(4, "cut", None, "not back"),
    ]
    assert sf.new_losses(rounds) == [3, 0, None, None]


# -- ok --------------------------------------------------------------------------------------


def test_ok_when_every_vmha_round_was_measured_and_lost_nothing() -> None:
    out = final({"heartbeat": good(40.0), "vmha": good(20.0)})
    assert out["ok"] is True
    assert out["double_run_seen"] is False
    assert out[sf.RATIO_KEY] == {"cut": 0.5, "hang": 0.5}


def test_heartbeat_rounds_not_back_are_a_finding_not_a_failure() -> None:
    hb = sf.summary([rd(1, "cut", loss(40.0)), rd(1, "hang", None, "not back within 180s")], MODES)
    out = final({"heartbeat": hb, "vmha": good(20.0)})
    assert out["ok"] is True
    assert out["heartbeat"]["hang"]["rounds"][0]["error"] == "not back within 180s"
    assert out[sf.RATIO_KEY] == {"cut": 0.5, "hang": None}  # heartbeat's side unknown


@pytest.mark.parametrize("lost", [None, 1])
def test_ok_false_when_a_vmha_round_lost_a_record_or_did_not_count(lost: int | None) -> None:
    vm = sf.summary([rd(1, "cut", loss(20.0)), rd(1, "hang", loss(20.0, lost={"vm1": lost}))], MODES)
    out = final({"heartbeat": good(40.0), "vmha": vm})
    assert out["ok"] is False
    assert out["vmha"]["hang"]["writes_lost"] == lost
    assert out[sf.RATIO_KEY]["hang"] == 0.25  # measured all the same


def test_ok_false_when_a_vmha_round_was_not_measured() -> None:
    vm = sf.summary([rd(1, "cut", loss(20.0)), rd(1, "hang", None, "not back")], MODES)
    out = final({"heartbeat": good(40.0), "vmha": vm})
    assert out["ok"] is False
    assert out[sf.RATIO_KEY] == {"cut": 0.5, "hang": None}  # vmha's side unknown


def test_ok_false_when_vmha_did_fewer_rounds_than_asked_or_stopped() -> None:
    assert final({"heartbeat": good(), "vmha": good()}, rounds=2)["ok"] is False
    stopped = dict(good(), error="vmha: after round 1 (hang) failed: the cluster did not settle")
    assert final({"heartbeat": good(), "vmha": stopped})["ok"] is False


def test_ok_false_without_vmha() -> None:
    out = sf.report(
        {"rounds": 1, "heartbeat": good()},
        ["heartbeat"],
        MODES,
        completed=True,
        double_runs=[],
        double_run_samples=50,
    )
    assert out["ok"] is False
    assert "vmha" not in out
    assert out[sf.RATIO_KEY] == {"cut": None, "hang": None}


def test_ok_false_on_a_double_run_or_a_checker_that_never_sampled() -> None:
    agents = {"heartbeat": good(40.0), "vmha": good(20.0)}
    assert final(agents, double_runs=[{"uuid": "x", "name": "he1"}])["double_run_seen"] is True
    assert final(agents, double_runs=[{"uuid": "x", "name": "he1"}])["ok"] is False
    never = final(agents, samples=0)
    assert never["double_run_seen"] is None
    assert never["ok"] is False
    assert final(agents, double_runs=None, samples=None)["ok"] is False


def test_the_same_keys_when_it_stopped_on_an_error() -> None:
    measured = final({"heartbeat": good(40.0), "vmha": good(20.0)}, up={"online_s": 9.0})
    failed = sf.report(
        {"rounds": 1, "error": "the lab needs root"},
        ["heartbeat", "vmha"],
        MODES,
        completed=False,
        double_runs=None,
        double_run_samples=None,
    )
    assert set(failed) == set(measured)
    assert failed["ok"] is False
    assert failed["heartbeat"] is None
    assert failed["vmha"] is None
    assert failed["up"] is None
    assert failed["down_problems"] is None
    assert failed["double_run_seen"] is None
    assert failed[sf.RATIO_KEY] == {"cut": None, "hang": None}
    assert failed["modes"] == MODES


def test_not_completed_is_not_ok() -> None:
    assert final({"heartbeat": good(40.0), "vmha": good(20.0)}, completed=False)["ok"] is False
