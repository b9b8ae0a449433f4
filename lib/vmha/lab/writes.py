"""Nothing acknowledged is lost: the guest's disk writer, and the host side's count.

Every lab guest runs a writer (``image.INIT_SCRIPT``) that puts numbered records on its disk,
one 512-byte sector each, slot ``n % SLOTS``, with O_DIRECT and a flush, and prints
``vmha-ack n`` on its serial console only after the flush returned: the guest was told the
record is written.  At boot it prints ``vmha-found m``, the newest record on the disk, and
goes on from ``m + 1``.  The serial log is one file every host's QEMU appends to, so it
holds every boot of the VM on every host, in order.

A record ``n`` acknowledged is lost when
- a later boot found less than ``n`` on the disk (it was told written, and is not there), or
- at the end the disk does not hold it: slot ``n % SLOTS`` has neither ``n`` nor a newer
  record of the same slot (checked for the last ``SLOTS`` numbers, the ones still there).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

RECORD = "vmha-rec"
ACK = "vmha-ack"
FOUND = "vmha-found"
FAILED = "vmha-write-failed"
SLOTS = 1024
SECTOR = 512
INTERVAL_S = 0.5

_EVENT = re.compile(rf"({FOUND}|{ACK}) (\d+)")
_RECORD = re.compile(rf"{RECORD} (\d+)\n".encode())


@dataclass
class WriteReport:
    acknowledged: int
    lost: int
    boots: int
    last_ack: int
    lost_numbers: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "writes_acknowledged": self.acknowledged,
            "writes_lost": self.lost,
            "writer_boots": self.boots,
            "lost_records": self.lost_numbers[:10],
        }


def events(serial_text: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in _EVENT.finditer(serial_text)]


def disk_slots(disk: bytes) -> dict[int, int]:
    """slot -> the record number it holds (slots without a record are absent)."""
    held = {}
    for slot in range(min(SLOTS, len(disk) // SECTOR)):
        m = _RECORD.match(disk, slot * SECTOR)
        if m:
            held[slot] = int(m.group(1))
    return held


def judge(serial_text: str, disk: bytes) -> WriteReport | None:
    """None when the writer never ran (no boot of it in the log): nothing was measured."""
    seen = events(serial_text)
    boots = sum(1 for kind, _ in seen if kind == FOUND)
    if not boots:
        return None
    lost: set[int] = set()
    acked: set[int] = set()
    epoch: list[int] = []
    count = 0
    for kind, n in seen:
        if kind == ACK:
            epoch.append(n)
            acked.add(n)
            count += 1
            continue
        lost.update(a for a in epoch if a > n)
        epoch = []
    last = max(acked, default=0)
    held = disk_slots(disk)
    for a in acked:
        if a <= last - SLOTS:
            continue
        m = held.get(a % SLOTS)
        if m is None or m < a or m % SLOTS != a % SLOTS:
            lost.add(a)
    return WriteReport(count, len(lost), boots, last, sorted(lost))


def read(serial_log: str, disk_image: str) -> WriteReport | None:
    try:
        with open(serial_log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        with open(disk_image, "rb") as f:
            disk = f.read(SLOTS * SECTOR)
    except OSError:
        return None
    return judge(text, disk)


def boots(serial_log: str) -> int:
    try:
        with open(serial_log, encoding="utf-8", errors="replace") as f:
            return sum(1 for kind, _ in events(f.read()) if kind == FOUND)
    except OSError:
        return 0


def wait_writing(serial_log: str, boots_before: int, timeout: float) -> bool:
    """Wait until the writer of a boot after ``boots_before`` acknowledged a record (the
    boot that is running, when ``boots_before`` is one less than the boots so far)."""
    boots_before = max(0, boots_before)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(serial_log, encoding="utf-8", errors="replace") as f:
                seen = events(f.read())
        except OSError:
            seen = []
        found = [i for i, (kind, _) in enumerate(seen) if kind == FOUND]
        if len(found) > boots_before and any(kind == ACK for kind, _ in seen[found[boots_before] :]):
            return True
        time.sleep(0.2)
    return False
