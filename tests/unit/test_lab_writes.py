"""The lab's count of acknowledged writes lost (vmha.lab.writes), on made-up logs and disks."""

from __future__ import annotations

from vmha.lab import writes
from vmha.lab.writes import SECTOR, SLOTS


def disk(*records: int) -> bytes:
    data = bytearray(SLOTS * SECTOR)
    for n in records:
        rec = f"{writes.RECORD} {n}\n".encode()
        data[(n % SLOTS) * SECTOR : (n % SLOTS) * SECTOR + len(rec)] = rec
    return bytes(data)


def log(*lines: str) -> str:
    # console noise between the writer's lines, as on a real serial log
    return "".join(f"[ 1.0] noise\r\n{line}\r\n" for line in lines)


def test_nothing_measured_without_a_writer_boot():
    assert writes.judge("GUEST-READY\ntick 1\n", disk()) is None


def test_every_acknowledged_record_on_the_disk_is_none_lost():
    r = writes.judge(log("vmha-found 0", "vmha-ack 1", "vmha-ack 2", "vmha-ack 3"), disk(1, 2, 3))
    assert (r.acknowledged, r.lost, r.boots, r.last_ack) == (3, 0, 1, 3)


def test_a_record_missing_from_the_disk_is_lost():
    r = writes.judge(log("vmha-found 0", "vmha-ack 1", "vmha-ack 2", "vmha-ack 3"), disk(1, 3))
    assert (r.lost, r.lost_numbers) == (1, [2])


def test_a_boot_that_finds_less_than_was_acknowledged_counts_the_difference():
    # acknowledged 1..4, the next boot finds only 2 and writes 3 and 4 again: the disk looks
    # whole at the end, but 3 and 4 were lost at the failover
    text = log("vmha-found 0", *(f"vmha-ack {n}" for n in range(1, 5)), "vmha-found 2", "vmha-ack 3", "vmha-ack 4")
    r = writes.judge(text, disk(1, 2, 3, 4))
    assert (r.lost, r.lost_numbers, r.boots) == (2, [3, 4], 2)


def test_a_slot_overwritten_by_a_newer_record_is_not_a_loss():
    acked = [f"vmha-ack {n}" for n in range(1, SLOTS + 3)]
    r = writes.judge(log("vmha-found 0", *acked), disk(*range(3, SLOTS + 3)))
    assert r.lost == 0 and r.last_ack == SLOTS + 2


def test_an_older_record_in_the_slot_means_the_newer_one_was_lost():
    acked = [f"vmha-ack {n}" for n in range(1, SLOTS + 2)]
    r = writes.judge(log("vmha-found 0", *acked), disk(*range(1, SLOTS + 1)))
    assert r.lost_numbers == [SLOTS + 1]
