"""Start's steps: find what libvirt already knows under the config's name and UUID (refusing
a half match), bring the domain up (restored from ``snapshot``, over a fresh overlay, defined
persistent, or run transient), and wait until it runs.

Why a transient VM is defined, started and undefined rather than created (``createXML``):
a libvirt call the start abandons at its deadline may still complete inside libvirtd.  A
``createXML`` abandoned while libvirt re-probes QEMU's capabilities is not even listed yet,
so the stop Pacemaker runs next finds nothing, answers "stopped", and the domain runs later
behind the cluster's back (measured on libvirt 9: running ~12 s after the agent gave up).
Defining first splits that into steps that are each safe to abandon: a ``defineXML`` that
completes late leaves only an inactive definition (nothing starts it: the create is sent
only after the define answered), and once it answered the domain is listed, so the stop sees
it and ``stopping.settle_abandoned_start`` closes what is left (see there).  A start about
to call libvirt records ``start_pending`` in the state file first; that is how the stop
knows an abandoned start may be in flight.
"""

from __future__ import annotations

import os
import time

from vmha.ocf import statefile
from vmha.ocf.codes import GenericError, InvalidArgs
from vmha.verdicts.domain_state import judge_state
from vmha.virt.connection import Connection
from vmha.virt.domain import Domain, DomainState, PausedReason
from vmha.virt.errors import DomainConflict, DomainNotFound, HypervisorTimeout, VirtError
from vmha.virtual_machine.config_files import prepare_overlay, snapshot_file
from vmha.virtual_machine.resource import POLL_S, Identity, Resource

RESTORING = ".restoring"  # suffix of a save image a start has claimed (restore_domain)


def existing_domain(res: Resource, conn: Connection, ident: Identity) -> Domain | None:
    """The domain libvirt knows under this UUID or name; refuses a half match."""
    by_uuid = conn.find(uuid=ident.uuid) if ident.uuid else None
    by_name = conn.find(name=ident.name)
    if by_uuid is not None and by_uuid.name != ident.name:
        raise InvalidArgs(
            f"UUID clash: libvirt here has {ident.uuid} as domain {by_uuid.name!r}, config names it "
            f"{ident.name!r} ({res.config_path}); undefine or rename one"
        )
    if by_name is not None and ident.uuid and by_name.uuid() != ident.uuid:
        raise InvalidArgs(
            f"name clash: libvirt here has domain {ident.name!r} with UUID {by_name.uuid()}, config gives "
            f"{ident.uuid} ({res.config_path}); undefine or rename one"
        )
    return by_uuid or by_name


def start_domain(res: Resource, conn: Connection, ident: Identity, data: bytes, existing: Domain | None) -> Domain:
    save_file = snapshot_file(res, ident.name)
    if save_file and os.path.exists(save_file):
        return restore_domain(res, conn, ident, data, save_file)
    if save_file and os.path.exists(save_file + RESTORING):
        res.log.warning(
            f"a restore from {save_file}{RESTORING} gave up earlier and may have run: starting "
            f"{ident.name} cold (restoring that image again could roll memory back over newer disks)"
        )
    if res.p.text("backingfile"):
        prepare_overlay(res)
    xml = data.decode("utf-8")
    try:
        if res.p.flag("persistent"):
            dom = conn.define(xml)
            dom.set_autostart(False)
            dom.start()
            return dom
        if existing is not None and _is_persistent(existing):
            # A persistent definition would let libvirt start the VM by itself (autostart)
            # outside the cluster's control; the cluster runs it transient, as VirtualDomain.
            undefine_keeping_config(res, existing)
        # Define, start, undefine: transient while it runs, as VirtualDomain runs it, but
        # never a create that can complete unseen (see the top).
        dom = conn.define(xml)
        try:
            dom.set_autostart(False)
            dom.start()
        except VirtError:
            _undefine_quietly(res, dom, data)  # no definition left behind by a failed start
            raise
        undefine_keeping_config(res, dom, data)
        return dom
    except DomainConflict as exc:
        raise InvalidArgs(f"cannot start domain {ident.name}: {exc.message}") from None


def restore_domain(res: Resource, conn: Connection, ident: Identity, data: bytes, save_file: str) -> Domain:
    """Restore from ``save_file`` the way a start is made safe to abandon (see the top), and
    never from one image twice.

    The config is defined first (that is where libvirt parses XML and may probe QEMU, safe
    to abandon), so the domain is listed before the restore is sent and the stop after a
    restore that gave up finds it.  The image is renamed ``.restoring`` before libvirt is
    asked and removed once restored: a restore that gave up may still complete, the guest run
    and write its disks, so its image is never restored again (the next start is cold)
    unless libvirt answered that it did not restore.
    """
    claimed = save_file + RESTORING
    os.replace(save_file, claimed)
    pending = res.state.get("start_pending")
    if isinstance(pending, dict):
        pending["restoring"] = claimed
        res.save_state()
    res.log.info(f"restoring domain {ident.name} from {save_file}")
    try:
        dom = conn.define(data.decode("utf-8"))
        dom.set_autostart(False)
        conn.restore(claimed)
    except HypervisorTimeout:
        raise  # it may still be restoring: the image stays claimed
    except VirtError:
        os.replace(claimed, save_file)  # libvirt answered: nothing was restored
        raise
    os.unlink(claimed)
    dom = conn.lookup(uuid=ident.uuid, name=ident.name)
    if not res.p.flag("persistent"):
        undefine_keeping_config(res, dom, data)
    return dom


def _is_persistent(dom: Domain) -> bool:
    try:
        return dom.is_persistent()
    except DomainNotFound:
        return False  # a transient domain that went away as we looked: nothing to undefine


def _undefine_quietly(res: Resource, dom: Domain, original: bytes) -> None:
    try:
        undefine_keeping_config(res, dom, original)
    except VirtError as exc:  # the stop that follows a failed start undefines it (settle)
        res.log.warning(f"definition of {dom.name} not removed after the failed start: {exc.message}")


def undefine_keeping_config(res: Resource, dom: Domain, original: bytes | None = None) -> None:
    """Undefine ``dom``; the config file stays as it was (``original``: its bytes before a
    define of ours rewrote it, when the config is libvirt's own /etc/libvirt/qemu/<name>.xml)."""
    saved = original
    if saved is None:
        try:
            with open(res.config_path, "rb") as fh:
                saved = fh.read()
        except OSError:
            saved = None
    dom.undefine()
    if saved is not None and not os.path.exists(res.config_path):
        # libvirt removed its own copy (config was /etc/libvirt/qemu/<name>.xml): put it back.
        statefile.write_file_atomic(res.config_path, saved, 0o600)


def wait_running(res: Resource, dom: Domain, what: str) -> None:
    while True:
        status = dom.status()
        if status.state in (DomainState.RUNNING, DomainState.BLOCKED):
            return
        if status.state is DomainState.PAUSED and status.reason == PausedReason.USER:
            # Nothing will unpause it; the monitor calls it running, so does start.
            res.log.warning(f"{what}: domain {dom.name} is paused by a user; leaving it paused")
            return
        result = judge_state(dom.name, status, res.p.text("on_io_error"))
        if not status.active or (result.rc not in (0, 190)):
            raise GenericError(f"{what}: domain {dom.name} is {status.describe()} instead of running")
        if res.deadline.remaining() < POLL_S:
            raise GenericError(f"{what}: domain {dom.name} still {status.describe()} at the timeout")
        time.sleep(POLL_S)
