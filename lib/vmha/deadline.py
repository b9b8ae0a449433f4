"""A point in time that every blocking step of an action must finish before, and the one way
we wait for a step that cannot be interrupted.

Pacemaker gives each operation a timeout (``OCF_RESKEY_CRM_meta_timeout``); an action turns
it into one ``Deadline`` and hands shares of it down, so no step can outlive the operation.

Some steps block inside C or the kernel, where no timeout reaches (a libvirt call to a hung
libvirtd, ``statvfs`` on a hung NFS mount, name resolution): ``Background`` runs such a step
in a daemon thread that the caller waits for at most its share of the deadline.  A step still
running then is abandoned, not stopped: the agent process ends with ``os._exit``, so nothing
waits for the thread, and the caller must treat the step's effect as unknown (it may still
complete later).  This module is a leaf: ``vmha.ocf``, ``vmha.virt`` and the agents use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Deadline:
    """Expires at a fixed ``time.monotonic()`` instant."""

    __slots__ = ("expires_at", "_clock")

    def __init__(self, expires_at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.expires_at = expires_at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.expires_at

    def earlier(self, seconds: float) -> Deadline:
        """The deadline ``seconds`` before this one (to keep a reserve for later steps)."""
        return Deadline(self.expires_at - seconds, self._clock)

    def within(self, seconds: float) -> Deadline:
        """This deadline, or ``seconds`` from now if that comes first."""
        return Deadline(min(self.expires_at, self._clock() + seconds), self._clock)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"


class Background(Generic[T]):
    """``fn(*args)`` running in its own daemon thread, started at once (see the top)."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...] = (), *, name: str) -> None:
        self.name = name
        self._value: list[T] = []
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _work(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        try:
            self._value.append(fn(*args))
        except BaseException as exc:  # handed over to the waiting thread
            self._failure.append(exc)

    def wait(self, seconds: float) -> bool:
        """True when the step has finished (successfully or not) within ``seconds``."""
        self._thread.join(max(0.0, seconds))
        return not self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """What the finished step raised, None when it returned (only after ``wait`` is True)."""
        return self._failure[0] if self._failure else None

    def result(self) -> T:
        """The finished step's value; raises what it raised.  Only after ``wait`` is True."""
        if self._failure:
            raise self._failure[0]
        return self._value[0]


def run_within(fn: Callable[..., T], seconds: float, *args: Any, name: str) -> tuple[bool, T | None]:
    """(finished, value) of ``fn(*args)`` given at most ``seconds``; (False, None) when it is
    still running then (abandoned, see the top).  What ``fn`` raises is raised here."""
    step = Background(fn, args, name=name)
    if not step.wait(seconds):
        return False, None
    return True, step.result()
