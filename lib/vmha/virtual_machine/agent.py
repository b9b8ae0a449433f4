"""ocf:vmha:VirtualMachine: one libvirt domain as a Pacemaker resource.

A drop-in for ocf:heartbeat:VirtualDomain (same parameter names and meaning) that fixes its
known defects: every libvirt call is bounded by the operation's timeout, probes answer from
/proc when libvirtd cannot be asked, shutdown_mode works, a migration that would outlive its
timeout is aborted so the VM keeps running on the source, utilization is written only when
it changes, and a VM paused on an I/O error is not reported healthy.

This module is the actions (``VirtualMachine``) and the agent's spec; the rest of the package:
  resource         what every action needs: config, the state file, libvirt, utilization
  params           the parameters
  starting         start's steps: existing domain, restore/overlay/define/create, wait running
  peers            the peer check before start
  stopping         stop's steps: snapshot, graceful shutdown, force off, kill QEMU by PID
  live_migration   migrate_to (follow, tune, abort) and migrate_from
  migration        the migration plan and URIs (pure, no libvirt)
  config_files     config written back from libvirt, the overlay, the snapshot file
  monitor_scripts  the monitor_scripts, and waiting for them after start/migrate_from
  guest_check      guest liveness, monitor depth 10/20
The monitor is the hot path: the step modules it does not need are imported only when used.
"""

from __future__ import annotations

import os
import time
from typing import Any

from vmha import __version__
from vmha.agent_common import handler
from vmha.ocf.codes import (
    GenericError,
    NotConfigured,
    NotInstalled,
    NotRunning,
    OcfError,
    error_for,
)
from vmha.ocf.runner import CommandError
from vmha.ocf.spec import Action, AgentSpec, Handler
from vmha.verdicts.domain_state import judge_state, judge_without_libvirt
from vmha.virt.connection import Connection
from vmha.virt.domain import DomainState
from vmha.virt.errors import HypervisorTimeout, HypervisorUnreachable, LeaseHeld
from vmha.virtual_machine.params import PARAMS
from vmha.virtual_machine.resource import AGENT, DISK_PROBE_S, Identity, Resource


class VirtualMachine(Resource):
    """One invocation of the agent: the actions, on what ``Resource`` holds."""

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
        if isinstance(self.state.get("start_pending"), dict):
            self._settle_before_answering(conn, ident)
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
        if self.wants_config_saved():
            from vmha.virtual_machine.config_files import save_config

            save_config(self, dom)
        if self.p.text("monitor_scripts").split():
            from vmha.virtual_machine.monitor_scripts import run_monitor_scripts

            run_monitor_scripts(self, dom)
        if self.ctx.check_level >= 10 and status.state is DomainState.RUNNING:
            # A paused guest cannot answer: only a running one is asked.
            from vmha.virtual_machine.guest_check import check_guest

            check_guest(self, dom)
        if result.rc == 190:
            raise error_for(result.rc, result.reason)

    def _settle_before_answering(self, conn: Connection, ident: Identity) -> None:
        """A start gave up here and no stop has run since (a probe after a cleanup): what it
        sent may still be inside libvirtd, so "not running" is only answered once it has
        finished (stopping.settle_abandoned_start), and a domain it did bring up is reported
        as running, which it is, and remembered as ours."""
        from vmha.virtual_machine.stopping import settle_abandoned_start

        self.log.info(f"a start of {ident.name} gave up here: settling it before answering")
        if settle_abandoned_start(self, conn, ident, stop_it=False):
            dom = conn.find(uuid=ident.uuid, name=ident.name)
            if dom is not None:
                self.remember_started(dom)
                return
        self.state.pop("start_pending", None)
        self.save_state()

    def _monitor_without_libvirt(self, ident: Identity, exc: HypervisorUnreachable) -> None:
        if not self.is_local_qemu():
            if self.ctx.is_probe and self.started() is None:
                # Not started here since boot, and no way to look: answering "failed" would
                # make Pacemaker stop it here, fail again, and fence a healthy host.
                self.log.warning(f"cannot ask hypervisor {self.uri} ({exc.message}); nothing was started here")
                raise NotRunning(f"hypervisor {self.uri} not answering; nothing was started here")
            raise GenericError(f"cannot ask hypervisor {self.uri}: {exc.message}")
        from vmha.qemu_processes import find_qemu

        proc = find_qemu(ident.name, ident.uuid)
        result = judge_without_libvirt(ident.name, self.uri, exc.message, proc.pid if proc is not None else None)
        raise error_for(result.rc, result.reason)

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        from vmha.virtual_machine.monitor_scripts import wait_monitor_scripts
        from vmha.virtual_machine.peers import check_peers
        from vmha.virtual_machine.starting import existing_domain, start_domain, wait_running

        self.validate()
        data, cfg = self.read_config()
        self.save_state()
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
            existing = existing_domain(self, conn, ident)
            if existing is not None and existing.status().active:
                self.log.info(f"domain {ident.describe()} is already running")
                dom = existing
            else:
                check_peers(self, ident)
                if self.p.flag("start_resources"):
                    self.start_pools_and_networks(conn, cfg.pools, cfg.networks)
                # before any libvirt call that may complete after we gave up (starting.py)
                self.state["start_pending"] = {"name": ident.name, "uuid": ident.uuid, "at": time.time()}
                self.save_state()
                try:
                    dom = start_domain(self, conn, ident, data, existing)
                except LeaseHeld as exc:
                    raise GenericError(self._lease_refusal(ident, cfg, exc)) from None
            self.remember_started(dom)
            wait_running(self, dom, "start")
            info = dom.info()
            self.update_utilization(info.vcpus, info.max_memory_kib)
            wait_monitor_scripts(self, dom, "start")

    def _lease_refusal(self, ident: Identity, cfg: Any, exc: LeaseHeld) -> str:
        """The exit reason of a start the lock manager refused: the disk, and who runs the
        domain when a peer's libvirt says so.  Failing with 1 (not 5 or 6) lets Pacemaker
        try another node; a start failure is never a reason to fence."""
        from vmha.virt.leases import disk_in_error
        from vmha.virtual_machine.peers import peers_running

        disk = disk_in_error(exc.message, cfg.disks) or "a disk"
        holders = [node for node, _uri in peers_running(self, ident)]
        self.log.error(f"start of {ident.name} refused by the lock manager: {exc.message}")
        held_by = f"domain runs on {', '.join(holders)}" if holders else "holder unknown"
        return f"disk {disk} is leased elsewhere ({held_by}); not started here"

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        from vmha.virtual_machine.stopping import kill_qemu, settle_abandoned_start, stop_domain

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
        if self.is_local_qemu():
            self._storage_hangs_fence_now(idents)
        # Keep time to stop QEMU by its PID should libvirtd not answer.
        # Every libvirt call of the stop keeps that reserve, and libvirt always gets half the time.
        connect_by = self.deadline.earlier(min(max(2.0, self.ctx.timeout_s * 0.25), self.ctx.timeout_s * 0.5))
        pending = self.state.get("start_pending")
        # a QEMU ran or may have run here (its writes may sit in this host's path): see the end
        ended = isinstance(pending, dict) or started is not None
        try:
            with self.connect(connect_by, keepalive=True) as conn:
                for ident in idents:
                    if isinstance(pending, dict):
                        # first wait out what the start sent: what runs then is final, and
                        # a domain it did bring up is stopped as any other (graceful, snapshot)
                        settle_abandoned_start(self, conn, ident, stop_it=False)
                    ended = stop_domain(self, conn, ident) or ended
                    if isinstance(pending, dict):
                        settle_abandoned_start(self, conn, ident)
        except HypervisorUnreachable as exc:
            if isinstance(pending, dict) and isinstance(exc, HypervisorTimeout):
                # A libvirtd that is there but does not answer (hung, SIGSTOPped) may still
                # hold the start that gave up, and run it once it answers again: no QEMU by PID
                # now proves nothing.  Failing the stop makes fencing the recovery.
                raise GenericError(
                    f"cannot stop: hypervisor {self.uri} not answering ({exc.message}) and a start that gave "
                    "up may still be inside it"
                ) from None
            if not self.is_local_qemu():
                if started is None:
                    self.log.warning(f"hypervisor {self.uri} unreachable ({exc.message}); nothing was started here")
                    return
                raise GenericError(f"cannot stop: hypervisor {self.uri} unreachable: {exc.message}") from None
            for ident in idents:
                ended = kill_qemu(self, ident, exc.message) or ended
        self.forget_started()
        if ended and self.is_local_qemu():
            self._no_writes_left_behind(idents[0].name)

    def _storage_hangs_fence_now(self, idents: list[Identity]) -> None:
        """A QEMU of the domain runs here and a disk's storage does not answer on this host:
        kill it (SIGKILL, not through libvirtd, which hangs on that storage too: measured in
        the lab, its destroy waits ~20 s for QEMU and its cleanup then blocks on the disk)
        and fail the stop at once, for the reason in ``_no_writes_left_behind``."""
        import signal

        from vmha.qemu_processes import find_qemu
        from vmha.virt.disk_io import silent

        found = self.disk_problems()  # first: /proc is searched only when one is silent
        if not silent(found):
            return
        procs = [p for p in (find_qemu(i.name, i.uuid) for i in idents) if p is not None]
        if not procs:
            return
        for proc in procs:
            self.log.warning(f"storage of {idents[0].name} does not answer: killing QEMU PID {proc.pid}")
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._no_writes_left_behind(idents[0].name, found)

    def _no_writes_left_behind(self, name: str, found: dict[str, str] | None = None) -> None:
        """After a QEMU ended here: fail the stop when a disk's storage does not answer on
        this host (vmha.virt.disk_io).  Writes the guest had sent may wait in this host's
        path and land once it answers again, on a disk that by then belongs to the VM
        running elsewhere; only a reset of this host drops them, and a failed stop is what
        makes Pacemaker fence.  A path that fails (errors) holds nothing back: that stop is
        good."""
        from vmha.virt.disk_io import silent

        if found is None:
            if self.deadline.remaining() < DISK_PROBE_S / 2 + 1.0:
                # too little time left to tell a slow answer from none; the check at the
                # start of the stop had its full time
                self.log.warning(f"no time left to check the storage of {name}'s disks after its stop")
                return
            found = self.disk_problems()
        hung = silent(found)
        if hung:
            self.log.error(
                f"the storage of {', '.join(hung)} does not answer on this host: writes {name} queued there "
                "could land later, under the VM on another host; only a reset of this host drops them"
            )
            # verdict first: Pacemaker keeps 128 bytes of an exit reason, and paths are long
            raise GenericError(f"fence this host: disk {hung[0]} of {name} {found[hung[0]]} here")

    # -- migration -------------------------------------------------------------------------

    def migrate_to(self) -> None:
        from vmha.virtual_machine.live_migration import migrate_to

        migrate_to(self)

    def migrate_from(self) -> None:
        from vmha.virtual_machine.live_migration import migrate_from

        migrate_from(self)

    # -- validation ------------------------------------------------------------------------

    def validate(self) -> None:
        """Parameter combinations and this host's environment. Raises OcfError."""
        from vmha.virtual_machine import migration as vm_migration

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
        self.save_state()
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
        self._check_leases(cfg)
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

    def _check_leases(self, cfg: Any) -> None:
        """Warn (or refuse, with require_disk_leases) when a writable disk has no lease."""
        from vmha.virt import leases

        required = self.p.flag("require_disk_leases")
        if not cfg.disks:
            return
        if not self.is_local_qemu():
            if required:
                raise NotConfigured(
                    f"require_disk_leases needs a local hypervisor URI: {self.uri}'s lock manager cannot be read here"
                )
            return
        try:
            setup = leases.lock_setup()
        except OSError as exc:
            raise NotInstalled(f"cannot read libvirt's lock manager setup: {exc}") from None
        bare = leases.unprotected_disks(cfg, setup)
        if not bare:
            return
        names = ", ".join(leases.describe_disk(d) for d in bare)
        what = f"disk {names} of {cfg.name} has no lease ({setup.describe()})"
        if required:
            raise NotInstalled(f"{what}; require_disk_leases is set")
        self.log.warning(f"{what}: nothing but the cluster stops a second host from writing it")

    def validate_all(self) -> None:
        self.validate()

    def reload_agent(self) -> None:
        self.validate()
        # New utilization settings take effect at the next monitor.
        had = [self.state.pop(k, None) for k in ("utilization", "utilization_retry_at")]
        if any(v is not None for v in had):
            self.save_state()


def _handler(method: str) -> Handler:
    return handler(VirtualMachine, method)


LONGDESC = (
    "Manages one libvirt virtual machine as a cluster resource: start from a domain XML, "
    "graceful stop with a deadline, monitor, live migration, utilization. A drop-in "
    "replacement for ocf:heartbeat:VirtualDomain (same parameters), with every libvirt call "
    "bounded by the operation's timeout, probes that answer from the host's processes when "
    "libvirtd is down, a working shutdown_mode, migrations aborted (the VM stays on the "
    "source) rather than outliving their timeout, a check that the VM does not already run "
    "on a peer, disk leases checked (require_disk_leases), and utilization written only when "
    "it changes."
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
