"""Run a blocking libvirt call with a deadline it cannot outlive.

A libvirt call can block forever inside C (a libvirtd that accepts and never answers, an
NFS-backed pool refresh).  libvirt-python releases the GIL around its C calls, so we run
each call in a daemon thread and wait for it with a timeout.  When the deadline passes we
raise ``HypervisorTimeout`` and leave the thread behind: it is abandoned when the process
ends (the agent executable ends with ``os._exit``, so no finaliser waits on it).  Once a
call has hung, the connection is marked wedged and later calls fail at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vmha.deadline import Deadline
from vmha.virt.errors import HypervisorTimeout, classify

T = TypeVar("T")


class Wedge:
    """Shared flag: set once a call on a connection has hung."""

    __slots__ = ("what",)

    def __init__(self) -> None:
        self.what = ""

    def __bool__(self) -> bool:
        return bool(self.what)


class Pending:
    """A libvirt call running in its own daemon thread."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
        self.what = what
        self._value: list[Any] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, args=(fn, args), name=f"libvirt:{what}", daemon=True)
        self._thread.start()

    def _work(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value.append(fn(*args))
        except BaseException as exc:  # handed over to the waiting thread
            self._failure.append(exc)

    def wait(self, seconds: float) -> bool:
        """True when the call has finished (successfully or not)."""
        self._thread.join(max(0.0, seconds))
        return not self._thread.is_alive()

    def result(self) -> Any:
        """The call's value; raises its classified error. Only after ``wait`` returned True."""
        if self._failure:
            raise classify(self._failure[0], self.what) from self._failure[0]
        return self._value[0]


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
