"""Does the storage under a domain's disk files still answer on this host?

Two actions need to know, and libvirt cannot tell them (its view of a guest whose I/O hangs
is a domain that is "running"):

- migrate_to: a live migration ends with QEMU flushing and releasing every disk, which waits
  for the storage.  On a host whose path to the storage hangs, the migration can only run
  into its timeout (measured in the lab: 117 s of migrate_to before the stop), so it is
  refused at once and Pacemaker stops the VM here and starts it on the target instead.
- stop: a QEMU that was forced off may have left writes queued on a path that does not answer
  (a FUSE or NFS request the server has not taken, a block device's request queue); were the
  path to come back, they would land on a disk that by then belongs to the VM on another host.
  Only a reset of this host drops them, so the stop fails and fencing is the recovery.

The probe opens each disk file read-only (a FUSE or NFS open asks the server, so a path that
hangs makes it hang) and closes it; nothing is read or written.  Each open runs in its own
thread, all at once, for at most ``within`` seconds together; an open that is still blocked
then is abandoned (vmha.deadline).  Only disks of type ``file`` and ``block`` have a path on
this host; network disks (NBD, RBD, iSCSI by libvirt) are QEMU's own connections.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vmha.deadline import Background, Deadline

if TYPE_CHECKING:
    from vmha.virt.domxml import DiskInfo

SILENT = "does not answer"


def _open_close(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror})"
    os.close(fd)
    return ""


def probe(disks: Iterable[DiskInfo], within: float) -> dict[str, str]:
    """``{path: problem}`` for each local disk file that failed to open or did not answer
    within ``within`` seconds (the problem then starts with ``SILENT``); empty when all did."""
    paths = sorted({d.source for d in disks if d.type in ("file", "block") and d.source.startswith("/")})
    steps = {path: Background(_open_close, (path,), name=f"disk:{path}") for path in paths}
    limit = Deadline.after(max(0.0, within))  # one clock for all: the opens run side by side
    found: dict[str, str] = {}
    for path, step in steps.items():
        if not step.wait(limit.remaining()):
            found[path] = f"{SILENT} within {within:.1f}s"
        elif step.failure is not None:
            found[path] = f"cannot be opened ({step.failure})"
        elif step.result():
            found[path] = step.result()
    return found


def silent(found: dict[str, str]) -> list[str]:
    """The paths of ``probe``'s answer whose storage did not answer (an error is an answer)."""
    return [path for path, problem in found.items() if problem.startswith(SILENT)]
