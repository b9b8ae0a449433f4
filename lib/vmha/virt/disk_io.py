"""Does the storage under a domain's disk files still answer on this host?

Two actions need to know, and libvirt cannot tell them (its view of a guest whose I/O hangs
is a domain that is "running"):

- migrate_to: a live migration ends with QEMU flushing and releasing every disk, which waits
  for the storage.  On a host whose path to the storage hangs, the migration can only run
  into its timeout (measured in the lab: 117 s of migrate_to before the stop), so it is
  refused at once and Pacemaker stops the VM here and starts it on the target instead.
- stop: a QEMU that was forced off may have left writes queued on a path that does not answer
  (a FUSE or NFS request the server has not taken, dirty pages of a writeback cache); were the
  path to come back, they would land on a disk that by then belongs to the VM on another host.
  Only a reset of this host drops them, so the stop fails and fencing is the recovery.

The probe opens each disk read-only and, for a regular file, reads its first 4 KiB with
O_DIRECT (past the page cache, so the server must answer: an open alone can be answered
locally, with an NFSv4 delegation, ``nocto`` or FUSE without open); nothing is written.  A
block device is only opened: a read could block uninterruptibly in its request queue
(multipath ``queue_if_no_path``), so a hung SAN path is left to HypervisorHealth and to
fencing on the stop's timeout.  Each disk is probed in its own thread, all at once, for at
most ``within`` seconds together; a probe still blocked then is abandoned (vmha.deadline).
Only writable disks count (a read-only disk or a CD-ROM queues no writes: a hung ISO share
must not fence every host with media attached), and only disks of type ``file`` and
``block`` have a path here: ``volume`` disks (libvirt pools) are not resolved, and network
disks (NBD, RBD, iSCSI by libvirt) are QEMU's own connections.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vmha.deadline import Background, Deadline

if TYPE_CHECKING:
    from vmha.virt.domxml import DiskInfo

SILENT = "does not answer"


READ_BYTES = 4096  # one block, aligned for O_DIRECT on any sector size up to 4 KiB


def _open_close(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror})"
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _read_direct(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    return ""


def _read_direct(path: str) -> None:
    """One block read past the page cache, so the server or the device must answer (an open
    can be answered locally: an NFSv4 delegation, ``nocto``, FUSE without open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a filesystem without O_DIRECT: the open answered
            return
        raise
    try:
        buf = mmap.mmap(-1, READ_BYTES)  # page-aligned, as O_DIRECT wants
        try:
            os.preadv(fd, [buf], 0)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        finally:
            buf.close()
    finally:
        os.close(fd)


def probe(disks: Iterable[DiskInfo], within: float) -> dict[str, str]:
    """``{path: problem}`` for each local disk file that failed to open or did not answer
    within ``within`` seconds (the problem then starts with ``SILENT``); empty when all did."""
    paths = sorted(
        {
            d.source
            for d in disks
            if d.type in ("file", "block")
            and d.source.startswith("/")
            and not d.readonly
            and d.device not in ("cdrom", "floppy")
        }
    )
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
