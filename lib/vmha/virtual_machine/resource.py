"""What every VirtualMachine action needs: the resource's identity, memory and libvirt.

``Resource`` holds one invocation's context (parameters, deadline, command runner) and what
we remember between invocations, in one JSON file under HA_RSCTMP:
  config   - the identity (name, UUID, vCPUs, memory) parsed from ``config``, keyed by the
             file's inode/size/mtime, so the monitor does not parse XML (or load lxml)
  started  - the name and UUID of the domain this resource started here, so stop and
             monitor still find it if ``config`` disappears or is edited to another domain
  utilization - the values last published with crm_resource

The actions themselves are ``vmha.virtual_machine.agent.VirtualMachine``; the steps of the
longer ones live in the sibling modules, as functions taking a ``Resource``.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

from vmha.deadline import Deadline
from vmha.ocf import statefile, utilization
from vmha.ocf.codes import NotConfigured, NotInstalled
from vmha.ocf.context import OcfContext
from vmha.ocf.dispatch import watchdog_margin
from vmha.ocf.log import Log
from vmha.ocf.runner import CommandRunner
from vmha.virt.connection import Connection
from vmha.virt.domain import Domain

AGENT = "VirtualMachine"
POLL_S = 0.25
UTILIZATION_RETRY_S = 60.0
# how long stop and migrate_to wait for the disks' storage to answer (vmha.virt.disk_io)
DISK_PROBE_S = 3.0


class Identity(NamedTuple):
    name: str
    uuid: str | None

    def describe(self) -> str:
        return f"{self.name} ({self.uuid})" if self.uuid else self.name

    def same_domain(self, other: Identity) -> bool:
        if self.uuid and other.uuid:
            return self.uuid == other.uuid
        return self.name == other.name


def _config_key(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


class Resource:
    """One invocation of the agent: the context, what we remember, config and libvirt."""

    def __init__(self, ctx: OcfContext, log: Log, runner: CommandRunner | None = None) -> None:
        self.ctx = ctx
        self.log = log
        self.p = ctx.params
        self.uri = self.p.text("hypervisor")
        self.config_path = self.p.text("config")
        self.runner = runner or CommandRunner(ctx.env)
        # Handlers must be done by this; the dispatcher's watchdog fires half a second after it.
        self.deadline = ctx.deadline().earlier(watchdog_margin(ctx.timeout_s) + 0.5)
        self._store = statefile.Store(statefile.state_path(ctx.rsc_tmp, AGENT, ctx.instance), log.warning)

    # -- what we remember ------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        return self._store.data

    def save_state(self) -> None:
        self._store.save()

    def started(self) -> Identity | None:
        rec = self.state.get("started")
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            return Identity(rec["name"], rec.get("uuid") or None)
        return None

    def remember_started(self, dom: Domain) -> None:
        # "at" starts the guest's boot grace period (monotonic: system-wide, and HA_RSCTMP is
        # emptied at boot with it).
        self.state["started"] = {"name": dom.name, "uuid": dom.uuid(), "at": time.monotonic()}
        self.state.pop("liveness", None)
        self.state.pop("start_pending", None)
        self.save_state()

    def forget_started(self) -> None:
        keys = ("started", "utilization", "utilization_retry_at", "liveness", "start_pending")
        had = [self.state.pop(k, None) for k in keys]
        if any(v is not None for v in had):
            self.save_state()

    # -- the config file -------------------------------------------------------------------

    def read_config(self) -> tuple[bytes, Any]:
        """The config's bytes and parsed facts. Raises NotInstalled, NotConfigured."""
        from vmha.virt import domxml

        try:
            with open(self.config_path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read(domxml.MAX_XML_BYTES + 1)
        except FileNotFoundError:
            raise NotInstalled(f"config {self.config_path} does not exist on this node") from None
        except OSError as exc:
            raise NotInstalled(f"config {self.config_path} cannot be read: {exc.strerror}") from None
        try:
            cfg = domxml.parse(data)
        except domxml.DomainXmlError as exc:
            raise NotConfigured(f"config {self.config_path}: {exc}") from None
        self.state["config"] = {
            "path": self.config_path,
            "key": _config_key(st),
            "name": cfg.name,
            "uuid": cfg.uuid,
            "vcpus": cfg.vcpus,
            "max_memory_kib": cfg.max_memory_kib,
            "has_guest_agent": cfg.has_guest_agent,
        }
        return data, cfg

    def disk_problems(self, within: float = DISK_PROBE_S, disks: Any = None) -> dict[str, str]:
        """What ``vmha.virt.disk_io.probe`` finds wrong with the disks on this host, at most
        ``within`` seconds of it (cut short by the deadline, keeping 1 s).  ``disks``: the
        running domain's, when libvirt gave them; else the config's, read inside the same
        bound (a config on the storage that hangs counts as not answering); empty when the
        config cannot be read (the action's own steps report that)."""
        from vmha.deadline import Deadline, run_within
        from vmha.virt import disk_io

        limit = Deadline.after(max(0.1, min(within, self.deadline.remaining() - 1.0)))
        if disks is None:
            try:
                done, parsed = run_within(self.read_config, limit.remaining(), name="config")
            except (NotInstalled, NotConfigured):
                return {}
            if not done or parsed is None:
                return {self.config_path: f"{disk_io.SILENT} within {within:.1f}s (the config file)"}
            disks = parsed[1].disks
        return disk_io.probe(disks, max(0.1, limit.remaining()))

    def config_identity(self) -> Identity:
        """Name and UUID from ``config``, parsing it only when the file changed.

        Raises NotInstalled, NotConfigured.
        """
        cached = self.state.get("config")
        try:
            st = os.stat(self.config_path)
        except FileNotFoundError:
            raise NotInstalled(f"config {self.config_path} does not exist on this node") from None
        except OSError as exc:
            raise NotInstalled(f"config {self.config_path} cannot be read: {exc.strerror}") from None
        if isinstance(cached, dict) and cached.get("path") == self.config_path and cached.get("key") == _config_key(st):
            return Identity(cached["name"], cached.get("uuid"))
        _data, cfg = self.read_config()
        self.save_state()
        return Identity(cfg.name, cfg.uuid)

    def wants_config_saved(self) -> bool:
        """save_config_on_stop or sync_config_on_stop: write libvirt's definition back to config."""
        return self.p.flag("save_config_on_stop") or self.p.flag("sync_config_on_stop")

    # -- libvirt ---------------------------------------------------------------------------

    def connect(self, deadline: Deadline, *, keepalive: bool = False) -> Connection:
        return Connection.open(self.uri, deadline, keepalive=keepalive)

    def is_local_qemu(self) -> bool:
        """QEMU on this very host (so its processes can be seen in /proc)."""
        scheme, _, rest = self.uri.partition("://")
        return scheme in ("qemu", "qemu+unix") and rest.startswith("/")

    def start_pools_and_networks(self, conn: Connection, pools: tuple[str, ...], networks: tuple[str, ...]) -> None:
        for pool in pools:
            conn.ensure_pool_active(pool)
        for net in networks:
            conn.ensure_network_active(net)

    # -- utilization -----------------------------------------------------------------------

    def update_utilization(self, vcpus: int, max_memory_kib: int) -> None:
        """Publish cpu/host_memory/hv_memory with crm_resource, only when they change
        (``vmha.ocf.utilization``)."""
        sizes = {
            "cpu": str(vcpus),
            "host_memory": str(max_memory_kib // 1024),
            "hv_memory": str(max_memory_kib // 1024),
        }
        wanted: dict[str, str | None] = {}
        for key, value in sizes.items():
            if self.p.flag(f"autoset_utilization_{key}"):
                wanted[key] = value
            elif self.p.flag(f"unset_utilization_{key}"):
                wanted[key] = None
        known = utilization.remembered(self.state.get("utilization"))
        if utilization.unchanged(wanted, known):
            return  # the usual monitor: nothing changed, no cluster tool is run
        retry_at = self.state.get("utilization_retry_at", 0)
        if isinstance(retry_at, (int, float)) and time.monotonic() < retry_at:
            return  # the CIB did not answer lately; do not pay for crm_resource every monitor
        from vmha.ocf.cluster import ClusterTools

        tools, rsc = ClusterTools(self.runner), self.ctx.resource_id

        def read() -> dict[str, str]:
            return tools.utilization(rsc, timeout=min(5.0, self.deadline.remaining()))

        def write(key: str, value: str | None) -> None:
            timeout = min(10.0, self.deadline.remaining())
            if value is None:
                tools.delete_utilization(rsc, key, timeout=timeout)
            else:
                tools.set_utilization(rsc, key, value, timeout=timeout)

        done = utilization.sync(wanted, known, read, write)
        if done.read_error is not None:
            self.log.debug(f"utilization not read from the CIB: {done.read_error}")
        if done.write_error is not None:
            # the failed value is not remembered as written: it is written again after the pause
            self.log.warning(f"utilization not updated (retrying in {UTILIZATION_RETRY_S:g}s): {done.write_error}")
            self.state["utilization_retry_at"] = time.monotonic() + UTILIZATION_RETRY_S
        self.state["utilization"] = done.known
        self.save_state()
