"""Live migration as it runs: migrate_to on the source (begin, follow the job, tune downtime
and post-copy, abort what would outlive the timeout so the VM keeps running here) and
migrate_from on the target (wait for the domain to arrive).

What to ask libvirt for (flags, parameters, URIs) is decided in
``vmha.virtual_machine.migration``, which has no libvirt in it.

Late completion (see starting.py for the start's side).  migrate_to does not answer before
the migration job has ended or its abort is confirmed, so a migration it reports failed has
not moved the VM, and one it reports done is done.  Only when libvirtd stops answering during
the abort does it give up unconfirmed (``Pending.abandon``): Pacemaker then stops the
resource on both hosts.  On the target an arriving domain is listed from libvirt's Prepare
step on, so that stop finds it and forces it off, and a migration whose destination QEMU is
gone cannot complete; on the source the stop destroys the domain (or, libvirtd hung, kills
its QEMU by PID), and a migration whose source QEMU is gone cannot complete either.  What is
left is the instant between a migration completing and the target's stop having looked
before Prepare: the VM then runs on the target only, and the peer check (on by default with
``remoteuri``) refuses to start a second copy anywhere else.  migrate_from only waits for a
domain libvirt already brought in; giving up leaves nothing in flight of its own.
"""

from __future__ import annotations

import time
from typing import Any

from vmha.deadline import Deadline
from vmha.ocf.codes import GenericError, NotConfigured
from vmha.virt.bounded import Pending
from vmha.virt.connection import Connection
from vmha.virt.domain import Domain, DomainState
from vmha.virt.errors import VirtError
from vmha.virtual_machine import migration as vm_migration
from vmha.virtual_machine.config_files import save_config
from vmha.virtual_machine.monitor_scripts import wait_monitor_scripts
from vmha.virtual_machine.resource import POLL_S, Resource


def migrate_to(res: Resource) -> None:
    target = res.ctx.migrate_target
    if not target:
        raise GenericError("migrate_to needs the target node (OCF_RESKEY_CRM_meta_migrate_target)")
    ident = res.started() or res.config_identity()
    abort_reserve = max(3.0, res.ctx.timeout_s * 0.1)
    with res.connect(res.deadline, keepalive=True) as conn:
        dom = conn.find(uuid=ident.uuid, name=ident.name)
        if dom is None or not dom.status().active:
            raise GenericError(f"domain {ident.name} is not running here; cannot migrate it to {target}")
        try:
            plan = vm_migration.plan(res.p, target, persistent=dom.is_persistent())
        except vm_migration.MigrationOptionError as exc:
            raise NotConfigured(str(exc)) from None
        # A migration ends with QEMU flushing its disks: on a path that hangs it can only
        # run into its timeout (vmha.virt.disk_io).  Refused now, Pacemaker stops the VM
        # here and starts it on the target.  The running domain's disks (hot-plugged ones
        # too); an error (EACCES on root-squashed NFS, a missing optional medium) is only
        # logged: the migration itself tells whether it matters.
        if res.is_local_qemu():
            _refuse_on_silent_disks(res, dom)
        if res.wants_config_saved():
            save_config(res, dom)
        limit = res.deadline.earlier(abort_reserve)
        res.log.info(f"migrating {dom.name} to {target} ({plan.dest_uri})")
        t0 = time.monotonic()
        dconn = None
        try:
            if not plan.peer_to_peer:
                dconn = Connection.open(plan.dest_uri, limit, keepalive=True)
                if res.p.flag("start_resources"):
                    _data, parsed = res.read_config()
                    res.start_pools_and_networks(dconn, parsed.pools, parsed.networks)
            pending = dom.start_migration(plan.params, plan.flags, dest_uri=plan.dest_uri, dest=dconn)
            _follow_migration(res, dom, plan, pending, limit, t0=t0)
        finally:
            if dconn is not None:
                dconn.deadline = res.deadline  # limit has passed if the migration was aborted
                dconn.close()
    res.log.info(f"domain {ident.name} migrated to {target} in {time.monotonic() - t0:.1f}s")
    res.forget_started()


def _refuse_on_silent_disks(res: Resource, dom: Domain) -> None:
    from vmha.virt import disk_io, domxml

    try:
        disks = domxml.parse(dom.xml().encode("utf-8")).disks
    except (VirtError, domxml.DomainXmlError) as exc:
        res.log.warning(f"cannot read the disks of {dom.name} from libvirt ({exc}); checking the config's")
        disks = None
    problems = res.disk_problems(disks=disks)
    for path, problem in problems.items():
        if path not in disk_io.silent(problems):
            res.log.warning(f"disk {path} of {dom.name} {problem} on this host")
    hung = disk_io.silent(problems)
    if hung:
        raise GenericError(f"not migrating {dom.name}: disk {hung[0]} {problems[hung[0]]} on this host")


def _follow_migration(res: Resource, dom: Domain, plan: Any, pending: Pending, limit: Deadline, *, t0: float) -> None:
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
                res.log.info(f"migration of {dom.name} switched to post-copy after {elapsed:.0f}s")
        except VirtError as exc:
            res.log.warning(f"migration tuning: {exc.message}")
            downtime_set = postcopy_done = True
        if limit.expired:
            _abort_migration(res, dom, pending, plan.target, elapsed)
    try:
        pending.result()
    except VirtError as exc:
        where = "it keeps running here" if _still_here(dom) else "check where it runs"
        raise GenericError(f"migration of {dom.name} to {plan.target} failed: {exc.message}; {where}") from None


def _abort_migration(res: Resource, dom: Domain, pending: Pending, target: str, elapsed: float) -> None:
    res.log.error(f"migration of {dom.name} to {target} still running after {elapsed:.0f}s; aborting it")
    try:
        dom.abort_job(deadline=res.deadline)
    except VirtError as exc:
        res.log.error(f"abort of the migration job failed: {exc.message}")
    if pending.wait(res.deadline.remaining()):
        try:
            pending.result()
        except VirtError:
            pass
        else:
            # Too far along to be cancelled: it completed, and that is a success.
            res.log.warning(f"migration of {dom.name} to {target} completed despite the abort")
            return
    if pending.wait(0) and _still_here(dom):
        # Verdict first: Pacemaker keeps only the first 128 bytes of an exit reason.
        raise GenericError(
            f"aborted migration of {dom.name} to {target}, the VM keeps running on this host: "
            f"not done within the {res.ctx.timeout_s:g}s migrate_to timeout"
        )
    # Still inside libvirt: it may yet complete.  Nothing on this connection is waited for
    # again (closing it would wait for the call); Pacemaker's recovery of this failure
    # probes both hosts, and the peer check refuses a second copy.
    pending.abandon()
    raise GenericError(
        f"migration of {dom.name} to {target} did not finish within the timeout and could not be confirmed aborted"
    )


def _still_here(dom: Domain) -> bool:
    try:
        return dom.status().active
    except VirtError:
        return False


def migrate_from(res: Resource) -> None:
    ident = res.config_identity()
    source = res.ctx.migrate_source or "the source"
    with res.connect(res.deadline, keepalive=True) as conn:
        while True:
            dom = conn.find(uuid=ident.uuid, name=ident.name)
            if dom is not None:
                status = dom.status()
                if status.state in (DomainState.RUNNING, DomainState.BLOCKED):
                    break
            if res.deadline.remaining() < POLL_S:
                raise GenericError(f"domain {ident.name} did not arrive from {source}")
            time.sleep(POLL_S)
        res.remember_started(dom)
        info = dom.info()
        res.update_utilization(info.vcpus, info.max_memory_kib)
        if res.wants_config_saved():
            save_config(res, dom)
        wait_monitor_scripts(res, dom, "migrate_from")
