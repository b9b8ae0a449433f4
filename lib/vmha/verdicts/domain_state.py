"""What a domain's state means for the cluster.

running, blocked, shutting down            -> 0 running
paused by the user, a migration, a save,
  a snapshot, start-up, post-copy          -> 0 running (an operation, not a failure)
paused by an I/O error                     -> 1 or 190, as ``on_io_error`` says
paused after a crash, a watchdog, a failed
  post-copy or an API error                -> 1 failed
pmsuspended (the guest suspended itself)   -> 190 degraded
shut off, crashed                          -> 7 not running
no state                                   -> 1 failed (libvirt does not know)
"""

from __future__ import annotations

from typing import NamedTuple

from vmha.ocf.codes import OcfRc
from vmha.virt.domain import DomainState, DomainStatus, PausedReason

IO_ERROR_POLICIES = ("fail", "degraded")

_PAUSED_FINE = frozenset(
    {
        PausedReason.USER,
        PausedReason.MIGRATION,
        PausedReason.SAVE,
        PausedReason.DUMP,
        PausedReason.FROM_SNAPSHOT,
        PausedReason.SHUTTING_DOWN,
        PausedReason.SNAPSHOT,
        PausedReason.STARTING_UP,
        PausedReason.POSTCOPY,
        PausedReason.UNKNOWN,
    }
)


class ProbeResult(NamedTuple):
    rc: OcfRc
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == OcfRc.SUCCESS


def judge_state(name: str, status: DomainStatus, on_io_error: str = "fail") -> ProbeResult:
    state = status.state
    if state in (DomainState.RUNNING, DomainState.BLOCKED, DomainState.SHUTDOWN):
        return ProbeResult(OcfRc.SUCCESS)
    if state in (DomainState.SHUTOFF, DomainState.CRASHED):
        return ProbeResult(OcfRc.NOT_RUNNING, f"domain {name} is {status.describe()}")
    if state is DomainState.PMSUSPENDED:
        return ProbeResult(OcfRc.DEGRADED, f"domain {name} is suspended by its guest (pmsuspended)")
    if state is DomainState.PAUSED:
        reason = status.reason
        if reason == PausedReason.IOERROR:
            text = f"domain {name} is paused by a disk I/O error; check its storage path on this host"
            rc = OcfRc.DEGRADED if on_io_error == "degraded" else OcfRc.ERR_GENERIC
            return ProbeResult(rc, text)
        if reason in _PAUSED_FINE:
            return ProbeResult(OcfRc.SUCCESS)
        return ProbeResult(OcfRc.ERR_GENERIC, f"domain {name} is {status.describe()}")
    return ProbeResult(OcfRc.ERR_GENERIC, f"libvirt reports no state for domain {name}")


def judge_without_libvirt(name: str, uri: str, why: str, qemu_pid: int | None) -> ProbeResult:
    """The answer when libvirtd cannot be asked and /proc was searched instead."""
    if qemu_pid is not None:
        return ProbeResult(
            OcfRc.DEGRADED,
            f"libvirt at {uri} is not answering ({why}); QEMU of domain {name} runs as PID {qemu_pid}",
        )
    return ProbeResult(
        OcfRc.NOT_RUNNING,
        f"libvirt at {uri} is not answering ({why}) and no QEMU process of domain {name} runs here",
    )
