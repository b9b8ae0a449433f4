"""Run a blocking libvirt call with a deadline it cannot outlive.

A libvirt call can block forever inside C (a libvirtd that accepts and never answers, an
NFS-backed pool refresh).  libvirt-python releases the GIL around its C calls, so we run
each call in a daemon thread and wait for it with a timeout.  When the deadline passes we
raise ``HypervisorTimeout`` and leave the thread behind: it is abandoned when the process
ends (the agent executable ends with ``os._exit``, so no finaliser waits on it).  Once a
call has hung, the connection is marked wedged and later calls fail at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from vmha.deadline import Background, Deadline
from vmha.virt.errors import HypervisorTimeout, classify

T = TypeVar("T")


class Wedge:
    """Shared flag: set once a call on a connection has hung."""

    __slots__ = ("what",)

    def __init__(self) -> None:
        self.what = ""

    def __bool__(self) -> bool:
        return bool(self.what)


class Caller(Protocol):
    """What a domain needs of its connection: the bounded call, the connection's deadline
    and wedge, and the binding's handle (for a migration's destination)."""

    raw: Any
    deadline: Deadline
    wedge: Wedge

    def call(
        self, fn: Any, *args: Any, what: str, deadline: Deadline | None = None, per_domain: bool = False
    ) -> Any: ...


class Pending(Background[Any]):
    """A libvirt call running in its own daemon thread (a migration: followed, not awaited).

    ``wedge``: the connection the call runs on, marked by ``abandon`` so that nothing waits
    on it afterwards (closing a connection with a call still inside libvirt would)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], what: str, wedge: Wedge | None = None) -> None:
        super().__init__(fn, args, name=f"libvirt:{what}")
        self.what = what
        self._wedge = wedge

    def result(self) -> Any:
        """The call's value; raises its classified error. Only after ``wait`` returned True."""
        failure = self.failure
        if failure is not None:
            raise classify(failure, self.what) from failure
        return super().result()

    def abandon(self) -> None:
        """Leave the call running inside libvirt and mark its connection wedged."""
        if self._wedge is not None and not self._wedge:
            self._wedge.what = self.what


def call(
    fn: Callable[..., T],
    *args: Any,
    deadline: Deadline,
    what: str,
    wedge: Wedge | None = None,
) -> T:
    """``fn(*args)`` or an exception from ``vmha.virt.errors``; never waits past ``deadline``.

    Raises HypervisorTimeout when the deadline passes; other libvirt errors are classified.
    """
    if wedge:
        raise HypervisorTimeout(f"{what}: not attempted, the hypervisor stopped answering during {wedge.what}")
    remaining = deadline.remaining()
    if remaining <= 0:
        raise HypervisorTimeout(f"{what}: no time left before the operation's deadline")
    pending = Pending(fn, args, what)
    if not pending.wait(remaining):
        if wedge is not None:
            wedge.what = what
        raise HypervisorTimeout(f"{what}: the hypervisor did not answer within {remaining:.1f}s")
    return pending.result()  # type: ignore[no-any-return]
