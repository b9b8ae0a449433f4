"""A point in time that every blocking step of an action must finish before.

Pacemaker gives each operation a timeout (``OCF_RESKEY_CRM_meta_timeout``); an action turns
it into one ``Deadline`` and hands shares of it down, so no step can outlive the operation.
This module is a leaf: both ``vmha.ocf`` and ``vmha.virt`` use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
