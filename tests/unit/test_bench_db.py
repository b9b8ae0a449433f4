"""bench/db_failover.py's figures: a round not measured is null and not ok, lost rows are
summed only when every round counted them, the ratio of medians is null with a side unknown.

No lab: the functions are fed what vmha.lab.database.DbFailover.to_json() gives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import db_failover as dbf  # noqa: E402 - bench/ is not a package: its dir goes on sys.path first


def measured(serving: float | None = 20.0, lost: int | None = 0, acked: int = 100) -> dict[str, Any]:
    return {
        "victim": "ha1",
        "served_from": "ha2" if serving is not None else None,
        "db_serving_again_s": serving,
        "committed_rows_acknowledged": acked,
        "committed_rows_lost": lost,
        "lost_numbers": [],
        "failover": {"failover_s": 7.5, "detection_s": 2.0, "fenced_s": 3.1},
    }


def rounds(*got: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [dbf.round_result(i, g, None if g else "boom") for i, g in enumerate(got, start=1)]


def final(vmha: dict[str, Any] | None, heartbeat: dict[str, Any] | None, n: int) -> dict[str, Any]:
    base = {"rounds": n, "vmha": vmha, "heartbeat": heartbeat}
    return dbf.report(base, ["heartbeat", "vmha"], completed=True, double_runs=[], double_run_samples=10)


def test_medians_spread_and_sums() -> None:
    s = dbf.summary(rounds(measured(18.0), measured(22.0, acked=50), measured(20.0)))
    assert s["db_serving_again_s"] == 20.0 and s["db_serving_again_s_spread"] == [18.0, 22.0]
    assert s["rounds_measured"] == 3 and s["committed_rows_acknowledged"] == 250 and s["committed_rows_lost"] == 0
    assert s["vm_failover_s"] == 7.5


def test_a_round_that_raised_is_null_and_makes_lost_unknown() -> None:
    rd = rounds(measured(), None)
    assert rd[1]["db_serving_again_s"] is None and rd[1]["committed_rows_lost"] is None and rd[1]["error"] == "boom"
    s = dbf.summary(rd)
    assert s["rounds_measured"] == 1 and s["committed_rows_lost"] is None and s["committed_rows_acknowledged"] is None
    assert dbf.summary([])["db_serving_again_s"] is None and dbf.summary([])["db_serving_again_s_spread"] is None


def test_ok_needs_every_vmha_round_measured_and_nothing_lost() -> None:
    good = dbf.summary(rounds(measured(), measured()))
    assert final(good, None, 2)["ok"] is True
    assert final(dbf.summary(rounds(measured(), measured(lost=1))), None, 2)["ok"] is False
    assert final(dbf.summary(rounds(measured(), measured(lost=None))), None, 2)["ok"] is False
    assert final(dbf.summary(rounds(measured(), None)), None, 2)["ok"] is False
    assert final(dbf.summary(rounds(measured(acked=0))), None, 1)["ok"] is False
    assert final(good, None, 3)["ok"] is False  # a round missing


def test_ratio_of_medians_null_with_a_side_unknown() -> None:
    ours = dbf.summary(rounds(measured(10.0)))
    theirs = dbf.summary(rounds(measured(40.0)))
    assert final(ours, theirs, 1)[dbf.RATIO_KEY] == 0.25
    assert final(ours, dbf.summary(rounds(None)), 1)[dbf.RATIO_KEY] is None
