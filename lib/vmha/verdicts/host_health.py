"""How healthy a hypervisor host is: facts in, green/yellow/red out.  No I/O.

Each check turns its facts into ``Finding``s (one per problem, or one green); the host's
colour is the worst of them.  What each check decides::

    hypervisor   libvirtd does not answer                     -> yellow, then after hypervisor_grace
                                                                  on_failure (red by default)
    memory       MemAvailable - growth of running domains     -> yellow below the headroom
                 MemAvailable itself below memory_red_mib     -> red
    storage      a named pool missing or inactive             -> red
                 free space below the yellow / red percent    -> yellow / red
    interfaces   missing, or not up (no carrier)              -> red
    EDAC         uncorrected errors increased                 -> red
                 corrected errors increased by >= threshold   -> yellow
    thermal      a critical or hot trip point reached         -> red
                 a passive trip point reached                 -> yellow
    disks        the kernel's I/O error count increased       -> yellow
    md RAID      an array is degraded                         -> yellow

Counters count only their increases since the last sample, so errors from before the agent
started (or before a reboot) never colour the host.  A finding made from an increase is held
for a while (``apply_holds``), or it would clear at the next monitor.

``cap_red`` is the rule that keeps a cluster from going all red: a host turns red only while
another online node reports green, because migrate-on-red with no healthy node left would
stop every VM in the cluster instead of moving them; a red host stays red while another
node is green or yellow (VMs run there), and steps back once every other node is red too.

``rival_claims`` closes the race where two hosts turn red at the same moment, each still
seeing the other green: before publishing red a host claims it (a private attrd attribute),
waits until attrd gives its own claim back, and steps back if another host holds a claim too.
attrd applies every update, the local one included, in corosync's agreed order, so of two
rivals the later sees the earlier: at most one of them publishes red (both may step back,
and try again later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import NamedTuple


class Level(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2

    @property
    def colour(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Level | None:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


class Finding(NamedTuple):
    check: str
    level: Level
    reason: str = ""
    # A stable name for a finding that is held (counter increases); empty for the others.
    key: str = ""


def green(check: str) -> Finding:
    return Finding(check, Level.GREEN)


def worst(findings: Iterable[Finding]) -> Level:
    return max((f.level for f in findings), default=Level.GREEN)


def summary(findings: Iterable[Finding]) -> str:
    """The non-green findings, worst first, as one line."""
    bad = sorted((f for f in findings if f.level > Level.GREEN), key=lambda f: -f.level)
    return "; ".join(f"{f.level.colour}: {f.reason}" for f in bad)


# -- hypervisor ------------------------------------------------------------------------------


def judge_hypervisor(
    uri: str, error: str | None, on_failure: Level = Level.RED, *, down_s: float = 0.0, grace_s: float = 0.0
) -> Finding:
    """``down_s``: how long libvirtd has not answered; within ``grace_s`` it is yellow only."""
    if error is None:
        return green("hypervisor")
    if down_s < grace_s:
        return Finding(
            "hypervisor",
            min(on_failure, Level.YELLOW),
            f"libvirt at {uri} is not answering for {down_s:.0f}s of a {grace_s:.0f}s grace ({error})",
        )
    return Finding("hypervisor", on_failure, f"libvirt at {uri} is not answering ({error})")


# -- memory ----------------------------------------------------------------------------------


class DomainMemory(NamedTuple):
    name: str
    max_kib: int
    current_kib: int


def judge_memory(
    available_kib: int | None,
    domains: Sequence[DomainMemory],
    *,
    headroom_mib: int,
    red_mib: int = 0,
) -> Finding:
    """Can the host still hold its running domains if each grows to its maximum?

    ``growth`` is what the balloons may still claim (max - current, never negative).
    """
    if available_kib is None:
        return Finding("memory", Level.YELLOW, "MemAvailable cannot be read from /proc/meminfo")
    available = available_kib // 1024
    growth = sum(max(0, d.max_kib - d.current_kib) for d in domains) // 1024
    if red_mib and available < red_mib:
        return Finding("memory", Level.RED, f"only {available} MiB available, below memory_red_mib {red_mib}")
    left = available - growth
    if left < headroom_mib:
        return Finding(
            "memory",
            Level.YELLOW,
            f"{available} MiB available, running domains may grow by {growth} MiB: "
            f"{left} MiB left, below the headroom {headroom_mib} MiB",
        )
    return green("memory")


# -- storage ---------------------------------------------------------------------------------


class PoolSpace(NamedTuple):
    name: str
    active: bool
    capacity: int
    available: int
    problem: str = ""  # why its space could not be read (its filesystem hangs), "" when read


def judge_pools(
    pools: Sequence[PoolSpace],
    wanted: Sequence[str],
    *,
    yellow_percent: int,
    red_percent: int,
) -> list[Finding]:
    """Named pools must exist and be active; with no names, the active pools are checked."""
    by_name = {p.name: p for p in pools}
    found: list[Finding] = []
    if wanted:
        checked = []
        for name in wanted:
            pool = by_name.get(name)
            if pool is None:
                found.append(Finding("storage", Level.RED, f"storage pool {name} does not exist"))
            elif not pool.active:
                found.append(Finding("storage", Level.RED, f"storage pool {name} is not active"))
            else:
                checked.append(pool)
    else:
        checked = [p for p in pools if p.active]
    for pool in checked:
        if pool.problem:
            found.append(Finding("storage", Level.RED, f"storage pool {pool.name}: {pool.problem}"))
            continue
        if pool.capacity <= 0:
            continue  # some pool types (iSCSI, SCSI, rbd before a refresh) report no size
        percent = pool.available * 100.0 / pool.capacity
        text = f"storage pool {pool.name} has {percent:.1f}% free"
        if percent < red_percent:
            found.append(Finding("storage", Level.RED, f"{text}, below {red_percent}%"))
        elif percent < yellow_percent:
            found.append(Finding("storage", Level.YELLOW, f"{text}, below {yellow_percent}%"))
    return found or [green("storage")]


def judge_shared_storage(problems: dict[str, str]) -> list[Finding]:
    """``problems``: each shared_storage directory and what its probe said ("" = it wrote)."""
    found = [Finding("shared-storage", Level.RED, f"shared storage {d} {why}") for d, why in problems.items() if why]
    return found or [green("shared-storage")]


# -- network interfaces ----------------------------------------------------------------------


class LinkState(NamedTuple):
    operstate: str
    carrier: bool | None


# Bridges and tap devices often report "unknown": they have no operstate of their own.
_UP_WITH_CARRIER = frozenset({"unknown", "dormant"})


def judge_interfaces(links: Mapping[str, LinkState | None]) -> list[Finding]:
    found: list[Finding] = []
    for name in sorted(links):
        link = links[name]
        if link is None:
            found.append(Finding("interfaces", Level.RED, f"interface {name} does not exist"))
        elif link.operstate == "up" or (link.operstate in _UP_WITH_CARRIER and link.carrier):
            continue
        else:
            carrier = "" if link.carrier is None else f", carrier {int(link.carrier)}"
            found.append(Finding("interfaces", Level.RED, f"interface {name} is {link.operstate}{carrier}"))
    return found or [green("interfaces")]


# -- counters (EDAC, disk I/O errors) --------------------------------------------------------


def increases(previous: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """How much each counter grew since ``previous``.

    A counter seen for the first time sets a baseline (0), and a counter that went down was
    reset (by the kernel or an operator): it starts again from its new value.
    """
    grown = {}
    for key, value in current.items():
        before = previous.get(key)
        grown[key] = value - before if before is not None and value > before else 0
    return grown


def judge_edac(grown: Mapping[str, int], *, ce_threshold: int) -> list[Finding]:
    """``grown`` keys are ``<mc>/ce`` and ``<mc>/ue`` (e.g. ``mc0/ue``)."""
    found: list[Finding] = []
    for key in sorted(grown):
        mc, _, kind = key.rpartition("/")
        n = grown[key]
        if kind == "ue" and n > 0:
            found.append(Finding("edac", Level.RED, f"{n} uncorrected memory error(s) on {mc}", f"edac/{key}"))
        elif kind == "ce" and ce_threshold and n >= ce_threshold:
            found.append(Finding("edac", Level.YELLOW, f"{n} corrected memory errors on {mc}", f"edac/{key}"))
    return found or [green("edac")]


def judge_disk_errors(grown: Mapping[str, int]) -> list[Finding]:
    found = [
        Finding("disks", Level.YELLOW, f"disk {disk} reported {n} I/O error(s)", f"disk/{disk}")
        for disk, n in sorted(grown.items())
        if n > 0
    ]
    return found or [green("disks")]


# -- thermal ---------------------------------------------------------------------------------


class ThermalZone(NamedTuple):
    name: str
    kind: str
    temp_mc: int
    trips: tuple[tuple[str, int], ...]  # (type, millidegrees C)


_TRIP_LEVEL = {"critical": Level.RED, "hot": Level.RED, "passive": Level.YELLOW}


def judge_thermal(zones: Sequence[ThermalZone]) -> list[Finding]:
    found: list[Finding] = []
    for zone in zones:
        hit: tuple[Level, str, int] | None = None
        for kind, limit in zone.trips:
            level = _TRIP_LEVEL.get(kind)
            # Drivers report unset trip points as 0 or absurd values: only a real limit counts.
            if level is None or limit <= 0 or zone.temp_mc < limit:
                continue
            if hit is None or (level, limit) > (hit[0], hit[2]):
                hit = (level, kind, limit)  # the highest trip point passed names the finding
        if hit is not None:
            level, kind, limit = hit
            found.append(
                Finding(
                    "thermal",
                    level,
                    f"{zone.name} ({zone.kind}) at {zone.temp_mc / 1000:.1f} C, "
                    f"past its {kind} trip point {limit / 1000:.1f} C",
                )
            )
    return found or [green("thermal")]


# -- md RAID ---------------------------------------------------------------------------------


class MdArray(NamedTuple):
    name: str
    degraded: int


def judge_md(arrays: Sequence[MdArray]) -> list[Finding]:
    found = [
        Finding("md", Level.YELLOW, f"RAID {a.name} is degraded ({a.degraded} device(s) missing)")
        for a in arrays
        if a.degraded > 0
    ]
    return found or [green("md")]


# -- holding findings made from counter increases --------------------------------------------


class Hold(NamedTuple):
    level: Level
    reason: str
    until: float


def apply_holds(
    findings: Sequence[Finding],
    holds: Mapping[str, Hold],
    *,
    now: float,
    hold_s: float,
) -> tuple[list[Finding], dict[str, Hold]]:
    """Findings plus the still-held ones; new keyed findings start (or renew) a hold.

    A held finding keeps the worse of its level and a new one for the same key.
    """
    kept = {k: h for k, h in holds.items() if h.until > now}
    for f in findings:
        if f.key and f.level > Level.GREEN:
            old = kept.get(f.key)
            level = max(f.level, old.level) if old else f.level
            kept[f.key] = Hold(level, f.reason, now + hold_s)
    fresh = {f.key for f in findings if f.key}
    out = [f for f in findings if not (f.key and f.key in kept)]
    for key, hold in sorted(kept.items()):
        check = key.split("/", 1)[0]
        why = hold.reason if key in fresh else f"{hold.reason} (held for {hold.until - now:.0f}s more)"
        out.append(Finding(check, hold.level, why, key))
    return out, kept


# -- never a cluster-wide red ----------------------------------------------------------------


class PeerView(NamedTuple):
    node: str
    online: bool
    value: str | None  # the node's health attribute, None when it has none


class Verdict(NamedTuple):
    level: Level
    capped: bool
    reason: str


def cap_red(
    local: str, level: Level, peers: Sequence[PeerView] | None, problem: str = "", *, staying: bool = False
) -> Verdict:
    """The level to publish: ``level``, unless it is red and no other node could take the VMs.

    Turning red needs a refuge that is online and green by its own health attribute: a node
    without the attribute (its agent not running, or unknown to attrd) cannot be vouched for,
    and moving VMs onto a node as sick as this one gains nothing.  ``staying`` (this node is
    red already, its VMs on their way out): a yellow node is refuge enough, since
    migrate-on-red runs VMs on yellow nodes; stepping back to yellow then would call the VMs
    back, or abort their migrations half way (Pacemaker stops a half-migrated VM on both
    nodes and starts it cold).  ``peers`` None means the other nodes could not be read: then
    nobody is known to be a refuge.
    """
    if level is not Level.RED:
        return Verdict(level, False, "")
    if peers is None:
        why = "the other nodes' health cannot be read" + (f" ({problem})" if problem else "")
        return Verdict(Level.YELLOW, True, f"red capped to yellow: {why}")
    others = [p for p in peers if p.node != local]
    welcome = ("green", "yellow") if staying else ("green",)
    refuges = [p.node for p in others if p.online and p.value in welcome]
    if refuges:
        return Verdict(Level.RED, False, f"VMs can move to {', '.join(sorted(refuges))}")
    if not others:
        return Verdict(Level.YELLOW, True, "red capped to yellow: no other node in the cluster")
    seen = ", ".join(
        f"{p.node} {(p.value or 'unknown') if p.online else 'offline'}" for p in sorted(others, key=lambda p: p.node)
    )
    if staying:
        return Verdict(Level.YELLOW, True, f"red capped to yellow: every other node is red or unknown ({seen})")
    return Verdict(Level.YELLOW, True, f"red capped to yellow: no other node is green ({seen})")


def merge_peers(members: Sequence[tuple[str, bool]], values: Mapping[str, str]) -> list[PeerView]:
    """Membership (name, online) joined with the attribute values attrd reported.

    Values of nodes that are not members (attrd may still remember a node that left) are
    ignored; an empty value (attrd_updater --delete sets "") counts as none.
    """
    return [PeerView(name, online, values.get(name) or None) for name, online in members]


def rival_claims(
    local: str, members: Sequence[tuple[str, bool]], claims: Mapping[str, str], *, now: float, stale_s: float
) -> list[str]:
    """Other online members that hold a red claim newer than ``stale_s`` (wall clock).

    A claim is the claimer's wall-clock time; one that does not parse counts as fresh (the
    safe side: stepping back costs a monitor interval, two reds stop every VM).  An old claim
    is what a monitor killed half way through leaves; its own node clears it at its next
    monitor, and this rule stops it from blocking the others until then.
    """
    rivals = []
    for name, online in members:
        value = claims.get(name) or ""
        if name == local or not online or not value:
            continue
        try:
            fresh = abs(now - float(value)) <= stale_s
        except ValueError:
            fresh = True
        if fresh:
            rivals.append(name)
    return sorted(rivals)
