"""Facts about the hypervisor host from libvirt: its size, running domains, pools, bridges.

Every call is bounded by the connection's deadline (``Connection.call``).  No policy here:
``vmha.verdicts.host_health`` decides what the facts mean.

Raises (every function): VirtError subclasses, HypervisorTimeout when libvirt does not
answer before the deadline.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from vmha.virt.connection import Connection
from vmha.virt.errors import DomainNotFound, HypervisorUnreachable, VirtError

# VIR_CONNECT_LIST_DOMAINS_ACTIVE, VIR_CONNECT_LIST_STORAGE_POOLS_* would need the module;
# the value is part of libvirt's stable ABI.
_LIST_ACTIVE = 1


class HostInfo(NamedTuple):
    lib_version: int
    cpus: int
    memory_mib: int


class RunningDomain(NamedTuple):
    name: str
    max_kib: int
    current_kib: int
    xml: str  # empty unless asked for


class Pool(NamedTuple):
    name: str
    active: bool
    capacity: int
    allocation: int
    available: int
    kind: str = ""  # the pool type: dir, fs, netfs, logical, rbd, ...
    target: str = ""  # its target path on this host, "" when it has none


# Pool types whose space is the filesystem at their target path.  libvirt's figures for them
# are those of its last refresh, so space used since (disk images growing) does not show.
FILESYSTEM_POOLS = frozenset({"dir", "fs", "netfs"})


def host_info(conn: Connection) -> HostInfo:
    """The cheap calls that prove libvirtd answers: its version and the node's size."""
    version = conn.call(conn.raw.getLibVersion, what="get libvirt version")
    info = conn.call(conn.raw.getInfo, what="get host information")
    # getInfo: [model, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
    return HostInfo(int(version), int(info[2]), int(info[1]))


def running_domains(conn: Connection, *, with_xml: bool = False) -> list[RunningDomain]:
    raws = conn.call(conn.raw.listAllDomains, _LIST_ACTIVE, what="list running domains")
    found = []
    for raw in raws:
        name = raw.name()
        try:
            # info: [state, maxMem KiB, memory KiB, nrVirtCpu, cpuTime]
            info = conn.call(raw.info, what=f"domain {name} info")
            xml = conn.call(raw.XMLDesc, 0, what=f"domain {name} XML") if with_xml else ""
        except DomainNotFound:
            continue  # it stopped between the list and the question
        found.append(RunningDomain(name, int(info[1]), int(info[2]), xml))
    return found


def pools(conn: Connection) -> list[Pool]:
    raws = conn.call(conn.raw.listAllStoragePools, 0, what="list storage pools")
    found = []
    for raw in raws:
        name = raw.name()
        active = bool(conn.call(raw.isActive, what=f"pool {name} state"))
        # info: [state, capacity, allocation, available] in bytes
        info: Any = conn.call(raw.info, what=f"pool {name} size") if active else (0, 0, 0, 0)
        kind, target = pool_target(str(conn.call(raw.XMLDesc, 0, what=f"pool {name} XML")))
        found.append(Pool(name, active, int(info[1]), int(info[2]), int(info[3]), kind, target))
    return found


def pool_target(xml: str) -> tuple[str, str]:
    """(type, target path) of a storage pool's XML as libvirtd wrote it; "" for what is absent."""
    root = _parse(xml)
    if root is None:
        return "", ""
    return root.get("type", ""), (root.findtext("./target/path") or "").strip()


def _parse(xml: str) -> Any:
    """libvirtd's own XML with the standard parser (lxml costs ~30 ms on the monitor path);
    None when it does not parse.  libvirtd never writes a DOCTYPE, and expat would expand
    internal entities, so a document with one is refused."""
    from xml.etree import ElementTree

    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        return None
    try:
        return ElementTree.fromstring(xml)  # noqa: S314 - libvirtd's output, no DTD (above)
    except ElementTree.ParseError:
        return None


def network_bridge(conn: Connection, network: str) -> str | None:
    """The host bridge of a libvirt network, None if the network is unknown or has none."""
    try:
        net = conn.call(conn.raw.networkLookupByName, network, what=f"look up network {network}")
        return str(conn.call(net.bridgeName, what=f"network {network} bridge")) or None
    except HypervisorUnreachable:
        raise
    except VirtError:
        return None


class InterfaceSource(NamedTuple):
    kind: str  # bridge, network or direct
    name: str


def interface_sources(xml: str) -> list[InterfaceSource]:
    """Where each interface of a domain XML (as libvirt wrote it) is plugged in on the host.

    ``bridge`` names a host bridge, ``network`` a libvirt network (resolve its bridge with
    ``network_bridge``), ``direct`` the host interface a macvtap sits on.  Other types (user,
    vhostuser, hostdev) have nothing on the host to watch.
    """
    root = _parse(xml)
    if root is None:
        return []
    found = []
    for iface in root.iterfind("./devices/interface"):
        kind = iface.get("type", "")
        source = iface.find("source")
        if source is None:
            continue
        attr = {"bridge": "bridge", "network": "network", "direct": "dev"}.get(kind)
        value = source.get(attr) if attr else None
        if value:
            found.append(InterfaceSource(kind, value))
    return found
