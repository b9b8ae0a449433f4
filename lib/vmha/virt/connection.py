"""A libvirt connection whose every call is bounded by a deadline, and which is always closed.

Use as a context manager::

    with Connection.open(uri, deadline) as conn:
        dom = conn.lookup_by_name("vm1")

Keepalive: for actions that hold a connection for long (start, stop, migration) we register
libvirt's default event loop, run it in a daemon thread, and ask for keepalive probes, so a
peer that vanishes mid-operation is noticed by libvirt itself.  The monitor does not: it
holds the connection for milliseconds and the deadline already bounds it.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from vmha.deadline import Deadline
from vmha.virt import bounded
from vmha.virt.domain import Domain
from vmha.virt.errors import DomainNotFound, VirtError

KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3

_setup_lock = threading.Lock()
_quiet = False
_event_loop = False


def _libvirt() -> Any:
    """The libvirt module, with its default error printer silenced (errors reach us as exceptions)."""
    global _quiet
    import libvirt

    if not _quiet:
        with _setup_lock:
            if not _quiet:
                libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
                _quiet = True
    return libvirt


def _ensure_event_loop(lv: Any) -> None:
    global _event_loop
    with _setup_lock:
        if _event_loop:
            return
        lv.virEventRegisterDefaultImpl()

        def loop() -> None:
            while True:
                lv.virEventRunDefaultImpl()

        threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
        _event_loop = True


class Connection:
    def __init__(self, raw: Any, uri: str, deadline: Deadline, wedge: bounded.Wedge) -> None:
        self.raw = raw
        self.uri = uri
        self.deadline = deadline
        self.wedge = wedge
        self._closed = False

    @classmethod
    def open(cls, uri: str, deadline: Deadline, *, keepalive: bool = False, readonly: bool = False) -> Connection:
        """Connect to ``uri`` before ``deadline``.

        Raises HypervisorUnreachable (HypervisorTimeout when it does not answer in time).
        """
        lv = _libvirt()
        if keepalive:
            _ensure_event_loop(lv)
        wedge = bounded.Wedge()
        opener = lv.openReadOnly if readonly else lv.open
        raw = bounded.call(opener, uri, deadline=deadline, what=f"connect to {uri}", wedge=wedge)
        conn = cls(raw, uri, deadline, wedge)
        if keepalive:
            try:
                conn.call(raw.setKeepAlive, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT, what="set keepalive")
            except VirtError:
                pass  # local drivers (test://, qemu:/// in-process) have no keepalive to set
        return conn

    def call(self, fn: Any, *args: Any, what: str, deadline: Deadline | None = None, per_domain: bool = False) -> Any:
        """``fn(*args)`` bounded by ``deadline`` (default: the connection's).

        ``per_domain``: a call that can hang on one domain's QEMU (a frozen guest) while
        libvirtd answers everything else; its timeout does not mark the connection wedged, so
        the caller can still, e.g., destroy that domain.
        """
        # An already wedged connection still refuses at once; only the marking is skipped.
        wedge = None if per_domain and not self.wedge else self.wedge
        return bounded.call(fn, *args, deadline=deadline or self.deadline, what=what, wedge=wedge)

    def close(self) -> None:
        """Close the connection unless it is wedged (closing would wait for the hung daemon)."""
        if self._closed:
            return
        self._closed = True
        if self.wedge:
            return
        try:
            bounded.call(self.raw.close, deadline=self.deadline.within(2.0), what="close connection")
        except VirtError:
            pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, *, uuid: str | None = None, name: str | None = None) -> Domain:
        """The domain with ``uuid`` if given (rename-proof), else by ``name``.

        Raises DomainNotFound.
        """
        if uuid:
            # Names are unique per host: a domain with our name and another UUID is not ours.
            raw = self.call(self.raw.lookupByUUIDString, uuid, what=f"look up domain {uuid}")
            return Domain(raw, self)
        if not name:
            raise DomainNotFound("no domain name or UUID to look up")
        raw = self.call(self.raw.lookupByName, name, what=f"look up domain {name}")
        return Domain(raw, self)

    def find(self, *, uuid: str | None = None, name: str | None = None) -> Domain | None:
        try:
            return self.lookup(uuid=uuid, name=name)
        except DomainNotFound:
            return None

    # -- lifecycle -------------------------------------------------------------------------

    def create_transient(self, xml: str) -> Domain:
        raw = self.call(self.raw.createXML, xml, 0, what="create domain")
        return Domain(raw, self)

    def define(self, xml: str) -> Domain:
        raw = self.call(self.raw.defineXML, xml, what="define domain")
        return Domain(raw, self)

    def restore(self, path: str) -> None:
        self.call(self.raw.restore, path, what=f"restore domain from {path}")

    def hostname(self) -> str:
        return str(self.call(self.raw.getHostname, what="get hypervisor host name"))

    def ensure_pool_active(self, name: str) -> None:
        """Start the storage pool ``name`` if it is inactive, then refresh it."""
        pool = self.call(self.raw.storagePoolLookupByName, name, what=f"look up pool {name}")
        if not self.call(pool.isActive, what=f"pool {name} state"):
            self.call(pool.create, 0, what=f"start pool {name}")
        self.call(pool.refresh, 0, what=f"refresh pool {name}")

    def ensure_network_active(self, name: str) -> None:
        net = self.call(self.raw.networkLookupByName, name, what=f"look up network {name}")
        if not self.call(net.isActive, what=f"network {name} state"):
            self.call(net.create, what=f"start network {name}")
