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


def _split_qemu_options(value: str) -> list[str]:
    """Split a QEMU option string on single commas; ``,,`` is an escaped comma."""
    parts = [""]
    i = 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1 : i + 2] == ",":
                parts[-1] += ","
                i += 2
                continue
            parts.append("")
        else:
            parts[-1] += value[i]
        i += 1
    return parts


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
            parts = _split_qemu_options(nxt)
            name = next((p[len("guest=") :] for p in parts if p.startswith("guest=")), parts[0])
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
    """The QEMU process of the domain with this UUID, else of this name, if there is one.

    A process whose UUID is known and differs is never taken for a name match: signalling a
    same-named QEMU of another domain would be worse than not finding ours.
    """
    found = qemu_processes(proc)
    if uuid:
        wanted = uuid.lower()
        for p in found:
            if p.uuid == wanted:
                return p
    if name:
        for p in found:
            if p.name == name and (p.uuid is None or uuid is None):
                return p
    return None
