"""Processes the lab started, identified so that a recycled PID is never signalled.

A PID alone is not an identity: after a crash the number may belong to someone else.  We
record (pid, start time in clock ticks since boot) and only signal a process whose start
time still matches.  Namespace membership is read from /proc/PID/ns/* links, which lets the
host see every lab process without entering the namespaces.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcId:
    pid: int
    start: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start": self.start}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> ProcId:
        return cls(int(data["pid"]), int(data["start"]))


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time), or None when the process is gone.

    A zombie counts as gone: it has exited and only waits for its parent (which may be us,
    e.g. the power switch after an interrupted ``lab up``) to collect its status.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and ')', so split after the last ')'
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        _reap_if_child(pid)
        return None
    return int(fields[19])


def age_s(pid: int) -> float | None:
    """Seconds since process ``pid`` started (its start time against the kernel's uptime),
    or None when it is gone."""
    start = start_time(pid)
    if start is None:
        return None
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return max(0.0, uptime - start / os.sysconf("SC_CLK_TCK"))


def _reap_if_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its own parent collects it


def identify(pid: int) -> ProcId | None:
    start = start_time(pid)
    return None if start is None else ProcId(pid, start)


def alive(proc: ProcId) -> bool:
    return start_time(proc.pid) == proc.start


def signal_if_ours(proc: ProcId, sig: int) -> bool:
    """Send ``sig`` only if ``proc`` is still the process we recorded. True when sent."""
    if not alive(proc):
        return False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(procs: list[ProcId], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(alive(p) for p in procs):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in procs)


def kill_hard(procs: list[ProcId], timeout: float = 10.0) -> bool:
    for p in procs:
        signal_if_ours(p, signal.SIGKILL)
    return wait_gone(procs, timeout)


def ns_inode(pid: int | str, kind: str) -> int | None:
    """Inode of /proc/PID/ns/KIND (e.g. 'net'), None if unreadable."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def netns_inode(name: str) -> int | None:
    """Inode of a named network namespace (``ip netns add`` binds it under /run/netns)."""
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def pids_in_netns(inode: int) -> list[int]:
    return [p for p in pids() if ns_inode(p, "net") == inode]


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def namespace_init(netns_ino: int) -> int | None:
    """Host PID of the PID-namespace init (NSpid ... 1) living in network namespace ``netns_ino``."""
    for pid in pids_in_netns(netns_ino):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        parts = line.split()
                        if len(parts) >= 3 and parts[-1] == "1":
                            return pid
                        break
        except OSError:
            continue
    return None


def pid_in_node(pid: int, init_pid: int) -> bool:
    """True when ``pid`` lives in the PID namespace whose init is ``init_pid``."""
    ino = ns_inode(init_pid, "pid")
    return ino is not None and ns_inode(pid, "pid") == ino


def host_root(pid: int, name: str) -> str | None:
    """``/proc/PID/root`` of lab host ``name`` whose init is ``pid``, once that host's private
    /run is mounted; None before (its /run is still the machine's: its libvirt socket would
    be the machine's libvirtd) or when ``pid`` is not that host's init."""
    from vmha.lab.config import HOST_MARKER

    root = f"/proc/{pid}/root"
    try:
        with open(root + HOST_MARKER) as f:
            return root if f.read().strip() == name else None
    except OSError:
        return None
