"""Find a domain's QEMU process in /proc when libvirtd cannot be asked.

When libvirtd is down or hung, the truthful answer to "is this VM running here?" is still
on the host: libvirt starts QEMU with ``-name guest=<name>,...`` and ``-uuid <uuid>``.  A
probe that answers "not running" while QEMU runs would let Pacemaker start the VM on a
second host, so the monitor falls back to this scan instead of guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class QemuProcess:
    pid: int
    name: str | None
    uuid: str | None


def _parse_cmdline(raw: bytes) -> tuple[str | None, str | None, bool]:
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    if not args:
        return None, None, False
    exe = os.path.basename(args[0])
    is_qemu = exe.startswith("qemu-system-") or exe in ("qemu-kvm", "kvm")
    name = uuid = None
    for i, arg in enumerate(args[:-1]):
        nxt = args[i + 1]
        if arg == "-name":
            for part in nxt.split(","):
                if part.startswith("guest="):
                    name = part[len("guest=") :]
                    break
            else:
                name = nxt.split(",", 1)[0]
        elif arg == "-uuid":
            uuid = nxt.lower()
    return name, uuid, is_qemu


def qemu_processes(proc: str = "/proc") -> list[QemuProcess]:
    found: list[QemuProcess] = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as fh:
                raw = fh.read(65536)
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        name, uuid, is_qemu = _parse_cmdline(raw)
        if is_qemu:
            found.append(QemuProcess(int(entry), name, uuid))
    return found


def find_qemu(name: str | None, uuid: str | None, proc: str = "/proc") -> QemuProcess | None:
    """The QEMU process of the domain with this UUID (preferred) or name, if there is one."""
    for p in qemu_processes(proc):
        if uuid and p.uuid == uuid.lower():
            return p
        if name and p.name == name:
            return p
    return None
