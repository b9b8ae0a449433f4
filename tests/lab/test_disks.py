"""Guests with disks on shared storage, and the disk lease that holds when every other guard
is bypassed: a second QEMU on the same disk is refused, and nothing is written twice."""

from __future__ import annotations

import os
import re
import time

import pytest
from vmha.lab import scenarios, writes
from vmha.lab.guest import serial_log
from vmha.lab.lab import Lab

from tests.lab.conftest import AGENT
from tests.lab.test_lab import other, where

pytestmark = pytest.mark.lab
only_vmha = pytest.mark.skipif(AGENT != "vmha", reason="VirtualDomain does not look at disk leases")

NET_DISK = (
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
    "<source protocol='nbd' name='scratch'><host name='127.0.0.1' port='10809'/></source>"
    "<target dev='vdb' bus='virtio'/></disk>"
)


def acks(lab: Lab, vm: str) -> int:
    with open(serial_log(lab.paths.vm_dir, vm), errors="replace") as f:
        return sum(1 for kind, _ in writes.events(f.read()) if kind == writes.ACK)


def test_every_guest_writes_to_its_disk_on_the_shared_storage(watched: Lab) -> None:
    lab = watched
    for vm in lab.state.vms:
        host = where(lab, vm)
        # the host's QEMU opened the disk through the host's own path (its bindfs)
        fds = lab.exec(host, ["virsh", "domblklist", vm]).stdout
        assert lab.paths.disk_path(vm) in fds, fds
        n = acks(lab, vm)
        assert scenarios.wait_writing(lab, vm, scenarios.writer_boots(lab, vm) - 1, 10)
        time.sleep(2 * writes.INTERVAL_S + 0.5)
        assert acks(lab, vm) > n, f"{vm}'s writer is not writing"
        w = scenarios.written(lab, [vm])
        assert w["writes_lost"] == 0, w
    # the lease of each running disk is held in the lockspace every host shares
    assert len([f for f in os.listdir(lab.paths.lease_dir) if re.fullmatch("[0-9a-f]{64}", f)]) >= len(lab.state.vms)


@only_vmha
def test_a_second_copy_is_refused_by_the_disk_lease(watched: Lab) -> None:
    """The cluster's guards bypassed on purpose: the VM is started by hand on the peer with
    virsh, then with the agent itself with its peer check off.  The lock manager refuses
    both before QEMU runs a single instruction; the guest never boots twice and its disk
    loses nothing."""
    lab = watched
    vm = lab.state.vms[0]
    host = where(lab, vm)
    peer = other(lab, host)
    pid = scenarios.qemu_pid(lab, host, vm)
    booted = scenarios.boots(lab, vm)
    assert pid and booted
    xml = os.path.join(lab.paths.vm_dir, f"{vm}.xml")
    lab.pcs("resource", "unmanage", vm)
    try:
        by_hand = lab.exec(peer, ["virsh", "-c", "qemu:///system", "create", xml])
        assert not by_hand.ok
        assert "resource busy" in by_hand.stderr and "is locked" in by_hand.stderr, by_hand.stderr

        done = scenarios.vm_action_now(lab, peer, vm, "start", params={"peer_check": "false"}, instance="byhand")
        assert done.rc == 1, (done.rc, done.stderr)
        reason = [line for line in done.stderr.splitlines() if line.startswith("ocf-exit-reason:")]
        assert reason == [
            f"ocf-exit-reason:disk {lab.paths.disk_path(vm)} is leased elsewhere (domain runs on {host}); "
            "not started here"
        ], done.stderr
        stop = scenarios.vm_action_now(lab, peer, vm, "stop", instance="byhand")
        assert stop.rc == 0, stop.stderr
    finally:
        lab.pcs("resource", "manage", vm)
    assert scenarios.qemu_pid(lab, peer, vm) is None, "a second QEMU runs"
    assert scenarios.qemu_pid(lab, host, vm) == pid
    assert vm not in lab.exec(peer, ["virsh", "list", "--all", "--name"]).stdout.split(), "a definition was left"
    time.sleep(1)
    assert scenarios.boots(lab, vm) == booted, "the guest booted a second time"
    n = acks(lab, vm)
    time.sleep(2 * writes.INTERVAL_S + 0.5)
    assert acks(lab, vm) > n, "the running guest stopped writing"
    w = scenarios.written(lab, [vm])
    assert w["writes_lost"] == 0, w


def test_a_paused_guest_holds_no_lease_and_cannot_resume_while_another_copy_does(watched: Lab) -> None:
    """libvirt's lock manager gives a disk's lease up when its guest is paused and takes it
    again on resume: a guest paused on a host that lost its storage leaves the lease to the
    copy the cluster starts elsewhere, and can never resume (write) while that copy holds
    it.  Shown both ways round with the cluster's guards off: the running guest paused, a
    second copy created paused on the peer (which it could not be while the first ran),
    the first resumed, and the second's resume refused; no second boot, nothing lost."""
    lab = watched
    vm = lab.state.vms[0]
    host = where(lab, vm)
    peer = other(lab, host)
    pid = scenarios.qemu_pid(lab, host, vm)
    booted = scenarios.boots(lab, vm)
    assert pid and booted
    xml = os.path.join(lab.paths.vm_dir, f"{vm}.xml")

    def virsh(on: str, *args: str) -> tuple[bool, str]:
        r = lab.exec(on, ["virsh", "-c", "qemu:///system", *args])
        return r.ok, r.stdout + r.stderr

    lab.pcs("resource", "unmanage", vm)
    try:
        assert virsh(host, "suspend", vm)[0]
        made, out = virsh(peer, "create", "--paused", xml)
        assert made, f"a paused guest kept its lease: {out}"
        assert virsh(host, "resume", vm)[0], "the first copy could not take its lease back"
        resumed, out = virsh(peer, "resume", vm)
        assert not resumed and "resource busy" in out and "is locked" in out, out
        assert virsh(peer, "domstate", vm)[1].split()[0] == "paused"
    finally:
        virsh(peer, "destroy", vm)
        virsh(host, "resume", vm)
        lab.pcs("resource", "manage", vm)
    assert scenarios.qemu_pid(lab, peer, vm) is None, "a second QEMU runs"
    assert scenarios.qemu_pid(lab, host, vm) == pid
    assert scenarios.boots(lab, vm) == booted, "the guest booted a second time"
    n = acks(lab, vm)
    time.sleep(2 * writes.INTERVAL_S + 0.5)
    assert acks(lab, vm) > n, "the running guest stopped writing"
    assert scenarios.written(lab, [vm])["writes_lost"] == 0


@only_vmha
def test_validate_warns_of_an_unleased_disk_and_require_disk_leases_refuses(watched: Lab) -> None:
    lab = watched
    vm = lab.state.vms[0]
    host = where(lab, vm)
    leased = scenarios.vm_action_now(lab, host, vm, "validate-all", params={"require_disk_leases": "true"})
    assert leased.rc == 0, leased.stderr
    assert "has no lease" not in leased.stderr

    # the same VM with a second disk over NBD: libvirt's lockd leases no network disk
    with open(os.path.join(lab.paths.vm_dir, f"{vm}.xml")) as f:
        text = f.read()
    bare = os.path.join(lab.paths.vm_dir, "unleased.xml")
    with open(bare, "w") as f:
        f.write(text.replace("</devices>", NET_DISK + "</devices>", 1))
    warned = scenarios.vm_action_now(lab, host, vm, "validate-all", params={"config": bare}, instance="unleased")
    assert warned.rc == 0, warned.stderr
    assert "disk nbd:scratch of vm1 has no lease (lock manager lockd" in warned.stderr, warned.stderr
    refused = scenarios.vm_action_now(
        lab, host, vm, "validate-all", params={"config": bare, "require_disk_leases": "true"}, instance="unleased"
    )
    assert refused.rc == 5, refused.stderr
    assert "ocf-exit-reason:disk nbd:scratch of vm1 has no lease" in refused.stderr, refused.stderr
