"""A fake ``libvirt`` module with real state, for tests of what the real test driver cannot do.

``FakeLibvirt()`` is a module object; ``install(monkeypatch)`` puts a fresh one in
``sys.modules['libvirt']`` for one test and resets ``vmha.virt.connection``'s one-time setup,
so every ``import libvirt`` in ``vmha.virt`` gets it.  Hypervisors are keyed by URI and hold
their domains, so connections opened by the agent, by its peer check and by a migration
all see the same state, and a test can set up two hosts::

    lv = install(monkeypatch)
    node1 = lv.hypervisor("qemu:///system", hostname="node1")
    node2 = lv.hypervisor("qemu://node2/system", "qemu+tcp://node2/system", hostname="node2")
    dom = node1.add_domain(XML, persistent=True, running=True)
    dom.ignore_shutdown = True          # a guest that never reacts to ACPI
    dom.destroy_failures = FOREVER      # QEMU stuck in D state
    node2.down = True                   # libvirtd not running there
    node1.hang()                        # libvirtd accepts and never answers

What it models, as libvirt does (codes and error domains are libvirt's own values, copied
from libvirt-python 9.0):

- a transient domain that stops (shutdown, destroy, save, migration) is gone: its handles
  answer VIR_ERR_NO_DOMAIN, like the QEMU and test drivers;
- lifecycle calls on an inactive domain raise VIR_ERR_OPERATION_INVALID, and so does a
  shutdown request to a guest that is not running (paused, suspended), as QEMU's driver does;
- createXML/defineXML refuse a name or UUID held by another domain (VIR_ERR_OPERATION_FAILED,
  VIR_FROM_DOMAIN, with virDomainObjListAdd's messages);
- a hypervisor that is down refuses open() with VIR_ERR_SYSTEM_ERROR from VIR_FROM_RPC;
  calls on a connection it had answer VIR_ERR_INTERNAL_ERROR from VIR_FROM_RPC;
- a hung hypervisor blocks open() and every call until the test ends (``release()``);
- migration blocks for ``migration_s`` seconds (in a threading.Event), shows an unbounded
  job meanwhile, and ``abortJob`` makes it raise VIR_ERR_OPERATION_ABORTED with the domain
  still running on the source.

Switches, besides those above: per domain ``shutdown_delay_s`` (the guest takes that long),
``shutdown_ignored`` (that many requests are lost, a guest still booting), ``destroy_error``
(``BUSY`` or ``BUSY_OPERATION_FAILED``), ``migration_ignores_abort`` (too far along to
cancel); per hypervisor ``hang_open`` / ``hang_calls`` / ``hang_exempt``, ``start_error``
(QEMU does not start), ``config_dir`` (defineXML writes ``<dir>/<name>.xml``, undefine
removes it, as libvirtd does with /etc/libvirt/qemu), ``pools`` and ``networks``.

Every call is recorded on its hypervisor (``hv.calls``, ``hv.called("shutdownFlags")``), every
open attempt on the module (``lv.opens``), and ``hv.open_connections`` counts what is not
closed yet.  ``test_vm_fake_libvirt.py`` runs the same operations on the real binding's
``test:///default`` driver and on the fake and compares the error codes.
"""

from __future__ import annotations

import os
import threading
import time
import types
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

# -- libvirt's numeric values (libvirt-python 9.0.0, read from the real module) -------------

VIR_ERR_OK = 0
VIR_ERR_INTERNAL_ERROR = 1
VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_INVALID_DOMAIN = 7
VIR_ERR_INVALID_ARG = 8
VIR_ERR_OPERATION_FAILED = 9
VIR_ERR_XML_ERROR = 27
VIR_ERR_DOM_EXIST = 28
VIR_ERR_OPERATION_DENIED = 29
VIR_ERR_XML_DETAIL = 35
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_NO_NETWORK = 43
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_NO_STORAGE_POOL = 49
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_CONFIG_UNSUPPORTED = 67
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_OPERATION_ABORTED = 78
VIR_ERR_AUTH_CANCELLED = 79
VIR_ERR_OPERATION_UNSUPPORTED = 84
VIR_ERR_AGENT_UNRESPONSIVE = 86
VIR_ERR_RESOURCE_BUSY = 87
VIR_ERR_AUTH_UNAVAILABLE = 94
VIR_ERR_AGENT_UNSYNCED = 97

VIR_FROM_NONE = 0
VIR_FROM_RPC = 7
VIR_FROM_QEMU = 10
VIR_FROM_TEST = 12
VIR_FROM_REMOTE = 13
VIR_FROM_STORAGE = 18
VIR_FROM_NETWORK = 19
VIR_FROM_DOMAIN = 20
VIR_FROM_LOCKING = 42

VIR_DOMAIN_NOSTATE = 0
VIR_DOMAIN_RUNNING = 1
VIR_DOMAIN_BLOCKED = 2
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_SHUTDOWN = 4
VIR_DOMAIN_SHUTOFF = 5
VIR_DOMAIN_CRASHED = 6
VIR_DOMAIN_PMSUSPENDED = 7

VIR_DOMAIN_RUNNING_BOOTED = 1
VIR_DOMAIN_RUNNING_MIGRATED = 2
VIR_DOMAIN_RUNNING_RESTORED = 3
VIR_DOMAIN_RUNNING_MIGRATION_CANCELED = 6
VIR_DOMAIN_PAUSED_USER = 1
VIR_DOMAIN_PAUSED_MIGRATION = 2
VIR_DOMAIN_PAUSED_IOERROR = 5
VIR_DOMAIN_SHUTOFF_UNKNOWN = 0
VIR_DOMAIN_SHUTOFF_SHUTDOWN = 1
VIR_DOMAIN_SHUTOFF_DESTROYED = 2
VIR_DOMAIN_SHUTOFF_MIGRATED = 4
VIR_DOMAIN_SHUTOFF_SAVED = 5

VIR_DOMAIN_XML_SECURE = 1
VIR_DOMAIN_XML_INACTIVE = 2

VIR_DOMAIN_JOB_NONE = 0
VIR_DOMAIN_JOB_UNBOUNDED = 2

VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN = 1
VIR_DOMAIN_SHUTDOWN_GUEST_AGENT = 2
VIR_DOMAIN_DESTROY_GRACEFUL = 1

VIR_MIGRATE_LIVE = 1
VIR_MIGRATE_PEER2PEER = 2
VIR_MIGRATE_PERSIST_DEST = 8
VIR_MIGRATE_UNDEFINE_SOURCE = 16

_CONSTANTS = {k: v for k, v in dict(globals()).items() if k.startswith("VIR_")}

FOREVER = -1
"""``destroy_failures = FOREVER``: destroy never succeeds."""

BUSY = (
    VIR_ERR_SYSTEM_ERROR,
    VIR_FROM_NONE,
    "Failed to terminate process 4242 with SIGKILL: Device or resource busy",
)
"""What qemuProcessKill reports for a QEMU stuck in uninterruptible sleep (virprocess.c)."""

BUSY_OPERATION_FAILED = (
    VIR_ERR_OPERATION_FAILED,
    VIR_FROM_QEMU,
    "operation failed: failed to kill qemu process with SIGTERM: Device or resource busy",
)

_ACTIVE = frozenset(
    {VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED, VIR_DOMAIN_PAUSED, VIR_DOMAIN_SHUTDOWN, VIR_DOMAIN_PMSUSPENDED}
)


class libvirtError(Exception):  # noqa: N801 - libvirt's own name
    """Same accessors as the binding's; built with the code and domain instead of read from
    virGetLastError()."""

    def __init__(self, message: str, code: int = VIR_ERR_INTERNAL_ERROR, domain: int = VIR_FROM_NONE) -> None:
        super().__init__(message)
        self.err = (code, domain, message, 2, None, None, None, 0, 0)

    def get_error_code(self) -> int:
        return self.err[0]

    def get_error_domain(self) -> int:
        return self.err[1]

    def get_error_message(self) -> str:
        return self.err[2]

    def get_error_level(self) -> int:
        return self.err[3]

    def get_str1(self) -> str | None:
        return self.err[4]


def _err(code: int, domain: int, message: str) -> libvirtError:
    return libvirtError(message, code, domain)


def _not_running() -> libvirtError:
    return _err(VIR_ERR_OPERATION_INVALID, VIR_FROM_DOMAIN, "Requested operation is not valid: domain is not running")


# -- domains -----------------------------------------------------------------------------


def parse_domain_xml(xml: str) -> tuple[str, str | None, int, int]:
    """(name, uuid, vcpus, max memory KiB) of a domain XML."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - XML written by the tests themselves
    except ET.ParseError as exc:
        raise _err(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, f"XML error: {exc}") from None
    name = (root.findtext("name") or "").strip()
    if root.tag != "domain" or not name:
        raise _err(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: missing domain name information")
    uuid = (root.findtext("uuid") or "").strip().lower() or None
    vcpu = root.find("vcpu")
    vcpus = int((vcpu.get("current") or vcpu.text or "1").strip()) if vcpu is not None else 1
    mem = root.find("memory")
    kib = 0
    if mem is not None:
        factor = {"kib": 1, "k": 1, "mib": 1024, "m": 1024, "gib": 1024**2, "g": 1024**2}[
            (mem.get("unit") or "KiB").lower()
        ]
        kib = int((mem.text or "0").strip()) * factor
    return name, uuid, vcpus, kib


@dataclass(eq=False)
class DomainRecord:
    """One domain as its hypervisor knows it. Tests read and set these fields directly."""

    name: str
    uuid: str
    xml: str
    vcpus: int
    max_memory_kib: int
    persistent: bool = False
    state: int = VIR_DOMAIN_SHUTOFF
    reason: int = VIR_DOMAIN_SHUTOFF_UNKNOWN
    autostart: bool = False
    # behaviours a test switches on
    ignore_shutdown: bool = False
    frozen: bool = False  # QEMU SIGSTOPped: a shutdown request never returns (destroy still works)
    shutdown_ignored: int = 0  # this many requests go unanswered first (a guest still booting)
    shutdown_delay_s: float = 0.0
    destroy_failures: int = 0  # FOREVER: never
    destroy_error: tuple[int, int, str] = BUSY
    migration_s: float = 0.0
    migration_ignores_abort: bool = False
    # the domain ID of the current run (tests bump it to stand for a restart)
    instance: int = 1
    # the running job (a migration), if any
    job: int = VIR_DOMAIN_JOB_NONE
    _abort: threading.Event | None = field(default=None, repr=False)
    _off_at: float | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in _ACTIVE


# -- hypervisors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    domain: str | None
    args: tuple[Any, ...]


class Hypervisor:
    """One libvirtd: its domains, pools, networks, and how it misbehaves.

    ``config_dir``: like /etc/libvirt/qemu, defineXML writes ``<dir>/<name>.xml`` and
    undefine removes it.
    """

    def __init__(self, lv: FakeLibvirt, uri: str, hostname: str, config_dir: str | None = None) -> None:
        self.lv = lv
        self.uri = uri
        self.hostname = hostname
        self.config_dir = config_dir
        self.domains: dict[str, DomainRecord] = {}  # by UUID
        self.pools: dict[str, bool] = {}  # name -> active
        self.networks: dict[str, bool] = {}
        self.down = False
        self.hang_open = False
        self.hang_calls = False
        self.hang_exempt: set[str] = set()  # methods that still answer while hang_calls is on
        self.start_error: tuple[int, int, str] | None = None  # createXML and create fail so (QEMU)
        self.calls: list[Call] = []
        self.open_connections = 0
        self.lock = threading.RLock()

    # -- what tests use to set up and inspect ----------------------------------------------

    def hang(self) -> None:
        """open() and every call block until the test ends."""
        self.hang_open = self.hang_calls = True

    def add_domain(
        self,
        xml: str,
        *,
        persistent: bool = True,
        running: bool = False,
        state: int | None = None,
        reason: int | None = None,
    ) -> DomainRecord:
        rec = self._record(xml)
        rec.persistent = persistent
        if running or state is not None:
            rec.state = state if state is not None else VIR_DOMAIN_RUNNING
            rec.reason = reason if reason is not None else VIR_DOMAIN_RUNNING_BOOTED
        elif not persistent:
            raise ValueError("a transient domain exists only while it runs")
        with self.lock:
            self.domains[rec.uuid] = rec
            if persistent:
                self._write_config(rec)
        return rec

    def domain(self, name: str) -> DomainRecord | None:
        with self.lock:
            self._settle()
            return next((d for d in self.domains.values() if d.name == name), None)

    def running(self, name: str) -> bool:
        rec = self.domain(name)
        return rec is not None and rec.active

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [c.args for c in self.calls if c.method == method]

    # -- internals ---------------------------------------------------------------------------

    def _record(self, xml: str) -> DomainRecord:
        name, uuid, vcpus, kib = parse_domain_xml(xml)
        return DomainRecord(name=name, uuid=uuid or str(uuidlib.uuid4()), xml=xml, vcpus=vcpus, max_memory_kib=kib)

    def _write_config(self, rec: DomainRecord) -> None:
        if self.config_dir:
            with open(os.path.join(self.config_dir, f"{rec.name}.xml"), "w", encoding="utf-8") as fh:
                fh.write(rec.xml)

    def _remove_config(self, rec: DomainRecord) -> None:
        if self.config_dir:
            try:
                os.unlink(os.path.join(self.config_dir, f"{rec.name}.xml"))
            except FileNotFoundError:
                pass

    def _settle(self) -> None:
        """Apply transitions that were due (a guest that shuts down after a delay)."""
        now = time.monotonic()
        for rec in list(self.domains.values()):
            if rec._off_at is not None and now >= rec._off_at:
                rec._off_at = None
                self._power_off(rec, VIR_DOMAIN_SHUTOFF_SHUTDOWN)

    def _power_off(self, rec: DomainRecord, reason: int) -> None:
        rec._off_at = None
        rec.job = VIR_DOMAIN_JOB_NONE
        if rec.persistent:
            rec.state, rec.reason = VIR_DOMAIN_SHUTOFF, reason
        else:
            rec.state = VIR_DOMAIN_SHUTOFF
            self.domains.pop(rec.uuid, None)  # a transient domain is gone once it stops

    def _block(self) -> None:
        self.lv._released.wait()
        raise _err(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, "internal error: client socket is closed")

    def _enter(self, method: str, domain: str | None, args: tuple[Any, ...]) -> None:
        """Every call starts here: record it, then hang or fail as the hypervisor does."""
        self.calls.append(Call(method, domain, args))
        if self.hang_calls and method not in self.hang_exempt:
            self._block()
        if self.down:
            raise _err(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, "internal error: client socket is closed")

    def _find(self, uuid: str) -> DomainRecord:
        self._settle()
        rec = self.domains.get(uuid)
        if rec is None:
            raise _err(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, f"Domain not found: no domain with matching uuid '{uuid}'")
        return rec

    def _conflict(self, name: str, uuid: str | None) -> DomainRecord | None:
        """virDomainObjListAdd's checks; the existing domain with this UUID, if any."""
        self._settle()
        same_uuid = self.domains.get(uuid) if uuid else None
        if same_uuid is not None:
            if same_uuid.name != name:
                raise _err(
                    VIR_ERR_OPERATION_FAILED,
                    VIR_FROM_DOMAIN,
                    f"operation failed: domain '{same_uuid.name}' is already defined with uuid {uuid}",
                )
            return same_uuid
        for rec in self.domains.values():
            if rec.name == name:
                raise _err(
                    VIR_ERR_OPERATION_FAILED,
                    VIR_FROM_DOMAIN,
                    f"operation failed: domain '{name}' already exists with uuid {rec.uuid}",
                )
        return None


# -- the binding's objects ---------------------------------------------------------------


class virConnect:  # noqa: N801 - libvirt's own name
    def __init__(self, hv: Hypervisor, uri: str, readonly: bool) -> None:
        self.hv = hv
        self.uri = uri
        self.readonly = readonly
        self.closed = False
        self.keepalive: tuple[int, int] | None = None

    def _enter(self, method: str, *args: Any, write: bool = False, domain: str | None = None) -> None:
        if self.closed:
            raise _err(VIR_ERR_INVALID_CONN, VIR_FROM_NONE, "invalid connection pointer in " + method)
        self.hv._enter(method, domain, args)
        if write and self.readonly:
            raise _err(
                VIR_ERR_OPERATION_DENIED,
                VIR_FROM_NONE,
                f"operation forbidden: read only access prevents virDomain{method[0].upper()}{method[1:]}",
            )

    def _dom(self, rec: DomainRecord) -> virDomain:
        return virDomain(self, rec.uuid, rec.name)

    def close(self) -> int:
        if not self.closed:
            self.closed = True
            with self.hv.lock:
                self.hv.open_connections -= 1
                self.hv.calls.append(Call("close", None, ()))
        return 0

    def setKeepAlive(self, interval: int, count: int) -> int:  # noqa: N802
        self._enter("setKeepAlive", interval, count)
        self.keepalive = (interval, count)
        return 0

    def getHostname(self) -> str:  # noqa: N802
        self._enter("getHostname")
        return self.hv.hostname

    def getURI(self) -> str:  # noqa: N802
        return self.uri

    def lookupByName(self, name: str) -> virDomain:  # noqa: N802
        self._enter("lookupByName", name)
        with self.hv.lock:
            rec = self.hv.domain(name)
            if rec is None:
                raise _err(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, f"Domain not found: no domain with matching name '{name}'")
            return self._dom(rec)

    def lookupByUUIDString(self, uuid: str) -> virDomain:  # noqa: N802
        self._enter("lookupByUUIDString", uuid)
        with self.hv.lock:
            return self._dom(self.hv._find(uuid.lower()))

    def listAllDomains(self, flags: int = 0) -> list[virDomain]:  # noqa: N802
        self._enter("listAllDomains", flags)
        with self.hv.lock:
            self.hv._settle()
            return [self._dom(r) for r in self.hv.domains.values()]

    def createXML(self, xml: str, flags: int = 0) -> virDomain:  # noqa: N802
        self._enter("createXML", xml, flags, write=True)
        if self.hv.start_error:
            raise _err(*self.hv.start_error)
        with self.hv.lock:
            new = self.hv._record(xml)
            rec = self.hv._conflict(new.name, new.uuid)
            if rec is not None:
                if rec.active:
                    raise _err(
                        VIR_ERR_OPERATION_INVALID,
                        VIR_FROM_DOMAIN,
                        f"Requested operation is not valid: domain '{rec.name}' is already active",
                    )
                # an inactive persistent domain starts with this XML as its live definition
                rec.vcpus, rec.max_memory_kib = new.vcpus, new.max_memory_kib
            else:
                rec = new
                self.hv.domains[rec.uuid] = rec
            rec.state, rec.reason = VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED
            return self._dom(rec)

    def defineXML(self, xml: str) -> virDomain:  # noqa: N802
        self._enter("defineXML", xml, write=True)
        with self.hv.lock:
            new = self.hv._record(xml)
            rec = self.hv._conflict(new.name, new.uuid)
            if rec is None:
                rec = new
                self.hv.domains[rec.uuid] = rec
            else:
                rec.xml = xml
                if not rec.active:
                    rec.vcpus, rec.max_memory_kib = new.vcpus, new.max_memory_kib
            rec.persistent = True
            self.hv._write_config(rec)
            return self._dom(rec)

    def restore(self, path: str) -> int:
        self._enter("restore", path, write=True)
        try:
            with open(path, encoding="utf-8") as fh:
                magic, _, xml = fh.read().partition("\n")
        except OSError as exc:
            raise _err(VIR_ERR_SYSTEM_ERROR, VIR_FROM_QEMU, f"cannot open '{path}': {exc.strerror}") from None
        if magic != _SAVE_MAGIC:
            raise _err(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "operation failed: image magic is incorrect")
        with self.hv.lock:
            new = self.hv._record(xml)
            rec = self.hv._conflict(new.name, new.uuid)
            if rec is not None and rec.active:
                raise _err(
                    VIR_ERR_OPERATION_INVALID,
                    VIR_FROM_DOMAIN,
                    f"Requested operation is not valid: domain '{rec.name}' is already active",
                )
            if rec is None:
                rec = new
                self.hv.domains[rec.uuid] = rec
            rec.state, rec.reason = VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_RESTORED
        return 0

    def storagePoolLookupByName(self, name: str) -> _Switchable:  # noqa: N802
        self._enter("storagePoolLookupByName", name)
        if name not in self.hv.pools:
            raise _err(
                VIR_ERR_NO_STORAGE_POOL,
                VIR_FROM_STORAGE,
                f"Storage pool not found: no storage pool with matching name '{name}'",
            )
        return _Switchable(self, self.hv.pools, name, "pool")

    def networkLookupByName(self, name: str) -> _Switchable:  # noqa: N802
        self._enter("networkLookupByName", name)
        if name not in self.hv.networks:
            raise _err(
                VIR_ERR_NO_NETWORK, VIR_FROM_NETWORK, f"Network not found: no network with matching name '{name}'"
            )
        return _Switchable(self, self.hv.networks, name, "network")


class _Switchable:
    """A storage pool or a network: active or not."""

    def __init__(self, conn: virConnect, table: dict[str, bool], name: str, kind: str) -> None:
        self.conn, self.table, self._name, self.kind = conn, table, name, kind

    def name(self) -> str:
        return self._name

    def isActive(self) -> int:  # noqa: N802
        self.conn._enter(f"{self.kind}.isActive", self._name)
        return int(self.table[self._name])

    def create(self, flags: int = 0) -> int:
        self.conn._enter(f"{self.kind}.create", self._name, write=True)
        if self.table[self._name]:
            raise _err(
                VIR_ERR_OPERATION_INVALID,
                VIR_FROM_STORAGE,
                f"Requested operation is not valid: {self.kind} is already active",
            )
        self.table[self._name] = True
        return 0

    def refresh(self, flags: int = 0) -> int:
        self.conn._enter(f"{self.kind}.refresh", self._name)
        if not self.table[self._name]:
            raise _err(
                VIR_ERR_OPERATION_INVALID,
                VIR_FROM_STORAGE,
                f"Requested operation is not valid: {self.kind} is not active",
            )
        return 0


_SAVE_MAGIC = "LibvirtQemudSave (fake)"


class virDomain:  # noqa: N801 - libvirt's own name
    """A handle: names a domain by UUID, like the binding's virDomainPtr."""

    def __init__(self, conn: virConnect, uuid: str, name: str) -> None:
        self._conn = conn
        self._uuid = uuid
        self._name = name

    @property
    def hv(self) -> Hypervisor:
        return self._conn.hv

    def _enter(self, method: str, *args: Any, write: bool = False) -> DomainRecord:
        """Record the call, then the domain's record (raises VIR_ERR_NO_DOMAIN when it is gone)."""
        self._conn._enter(method, *args, write=write, domain=self._name)
        with self.hv.lock:
            try:
                return self.hv._find(self._uuid)
            except libvirtError as exc:
                raise _err(
                    exc.get_error_code(), exc.get_error_domain(), f"{exc.get_error_message()} ({self._name})"
                ) from None

    # cached in the binding: no RPC, never hangs
    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # noqa: N802
        return self._uuid

    def ID(self) -> int:  # noqa: N802 - cached in the binding as well; a new start gets a new id
        rec = self.hv.domain(self._name)
        return rec.instance if rec is not None and rec.active else -1

    def state(self, flags: int = 0) -> list[int]:
        rec = self._enter("state", flags)
        return [rec.state, rec.reason]

    def info(self) -> list[int]:
        rec = self._enter("info")
        mem = rec.max_memory_kib if rec.active else 0
        return [rec.state, rec.max_memory_kib, mem, rec.vcpus, 1_000_000_000]

    def isActive(self) -> int:  # noqa: N802
        return int(self._enter("isActive").active)

    def isPersistent(self) -> int:  # noqa: N802
        return int(self._enter("isPersistent").persistent)

    def XMLDesc(self, flags: int = 0) -> str:  # noqa: N802
        return self._enter("XMLDesc", flags).xml

    def create(self) -> int:
        rec = self._enter("create", write=True)
        if self.hv.start_error:
            raise _err(*self.hv.start_error)
        with self.hv.lock:
            if rec.active:
                raise _err(
                    VIR_ERR_OPERATION_INVALID,
                    VIR_FROM_DOMAIN,
                    "Requested operation is not valid: domain is already running",
                )
            rec.state, rec.reason = VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED
        return 0

    def shutdownFlags(self, flags: int = 0) -> int:  # noqa: N802
        rec = self._enter("shutdownFlags", flags, write=True)
        if rec.frozen:
            self.hv.lv._released.wait()  # libvirt waits for QEMU's monitor, which never answers
            raise _err(
                VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "Timed out during operation: cannot acquire state change lock"
            )
        with self.hv.lock:
            if not rec.active:
                raise _not_running()
            if rec.state != VIR_DOMAIN_RUNNING:
                # qemuDomainShutdownFlagsMonitor/Agent: a paused, suspended or already
                # shutting-down guest cannot be asked.
                raise _err(
                    VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "Requested operation is not valid: domain is not running"
                )
            if rec.ignore_shutdown or rec._off_at is not None:
                return 0
            if rec.shutdown_ignored > 0:
                rec.shutdown_ignored -= 1
                return 0
            if rec.shutdown_delay_s > 0:
                # The guest OS shuts down meanwhile; libvirt keeps reporting "running" until
                # QEMU says the guest powered off.
                rec._off_at = time.monotonic() + rec.shutdown_delay_s
            else:
                self.hv._power_off(rec, VIR_DOMAIN_SHUTOFF_SHUTDOWN)
        return 0

    def shutdown(self) -> int:
        return self.shutdownFlags(0)

    def destroyFlags(self, flags: int = 0) -> int:  # noqa: N802
        rec = self._enter("destroyFlags", flags, write=True)
        with self.hv.lock:
            if not rec.active:
                raise _not_running()
            if rec.destroy_failures != 0:
                if rec.destroy_failures > 0:
                    rec.destroy_failures -= 1
                raise _err(*rec.destroy_error)
            if rec._abort is not None:
                rec._abort.set()  # destroy cancels a migration job, as in QEMU
            self.hv._power_off(rec, VIR_DOMAIN_SHUTOFF_DESTROYED)
        return 0

    def destroy(self) -> int:
        return self.destroyFlags(0)

    def undefine(self) -> int:
        return self.undefineFlags(0)

    def undefineFlags(self, flags: int = 0) -> int:  # noqa: N802
        rec = self._enter("undefine", flags, write=True)
        with self.hv.lock:
            if not rec.persistent:
                raise _err(
                    VIR_ERR_OPERATION_INVALID,
                    VIR_FROM_QEMU,
                    "Requested operation is not valid: cannot undefine transient domain",
                )
            rec.persistent = False
            self.hv._remove_config(rec)
            if not rec.active:
                self.hv.domains.pop(rec.uuid, None)
        return 0

    def setAutostart(self, autostart: int) -> int:  # noqa: N802
        rec = self._enter("setAutostart", autostart, write=True)
        if not rec.persistent:
            raise _err(
                VIR_ERR_OPERATION_INVALID,
                VIR_FROM_QEMU,
                "Requested operation is not valid: cannot set autostart for transient domain",
            )
        rec.autostart = bool(autostart)
        return 0

    def setMetadata(  # noqa: N802
        self,
        type: int,
        metadata: str | None,
        key: str | None,
        uri: str | None,
        flags: int = 0,  # noqa: A002
    ) -> int:
        # takes a job in libvirt (Domain.wait_for_jobs relies on it); the fake has no jobs
        self._enter("setMetadata", type, metadata, key, uri, flags, write=True)
        return 0

    def save(self, path: str) -> int:
        rec = self._enter("save", path, write=True)
        with self.hv.lock:
            if not rec.active:
                raise _not_running()
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(f"{_SAVE_MAGIC}\n{rec.xml}")
            except OSError as exc:
                raise _err(
                    VIR_ERR_SYSTEM_ERROR, VIR_FROM_QEMU, f"Failed to create file '{path}': {exc.strerror}"
                ) from None
            self.hv._power_off(rec, VIR_DOMAIN_SHUTOFF_SAVED)
        return 0

    def jobInfo(self) -> list[int]:  # noqa: N802
        rec = self._enter("jobInfo")
        return [rec.job] + [0] * 11

    def abortJob(self) -> int:  # noqa: N802
        rec = self._enter("abortJob", write=True)
        with self.hv.lock:
            if rec._abort is None:
                raise _err(
                    VIR_ERR_OPERATION_INVALID,
                    VIR_FROM_QEMU,
                    "Requested operation is not valid: no job is active on the domain",
                )
            rec._abort.set()
        return 0

    def migrateSetMaxDowntime(self, downtime: int, flags: int = 0) -> int:  # noqa: N802
        self._enter("migrateSetMaxDowntime", downtime, flags, write=True)
        return 0

    def migrateStartPostCopy(self, flags: int = 0) -> int:  # noqa: N802
        rec = self._enter("migrateStartPostCopy", flags, write=True)
        if rec._abort is None:
            raise _err(
                VIR_ERR_OPERATION_INVALID,
                VIR_FROM_QEMU,
                "Requested operation is not valid: "
                "post-copy can only be started while outgoing migration is in progress",
            )
        return 0

    def migrate3(self, dconn: virConnect, params: dict[str, Any], flags: int) -> virDomain:
        self._enter("migrate3", dconn.uri, dict(params), flags, write=True)
        return self._migrate(dconn, flags)

    def migrateToURI3(self, dconnuri: str, params: dict[str, Any], flags: int) -> int:  # noqa: N802
        self._enter("migrateToURI3", dconnuri, dict(params), flags, write=True)
        if not flags & VIR_MIGRATE_PEER2PEER:
            raise _err(
                VIR_ERR_OPERATION_INVALID,
                VIR_FROM_QEMU,
                "Requested operation is not valid: migrateToURI3 needs VIR_MIGRATE_PEER2PEER",
            )
        # libvirtd on this host opens the destination itself
        dconn = self.hv.lv._open(dconnuri, readonly=False, record=True)
        try:
            self._migrate(dconn, flags)
        finally:
            dconn.close()
        return 0

    def _migrate(self, dconn: virConnect, flags: int) -> virDomain:
        src, dst = self.hv, dconn.hv
        with src.lock:
            rec = src._find(self._uuid)
            if not rec.active:
                raise _not_running()
            if rec._abort is not None:
                raise _err(
                    VIR_ERR_OPERATION_INVALID,
                    VIR_FROM_QEMU,
                    "Requested operation is not valid: another migration job is already running",
                )
            abort = rec._abort = threading.Event()
            rec.job = VIR_DOMAIN_JOB_UNBOUNDED
        try:
            deadline = time.monotonic() + rec.migration_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if abort.wait(left) and not rec.migration_ignores_abort:
                    raise _err(
                        VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "operation aborted: migration out: canceled by client"
                    )
                if abort.is_set():
                    abort.clear()  # ignored; keep copying
            if self.hv.lv._released.is_set():
                raise _err(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "operation aborted: test ended")
            first, second = sorted((src, dst), key=id)
            with first.lock, second.lock:
                if not rec.active:
                    raise _err(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "operation failed: domain is no longer running")
                if dst._conflict(rec.name, rec.uuid) is not None and dst._find(rec.uuid).active:
                    raise _err(
                        VIR_ERR_OPERATION_INVALID,
                        VIR_FROM_DOMAIN,
                        f"Requested operation is not valid: domain '{rec.name}' is already active",
                    )
                moved = DomainRecord(
                    name=rec.name,
                    uuid=rec.uuid,
                    xml=rec.xml,
                    vcpus=rec.vcpus,
                    max_memory_kib=rec.max_memory_kib,
                    persistent=bool(flags & VIR_MIGRATE_PERSIST_DEST) or rec.uuid in dst.domains,
                    state=VIR_DOMAIN_RUNNING,
                    reason=VIR_DOMAIN_RUNNING_MIGRATED,
                )
                dst.domains[moved.uuid] = moved
                if moved.persistent:
                    dst._write_config(moved)
                if flags & VIR_MIGRATE_UNDEFINE_SOURCE and rec.persistent:
                    rec.persistent = False
                    src._remove_config(rec)
                src._power_off(rec, VIR_DOMAIN_SHUTOFF_MIGRATED)
                return virDomain(dconn, moved.uuid, moved.name)
        finally:
            with src.lock:
                rec._abort = None
                rec.job = VIR_DOMAIN_JOB_NONE


# -- the module --------------------------------------------------------------------------


class FakeLibvirt(types.ModuleType):
    """What ``vmha.virt`` imports as ``libvirt``."""

    libvirtError = libvirtError

    def __init__(self) -> None:
        super().__init__("libvirt", "fake libvirt (tests/fakes/libvirt.py)")
        for name, value in {**_CONSTANTS, "virConnect": virConnect, "virDomain": virDomain}.items():
            setattr(self, name, value)
        self.hypervisors: dict[str, Hypervisor] = {}
        self.opens: list[tuple[str, bool]] = []  # (uri, readonly), every attempt
        self.error_handlers: list[tuple[Any, Any]] = []
        self.event_impl_registered = 0
        self._released = threading.Event()

    def hypervisor(
        self, uri: str, *aliases: str, hostname: str = "localhost", config_dir: str | None = None
    ) -> Hypervisor:
        """The hypervisor at ``uri`` (and ``aliases``), created on first use."""
        hv = self.hypervisors.get(uri)
        if hv is None:
            hv = Hypervisor(self, uri, hostname, config_dir)
        for u in (uri, *aliases):
            self.hypervisors[u] = hv
        return hv

    def release(self) -> None:
        """End of the test: hung calls fail, migrations in progress are aborted."""
        self._released.set()
        for hv in set(self.hypervisors.values()):
            with hv.lock:
                for rec in hv.domains.values():
                    if rec._abort is not None:
                        rec.migration_ignores_abort = False
                        rec._abort.set()

    # -- module functions ----------------------------------------------------------------

    def _open(self, uri: str, *, readonly: bool, record: bool = True) -> virConnect:
        if record:
            self.opens.append((uri, readonly))
        hv = self.hypervisors.get(uri)
        if hv is not None and hv.hang_open:
            hv._block()
        if hv is None or hv.down:
            host = uri.partition("://")[2].partition("/")[0]
            if host:
                message = f"unable to connect to server at '{host}:16509': Connection refused"
            else:
                message = "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"
            raise _err(VIR_ERR_SYSTEM_ERROR, VIR_FROM_RPC, message)
        with hv.lock:
            hv.open_connections += 1
            hv.calls.append(Call("open", None, (uri, readonly)))
        return virConnect(hv, uri, readonly)

    def open(self, name: str | None = None) -> virConnect:  # noqa: A003 - libvirt's own name
        return self._open(name or "qemu:///system", readonly=False)

    def openReadOnly(self, name: str | None = None) -> virConnect:  # noqa: N802
        return self._open(name or "qemu:///system", readonly=True)

    def registerErrorHandler(self, f: Any, ctx: Any) -> int:  # noqa: N802
        self.error_handlers.append((f, ctx))
        return 1

    def virEventRegisterDefaultImpl(self) -> int:  # noqa: N802
        self.event_impl_registered += 1
        return 0

    def virEventRunDefaultImpl(self) -> int:  # noqa: N802
        # The agent runs this in an endless daemon loop; the fake has no events to deliver,
        # so the loop thread parks here for good instead of spinning.
        threading.Event().wait()
        return 0

    def getVersion(self) -> int:  # noqa: N802
        return 9000000


def install(monkeypatch: Any) -> FakeLibvirt:
    """A fresh fake as ``sys.modules['libvirt']`` for one test, with vmha.virt's one-time
    libvirt setup (error handler, event loop) forgotten so it happens again on the fake.
    Call ``release()`` when the test ends."""
    import sys

    from vmha.virt import connection

    fake = FakeLibvirt()
    monkeypatch.setitem(sys.modules, "libvirt", fake)
    monkeypatch.setattr(connection, "_quiet", False)
    monkeypatch.setattr(connection, "_event_loop", False)
    return fake
