"""The figures the benches print, built from their per-round results: pure, no lab, no I/O.

One rule for every JSON object a bench prints: a figure that was not measured is ``None``
(JSON ``null``), never 0, 0.0, False, "" or an empty list that reads as "none seen".  A
median over rounds that did not all measure it says how many did (``rounds_measured``); a
ratio or a difference with an unknown side is ``None``; a verdict that was not observed is
``None``, and ``ok`` is only true when every safety figure was measured and is good.

failover.py, guest_monitor.py and monitor.py import this module (``bench/`` is their
``sys.path[0]``); tests/unit/test_bench_reports.py tests it without a lab.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STALL_S = 0.8  # fencing done this long after detection: Pacemaker 2.1's scheduler sleep (failover.py)

# the figures of a failover round without which the round says nothing about safety
FAILOVER_SAFETY = ("failover_s", "fenced_s", "fenced")
FAILOVER_RATIOS = ("failover_s", "migration_s", "agent_s", "migration_agent_s", "migration_migrate_to_s")


# -- general ---------------------------------------------------------------------------------


def known(values: Iterable[Any]) -> list[Any]:
    return [v for v in values if v is not None]


def median(values: Iterable[float | None], digits: int | None = 3) -> float | None:
    """Median of the measured values (``None`` = not measured); ``None`` when none was.
    ``digits=None``: not rounded (for a ratio of medians)."""
    got: list[float] = known(values)
    if not got:
        return None
    mid = float(statistics.median(got))
    return mid if digits is None else round(mid, digits)


def ratio(num: float | None, den: float | None, digits: int = 2) -> float | None:
    """``num / den``; ``None`` when either side is unknown or the denominator is 0."""
    if num is None or den is None or den == 0:
        return None
    return round(num / den, digits)


def difference(a: float | None, b: float | None, digits: int = 3) -> float | None:
    """``a - b``; ``None`` when either side is unknown."""
    if a is None or b is None:
        return None
    return round(a - b, digits)


def all_true(values: Sequence[bool | None]) -> bool | None:
    """``True`` when every value is ``True``, ``False`` when one is ``False`` (observed), and
    ``None`` when there is none or one was not observed (and none is ``False``)."""
    if any(v is False for v in values):
        return False
    if not values or any(v is None for v in values):
        return None
    return True


def count_true(values: Sequence[bool | None]) -> int | None:
    """How many are ``True``; ``None`` when none was observed at all."""
    return sum(1 for v in values if v is True) if known(values) else None


def range_of(values: Sequence[float], digits: int = 3) -> list[float] | None:
    """[min, max], or ``None`` (not an empty list) when nothing was measured."""
    return [round(min(values), digits), round(max(values), digits)] if values else None


# -- failover.py -----------------------------------------------------------------------------


def migration_round(m: Mapping[str, Any]) -> dict[str, Any]:
    """One ``Migration.to_json()``, with what was not observed made ``None``.

    Without the controllers' events (``timing`` "polling") no operation was seen: whether
    the migration was live is unknown (``Migration.live`` defaults to False), its steps are
    unknown (``steps_s`` null, not ``{}``)."""
    out = dict(m)
    if out.get("timing") != "alerts":
        out["live"] = None
        out["steps_s"] = None
    return out


def migration_agent_s(m: Mapping[str, Any]) -> float | None:
    """The agent's operations of one migration (every step but the lead-in)."""
    steps = m.get("steps_s")
    ops = [v for k, v in (steps or {}).items() if k != "lead_in"]
    if not ops or any(v is None for v in ops):
        return None
    return round(float(sum(ops)), 3)


def failover_round(fo: Mapping[str, Any], victim_was_dc: bool | None) -> dict[str, Any]:
    """One ``Failover.to_json()`` with the bench's derived figures, unknown kept unknown.

    ``victim_was_dc``: ``None`` when crm_mon did not answer before the plug was pulled.
    ``failover_s``: ``None`` when the victim held no VM (``Failover`` reports 0.0 then:
    nothing failed over, nothing was measured).  ``agent_s`` = failover_s - fenced_s, and
    ``scheduler_stall`` (fenced_s - detection_s >= STALL_S): ``None`` when a side is."""
    out = dict(fo)
    if not out.get("vms"):
        out["failover_s"] = None
    out["victim_was_dc"] = victim_was_dc
    out["agent_s"] = difference(out.get("failover_s"), out.get("fenced_s"))
    gap = difference(out.get("fenced_s"), out.get("detection_s"))
    out["scheduler_stall"] = None if gap is None else gap >= STALL_S
    return out


def failover_round_ok(fo: Mapping[str, Any]) -> bool:
    """Every VM of the victim Started elsewhere, the victim fenced (seen in the fence
    history) and the time of that fencing known."""
    return fo.get("failover_s") is not None and fo.get("fenced_s") is not None and fo.get("fenced") is True


def agent_summary(migs: Sequence[Mapping[str, Any]], fos: Sequence[Mapping[str, Any]], rounds: int) -> dict[str, Any]:
    """Per agent: the medians over the rounds (``migration_round``/``failover_round``
    outputs), ``rounds_measured`` (figure -> how many rounds measured it) and ``ok``."""
    out: dict[str, Any] = {"migrations": list(migs), "failovers": list(fos), "rounds_done": len(fos)}
    measured: dict[str, int] = {}

    def put(key: str, values: list[Any], *, take_median: bool = True) -> None:
        measured[key] = len(known(values))
        if take_median:
            out[key] = median(values)

    put("migration_s", [m.get("migration_s") for m in migs])
    for step in ("lead_in", "migrate_to", "migrate_from", "stop"):
        put(f"migration_{step}_s", [(m.get("steps_s") or {}).get(step) for m in migs])
    put("migration_agent_s", [migration_agent_s(m) for m in migs])
    lives = [m.get("live") for m in migs]
    put("migrations_live", lives, take_median=False)
    out["migrations_live"] = all_true(lives)
    for key in ("failover_s", "detection_s", "fenced_s", "agent_s"):
        put(key, [f.get(key) for f in fos])
    dc = [f.get("victim_was_dc") for f in fos]
    stall = [f.get("scheduler_stall") for f in fos]
    put("victim_was_dc", dc, take_median=False)
    put("scheduler_stall", stall, take_median=False)
    # split by a verdict only where it was observed: an unknown one is in neither half
    out["failover_s_dc_survived"] = median([f.get("failover_s") for f in fos if f.get("victim_was_dc") is False])
    out["failover_s_dc_died"] = median([f.get("failover_s") for f in fos if f.get("victim_was_dc") is True])
    out["failover_s_no_stall"] = median([f.get("failover_s") for f in fos if f.get("scheduler_stall") is False])
    out["failover_s_stall"] = median([f.get("failover_s") for f in fos if f.get("scheduler_stall") is True])
    out["scheduler_stalls"] = count_true(stall)
    fenced = [f.get("fenced") for f in fos]
    put("fenced", fenced, take_median=False)
    out["fenced"] = all_true(fenced)
    out["rounds_measured"] = measured
    out["ok"] = (
        rounds > 0
        and len(migs) == rounds
        and len(fos) == rounds
        and all(failover_round_ok(f) for f in fos)
        and out["migrations_live"] is True  # a migration that restarted the guest was no live migration
    )
    return out


def double_run_verdict(incidents: Sequence[Any] | None, samples: int | None) -> bool | None:
    """True: one was seen; False: the checker sampled and saw none; None: it never ran or
    never took a sample (no observation is not "no double run")."""
    if incidents:
        return True
    if incidents is None or not samples:
        return None
    return False


def failover_report(
    report: Mapping[str, Any],
    agents: Sequence[str],
    *,
    completed: bool,
    double_runs: list[dict[str, Any]] | None,
    double_run_samples: int | None,
) -> dict[str, Any]:
    """The final failover.py object: ``report`` (rounds, up, per agent summaries, error ...)
    plus the double-run verdict, the ratios vmha / heartbeat (``None`` when a side is
    unknown) and ``ok``: completed, every requested agent measured and ``ok``, and the
    double-run checker observed and saw none.  ``error``, ``up``, ``down_problems``,
    ``vmha_missing`` and every requested agent are keys even when never reached (null)."""
    out = dict(report)
    for key in ("error", "up", "down_problems", "vmha_missing", *agents):
        out.setdefault(key, None)  # the same keys whether the bench got there or not
    out["double_runs"] = double_runs
    out["double_run_samples"] = double_run_samples
    out["double_run_seen"] = double_run_verdict(double_runs, double_run_samples)
    hb, vm = out.get("heartbeat") or {}, out.get("vmha") or {}
    for key in FAILOVER_RATIOS:
        out[f"{key}_ratio_vmha_over_heartbeat"] = ratio(vm.get(key), hb.get(key))
    out["ok"] = bool(
        completed
        and agents
        and all((out.get(a) or {}).get("ok") is True for a in agents)
        and out["double_run_seen"] is False
    )
    return out


# -- guest_monitor.py ------------------------------------------------------------------------


def guest_monitor_report(
    vm: str | None,
    host: str | None,
    runs: int,
    times: Mapping[int, Sequence[float]],
    rcs: Mapping[int, Sequence[int]],
    *,
    error: str | None = None,
) -> dict[str, Any]:
    """``times``/``rcs``: per OCF_CHECK_LEVEL (0, 10) the wall time and exit code of each
    timed run (the runs done before an error count).  Same keys with or without an error;
    a level with no run has null figures and null exit codes (not ``[]``); ``ok`` needs no
    error and every run of both levels to have returned 0 (and at least one of each)."""
    t0, t10 = list(times.get(0, ())), list(times.get(10, ()))
    m0, m10 = median(t0), median(t10)
    codes = {level: sorted(set(rcs.get(level, ()))) or None for level in (0, 10)}
    return {
        "ok": error is None and bool(t0) and bool(t10) and codes == {0: [0], 10: [0]},
        "error": error,
        "vm": vm,
        "host": host,
        "runs": runs,
        "runs_measured": {"0": len(t0), "10": len(t10)},
        "monitor_depth0_median_s": m0,
        "monitor_depth10_median_s": m10,
        "guest_ping_added_s": difference(m10, m0),
        "depth0_range_s": range_of(t0),
        "depth10_range_s": range_of(t10),
        "exit_codes": {str(k): v for k, v in codes.items()},
    }


# -- monitor.py ------------------------------------------------------------------------------


def sample_summary(wall_ms: Sequence[float], cpu_ms: Sequence[float | None], rcs: Sequence[int]) -> dict[str, Any]:
    """Median, p10/p90 of the wall times and median CPU time of one command's timed runs;
    ``None`` for what no run measured (``runs`` says how many timed runs there were; ``rc``
    is null, not ``[]``, when there was none)."""
    wall = list(wall_ms)
    if len(wall) > 1:
        deciles: list[float | None] = list(statistics.quantiles(wall, n=10, method="inclusive"))
    else:
        deciles = [wall[0] if wall else None] * 9
    return {
        "runs": len(wall),
        "median_ms": median(wall, 1),
        "p10_ms": None if deciles[0] is None else round(deciles[0], 1),
        "p90_ms": None if deciles[-1] is None else round(deciles[-1], 1),
        "cpu_median_ms": median(cpu_ms, 1),
        "rc": sorted(set(rcs)) or None,
    }


def median_ratio(ours: Sequence[float | None], theirs: Sequence[float | None], digits: int = 3) -> float | None:
    """median(ours) / median(theirs), from the unrounded medians; ``None`` when a side has
    no measured value."""
    return ratio(median(ours, None), median(theirs, None), digits)


def monitor_verdict(failed: bool, wall_ratio: float | None, goal: float) -> str:
    """PASS or MISS against the goal; INVALID when a timed run failed or the ratio is unknown."""
    if failed or wall_ratio is None:
        return "INVALID"
    return "PASS" if wall_ratio <= goal else "MISS"


def monitor_scenario(
    name: str,
    hypervisor: str,
    agents: Mapping[str, Mapping[str, Any]],
    wall_ratio: float | None,
    cpu_ratio: float | None,
    *,
    failed: bool,
    goal: float,
) -> dict[str, Any]:
    """One measured scenario of monitor.py: ``agents`` label -> ``sample_summary``.
    ``verdict`` PASS/MISS/INVALID; ``pass`` true/false for PASS/MISS and null for INVALID
    (not judged: a timed run failed or the ratio is unknown)."""
    verdict = monitor_verdict(failed, wall_ratio, goal)
    return {
        "name": name,
        "hypervisor": hypervisor,
        "agents": {label: dict(s) for label, s in agents.items()},
        "ratio": wall_ratio,
        "cpu_ratio": cpu_ratio,
        "verdict": verdict,
        "pass": None if verdict == "INVALID" else verdict == "PASS",
    }


def monitor_report(
    *,
    runs: int,
    warmup: int,
    goal: float,
    agents: Mapping[str, str],
    revision: str | None,
    cpus: int,
    load: Sequence[float | None],
    baseline: Mapping[str, Mapping[str, Any]] | None,
    scenarios: Sequence[Mapping[str, Any]],
    skipped: Sequence[str],
    imports: list[dict[str, Any]] | None,
    error: str | None,
) -> dict[str, Any]:
    """The object ``monitor.py --json`` prints last, the same keys with or without an error.
    ``revision`` null: the agent does not run from a git checkout; ``load`` [before, after],
    null where not read; ``baseline`` null when the floor was not measured; ``scenarios``
    only those measured to the end (``monitor_scenario``); ``imports`` null unless
    ``--importtime`` asked and a run listed them."""
    return {
        "error": error,
        "runs": runs,
        "warmup": warmup,
        "goal": goal,
        "agents": dict(agents),
        "revision": revision or None,
        "cpus": cpus,
        "load": [None if x is None else round(x, 2) for x in load],
        "baseline": None if baseline is None else {k: dict(v) for k, v in baseline.items()},
        "scenarios": [dict(sc) for sc in scenarios],
        "skipped": list(skipped),
        "imports": imports or None,
    }
