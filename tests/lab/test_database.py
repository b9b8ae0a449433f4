"""PostgreSQL in a lab guest (issue 12): Debian's server on the guest's database disk on the
shared storage, managed by ocf:vmha:GuestService through the guest agent and watched with
db_check (a SCRAM login and a query, on the primary) over the guest network.

One module-scoped database VM; the tests walk what can go wrong, lowest layer first: a hung
server (restarted in place), then the escalation ladder the README gives (a killed server
restarted in place, a second failure moving the VM, a frozen guest restarting the VM, the
host powered off with rows committing and none lost)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vmha.lab import database, scenarios
from vmha.lab.lab import Lab, wait_until

from tests.lab.conftest import AGENT

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(AGENT != "vmha", reason="GuestService and db_check are ocf:vmha's"),
]

VM = "vm3"
SERVICE = "pg3"
MONITOR_INTERVAL_S = 3.0  # database.create_service
DB_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def db(lab: Lab) -> Iterator[str]:
    database.create_vm(lab, VM, prefer=lab.hosts[0])
    try:
        database.create_service(lab, SERVICE, VM)
        yield SERVICE
    finally:
        lab.pcs("resource", "delete", SERVICE)
        lab.delete_vm(VM)


def serving(lab: Lab, timeout: float = 150.0) -> str:
    host = wait_until(lambda: database.serving(lab, VM, SERVICE), timeout, 0.5)
    assert host, f"{SERVICE} not Started and answering queries:\n{lab.crm_mon_text()}"
    return host


def test_hung_server_restarted_in_place(watched: Lab, db: str) -> None:
    """SIGSTOP of every postgres process: the kernel still accepts connections, nothing
    answers; only a check that speaks the protocol sees it."""
    lab = watched
    host = serving(lab)
    r = database.break_server(lab, db, VM, "hang")
    assert r.recovery_s is not None, f"the database did not answer again: {r.to_json()}"
    assert r.exit_reason and r.exit_reason.startswith("db timeout: "), r.exit_reason
    assert f"did not answer within {DB_TIMEOUT_S:.0f}s" in r.exit_reason, r.exit_reason
    # one monitor interval and the check's own timeout, with room for the poll and crm_mon
    assert r.detected_s is not None and r.detected_s < MONITOR_INTERVAL_S + DB_TIMEOUT_S + 4, r.to_json()
    assert r.vm_untouched and r.host == host, f"the VM was touched for a hung service: {r.to_json()}"
    print(f"hung server: {r.to_json()}")


def test_escalation_ladder(watched: Lab, db: str) -> None:
    lab = watched
    first = serving(lab)

    # 1. the server killed: restarted in place, the VM untouched
    r = database.break_server(lab, db, VM, "kill")
    assert r.recovery_s is not None, f"rung 1: the database did not answer again: {r.to_json()}"
    # the status program's "dead", or the database check catching the server on its way down
    reason = r.exit_reason or ""
    assert reason.startswith("service failed: postgresql") or (
        reason.startswith("db ") and database.url(VM) in reason
    ), reason
    assert r.vm_untouched and r.host == first, f"rung 1: not recovered in place: {r.to_json()}"
    print(f"ladder: killed {r.to_json()}")
    serving(lab)

    # 2. a second failure on that host (migration-threshold=2): the service is banned there,
    # and the VM, which it is colocated with, goes with it (live: the guest does not reboot)
    r = database.break_server(lab, db, VM, "kill", timeout=150)
    assert r.recovery_s is not None, f"rung 2: the database did not answer again: {r.to_json()}"
    assert r.host != first, f"rung 2: the VM did not move: {r.to_json()}"
    assert r.boots_after == r.boots_before, f"rung 2: the guest rebooted instead of moving live: {r.to_json()}"
    print(f"ladder: killed again {r.to_json()}")
    second = serving(lab)
    # the operator's "fixed it" (or failure-timeout): the first host may run it again
    lab.pcs("resource", "cleanup", db)

    # 3. the guest frozen: the VM's depth-10 monitor fails and the VM is restarted
    f = database.freeze_guest(lab, VM, db)
    assert f.detected_s is not None and "not alive" in f.exit_reason, f"rung 3: {f.to_json()}"
    assert f.vm_restarted_s is not None and f.db_serving_again_s is not None, f"rung 3: {f.to_json()}"
    assert f.host == second

    # 4. the host powered off while rows commit: fenced, its VMs and the database on the
    # peer, every acknowledged commit there and every acknowledged disk record; the host
    # rejoins.  (The lab's one power-off test: the demo, in test_beside_machine, has another.)
    lab.pcs("resource", "cleanup")
    victim = serving(lab)
    vms = [vm for vm, h in scenarios.locations(lab).items() if h == victim]
    booted = {vm: scenarios.writer_boots(lab, vm) for vm in vms}
    before = scenarios.written(lab, vms)
    p = database.power_off(lab, VM, db, min_rows=40)
    fo = p.failover
    assert fo is not None and fo.fenced, p.to_json()
    assert fo.failover_s is not None and fo.failover_s < 60, p.to_json()
    assert set(fo.started_on) == set(vms) and p.victim not in fo.started_on.values(), p.to_json()
    assert p.victim == victim and fo.rejoin_s is not None, f"{victim} did not rejoin after fencing"
    assert p.db_serving_again_s is not None and p.served_from != p.victim, p.to_json()
    assert p.committed_rows_acknowledged >= 40, p.to_json()
    assert p.committed_rows_lost == 0, f"acknowledged commits lost: {p.to_json()}"
    # the guests booted again on the survivor, from the shared disks: every record they had
    # acknowledged is there, and they write on
    for vm in vms:
        assert scenarios.wait_writing(lab, vm, booted[vm], 60), f"{vm}'s writer did not write after the failover"
    after = scenarios.written(lab, vms)
    assert after["writes_lost"] == 0, after
    assert before["writes_acknowledged"] and after["writes_acknowledged"] > before["writes_acknowledged"]
    print(f"ladder: frozen guest {f.to_json()}; power-off {p.to_json()}")
