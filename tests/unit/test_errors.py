"""``classify`` against errors the real libvirt binding raises (test:/// driver, a missing socket)."""

from __future__ import annotations

import uuid

import libvirt
import pytest
from vmha.virt import errors
from vmha.virt.errors import classify

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # keep libvirt's own printer quiet


@pytest.fixture(scope="module")
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


def raised_by(fn, *args):
    with pytest.raises(libvirt.libvirtError) as info:
        fn(*args)
    return info.value


def synthetic(code, domain, message):
    """A libvirtError carrying a given code, as the binding builds it from virGetLastError."""
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return exc


def test_missing_domain_is_domain_not_found(conn):
    exc = raised_by(conn.lookupByName, "vmha-no-such-domain")
    got = classify(exc, "lookup of vmha-no-such-domain")
    assert type(got) is errors.DomainNotFound
    assert got.code == libvirt.VIR_ERR_NO_DOMAIN
    assert got.message.startswith("lookup of vmha-no-such-domain: ")


def test_destroy_of_a_stopped_domain_is_operation_invalid(conn):
    name = f"vmha-unit-{uuid.uuid4().hex[:8]}"
    xml = f"<domain type='test'><name>{name}</name><memory>8192</memory><os><type>hvm</type></os></domain>"
    dom = conn.defineXML(xml)  # defined, not started: leaves the shared default domain alone
    try:
        exc = raised_by(dom.destroy)
    finally:
        dom.undefine()
    got = classify(exc)
    assert type(got) is errors.OperationInvalid
    assert "not running" in got.message


def test_unreachable_socket_is_hypervisor_unreachable():
    exc = raised_by(libvirt.open, "qemu+unix:///system?socket=/nonexistent")
    got = classify(exc, "connect to qemu:///system")
    assert isinstance(got, errors.HypervisorUnreachable)
    assert not isinstance(got, errors.HypervisorTimeout)


def test_bad_xml_is_invalid_config(conn):
    exc = raised_by(conn.defineXML, "<domain type='test'><name>x</name>")
    assert type(classify(exc)) is errors.InvalidDomainConfig


def test_same_name_other_uuid_is_a_conflict(conn):
    xml = (
        f"<domain type='test'><name>test</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory>8192</memory><os><type>hvm</type></os></domain>"
    )
    exc = raised_by(conn.defineXML, xml)
    assert "already exists" in exc.get_error_message()
    assert type(classify(exc)) is errors.DomainConflict


def test_same_uuid_other_name_is_a_conflict(conn):
    test_dom = conn.lookupByName("test")
    xml = (
        f"<domain type='test'><name>vmha-dup-{uuid.uuid4().hex[:6]}</name><uuid>{test_dom.UUIDString()}</uuid>"
        "<memory>8192</memory><os><type>hvm</type></os></domain>"
    )
    exc = raised_by(conn.defineXML, xml)
    assert exc.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED
    assert type(classify(exc)) is errors.DomainConflict


def test_non_libvirt_exception_is_operation_failed():
    got = classify(ValueError("bad value"), "state of domain vm1")
    assert type(got) is errors.OperationFailed
    assert got.message == "state of domain vm1: ValueError: bad value"
    assert got.code is None


def test_virt_error_passes_through_unchanged():
    original = errors.DomainNotFound("gone", 42)
    assert classify(original, "ignored") is original


def test_libvirt_error_without_details_is_operation_failed():
    libvirt.virResetLastError()  # else the binding takes the message of this thread's last error
    exc = libvirt.libvirtError("no details")
    exc.err = None
    got = classify(exc)
    assert type(got) is errors.OperationFailed
    assert "no details" in got.message


@pytest.mark.parametrize(
    ("code", "domain", "message", "cls"),
    [
        ("VIR_ERR_RPC", "VIR_FROM_RPC", "Cannot recv data: Connection reset by peer", errors.HypervisorUnreachable),
        ("VIR_ERR_NO_CONNECT", "VIR_FROM_NONE", "no connection driver available", errors.HypervisorUnreachable),
        ("VIR_ERR_AUTH_FAILED", "VIR_FROM_REMOTE", "authentication failed", errors.HypervisorUnreachable),
        ("VIR_ERR_INTERNAL_ERROR", "VIR_FROM_RPC", "End of file while reading data", errors.HypervisorUnreachable),
        ("VIR_ERR_SYSTEM_ERROR", "VIR_FROM_QEMU", "cannot open file", errors.OperationFailed),
        ("VIR_ERR_OPERATION_TIMEOUT", "VIR_FROM_QEMU", "cannot acquire state change lock", errors.OperationTimedOut),
        ("VIR_ERR_NO_SUPPORT", "VIR_FROM_QEMU", "this function is not supported", errors.OperationUnsupported),
        ("VIR_ERR_OPERATION_UNSUPPORTED", "VIR_FROM_QEMU", "not supported", errors.OperationUnsupported),
        ("VIR_ERR_CONFIG_UNSUPPORTED", "VIR_FROM_QEMU", "unsupported configuration", errors.InvalidDomainConfig),
        ("VIR_ERR_DOM_EXIST", "VIR_FROM_QEMU", "domain already exists", errors.DomainConflict),
        ("VIR_ERR_OPERATION_FAILED", "VIR_FROM_QEMU", "domain 'vm1' already exists with uuid x", errors.DomainConflict),
        ("VIR_ERR_OPERATION_FAILED", "VIR_FROM_QEMU", "migration failed", errors.OperationFailed),
        (
            "VIR_ERR_AGENT_UNRESPONSIVE",
            "VIR_FROM_QEMU",
            "Guest agent is not responding: Guest agent not available for now",
            errors.AgentUnresponsive,
        ),
        ("VIR_ERR_AGENT_UNSYNCED", "VIR_FROM_QEMU", "guest agent replied with wrong id", errors.AgentNotConnected),
        (
            "VIR_ERR_ARGUMENT_UNSUPPORTED",
            "VIR_FROM_QEMU",
            "argument unsupported: QEMU guest agent is not configured",
            errors.AgentNotConnected,
        ),
    ],
)
def test_codes(code, domain, message, cls):
    exc = synthetic(getattr(libvirt, code), getattr(libvirt, domain), message)
    got = classify(exc)
    assert type(got) is cls
    assert got.code == getattr(libvirt, code)


def test_agent_not_connected_as_libvirt_reports_it():
    exc = synthetic(
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        libvirt.VIR_FROM_QEMU,
        "Guest agent is not responding: QEMU guest agent is not connected",
    )
    assert type(classify(exc)) is errors.AgentNotConnected


def test_a_lease_held_elsewhere_is_lease_held():
    # the text virtlockd gives (libvirt 9, lockd with a file_lockspace_dir)
    msg = "resource busy: Lockspace resource '6a6ede8c' is locked"
    got = classify(synthetic(libvirt.VIR_ERR_RESOURCE_BUSY, libvirt.VIR_FROM_LOCKING, msg), "start vm1")
    assert type(got) is errors.LeaseHeld
    assert got.message == f"start vm1: {msg}"
