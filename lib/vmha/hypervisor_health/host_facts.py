"""What Linux tells about the host in /proc and /sys, read without extra daemons.

Every reader takes ``root`` (``/`` on a host, a fake tree in tests) and skips what is absent:
a host without EDAC, thermal zones, SCSI disks or md arrays simply has nothing to report.
Values that do not parse are skipped too, never guessed.  Reading these files is local and
quick (no program runs); they are plain reads, the kernel answers them from memory.
"""

from __future__ import annotations

import os
import re

from vmha.verdicts.host_health import LinkState, MdArray, ThermalZone

_INTERFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\Z")


def _path(root: str, *parts: str) -> str:
    return os.path.join(root, *parts)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(4096).strip()
    except OSError:  # absent, or a driver that refuses the read (EINVAL on a down link)
        return None


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def mem_available_kib(root: str = "/") -> int | None:
    """MemAvailable from /proc/meminfo in KiB, None if it cannot be read."""
    text = _read(_path(root, "proc", "meminfo"))
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        if key == "MemAvailable":
            fields = rest.split()
            return _int(fields[0]) if fields else None
    return None


def filesystem_space(path: str, root: str = "/", *, timeout: float) -> tuple[int, int] | None:
    """(size, space free for unprivileged writers) in bytes of the filesystem holding ``path``;
    None when it cannot be read (the path is absent).

    Raises TimeoutError when the filesystem does not answer within ``timeout`` (a hung NFS
    mount blocks statvfs in the kernel): the reading thread is left behind, as the agents
    leave a hung libvirt call behind (the process ends with ``os._exit``).
    """
    from vmha.deadline import run_within

    def read() -> os.statvfs_result | None:
        try:
            return os.statvfs(_path(root, path.lstrip("/")))
        except OSError:
            return None

    done, st = run_within(read, timeout, name=f"statvfs:{path}")
    if not done:
        raise TimeoutError(f"{path} did not answer within {timeout:.1f}s")
    if st is None:
        return None
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def storage_probe(directory: str, node: str, root: str = "/", *, timeout: float) -> str:
    """Write and sync a small file in ``directory`` (``.vmha-probe.<node>``): "" when the
    storage took it within ``timeout``, else what went wrong, fit for an exit reason.

    The write is O_DSYNC, so it returns only once the storage has it: a mount that still
    answers metadata from cache but cannot write (a cut path, a stale or read-only mount)
    fails.  O_NOFOLLOW: root writes here, and nobody's symlink is followed.  The writing
    thread is left behind when the storage does not answer (the process ends with
    ``os._exit``, see filesystem_space)."""
    import time

    from vmha.deadline import run_within

    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in node) or "node"
    target = _path(root, directory.lstrip("/"), f".vmha-probe.{name}")

    def write() -> str:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_DSYNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            return f"cannot be written ({exc.strerror})"
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{time.time():.3f}\n".encode())
        except OSError as exc:
            return f"cannot be written ({exc.strerror})"
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        return ""

    done, problem = run_within(write, timeout, name=f"probe:{directory}")
    if not done:
        return f"does not answer within {timeout:.1f}s"
    return problem or ""


def valid_interface_name(name: str) -> bool:
    return bool(_INTERFACE.match(name)) and name not in (".", "..")


def link_state(name: str, root: str = "/") -> LinkState | None:
    """operstate and carrier of /sys/class/net/<name>; None when there is no such interface."""
    if not valid_interface_name(name):
        return None
    base = _path(root, "sys", "class", "net", name)
    operstate = _read(os.path.join(base, "operstate"))
    if operstate is None:
        return None
    carrier = _read(os.path.join(base, "carrier"))
    return LinkState(operstate, None if carrier not in ("0", "1") else carrier == "1")


def edac_counters(root: str = "/") -> dict[str, int]:
    """``{"mc0/ce": n, "mc0/ue": n, ...}`` from /sys/devices/system/edac/mc/mc*/."""
    base = _path(root, "sys", "devices", "system", "edac", "mc")
    found: dict[str, int] = {}
    for mc in _listdir(base):
        if not re.fullmatch(r"mc[0-9]+", mc):
            continue
        for kind in ("ce", "ue"):
            value = _int(_read(os.path.join(base, mc, f"{kind}_count")))
            if value is not None:
                found[f"{mc}/{kind}"] = value
    return found


def disk_io_errors(root: str = "/") -> dict[str, int]:
    """The SCSI layer's I/O error count per disk (/sys/block/*/device/ioerr_cnt, hexadecimal)."""
    base = _path(root, "sys", "block")
    found: dict[str, int] = {}
    for disk in _listdir(base):
        text = _read(os.path.join(base, disk, "device", "ioerr_cnt"))
        value = _int(text, 16) if text is not None else None
        if value is not None:
            found[disk] = value
    return found


def thermal_zones(root: str = "/") -> list[ThermalZone]:
    base = _path(root, "sys", "class", "thermal")
    zones = []
    for zone in _listdir(base):
        if not zone.startswith("thermal_zone"):
            continue
        directory = os.path.join(base, zone)
        temp = _int(_read(os.path.join(directory, "temp")))
        if temp is None:
            continue  # a zone whose sensor cannot be read right now
        trips = []
        for entry in _listdir(directory):
            m = re.fullmatch(r"trip_point_([0-9]+)_type", entry)
            if not m:
                continue
            kind = _read(os.path.join(directory, entry))
            limit = _int(_read(os.path.join(directory, f"trip_point_{m.group(1)}_temp")))
            if kind and limit is not None:
                trips.append((kind, limit))
        zones.append(ThermalZone(zone, _read(os.path.join(directory, "type")) or "?", temp, tuple(trips)))
    return zones


_MDSTAT_STATUS = re.compile(r"\[([0-9]+)/([0-9]+)\]\s+\[[U_]+\]")


def md_arrays(root: str = "/") -> list[MdArray]:
    """md arrays and how many members each misses: /sys/block/md*/md/degraded, else /proc/mdstat."""
    base = _path(root, "sys", "block")
    arrays = []
    for name in _listdir(base):
        if not name.startswith("md"):
            continue
        degraded = _int(_read(os.path.join(base, name, "md", "degraded")))
        if degraded is not None:
            arrays.append(MdArray(name, degraded))
    if arrays:
        return arrays
    return _mdstat(_read(_path(root, "proc", "mdstat")) or "")


def _mdstat(text: str) -> list[MdArray]:
    """``md0 : active raid1 ...`` followed by ``... [2/1] [U_]``: wanted/working members."""
    arrays = []
    current = ""
    for line in text.splitlines():
        head = re.match(r"(md[0-9A-Za-z_]+)\s*:", line)
        if head:
            current = head.group(1)
            continue
        m = _MDSTAT_STATUS.search(line)
        if current and m:
            arrays.append(MdArray(current, max(0, int(m.group(1)) - int(m.group(2)))))
            current = ""
    return arrays
