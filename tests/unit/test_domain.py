"""``vmha.virt.domain.Domain`` over a stub connection: state mapping and the flags it passes."""

from __future__ import annotations

import libvirt
import pytest
from vmha.virt.domain import Domain, DomainState


class StubConn:
    def __init__(self):
        self.whats = []

    def call(self, fn, *args, what, deadline=None, per_domain=False):
        self.whats.append(what)
        return fn(*args)


class StubRaw:
    def __init__(self, state=(1, 1), info=(1, 2097152, 1048576, 2, 123)):
        self._state = state
        self._info = info
        self.calls = []

    def name(self):
        return "vm1"

    def UUIDString(self):  # noqa: N802 - libvirt's name
        return "c7a5fdbd-edaf-9455-926a-d65c16db1809"

    def state(self, flags):
        self.calls.append(("state", flags))
        return list(self._state)

    def info(self):
        self.calls.append(("info",))
        return list(self._info)

    def destroyFlags(self, flags):  # noqa: N802
        self.calls.append(("destroyFlags", flags))

    def XMLDesc(self, flags):  # noqa: N802
        self.calls.append(("XMLDesc", flags))
        return "<domain/>"

    def shutdownFlags(self, flags):  # noqa: N802
        self.calls.append(("shutdownFlags", flags))

    def jobInfo(self):  # noqa: N802
        return [2, 0, 0]


def make(**kw):
    conn = StubConn()
    raw = StubRaw(**kw)
    return Domain(raw, conn), raw, conn


@pytest.mark.parametrize(
    ("raw_state", "state", "reason"),
    [
        ((1, 1), DomainState.RUNNING, 1),
        ((3, 5), DomainState.PAUSED, 5),
        ((5, 2), DomainState.SHUTOFF, 2),
        ((42, 7), DomainState.NOSTATE, 7),
    ],
)
def test_status(raw_state, state, reason):
    dom, _raw, conn = make(state=raw_state)
    status = dom.status()
    assert (status.state, status.reason) == (state, reason)
    assert conn.whats == ["state of domain vm1"]


def test_info_asks_for_the_reason_only_when_paused():
    dom, raw, _conn = make(info=(1, 2097152, 1048576, 4, 0))
    info = dom.info()
    assert (info.status.state, info.max_memory_kib, info.memory_kib, info.vcpus) == (
        DomainState.RUNNING,
        2097152,
        1048576,
        4,
    )
    assert raw.calls == [("info",)]

    dom, raw, _conn = make(state=(3, 5), info=(3, 1024, 1024, 1, 0))
    info = dom.info()
    assert (info.status.state, info.status.reason) == (DomainState.PAUSED, 5)
    assert ("state", 0) in raw.calls


def test_unknown_info_state_is_nostate():
    dom, _raw, _conn = make(info=(99, 1, 1, 1, 0))
    assert dom.info().status.state is DomainState.NOSTATE


@pytest.mark.parametrize(
    ("graceful", "flags"), [(False, libvirt.VIR_DOMAIN_DESTROY_DEFAULT), (True, libvirt.VIR_DOMAIN_DESTROY_GRACEFUL)]
)
def test_destroy_flags(graceful, flags):
    dom, raw, _conn = make()
    dom.destroy(graceful=graceful)
    assert raw.calls == [("destroyFlags", flags)]


@pytest.mark.parametrize(
    ("kw", "flags"),
    [
        ({}, 0),
        ({"inactive": True}, libvirt.VIR_DOMAIN_XML_INACTIVE),
        ({"secure": True}, libvirt.VIR_DOMAIN_XML_SECURE),
        ({"inactive": True, "secure": True}, libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE),
    ],
)
def test_xml_flags(kw, flags):
    dom, raw, _conn = make()
    assert dom.xml(**kw) == "<domain/>"
    assert raw.calls == [("XMLDesc", flags)]


def test_identity_needs_no_call():
    dom, _raw, conn = make()
    assert (dom.name, dom.uuid()) == ("vm1", "c7a5fdbd-edaf-9455-926a-d65c16db1809")
    assert conn.whats == []


def test_job_type():
    dom, _raw, _conn = make()
    assert dom.job_type() == libvirt.VIR_DOMAIN_JOB_UNBOUNDED


class MigratingRaw(StubRaw):
    def __init__(self, release):
        super().__init__()
        self.release = release

    def migrateToURI3(self, uri, params, flags):  # noqa: N802
        self.calls.append(("migrateToURI3", uri, flags))
        self.release.wait(5)

    def migrate3(self, dconn, params, flags):  # noqa: N802
        self.calls.append(("migrate3", dconn, flags))
        return "dest-domain"


class WedgedConn(StubConn):
    def __init__(self):
        super().__init__()
        from vmha.virt import bounded

        self.wedge = bounded.Wedge()
        self.raw = "raw-conn"


def test_a_peer_to_peer_migration_is_followed_then_abandoned_and_wedges_the_connection():
    import threading

    from vmha.virt.errors import HypervisorTimeout

    release = threading.Event()
    conn = WedgedConn()
    raw = MigratingRaw(release)
    dom = Domain(raw, conn)
    try:
        pending = dom.start_migration({"bandwidth": 1}, 1, dest_uri="qemu+tcp://node2/system")
        assert not pending.wait(0.05)  # still inside libvirt: the caller follows it
        pending.abandon()
        assert conn.wedge, "an abandoned migration leaves its connection wedged"
        assert "migration of domain vm1" in conn.wedge.what
        with pytest.raises(HypervisorTimeout, match="not attempted"):
            dom.start_migration({}, 1, dest_uri="qemu+tcp://node2/system")
        assert [c[0] for c in raw.calls] == ["migrateToURI3"]
    finally:
        release.set()


def test_a_client_driven_migration_hands_libvirt_the_destination_connection():
    conn, dest = WedgedConn(), WedgedConn()
    dest.raw = "raw-dest"
    raw = MigratingRaw(None)
    pending = Domain(raw, conn).start_migration({}, 8, dest=dest)
    assert pending.wait(2)
    assert pending.result() == "dest-domain"
    assert raw.calls == [("migrate3", "raw-dest", 8)]
    assert not conn.wedge


def test_a_failed_migration_raises_a_classified_error():
    from vmha.virt.errors import VirtError

    class Failing(StubRaw):
        def migrateToURI3(self, uri, params, flags):  # noqa: N802
            raise libvirt.libvirtError("operation failed: migration out job: unexpectedly failed")

    pending = Domain(Failing(), WedgedConn()).start_migration({}, 1, dest_uri="qemu+tcp://x/system")
    assert pending.wait(2)
    with pytest.raises(VirtError):
        pending.result()
