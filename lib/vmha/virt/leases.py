"""Disk leases: does libvirt on this host guard a domain's disks with a lock manager?

The cluster's guards against one VM running on two hosts (fencing, the peer check, the
stop that settles an abandoned start) all depend on the cluster being right about where the
VM runs.  A disk lease is the guard that holds when the cluster is wrong (a VM started by
hand, a start or migration that completed late, a split brain with fencing off): libvirt
asks its lock manager for every disk before QEMU runs, and a disk leased by a QEMU on
another host is refused ("resource busy").  libvirt has two lock managers:

- ``lockd`` (virtlockd): with ``auto_disk_leases`` (its default) every file and block disk
  gets a lease, either a POSIX lock on the disk itself or, with ``file_lockspace_dir`` (or
  the LVM/SCSI lockspace dirs), a lock on a file named by the SHA-256 of the disk's path in
  a directory every host must share.  Network disks (NBD, RBD, iSCSI by libvirt) are not
  locked.
- ``sanlock``: with ``auto_disk_leases = 1`` (default 0) the same per disk, on sanlock's own
  lease area; otherwise only explicit ``<lease>`` elements in the domain XML.

This reads the host's configuration (``/etc/libvirt/qemu.conf`` and the manager's own file),
so it is only meaningful for a libvirt on this host.  The parser reads the libvirt config
syntax's ``key = value`` lines (strings and integers), which is all these keys use.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from vmha.virt.domxml import DiskInfo, DomainConfig

ETC_LIBVIRT = "/etc/libvirt"
MANAGERS = ("lockd", "sanlock")
# libvirt's own defaults when the key is absent (src/locking/lock_driver_*.c)
AUTO_DISK_LEASES_DEFAULT = {"lockd": True, "sanlock": False}
_LINE = re.compile(r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|-?[0-9]+)\s*(?:#.*)?$""")
MAX_CONF_BYTES = 256 * 1024


def parse_conf(text: str) -> dict[str, str | int]:
    """The scalar settings of a libvirt config file (lists and anything odd are skipped)."""
    out: dict[str, str | int] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        key, raw = m.group(1), m.group(2)
        out[key] = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else int(raw)
    return out


def _read_conf(path: str) -> dict[str, str | int] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_conf(f.read(MAX_CONF_BYTES))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class LockSetup:
    """How libvirt on this host leases disks (``manager`` None: it does not)."""

    manager: str | None
    auto_disk_leases: bool = False
    lockspace_dir: str | None = None  # lockd's file_lockspace_dir: leases by path hash

    def describe(self) -> str:
        if self.manager is None:
            return "no lock manager (qemu.conf lock_manager unset)"
        auto = "a lease per disk" if self.auto_disk_leases else "explicit <lease> elements only"
        where = f", lockspace {self.lockspace_dir}" if self.lockspace_dir else ""
        return f"lock manager {self.manager} ({auto}{where})"


def lock_setup(etc: str = ETC_LIBVIRT, driver: str = "qemu") -> LockSetup:
    """This host's lock manager setup. Raises OSError when a file exists but is unreadable."""
    conf = _read_conf(os.path.join(etc, f"{driver}.conf")) or {}
    manager = conf.get("lock_manager")
    if not isinstance(manager, str) or manager in ("", "nop"):
        return LockSetup(None)
    own = _read_conf(os.path.join(etc, f"{driver}-{manager}.conf")) or {}
    auto = own.get("auto_disk_leases")
    lockspace = own.get("file_lockspace_dir") if manager == "lockd" else None
    return LockSetup(
        manager,
        bool(auto) if isinstance(auto, int) else AUTO_DISK_LEASES_DEFAULT.get(manager, False),
        lockspace if isinstance(lockspace, str) and lockspace else None,
    )


def needs_lease(disk: DiskInfo) -> bool:
    """Disks a second writer would corrupt: writable and not meant to be shared."""
    return not disk.readonly and not disk.shareable and disk.device not in ("cdrom", "floppy")


def unprotected_disks(cfg: DomainConfig, setup: LockSetup) -> list[DiskInfo]:
    """The writable disks of ``cfg`` no lease guards under ``setup``."""
    wanting = [d for d in cfg.disks if needs_lease(d)]
    if setup.manager is None:
        return wanting
    if cfg.leases and setup.manager in MANAGERS:
        return []  # a lease on the domain itself: no second copy of it starts anywhere
    if not setup.auto_disk_leases:
        return wanting
    # automatic leases cover what libvirt resolves to a local path: files, block devices
    # and pool volumes; a disk QEMU opens over the network is never locked
    return [d for d in wanting if d.type not in ("file", "block", "volume")]


def describe_disk(disk: DiskInfo) -> str:
    return disk.source or f"{disk.target or '?'} ({disk.type})"


def lease_resource(path: str) -> str:
    """lockd's lockspace file name for a disk at ``path`` (with a lockspace directory)."""
    return hashlib.sha256(path.encode()).hexdigest()


_RESOURCE = re.compile(r"[0-9a-f]{64}")


def disk_in_error(message: str, disks: tuple[DiskInfo, ...]) -> str | None:
    """The disk a lock manager's refusal names: a path it quotes, or a lockspace resource
    (the SHA-256 of the path) matched back to one of ``disks``."""
    for d in disks:
        if d.source and d.source in message:
            return d.source
    hashes = set(_RESOURCE.findall(message))
    for d in disks:
        if d.source and lease_resource(d.source) in hashes:
            return d.source
    return None
