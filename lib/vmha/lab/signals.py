"""SIGTERM behaves like Ctrl-C while the lab is being driven, so ``finally`` blocks (which
take the lab down) run on either."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    # also when started in the background by a shell, which sets SIGINT to "ignore": the
    # lab promises to clean up on Ctrl-C, so Ctrl-C must arrive
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
