"""QEMU processes on this host, found in /proc: the one parser of a QEMU command line.

When libvirtd is down or hung, the truthful answer to "is this VM running here?" is still
on the host: libvirt starts QEMU with ``-name guest=<name>,...`` and ``-uuid <uuid>``.  A
probe that answers "not running" while QEMU runs would let Pacemaker start the VM on a
second host, so the monitor falls back to this scan instead of guessing.  The lab's
double-run checker and its scenarios read QEMU processes with the same parser.

A leaf module: no libvirt, nothing of vmha below it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

QEMU_EXECUTABLES = ("qemu-kvm", "kvm")
QEMU_PREFIX = "qemu-system-"
CMDLINE_MAX_BYTES = 65536


class QemuProcess(NamedTuple):
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


def is_qemu(program: str) -> bool:
    """Whether ``program`` (argv[0], a path or a name) is a QEMU system emulator."""
    exe = os.path.basename(program)
    return exe.startswith(QEMU_PREFIX) or exe in QEMU_EXECUTABLES


def parse_args(args: list[str]) -> tuple[str | None, str | None]:
    """(guest name, lower-case UUID) from a QEMU argument list; None for what it lacks."""
    name = uuid = None
    for i, arg in enumerate(args[:-1]):
        nxt = args[i + 1]
        if arg == "-name":
            parts = _split_qemu_options(nxt)
            name = next((p[len("guest=") :] for p in parts if p.startswith("guest=")), parts[0])
        elif arg == "-uuid":
            uuid = nxt.lower()
    return name, uuid


def parse_cmdline(raw: bytes) -> tuple[str | None, str | None, bool]:
    """(name, uuid, is QEMU) of the NUL-separated bytes of /proc/PID/cmdline."""
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    if not args:
        return None, None, False
    name, uuid = parse_args(args)
    return name, uuid, is_qemu(args[0])


def qemu_processes(proc: str = "/proc", pids: Iterable[int] | None = None) -> list[QemuProcess]:
    """Every QEMU process in ``proc`` (or among ``pids`` only)."""
    found: list[QemuProcess] = []
    if pids is None:
        try:
            entries = [int(e) for e in os.listdir(proc) if e.isdigit()]
        except OSError:
            return found
    else:
        entries = list(pids)
    for pid in entries:
        try:
            with open(os.path.join(proc, str(pid), "cmdline"), "rb") as fh:
                raw = fh.read(CMDLINE_MAX_BYTES)
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        name, uuid, qemu = parse_cmdline(raw)
        if qemu:
            found.append(QemuProcess(pid, name, uuid))
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
