"""The lab's shared storage, and one host's path to it that a test can cut or hang.

Our users' VMs live on NFS, iSCSI/FC LUNs or Ceph: storage every host reaches over its own
path.  Here no kernel module loads (no nfsd, no kernel NBD or iSCSI client, no
device-mapper), but /dev/fuse works and every lab host shares the machine's kernel and
filesystem.  So the storage is a directory of raw images on the machine (``run/storage``)
and every host mounts its *own* FUSE passthrough of it (bindfs, a child of the host's init)
at the same path, ``run/shared``, in its private mount namespace.  QEMU on every host opens
the same path; the bytes are the same file; yet each host's I/O goes through its own bindfs
process, which is its "path":

- **cut**: SIGKILL that host's bindfs.  Every request on its mount fails at once (ENOTCONN),
  as a dead HBA or a lost NFS server answer with errors; the other hosts see nothing.
- **hung**: SIGSTOP it.  Requests are queued and never answered, as on a hard NFS mount
  whose server vanished.  FUSE waits are killable (``request_wait_answer``), so QEMU stuck
  in such I/O still dies on SIGKILL; ``thaw`` (SIGCONT) lets the queue drain.

bindfs passes O_DIRECT through (``--forward-odirect``), so ``cache=none`` means what it means
on real storage: no host page cache between the guest's acknowledged write and the file.

The disk leases (virtlockd's lockspace) are *not* taken through a host's bindfs: bindfs
forwards locks with classic POSIX record locks, owned by its process, and the kernel drops
every such lock a process holds on a file when that process closes any descriptor of the
file.  Measured on bindfs 1.14.7 with ``--enable-lock-forwarding``: a lock held through the
mount is released on the underlying file as soon as another process opens and closes the
same file through that mount, which libvirt and QEMU do to every disk.  The lockspace is a
plain directory on the machine (``run/leases``) that every host's virtlockd locks in; they
share the kernel, so a lock one host holds is seen by all, and it goes away only when the
holder (virtlockd, on behalf of its QEMU) lets go or dies, as on a cluster filesystem.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from vmha.lab import proc
from vmha.lab.config import STORAGE_PID_FILE

BINDFS = "/usr/bin/bindfs"
MOUNT_TIMEOUT_S = 10.0
# libvirt migrates a VM live only when its disks are on a filesystem it knows every host
# shares (NFS, GFS2, OCFS2, CephFS, ...; of FUSE ones, "fuse.glusterfs" and "fuse.quobyte"
# by their /proc/mounts type): otherwise "Unsafe migration: Migration without shared storage
# is unsafe".  The lab's path is shared storage, so it is mounted under the FUSE type libvirt
# 9 trusts; VirtualMachine is then run as on NFS, without --unsafe.
FUSE_SUBTYPE = "glusterfs"
# O_DIRECT needs aligned buffers and offsets; 512 is what QEMU probes first
ODIRECT_ALIGNMENT = 512


def mounted(path: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """True when a FUSE filesystem is mounted at ``path`` (as this process's mounts say)."""
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 10 or fields[4] != path:
                    continue
                # after the optional fields comes " - fstype source options"
                rest = fields[fields.index("-") + 1 :] if "-" in fields else []
                if rest and rest[0].startswith("fuse"):
                    return True
    except OSError:
        return False
    return False


def mount_path(storage_dir: str, shared_dir: str) -> subprocess.Popen[bytes]:
    """In a host (its init calls this): mount the host's own path to the storage.

    bindfs runs in the foreground as a child of the host's init, so pulling the host's plug
    ends it with everything else; run as root it adds ``allow_other,default_permissions``,
    so QEMU (libvirt-qemu) reaches the images it owns and nothing else."""
    argv = [BINDFS, "-f", "--multithreaded", f"--forward-odirect={ODIRECT_ALIGNMENT}"]
    argv += ["-o", f"subtype={FUSE_SUBTYPE}", storage_dir, shared_dir]
    log = open("/var/log/libvirt/storage-path.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
    finally:
        log.close()
    end = time.monotonic() + MOUNT_TIMEOUT_S
    while not mounted(shared_dir):
        if child.poll() is not None or time.monotonic() > end:
            child.kill()
            raise RuntimeError(f"bindfs did not mount {shared_dir} (see /var/log/libvirt/storage-path.log)")
        time.sleep(0.02)
    with open(STORAGE_PID_FILE, "w") as f:
        f.write(f"{child.pid}\n")
    return child


def unmount_path(shared_dir: str) -> None:
    """In a host, at a clean shutdown: SIGTERM makes bindfs unmount (thawed first)."""
    try:
        with open(STORAGE_PID_FILE) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.kill(pid, sig)
        except OSError:
            return


def path_pid(init_pid: int) -> int | None:
    """From the machine: the PID of the bindfs that is the storage path of the host whose
    init is ``init_pid``; None when it has none (cut, or the host is off)."""
    for pid in proc.pids():
        if proc.comm(pid) == "bindfs" and pid != init_pid and proc.pid_in_node(pid, init_pid):
            return pid
    return None


class StorageFault(Exception):
    pass


def cut(init_pid: int) -> int:
    """Cut the host's path: its I/O to the shared storage fails from now on. Returns the PID."""
    pid = path_pid(init_pid)
    if pid is None:
        raise StorageFault("the host has no storage path to cut")
    os.kill(pid, signal.SIGKILL)
    return pid


def hang(init_pid: int) -> int:
    """Hang the host's path: its I/O to the shared storage never returns (until ``thaw``)."""
    pid = path_pid(init_pid)
    if pid is None:
        raise StorageFault("the host has no storage path to hang")
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw(init_pid: int) -> bool:
    """Let a hung path answer again; False when there is none."""
    pid = path_pid(init_pid)
    if pid is None:
        return False
    os.kill(pid, signal.SIGCONT)
    return True


def create_disk(image: str, mib: int, owner: tuple[int, int]) -> None:
    """A sparse raw image QEMU's user owns (0600): the disk carries its own DAC label, so
    libvirt is told not to relabel it (it would chown the shared file at every start and
    back at every stop, under a VM running on another host)."""
    tmp = image + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, mib * 1024 * 1024)
        os.fchown(fd, *owner)
    finally:
        os.close(fd)
    os.replace(tmp, image)
