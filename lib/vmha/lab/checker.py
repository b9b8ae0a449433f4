"""The double-run checker: records any moment one domain UUID runs on two hosts at once.

How it decides, and why it cannot cry wolf during a live migration:

- One observer thread per host asks that host's libvirtd (through the host's own unix
  socket, reached from the machine via ``/proc/<init>/root`` once the host's init has
  mounted its private /run, and only after the daemon reported the host's own host UUID:
  the machine's libvirtd and its guests are never counted) for its RUNNING domains,
  several times a second.  A sample says "running at some instant between the call's start
  and end".  Two consecutive samples of the same host that both show a UUID running prove
  it ran throughout [end of the first, start of the second]: a *confirmed interval*.
- A double run is two hosts' confirmed intervals for one UUID that overlap in time.  During
  a live migration the source is paused before the destination resumes, so their confirmed
  intervals never overlap; a split brain (both running for seconds) always does.
- One allowance, for the handover itself: libvirt learns that the source's vCPUs stopped
  from QEMU's STOP event, handled asynchronously; on a loaded machine the source may still
  say "running" for a moment after the destination resumed.  QEMU stops the source before
  it sends the last state, so the two cannot both run.  An overlap is that lag, not a double
  run, when one side's run began as an incoming migration (libvirt's reason ``migrated``)
  and the other side's last sample still showed its outgoing migration job (libvirt's job
  operation ``migration out``), and the overlap is shorter than ``HANDOVER_JOB_S``; when the
  job was not seen (it ended between two samples), only an overlap shorter than
  ``HANDOVER_S``.  Against a run that began any other way (a start, a restore), it counts.
- libvirtd killed or hung (SIGSTOP) on a host is exactly when a double run is most likely,
  and exactly when libvirt cannot answer: when a host's libvirt sample is older than
  ``STALE_S`` the checker falls back to the host's QEMU processes in /proc (``-uuid``),
  counting each one as running.

The checker is an independent observer: it shares no libvirt code with the agent under test
(``vmha.virt``), so a bug there cannot hide itself here.  It does share the one QEMU
command-line parser (``vmha.qemu_processes``) with the agent's libvirt-less fallback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import proc
from vmha.lab.config import host_uuid, node_index, node_netns
from vmha.qemu_processes import qemu_processes

POLL_S = 0.2
# A libvirtd busy with migrations on a loaded 2-core machine can take a second to answer;
# one that has not answered for this long is hung or gone: /proc is asked instead.
STALE_S = 2.0
HISTORY_S = 120.0
HANDOVER_S = 1.0
# the source still in its outgoing migration job: libvirt's own handover, however loaded the
# machine (seen up to ~1 s on 2 busy cores); longer than this is no handover
HANDOVER_JOB_S = 10.0
# libvirt's VIR_DOMAIN_RUNNING_MIGRATED: running because an incoming migration completed
RUNNING_MIGRATED = 2
# libvirt's VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT (jobStats "operation")
JOB_MIGRATION_OUT = 3


@dataclass(frozen=True)
class DoubleRun:
    uuid: str
    name: str | None
    hosts: tuple[str, ...]
    start: float  # time.time() of the first overlapping instant
    overlap_s: float
    seen_by: tuple[str | None, ...] = ()  # per host: "libvirt" or "proc" (the stale-libvirt fallback)

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "hosts": list(self.hosts),
            "at": round(self.start, 3),
            "overlap_s": round(self.overlap_s, 3),
            "seen_by": list(self.seen_by),
        }


@dataclass
class _Track:
    """Per (host, uuid): the run in progress and the confirmed intervals of earlier runs."""

    first_end: float | None = None  # end of the first sample of the run in progress
    current: list[float] | None = None  # its confirmed interval so far
    intervals: list[list[float]] = field(default_factory=list)
    arrived: bool = False  # the run in progress began as an incoming live migration
    departing: bool = False  # its latest sample showed an outgoing migration job
    ends: list[tuple[bool, bool]] = field(default_factory=list)  # (arrived, departing) of each closed interval

    def all_intervals(self) -> list[tuple[list[float], bool, bool]]:
        closed = [(iv, a, d) for iv, (a, d) in zip(self.intervals, self.ends, strict=True)]
        return closed + ([(self.current, self.arrived, self.departing)] if self.current else [])


class Tracker:
    """Pure bookkeeping of samples -> confirmed intervals -> overlaps (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._names: dict[str, str | None] = {}
        self.incidents: list[DoubleRun] = []
        self._reported: set[tuple[str, tuple[str, ...], int]] = set()
        self._wall_offset = time.time() - clock()
        self.samples = 0
        self.samples_by_host: dict[str, int] = {}
        self._via: dict[tuple[str, str], str] = {}

    def sample(
        self,
        host: str,
        t_start: float,
        t_end: float,
        running: dict[str, str | None],
        *,
        via: str = "libvirt",
        migrated: frozenset[str] = frozenset(),
        departing: frozenset[str] = frozenset(),
    ) -> None:
        """``running``: uuid -> name of the domains seen running on ``host`` in one poll;
        ``via``: how it was seen (reported with an incident); ``migrated``: the uuids whose
        libvirt state reason says they run because an incoming migration completed;
        ``departing``: the uuids with an outgoing migration job in progress."""
        with self._lock:
            self.samples += 1
            self.samples_by_host[host] = self.samples_by_host.get(host, 0) + 1
            self._names.update(running)
            for uuid in running:
                self._via[(host, uuid)] = via
            for (h, uuid), track in self._tracks.items():
                if h == host and uuid not in running and track.first_end is not None:
                    # stopped or gone: close the run; the next one is a new run
                    if track.current:
                        track.intervals.append(track.current)
                        track.ends.append((track.arrived, track.departing))
                    track.first_end, track.current = None, None
                    kept = [
                        (iv, e) for iv, e in zip(track.intervals, track.ends, strict=True) if iv[1] >= t_end - HISTORY_S
                    ]
                    track.intervals, track.ends = [iv for iv, _ in kept], [e for _, e in kept]
            for uuid in running:
                track = self._tracks.setdefault((host, uuid), _Track())
                track.departing = uuid in departing
                if track.first_end is None:
                    track.first_end = t_end
                    track.arrived = uuid in migrated
                elif track.first_end <= t_start:
                    if track.current is None:
                        track.current = [track.first_end, t_start]
                    else:
                        track.current[1] = max(track.current[1], t_start)
                    self._check(uuid)

    def runs(self, uuid: str) -> dict[str, list[tuple[float, float]]]:
        """host -> confirmed running intervals (time.monotonic) of domain ``uuid``."""
        with self._lock:
            tracks = self._tracks.items()
            return {h: [(a, b) for (a, b), _, _ in t.all_intervals()] for (h, u), t in tracks if u == uuid}

    def _check(self, uuid: str) -> None:
        hosts = [(h, t.all_intervals()) for (h, u), t in self._tracks.items() if u == uuid]
        for i, (h1, ivs1) in enumerate(hosts):
            for h2, ivs2 in hosts[i + 1 :]:
                for (a1, b1), arrived1, departing1 in ivs1:
                    for (a2, b2), arrived2, departing2 in ivs2:
                        lo, hi = max(a1, a2), min(b1, b2)
                        if _handover(hi - lo, arrived1, departing1, arrived2, departing2):
                            continue  # the source's "running" outlived the handover (see top)
                        if lo < hi:
                            pair = tuple(sorted((h1, h2)))
                            key = (uuid, pair, int(lo))
                            if key in self._reported:
                                continue
                            self._reported.add(key)
                            self.incidents.append(
                                DoubleRun(
                                    uuid,
                                    self._names.get(uuid),
                                    pair,
                                    lo + self._wall_offset,
                                    hi - lo,
                                    tuple(self._via.get((h, uuid)) for h in pair),
                                )
                            )


def _handover(overlap: float, arrived1: bool, departing1: bool, arrived2: bool, departing2: bool) -> bool:
    """Whether an overlap of two runs is libvirt's live-migration handover (see top)."""
    if (arrived1 and departing2) or (arrived2 and departing1):
        return overlap < HANDOVER_JOB_S
    return (arrived1 or arrived2) and overlap < HANDOVER_S


class HostObserver(threading.Thread):
    """Polls one host's libvirtd; a hung daemon only blocks this thread."""

    def __init__(self, host: str, pid_of: Callable[[str], int], tracker: Tracker, stop: threading.Event) -> None:
        super().__init__(name=f"double-run:{host}", daemon=True)
        self.host = host
        self.pid_of = pid_of
        self.tracker = tracker
        self.stop_event = stop
        self.last_sample_end = 0.0
        self.errors = 0
        self.foreign = 0  # connections refused: a libvirtd that was not this host's

    def run(self) -> None:
        import libvirt

        libvirt.registerErrorHandler(lambda _c, _e: None, None)
        conn = None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    conn = self._connect(libvirt)
                t0 = time.monotonic()
                running = {}
                migrated = set()
                departing = set()
                for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                    try:
                        state, reason = dom.state()
                        if state == libvirt.VIR_DOMAIN_RUNNING:
                            uuid = dom.UUIDString()
                            running[uuid] = dom.name()
                            if reason == RUNNING_MIGRATED:
                                migrated.add(uuid)
                            if dom.jobStats().get("operation") == JOB_MIGRATION_OUT:
                                departing.add(uuid)
                    except libvirt.libvirtError:
                        continue  # vanished between the listing and the question
                t1 = time.monotonic()
                self.tracker.sample(
                    self.host, t0, t1, running, migrated=frozenset(migrated), departing=frozenset(departing)
                )
                self.last_sample_end = t1
            except (libvirt.libvirtError, ConnectionError):
                self.errors += 1
                if conn is not None:
                    try:
                        conn.close()
                    except libvirt.libvirtError:
                        pass
                conn = None
            self.stop_event.wait(POLL_S)
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def _connect(self, libvirt: Any) -> Any:
        """This host's own libvirtd, or ConnectionError: never the machine's (see top)."""
        pid = self.pid_of(self.host)
        if not pid:
            raise ConnectionError(f"{self.host} is off")
        root = proc.host_root(pid, self.host)
        if root is None:
            raise ConnectionError(f"{self.host}: its own /run is not mounted yet")
        conn = libvirt.open(f"qemu+unix:///system?socket={root}/run/libvirt/libvirt-sock")
        try:
            got = host_uuid_of(conn.getCapabilities())
        except libvirt.libvirtError:
            conn.close()
            raise
        want = host_uuid(node_index(self.host))
        if got != want:
            conn.close()
            self.foreign += 1
            raise ConnectionError(f"{self.host}: libvirtd with host UUID {got}, not {want}")
        return conn


def host_uuid_of(capabilities: str) -> str | None:
    """<capabilities><host><uuid> of a libvirt capabilities document."""
    import xml.etree.ElementTree as ET

    try:
        el = ET.fromstring(capabilities).find("host/uuid")  # noqa: S314 - a libvirtd we chose
    except ET.ParseError:
        return None
    return el.text.strip().lower() if el is not None and el.text else None


def qemu_uuids_by_host(hosts: list[str]) -> dict[str, dict[str, str | None]]:
    """host -> {uuid: name} of the QEMU processes living in each host's network namespace
    (the machine's own QEMU processes live in none of them)."""
    inode_host = {i: h for h in hosts if (i := proc.netns_inode(node_netns(h)))}
    found: dict[str, dict[str, str | None]] = {h: {} for h in hosts}
    in_lab = {pid: host for pid in proc.pids() if (host := inode_host.get(proc.ns_inode(pid, "net") or -1))}
    for q in qemu_processes(pids=in_lab):
        if q.uuid:
            found[in_lab[q.pid]][q.uuid] = q.name
    return found


class DoubleRunChecker:
    """Start once, read ``incidents`` any time; ``mark()``/``since(mark)`` scope a test."""

    def __init__(self, hosts: list[str], pid_of: Callable[[str], int]) -> None:
        self.hosts = list(hosts)
        self.tracker = Tracker()
        self._stop = threading.Event()
        self.observers = [HostObserver(h, pid_of, self.tracker, self._stop) for h in hosts]
        self._fallback = threading.Thread(target=self._scan_stale, name="double-run:proc", daemon=True)
        self.fallback_samples = 0

    def start(self) -> DoubleRunChecker:
        for o in self.observers:
            o.start()
        self._fallback.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._fallback.join(2.0)
        for o in self.observers:
            o.join(1.0)  # a thread stuck in a hung libvirtd is a daemon: left behind

    def _scan_stale(self) -> None:
        while not self._stop.wait(POLL_S):
            now = time.monotonic()
            stale = [o.host for o in self.observers if now - o.last_sample_end > STALE_S]
            if not stale:
                continue
            t0 = time.monotonic()
            seen = qemu_uuids_by_host(stale)
            t1 = time.monotonic()
            for host in stale:
                self.tracker.sample(host, t0, t1, seen[host], via="proc")
                self.fallback_samples += 1

    @property
    def incidents(self) -> list[DoubleRun]:
        return list(self.tracker.incidents)

    def mark(self) -> int:
        return len(self.tracker.incidents)

    def since(self, mark: int) -> list[DoubleRun]:
        return self.tracker.incidents[mark:]

    def __enter__(self) -> DoubleRunChecker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
