"""Running HypervisorHealth's enabled checks: what libvirt and the kernel say, as findings.

``assess`` asks libvirt once (host size, running domains, storage pools, the networks'
bridges) within the libvirt deadline, measures each filesystem pool with statvfs within a
share of it, reads /proc and /sys through ``host_facts``, and hands the facts to the pure
judges of ``vmha.verdicts.host_health``.  The EDAC and disk error counters and the findings
held after a counter rose are kept in the agent's state (``counters``, ``holds``) from one
monitor to the next.  Nothing here talks to the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from vmha.deadline import Deadline
from vmha.ocf.log import Log
from vmha.ocf.params import Params
from vmha.verdicts import host_health as hh
from vmha.verdicts.host_health import Finding, Level
from vmha.virt.errors import HypervisorTimeout, VirtError

# A filesystem pool's free space is read with statvfs: a hung NFS mount must not hold the
# monitor longer than this.
STATVFS_TIMEOUT_S = 5.0

# libvirtd answered (its version, the node's size) but listing the running domains did not:
# the list takes every domain's lock, and a domain being destroyed holds its lock while
# libvirtd waits for the QEMU process to die (a frozen QEMU ignores SIGTERM: about 10 s
# before SIGKILL).  That is one domain's trouble, not the host's: no finding until the list
# has been stuck this long (or hypervisor_grace, if longer), then it counts as libvirtd not
# answering.  A yellow flash would abort the cluster's transition mid-recovery, and the VM
# being restarted in place would be placed afresh, on another host.
DOMAIN_LIST_GRACE_S = 60.0


class Assessment(NamedTuple):
    findings: list[Finding]
    cpus: int | None
    memory_mib: int | None


def assess(
    p: Params,
    state: dict[str, Any],
    log: Log,
    *,
    uri: str,
    root: str,
    libvirt_deadline: Callable[[], Deadline],
    clock: Callable[[], float],
    node: str = "",
) -> Assessment:
    """Every enabled check's findings, and the host's size when libvirt told it.

    ``libvirt_deadline`` gives the deadline of a libvirt call (or a statvfs) started now;
    ``state`` is the agent's state, whose ``counters`` and ``holds`` are updated here.
    """
    from vmha.hypervisor_health import host_facts

    findings: list[Finding] = []
    facts: dict[str, Any] = {}
    error: str | None = None
    if _wants_libvirt(p):
        try:
            facts = _libvirt_facts(p, uri, libvirt_deadline())
        except VirtError as exc:
            error = exc.message
        except ImportError as exc:  # python3-libvirt not installed: libvirt cannot be asked
            error = f"the libvirt Python binding cannot be loaded ({exc})"
        stalled = facts.get("stalled")
        if p.flag("check_hypervisor"):
            failure = Level.RED if p.text("hypervisor_failure") == "red" else Level.YELLOW
            grace_s = float(p.integer("hypervisor_grace"))
            # since when libvirtd has not answered, kept across monitors (``hypervisor_grace``)
            since = state.get("hypervisor_down_since") if error or stalled else None
            if (error or stalled) and not isinstance(since, (int, float)):
                since = clock()
            state["hypervisor_down_since"] = since
            down_s = clock() - since if since is not None else 0.0
            if stalled and error is None and down_s < max(grace_s, DOMAIN_LIST_GRACE_S):
                log.info(f"libvirt answers but its domain list is stuck for {down_s:.0f}s ({stalled})")
                findings.append(hh.judge_hypervisor(uri, None, failure))
            else:
                findings.append(hh.judge_hypervisor(uri, error or stalled, failure, down_s=down_s, grace_s=grace_s))
        else:
            state.pop("hypervisor_down_since", None)  # a grace must start afresh when it is on again
            if error:
                log.debug(f"libvirt not answering ({error}); its checks are skipped")
        if stalled:
            error = stalled  # what follows needs the list (or the time it used up): skipped
    # Checks that need libvirt's facts are skipped when it did not answer: the
    # hypervisor check already reports that, once.
    if p.flag("check_memory") and error is None:
        domains = [hh.DomainMemory(d.name, d.max_kib, d.current_kib) for d in facts["domains"]]
        findings.append(
            hh.judge_memory(
                host_facts.mem_available_kib(root),
                domains,
                headroom_mib=p.integer("memory_headroom_mib"),
                red_mib=p.integer("memory_red_mib"),
            )
        )
    if p.flag("check_storage") and error is None:
        pools = [_pool_space(x, root, libvirt_deadline) for x in facts["pools"]]
        findings += hh.judge_pools(
            pools,
            p.text("storage_pools").split(),
            yellow_percent=p.integer("pool_free_yellow_percent"),
            red_percent=p.integer("pool_free_red_percent"),
        )
    dirs = p.text("shared_storage").split()
    if dirs:
        findings += _shared_storage(p, dirs, node, root, libvirt_deadline)
    if p.flag("check_interfaces"):
        names = p.text("interfaces").split() or facts.get("interfaces")
        if names is not None:
            findings += hh.judge_interfaces({n: host_facts.link_state(n, root) for n in names})
    findings += _hardware(p, state, root, clock)
    info = facts.get("info")
    return Assessment(findings, info.cpus if info else None, info.memory_mib if info else None)


def _wants_libvirt(p: Params) -> bool:
    return (
        p.flag("check_hypervisor")
        or p.flag("check_memory")
        or p.flag("check_storage")
        or (p.flag("check_interfaces") and not p.text("interfaces"))
        or p.flag("set_utilization")
    )


def _libvirt_facts(p: Params, uri: str, deadline: Deadline) -> dict[str, Any]:
    """Raises VirtError (HypervisorTimeout when libvirtd does not answer in time)."""
    from vmha.virt import host
    from vmha.virt.connection import Connection

    derive = p.flag("check_interfaces") and not p.text("interfaces")
    facts: dict[str, Any] = {}
    with Connection.open(uri, deadline, readonly=True) as conn:
        facts["info"] = host.host_info(conn)
        if p.flag("check_memory") or derive:
            try:
                facts["domains"] = host.running_domains(conn, with_xml=derive)
            except HypervisorTimeout as exc:  # one domain's lock held (DOMAIN_LIST_GRACE_S)
                facts["stalled"] = exc.message
                return facts  # the deadline is spent: the rest waits for the next monitor
        if p.flag("check_storage"):
            facts["pools"] = host.pools(conn)
        if derive:
            names: list[str] = []
            bridges: dict[str, str | None] = {}
            for dom in facts["domains"]:
                for src in host.interface_sources(dom.xml):
                    if src.kind == "network":
                        if src.name not in bridges:
                            bridges[src.name] = host.network_bridge(conn, src.name)
                        name = bridges[src.name]
                    else:
                        name = src.name
                    if name and name not in names:
                        names.append(name)
            facts["interfaces"] = names
    return facts


def _pool_space(pool: Any, root: str, libvirt_deadline: Callable[[], Deadline]) -> hh.PoolSpace:
    """libvirt's figures, except for a filesystem pool, whose free space is read from its
    filesystem now: libvirt's are from its last refresh, and a refresh rescans every
    volume (slow, and it holds the pool locked while a VM may be starting)."""
    from vmha.hypervisor_health import host_facts
    from vmha.virt.host import FILESYSTEM_POOLS

    space = hh.PoolSpace(pool.name, pool.active, pool.capacity, pool.available)
    if not (pool.active and pool.kind in FILESYSTEM_POOLS and pool.target):
        return space
    budget = min(STATVFS_TIMEOUT_S, libvirt_deadline().remaining())
    try:
        measured = host_facts.filesystem_space(pool.target, root, timeout=budget)
    except TimeoutError:
        return space._replace(problem=f"its filesystem {pool.target} does not answer within {budget:.1f}s")
    if measured is None:
        return space  # target not visible here (another mount namespace): libvirt's figures
    return space._replace(capacity=measured[0], available=measured[1])


def _shared_storage(
    p: Params, dirs: list[str], node: str, root: str, libvirt_deadline: Callable[[], Deadline]
) -> list[Finding]:
    """Every directory probed at once, each in its own thread: one hung mount costs the
    monitor one timeout, not one per directory."""
    import threading

    from vmha.hypervisor_health import host_facts

    budget = max(0.5, min(float(p.integer("shared_storage_timeout")), libvirt_deadline().remaining()))
    problems: dict[str, str] = dict.fromkeys(dirs, f"does not answer within {budget:.1f}s")

    def probe(d: str) -> None:
        problems[d] = host_facts.storage_probe(d, node or "node", root, timeout=budget)

    threads = [threading.Thread(target=probe, args=(d,), daemon=True, name=f"shared:{d}") for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget + 0.5)
    return hh.judge_shared_storage(dict(problems))


def _hardware(p: Params, state: dict[str, Any], root: str, clock: Callable[[], float]) -> list[Finding]:
    """EDAC, disk errors, thermal zones and md RAID; a counter's increase is held for
    ``counter_hold`` seconds (``state["holds"]``), its last value kept in ``state["counters"]``."""
    from vmha.hypervisor_health import host_facts

    findings: list[Finding] = []
    previous = state.get("counters")
    previous = previous if isinstance(previous, dict) else {}
    counters: dict[str, int] = {}
    if p.flag("check_edac"):
        edac = host_facts.edac_counters(root)
        old = {k[5:]: v for k, v in previous.items() if k.startswith("edac/") and isinstance(v, int)}
        findings += hh.judge_edac(hh.increases(old, edac), ce_threshold=p.integer("edac_ce_threshold"))
        counters.update({f"edac/{k}": v for k, v in edac.items()})
    if p.flag("check_disk_errors"):
        disks = host_facts.disk_io_errors(root)
        old = {k[5:]: v for k, v in previous.items() if k.startswith("disk/") and isinstance(v, int)}
        findings += hh.judge_disk_errors(hh.increases(old, disks))
        counters.update({f"disk/{k}": v for k, v in disks.items()})
    if p.flag("check_thermal"):
        findings += hh.judge_thermal(host_facts.thermal_zones(root))
    if p.flag("check_md_raid"):
        findings += hh.judge_md(host_facts.md_arrays(root))
    state["counters"] = counters
    holds = {}
    for key, rec in (state.get("holds") or {}).items():
        try:
            holds[key] = hh.Hold(Level(rec["level"]), str(rec["reason"]), float(rec["until"]))
        except (KeyError, TypeError, ValueError):
            continue  # a record from another version: forget it
    findings, kept = hh.apply_holds(findings, holds, now=clock(), hold_s=float(p.integer("counter_hold")))
    state["holds"] = {k: {"level": int(h.level), "reason": h.reason, "until": h.until} for k, h in kept.items()}
    return findings
