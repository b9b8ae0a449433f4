"""Our own exceptions for what goes wrong in libvirt, classified where libvirt is called.

Callers above ``vmha.virt`` never see ``libvirt.libvirtError``; they see one of::

    VirtError                      anything libvirt could not do
    ├── HypervisorUnreachable      cannot talk to the hypervisor (socket, RPC, auth, driver)
    │   └── HypervisorTimeout      the hypervisor did not answer before our deadline
    ├── DomainNotFound             no such domain (VIR_ERR_NO_DOMAIN)
    ├── DomainConflict             a domain with this name or UUID exists and differs
    ├── InvalidDomainConfig        libvirt or we reject the domain XML
    ├── OperationInvalid           not possible in the domain's state (VIR_ERR_OPERATION_INVALID)
    ├── OperationTimedOut          libvirt's own timeout (e.g. a job lock, VIR_ERR_OPERATION_TIMEOUT)
    ├── OperationUnsupported       driver or hypervisor cannot do this
    ├── LeaseHeld                  the lock manager refused a disk lease: another QEMU holds it
    ├── AgentError                 the QEMU guest agent
    │   ├── AgentNotConnected      no agent listening in the guest
    │   └── AgentUnresponsive      connected but not answering in time
    └── OperationFailed            any other libvirt failure

Every one is raised ``from`` the libvirt error, and its message is fit for an exit reason.
"""

from __future__ import annotations

from typing import Any


class VirtError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class HypervisorUnreachable(VirtError):
    pass


class HypervisorTimeout(HypervisorUnreachable):
    pass


class DomainNotFound(VirtError):
    pass


class DomainConflict(VirtError):
    pass


class InvalidDomainConfig(VirtError):
    pass


class OperationInvalid(VirtError):
    pass


class OperationTimedOut(VirtError):
    pass


class OperationUnsupported(VirtError):
    pass


class LeaseHeld(VirtError):
    """VIR_ERR_RESOURCE_BUSY from the lock manager (virtlockd "Lockspace resource ... is
    locked", sanlock "Failed to acquire lock"): a disk is leased by a QEMU elsewhere."""


class AgentError(VirtError):
    pass


class AgentNotConnected(AgentError):
    pass


class AgentUnresponsive(AgentError):
    pass


class OperationFailed(VirtError):
    pass


def _codes(lv: Any, *names: str) -> frozenset[int]:
    return frozenset(getattr(lv, n) for n in names if hasattr(lv, n))


def classify(exc: BaseException, what: str = "") -> VirtError:
    """Our exception for a ``libvirtError`` (or anything else libvirt raised)."""
    import libvirt as lv

    prefix = f"{what}: " if what else ""
    if isinstance(exc, VirtError):
        return exc
    if not isinstance(exc, lv.libvirtError):
        return OperationFailed(f"{prefix}{type(exc).__name__}: {exc}")
    code = exc.get_error_code()
    domain = exc.get_error_domain()
    text = (exc.get_error_message() or str(exc) or "unknown libvirt error").strip()
    message = f"{prefix}{text}"

    low = text.lower()
    if code in _codes(lv, "VIR_ERR_NO_DOMAIN"):
        return DomainNotFound(message, code)
    # libvirt reports "no agent in the guest" under the same code as "agent too slow": tell
    # them apart by the text, since one means "not booted / not installed", the other "hung".
    if code in _codes(lv, "VIR_ERR_AGENT_UNSYNCED") or (
        code in _codes(lv, "VIR_ERR_AGENT_UNRESPONSIVE", "VIR_ERR_ARGUMENT_UNSUPPORTED", "VIR_ERR_OPERATION_INVALID")
        and "agent" in low
        and ("not connected" in low or "not configured" in low)
    ):
        return AgentNotConnected(message, code)
    if code in _codes(lv, "VIR_ERR_AGENT_UNRESPONSIVE"):
        return AgentUnresponsive(message, code)
    unreachable_codes = _codes(
        lv,
        "VIR_ERR_NO_CONNECT",
        "VIR_ERR_RPC",
        "VIR_ERR_AUTH_FAILED",
        "VIR_ERR_AUTH_CANCELLED",
        "VIR_ERR_AUTH_UNAVAILABLE",
        "VIR_ERR_INVALID_CONN",
    )
    remote_domains = _codes(lv, "VIR_FROM_RPC", "VIR_FROM_REMOTE")
    if code in unreachable_codes or (
        domain in remote_domains and code in _codes(lv, "VIR_ERR_SYSTEM_ERROR", "VIR_ERR_INTERNAL_ERROR")
    ):
        return HypervisorUnreachable(message, code)
    if code in _codes(lv, "VIR_ERR_RESOURCE_BUSY"):
        return LeaseHeld(message, code)
    if code in _codes(lv, "VIR_ERR_DOM_EXIST"):
        return DomainConflict(message, code)
    if code in _codes(lv, "VIR_ERR_XML_ERROR", "VIR_ERR_XML_DETAIL", "VIR_ERR_CONFIG_UNSUPPORTED"):
        return InvalidDomainConfig(message, code)
    if code in _codes(lv, "VIR_ERR_OPERATION_INVALID"):
        return OperationInvalid(message, code)
    if code in _codes(lv, "VIR_ERR_OPERATION_TIMEOUT"):
        return OperationTimedOut(message, code)
    if code in _codes(lv, "VIR_ERR_NO_SUPPORT", "VIR_ERR_OPERATION_UNSUPPORTED", "VIR_ERR_ARGUMENT_UNSUPPORTED"):
        return OperationUnsupported(message, code)
    if code in _codes(lv, "VIR_ERR_OPERATION_FAILED") and (
        "already exists" in text or "already defined with uuid" in text
    ):
        return DomainConflict(message, code)
    return OperationFailed(message, code)
