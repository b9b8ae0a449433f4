"""``vmha status``: the whole stack at a glance, read from the live cluster.

Sources, all asked at once and each bounded by the one ``--timeout``:

- ``crm_mon --output-as=xml --inactive --fence-history=2``: nodes (online, standby,
  maintenance, unclean, the health Pacemaker computes from the ``#health-*`` attributes),
  resources and where they run, failed actions with their exit reasons, the operation
  history (since when a VM runs where it runs), fencing done, cluster options.
- ``cibadmin --query``: what the resources are (agent, parameters), fence devices, node and
  resource utilization; the N+1 verdict (``vmha.ops.plan``, Pacemaker's scheduler on a copy).
- ``attrd_updater``: the reason HypervisorHealth gave for its colour (``health-vmha-reason``).
- ``stonith_admin --list``: which fence devices can fence each host, as the fencer says.
- each online host's libvirt, read-only (the VMs' own ``hypervisor`` / ``remoteuri``): the
  domains running there (one running outside the cluster is a warning), the guest agent
  channel of each (connected or not).
- the GuestServices' client-path checks (``tcp_check``, ``http_check``, ``db_check``) of the
  services running on this host, run from here with the agent's own code (``vmha.path_check``):
  the agent's vantage point (a guest network may not reach past its host); a service on
  another host shows its monitor's verdict, and its checks as "not run".

A source that does not answer in time is shown as such ("no answer within 2.0s"), never
waited for.

Exit codes (for a monitoring system): 0 all well, 1 degraded (a warning: health not green,
N+1 not met, fencing not sound, a failure on record, a host's libvirt not answering, a VM
outside the cluster), 2 something down (a host offline or unclean, a VM or a service that
should run and does not, a client check failing), 3 cannot tell (the cluster could not be
asked).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

from vmha.deadline import Deadline
from vmha.ocf.runner import CommandError, CommandRunner
from vmha.ops import cluster_env
from vmha.ops import plan as planner

OK, DEGRADED, DOWN, UNKNOWN = 0, 1, 2, 3
VERDICTS = {OK: "ok", DEGRADED: "degraded", DOWN: "down", UNKNOWN: "unknown"}
DEFAULT_TIMEOUT_S = 5.0
LIBVIRT_TIMEOUT_S = 2.0
CHECK_TIMEOUT_S = 2.0
REASON_ATTRIBUTE = "health-vmha-reason"
HEALTH_ATTRIBUTE = "#health-vmha"
VM_AGENTS = {"ocf:vmha:VirtualMachine": True, "ocf:heartbeat:VirtualDomain": False}
SERVICE_AGENT = "ocf:vmha:GuestService"
HEALTH_AGENT = "ocf:vmha:HypervisorHealth"
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"


# -- what the cluster said ------------------------------------------------------------------


@dataclass
class Failure:
    resource: str
    task: str
    node: str
    exit_reason: str
    status: str
    when: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "task": self.task,
            "node": self.node,
            "exit_reason": self.exit_reason,
            "status": self.status,
            "at": self.when,
        }


@dataclass
class Host:
    name: str
    online: bool = False
    standby: bool = False
    maintenance: bool = False
    unclean: bool = False
    pending: bool = False
    health: str = "green"  # Pacemaker's, from every #health-* attribute
    health_reason: str = ""
    capacity: dict[str, int] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    fence_devices: list[str] | None = None  # None: not known
    fenced_at: float | None = None
    libvirt: str = "not asked"  # "answers", "no answer ...", "not asked (offline)"
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)  # running, by name

    @property
    def state(self) -> str:
        if self.unclean:
            return "unclean"
        if not self.online:
            return "offline"
        if self.pending:
            return "pending"
        if self.maintenance:
            return "maintenance"
        return "standby" if self.standby else "online"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "health": self.health,
            "health_reason": self.health_reason or None,
            "capacity": self.capacity,
            "used": self.used,
            "fence_devices": self.fence_devices,
            "fenced_at": self.fenced_at,
            "libvirt": self.libvirt,
            "domains": sorted(self.domains, key=planner.natural),
        }


@dataclass
class Check:
    url: str
    ok: bool | None  # None: not run
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.url, "ok": self.ok, "reason": self.reason}


@dataclass
class Service:
    id: str
    vm: str | None
    role: str
    hosts: list[str]
    target_stopped: bool
    managed: bool
    failed: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def down(self) -> bool:
        return not self.target_stopped and (not self.hosts or self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vm": self.vm,
            "role": self.role,
            "hosts": self.hosts,
            "target_stopped": self.target_stopped,
            "managed": self.managed,
            "failed": self.failed,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class Vm:
    id: str
    agent: str
    ours: bool
    domain: str
    role: str = "Stopped"
    hosts: list[str] = field(default_factory=list)
    target_stopped: bool = False
    managed: bool = True
    failed: bool = False
    since: float | None = None
    needs: dict[str, int] = field(default_factory=dict)
    guest_agent: str | None = None  # connected / disconnected / none (no channel) / None: not asked
    services: list[Service] = field(default_factory=list)
    last_failure: Failure | None = None

    @property
    def down(self) -> bool:
        return not self.target_stopped and (not self.hosts or self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "managed_by_vmha": self.ours,
            "domain": self.domain,
            "role": self.role,
            "hosts": self.hosts,
            "target_stopped": self.target_stopped,
            "managed": self.managed,
            "failed": self.failed,
            "since": self.since,
            "utilization": self.needs,
            "guest_agent": self.guest_agent,
            "last_failure": self.last_failure.to_json() if self.last_failure else None,
            "services": [s.to_json() for s in self.services],
        }


@dataclass
class Snapshot:
    cluster_name: str = ""
    dc: str | None = None
    quorum: bool | None = None
    stonith_enabled: bool | None = None
    maintenance_mode: bool = False
    health_watched: bool = True  # False: no HypervisorHealth, the colour is Pacemaker's default
    hosts: dict[str, Host] = field(default_factory=dict)
    vms: dict[str, Vm] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # something down
    n_plus_1: str | None = None  # met / not met / unknown
    n_plus_1_detail: list[str] = field(default_factory=list)
    elapsed_s: float | None = None
    needs: dict[str, dict[str, int]] = field(default_factory=dict)  # utilization per resource
    orphans: list[Service] = field(default_factory=list)  # services whose VM is no resource

    @property
    def exit_code(self) -> int:
        if self.problems:
            return DOWN
        return DEGRADED if self.warnings else OK

    def to_json(self) -> dict[str, Any]:
        code = self.exit_code
        return {
            "verdict": VERDICTS[code],
            "exit_code": code,
            "cluster": {
                "name": self.cluster_name or None,
                "dc": self.dc,
                "quorum": self.quorum,
                "stonith_enabled": self.stonith_enabled,
                "maintenance_mode": self.maintenance_mode,
                "health_watched": self.health_watched,
                "n_plus_1": self.n_plus_1,
                "n_plus_1_detail": self.n_plus_1_detail,
            },
            "problems": self.problems,
            "warnings": self.warnings,
            "hosts": [h.to_json() for h in self.hosts.values()],
            "vms": [v.to_json() for v in self.vms.values()],
            "failures": [f.to_json() for f in self.failures],
            "elapsed_s": self.elapsed_s,
        }


class CannotTell(Exception):
    pass


# -- reading crm_mon and the CIB ------------------------------------------------------------


def _flag(el: Any, name: str) -> bool:
    return str(el.get(name, "false")).lower() == "true"


def parse_time(text: str | None) -> float | None:
    """crm_mon's time stamps: "Fri Dec  4 18:12:17 2026" (local time) as in 2.1, or ISO
    8601 with an offset ("2026-12-04 18:12:17 +00:00", failures in 2.1.5+)."""
    if not text:
        return None
    text = " ".join(text.split())
    for fmt in ("%a %b %d %H:%M:%S %Y", "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            if "%z" in fmt:
                import datetime

                return datetime.datetime.strptime(text, fmt).timestamp()
            return time.mktime(time.strptime(text, fmt))
        except ValueError:
            continue
    return None


def read_crm_mon(root: Any, snap: Snapshot) -> dict[str, dict[str, Any]]:
    """Fill ``snap`` from crm_mon's XML; returns per resource id what crm_mon says of it."""
    status = root.find("status")
    if status is not None and status.get("code") not in (None, "0"):
        raise CannotTell(f"crm_mon: {status.get('message') or 'error'} (code {status.get('code')})")
    errors = [str(e.text or "").strip() for e in root.iterfind("status/errors/error")]
    summary = root.find("summary")
    if summary is None or root.find("nodes") is None:
        # crm_mon 2.1 says "OK" (exit 0) with the error inside when it cannot reach the CIB
        raise CannotTell(f"crm_mon: {'; '.join(errors) or 'no cluster status in its answer'}")
    if summary is not None:
        dc = summary.find("current_dc")
        if dc is not None and _flag(dc, "present"):
            snap.dc = dc.get("name")
            snap.quorum = _flag(dc, "with_quorum")
        elif dc is not None:
            snap.quorum = False
        opts = summary.find("cluster_options")
        if opts is not None:
            snap.stonith_enabled = _flag(opts, "stonith-enabled")
            snap.maintenance_mode = _flag(opts, "maintenance-mode")
    for n in root.iterfind("nodes/node"):
        if n.get("type") not in (None, "member"):
            continue
        name = str(n.get("name"))
        snap.hosts[name] = Host(
            name,
            online=_flag(n, "online"),
            standby=_flag(n, "standby") or _flag(n, "standby_onfail"),
            maintenance=_flag(n, "maintenance"),
            unclean=_flag(n, "unclean"),
            pending=_flag(n, "pending"),
            health=str(n.get("health", "green")),
        )
    resources: dict[str, dict[str, Any]] = {}
    for r in root.iterfind("resources//resource"):
        rid = str(r.get("id"))
        seen = resources.setdefault(
            rid,
            {"agent": r.get("resource_agent", ""), "hosts": [], "role": r.get("role", "Stopped"), "failed": False},
        )
        seen["hosts"] += [str(n.get("name")) for n in r.iterfind("node")] if _flag(r, "active") else []
        seen["failed"] = seen["failed"] or _flag(r, "failed")
        seen["managed"] = _flag(r, "managed")
        seen["target_stopped"] = str(r.get("target_role", "")).lower() == "stopped"
        if _flag(r, "active"):
            seen["role"] = r.get("role", "Started")
    since: dict[tuple[str, str], float] = {}
    for node in root.iterfind("node_history/node"):
        for rh in node.iterfind("resource_history"):
            for op in rh.iterfind("operation_history"):
                if op.get("task") in ("start", "migrate_from") and op.get("rc") == "0":
                    when = parse_time(op.get("last-rc-change"))
                    if when is not None:
                        key = (str(rh.get("id")), str(node.get("name")))
                        since[key] = max(since.get(key, 0.0), when)
    for rid, seen in resources.items():
        found = [since[(rid, h)] for h in seen["hosts"] if (rid, h) in since]
        seen["since"] = max(found) if found else None
    for f in root.iterfind("failures/failure"):
        task = str(f.get("task", ""))
        op_key = str(f.get("op_key", ""))
        suffix = f"_{task}_{f.get('interval', '0')}"
        rid = op_key[: -len(suffix)] if op_key.endswith(suffix) else op_key.rsplit("_", 2)[0]
        snap.failures.append(
            Failure(
                rid.split(":", 1)[0],
                task,
                str(f.get("node", "")),
                str(f.get("exitreason", "")),
                str(f.get("exitstatus", f.get("status", ""))),
                parse_time(f.get("last-rc-change")),
            )
        )
    for event in root.iterfind("fence_history/fence_event"):
        if event.get("status") == "success" and event.get("action", "reboot") in ("reboot", "off"):
            host = snap.hosts.get(str(event.get("target")))
            when = parse_time(event.get("completed"))
            if host is not None and when is not None:
                host.fenced_at = max(host.fenced_at or 0.0, when)
    return resources


def _params(prim: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for nv in prim.iterfind("instance_attributes/nvpair"):
        found.setdefault(str(nv.get("name")), str(nv.get("value", "")))
    return found


def _agent(prim: Any) -> str:
    provider = prim.get("provider")
    return ":".join(p for p in (prim.get("class"), provider, prim.get("type")) if p)


@dataclass
class Definitions:
    vms: dict[str, tuple[str, dict[str, str]]]  # id -> (agent, params)
    services: dict[str, dict[str, str]]  # id -> params
    fence_devices: list[str]
    cluster_name: str
    health_watched: bool = False  # a HypervisorHealth resource is configured


def read_cib(root: Any) -> Definitions:
    vms, services, fence = {}, {}, []
    watched = False
    for prim in root.iterfind("configuration/resources//primitive"):
        agent, rid = _agent(prim), str(prim.get("id"))
        if agent in VM_AGENTS:
            vms[rid] = (agent, _params(prim))
        elif agent == SERVICE_AGENT:
            services[rid] = _params(prim)
        elif prim.get("class") == "stonith":
            fence.append(rid)
        elif agent == HEALTH_AGENT:
            watched = True
    props = {
        str(nv.get("name")): str(nv.get("value", ""))
        for nv in root.iterfind("configuration/crm_config/cluster_property_set/nvpair")
    }
    return Definitions(vms, services, fence, props.get("cluster-name", ""), watched)


def domain_name(agent: str, params: Mapping[str, str], rid: str) -> str:
    """The libvirt name of a VM resource's domain: the <name> of its config (both agents
    keep the domain XML at ``config``), else the resource id."""
    path = params.get("config", "")
    if path:
        try:
            if os.path.getsize(path) <= 4 * 1024 * 1024:
                with open(path, "rb") as f:
                    xml = planner.parse_xml(f.read(), path)
                name = xml.findtext("name")
                if name:
                    return str(name).strip()
        except (OSError, ValueError):
            pass
    return rid


def libvirt_uris(defs: Definitions, local: str | None, hosts: Sequence[str]) -> dict[str, str]:
    """The URI to read each host's libvirt by, as the VM resources reach it: this host's
    ``hypervisor``; a peer through ``remoteuri`` (``%n`` the node name) or, as VirtualDomain
    does, qemu+ssh://NODE/system."""
    local_uri, remote = "qemu:///system", ""
    for agent, params in defs.vms.values():
        local_uri = params.get("hypervisor") or local_uri
        if agent == "ocf:vmha:VirtualMachine" and params.get("remoteuri"):
            remote = params["remoteuri"]
            break
    found = {}
    for h in hosts:
        if h == local:
            found[h] = local_uri
        elif remote:
            found[h] = remote.replace("%n", h)
        else:
            found[h] = f"qemu+ssh://{h}/system?no_tty=1"
    return found


# -- asking the hosts -----------------------------------------------------------------------


def ask_libvirt(uri: str, timeout_s: float) -> tuple[str, dict[str, dict[str, Any]]]:
    """(how libvirt answered, running domains by name with their guest agent channel state)."""
    from vmha.virt.connection import Connection
    from vmha.virt.errors import HypervisorTimeout, VirtError
    from vmha.virt.host import running_domains

    deadline = Deadline.after(timeout_s)
    try:
        with Connection.open(uri, deadline, readonly=True) as conn:
            found = {}
            for d in running_domains(conn, with_xml=True):
                found[d.name] = {"guest_agent": agent_channel(d.xml), "max_mib": d.max_kib // 1024}
            return "answers", found
    except HypervisorTimeout:
        return f"no answer within {timeout_s:g}s ({uri})", {}
    except VirtError as exc:
        return f"unreachable ({uri}): {exc}", {}


def agent_channel(xml: str) -> str:
    """The guest agent channel's state in a live domain XML: connected, disconnected, or
    none (the domain has no such channel)."""
    if not xml:
        return "none"
    try:
        root = planner.parse_xml(xml.encode(), "domain XML")
    except ValueError:
        return "none"
    for ch in root.iterfind("devices/channel"):
        target = ch.find("target")
        if target is not None and target.get("name") == GUEST_AGENT_CHANNEL:
            return str(target.get("state") or "disconnected")
    return "none"


def service_checks(params: Mapping[str, str], timeout_s: float) -> list[tuple[str, Callable[[], Check]]]:
    """The client-path checks a GuestService is configured with, as callables."""
    from vmha import path_check

    found: list[tuple[str, Callable[[], Check]]] = []

    def one(url: str, **extra: Any) -> Callable[[], Check]:
        def run() -> Check:
            try:
                ok, reason = path_check.check(url, timeout=timeout_s, **extra)
            except Exception as exc:  # noqa: BLE001 - one check's trouble is its own line
                return Check(url, None, f"not run: {exc}")
            return Check(url, ok, reason)

        return run

    tcp = params.get("tcp_check", "")
    if tcp:
        url = tcp if "://" in tcp else f"tcp://{tcp}"
        found.append((url, one(url)))
    http = params.get("http_check", "")
    if http:
        extra: dict[str, Any] = {
            "status": params.get("http_status", ""),
            "body": params.get("http_body", ""),
            "ca_file": params.get("http_ca_file", ""),
            "insecure": params.get("http_insecure", "").lower() in ("1", "true", "yes", "on"),
        }
        if params.get("http_max_latency_ms", "").isdigit():
            extra["max_latency_ms"] = int(params["http_max_latency_ms"])
        found.append((http, one(http, **extra)))
    db = params.get("db_check", "")
    if db:
        found.append(
            (
                db,
                one(
                    db,
                    password_file=params.get("db_password_file", ""),
                    require_primary=params.get("db_require_primary", "").lower() in ("1", "true", "yes", "on"),
                ),
            )
        )
    return found


# -- gathering ------------------------------------------------------------------------------


def _run(runner: CommandRunner, argv: list[str], deadline: Deadline, cap: float) -> str:
    """stdout of a cluster command; raises CommandError (CommandFailed on a non-zero exit)."""
    done = runner.run(argv, timeout=max(0.1, min(cap, deadline.remaining())))
    if not done.ok:
        raise CommandError(done.complaint())
    return done.stdout


def this_host() -> str:
    return os.uname().nodename


def gather(runner: CommandRunner, timeout_s: float, *, run_plan: bool = True, checks: bool = True) -> Snapshot:
    """Everything at once; raises CannotTell when crm_mon gives no answer."""
    start = time.monotonic()
    deadline = Deadline.after(timeout_s)
    snap = Snapshot()
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="vmha-status")
    try:
        mon_f = pool.submit(
            _run,
            runner,
            ["crm_mon", "--one-shot", "--output-as=xml", "--inactive", "--fence-history=2"],
            deadline,
            timeout_s,
        )
        cib_f = pool.submit(_run, runner, ["cibadmin", "--query"], deadline, timeout_s)
        me_f = pool.submit(_run, runner, ["crm_node", "--name"], deadline, 2.0)
        why_f = pool.submit(
            _run, runner, ["attrd_updater", "--query", "--all", "--name", REASON_ATTRIBUTE], deadline, 2.0
        )
        try:
            mon_root = planner.parse_xml(mon_f.result().encode(), "crm_mon's answer")
        except (CommandError, ValueError) as exc:
            raise CannotTell(f"crm_mon: {exc}") from None
        resources = read_crm_mon(mon_root, snap)
        try:
            cib_bytes = cib_f.result().encode()
            cib_root = planner.parse_xml(cib_bytes, "the CIB")
        except (CommandError, ValueError) as exc:
            raise CannotTell(f"cibadmin: {exc}") from None
        defs = read_cib(cib_root)
        snap.cluster_name = defs.cluster_name
        snap.health_watched = defs.health_watched
        try:
            local: str | None = me_f.result().strip() or None
        except CommandError:  # no controller to ask (a saved CIB): this machine's name
            local = this_host()
        try:
            for host, value in _attr_values(why_f.result()).items():
                if host in snap.hosts:
                    snap.hosts[host].health_reason = value
        except CommandError:
            pass
        _utilization(cib_root, snap, resources)

        # the slow questions, all at once
        fence_f = {
            h: pool.submit(_run, runner, ["stonith_admin", "--list", h], deadline, 2.0)
            for h in snap.hosts
            if defs.fence_devices
        }
        uris = libvirt_uris(defs, local, [h.name for h in snap.hosts.values() if h.online])
        virt_timeout = max(0.2, min(LIBVIRT_TIMEOUT_S, deadline.remaining() - 0.5))
        virt_f = {h: pool.submit(ask_libvirt, uri, virt_timeout) for h, uri in uris.items()}
        plan_f: Future[tuple[str, list[str]]] | None = None
        if run_plan and defs.vms:
            plan_f = pool.submit(_n_plus_1, cib_bytes, runner, deadline)
        vms = _vms(defs, resources, snap)
        check_f: dict[tuple[str, str], Future[Check]] = {}
        if checks:
            check_timeout = max(0.2, min(CHECK_TIMEOUT_S, deadline.remaining() - 0.5))
            for vm in vms.values():
                for svc in vm.services:
                    if not svc.hosts or svc.failed or local not in svc.hosts:
                        continue  # from the host it runs on, as its agent asks: elsewhere below
                    for url, fn in service_checks(defs.services[svc.id], check_timeout):
                        check_f[(svc.id, url)] = pool.submit(fn)
        for h, f in fence_f.items():
            try:
                snap.hosts[h].fence_devices = _device_list(f.result())
            except CommandError:
                snap.hosts[h].fence_devices = None
        for h, vf in virt_f.items():
            snap.hosts[h].libvirt, snap.hosts[h].domains = vf.result()
        for seen in snap.hosts.values():
            if not seen.online:
                seen.libvirt = "not asked (offline)"
        for vm in vms.values():
            for svc in vm.services:
                if checks and svc.hosts and not svc.failed and local not in svc.hosts:
                    # the client path is the one from the service's host (a guest network may
                    # not reach past it): its monitor there asks, and its state says how it went
                    elsewhere = f"asked from {', '.join(svc.hosts)} by its monitor; vmha status there runs it"
                    svc.checks = [Check(url, None, elsewhere) for url in _urls(defs.services[svc.id])]
                    continue
                svc.checks = [
                    check_f[(svc.id, url)].result() for url in _urls(defs.services[svc.id]) if (svc.id, url) in check_f
                ]
            for host in vm.hosts:
                dom = snap.hosts[host].domains.get(vm.domain) if host in snap.hosts else None
                if dom is not None:
                    vm.guest_agent = dom["guest_agent"]
        if plan_f is not None:
            snap.n_plus_1, snap.n_plus_1_detail = plan_f.result()
        snap.vms = vms
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    judge(snap, defs)
    snap.elapsed_s = round(time.monotonic() - start, 3)
    return snap


def _urls(params: Mapping[str, str]) -> list[str]:
    return [url for url, _ in service_checks(params, 1.0)]


def _attr_values(text: str) -> dict[str, str]:
    """attrd_updater --query --all: ``name="N" host="H" value="V"`` per line."""
    import re

    found = {}
    for m in re.finditer(r'host="([^"]*)"\s+value="((?:[^"\\]|\\.)*)"', text):
        if m.group(2):
            found[m.group(1)] = m.group(2)
    return found


def _device_list(text: str) -> list[str]:
    """stonith_admin --list HOST: one device per line, then "N fence device(s) found"."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not re.fullmatch(r"\d+ fence devices? found", line.strip())
    ]


def _utilization(cib_root: Any, snap: Snapshot, resources: Mapping[str, Mapping[str, Any]]) -> None:
    try:
        cluster = planner.read_cluster(cib_root)
    except planner.BadInput:
        return
    for name, host in snap.hosts.items():
        if name in cluster.hosts:
            host.capacity = dict(cluster.hosts[name].capacity)
    for rid, seen in resources.items():
        for h in seen["hosts"]:
            if h in snap.hosts:
                for attr, need in cluster.needs.get(rid, {}).items():
                    snap.hosts[h].used[attr] = snap.hosts[h].used.get(attr, 0) + need
    snap.needs = cluster.needs


def _vms(defs: Definitions, resources: Mapping[str, Mapping[str, Any]], snap: Snapshot) -> dict[str, Vm]:
    needs = snap.needs
    vms: dict[str, Vm] = {}
    for rid in sorted(defs.vms, key=planner.natural):
        agent, params = defs.vms[rid]
        seen = resources.get(rid, {})
        vm = Vm(rid, agent, VM_AGENTS[agent], domain_name(agent, params, rid))
        vm.role = str(seen.get("role", "Stopped"))
        vm.hosts = list(seen.get("hosts", []))
        vm.target_stopped = bool(seen.get("target_stopped", False))
        vm.managed = bool(seen.get("managed", True))
        vm.failed = bool(seen.get("failed", False))
        vm.since = seen.get("since")
        vm.needs = dict(needs.get(rid, {}))
        mine = [f for f in snap.failures if f.resource == rid]
        vm.last_failure = max(mine, key=lambda f: f.when or 0.0) if mine else None
        vms[rid] = vm
    by_domain = {vm.domain: vm for vm in vms.values()}
    for sid in sorted(defs.services, key=planner.natural):
        params = defs.services[sid]
        seen = resources.get(sid, {})
        owner = by_domain.get(params.get("domain", "")) or vms.get(params.get("domain", ""))
        svc = Service(
            sid,
            owner.id if owner else None,
            str(seen.get("role", "Stopped")),
            list(seen.get("hosts", [])),
            bool(seen.get("target_stopped", False)),
            bool(seen.get("managed", True)),
            bool(seen.get("failed", False)),
        )
        if owner is not None:
            owner.services.append(svc)
        else:
            snap.orphans.append(svc)
    return vms


def _n_plus_1(cib_bytes: bytes, runner: CommandRunner, deadline: Deadline) -> tuple[str, list[str]]:
    """(verdict, one line per scenario not met) from vmha plan on the same CIB."""
    workdir = tempfile.mkdtemp(prefix="vmha-status-")
    try:
        root = planner.parse_xml(cib_bytes, "the CIB")
        cluster = planner.read_cluster(root)
        scenarios, _ = planner.scenarios_for(cluster, None, ())
        results = planner.plan(
            root, cluster, scenarios, runner, deadline.earlier(0.3), jobs=planner.default_jobs(), workdir=workdir
        )
    except (planner.BadInput, planner.CannotTell) as exc:
        return "unknown", [str(exc)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = planner.Report(cluster, results, [], [])
    detail = []
    for r in results:
        if r.verdict == "not met":
            short = ", ".join(
                f"{s['attribute']} short by {planner.amount(s['attribute'], s['short_by'] or s['needed'])}"
                for s in r.shortfalls
            )
            stopped = ", ".join(o.vm for o in r.stopped)
            detail.append(f"{r.scenario.name}: {stopped} would stay stopped" + (f" ({short})" if short else ""))
        elif r.verdict == "unknown":
            detail.append(f"{r.scenario.name}: cannot tell ({r.error})")
    return report.verdict, detail


# -- the verdict ----------------------------------------------------------------------------


def judge(snap: Snapshot, defs: Definitions) -> None:
    w, p = snap.warnings, snap.problems
    if snap.quorum is False:
        p.append("this partition has no quorum: the cluster runs nothing here")
    if snap.stonith_enabled is False:
        w.append("fencing is disabled (stonith-enabled=false): a failed host's VMs are not recovered safely")
    elif not defs.fence_devices:
        w.append("no fence device is configured: a failed host cannot be fenced, its VMs stay down")
    if snap.maintenance_mode:
        w.append("the cluster is in maintenance mode: nothing is monitored or recovered")
    for h in snap.hosts.values():
        if h.unclean:
            p.append(f"host {h.name} is unclean: waiting to be fenced")
        elif not h.online:
            p.append(f"host {h.name} is offline" + (" (fenced)" if h.fenced_at else ""))
        if h.online and h.standby:
            w.append(f"host {h.name} is in standby")
        if h.online and h.maintenance:
            w.append(f"host {h.name} is in maintenance")
        if h.health != "green":
            why = f": {h.health_reason}" if h.health_reason else ""
            w.append(f"host {h.name} health is {h.health}{why}")
        if defs.fence_devices and h.fence_devices == []:
            w.append(f"no fence device can fence {h.name} (stonith_admin --list {h.name})")
        if h.online and h.libvirt != "answers":
            w.append(f"host {h.name}: libvirt {h.libvirt}")
    known = {vm.domain for vm in snap.vms.values()}
    for h in snap.hosts.values():
        outside = sorted((d for d in h.domains if d not in known), key=planner.natural)
        if outside:
            w.append(f"host {h.name} runs {', '.join(outside)} outside the cluster (no resource manages it)")
    for vm in snap.vms.values():
        if not vm.ours:
            w.append(f"{vm.id} is managed by {vm.agent}, not vmha (vmha import --from-virtualdomain)")
        if vm.down:
            p.append(f"VM {vm.id} is {'failed' if vm.failed else 'not running'}")
        elif len(vm.hosts) > 1:
            p.append(f"VM {vm.id} is active on {', '.join(vm.hosts)}")
        if not vm.managed:
            w.append(f"VM {vm.id} is not managed by Pacemaker (is-managed=false or maintenance)")
        if vm.hosts and vm.guest_agent == "disconnected":
            w.append(f"VM {vm.id}: its guest agent does not answer")
        for svc in vm.services:
            if svc.down and vm.hosts:
                p.append(f"service {svc.id} in {vm.id} is {'failed' if svc.failed else 'not running'}")
            for c in svc.checks:
                if c.ok is False:
                    p.append(f"service {svc.id}: {c.reason}")
    if snap.failures:
        w.append(f"{len(snap.failures)} failed action(s) on record (pcs resource cleanup once understood)")
    if snap.n_plus_1 == "not met":
        w.append("N+1 not met: " + "; ".join(snap.n_plus_1_detail))
    elif snap.n_plus_1 == "unknown":
        w.append("N+1 cannot be told: " + "; ".join(snap.n_plus_1_detail))


# -- output ---------------------------------------------------------------------------------


def _ago(when: float | None, now: float) -> str:
    if when is None:
        return ""
    s = max(0, int(now - when))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


class Paint:
    """ANSI colour only for a terminal, and never with NO_COLOR set (no-color.org)."""

    CODES = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}

    def __init__(self, out: TextIO, env: Mapping[str, str]) -> None:
        isatty = getattr(out, "isatty", None)
        self.on = bool(isatty and isatty()) and "NO_COLOR" not in env and env.get("TERM") != "dumb"

    def __call__(self, text: str, colour: str) -> str:
        return f"\x1b[{self.CODES[colour]}m{text}\x1b[0m" if self.on and colour in self.CODES else text


def _usage(h: Host) -> str:
    parts = []
    for attr in ("cpu", "hv_memory"):
        if attr in h.capacity:
            unit = " MiB" if attr in planner.MIB_ATTRIBUTES else ""
            parts.append(f"{attr} {h.used.get(attr, 0)}/{h.capacity[attr]}{unit}")
    return ", ".join(parts)


def render_text(snap: Snapshot, paint: Paint, now: float | None = None) -> str:
    now = time.time() if now is None else now
    code = snap.exit_code
    colour = {OK: "green", DEGRADED: "yellow", DOWN: "red"}.get(code, "red")
    head = f"cluster {snap.cluster_name or '(unnamed)'}: {len(snap.hosts)} hosts, " + (
        f"DC {snap.dc}" if snap.dc else "no DC"
    )
    head += ", quorum" if snap.quorum else ", NO QUORUM" if snap.quorum is False else ""
    head += f", N+1 {snap.n_plus_1}" if snap.n_plus_1 else ""
    lines = [head]
    for text in snap.problems:
        lines.append(paint(f"DOWN: {text}", "red"))
    for text in snap.warnings:
        lines.append(paint(f"WARN: {text}", "yellow"))
    placed: set[str] = set()
    for h in snap.hosts.values():
        health = paint(h.health, h.health if h.health in ("green", "yellow", "red") else "red")
        if not snap.health_watched and h.health == "green":
            health = "not watched (no HypervisorHealth)"
        bits = [h.state, f"health {health}" + (f" ({h.health_reason})" if h.health_reason else "")]
        usage = _usage(h)
        if usage:
            bits.append(usage)
        if h.online and h.libvirt != "answers":
            bits.append(f"libvirt {h.libvirt}")
        if h.fenced_at:
            bits.append(f"fenced {_ago(h.fenced_at, now)} ago")
        lines.append(f"{paint(h.name, 'bold')}  " + ", ".join(bits))
        for vm in snap.vms.values():
            if h.name not in vm.hosts:
                continue
            placed.add(vm.id)
            lines.append("  " + _vm_line(vm, now, paint))
            lines += ["    " + _svc_line(s, paint) for s in vm.services]
    rest = [vm for vm in snap.vms.values() if vm.id not in placed]
    if rest:
        lines.append(paint("not running", "bold"))
        for vm in rest:
            lines.append("  " + _vm_line(vm, now, paint))
            lines += ["    " + _svc_line(s, paint) for s in vm.services]
    lines.append(f"status: {paint(VERDICTS.get(code, 'unknown'), colour)} (exit {code}) in {snap.elapsed_s}s")
    return "\n".join(lines) + "\n"


def _vm_line(vm: Vm, now: float, paint: Paint) -> str:
    state = vm.role if vm.hosts else ("Stopped (disabled)" if vm.target_stopped else "STOPPED")
    if vm.failed:
        state = "FAILED"
    bits = [f"{vm.id:<10}", state]
    if vm.since and vm.hosts:
        bits.append(f"for {_ago(vm.since, now)}")
    if vm.domain != vm.id:
        bits.append(f"domain {vm.domain}")
    if vm.guest_agent and vm.hosts:
        bits.append(f"guest agent {vm.guest_agent}")
    if not vm.ours:
        bits.append(f"[{vm.agent}]")
    if vm.last_failure:
        f = vm.last_failure
        bits.append(f"last failure: {f.task} on {f.node} {_ago(f.when, now)} ago: {f.exit_reason or f.status}")
    text = "  ".join(bits)
    return paint(text, "red") if vm.down else text


def _svc_line(s: Service, paint: Paint) -> str:
    state = s.role if s.hosts else ("Stopped (disabled)" if s.target_stopped else "STOPPED")
    checks = "; ".join(
        f"{c.url} {'ok' if c.ok else 'FAILED' if c.ok is False else 'not run'}"
        + (f" ({c.reason})" if c.reason and not c.ok else "")
        for c in s.checks
    )
    text = f"{s.id:<10}  {state}" + (f"  {checks}" if checks else "")
    return paint(text, "red") if s.down or any(c.ok is False for c in s.checks) else text


# -- the command ----------------------------------------------------------------------------


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


EPILOG = """\
exit codes:
  0  all well
  1  degraded: a warning (health not green, N+1 not met, fencing not sound, a failed
     action on record, a host's libvirt not answering, a VM running outside the cluster)
  2  something down: a host offline or unclean, a VM or service that should run and does
     not, a client-path check failing
  3  cannot tell: the cluster could not be asked (not a cluster node, Pacemaker not running)
"""


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vmha status",
        description="One view of the whole stack: hosts, VMs, guests, services and their client path.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text view")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds for everything asked (default {DEFAULT_TIMEOUT_S:g}); what has not answered by then is shown so",
    )
    p.add_argument(
        "--no-checks", action="store_true", help="do not run the client-path checks of the services on this host"
    )
    p.add_argument("--no-plan", action="store_true", help="do not ask the scheduler for the N+1 verdict")
    return p


def main(
    argv: list[str],
    *,
    runner: CommandRunner | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    environ = {} if env is None else env
    parser = _parser()
    try:
        opts = parser.parse_args(argv)
    except _Usage as exc:
        return _bad(err, str(exc))
    if opts.help:
        out.write(parser.format_help())
        return OK
    if not 0 < opts.timeout <= 600:
        return _bad(err, "--timeout must be above 0 and at most 600 seconds")
    run = runner if runner is not None else CommandRunner(cluster_env(environ))
    try:
        snap = gather(run, opts.timeout, run_plan=not opts.no_plan, checks=not opts.no_checks)
    except CannotTell as exc:
        if opts.json:
            out.write(json.dumps({"verdict": "unknown", "exit_code": UNKNOWN, "error": str(exc)}) + "\n")
        err.write(f"vmha status: cannot tell: {exc}\n")
        return UNKNOWN
    if opts.json:
        out.write(json.dumps(snap.to_json()) + "\n")
    else:
        out.write(render_text(snap, Paint(out, environ)))
    return snap.exit_code


def _bad(err: TextIO, message: str) -> int:
    """Bad usage has no code of its own among the status codes: it is "cannot tell" (3),
    with the reason on stderr."""
    err.write(f"vmha status: {message}\n")
    return UNKNOWN
