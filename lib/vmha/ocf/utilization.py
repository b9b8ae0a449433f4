"""Utilization written to the CIB only when it changes: one rule for a resource's
(VirtualMachine: cpu, host_memory, hv_memory) and a node's (HypervisorHealth: capacity).

Every CIB write makes Pacemaker abort and recompute the transition in progress (the very
start that writes it, too), so a value is written only when it differs from what the agent
last wrote, remembered in its state file.  With nothing remembered (a start, a failover
target, the first monitor since boot) the CIB is read first, once, so that values already
there are not rewritten.  A value of None means "delete it" (deleting an absent value
changes nothing, so deletes alone need no read).  Pure logic: the caller gives
the read and the write (``vmha.ocf.cluster.ClusterTools``) and keeps the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from vmha.ocf.runner import CommandError


class Synced(NamedTuple):
    known: dict[str, str]  # what the CIB holds now, as far as we know (absent: not a key)
    wrote: list[str]  # "key=value" per value set, "-key" per value deleted, in order
    read_error: CommandError | None  # the CIB could not be read first (the writes went ahead)
    write_error: CommandError | None  # the write that failed; later keys were not tried


def remembered(state: object) -> dict[str, str] | None:
    """The utilization a state file remembers, None when it remembers none ({} is "the CIB
    has none of ours").  Older state files kept a deleted value as ""; absent here."""
    if not isinstance(state, dict):
        return None
    return {str(k): str(v) for k, v in state.items() if v not in ("", None)}


def unchanged(wanted: Mapping[str, str | None], known: Mapping[str, str] | None) -> bool:
    """Whether ``known`` (``remembered``) already is ``wanted``: the usual monitor, which then
    runs no cluster tool at all."""
    if known is None:
        return False
    return all(k not in known if v is None else known.get(k) == v for k, v in wanted.items())


def sync(
    wanted: Mapping[str, str | None],
    known: Mapping[str, str] | None,
    read: Callable[[], Mapping[str, str]],
    write: Callable[[str, str | None], None],
) -> Synced:
    """Bring the CIB to ``wanted``: ``write(key, value)`` sets, ``write(key, None)`` deletes;
    both raise CommandError.  ``known``: what was last written (``remembered``), None when
    nothing is: then ``read()`` (raises CommandError) answers once, before any write."""
    read_error = None
    current: dict[str, str] | None = dict(known) if known is not None else None
    # Only a value to set is worth a read: deleting one that is not there changes nothing.
    if current is None and any(v is not None for v in wanted.values()):
        try:
            current = {k: v for k, v in read().items() if v != ""}
        except CommandError as exc:
            read_error = exc  # unknown: every value is written
    after = dict(current or {})
    wrote: list[str] = []
    for key, value in wanted.items():
        if current is not None and (key not in current if value is None else current.get(key) == value):
            continue
        try:
            write(key, value)
        except CommandError as exc:
            return Synced(after, wrote, read_error, exc)
        if value is None:
            after.pop(key, None)
            wrote.append(f"-{key}")
        else:
            after[key] = value
            wrote.append(f"{key}={value}")
    return Synced(after, wrote, read_error, None)
