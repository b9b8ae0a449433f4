"""Pure parsing of libvirt domain XML into the facts the agents need.

The parser never resolves entities, never loads a DTD and never touches the network, and a
document with a DOCTYPE is refused outright: libvirt domain XML never needs one, and an
entity could otherwise make us read (and print) a file it names.

Raises:
    DomainXmlError: malformed XML, a DOCTYPE, or a document that is not a usable domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_XML_BYTES = 4 * 1024 * 1024
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

_UNIT_KIB = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "kb": 1000 / 1024,
    "k": 1,
    "kib": 1,
    "mb": 1000**2 / 1024,
    "m": 1024,
    "mib": 1024,
    "gb": 1000**3 / 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "tb": 1000**4 / 1024,
    "t": 1024**3,
    "tib": 1024**3,
}


class DomainXmlError(ValueError):
    pass


@dataclass(frozen=True)
class DiskInfo:
    """One ``<disk>``: ``source`` is its file, device, volume (pool/volume) or network name."""

    type: str
    device: str
    source: str
    target: str
    readonly: bool
    shareable: bool


@dataclass(frozen=True)
class DomainConfig:
    name: str
    uuid: str | None
    domain_type: str
    vcpus: int
    max_memory_kib: int
    emulator: str | None
    has_guest_agent: bool
    disk_files: tuple[str, ...]
    pools: tuple[str, ...]
    networks: tuple[str, ...]
    disks: tuple[DiskInfo, ...] = ()
    leases: int = 0  # <lease> elements: a lock manager lease on the domain itself


def _disk(el: Any) -> DiskInfo:
    src = el.find("source")
    source = ""
    if src is not None:
        if src.get("pool"):
            source = f"{src.get('pool')}/{src.get('volume', '')}"
        elif src.get("protocol"):
            source = f"{src.get('protocol')}:{src.get('name', '')}"
        else:
            source = src.get("file") or src.get("dev") or src.get("dir") or src.get("name") or ""
    target = el.find("target")
    return DiskInfo(
        type=el.get("type", "file"),
        device=el.get("device", "disk"),
        source=source,
        target=target.get("dev", "") if target is not None else "",
        readonly=el.find("readonly") is not None,
        shareable=el.find("shareable") is not None,
    )


def _parser() -> Any:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _memory_kib(text: str | None, unit: str | None) -> int:
    try:
        value = int((text or "0").strip())
    except ValueError as exc:
        raise DomainXmlError(f"<memory> is not a number: {text!r}") from exc
    factor = _UNIT_KIB.get((unit or "KiB").lower())
    if factor is None:
        raise DomainXmlError(f"<memory> has an unknown unit {unit!r}")
    return int(value * factor)


def parse(data: bytes) -> DomainConfig:
    """Facts from domain XML ``data``. Raises DomainXmlError."""
    from lxml import etree

    if len(data) > MAX_XML_BYTES:
        raise DomainXmlError(f"domain XML is larger than {MAX_XML_BYTES // 1024} KiB")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise DomainXmlError(f"malformed XML: {exc.msg}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DomainXmlError("domain XML carries a DOCTYPE/entity declarations; refusing it")
    if root.tag != "domain":
        raise DomainXmlError(f"root element is <{root.tag}>, not <domain>")
    name = (root.findtext("name") or "").strip()
    if not name:
        raise DomainXmlError("domain XML has no <name>")
    if any(ch in name for ch in "/\n\r\t") or name.startswith("."):
        raise DomainXmlError(f"domain name {name!r} is not usable")
    uuid = (root.findtext("uuid") or "").strip().lower() or None
    vcpu_el = root.find("vcpu")
    try:
        vcpus = int((vcpu_el.get("current") or vcpu_el.text or "1").strip()) if vcpu_el is not None else 1
    except ValueError as exc:
        raise DomainXmlError("<vcpu> is not a number") from exc
    mem_el = root.find("memory")
    max_kib = _memory_kib(mem_el.text, mem_el.get("unit")) if mem_el is not None else 0
    channels = root.iterfind("devices/channel/target")
    has_agent = any(t.get("name") == GUEST_AGENT_CHANNEL for t in channels)
    disk_files = tuple(src.get("file", "") for src in root.iterfind("devices/disk/source") if src.get("file"))
    pools = tuple(sorted({s.get("pool", "") for s in root.iterfind("devices/disk/source") if s.get("pool")}))
    networks = tuple(
        sorted({s.get("network", "") for s in root.iterfind("devices/interface/source") if s.get("network")})
    )
    return DomainConfig(
        name=name,
        uuid=uuid,
        domain_type=root.get("type", ""),
        vcpus=vcpus,
        max_memory_kib=max_kib,
        emulator=(root.findtext("devices/emulator") or "").strip() or None,
        has_guest_agent=has_agent,
        disk_files=disk_files,
        pools=pools,
        networks=networks,
        disks=tuple(_disk(el) for el in root.iterfind("devices/disk")),
        leases=sum(1 for _ in root.iterfind("devices/lease")),
    )


def uuid_and_name(data: bytes) -> tuple[str | None, str]:
    """Just the identity, for XML libvirt produced itself (e.g. ``dumpxml``)."""
    cfg = parse(data)
    return cfg.uuid, cfg.name
