"""Node health on the real lab: ocf:vmha:HypervisorHealth as a clone with
node-health-strategy=migrate-on-red, a host whose storage pool fills up, both hosts at once.
Every test runs under the double-run checker (the ``watched`` fixture)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from vmha.lab import health, scenarios
from vmha.lab.lab import Lab, wait_until

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def health_on(lab: Lab) -> Iterator[Lab]:
    health.enable(lab)
    try:
        yield lab
    finally:
        for host in lab.hosts:
            health.heal_pool(lab, host)
        health.disable(lab)


def all_green(lab: Lab, timeout: float = 60.0) -> bool:
    want = {h: "green" for h in lab.hosts}
    return bool(wait_until(lambda: health.colours(lab) == want, timeout, 0.25))


def guests_booted(lab: Lab) -> dict[str, int]:
    """Boots so far per VM, once every guest has finished the boot it is in (a boot that
    completes during a test is no restart)."""
    for vm, host in scenarios.locations(lab).items():
        assert host and wait_until(lambda h=host, v=vm: scenarios.guest_agent_answers(lab, h, v), 90, 0.5), (
            f"{vm}'s guest did not finish booting"
        )
    return {vm: scenarios.boots(lab, vm) for vm in lab.state.vms}


def test_full_pool_moves_the_vms_away_by_live_migration(health_on: Lab, watched: Lab) -> None:
    lab = watched
    assert all_green(lab)
    host = scenarios.locations(lab)[lab.state.vms[0]]
    assert host
    vms = [vm for vm, h in scenarios.locations(lab).items() if h == host]
    booted = {vm: n for vm, n in guests_booted(lab).items() if vm in vms}
    ev = health.evacuate(lab, host)
    assert ev.red_s is not None, f"{host} never turned red: {ev.to_json()}"
    assert set(ev.moved_to.values()) <= set(lab.hosts) - {host}
    assert all(ev.live.values()), f"not every VM was live-migrated: {ev.to_json()}"
    assert {vm: scenarios.boots(lab, vm) for vm in vms} == booted, "a guest rebooted"
    assert ev.green_again_s is not None, f"{host} not green again after its pool was emptied"


def test_every_pool_full_never_more_than_one_red(health_on: Lab, watched: Lab) -> None:
    """Both hosts sick: one may turn red (its VMs move to the other, still green then); the
    other must stay yellow, and every VM keeps running."""
    lab = watched
    assert all_green(lab)
    booted = guests_booted(lab)
    t0 = time.time()
    seen = health.break_all(lab, watch_s=12)
    assert seen.most_red_at_once <= 1, seen.to_json()
    assert list(seen.colours.values()).count("red") <= 1, seen.to_json()
    assert set(seen.colours.values()) <= {"yellow", "red"}, seen.to_json()
    assert all(seen.locations.values()), f"a VM stopped: {seen.to_json()}"
    ops = [(e.rsc, e.task, e.node, e.rc) for e in lab.events(t0) if e.rsc in lab.state.vms and e.interval_ms == 0]
    assert {vm: scenarios.boots(lab, vm) for vm in lab.state.vms} == booted, f"a guest was restarted: {ops}"
    assert all_green(lab), "the hosts did not turn green again"


def monitors_at_once(lab: Lab) -> dict[str, int]:
    """Every host's health monitor, released at the same instant; host -> exit code."""
    start = threading.Barrier(len(lab.hosts))
    codes: dict[str, int] = {}

    def run(host: str) -> None:
        start.wait()
        codes[host] = health.monitor_now(lab, host)

    threads = [threading.Thread(target=run, args=(h,)) for h in lab.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def test_two_hosts_claiming_red_at_the_same_instant(health_on: Lab, watched: Lab) -> None:
    """The race the red claim exists for: both pools fill, and both hosts' monitors run at the
    same instant, each seeing the other still green.  Real attrd, real agents; several rounds."""
    lab = watched
    for _ in range(3):
        assert all_green(lab)
        t0 = time.time()
        for host in lab.hosts:
            health.fill_pool(lab, host)
        codes = monitors_at_once(lab)
        time.sleep(3)  # the recurring monitors have their say too
        timeline = health.red_timeline(lab.events(t0))
        for host in lab.hosts:
            health.heal_pool(lab, host)
        assert codes == {h: 0 for h in lab.hosts}, codes
        assert max((len(red) for _, red in timeline), default=0) <= 1, timeline
        assert scenarios.settle(lab, 120), "the VMs are not all Started"
