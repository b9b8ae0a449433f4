"""ocf:vmha:VirtualMachine: one libvirt domain as a Pacemaker resource.

A drop-in for ocf:heartbeat:VirtualDomain (same parameter names and meaning) that fixes its
known defects: every libvirt call is bounded by the operation's timeout, probes answer from
/proc when libvirtd cannot be asked, shutdown_mode works, a migration that would outlive its
timeout is aborted so the VM keeps running on the source, utilization is written only when
it changes, and a VM paused on an I/O error is not reported healthy.

What we remember between invocations lives in one JSON file under HA_RSCTMP:
  config   - the identity (name, UUID, vCPUs, memory) parsed from ``config``, keyed by the
             file's inode/size/mtime, so the monitor does not parse XML (or load lxml)
  started  - the name and UUID of the domain this resource started here, so stop and
             monitor still find it if ``config`` disappears or is edited to another domain
  utilization - the values last published with crm_resource
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

from vmha import __version__
from vmha.agents.common import handler
from vmha.agents.vm_params import PARAMS
from vmha.deadline import Deadline
from vmha.ocf import statefile
from vmha.ocf.codes import (
    Degraded,
    GenericError,
    InvalidArgs,
    NotConfigured,
    NotInstalled,
    NotRunning,
    OcfError,
    error_for,
)
from vmha.ocf.context import OcfContext
from vmha.ocf.dispatch import watchdog_margin
from vmha.ocf.log import Log
from vmha.ocf.runner import CommandError, CommandRunner
from vmha.ocf.spec import Action, AgentSpec, Handler
from vmha.probes.vm_state import judge_state, judge_without_libvirt
from vmha.virt.connection import Connection
from vmha.virt.domain import SHUTDOWN_MODES, Domain, DomainState, PausedReason
from vmha.virt.errors import (
    DomainConflict,
    DomainNotFound,
    HypervisorUnreachable,
    OperationInvalid,
    VirtError,
)

AGENT = "VirtualMachine"
POLL_S = 0.25
SHUTDOWN_RESEND_S = 10.0
UTILIZATION_RETRY_S = 60.0


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


class VirtualMachine:
    """One invocation of the agent: the context, what we remember, and the actions."""

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

    def _save_state(self) -> None:
        self._store.save()

    def started(self) -> Identity | None:
        rec = self.state.get("started")
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            return Identity(rec["name"], rec.get("uuid") or None)
        return None

    def _remember_started(self, dom: Domain) -> None:
        # "at" starts the guest's boot grace period (monotonic: system-wide, and HA_RSCTMP is
        # emptied at boot with it).
        self.state["started"] = {"name": dom.name, "uuid": dom.uuid(), "at": time.monotonic()}
        self.state.pop("liveness", None)
        self._save_state()

    def _forget_started(self) -> None:
        had = [self.state.pop(k, None) for k in ("started", "utilization", "utilization_retry_at", "liveness")]
        if any(v is not None for v in had):
            self._save_state()

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
        self._save_state()
        return Identity(cfg.name, cfg.uuid)

    # -- libvirt ---------------------------------------------------------------------------

    def connect(self, deadline: Deadline, *, keepalive: bool = False) -> Connection:
        return Connection.open(self.uri, deadline, keepalive=keepalive)

    def is_local_qemu(self) -> bool:
        """QEMU on this very host (so its processes can be seen in /proc)."""
        scheme, _, rest = self.uri.partition("://")
        return scheme in ("qemu", "qemu+unix") and rest.startswith("/")

    # -- monitor ---------------------------------------------------------------------------

    def monitor(self) -> None:
        started = self.started()
        try:
            ident = self.config_identity()
        except (NotInstalled, NotConfigured) as exc:
            if started is None:
                if isinstance(exc, NotConfigured) and not self.ctx.is_probe:
                    raise
                # Nothing started here since boot and no config to name a domain: the
                # truthful answer for a probe, and never a reason to fence this node.
                raise NotRunning(f"{exc.reason}; nothing was started here") from None
            self.log.warning(f"{exc.reason}; checking the domain this resource started")
            ident = started
        if started is not None and not started.same_domain(ident):
            self.log.warning(f"config now names {ident.describe()} but this resource started {started.describe()} here")
        # Keep a share of the time for the /proc fallback if libvirt does not answer.
        reserve = max(1.0, self.ctx.timeout_s * 0.25)
        try:
            with self.connect(self.deadline.earlier(reserve)) as conn:
                self._monitor_with(conn, ident, started)
        except HypervisorUnreachable as exc:
            self._monitor_without_libvirt(ident, exc)

    def _monitor_with(self, conn: Connection, ident: Identity, started: Identity | None) -> None:
        dom = conn.find(uuid=ident.uuid, name=ident.name)
        if dom is None:
            if started is not None and not started.same_domain(ident):
                other = conn.find(uuid=started.uuid, name=started.name)
                if other is not None and other.status().active:
                    raise GenericError(
                        f"config {self.config_path} now names domain {ident.describe()}, but "
                        f"{started.describe()} started by this resource still runs here"
                    )
            raise NotRunning(f"domain {ident.name} is not running on this host")
        wants_util = any(
            self.p.flag(f"autoset_utilization_{k}") or self.p.flag(f"unset_utilization_{k}")
            for k in ("cpu", "host_memory", "hv_memory")
        )
        info = dom.info() if wants_util else None
        status = info.status if info is not None else dom.status()
        result = judge_state(ident.name, status, self.p.text("on_io_error"))
        if result.rc not in (0, 190):
            raise error_for(result.rc, result.reason)
        if info is not None:
            self.update_utilization(info.vcpus, info.max_memory_kib)
        if self.p.flag("save_config_on_stop") or self.p.flag("sync_config_on_stop"):
            self.save_config(dom)
        self.run_monitor_scripts(dom)
        if self.ctx.check_level >= 10 and status.state is DomainState.RUNNING:
            # A paused guest cannot answer: only a running one is asked.
            self.check_guest(dom)
        if result.rc == 190:
            raise error_for(result.rc, result.reason)

    def _monitor_without_libvirt(self, ident: Identity, exc: HypervisorUnreachable) -> None:
        if not self.is_local_qemu():
            if self.ctx.is_probe and self.started() is None:
                # Not started here since boot, and no way to look: answering "failed" would
                # make Pacemaker stop it here, fail again, and fence a healthy host.
                self.log.warning(f"cannot ask hypervisor {self.uri} ({exc.message}); nothing was started here")
                raise NotRunning(f"hypervisor {self.uri} not answering; nothing was started here")
            raise GenericError(f"cannot ask hypervisor {self.uri}: {exc.message}")
        from vmha.virt.procscan import find_qemu

        proc = find_qemu(ident.name, ident.uuid)
        result = judge_without_libvirt(ident.name, self.uri, exc.message, proc.pid if proc is not None else None)
        raise error_for(result.rc, result.reason)

    # -- guest liveness (monitor depth 10 and 20) -------------------------------------------

    def check_guest(self, dom: Domain) -> None:
        """Depth 10: a debounced guest-agent ping; depth 20: also the in-guest check command.

        The debounce state machine (boot grace, N misses, the failure policy) is
        ``vmha.probes.guest_liveness``; its state lives in our state file.
        """
        from vmha.probes.guest_liveness import LivenessPolicy, Ping, judge, ping_outcome
        from vmha.virt.agent import GuestAgent

        level = 20 if self.ctx.check_level >= 20 else 10
        cached = self.state.get("config")
        if isinstance(cached, dict) and cached.get("has_guest_agent") is False:
            raise Degraded(f"depth-{level} check impossible: domain {dom.name} has no guest agent channel")
        budget = float(self.p.integer("guest_agent_timeout"))
        agent = GuestAgent(dom, call_timeout=budget)
        error: VirtError | None = None
        try:
            agent.ping(self.deadline.within(budget))
        except HypervisorUnreachable:
            raise  # libvirtd itself: the monitor's /proc fallback answers
        except VirtError as exc:
            error = exc
        ping = ping_outcome(error)
        if ping is None:
            raise Degraded(f"depth-{level} check unavailable for {dom.name}: {error.message if error else ''}")
        started = self.state.get("started")
        started_at = started.get("at") if isinstance(started, dict) else None
        previous = self.state.get("liveness")
        verdict = judge(
            previous if isinstance(previous, dict) else None,
            domain=dom.name,
            instance=f"{dom.uuid()}:{dom.raw.ID()}",
            started_at=started_at if isinstance(started_at, (int, float)) else None,
            now=time.monotonic(),
            ping=ping,
            policy=LivenessPolicy(
                float(self.p.integer("guest_boot_grace")),
                self.p.integer("guest_misses"),
                self.p.text("on_guest_failure"),
            ),
        )
        if verdict.warning:
            self.log.warning(verdict.warning)
        # Rewrite the state file only when the phase or count changes (ALIVE -> ALIVE is the
        # usual monitor: no write, no tempfile import).
        keys = ("phase", "instance", "misses")
        if not isinstance(previous, dict) or any(previous.get(k) != verdict.state.get(k) for k in keys):
            self.state["liveness"] = verdict.state
            self._save_state()
        if verdict.rc != 0:
            raise error_for(verdict.rc, verdict.reason)
        command = self.p.text("guest_check_command")
        if level == 20 and command and ping is Ping.ANSWERED:
            self._run_guest_check(agent, command, dom.name)

    def _run_guest_check(self, agent: Any, command: str, name: str) -> None:
        import shlex

        argv = shlex.split(command)
        try:
            result = agent.run(argv, self.deadline.within(float(self.p.integer("guest_agent_timeout")) * 2))
        except VirtError as exc:
            raise GenericError(f"in-guest check of {name} could not run: {exc.message}") from None
        if result.exit_code != 0:
            raise GenericError(f"in-guest check of {name} failed ({result.describe()}): {result.last_line()[:60]}")

    # -- utilization -----------------------------------------------------------------------

    def update_utilization(self, vcpus: int, max_memory_kib: int) -> None:
        """Publish cpu/host_memory/hv_memory with crm_resource, only when they change."""
        wanted = {
            "cpu": str(vcpus),
            "host_memory": str(max_memory_kib // 1024),
            "hv_memory": str(max_memory_kib // 1024),
        }
        known = self.state.get("utilization")
        known = dict(known) if isinstance(known, dict) else {}
        retry_at = self.state.get("utilization_retry_at", 0)
        if isinstance(retry_at, (int, float)) and time.monotonic() < retry_at:
            return  # the CIB did not answer lately; do not pay for crm_resource every monitor
        changed = False
        tools = None  # loaded only when something is to be written: the usual monitor writes nothing
        if not known and any(self.p.flag(f"autoset_utilization_{k}") for k in wanted):
            # Nothing remembered here (a start, a failover or migration target): read what the
            # CIB already has, so unchanged values are not rewritten. Each write is a CIB change
            # that makes Pacemaker abort and recompute the transition this start is part of.
            from vmha.ocf.cluster import ClusterTools

            tools = ClusterTools(self.runner)
            try:
                known = tools.utilization(self.ctx.resource_id, timeout=min(5.0, self.deadline.remaining()))
                changed = True
            except CommandError as exc:
                self.log.debug(f"utilization not read from the CIB: {exc}")
        for key, value in wanted.items():
            if self.p.flag(f"autoset_utilization_{key}"):
                if known.get(key) == value:
                    continue
                action, arg = "set", value
            elif self.p.flag(f"unset_utilization_{key}"):
                if known.get(key) == "":
                    continue
                action, arg = "delete", ""
            else:
                continue
            if tools is None:
                from vmha.ocf.cluster import ClusterTools

                tools = ClusterTools(self.runner)
            try:
                timeout = min(10.0, self.deadline.remaining())
                if action == "set":
                    tools.set_utilization(self.ctx.resource_id, key, arg, timeout=timeout)
                else:
                    tools.delete_utilization(self.ctx.resource_id, key, timeout=timeout)
            except CommandError as exc:
                self.log.warning(f"utilization {key} not updated (retrying in {UTILIZATION_RETRY_S:g}s): {exc}")
                self.state["utilization_retry_at"] = time.monotonic() + UTILIZATION_RETRY_S
                changed = True
                break
            known[key] = arg
            changed = True
        if changed:
            self.state["utilization"] = known
            self._save_state()

    # -- monitor scripts -------------------------------------------------------------------

    def run_monitor_scripts(self, dom: Domain) -> None:
        """Raises GenericError for the first script that does not exit 0."""
        scripts = self.p.text("monitor_scripts").split()
        extra = {"VMHA_DOMAIN_NAME": dom.name, "VMHA_DOMAIN_UUID": dom.uuid()}
        for script in scripts:
            try:
                done = self.runner.run([script], timeout=self.deadline.remaining(), env_extend=extra)
            except CommandError as exc:
                raise GenericError(f"monitor script {script}: {exc}") from None
            if done.rc != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                tail = f": {lines[-1]}" if lines else ""
                raise GenericError(f"monitor script {script} failed (rc {done.rc}){tail}")

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        self.validate()
        data, cfg = self.read_config()
        self._save_state()
        ident = Identity(cfg.name, cfg.uuid)
        started = self.started()
        with self.connect(self.deadline, keepalive=True) as conn:
            if started is not None and not started.same_domain(ident):
                other = conn.find(uuid=started.uuid, name=started.name)
                if other is not None and other.status().active:
                    raise GenericError(
                        f"this resource still runs domain {started.describe()} here but config "
                        f"now names {ident.describe()}; stop the resource before changing config"
                    )
            existing = self._existing(conn, ident)
            if existing is not None and existing.status().active:
                self.log.info(f"domain {ident.describe()} is already running")
                dom = existing
            else:
                self.check_peers(ident)
                if self.p.flag("start_resources"):
                    self.start_pools_and_networks(conn, cfg.pools, cfg.networks)
                dom = self._start_domain(conn, ident, data, existing)
            self._remember_started(dom)
            self._wait_running(dom, "start")
            info = dom.info()
            self.update_utilization(info.vcpus, info.max_memory_kib)
            self._wait_monitor_scripts(dom, "start")

    def _existing(self, conn: Connection, ident: Identity) -> Domain | None:
        """The domain libvirt knows under this UUID or name; refuses a half match."""
        by_uuid = conn.find(uuid=ident.uuid) if ident.uuid else None
        by_name = conn.find(name=ident.name)
        if by_uuid is not None and by_uuid.name != ident.name:
            raise InvalidArgs(
                f"UUID clash: libvirt here has {ident.uuid} as domain {by_uuid.name!r}, config names it "
                f"{ident.name!r} ({self.config_path}); undefine or rename one"
            )
        if by_name is not None and ident.uuid and by_name.uuid() != ident.uuid:
            raise InvalidArgs(
                f"name clash: libvirt here has domain {ident.name!r} with UUID {by_name.uuid()}, config gives "
                f"{ident.uuid} ({self.config_path}); undefine or rename one"
            )
        return by_uuid or by_name

    def _start_domain(self, conn: Connection, ident: Identity, data: bytes, existing: Domain | None) -> Domain:
        save_file = self._snapshot_file(ident.name)
        if save_file and os.path.exists(save_file):
            self.log.info(f"restoring domain {ident.name} from {save_file}")
            conn.restore(save_file)
            os.unlink(save_file)
            return conn.lookup(uuid=ident.uuid, name=ident.name)
        if self.p.text("backingfile"):
            self.prepare_overlay()
        xml = data.decode("utf-8")
        try:
            if self.p.flag("persistent"):
                dom = conn.define(xml)
                dom.set_autostart(False)
                dom.start()
                return dom
            if existing is not None and self._is_persistent(existing):
                # A persistent definition would let libvirt start the VM by itself (autostart)
                # outside the cluster's control; the cluster runs it transient, as VirtualDomain.
                self._undefine_keeping_config(existing)
            return conn.create_transient(xml)
        except DomainConflict as exc:
            raise InvalidArgs(f"cannot start domain {ident.name}: {exc.message}") from None

    @staticmethod
    def _is_persistent(dom: Domain) -> bool:
        try:
            return dom.is_persistent()
        except DomainNotFound:
            return False  # a transient domain that went away as we looked: nothing to undefine

    def _undefine_keeping_config(self, dom: Domain) -> None:
        try:
            with open(self.config_path, "rb") as fh:
                saved = fh.read()
        except OSError:
            saved = None
        dom.undefine()
        if saved is not None and not os.path.exists(self.config_path):
            # libvirt removed its own copy (config was /etc/libvirt/qemu/<name>.xml): put it back.
            statefile.write_file_atomic(self.config_path, saved, 0o600)

    def _wait_running(self, dom: Domain, what: str) -> None:
        while True:
            status = dom.status()
            if status.state in (DomainState.RUNNING, DomainState.BLOCKED):
                return
            if status.state is DomainState.PAUSED and status.reason == PausedReason.USER:
                # Nothing will unpause it; the monitor calls it running, so does start.
                self.log.warning(f"{what}: domain {dom.name} is paused by a user; leaving it paused")
                return
            result = judge_state(dom.name, status, self.p.text("on_io_error"))
            if not status.active or (result.rc not in (0, 190)):
                raise GenericError(f"{what}: domain {dom.name} is {status.describe()} instead of running")
            if self.deadline.remaining() < POLL_S:
                raise GenericError(f"{what}: domain {dom.name} still {status.describe()} at the timeout")
            time.sleep(POLL_S)

    def _wait_monitor_scripts(self, dom: Domain, what: str) -> None:
        if not self.p.text("monitor_scripts"):
            return
        while True:
            try:
                self.run_monitor_scripts(dom)
                return
            except GenericError as exc:
                if self.deadline.remaining() < 1.0:
                    raise GenericError(f"{what}: {exc.reason} until the timeout") from None
                self.log.info(f"{what}: waiting for monitor scripts: {exc.reason}")
                time.sleep(1.0)

    def start_pools_and_networks(self, conn: Connection, pools: tuple[str, ...], networks: tuple[str, ...]) -> None:
        for pool in pools:
            conn.ensure_pool_active(pool)
        for net in networks:
            conn.ensure_network_active(net)

    # -- the peer check --------------------------------------------------------------------

    def check_peers(self, ident: Identity) -> None:
        """Refuse to start when a reachable peer runs this domain (see peer_check_uri)."""
        template = self.p.text("peer_check_uri")
        if not template:
            return
        from vmha.ocf.cluster import ClusterTools

        budget = float(self.p.integer("peer_check_timeout"))
        tools = ClusterTools(self.runner)
        try:
            local = self.ctx.on_node or tools.local_node(timeout=min(budget, 5.0))
            nodes = [n.name for n in tools.nodes(timeout=min(budget, 5.0))]
        except CommandError as exc:
            self.log.warning(f"peer check skipped: cannot list cluster nodes ({exc})")
            return
        limit = self.deadline.within(budget)  # for the whole check, however many peers
        for node in nodes:
            if node == local:
                continue
            uri = template.replace("%n", node)
            try:
                with Connection.open(uri, limit, readonly=True) as peer:
                    found = peer.find(uuid=ident.uuid, name=ident.name)
                    if found is not None and found.status().active:
                        raise GenericError(
                            f"refusing to start a second copy: domain {ident.name} already runs on {node} ({uri})"
                        )
            except HypervisorUnreachable as exc:
                self.log.warning(
                    f"peer check: {node} not reachable ({exc.message}); "
                    "starting anyway, fencing covers an unreachable peer"
                )
            except VirtError as exc:
                self.log.warning(f"peer check on {node}: {exc.message}")

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        idents: list[Identity] = []
        try:
            idents.append(self.config_identity())
        except (NotInstalled, NotConfigured) as exc:
            self.log.warning(exc.reason)
        started = self.started()
        if started is not None and not any(started.same_domain(i) for i in idents):
            idents.append(started)
        if not idents:
            self.log.info("no readable config and nothing started here: nothing to stop")
            return
        # Keep time to stop QEMU by its PID should libvirtd not answer.
        # Every libvirt call of the stop keeps that reserve, and libvirt always gets half the time.
        connect_by = self.deadline.earlier(min(max(2.0, self.ctx.timeout_s * 0.25), self.ctx.timeout_s * 0.5))
        try:
            with self.connect(connect_by, keepalive=True) as conn:
                for ident in idents:
                    self._stop_domain(conn, ident)
        except HypervisorUnreachable as exc:
            if not self.is_local_qemu():
                if started is None:
                    self.log.warning(f"hypervisor {self.uri} unreachable ({exc.message}); nothing was started here")
                    return
                raise GenericError(f"cannot stop: hypervisor {self.uri} unreachable: {exc.message}") from None
            for ident in idents:
                self._kill_qemu(ident, exc.message)
        self._forget_started()

    def _stop_domain(self, conn: Connection, ident: Identity) -> None:
        dom = conn.find(uuid=ident.uuid, name=ident.name)
        if dom is None:
            return
        status = dom.status()
        if not status.active:
            return
        force = self.p.flag("force_stop")
        if not force and self.p.text("snapshot") and self._save_to_snapshot(dom):
            return
        if self.p.flag("save_config_on_stop") or self.p.flag("sync_config_on_stop"):
            self.save_config(dom)
        if status.state is DomainState.PAUSED and not force:
            # A paused guest cannot act on a shutdown request; waiting would only burn the timeout.
            self.log.warning(f"domain {dom.name} is {status.describe()}: forcing it off")
            force = True
        if not force:
            self._graceful_shutdown(dom)
        self._force_off(dom)

    def _graceful_shutdown(self, dom: Domain) -> None:
        modes = 0
        for mode in self.p.text("shutdown_mode").split(","):
            if mode.strip():
                modes |= SHUTDOWN_MODES[mode.strip()]
        # Keep time to force it off afterwards: libvirt's destroy waits up to ~15 s for QEMU.
        reserve = max(5.0, min(20.0, self.ctx.timeout_s * 0.2))
        limit = dom.conn.deadline.earlier(reserve)
        if self.p.integer("shutdown_timeout"):
            limit = limit.within(float(self.p.integer("shutdown_timeout")))
        sent = -SHUTDOWN_RESEND_S
        t0 = time.monotonic()
        while not limit.expired:
            # A guest still booting ignores an ACPI event: ask again now and then.
            if time.monotonic() - sent >= SHUTDOWN_RESEND_S:
                try:
                    dom.shutdown(modes, deadline=limit.within(SHUTDOWN_RESEND_S))
                except (OperationInvalid, DomainNotFound):
                    return  # already off
                except VirtError as exc:
                    self.log.warning(f"graceful shutdown of {dom.name} refused: {exc.message}; forcing it off")
                    return
                sent = time.monotonic()
            time.sleep(min(POLL_S, limit.remaining()))
            if not dom.status().active:
                self.log.info(f"domain {dom.name} shut down gracefully in {time.monotonic() - t0:.1f}s")
                return
        self.log.warning(f"domain {dom.name} did not shut down within {time.monotonic() - t0:.0f}s; forcing it off")

    def _force_off(self, dom: Domain) -> None:
        by = dom.conn.deadline  # libvirt's share of the stop; the rest is for killing QEMU by PID
        last = ""
        while True:
            try:
                if not dom.status().active:
                    return
                dom.destroy(deadline=by)
                if not dom.status().active:
                    return  # destroy is synchronous: see it now rather than after a sleep
            except (OperationInvalid, DomainNotFound):
                return  # went off between our two calls
            except HypervisorUnreachable:
                raise
            except VirtError as exc:
                last = exc.message  # e.g. QEMU stuck in D state: "Device or resource busy"
            if by.remaining() < 1.0:
                raise GenericError(f"domain {dom.name} could not be stopped: {last or 'still running'}")
            time.sleep(1.0)

    def _kill_qemu(self, ident: Identity, why: str) -> None:
        """Stop a domain whose libvirtd is unreachable by signalling its QEMU process."""
        import signal

        from vmha.virt.procscan import find_qemu

        proc = find_qemu(ident.name, ident.uuid)
        if proc is None:
            self.log.info(f"libvirt unreachable ({why}); no QEMU process of {ident.name} here")
            return
        self.log.warning(f"libvirt unreachable ({why}); stopping QEMU PID {proc.pid} of {ident.name} directly")
        for sig, most in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            again = find_qemu(ident.name, ident.uuid)
            if again is None or again.pid != proc.pid:
                return
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                return
            # SIGTERM may take at most half of what is left: SIGKILL must get its turn.
            wait = min(most, self.deadline.remaining() / 2) if sig == signal.SIGTERM else most
            limit = self.deadline.within(wait)
            while not limit.expired:
                if find_qemu(ident.name, ident.uuid) is None:
                    return
                time.sleep(POLL_S)
        if find_qemu(ident.name, ident.uuid) is None:
            return
        raise GenericError(f"QEMU PID {proc.pid} of domain {ident.name} does not die (libvirt unreachable: {why})")

    def _snapshot_file(self, name: str) -> str:
        directory = self.p.text("snapshot")
        return os.path.join(directory, f"{name}.state") if directory else ""

    def _save_to_snapshot(self, dom: Domain) -> bool:
        path = self._snapshot_file(dom.name)
        try:
            dom.save(path)
        except VirtError as exc:
            self.log.warning(f"saving {dom.name} to {path} failed ({exc.message}); shutting it down instead")
            return False
        self.log.info(f"domain {dom.name} saved to {path}")
        return not dom.status().active

    # -- config saving and overlays --------------------------------------------------------

    def save_config(self, dom: Domain) -> None:
        """Write the domain's persistent XML back to config when it differs."""
        from vmha.virt import domxml

        try:
            xml = dom.xml(inactive=True, secure=True).encode("utf-8")
            cfg = domxml.parse(xml)
        except (VirtError, domxml.DomainXmlError) as exc:
            self.log.warning(f"config not saved: {exc}")
            return
        try:
            with open(self.config_path, "rb") as fh:
                if fh.read() == xml:
                    return
        except OSError:
            pass
        if cfg.name != dom.name:
            self.log.warning("config not saved: libvirt returned another domain's XML")
            return
        try:
            statefile.write_file_atomic(self.config_path, xml)
        except OSError as exc:
            self.log.warning(f"config {self.config_path} not saved: {exc.strerror}")
            return
        self.log.info(f"saved the definition of {dom.name} to {self.config_path}")
        if self.p.flag("sync_config_on_stop"):
            try:
                done = self.runner.run(["csync2", "-x", self.config_path], timeout=min(30.0, self.deadline.remaining()))
                if not done.ok:
                    self.log.warning(f"csync2 -x {self.config_path} failed (rc {done.rc})")
            except CommandError as exc:
                self.log.warning(f"csync2: {exc}")

    def overlay_path(self) -> str:
        return os.path.splitext(self.config_path)[0] + ".qcow2"

    def prepare_overlay(self) -> None:
        """Create the qcow2 overlay over backingfile (always, when stateless)."""
        import json

        overlay = self.overlay_path()
        backing = self.p.text("backingfile")
        if os.path.exists(overlay) and not self.p.flag("stateless"):
            return
        try:
            info = self.runner.run(
                ["qemu-img", "info", "--output=json", backing], timeout=min(30.0, self.deadline.remaining())
            )
            fmt = json.loads(info.stdout).get("format", "raw") if info.ok else "raw"
            if os.path.exists(overlay):
                os.unlink(overlay)
            done = self.runner.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", str(fmt), "-b", backing, overlay],
                timeout=min(60.0, self.deadline.remaining()),
            )
        except (CommandError, ValueError) as exc:
            raise GenericError(f"cannot create overlay {overlay}: {exc}") from None
        if not done.ok:
            raise GenericError(f"qemu-img create {overlay} failed: {done.stderr.strip()[-200:]}")

    # -- migration -------------------------------------------------------------------------

    def migrate_to(self) -> None:
        from vmha.agents import vm_migration
        from vmha.virt import bounded

        target = self.ctx.migrate_target
        if not target:
            raise GenericError("migrate_to needs the target node (OCF_RESKEY_CRM_meta_migrate_target)")
        ident = self.started() or self.config_identity()
        abort_reserve = max(3.0, self.ctx.timeout_s * 0.1)
        with self.connect(self.deadline, keepalive=True) as conn:
            dom = conn.find(uuid=ident.uuid, name=ident.name)
            if dom is None or not dom.status().active:
                raise GenericError(f"domain {ident.name} is not running here; cannot migrate it to {target}")
            try:
                plan = vm_migration.plan(self.p, target, persistent=dom.is_persistent())
            except vm_migration.MigrationOptionError as exc:
                raise NotConfigured(str(exc)) from None
            if self.p.flag("save_config_on_stop") or self.p.flag("sync_config_on_stop"):
                self.save_config(dom)
            limit = self.deadline.earlier(abort_reserve)
            self.log.info(f"migrating {dom.name} to {target} ({plan.dest_uri})")
            t0 = time.monotonic()
            dconn = None
            try:
                if plan.peer_to_peer:
                    pending = bounded.Pending(
                        dom.raw.migrateToURI3, (plan.dest_uri, plan.params, plan.flags), "migrate"
                    )
                else:
                    dconn = Connection.open(plan.dest_uri, limit, keepalive=True)
                    if self.p.flag("start_resources"):
                        _data, parsed = self.read_config()
                        self.start_pools_and_networks(dconn, parsed.pools, parsed.networks)
                    pending = bounded.Pending(dom.raw.migrate3, (dconn.raw, plan.params, plan.flags), "migrate")
                self._follow_migration(dom, plan, pending, limit, t0)
            finally:
                if dconn is not None:
                    dconn.deadline = self.deadline  # limit has passed if the migration was aborted
                    dconn.close()
        self.log.info(f"domain {ident.name} migrated to {target} in {time.monotonic() - t0:.1f}s")
        self._forget_started()

    def _follow_migration(self, dom: Domain, plan: Any, pending: Any, limit: Deadline, t0: float) -> None:
        downtime_set = plan.downtime_ms == 0
        postcopy_done = plan.postcopy_after_s == 0
        while not pending.wait(POLL_S):
            elapsed = time.monotonic() - t0
            try:
                if not downtime_set and dom.job_type() != 0:
                    dom.set_max_downtime(plan.downtime_ms)
                    downtime_set = True
                if not postcopy_done and elapsed >= plan.postcopy_after_s:
                    dom.start_postcopy()
                    postcopy_done = True
                    self.log.info(f"migration of {dom.name} switched to post-copy after {elapsed:.0f}s")
            except VirtError as exc:
                self.log.warning(f"migration tuning: {exc.message}")
                downtime_set = postcopy_done = True
            if limit.expired:
                self._abort_migration(dom, pending, plan.target, elapsed)
        try:
            pending.result()
        except VirtError as exc:
            where = "it keeps running here" if self._still_here(dom) else "check where it runs"
            raise GenericError(f"migration of {dom.name} to {plan.target} failed: {exc.message}; {where}") from None

    def _abort_migration(self, dom: Domain, pending: Any, target: str, elapsed: float) -> None:
        self.log.error(f"migration of {dom.name} to {target} still running after {elapsed:.0f}s; aborting it")
        try:
            dom.abort_job(deadline=self.deadline)
        except VirtError as exc:
            self.log.error(f"abort of the migration job failed: {exc.message}")
        if pending.wait(self.deadline.remaining()):
            try:
                pending.result()
            except VirtError:
                pass
            else:
                # Too far along to be cancelled: it completed, and that is a success.
                self.log.warning(f"migration of {dom.name} to {target} completed despite the abort")
                return
        if pending.wait(0) and self._still_here(dom):
            # Verdict first: Pacemaker keeps only the first 128 bytes of an exit reason.
            raise GenericError(
                f"aborted migration of {dom.name} to {target}, the VM keeps running on this host: "
                f"not done within the {self.ctx.timeout_s:g}s migrate_to timeout"
            )
        raise GenericError(
            f"migration of {dom.name} to {target} did not finish within the timeout and could not be confirmed aborted"
        )

    def _still_here(self, dom: Domain) -> bool:
        try:
            return dom.status().active
        except VirtError:
            return False

    def migrate_from(self) -> None:
        ident = self.config_identity()
        source = self.ctx.migrate_source or "the source"
        with self.connect(self.deadline, keepalive=True) as conn:
            while True:
                dom = conn.find(uuid=ident.uuid, name=ident.name)
                if dom is not None:
                    status = dom.status()
                    if status.state in (DomainState.RUNNING, DomainState.BLOCKED):
                        break
                if self.deadline.remaining() < POLL_S:
                    raise GenericError(f"domain {ident.name} did not arrive from {source}")
                time.sleep(POLL_S)
            self._remember_started(dom)
            info = dom.info()
            self.update_utilization(info.vcpus, info.max_memory_kib)
            if self.p.flag("save_config_on_stop") or self.p.flag("sync_config_on_stop"):
                self.save_config(dom)
            self._wait_monitor_scripts(dom, "migrate_from")

    # -- validation ------------------------------------------------------------------------

    def validate(self) -> None:
        """Parameter combinations and this host's environment. Raises OcfError."""
        from vmha.agents import vm_migration

        p = self.p
        if p.flag("force_stop") and p.text("snapshot"):
            raise NotConfigured("force_stop and snapshot cannot be combined: a forced stop saves nothing")
        if p.flag("stateless") and not p.text("backingfile"):
            raise NotConfigured("stateless needs backingfile (the image the overlay is made from)")
        try:
            vm_migration.parse_migrate_options(p.text("migrate_options"))
        except vm_migration.MigrationOptionError as exc:
            raise NotConfigured(str(exc)) from None
        _data, cfg = self.read_config()
        self._save_state()
        if (self.ctx.check_level >= 10 or p.is_set("guest_check_command")) and not cfg.has_guest_agent:
            raise NotConfigured(
                f"domain {cfg.name} has no guest agent channel (org.qemu.guest_agent.0): "
                "monitors at depth 10/20 cannot check the guest"
            )
        for script in p.text("monitor_scripts").split():
            if not os.access(script, os.X_OK):
                raise NotInstalled(f"monitor script {script} is not an executable file on this node")
        snap = p.text("snapshot")
        if snap and not os.path.isdir(snap):
            raise NotInstalled(f"snapshot directory {snap} does not exist on this node")
        backing = p.text("backingfile")
        if backing and not os.path.exists(backing):
            raise NotInstalled(f"backingfile {backing} does not exist on this node")
        from vmha.ocf.runner import find_program

        try:
            if p.flag("sync_config_on_stop"):
                find_program("csync2")
            if backing:
                find_program("qemu-img")
        except CommandError as exc:
            raise NotInstalled(str(exc)) from None

    def validate_all(self) -> None:
        self.validate()

    def reload_agent(self) -> None:
        self.validate()
        # New utilization settings take effect at the next monitor.
        had = [self.state.pop(k, None) for k in ("utilization", "utilization_retry_at")]
        if any(v is not None for v in had):
            self._save_state()


def _handler(method: str) -> Handler:
    return handler(VirtualMachine, method)


LONGDESC = (
    "Manages one libvirt virtual machine as a cluster resource: start from a domain XML, "
    "graceful stop with a deadline, monitor, live migration, utilization. A drop-in "
    "replacement for ocf:heartbeat:VirtualDomain (same parameters), with every libvirt call "
    "bounded by the operation's timeout, probes that answer from the host's processes when "
    "libvirtd is down, a working shutdown_mode, migrations aborted (the VM stays on the "
    "source) rather than outliving their timeout, an optional check that the VM does not "
    "already run on a peer, and utilization written only when it changes."
)

SPEC = AgentSpec(
    name=AGENT,
    version=__version__,
    shortdesc="Manages a libvirt virtual machine",
    longdesc=LONGDESC,
    params=PARAMS,
    actions=(
        Action("start", 90, _handler("start")),
        Action("stop", 90, _handler("stop")),
        Action("monitor", 30, _handler("monitor"), interval_s=10, depth=0),
        Action("monitor", 30, _handler("monitor"), interval_s=30, depth=10),
        Action("monitor", 60, _handler("monitor"), interval_s=60, depth=20),
        Action("status", 30, _handler("monitor"), advertise=False),
        Action("migrate_to", 120, _handler("migrate_to")),
        Action("migrate_from", 60, _handler("migrate_from")),
        Action("validate-all", 10, _handler("validate_all")),
        Action("reload-agent", 10, _handler("reload_agent")),
    ),
)


def main(argv: list[str], env: dict[str, str]) -> int:
    from vmha.ocf.dispatch import run

    return run(SPEC, argv, env)


__all__ = ["SPEC", "main", "VirtualMachine", "Identity", "OcfError"]
