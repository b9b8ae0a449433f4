"""A libvirt domain: its state and lifecycle calls, each bounded by the connection's deadline.

No policy here (what a state means for the cluster is decided in ``vmha.verdicts``); this
module only asks libvirt and reports in our own types.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from vmha.deadline import Deadline
from vmha.virt import bounded
from vmha.virt.errors import DomainNotFound, HypervisorTimeout


class DomainState(IntEnum):
    """``virDomainState`` (stable libvirt ABI values)."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7


class PausedReason(IntEnum):
    """``virDomainPausedReason``."""

    UNKNOWN = 0
    USER = 1
    MIGRATION = 2
    SAVE = 3
    DUMP = 4
    IOERROR = 5
    WATCHDOG = 6
    FROM_SNAPSHOT = 7
    SHUTTING_DOWN = 8
    SNAPSHOT = 9
    CRASHED = 10
    STARTING_UP = 11
    POSTCOPY = 12
    POSTCOPY_FAILED = 13
    API_ERROR = 14


class ShutdownMode(IntEnum):
    """``virDomainShutdownFlagValues``: how a graceful shutdown is asked of the guest."""

    DEFAULT = 0
    ACPI = 1
    AGENT = 2
    INITCTL = 4
    SIGNAL = 8
    PARAVIRT = 16


# virDomainSetMetadata's VIR_DOMAIN_METADATA_ELEMENT, and a namespace nobody sets: the
# barrier of Domain.wait_for_jobs removes an element that is never there.
ELEMENT_METADATA = 2
BARRIER_NS = "urn:vmha:barrier"

SHUTDOWN_MODES = {
    "acpi": ShutdownMode.ACPI,
    "agent": ShutdownMode.AGENT,
    "initctl": ShutdownMode.INITCTL,
    "signal": ShutdownMode.SIGNAL,
    "paravirt": ShutdownMode.PARAVIRT,
}


class DomainStatus(NamedTuple):
    state: DomainState
    reason: int

    @property
    def active(self) -> bool:
        """QEMU (or the hypervisor's equivalent) is there for this domain."""
        return self.state not in (DomainState.SHUTOFF, DomainState.CRASHED, DomainState.NOSTATE)

    def describe(self) -> str:
        name = self.state.name.lower()
        if self.state is DomainState.PAUSED:
            try:
                return f"paused ({PausedReason(self.reason).name.lower()})"
            except ValueError:
                return f"paused (reason {self.reason})"
        return name


class DomainInfo(NamedTuple):
    status: DomainStatus
    max_memory_kib: int
    memory_kib: int
    vcpus: int


class Domain:
    """One domain of one connection.  It knows its connection only as a ``bounded.Caller``
    (the bounded call, the deadline, the wedge): ``vmha.virt.connection`` builds domains,
    this module never imports it."""

    def __init__(self, raw: Any, conn: bounded.Caller) -> None:
        self.raw = raw
        self.conn = conn

    def _call(self, fn: Any, *args: Any, what: str, deadline: Deadline | None = None, per_domain: bool = False) -> Any:
        return self.conn.call(fn, *args, what=f"{what} of domain {self.name}", deadline=deadline, per_domain=per_domain)

    @property
    def deadline(self) -> Deadline:
        """The deadline of the connection this domain was found on."""
        return self.conn.deadline

    @property
    def name(self) -> str:
        return str(self.raw.name())  # cached in the binding, no RPC

    def uuid(self) -> str:
        return str(self.raw.UUIDString())  # cached in the binding, no RPC

    def domain_id(self) -> int:
        """libvirt's id of the running domain (-1 when shut off), as it was when looked up:
        held in the binding's handle, no RPC; a new id means the domain was started again."""
        return int(self.raw.ID())

    def status(self) -> DomainStatus:
        """The state; a transient domain that vanished (it was shut off) reads as shut off."""
        try:
            state, reason = self._call(self.raw.state, 0, what="state")
        except DomainNotFound:
            return DomainStatus(DomainState.SHUTOFF, 0)
        try:
            return DomainStatus(DomainState(state), int(reason))
        except ValueError:
            return DomainStatus(DomainState.NOSTATE, int(reason))

    def info(self) -> DomainInfo:
        """State, memory and vCPUs in one call (what the monitor needs for utilization)."""
        state, max_mem, mem, vcpus, _cpu_time = self._call(self.raw.info, what="info")
        try:
            st = DomainState(state)
        except ValueError:
            st = DomainState.NOSTATE
        # info() has no reason; ask for it only when it matters (paused).
        reason = self.status().reason if st is DomainState.PAUSED else 0
        return DomainInfo(DomainStatus(st, reason), int(max_mem), int(mem), int(vcpus))

    def is_persistent(self) -> bool:
        return bool(self._call(self.raw.isPersistent, what="persistence"))

    def xml(self, *, inactive: bool = False, secure: bool = False) -> str:
        import libvirt

        flags = 0
        if inactive:
            flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
        if secure:
            flags |= libvirt.VIR_DOMAIN_XML_SECURE
        return str(self._call(self.raw.XMLDesc, flags, what="XML"))

    def start(self) -> None:
        self._call(self.raw.create, what="start")

    def shutdown(self, modes: int, deadline: Deadline | None = None) -> None:
        """Ask the guest to shut down. A frozen QEMU never answers the request: bounded by
        ``deadline`` without marking the connection wedged, so a destroy can follow."""
        self._call(self.raw.shutdownFlags, modes, what="shutdown", deadline=deadline, per_domain=True)

    def destroy(self, *, graceful: bool = False, deadline: Deadline | None = None) -> None:
        flags = 1 if graceful else 0  # VIR_DOMAIN_DESTROY_GRACEFUL: SIGTERM only, no SIGKILL
        self._call(self.raw.destroyFlags, flags, what="destroy", deadline=deadline)

    def undefine(self) -> None:
        self._call(self.raw.undefine, what="undefine")

    def save(self, path: str) -> None:
        self._call(self.raw.save, path, what=f"save to {path}")

    def abort_job(self, deadline: Deadline | None = None) -> None:
        self._call(self.raw.abortJob, what="abort job", deadline=deadline)

    def job_type(self) -> int:
        """``virDomainJobType`` of the running job (0 = none)."""
        info = self._call(self.raw.jobInfo, what="job info")
        return int(info[0])

    def set_max_downtime(self, ms: int) -> None:
        self._call(self.raw.migrateSetMaxDowntime, ms, 0, what="set migration downtime")

    def start_postcopy(self) -> None:
        self._call(self.raw.migrateStartPostCopy, 0, what="switch migration to post-copy")

    def start_migration(
        self, params: dict[str, object], flags: int, *, dest_uri: str = "", dest: bounded.Caller | None = None
    ) -> bounded.Pending:
        """Begin a live migration and return it running in its own thread, to be followed
        (job info, downtime, post-copy, abort) and waited for by the caller.

        ``dest``: a connection to the destination (the client drives it: migrate3);
        without it, libvirtd connects to ``dest_uri`` itself (peer-to-peer: migrateToURI3).
        Refused at once on a wedged connection.  A migration the caller gives up on must be
        ``abandon``ed: it may still complete inside libvirt, and its connection is wedged.
        """
        what = f"migration of domain {self.name}"
        if self.conn.wedge:
            raise HypervisorTimeout(
                f"{what}: not attempted, the hypervisor stopped answering during {self.conn.wedge.what}"
            )
        if dest is not None:
            return bounded.Pending(self.raw.migrate3, (dest.raw, params, flags), what, self.conn.wedge)
        return bounded.Pending(self.raw.migrateToURI3, (dest_uri, params, flags), what, self.conn.wedge)

    def wait_for_jobs(self) -> None:
        """Return once no job libvirt was running on this domain when asked is still running.

        libvirt runs one job at a time per domain, and a start, restore or incoming migration
        holds one until it has finished.  Removing a metadata element that is never set takes
        such a job and changes nothing (measured on libvirt 9: it returns when the start job
        ends, 11.3 s into a 12 s launch); libvirt gives up waiting for a job after 30 s,
        which arrives here as a VirtError."""
        self._call(self.raw.setMetadata, ELEMENT_METADATA, None, None, BARRIER_NS, 0, what="wait for jobs")

    def set_autostart(self, on: bool) -> None:
        self._call(self.raw.setAutostart, 1 if on else 0, what="set autostart")
