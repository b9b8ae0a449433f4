"""How a migration is asked for: the target URIs, flags and libvirt parameters.

Pure functions, so every combination of VirtualDomain-style parameters is unit-tested
without a hypervisor.  ``migrate_options`` is parsed with ``shlex`` into known options; an
unknown option is an error, never passed through (there is no shell to pass it to).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from vmha.ocf.params import Params

# libvirt's virDomainMigrateFlags (stable ABI values).
LIVE = 1 << 0
PEER2PEER = 1 << 1
TUNNELLED = 1 << 2
PERSIST_DEST = 1 << 3
UNDEFINE_SOURCE = 1 << 4
NON_SHARED_DISK = 1 << 6
NON_SHARED_INC = 1 << 7
CHANGE_PROTECTION = 1 << 8
UNSAFE = 1 << 9
COMPRESSED = 1 << 11
ABORT_ON_ERROR = 1 << 12
AUTO_CONVERGE = 1 << 13
POSTCOPY = 1 << 15
TLS = 1 << 16
PARALLEL = 1 << 17

_FLAG_OPTIONS = {
    "--live": LIVE,
    "--p2p": PEER2PEER,
    "--tunnelled": TUNNELLED | PEER2PEER,
    "--copy-storage-all": NON_SHARED_DISK,
    "--copy-storage-inc": NON_SHARED_INC,
    "--change-protection": CHANGE_PROTECTION,
    "--unsafe": UNSAFE,
    "--compressed": COMPRESSED,
    "--abort-on-error": ABORT_ON_ERROR,
    "--auto-converge": AUTO_CONVERGE,
    "--postcopy": POSTCOPY,
    "--tls": TLS,
    "--parallel": PARALLEL,
}
_IGNORED = frozenset({"--verbose"})  # virsh-only output options: harmless, nothing to do
_VALUE_OPTIONS = ("--migrateuri", "--listen-address", "--bandwidth", "--parallel-connections")


class MigrationOptionError(ValueError):
    pass


@dataclass(frozen=True)
class MigrateOptions:
    flags: int = 0
    migrateuri: str = ""
    listen_address: str = ""
    bandwidth: int = 0
    parallel_connections: int = 0


def parse_migrate_options(text: str) -> MigrateOptions:
    """Raises MigrationOptionError naming the first option we do not know."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise MigrationOptionError(f"migrate_options: {exc}") from None
    flags = 0
    values: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[word]
        elif word in _IGNORED:
            pass
        else:
            key, eq, value = word.partition("=")
            if key not in _VALUE_OPTIONS:
                raise MigrationOptionError(f"migrate_options: {word!r} is not supported")
            if not eq:
                if i + 1 >= len(words):
                    raise MigrationOptionError(f"migrate_options: {key} needs a value")
                i += 1
                value = words[i]
            values[key] = value
        i += 1
    ints = {}
    for key in ("--bandwidth", "--parallel-connections"):
        if key in values:
            if not re.fullmatch(r"[0-9]+", values[key]):
                raise MigrationOptionError(f"migrate_options: {key} needs a number")
            ints[key] = int(values[key])
    return MigrateOptions(
        flags=flags,
        migrateuri=values.get("--migrateuri", ""),
        listen_address=values.get("--listen-address", ""),
        bandwidth=ints.get("--bandwidth", 0),
        parallel_connections=ints.get("--parallel-connections", 0),
    )


def target_host(node: str, suffix: str) -> str:
    """``node`` with ``suffix`` added before its first dot (ha1.example.com, -mig -> ha1-mig.example.com)."""
    if not suffix:
        return node
    short, dot, rest = node.partition(".")
    return f"{short}{suffix}{dot}{rest}"


def remote_uri(hypervisor: str, node: str, *, transport: str, user: str, suffix: str, template: str) -> str:
    """The libvirt URI of the target hypervisor, as VirtualDomain builds it."""
    if template:
        return template.replace("%n", node)
    parts = urlsplit(hypervisor)
    # As VirtualDomain: the hypervisor URI's own scheme (with its transport) is kept unless
    # migration_transport names one; its port is kept too.
    scheme = parts.scheme
    if transport:
        scheme = f"{scheme.split('+', 1)[0]}+{transport}"
    host = target_host(node, suffix)
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((scheme, netloc, parts.path or "/system", parts.query, ""))


def peer_uri(params: Params, node: str) -> str | None:
    """The libvirt URI the peer check asks ``node`` at: peer_check_uri, else the one live
    migration to ``node`` would use; None when the resource names no way to reach a peer
    (neither peer_check_uri, remoteuri nor migration_transport is set)."""
    template = params.text("peer_check_uri")
    if template:
        return template.replace("%n", node)
    if not params.text("remoteuri") and not params.text("migration_transport"):
        return None
    return remote_uri(
        params.text("hypervisor"),
        node,
        transport=params.text("migration_transport"),
        user=params.text("migration_user"),
        suffix=params.text("migration_network_suffix"),
        template=params.text("remoteuri"),
    )


@dataclass(frozen=True)
class MigrationPlan:
    target: str
    dest_uri: str
    flags: int
    params: dict[str, object] = field(default_factory=dict)
    downtime_ms: int = 0
    postcopy_after_s: int = 0

    @property
    def peer_to_peer(self) -> bool:
        return bool(self.flags & PEER2PEER)


def plan(params: Params, target: str, *, persistent: bool) -> MigrationPlan:
    """Everything libvirt needs to migrate to ``target``. Raises MigrationOptionError."""
    opts = parse_migrate_options(params.text("migrate_options"))
    hypervisor = params.text("hypervisor")
    suffix = params.text("migration_network_suffix")
    dest = remote_uri(
        hypervisor,
        target,
        transport=params.text("migration_transport"),
        user=params.text("migration_user"),
        suffix=suffix,
        template=params.text("remoteuri"),
    )
    flags = LIVE | opts.flags
    if persistent:
        flags |= PERSIST_DEST | UNDEFINE_SOURCE
    if params.flag("migration_auto_converge"):
        flags |= AUTO_CONVERGE
    postcopy_after = 0
    if params.flag("migration_postcopy"):
        flags |= POSTCOPY
        postcopy_after = params.integer("migration_postcopy_after")

    migrate_uri = params.text("migrateuri").replace("%n", target)
    if not migrate_uri:
        migrate_uri = opts.migrateuri.replace("%n", target)
    if not migrate_uri and suffix and urlsplit(hypervisor).scheme.startswith("qemu"):
        port = params.integer("migrateport")
        host = target_host(target, suffix)
        migrate_uri = f"tcp://{host}:{port}" if port else f"tcp://{host}"

    libvirt_params: dict[str, object] = {}
    if migrate_uri and not flags & TUNNELLED:
        libvirt_params["migrate_uri"] = migrate_uri
    bandwidth = params.integer("migration_speed") or opts.bandwidth
    if bandwidth:
        libvirt_params["bandwidth"] = bandwidth
    if opts.listen_address:
        libvirt_params["listen_address"] = opts.listen_address
    if opts.parallel_connections:
        libvirt_params["parallel.connections"] = opts.parallel_connections
    return MigrationPlan(
        target=target,
        dest_uri=dest,
        flags=flags,
        params=libvirt_params,
        downtime_ms=params.integer("migration_downtime"),
        postcopy_after_s=postcopy_after,
    )
