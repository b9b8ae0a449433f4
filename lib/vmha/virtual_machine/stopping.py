"""Stop's steps for one domain: save it to ``snapshot``, or shut it down gracefully
(``shutdown_mode``, asked again while the guest ignores it), then force it off; and when
libvirtd does not answer, stop its QEMU process by PID.

The time each step may take is cut from the stop's deadline so that the next step always
gets its turn: libvirt's share (``dom.deadline``) keeps a reserve for killing QEMU.
"""

from __future__ import annotations

import os
import time

from vmha.ocf.codes import GenericError
from vmha.virt.connection import Connection
from vmha.virt.domain import SHUTDOWN_MODES, Domain, DomainState
from vmha.virt.errors import DomainNotFound, HypervisorUnreachable, OperationInvalid, VirtError
from vmha.virtual_machine.config_files import save_config, snapshot_file
from vmha.virtual_machine.resource import POLL_S, Identity, Resource

SHUTDOWN_RESEND_S = 10.0


def stop_domain(res: Resource, conn: Connection, ident: Identity) -> bool:
    """Stop ``ident`` if it is active here: snapshot, graceful shutdown, force off.  Returns
    whether it was active (whether this stop had a QEMU to end)."""
    dom = conn.find(uuid=ident.uuid, name=ident.name)
    if dom is None:
        return False
    status = dom.status()
    if not status.active:
        return False
    force = res.p.flag("force_stop")
    if not force and judged_not_alive(res, dom):
        # The monitor failed it for not answering (on_guest_failure=restart), the way vSphere
        # HA's VM monitoring resets a guest whose heartbeat stopped: a hung guest cannot act
        # on a shutdown request (waiting would only burn shutdown_timeout before recovery),
        # and saving it to a snapshot would restore the hang.
        res.log.warning(f"guest {dom.name} was judged not alive by the monitor: forcing it off")
        force = True
    if not force and res.p.text("snapshot") and save_to_snapshot(res, dom):
        return True
    if res.wants_config_saved():
        save_config(res, dom)
    if status.state is DomainState.PAUSED and not force:
        # A paused guest cannot act on a shutdown request; waiting would only burn the timeout.
        res.log.warning(f"domain {dom.name} is {status.describe()}: forcing it off")
        force = True
    if not force:
        graceful_shutdown(res, dom)
    force_off(dom)
    return True


def judged_not_alive(res: Resource, dom: Domain) -> bool:
    """Whether the monitor's last liveness verdict on this very domain instance (libvirt's
    UUID and domain ID, as guest_check keeps them) was FAILED under the restart policy."""
    live = res.state.get("liveness")
    if not isinstance(live, dict) or live.get("phase") != "failed":
        return False
    if res.p.text("on_guest_failure") != "restart":
        return False
    try:
        return bool(live.get("instance") == f"{dom.uuid()}:{dom.domain_id()}")
    except VirtError:
        return False


def settle_abandoned_start(res: Resource, conn: Connection, ident: Identity, *, stop_it: bool = True) -> bool:
    """After a start that gave up (``start_pending``, see starting.py): make sure nothing it
    sent can still bring the domain up here once this action has answered.  Returns whether
    the domain runs here afterwards (only ever True with ``stop_it`` False: the probe, which
    reports what it finds rather than stopping it).

    libvirt runs one job at a time per domain, and a start or restore holds its job from
    before the domain is marked active until it runs.  ``wait_for_jobs`` takes a job, so when
    it returns any start already inside libvirtd has finished and what we look at next is
    final.  A transient resource then has its definition removed: a start still queued
    behind (never begun) finds no domain, and a define that completes even later leaves an
    inactive definition, which nothing starts (autostart is off).  The last look, after the
    undefine, catches a start that slipped in between.  A persistent resource keeps its
    definition, so there a start RPC that libvirtd had queued without beginning it, and
    begins only after that last look, is the one case left open (it needs libvirtd's worker
    pool saturated past this whole stop).  When libvirtd does not answer within the
    action's time the action fails: fencing is then the recovery, never a "stopped" that
    may not be true.
    """
    dom = conn.find(uuid=ident.uuid, name=ident.name)
    if dom is None:
        return False  # never listed: the define had not answered, so no start was sent
    try:
        dom.wait_for_jobs()
    except DomainNotFound:
        return False  # transient and gone: it stopped
    except HypervisorUnreachable:
        raise
    except VirtError as exc:
        raise GenericError(
            f"a start of domain {dom.name} that gave up may still be running in libvirt ({exc.message})"
        ) from None
    came_up = dom.status().active
    if came_up:
        _claimed_image_is_stale(res)
        if not stop_it:
            return True
        res.log.warning(f"domain {dom.name} came up after its start gave up: forcing it off")
        force_off(dom)
    if not res.p.flag("persistent") and _still_persistent(dom):
        res.log.info(f"removing the definition of {dom.name} left by a start that gave up")
        from vmha.virtual_machine.starting import undefine_keeping_config

        try:
            undefine_keeping_config(res, dom)
        except DomainNotFound:
            return False
    dom = conn.find(uuid=ident.uuid, name=ident.name)
    if dom is None or not dom.status().active:
        return False
    if not stop_it:
        return True
    res.log.warning(f"domain {dom.name} came up while its abandoned start was settled: forcing it off")
    force_off(dom)
    return False


def _still_persistent(dom: Domain) -> bool:
    try:
        return dom.is_persistent()
    except DomainNotFound:
        return False


def _claimed_image_is_stale(res: Resource) -> None:
    """A restore that gave up did complete: its image must never be restored again."""
    pending = res.state.get("start_pending")
    claimed = pending.get("restoring") if isinstance(pending, dict) else None
    if isinstance(claimed, str) and os.path.exists(claimed):
        res.log.warning(f"the restore that gave up completed: removing {claimed}, it must not be restored twice")
        os.unlink(claimed)


def graceful_shutdown(res: Resource, dom: Domain) -> None:
    modes = 0
    for mode in res.p.text("shutdown_mode").split(","):
        if mode.strip():
            modes |= SHUTDOWN_MODES[mode.strip()]
    # Keep time to force it off afterwards: libvirt's destroy waits up to ~15 s for QEMU.
    reserve = max(5.0, min(20.0, res.ctx.timeout_s * 0.2))
    limit = dom.deadline.earlier(reserve)
    if res.p.integer("shutdown_timeout"):
        limit = limit.within(float(res.p.integer("shutdown_timeout")))
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
                res.log.warning(f"graceful shutdown of {dom.name} refused: {exc.message}; forcing it off")
                return
            sent = time.monotonic()
        time.sleep(min(POLL_S, limit.remaining()))
        if not dom.status().active:
            res.log.info(f"domain {dom.name} shut down gracefully in {time.monotonic() - t0:.1f}s")
            return
    res.log.warning(f"domain {dom.name} did not shut down within {time.monotonic() - t0:.0f}s; forcing it off")


def force_off(dom: Domain) -> None:
    by = dom.deadline  # libvirt's share of the stop; the rest is for killing QEMU by PID
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


def kill_qemu(res: Resource, ident: Identity, why: str) -> bool:
    """Stop a domain whose libvirtd is unreachable by signalling its QEMU process.  Returns
    whether there was one."""
    import signal

    from vmha.qemu_processes import find_qemu

    proc = find_qemu(ident.name, ident.uuid)
    if proc is None:
        res.log.info(f"libvirt unreachable ({why}); no QEMU process of {ident.name} here")
        return False
    res.log.warning(f"libvirt unreachable ({why}); stopping QEMU PID {proc.pid} of {ident.name} directly")
    for sig, most in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        again = find_qemu(ident.name, ident.uuid)
        if again is None or again.pid != proc.pid:
            return True
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return True
        # SIGTERM may take at most half of what is left: SIGKILL must get its turn.
        wait = min(most, res.deadline.remaining() / 2) if sig == signal.SIGTERM else most
        limit = res.deadline.within(wait)
        while not limit.expired:
            if find_qemu(ident.name, ident.uuid) is None:
                return True
            time.sleep(POLL_S)
    if find_qemu(ident.name, ident.uuid) is None:
        return True
    raise GenericError(f"QEMU PID {proc.pid} of domain {ident.name} does not die (libvirt unreachable: {why})")


def save_to_snapshot(res: Resource, dom: Domain) -> bool:
    """Save the domain's memory to ``snapshot``; True when it is off afterwards."""
    path = snapshot_file(res, dom.name)
    try:
        dom.save(path)
    except VirtError as exc:
        res.log.warning(f"saving {dom.name} to {path} failed ({exc.message}); shutting it down instead")
        return False
    res.log.info(f"domain {dom.name} saved to {path}")
    from vmha.virtual_machine.starting import RESTORING

    if os.path.exists(path + RESTORING):  # a restore that gave up earlier: this image supersedes it
        os.unlink(path + RESTORING)
    return not dom.status().active
